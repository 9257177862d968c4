//! The Chatwoot dashboard app: the page Chatwoot frames beside a conversation
//! (`GET /integrations/chatwoot/app?integration={id}`, script `static/chatwoot-app.js`)
//! and the JSON endpoints it calls. The agent signs in once with their own Chatwoot
//! access token, checked against Chatwoot's `GET /api/v1/profile` and then forgotten:
//! Sightline keeps the agent's id and name under the SHA-256 of a random reference, which
//! an `HttpOnly; Secure; SameSite=None; Partitioned` cookie carries. POSTs also need the
//! `X-Sightline-App: 1` header (a cross-site form cannot send it; a cross-site script
//! needs a CORS preflight Sightline does not grant).

use askama::Template;
use askama_web::WebTemplate;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use poem::web::{Data, Query as PoemQuery};
use poem::{IntoResponse, Response, handler};
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::delivery::net::{Method, OutboundRequest};
use crate::domain::session::Role;
use crate::http::chatwoot::{ChatwootTags, call_env, chatwoot_integration, start_error};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::chat_calls::{self, ChatCall};
use crate::store::integrations::{app_sessions, integration};
use crate::store::sessions::SessionView;

/// The cookie that carries the sign-in reference.
pub const COOKIE: &str = "sightline_cw";
/// How long a sign-in lasts.
const SIGN_IN_SECS: i64 = 12 * 3600;

#[derive(Template, WebTemplate)]
#[template(path = "chatwoot_app.html")]
struct AppPage {
    assets: String,
    chatwoot_origin: String,
    api: String,
}

#[derive(serde::Deserialize)]
pub struct PageQuery {
    integration: Option<String>,
}

/// The origin (`scheme://host[:port]`) of the integration's Chatwoot.
fn chatwoot_origin(i: &integration::Model) -> Option<String> {
    let base = i.config.get("base_url")?.as_str()?;
    let u = reqwest::Url::parse(base).ok()?;
    Some(u.origin().ascii_serialization()).filter(|o| o != "null")
}

/// `GET /integrations/chatwoot/app?integration={id}`: the page (framed only by the
/// integration's Chatwoot).
#[handler]
pub async fn page(state: Data<&AppState>, q: PoemQuery<PageQuery>) -> Response {
    let id = q.0.integration.unwrap_or_default();
    if id.is_empty() || id.len() > 128 {
        return ApiError::bad_request("invalid_integration", "?integration= is required")
            .into_response();
    }
    let i = match chatwoot_integration(&state, &id).await {
        Ok(i) => i,
        Err(e) => return e.into_response(),
    };
    let Some(origin) = chatwoot_origin(&i) else {
        return ApiError::internal(anyhow::anyhow!("integration without a usable base_url"))
            .into_response();
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors {origin}"
    );
    let mut r = AppPage {
        assets: crate::http::pages::join::assets_base(),
        chatwoot_origin: origin,
        api: format!("/api/v1/integrations/{}/chatwoot/app", i.id),
    }
    .into_response();
    let h = r.headers_mut();
    for (k, v) in [
        ("content-security-policy", csp.as_str()),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
    ] {
        if let Ok(v) = v.parse() {
            h.insert(k, v);
        }
    }
    r
}

/// The sign-in cookie, read from the `Cookie` header (declared `in: cookie`). Without
/// poem's cookie jar: one value, parsed here, no jar per request.
pub struct SignInCookie(pub Option<String>);

impl<'a> poem_openapi::ApiExtractor<'a> for SignInCookie {
    const TYPES: &'static [poem_openapi::ApiExtractorType] =
        &[poem_openapi::ApiExtractorType::Parameter];
    const PARAM_IS_REQUIRED: bool = false;
    type ParamType = Option<String>;
    type ParamRawType = String;

    fn param_in() -> Option<poem_openapi::registry::MetaParamIn> {
        Some(poem_openapi::registry::MetaParamIn::Cookie)
    }

    fn param_schema_ref() -> Option<poem_openapi::registry::MetaSchemaRef> {
        Some(<String as poem_openapi::types::Type>::schema_ref())
    }

    fn param_raw_type(&self) -> Option<&Self::ParamRawType> {
        self.0.as_ref()
    }

