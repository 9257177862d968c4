//! The route tree and the cross-cutting middleware (limits, request spans, metrics,
//! problem+json for every error).

pub mod auth;
pub mod chat;
pub mod chatwoot;
pub mod chatwoot_app;
pub mod compliance;
pub mod connect;
pub mod cors;
pub mod deliveries;
pub mod error;
pub mod feedback;
pub mod integrations;
pub mod listener;
pub mod pages;
pub mod participants;
pub mod precheck;
pub mod recording_control;
pub mod recordings;
pub mod sessions;
pub mod snapshots;
pub mod state;
pub mod webhooks;
pub mod widget;
pub mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Route, handler};
use poem_openapi::OpenApiService;
use tracing::Instrument;

use crate::http::error::{ApiError, from_poem_error};
use crate::http::state::AppState;
use crate::metrics::{Record, route_label};

pub type Apis = (
    crate::http::sessions::SessionsApi,
    crate::http::widget::AgentApi,
    crate::http::integrations::IntegrationsApi,
    crate::http::deliveries::DeliveriesApi,
    crate::http::connect::JoinApi,
    crate::http::participants::ParticipantsApi,
    crate::http::chat::ChatApi,
    crate::http::snapshots::SnapshotsApi,
    crate::http::feedback::FeedbackApi,
    crate::http::precheck::PrecheckApi,
    crate::http::chatwoot::ChatwootApi,
    crate::http::chatwoot_app::ChatwootAppApi,
    crate::http::recordings::RecordingsApi,
    crate::http::compliance::ComplianceApi,
    crate::http::recording_control::RecordingControlApi,
);

pub fn openapi(
    public_url: &str,
) -> OpenApiService<Apis, &'static dyn crate::http::webhooks::EventWebhooks> {
    OpenApiService::new(
        (
            crate::http::sessions::SessionsApi,
            crate::http::widget::AgentApi,
            crate::http::integrations::IntegrationsApi,
            crate::http::deliveries::DeliveriesApi,
            crate::http::connect::JoinApi,
            crate::http::participants::ParticipantsApi,
            crate::http::chat::ChatApi,
            crate::http::snapshots::SnapshotsApi,
            crate::http::feedback::FeedbackApi,
            crate::http::precheck::PrecheckApi,
            crate::http::chatwoot::ChatwootApi,
            crate::http::chatwoot_app::ChatwootAppApi,
            crate::http::recordings::RecordingsApi,
            crate::http::compliance::ComplianceApi,
            crate::http::recording_control::RecordingControlApi,
        ),
        "Sightline API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Create video sessions bound to chat conversations, hand out signed join links, \
         follow what happens. Authenticate with `Authorization: Bearer <api key>`. Errors \
         are RFC 9457 `application/problem+json` documents with a stable `code`.",
    )
    .server(public_url.to_owned())
    .webhooks::<&'static dyn crate::http::webhooks::EventWebhooks>()
}

pub fn routes(state: AppState) -> impl Endpoint<Output = Response> {
    let api = openapi(&state.public_url);
    let allow = Arc::new(AllowTable::from_spec(&api.spec()));
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let limit = state.config.max_body_bytes;
    let body_timeout = state.conns.limits().body_timeout;
    let hsts = state.public_url.starts_with("https://");
    Route::new()
        .at("/api/v1/openapi.json", poem::get(spec))
        .nest("/api/docs", docs)
        .at(
            "/api/v1/integrations/:id/inbound",
            poem::post(crate::http::integrations::inbound),
        )
        .nest("/", api)
        .at("/api/v1/ws", poem::get(crate::http::ws::ws))
        .at("/j/:token", poem::get(crate::http::pages::join::join))
        .at(
            "/static/:hash/*file",
            poem::get(crate::http::pages::join::asset),
        )
        .at("/r/:token", poem::get(crate::http::pages::report::page))
        .at(
            "/r/:token/recordings/:id",
            poem::get(crate::http::recordings::report_media),
        )
        .at("/demo", poem::get(crate::http::pages::demo::page))
        .at(
            "/integrations/chatwoot/app",
            poem::get(crate::http::chatwoot_app::page),
        )
        .at(
            "/widget.js",
            poem::get(crate::http::pages::join::widget_script),
        )
        .at("/healthz", poem::get(healthz))
        .at("/readyz", poem::get(readyz))
        .at("/metrics", poem::get(metrics))
        .catch_all_error(|e| async move { from_poem_error(e) })
        .with(crate::http::cors::WidgetCors(std::sync::Arc::new(
            state.config.embed.clone(),
        )))
        .with(BodyLimit {
            limit,
            upload_limit: state.config.snapshots.max_bytes,
            timeout: body_timeout,
            conns: state.conns.clone(),
        })
        .with(Record(state.metrics.clone()))
        .with(RequestSpan)
        .with(Edge {
            conns: state.conns.clone(),
            hsts,
            allow,
        })
        .data(state)
        .map_to_response()
}

