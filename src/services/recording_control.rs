//! Recording control use cases: start, pause, resume and stop a session's recording (REST,
//! widget, an agent's call page), store consent decisions, and the tap: the one call that
//! tells the recorder whose media to write.
//!
//! The state lives in the session's row (the source of truth for every caller); the live
//! room mirrors it (told through the session bus) and decides, per participant, whether
//! their media is written now: running, consented and routed ([`RecordingTap::set`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use crate::config::recording::RecordingConfig;
use crate::domain::media::MediaMode;
use crate::domain::recording::{self, Action, Actor, Decision, RecState, RecordingMode, Refusal};
use crate::store::entities::session;
use crate::store::error::SessionError;
use crate::store::recording_control as repo;

/// Whose media is written right now. The room calls `set` on every change of a
/// participant's `running && consented && routed`, in order, never twice the same way.
#[async_trait::async_trait]
pub trait RecordingTap: Send + Sync + 'static {
    async fn set(&self, session_id: &str, participant_id: &str, on: bool);
}

/// The recorder is the tap of a server with a media engine.
#[async_trait::async_trait]
impl RecordingTap for crate::recording::Recorder {
    async fn set(&self, session_id: &str, participant_id: &str, on: bool) {
        if let Err(e) = crate::recording::Recorder::set(self, session_id, participant_id, on).await
        {
            tracing::warn!(error = %e, session_id, participant_id, on, "the recorder refused a change");
        }
    }
}

/// The tap of a server without a media engine: it only logs each change.
pub struct LoggingTap;

#[async_trait::async_trait]
impl RecordingTap for LoggingTap {
    async fn set(&self, session_id: &str, participant_id: &str, on: bool) {
        tracing::info!(session_id, participant_id, on, "recording tap");
    }
}

/// One call of [`RecordingTap::set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapCall {
    pub session_id: String,
    pub participant_id: String,
    pub on: bool,
}

/// A tap that keeps every call, in order: tests (and diagnostics) read exactly when each
/// participant's recording was switched.
#[derive(Default)]
pub struct TapLedger {
    calls: Mutex<Vec<TapCall>>,
}

impl TapLedger {
    pub fn calls(&self) -> Vec<TapCall> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// The calls for one session's participant, as `on` values in order.
    pub fn flips(&self, session_id: &str, participant_id: &str) -> Vec<bool> {
        self.calls()
            .into_iter()
            .filter(|c| c.session_id == session_id && c.participant_id == participant_id)
            .map(|c| c.on)
            .collect()
    }
}

#[async_trait::async_trait]
impl RecordingTap for TapLedger {
    async fn set(&self, session_id: &str, participant_id: &str, on: bool) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(TapCall {
                session_id: session_id.to_owned(),
                participant_id: participant_id.to_owned(),
                on,
            });
        }
    }
}

/// Why a recording command was refused. The call is never affected.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("{0}")]
    Refused(Refusal),
    #[error("only an agent can control the recording")]
    NotAllowed,
    #[error(
        "this session's media_mode is p2p: its media never reaches the server, so it cannot be recorded"
    )]
    PeerToPeer,
    #[error("this server runs no media engine (media.enabled = false): calls cannot be recorded")]
    NoEngine,
    #[error(
        "the recordings' disk has {free} bytes free, below the floor of {floor} (recording.min_free_bytes)"
    )]
    LowDisk { free: u64, floor: u64 },
    #[error("cannot read the free space of the recordings' disk")]
    DiskUnknown(#[source] std::io::Error),
}

