//! Database connection (SQLite pragmas for the embedded default) and migrations.

use std::time::Duration;

use migrations::{Migrator, MigratorTrait};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, ExecResult, QueryResult, Statement,
};

/// WAL pages after which a commit checkpoints by itself; the [`checkpointer`] normally
/// keeps the WAL far below this, off the writers' path.
const WAL_AUTOCHECKPOINT_PAGES: &str = "16384";

/// Opens the database; for SQLite: WAL journal, foreign keys on, a busy timeout, page
/// cache and memory-mapped reads, temporary structures in memory.
pub async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.sqlx_logging(false)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10));
    if url.starts_with("sqlite:") {
        // A file cannot drop a connection: no ping round trip before every acquire.
        opts.max_connections(8)
            .min_connections(1)
            .test_before_acquire(false);
        opts.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5))
                .create_if_missing(true)
                // Statement journals of multi-row inserts: in memory, not temp files.
                .pragma("temp_store", "memory")
                // 16 MiB page cache per connection; reads through mmap, not pread.
                .pragma("cache_size", "-16384")
                .pragma("mmap_size", "268435456")
                // Checkpoints run in the background task; a commit still checkpoints
                // itself should that task fall far behind.
                .pragma("wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)
                // Shrink the WAL file back after a checkpoint reset it.
                .pragma("journal_size_limit", "67108864")
                // Batches of up to 64 sessions take a few statement shapes each.
                .statement_cache_capacity(512)
        });
    } else {
        opts.max_connections(20);
    }
    Database::connect(opts).await
}

/// Applies every pending migration.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

/// SQLite: checkpoints the WAL every `every` (PASSIVE: never waits for, nor blocks,
/// readers and writers) so that commits do not pay for it; a no-op on other databases.
pub async fn checkpointer(
    db: DatabaseConnection,
    every: Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    if db.get_database_backend() != DbBackend::Sqlite {
        return;
    }
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        if let Err(e) = db
            .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
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

/// The write gate of a SQLite pool (one per pool, keyed by the pool's identity).
fn sqlite_gate(db: &DatabaseConnection) -> Arc<tokio::sync::Mutex<()>> {
    static GATES: LazyLock<Mutex<HashMap<usize, Arc<tokio::sync::Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let key = Arc::as_ptr(&db.get_sqlite_connection_pool().connect_options()) as usize;
    let mut gates = GATES.lock().unwrap_or_else(|p| p.into_inner());
    gates.entry(key).or_default().clone()
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
