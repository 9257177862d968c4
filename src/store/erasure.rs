//! The SQL of retention and erasure: what expired (skipping sessions under a legal hold),
//! deleting it, and scrubbing a session of personal data while keeping a trace that it
//! happened.

use chrono::{DateTime, Utc};
use sea_orm::ExprTrait;
use sea_orm::sea_query::{Expr, Func};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QuerySelect, Set,
};

use crate::domain::EventKind;
use crate::store::chat::chat_message;
use crate::store::entities::{delivery, event, participant, session, session_link};
use crate::store::feedback::rating;
use crate::store::holds;
use crate::store::recordings::{self, Recording, recording};
use crate::store::snapshots::snapshot;

/// Most items one retention round handles per kind (the next round takes the rest).
pub const BATCH: u64 = 200;

/// Recordings that began before `cutoff` (not deleted, not being written) of sessions
/// not under hold.
pub async fn expired_recordings(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
) -> Result<Vec<Recording>, DbErr> {
    recording::Entity::find()
        .filter(recording::Column::StartedAtMs.lt(cutoff.timestamp_millis()))
        .filter(recording::Column::Status.is_not_in([recordings::DELETED, recordings::WRITING]))
        .filter(recording::Column::SessionId.not_in_subquery(holds::held_ids()))
        .limit(BATCH)
        .all(db)
        .await
}

/// Deletes chat messages and photos older than `cutoff` of sessions not under hold, one
/// session per transaction with a `retention.purged` event. Returns the sessions touched.
pub async fn purge_chat_and_snapshots(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, DbErr> {
    let mut ids: Vec<String> = chat_message::Entity::find()
        .select_only()
        .column(chat_message::Column::SessionId)
        .distinct()
        .filter(chat_message::Column::At.lt(cutoff))
        .filter(chat_message::Column::SessionId.not_in_subquery(holds::held_ids()))
        .limit(BATCH)
        .into_tuple()
        .all(db)
        .await?;
    let snaps: Vec<String> = snapshot::Entity::find()
        .select_only()
        .column(snapshot::Column::SessionId)
        .distinct()
        .filter(snapshot::Column::CreatedAt.lt(cutoff))
        .filter(snapshot::Column::SessionId.not_in_subquery(holds::held_ids()))
        .limit(BATCH)
        .into_tuple()
        .all(db)
        .await?;
    ids.extend(snaps);
    ids.sort();
    ids.dedup();
    for id in &ids {
        let txn = crate::store::begin_write(db).await?;
        if holds::is_held(&txn, id).await? {
            continue;
        }
        let chat = chat_message::Entity::delete_many()
            .filter(chat_message::Column::SessionId.eq(id.as_str()))
            .filter(chat_message::Column::At.lt(cutoff))
            .exec(&txn)
            .await?
            .rows_affected;
        let photos = snapshot::Entity::delete_many()
            .filter(snapshot::Column::SessionId.eq(id.as_str()))
            .filter(snapshot::Column::CreatedAt.lt(cutoff))
            .exec(&txn)
            .await?
            .rows_affected;
        crate::store::timeline::append_event(
            &txn,
            id,
            EventKind::RetentionPurged,
            None,
            serde_json::json!({"purged": {"chat_messages": chat, "snapshots": photos}}),
            now,
        )
        .await?;
        txn.commit().await?;
    }
    Ok(ids.len())
}

/// Ended sessions created before `cutoff`, not under hold.
pub async fn expired_sessions(
    db: &DatabaseConnection,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::CreatedAt.lt(cutoff))
        .filter(
            session::Column::EndedAt
                .is_not_null()
                .or(session::Column::ExpiresAt.lt(now)),
        )
        .filter(session::Column::Id.not_in_subquery(holds::held_ids()))
        .limit(BATCH)
        .into_tuple()
        .all(db)
        .await
}

/// Deletes a session and everything of it (the tables that reference it cascade; the
/// outbox and integration links are removed here). False when it is held or gone.
pub async fn delete_session(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    if holds::is_held(&txn, id).await? {
        return Ok(false);
    }
    delivery::Entity::delete_many()
        .filter(delivery::Column::SessionId.eq(id))
        .exec(&txn)
        .await?;
    session_link::Entity::delete_many()
        .filter(session_link::Column::SessionId.eq(id))
        .exec(&txn)
        .await?;
    let n = session::Entity::delete_by_id(id.to_owned())
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(n > 0)
}

/// Sessions of a customer, by e-mail (the session's customer or any participant's
/// address, compared without case).
pub async fn sessions_by_email(db: &DatabaseConnection, email: &str) -> Result<Vec<String>, DbErr> {
    let email = email.trim().to_lowercase();
    let mut ids: Vec<String> = session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(
            Expr::expr(Func::lower(Expr::col(session::Column::CustomerEmail))).eq(email.clone()),
        )
        .into_tuple()
        .all(db)
        .await?;
    let more: Vec<String> = participant::Entity::find()
        .select_only()
        .column(participant::Column::SessionId)
        .filter(Expr::expr(Func::lower(Expr::col(participant::Column::Email))).eq(email))
        .into_tuple()
        .all(db)
        .await?;
    ids.extend(more);
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Sessions of a conversation (any platform).
pub async fn sessions_by_conversation(
    db: &DatabaseConnection,
    conversation_id: &str,
) -> Result<Vec<String>, DbErr> {
    session::Entity::find()
        .select_only()
        .column(session::Column::Id)
        .filter(session::Column::ConversationId.eq(conversation_id))
        .into_tuple()
        .all(db)
        .await
}

/// Keys of timeline data that never hold personal data (everything else is dropped from
/// the events of an erased session).
const NEUTRAL_KEYS: [&str; 14] = [
    "role",
    "mode",
    "from_status",
    "duration_secs",
    "recording_id",
    "started_at_ms",
    "duration_ms",
    "bytes",
    "sha256",
    "codecs",
    "snapshot_id",
    "kind",
    "content_type",
    "size",
];

/// What [`erase_session`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Erased {
    pub participants: u64,
    pub chat_messages: u64,
    pub snapshots: u64,
    pub recordings: u64,
    pub ratings: u64,
    pub events_scrubbed: u64,
    pub key_destroyed: bool,
}

