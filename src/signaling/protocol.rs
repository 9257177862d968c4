//! The signaling protocol, version 2 (documented in `docs/signaling.md`).
//!
//! JSON text frames, each an object tagged by `"type"`. Parsing is the schema check: an
//! unknown type, a missing field or an over-long value is a [`CloseReason::BadMessage`].

use serde::{Deserialize, Serialize};

use crate::domain::{Grant, Mode};

pub const PROTOCOL_VERSION: u32 = 2;
/// Longest SDP accepted in an offer or answer.
pub const MAX_SDP: usize = 48 * 1024;
/// Longest ICE candidate line, mid or ufrag.
pub const MAX_CANDIDATE: usize = 1024;
pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_INSTANCE: usize = 64;
/// Longest participant id accepted in `to` and `participant_id`.
pub const MAX_ID: usize = 64;
/// Longest free text (decline message, lobby message), in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// Longest chat message, in characters (longer ones get `error` `too_long`, unstored).
pub const MAX_CHAT_CHARS: usize = 2000;

/// What a page sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message on a socket.
    Join {
        v: u32,
        credential: String,
        /// Random per page load: the others recreate their connection when this changes.
        instance: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        media: Option<Media>,
    },
    Offer {
        to: String,
        sdp: String,
        /// Set when the offer restarts ICE.
        #[serde(default)]
        restart: bool,
    },
    Answer {
        to: String,
        sdp: String,
    },
    Candidate {
        to: String,
        candidate: Candidate,
    },
    /// Ask `to` to restart ICE (it makes the offer).
    RestartIce {
        to: String,
    },
    Media(Media),
    /// Leave the call; the others stay.
    HangUp,
    /// End the session for everyone (agents only).
    End,
    /// The customer will not take the call now.
    Decline {
        reason: DeclineReason,
        #[serde(default)]
        message: Option<String>,
    },
    /// Let someone in from the lobby (agents only).
    Admit {
        participant_id: String,
    },
    /// Turn someone in the lobby away (agents only).
    Deny {
        participant_id: String,
    },
    /// Shown to everyone waiting in the lobby (agents only).
    LobbyMessage {
        text: String,
    },
    /// Change a supervisor's mode (agents, or the supervisor itself).
    SetMode {
        participant_id: String,
        mode: WireMode,
    },
    /// A text chat message to everyone in the call who sees the sender.
    Chat {
        text: String,
    },
    /// Ask `to` (usually the customer) for a photo (agents only).
    RequestPhoto {
        to: String,
    },
    /// This page's call quality over the last interval (every 5 s). The values are checked
    /// by the room (`error` `invalid_stats` when one is missing or out of bounds), so they
    /// are read as raw JSON here.
    Stats {
        #[serde(default)]
        loss: Option<serde_json::Value>,
        #[serde(default)]
        jitter: Option<serde_json::Value>,
        #[serde(default)]
        rtt: Option<serde_json::Value>,
        #[serde(default)]
        bitrate: Option<serde_json::Value>,
        #[serde(default)]
        fps: Option<serde_json::Value>,
        #[serde(default)]
        freezes: Option<serde_json::Value>,
        #[serde(default)]
        quality_limitation_reason: Option<serde_json::Value>,
    },
    Ping,
    /// A routed call: the answer to the media engine's latest `media_offer`.
    MediaAnswer {
        sdp: String,
    },
    /// A routed call: a trickled ICE candidate for the media engine.
    MediaCandidate {
        candidate: Candidate,
    },
    /// Start, pause, resume or stop the session's recording (agents only).
    Recording {
        action: crate::domain::recording::Action,
    },
    /// This participant's answer to the recording consent prompt, or its withdrawal.
    Consent {
        decision: crate::domain::recording::Decision,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeclineReason {
    Busy,
    NotNow,
    Other,
}

impl DeclineReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeclineReason::Busy => "busy",
            DeclineReason::NotNow => "not_now",
            DeclineReason::Other => "other",
        }
    }
}

/// A supervisor mode as it travels on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WireMode {
    Listen,
    Whisper,
    Barge,
}

