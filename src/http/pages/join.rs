//! `GET /j/{token}`: the join page (askama), and `GET /static/{hash}/{file}`: its assets,
//! embedded with rust-embed under a content-hashed path with a one-year cache lifetime.

use std::sync::OnceLock;

use askama::Template;
use askama_web::WebTemplate;
use chrono::Utc;
use poem::http::StatusCode;
use poem::web::{Data, Path};
use poem::{IntoResponse, Request, Response, handler};
use rust_embed::Embed;

use crate::domain::session::Role;
use crate::http::state::AppState;
use crate::store::links::{self as participants, LinkError};

#[derive(Template, WebTemplate)]
#[template(path = "link_error.html")]
struct LinkErrorPage {
    lang: &'static str,
    code: &'static str,
    heading: &'static str,
    message: &'static str,
}

#[derive(Template, WebTemplate)]
#[template(path = "join.html")]
struct JoinPage {
    lang: &'static str,
    /// `rtl` for right-to-left languages, else `ltr`.
    dir: &'static str,
    role: &'static str,
    peer_name: String,
    self_name: String,
    assets: String,
    /// JSON list of origins that may frame the agent's page (empty for customers).
    embed_origins: String,
}

#[derive(Embed)]
#[folder = "static/"]
struct Assets;

/// Languages the join page speaks: English in `static/i18n.js`, the others in
/// `static/i18n/<lang>.js`, each loaded only by a page in that language.
pub const LANGUAGES: [&str; 6] = ["en", "es", "fr", "de", "pt", "ar"];

/// Languages written right to left (the page gets `dir="rtl"`).
const RTL: [&str; 1] = ["ar"];

/// The text direction of a page language: `rtl` or `ltr`.
pub fn direction(lang: &str) -> &'static str {
    if RTL.contains(&lang) { "rtl" } else { "ltr" }
}

/// A hash over every embedded asset: one changed byte gives every asset a new URL, so
/// relative ES module imports stay consistent and caches can keep files forever.
pub fn assets_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        use sha2::{Digest, Sha256};
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut h = Sha256::new();
        for n in names {
            if let Some(f) = Assets::get(&n) {
                h.update(n.as_bytes());
                h.update(f.metadata.sha256_hash());
            }
        }
        hex::encode(&h.finalize()[..6])
    })
}

/// The path prefix of the current assets, e.g. `/static/1a2b3c4d5e6f`.
pub fn assets_base() -> String {
    format!("/static/{}", assets_hash())
}

/// The page's CSP: nothing but this origin; no inline script or style.
const JOIN_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self'; \
    base-uri 'none'; frame-ancestors 'none'; form-action 'none'";

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
        LinkError::Removed => (
            StatusCode::GONE,
            "participant_removed",
            "You were removed from this call",
            "The agent removed you from this call. You can close this page.",
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

/// The page language: the session's customer locale for the customer, else the browser's
/// `Accept-Language`, else English.
pub fn pick_language(locale: Option<&str>, accept_language: Option<&str>) -> &'static str {
    let primary = |tag: &str| -> Option<&'static str> {
        let p = tag
            .trim()
            .split(['-', '_', ';'])
            .next()?
            .to_ascii_lowercase();
        LANGUAGES.iter().copied().find(|l| *l == p)
    };
    if let Some(l) = locale.and_then(primary) {
        return l;
    }
    accept_language
        .into_iter()
        .flat_map(|h| h.split(','))
        .take(16)
        .find_map(primary)
        .unwrap_or("en")
}

#[handler]
pub async fn join(req: &Request, state: Data<&AppState>) -> Response {
    // The raw path segment: tokens are base64url, so anything percent-encoded is invalid
    // anyway, and a malformed escape must get the same friendly page, not a 400.
    let token = req.uri().path().strip_prefix("/j/").unwrap_or_default();
    let headers = req.headers();
    let resolved = match participants::resolve(&state.db, &state.keys.join, token, Utc::now()).await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "join link lookup failed");
            return harden(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let r = match resolved {
        Err(e) => return link_error_response(e),
        Ok(r) => r,
    };
    let accept = headers.get("accept-language").and_then(|v| v.to_str().ok());
    let (lang, peer_name) = match r.role {
        Role::Agent => (
            pick_language(None, accept),
            r.session.customer_name.clone().unwrap_or_default(),
        ),
        Role::Customer => (
            pick_language(r.session.customer_locale.as_deref(), accept),
            r.session.agent_name.clone(),
        ),
        Role::Expert | Role::Supervisor => {
            (pick_language(None, accept), r.session.agent_name.clone())
        }
    };
    let page = JoinPage {
        lang,
        dir: direction(lang),
        role: r.role.as_str(),
        peer_name,
        self_name: r.participant.display_name.clone(),
        assets: assets_base(),
        embed_origins: String::new(),
    };
    // The agent's page may be framed by the widget's host pages (embed.allowed_origins);
    // the customer's page never.
    let framers = match r.role {
        Role::Agent | Role::Supervisor => embed_origins(&state),
        Role::Customer | Role::Expert => Vec::new(),
    };
    let page = JoinPage {
        embed_origins: serde_json::to_string(&framers).unwrap_or_else(|_| "[]".into()),
        ..page
    };
    let csp = if framers.is_empty() {
        JOIN_CSP.to_owned()
    } else {
        JOIN_CSP.replace(
            "frame-ancestors 'none'",
            &format!("frame-ancestors 'self' {}", framers.join(" ")),
        )
    };
    let mut resp = harden(page);
    let h = resp.headers_mut();
    if !framers.is_empty() {
        h.remove("x-frame-options");
    }
    for (k, v) in [
        ("content-security-policy", csp.as_str()),
        (
            "permissions-policy",
            "camera=(self), microphone=(self), display-capture=(self)",
        ),
        ("cross-origin-opener-policy", "same-origin"),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    resp
}

/// Origins allowed to frame the agent's call panel: our own and `embed.allowed_origins`.
pub fn embed_origins(state: &AppState) -> Vec<String> {
    let own = origin_of(&state.public_url);
    let mut v: Vec<String> = own.into_iter().collect();
    for o in &state.config.embed.allowed_origins {
        if !v.iter().any(|x| x.eq_ignore_ascii_case(o)) {
            v.push(o.clone());
        }
    }
    v
}

/// `scheme://host[:port]` of a URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    (!authority.is_empty()).then(|| format!("{scheme}://{authority}"))
}

