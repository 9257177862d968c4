//! `sightline turn`: run the TURN server standalone.

use crate::config::{TurnConfig, TurnError};
use crate::shell::TurnServer;
use clap::Args;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Flags of the standalone TURN server.
#[derive(Debug, Clone, Args)]
pub struct TurnArgs {
    /// Address to listen on for TURN over UDP and TCP (repeatable; IPv4 or
    /// IPv6, e.g. 0.0.0.0:3478 or [::]:3478).
    #[arg(long = "listen", value_name = "ADDR", default_value = "0.0.0.0:3478")]
    pub listen: Vec<SocketAddr>,
    /// Address to listen on for TURN over TLS (repeatable; usually port 443).
    #[arg(long = "tls-listen", value_name = "ADDR")]
    pub tls_listen: Vec<SocketAddr>,
    /// PEM certificate chain for the TLS listeners.
    #[arg(long = "tls-cert", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for the TLS listeners.
    #[arg(long = "tls-key", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Local IP relay sockets bind to (repeatable, one per family). Default:
    /// the listen address, or the primary address when listening on 0.0.0.0/[::].
    #[arg(long = "relay-ip", value_name = "IP")]
    pub relay_ip: Vec<IpAddr>,
    /// Relay port range MIN-MAX (inclusive); 0-0 lets the OS choose.
    #[arg(
        long = "relay-ports",
        value_name = "MIN-MAX",
        default_value = "49152-65535"
    )]
    pub relay_ports: String,
    /// Public IP advertised in XOR-RELAYED-ADDRESS (server behind 1:1 NAT).
    #[arg(long = "external-ip", value_name = "IP")]
    pub external_ip: Option<IpAddr>,
    /// Authentication realm.
    #[arg(long, value_name = "REALM", default_value = "sightline")]
    pub realm: String,
    /// Shared secret for TURN REST credentials (coturn's static-auth-secret).
    /// Comma-separated for rotation: the first is current, the others are
    /// still accepted.
    #[arg(
        long,
        value_name = "SECRET",
        env = "SIGHTLINE_TURN_SECRET",
        hide_env_values = true
    )]
    pub secret: String,
    /// Peer network to allow although the built-in table refuses it
    /// (repeatable CIDR, e.g. 10.0.0.0/8).
    #[arg(long = "allow-peer", value_name = "CIDR")]
    pub allow_peer: Vec<IpNet>,
    /// Peer network to refuse always; overrides --allow-peer (repeatable CIDR).
    #[arg(long = "deny-peer", value_name = "CIDR")]
    pub deny_peer: Vec<IpNet>,
    /// Allocations per credential id (0 = unlimited).
    #[arg(long = "user-quota", value_name = "N", default_value_t = 4)]
    pub user_quota: u32,
    /// Relayed bandwidth cap per allocation in bytes per second (excess dropped).
    #[arg(long = "max-bps", value_name = "N")]
    pub max_bps: Option<u64>,
    /// Accept ChannelBind numbers 0x5000-0x7FFF too (RFC 5766 clients such
    /// as coturn 4.6's turnutils_uclient); RFC 8656 allows 0x4000-0x4FFF.
    #[arg(long = "legacy-channel-numbers")]
    pub legacy_channel_numbers: bool,
    /// Concurrent TCP/TLS connections; default derived from the open-file
    /// limit ((limit - 64) / 2, e.g. 480 under 1,024).
    #[arg(long = "max-stream-connections", value_name = "N")]
    pub max_stream_connections: Option<usize>,
    /// Concurrent TCP/TLS connections per client IP (0 = no cap).
    #[arg(
        long = "max-stream-connections-per-ip",
        value_name = "N",
        default_value_t = 128
    )]
    pub max_stream_connections_per_ip: usize,
    /// Seconds a TCP/TLS connection gets for its TLS handshake and first
    /// message, to finish a started message, and to stay quiet without an
    /// allocation.
    #[arg(
        long = "stream-setup-timeout",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub stream_setup_timeout: u64,
    /// Seconds a TCP/TLS connection with an allocation may stay quiet (its
    /// allocation expiring closes it sooner).
    #[arg(
        long = "stream-idle-timeout",
        value_name = "SECS",
        default_value_t = 3600
    )]
    pub stream_idle_timeout: u64,
}

