//! Generic webhook: POSTs a documented JSON document, signed like every event webhook.
//!
//! ```json
//! {"type": "message.post", "message_id": "msg_…", "session_id": "…",
//!  "conversation_id": "…", "content": "…", "customer_url": "…", "agent_name": "…",
//!  "private": false}
//! ```
//!
//! `private: true` marks a note for agents only (sent only with `private_notes: true`).

use serde_json::json;

use super::{Adapter, OutgoingMessage, bool_field, http_url, str_field};
use crate::delivery::net::{Method, OutboundRequest};

pub struct Generic;

impl Adapter for Generic {
    fn kind(&self) -> &'static str {
        "generic"
    }

    fn parse_config(
        &self,
        input: &serde_json::Value,
        _previous: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let url = str_field(input, "post_url", 2048)?.ok_or("config.post_url is required")?;
        http_url("post_url", url)?;
        let notes = bool_field(input, "private_notes", false)?;
        Ok(json!({ "post_url": url, "private_notes": notes, "notes": notes }))
    }

    fn public_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        stored.clone()
    }

    fn post_message(
        &self,
        stored: &serde_json::Value,
        m: &OutgoingMessage<'_>,
    ) -> Result<OutboundRequest, String> {
        let url = str_field(stored, "post_url", 2048)?.ok_or("post_url missing")?;
        let body = json!({
            "type": "message.post",
            "message_id": m.message_id,
            "session_id": m.session_id,
            "conversation_id": m.conversation_id,
            "content": m.content,
            "customer_url": m.customer_url,
            "agent_name": m.agent_name,
            "private": m.private,
        });
        Ok(OutboundRequest {
            method: Method::Post,
            url: url.to_owned(),
            headers: Vec::new(),
            body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        })
    }

    fn destinations<'a>(&self, stored: &'a serde_json::Value) -> Vec<(&'static str, &'a str)> {
        str_field(stored, "post_url", 2048)
            .ok()
            .flatten()
            .map(|u| vec![("post_url", u)])
            .unwrap_or_default()
    }

    fn signs_posts(&self) -> bool {
        true
    }
}
