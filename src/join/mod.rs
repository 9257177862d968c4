//! `GET /j/{token}`: the page a join link opens.

use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};

use crate::participants::{self, LinkError};
use crate::sessions::machine::Role;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "link_error.html")]
struct LinkErrorPage {
    lang: &'static str,
    code: &'static str,
    heading: &'static str,
    message: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "join_minimal.html")]
struct JoinPage {
    lang: &'static str,
    other_name: String,
    status: String,
}

/// Headers every join-link response carries: the token in the URL must not leak through
/// a Referer, caches or framing.
pub fn harden(resp: impl IntoResponse) -> Response {
    let mut r = resp.into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        (
            "content-security-policy",
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    r
}

pub fn link_error_response(e: LinkError) -> Response {
    let (status, code, heading, message) = match e {
        LinkError::Invalid => (
            StatusCode::NOT_FOUND,
            "link_invalid",
            "This link does not work",
            "Check that you opened the whole link, or ask the agent to send it again.",
        ),
        LinkError::Expired => (
            StatusCode::GONE,
            "link_expired",
            "This link has expired",
            "Ask the agent to send you a new link.",
        ),
        LinkError::Revoked => (
            StatusCode::GONE,
            "link_revoked",
            "This link was replaced",
            "A newer link was sent for this call. Please use that one.",
        ),
        LinkError::Ended => (
            StatusCode::GONE,
            "session_ended",
            "This call has ended",
            "Thank you. You can close this page.",
        ),
    };
    let page = LinkErrorPage {
        lang: "en",
        code,
        heading,
        message,
    };
    harden(page.with_status(status))
}

#[handler]
pub async fn join(req: &Request, state: Data<&AppState>) -> Response {
    // The raw path segment: tokens are base64url, so anything percent-encoded is invalid
    // anyway, and a malformed escape must get the same friendly page, not a 400.
    let token = req.uri().path().strip_prefix("/j/").unwrap_or_default();
    let resolved = match participants::resolve(&state.db, &state.keys.join, token, Utc::now()).await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "join link lookup failed");
            return harden(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    match resolved {
        Err(e) => link_error_response(e),
        Ok(r) => {
            let other_name = match r.role {
                Role::Agent => r
                    .session
                    .customer_name
                    .clone()
                    .unwrap_or_else(|| "the customer".into()),
                Role::Customer => r.session.agent_name.clone(),
            };
            harden(JoinPage {
                lang: "en",
                other_name,
                status: r.session.status.clone(),
            })
        }
    }
}
