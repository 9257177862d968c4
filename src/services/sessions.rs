//! Creating a session: one entry point for the REST API, the widget and the inbound
//! webhook alike. Each caller parses its own body into a [`NewSession`] at the edge; from
//! there the path is the same, and the idempotency fingerprint is taken over the parsed
//! request, so two bodies that mean the same thing (other key order, other spacing, a
//! blank optional field) replay the same session.

use chrono::{DateTime, Utc};
use sea_orm::DbErr;
use sha2::{Digest, Sha256};

use crate::store::batch::Creator;
use crate::store::sessions::{Created, NewSession, Origin, SessionView};

/// What went wrong creating a session.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The idempotency key was used before with a different request.
    #[error("the idempotency key was used with a different request")]
    KeyReused,
    #[error(transparent)]
    Db(#[from] DbErr),
}

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
) -> Result<Outcome, CreateError> {
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
        Created::KeyReused => Err(CreateError::KeyReused),
    }
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
