//! Use case: a participant uploads a photo ("show me") or a frame capture. The bytes
//! decide the format (JPEG, PNG, WebP by magic number); JPEG metadata (EXIF with its GPS
//! position, XMP, IPTC, comments) is removed before anything is stored; the stored bytes'
//! SHA-256 is kept; the `snapshot.taken` event commits with the row; the live room tells
//! staff at once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use sha2::{Digest, Sha256};

use crate::domain::images::{self, JpegError};
use crate::services::bus::{RoomSignal, SessionBus, SnapshotNote};
use crate::store::snapshots::{self as store_snapshots, SnapshotMeta, StoreError};

/// Where a snapshot came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotKind {
    /// Taken on the participant's own page (rear camera, on an agent's request).
    Photo,
    /// A frame captured from someone's video.
    Frame,
}

impl SnapshotKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotKind::Photo => "photo",
            SnapshotKind::Frame => "frame",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("only JPEG, PNG and WebP images are accepted")]
    Unsupported,
    #[error("the image could not be read: {0}")]
    Malformed(JpegError),
    #[error("this session already holds {0} photos")]
    Limit(u32),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// What an upload needs: explicit handles.
#[derive(Clone)]
pub struct Handles {
    pub db: DatabaseConnection,
    pub bus: Arc<dyn SessionBus>,
    pub max_per_session: u32,
}

/// Checks, cleans and stores one upload by `participant_id` of `session_id`.
pub async fn take(
    h: &Handles,
    session_id: &str,
    participant_id: &str,
    kind: SnapshotKind,
    bytes: Vec<u8>,
    now: DateTime<Utc>,
) -> Result<SnapshotMeta, SnapshotError> {
    let ty = images::sniff(&bytes).ok_or(SnapshotError::Unsupported)?;
    // Location and other metadata never reach the database, whatever the format.
    let data = images::strip_metadata(ty, &bytes).map_err(SnapshotError::Malformed)?;
    let meta = SnapshotMeta {
        id: uuid::Uuid::now_v7().to_string(),
        session_id: session_id.to_owned(),
        participant_id: participant_id.to_owned(),
        kind: kind.as_str().to_owned(),
        content_type: ty.content_type().to_owned(),
        size: i64::try_from(data.len()).unwrap_or(i64::MAX),
        sha256: hex::encode(Sha256::digest(&data)),
        created_at: now,
    };
    store_snapshots::insert(&h.db, meta.clone(), data, h.max_per_session)
        .await
        .map_err(|e| match e {
            StoreError::Limit(n) => SnapshotError::Limit(n),
            StoreError::Db(e) => SnapshotError::Db(e),
        })?;
    let note = SnapshotNote {
        id: meta.id.clone(),
        participant_id: meta.participant_id.clone(),
        kind: meta.kind.clone(),
        content_type: meta.content_type.clone(),
        size: u64::try_from(meta.size).unwrap_or(0),
        sha256: meta.sha256.clone(),
        at: meta
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    };
    h.bus.publish(session_id, RoomSignal::Snapshot(note)).await;
    Ok(meta)
}
