//! Group commit for session creation.
//!
//! Creating a session writes eight rows in four tables. Written one request at a time,
//! every create pays its own write transaction and a dozen statement round trips, and the
//! database's single writer becomes the queue that all concurrent creates wait in. The
//! [`Creator`] instead hands each planned session to one writer (a thread with a database
//! connection of its own), which takes whatever has queued up while the previous
//! transaction ran (up to [`MAX_BATCH`]) and stores it in one transaction with one
//! multi-row insert per table. Under no load a batch holds one
//! session and costs what a lone create did; under load the per-session cost falls with
//! the batch size.
//!
//! On SQLite the writer has a connection of its own (`storage::sqlite_writer`) whose
//! statements run on the writer's thread, and each session of a batch gets a savepoint:
//! a session that fails (an idempotency key that a concurrent request just used, a
//! constraint) is rolled back alone, its neighbours commit, and every caller gets its own
//! answer. Elsewhere (PostgreSQL) a batch is one multi-row insert per table, all or
//! nothing; when it fails, each of its sessions is retried alone.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use super::creation::{Created, NewSession, Origin, Planned};
use crate::metrics::Metrics;
use crate::store::sqlite_writer::Writer;
use crate::store::sqlite_writer::{SqliteWriter, WriterError};

/// Most sessions stored in one transaction (bounded so a batch stays far below the
/// databases' bind-parameter limits: 64 × 66 values in SQLite's one call).
pub const MAX_BATCH: usize = 64;
/// Creates waiting for the writer before callers wait for room in the queue.
const QUEUE: usize = 1024;

struct Job {
    planned: Planned,
    reply: oneshot::Sender<Result<Created, DbErr>>,
}

/// The handle request handlers create sessions through (cheap to clone).
#[derive(Clone)]
pub struct Creator {
    db: DatabaseConnection,
    jobs: mpsc::Sender<Job>,
}

