//! The delivery worker: picks the oldest pending delivery of each ordering key, sends it,
//! and records the outcome. Runs until the stop token is cancelled; never blocks the API
//! or signaling (they only insert rows).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use sea_orm::{ActiveModelTrait, DbBackend, DbErr, EntityTrait, Set, Statement};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::OutboxConfig;
use crate::store::outbox::{DEAD, DELIVERED, PENDING, delivery};
use sea_orm::DatabaseConnection;

/// Why one attempt failed.
#[derive(Debug)]
pub struct AttemptError {
    pub message: String,
    /// Retrying cannot help: dead-letter now.
    pub permanent: bool,
    /// The receiver asked not to be called again before this (`Retry-After`).
    pub not_before: Option<Duration>,
}

impl AttemptError {
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            not_before: None,
        }
    }
    /// Retry, but not sooner than `after` (when given).
    pub fn retry_after(message: impl Into<String>, after: Option<Duration>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            not_before: after,
        }
    }
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: true,
            not_before: None,
        }
    }
}

/// Runs until `stop` is cancelled.
/// What the worker needs: the database, its settings, and who sends each kind.
#[derive(Clone)]
struct Env {
    db: DatabaseConnection,
    cfg: OutboxConfig,
}

pub async fn run(
    db: DatabaseConnection,
    cfg: OutboxConfig,
    senders: super::senders::Senders,
    stop: CancellationToken,
) {
    let state = Env {
        db,
        cfg: cfg.clone(),
    };
    let poll = Duration::from_millis(cfg.poll_interval_ms);
    let mut wake = crate::store::outbox::subscribe();
    let mut inflight: HashSet<String> = HashSet::new();
    let mut keys: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: JoinSet<()> = JoinSet::new();
    // After a wake the enqueuing transaction may not have committed yet: look again a few
    // times shortly after (cheap indexed queries) before falling back to polling.
    const RECHECK_MS: [u64; 4] = [1, 3, 10, 30];
    let mut recheck: Option<usize> = None;
    let lease = lease_for(&state);
    release_stale_leases(&state).await;
    loop {
        let mut started = 0usize;
        if tasks.len() < cfg.concurrency {
            match due(&state, &inflight, cfg.concurrency - tasks.len()).await {
                Ok(rows) => {
                    for row in rows {
                        match claim(&state, &row, lease).await {
                            Ok(true) => {}
                            // Another instance took it first.
                            Ok(false) => continue,
                            Err(e) => {
                                tracing::warn!(error = %e, "outbox claim failed");
                                continue;
                            }
                        }
                        inflight.insert(row.ordering_key.clone());
                        let key = row.ordering_key.clone();
                        let st = state.clone();
                        let senders = senders.clone();
                        started += 1;
                        let handle =
                            tasks.spawn(async move { deliver_one(&st, &senders, row).await });
                        keys.insert(handle.id(), key);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "outbox scan failed"),
            }
        }
        let idle_wait = match recheck {
            Some(i) if started == 0 && i < RECHECK_MS.len() => {
                recheck = Some(i + 1);
                Duration::from_millis(RECHECK_MS[i]).min(poll)
            }
            _ => {
                recheck = None;
                poll
            }
        };
        tokio::select! {
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "delivery task failed");
                        e.id()
                    }
                };
                if let Some(key) = keys.remove(&id) {
                    inflight.remove(&key);
                }
            }
            r = wake.changed() => { if r.is_ok() { recheck = Some(0); } }
            _ = tokio::time::sleep(idle_wait) => {}
            _ = stop.cancelled() => break,
        }
    }
    // At-least-once: anything cut short here is still pending and goes out after restart.
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
}

/// How long a claimed delivery stays claimed: well past the longest attempt, so a live
/// instance always records its outcome first; an instance that died mid-attempt leaves a
/// claim that others take over after this.
fn lease_for(state: &Env) -> chrono::Duration {
    let attempt = state.cfg.request_timeout_ms.saturating_mul(3);
    chrono::Duration::milliseconds(attempt.max(60_000).min(i64::MAX as u64) as i64)
}

