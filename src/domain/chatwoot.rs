//! Chatwoot's inbound side, pure (no IO, `now` passed in): the account-webhook signature,
//! and what a webhook, a macro call or a dashboard-app message asks Sightline to do.
//!
//! Signature (Chatwoot account webhooks with a secret): `X-Chatwoot-Signature:
//! sha256=<hex HMAC-SHA256(secret, "{X-Chatwoot-Timestamp}.{raw body}")>`,
//! `X-Chatwoot-Timestamp` in Unix seconds, `X-Chatwoot-Delivery` a unique id per delivery.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Seconds `X-Chatwoot-Timestamp` may differ from our clock.
pub const TOLERANCE_SECS: i64 = 300;
/// Longest `X-Chatwoot-Delivery` accepted.
pub const MAX_DELIVERY_ID: usize = 128;
/// The default command an agent types in a private note.
pub const DEFAULT_COMMAND: &str = "/video";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("X-Chatwoot-Signature or X-Chatwoot-Timestamp is missing")]
    Missing,
    #[error("X-Chatwoot-Timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("X-Chatwoot-Timestamp is more than 5 minutes away from our clock")]
    Stale,
    #[error("X-Chatwoot-Signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    /// The stable problem code the HTTP layer answers with.
    pub fn code(self) -> &'static str {
        match self {
            Self::Missing => "signature_missing",
            Self::BadTimestamp | Self::Stale => "stale_timestamp",
            Self::Mismatch => "signature_mismatch",
        }
    }
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(timestamp.as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

/// `sha256=<hex>`, as Chatwoot sends it.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret, timestamp, body)))
}

/// Checks a delivery's signature and timestamp against `now` (Unix seconds). The
/// signature is compared in constant time.
pub fn verify(
    secret: &[u8],
    signature: Option<&str>,
    timestamp: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    let (Some(sig), Some(ts)) = (signature, timestamp) else {
        return Err(SignatureError::Missing);
    };
    let ts = ts.trim();
    if ts.is_empty() || ts.len() > 12 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::BadTimestamp);
    }
    let t: i64 = ts.parse().map_err(|_| SignatureError::BadTimestamp)?;
    if (now - t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let given = sig
        .trim()
        .strip_prefix("sha256=")
        .and_then(|h| hex::decode(h).ok())
        .ok_or(SignatureError::Mismatch)?;
    let expected = mac(secret, ts, body);
    if given.len() == expected.len() && bool::from(given.ct_eq(&expected)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Compares two secrets (e.g. a URL's secret segment) in constant time.
pub fn same_secret(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// A Chatwoot user (an agent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub id: u64,
    pub name: String,
}

/// The contact (customer) of a conversation, as far as Chatwoot tells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
}

/// "Start a call in this conversation, for this agent."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartCall {
    pub account_id: Option<u64>,
    /// The number shown in Chatwoot (the conversation's `display_id`).
    pub conversation_id: u64,
    /// The message that asked (the private note), when there is one.
    pub message_id: Option<u64>,
    pub agent: Agent,
    pub contact: Contact,
}

/// What an account webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    StartCall(StartCall),
    /// Acknowledged and ignored, with the reason (for the log).
    Ignore(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the body is not a JSON object")]
    NotJson,
    #[error("the conversation id is missing or not a number")]
    ConversationId,
    #[error("the sender has no numeric id")]
    AgentId,
    #[error("the conversation has no assignee to start the call for")]
    NoAssignee,
}

impl PayloadError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotJson => "invalid_json",
            Self::ConversationId => "invalid_conversation_id",
            Self::AgentId => "invalid_agent",
            Self::NoAssignee => "no_assignee",
        }
    }
}

/// A positive id given as a JSON number or a string of digits (at most 18 digits).
fn numeric_id(v: Option<&serde_json::Value>) -> Option<u64> {
    match v? {
        serde_json::Value::Number(n) => n.as_u64().filter(|n| *n > 0),
        serde_json::Value::String(s) => {
            let s = s.trim();
            (!s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse().ok())
                .flatten()
                .filter(|n| *n > 0)
        }
        _ => None,
    }
}

/// A short, trimmed, control-free text field.
fn text(v: Option<&serde_json::Value>, max_chars: usize) -> Option<String> {
    let s = v?.as_str()?.trim();
    if s.is_empty() {
        return None;
    }
    let clean: String = s
        .chars()
        .filter(|c| !c.is_control())
        .take(max_chars)
        .collect();
    (!clean.is_empty()).then_some(clean)
}