/// Which methods each route answers, for the `Allow` header of `405` answers: the
/// OpenAPI document's operations plus the routes outside it.
struct AllowTable {
    routes: Vec<(Vec<String>, String)>,
}

impl AllowTable {
    fn from_spec(spec: &str) -> Self {
        let mut routes: Vec<(String, Vec<String>)> = Vec::new();
        if let Ok(doc) = serde_json::from_str::<serde_json::Value>(spec)
            && let Some(paths) = doc.get("paths").and_then(|p| p.as_object())
        {
            for (path, ops) in paths {
                let methods = ops
                    .as_object()
                    .map(|o| o.keys().map(|m| m.to_ascii_uppercase()).collect())
                    .unwrap_or_default();
                routes.push((path.clone(), methods));
            }
        }
        routes.push((
            "/api/v1/integrations/{id}/inbound".into(),
            vec!["POST".into()],
        ));
        for get_only in [
            "/api/v1/openapi.json",
            "/api/v1/ws",
            "/j/{token}",
            "/static/{hash}/{file}",
            "/r/{token}",
            "/r/{token}/recordings/{id}",
            "/demo",
            "/integrations/chatwoot/app",
            "/widget.js",
            "/healthz",
            "/readyz",
            "/metrics",
        ] {
            routes.push((get_only.into(), vec!["GET".into()]));
        }
        let routes = routes
            .into_iter()
            .map(|(path, mut methods)| {
                if methods.iter().any(|m| m == "GET") {
                    methods.push("HEAD".into());
                }
                methods.sort();
                methods.dedup();
                let segs = path.split('/').map(str::to_owned).collect();
                (segs, methods.join(", "))
            })
            .collect();
        Self { routes }
    }

    /// The `Allow` value for a request path, when a route matches it.
    fn allow(&self, path: &str) -> Option<&str> {
        let given: Vec<&str> = path.split('/').collect();
        self.routes
            .iter()
            .find(|(segs, _)| {
                segs.len() == given.len()
                    && segs.iter().zip(&given).all(|(pattern, seg)| {
                        pattern == seg || (pattern.starts_with('{') && !seg.is_empty())
                    })
            })
            .map(|(_, allow)| allow.as_str())
    }
}

/// The outermost layer: tells the connection guard a request is in progress (so the
/// transport's header and idle deadlines pause), marks upgraded connections, adds
/// `Strict-Transport-Security` when served over https and `Allow` to `405` answers.
struct Edge {
    conns: Arc<crate::http::listener::ConnGuard>,
    hsts: bool,
    allow: Arc<AllowTable>,
}

impl<E: Endpoint> Middleware<E> for Edge {
    type Output = EdgeEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        EdgeEndpoint {
            inner: ep,
            conns: self.conns.clone(),
            hsts: self.hsts,
            allow: self.allow.clone(),
        }
    }
}

struct EdgeEndpoint<E> {
    inner: E,
    conns: Arc<crate::http::listener::ConnGuard>,
    hsts: bool,
    allow: Arc<AllowTable>,
}

/// One year, the value browsers' preload lists ask for; subdomains are not included
/// (they may be other services).
const HSTS: &str = "max-age=31536000";