/// `GET /widget.js`: the embeddable widget at a stable URL (host pages link it directly),
/// cached briefly and revalidated, loadable from any origin.
#[poem::handler]
pub async fn widget_script(req: &poem::Request) -> Response {
    let Some(f) = Assets::get("widget.js") else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let gz = gzip_for(req, "widget.js", &f.data);
    // Each encoding is its own representation, with its own validator.
    let etag = format!(
        "\"{}{}\"",
        assets_hash(),
        if gz.is_some() { "-gz" } else { "" }
    );
    if req
        .headers()
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header("etag", etag)
            .header("vary", "accept-encoding")
            .finish();
    }
    let r = Response::builder()
        .header("content-type", "text/javascript; charset=utf-8")
        .header("cache-control", "public, max-age=300, must-revalidate")
        .header("etag", etag)
        .header("x-content-type-options", "nosniff")
        .header("cross-origin-resource-policy", "cross-origin");
    encoded(r, gz, f.data)
}

/// The gzip form of an embedded asset, when the client accepts gzip and it pays.
fn gzip_for(req: &Request, file: &str, data: &[u8]) -> Option<&'static [u8]> {
    let accepts = super::compress::accepts_gzip(
        req.headers()
            .get("accept-encoding")
            .and_then(|v| v.to_str().ok()),
    );
    if accepts && super::compress::compressible(file) {
        super::compress::gzipped(file, data)
    } else {
        None
    }
}

/// The body of an embedded asset: `gz` when there is one, else `data`
/// (`Vary: Accept-Encoding` either way, so caches keep both forms apart).
fn encoded(
    r: poem::ResponseBuilder,
    gz: Option<&'static [u8]>,
    data: std::borrow::Cow<'static, [u8]>,
) -> Response {
    let r = r.header("vary", "accept-encoding");
    match (gz, data) {
        (Some(z), _) => r.header("content-encoding", "gzip").body(z),
        // Embedded in the binary (release builds): served without a copy.
        (None, std::borrow::Cow::Borrowed(b)) => r.body(b),
        (None, std::borrow::Cow::Owned(v)) => r.body(v),
    }
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[handler]
pub async fn asset(req: &Request, Path((hash, file)): Path<(String, String)>) -> Response {
    // Plain names, at most one folder deep (`i18n/ar.js`): nothing hidden, nothing relative.
    let plain = |seg: &str| {
        !seg.is_empty()
            && !seg.starts_with('.')
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    };
    if hash != assets_hash() || file.split('/').count() > 2 || !file.split('/').all(plain) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let Some(f) = Assets::get(&file) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let r = Response::builder()
        .header("content-type", content_type(&file))
        .header("cache-control", "public, max-age=31536000, immutable")
        .header("x-content-type-options", "nosniff")
        .header("cross-origin-resource-policy", "same-origin");
    let gz = gzip_for(req, &file, &f.data);
    encoded(r, gz, f.data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_prefers_the_session_locale_then_the_browser() {
        assert_eq!(pick_language(Some("pt-BR"), Some("de")), "pt");
        assert_eq!(pick_language(Some("xx"), Some("fr-CH, en;q=0.8")), "fr");
        assert_eq!(pick_language(None, Some("nl, es;q=0.5")), "es");
        assert_eq!(pick_language(None, None), "en");
        assert_eq!(pick_language(Some(""), Some("")), "en");
        assert_eq!(pick_language(Some("ar-EG"), Some("en")), "ar");
        assert_eq!(pick_language(None, Some("ar;q=0.9")), "ar");
    }

    #[test]
    fn arabic_pages_are_right_to_left() {
        assert_eq!(direction("ar"), "rtl");
        for l in LANGUAGES.iter().filter(|l| **l != "ar") {
            assert_eq!(direction(l), "ltr");
        }
    }

    #[test]
    fn assets_are_embedded_and_hashed() {
        assert_eq!(assets_hash().len(), 12);
        for f in ["join.js", "join.css", "i18n.js"] {
            assert!(Assets::get(f).is_some(), "{f} missing");
        }
        // Every language but English has its own file, loaded by its pages only.
        for l in LANGUAGES.iter().filter(|l| **l != "en") {
            let f = format!("i18n/{l}.js");
            assert!(Assets::get(&f).is_some(), "{f} missing");
        }
    }
}
