//! Leases of a deployment of several nodes (PostgreSQL only): which node owns a live room,
//! and which node runs a cluster-wide background task.
//!
//! Every expiry is computed and compared in the database's clock (`now()`), never a node's,
//! so nodes whose clocks disagree by seconds cannot take a live lease from each other. A
//! holder renews well before expiry and gives up (evicts its rooms) when it could not renew
//! for two thirds of the lease, measured on its own monotonic clock.

use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

/// Who owns a room after a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// This node (the lease was taken, kept or renewed).
    Me,
    /// Another node holds a live lease.
    Other(String),
    /// Nobody holds a live lease and this node may not take it (it is draining).
    Nobody,
}

fn postgres<C: ConnectionTrait>(db: &C) -> Result<(), DbErr> {
    if db.get_database_backend() == DbBackend::Postgres {
        Ok(())
    } else {
        Err(DbErr::Custom(
            "cluster leases need PostgreSQL (a [cluster] runs on one shared database)".into(),
        ))
    }
}

fn stmt(sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Takes the room's lease for `node` when it is free, expired or already ours (renewing
/// it); otherwise reports the live owner. A draining node (`may_take` false) only keeps
/// a lease it holds.
pub async fn claim_room<C: ConnectionTrait>(
    db: &C,
    session_id: &str,
    node: &str,
    ttl_secs: f64,
    may_take: bool,
) -> Result<Owner, DbErr> {
    postgres(db)?;
    if may_take {
        let taken = db
            .query_one_raw(stmt(
                "INSERT INTO room_leases (session_id, node, epoch, expires_at) \
                 VALUES ($1, $2, 1, now() + make_interval(secs => $3)) \
                 ON CONFLICT (session_id) DO UPDATE SET node = EXCLUDED.node, \
                 expires_at = EXCLUDED.expires_at, \
                 epoch = room_leases.epoch + CASE WHEN room_leases.node = EXCLUDED.node \
                 THEN 0 ELSE 1 END \
                 WHERE room_leases.node = EXCLUDED.node OR room_leases.expires_at < now() \
                 RETURNING node",
                vec![session_id.into(), node.into(), ttl_secs.into()],
            ))
            .await?;
        if taken.is_some() {
            return Ok(Owner::Me);
        }
    }
    let live = db
        .query_one_raw(stmt(
            "SELECT node FROM room_leases WHERE session_id = $1 AND expires_at >= now()",
            vec![session_id.into()],
        ))
        .await?;
    match live {
        Some(row) => {
            let owner: String = row.try_get("", "node")?;
            Ok(if owner == node {
                Owner::Me
            } else {
                Owner::Other(owner)
            })
        }
        None => Ok(Owner::Nobody),
    }
}

/// Extends the leases `node` holds on `sessions`; returns the sessions it still holds.
pub async fn renew_rooms<C: ConnectionTrait>(
    db: &C,
    node: &str,
    sessions: &[String],
    ttl_secs: f64,
) -> Result<Vec<String>, DbErr> {
    postgres(db)?;
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let mut rows = Vec::with_capacity(sessions.len());
    for chunk in sessions.chunks(500) {
        let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let mut values: Vec<Value> = vec![ttl_secs.into(), node.into()];
        values.extend(chunk.iter().map(|s| Value::from(s.as_str())));
        let sql = format!(
            "UPDATE room_leases SET expires_at = now() + make_interval(secs => $1) \
             WHERE node = $2 AND session_id IN ({}) RETURNING session_id",
            list.join(", ")
        );
        rows.extend(db.query_all_raw(stmt(&sql, values)).await?);
    }
    rows.iter()
        .map(|r| r.try_get::<String>("", "session_id"))
        .collect()
}

/// Gives a room's lease up (only if `node` still holds it).
pub async fn release_room<C: ConnectionTrait>(
    db: &C,
    session_id: &str,
    node: &str,
) -> Result<(), DbErr> {
    postgres(db)?;
    db.execute_raw(stmt(
        "DELETE FROM room_leases WHERE session_id = $1 AND node = $2",
        vec![session_id.into(), node.into()],
    ))
    .await
    .map(|_| ())
}

/// Gives up every room and task lease of `node` (a graceful stop), so other nodes take
/// over at once instead of after expiry.
pub async fn release_all<C: ConnectionTrait>(db: &C, node: &str) -> Result<u64, DbErr> {
    postgres(db)?;
    let rooms = db
        .execute_raw(stmt(
            "DELETE FROM room_leases WHERE node = $1",
            vec![node.into()],
        ))
        .await?;
    db.execute_raw(stmt(
        "DELETE FROM task_leases WHERE node = $1",
        vec![node.into()],
    ))
    .await?;
    Ok(rooms.rows_affected())
}

/// Takes or renews the lease on a cluster-wide task for `node`: true while it holds it.
pub async fn claim_task<C: ConnectionTrait>(
    db: &C,
    name: &str,
    node: &str,
    ttl_secs: f64,
) -> Result<bool, DbErr> {
    postgres(db)?;
    let row = db
        .query_one_raw(stmt(
            "INSERT INTO task_leases (name, node, expires_at) \
             VALUES ($1, $2, now() + make_interval(secs => $3)) \
             ON CONFLICT (name) DO UPDATE SET node = EXCLUDED.node, \
             expires_at = EXCLUDED.expires_at \
             WHERE task_leases.node = EXCLUDED.node OR task_leases.expires_at < now() \
             RETURNING node",
            vec![name.into(), node.into(), ttl_secs.into()],
        ))
        .await?;
    Ok(row.is_some())
}
