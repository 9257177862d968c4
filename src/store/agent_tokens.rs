//! Minted agent tokens, as the database remembers them: one row per token (its id, the
//! API key that minted it, the agent, expiry, revocation), never the token itself.
//!
//! A token is good while its signature and expiry hold, its row is not revoked and the API
//! key that minted it is not revoked. Like API keys ([`crate::store::apikeys::AuthCache`]), a
//! token the database confirmed is trusted for [`VERIFIED_FOR`] without asking again, so
//! revoking it (or its key), even from another process, takes effect within a second.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, Set};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::agent_token::AgentClaims;

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "agent_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub api_key_id: String,
        pub agent_id: String,
        pub created_at: ChronoDateTimeUtc,
        pub expires_at: ChronoDateTimeUtc,
        pub revoked_at: Option<ChronoDateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// How long a confirmed token is trusted without asking the database again.
pub const VERIFIED_FOR: Duration = Duration::from_secs(1);
const MAX_REMEMBERED: usize = 4096;

/// A new token id: 16 random bytes, hex (32 characters).
pub fn new_token_id() -> String {
    let raw: [u8; 16] = rand::random();
    hex::encode(raw)
}

/// Records a minted token.
pub async fn record(
    db: &DatabaseConnection,
    claims: &AgentClaims,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), DbErr> {
    let txn = crate::store::begin_write(db).await?;
    entity::Entity::insert(entity::ActiveModel {
        id: Set(claims.token_id.clone()),
        api_key_id: Set(claims.api_key_id.clone()),
        agent_id: Set(claims.agent_id.clone()),
        created_at: Set(created_at),
        expires_at: Set(expires_at),
        revoked_at: Set(None),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await
}

/// Which tokens to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One token, by the id its mint response carried.
    Token(String),
    /// Every live token of an agent.
    Agent(String),
}

/// Revokes tokens; returns how many were live and are revoked now.
pub async fn revoke(
    db: &DatabaseConnection,
    target: &Target,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let q = entity::Entity::update_many()
        .col_expr(entity::Column::RevokedAt, Expr::value(now))
        .filter(entity::Column::RevokedAt.is_null())
        .filter(entity::Column::ExpiresAt.gt(now));
    let q = match target {
        Target::Token(id) => q.filter(entity::Column::Id.eq(id.as_str())),
        Target::Agent(agent) => q.filter(entity::Column::AgentId.eq(agent.as_str())),
    };
    let n = q.exec(&txn).await?.rows_affected;
    txn.commit().await?;
    Ok(n)
}

/// Whether a token with this id was ever recorded (and not yet pruned).
pub async fn exists(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    Ok(entity::Entity::find_by_id(id).one(db).await?.is_some())
}

/// Live and recent tokens, newest first (at most `limit`).
pub async fn list(db: &DatabaseConnection, limit: u64) -> Result<Vec<entity::Model>, DbErr> {
    use sea_orm::QuerySelect;
    entity::Entity::find()
        .order_by_desc(entity::Column::CreatedAt)
        .limit(limit)
        .all(db)
        .await
}

/// Forgets tokens that expired more than a day ago.
pub async fn prune(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let n = entity::Entity::delete_many()
        .filter(entity::Column::ExpiresAt.lt(now - chrono::Duration::days(1)))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(n)
}

/// Remembers, for [`VERIFIED_FOR`], which token ids the database confirmed as live.
#[derive(Default)]
pub struct TokenCache {
    verified: Mutex<HashMap<String, Instant>>,
}

impl TokenCache {
    /// Whether the token these (already signature-checked) claims came from is still
    /// good: recorded, not revoked, and minted by an API key that is not revoked.
    pub async fn is_live(
        &self,
        db: &DatabaseConnection,
        claims: &AgentClaims,
    ) -> Result<bool, DbErr> {
        if claims.token_id.is_empty() {
            return Ok(false);
        }
        {
            let map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if map
                .get(&claims.token_id)
                .is_some_and(|at| at.elapsed() < VERIFIED_FOR)
            {
                return Ok(true);
            }
        }
        let live = match entity::Entity::find_by_id(claims.token_id.as_str())
            .one(db)
            .await?
        {
            Some(row) if row.revoked_at.is_none() && row.api_key_id == claims.api_key_id => {
                crate::store::apikeys::is_live(db, &row.api_key_id).await?
            }
            _ => false,
        };
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if live {
            if map.len() >= MAX_REMEMBERED {
                map.retain(|_, at| at.elapsed() < VERIFIED_FOR);
                if map.len() >= MAX_REMEMBERED {
                    map.clear();
                }
            }
            map.insert(claims.token_id.clone(), Instant::now());
        } else {
            map.remove(&claims.token_id);
        }
        Ok(live)
    }

    /// Forgets every remembered confirmation (after a revocation in this process).
    pub fn forget_all(&self) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
