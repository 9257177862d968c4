//! The seam between Sightline and a chat platform: how to post a message into one of its
//! conversations, what its answer means, and how to tell whether a post already arrived.
//! Adding a platform is one file implementing [`Adapter`] plus a line in [`ADAPTERS`]
//! (see "Adding a platform" in docs/integrations.md).

mod chatwoot;
mod generic;
pub mod matrix;

pub use chatwoot::{command as chatwoot_command, macro_secret};

use crate::delivery::net::OutboundRequest;

/// What to post.
#[derive(Debug, Clone)]
pub struct OutgoingMessage<'a> {
    /// The outbox message id: use it as an idempotency key where the platform has one.
    pub message_id: &'a str,
    pub session_id: &'a str,
    pub conversation_id: &'a str,
    pub content: &'a str,
    pub customer_url: &'a str,
    pub agent_name: &'a str,
    /// For the platform's agents only (a private note), never the customer.
    pub private: bool,
}

/// A platform adapter. Every method is pure: it builds requests and reads answers; the
/// delivery worker sends, classifies the status (`domain::outcome`) and retries.
pub trait Adapter: Sync {
    /// The `kind` an integration is registered with.
    fn kind(&self) -> &'static str;
    /// Validates the adapter settings given to the REST API and returns what to store.
    /// `previous` is the stored config on update, so write-only secrets can be kept.
    fn parse_config(
        &self,
        input: &serde_json::Value,
        previous: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String>;
    /// The stored config as the API shows it: secrets replaced by `"<set>"`.
    fn public_config(&self, stored: &serde_json::Value) -> serde_json::Value;
    /// Whether `id` can name a conversation on this platform (checked when a session asks
    /// to post through the integration, and before every post).
    fn check_conversation(&self, _id: &str) -> Result<(), String> {
        Ok(())
    }
    /// Whether private notes (agent-only messages: the call's progress) go out with this
    /// config. Every adapter stores the answer as `notes` in its config (the timeline's
    /// fan-out reads it there without knowing adapters).
    fn private_notes(&self, stored: &serde_json::Value) -> bool {
        stored.get("notes").and_then(|n| n.as_bool()) == Some(true)
    }
    /// Builds the HTTP request (method, URL, headers, body) that posts `msg`.
    fn post_message(
        &self,
        stored: &serde_json::Value,
        msg: &OutgoingMessage<'_>,
    ) -> Result<OutboundRequest, String>;
    /// The platform's id of the posted message, from its (2xx) answer.
    fn message_id(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        match v.get("id")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
    /// For platforms without idempotent posts: a request listing the conversation's
    /// recent messages, asked before re-sending a post whose earlier attempt may have
    /// arrived (a timeout after the platform stored it). `None`: posts are idempotent (or
    /// the platform cannot tell), send again.
    fn recent_messages(
        &self,
        _stored: &serde_json::Value,
        _conversation_id: &str,
    ) -> Option<Result<OutboundRequest, String>> {
        None
    }
    /// In a [`Adapter::recent_messages`] answer, the id of a message containing `needle`
    /// (the link being posted), if there is one.
    fn find_in_recent(&self, _body: &[u8], _needle: &str) -> Option<String> {
        None
    }
    /// Whether requests from this adapter carry Standard Webhooks signature headers.
    fn signs_posts(&self) -> bool;
    /// The URLs in a stored config that requests go to, by config key, so registration
    /// can check them against the outbound policy.
    fn destinations<'a>(&self, stored: &'a serde_json::Value) -> Vec<(&'static str, &'a str)>;
}

static ADAPTERS: &[&dyn Adapter] = &[&generic::Generic, &chatwoot::Chatwoot, &matrix::Matrix];

pub fn by_kind(kind: &str) -> Option<&'static dyn Adapter> {
    ADAPTERS.iter().copied().find(|a| a.kind() == kind)
}

