//! Storage of the pages' quality reports (table `quality_samples`): one row per report.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::domain::quality::Compact;

pub mod quality_sample {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "quality_samples")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub session_id: String,
        pub participant_id: String,
        pub at: ChronoDateTimeUtc,
        pub loss_permille: i32,
        pub jitter_ms: i32,
        pub rtt_ms: i32,
        pub kbps: i32,
        pub fps: i32,
        pub freezes: i32,
        pub limitation: String,
        pub level: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use quality_sample::Model as QualitySample;

/// A report to store.
#[derive(Debug, Clone)]
pub struct NewSample {
    pub session_id: String,
    pub participant_id: String,
    pub at: DateTime<Utc>,
    pub sample: Compact,
}

/// Stores reports in one transaction.
pub async fn insert(db: &DatabaseConnection, rows: Vec<NewSample>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let i = |x: u32| i32::try_from(x).unwrap_or(i32::MAX);
    let rows = rows.into_iter().map(|r| quality_sample::ActiveModel {
        id: sea_orm::NotSet,
        session_id: Set(r.session_id),
        participant_id: Set(r.participant_id),
        at: Set(r.at),
        loss_permille: Set(i(r.sample.loss_permille)),
        jitter_ms: Set(i(r.sample.jitter_ms)),
        rtt_ms: Set(i(r.sample.rtt_ms)),
        kbps: Set(i(r.sample.kbps)),
        fps: Set(i(r.sample.fps)),
        freezes: Set(i(r.sample.freezes)),
        limitation: Set(r.sample.limitation.as_str().to_owned()),
        level: Set(r.sample.level.as_str().to_owned()),
    });
    let txn = crate::store::begin_write(db).await?;
    quality_sample::Entity::insert_many(rows)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await
}

/// A session's reports, oldest first.
pub async fn list(db: &DatabaseConnection, session_id: &str) -> Result<Vec<QualitySample>, DbErr> {
    quality_sample::Entity::find()
        .filter(quality_sample::Column::SessionId.eq(session_id))
        .order_by_asc(quality_sample::Column::At)
        .order_by_asc(quality_sample::Column::Id)
        .all(db)
        .await
}
