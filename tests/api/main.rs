//! The integration tests: one binary (each extra binary costs a full link of the app on
//! two cores). Every module runs the real app in-process on port 0 with a fresh data
//! directory and speaks HTTP, WebSocket and STUN/TURN to it, or starts the real binary.
//!
//! Beside it: `browser_call` (headless Chromium through the join page and TURN, one
//! browser test at a time), `config_layers` (changes the process environment, so it
//! runs alone) and `postgres` (the `postgres` feature against a throwaway server).

mod support;
mod support_call;
mod support_chatwoot;
mod support_media;
mod support_outbox;
mod support_python;
mod support_recording;
mod support_synapse;

mod agent_tokens;
mod chat;
mod chat_bench;
mod chatwoot;
mod cli_smoke;
mod feedback;
mod http_limits;
mod integrations;
mod mail_invite;
mod matrix;
mod openapi_conformance;
mod outbox_bench;
mod outbox_restart;
mod outbox_retry;
mod participants;
mod precheck;
mod quality;
mod recording_control;
mod recording_crash;
mod recording_engine;
mod recording_mux;
mod recordings;
mod relay_in_serve;
mod routed_limits;
mod routed_media;
mod routed_roster;
mod routed_twelve;
mod server_quality;
mod sessions;
mod signaling_ws;
mod snapshots;
mod transcript;
