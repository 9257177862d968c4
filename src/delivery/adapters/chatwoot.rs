//! Chatwoot: a message in the conversation through the application API,
//! `POST {base_url}/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages`
//! with header `Api-Access-Token` and body
//! `{"content": "…", "message_type": "outgoing", "private": false}` (`private: true` for
//! a note only agents see). Chatwoot answers with the message (its `id` is kept).
//!
//! The header is spelled with dashes: nginx, in front of most Chatwoot installations,
//! drops headers with underscores (`underscores_in_headers off`), so the documented
//! `api_access_token` arrives nowhere and Chatwoot answers 401.
//!
//! Posts are not idempotent in Chatwoot: before sending a post again, the conversation's
//! recent messages (`GET …/messages`) are searched for the link it carries.
//!
//! Config: `base_url` (the server's root URL), `account_id` (a number), `api_access_token`
//! and `webhook_secret` (write-only), `command` (default `/video`), `progress_notes`
//! (default true). Inbound (webhooks, the macro, the dashboard app): `http::chatwoot`.

use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::{
    Adapter, OutgoingMessage, base_url, bool_field, find_message, secret_field, str_field,
};
use crate::delivery::net::{Method, OutboundRequest};

pub struct Chatwoot;

const SET: &str = "<set>";

fn account_id(v: &serde_json::Value) -> Result<String, String> {
    let raw = match v.get("account_id") {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        _ => return Err("config.account_id is required (the number after /app/accounts/ in Chatwoot's address bar)".into()),
    };
    if raw.is_empty()
        || raw.len() > 18
        || !raw.bytes().all(|b| b.is_ascii_digit())
        || raw.bytes().all(|b| b == b'0')
    {
        return Err("config.account_id must be a positive whole number".into());
    }
    Ok(raw)
}

/// A Chatwoot conversation id: the number Chatwoot shows (its `display_id`).
fn conversation(id: &str) -> Result<&str, String> {
    if id.is_empty() || id.len() > 18 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(
            "a Chatwoot conversation id is the number Chatwoot shows for the conversation".into(),
        );
    }
    Ok(id)
}

/// The command agents type in a private note (one word, at most 32 characters).
pub fn command(stored: &serde_json::Value) -> String {
    str_field(stored, "command", 32)
        .ok()
        .flatten()
        .unwrap_or(crate::domain::chatwoot::DEFAULT_COMMAND)
        .to_owned()
}

/// The secret path segment of an integration's macro URL, derived from its signing
/// secret (rotating that rotates this).
pub fn macro_secret(signing_secret: &str) -> String {
    let mut m = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC takes any key length");
    m.update(b"sightline/chatwoot-macro");
    hex::encode(&m.finalize().into_bytes()[..20])
}

impl Adapter for Chatwoot {
    fn kind(&self) -> &'static str {
        "chatwoot"
    }

    fn parse_config(
        &self,
        input: &serde_json::Value,
        previous: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let base = str_field(input, "base_url", 2048)?.ok_or("config.base_url is required")?;
        let base = base_url("base_url", base)?;
        let token = secret_field(input, previous, "api_access_token", 512, SET)?.ok_or(
            "config.api_access_token is required (the access token of the Chatwoot user Sightline posts as)",
        )?;
        let webhook_secret = secret_field(input, previous, "webhook_secret", 512, SET)?;
        let command =
            str_field(input, "command", 32)?.unwrap_or(crate::domain::chatwoot::DEFAULT_COMMAND);
        if command.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("config.command must be one word, e.g. /video".into());
        }
        Ok(json!({
            "base_url": base,
            "account_id": account_id(input)?,
            "api_access_token": token,
            "webhook_secret": webhook_secret,
            "command": command,
            "progress_notes": bool_field(input, "progress_notes", true)?,
            "notes": bool_field(input, "progress_notes", true)?,
        }))
    }

    fn public_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        let mut v = stored.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("api_access_token".into(), json!(SET));
            if o.get("webhook_secret").is_some_and(|s| !s.is_null()) {
                o.insert("webhook_secret".into(), json!(SET));
            }
        }
        v
    }

    fn check_conversation(&self, id: &str) -> Result<(), String> {
        conversation(id).map(|_| ())
    }

    fn post_message(
        &self,
        stored: &serde_json::Value,
        m: &OutgoingMessage<'_>,
    ) -> Result<OutboundRequest, String> {
        let mut req = messages_request(stored, m.conversation_id)?;
        let body = json!({"content": m.content, "message_type": "outgoing", "private": m.private});
        req.method = Method::Post;
        req.body = serde_json::to_vec(&body).map_err(|e| e.to_string())?;
        Ok(req)
    }

    fn recent_messages(
        &self,
        stored: &serde_json::Value,
        conversation_id: &str,
    ) -> Option<Result<OutboundRequest, String>> {
        Some(messages_request(stored, conversation_id))
    }

    fn find_in_recent(&self, body: &[u8], needle: &str) -> Option<String> {
        find_message(body, "payload", "content", needle)
    }

    fn destinations<'a>(&self, stored: &'a serde_json::Value) -> Vec<(&'static str, &'a str)> {
        str_field(stored, "base_url", 2048)
            .ok()
            .flatten()
            .map(|u| vec![("base_url", u)])
            .unwrap_or_default()
    }

    fn signs_posts(&self) -> bool {
        false
    }
}

