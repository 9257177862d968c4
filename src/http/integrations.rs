//! REST: `/api/v1/integrations` (API key) and the inbound webhook
//! `POST /api/v1/integrations/{id}/inbound` (Standard Webhooks signature, no API key).

use chrono::{DateTime, Utc};
use poem::web::{Data, Path as PoemPath};
use poem::{Body, IntoResponse, Request, Response, handler};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set};

use crate::delivery::adapters;
use crate::delivery::message;
use crate::delivery::signing;
use crate::domain::fields::{AgentId, ConversationRef, DisplayName, Email, Locale, Metadata};
use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::store::creation::NewSession;
use crate::store::integrations::inbound as store_inbound;
use crate::store::integrations::integration;

#[derive(Tags)]
pub enum IntegrationTags {
    /// Chat platforms: where links are posted, where events go, inbound "start video".
    Integrations,
}

/// Which adapter an integration uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum IntegrationKind {
    /// POSTs `{"text", …}` to `config.post_url`.
    Generic,
    /// Posts through Chatwoot's API (`base_url`, `account_id`, `api_access_token`;
    /// optional `webhook_secret`, `command`, `progress_notes`).
    Chatwoot,
    /// Posts into a Matrix room through a bot account (`homeserver_url`, `access_token`;
    /// optional `inbound`, `command`, `agents`, `notes_room`).
    Matrix,
}

impl IntegrationKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Generic => "generic",
            Self::Chatwoot => "chatwoot",
            Self::Matrix => "matrix",
        }
    }
}

/// Register a chat platform.
#[derive(Debug, Clone, Object)]
pub struct CreateIntegration {
    /// Unique name, used as `post_link_via` when creating sessions: letters, digits,
    /// `-`, `_`, `.` (surrounding spaces are trimmed).
    #[oai(validator(
        min_length = 1,
        max_length = 100,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9._-]+[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(deserialize_with = "crate::http::strict::string")]
    pub name: String,
    /// Adapter: `generic` (config `{"post_url", "private_notes"?}`), `chatwoot` (config
    /// `{"base_url", "account_id", "api_access_token", "webhook_secret"?, "command"?,
    /// "progress_notes"?}`) or `matrix` (config `{"homeserver_url", "access_token",
    /// "inbound"?, "command"?, "agents"?, "notes_room"?}`).
    pub kind: IntegrationKind,
    /// Adapter settings (see `kind`). Credentials are write-only. Settings the adapter
    /// cannot use (a missing field, a URL that outbound policy refuses) answer `422`.
    pub config: serde_json::Value,
    /// Where event webhooks are POSTed; no events are sent when absent or blank. A URL
    /// that outbound policy refuses answers `422`.
    #[oai(validator(max_length = 2048))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub events_url: Option<String>,
    /// Event types to send (default: all). `*` means all.
    #[oai(validator(
        pattern = r"^(\*|session\.(created|link_posted|ended|transfer_started|transferred|rated|erased)|participant\.(invited|removed|mode_changed|waiting|admitted|denied|declined|joined|left|reconnecting|prechecked)|snapshot\.taken|quality\.degraded|delivery\.failed|recording\.(started|paused|resumed|stopped|consent|ready|failed|played|downloaded|deleted)|retention\.purged)$"
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string_list")]
    pub events: Option<Vec<String>>,
    /// `linked` (default): events of sessions started through this integration;
    /// `all`: events of every session.
    #[oai(validator(pattern = r"^(linked|all)$"))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub scope: Option<String>,
    /// Language of posted messages when the customer's locale is unknown: a tag whose
    /// primary language is `en` or `de` (`de-AT` counts as `de`).
    #[oai(validator(pattern = r"^([Ee][Nn]|[Dd][Ee])([-_][\s\S]*)?$"))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub locale: Option<String>,
}