impl<E: Endpoint> Endpoint for EdgeEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let mut mark = self.conns.track(req.remote_addr().as_socket_addr());
        // A `Uri` clone shares its bytes: no copy per request for the rare `405`.
        let uri = (req.method() != poem::http::Method::OPTIONS).then(|| req.uri().clone());
        let mut resp = match self.inner.call(req).await {
            Ok(r) => r.into_response(),
            Err(e) => e.into_response(),
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            mark.set_upgraded();
        }
        drop(mark);
        if self.hsts {
            resp.headers_mut().insert(
                poem::http::header::STRICT_TRANSPORT_SECURITY,
                poem::http::HeaderValue::from_static(HSTS),
            );
        }
        if resp.status() == StatusCode::METHOD_NOT_ALLOWED
            && !resp.headers().contains_key(poem::http::header::ALLOW)
            && let Some(allow) = uri.as_ref().and_then(|u| self.allow.allow(u.path()))
            && let Ok(v) = poem::http::HeaderValue::from_str(allow)
        {
            resp.headers_mut().insert(poem::http::header::ALLOW, v);
        }
        Ok(resp)
    }
}

#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[handler]
async fn readyz(state: Data<&AppState>) -> Response {
    if let Some(node) = &state.cluster
        && !node.ready()
    {
        let status = if node.is_draining() {
            "draining"
        } else {
            "broker unreachable"
        };
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": status})),
        )
            .into_response();
    }
    if crate::store::ping(&state.db).await {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "database unreachable"})),
        )
            .into_response()
    }
}

/// Whether the request carries the configured metrics token (always, when none is set).
fn metrics_authorized(req: &Request, state: &AppState) -> bool {
    use secrecy::ExposeSecret;
    use subtle::ConstantTimeEq;
    let Some(token) = &state.config.metrics.token else {
        return true;
    };
    let given = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let expected = token.expose_secret().trim().as_bytes();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected))
}

#[handler]
async fn metrics(req: &Request, state: Data<&AppState>) -> Response {
    if !metrics_authorized(req, &state) {
        let mut resp = ApiError::Unauthorized.into_response();
        resp.headers_mut().insert(
            poem::http::header::WWW_AUTHENTICATE,
            poem::http::HeaderValue::from_static("Bearer realm=\"metrics\""),
        );
        return resp;
    }
    if let Ok(rows) = crate::store::sessions::count_by_status(&state.db).await {
        for s in crate::domain::session::Status::ALL {
            let n = rows
                .iter()
                .find(|(k, _)| k == s.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0);
            state
                .metrics
                .sessions
                .with_label_values(&[s.as_str()])
                .set(n);
        }
    }
    if let Some(r) = &state.relay {
        state.metrics.set_turn(&r.server.stats());
    }
    if let Some(m) = &state.media {
        let (s, calls, participants) = m.stats();
        state.metrics.set_media(&s, calls, participants);
        state.metrics.media_busy.set(m.busy().as_secs_f64());
    }
    state
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4")
        .into_response()
}

/// The least time a photo upload may take to arrive.
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Refuses bodies over the limit with 413 before any handler reads them, and bodies that
/// take longer than the timeout to arrive with 408 (closing the connection).
struct BodyLimit {
    limit: usize,
    /// For photo uploads (`POST /api/v1/join/{token}/snapshots`).
    upload_limit: usize,
    timeout: Duration,
    conns: Arc<crate::http::listener::ConnGuard>,
}

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.limit,
            upload_limit: self.upload_limit,
            timeout: self.timeout,
            conns: self.conns.clone(),
        }
    }
}

struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
    upload_limit: usize,
    timeout: Duration,
    conns: Arc<crate::http::listener::ConnGuard>,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        // Photo uploads are larger and may come over a phone's slow uplink.
        let path = req.uri().path();
        let (limit, timeout) = if req.method() == poem::http::Method::POST
            && path.starts_with("/api/v1/join/")
            && path.ends_with("/snapshots")
        {
            (self.upload_limit, self.timeout.max(UPLOAD_TIMEOUT))
        } else {
            (self.limit, self.timeout)
        };
        let too_large = || ApiError::PayloadTooLarge { limit }.into_response();
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > limit as u64) {
            return Ok(too_large());
        }
        if req.uri().path().starts_with("/api/") && !req.uri().path().starts_with("/api/v1/ws") {
            let body = req.take_body();
            let read = tokio::time::timeout(timeout, body.into_bytes_limit(limit));
            let Ok(read) = read.await else {
                tracing::debug!("request body too slow; closing the connection");
                self.conns.count_timeout("body");
                let mut resp = ApiError::RequestTimeout.into_response();
                resp.headers_mut().insert(
                    poem::http::header::CONNECTION,
                    poem::http::HeaderValue::from_static("close"),
                );
                return Ok(resp);
            };
            match read {
                // An empty POST body means `{}`, so actions with only optional fields
                // (e.g. ending a session) need no body at all.
                Ok(bytes) if bytes.is_empty() && req.method() == poem::http::Method::POST => {
                    req.headers_mut().insert(
                        poem::http::header::CONTENT_TYPE,
                        poem::http::HeaderValue::from_static("application/json"),
                    );
                    req.set_body("{}");
                }
                Ok(bytes) => req.set_body(bytes),
                Err(poem::error::ReadBodyError::PayloadTooLarge) => return Ok(too_large()),
                Err(_) => {
                    return Ok(ApiError::bad_request(
                        "unreadable_body",
                        "request body could not be read",
                    )
                    .into_response());
                }
            }
        }
        Ok(self
            .inner
            .call(req)
            .await
            .map(IntoResponse::into_response)
            .unwrap_or_else(|e| e.into_response()))
    }
}