impl RecordingError {
    /// A stable code (also the signaling `error` code).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Session(SessionError::SessionNotFound) => "session_not_found",
            Self::Session(SessionError::SessionEnded) => "session_ended",
            Self::Session(_) => "internal",
            Self::Refused(Refusal::ModeOff) => "recording_off",
            Self::Refused(Refusal::Automatic) => "recording_automatic",
            Self::Refused(Refusal::AlreadyRecording) => "already_recording",
            Self::Refused(Refusal::AlreadyPaused) => "already_paused",
            Self::Refused(Refusal::NotRecording) => "not_recording",
            Self::NotAllowed => "forbidden",
            Self::PeerToPeer => "media_p2p",
            Self::NoEngine => "media_unavailable",
            Self::LowDisk { .. } => "insufficient_storage",
            Self::DiskUnknown(_) => "insufficient_storage",
        }
    }

    /// A fixed human message (the signaling `error` message).
    pub fn static_message(&self) -> &'static str {
        match self {
            Self::Session(SessionError::SessionNotFound) => "no session with this id",
            Self::Session(SessionError::SessionEnded) => "the session has ended",
            Self::Session(_) => "internal error",
            Self::Refused(Refusal::ModeOff) => "recording is off for this session",
            Self::Refused(Refusal::Automatic) => {
                "this session records always: the server starts and stops it"
            }
            Self::Refused(Refusal::AlreadyRecording) => "already recording",
            Self::Refused(Refusal::AlreadyPaused) => "the recording is already paused",
            Self::Refused(Refusal::NotRecording) => "nothing is being recorded",
            Self::NotAllowed => "only an agent can control the recording",
            Self::PeerToPeer => "a peer-to-peer session cannot be recorded",
            Self::NoEngine => "this server cannot record calls",
            Self::LowDisk { .. } | Self::DiskUnknown(_) => "not enough free disk space to record",
        }
    }
}

/// What recording control needs, built once from the configuration.
pub struct Control {
    pub db: DatabaseConnection,
    /// `[recording]`.
    pub config: RecordingConfig,
    /// The server's `[media] mode`; `None` when this node runs no media engine.
    pub media: Option<MediaMode>,
    /// Where recordings are written: the free-space floor is checked there.
    pub dir: PathBuf,
    pub tap: Arc<dyn RecordingTap>,
}

/// A session's recording as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub mode: RecordingMode,
    pub state: RecState,
}

impl Control {
    /// The session's recording mode: its own, else the server's.
    pub fn mode_of(&self, s: &session::Model) -> RecordingMode {
        s.recording_mode
            .as_deref()
            .and_then(RecordingMode::parse)
            .unwrap_or(self.config.mode)
    }

    pub fn status_of(&self, s: &session::Model) -> Status {
        let mut state = repo::state_of(s);
        // An ended session records nothing, whatever was running when it ended.
        if s.status == crate::domain::session::Status::Ended.as_str() && state.is_active() {
            state = RecState::Stopped;
        }
        Status {
            mode: self.mode_of(s),
            state,
        }
    }

