//! `GET /demo`: a pretend agent desktop with the widget mounted, so a newcomer gets the
//! whole product in two clicks. On by default; `demo.enabled = false` turns it off.

use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Response, handler};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::agent::{self, AgentClaims};
use crate::state::AppState;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct DemoSettings {
    /// Serve `/demo`. Anyone who can open it can start calls: turn it off in production.
    pub enabled: bool,
}

impl Default for DemoSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
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
    if !state.config.demo.enabled {
        return StatusCode::NOT_FOUND.into_response();
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
    };
    let token = agent::seal(&state.keys.agent, &claims, Utc::now().timestamp() + 3600);
    let page = DemoPage {
        assets: crate::join::assets_base(),
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
