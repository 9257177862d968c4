//! Recordings at rest: the [`SpanStore`] the recorder writes through (one sealed file per
//! span under `{recording.dir}/{session}/{recording}.webm.sealed`, its row in
//! `recordings`), and the reads, deletes and start-up recovery of those files.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};

use crate::recording::contract::{SpanEnd, SpanStart, SpanStore, SpanWriter};
use crate::recording::keys::{self, KeyError, MasterKey};
use crate::recording::sealed::{SealedError, SealedReader, SealedWriter};
use crate::store::recordings::{self as repo, Finished, READY, Recording};

/// Why a recording's bytes cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is gone (deleted, purged, or never reached this node).
    #[error("the recording's file is gone")]
    Gone,
    /// The session key was destroyed (erasure): the bytes are unreadable for good.
    #[error("the recording's key was destroyed")]
    KeyDestroyed,
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A finished recording whose file lost its final record (truncated since).
    #[error("the recording's file was cut short")]
    Truncated,
    #[error(transparent)]
    Sealed(#[from] SealedError),
    #[error(transparent)]
    Db(#[from] DbErr),
}

type Slot = Arc<Mutex<Option<SealedWriter<File>>>>;

/// The recordings directory, the master key and the database: everything recordings at
/// rest need.
pub struct RecordingFiles {
    db: DatabaseConnection,
    dir: PathBuf,
    master: MasterKey,
    fsync: bool,
    /// Spans being written, by recording id (their writer lives here, so `finish` can
    /// write the final record whatever box the recorder hands back).
    open: Mutex<HashMap<String, Slot>>,
}

/// The recorder's handle on one span's file.
struct FileSpan {
    slot: Slot,
    len: u64,
}

fn lock(slot: &Slot) -> std::sync::MutexGuard<'_, Option<SealedWriter<File>>> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

impl SpanWriter for FileSpan {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut w = lock(&self.slot);
        let w = w
            .as_mut()
            .ok_or_else(|| std::io::Error::other("the recording was finished"))?;
        w.append(bytes)?;
        self.len = w.len();
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match lock(&self.slot).as_mut() {
            Some(w) => w.flush(),
            None => Err(std::io::Error::other("the recording was finished")),
        }
    }

    fn len(&self) -> u64 {
        self.len
    }
}