    /// Starts, pauses, resumes or stops the session's recording. `by`: the participant
    /// who asked (an agent's page or widget), if one did. On success the caller tells the
    /// live room (the bus, or the room itself) the new state.
    pub async fn command(
        &self,
        session_id: &str,
        action: Action,
        actor: Actor,
        by: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Status, RecordingError> {
        if action == Action::Start || action == Action::Resume {
            self.check_disk()?;
        }
        let data = serde_json::json!({ "by": by, "action": action.as_str() });
        let r = repo::transition(&self.db, session_id, by, now, |s| {
            let mode = self.mode_of(s);
            let state = repo::state_of(s);
            let to = recording::transition(mode, state, action, actor)
                .map_err(RecordingError::Refused)?;
            if action == Action::Start {
                let Some(server) = self.media else {
                    return Err(RecordingError::NoEngine);
                };
                let own = s.media_mode.as_deref().and_then(MediaMode::parse);
                if !recording::allowed_under(recording::media_mode_for(own, mode, server)) {
                    return Err(RecordingError::PeerToPeer);
                }
            }
            Ok(repo::Step {
                to,
                kind: action.event(),
                data,
            })
        })
        .await??;
        let status = self.status_of(&r);
        tracing::info!(
            session_id,
            action = action.as_str(),
            state = status.state.as_str(),
            "recording"
        );
        Ok(status)
    }

    /// Refuses to start below the free-space floor.
    fn check_disk(&self) -> Result<(), RecordingError> {
        let free = free_bytes(&self.dir).map_err(RecordingError::DiskUnknown)?;
        if free < self.config.min_free_bytes {
            tracing::warn!(
                free,
                floor = self.config.min_free_bytes,
                "recording refused: disk below the floor"
            );
            return Err(RecordingError::LowDisk {
                free,
                floor: self.config.min_free_bytes,
            });
        }
        Ok(())
    }

    /// Stores a participant's consent decision (and its timeline event) under the
    /// configured wording version.
    pub async fn record_consent(
        &self,
        session_id: &str,
        participant_id: &str,
        decision: Decision,
        ip: Option<String>,
        user_agent: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<(), SessionError> {
        repo::record_consent(
            &self.db,
            repo::NewConsent {
                session_id: session_id.to_owned(),
                participant_id: participant_id.to_owned(),
                decision,
                wording_version: self.config.consent_text_version.clone(),
                ip,
                user_agent,
                at: now,
            },
        )
        .await
    }

    /// What a joining page's room needs to know (`None`: the session is not recorded).
    pub async fn join_info(
        &self,
        session_id: &str,
        participant_id: &str,
        ip: Option<String>,
        user_agent: Option<String>,
    ) -> Result<Option<crate::domain::recording::RecordingJoin>, sea_orm::DbErr> {
        use sea_orm::EntityTrait;
        let Some(s) = session::Entity::find_by_id(session_id.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let st = self.status_of(&s);
        if st.mode == RecordingMode::Off {
            return Ok(None);
        }
        let consent = repo::latest_decision(&self.db, session_id, participant_id).await?;
        Ok(Some(crate::domain::recording::RecordingJoin {
            mode: st.mode,
            state: st.state,
            consent,
            ip,
            user_agent: user_agent.map(|u| u.chars().take(MAX_USER_AGENT).collect()),
        }))
    }
}

/// Longest user agent kept with a consent record, in characters.
pub const MAX_USER_AGENT: usize = 512;

/// Free bytes (for unprivileged users) on the file system holding `dir`, or its nearest
/// existing ancestor (the directory is created with the first recording).
pub fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    let mut p = dir;
    while !p.exists() {
        p = p.parent().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no existing ancestor")
        })?;
    }
    statvfs_free(p)
}

#[cfg(unix)]
fn statvfs_free(p: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path; `st` is plain old data that statvfs
    // fills in completely on success and that we only read after a successful call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)]
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(not(unix))]
fn statvfs_free(_: &Path) -> std::io::Result<u64> {
    Ok(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_from_the_nearest_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(&dir.path().join("recordings/not/yet")).unwrap();
        assert!(free > 0);
        let again = free_bytes(dir.path()).unwrap();
        assert!(again.abs_diff(free) < 256 << 20, "{again} vs {free}");
        assert!(free_bytes(Path::new("relative/nowhere")).is_err());
    }

    #[tokio::test]
    async fn the_ledger_keeps_every_flip_in_order() {
        let t = TapLedger::default();
        t.set("s", "a", true).await;
        t.set("s", "b", true).await;
        t.set("s", "a", false).await;
        assert_eq!(t.flips("s", "a"), vec![true, false]);
        assert_eq!(t.flips("s", "b"), vec![true]);
        assert!(t.flips("x", "a").is_empty());
    }

    #[test]
    fn every_refusal_has_its_own_code() {
        let codes: std::collections::HashSet<_> = [
            Refusal::ModeOff,
            Refusal::Automatic,
            Refusal::AlreadyRecording,
            Refusal::AlreadyPaused,
            Refusal::NotRecording,
        ]
        .into_iter()
        .map(|r| RecordingError::Refused(r).code())
        .collect();
        assert_eq!(codes.len(), 5);
    }
}
