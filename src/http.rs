//! The route tree and the cross-cutting middleware (limits, request spans, metrics,
//! problem+json for every error).

use std::time::Instant;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, Route, handler};
use poem_openapi::OpenApiService;
use tracing::Instrument;

use crate::error::{ApiError, from_poem_error};
use crate::metrics::{Record, route_label};
use crate::state::AppState;

pub type Apis = (
    crate::sessions::api::SessionsApi,
    crate::agent::api::AgentApi,
    crate::integrations::api::IntegrationsApi,
    crate::outbox::api::DeliveriesApi,
    crate::signaling::api::JoinApi,
    crate::participants::api::ParticipantsApi,
);

pub fn openapi(
    public_url: &str,
) -> OpenApiService<Apis, &'static dyn crate::integrations::events::EventWebhooks> {
    OpenApiService::new(
        (
            crate::sessions::api::SessionsApi,
            crate::agent::api::AgentApi,
            crate::integrations::api::IntegrationsApi,
            crate::outbox::api::DeliveriesApi,
            crate::signaling::api::JoinApi,
            crate::participants::api::ParticipantsApi,
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
    .webhooks::<&'static dyn crate::integrations::events::EventWebhooks>()
}

pub fn routes(state: AppState) -> impl Endpoint<Output = Response> {
    let api = openapi(&state.public_url);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    let limit = state.config.max_body_bytes;
    Route::new()
        .at("/api/v1/openapi.json", spec)
        .nest("/api/docs", docs)
        .at(
            "/api/v1/integrations/:id/inbound",
            poem::post(crate::integrations::api::inbound),
        )
        .nest("/", api)
        .at("/api/v1/ws", crate::signaling::ws::ws)
        .at("/j/:token", crate::join::join)
        .at("/static/:hash/:file", crate::join::asset)
        .at("/r/:token", crate::reports::page)
        .at("/demo", crate::demo::page)
        .at("/widget.js", crate::join::widget_script)
        .at("/healthz", healthz)
        .at("/readyz", readyz)
        .at("/metrics", metrics)
        .catch_all_error(|e| async move { from_poem_error(e) })
        .with(crate::agent::cors::WidgetCors(std::sync::Arc::new(
            state.config.embed.clone(),
        )))
        .with(BodyLimit(limit))
        .with(Record(state.metrics.clone()))
        .with(RequestSpan)
        .data(state)
        .map_to_response()
}

#[handler]
fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok"}))
}

#[handler]
async fn readyz(state: Data<&AppState>) -> Response {
    if crate::storage::ping(&state.db).await {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "database unreachable"})),
        )
            .into_response()
    }
}

#[handler]
async fn metrics(state: Data<&AppState>) -> Response {
    if let Ok(rows) = crate::sessions::repo::count_by_status(&state.db).await {
        for s in crate::sessions::machine::Status::ALL {
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
    state
        .metrics
        .render()
        .with_content_type("text/plain; version=0.0.4")
        .into_response()
}

/// Refuses bodies over the limit with 413 before any handler reads them.
struct BodyLimit(usize);

impl<E: Endpoint> Middleware<E> for BodyLimit {
    type Output = BodyLimitEndpoint<E>;
    fn transform(&self, ep: E) -> Self::Output {
        BodyLimitEndpoint {
            inner: ep,
            limit: self.0,
        }
    }
}

struct BodyLimitEndpoint<E> {
    inner: E,
    limit: usize,
}

impl<E: Endpoint> Endpoint for BodyLimitEndpoint<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        let too_large = || ApiError::PayloadTooLarge { limit: self.limit }.into_response();
        let declared = req
            .headers()
            .get(poem::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.limit as u64) {
            return Ok(too_large());
        }
        if req.uri().path().starts_with("/api/") && !req.uri().path().starts_with("/api/v1/ws") {
            let body = req.take_body();
            match body.into_bytes_limit(self.limit).await {
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