    async fn from_request(
        request: &'a poem::Request,
        _body: &mut poem::RequestBody,
        param_opts: poem_openapi::ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let name = param_opts.name;
        let value = request
            .headers()
            .get_all(poem::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim().to_owned());
        Ok(Self(value))
    }
}

/// An agent signed in to the dashboard app.
#[derive(Debug, Clone, Object)]
pub struct AppAgent {
    /// The agent's Chatwoot user id.
    pub id: String,
    pub name: String,
}

/// Sign in with the agent's own Chatwoot access token.
#[derive(Debug, Clone, Object)]
pub struct AppSignIn {
    /// The agent's Chatwoot access token (Profile settings → Access Token). Checked once
    /// with Chatwoot, never stored.
    #[oai(validator(min_length = 1, max_length = 512))]
    pub token: String,
}

/// The conversation the app is open beside.
#[derive(Debug, Clone, Object)]
pub struct AppConversation {
    /// The number Chatwoot shows for the conversation.
    #[oai(validator(minimum(value = "1"), maximum(value = "999999999999999999")))]
    pub conversation: i64,
}

/// A conversation's call as the app shows it.
#[derive(Debug, Clone, Object)]
pub struct AppCall {
    pub session_id: String,
    /// `created`, `waiting`, `active` or `ended`.
    pub status: String,
    /// The customer is in the call now.
    pub customer_present: bool,
    /// The customer's link (absent once the call ended).
    #[oai(nullable)]
    pub customer_url: Option<String>,
    /// The agent's link, opened in a popup (absent once the call ended).
    #[oai(nullable)]
    pub agent_url: Option<String>,
    #[oai(nullable)]
    pub ended_at: Option<DateTime<Utc>>,
}

/// The signed-in agent and the conversation's latest call.
#[derive(Debug, Clone, Object)]
pub struct AppView {
    pub agent: AppAgent,
    #[oai(nullable)]
    pub call: Option<AppCall>,
}

