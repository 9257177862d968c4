//! The store: the only code that talks SQL. The database connection (SQLite pragmas for
//! the embedded default), migrations, the single-writer transaction, the entities, and one
//! module per aggregate. It imports only `domain` and `config`.

pub mod agent_tokens;
pub mod apikeys;
pub mod batch;
pub mod chat;
pub mod creation;
pub mod entities;
pub mod erasure;
pub mod error;
pub mod fanout;
pub mod feedback;
pub mod holds;
pub mod integrations;
pub mod leases;
pub mod links;
pub mod outbox;
pub mod participants;
pub mod quality;
pub mod recording_control;
pub mod recordings;
pub mod server_quality;
pub mod sessions;
pub mod snapshots;
pub mod sqlite_writer;
pub mod timeline;

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, QueryResult, Statement,
};

fn base_options(url: &str) -> ConnectOptions {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    opts
}

/// Opens the database; for SQLite: WAL journal, foreign keys on, a busy timeout, page
/// cache and memory-mapped reads, temporary structures in memory.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = base_options(url);
    if url.starts_with("sqlite:") {
        // A file cannot drop a connection: no ping round trip before every acquire.
        opts.max_connections(8)
            .min_connections(1)
            .test_before_acquire(false);
        opts.map_sqlx_sqlite_opts(sqlite_options);
    } else {
        opts.max_connections(20);
    }
    Database::connect(opts).await
}

/// The file of a SQLite pool (canonical, so every pool of one file finds one gate).
pub(crate) fn sqlite_file(db: &DatabaseConnection) -> std::path::PathBuf {
    let opts = db.get_sqlite_connection_pool().connect_options();
    let file = opts.get_filename();
    std::fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf())
}

fn sqlite_options(
    o: sea_orm::sqlx::sqlite::SqliteConnectOptions,
) -> sea_orm::sqlx::sqlite::SqliteConnectOptions {
    SQLITE_PRAGMAS
        .iter()
        .fold(o, |o, (name, value)| o.pragma(*name, *value))
        .busy_timeout(Duration::from_secs(5))
        .create_if_missing(true)
        // Batches of up to 64 sessions take a few statement shapes each.
        .statement_cache_capacity(512)
}

/// Every SQLite connection's pragmas (the pool's and the session writer's).
pub(crate) const SQLITE_PRAGMAS: [(&str, &str); 7] = [
    ("journal_mode", "WAL"),
    ("synchronous", "NORMAL"),
    ("foreign_keys", "ON"),
    // Statement journals of multi-row inserts: in memory, not temp files.
    ("temp_store", "MEMORY"),
    // Reads through mmap, not pread. (The page cache keeps its default size: a larger one
    // made every commit slower, which walks the cache to drop pages past the file's end.)
    ("mmap_size", "268435456"),
    // Checkpoints stay with the committing writer: a background checkpointer raised
    // throughput at saturation but worsened p99 (BENCHMARKS.md, tried twice). Every 500
    // WAL pages rather than SQLite's 1,000: each checkpoint holds the writer half as long,
    // and a WAL of ~2 MiB is rewritten in the page cache instead of streaming to the disk;
    // p99 fell by a third at every load measured, at the same throughput.
    ("wal_autocheckpoint", "500"),
    // Shrink the WAL file back after a checkpoint reset it.
    ("journal_size_limit", "67108864"),
];

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// The `n`-th (from 1) bind placeholder of a hand-written statement: `$n` on PostgreSQL,
/// `?` (bound in order of appearance) on SQLite.
pub fn placeholder(backend: DbBackend, n: usize) -> String {
    match backend {
        DbBackend::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// True when the database answers a trivial query.
pub async fn ping(db: &DatabaseConnection) -> bool {
    db.execute_unprepared("SELECT 1").await.is_ok()
}

/// A write transaction. On SQLite it also holds this database's write gate, so writers
/// queue in the process (first come, first served) instead of colliding on SQLite's lock
/// and backing off in its busy handler, which sleeps for milliseconds at a time and made
/// p99 latency under concurrent writes hundreds of times the median.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _gate: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTxn {
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTxn {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }
    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }
    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }
    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }
    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }
    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
    fn is_mock_connection(&self) -> bool {
        self.txn.is_mock_connection()
    }
}

/// The write gate of a SQLite database: one per database file, shared by every pool of
/// this process that opens it (looked up by file once per pool).
pub(crate) fn sqlite_gate(db: &DatabaseConnection) -> Arc<tokio::sync::Mutex<()>> {
    type Gate = Arc<tokio::sync::Mutex<()>>;
    static BY_POOL: LazyLock<Mutex<HashMap<usize, Gate>>> = LazyLock::new(Default::default);
    static BY_FILE: LazyLock<Mutex<HashMap<std::path::PathBuf, Gate>>> =
        LazyLock::new(Default::default);
    let pool = Arc::as_ptr(&db.get_sqlite_connection_pool().connect_options()) as usize;
    let mut by_pool = BY_POOL.lock().unwrap_or_else(|p| p.into_inner());
    by_pool
        .entry(pool)
        .or_insert_with(|| {
            let mut by_file = BY_FILE.lock().unwrap_or_else(|p| p.into_inner());
            by_file.entry(sqlite_file(db)).or_default().clone()
        })
        .clone()
}

/// Begins a transaction that will write. On SQLite: waits for the write gate, then
/// `BEGIN IMMEDIATE` (a deferred transaction that reads first and writes later fails with
/// SQLITE_BUSY when another connection wrote in between; other processes, such as
/// `sightline api-key create`, still meet the busy timeout).
pub async fn begin_write(db: &DatabaseConnection) -> Result<WriteTxn, DbErr> {
    use sea_orm::{SqliteTransactionMode, TransactionOptions, TransactionTrait};
    if db.get_database_backend() == DbBackend::Sqlite {
        let gate = sqlite_gate(db).lock_owned().await;
        let txn = db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..Default::default()
            })
            .await?;
        Ok(WriteTxn {
            txn,
            _gate: Some(gate),
        })
    } else {
        Ok(WriteTxn {
            txn: db.begin().await?,
            _gate: None,
        })
    }
}
