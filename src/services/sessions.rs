//! Session use cases: create, end, replace the customer's link, e-mail an invite. The REST
//! API, the widget and the inbound webhook all call these; each takes the handles it uses
//! and answers with the one [`SessionError`].
//!
//! Creating has one entry point for every caller. Each caller parses its own body into a
//! [`NewSession`] at the edge; from there the path is the same, and the idempotency
//! fingerprint is taken over the parsed request, so two bodies that mean the same thing
//! (other key order, other spacing, a blank optional field) replay the same session.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use sha2::{Digest, Sha256};

use super::bus::{RoomSignal, SessionBus};
use crate::domain::fields::{Email, Locale};
use crate::domain::session::Status;
use crate::domain::tokens::TokenKey;
use crate::domain::{Role, SessionId};
use crate::store::batch::Creator;
use crate::store::creation::Created;
use crate::store::creation::NewSession;
use crate::store::creation::Origin;
use crate::store::outbox::delivery;
use crate::store::sessions::{self as repo, SessionView};

pub use crate::store::error::SessionError;

/// A created session, or the one an earlier identical request created.
#[derive(Debug)]
pub enum Outcome {
    Created(SessionView),
    Replayed(SessionView),
}

/// Who asks: the API key (or `integration:ID` for an inbound webhook) and, if given, the
/// idempotency key already namespaced by the caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub id: String,
    pub idempotency_key: Option<String>,
}

/// Creates a session (group-committed by `creator`) that lives `ttl`.
pub async fn create(
    creator: &Creator,
    ttl: chrono::Duration,
    new: NewSession,
    caller: Caller,
    now: DateTime<Utc>,
) -> Result<Outcome, SessionError> {
    let origin = Origin {
        api_key_id: Some(caller.id),
        idempotency_hash: caller.idempotency_key.as_ref().map(|_| fingerprint(&new)),
        idempotency_key: caller.idempotency_key,
    };
    match creator.create(new, origin, ttl, now).await? {
        Created::New(v) => {
            tracing::info!(session_id = %v.session.id, "session created");
            Ok(Outcome::Created(v))
        }
        Created::Replayed(v) => Ok(Outcome::Replayed(v)),
        Created::KeyReused => Err(SessionError::IdempotencyKeyReused),
    }
}