/// Change an integration; absent fields keep their value.
#[derive(Debug, Clone, Object)]
pub struct UpdateIntegration {
    #[oai(validator(
        min_length = 1,
        max_length = 100,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[A-Za-z0-9._-]+[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub name: Option<String>,
    /// Replaces the adapter settings; omitted credentials keep their stored value.
    #[oai(nullable)]
    pub config: Option<serde_json::Value>,
    /// Empty string removes it.
    #[oai(validator(max_length = 2048))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub events_url: Option<String>,
    #[oai(validator(
        pattern = r"^(\*|session\.(created|link_posted|ended|transfer_started|transferred|rated|erased)|participant\.(invited|removed|mode_changed|waiting|admitted|denied|declined|joined|left|reconnecting|prechecked)|snapshot\.taken|quality\.degraded|delivery\.failed|recording\.(started|paused|resumed|stopped|consent|ready|failed|played|downloaded|deleted)|retention\.purged)$"
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string_list")]
    pub events: Option<Vec<String>>,
    #[oai(validator(pattern = r"^(linked|all)$"))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub scope: Option<String>,
    #[oai(validator(pattern = r"^([Ee][Nn]|[Dd][Ee])([-_][\s\S]*)?$"))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct Integration {
    pub id: String,
    pub name: String,
    pub kind: IntegrationKind,
    /// Adapter settings with credentials shown as `<set>`.
    pub config: serde_json::Value,
    #[oai(nullable)]
    pub events_url: Option<String>,
    pub events: Vec<String>,
    pub scope: String,
    pub locale: String,
    /// Where the chat platform sends "start video" (signed with the signing secret).
    pub inbound_url: String,
    /// Chatwoot: the account webhook URL (`/video` in a private note).
    #[oai(nullable)]
    pub chatwoot_events_url: Option<String>,
    /// Chatwoot: the dashboard app's URL.
    #[oai(nullable)]
    pub chatwoot_app_url: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// An integration with its signing secret: shown only on creation and rotation.
#[derive(Debug, Clone, Object)]
pub struct IntegrationWithSecret {
    #[oai(flatten)]
    pub integration: Integration,
    /// `whsec_…`: verify our webhooks with it (any Standard Webhooks library) and sign
    /// inbound calls with it. Store it now; it is not shown again.
    pub signing_secret: String,
    /// Chatwoot: the URL of the macro "Start video call" (it holds a secret derived from
    /// the signing secret; shown with it, and replaced when it is rotated).
    #[oai(nullable)]
    pub chatwoot_macro_url: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct IntegrationList {
    pub items: Vec<Integration>,
}

#[derive(ApiResponse)]
pub enum CreatedIntegration {
    #[oai(status = 201)]
    Created(Json<IntegrationWithSecret>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    #[oai(status = 204)]
    NoContent,
}

pub struct IntegrationsApi;

fn bad(detail: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_field", detail)
}

/// Settings that are well-formed but that the adapter or the outbound policy refuses.
fn unacceptable(detail: impl Into<String>) -> ApiError {
    ApiError::unprocessable("invalid_field", detail)
}

fn not_found() -> ApiError {
    ApiError::not_found(
        "integration_not_found",
        "no integration with this id or name",
    )
}

fn check_name(name: &str) -> Result<String, ApiError> {
    let n = name.trim();
    if n.is_empty()
        || name.chars().count() > 100
        || !n
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad(
            "name may contain only letters, digits, '-', '_' and '.'",
        ));
    }
    Ok(n.to_owned())
}

fn check_events(events: Option<&[String]>) -> Result<Vec<String>, ApiError> {
    let Some(events) = events else {
        return Ok(vec!["*".to_owned()]);
    };
    for e in events {
        if e != "*" && !crate::store::integrations::is_event_type(e) {
            return Err(bad(format!(
                "unknown event type `{e}`; known: {}",
                crate::store::integrations::event_types()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(events.to_vec())
}

fn check_scope(scope: Option<&str>) -> Result<String, ApiError> {
    match scope.unwrap_or("linked") {
        s @ ("linked" | "all") => Ok(s.to_owned()),
        _ => Err(bad("scope must be `linked` or `all`")),
    }
}

fn check_locale(locale: Option<&str>) -> Result<String, ApiError> {
    let l = locale.unwrap_or("en");
    message::language_of(l).map(str::to_owned).ok_or_else(|| {
        bad(format!(
            "locale must be one of {}",
            message::LANGUAGES.join(", ")
        ))
    })
}

fn check_events_url(state: &AppState, url: Option<&str>) -> Result<Option<String>, ApiError> {
    match url.map(str::trim).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(u) => {
            state
                .outbound
                .check_url(u)
                .map_err(|e| unacceptable(format!("events_url: {e}")))?;
            Ok(Some(u.to_owned()))
        }
    }
}

/// Checks where an adapter's config sends requests against the outbound policy (the same
/// check as `events_url`; names are checked again when resolved at delivery time).
fn check_destinations(
    state: &AppState,
    adapter: &dyn adapters::Adapter,
    config: &serde_json::Value,
) -> Result<(), ApiError> {
    for (key, url) in adapter.destinations(config) {
        state
            .outbound
            .check_url(url)
            .map_err(|e| unacceptable(format!("config.{key}: {e}")))?;
    }
    Ok(())
}

fn to_api(state: &AppState, m: &integration::Model) -> Integration {
    let config = adapters::by_kind(&m.kind)
        .map(|a| a.public_config(&m.config))
        .unwrap_or(serde_json::Value::Null);
    Integration {
        id: m.id.clone(),
        name: m.name.clone(),
        kind: match m.kind.as_str() {
            "chatwoot" => IntegrationKind::Chatwoot,
            "matrix" => IntegrationKind::Matrix,
            _ => IntegrationKind::Generic,
        },
        config,
        events_url: m.events_url.clone(),
        events: m
            .events
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        scope: m.scope.clone(),
        locale: m.locale.clone(),
        inbound_url: format!("{}/api/v1/integrations/{}/inbound", state.public_url, m.id),
        chatwoot_events_url: (m.kind == "chatwoot").then(|| {
            format!(
                "{}/api/v1/integrations/{}/chatwoot/events",
                state.public_url, m.id
            )
        }),
        chatwoot_app_url: (m.kind == "chatwoot").then(|| {
            format!(
                "{}/integrations/chatwoot/app?integration={}",
                state.public_url, m.id
            )
        }),
        created_at: m.created_at,
        updated_at: m.updated_at,
    }
}

/// A Chatwoot integration's macro URL for this signing secret.
fn macro_url(state: &AppState, m: &integration::Model, secret: &str) -> Option<String> {
    (m.kind == "chatwoot").then(|| {
        format!(
            "{}/api/v1/integrations/{}/chatwoot/macro/{}",
            state.public_url,
            m.id,
            adapters::macro_secret(secret)
        )
    })
}

fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[OpenApi(prefix_path = "/api/v1", tag = "IntegrationTags::Integrations")]
impl IntegrationsApi {
    /// Register an integration
    ///
    /// The response carries the signing secret, shown only this once.
    #[oai(
        path = "/integrations",
        method = "post",
        operation_id = "createIntegration"
    )]
    async fn create(
        &self,
        state: Data<&AppState>,
        _auth: ApiKeyAuth,
        body: Json<CreateIntegration>,
    ) -> Result<CreatedIntegration, ApiError> {
        let b = body.0;
        let adapter = adapters::by_kind(b.kind.as_str()).ok_or_else(|| {
            bad(format!(
                "kind must be one of {}",
                adapters::kinds().join(", ")
            ))
        })?;
        let config = adapter
            .parse_config(&b.config, None)
            .map_err(unacceptable)?;
        check_destinations(&state, adapter, &config)?;
        let now = Utc::now();
        let secret = signing::generate_secret();
        let row = integration::ActiveModel {
            id: Set(uuid::Uuid::now_v7().to_string()),
            name: Set(check_name(&b.name)?),
            kind: Set(adapter.kind().to_owned()),
            config: Set(config),
            signing_secret: Set(secret.clone()),
            events: Set(serde_json::json!(check_events(b.events.as_deref())?)),
            events_url: Set(check_events_url(&state, b.events_url.as_deref())?),
            scope: Set(check_scope(b.scope.as_deref())?),
            locale: Set(check_locale(b.locale.as_deref())?),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(&state.db)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::conflict(
                    "integration_name_taken",
                    "an integration with this name exists",
                )
            } else {
                e.into()
            }
        })?;
        Ok(CreatedIntegration::Created(Json(IntegrationWithSecret {
            integration: to_api(&state, &row),
            chatwoot_macro_url: macro_url(&state, &row, &secret),
            signing_secret: secret,
        })))
    }

    /// List integrations
    #[oai(
        path = "/integrations",
        method = "get",
        operation_id = "listIntegrations"
    )]
    async fn list(
        &self,
        state: Data<&AppState>,
        _auth: ApiKeyAuth,
    ) -> Result<Json<IntegrationList>, ApiError> {
        let rows = integration::Entity::find()
            .order_by_asc(integration::Column::Name)
            .all(&state.db)
            .await?;
        Ok(Json(IntegrationList {
            items: rows.iter().map(|r| to_api(&state, r)).collect(),
        }))
    }

