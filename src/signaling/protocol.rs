//! The signaling protocol, version 1 (documented in `docs/signaling.md`).
//!
//! JSON text frames, each an object tagged by `"type"`. Parsing is the schema check: an
//! unknown type, a missing field or an over-long value is a [`CloseReason::BadMessage`].

use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
/// Longest SDP accepted in an offer or answer.
pub const MAX_SDP: usize = 48 * 1024;
/// Longest ICE candidate line, mid or ufrag.
pub const MAX_CANDIDATE: usize = 1024;
pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_INSTANCE: usize = 64;

/// What a page sends.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMsg {
    /// First message on a socket.
    Join {
        v: u32,
        credential: String,
        /// Random per page load: the peer recreates its connection when this changes.
        instance: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        media: Option<Media>,
    },
    Offer {
        sdp: String,
        /// Set when the offer restarts ICE.
        #[serde(default)]
        restart: bool,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: Candidate,
    },
    /// Ask the peer to restart ICE (it makes the offer).
    RestartIce,
    Media(Media),
    /// Leave the call; the other side stays.
    HangUp,
    /// End the session for everyone (agent only).
    End,
    Ping,
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

/// The other participant as a page sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    pub role: &'static str,
    pub name: String,
    pub instance: String,
    pub media: Media,
}

/// What the server sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Joined {
        v: u32,
        role: &'static str,
        participant_id: String,
        /// Perfect negotiation: the polite side yields on colliding offers.
        polite: bool,
        peer: Option<PeerInfo>,
        /// True when this socket took over from another one of the same participant.
        took_over: bool,
    },
    PeerJoined {
        peer: PeerInfo,
    },
    /// The peer's socket dropped; they have the grace period to come back.
    PeerReconnecting,
    PeerLeft {
        reason: &'static str,
    },
    Offer {
        sdp: String,
        restart: bool,
    },
    Answer {
        sdp: String,
    },
    Candidate {
        candidate: Candidate,
    },
    RestartIce,
    PeerMedia(Media),
    Ended {
        reason: String,
    },
    Error {
        code: &'static str,
        message: &'static str,
    },
    Pong,
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
            CloseReason::Internal => "internal",
        }
    }
}

fn too_long(s: &str, max: usize) -> bool {
    s.len() > max
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
        ClientMsg::Offer { sdp, .. } | ClientMsg::Answer { sdp } => {
            !sdp.is_empty() && !too_long(sdp, MAX_SDP)
        }
        ClientMsg::Candidate { candidate } => {
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
        let join = parse(r#"{"type":"join","v":1,"credential":"abc","instance":"i1","name":"Sam","media":{"audio":true,"video":false}}"#).unwrap();
        assert!(matches!(join, ClientMsg::Join { v: 1, .. }));
        assert!(matches!(
            parse(r#"{"type":"offer","sdp":"v=0"}"#).unwrap(),
            ClientMsg::Offer { restart: false, .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 127.0.0.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}"#).unwrap(),
            ClientMsg::Candidate { .. }
        ));
        assert_eq!(
            parse(r#"{"type":"media","audio":false,"video":true}"#).unwrap(),
            ClientMsg::Media(Media {
                audio: false,
                video: true
            })
        );
        for t in ["hang_up", "end", "ping", "restart_ice"] {
            parse(&format!(r#"{{"type":"{t}"}}"#)).unwrap();
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
            r#"{"type":"offer","sdp":""}"#,
            r#"{"type":"join","v":1,"credential":"c","instance":""}"#,
        ] {
            assert_eq!(parse(bad), Err(CloseReason::BadMessage), "{bad}");
        }
        let long = format!(r#"{{"type":"answer","sdp":"{}"}}"#, "a".repeat(MAX_SDP + 1));
        assert_eq!(parse(&long), Err(CloseReason::BadMessage));
        let name = format!(
            r#"{{"type":"join","v":1,"credential":"c","instance":"i","name":"{}"}}"#,
            "n".repeat(MAX_NAME_CHARS + 1)
        );
        assert_eq!(parse(&name), Err(CloseReason::BadMessage));
    }

    #[test]
    fn server_messages_serialize_with_their_type() {
        let s = ServerMsg::PeerLeft { reason: "timeout" }.to_json();
        assert_eq!(s, r#"{"type":"peer_left","reason":"timeout"}"#);
        let s = ServerMsg::PeerMedia(Media {
            audio: true,
            video: false,
        })
        .to_json();
        assert_eq!(s, r#"{"type":"peer_media","audio":true,"video":false}"#);
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
