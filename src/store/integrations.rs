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

/// Inbound webhooks already handled, per integration (replay and duplicate protection).
pub mod inbound {
    use chrono::{DateTime, Utc};
    use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};

    use crate::store::entities::inbound as seen;

    /// Whether `webhook_id` was handled for this integration.
    pub async fn seen<C: sea_orm::ConnectionTrait>(
        c: &C,
        integration_id: &str,
        webhook_id: &str,
    ) -> Result<bool, DbErr> {
        Ok(
            seen::Entity::find_by_id((integration_id.to_owned(), webhook_id.to_owned()))
                .one(c)
                .await?
                .is_some(),
        )
    }

    /// Records `webhook_id` as handled; false when another request recorded it first.
    /// Entries older than `keep_after` are dropped on the way.
    pub async fn record<C: sea_orm::ConnectionTrait>(
        c: &C,
        integration_id: &str,
        webhook_id: &str,
        now: DateTime<Utc>,
        keep_after: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let r = seen::ActiveModel {
            integration_id: Set(integration_id.to_owned()),
            webhook_id: Set(webhook_id.to_owned()),
            received_at: Set(now),
        }
        .insert(c)
        .await;
        let inserted = match r {
            Ok(_) => true,
            Err(e)
                if matches!(
                    e.sql_err(),
                    Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                ) =>
            {
                false
            }
            Err(e) => return Err(e),
        };
        seen::Entity::delete_many()
            .filter(seen::Column::ReceivedAt.lt(keep_after))
            .exec(c)
            .await?;
        Ok(inserted)
    }
}

/// Every integration of a kind.
pub async fn of_kind<C: ConnectionTrait>(
    c: &C,
    kind: &str,
) -> Result<Vec<integration::Model>, DbErr> {
    integration::Entity::find()
        .filter(integration::Column::Kind.eq(kind.to_owned()))
        .all(c)
        .await
}

/// Where a Matrix bot's `/sync` left off.
pub mod sync_cursor {
    use chrono::{DateTime, Utc};
    use sea_orm::sea_query::OnConflict;
    use sea_orm::{DbErr, EntityTrait, Set};

    use crate::store::entities::sync_cursor as row;

    pub async fn load<C: sea_orm::ConnectionTrait>(
        c: &C,
        integration_id: &str,
    ) -> Result<Option<String>, DbErr> {
        Ok(row::Entity::find_by_id(integration_id.to_owned())
            .one(c)
            .await?
            .map(|r| r.cursor))
    }

    pub async fn save<C: sea_orm::ConnectionTrait>(
        c: &C,
        integration_id: &str,
        cursor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        row::Entity::insert(row::ActiveModel {
            integration_id: Set(integration_id.to_owned()),
            cursor: Set(cursor.to_owned()),
            updated_at: Set(now),
        })
        .on_conflict(
            OnConflict::column(row::Column::IntegrationId)
                .update_columns([row::Column::Cursor, row::Column::UpdatedAt])
                .to_owned(),
        )
        .exec(c)
        .await
        .map(|_| ())
    }
}

/// Dashboard-app sign-ins, found by the SHA-256 (hex) of the cookie's reference.
pub mod app_sessions {
    use chrono::{DateTime, Utc};
    use sea_orm::{ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, Set};

    use crate::store::entities::app_session as row;
    pub use crate::store::entities::app_session::Model;

    /// Records a sign-in (and drops expired ones).
    pub async fn create<C: sea_orm::ConnectionTrait>(
        c: &C,
        m: Model,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        row::Entity::delete_many()
            .filter(row::Column::ExpiresAt.lt(now))
            .exec(c)
            .await?;
        row::ActiveModel {
            id: Set(m.id),
            integration_id: Set(m.integration_id),
            agent_id: Set(m.agent_id),
            agent_name: Set(m.agent_name),
            created_at: Set(m.created_at),
            expires_at: Set(m.expires_at),
        }
        .insert(c)
        .await
        .map(|_| ())
    }

    /// The live sign-in with this id for this integration.
    pub async fn find<C: sea_orm::ConnectionTrait>(
        c: &C,
        id: &str,
        integration_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<Model>, DbErr> {
        Ok(row::Entity::find_by_id(id.to_owned())
            .one(c)
            .await?
            .filter(|m| m.integration_id == integration_id && m.expires_at > now))
    }
}
