//! Who sends each kind of delivery. The worker knows only this registry; `app.rs`
//! registers one [`Sender`] per [`Kind`] (event webhooks, chat posts, e-mail), so the
//! outbox imports none of the modules that send.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use super::worker::AttemptError;
use crate::store::outbox::{Kind, delivery};

/// What the senders need from the rest of the application: explicit handles, not the
/// whole application state.
#[derive(Clone)]
pub struct DeliveryEnv {
    pub db: sea_orm::DatabaseConnection,
    /// The SSRF-guarded HTTP client.
    pub outbound: Arc<super::net::Outbound>,
    /// Mints the join links that deliveries carry.
    pub join_key: Arc<crate::domain::tokens::TokenKey>,
    pub public_url: Arc<str>,
    /// Signs report links (progress notes carry one).
    pub report_key: Arc<crate::domain::tokens::TokenKey>,
    /// Link posts older than this are dead-lettered, not sent.
    pub link_post_max_age: std::time::Duration,
}

/// For a delivery that carries the customer's link: its session and the live link, or why
/// the delivery cannot succeed (a database error is worth a retry; an ended session is not).
pub async fn session_and_customer_link(
    state: &DeliveryEnv,
    row: &crate::store::outbox::delivery::Model,
) -> Result<(crate::store::sessions::SessionView, String), AttemptError> {
    let session_id = row
        .session_id
        .as_deref()
        .ok_or_else(|| AttemptError::permanent("delivery has no session"))?;
    let view = crate::store::sessions::get(&state.db, session_id)
        .await
        .map_err(|e| AttemptError::retry(format!("database: {e}")))?
        .ok_or_else(|| AttemptError::permanent("the session was deleted"))?;
    let link = view
        .join_url(
            &state.join_key,
            &state.public_url,
            crate::domain::session::Role::Customer,
        )
        .ok_or_else(|| AttemptError::permanent("the session has ended; no live link to send"))?;
    Ok((view, link))
}

/// A delivery that arrived.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sent {
    /// The receiver's id of what it stored (a chat platform's message id).
    pub remote_id: Option<String>,
}

/// Sends one delivery. An `Err` with `permanent` dead-letters it; any other is retried.
#[async_trait]
pub trait Sender: Send + Sync {
    async fn send(&self, row: &delivery::Model) -> Result<Sent, AttemptError>;

    /// Runs in the transaction that dead-letters `row` (e.g. a `delivery.failed` event).
    async fn failed(
        &self,
        _txn: &crate::store::WriteTxn,
        _row: &delivery::Model,
        _reason: &str,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), sea_orm::DbErr> {
        Ok(())
    }

    /// Runs in the transaction that marks `row` delivered (e.g. a posted link becomes a
    /// timeline event, committed with the delivery's state).
    async fn delivered(
        &self,
        _txn: &crate::store::WriteTxn,
        _row: &delivery::Model,
        _now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), sea_orm::DbErr> {
        Ok(())
    }
}

/// One sender per delivery kind.
#[derive(Clone, Default)]
pub struct Senders {
    by_kind: HashMap<&'static str, Arc<dyn Sender>>,
}

impl Senders {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the sender of `kind` (replacing an earlier one).
    pub fn register(mut self, kind: Kind, sender: Arc<dyn Sender>) -> Self {
        self.by_kind.insert(kind.as_str(), sender);
        self
    }

    /// The delivered hook of `row`'s kind (nothing for a kind nobody sends).
    pub async fn delivered(
        &self,
        txn: &crate::store::WriteTxn,
        row: &delivery::Model,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), sea_orm::DbErr> {
        match self.by_kind.get(row.kind.as_str()) {
            Some(s) => s.delivered(txn, row, now).await,
            None => Ok(()),
        }
    }

    /// The failed hook of `row`'s kind.
    pub async fn failed(
        &self,
        txn: &crate::store::WriteTxn,
        row: &delivery::Model,
        reason: &str,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), sea_orm::DbErr> {
        match self.by_kind.get(row.kind.as_str()) {
            Some(s) => s.failed(txn, row, reason, now).await,
            None => Ok(()),
        }
    }

    /// Sends `row` with the sender of its kind; a kind nobody sends is a permanent error.
    pub async fn send(&self, row: &delivery::Model) -> Result<Sent, AttemptError> {
        match self.by_kind.get(row.kind.as_str()) {
            Some(s) => s.send(row).await,
            None => Err(AttemptError::permanent(format!(
                "no sender for deliveries of kind {}",
                row.kind
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(bool);

    #[async_trait]
    impl Sender for Fixed {
        async fn send(&self, _row: &delivery::Model) -> Result<Sent, AttemptError> {
            if self.0 {
                Ok(Sent::default())
            } else {
                Err(AttemptError::retry("no"))
            }
        }
    }

    fn row(kind: &str) -> delivery::Model {
        let now = chrono::Utc::now();
        delivery::Model {
            id: 1,
            message_id: "m".into(),
            kind: kind.to_owned(),
            event_type: None,
            session_id: None,
            integration_id: None,
            ordering_key: "k".into(),
            payload: serde_json::json!({}),
            status: crate::store::outbox::PENDING.into(),
            attempts: 0,
            next_attempt_at: now,
            last_error: None,
            created_at: now,
            updated_at: now,
            delivered_at: None,
            age_from: now,
            leased_until: None,
            remote_id: None,
        }
    }

    #[tokio::test]
    async fn dispatches_by_kind_and_refuses_unknown_kinds() {
        let s = Senders::new()
            .register(Kind::Event, Arc::new(Fixed(true)))
            .register(Kind::Email, Arc::new(Fixed(false)));
        assert!(s.send(&row("event")).await.is_ok());
        assert!(!s.send(&row("email")).await.unwrap_err().permanent);
        let e = s.send(&row("post_message")).await.unwrap_err();
        assert!(e.permanent, "{}", e.message);
    }
}
