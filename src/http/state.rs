//! Shared application state: cheap to clone (Arcs inside), never locked across `.await`.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::config::Config;
use crate::domain::tokens::{Purpose, TokenKey};
use crate::metrics::Metrics;

/// Keys derived from the master secret, one per purpose.
pub struct Keys {
    pub join: TokenKey,
    pub connection: TokenKey,
    pub agent: TokenKey,
    pub report: TokenKey,
    /// Master secret bytes, for deriving further per-purpose secrets.
    master: Vec<u8>,
}

impl Keys {
    pub fn new(master: &[u8]) -> Self {
        Self {
            join: TokenKey::derive(master, Purpose::JoinLink),
            connection: TokenKey::derive(master, Purpose::Connection),
            agent: TokenKey::derive(master, Purpose::AgentToken),
            report: TokenKey::derive(master, Purpose::Report),
            master: master.to_vec(),
        }
    }

    /// Derives a named secret (e.g. the TURN shared secret when none is configured).
    pub fn derive_secret(&self, label: &str) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&self.master).expect("HMAC takes any key length");
        mac.update(b"sightline/secret/");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// The bundled TURN server as the rest of the app sees it.
#[derive(Clone)]
pub struct Relay {
    pub server: Arc<sightline_turn::TurnServer>,
    /// `turn:`/`turns:` URLs browsers use to reach it.
    pub urls: Vec<String>,
}

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub db: DatabaseConnection,
    /// Creates sessions with group commit (see `sessions::batch`).
    pub creator: crate::store::batch::Creator,
    pub keys: Arc<Keys>,
    /// API keys verified within the last second.
    pub api_keys: Arc<crate::store::apikeys::AuthCache>,
    /// Agent tokens confirmed live within the last second.
    pub agent_tokens: Arc<crate::store::agent_tokens::TokenCache>,
    /// Rate limits of the demo page.
    pub demo: Arc<crate::http::pages::demo::DemoLimits>,
    /// Base URL links are built from, without a trailing slash.
    pub public_url: Arc<str>,
    pub metrics: Arc<Metrics>,
    /// Tells live rooms what happened to their session outside signaling.
    pub bus: Arc<dyn crate::services::bus::SessionBus>,
    /// HTTP connection caps and per-connection state (see `listener`).
    pub conns: Arc<crate::http::listener::ConnGuard>,
    /// Live signaling rooms (one task each).
    pub rooms: crate::signaling::hub::Rooms,
    /// Where sockets' messages go: `rooms`, or the owning node of a cluster.
    pub signaling: crate::cluster::Signaling,
    /// This node of a cluster (`[cluster]`), if any.
    pub cluster: Option<std::sync::Arc<crate::cluster::Node>>,
    /// ICE servers and TURN credentials handed to pages.
    pub ice: Arc<crate::relay::ice::IceProvider>,
    /// The current TURN REST secret (shared with the bundled server or an external one).
    pub turn_secret: Arc<[u8]>,
    /// The bundled TURN server, when it runs.
    pub relay: Option<Relay>,
    /// The media engine for routed calls, when it runs.
    pub media: Option<crate::media::MediaEngine>,
    /// SSRF-guarded HTTP client for webhooks and chat posts.
    pub outbound: Arc<crate::delivery::net::Outbound>,
    /// Recordings at rest: files, keys, reads and deletes.
    pub recordings: Arc<crate::recording::files::RecordingFiles>,
    /// Signs export manifests.
    pub export_key: Arc<crate::services::compliance::ExportKey>,
    /// SMTP, when `mail.host` is configured.
    pub mailer: Option<Arc<dyn crate::delivery::email::Mailer>>,
    /// Recording control (state, consent, the tap).
    pub recording: Arc<crate::services::recording_control::Control>,
}