pub fn kinds() -> Vec<&'static str> {
    ADAPTERS.iter().map(|a| a.kind()).collect()
}

/// A string field of a JSON object, trimmed and bounded.
fn str_field<'a>(
    v: &'a serde_json::Value,
    key: &str,
    max: usize,
) -> Result<Option<&'a str>, String> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(serde_json::Value::String(s)) if s.len() <= max => Ok(Some(s.trim())),
        Some(serde_json::Value::String(_)) => Err(format!("config.{key} is too long")),
        Some(_) => Err(format!("config.{key} must be a string")),
    }
}

/// A write-only secret: the new value, or (absent, blank or the `<set>` placeholder) the
/// stored one.
fn secret_field(
    input: &serde_json::Value,
    previous: Option<&serde_json::Value>,
    key: &str,
    max: usize,
    placeholder: &str,
) -> Result<Option<String>, String> {
    match str_field(input, key, max)? {
        Some(t) if t != placeholder => {
            if t.chars().any(char::is_control) {
                return Err(format!("config.{key} must not hold control characters"));
            }
            Ok(Some(t.to_owned()))
        }
        _ => Ok(previous
            .and_then(|p| p.get(key))
            .and_then(|t| t.as_str())
            .map(str::to_owned)),
    }
}

/// A boolean field with a default.
fn bool_field(v: &serde_json::Value, key: &str, default: bool) -> Result<bool, String> {
    match v.get(key) {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(serde_json::Value::Bool(b)) => Ok(*b),
        Some(_) => Err(format!("config.{key} must be true or false")),
    }
}

fn http_url(key: &str, s: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("config.{key}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(format!("config.{key} must be an http(s) URL"));
    }
    Ok(())
}

/// The root URL of a server (`http(s)://host[:port]`, no path, query, fragment or
/// credentials), without a trailing slash.
fn base_url(key: &str, s: &str) -> Result<String, String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("config.{key}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(format!("config.{key} must be an http(s) URL"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("config.{key} must not hold credentials"));
    }
    if u.path() != "/" || u.query().is_some() || u.fragment().is_some() {
        return Err(format!(
            "config.{key} must be the server's root URL (scheme, host and port only, e.g. \
             https://chat.example.com), not a page inside it"
        ));
    }
    Ok(s.trim().trim_end_matches('/').to_owned())
}

/// The first `"id"` of a message (in `list_key` of a JSON answer, or the answer itself if
/// it is a list) whose `text_key` contains `needle`.
fn find_message(body: &[u8], list_key: &str, text_key: &str, needle: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let list = v.get(list_key).or(Some(&v))?.as_array()?;
    list.iter()
        .find(|m| {
            m.get(text_key)
                .and_then(|t| t.as_str())
                .is_some_and(|t| t.contains(needle))
        })
        .and_then(|m| match m.get("id")? {
            serde_json::Value::Number(n) => Some(n.to_string()),
            serde_json::Value::String(s) => Some(s.clone()),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_roots() {
        assert_eq!(
            base_url("u", "https://chat.example.com/").unwrap(),
            "https://chat.example.com"
        );
        assert_eq!(
            base_url("u", "http://127.0.0.1:3000").unwrap(),
            "http://127.0.0.1:3000"
        );
        for bad in [
            "https://chat.example.com/app/accounts/1/dashboard",
            "https://chat.example.com/?x=1",
            "https://u:p@chat.example.com",
            "ftp://chat.example.com",
            "chat.example.com",
        ] {
            assert!(base_url("u", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn finds_a_message_by_its_text() {
        let body =
            br#"{"payload":[{"id":7,"content":"hi"},{"id":9,"content":"join https://v/j/abc"}]}"#;
        assert_eq!(
            find_message(body, "payload", "content", "https://v/j/abc").as_deref(),
            Some("9")
        );
        assert_eq!(find_message(body, "payload", "content", "nope"), None);
    }
}