impl From<WireMode> for Mode {
    fn from(m: WireMode) -> Mode {
        match m {
            WireMode::Listen => Mode::Listen,
            WireMode::Whisper => Mode::Whisper,
            WireMode::Barge => Mode::Barge,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Media {
    pub audio: bool,
    pub video: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Candidate {
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default)]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// Another participant as one page sees them (see "The roster entry" in the docs). Hidden
/// entries carry no role, name, mode, media or state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub instance: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<Media>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hidden: bool,
    /// What the receiving page sends to this participant.
    pub send: Grant,
    /// Whether the receiving page shows this participant's media.
    pub receive: bool,
    /// The receiving page's politeness towards this participant.
    pub polite: bool,
}

/// Per TURN transport: a relay candidate was gathered (`null`: not offered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Relay {
    pub udp: Option<bool>,
    pub tcp: Option<bool>,
    pub tls: Option<bool>,
}

/// Someone waiting in the lobby, as agents see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waiting {
    pub id: String,
    pub name: String,
}

/// A participant named in a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Who {
    pub id: String,
    pub name: String,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Joined {
        v: u32,
        participant_id: String,
        role: &'static str,
        mode: Option<&'static str>,
        roster: Vec<Entry>,
        /// True while waiting in the lobby (the roster is then empty).
        lobby: bool,
        /// True when this socket took over from another one of the same participant.
        took_over: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        lobby_message: Option<String>,
        /// The call goes through the media engine (a `media_offer` follows).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        routed: bool,
    },
    ParticipantJoined {
        participant: Entry,
    },
    ParticipantUpdated {
        participant: Entry,
    },
    ParticipantLeft {
        participant_id: String,
        reason: &'static str,
    },
    /// Agents: who waits in the lobby.
    Lobby {
        waiting: Vec<Waiting>,
    },
    /// Lobby: the agent's message changed.
    LobbyMessage {
        text: String,
    },
    /// Agents: the customer declined.
    Declined {
        participant_id: String,
        name: String,
        reason: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The agents who handed the call over: the new agent is in.
    Transferred {
        to: Who,
        warm_secs: u64,
    },
    Offer {
        from: String,
        sdp: String,
        restart: bool,
    },
    Answer {
        from: String,
        sdp: String,
    },
    Candidate {
        from: String,
        candidate: Candidate,
    },
    RestartIce {
        from: String,
    },
    /// The call goes through the server's media engine (`true`) or peer to peer again.
    /// Pages open the engine connection on the `media_offer` that follows and drop their
    /// peer-to-peer connections once the engine's media plays.
    Routed {
        routed: bool,
    },
    /// A routed call: the media engine's offer for this page's one engine connection (first
    /// and renegotiations alike); answer with `media_answer`.
    MediaOffer {
        sdp: String,
    },
    /// Fresh TURN credentials before the current ones run out: pages pass them to
    /// `setConfiguration` and restart ICE so relays are re-allocated under them.
    IceServers {
        ice_servers: Vec<crate::relay::ice::IceServer>,
        expires_in: u64,
    },
    Ended {
        reason: String,
    },
    Error {
        code: &'static str,
        message: &'static str,
    },
    /// Staff: a participant's pre-call check (devices, TURN transports with a relay).
    Precheck {
        participant_id: String,
        name: String,
        camera: bool,
        microphone: bool,
        relay: Relay,
    },
    /// Staff: a participant's latest quality report, summarised.
    Quality {
        participant_id: String,
        /// `good`, `fair` or `poor`.
        level: &'static str,
        loss_permille: u32,
        rtt_ms: u32,
        fps: u32,
        limitation: &'static str,
    },
    /// An agent asks this page for a photo.
    RequestPhoto {
        from: String,
        name: String,
    },
    /// A photo or frame capture was stored: staff (and its uploader) fetch it by id.
    Snapshot {
        id: String,
        from: String,
        name: String,
        kind: String,
        content_type: String,
        size: u64,
        sha256: String,
        at: String,
    },
    /// A chat message, to everyone in the call who sees its sender (the sender too).
    Chat {
        id: String,
        /// The sender's participant id.
        from: String,
        name: String,
        role: &'static str,
        text: String,
        /// RFC 3339 time the server took it.
        at: String,
        /// Only staff see it (the sender is a listening or whispering supervisor).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        internal: bool,
    },
    Pong,
    /// The session's recording as this page sees it (state, who consented, who is being
    /// recorded); sent on every change and when the page enters the call.
    Recording(crate::signaling::room::RecordingView),
}

