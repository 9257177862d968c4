//! The session writer's own SQLite connection (`sessions::batch`).
//!
//! The shared pool's driver runs every statement on a thread of its own and hands each
//! call over to it and back; for the one writer that every create waits on, those hand-offs
//! (three per batch, each a wake-up that can wait for a busy core) were a third of the
//! time a batch took. This connection runs its statements on the caller's thread, keeps
//! them prepared, and gives each session of a batch a savepoint of its own, so one
//! failing session is rolled back alone while its neighbours commit.
//!
//! Values are bound exactly as the pool's driver binds them (timestamps as RFC 3339 text,
//! JSON as text, booleans as integers), so rows read back the same whichever connection
//! wrote them: `tests` below check that against the pool.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use sea_orm::sea_query::Value;
use sea_orm::{DbErr, EntityName, EntityTrait, IdenStatic, Iterable, ModelTrait};

use crate::store::entities::integration;

/// The in-process write gate of a database file (see `storage::begin_write`).
pub type Gate = Arc<tokio::sync::Mutex<()>>;

#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("column {0}: cannot be stored in SQLite")]
    Unsupported(&'static str),
    #[error("column {column}: {detail}")]
    Decode { column: String, detail: String },
}

impl WriterError {
    /// A UNIQUE or PRIMARY KEY constraint refused the row.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Sqlite(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY)
    }
}

impl From<WriterError> for DbErr {
    fn from(e: WriterError) -> Self {
        DbErr::Custom(format!("session writer: {e}"))
    }
}

pub struct SqliteWriter {
    conn: rusqlite::Connection,
    gate: Gate,
    /// The insert statement of each table (with or without its generated id).
    inserts: std::cell::RefCell<std::collections::HashMap<(&'static str, bool), Arc<str>>>,
}

impl SqliteWriter {
    /// Opens `file` (which the pool has already created and migrated) with the pool's
    /// pragmas. `gate` is the file's write gate, shared with the pool.
    pub fn open(file: &Path, gate: Gate) -> Result<Self, WriterError> {
        let conn = rusqlite::Connection::open_with_flags(
            file,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::from_secs(5))?;
        for (name, value) in crate::store::SQLITE_PRAGMAS {
            // Some pragmas answer with a row (journal_mode), others with none.
            conn.query_row(&format!("PRAGMA {name} = {value}"), [], |_| Ok(()))
                .or_else(|e| match e {
                    rusqlite::Error::QueryReturnedNoRows => Ok(()),
                    e => Err(e),
                })?;
        }
        conn.set_prepared_statement_cache_capacity(64);
        Ok(Self {
            conn,
            gate,
            inserts: Default::default(),
        })
    }

    pub fn gate(&self) -> Gate {
        self.gate.clone()
    }

    fn run(&self, sql: &str) -> Result<(), WriterError> {
        self.conn.prepare_cached(sql)?.execute([])?;
        Ok(())
    }

    /// `BEGIN IMMEDIATE`: takes the database's write lock now (the caller holds the gate,
    /// so only another process can make this wait, up to the busy timeout).
    pub fn begin(&self) -> Result<(), WriterError> {
        self.run("BEGIN IMMEDIATE")
    }

    pub fn commit(&self) -> Result<(), WriterError> {
        self.run("COMMIT")
    }

    /// Rolls the open transaction back (harmless when none is open).
    pub fn rollback(&self) {
        if !self.conn.is_autocommit() {
            let _ = self.run("ROLLBACK");
        }
    }

    pub fn savepoint(&self) -> Result<(), WriterError> {
        self.run("SAVEPOINT one")
    }

    pub fn release(&self) -> Result<(), WriterError> {
        self.run("RELEASE one")
    }

    /// Undoes everything since [`SqliteWriter::savepoint`]; the transaction stays open.
    pub fn rollback_to_savepoint(&self) -> Result<(), WriterError> {
        self.run("ROLLBACK TO one")?;
        self.run("RELEASE one")
    }