fn agent_of(v: &serde_json::Value) -> Result<Agent, PayloadError> {
    let id = numeric_id(v.get("id")).ok_or(PayloadError::AgentId)?;
    let name = text(v.get("available_name"), 80)
        .or_else(|| text(v.get("name"), 80))
        .unwrap_or_else(|| format!("Agent {id}"));
    Ok(Agent { id, name })
}

fn contact_of(v: Option<&serde_json::Value>) -> Contact {
    let Some(v) = v else {
        return Contact::default();
    };
    Contact {
        name: text(v.get("name"), 80),
        email: text(v.get("email"), 254).filter(|e| e.contains('@')),
    }
}

/// Reads an account webhook. `command` is what an agent types (e.g. `/video`), matched
/// case-insensitively against the whole trimmed note.
pub fn parse_webhook(body: &[u8], command: &str) -> Result<Webhook, PayloadError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| PayloadError::NotJson)?;
    if !v.is_object() {
        return Err(PayloadError::NotJson);
    }
    if v.get("event").and_then(|e| e.as_str()) != Some("message_created") {
        return Ok(Webhook::Ignore("not a message_created event"));
    }
    let content = v.get("content").and_then(|c| c.as_str()).unwrap_or("");
    if !content.trim().eq_ignore_ascii_case(command) {
        return Ok(Webhook::Ignore("not the video command"));
    }
    if v.get("private").and_then(|p| p.as_bool()) != Some(true) {
        return Ok(Webhook::Ignore("the command was not in a private note"));
    }
    let sender = v.get("sender").unwrap_or(&serde_json::Value::Null);
    let sender_type = sender.get("type").and_then(|t| t.as_str()).unwrap_or("");
    if !sender_type.eq_ignore_ascii_case("user") {
        return Ok(Webhook::Ignore("the command was not sent by an agent"));
    }
    let conversation = v.get("conversation").unwrap_or(&serde_json::Value::Null);
    let conversation_id = numeric_id(conversation.get("display_id"))
        .or_else(|| numeric_id(conversation.get("id")))
        .ok_or(PayloadError::ConversationId)?;
    let account_id = numeric_id(v.get("account").and_then(|a| a.get("id")))
        .or_else(|| numeric_id(conversation.get("account_id")));
    Ok(Webhook::StartCall(StartCall {
        account_id,
        conversation_id,
        message_id: numeric_id(v.get("id")),
        agent: agent_of(sender)?,
        contact: contact_of(conversation.get("meta").and_then(|m| m.get("sender"))),
    }))
}