/// Why a session could not be erased.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error("the session is under a legal hold")]
    Held,
    #[error("no such session")]
    NotFound,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Erases a session's personal data in one transaction: names, addresses and metadata
/// scrubbed, chat, photos and ratings deleted, recordings marked deleted and their key
/// destroyed, timeline data reduced to neutral keys, the outbox's copies removed; then
/// `session.erased` (with counts only). Returns the recordings whose files to remove.
pub async fn erase_session(
    db: &DatabaseConnection,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(Erased, Vec<Recording>), EraseError> {
    let txn = crate::store::begin_write(db).await?;
    if holds::is_held(&txn, id).await? {
        return Err(EraseError::Held);
    }
    let s = session::Entity::find_by_id(id.to_owned())
        .one(&txn)
        .await?
        .ok_or(EraseError::NotFound)?;
    let mut out = Erased::default();
    let mut m: session::ActiveModel = s.into();
    m.agent_name = Set("erased".to_owned());
    m.customer_name = Set(None);
    m.customer_email = Set(None);
    m.customer_locale = Set(None);
    m.metadata = Set(serde_json::json!({}));
    m.lobby_message = Set(None);
    m.idempotency_key = Set(None);
    m.idempotency_hash = Set(None);
    m.update(&txn).await?;
    out.participants = participant::Entity::update_many()
        .col_expr(participant::Column::DisplayName, Expr::value("erased"))
        .col_expr(
            participant::Column::Email,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            participant::Column::ExternalId,
            Expr::value(Option::<String>::None),
        )
        .filter(participant::Column::SessionId.eq(id))
        .exec(&txn)
        .await?
        .rows_affected;
    out.chat_messages = chat_message::Entity::delete_many()
        .filter(chat_message::Column::SessionId.eq(id))
        .exec(&txn)
        .await?
        .rows_affected;
    out.snapshots = snapshot::Entity::delete_many()
        .filter(snapshot::Column::SessionId.eq(id))
        .exec(&txn)
        .await?
        .rows_affected;
    out.ratings = rating::Entity::delete_many()
        .filter(rating::Column::SessionId.eq(id))
        .exec(&txn)
        .await?
        .rows_affected;
    let recs = recording::Entity::find()
        .filter(recording::Column::SessionId.eq(id))
        .filter(recording::Column::Status.ne(recordings::DELETED))
        .all(&txn)
        .await?;
    out.recordings = recs.len() as u64;
    recording::Entity::update_many()
        .col_expr(recording::Column::Status, Expr::value(recordings::DELETED))
        .col_expr(recording::Column::DeletedAt, Expr::value(now))
        .filter(recording::Column::SessionId.eq(id))
        .filter(recording::Column::Status.ne(recordings::DELETED))
        .exec(&txn)
        .await?;
    out.key_destroyed = recordings::destroy_key(&txn, id).await?;
    for e in event::Entity::find()
        .filter(event::Column::SessionId.eq(id))
        .all(&txn)
        .await?
    {
        let kept: serde_json::Map<String, serde_json::Value> = e
            .data
            .as_object()
            .map(|o| {
                o.iter()
                    .filter(|(k, _)| NEUTRAL_KEYS.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let kept = serde_json::Value::Object(kept);
        if kept != e.data {
            let mut m: event::ActiveModel = e.into();
            m.data = Set(kept);
            m.update(&txn).await?;
            out.events_scrubbed += 1;
        }
    }
    delivery::Entity::delete_many()
        .filter(delivery::Column::SessionId.eq(id))
        .exec(&txn)
        .await?;
    let purged = serde_json::to_value(&out).unwrap_or_default();
    crate::store::timeline::append_event(
        &txn,
        id,
        EventKind::SessionErased,
        None,
        serde_json::json!({ "purged": purged }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok((out, recs))
}

/// Whether a session is still live (not ended, not expired).
pub fn is_live(s: &session::Model, now: DateTime<Utc>) -> bool {
    s.ended_at.is_none() && s.expires_at > now
}

/// Used by retention: does nothing for a session gone meanwhile.
pub async fn session<C: ConnectionTrait>(c: &C, id: &str) -> Result<Option<session::Model>, DbErr> {
    session::Entity::find_by_id(id.to_owned()).one(c).await
}

/// Appends `retention.purged` with `data` (counts only).
pub async fn note_purged(
    db: &DatabaseConnection,
    session_id: &str,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    crate::store::timeline::append_event(
        &txn,
        session_id,
        EventKind::RetentionPurged,
        None,
        data,
        now,
    )
    .await?;
    txn.commit().await
}