/// One span per request; the route label replaces ids and tokens so none reach the logs.
struct RequestSpan;

impl<E: Endpoint> Middleware<E> for RequestSpan {
    type Output = RequestSpanEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        RequestSpanEndpoint { inner: ep }
    }
}

struct RequestSpanEndpoint<E> {
    inner: E,
}

impl<E: Endpoint> Endpoint for RequestSpanEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let start = Instant::now();
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let span = tracing::info_span!("request", method = %method, route = tracing::field::Empty);
        let resp = async {
            match self.inner.call(req).await {
                Ok(r) => r.into_response(),
                Err(e) => e.into_response(),
            }
        }
        .instrument(span.clone())
        .await;
        let status = resp.status().as_u16();
        span.record("route", route_label(&path, status).as_str());
        span.in_scope(|| {
            tracing::debug!(
                status,
                elapsed_ms = start.elapsed().as_secs_f64() * 1000.0,
                "response"
            );
        });
        Ok(resp)
    }
}

/// Strict JSON strings for request bodies. poem-openapi's `String` also accepts JSON
/// numbers and booleans (turning `false` into `"false"`); fields the OpenAPI document
/// declares `type: string` read through these (`#[oai(deserialize_with = …)]`) so that
/// anything else is refused as the document says.
pub mod strict {
    use poem_openapi::types::{ParseError, ParseResult};
    use serde_json::Value;

    pub fn string(v: Option<Value>) -> ParseResult<String> {
        match v {
            Some(Value::String(s)) => Ok(s),
            None => Err(ParseError::expected_input()),
            Some(other) => Err(ParseError::expected_type(other)),
        }
    }

    pub fn opt_string(v: Option<Value>) -> ParseResult<Option<String>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(ParseError::expected_type(other)),
        }
    }

    pub fn opt_string_list(v: Option<Value>) -> ParseResult<Option<Vec<String>>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for i in items {
                    match i {
                        Value::String(s) => out.push(s),
                        other => return Err(ParseError::expected_type(other)),
                    }
                }
                Ok(Some(out))
            }
            Some(other) => Err(ParseError::expected_type(other)),
        }
    }
}

/// A JSON object (the OpenAPI document says `type: object`, which `serde_json::Value`
/// cannot).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(transparent)]
pub struct JsonObject(pub serde_json::Map<String, serde_json::Value>);

impl poem_openapi::types::Type for JsonObject {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        "object".into()
    }

    fn schema_ref() -> poem_openapi::registry::MetaSchemaRef {
        poem_openapi::registry::MetaSchemaRef::Inline(Box::new(
            poem_openapi::registry::MetaSchema {
                max_properties: Some(crate::domain::fields::MAX_METADATA_KEYS),
                ..poem_openapi::registry::MetaSchema::new("object")
            },
        ))
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl poem_openapi::types::ParseFromJSON for JsonObject {
    fn parse_from_json(value: Option<serde_json::Value>) -> poem_openapi::types::ParseResult<Self> {
        match value {
            Some(serde_json::Value::Object(m)) => Ok(Self(m)),
            _ => Err(poem_openapi::types::ParseError::custom(
                "verification failed: expected a JSON object",
            )),
        }
    }
}

impl poem_openapi::types::ToJSON for JsonObject {
    fn to_json(&self) -> Option<serde_json::Value> {
        Some(serde_json::Value::Object(self.0.clone()))
    }
}
