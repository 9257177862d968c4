//! The bundled TURN relay inside `sightline serve`: configuration, start-up, and the URLs
//! and secret handed to browsers in their ICE server lists.

pub mod ice;
pub mod revoke;

use sightline_turn::TurnServer;

pub use crate::config::turn::{TurnSettings, parse_ports};

/// Where browsers reach the running bundled server.
#[derive(Debug, Clone, Default)]
pub struct RelayEndpoints {
    /// `turn:`/`turns:` URLs in preference order: UDP, TCP, TLS.
    pub urls: Vec<String>,
}

/// Builds the URLs browsers use: `host` is the public host, ports are the bound ones,
/// `advertise` names the transports to include.
pub fn urls_for(host: &str, server: &TurnServer, advertise: &[String]) -> Vec<String> {
    let wants = |t: &str| advertise.iter().any(|a| a == t);
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    let mut urls = Vec::new();
    if let Some(a) = server.udp_addrs().first().filter(|_| wants("udp")) {
        urls.push(format!("turn:{host}:{}?transport=udp", a.port()));
    }
    if let Some(a) = server.tcp_addrs().first().filter(|_| wants("tcp")) {
        urls.push(format!("turn:{host}:{}?transport=tcp", a.port()));
    }
    if let Some(a) = server.tls_addrs().first().filter(|_| wants("tls")) {
        urls.push(format!("turns:{host}:{}?transport=tcp", a.port()));
    }
    urls
}

pub use crate::config::host_of;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_ports("49152-65535"), Ok((49152, 65535)));
        assert_eq!(parse_ports("0-0"), Ok((0, 0)));
        assert!(parse_ports("10-5").is_err());
        assert!(parse_ports("0-5").is_err());
        assert!(parse_ports("abc").is_err());
    }

    #[test]
    fn hosts() {
        assert_eq!(
            host_of("https://video.example.com:8443/x").as_deref(),
            Some("video.example.com")
        );
        assert_eq!(
            host_of("http://127.0.0.1:8080").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(host_of("http://[::1]:8080").as_deref(), Some("::1"));
        assert_eq!(host_of("nope"), None);
    }

    #[test]
    fn secrets_current_first() {
        let mut s = TurnSettings::default();
        assert_eq!(s.secrets(b"derived"), vec![b"derived".to_vec()]);
        s.secret = Some(secrecy::SecretString::from("current-secret-123"));
        s.previous_secrets = vec![secrecy::SecretString::from("old-secret-456789")];
        let got = s.secrets(b"derived");
        assert_eq!(got[0], b"current-secret-123");
        assert_eq!(got[1], b"old-secret-456789");
    }

    #[test]
    fn defaults_validate() {
        TurnSettings::default().validate().unwrap();
    }
}
