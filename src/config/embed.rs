//! `[embed]` (who may frame the widget and the call panel) and `[demo]` settings.

use serde::{Deserialize, Serialize};

/// `[embed]` settings.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EmbedSettings {
    /// Origins (e.g. `https://desk.example.com`) whose pages may mount the widget and frame
    /// the agent's call panel. Sightline's own origin is always allowed.
    pub allowed_origins: Vec<String>,
}

impl EmbedSettings {
    pub fn validate(&self) -> Result<(), String> {
        for o in &self.allowed_origins {
            if !is_origin(o) {
                return Err(format!(
                    "`{o}` is not an origin like https://desk.example.com (scheme, host, optional port; no path)"
                ));
            }
        }
        Ok(())
    }

    pub fn allows(&self, origin: &str) -> bool {
        self.allowed_origins
            .iter()
            .any(|o| o.eq_ignore_ascii_case(origin))
    }
}

/// `scheme://host[:port]` with nothing after it.
pub fn is_origin(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    !rest.is_empty()
        && !rest.contains(['/', '?', '#', ' ', '@'])
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
}

/// `[demo]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoSettings {
    /// Serve `/demo`. Unset: only while the HTTP server listens on loopback (see
    /// [`DemoSettings::resolve`]). Anyone who can open it can start calls.
    pub enabled: Option<bool>,
    /// Demo pages (each mints an agent token) served per minute, all visitors together.
    pub pages_per_minute: u32,
    /// Sessions created with demo tokens per minute, all visitors together.
    pub sessions_per_minute: u32,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            pages_per_minute: 30,
            sessions_per_minute: 10,
        }
    }
}

impl DemoSettings {
    /// Whether `/demo` is served, and why: explicit configuration wins; otherwise on only
    /// when `listen` is a loopback address and `public_url` (if set) names a loopback host.
    pub fn resolve(
        &self,
        listen: std::net::SocketAddr,
        public_url: Option<&str>,
    ) -> (bool, &'static str) {
        if let Some(on) = self.enabled {
            return (on, "set by demo.enabled");
        }
        if !listen.ip().is_loopback() {
            return (false, "HTTP listens on a non-loopback address");
        }
        let public_is_local = public_url.is_none_or(|u| {
            super::host_of(u).is_some_and(|h| {
                h == "localhost"
                    || h.parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            })
        });
        if !public_is_local {
            return (false, "public_url is not a loopback address");
        }
        (true, "HTTP listens on loopback only")
    }

    /// Whether `/demo` is served (after [`resolve`](Self::resolve) has settled it).
    pub fn is_enabled(&self) -> bool {
        self.enabled == Some(true)
    }
}
