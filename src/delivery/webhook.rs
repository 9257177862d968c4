//! Sending integration deliveries: signed event webhooks and posts into conversations.

use chrono::Utc;

use super::adapters::{self, OutgoingMessage};
use super::message;
use crate::delivery::net::{OutboundRequest, SendError};
use crate::delivery::senders::DeliveryEnv;
use crate::delivery::signing;
use crate::delivery::worker::AttemptError;
use crate::store::integrations::integration;
use crate::store::outbox::delivery;

async fn load_integration(
    state: &DeliveryEnv,
    row: &delivery::Model,
) -> Result<integration::Model, AttemptError> {
    let id = row
        .integration_id
        .as_deref()
        .ok_or_else(|| AttemptError::permanent("delivery has no integration"))?;
    crate::store::integrations::find(&state.db, id)
        .await
        .map_err(|e| AttemptError::retry(format!("database: {e}")))?
        .ok_or_else(|| AttemptError::permanent("the integration was deleted"))
}

/// Adds the Standard Webhooks headers (fresh timestamp per attempt, same id every time).
fn sign(req: &mut OutboundRequest, secret: &str, message_id: &str) -> Result<(), AttemptError> {
    let key = signing::key_of(secret)
        .ok_or_else(|| AttemptError::permanent("integration signing secret is unusable"))?;
    let ts = Utc::now().timestamp();
    let sig = signing::sign(&key, message_id, ts, &req.body);
    req.headers
        .push(("webhook-id".into(), message_id.to_owned()));
    req.headers
        .push(("webhook-timestamp".into(), ts.to_string()));
    req.headers.push(("webhook-signature".into(), sig));
    Ok(())
}

async fn send(state: &DeliveryEnv, req: &OutboundRequest) -> Result<(), AttemptError> {
    state
        .outbound
        .post(req)
        .await
        .map(|_| ())
        .map_err(|e: SendError| {
            if e.is_permanent() {
                AttemptError::permanent(e.to_string())
            } else {
                AttemptError::retry(e.to_string())
            }
        })
}

pub async fn send_event(state: &DeliveryEnv, row: &delivery::Model) -> Result<(), AttemptError> {
    let i = load_integration(state, row).await?;
    let url = row.payload.get("url").and_then(|v| v.as_str());
    let body = row.payload.get("body").and_then(|v| v.as_str());
    let (Some(url), Some(body)) = (url, body) else {
        return Err(AttemptError::permanent("malformed event payload"));
    };
    let mut req = OutboundRequest {
        url: url.to_owned(),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    };
    sign(&mut req, &i.signing_secret, &row.message_id)?;
    send(state, &req).await
}

pub async fn send_post(state: &DeliveryEnv, row: &delivery::Model) -> Result<(), AttemptError> {
    let i = load_integration(state, row).await?;
    let adapter = adapters::by_kind(&i.kind)
        .ok_or_else(|| AttemptError::permanent(format!("no adapter for kind {}", i.kind)))?;
    let (view, link) = crate::delivery::senders::session_and_customer_link(state, row).await?;
    let s = &view.session;
    let lang = message::pick_language([s.customer_locale.as_deref(), Some(i.locale.as_str())]);
    let content = message::render(lang, &s.agent_name, &link)
        .map_err(|e| AttemptError::permanent(format!("template: {e}")))?;
    let conversation_id = row
        .payload
        .get("conversation_id")
        .and_then(|v| v.as_str())
        .unwrap_or(&s.conversation_id);
    let msg = OutgoingMessage {
        message_id: &row.message_id,
        session_id: &s.id,
        conversation_id,
        content: &content,
        customer_url: &link,
        agent_name: &s.agent_name,
    };
    let mut req = adapter
        .post_message(&i.config, &msg)
        .map_err(AttemptError::permanent)?;
    if adapter.signs_posts() {
        sign(&mut req, &i.signing_secret, &row.message_id)?;
    }
    send(state, &req).await
}