/// `GET` of the conversation's messages (a `POST` once a body is set).
fn messages_request(
    stored: &serde_json::Value,
    conversation_id: &str,
) -> Result<OutboundRequest, String> {
    let base = str_field(stored, "base_url", 2048)?.ok_or("base_url missing")?;
    let token = str_field(stored, "api_access_token", 512)?.ok_or("token missing")?;
    let account = account_id(stored)?;
    let conversation = conversation(conversation_id)?;
    Ok(OutboundRequest {
        method: Method::Get,
        url: format!("{base}/api/v1/accounts/{account}/conversations/{conversation}/messages"),
        headers: vec![("Api-Access-Token".into(), token.to_owned())],
        body: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> serde_json::Value {
        Chatwoot
            .parse_config(
                &json!({"base_url": "http://cw.example/", "account_id": 3,
                        "api_access_token": "tok", "webhook_secret": "whs"}),
                None,
            )
            .unwrap()
    }

    fn msg(conversation_id: &str) -> OutgoingMessage<'_> {
        OutgoingMessage {
            message_id: "msg_1",
            session_id: "s",
            conversation_id,
            content: "hi",
            customer_url: "u",
            agent_name: "a",
            private: false,
        }
    }

    #[test]
    fn builds_the_documented_request_with_a_dashed_header() {
        let cfg = cfg();
        let r = Chatwoot.post_message(&cfg, &msg("42")).unwrap();
        assert_eq!(r.method, Method::Post);
        assert_eq!(
            r.url,
            "http://cw.example/api/v1/accounts/3/conversations/42/messages"
        );
        assert_eq!(r.headers, vec![("Api-Access-Token".into(), "tok".into())]);
        assert!(r.headers.iter().all(|(k, _)| !k.contains('_')));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"content": "hi", "message_type": "outgoing", "private": false})
        );
        let note = OutgoingMessage {
            private: true,
            ..msg("42")
        };
        let body: serde_json::Value =
            serde_json::from_slice(&Chatwoot.post_message(&cfg, &note).unwrap().body).unwrap();
        assert_eq!(body["private"], true);
        let check = Chatwoot.recent_messages(&cfg, "42").unwrap().unwrap();
        assert_eq!(check.method, Method::Get);
        assert_eq!(check.url, r.url);
        assert_eq!(
            Chatwoot.message_id(br#"{"id": 1234}"#).as_deref(),
            Some("1234")
        );
    }

    #[test]
    fn secrets_are_write_only_and_kept_on_update() {
        let cfg = cfg();
        let public = Chatwoot.public_config(&cfg);
        assert_eq!(public["api_access_token"], "<set>");
        assert_eq!(public["webhook_secret"], "<set>");
        let kept = Chatwoot
            .parse_config(
                &json!({"base_url": "http://cw.example", "account_id": "3",
                        "api_access_token": "<set>"}),
                Some(&cfg),
            )
            .unwrap();
        assert_eq!(kept["api_access_token"], "tok");
        assert_eq!(kept["webhook_secret"], "whs");
        assert_eq!(kept["command"], "/video");
        assert_eq!(kept["progress_notes"], true);
    }

    #[test]
    fn refuses_what_chatwoot_would() {
        let cfg = cfg();
        for bad in ["../x", "abc", "42a", "", "-1"] {
            assert!(Chatwoot.post_message(&cfg, &msg(bad)).is_err(), "{bad}");
        }
        for (input, why) in [
            (
                json!({"base_url": "http://cw.example/app/accounts/3", "account_id": 3, "api_access_token": "t"}),
                "path",
            ),
            (
                json!({"base_url": "http://cw.example", "account_id": "three", "api_access_token": "t"}),
                "account",
            ),
            (
                json!({"base_url": "http://cw.example", "account_id": 0, "api_access_token": "t"}),
                "account 0",
            ),
            (
                json!({"base_url": "http://cw.example", "account_id": 3}),
                "token",
            ),
            (
                json!({"base_url": "http://cw.example", "account_id": 3, "api_access_token": "t", "command": "start video"}),
                "command",
            ),
        ] {
            assert!(Chatwoot.parse_config(&input, None).is_err(), "{why}");
        }
    }

    #[test]
    fn the_macro_secret_follows_the_signing_secret() {
        let a = macro_secret("whsec_a");
        assert_eq!(a, macro_secret("whsec_a"));
        assert_ne!(a, macro_secret("whsec_b"));
        assert_eq!(a.len(), 40);
    }
}