/// On SQLite, the one instance that uses the database: claims left by a previous run
/// (killed mid-attempt) are its own, so they go out now instead of after the lease.
async fn release_stale_leases(state: &Env) {
    use sea_orm::{ColumnTrait, QueryFilter, sea_query::Expr};
    if state.db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    let released = delivery::Entity::update_many()
        .col_expr(
            delivery::Column::LeasedUntil,
            Expr::value(Option::<chrono::DateTime<Utc>>::None),
        )
        .filter(delivery::Column::LeasedUntil.is_not_null())
        .exec(&state.db)
        .await;
    match released {
        Ok(r) if r.rows_affected > 0 => {
            tracing::info!(
                deliveries = r.rows_affected,
                "outbox: taking back deliveries a previous run was sending"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "outbox: could not release old claims"),
    }
}

/// Claims a due delivery for this instance (compare-and-set on its lease): false when
/// another instance claimed it, or it was delivered, in between.
async fn claim(state: &Env, row: &delivery::Model, lease: chrono::Duration) -> Result<bool, DbErr> {
    use sea_orm::{ColumnTrait, Condition, QueryFilter, sea_query::Expr};
    let now = Utc::now();
    let r = delivery::Entity::update_many()
        .col_expr(delivery::Column::LeasedUntil, Expr::value(now + lease))
        .filter(delivery::Column::Id.eq(row.id))
        .filter(delivery::Column::Status.eq(PENDING))
        .filter(
            Condition::any()
                .add(delivery::Column::LeasedUntil.is_null())
                .add(delivery::Column::LeasedUntil.lte(now)),
        )
        .exec(&state.db)
        .await?;
    Ok(r.rows_affected == 1)
}

/// The head (oldest pending) delivery of each ordering key that is not in flight (here or,
/// by its lease, in another instance) and is due now, oldest first. One indexed query; the head rule keeps per-key order.
async fn due(
    state: &Env,
    inflight: &HashSet<String>,
    max: usize,
) -> Result<Vec<delivery::Model>, DbErr> {
    let backend = state.db.get_database_backend();
    let mut values: Vec<sea_orm::Value> = Vec::new();
    let ph = |v: sea_orm::Value, values: &mut Vec<sea_orm::Value>| {
        values.push(v);
        crate::store::placeholder(backend, values.len())
    };
    // Placeholders are taken in the order they appear in the SQL text (SQLite binds `?`
    // positionally).
    let pending = ph(PENDING.into(), &mut values);
    let at = Utc::now();
    let now = ph(at.into(), &mut values);
    let now2 = ph(at.into(), &mut values);
    let mut exclude = String::new();
    if !inflight.is_empty() {
        let list: Vec<String> = inflight
            .iter()
            .map(|k| ph(k.clone().into(), &mut values))
            .collect();
        exclude = format!(" AND o.ordering_key NOT IN ({})", list.join(", "));
    }
    let pending2 = ph(PENDING.into(), &mut values);
    let limit = ph((max as i64).into(), &mut values);
    let sql = format!(
        "SELECT o.* FROM outbox o WHERE o.status = {pending} AND o.next_attempt_at <= {now} \
         AND (o.leased_until IS NULL OR o.leased_until <= {now2}){exclude} \
         AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.ordering_key = o.ordering_key \
         AND p.status = {pending2} AND p.id < o.id) ORDER BY o.id LIMIT {limit}"
    );
    delivery::Entity::find()
        .from_raw_sql(Statement::from_sql_and_values(backend, sql, values))
        .all(&state.db)
        .await
}

async fn deliver_one(state: &Env, senders: &super::senders::Senders, row: delivery::Model) {
    let span = tracing::info_span!("delivery", id = row.id, kind = %row.kind,
        session_id = row.session_id.as_deref().unwrap_or(""));
    async move {
        let started = std::time::Instant::now();
        let result = senders.send(&row).await;
        let elapsed = started.elapsed();
        if let Err(e) = record(state, senders, row, result).await {
            tracing::warn!(error = %e, "could not record a delivery outcome; it will be retried");
        }
        tracing::debug!(
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "attempt finished"
        );
    }
    .instrument(span)
    .await
}

async fn record(
    state: &Env,
    senders: &super::senders::Senders,
    row: delivery::Model,
    result: Result<super::senders::Sent, AttemptError>,
) -> Result<(), DbErr> {
    let cfg = &state.cfg;
    let now = Utc::now();
    let attempts = row.attempts.saturating_add(1);
    let txn = crate::store::begin_write(&state.db).await?;
    let mut active: delivery::ActiveModel = row.clone().into();
    active.attempts = Set(attempts);
    active.leased_until = Set(None);
    active.updated_at = Set(now);
    match result {
        Ok(sent) => {
            let remote_id = sent.remote_id.map(|r| truncate(&r, 255));
            active.status = Set(DELIVERED.to_owned());
            active.delivered_at = Set(Some(now));
            active.last_error = Set(None);
            active.remote_id = Set(remote_id.clone());
            active.update(&txn).await?;
            // What delivering this kind means for the rest of the app (a posted link
            // becomes a timeline event), in the same transaction.
            let row = delivery::Model { remote_id, ..row };
            senders.delivered(&txn, &row, now).await?;
        }
        Err(e) => {
            let age = now - row.age_from;
            let too_old = age.num_seconds() >= cfg.max_age_secs as i64;
            let dead = e.permanent || attempts as u32 >= cfg.max_attempts || too_old;
            active.last_error = Set(Some(truncate(&e.message, 500)));
            if dead {
                active.status = Set(DEAD.to_owned());
                tracing::warn!(attempts, error = %e.message, "delivery dead-lettered");
            } else {
                let delay = crate::store::outbox::backoff(
                    attempts as u32,
                    Duration::from_millis(cfg.base_delay_ms),
                    Duration::from_millis(cfg.max_delay_ms),
                    rand::rng().random::<f64>(),
                )
                .max(e.not_before.unwrap_or_default());
                let next = now + chrono::Duration::from_std(delay).unwrap_or_default();
                active.next_attempt_at = Set(next);
                tracing::info!(attempts, error = %e.message, retry_in_ms = delay.as_millis() as u64,
                    "delivery failed; will retry");
            }
            active.update(&txn).await?;
            if dead {
                // What a failure means for the rest of the app (a `delivery.failed`
                // event), in the same transaction as the dead letter.
                senders.failed(&txn, &row, &e.message, now).await?;
            }
        }
    }
    txn.commit().await
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
