//! The server's media engine for routed calls: a selective forwarding unit.
//!
//! * [`core`] — sans-IO: one WebRTC peer connection per routed participant (webrtc-rs's
//!   `rtc` crate), the demultiplexer of the shared UDP port, forwarding by the role rules,
//!   and the recording tap (`Command::Record`: accepted RTP of recorded participants is
//!   queued for the recorder (`recording/recorder.rs`), polled with `Engine::poll_recorded`).
//! * [`rules`] — pure: who receives whose audio and video, and when a call is routed.
//! * [`demux`] — the little parsing the engine owns (RFC 7983 classes, STUN USERNAME).
//! * [`quality`] — sans-IO: loss, jitter, round trip, bitrate and freezes per participant
//!   and direction, a sample every few seconds.
//! * [`shell`] — the thin tokio shell: one UDP socket, the ICE-TCP listener ([`tcp`]), a
//!   command channel, a timer.
//! * `pc` — how peer connections are built; `tap` — the interceptor that lets the engine
//!   see subscribers' PLI, FIR and REMB.

pub mod core;
pub mod demux;
mod pc;
pub mod quality;
pub(crate) mod tap;
pub use crate::domain::media as rules;
pub mod shell;
pub mod tcp;

pub use core::{Command, Engine, EngineConfig, EngineError, Event, Recorded, Stats, Tapped};
pub use rules::{Kind, MediaMode};
pub use shell::{MediaEngine, MediaSettings};