impl ServerMsg {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{\"type\":\"error\"}".to_owned())
    }
}

/// Why the server closes a socket: the one mapping to WebSocket close codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CloseReason {
    #[error("leaving")]
    Normal,
    #[error("server shutting down")]
    GoingAway,
    #[error("malformed or unexpected message")]
    BadMessage,
    #[error("message too large")]
    TooLarge,
    #[error("credential missing, invalid or expired")]
    Unauthorized,
    #[error("unsupported protocol version")]
    UnsupportedVersion,
    #[error("too many messages")]
    RateLimited,
    #[error("replaced by a newer connection")]
    Replaced,
    #[error("the session has ended")]
    SessionEnded,
    #[error("the link was replaced")]
    LinkRevoked,
    #[error("timed out")]
    Timeout,
    #[error("removed from the call")]
    Removed,
    #[error("turned away from the lobby")]
    Denied,
    #[error("the call is full")]
    RoomFull,
    #[error("internal error")]
    Internal,
}

impl CloseReason {
    /// The WebSocket close code. 4xxx codes are Sightline's; pages must not reconnect
    /// after codes for which [`is_final`](Self::is_final) holds.
    pub fn code(self) -> u16 {
        match self {
            CloseReason::Normal => 1000,
            CloseReason::GoingAway => 1001,
            CloseReason::TooLarge => 1009,
            CloseReason::Internal => 1011,
            CloseReason::BadMessage => 4400,
            CloseReason::Unauthorized => 4401,
            CloseReason::Removed => 4403,
            CloseReason::Denied => 4404,
            CloseReason::RoomFull => 4413,
            CloseReason::UnsupportedVersion => 4406,
            CloseReason::Timeout => 4408,
            CloseReason::Replaced => 4409,
            CloseReason::SessionEnded => 4410,
            CloseReason::LinkRevoked => 4411,
            CloseReason::RateLimited => 4429,
        }
    }

    /// Short machine-readable reason sent with the close frame.
    pub fn slug(self) -> &'static str {
        match self {
            CloseReason::Normal => "normal",
            CloseReason::GoingAway => "going_away",
            CloseReason::BadMessage => "bad_message",
            CloseReason::TooLarge => "too_large",
            CloseReason::Unauthorized => "unauthorized",
            CloseReason::UnsupportedVersion => "unsupported_version",
            CloseReason::RateLimited => "rate_limited",
            CloseReason::Replaced => "replaced",
            CloseReason::SessionEnded => "session_ended",
            CloseReason::LinkRevoked => "link_revoked",
            CloseReason::Timeout => "timeout",
            CloseReason::Removed => "removed",
            CloseReason::Denied => "denied",
            CloseReason::RoomFull => "room_full",
            CloseReason::Internal => "internal",
        }
    }
}

fn too_long(s: &str, max: usize) -> bool {
    s.len() > max
}

fn id_ok(id: &str) -> bool {
    !id.is_empty() && !too_long(id, MAX_ID)
}