    /// Inserts a row of `M`'s table from `m`; with `generated_id`, without its `id` column
    /// (an autoincrement key). Returns the new row's rowid.
    pub fn insert<M: ModelTrait>(&self, m: &M, generated_id: bool) -> Result<i64, WriterError> {
        let columns = || {
            <M::Entity as EntityTrait>::Column::iter()
                .filter(move |c| !(generated_id && c.as_str() == "id"))
        };
        let table = <M::Entity as Default>::default().table_name();
        let sql = {
            let mut cache = self.inserts.borrow_mut();
            cache
                .entry((table, generated_id))
                .or_insert_with(|| {
                    let names: Vec<String> =
                        columns().map(|c| format!("\"{}\"", c.as_str())).collect();
                    let marks = vec!["?"; names.len()].join(", ");
                    format!(
                        "INSERT INTO \"{table}\" ({}) VALUES ({marks})",
                        names.join(", ")
                    )
                    .into()
                })
                .clone()
        };
        let mut stmt = self.conn.prepare_cached(&sql)?;
        for (i, c) in columns().enumerate() {
            let v = m.get(c);
            stmt.raw_bind_parameter(i + 1, Bound(&v, c.as_str()))?;
        }
        stmt.raw_execute()?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Every integration (for the webhooks of a batch's events), decoded as the pool's
    /// driver decodes them.
    pub fn integrations(&self) -> Result<Vec<integration::Model>, WriterError> {
        use integration::Column as C;
        let columns = [
            C::Id,
            C::Name,
            C::Kind,
            C::Config,
            C::SigningSecret,
            C::Events,
            C::EventsUrl,
            C::Scope,
            C::Locale,
            C::CreatedAt,
            C::UpdatedAt,
        ];
        debug_assert_eq!(columns.len(), C::iter().count(), "every column is read");
        let names: Vec<String> = columns
            .iter()
            .map(|c| format!("\"{}\"", c.as_str()))
            .collect();
        let sql = format!(
            "SELECT {} FROM \"{}\"",
            names.join(", "),
            integration::Entity.table_name()
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            out.push(integration::Model {
                id: r.get(0)?,
                name: r.get(1)?,
                kind: r.get(2)?,
                config: json_at(r, 3)?,
                signing_secret: r.get(4)?,
                events: json_at(r, 5)?,
                events_url: r.get(6)?,
                scope: r.get(7)?,
                locale: r.get(8)?,
                created_at: time_at(r, 9)?,
                updated_at: time_at(r, 10)?,
            });
        }
        Ok(out)
    }
}

fn decode_error(r: &rusqlite::Row<'_>, i: usize, detail: String) -> WriterError {
    WriterError::Decode {
        column: r.as_ref().column_name(i).unwrap_or("?").to_owned(),
        detail,
    }
}

fn json_at(r: &rusqlite::Row<'_>, i: usize) -> Result<serde_json::Value, WriterError> {
    let text: String = r.get(i)?;
    serde_json::from_str(&text).map_err(|e| decode_error(r, i, e.to_string()))
}

fn time_at(r: &rusqlite::Row<'_>, i: usize) -> Result<DateTime<Utc>, WriterError> {
    let text: String = r.get(i)?;
    parse_time(&text).ok_or_else(|| decode_error(r, i, format!("not a time: {text}")))
}

/// A value bound as the pool's driver binds it.
struct Bound<'a>(&'a Value, &'static str);

fn rfc3339<Tz: chrono::TimeZone>(t: &DateTime<Tz>) -> ToSqlOutput<'static>
where
    Tz::Offset: std::fmt::Display,
{
    ToSqlOutput::from(t.to_rfc3339_opts(SecondsFormat::AutoSi, false))
}

impl rusqlite::ToSql for Bound<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        fn null<'a>() -> ToSqlOutput<'a> {
            ToSqlOutput::Owned(V::Null)
        }
        fn int<'a>(i: Option<i64>) -> ToSqlOutput<'a> {
            i.map_or_else(null, |i| ToSqlOutput::Owned(V::Integer(i)))
        }
        Ok(match self.0 {
            Value::Bool(b) => int(b.map(i64::from)),
            Value::TinyInt(i) => int(i.map(i64::from)),
            Value::SmallInt(i) => int(i.map(i64::from)),
            Value::Int(i) => int(i.map(i64::from)),
            Value::BigInt(i) => int(*i),
            Value::TinyUnsigned(i) => int(i.map(i64::from)),
            Value::SmallUnsigned(i) => int(i.map(i64::from)),
            Value::Unsigned(i) => int(i.map(i64::from)),
            Value::BigUnsigned(i) => match i {
                Some(i) => ToSqlOutput::Owned(V::Integer(
                    i64::try_from(*i)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
                )),
                None => null(),
            },
            Value::Float(f) => f.map_or_else(null, |f| ToSqlOutput::Owned(V::Real(f64::from(f)))),
            Value::Double(f) => f.map_or_else(null, |f| ToSqlOutput::Owned(V::Real(f))),
            Value::String(s) => s.as_deref().map_or_else(null, |s| {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }),
            Value::Char(c) => c.map_or_else(null, |c| ToSqlOutput::from(c.to_string())),
            Value::Bytes(b) => b
                .as_deref()
                .map_or_else(null, |b| ToSqlOutput::Borrowed(ValueRef::Blob(b))),
            Value::Json(j) => match j {
                Some(j) => ToSqlOutput::from(
                    serde_json::to_string(j)
                        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?,
                ),
                None => null(),
            },
            Value::ChronoDateTimeUtc(t) => t.as_ref().map_or_else(null, rfc3339),
            Value::ChronoDateTimeLocal(t) => t.as_ref().map_or_else(null, rfc3339),
            Value::ChronoDateTimeWithTimeZone(t) => t.as_ref().map_or_else(null, rfc3339),
            Value::ChronoDateTime(t) => t.map_or_else(null, |t| {
                ToSqlOutput::from(t.format("%F %T%.f").to_string())
            }),
            Value::ChronoDate(d) => {
                d.map_or_else(null, |d| ToSqlOutput::from(d.format("%F").to_string()))
            }
            Value::ChronoTime(t) => {
                t.map_or_else(null, |t| ToSqlOutput::from(t.format("%T%.f").to_string()))
            }
            Value::Uuid(u) => u.map_or_else(null, |u| ToSqlOutput::from(u.as_bytes().to_vec())),
            _ => {
                return Err(rusqlite::Error::ToSqlConversionFailure(Box::new(
                    WriterError::Unsupported(self.1),
                )));
            }
        })
    }
}

/// The time formats the pool's driver writes (RFC 3339) and SQLite's own
/// (`CURRENT_TIMESTAMP`: `YYYY-MM-DD HH:MM:SS`, UTC).
fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            NaiveDateTime::parse_from_str(t, "%F %T%.f")
                .ok()
                .map(|t| t.and_utc())
        })
}

