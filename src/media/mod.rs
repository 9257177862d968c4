//! The server's media engine for routed calls: a selective forwarding unit.
//!
//! * [`core`] — sans-IO: one WebRTC peer connection per routed participant (webrtc-rs's
//!   `rtc` crate), the demultiplexer of the shared UDP port, forwarding by the role rules.
//! * [`rules`] — pure: who receives whose audio and video, and when a call is routed.
//! * [`demux`] — the little parsing the engine owns (RFC 7983 classes, STUN USERNAME).
//! * [`quality`] — sans-IO: loss, jitter, round trip, bitrate and freezes per participant
//!   and direction, a sample every few seconds.
//! * [`shell`] — the thin tokio shell: one UDP socket, a command channel, a timer.

pub mod core;
pub mod demux;
pub mod quality;
pub use crate::domain::media as rules;
pub mod shell;

pub use core::{Command, Engine, EngineConfig, EngineError, Event, Stats};
pub use rules::{Kind, MediaMode};
pub use shell::{MediaEngine, MediaSettings};