#[derive(ApiResponse)]
pub enum SignedIn {
    /// Signed in; the cookie carries the sign-in.
    #[oai(status = 200)]
    Ok(Json<AppAgent>, #[oai(header = "Set-Cookie")] String),
}

fn sign_in_required() -> ApiError {
    ApiError::unauthenticated(
        "app_sign_in_required",
        "sign in to the dashboard app with your Chatwoot access token",
    )
}

fn sha256_hex(s: &str) -> String {
    hex::encode(Sha256::digest(s.as_bytes()))
}

async fn signed_in_agent(
    state: &AppState,
    i: &integration::Model,
    cookie: Option<&str>,
) -> Result<app_sessions::Model, ApiError> {
    let reference = cookie
        .filter(|c| !c.is_empty() && c.len() <= 128)
        .ok_or_else(sign_in_required)?;
    app_sessions::find(&state.db, &sha256_hex(reference), &i.id, Utc::now())
        .await?
        .ok_or_else(sign_in_required)
}

fn to_call(state: &AppState, v: &SessionView) -> AppCall {
    let url = |role: Role| v.join_url(&state.keys.join, &state.public_url, role);
    AppCall {
        session_id: v.session.id.clone(),
        status: v.session.status.clone(),
        customer_present: v
            .participants
            .iter()
            .any(|p| p.role == Role::Customer.as_str() && p.present),
        customer_url: url(Role::Customer),
        agent_url: url(Role::Agent),
        ended_at: v.session.ended_at,
    }
}

fn check_app_header(h: &Option<String>) -> Result<(), ApiError> {
    if h.as_deref() == Some("1") {
        Ok(())
    } else {
        Err(ApiError::denied(
            "app_header_missing",
            "send X-Sightline-App: 1 (the dashboard app does)",
        ))
    }
}

pub struct ChatwootAppApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ChatwootTags::Chatwoot")]
impl ChatwootAppApi {
    /// Sign in to the Chatwoot dashboard app
    ///
    /// Checks the agent's own Chatwoot access token with Chatwoot (`GET /api/v1/profile`)
    /// and, when Chatwoot accepts it, sets a cookie for twelve hours. The token is not
    /// stored. A token Chatwoot refuses answers `401 chatwoot_token_refused`.
    #[oai(
        path = "/integrations/:id/chatwoot/app/session",
        method = "post",
        operation_id = "chatwootAppSignIn"
    )]
    async fn sign_in(
        &self,
        state: Data<&AppState>,
        #[oai(validator(max_length = 128))] id: Path<String>,
        /// Must be `1`.
        #[oai(name = "X-Sightline-App", validator(max_length = 8))]
        app: Header<Option<String>>,
        body: Json<AppSignIn>,
    ) -> Result<SignedIn, ApiError> {
        check_app_header(&app.0)?;
        let i = chatwoot_integration(&state, &id.0).await?;
        let base = i
            .config
            .get("base_url")
            .and_then(|b| b.as_str())
            .ok_or_else(|| ApiError::internal(anyhow::anyhow!("no base_url")))?;
        let token = body.0.token.trim();
        if token.chars().any(|c| c.is_control()) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "token holds control characters",
            ));
        }
        let req = OutboundRequest {
            method: Method::Get,
            url: format!("{base}/api/v1/profile"),
            headers: vec![("Api-Access-Token".into(), token.to_owned())],
            body: Vec::new(),
        };
        let reply = state.outbound.send(&req, None).await.map_err(|e| {
            tracing::warn!(integration = %i.name, error = %e, "dashboard app: Chatwoot unreachable");
            ApiError::Unavailable("Chatwoot could not be reached to check the token".into())
        })?;
        if matches!(reply.status, 401 | 403) {
            tracing::info!(integration = %i.name, "dashboard app: Chatwoot refused an agent's token");
            return Err(ApiError::unauthenticated(
                "chatwoot_token_refused",
                "Chatwoot did not accept this access token",
            ));
        }
        if !(200..300).contains(&reply.status) {
            return Err(ApiError::Unavailable(format!(
                "Chatwoot answered HTTP {} to the token check",
                reply.status
            )));
        }
        let profile: serde_json::Value = serde_json::from_slice(&reply.body)
            .map_err(|_| ApiError::Unavailable("Chatwoot's profile answer is not JSON".into()))?;
        let agent_id = match profile.get("id") {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            _ => {
                return Err(ApiError::Unavailable(
                    "Chatwoot's profile has no user id".into(),
                ));
            }
        };
        let name: String = profile
            .get("available_name")
            .or_else(|| profile.get("name"))
            .and_then(|n| n.as_str())
            .unwrap_or("Agent")
            .chars()
            .filter(|c| !c.is_control())
            .take(80)
            .collect();
        let now = Utc::now();
        let mut raw = [0u8; 32];
        rand::rng().fill_bytes(&mut raw);
        let reference = URL_SAFE_NO_PAD.encode(raw);
        app_sessions::create(
            &state.db,
            app_sessions::Model {
                id: sha256_hex(&reference),
                integration_id: i.id.clone(),
                agent_id: agent_id.clone(),
                agent_name: name.clone(),
                created_at: now,
                expires_at: now + chrono::Duration::seconds(SIGN_IN_SECS),
            },
            now,
        )
        .await?;
        tracing::info!(integration = %i.name, agent = %agent_id, "dashboard app: agent signed in");
        let cookie = format!(
            "{COOKIE}={reference}; Path=/api/v1/integrations/{}/chatwoot/app; Max-Age={SIGN_IN_SECS}; \
             HttpOnly; Secure; SameSite=None; Partitioned",
            i.id
        );
        Ok(SignedIn::Ok(Json(AppAgent { id: agent_id, name }), cookie))
    }

    /// The conversation's call, for the dashboard app
    #[oai(
        path = "/integrations/:id/chatwoot/app/call",
        method = "get",
        operation_id = "chatwootAppCall"
    )]
    async fn get_call(
        &self,
        state: Data<&AppState>,
        #[oai(validator(max_length = 128))] id: Path<String>,
        /// The number Chatwoot shows for the conversation.
        #[oai(validator(minimum(value = "1"), maximum(value = "999999999999999999")))]
        conversation: Query<i64>,
        #[oai(name = "sightline_cw")] cookie: SignInCookie,
    ) -> Result<Json<AppView>, ApiError> {
        let i = chatwoot_integration(&state, &id.0).await?;
        let a = signed_in_agent(&state, &i, cookie.0.as_deref()).await?;
        let v = chat_calls::latest_call(&state.db, "chatwoot", &conversation.0.to_string()).await?;
        Ok(Json(AppView {
            agent: AppAgent {
                id: a.agent_id,
                name: a.agent_name,
            },
            call: v.as_ref().map(|v| to_call(&state, v)),
        }))
    }

    /// Start a call from the dashboard app
    ///
    /// For the signed-in agent; while the conversation has a live call, that call is
    /// answered. The customer's link is posted publicly, the agent's as a private note.
    #[oai(
        path = "/integrations/:id/chatwoot/app/call",
        method = "post",
        operation_id = "chatwootAppStart"
    )]
    async fn start(
        &self,
        state: Data<&AppState>,
        #[oai(validator(max_length = 128))] id: Path<String>,
        #[oai(name = "X-Sightline-App", validator(max_length = 8))] app: Header<Option<String>>,
        #[oai(name = "sightline_cw")] cookie: SignInCookie,
        body: Json<AppConversation>,
    ) -> Result<Json<AppView>, ApiError> {
        check_app_header(&app.0)?;
        let i = chatwoot_integration(&state, &id.0).await?;
        let a = signed_in_agent(&state, &i, cookie.0.as_deref()).await?;
        let conv = body.0.conversation;
        if conv < 1 {
            return Err(ApiError::bad_request(
                "invalid_conversation_id",
                "conversation must be a positive number",
            ));
        }
        let conv = conv.to_string();
        let view = match chat_calls::live_call(&state.db, "chatwoot", &conv).await? {
            Some(v) => v,
            None => {
                let now = Utc::now();
                let call = ChatCall {
                    conversation_id: conv.clone(),
                    agent_id: a.agent_id.clone(),
                    agent_name: a.agent_name.clone(),
                    customer_name: None,
                    customer_email: None,
                    // A double click within ten seconds is one call.
                    key: format!("app:{conv}:{}:{}", a.agent_id, now.timestamp() / 10),
                    agent_note: true,
                };
                chat_calls::start(&call_env(&state), &i, call, now)
                    .await
                    .map_err(start_error)?
                    .0
            }
        };
        tracing::info!(session_id = %view.session.id, integration = %i.name,
            "call started from the Chatwoot dashboard app");
        Ok(Json(AppView {
            agent: AppAgent {
                id: a.agent_id,
                name: a.agent_name,
            },
            call: Some(to_call(&state, &view)),
        }))
    }

    /// End the conversation's call from the dashboard app
    #[oai(
        path = "/integrations/:id/chatwoot/app/call/end",
        method = "post",
        operation_id = "chatwootAppEnd"
    )]
    async fn end(
        &self,
        state: Data<&AppState>,
        #[oai(validator(max_length = 128))] id: Path<String>,
        #[oai(name = "X-Sightline-App", validator(max_length = 8))] app: Header<Option<String>>,
        #[oai(name = "sightline_cw")] cookie: SignInCookie,
        body: Json<AppConversation>,
    ) -> Result<Json<AppView>, ApiError> {
        check_app_header(&app.0)?;
        let i = chatwoot_integration(&state, &id.0).await?;
        let a = signed_in_agent(&state, &i, cookie.0.as_deref()).await?;
        let conv = body.0.conversation.to_string();
        let live = chat_calls::live_call(&state.db, "chatwoot", &conv)
            .await?
            .ok_or_else(|| {
                ApiError::not_found("session_not_found", "this conversation has no live call")
            })?;
        let sid = crate::domain::SessionId::parse(&live.session.id).map_err(|_| {
            ApiError::internal(anyhow::anyhow!("a stored session id is not a UUID"))
        })?;
        crate::http::sessions::end_session(&state, &sid, "ended_by_agent").await?;
        let v = crate::store::sessions::get(&state.db, &live.session.id).await?;
        Ok(Json(AppView {
            agent: AppAgent {
                id: a.agent_id,
                name: a.agent_name,
            },
            call: v.as_ref().map(|v| to_call(&state, v)),
        }))
    }
}
