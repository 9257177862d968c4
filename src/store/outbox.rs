//! The durable outbox: every message that leaves the box (chat post, event webhook,
//! e-mail) is a row written in the same transaction as the change that causes it, then
//! delivered by [`worker`] at least once, in order per session and destination, with
//! exponential backoff and jitter, and dead-lettered after a maximum age or attempt count.

use std::sync::OnceLock;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, DbErr, IntoActiveModel};
use tokio::sync::watch;

pub use crate::store::entities::delivery;

/// What a delivery carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A signed event webhook to an integration's `events_url`.
    Event,
    /// The customer's link posted into the conversation through an integration's adapter.
    PostMessage,
    /// An e-mail invite over SMTP.
    Email,
    /// The call's chat transcript posted into the conversation at the end (`delivery_transcript`).
    Transcript,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Event => "event",
            Self::PostMessage => "post_message",
            Self::Email => "email",
            Self::Transcript => "transcript",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "event" => Some(Self::Event),
            "post_message" => Some(Self::PostMessage),
            "email" => Some(Self::Email),
            "transcript" => Some(Self::Transcript),
            _ => None,
        }
    }
}

pub const PENDING: &str = "pending";
pub const DELIVERED: &str = "delivered";
pub const DEAD: &str = "dead";

/// A row to enqueue.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub kind: Kind,
    pub event_type: Option<String>,
    pub session_id: Option<String>,
    pub integration_id: Option<String>,
    /// Deliveries sharing a key go out strictly in enqueue order.
    pub ordering_key: String,
    pub payload: serde_json::Value,
}

/// A new delivery's row, due now (`id` is the database's to give).
pub fn pending_row(d: NewDelivery, now: DateTime<Utc>) -> delivery::Model {
    delivery::Model {
        id: 0,
        message_id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
        kind: d.kind.as_str().to_owned(),
        event_type: d.event_type,
        session_id: d.session_id,
        integration_id: d.integration_id,
        ordering_key: d.ordering_key,
        payload: d.payload,
        status: PENDING.to_owned(),
        attempts: 0,
        next_attempt_at: now,
        age_from: now,
        last_error: None,
        created_at: now,
        updated_at: now,
        delivered_at: None,
        leased_until: None,
        remote_id: None,
    }
}

/// Writes a delivery inside the caller's transaction and wakes the worker.
pub async fn enqueue<C: ConnectionTrait>(
    c: &C,
    d: NewDelivery,
    now: DateTime<Utc>,
) -> Result<delivery::Model, DbErr> {
    let mut row = pending_row(d, now).into_active_model();
    row.id = sea_orm::NotSet;
    let row = row.insert(c).await?;
    wake();
    Ok(row)
}

fn wake_channel() -> &'static watch::Sender<u64> {
    static WAKE: OnceLock<watch::Sender<u64>> = OnceLock::new();
    WAKE.get_or_init(|| watch::channel(0).0)
}

/// Tells every outbox worker in this process to look for work now. (Called before the
/// enqueuing transaction commits, so the worker also re-checks shortly after a wake.)
pub fn wake() {
    wake_channel().send_modify(|n| *n = n.wrapping_add(1));
}

pub fn subscribe() -> watch::Receiver<u64> {
    wake_channel().subscribe()
}

/// Delay before attempt `attempts + 1`: `base · 2^(attempts-1)` capped at `max`, scaled by
/// a jitter factor in [0.5, 1.0] ("equal jitter"). `jitter` is a uniform sample in [0, 1).
pub fn backoff(attempts: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let raw = base.saturating_mul(1u32 << exp).min(max);
    raw.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let b = Duration::from_millis(100);
        let m = Duration::from_secs(10);
        assert_eq!(backoff(1, b, m, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(2, b, m, 1.0), Duration::from_millis(200));
        assert_eq!(backoff(4, b, m, 1.0), Duration::from_millis(800));
        assert_eq!(backoff(40, b, m, 1.0), m);
        assert_eq!(backoff(2, b, m, 0.0), Duration::from_millis(100));
        assert!(backoff(3, b, m, 0.3) < backoff(3, b, m, 0.9));
    }
}
