//! What nodes say to each other over the broker (JSON). Every message is parsed into these
//! types first; anything that does not parse is dropped with a log line by the caller.

use serde::{Deserialize, Serialize};

use crate::domain::{Mode, Role};
use crate::services::bus::{PrecheckNote, RecordingNote, RoomSignal, SnapshotNote};
use crate::signaling::protocol::{CloseReason, Media};
use crate::signaling::room::{ConnId, Joiner};

/// A socket node to a room's owner (`{prefix}.node.{owner}.in`). `seq` counts per socket
/// from 1 (the join); the owner applies each `seq` once, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ToOwner {
    /// Sent as a request: the owner answers [`JoinReply`].
    Join {
        session: String,
        from: String,
        conn: ConnId,
        seq: u64,
        joiner: WireJoiner,
    },
    /// A client message, as the client sent it (already checked by the socket node).
    Msg {
        session: String,
        from: String,
        conn: ConnId,
        seq: u64,
        text: String,
    },
    /// The socket closed.
    Gone {
        session: String,
        from: String,
        conn: ConnId,
        seq: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum JoinReply {
    Ok,
    /// This node does not own the room (any more): look the owner up again.
    NotOwner,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireJoiner {
    pub participant_id: String,
    pub role: String,
    pub mode: Option<String>,
    pub name: String,
    pub instance: String,
    pub media: Media,
    pub lobby: bool,
    #[serde(default)]
    pub media_mode: Option<String>,
    #[serde(default)]
    pub recording: Option<crate::signaling::room::recording::RecordingJoin>,
}

impl WireJoiner {
    pub fn from_joiner(j: &Joiner) -> Self {
        Self {
            participant_id: j.participant_id.clone(),
            role: j.role.as_str().to_owned(),
            mode: j.mode.map(|m| m.as_str().to_owned()),
            name: j.name.clone(),
            instance: j.instance.clone(),
            media: j.media,
            lobby: j.lobby,
            media_mode: j.media_mode.map(|m| m.as_str().to_owned()),
            recording: j.recording.clone(),
        }
    }

    /// The joiner for the owner's room, under the owner's own connection id.
    pub fn into_joiner(self, conn: ConnId) -> Option<Joiner> {
        let role: Role = self.role.parse().ok()?;
        let mode = match self.mode {
            Some(m) => Some(m.parse::<Mode>().ok()?),
            None => None,
        };
        Some(Joiner {
            conn,
            participant_id: self.participant_id,
            role,
            mode,
            name: self.name,
            instance: self.instance,
            media: self.media,
            lobby: self.lobby,
            media_mode: self
                .media_mode
                .as_deref()
                .and_then(crate::media::MediaMode::parse),
            recording: self.recording,
        })
    }
}

/// A room's owner to a socket node (`{prefix}.node.{node}.out`): what the room sends to
/// one socket there. `seq` counts per socket from 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToSocketNode {
    pub conn: ConnId,
    pub seq: u64,
    pub out: WireOut,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum WireOut {
    Text {
        text: String,
    },
    Close {
        code: u16,
    },
    /// The room let the socket go without a close (it stopped here): reconnect.
    Gone,
}

/// Every node, every second (`{prefix}.hb`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub draining: bool,
}

/// A session-bus signal for every node (`{prefix}.signal`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SignalMsg {
    pub id: String,
    pub origin: String,
    pub session: String,
    pub signal: WireSignal,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum WireSignal {
    Ended {
        reason: String,
    },
    LinkRevoked {
        participant_id: String,
    },
    Removed {
        participant_id: String,
    },
    ModeChanged {
        participant_id: String,
        mode: String,
    },
    TransferStarted {
        to: String,
    },
    Snapshot {
        note: SnapshotNote,
    },
    Precheck {
        participant_id: String,
        name: String,
        note: PrecheckNote,
    },
    Recording {
        note: RecordingNote,
    },
}

impl From<&RoomSignal> for WireSignal {
    fn from(s: &RoomSignal) -> Self {
        match s.clone() {
            RoomSignal::Ended { reason } => Self::Ended { reason },
            RoomSignal::LinkRevoked { participant_id } => Self::LinkRevoked { participant_id },
            RoomSignal::Removed { participant_id } => Self::Removed { participant_id },
            RoomSignal::ModeChanged {
                participant_id,
                mode,
            } => Self::ModeChanged {
                participant_id,
                mode: mode.as_str().to_owned(),
            },
            RoomSignal::TransferStarted { to } => Self::TransferStarted { to },
            RoomSignal::Snapshot(note) => Self::Snapshot { note },
            RoomSignal::Precheck {
                participant_id,
                name,
                note,
            } => Self::Precheck {
                participant_id,
                name,
                note,
            },
            RoomSignal::Recording(note) => Self::Recording { note },
        }
    }
}

impl WireSignal {
    pub fn into_signal(self) -> Option<RoomSignal> {
        Some(match self {
            Self::Ended { reason } => RoomSignal::Ended { reason },
            Self::LinkRevoked { participant_id } => RoomSignal::LinkRevoked { participant_id },
            Self::Removed { participant_id } => RoomSignal::Removed { participant_id },
            Self::ModeChanged {
                participant_id,
                mode,
            } => RoomSignal::ModeChanged {
                participant_id,
                mode: mode.parse().ok()?,
            },
            Self::TransferStarted { to } => RoomSignal::TransferStarted { to },
            Self::Snapshot { note } => RoomSignal::Snapshot(note),
            Self::Precheck {
                participant_id,
                name,
                note,
            } => RoomSignal::Precheck {
                participant_id,
                name,
                note,
            },
            Self::Recording { note } => RoomSignal::Recording(note),
        })
    }
}

const CLOSE_REASONS: [CloseReason; 15] = [
    CloseReason::Normal,
    CloseReason::GoingAway,
    CloseReason::BadMessage,
    CloseReason::TooLarge,
    CloseReason::Unauthorized,
    CloseReason::UnsupportedVersion,
    CloseReason::RateLimited,
    CloseReason::Replaced,
    CloseReason::SessionEnded,
    CloseReason::LinkRevoked,
    CloseReason::Timeout,
    CloseReason::Removed,
    CloseReason::Denied,
    CloseReason::RoomFull,
    CloseReason::Internal,
];

/// The close reason of a code an owner sent; an unknown code reconnects.
pub fn close_reason(code: u16) -> CloseReason {
    CLOSE_REASONS
        .into_iter()
        .find(|r| r.code() == code)
        .unwrap_or(CloseReason::GoingAway)
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Result<T, serde_json::Error> {
    serde_json::from_slice(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_codes_round_trip_and_garbage_is_an_error() {
        for r in CLOSE_REASONS {
            assert_eq!(close_reason(r.code()), r);
        }
        assert_eq!(close_reason(1), CloseReason::GoingAway);
        for junk in [&b"{"[..], b"null", b"{\"t\":\"join\"}", b"\xff\xfe", b"[]"] {
            assert!(decode::<ToOwner>(junk).is_err());
            assert!(decode::<ToSocketNode>(junk).is_err());
            assert!(decode::<SignalMsg>(junk).is_err());
        }
        let bad_role = WireJoiner {
            participant_id: "p".into(),
            role: "king".into(),
            mode: None,
            name: "n".into(),
            instance: "i".into(),
            media: Media::default(),
            lobby: false,
            media_mode: None,
            recording: None,
        };
        assert!(bad_role.into_joiner(1).is_none());
        let s = WireSignal::ModeChanged {
            participant_id: "p".into(),
            mode: "shout".into(),
        };
        assert!(s.into_signal().is_none());
    }
}
