//! Chat platforms: registration, the event hook that turns timeline events into signed
//! webhooks (through the outbox), posting the customer's link into a conversation, and
//! the inbound "start video" webhook.

pub mod adapters;
pub mod api;
pub mod delivery;
pub mod events;
pub mod message;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set,
};
use serde_json::json;

pub use crate::outbox::entity::{integration, session_link};
use crate::outbox::{self, Kind, NewDelivery};
use crate::sessions::entity::session;

/// Event types an integration can subscribe to (the webhook `type`).
pub const EVENT_TYPES: &[&str] = &[
    "session.created",
    "session.link_posted",
    "participant.joined",
    "participant.left",
    "participant.reconnecting",
    "session.ended",
];

/// Finds an integration by id or by name.
pub async fn find<C: ConnectionTrait>(
    c: &C,
    id_or_name: &str,
) -> Result<Option<integration::Model>, DbErr> {
    if let Some(i) = integration::Entity::find_by_id(id_or_name.to_owned())
        .one(c)
        .await?
    {
        return Ok(Some(i));
    }
    integration::Entity::find()
        .filter(integration::Column::Name.eq(id_or_name.to_owned()))
        .one(c)
        .await
}

fn ordering_key(session_id: &str, integration_id: &str) -> String {
    format!("{session_id}/{integration_id}")
}

/// Binds a session to an integration (its events go there), inside the caller's
/// transaction. Binding twice is harmless.
pub async fn link_session<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
    integration_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let exists =
        session_link::Entity::find_by_id((session_id.to_owned(), integration_id.to_owned()))
            .one(c)
            .await?
            .is_some();
    if !exists {
        session_link::ActiveModel {
            session_id: Set(session_id.to_owned()),
            integration_id: Set(integration_id.to_owned()),
            created_at: Set(now),
        }
        .insert(c)
        .await?;
    }
    Ok(())
}

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
        NewDelivery {
            kind: Kind::PostMessage,
            event_type: None,
            session_id: Some(session_id.to_owned()),
            integration_id: Some(integration_id.to_owned()),
            ordering_key: ordering_key(session_id, integration_id),
            payload: json!({ "conversation_id": conversation_id }),
        },
        now,
    )
    .await
}

/// The outbox hook of the timeline: loaded once per write transaction by
/// `sessions::repo::append_events`, it enqueues one signed webhook per subscribed
/// integration for every event, inside that transaction.
pub struct EventHook {
    integrations: Vec<integration::Model>,
}

impl EventHook {
    /// Loads the integrations when any of `kinds` is a webhook event type; otherwise (and
    /// when no integration exists) the hook does nothing and costs no query.
    pub async fn load<C: ConnectionTrait>(c: &C, kinds: &[&str]) -> Result<Self, DbErr> {
        let integrations = if kinds.iter().any(|k| EVENT_TYPES.contains(k)) {
            integration::Entity::find().all(c).await?
        } else {
            Vec::new()
        };
        Ok(Self { integrations })
    }

    /// The query [`EventHook::from_rows`] reads (to send along with other statements).
    pub fn select_sql(backend: sea_orm::DbBackend) -> String {
        use sea_orm::QueryTrait;
        integration::Entity::find().build(backend).to_string()
    }

    /// The hook from the rows of [`EventHook::select_sql`].
    pub fn from_rows(rows: &[sea_orm::QueryResult]) -> Result<Self, DbErr> {
        use sea_orm::FromQueryResult;
        let integrations = rows
            .iter()
            .map(|r| integration::Model::from_query_result(r, ""))
            .collect::<Result<_, _>>()?;
        Ok(Self { integrations })
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
        kind: &str,
        event_id: i64,
        participant_id: Option<&str>,
        data: &serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        if self.integrations.is_empty() || !EVENT_TYPES.contains(&kind) {
            return Ok(());
        }
        let linked: Vec<String> = session_link::Entity::find()
            .filter(session_link::Column::SessionId.eq(session_id.to_owned()))
            .all(c)
            .await?
            .into_iter()
            .map(|l| l.integration_id)
            .collect();
        let targets: Vec<&integration::Model> = self
            .integrations
            .iter()
            .filter(|i| i.scope == "all" || linked.contains(&i.id))
            .filter(|i| i.events_url.is_some() && subscribes(i, kind))
            .collect();
        if targets.is_empty() {
            return Ok(());
        }
        let Some(s) = session::Entity::find_by_id(session_id.to_owned())
            .one(c)
            .await?
        else {
            return Ok(());
        };
        let body = events::build(&s, kind, event_id, participant_id, data, now);
        let body = serde_json::to_string(&body).unwrap_or_default();
        for i in targets {
            outbox::enqueue(
                c,
                NewDelivery {
                    kind: Kind::Event,
                    event_type: Some(kind.to_owned()),
                    session_id: Some(session_id.to_owned()),
                    integration_id: Some(i.id.clone()),
                    ordering_key: ordering_key(session_id, &i.id),
                    payload: json!({ "url": i.events_url, "body": body }),
                },
                now,
            )
            .await?;
        }
        Ok(())
    }
}

fn subscribes(i: &integration::Model, kind: &str) -> bool {
    i.events.as_array().is_some_and(|a| {
        a.iter()
            .any(|e| e.as_str() == Some(kind) || e.as_str() == Some("*"))
    })
}