fn parse_ports(s: &str) -> Result<(u16, u16), TurnError> {
    crate::config::parse_port_range(s).map_err(|m| TurnError::Config(format!("--relay-ports: {m}")))
}

impl TurnArgs {
    /// Build the server configuration from the flags.
    pub fn into_config(self) -> Result<TurnConfig, TurnError> {
        let secrets: Vec<Vec<u8>> = self
            .secret
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.as_bytes().to_vec())
            .collect();
        let cfg = TurnConfig {
            listen: self.listen,
            tls_listen: self.tls_listen,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            relay_ips: self.relay_ip,
            relay_ports: parse_ports(&self.relay_ports)?,
            external_ip: self.external_ip,
            realm: self.realm,
            secrets,
            allow_peer: self.allow_peer,
            deny_peer: self.deny_peer,
            allow_peer_addrs: Vec::new(),
            user_quota: self.user_quota,
            max_bps: self.max_bps,
            legacy_channel_numbers: self.legacy_channel_numbers,
            max_stream_connections: self.max_stream_connections,
            max_stream_connections_per_ip: self.max_stream_connections_per_ip,
            stream_setup_timeout: Duration::from_secs(self.stream_setup_timeout),
            stream_idle_timeout: Duration::from_secs(self.stream_idle_timeout),
            ..TurnConfig::default()
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Start the server, log the bound addresses and run until SIGINT/SIGTERM.
pub async fn run(args: TurnArgs) -> anyhow::Result<()> {
    run_config(args.into_config()?).await
}

/// Same as [`run`] with a ready configuration.
pub async fn run_config(cfg: TurnConfig) -> anyhow::Result<()> {
    let server = TurnServer::start(cfg).await?;
    for a in server.udp_addrs() {
        tracing::info!(addr = %a, "TURN listening on UDP");
    }
    for a in server.tcp_addrs() {
        tracing::info!(addr = %a, "TURN listening on TCP");
    }
    for a in server.tls_addrs() {
        tracing::info!(addr = %a, "TURN listening on TLS");
    }
    wait_for_signal().await;
    tracing::info!(stats = ?server.stats(), "TURN shutting down");
    server.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        turn: TurnArgs,
    }

    #[test]
    fn flags_map_to_config() {
        let cmd = Cmd::try_parse_from([
            "x",
            "--listen",
            "127.0.0.1:0",
            "--listen",
            "[::1]:0",
            "--secret",
            "a,b",
            "--relay-ports",
            "40000-40100",
            "--allow-peer",
            "10.0.0.0/8",
            "--deny-peer",
            "10.1.0.0/16",
            "--user-quota",
            "9",
            "--max-bps",
            "1000",
            "--realm",
            "r",
            "--external-ip",
            "203.0.113.1",
            "--legacy-channel-numbers",
            "--max-stream-connections",
            "300",
            "--max-stream-connections-per-ip",
            "0",
            "--stream-setup-timeout",
            "3",
        ])
        .expect("parses");
        let cfg = cmd.turn.into_config().expect("config");
        assert_eq!(cfg.listen.len(), 2);
        assert_eq!(cfg.secrets, vec![b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(cfg.relay_ports, (40000, 40100));
        assert_eq!(cfg.user_quota, 9);
        assert_eq!(cfg.max_bps, Some(1000));
        assert!(cfg.legacy_channel_numbers);
        assert_eq!(cfg.max_stream_connections, Some(300));
        assert_eq!(cfg.max_stream_connections_per_ip, 0);
        assert_eq!(cfg.stream_setup_timeout, Duration::from_secs(3));
        assert_eq!(cfg.stream_idle_timeout, Duration::from_secs(3600));
        let bad =
            Cmd::try_parse_from(["x", "--secret", "a", "--relay-ports", "5-1"]).expect("parses");
        assert!(bad.turn.into_config().is_err());
    }
}
