//! Recordings' rows (table `recordings`; the bytes are encrypted files, see
//! `recording::files`) and each session's wrapped recording key (table `session_keys`).
//! Status changes that matter to integrations commit with their timeline event.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set,
};

use crate::domain::EventKind;

pub mod recording {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "recordings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub session_id: String,
        pub participant_id: String,
        /// `writing`, `ready`, `failed`, `interrupted` or `deleted`.
        pub status: String,
        /// Wall-clock time of the file's time zero, ms since the Unix epoch.
        pub started_at_ms: i64,
        pub ended_at: Option<ChronoDateTimeUtc>,
        pub duration_ms: Option<i64>,
        /// Plaintext bytes (the container file as the recorder wrote it).
        pub bytes: i64,
        /// Hex SHA-256 of the plaintext, once finished.
        pub sha256: Option<String>,
        /// Comma-separated codec names (`vp8,opus`).
        pub codecs: String,
        pub content_type: String,
        /// The sealed file, relative to `recording.dir`.
        pub rel_path: String,
        /// Why it ended early (`failed`).
        pub failure: Option<String>,
        pub created_at: ChronoDateTimeUtc,
        pub deleted_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod session_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "session_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: String,
        /// The session's recording key, wrapped by the master key.
        pub wrapped: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use recording::Model as Recording;

pub const WRITING: &str = "writing";
pub const READY: &str = "ready";
pub const FAILED: &str = "failed";
pub const INTERRUPTED: &str = "interrupted";
pub const DELETED: &str = "deleted";

/// Stores the row of a recording that begins (status `writing`).
pub async fn insert_writing(db: &DatabaseConnection, r: Recording) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    recording::Entity::insert(recording::ActiveModel {
        id: Set(r.id),
        session_id: Set(r.session_id),
        participant_id: Set(r.participant_id),
        status: Set(WRITING.to_owned()),
        started_at_ms: Set(r.started_at_ms),
        ended_at: Set(None),
        duration_ms: Set(None),
        bytes: Set(0),
        sha256: Set(None),
        codecs: Set(String::new()),
        content_type: Set(r.content_type),
        rel_path: Set(r.rel_path),
        failure: Set(None),
        created_at: Set(r.created_at),
        deleted_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await
}

/// How a recording ended.
#[derive(Debug, Clone)]
pub struct Finished {
    pub bytes: i64,
    pub sha256: String,
    pub duration_ms: i64,
    pub codecs: Vec<String>,
    pub failure: Option<String>,
    pub at: DateTime<Utc>,
}

/// Marks a `writing` recording `ready` (or `failed`) and appends `recording.ready` (or
/// `recording.failed`) with its webhooks, in one transaction. `None`: no such recording
/// was being written.
pub async fn finish(
    db: &DatabaseConnection,
    id: &str,
    f: Finished,
) -> Result<Option<Recording>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let Some(row) = recording::Entity::find_by_id(id.to_owned())
        .filter(recording::Column::Status.eq(WRITING))
        .one(&txn)
        .await?
    else {
        return Ok(None);
    };
    let (status, kind) = match f.failure {
        None => (READY, EventKind::RecordingReady),
        Some(_) => (FAILED, EventKind::RecordingFailed),
    };
    let mut m: recording::ActiveModel = row.into();
    m.status = Set(status.to_owned());
    m.ended_at = Set(Some(f.at));
    m.duration_ms = Set(Some(f.duration_ms));
    m.bytes = Set(f.bytes);
    m.sha256 = Set(Some(f.sha256.clone()));
    m.codecs = Set(f.codecs.join(","));
    m.failure = Set(f.failure.clone());
    let row = m.update(&txn).await?;
    let mut data = event_data(&row);
    if let Some(reason) = &f.failure {
        data["reason"] = serde_json::Value::from(reason.as_str());
    }
    crate::store::timeline::append_event(
        &txn,
        &row.session_id,
        kind,
        Some(&row.participant_id),
        data,
        f.at,
    )
    .await?;
    txn.commit().await?;
    Ok(Some(row))
}

/// What a recording event carries (no personal data: ids, times, sizes).
pub fn event_data(r: &Recording) -> serde_json::Value {
    serde_json::json!({
        "recording_id": r.id,
        "started_at_ms": r.started_at_ms,
        "duration_ms": r.duration_ms,
        "bytes": r.bytes,
        "sha256": r.sha256,
        "codecs": r.codecs.split(',').filter(|c| !c.is_empty()).collect::<Vec<_>>(),
    })
}

/// Rows left `writing` by a previous run become `interrupted` (their files end at the last
/// record written). Returns them.
pub async fn interrupt_writing(db: &DatabaseConnection) -> Result<Vec<Recording>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let rows = recording::Entity::find()
        .filter(recording::Column::Status.eq(WRITING))
        .all(&txn)
        .await?;
    recording::Entity::update_many()
        .col_expr(
            recording::Column::Status,
            sea_orm::sea_query::Expr::value(INTERRUPTED),
        )
        .filter(recording::Column::Status.eq(WRITING))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}

