//! Server configuration and the crate's error type.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Configuration of the bundled TURN server. `Default` gives the secure
/// defaults (loopback listener, built-in peer deny table, quotas on).
#[derive(Debug, Clone)]
pub struct TurnConfig {
    /// UDP and TCP listeners (each address gets both).
    pub listen: Vec<SocketAddr>,
    /// TLS-over-TCP listeners (need `tls_cert` and `tls_key`).
    pub tls_listen: Vec<SocketAddr>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Local addresses relay sockets bind to (first of each family is used).
    /// Empty: the listener's address (if specific) is used.
    pub relay_ips: Vec<IpAddr>,
    /// Relay port range, inclusive; `(0, 0)` lets the OS choose.
    pub relay_ports: (u16, u16),
    /// Address advertised in XOR-RELAYED-ADDRESS (behind 1:1 NAT).
    pub external_ip: Option<IpAddr>,
    pub realm: String,
    /// Shared secrets for TURN REST credentials: the first is current, the
    /// others are still accepted (rotation).
    pub secrets: Vec<Vec<u8>>,
    /// Peer networks allowed even if in the built-in deny table.
    pub allow_peer: Vec<IpNet>,
    /// Peer networks always refused.
    pub deny_peer: Vec<IpNet>,
    /// Exact peer addresses (IP and port) allowed although the built-in table refuses
    /// their IP: a media server beside the relay. Other ports of that IP stay refused.
    pub allow_peer_addrs: Vec<std::net::SocketAddr>,
    /// Allocations per credential id (0 = unlimited).
    pub user_quota: u32,
    /// Node-wide allocation cap (0 = unlimited).
    pub max_allocations: u32,
    /// Per-allocation relayed bandwidth cap in bytes/s (both directions
    /// together, token bucket with a one-second burst; excess is dropped).
    pub max_bps: Option<u64>,
    /// SOFTWARE attribute value; none by default.
    pub software: Option<String>,
    /// Permissions per allocation.
    pub max_permissions: u32,
    /// Channel bindings per allocation.
    pub max_channels: u32,
    /// Nonce validity in seconds.
    pub nonce_ttl_secs: u64,
    /// Engine threads per UDP listener (SO_REUSEPORT shards). Each owns its
    /// allocations; 1 keeps every allocation of a listener in one thread
    /// (two parties of a call then relay in-process).
    pub engine_threads: usize,
    /// Credentials the application has revoked before their expiry (shared with it).
    pub revocations: crate::revocations::Revocations,
    /// Accept ChannelBind numbers 0x5000-0x7FFF (the RFC 5766 range) too.
    /// Off by default: RFC 8656 allows 0x4000-0x4FFF only and browsers stay
    /// in it; coturn 4.6's `turnutils_uclient` picks numbers up to 0x7FFF.
    pub legacy_channel_numbers: bool,
    /// TCP/TLS: time allowed from accept to the end of the TLS handshake and
    /// the first complete message; also the longest a started message may
    /// stay incomplete, and how long a connection without an allocation may
    /// stay quiet. Past it the connection is closed.
    pub stream_setup_timeout: Duration,
    /// TCP/TLS: a connection with an allocation that sends no complete
    /// message for this long is closed. The default is the longest
    /// allocation lifetime (3600 s): a client that vanished loses its
    /// allocation when that expires (600 s unless it asked for more), and
    /// its connection goes `stream_setup_timeout` later.
    pub stream_idle_timeout: Duration,
    /// Concurrent TCP/TLS connections (all listeners). `None`: derived from
    /// the open-file limit at start, `(RLIMIT_NOFILE - 64) / 2` (each
    /// connection may hold a relay socket too), e.g. 480 under 1,024.
    pub max_stream_connections: Option<usize>,
    /// Concurrent TCP/TLS connections per client IP address (0 = no cap).
    pub max_stream_connections_per_ip: usize,
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            listen: vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 3478)],
            tls_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            relay_ips: Vec::new(),
            relay_ports: (0, 0),
            external_ip: None,
            realm: "sightline".to_string(),
            secrets: Vec::new(),
            allow_peer: Vec::new(),
            deny_peer: Vec::new(),
            allow_peer_addrs: Vec::new(),
            user_quota: 4,
            max_allocations: 10_000,
            max_bps: None,
            software: None,
            max_permissions: 64,
            max_channels: 64,
            nonce_ttl_secs: 600,
            engine_threads: 1,
            revocations: Default::default(),
            legacy_channel_numbers: false,
            stream_setup_timeout: Duration::from_secs(10),
            stream_idle_timeout: Duration::from_secs(3600),
            max_stream_connections: None,
            max_stream_connections_per_ip: 128,
        }
    }
}

/// Errors at the server boundary (configuration and socket setup).
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("invalid TURN configuration: {0}")]
    Config(String),
    #[error("TURN TLS setup failed: {0}")]
    Tls(String),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("TURN I/O error: {0}")]
    Io(#[from] std::io::Error),
}

impl TurnConfig {
    /// Check the configuration for obvious mistakes.
    pub fn validate(&self) -> Result<(), TurnError> {
        if self.secrets.is_empty() || self.secrets.iter().any(|s| s.is_empty()) {
            return Err(TurnError::Config(
                "at least one non-empty shared secret is required".into(),
            ));
        }
        if self.listen.is_empty() && self.tls_listen.is_empty() {
            return Err(TurnError::Config("no listen address".into()));
        }
        if !self.tls_listen.is_empty() && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err(TurnError::Config(
                "TLS listeners need both a certificate and a key file".into(),
            ));
        }
        let (lo, hi) = self.relay_ports;
        if lo > hi || (lo == 0) != (hi == 0) {
            return Err(TurnError::Config(format!("bad relay port range {lo}-{hi}")));
        }
        if self.stream_setup_timeout.is_zero() || self.stream_idle_timeout.is_zero() {
            return Err(TurnError::Config("stream timeouts must be positive".into()));
        }
        if self.max_stream_connections == Some(0) {
            return Err(TurnError::Config(
                "max_stream_connections must be positive (None derives it)".into(),
            ));
        }
        if self.realm.is_empty() {
            return Err(TurnError::Config("realm must not be empty".into()));
        }
        Ok(())
    }
}

/// Parses a relay port range `MIN-MAX` (inclusive); `0-0` lets the OS choose. Used by the
/// CLI and by the app's `[turn] relay_ports` setting.
pub fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("`{s}` is not a port range MIN-MAX");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let lo: u16 = a.trim().parse().map_err(|_| bad())?;
    let hi: u16 = b.trim().parse().map_err(|_| bad())?;
    if lo > hi || (lo == 0) != (hi == 0) {
        return Err(bad());
    }
    Ok((lo, hi))
}
