//! The HTTP boundary's one error type and its one mapping to RFC 9457 problem documents.
//!
//! Clients get a stable `code` and a human message; internal causes are logged with their
//! chain and answered with an opaque 500.

use poem::http::StatusCode;
use poem::{Body, IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Object};
use serde::Serialize;

pub const PROBLEM_JSON: &str = "application/problem+json";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Serialize, Object)]
#[oai(example)]
pub struct Problem {
    /// A URI reference naming the problem type (`about:blank` or a Sightline error page).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub type_: String,
    /// A short summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// A human-readable explanation of this occurrence.
    pub detail: String,
    /// A stable machine-readable code, e.g. `session_not_found`.
    pub code: String,
}

impl poem_openapi::types::Example for Problem {
    fn example() -> Self {
        Problem {
            type_: "about:blank".into(),
            title: "Not Found".into(),
            status: 404,
            detail: "no session with this id".into(),
            code: "session_not_found".into(),
        }
    }
}

/// Every error the REST API can answer with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String },
    #[error("missing or invalid API key")]
    Unauthorized,
    /// Not authenticated, with a code saying why (a webhook signature, a secret URL).
    #[error("{detail}")]
    Unauthenticated { code: &'static str, detail: String },
    #[error("{0}")]
    Forbidden(String),
    /// Forbidden, with a code saying why.
    #[error("{detail}")]
    Denied { code: &'static str, detail: String },
    #[error("{detail}")]
    NotFound { code: &'static str, detail: String },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("{detail}")]
    Gone { code: &'static str, detail: String },
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("too many requests")]
    TooManyRequests,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            detail: detail.into(),
        }
    }
    pub fn not_found(code: &'static str, detail: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            detail: detail.into(),
        }
    }
    pub fn conflict(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            detail: detail.into(),
        }
    }
    pub fn gone(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Gone {
            code,
            detail: detail.into(),
        }
    }
    pub fn unauthenticated(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            detail: detail.into(),
        }
    }
    pub fn denied(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Denied {
            code,
            detail: detail.into(),
        }
    }
    pub fn unprocessable(code: &'static str, detail: impl Into<String>) -> Self {
        Self::Unprocessable {
            code,
            detail: detail.into(),
        }
    }
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unauthorized | Self::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) | Self::Denied { .. } => StatusCode::FORBIDDEN,
            Self::NotFound { .. } => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone { .. } => StatusCode::GONE,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { code, .. }
            | Self::NotFound { code, .. }
            | Self::Conflict { code, .. }
            | Self::Gone { code, .. }
            | Self::Denied { code, .. }
            | Self::Unauthenticated { code, .. }
            | Self::Unprocessable { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RequestTimeout => "request_timeout",
            Self::TooManyRequests => "rate_limited",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn to_problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            // Never leak internal causes (database strings, paths) to clients.
            Self::Internal(_) => "an internal error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        Problem {
            type_: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: self.code().to_owned(),
        }
    }
}

/// The one mapping of the services' error: a status and a stable code per variant.
impl From<crate::store::error::SessionError> for ApiError {
    fn from(e: crate::store::error::SessionError) -> Self {
        use crate::store::error::SessionError as E;
        let detail = e.to_string();
        match e {
            E::SessionNotFound => Self::not_found("session_not_found", detail),
            E::ParticipantNotFound => Self::not_found("participant_not_found", detail),
            E::SessionEnded => Self::conflict("session_ended", detail),
            E::SessionExpired => Self::gone(
                "session_expired",
                "the session has expired; start a new one",
            ),
            E::IdempotencyKeyReused => Self::unprocessable("idempotency_key_reused", detail),
            E::EmailRequired => Self::unprocessable("email_required", detail),
            E::CustomerNotInvitable => Self::unprocessable("customer_not_invitable", detail),
            E::ModeNotAllowed => Self::unprocessable("mode_not_allowed", detail),
            E::ParticipantLimit { .. } => Self::conflict("participant_limit", detail),
            E::SameAgent => Self::conflict("same_agent", detail),
            E::CannotRemoveCustomer => Self::conflict("cannot_remove_customer", detail),
            E::LastAgent => Self::conflict("last_agent", detail),
            E::ParticipantRemoved => Self::gone("participant_removed", detail),
            E::NotAnAgent => Self::unprocessable("not_an_agent", detail),
            E::MailNotConfigured => Self::conflict("mail_not_configured", detail),
            E::Db(e) => Self::from(e),
        }
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(e.into())
    }
}