/// Records the size and hash of an interrupted recording's readable part.
pub async fn set_interrupted_size(
    db: &DatabaseConnection,
    id: &str,
    bytes: i64,
    sha256: &str,
) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    recording::Entity::update_many()
        .col_expr(
            recording::Column::Bytes,
            sea_orm::sea_query::Expr::value(bytes),
        )
        .col_expr(
            recording::Column::Sha256,
            sea_orm::sea_query::Expr::value(sha256),
        )
        .filter(recording::Column::Id.eq(id))
        .filter(recording::Column::Status.eq(INTERRUPTED))
        .exec(&txn)
        .await?;
    txn.commit().await
}

/// A recording that is not deleted.
pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Option<Recording>, DbErr> {
    recording::Entity::find_by_id(id.to_owned())
        .filter(recording::Column::Status.ne(DELETED))
        .one(db)
        .await
}

/// A session's recordings that are not deleted, in the order they began.
pub async fn list(db: &DatabaseConnection, session_id: &str) -> Result<Vec<Recording>, DbErr> {
    recording::Entity::find()
        .filter(recording::Column::SessionId.eq(session_id))
        .filter(recording::Column::Status.ne(DELETED))
        .order_by_asc(recording::Column::StartedAtMs)
        .order_by_asc(recording::Column::Id)
        .all(db)
        .await
}

/// Marks a recording deleted (its file is already gone) and appends `recording.deleted`
/// with `data`, in one transaction. False when it was not there (or deleted already).
pub async fn mark_deleted<C: ConnectionTrait>(
    c: &C,
    r: &Recording,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let n = recording::Entity::update_many()
        .col_expr(
            recording::Column::Status,
            sea_orm::sea_query::Expr::value(DELETED),
        )
        .col_expr(
            recording::Column::DeletedAt,
            sea_orm::sea_query::Expr::value(now),
        )
        .filter(recording::Column::Id.eq(r.id.as_str()))
        .filter(recording::Column::Status.ne(DELETED))
        .exec(c)
        .await?
        .rows_affected;
    if n == 0 {
        return Ok(false);
    }
    crate::store::timeline::append_event(
        c,
        &r.session_id,
        EventKind::RecordingDeleted,
        None,
        data,
        now,
    )
    .await?;
    Ok(true)
}

/// Appends an audit event (`recording.played` / `recording.downloaded`).
pub async fn audit(
    db: &DatabaseConnection,
    r: &Recording,
    kind: EventKind,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    crate::store::timeline::append_event(&txn, &r.session_id, kind, None, data, now).await?;
    txn.commit().await
}

/// The session's wrapped recording key, if it has one.
pub async fn wrapped_key(
    db: &DatabaseConnection,
    session_id: &str,
) -> Result<Option<Vec<u8>>, DbErr> {
    Ok(session_key::Entity::find_by_id(session_id.to_owned())
        .one(db)
        .await?
        .map(|k| k.wrapped))
}

/// Stores `wrapped` as the session's key unless it has one already; returns the key that
/// is stored (two recordings opening at once agree on one key).
pub async fn ensure_key(
    db: &DatabaseConnection,
    session_id: &str,
    wrapped: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    if let Some(k) = session_key::Entity::find_by_id(session_id.to_owned())
        .one(&txn)
        .await?
    {
        return Ok(k.wrapped);
    }
    let inserted = session_key::Entity::insert(session_key::ActiveModel {
        session_id: Set(session_id.to_owned()),
        wrapped: Set(wrapped.clone()),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await;
    match inserted {
        Ok(_) => {
            txn.commit().await?;
            Ok(wrapped)
        }
        // PostgreSQL: another transaction stored the session's key first; use it.
        Err(e) => {
            let _ = txn.rollback().await;
            wrapped_key(db, session_id).await?.ok_or(e)
        }
    }
}

/// Destroys the session's recording key (crypto-shredding its recordings).
pub async fn destroy_key<C: ConnectionTrait>(c: &C, session_id: &str) -> Result<bool, DbErr> {
    Ok(session_key::Entity::delete_by_id(session_id.to_owned())
        .exec(c)
        .await?
        .rows_affected
        > 0)
}