fn ms_since_epoch(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

impl RecordingFiles {
    pub fn new(db: DatabaseConnection, dir: PathBuf, master: MasterKey, fsync: bool) -> Self {
        Self {
            db,
            dir,
            master,
            fsync,
            open: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, r: &Recording) -> PathBuf {
        self.dir.join(&r.rel_path)
    }

    /// The session's recording key, created (and stored wrapped) on first need.
    async fn session_key(&self, session_id: &str) -> Result<keys::SessionKey, String> {
        let wrapped = match repo::wrapped_key(&self.db, session_id)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(w) => w,
            None => {
                let fresh = keys::new_session_key();
                let wrapped = self.master.wrap(session_id, &fresh);
                repo::ensure_key(&self.db, session_id, wrapped, Utc::now())
                    .await
                    .map_err(|e| e.to_string())?
            }
        };
        self.master
            .unwrap_key(session_id, &wrapped)
            .map_err(|e| e.to_string())
    }

    /// The file key of a recording, if its session key still exists.
    async fn file_key(&self, r: &Recording) -> Result<zeroize::Zeroizing<[u8; 32]>, ReadError> {
        let wrapped = repo::wrapped_key(&self.db, &r.session_id)
            .await?
            .ok_or(ReadError::KeyDestroyed)?;
        let key = self.master.unwrap_key(&r.session_id, &wrapped)?;
        let id = uuid::Uuid::parse_str(&r.id).map_err(|_| SealedError::WrongRecording)?;
        Ok(keys::file_key(&key, &id))
    }

    /// Opens a recording's file for reading (checks that a finished one is whole).
    pub async fn reader(&self, r: &Recording) -> Result<SealedReader<File>, ReadError> {
        let key = self.file_key(r).await?;
        let path = self.path_of(r);
        let id = uuid::Uuid::parse_str(&r.id).map_err(|_| SealedError::WrongRecording)?;
        let status = r.status.clone();
        tokio::task::spawn_blocking(move || {
            let f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ReadError::Gone),
                Err(e) => return Err(ReadError::Sealed(SealedError::Io(e))),
            };
            let reader = SealedReader::open(f, &key, Some(&id))?;
            if status == READY && !reader.is_complete() {
                return Err(ReadError::Truncated);
            }
            Ok(reader)
        })
        .await
        .map_err(|e| ReadError::Sealed(SealedError::Io(std::io::Error::other(e))))?
    }

    /// Length and SHA-256 of what a file holds (for interrupted and failed recordings).
    async fn measure(&self, r: &Recording) -> Result<(u64, String), ReadError> {
        let mut reader = self.reader(r).await?;
        tokio::task::spawn_blocking(move || {
            let mut h = Sha256::new();
            let len = reader.len();
            reader.read_range(0, len, |b| {
                h.update(b);
                Ok(())
            })?;
            Ok((len, hex::encode(h.finalize())))
        })
        .await
        .map_err(|e| ReadError::Sealed(SealedError::Io(std::io::Error::other(e))))?
    }

    /// After a restart: rows left `writing` become `interrupted`, with the size and hash of
    /// what their files hold (readable up to the last record written). Returns how many.
    pub async fn recover(&self) -> Result<usize, DbErr> {
        let rows = repo::interrupt_writing(&self.db).await?;
        for mut r in rows.iter().cloned() {
            r.status = repo::INTERRUPTED.to_owned();
            match self.measure(&r).await {
                Ok((len, sha)) => {
                    let len = i64::try_from(len).unwrap_or(i64::MAX);
                    repo::set_interrupted_size(&self.db, &r.id, len, &sha).await?;
                }
                Err(e) => {
                    tracing::warn!(recording_id = %r.id, error = %e, "interrupted recording unreadable");
                }
            }
        }
        Ok(rows.len())
    }

    /// Removes a recording's file (and its session directory once empty); a file already
    /// gone is fine.
    pub async fn remove_file(&self, r: &Recording) -> std::io::Result<()> {
        let path = self.path_of(r);
        tokio::task::spawn_blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            if let Some(dir) = path.parent() {
                // Only succeeds when empty: other recordings of the session stay.
                let _ = std::fs::remove_dir(dir);
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Deletes a recording: its file, then its row (`deleted`, with `recording.deleted`
    /// carrying `data`). False when it was already deleted.
    pub async fn delete(
        &self,
        r: &Recording,
        data: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, ReadError> {
        self.remove_file(r)
            .await
            .map_err(|e| ReadError::Sealed(SealedError::Io(e)))?;
        let txn = crate::store::begin_write(&self.db).await?;
        let done = repo::mark_deleted(&txn, r, data, now).await?;
        txn.commit().await?;
        Ok(done)
    }
}

fn canonical_uuid(s: &str, what: &str) -> Result<String, String> {
    uuid::Uuid::parse_str(s)
        .map(|u| u.to_string())
        .map_err(|_| format!("{what} is not a UUID: {s:?}"))
}

#[async_trait::async_trait]
impl SpanStore for RecordingFiles {
    async fn open(&self, start: SpanStart) -> Result<Box<dyn SpanWriter>, String> {
        // Both ids become path segments: only canonical UUIDs get that far.
        let id = canonical_uuid(&start.recording_id, "recording id")?;
        let session = canonical_uuid(&start.session_id, "session id")?;
        let rel_path = format!("{session}/{id}.webm.sealed");
        let session_key = self.session_key(&session).await?;
        let uuid = uuid::Uuid::parse_str(&id).map_err(|e| e.to_string())?;
        let file_key = keys::file_key(&session_key, &uuid);
        let path = self.dir.join(&rel_path);
        let fsync = self.fsync;
        let writer = tokio::task::spawn_blocking(move || -> std::io::Result<_> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            let mut w = SealedWriter::create(f, &file_key, &uuid, fsync)?;
            w.flush()?;
            Ok(w)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("creating the recording file: {e}"))?;
        let row = Recording {
            id: id.clone(),
            session_id: session,
            participant_id: start.participant_id,
            status: repo::WRITING.to_owned(),
            started_at_ms: ms_since_epoch(start.started_at),
            ended_at: None,
            duration_ms: None,
            bytes: 0,
            sha256: None,
            codecs: String::new(),
            content_type: start.content_type.to_owned(),
            rel_path,
            failure: None,
            created_at: Utc::now(),
            deleted_at: None,
        };
        if let Err(e) = repo::insert_writing(&self.db, row.clone()).await {
            let _ = self.remove_file(&row).await;
            return Err(format!("storing the recording: {e}"));
        }
        let slot: Slot = Arc::new(Mutex::new(Some(writer)));
        self.open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, slot.clone());
        Ok(Box::new(FileSpan { slot, len: 0 }))
    }

    async fn finish(
        &self,
        recording_id: &str,
        mut writer: Box<dyn SpanWriter>,
        end: SpanEnd,
    ) -> Result<(), String> {
        let id = canonical_uuid(recording_id, "recording id")?;
        let mut failure = end.failure.clone();
        if let Err(e) = writer.flush()
            && failure.is_none()
        {
            failure = Some(format!("writing the recording: {e}"));
        }
        drop(writer);
        let slot = self
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .ok_or_else(|| format!("recording {id} is not being written"))?;
        let w = lock(&slot).take();
        let sealed = match w {
            Some(w) => tokio::task::spawn_blocking(move || w.finish())
                .await
                .map_err(|e| e.to_string())?,
            None => Err(std::io::Error::other("the recording was finished")),
        };
        let (bytes, sha256) = match sealed {
            Ok((_, s)) => (s.len, hex::encode(s.sha256)),
            Err(e) => {
                failure.get_or_insert_with(|| format!("finishing the recording: {e}"));
                // What is readable is what counts.
                let row = repo::get(&self.db, &id).await.map_err(|e| e.to_string())?;
                match row {
                    Some(r) => self.measure(&r).await.unwrap_or((0, String::new())),
                    None => (0, String::new()),
                }
            }
        };
        let f = Finished {
            bytes: i64::try_from(bytes).unwrap_or(i64::MAX),
            sha256,
            duration_ms: i64::try_from(end.duration_ms).unwrap_or(i64::MAX),
            codecs: end.codecs,
            failure,
            at: Utc::now(),
        };
        repo::finish(&self.db, &id, f)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("recording {id} is not being written"))?;
        Ok(())
    }
}
