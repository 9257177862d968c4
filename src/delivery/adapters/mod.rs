//! The seam between Sightline and a chat platform: how to post a message into one of its
//! conversations. Adding a platform is one small file implementing [`Adapter`] plus a line
//! in [`by_kind`].

mod chatwoot;
mod generic;

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
}

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
    /// Builds the HTTP request that posts `msg`. The worker signs and sends it.
    fn post_message(
        &self,
        stored: &serde_json::Value,
        msg: &OutgoingMessage<'_>,
    ) -> Result<OutboundRequest, String>;
    /// Whether requests from this adapter carry Standard Webhooks signature headers.
    fn signs_posts(&self) -> bool;
    /// The URLs in a stored config that requests go to, by config key, so registration
    /// can check them against the outbound policy.
    fn destinations<'a>(&self, stored: &'a serde_json::Value) -> Vec<(&'static str, &'a str)>;
}

static ADAPTERS: &[&dyn Adapter] = &[&generic::Generic, &chatwoot::Chatwoot];

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

fn http_url(key: &str, s: &str) -> Result<(), String> {
    let u = reqwest::Url::parse(s).map_err(|e| format!("config.{key}: {e}"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(format!("config.{key} must be an http(s) URL"));
    }
    Ok(())
}