/// Reads a macro's "send webhook event" call: the conversation (Chatwoot sends its data)
/// and its assignee, for whom the call is started (Chatwoot sends no executing agent).
pub fn parse_macro(body: &[u8]) -> Result<StartCall, PayloadError> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|_| PayloadError::NotJson)?;
    if !v.is_object() {
        return Err(PayloadError::NotJson);
    }
    // The conversation is the payload itself; some versions nest it.
    let conversation = v
        .get("conversation")
        .filter(|c| c.is_object())
        .unwrap_or(&v);
    let conversation_id = numeric_id(conversation.get("display_id"))
        .or_else(|| numeric_id(conversation.get("id")))
        .ok_or(PayloadError::ConversationId)?;
    let meta = conversation.get("meta");
    let assignee = meta
        .and_then(|m| m.get("assignee"))
        .filter(|a| a.is_object())
        .ok_or(PayloadError::NoAssignee)?;
    let account_id = numeric_id(conversation.get("account_id"))
        .or_else(|| numeric_id(v.get("account").and_then(|a| a.get("id"))));
    Ok(StartCall {
        account_id,
        conversation_id,
        message_id: None,
        agent: agent_of(assignee).map_err(|_| PayloadError::NoAssignee)?,
        contact: contact_of(meta.and_then(|m| m.get("sender"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn note(content: &str, private: bool, sender_type: &str, conv: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "event": "message_created", "id": 901, "content": content, "private": private,
            "message_type": "outgoing",
            "sender": {"id": 5, "name": "Ana Lima", "type": sender_type},
            "conversation": {"id": conv, "meta": {"sender": {"name": "Sam", "email": "sam@example.com"}}},
            "account": {"id": 3},
        }))
        .unwrap()
    }

    #[test]
    fn signature_round_trip_and_refusals() {
        let s = b"secret";
        let body = br#"{"event":"message_created"}"#;
        let sig = sign(s, "1000", body);
        assert!(sig.starts_with("sha256="));
        assert_eq!(verify(s, Some(&sig), Some("1000"), body, 1000), Ok(()));
        assert_eq!(verify(s, Some(&sig), Some("1000"), body, 1299), Ok(()));
        assert_eq!(
            verify(s, Some(&sig), Some("1000"), body, 1301),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(s, Some(&sig), Some("1000"), b"{}", 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"other", Some(&sig), Some("1000"), body, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(s, Some("sha256=zz"), Some("1000"), body, 1000),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(s, None, Some("1000"), body, 1000),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify(s, Some(&sig), Some("-5"), body, 1000),
            Err(SignatureError::BadTimestamp)
        );
        // The timestamp is part of what is signed.
        let other_ts = sign(s, "1001", body);
        assert_eq!(
            verify(s, Some(&other_ts), Some("1000"), body, 1000),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn known_vector() {
        // HMAC-SHA256("key", "1.{}"), computed independently with Python's hmac module.
        assert_eq!(
            sign(b"key", "1", b"{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn the_command_in_a_private_note_by_an_agent_starts_a_call() {
        let w = parse_webhook(&note(" /VIDEO ", true, "user", json!(42)), "/video").unwrap();
        let Webhook::StartCall(c) = w else {
            panic!("{w:?}")
        };
        assert_eq!(c.conversation_id, 42);
        assert_eq!(c.account_id, Some(3));
        assert_eq!(c.message_id, Some(901));
        assert_eq!(
            c.agent,
            Agent {
                id: 5,
                name: "Ana Lima".into()
            }
        );
        assert_eq!(c.contact.name.as_deref(), Some("Sam"));
        let w = parse_webhook(&note("/video", true, "user", json!("42")), "/video").unwrap();
        assert!(matches!(w, Webhook::StartCall(_)));
    }

    #[test]
    fn everything_else_is_ignored_or_refused() {
        let ignore = |body: Vec<u8>| parse_webhook(&body, "/video").unwrap();
        assert!(matches!(
            ignore(note("/video", false, "user", json!(42))),
            Webhook::Ignore(_)
        ));
        assert!(matches!(
            ignore(note("/video", true, "contact", json!(42))),
            Webhook::Ignore(_)
        ));
        assert!(matches!(
            ignore(note("hello", true, "user", json!(42))),
            Webhook::Ignore(_)
        ));
        assert!(matches!(
            ignore(br#"{"event":"conversation_created","id":"x"}"#.to_vec()),
            Webhook::Ignore(_)
        ));
        assert_eq!(
            parse_webhook(&note("/video", true, "user", json!("42; drop")), "/video"),
            Err(PayloadError::ConversationId)
        );
        assert_eq!(
            parse_webhook(&note("/video", true, "user", json!(-1)), "/video"),
            Err(PayloadError::ConversationId)
        );
        assert_eq!(parse_webhook(b"[1]", "/video"), Err(PayloadError::NotJson));
        assert_eq!(parse_webhook(b"{", "/video"), Err(PayloadError::NotJson));
    }

    #[test]
    fn a_macro_starts_the_call_for_the_assignee() {
        let body = serde_json::to_vec(&json!({
            "event": "macro.executed", "id": 42, "account_id": 3,
            "meta": {"assignee": {"id": 9, "name": "Bo", "available_name": "Bo B."},
                     "sender": {"name": "Kim"}},
        }))
        .unwrap();
        let c = parse_macro(&body).unwrap();
        assert_eq!((c.conversation_id, c.agent.id), (42, 9));
        assert_eq!(c.agent.name, "Bo B.");
        assert_eq!(c.account_id, Some(3));
        let unassigned =
            serde_json::to_vec(&json!({"id": 42, "meta": {"assignee": null}})).unwrap();
        assert_eq!(parse_macro(&unassigned), Err(PayloadError::NoAssignee));
        let bad = serde_json::to_vec(&json!({"id": "x", "meta": {}})).unwrap();
        assert_eq!(parse_macro(&bad), Err(PayloadError::ConversationId));
    }
}
