//! The fan-out of the timeline: which integrations hear of which event, and the outbox
//! rows that carry it to them. It runs inside the transaction that appends the events
//! (see `store::timeline::append_events`), so a webhook commits, or rolls back, with the
//! event it reports: nothing promised to a chat platform is lost between the two.

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde_json::json;

use crate::domain::EventKind;
use crate::store::entities::{integration, session, session_link};
use crate::store::outbox::{self, Kind, NewDelivery};

/// Enqueues "post the customer's link into the conversation" (rendered at delivery time
/// from the then-live link), inside the caller's transaction.
pub async fn enqueue_post_link<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
    conversation_id: &str,
    integration_id: &str,
    now: DateTime<Utc>,
) -> Result<outbox::delivery::Model, DbErr> {
    outbox::enqueue(
        c,
        post_link_delivery(session_id, conversation_id, integration_id),
        now,
    )
    .await
}

/// "Post the customer's link into the conversation", as a delivery.
pub fn post_link_delivery(
    session_id: &str,
    conversation_id: &str,
    integration_id: &str,
) -> NewDelivery {
    NewDelivery {
        kind: Kind::PostMessage,
        event_type: None,
        session_id: Some(session_id.to_owned()),
        integration_id: Some(integration_id.to_owned()),
        ordering_key: ordering_key(session_id, integration_id),
        payload: json!({ "conversation_id": conversation_id }),
    }
}

/// The outbox hook of the timeline: loaded once per write transaction by
/// `store::timeline::append_events`, it enqueues one signed webhook per subscribed
/// integration for every event, inside that transaction.
pub struct EventHook {
    integrations: Vec<integration::Model>,
}

impl EventHook {
    /// Loads the integrations when any of `kinds` is a webhook event type; otherwise (and
    /// when no integration exists) the hook does nothing and costs no query.
    pub async fn load<C: ConnectionTrait>(c: &C, kinds: &[EventKind]) -> Result<Self, DbErr> {
        let integrations = if kinds.iter().any(|k| k.is_webhook()) {
            integration::Entity::find().all(c).await?
        } else {
            Vec::new()
        };
        Ok(Self { integrations })
    }

    /// The hook of these integrations (read inside the caller's write transaction).
    pub fn from_models(integrations: Vec<integration::Model>) -> Self {
        Self { integrations }
    }

    /// True when no integration exists: no event needs anything.
    pub fn is_idle(&self) -> bool {
        self.integrations.is_empty()
    }

    /// Enqueues the webhooks of one stored timeline event.
    #[allow(clippy::too_many_arguments)]
    pub async fn on_event<C: ConnectionTrait>(
        &self,
        c: &C,
        session_id: &str,
        kind: EventKind,
        event_id: i64,
        participant_id: Option<&str>,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        if !self.wants(kind) {
            return Ok(());
        }
        let linked: Vec<String> = session_link::Entity::find()
            .filter(session_link::Column::SessionId.eq(session_id.to_owned()))
            .all(c)
            .await?
            .into_iter()
            .map(|l| l.integration_id)
            .collect();
        let Some(s) = session::Entity::find_by_id(session_id.to_owned())
            .one(c)
            .await?
        else {
            return Ok(());
        };
        for d in self.deliveries(&s, &linked, kind, event_id, participant_id, data, now) {
            outbox::enqueue(c, d, now).await?;
        }
        // The call's progress as private notes in the conversation, for the platforms of
        // the session that take them (`config.notes`, set by each adapter), once each.
        if let Some(note) = note_for(kind, data) {
            let takes_notes = self.integrations.iter().filter(|i| {
                linked.contains(&i.id)
                    && i.config.get("notes").and_then(|n| n.as_bool()) == Some(true)
            });
            for i in takes_notes {
                enqueue_note_once(c, &s.id, &s.conversation_id, &i.id, note, now).await?;
            }
        }
        Ok(())
    }

    /// True when some integration could want events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        !self.integrations.is_empty() && kind.is_webhook()
    }

    /// The webhooks of one stored timeline event of session `s`, which is bound to the
    /// integrations `linked`: one per integration that subscribes to it.
    #[allow(clippy::too_many_arguments)]
    pub fn deliveries(
        &self,
        s: &session::Model,
        linked: &[String],
        kind: EventKind,
        event_id: i64,
        participant_id: Option<&str>,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Vec<NewDelivery> {
        if !self.wants(kind) {
            return Vec::new();
        }
        let targets: Vec<&integration::Model> = self
            .integrations
            .iter()
            .filter(|i| i.scope == "all" || linked.contains(&i.id))
            .filter(|i| i.events_url.is_some() && subscribes(i, kind))
            .collect();
        if targets.is_empty() {
            return Vec::new();
        }
        let body = build(s, kind, event_id, participant_id, data, now);
        let body = serde_json::to_string(&body).unwrap_or_default();
        targets
            .into_iter()
            .map(|i| NewDelivery {
                kind: Kind::Event,
                event_type: Some(kind.as_str().to_owned()),
                session_id: Some(s.id.clone()),
                integration_id: Some(i.id.clone()),
                ordering_key: ordering_key(&s.id, &i.id),
                payload: json!({ "url": i.events_url, "body": body }),
            })
            .collect()
    }
}

