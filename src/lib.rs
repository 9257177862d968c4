//! Sightline: turn a contact-center chat into a video call.
//!
//! Everything is reachable from [`app::Application::build`]; `main.rs` is a thin CLI.
//!
//! # Layout
//!
//! Dependencies point down: `http` → `services` → the domain folders' storage → `domain`;
//! `signaling` sits beside `services`; only `app.rs` sees everything.
//!
//! * `app` — builds the application: state, session bus, outbox senders, listeners.
//! * `http` — poem only: routes, listener limits, state, errors, auth, handlers, pages.
//! * `services` — use cases with explicit handles (participants, the session bus, sweeper).
//! * `signaling` — protocol v2, the pure N-party room, the room hub.
//! * `sessions`, `participants`, `integrations`, `outbox`, `mail`, `agent`, `apikeys`,
//!   `storage` — each domain's storage and logic; `reports` — pure report computations.
//! * `domain` — pure types and rules: roles and modes, event kinds, the session machine,
//!   token crypto.
//! * `store_chat`, `store_snapshots`, `store_quality`, `store_feedback` — storage of the
//!   in-call features (chat, photos, quality reports, ratings), kept beside the domain
//!   folders until they move into `store/`; `delivery_transcript` — the outbox sender that
//!   posts a call's chat into its conversation.
//! * `config`, `relay`, `ice`, `metrics`, `telemetry` — configuration, the bundled TURN
//!   server and ICE lists, Prometheus metrics, logging.

pub mod agent;
pub mod apikeys;
pub mod app;
pub mod config;
pub mod delivery_transcript;
pub mod domain;
pub mod http;
pub mod ice;
pub mod integrations;
pub mod mail;
pub mod metrics;
pub mod outbox;
pub mod participants;
pub mod relay;
pub mod reports;
pub mod services;
pub mod sessions;
pub mod signaling;
pub mod storage;
pub mod store_chat;
pub mod store_feedback;
pub mod store_quality;
pub mod store_snapshots;
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