/// The connection the session writer (`sessions::batch`) keeps to itself.
pub enum Writer {
    /// SQLite: a connection of its own that runs statements on the writer's thread
    /// (this module), sharing the pool's write gate.
    Sqlite(SqliteWriter),
    /// Elsewhere: the shared pool.
    Pool(sea_orm::DatabaseConnection),
}

pub fn connect_writer(shared: &sea_orm::DatabaseConnection) -> Result<Writer, DbErr> {
    if shared.get_database_backend() != sea_orm::DbBackend::Sqlite {
        return Ok(Writer::Pool(shared.clone()));
    }
    let file = crate::store::sqlite_file(shared);
    SqliteWriter::open(&file, crate::store::sqlite_gate(shared))
        .map(Writer::Sqlite)
        .map_err(DbErr::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entities::delivery;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, NotSet, Set};
    use serde_json::json;

    async fn setup() -> (tempfile::TempDir, sea_orm::DatabaseConnection, SqliteWriter) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("w.db");
        let url = format!("sqlite://{}?mode=rwc", file.display());
        let db = crate::store::connect(&url).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let w = SqliteWriter::open(&file, Gate::default()).unwrap();
        (dir, db, w)
    }

    fn integration(id: &str, now: DateTime<Utc>) -> integration::Model {
        integration::Model {
            id: id.into(),
            name: format!("name-{id}"),
            kind: "webhook".into(),
            config: json!({"url": "https://chat.example/hook", "n": 1}),
            signing_secret: "whsec_x".into(),
            events: json!([crate::domain::EventKind::SessionCreated.as_str(), "*"]),
            events_url: Some("https://chat.example/events".into()),
            scope: "all".into(),
            locale: "en".into(),
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn pool_and_writer_connections_run_with_the_same_pragmas() {
        use sea_orm::ConnectionTrait;
        let (_dir, db, w) = setup().await;
        for (name, _) in crate::store::SQLITE_PRAGMAS {
            let by_writer: String = w
                .conn
                .query_row(&format!("PRAGMA {name}"), [], |r| {
                    r.get::<_, rusqlite::types::Value>(0)
                })
                .map(|v| format!("{v:?}"))
                .unwrap();
            let row = db
                .query_one_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Sqlite,
                    format!("PRAGMA {name}"),
                ))
                .await
                .unwrap()
                .unwrap();
            let by_pool = row
                .try_get_by_index::<i64>(0)
                .map(|i| format!("{:?}", rusqlite::types::Value::Integer(i)))
                .or_else(|_| {
                    row.try_get_by_index::<String>(0)
                        .map(|t| format!("{:?}", rusqlite::types::Value::Text(t)))
                })
                .unwrap();
            assert_eq!(by_writer, by_pool, "pragma {name}");
        }
        // The checkpoint interval the benchmarks chose (BENCHMARKS.md), not SQLite's 1,000.
        let pages: i64 = w
            .conn
            .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pages, 500);
    }

    #[tokio::test]
    async fn rows_it_writes_read_back_through_the_pool_and_the_other_way_round() {
        let (_dir, db, w) = setup().await;
        let now = Utc::now();
        // Written here, read by the pool.
        w.begin().unwrap();
        w.insert(&integration("a", now), false).unwrap();
        let d = delivery::Model {
            id: 0,
            message_id: "msg_1".into(),
            kind: "event".into(),
            event_type: None,
            session_id: None,
            integration_id: Some("a".into()),
            ordering_key: "k".into(),
            payload: json!({"body": "{\"x\":1}", "list": [1, 2.5, null]}),
            status: "pending".into(),
            attempts: 3,
            next_attempt_at: now,
            age_from: now,
            last_error: None,
            created_at: now,
            updated_at: now,
            delivered_at: Some(now),
            leased_until: None,
            remote_id: None,
        };
        let id = w.insert(&d, true).unwrap();
        w.commit().unwrap();
        let read = delivery::Entity::find_by_id(id)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, delivery::Model { id, ..d.clone() });
        let read = integration::Entity::find_by_id("a")
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(read, integration("a", now));

        // Written by the pool, read here.
        let mut b = integration("b", now).into_active_model();
        b.scope = Set("linked".into());
        b.events_url = Set(None);
        b.insert(&db).await.unwrap();
        let all = w.integrations().unwrap();
        assert_eq!(all.len(), 2);
        let b = all.iter().find(|i| i.id == "b").unwrap();
        assert_eq!(
            (b.scope.as_str(), b.events_url.as_deref()),
            ("linked", None)
        );
        assert_eq!(b.created_at, now);

        // Same stored text for the same time, whoever wrote it (SQL compares the text).
        let mut e = delivery::ActiveModel {
            id: NotSet,
            ..d.clone().into_active_model()
        };
        e.message_id = Set("msg_2".into());
        let e = e.insert(&db).await.unwrap();
        let texts: Vec<String> = {
            let mut s = w
                .conn
                .prepare("SELECT created_at FROM outbox ORDER BY id")
                .unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(texts.len(), 2, "{texts:?} (pool wrote id {})", e.id);
        assert_eq!(texts[0], texts[1]);
    }

    #[tokio::test]
    async fn a_savepoint_undoes_one_row_and_keeps_the_rest() {
        let (_dir, db, w) = setup().await;
        let now = Utc::now();
        w.begin().unwrap();
        w.insert(&integration("a", now), false).unwrap();
        w.savepoint().unwrap();
        let err = w.insert(&integration("a", now), false).unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        w.rollback_to_savepoint().unwrap();
        w.savepoint().unwrap();
        w.insert(&integration("c", now), false).unwrap();
        w.release().unwrap();
        w.commit().unwrap();
        let ids: Vec<String> = integration::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|i| i.id)
            .collect();
        assert_eq!(ids, ["a", "c"]);
    }

    #[test]
    fn times_in_both_stored_formats_parse() {
        let t = parse_time("2026-11-22T10:00:00.123456+00:00").unwrap();
        assert_eq!(t.timestamp_subsec_micros(), 123456);
        assert_eq!(
            parse_time("2026-11-22 10:00:00").unwrap(),
            parse_time("2026-11-22T10:00:00Z").unwrap()
        );
        assert!(parse_time("yesterday").is_none());
    }
}
