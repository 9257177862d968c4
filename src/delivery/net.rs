//! Outbound HTTP with an SSRF guard: every address a host resolves to must pass the same
//! private-range policy as TURN peers (unless `outbound.allow` lists it), checked at
//! delivery time inside the resolver so the checked address is the one connected to.
//! Redirects are never followed.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use sightline_turn::policy::{PeerPolicy, Verdict};

/// The HTTP methods adapters use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
}

/// One HTTP request to send, built by an adapter or the event serializer.
#[derive(Debug, Clone)]
pub struct OutboundRequest {
    pub method: Method,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("invalid URL: {0}")]
    BadUrl(String),
    #[error(
        "destination {0} is not allowed by the outbound policy (private, loopback or reserved; allow it with outbound.allow)"
    )]
    Forbidden(String),
    #[error("request failed: {0}")]
    Transport(String),
    #[error("no answer within the request timeout (the receiver may have acted on it)")]
    Timeout,
    #[error("receiver answered HTTP {0}")]
    Status(u16),
}

impl SendError {
    /// Retrying cannot help (the URL or policy would have to change first).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Self::BadUrl(_) | Self::Forbidden(_))
    }
}

/// The most of an answer's body that is read.
pub const MAX_REPLY_BYTES: usize = 256 * 1024;

/// What a receiver answered.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

struct PolicyResolver {
    policy: Arc<PeerPolicy>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if addrs.is_empty() {
                return Err(format!("{host} resolves to no address").into());
            }
            if let Some(bad) = addrs
                .iter()
                .find(|a| policy.check(a.ip()) != Verdict::Allow)
            {
                return Err(format!("{host} resolves to {} (not allowed)", bad.ip()).into());
            }
            let out: Addrs = Box::new(addrs.into_iter());
            Ok(out)
        })
    }
}

/// The one HTTP client for everything that leaves the box.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: Arc<PeerPolicy>,
}

impl Outbound {
    pub fn new(allow: Vec<ipnet::IpNet>, timeout: Duration) -> anyhow::Result<Self> {
        let policy = Arc::new(PeerPolicy::new(allow, Vec::new()));
        // reqwest asks for a process-wide provider too: make it ring.
        crate::install_crypto_provider();
        // HTTPS with rustls on the ring provider and the Mozilla root set (webpki-roots):
        // the same trust everywhere, no system store needed, no second crypto library.
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .https_only(false)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .user_agent(concat!("Sightline/", env!("CARGO_PKG_VERSION")))
            .no_proxy()
            .dns_resolver(Arc::new(PolicyResolver {
                policy: policy.clone(),
            }))
            .build()?;
        Ok(Self { client, policy })
    }

    /// Checks a URL's shape and, for IP literals, the policy (names are checked when
    /// resolved). Used at registration time as well as before every attempt.
    pub fn check_url(&self, raw: &str) -> Result<reqwest::Url, SendError> {
        let url = reqwest::Url::parse(raw).map_err(|e| SendError::BadUrl(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(SendError::BadUrl(
                "only http:// and https:// URLs are allowed".into(),
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(SendError::BadUrl(
                "credentials in URLs are not allowed".into(),
            ));
        }
        let ip = match url.host() {
            None => return Err(SendError::BadUrl("URL has no host".into())),
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
        };
        if let Some(ip) = ip
            && self.policy.check(ip) != Verdict::Allow
        {
            return Err(SendError::Forbidden(ip.to_string()));
        }
        Ok(url)
    }

    /// Sends once (method, headers and body as built). Success is any 2xx; redirects
    /// count as failures.
    pub async fn post(&self, req: &OutboundRequest) -> Result<u16, SendError> {
        let reply = self.send(req, None).await?;
        if (200..300).contains(&reply.status) {
            Ok(reply.status)
        } else {
            Err(SendError::Status(reply.status))
        }
    }

    /// Sends once and returns whatever the receiver answered (any status), with at most
    /// [`MAX_REPLY_BYTES`] of its body. `timeout` replaces the client's request timeout
    /// (a Matrix `/sync` long-poll needs longer).
    pub async fn send(
        &self,
        req: &OutboundRequest,
        timeout: Option<Duration>,
    ) -> Result<Reply, SendError> {
        let url = self.check_url(&req.url)?;
        let mut b = match req.method {
            Method::Get => self.client.get(url),
            Method::Post => self.client.post(url),
            Method::Put => self.client.put(url),
        };
        if req.method != Method::Get {
            b = b
                .header("content-type", "application/json")
                .body(req.body.clone());
        }
        if let Some(t) = timeout {
            b = b.timeout(t);
        }
        for (k, v) in &req.headers {
            b = b.header(k.as_str(), v.as_str());
        }
        let resp = b.send().await.map_err(|e| {
            if e.is_timeout() {
                return SendError::Timeout;
            }
            // Without the URL: webhook URLs often carry a secret, and this message is
            // logged and stored.
            let e = e.without_url();
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg = format!("{msg}: {s}");
                src = s.source();
            }
            if msg.contains("not allowed") {
                SendError::Forbidden(msg)
            } else {
                SendError::Transport(msg)
            }
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The body, bounded: a platform's answer is small; anything longer is cut.
        let mut body = Vec::new();
        let mut resp = resp;
        loop {
            match resp.chunk().await {
                Ok(Some(c)) => {
                    let room = MAX_REPLY_BYTES.saturating_sub(body.len());
                    body.extend_from_slice(&c[..c.len().min(room)]);
                    if body.len() >= MAX_REPLY_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => return Err(SendError::Timeout),
                // A body cut short still has its status.
                Err(_) => break,
            }
        }
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_private_addresses_are_refused_unless_allowed() {
        let o = Outbound::new(vec![], Duration::from_secs(1)).unwrap();
        assert!(matches!(
            o.check_url("http://127.0.0.1:9/x"),
            Err(SendError::Forbidden(_))
        ));
        assert!(matches!(
            o.check_url("http://[::ffff:10.0.0.1]/x"),
            Err(SendError::Forbidden(_))
        ));
        assert!(matches!(
            o.check_url("ftp://a.example/"),
            Err(SendError::BadUrl(_))
        ));
        assert!(o.check_url("http://93.184.216.34/hook").is_ok());
        assert!(
            o.check_url("http://127.0.0.1:9/x")
                .unwrap_err()
                .is_permanent()
        );
        assert!(!SendError::Transport("reset".into()).is_permanent());
        assert!(!SendError::Status(503).is_permanent());
        let allowed =
            Outbound::new(vec!["127.0.0.0/8".parse().unwrap()], Duration::from_secs(1)).unwrap();
        assert!(allowed.check_url("http://127.0.0.1:9/x").is_ok());
    }
}