    /// Get an integration (by id or name)
    #[oai(
        path = "/integrations/:id",
        method = "get",
        operation_id = "getIntegration"
    )]
    async fn get(
        &self,
        state: Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<Integration>, ApiError> {
        let row = crate::store::integrations::find(&state.db, &id.0)
            .await?
            .ok_or_else(not_found)?;
        Ok(Json(to_api(&state, &row)))
    }

    /// Update an integration
    #[oai(
        path = "/integrations/:id",
        method = "patch",
        operation_id = "updateIntegration"
    )]
    async fn update(
        &self,
        state: Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        body: Json<UpdateIntegration>,
    ) -> Result<Json<Integration>, ApiError> {
        let row = crate::store::integrations::find(&state.db, &id.0)
            .await?
            .ok_or_else(not_found)?;
        let b = body.0;
        let mut a: integration::ActiveModel = row.clone().into();
        if let Some(n) = &b.name {
            a.name = Set(check_name(n)?);
        }
        if let Some(c) = &b.config {
            let adapter = adapters::by_kind(&row.kind).ok_or_else(not_found)?;
            let config = adapter
                .parse_config(c, Some(&row.config))
                .map_err(unacceptable)?;
            check_destinations(&state, adapter, &config)?;
            a.config = Set(config);
        }
        if b.events_url.is_some() {
            a.events_url = Set(check_events_url(&state, b.events_url.as_deref())?);
        }
        if b.events.is_some() {
            a.events = Set(serde_json::json!(check_events(b.events.as_deref())?));
        }
        if b.scope.is_some() {
            a.scope = Set(check_scope(b.scope.as_deref())?);
        }
        if b.locale.is_some() {
            a.locale = Set(check_locale(b.locale.as_deref())?);
        }
        a.updated_at = Set(Utc::now());
        let row = a.update(&state.db).await.map_err(|e| {
            if is_unique_violation(&e) {
                ApiError::conflict(
                    "integration_name_taken",
                    "an integration with this name exists",
                )
            } else {
                e.into()
            }
        })?;
        Ok(Json(to_api(&state, &row)))
    }

    /// Delete an integration
    ///
    /// Its pending deliveries are dead-lettered when the worker reaches them.
    #[oai(
        path = "/integrations/:id",
        method = "delete",
        operation_id = "deleteIntegration"
    )]
    async fn delete(
        &self,
        state: Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Deleted, ApiError> {
        let row = crate::store::integrations::find(&state.db, &id.0)
            .await?
            .ok_or_else(not_found)?;
        integration::Entity::delete_by_id(row.id)
            .exec(&state.db)
            .await?;
        Ok(Deleted::NoContent)
    }

    /// Rotate the signing secret
    ///
    /// Returns the new secret (shown only this once). Pending deliveries are signed with
    /// it from now on.
    #[oai(
        path = "/integrations/:id/rotate-secret",
        method = "post",
        operation_id = "rotateIntegrationSecret"
    )]
    async fn rotate(
        &self,
        state: Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<IntegrationWithSecret>, ApiError> {
        let row = crate::store::integrations::find(&state.db, &id.0)
            .await?
            .ok_or_else(not_found)?;
        let secret = signing::generate_secret();
        let mut a: integration::ActiveModel = row.into();
        a.signing_secret = Set(secret.clone());
        a.updated_at = Set(Utc::now());
        let row = a.update(&state.db).await?;
        Ok(Json(IntegrationWithSecret {
            integration: to_api(&state, &row),
            chatwoot_macro_url: macro_url(&state, &row, &secret),
            signing_secret: secret,
        }))
    }
}

