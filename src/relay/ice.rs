//! ICE servers for one participant: STUN URLs plus TURN URLs with short-lived TURN REST
//! credentials (username `expiry:participant`, password `base64(HMAC-SHA1(secret, username))`).
//!
//! Pure: the secret, the URLs and `now` go in, the list comes out. The TURN secret is held
//! in a [`SecretString`] and never logged.

use std::sync::RwLock;
use std::time::Duration;

use poem_openapi::Object;
use secrecy::{ExposeSecret, SecretSlice};
use serde::Serialize;

use crate::config::IceConfig;

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Object)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(nullable)]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[oai(nullable)]
    pub credential: Option<String>,
}

/// Hands out ICE server lists: the bundled TURN server's URLs (when it runs) first, then
/// the configured external ones, all with credentials under the one shared TURN secret.
pub struct IceProvider {
    stun: Vec<String>,
    turn: RwLock<Vec<String>>,
    secret: SecretSlice<u8>,
    ttl: Duration,
    relay_only: bool,
}

impl std::fmt::Debug for IceProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceProvider")
            .field("stun", &self.stun)
            .field("turn", &self.turn_urls())
            .field("ttl", &self.ttl)
            .field("relay_only", &self.relay_only)
            .finish_non_exhaustive()
    }
}

impl IceProvider {
    /// `secret` is the TURN REST shared secret (`turn.secret`, or the derived one);
    /// `bundled` the URLs of the bundled TURN server when it runs.
    pub fn new(config: &IceConfig, secret: &[u8], ttl: Duration, bundled: Vec<String>) -> Self {
        let mut turn = bundled;
        for u in &config.turn_urls {
            if !turn.contains(u) {
                turn.push(u.clone());
            }
        }
        Self {
            stun: config.stun_urls.clone(),
            turn: RwLock::new(turn),
            secret: SecretSlice::from(secret.to_vec()),
            ttl,
            relay_only: config.relay_only,
        }
    }

    /// Adds TURN URLs at run time (e.g. those of the bundled server once it has bound).
    pub fn add_turn_urls(&self, urls: impl IntoIterator<Item = String>) {
        if let Ok(mut t) = self.turn.write() {
            for u in urls {
                if !t.contains(&u) {
                    t.push(u);
                }
            }
        }
    }

    pub fn turn_urls(&self) -> Vec<String> {
        self.turn.read().map(|t| t.clone()).unwrap_or_default()
    }

    /// Whether a call must go through the relay: globally or for this session.
    pub fn relay_only(&self, session_relay_only: bool) -> bool {
        self.relay_only || session_relay_only
    }

    /// The list for one participant at `now_unix`.
    /// How long the TURN credentials handed out now stay valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn servers_for(&self, participant_id: &str, now_unix: u64) -> Vec<IceServer> {
        let mut out = Vec::new();
        if !self.stun.is_empty() {
            out.push(IceServer {
                urls: self.stun.clone(),
                username: None,
                credential: None,
            });
        }
        let turn = self.turn_urls();
        if !turn.is_empty() {
            let (username, credential) = sightline_turn::credentials::rest_credentials(
                self.secret.expose_secret(),
                participant_id,
                self.ttl,
                now_unix,
            );
            out.push(IceServer {
                urls: turn,
                username: Some(username),
                credential: Some(credential),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    fn config() -> IceConfig {
        IceConfig {
            stun_urls: vec!["stun:127.0.0.1:3478".into()],
            turn_urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            ..IceConfig::default()
        }
    }

    #[test]
    fn turn_rest_credentials_follow_the_scheme() {
        let p = IceProvider::new(&config(), b"s3cret", TTL, Vec::new());
        let list = p.servers_for("p-1", 1_000);
        assert_eq!(list.len(), 2);
        assert_eq!(list[0].urls, vec!["stun:127.0.0.1:3478".to_owned()]);
        assert!(list[0].username.is_none());
        let turn = &list[1];
        assert_eq!(turn.username.as_deref(), Some("1600:p-1"));
        // base64(HMAC-SHA1("s3cret", "1600:p-1")), computed independently with openssl.
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"1600:p-1");
        use base64::Engine;
        let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(turn.credential.as_deref(), Some(want.as_str()));
    }

    #[test]
    fn no_turn_urls_no_credentials_and_bundled_urls_can_be_added() {
        let p = IceProvider::new(&IceConfig::default(), b"derived", TTL, Vec::new());
        assert!(p.servers_for("x", 0).is_empty());
        let b = IceProvider::new(&config(), b"d", TTL, vec!["turn:10.0.0.2:3478".into()]);
        assert_eq!(b.servers_for("x", 0)[1].urls[0], "turn:10.0.0.2:3478");
        p.add_turn_urls(["turn:10.0.0.1:3478".to_owned()]);
        p.add_turn_urls(["turn:10.0.0.1:3478".to_owned()]);
        let list = p.servers_for("x", 0);
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].urls.len(), 1);
        assert!(list[0].credential.is_some());
    }

    #[test]
    fn relay_only_is_global_or_per_session() {
        let p = IceProvider::new(&IceConfig::default(), b"d", TTL, Vec::new());
        assert!(!p.relay_only(false));
        assert!(p.relay_only(true));
        let g = IceProvider::new(
            &IceConfig {
                relay_only: true,
                ..IceConfig::default()
            },
            b"d",
            TTL,
            Vec::new(),
        );
        assert!(g.relay_only(false));
        assert!(!format!("{g:?}").contains("secret\""));
    }
}