impl Creator {
    /// Starts the writer on a thread of its own; it ends when every handle is gone.
    /// `db` serves reads; `writer` (see `storage::connect_writer`) the writer's
    /// transactions.
    pub fn start(db: DatabaseConnection, writer: Writer, metrics: Arc<Metrics>) -> Self {
        let reads = db.clone();
        let (jobs, rx) = mpsc::channel(QUEUE);
        // The writer is the one path every create waits on: it runs on a thread of its
        // own, so its next statement never queues behind request tasks on the runtime.
        let spawned = std::thread::Builder::new()
            .name("session-writer".into())
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(run_writer(reads, writer, rx, metrics)),
                    Err(e) => tracing::error!(error = %e, "cannot start the session writer"),
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the session writer thread");
        }
        Self { db, jobs }
    }

    /// Creates a session. An idempotency key seen before answers with that session
    /// (`Replayed`) or, for another body, `KeyReused`.
    pub async fn create(
        &self,
        new: NewSession,
        origin: Origin,
        ttl: chrono::Duration,
        now: DateTime<Utc>,
    ) -> Result<Created, DbErr> {
        if let Some(found) = crate::store::creation::find_idempotent(&self.db, &origin).await? {
            return Ok(found);
        }
        let planned = crate::store::creation::plan(new, origin, ttl, now);
        let (reply, answer) = oneshot::channel();
        let stopped = || DbErr::Custom("the session writer has stopped".into());
        self.jobs
            .send(Job { planned, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run_writer(
    reads: DatabaseConnection,
    writer: Writer,
    mut rx: mpsc::Receiver<Job>,
    metrics: Arc<Metrics>,
) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        metrics.write_batch_size.observe(jobs.len() as f64);
        let started = std::time::Instant::now();
        let batch = std::mem::take(&mut jobs);
        match &writer {
            Writer::Sqlite(w) => store_sqlite(w, &reads, batch).await,
            Writer::Pool(db) => store(db, batch).await,
        }
        metrics
            .write_batch_seconds
            .observe(started.elapsed().as_secs_f64());
    }
}

/// Stores one batch on SQLite, a savepoint per session, and answers every job in it.
async fn store_sqlite(w: &SqliteWriter, reads: &DatabaseConnection, jobs: Vec<Job>) {
    let gate = w.gate();
    let written = {
        let _gate = gate.lock().await;
        write_batch(w, &jobs)
    };
    let outcomes = match written {
        Ok(outcomes) => outcomes,
        Err(e) => {
            tracing::warn!(error = %e, size = jobs.len(), "cannot store a batch of sessions");
            let e = DbErr::from(e);
            for j in jobs {
                let _ = j.reply.send(Err(DbErr::Custom(e.to_string())));
            }
            return;
        }
    };
    if outcomes.iter().any(|o| matches!(o, Ok(n) if *n > 0)) {
        crate::store::outbox::wake();
    }
    for (j, outcome) in jobs.into_iter().zip(outcomes) {
        let answer = match outcome {
            Ok(_) => Ok(Created::New(j.planned.view)),
            Err(e)
                if e.is_unique_violation() && j.planned.view.session.idempotency_key.is_some() =>
            {
                crate::store::creation::after_key_conflict(reads, &j.planned).await
            }
            Err(e) => Err(e.into()),
        };
        let _ = j.reply.send(answer);
    }
}

type Outcomes = Vec<Result<usize, WriterError>>;

/// One transaction: the integrations (for the webhooks of the new events), then every
/// session. `Err` when the transaction itself failed (then nothing was stored); otherwise
/// each session's outcome, in order.
///
/// A savepoint costs a copy of every page it changes, so the batch is first written
/// without them. Only when a session fails is that transaction rolled back and the batch
/// written again with a savepoint per session, which leaves out just the failing ones.
fn write_batch(w: &SqliteWriter, jobs: &[Job]) -> Result<Outcomes, WriterError> {
    match write_once(w, jobs, false)? {
        Some(outcomes) => Ok(outcomes),
        None => Ok(write_once(w, jobs, true)?.unwrap_or_default()),
    }
}

/// `Ok(None)`: without `isolate`, a session failed and nothing was stored.
fn write_once(
    w: &SqliteWriter,
    jobs: &[Job],
    isolate: bool,
) -> Result<Option<Outcomes>, WriterError> {
    w.begin()?;
    let written = (|| {
        let hook = crate::store::fanout::EventHook::from_models(w.integrations()?);
        let mut outcomes = Vec::with_capacity(jobs.len());
        for j in jobs {
            if isolate {
                w.savepoint()?;
            }
            match crate::store::creation::write_planned(w, &hook, &j.planned) {
                Ok(n) => {
                    if isolate {
                        w.release()?;
                    }
                    outcomes.push(Ok(n));
                }
                Err(_) if !isolate => return Ok(None),
                Err(e) => {
                    w.rollback_to_savepoint()?;
                    outcomes.push(Err(e));
                }
            }
        }
        w.commit()?;
        Ok(Some(outcomes))
    })();
    if !matches!(written, Ok(Some(_))) {
        w.rollback();
    }
    written
}

/// Stores one batch and answers every job in it. Runs to the end even when callers
/// have gone away: a stored session is answered later through its idempotency key.
async fn store(db: &DatabaseConnection, jobs: Vec<Job>) {
    let (planned, replies): (Vec<Planned>, Vec<_>) =
        jobs.into_iter().map(|j| (j.planned, j.reply)).unzip();
    if planned.len() > 1 {
        match crate::store::creation::insert_planned(db, &planned).await {
            Ok(()) => {
                for (p, reply) in planned.into_iter().zip(replies) {
                    let _ = reply.send(Ok(Created::New(p.view)));
                }
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, size = planned.len(), "batch failed; storing its sessions one by one");
            }
        }
    }
    for (p, reply) in planned.into_iter().zip(replies) {
        let _ = reply.send(crate::store::creation::insert_one(db, p).await);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::EventKind;
    use crate::domain::fields::{AgentId, ConversationRef, DisplayName, Metadata};
    use crate::store::entities::event;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

    fn new_session(conversation: &str) -> NewSession {
        NewSession {
            conversation: ConversationRef::parse("test", conversation).unwrap(),
            agent_id: AgentId::parse("a-1").unwrap(),
            agent_name: DisplayName::parse("agent.name", "Ana").unwrap(),
            customer_name: None,
            customer_email: None,
            customer_locale: None,
            metadata: Metadata::empty(),
            relay_only: false,
            lobby: false,
            post_link_via: None,
            media_mode: None,
            recording_mode: None,
        }
    }

    fn origin(key: Option<&str>, hash: &str) -> Origin {
        Origin {
            api_key_id: Some("k".into()),
            idempotency_key: key.map(str::to_owned),
            idempotency_hash: key.map(|_| hash.to_owned()),
        }
    }

    async fn db() -> (tempfile::TempDir, DatabaseConnection) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/t.db?mode=rwc", dir.path().display());
        let db = crate::store::connect(&url).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        (dir, db)
    }

    /// The two ways a batch is stored: SQLite's own writer connection, and the pool
    /// (PostgreSQL's way, run here on SQLite).
    #[derive(Clone, Copy, Debug)]
    enum Via {
        Writer,
        Pool,
    }
    const BOTH: [Via; 2] = [Via::Writer, Via::Pool];

    async fn store_via(via: Via, db: &DatabaseConnection, jobs: Vec<Job>) {
        match via {
            Via::Writer => {
                let Ok(Writer::Sqlite(w)) = crate::store::sqlite_writer::connect_writer(db) else {
                    panic!("SQLite gets its own writer connection")
                };
                store_sqlite(&w, db, jobs).await
            }
            Via::Pool => store(db, jobs).await,
        }
    }

    fn job(planned: Planned) -> (Job, oneshot::Receiver<Result<Created, DbErr>>) {
        let (reply, rx) = oneshot::channel();
        (Job { planned, reply }, rx)
    }

    async fn stored_sessions(db: &DatabaseConnection) -> usize {
        use sea_orm::{EntityTrait, PaginatorTrait};
        crate::store::entities::session::Entity::find()
            .count(db)
            .await
            .unwrap() as usize
    }

    async fn kinds_of(db: &DatabaseConnection, session_id: &str) -> Vec<(i64, String)> {
        event::Entity::find()
            .filter(event::Column::SessionId.eq(session_id))
            .order_by_asc(event::Column::Id)
            .all(db)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.id, e.kind))
            .collect()
    }

    #[tokio::test]
    async fn a_batch_stores_every_session_with_its_rows_and_ordered_timeline() {
        for via in BOTH {
            let (_dir, db) = db().await;
            let now = Utc::now();
            let ttl = chrono::Duration::hours(1);
            let mut jobs = Vec::new();
            let mut answers = Vec::new();
            for i in 0..10 {
                // Both write paths store the lobby flag (every other session asks for one).
                let mut new = new_session(&format!("c{i}"));
                new.lobby = i % 2 == 0;
                let (j, rx) = job(crate::store::creation::plan(
                    new,
                    origin(None, ""),
                    ttl,
                    now,
                ));
                jobs.push(j);
                answers.push(rx);
            }
            store_via(via, &db, jobs).await;
            let mut last_id = 0;
            for (i, rx) in answers.into_iter().enumerate() {
                let Ok(Created::New(v)) = rx.await.unwrap() else {
                    panic!("session {i} not created");
                };
                let stored = crate::store::sessions::get(&db, &v.session.id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(stored.session, v.session, "answer equals what is stored");
                assert_eq!(stored.session.lobby, i % 2 == 0, "lobby stored");
                assert_eq!(stored.participants.len(), 2);
                assert_eq!(stored.links.len(), 2);
                let kinds = kinds_of(&db, &v.session.id).await;
                let names: Vec<&str> = kinds.iter().map(|(_, k)| k.as_str()).collect();
                assert_eq!(
                    names,
                    [
                        EventKind::SessionCreated.as_str(),
                        EventKind::LinkIssued.as_str(),
                        EventKind::LinkIssued.as_str()
                    ]
                );
                assert!(kinds[0].0 > last_id, "timelines follow request order");
                last_id = kinds[2].0;
            }
        }
    }

    #[tokio::test]
    async fn one_new_key_twice_in_a_batch_stores_one_session() {
        for via in BOTH {
            let (_dir, db) = db().await;
            let now = Utc::now();
            let ttl = chrono::Duration::hours(1);
            // The same new key with the same body, then with another body, around a keyless
            // session: the first is stored, the second answers with it, the third is refused.
            let plans = [
                crate::store::creation::plan(new_session("c1"), origin(Some("k"), "h"), ttl, now),
                crate::store::creation::plan(new_session("c2"), origin(None, ""), ttl, now),
                crate::store::creation::plan(new_session("c1"), origin(Some("k"), "h"), ttl, now),
                crate::store::creation::plan(
                    new_session("c3"),
                    origin(Some("k"), "other"),
                    ttl,
                    now,
                ),
            ];
            let (jobs, answers): (Vec<_>, Vec<_>) = plans.into_iter().map(job).unzip();
            store_via(via, &db, jobs).await;
            let mut got = Vec::new();
            for rx in answers {
                got.push(rx.await.unwrap().unwrap());
            }
            let Created::New(first) = &got[0] else {
                panic!("{via:?}: the first use of a key stores its session")
            };
            assert!(matches!(got[1], Created::New(_)), "{via:?}");
            match &got[2] {
                Created::Replayed(v) => assert_eq!(v.session.id, first.session.id, "{via:?}"),
                _ => panic!("{via:?}: same key, same body: the first session"),
            }
            assert!(matches!(got[3], Created::KeyReused), "{via:?}");
            assert_eq!(stored_sessions(&db).await, 2, "{via:?}: no duplicate");
            let kinds = kinds_of(&db, &first.session.id).await;
            assert_eq!(kinds.len(), 3, "{via:?}: one timeline, not two");
        }
    }

    #[tokio::test]
    async fn one_failing_session_does_not_fail_its_batch() {
        for via in BOTH {
            let (_dir, db) = db().await;
            let now = Utc::now();
            let ttl = chrono::Duration::hours(1);
            // A session already stored under key "k1" (hash "h1").
            let first = crate::store::creation::create(
                &db,
                new_session("c0"),
                origin(Some("k1"), "h1"),
                ttl,
                now,
            )
            .await
            .unwrap();
            let Created::New(first) = first else {
                panic!("first create")
            };
            // A batch: two fresh sessions around two that reuse the key, same and other body.
            let plans = [
                crate::store::creation::plan(new_session("c1"), origin(None, ""), ttl, now),
                crate::store::creation::plan(new_session("c0"), origin(Some("k1"), "h1"), ttl, now),
                crate::store::creation::plan(
                    new_session("c9"),
                    origin(Some("k1"), "other"),
                    ttl,
                    now,
                ),
                crate::store::creation::plan(new_session("c2"), origin(None, ""), ttl, now),
            ];
            let (jobs, answers): (Vec<_>, Vec<_>) = plans.into_iter().map(job).unzip();
            store_via(via, &db, jobs).await;
            let mut answers = answers.into_iter();
            let mut next = async || answers.next().unwrap().await.unwrap().unwrap();
            assert!(matches!(next().await, Created::New(_)));
            match next().await {
                Created::Replayed(v) => assert_eq!(v.session.id, first.session.id),
                _ => panic!("same key, same body: the first session"),
            }
            assert!(matches!(next().await, Created::KeyReused));
            assert!(matches!(next().await, Created::New(_)));
            assert_eq!(stored_sessions(&db).await, 3, "no duplicate, nothing lost");
        }
    }

    #[tokio::test]
    async fn the_creator_answers_concurrent_callers() {
        let (_dir, db) = db().await;
        let writer = crate::store::sqlite_writer::connect_writer(&db).unwrap();
        let creator = Creator::start(db.clone(), writer, Arc::new(Metrics::new()));
        let ttl = chrono::Duration::hours(1);
        let calls = (0..40).map(|i| {
            let c = creator.clone();
            async move {
                c.create(
                    new_session(&format!("c{i}")),
                    origin(None, ""),
                    ttl,
                    Utc::now(),
                )
                .await
            }
        });
        let mut ids = std::collections::HashSet::new();
        for r in futures_util::future::join_all(calls).await {
            let Ok(Created::New(v)) = r else {
                panic!("create failed")
            };
            ids.insert(v.session.id);
        }
        assert_eq!(ids.len(), 40);
    }

    #[tokio::test]
    async fn a_batch_enqueues_webhooks_with_the_stored_event_ids() {
        use crate::store::entities::delivery;
        use crate::store::integrations::{integration, session_link};
        use sea_orm::{ActiveModelTrait, PaginatorTrait, Set};
        for via in BOTH {
            let (_dir, db) = db().await;
            let now = Utc::now();
            let ttl = chrono::Duration::hours(1);
            for (id, scope, events) in [
                (
                    "all-1",
                    "all",
                    serde_json::json!([EventKind::SessionCreated.as_str()]),
                ),
                ("linked-1", "linked", serde_json::json!(["*"])),
            ] {
                integration::ActiveModel {
                    id: Set(id.into()),
                    name: Set(id.into()),
                    kind: Set("generic".into()),
                    config: Set(serde_json::json!({})),
                    signing_secret: Set("whsec_x".into()),
                    events: Set(events),
                    events_url: Set(Some("https://example.invalid/hook".into())),
                    scope: Set(scope.into()),
                    locale: Set("en".into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                }
                .insert(&db)
                .await
                .unwrap();
            }
            let mut plans = Vec::new();
            for i in 0..3 {
                let mut new = new_session(&format!("c{i}"));
                if i == 1 {
                    new.post_link_via = Some("linked-1".into());
                }
                plans.push(crate::store::creation::plan(
                    new,
                    origin(None, ""),
                    ttl,
                    now,
                ));
            }
            let (jobs, answers): (Vec<_>, Vec<_>) = plans.into_iter().map(job).unzip();
            store_via(via, &db, jobs).await;
            for (i, rx) in answers.into_iter().enumerate() {
                let Ok(Created::New(v)) = rx.await.unwrap() else {
                    panic!("session {i}")
                };
                let id = &v.session.id;
                let created_id = kinds_of(&db, id).await[0].0;
                let hooks = delivery::Entity::find()
                    .filter(delivery::Column::SessionId.eq(id.clone()))
                    .filter(delivery::Column::Kind.eq("event"))
                    .all(&db)
                    .await
                    .unwrap();
                let mut targets: Vec<String> = hooks
                    .iter()
                    .map(|d| d.integration_id.clone().unwrap())
                    .collect();
                targets.sort();
                let expect: &[&str] = if i == 1 {
                    &["all-1", "linked-1"]
                } else {
                    &["all-1"]
                };
                assert_eq!(targets, expect, "session {i}");
                for d in &hooks {
                    let body: serde_json::Value =
                        serde_json::from_str(d.payload["body"].as_str().unwrap()).unwrap();
                    assert_eq!(body["type"], EventKind::SessionCreated.as_str());
                    assert_eq!(body["data"]["session_id"].as_str(), Some(id.as_str()));
                    assert_eq!(
                        body["data"]["event_id"].as_i64(),
                        Some(created_id),
                        "{body}"
                    );
                }
                let linked = session_link::Entity::find()
                    .filter(session_link::Column::SessionId.eq(id.clone()))
                    .all(&db)
                    .await
                    .unwrap();
                assert_eq!(linked.len(), usize::from(i == 1), "{via:?}");
                let posts = delivery::Entity::find()
                    .filter(delivery::Column::SessionId.eq(id.clone()))
                    .filter(delivery::Column::Kind.ne("event"))
                    .count(&db)
                    .await
                    .unwrap();
                assert_eq!(
                    posts,
                    u64::from(i == 1),
                    "the link post it asked for, {via:?}"
                );
            }
        }
    }
}