/// The private note an event becomes: the customer joined, the call ended.
fn note_for(kind: EventKind, data: &serde_json::Value) -> Option<Note> {
    match kind {
        EventKind::ParticipantJoined
            if data.get("role").and_then(|r| r.as_str()) == Some("customer") =>
        {
            Some(Note::CustomerJoined)
        }
        EventKind::SessionEnded => Some(Note::CallEnded),
        _ => None,
    }
}

fn subscribes(i: &integration::Model, kind: EventKind) -> bool {
    let kind = kind.as_str();
    i.events.as_array().is_some_and(|a| {
        a.iter()
            .any(|e| e.as_str() == Some(kind) || e.as_str() == Some("*"))
    })
}

/// Builds the JSON body (same shape as `http::webhooks::WebhookEvent`, documented in the OpenAPI document) from a timeline event.
pub fn build(
    s: &session::Model,
    kind: EventKind,
    event_id: i64,
    participant_id: Option<&str>,
    data: &serde_json::Value,
    at: DateTime<Utc>,
) -> serde_json::Value {
    let mut d = json!({
        "session_id": s.id,
        "event_id": event_id,
        "conversation": {"platform": s.conversation_platform, "id": s.conversation_id},
    });
    let obj = d.as_object_mut().expect("object literal");
    if let Some(p) = participant_id {
        obj.insert("participant_id".into(), json!(p));
    }
    let copy = |obj: &mut serde_json::Map<String, serde_json::Value>, key: &str| {
        if let Some(v) = data.get(key).filter(|v| !v.is_null()) {
            obj.insert(key.into(), v.clone());
        }
    };
    match kind {
        EventKind::SessionCreated => copy(obj, "agent"),
        EventKind::SessionEnded => {
            copy(obj, "reason");
            copy(obj, "duration_secs");
        }
        EventKind::SessionLinkPosted => {
            copy(obj, "integration_id");
            copy(obj, "delivery_id");
            copy(obj, "platform_message_id");
        }
        EventKind::DeliveryFailed => {
            copy(obj, "integration_id");
            copy(obj, "delivery_id");
            copy(obj, "reason");
        }
        EventKind::SessionTransferStarted | EventKind::SessionTransferred => {
            copy(obj, "agent");
            copy(obj, "from_agent");
        }
        EventKind::RecordingReady
        | EventKind::RecordingFailed
        | EventKind::RecordingDeleted
        | EventKind::RecordingPlayed
        | EventKind::RecordingDownloaded => {
            for key in [
                "recording_id",
                "started_at_ms",
                "duration_ms",
                "bytes",
                "sha256",
                "codecs",
                "reason",
                "viewer",
            ] {
                copy(obj, key);
            }
        }
        EventKind::SessionErased | EventKind::RetentionPurged => copy(obj, "purged"),
        _ => {
            copy(obj, "role");
            copy(obj, "display_name");
            copy(obj, "mode");
            copy(obj, "reason");
        }
    }
    json!({
        "type": kind.as_str(),
        "timestamp": at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": d,
    })
}

/// Deliveries of one session to one integration go out in order.
fn ordering_key(session_id: &str, integration_id: &str) -> String {
    format!("{session_id}/{integration_id}")
}

/// A private note into the conversation (for the platform's agents only), rendered at
/// delivery time: payload `note` of a `post_message` delivery. Without `note`, a
/// `post_message` is the customer's link, posted publicly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// The agent's own join link.
    AgentLink,
    /// The customer joined the call.
    CustomerJoined,
    /// The call ended: its duration and the report link.
    CallEnded,
}

impl Note {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AgentLink => "agent_link",
            Self::CustomerJoined => "customer_joined",
            Self::CallEnded => "call_ended",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        [Self::AgentLink, Self::CustomerJoined, Self::CallEnded]
            .into_iter()
            .find(|n| n.as_str() == s)
    }
}

/// A private note as a delivery (in order after the session's other posts there).
pub fn note_delivery(
    session_id: &str,
    conversation_id: &str,
    integration_id: &str,
    note: Note,
) -> NewDelivery {
    NewDelivery {
        kind: Kind::PostMessage,
        event_type: None,
        session_id: Some(session_id.to_owned()),
        integration_id: Some(integration_id.to_owned()),
        ordering_key: ordering_key(session_id, integration_id),
        payload: json!({ "conversation_id": conversation_id, "note": note.as_str() }),
    }
}

/// Enqueues a private note unless this session already has one of this kind for this
/// integration; true when it enqueued.
pub async fn enqueue_note_once<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
    conversation_id: &str,
    integration_id: &str,
    note: Note,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let existing = outbox::delivery::Entity::find()
        .filter(outbox::delivery::Column::SessionId.eq(session_id.to_owned()))
        .filter(outbox::delivery::Column::IntegrationId.eq(integration_id.to_owned()))
        .filter(outbox::delivery::Column::Kind.eq(Kind::PostMessage.as_str()))
        .all(c)
        .await?;
    if existing
        .iter()
        .any(|d| d.payload.get("note").and_then(|n| n.as_str()) == Some(note.as_str()))
    {
        return Ok(false);
    }
    outbox::enqueue(
        c,
        note_delivery(session_id, conversation_id, integration_id, note),
        now,
    )
    .await?;
    Ok(true)
}
