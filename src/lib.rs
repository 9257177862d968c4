//! Sightline: turn a contact-center chat into a video call.
//!
//! Everything is reachable from [`app::Application::build`]; `main.rs` is a thin CLI.

pub mod agent;
pub mod apikeys;
pub mod app;
pub mod config;
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
