//! Sending integration deliveries: signed event webhooks and posts into conversations.

use chrono::Utc;

use super::adapters::{self, OutgoingMessage};
use super::message;
use crate::delivery::net::{Method, OutboundRequest, SendError};
use crate::delivery::senders::{DeliveryEnv, Sent};
use crate::delivery::signing;
use crate::delivery::worker::AttemptError;
use crate::domain::outcome::{self, Outcome};
use crate::domain::session::Role;
use crate::store::fanout::Note;
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
pub(crate) fn sign(
    req: &mut OutboundRequest,
    secret: &str,
    message_id: &str,
) -> Result<(), AttemptError> {
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

/// An attempt's transport failure: a policy refusal or a bad URL cannot be retried away.
fn transport_error(e: SendError) -> AttemptError {
    if e.is_permanent() {
        AttemptError::permanent(e.to_string())
    } else {
        AttemptError::retry(e.to_string())
    }
}

async fn send(state: &DeliveryEnv, req: &OutboundRequest) -> Result<Sent, AttemptError> {
    state
        .outbound
        .post(req)
        .await
        .map(|_| Sent::default())
        .map_err(transport_error)
}

pub async fn send_event(state: &DeliveryEnv, row: &delivery::Model) -> Result<Sent, AttemptError> {
    let i = load_integration(state, row).await?;
    let url = row.payload.get("url").and_then(|v| v.as_str());
    let body = row.payload.get("body").and_then(|v| v.as_str());
    let (Some(url), Some(body)) = (url, body) else {
        return Err(AttemptError::permanent("malformed event payload"));
    };
    let mut req = OutboundRequest {
        method: Method::Post,
        url: url.to_owned(),
        headers: Vec::new(),
        body: body.as_bytes().to_vec(),
    };
    sign(&mut req, &i.signing_secret, &row.message_id)?;
    send(state, &req).await
}

/// Sends a request an adapter built and reads the platform's answer: delivered (with
/// the platform's id of the message), retry (honouring `Retry-After`) or fail now.
pub(crate) async fn exchange(
    state: &DeliveryEnv,
    req: &OutboundRequest,
) -> Result<(Outcome, Vec<u8>), AttemptError> {
    let reply = state
        .outbound
        .send(req, None)
        .await
        .map_err(transport_error)?;
    let outcome = outcome::classify(
        reply.status,
        reply.retry_after.as_deref(),
        &reply.body,
        Utc::now(),
    );
    Ok((outcome, reply.body))
}

pub(crate) fn into_error(o: Outcome) -> AttemptError {
    match o {
        Outcome::Retry { reason, not_before } => AttemptError::retry_after(reason, not_before),
        Outcome::Fail { reason } => AttemptError::permanent(reason),
        Outcome::Delivered => AttemptError::retry("delivered"),
    }
}

/// A post into a conversation: the customer's link (public) or a private note for the
/// agents (the agent's link, the customer joined, the call ended).
pub async fn send_post(state: &DeliveryEnv, row: &delivery::Model) -> Result<Sent, AttemptError> {
    let note = match row.payload.get("note").and_then(|v| v.as_str()) {
        None => None,
        Some(n) => Some(
            Note::parse(n).ok_or_else(|| AttemptError::permanent(format!("unknown note {n}")))?,
        ),
    };
    let carries_link = matches!(note, None | Some(Note::AgentLink));
    let max_age = state.link_post_max_age;
    if carries_link && (Utc::now() - row.age_from).to_std().unwrap_or_default() > max_age {
        return Err(AttemptError::permanent(format!(
            "link post expired: not sent within {} s of being queued \
             (outbox.link_post_max_age_secs); the link was not posted",
            max_age.as_secs()
        )));
    }
    let i = load_integration(state, row).await?;
    let adapter = adapters::by_kind(&i.kind)
        .ok_or_else(|| AttemptError::permanent(format!("no adapter for kind {}", i.kind)))?;
    let session_id = row
        .session_id
        .as_deref()
        .ok_or_else(|| AttemptError::permanent("delivery has no session"))?;
    let view = crate::store::sessions::get(&state.db, session_id)
        .await
        .map_err(|e| AttemptError::retry(format!("database: {e}")))?
        .ok_or_else(|| AttemptError::permanent("the session was deleted"))?;
    let s = &view.session;
    let conversation_id = row
        .payload
        .get("conversation_id")
        .and_then(|v| v.as_str())
        .unwrap_or(&s.conversation_id);
    adapter
        .check_conversation(conversation_id)
        .map_err(AttemptError::permanent)?;
    let lang = message::pick_language([s.customer_locale.as_deref(), Some(i.locale.as_str())]);
    let link_of = |role: Role| {
        view.join_url(&state.join_key, &state.public_url, role)
            .ok_or_else(|| AttemptError::permanent("the session has ended; no live link to send"))
    };
    let customer_url = if carries_link {
        link_of(Role::Customer)?
    } else {
        String::new()
    };
    let (content, link) = match note {
        None => (
            message::render(lang, &s.agent_name, &customer_url)
                .map_err(|e| AttemptError::permanent(format!("template: {e}")))?,
            Some(customer_url.clone()),
        ),
        Some(Note::AgentLink) => {
            let agent_url = link_of(Role::Agent)?;
            (message::agent_link_note(lang, &agent_url), Some(agent_url))
        }
        Some(Note::CustomerJoined) => (
            message::customer_joined_note(lang, s.customer_name.as_deref()),
            None,
        ),
        Some(Note::CallEnded) => {
            let end = s.ended_at.unwrap_or(s.updated_at);
            let report = crate::services::reports::report_url(
                &state.report_key,
                &state.public_url,
                &view,
                crate::services::reports::REPORT_GRACE_DAYS,
            );
            (
                message::call_ended_note(
                    lang,
                    (end - s.created_at).num_seconds(),
                    report.as_deref(),
                ),
                None,
            )
        }
    };
    let msg = OutgoingMessage {
        message_id: &row.message_id,
        session_id: &s.id,
        conversation_id,
        content: &content,
        customer_url: &customer_url,
        agent_name: &s.agent_name,
        private: note.is_some(),
    };
    // An earlier attempt may have arrived although its answer did not (a timeout after
    // the platform stored it): where posts are not idempotent, look before posting again.
    if row.attempts > 0
        && let Some(link) = &link
        && let Some(check) = adapter.recent_messages(&i.config, conversation_id)
    {
        let check = check.map_err(AttemptError::permanent)?;
        match exchange(state, &check).await? {
            (Outcome::Delivered, body) => {
                if let Some(id) = adapter.find_in_recent(&body, link) {
                    tracing::info!(
                        platform_message_id = %id,
                        "an earlier attempt arrived; not posting again"
                    );
                    return Ok(Sent {
                        remote_id: Some(id),
                    });
                }
            }
            (other, _) => {
                let e = into_error(other);
                return Err(AttemptError {
                    message: format!("checking whether an earlier attempt arrived: {}", e.message),
                    ..e
                });
            }
        }
    }
    let mut req = adapter
        .post_message(&i.config, &msg)
        .map_err(AttemptError::permanent)?;
    if adapter.signs_posts() {
        sign(&mut req, &i.signing_secret, &row.message_id)?;
    }
    match exchange(state, &req).await? {
        (Outcome::Delivered, body) => Ok(Sent {
            remote_id: adapter.message_id(&body),
        }),
        (other, _) => Err(into_error(other)),
    }
}
