//! `GET /demo`: a pretend agent desktop with the widget mounted, so a newcomer gets the
//! whole product in two clicks.
//!
//! Anyone who can open the page gets an agent token, so it is on by default only while
//! nobody else can reach it: the HTTP server listens on a loopback address (and
//! `public_url`, when set, names a loopback host). `demo.enabled = true` turns it on
//! anywhere, `false` off. Demo tokens can start, end and re-link calls, never e-mail or
//! post through an integration; minting them and creating sessions with them are
//! rate-limited.

use std::sync::Mutex;
use std::time::Instant;

use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};
use rand::RngCore;

use crate::domain::agent_token::{self as agent, AgentClaims};
use crate::http::error::ApiError;
use crate::http::state::AppState;

pub use crate::config::DemoSettings;

/// A token bucket: `per_minute` takes a minute, refilled continuously, bursts up to
/// `per_minute`. Pure apart from its lock: the time is passed in.
#[derive(Debug)]
pub struct RateLimit {
    per_minute: u32,
    state: Mutex<Option<(f64, Instant)>>,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            state: Mutex::new(None),
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&self, now: Instant) -> bool {
        let cap = f64::from(self.per_minute);
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, last) = st.unwrap_or((cap, now));
        let refilled =
            (tokens + now.saturating_duration_since(last).as_secs_f64() * cap / 60.0).min(cap);
        if refilled >= 1.0 {
            *st = Some((refilled - 1.0, now));
            true
        } else {
            *st = Some((refilled, now));
            false
        }
    }
}

/// The demo's rate limits.
#[derive(Debug)]
pub struct DemoLimits {
    pub pages: RateLimit,
    pub sessions: RateLimit,
}

impl DemoLimits {
    pub fn new(s: &DemoSettings) -> Self {
        Self {
            pages: RateLimit::new(s.pages_per_minute),
            sessions: RateLimit::new(s.sessions_per_minute),
        }
    }
}

/// The answer to what demo tokens may not do.
pub fn not_for_demo(what: &str) -> ApiError {
    ApiError::denied(
        "demo_not_allowed",
        format!("demo tokens cannot {what}; mint an agent token with an API key"),
    )
}

#[derive(Template, WebTemplate)]
#[template(path = "demo.html")]
struct DemoPage {
    assets: String,
    token: String,
    platform: &'static str,
    conversation: String,
    agent_name: &'static str,
    customer_name: &'static str,
}

pub const DEMO_PLATFORM: &str = "demo";
const AGENT_NAME: &str = "Ana (agent)";
const CUSTOMER_NAME: &str = "Sam (customer)";

#[handler]
pub async fn page(state: Data<&AppState>) -> Response {
    if !state.config.demo.is_enabled() {
        return StatusCode::NOT_FOUND.into_response();
    }
    if !state.demo.pages.try_take(Instant::now()) {
        return ApiError::TooManyRequests.into_response();
    }
    let mut raw = [0u8; 6];
    rand::rng().fill_bytes(&mut raw);
    let conversation = format!("demo-{}", hex::encode(raw));
    let claims = AgentClaims {
        agent_id: "demo-agent".into(),
        agent_name: AGENT_NAME.into(),
        conversation: Some((DEMO_PLATFORM.into(), conversation.clone())),
        api_key_id: "demo".into(),
        post_link_via: None,
        token_id: crate::store::agent_tokens::new_token_id(),
        demo: true,
    };
    let token = agent::seal(&state.keys.agent, &claims, Utc::now().timestamp() + 3600);
    let page = DemoPage {
        assets: crate::http::pages::join::assets_base(),
        token,
        platform: DEMO_PLATFORM,
        conversation,
        agent_name: AGENT_NAME,
        customer_name: CUSTOMER_NAME,
    };
    let mut r = page.into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("cache-control", "no-store"),
        ("referrer-policy", "no-referrer"),
        ("x-content-type-options", "nosniff"),
        (
            "content-security-policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'",
        ),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn on_by_default_only_on_loopback() {
        let d = DemoSettings::default();
        let lo: std::net::SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let any: std::net::SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert!(d.resolve(lo, None).0);
        assert!(d.resolve("[::1]:8080".parse().unwrap(), None).0);
        assert!(d.resolve(lo, Some("http://localhost:8080")).0);
        assert!(!d.resolve(any, None).0);
        assert!(!d.resolve("192.0.2.7:80".parse().unwrap(), None).0);
        assert!(
            !d.resolve(lo, Some("https://video.example.com")).0,
            "behind a proxy"
        );
        let on = DemoSettings {
            enabled: Some(true),
            ..d.clone()
        };
        assert!(on.resolve(any, None).0);
        let off = DemoSettings {
            enabled: Some(false),
            ..d
        };
        assert!(!off.resolve(lo, None).0);
    }

    #[test]
    fn rate_limit_bursts_then_refills() {
        let r = RateLimit::new(3);
        let t = Instant::now();
        assert!(r.try_take(t) && r.try_take(t) && r.try_take(t));
        assert!(!r.try_take(t));
        assert!(!r.try_take(t + Duration::from_secs(10)));
        assert!(r.try_take(t + Duration::from_secs(21)));
        assert!(!r.try_take(t + Duration::from_secs(21)));
        assert!(!RateLimit::new(0).try_take(t));
    }
}
