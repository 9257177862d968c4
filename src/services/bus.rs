//! The session bus: how something that happened to a session outside signaling (the REST
//! API ended it, removed a participant, changed a supervisor's mode, started a transfer)
//! reaches its live room.
//!
//! One trait, one in-process implementation (the rooms hub of this process). A deployment
//! of several nodes adds an implementation over a broker; nothing else changes. Unlike a
//! broadcast channel, publishing never drops a signal because a receiver lagged.

use async_trait::async_trait;

use crate::domain::Mode;

/// What a live room must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomSignal {
    /// The session ended (REST, sweeper); everyone is told and disconnected.
    Ended { reason: String },
    /// A participant's link was replaced: their socket goes (4411).
    LinkRevoked { participant_id: String },
    /// A participant was removed from the session: their socket goes (4403).
    Removed { participant_id: String },
    /// A supervisor's mode changed.
    ModeChanged { participant_id: String, mode: Mode },
    /// A transfer to the agent `to` started; the agents present now hand over once `to`
    /// has joined.
    TransferStarted { to: String },
    /// A participant uploaded a photo or frame capture: staff in the call see it at once.
    Snapshot(SnapshotNote),
    /// A participant's page checked its devices and network before joining (it may not
    /// be in the room yet).
    Precheck {
        participant_id: String,
        name: String,
        note: PrecheckNote,
    },
    /// The session's recording changed state (REST, widget, or an agent's page through
    /// the room's owner): pages show it, the tap follows.
    Recording(RecordingNote),
}

/// A recording state change as the room learns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingNote {
    pub state: crate::domain::recording::RecState,
}

/// A pre-call check as staff see it. Each transport: whether a TURN relay candidate was
/// gathered over it (`None`: not offered to the page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PrecheckNote {
    pub camera: bool,
    pub microphone: bool,
    pub udp: Option<bool>,
    pub tcp: Option<bool>,
    pub tls: Option<bool>,
}

/// A stored snapshot as the room announces it (no bytes: pages fetch them by id).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SnapshotNote {
    pub id: String,
    pub participant_id: String,
    pub kind: String,
    pub content_type: String,
    pub size: u64,
    pub sha256: String,
    /// RFC 3339.
    pub at: String,
}

#[async_trait]
pub trait SessionBus: Send + Sync {
    /// Delivers `signal` to the session's live room, if it has one.
    async fn publish(&self, session_id: &str, signal: RoomSignal);
}

/// Several buses as one: each signal goes to every part, in order (the live rooms, the
/// bundled TURN server's revocations).
pub struct Fanout(pub Vec<std::sync::Arc<dyn SessionBus>>);

#[async_trait]
impl SessionBus for Fanout {
    async fn publish(&self, session_id: &str, signal: RoomSignal) {
        for bus in &self.0 {
            bus.publish(session_id, signal.clone()).await;
        }
    }
}
