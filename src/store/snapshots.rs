//! Storage of photos taken during calls (table `snapshots`): bytes and metadata in one
//! row, written in the same transaction as their `snapshot.taken` event.
//!
//! Why in the database and not in files under `data_dir`: a row commits atomically with
//! its event and webhook, is erased with its session (foreign-key cascade), is in every
//! backup of the database, and is reachable from every node of a deployment that shares
//! a PostgreSQL database (files would live on one node). The cost, a larger database, is
//! bounded by `snapshots.max_bytes` and `snapshots.max_per_session`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::domain::EventKind;

pub mod snapshot {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "snapshots")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub session_id: String,
        /// Who uploaded it.
        pub participant_id: String,
        /// `photo` (taken on the customer's page) or `frame` (captured from a video).
        pub kind: String,
        pub content_type: String,
        pub size: i64,
        /// Hex SHA-256 of `data`, as stored (after metadata removal).
        pub sha256: String,
        pub data: Vec<u8>,
        pub created_at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// A snapshot without its bytes.
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct SnapshotMeta {
    pub id: String,
    pub session_id: String,
    pub participant_id: String,
    pub kind: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

/// Why a snapshot was not stored.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the session already holds {0} photos")]
    Limit(u32),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Stores a snapshot and its `snapshot.taken` event (with its webhooks) in one
/// transaction, unless the session already holds `max` snapshots.
pub async fn insert(
    db: &DatabaseConnection,
    meta: SnapshotMeta,
    data: Vec<u8>,
    max: u32,
) -> Result<(), StoreError> {
    let txn = crate::store::begin_write(db).await?;
    let n = snapshot::Entity::find()
        .filter(snapshot::Column::SessionId.eq(meta.session_id.as_str()))
        .count(&txn)
        .await?;
    if n >= u64::from(max) {
        return Err(StoreError::Limit(max));
    }
    snapshot::Entity::insert(snapshot::ActiveModel {
        id: Set(meta.id.clone()),
        session_id: Set(meta.session_id.clone()),
        participant_id: Set(meta.participant_id.clone()),
        kind: Set(meta.kind.clone()),
        content_type: Set(meta.content_type.clone()),
        size: Set(meta.size),
        sha256: Set(meta.sha256.clone()),
        data: Set(data),
        created_at: Set(meta.created_at),
    })
    .exec_without_returning(&txn)
    .await?;
    crate::store::timeline::append_event(
        &txn,
        &meta.session_id,
        EventKind::SnapshotTaken,
        Some(&meta.participant_id),
        serde_json::json!({
            "snapshot_id": meta.id,
            "kind": meta.kind,
            "content_type": meta.content_type,
            "size": meta.size,
            "sha256": meta.sha256,
        }),
        meta.created_at,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// A session's snapshots, oldest first, without their bytes.
pub async fn list(db: &DatabaseConnection, session_id: &str) -> Result<Vec<SnapshotMeta>, DbErr> {
    use snapshot::Column as C;
    snapshot::Entity::find()
        .select_only()
        .columns([
            C::Id,
            C::SessionId,
            C::ParticipantId,
            C::Kind,
            C::ContentType,
            C::Size,
            C::Sha256,
            C::CreatedAt,
        ])
        .filter(C::SessionId.eq(session_id))
        .order_by_asc(C::Id)
        .into_model::<SnapshotMeta>()
        .all(db)
        .await
}

/// One snapshot with its bytes.
pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Option<snapshot::Model>, DbErr> {
    snapshot::Entity::find_by_id(id.to_owned()).one(db).await
}
