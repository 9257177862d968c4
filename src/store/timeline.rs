//! The timeline in the database: the one funnel every event passes through. Appending
//! runs the fan-out to integrations ([`super::fanout`]) in the same transaction, so the
//! webhooks of these events commit (or roll back) with them.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};

use crate::domain::EventKind;
use crate::store::entities::event;

/// A timeline event to store.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub session_id: String,
    pub kind: EventKind,
    pub participant_id: Option<String>,
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

/// Appends one timeline event (see [`append_events`]).
pub async fn append_event<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
    kind: EventKind,
    participant_id: Option<&str>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let ids = append_events(
        c,
        vec![NewEvent {
            session_id: session_id.to_owned(),
            kind,
            participant_id: participant_id.map(str::to_owned),
            data,
            at: now,
        }],
    )
    .await?;
    ids.first()
        .copied()
        .ok_or_else(|| DbErr::Custom("the event insert returned no id".into()))
}

/// Appends timeline events in one statement and returns their ids in order. Everything
/// that happens to a session passes through here (or, for new sessions, through
/// [`insert_planned`], which shares [`after_events`]): the outbox hook runs in the same
/// transaction, so the webhooks of these events commit (or roll back) with them.
pub async fn append_events<C: ConnectionTrait>(
    c: &C,
    events: Vec<NewEvent>,
) -> Result<Vec<i64>, DbErr> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let rows = events.iter().map(|e| event::ActiveModel {
        id: sea_orm::NotSet,
        session_id: Set(e.session_id.clone()),
        kind: Set(e.kind.as_str().to_owned()),
        at: Set(e.at),
        participant_id: Set(e.participant_id.clone()),
        data: Set(e.data.clone()),
    });
    // Ids grow in insertion order (AUTOINCREMENT / identity); RETURNING's row order is
    // not guaranteed, so sort.
    let mut ids = event::Entity::insert_many(rows)
        .exec_with_returning_keys(c)
        .await?;
    ids.sort_unstable();
    if ids.len() != events.len() {
        return Err(DbErr::Custom(format!(
            "{} events inserted, {} ids returned",
            events.len(),
            ids.len()
        )));
    }
    let hook = crate::store::fanout::EventHook::load(c, &kinds_of(&events)).await?;
    after_events(c, &hook, &events, &ids).await?;
    Ok(ids)
}

pub(super) fn kinds_of(events: &[NewEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind).collect()
}

/// The outbox hook for stored events (`ids[i]` is the id of `events[i]`).
pub(super) async fn after_events<C: ConnectionTrait>(
    c: &C,
    hook: &crate::store::fanout::EventHook,
    events: &[NewEvent],
    ids: &[i64],
) -> Result<(), DbErr> {
    if hook.is_idle() {
        return Ok(());
    }
    for (e, id) in events.iter().zip(ids) {
        hook.on_event(
            c,
            &e.session_id,
            e.kind,
            *id,
            e.participant_id.as_deref(),
            &e.data,
            e.at,
        )
        .await?;
    }
    Ok(())
}

pub async fn events(
    db: &DatabaseConnection,
    session_id: &str,
    after: Option<i64>,
    limit: u64,
) -> Result<Vec<event::Model>, DbErr> {
    let mut q = event::Entity::find().filter(event::Column::SessionId.eq(session_id.to_owned()));
    if let Some(a) = after {
        q = q.filter(event::Column::Id.gt(a));
    }
    q.order_by_asc(event::Column::Id).limit(limit).all(db).await
}
