//! API keys: minted once, stored as SHA-256 hashes, compared in constant time, revocable.

use crate::store::entities::api_key as entity;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

const KEY_PREFIX: &str = "sl_";
/// Longest bearer value looked at (keys are 46 characters).
const MAX_KEY_CHARS: usize = 128;

/// A freshly minted key: `secret` is shown once and never stored.
pub struct NewKey {
    pub id: String,
    pub name: String,
    pub secret: String,
}

/// Who is calling the REST API.
#[derive(Debug, Clone)]
pub struct Caller {
    pub key_id: String,
}

fn hash_hex(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Mints a key and stores its hash.
pub async fn create(
    db: &DatabaseConnection,
    name: &str,
    now: DateTime<Utc>,
) -> Result<NewKey, DbErr> {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let secret = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(raw));
    let id = uuid::Uuid::now_v7().to_string();
    entity::ActiveModel {
        id: Set(id.clone()),
        name: Set(name.to_owned()),
        prefix: Set(secret[..KEY_PREFIX.len() + 6].to_owned()),
        hash: Set(hash_hex(&secret)),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(NewKey {
        id,
        name: name.to_owned(),
        secret,
    })
}

/// How long a verified key is trusted without asking the database again: a key revoked
/// (by `sightline api-key revoke`, possibly in another process) stops working within this.
pub const VERIFIED_FOR: Duration = Duration::from_secs(1);
/// Most keys remembered at once (only keys that verified are remembered).
const MAX_REMEMBERED: usize = 1024;

/// Remembers, for [`VERIFIED_FOR`], which presented keys the database confirmed, so a
/// busy caller costs one key lookup a second instead of one per request. Unknown and
/// revoked keys are never remembered: every such attempt asks the database. Entries are
/// found by the SHA-256 digest of the key, so lookup timing tells nothing about a key.
#[derive(Default)]
pub struct AuthCache {
    verified: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

impl AuthCache {
    /// The live key for a bearer value: from memory if verified within [`VERIFIED_FOR`],
    /// else from the database.
    pub async fn authenticate(
        &self,
        db: &DatabaseConnection,
        presented: &str,
    ) -> Result<Option<Caller>, DbErr> {
        if presented.len() > MAX_KEY_CHARS || !presented.starts_with(KEY_PREFIX) {
            return Ok(None);
        }
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        {
            let map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((caller, at)) = map.get(&digest)
                && at.elapsed() < VERIFIED_FOR
            {
                return Ok(Some(caller.clone()));
            }
        }
        let row = lookup(db, presented).await?;
        if let Some(r) = &row {
            note_use(db, r);
        }
        let found = row.map(|r| Caller { key_id: r.id });
        let mut map = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        match &found {
            Some(caller) => {
                if map.len() >= MAX_REMEMBERED {
                    map.retain(|_, (_, at)| at.elapsed() < VERIFIED_FOR);
                    if map.len() >= MAX_REMEMBERED {
                        map.clear();
                    }
                }
                map.insert(digest, (caller.clone(), Instant::now()));
            }
            None => {
                map.remove(&digest);
            }
        }
        Ok(found)
    }
}

/// How stale `last_used_at` may get before a use writes it again.
const LAST_USED_EVERY: chrono::Duration = chrono::Duration::minutes(1);

/// Records, in the background and at most once a minute per key, that a key was used
/// (`sightline api-key list` shows it). A failure is logged, never the caller's problem.
fn note_use(db: &DatabaseConnection, row: &entity::Model) {
    let now = Utc::now();
    if row.last_used_at.is_some_and(|t| now - t < LAST_USED_EVERY) {
        return;
    }
    let (db, id) = (db.clone(), row.id.clone());
    tokio::spawn(async move {
        let write = async {
            let txn = crate::store::begin_write(&db).await?;
            entity::Entity::update_many()
                .col_expr(
                    entity::Column::LastUsedAt,
                    sea_orm::sea_query::Expr::value(now),
                )
                .filter(entity::Column::Id.eq(id))
                .exec(&txn)
                .await?;
            txn.commit().await
        };
        if let Err(e) = write.await {
            tracing::warn!(error = %e, "could not record an API key's last use");
        }
    });
}

/// The live key row for a bearer value (already checked for shape), from the database.
async fn lookup(db: &DatabaseConnection, presented: &str) -> Result<Option<entity::Model>, DbErr> {
    let hash = hash_hex(presented);
    let Some(row) = entity::Entity::find()
        .filter(entity::Column::Hash.eq(hash.clone()))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let same: bool = row.hash.as_bytes().ct_eq(hash.as_bytes()).into();
    if !same || row.revoked_at.is_some() {
        return Ok(None);
    }
    Ok(Some(row))
}

/// Whether the key with this id exists and is not revoked.
pub async fn is_live(db: &DatabaseConnection, id: &str) -> Result<bool, DbErr> {
    Ok(entity::Entity::find_by_id(id)
        .one(db)
        .await?
        .is_some_and(|k| k.revoked_at.is_none()))
}

pub async fn count_live(db: &DatabaseConnection) -> Result<u64, DbErr> {
    entity::Entity::find()
        .filter(entity::Column::RevokedAt.is_null())
        .count(db)
        .await
}

pub async fn list(db: &DatabaseConnection) -> Result<Vec<entity::Model>, DbErr> {
    entity::Entity::find()
        .order_by_asc(entity::Column::CreatedAt)
        .all(db)
        .await
}

/// Revokes a key by id or name; returns whether one was revoked.
pub async fn revoke(
    db: &DatabaseConnection,
    id_or_name: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let rows = entity::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(entity::Column::Id.eq(id_or_name))
                .add(entity::Column::Name.eq(id_or_name)),
        )
        .filter(entity::Column::RevokedAt.is_null())
        .all(db)
        .await?;
    let any = !rows.is_empty();
    for row in rows {
        let mut active: entity::ActiveModel = row.into();
        active.revoked_at = Set(Some(now));
        active.update(db).await?;
    }
    Ok(any)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_stable_hex() {
        let h = hash_hex("sl_abc");
        assert_eq!(h.len(), 64);
        assert_eq!(h, hash_hex("sl_abc"));
        assert_ne!(h, hash_hex("sl_abd"));
    }
}
