//! Storage of call ratings (table `ratings`), and the one lookup the end screen needs: a
//! join link that still identifies its participant after the session has ended (the
//! ordinary link resolution answers `410` then, as it should for joining).

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set,
    sea_query::OnConflict,
};

use crate::domain::EventKind;
use crate::domain::tokens::{TokenError, TokenKey};
use crate::store::entities::{join_link, participant};
use crate::store::links::LinkError;

pub mod rating {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "ratings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub participant_id: String,
        pub session_id: String,
        pub score: i32,
        pub comment: Option<String>,
        pub at: ChronoDateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub use rating::Model as Rating;

/// The participant a join link names, live session or ended: signature and expiry, then
/// the link's own revocation and the participant's removal.
pub async fn link_owner(
    db: &DatabaseConnection,
    key: &TokenKey,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Result<(participant::Model, String), LinkError>, DbErr> {
    let id = match key.open(token, now.timestamp()) {
        Ok((id, _)) if id.len() == 16 => id,
        Err(TokenError::Expired) => return Ok(Err(LinkError::Expired)),
        _ => return Ok(Err(LinkError::Invalid)),
    };
    let Some(link) = join_link::Entity::find_by_id(hex::encode(id))
        .one(db)
        .await?
    else {
        return Ok(Err(LinkError::Invalid));
    };
    if link.revoked_at.is_some() {
        return Ok(Err(LinkError::Revoked));
    }
    let Some(p) = participant::Entity::find_by_id(link.participant_id.clone())
        .one(db)
        .await?
    else {
        return Ok(Err(LinkError::Invalid));
    };
    if p.removed_at.is_some() {
        return Ok(Err(LinkError::Removed));
    }
    Ok(Ok((p, link.role)))
}

/// Stores a rating and its `session.rated` event in one transaction; `false` when this
/// participant has rated already (nothing changes).
pub async fn insert(db: &DatabaseConnection, r: Rating) -> Result<bool, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let n = rating::Entity::insert(rating::ActiveModel {
        participant_id: Set(r.participant_id.clone()),
        session_id: Set(r.session_id.clone()),
        score: Set(r.score),
        comment: Set(r.comment.clone()),
        at: Set(r.at),
    })
    .on_conflict(
        OnConflict::column(rating::Column::ParticipantId)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if n == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    crate::store::timeline::append_event(
        &txn,
        &r.session_id,
        EventKind::SessionRated,
        Some(&r.participant_id),
        serde_json::json!({"score": r.score, "comment": r.comment}),
        r.at,
    )
    .await?;
    txn.commit().await?;
    Ok(true)
}

/// A session's ratings, oldest first.
pub async fn list(db: &DatabaseConnection, session_id: &str) -> Result<Vec<Rating>, DbErr> {
    rating::Entity::find()
        .filter(rating::Column::SessionId.eq(session_id))
        .order_by_asc(rating::Column::At)
        .all(db)
        .await
}