/// Ends a session (idempotently: ending an ended session answers with it) and, when this
/// call ended it, tells its live room and the TURN server before answering. `by` is the
/// participant who ended it, if one did.
pub async fn end(
    db: &DatabaseConnection,
    bus: &dyn SessionBus,
    id: &SessionId,
    reason: &str,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SessionView, SessionError> {
    let (v, changed) = repo::end(db, id, reason, by, now).await?;
    if changed {
        tracing::info!(session_id = %id, reason, "session ended");
        let reason = "ended".to_owned();
        bus.publish(id, RoomSignal::Ended { reason }).await;
    }
    Ok(v)
}

/// Replaces the customer's join link; their socket on the old one closes (4411) and the
/// TURN server forgets its credentials.
pub async fn rotate_customer_link(
    db: &DatabaseConnection,
    join_key: &TokenKey,
    bus: &dyn SessionBus,
    id: &SessionId,
    now: DateTime<Utc>,
) -> Result<SessionView, SessionError> {
    let v = repo::rotate_customer_link(db, join_key, id, now).await?;
    if let Some(c) = v
        .participants
        .iter()
        .find(|p| p.role == Role::Customer.as_str())
    {
        let participant_id = c.id.clone();
        bus.publish(id, RoomSignal::LinkRevoked { participant_id })
            .await;
    }
    Ok(v)
}

/// Queues an e-mail with the customer's link (through the outbox: rendered at delivery
/// time with the then-live link). Without `to`, the session's customer address is used.
pub async fn invite_by_email(
    db: &DatabaseConnection,
    mail_enabled: bool,
    id: &SessionId,
    to: Option<Email>,
    locale: Option<Locale>,
    now: DateTime<Utc>,
) -> Result<(delivery::Model, Email), SessionError> {
    if !mail_enabled {
        return Err(SessionError::MailNotConfigured);
    }
    let v = repo::get(db, id)
        .await?
        .ok_or(SessionError::SessionNotFound)?;
    if v.status() == Status::Ended {
        return Err(SessionError::SessionEnded);
    }
    if v.session.expires_at <= now {
        return Err(SessionError::SessionExpired);
    }
    let to = match to {
        Some(to) => to,
        // Stored addresses were parsed when the session was created.
        None => v
            .session
            .customer_email
            .as_deref()
            .and_then(|e| Email::parse("email", e).ok())
            .ok_or(SessionError::EmailRequired)?,
    };
    let locale = locale.as_ref().map(|l| l.as_str());
    let row = repo::queue_email_invite(db, id, &to, locale, now).await?;
    Ok((row, to))
}

/// SHA-256 over the parsed request, field by field with lengths (no field can run into
/// the next); metadata as canonical JSON (object keys sorted).
pub fn fingerprint(new: &NewSession) -> String {
    let mut h = Sha256::new();
    let mut field = |v: Option<&str>| match v {
        None => h.update(b"-;"),
        Some(s) => {
            h.update(s.len().to_string().as_bytes());
            h.update(b":");
            h.update(s.as_bytes());
            h.update(b";");
        }
    };
    field(Some(&new.conversation.platform));
    field(Some(&new.conversation.id));
    field(Some(new.agent_id.as_str()));
    field(Some(new.agent_name.as_str()));
    field(new.customer_name.as_ref().map(|n| n.as_str()));
    field(new.customer_email.as_ref().map(|e| e.as_str()));
    field(new.customer_locale.as_ref().map(|l| l.as_str()));
    let metadata = serde_json::to_string(new.metadata.as_value()).unwrap_or_default();
    field(Some(&metadata));
    field(Some(if new.relay_only { "relay" } else { "any" }));
    field(Some(if new.lobby { "lobby" } else { "direct" }));
    field(new.post_link_via.as_deref());
    field(new.media_mode);
    // Only when given, so fingerprints stored before recording existed still match.
    if new.recording_mode.is_some() {
        field(new.recording_mode);
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::fields::{AgentId, ConversationRef, DisplayName, Metadata};

    fn new(meta: serde_json::Value) -> NewSession {
        NewSession {
            conversation: ConversationRef::parse("chat", "c-1").unwrap(),
            agent_id: AgentId::parse("a-1").unwrap(),
            agent_name: DisplayName::parse("agent.name", "Ana").unwrap(),
            customer_name: None,
            customer_email: None,
            customer_locale: None,
            metadata: Metadata::parse(meta).unwrap(),
            relay_only: false,
            lobby: false,
            post_link_via: None,
            media_mode: None,
            recording_mode: None,
        }
    }

    #[test]
    fn the_fingerprint_is_over_meaning_not_spelling() {
        let a = new(serde_json::json!({"b": 1, "a": [1, 2]}));
        let b = new(serde_json::from_str(r#"{ "a":[1,2],  "b":1 }"#).unwrap());
        assert_eq!(fingerprint(&a), fingerprint(&b));
        let mut c = a.clone();
        c.lobby = true;
        assert_ne!(fingerprint(&a), fingerprint(&c));
        let mut d = a.clone();
        d.customer_name = Some(DisplayName::parse("customer.name", "Sam").unwrap());
        assert_ne!(fingerprint(&a), fingerprint(&d));
    }

    #[test]
    fn fields_cannot_run_into_each_other() {
        let mut a = new(serde_json::json!({}));
        let mut b = a.clone();
        a.conversation = ConversationRef::parse("ab", "c").unwrap();
        b.conversation = ConversationRef::parse("a", "bc").unwrap();
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
