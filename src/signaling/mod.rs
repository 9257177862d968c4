//! Signaling: a page exchanges its join link for a short-lived connection credential
//! (`POST /api/v1/join/{token}/connect`), then speaks the JSON protocol of
//! `docs/signaling.md` over `GET /api/v1/ws`. One task owns each room. This module is the
//! protocol, the pure room and the room hub; the HTTP edge (connect, the socket, the
//! credential check) lives in `http/connect.rs` and `http/ws.rs`.

pub mod hub;
pub mod protocol;
mod recording_out;
pub mod room;
