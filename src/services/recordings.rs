//! Use cases of recordings at rest: play or download (decrypting as it streams, one byte
//! range at a time, with an audit event), delete, and the retention job.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use sea_orm::{DatabaseConnection, DbErr};

use crate::config::retention::RetentionConfig;
use crate::domain::EventKind;
use crate::recording::files::{ReadError, RecordingFiles};
use crate::recording::range::{self, Plan};
use crate::store::recordings::{self as repo, Recording};

/// A media answer: what to send and the decrypted bytes as a stream.
pub struct Media {
    pub plan: Plan,
    /// Plaintext length of the whole file.
    pub total: u64,
    pub body: BoxStream<'static, std::io::Result<Bytes>>,
}

/// Who is reading a recording, for the audit trail.
#[derive(Debug, Clone)]
pub enum Viewer {
    /// An API caller (the key's id).
    ApiKey(String),
    /// Someone holding the session's report link.
    ReportPage,
}

impl Viewer {
    fn label(&self) -> String {
        match self {
            Viewer::ApiKey(id) => format!("api_key:{id}"),
            Viewer::ReportPage => "report_page".to_owned(),
        }
    }

    fn kind(&self) -> EventKind {
        match self {
            Viewer::ApiKey(_) => EventKind::RecordingDownloaded,
            Viewer::ReportPage => EventKind::RecordingPlayed,
        }
    }
}

/// Opens a recording's bytes for `range` (a `Range` header). A request from the first
/// byte is a playback or download and goes on the timeline (who, when); the further
/// ranges a player asks for while seeking do not.
pub async fn media(
    db: &DatabaseConnection,
    files: &RecordingFiles,
    r: &Recording,
    range_header: Option<&str>,
    viewer: &Viewer,
    now: DateTime<Utc>,
) -> Result<Media, ReadError> {
    let mut reader = files.reader(r).await?;
    let total = reader.len();
    let plan = range::plan(range_header, total);
    let (start, end) = match plan {
        Plan::Full => (0, total),
        Plan::Partial { start, end } => (start, end + 1),
        Plan::Unsatisfiable => {
            return Ok(Media {
                plan,
                total,
                body: Box::pin(futures_util::stream::empty()),
            });
        }
    };
    if start == 0 {
        let data = serde_json::json!({
            "recording_id": r.id,
            "viewer": viewer.label(),
        });
        repo::audit(db, r, viewer.kind(), data, now).await?;
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        let sent = reader.read_range(start, end, |b| {
            tx.blocking_send(Ok(Bytes::copy_from_slice(b)))
                .map_err(|_| std::io::Error::other("the client went away"))
        });
        if let Err(e) = sent {
            tracing::warn!(error = %e, "recording stream stopped");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Ok(Media {
        plan,
        total,
        body: Box::pin(body),
    })
}

/// Deletes a recording (file, then row, with `recording.deleted`).
pub async fn delete(
    files: &RecordingFiles,
    r: &Recording,
    by: &str,
    now: DateTime<Utc>,
) -> Result<bool, ReadError> {
    let data = serde_json::json!({"recording_id": r.id, "by": by});
    files.delete(r, data, now).await
}

/// What one retention round removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Purged {
    pub recordings: usize,
    pub sessions_with_chat_or_photos: usize,
    pub sessions: usize,
}

/// The retention job: deletes what expired under `cfg` (recordings, then photos and chat,
/// then whole sessions), skipping sessions under a legal hold.
pub async fn purge_expired(
    db: &DatabaseConnection,
    files: &RecordingFiles,
    cfg: &RetentionConfig,
    now: DateTime<Utc>,
) -> Result<Purged, DbErr> {
    let days = |d: u32| now - chrono::Duration::days(i64::from(d));
    let mut out = Purged::default();
    if let Some(d) = cfg.recordings_days {
        let mut per_session: std::collections::BTreeMap<String, u64> = Default::default();
        for r in crate::store::erasure::expired_recordings(db, days(d)).await? {
            let data = serde_json::json!({"recording_id": r.id, "by": "retention"});
            match files.delete(&r, data, now).await {
                Ok(true) => {
                    out.recordings += 1;
                    *per_session.entry(r.session_id.clone()).or_default() += 1;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(recording_id = %r.id, error = %e, "retention could not delete a recording")
                }
            }
        }
        for (session, n) in per_session {
            crate::store::erasure::note_purged(
                db,
                &session,
                serde_json::json!({"purged": {"recordings": n}}),
                now,
            )
            .await?;
        }
    }
    if let Some(d) = cfg.snapshots_and_chat_days {
        out.sessions_with_chat_or_photos =
            crate::store::erasure::purge_chat_and_snapshots(db, days(d), now).await?;
    }
    if let Some(d) = cfg.sessions_days {
        for id in crate::store::erasure::expired_sessions(db, days(d), now).await? {
            for r in repo::list(db, &id).await? {
                if let Err(e) = files.remove_file(&r).await {
                    tracing::warn!(recording_id = %r.id, error = %e, "retention could not remove a file");
                }
            }
            if crate::store::erasure::delete_session(db, &id).await? {
                out.sessions += 1;
            }
        }
    }
    if out != Purged::default() {
        tracing::info!(
            recordings = out.recordings,
            chat_or_photos_sessions = out.sessions_with_chat_or_photos,
            sessions = out.sessions,
            "retention purged expired data"
        );
    }
    Ok(out)
}

/// The retention job as the sweeper runs it.
pub struct RetentionJob {
    pub db: DatabaseConnection,
    pub files: Arc<RecordingFiles>,
    pub cfg: RetentionConfig,
}

impl RetentionJob {
    pub async fn run(&self) {
        if !self.cfg.is_active() {
            return;
        }
        if let Err(e) = purge_expired(&self.db, &self.files, &self.cfg, Utc::now()).await {
            tracing::warn!(error = %e, "retention round failed");
        }
    }
}
