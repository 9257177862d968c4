//! `[turn]`: the bundled TURN server's settings, and how they become the TURN crate's
//! configuration.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use ipnet::IpNet;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sightline_turn::TurnConfig;

pub use sightline_turn::config::parse_port_range as parse_ports;

/// `[turn]` in the configuration file; `SIGHTLINE_TURN__*` in the environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct TurnSettings {
    /// Run the bundled TURN server.
    pub enabled: bool,
    /// UDP and TCP listeners (each address gets both).
    pub listen: Vec<SocketAddr>,
    /// TURN over TLS listeners (usually port 443); need `tls_cert` and `tls_key`.
    pub tls_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Local addresses relay sockets bind to.
    pub relay_ips: Vec<IpAddr>,
    /// Relay port range `MIN-MAX`; `0-0` lets the OS choose.
    pub relay_ports: String,
    /// Public address advertised for relayed candidates (behind 1:1 NAT).
    pub external_ip: Option<IpAddr>,
    pub realm: String,
    /// Shared secret for TURN REST credentials (the same as coturn's
    /// `static-auth-secret` when coturn stands in). Derived from `secret_key` if unset.
    #[serde(serialize_with = "super::ser_secret_opt")]
    pub secret: Option<SecretString>,
    pub secret_file: Option<PathBuf>,
    /// Older secrets still accepted while clients roll over.
    #[serde(serialize_with = "ser_secret_vec")]
    pub previous_secrets: Vec<SecretString>,
    /// Peer networks allowed although the built-in table refuses them.
    pub allow_peer: Vec<IpNet>,
    /// Peer networks always refused.
    pub deny_peer: Vec<IpNet>,
    /// Allocations per credential (participant).
    pub user_quota: u32,
    /// Allocations on this node.
    pub max_allocations: u32,
    /// Relayed bytes per second per allocation.
    pub max_bps: Option<u64>,
    /// Host name or IP browsers use to reach this TURN server. Default: the host of
    /// `public_url`.
    pub public_host: Option<String>,
    /// Lifetime of the TURN credentials handed to browsers, in seconds. Short: the bundled
    /// server refuses them as soon as the call ends, but an external TURN server sharing
    /// the secret honours them until they expire.
    pub credential_ttl_secs: u64,
    /// Which of the bundled server's transports browsers are told about: any of `udp`,
    /// `tcp`, `tls` (default all three; TLS only when `tls_listen` is set).
    pub advertise: Vec<String>,
}

fn ser_secret_vec<S: serde::Serializer>(v: &[SecretString], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(v.len()))?;
    for _ in v {
        seq.serialize_element("<redacted>")?;
    }
    seq.end()
}

/// Default lifetime of TURN credentials: ten minutes (a page fetches fresh ones whenever
/// it connects).
pub const DEFAULT_CREDENTIAL_TTL_SECS: u64 = 600;

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 3478))],
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            relay_ips: Vec::new(),
            relay_ports: "49152-65535".into(),
            external_ip: None,
            realm: "sightline".into(),
            secret: None,
            secret_file: None,
            previous_secrets: Vec::new(),
            allow_peer: Vec::new(),
            deny_peer: Vec::new(),
            user_quota: 4,
            max_allocations: 10_000,
            max_bps: None,
            public_host: None,
            credential_ttl_secs: DEFAULT_CREDENTIAL_TTL_SECS,
            advertise: vec!["udp".into(), "tcp".into(), "tls".into()],
        }
    }
}

impl TurnSettings {
    pub fn validate(&self) -> Result<(), String> {
        parse_ports(&self.relay_ports)?;
        if self.enabled && self.listen.is_empty() && self.tls_listen.is_empty() {
            return Err("no listen address".into());
        }
        if !self.tls_listen.is_empty() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err("`tls_listen` needs `tls_cert` and `tls_key`".into());
        }
        if self.realm.trim().is_empty() {
            return Err("`realm` must not be empty".into());
        }
        if self.credential_ttl_secs < 60 || self.credential_ttl_secs > 7 * 24 * 3600 {
            return Err("`credential_ttl_secs` must be between 60 and 604800".into());
        }
        if let Some(bad) = self
            .advertise
            .iter()
            .find(|t| !["udp", "tcp", "tls"].contains(&t.as_str()))
        {
            return Err(format!("`advertise` has `{bad}`; use udp, tcp or tls"));
        }
        if let Some(s) = &self.secret
            && s.expose_secret().len() < 16
        {
            return Err("`secret` must be at least 16 characters".into());
        }
        Ok(())
    }

    /// The secrets in order (current first), with `derived` standing in for an unset one.
    pub fn secrets(&self, derived: &[u8]) -> Vec<Vec<u8>> {
        let current = match &self.secret {
            Some(s) => s.expose_secret().as_bytes().to_vec(),
            None => derived.to_vec(),
        };
        std::iter::once(current)
            .chain(
                self.previous_secrets
                    .iter()
                    .map(|s| s.expose_secret().as_bytes().to_vec()),
            )
            .collect()
    }

    pub fn to_turn_config(&self, secrets: Vec<Vec<u8>>) -> Result<TurnConfig, String> {
        Ok(TurnConfig {
            listen: self.listen.clone(),
            tls_listen: self.tls_listen.clone(),
            tls_cert: self.tls_cert.clone(),
            tls_key: self.tls_key.clone(),
            relay_ips: self.relay_ips.clone(),
            relay_ports: parse_ports(&self.relay_ports)?,
            external_ip: self.external_ip,
            realm: self.realm.clone(),
            secrets,
            allow_peer: self.allow_peer.clone(),
            deny_peer: self.deny_peer.clone(),
            user_quota: self.user_quota,
            max_allocations: self.max_allocations,
            max_bps: self.max_bps,
            ..TurnConfig::default()
        })
    }
}
