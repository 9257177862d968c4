//! Sightline: turn a contact-center chat into a video call.
//!
//! Everything is reachable from [`app::Application::build`]; `main.rs` is a thin CLI.
//!
//! # Layout
//!
//! Dependencies point down: `http` → `services` → `store` → `domain`. `signaling` and
//! `delivery` sit beside `services` and use it; only `app.rs` sees everything
//! (`scripts/imports.py` measures it: no module imports one that imports it back).
//!
//! * `app` — builds the application: state, session bus, outbox senders per kind, listeners.
//! * `http` — poem only: routes, listener limits, state, errors, auth, handlers, pages, the
//!   documented webhook payloads.
//! * `services` — use cases with explicit handles: sessions (create, end, rotate, invite),
//!   participants (invite, remove, mode, transfer), the session bus, reports, the sweeper.
//! * `signaling` — protocol v2, the pure N-party room, the room hub.
//! * `delivery` — the outbox worker and one sender per kind (webhooks, chat posts, e-mail).
//! * `store` — the only code that talks SQL: entities, sessions, participants and links,
//!   integrations and the timeline's fan-out to them, the outbox table, API keys, agent
//!   tokens, the SQLite group-commit writer.
//! * `domain` — pure types and rules: roles and modes, event kinds, the session machine,
//!   parsed fields, token crypto.
//! * `cluster` — several nodes as one: the broker (NATS), room routing to the owning
//!   node, room and task leases; absent without `[cluster]`.
//! * `config`, `relay`, `metrics`, `telemetry` — configuration, the bundled TURN server and
//!   ICE lists, Prometheus metrics, logging.

pub mod app;
pub mod cluster;
pub mod config;
pub mod delivery;
pub mod domain;
pub mod http;
pub mod media;
pub mod metrics;
pub mod recording;
pub mod relay;
pub mod services;
pub mod signaling;
pub mod store;
pub mod telemetry;

pub use app::Application;
pub use config::Config;

/// Makes ring the process-wide rustls crypto provider (HTTPS webhooks, SMTP over TLS).
/// Idempotent; `Application::build` and `main` call it, and so must any code that builds an
/// HTTP client before them.
pub fn install_crypto_provider() {
    // An error only means a provider is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
