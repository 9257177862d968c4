//! Storage of the media engine's quality samples (table `server_quality_samples`): one row
//! per routed participant, direction and interval.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::domain::server_quality::{Direction, Sample};

pub mod server_quality_sample {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "server_quality_samples")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub session_id: String,
        pub participant_id: String,
        pub direction: String,
        pub at: ChronoDateTimeUtc,
        pub interval_ms: i32,
        pub packets: i32,
        pub lost: i32,
        pub loss_permille: i32,
        pub jitter_ms: i32,
        pub rtt_ms: Option<i32>,
        pub kbps: i32,
        pub freezes: i32,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

use server_quality_sample as row;

/// A sample to store.
#[derive(Debug, Clone)]
pub struct NewSample {
    pub session_id: String,
    pub participant_id: String,
    pub at: DateTime<Utc>,
    pub sample: Sample,
}

/// A stored sample, as the report page reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub participant_id: String,
    pub at: DateTime<Utc>,
    pub sample: Sample,
}

fn i(x: u32) -> i32 {
    i32::try_from(x).unwrap_or(i32::MAX)
}

fn u(x: i32) -> u32 {
    u32::try_from(x).unwrap_or(0)
}

/// Stores samples in one transaction.
pub async fn insert(db: &DatabaseConnection, rows: Vec<NewSample>) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let rows = rows.into_iter().map(|r| row::ActiveModel {
        id: sea_orm::NotSet,
        session_id: Set(r.session_id),
        participant_id: Set(r.participant_id),
        direction: Set(r.sample.direction.as_str().to_owned()),
        at: Set(r.at),
        interval_ms: Set(i(r.sample.interval_ms)),
        packets: Set(i(r.sample.packets)),
        lost: Set(i(r.sample.lost)),
        loss_permille: Set(i(r.sample.loss_permille)),
        jitter_ms: Set(i(r.sample.jitter_ms)),
        rtt_ms: Set(r.sample.rtt_ms.map(i)),
        kbps: Set(i(r.sample.kbps)),
        freezes: Set(i(r.sample.freezes)),
    });
    let txn = crate::store::begin_write(db).await?;
    row::Entity::insert_many(rows)
        .exec_without_returning(&txn)
        .await?;
    txn.commit().await
}

/// A session's samples, oldest first (rows with an unknown direction are skipped).
pub async fn list(db: &DatabaseConnection, session_id: &str) -> Result<Vec<Stored>, DbErr> {
    let rows = row::Entity::find()
        .filter(row::Column::SessionId.eq(session_id))
        .order_by_asc(row::Column::At)
        .order_by_asc(row::Column::Id)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Stored {
                sample: Sample {
                    direction: Direction::parse(&r.direction)?,
                    interval_ms: u(r.interval_ms),
                    packets: u(r.packets),
                    lost: u(r.lost),
                    loss_permille: u(r.loss_permille),
                    jitter_ms: u(r.jitter_ms),
                    rtt_ms: r.rtt_ms.map(u),
                    kbps: u(r.kbps),
                    freezes: u(r.freezes),
                },
                participant_id: r.participant_id,
                at: r.at,
            })
        })
        .collect())
}
