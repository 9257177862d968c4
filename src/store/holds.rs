//! Legal holds (table `legal_holds`): a session under hold is neither purged by retention
//! nor erased on request.

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait, Set,
};

pub mod legal_hold {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "legal_holds")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub session_id: String,
        pub reason: String,
        pub created_at: ChronoDateTimeUtc,
        /// Who placed it (`api_key:<id>`).
        pub created_by: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use legal_hold::Model as LegalHold;

pub async fn get<C: ConnectionTrait>(c: &C, session_id: &str) -> Result<Option<LegalHold>, DbErr> {
    legal_hold::Entity::find_by_id(session_id.to_owned())
        .one(c)
        .await
}

/// Places a hold (a session already held keeps its first hold, which is returned).
pub async fn place(
    db: &DatabaseConnection,
    session_id: &str,
    reason: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(LegalHold, bool), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    if let Some(h) = get(&txn, session_id).await? {
        return Ok((h, false));
    }
    let h = LegalHold {
        session_id: session_id.to_owned(),
        reason: reason.to_owned(),
        created_at: now,
        created_by: by.to_owned(),
    };
    legal_hold::Entity::insert(legal_hold::ActiveModel {
        session_id: Set(h.session_id.clone()),
        reason: Set(h.reason.clone()),
        created_at: Set(h.created_at),
        created_by: Set(h.created_by.clone()),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok((h, true))
}

/// Releases a hold; false when there was none.
pub async fn release(db: &DatabaseConnection, session_id: &str) -> Result<bool, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let n = legal_hold::Entity::delete_by_id(session_id.to_owned())
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(n > 0)
}

/// The ids of held sessions, as a subquery (for `NOT IN`).
pub fn held_ids() -> sea_orm::sea_query::SelectStatement {
    legal_hold::Entity::find()
        .select_only()
        .column(legal_hold::Column::SessionId)
        .into_query()
}

/// Whether a session is held (helper for filters).
pub async fn is_held<C: ConnectionTrait>(c: &C, session_id: &str) -> Result<bool, DbErr> {
    Ok(legal_hold::Entity::find()
        .filter(legal_hold::Column::SessionId.eq(session_id))
        .one(c)
        .await?
        .is_some())
}
