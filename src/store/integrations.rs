//! Chat-platform integrations as stored: finding one, binding sessions to them, and the
//! event types they may subscribe to. What each event becomes is the timeline's fan-out (`store::fanout`).

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter,
};

use crate::domain::EventKind;

pub use crate::store::entities::{integration, session_link};

/// Event types an integration can subscribe to (the webhook `type`).
pub fn event_types() -> impl Iterator<Item = &'static str> {
    EventKind::webhook_kinds().map(EventKind::as_str)
}

/// Whether `kind` names an event type integrations can subscribe to.
pub fn is_event_type(kind: &str) -> bool {
    kind.parse::<EventKind>().is_ok_and(EventKind::is_webhook)
}

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
        link_row(session_id, integration_id, now)
            .into_active_model()
            .insert(c)
            .await?;
    }
    Ok(())
}

/// The row that binds a session to an integration.
pub fn link_row(session_id: &str, integration_id: &str, now: DateTime<Utc>) -> session_link::Model {
    session_link::Model {
        session_id: session_id.to_owned(),
        integration_id: integration_id.to_owned(),
        created_at: now,
    }
}