/// Cleans free text from a page (decline reason, lobby message): no control characters,
/// trimmed; `None` when nothing is left.
pub fn clean_text(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_TEXT_CHARS)
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Cleans a chat message: line breaks and tabs stay, other control characters become
/// spaces, surrounding blanks go; `None` when nothing is left. Length is checked by the
/// room (over [`MAX_CHAT_CHARS`] the sender gets `too_long`).
pub fn clean_chat(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .map(|c| {
            if c == '\n' || c == '\t' || !c.is_control() {
                c
            } else {
                ' '
            }
        })
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// Parses and checks one text frame from a page.
pub fn parse(text: &str) -> Result<ClientMsg, CloseReason> {
    let msg: ClientMsg = serde_json::from_str(text).map_err(|_| CloseReason::BadMessage)?;
    let ok = match &msg {
        ClientMsg::Join {
            credential,
            instance,
            name,
            ..
        } => {
            !too_long(credential, 512)
                && !instance.is_empty()
                && !too_long(instance, MAX_INSTANCE)
                && name
                    .as_deref()
                    .is_none_or(|n| n.chars().count() <= MAX_NAME_CHARS)
        }
        ClientMsg::Offer { to, sdp, .. } | ClientMsg::Answer { to, sdp } => {
            id_ok(to) && !sdp.is_empty() && !too_long(sdp, MAX_SDP)
        }
        ClientMsg::MediaAnswer { sdp } => !sdp.is_empty() && !too_long(sdp, MAX_SDP),
        ClientMsg::MediaCandidate { candidate } => {
            !too_long(&candidate.candidate, MAX_CANDIDATE)
                && candidate
                    .sdp_mid
                    .as_deref()
                    .is_none_or(|m| !too_long(m, 64))
                && candidate
                    .username_fragment
                    .as_deref()
                    .is_none_or(|m| !too_long(m, 256))
        }
        ClientMsg::RestartIce { to } | ClientMsg::RequestPhoto { to } => id_ok(to),
        ClientMsg::Admit { participant_id }
        | ClientMsg::Deny { participant_id }
        | ClientMsg::SetMode { participant_id, .. } => id_ok(participant_id),
        ClientMsg::Decline { message, .. } => message
            .as_deref()
            .is_none_or(|m| m.chars().count() <= MAX_TEXT_CHARS),
        ClientMsg::LobbyMessage { text } => text.chars().count() <= MAX_TEXT_CHARS,
        ClientMsg::Candidate { to, candidate } => {
            id_ok(to)
                && !too_long(&candidate.candidate, MAX_CANDIDATE)
                && candidate
                    .sdp_mid
                    .as_deref()
                    .is_none_or(|m| !too_long(m, 64))
                && candidate
                    .username_fragment
                    .as_deref()
                    .is_none_or(|m| !too_long(m, 256))
        }
        _ => true,
    };
    if ok {
        Ok(msg)
    } else {
        Err(CloseReason::BadMessage)
    }
}

/// Cleans a display name typed by a customer: trims, drops control characters, bounds it.
pub fn clean_name(raw: &str) -> Option<String> {
    let s: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// A token bucket (pure: `now` in milliseconds is passed in).
#[derive(Debug, Clone)]
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
}

impl RateLimiter {
    pub fn new(per_sec: u32, burst: u32, now_ms: u64) -> Self {
        Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last_ms: now_ms,
        }
    }

    /// Takes one token; false when the bucket is empty.
    pub fn allow(&mut self, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64 / 1000.0;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_client_message() {
        let join = parse(r#"{"type":"join","v":2,"credential":"abc","instance":"i1","name":"Sam","media":{"audio":true,"video":false}}"#).unwrap();
        assert!(matches!(join, ClientMsg::Join { v: 2, .. }));
        assert!(matches!(
            parse(r#"{"type":"offer","to":"p1","sdp":"v=0"}"#).unwrap(),
            ClientMsg::Offer { restart: false, .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"candidate","to":"p1","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}"#).unwrap(),
            ClientMsg::Candidate { .. }
        ));
        assert_eq!(
            parse(r#"{"type":"decline","reason":"not_now"}"#).unwrap(),
            ClientMsg::Decline {
                reason: DeclineReason::NotNow,
                message: None
            }
        );
        assert_eq!(
            parse(r#"{"type":"set_mode","participant_id":"p","mode":"whisper"}"#).unwrap(),
            ClientMsg::SetMode {
                participant_id: "p".into(),
                mode: WireMode::Whisper
            }
        );
        for t in [
            r#"{"type":"admit","participant_id":"p"}"#,
            r#"{"type":"deny","participant_id":"p"}"#,
            r#"{"type":"lobby_message","text":"two minutes"}"#,
            r#"{"type":"restart_ice","to":"p"}"#,
        ] {
            parse(t).unwrap();
        }
        assert_eq!(
            parse(r#"{"type":"media","audio":false,"video":true}"#).unwrap(),
            ClientMsg::Media(Media {
                audio: false,
                video: true
            })
        );
        for t in ["hang_up", "end", "ping"] {
            parse(&format!(r#"{{"type":"{t}"}}"#)).unwrap();
        }
        // In-call features: over-long chat text is the room's to refuse (`too_long`), and
        // stats values are checked there too (`invalid_stats`), so both parse here.
        let long = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "x".repeat(MAX_CHAT_CHARS + 1)
        );
        assert!(matches!(parse(&long).unwrap(), ClientMsg::Chat { .. }));
        assert!(matches!(
            parse(r#"{"type":"request_photo","to":"p"}"#).unwrap(),
            ClientMsg::RequestPhoto { .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"stats","loss":"bad"}"#).unwrap(),
            ClientMsg::Stats { .. }
        ));
        for bad in [
            r#"{"type":"chat"}"#,
            r#"{"type":"chat","text":1}"#,
            r#"{"type":"request_photo","to":""}"#,
            r#"{"type":"stats","mos":4}"#,
        ] {
            assert_eq!(parse(bad), Err(CloseReason::BadMessage), "{bad}");
        }
    }

    #[test]
    fn refuses_garbage_unknown_fields_and_oversize_values() {
        for bad in [
            "",
            "nope",
            "[]",
            r#"{"type":"launch"}"#,
            r#"{"type":"offer"}"#,
            r#"{"type":"offer","to":"p","sdp":""}"#,
            r#"{"type":"offer","sdp":"v=0"}"#,
            r#"{"type":"offer","to":"","sdp":"v=0"}"#,
            r#"{"type":"restart_ice"}"#,
            r#"{"type":"decline","reason":"bored"}"#,
            r#"{"type":"set_mode","participant_id":"p","mode":"shout"}"#,
            r#"{"type":"admit","participant_id":"p","extra":1}"#,
            r#"{"type":"join","v":1,"credential":"c","instance":""}"#,
        ] {
            assert_eq!(parse(bad), Err(CloseReason::BadMessage), "{bad}");
        }
        let long = format!(
            r#"{{"type":"answer","to":"p","sdp":"{}"}}"#,
            "a".repeat(MAX_SDP + 1)
        );
        assert_eq!(parse(&long), Err(CloseReason::BadMessage));
        let long = format!(
            r#"{{"type":"admit","participant_id":"{}"}}"#,
            "p".repeat(65)
        );
        assert_eq!(parse(&long), Err(CloseReason::BadMessage));
        let long = format!(
            r#"{{"type":"decline","reason":"other","message":"{}"}}"#,
            "é".repeat(MAX_TEXT_CHARS + 1)
        );
        assert_eq!(parse(&long), Err(CloseReason::BadMessage));
        let name = format!(
            r#"{{"type":"join","v":1,"credential":"c","instance":"i","name":"{}"}}"#,
            "n".repeat(MAX_NAME_CHARS + 1)
        );
        assert_eq!(parse(&name), Err(CloseReason::BadMessage));
    }

    #[test]
    fn server_messages_serialize_with_their_type() {
        let s = ServerMsg::ParticipantLeft {
            participant_id: "p".into(),
            reason: "timeout",
        }
        .to_json();
        assert_eq!(
            s,
            r#"{"type":"participant_left","participant_id":"p","reason":"timeout"}"#
        );
        let hidden = Entry {
            id: "s".into(),
            role: None,
            mode: None,
            name: None,
            instance: "i".into(),
            media: None,
            state: None,
            hidden: true,
            send: Grant::ALL,
            receive: false,
            polite: true,
        };
        let s = ServerMsg::ParticipantJoined {
            participant: hidden,
        }
        .to_json();
        assert_eq!(
            s,
            r#"{"type":"participant_joined","participant":{"id":"s","instance":"i","hidden":true,"send":{"audio":true,"video":true},"receive":false,"polite":true}}"#
        );
    }

    #[test]
    fn close_codes_are_distinct() {
        use std::collections::HashSet;
        let all = [
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
            CloseReason::Internal,
            CloseReason::Removed,
            CloseReason::Denied,
            CloseReason::RoomFull,
        ];
        let codes: HashSet<u16> = all.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), all.len());
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  Sam\u{7} C  ").as_deref(), Some("Sam C"));
        assert_eq!(clean_name(" \n "), None);
        assert_eq!(clean_name(&"x".repeat(200)).unwrap().len(), MAX_NAME_CHARS);
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_refills() {
        let mut r = RateLimiter::new(10, 5, 0);
        assert!((0..5).all(|_| r.allow(0)));
        assert!(!r.allow(0));
        assert!(r.allow(100));
        assert!(!r.allow(100));
        assert!((0..5).all(|_| r.allow(10_000)));
        assert!(!r.allow(10_000));
    }
}
