//! Group commit for session creation.
//!
//! Creating a session writes seven rows in five tables. Written one request at a time,
//! every create pays its own write transaction and a dozen statement round trips, and the
//! database's single writer becomes the queue that all concurrent creates wait in. The
//! [`Creator`] instead hands each planned session to one writer task, which takes whatever
//! has queued up while the previous transaction ran (up to [`MAX_BATCH`]) and stores it
//! in one transaction with one multi-row insert per table. Under no load a batch holds one
//! session and costs what a lone create did; under load the per-session cost falls with
//! the batch size.
//!
//! A batch is all or nothing. When it fails (an idempotency key that a concurrent request
//! just used, a constraint, a lost connection), each of its sessions is retried alone, so
//! one bad request never fails its neighbours and every caller gets its own answer.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{mpsc, oneshot};

use super::repo::{self, Created, NewSession, Origin, Planned};

/// Most sessions stored in one transaction (bounded so one statement stays far below
/// the databases' bind-parameter limits: 64 × 19 session columns).
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
    /// Starts the writer task on the current runtime. It ends when every handle is gone.
    pub fn start(db: DatabaseConnection) -> Self {
        let (jobs, rx) = mpsc::channel(QUEUE);
        tokio::spawn(writer(db.clone(), rx));
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
        if let Some(found) = repo::find_idempotent(&self.db, &origin).await? {
            return Ok(found);
        }
        let planned = repo::plan(new, origin, ttl, now);
        let (reply, answer) = oneshot::channel();
        let stopped = || DbErr::Custom("the session writer has stopped".into());
        self.jobs
            .send(Job { planned, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn writer(db: DatabaseConnection, mut rx: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut jobs, MAX_BATCH).await > 0 {
        store(&db, std::mem::take(&mut jobs)).await;
    }
}

/// Stores one batch and answers every job in it. Runs to the end even when callers
/// have gone away: a stored session is answered later through its idempotency key.
async fn store(db: &DatabaseConnection, jobs: Vec<Job>) {
    let (planned, replies): (Vec<Planned>, Vec<_>) =
        jobs.into_iter().map(|j| (j.planned, j.reply)).unzip();
    if planned.len() > 1 {
        match repo::insert_planned(db, &planned).await {
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
        let _ = reply.send(repo::insert_one(db, p).await);
    }
}