/// Renders a problem document with the right content type.
pub fn problem_response(problem: &Problem) -> Response {
    let body = serde_json::to_vec(problem).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .content_type(PROBLEM_JSON)
        .body(Body::from(body))
}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        if let Self::Internal(e) = self {
            tracing::error!(error = ?e, "internal error");
        }
        problem_response(&self.to_problem())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        poem::error::ResponseError::as_response(&self)
    }
}

fn problem_meta(status: u16, description: &'static str) -> MetaResponse {
    MetaResponse {
        description,
        status: Some(status),
        status_range: None,
        content: vec![MetaMediaType {
            content_type: PROBLEM_JSON,
            schema: Problem::schema_ref(),
        }],
        headers: vec![],
    }
}

impl ApiResponse for ApiError {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![
                problem_meta(
                    400,
                    "Malformed request: bad JSON, a missing or invalid field.",
                ),
                problem_meta(401, "Missing, unknown or revoked API key."),
                problem_meta(
                    403,
                    "The credential is valid but may not do this (e.g. an agent token \
                     limited to another conversation, or a page from an origin not allowed).",
                ),
                problem_meta(404, "No such resource."),
                problem_meta(
                    409,
                    "Conflicts with the resource's state or a reused Idempotency-Key.",
                ),
                problem_meta(410, "The resource existed but has ended or expired."),
                problem_meta(
                    408,
                    "The request body did not arrive within the body timeout.",
                ),
                problem_meta(413, "Request body too large."),
                problem_meta(415, "The body is not `application/json`."),
                problem_meta(422, "Well-formed but not acceptable."),
                problem_meta(500, "Internal error (details are logged, never returned)."),
            ],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// Maps errors raised outside handlers (routing, payload parsing, auth) to problem documents.
pub fn from_poem_error(err: poem::Error) -> Response {
    if err.is::<ApiError>() {
        return err.into_response();
    }
    // A parameter or body field outside the limits the OpenAPI document declares: name
    // it with a stable code (`invalid_limit`, `invalid_status`, `invalid_field`, …).
    if let Some(p) = err.downcast_ref::<poem_openapi::error::ParseParamError>()
        && p.reason.starts_with("verification failed")
    {
        let code = format!("invalid_{}", p.name.to_ascii_lowercase().replace('-', "_"));
        return problem_response(&Problem {
            type_: "about:blank".into(),
            title: "Bad Request".into(),
            status: 400,
            detail: format!("parameter `{}` is outside its documented limits", p.name),
            code,
        });
    }
    if let Some(p) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>()
        && (p.reason.contains("verification failed")
            || p.reason.contains("Expected input type \"IntegrationKind\""))
    {
        return ApiError::bad_request("invalid_field", p.reason.clone()).into_response();
    }
    let status = err.status();
    let (code, detail) = match status.as_u16() {
        400 if err.to_string().starts_with("parse request payload error") => {
            ("invalid_json", err.to_string())
        }
        400 => ("bad_request", err.to_string()),
        401 => ("unauthorized", "missing or invalid API key".to_owned()),
        404 => ("not_found", "no such resource".to_owned()),
        405 => (
            "method_not_allowed",
            "method not allowed on this resource".to_owned(),
        ),
        413 => ("payload_too_large", "request body too large".to_owned()),
        415 => ("unsupported_media_type", err.to_string()),
        s if s >= 500 => {
            tracing::error!(error = %err, "unhandled error");
            (
                "internal_error",
                "an internal error occurred; it has been logged".to_owned(),
            )
        }
        _ => ("bad_request", err.to_string()),
    };
    problem_response(&Problem {
        type_: "about:blank".into(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        status: status.as_u16(),
        detail,
        code: code.into(),
    })
}
