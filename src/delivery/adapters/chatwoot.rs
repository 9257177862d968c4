//! Chatwoot: an outgoing message on the conversation through the application API,
//! `POST {base_url}/api/v1/accounts/{account_id}/conversations/{conversation_id}/messages`
//! with header `api_access_token` and body
//! `{"content": "…", "message_type": "outgoing", "private": false}`.

use serde_json::json;

use super::{Adapter, OutgoingMessage, http_url, str_field};
use crate::delivery::net::OutboundRequest;

pub struct Chatwoot;

const SET: &str = "<set>";

fn account_id(v: &serde_json::Value) -> Result<String, String> {
    let raw = match v.get("account_id") {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s.trim().to_owned(),
        _ => return Err("config.account_id is required".into()),
    };
    if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err("config.account_id must be a number".into());
    }
    Ok(raw)
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
        http_url("base_url", base)?;
        let token = match str_field(input, "api_access_token", 512)? {
            Some(t) if t != SET => t.to_owned(),
            _ => previous
                .and_then(|p| p.get("api_access_token"))
                .and_then(|t| t.as_str())
                .map(str::to_owned)
                .ok_or("config.api_access_token is required")?,
        };
        Ok(json!({
            "base_url": base.trim_end_matches('/'),
            "account_id": account_id(input)?,
            "api_access_token": token,
        }))
    }

    fn public_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        let mut v = stored.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("api_access_token".into(), json!(SET));
        }
        v
    }

    fn post_message(
        &self,
        stored: &serde_json::Value,
        m: &OutgoingMessage<'_>,
    ) -> Result<OutboundRequest, String> {
        let base = str_field(stored, "base_url", 2048)?.ok_or("base_url missing")?;
        let token = str_field(stored, "api_access_token", 512)?.ok_or("token missing")?;
        let account = account_id(stored)?;
        let conversation: String = m
            .conversation_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if conversation.is_empty() || conversation != m.conversation_id {
            return Err("conversation id is not a Chatwoot conversation id".into());
        }
        let body = json!({"content": m.content, "message_type": "outgoing", "private": false});
        Ok(OutboundRequest {
            url: format!("{base}/api/v1/accounts/{account}/conversations/{conversation}/messages"),
            headers: vec![("api_access_token".into(), token.to_owned())],
            body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_documented_request_and_hides_the_token() {
        let cfg = Chatwoot
            .parse_config(
                &json!({"base_url": "http://cw.example/", "account_id": 3, "api_access_token": "tok"}),
                None,
            )
            .unwrap();
        let m = OutgoingMessage {
            message_id: "msg_1",
            session_id: "s",
            conversation_id: "42",
            content: "hi",
            customer_url: "u",
            agent_name: "a",
        };
        let r = Chatwoot.post_message(&cfg, &m).unwrap();
        assert_eq!(
            r.url,
            "http://cw.example/api/v1/accounts/3/conversations/42/messages"
        );
        assert_eq!(r.headers, vec![("api_access_token".into(), "tok".into())]);
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            body,
            json!({"content": "hi", "message_type": "outgoing", "private": false})
        );
        assert_eq!(Chatwoot.public_config(&cfg)["api_access_token"], "<set>");
        let kept = Chatwoot
            .parse_config(
                &json!({"base_url": "http://cw.example", "account_id": "3"}),
                Some(&cfg),
            )
            .unwrap();
        assert_eq!(kept["api_access_token"], "tok");
        let bad = OutgoingMessage {
            conversation_id: "../x",
            ..m
        };
        assert!(Chatwoot.post_message(&cfg, &bad).is_err());
    }
}