/// Body of the inbound "start video" webhook.
#[derive(Debug, serde::Deserialize)]
struct InboundStart {
    /// The platform's id of this event (automation run, slash command): with the
    /// conversation, makes the call idempotent.
    event_id: String,
    conversation_id: String,
    agent: InboundAgent,
    #[serde(default)]
    customer: Option<InboundCustomer>,
    #[serde(default)]
    relay_only: Option<bool>,
    /// The customer waits in a lobby (default: the server's `sessions.lobby`).
    #[serde(default)]
    lobby: Option<bool>,
}

#[derive(Debug, serde::Deserialize)]
struct InboundAgent {
    id: String,
    name: String,
}

#[derive(Debug, serde::Deserialize)]
struct InboundCustomer {
    name: Option<String>,
    email: Option<String>,
    locale: Option<String>,
}

/// Seconds a `webhook-timestamp` may differ from our clock.
pub const TOLERANCE_SECS: i64 = 300;

fn json_response(status: u16, v: serde_json::Value) -> Response {
    Response::builder()
        .status(poem::http::StatusCode::from_u16(status).unwrap_or_default())
        .content_type("application/json")
        .body(Body::from(serde_json::to_vec(&v).unwrap_or_default()))
}

/// `POST /api/v1/integrations/{id}/inbound`: the chat platform starts a video session in
/// a conversation. Signed with the integration's secret (Standard Webhooks); stale
/// timestamps and replayed `webhook-id`s are refused; the same conversation + `event_id`
/// returns the same session. The customer's link is posted into the conversation.
#[handler]
pub async fn inbound(
    state: Data<&AppState>,
    PoemPath(id): PoemPath<String>,
    req: &Request,
    body: Body,
) -> Response {
    match inbound_inner(&state, &id, req, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn opt(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

async fn inbound_inner(
    state: &AppState,
    id: &str,
    req: &Request,
    body: Body,
) -> Result<Response, ApiError> {
    let i = integration::Entity::find_by_id(id.to_owned())
        .one(&state.db)
        .await?
        .ok_or_else(not_found)?;
    let body = body
        .into_bytes_limit(state.config.max_body_bytes)
        .await
        .map_err(|_| ApiError::bad_request("unreadable_body", "request body could not be read"))?;
    let h = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let key = signing::key_of(&i.signing_secret)
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("unusable signing secret")))?;
    let now = Utc::now();
    let webhook_id = h("webhook-id").unwrap_or_default().to_owned();
    if let Err(e) = signing::verify(
        &key,
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
        &body,
        now.timestamp(),
        TOLERANCE_SECS,
    ) {
        tracing::warn!(integration = %i.name, reason = %e, "inbound webhook refused");
        return Err(match e {
            signing::VerifyError::Stale => ApiError::bad_request(
                "stale_timestamp",
                "webhook-timestamp is more than 5 minutes away from our clock",
            ),
            _ => ApiError::Forbidden(format!("signature check failed: {e}")),
        });
    }
    if store_inbound::seen(&state.db, &i.id, &webhook_id).await? {
        return Err(ApiError::conflict(
            "webhook_replayed",
            "this webhook-id was already processed",
        ));
    }
    let start: InboundStart = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("body: {e}")))?;
    let field = |e: crate::domain::fields::FieldError| {
        ApiError::bad_request("invalid_field", e.to_string())
    };
    if start.event_id.is_empty() || start.event_id.len() > 128 {
        return Err(bad("event_id must be 1 to 128 characters"));
    }
    let customer = start.customer.as_ref();
    let new = NewSession {
        conversation: ConversationRef::parse(&i.kind, &start.conversation_id).map_err(field)?,
        agent_id: AgentId::parse(&start.agent.id).map_err(field)?,
        agent_name: DisplayName::parse("agent.name", &start.agent.name).map_err(field)?,
        customer_name: opt(customer.and_then(|c| c.name.as_ref()))
            .map(|n| DisplayName::parse("customer.name", n))
            .transpose()
            .map_err(field)?,
        customer_email: opt(customer.and_then(|c| c.email.as_ref()))
            .map(|n| Email::parse("customer.email", n))
            .transpose()
            .map_err(field)?,
        customer_locale: opt(customer.and_then(|c| c.locale.as_ref()))
            .map(|n| Locale::parse("customer.locale", n))
            .transpose()
            .map_err(field)?,
        metadata: Metadata::empty(),
        relay_only: start.relay_only.unwrap_or(false),
        lobby: start.lobby.unwrap_or(state.config.sessions.lobby),
        post_link_via: Some(i.id.clone()),
        media_mode: None,
        recording_mode: None,
    };
    // The same event (conversation + event id) creates the call once; sent again with
    // another body it is refused.
    let caller = crate::services::sessions::Caller {
        id: format!("integration:{}", i.id),
        idempotency_key: Some(format!("{}:{}", start.conversation_id, start.event_id)),
    };
    let ttl = chrono::Duration::seconds(state.config.sessions.ttl_secs as i64);
    use crate::services::sessions::{Outcome, SessionError};
    let (view, replayed) =
        match crate::services::sessions::create(&state.creator, ttl, new, caller, now).await {
            Ok(Outcome::Created(v)) => (v, false),
            Ok(Outcome::Replayed(v)) => (v, true),
            Err(SessionError::IdempotencyKeyReused) => {
                return Err(ApiError::conflict("event_reused", "event_id reused"));
            }
            Err(e) => return Err(e.into()),
        };
    // Recorded only after success, so a sender's retry of a failed call is not refused.
    let keep_after = now - chrono::Duration::seconds(TOLERANCE_SECS * 2);
    if !store_inbound::record(&state.db, &i.id, &webhook_id, now, keep_after).await? {
        return Err(ApiError::conflict(
            "webhook_replayed",
            "this webhook-id was already processed",
        ));
    }
    let api = crate::http::sessions::session_view_to_api(state, &view);
    tracing::info!(session_id = %view.session.id, integration = %i.name, replayed,
        "session started by inbound webhook");
    Ok(json_response(
        if replayed { 200 } else { 201 },
        serde_json::json!({
            "session_id": api.id,
            "status": api.status,
            "agent_url": api.agent_url,
            "customer_url": api.customer_url,
            "replayed": replayed,
        }),
    ))
}

#[cfg(test)]
mod event_pattern_tests {
    /// The OpenAPI pattern for subscribed event types (a literal poem-openapi needs at
    /// compile time) must name exactly the webhook event kinds.
    #[test]
    fn the_declared_pattern_matches_every_webhook_kind_and_nothing_else() {
        // Every copy (create and update) is checked.
        let src = include_str!("integrations.rs");
        let marker = "pattern = r\"^(\\*|session";
        let patterns: Vec<&str> = src
            .match_indices(marker)
            .map(|(at, _)| {
                let start = at + "pattern = r\"".len();
                &src[start..start + src[start..].find('"').expect("end")]
            })
            .collect();
        assert_eq!(patterns.len(), 2, "{patterns:?}");
        for pattern in patterns {
            let re = regex::Regex::new(pattern).expect("regex");
            for k in crate::domain::EventKind::ALL {
                assert_eq!(re.is_match(k.as_str()), k.is_webhook(), "{k}");
            }
            assert!(re.is_match("*"));
            assert!(!re.is_match("session.create"));
        }
    }
}
