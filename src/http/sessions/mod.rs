//! REST: `/api/v1/sessions`.

mod dto;

pub use dto::*;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{OpenApi, Tags};

use crate::domain::SessionId;
use crate::domain::fields::{
    self, AgentId, ConversationRef, DisplayName, Email, FieldError, Locale, Metadata,
};
use crate::domain::session::{Role, Status};
pub use crate::http::JsonObject;
use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::services::sessions as services;
use crate::store::creation::NewSession;
use crate::store::sessions::{self as repo, ListQuery, SessionView};

#[derive(Tags)]
pub enum ApiTags {
    /// Video sessions bound to a chat conversation.
    Sessions,
}

pub struct SessionsApi;

pub(crate) fn field_err(e: FieldError) -> ApiError {
    ApiError::bad_request("invalid_field", e.to_string())
}

pub fn session_view_to_api(state: &AppState, v: &SessionView) -> Session {
    let url = |role: Role| v.join_url(&state.keys.join, &state.public_url, role);
    let s = &v.session;
    Session {
        id: s.id.clone(),
        status: s.status.clone(),
        conversation: Conversation {
            platform: s.conversation_platform.clone(),
            id: s.conversation_id.clone(),
        },
        agent: Agent {
            id: s.agent_id.clone(),
            name: s.agent_name.clone(),
        },
        customer: Customer {
            name: s.customer_name.clone(),
            email: s.customer_email.clone(),
            locale: s.customer_locale.clone(),
        },
        agent_url: url(Role::Agent),
        customer_url: url(Role::Customer),
        report_url: crate::http::pages::report::report_url(state, v),
        relay_only: s.relay_only,
        lobby: s.lobby,
        metadata: s.metadata.clone(),
        participants: v.participants.iter().map(participant_to_api).collect(),
        created_at: s.created_at,
        updated_at: s.updated_at,
        expires_at: s.expires_at,
        ended_at: s.ended_at,
        end_reason: s.end_reason.clone(),
        recording: {
            let r = state.recording.status_of(s);
            RecordingInfo {
                mode: r.mode.as_str().to_owned(),
                state: r.state.as_str().to_owned(),
            }
        },
    }
}

/// Parses the request body into domain types; the error names the field.
pub fn parse_create(body: &CreateSession) -> Result<NewSession, FieldError> {
    let customer = body.customer.as_ref();
    Ok(NewSession {
        conversation: ConversationRef::parse(&body.conversation.platform, &body.conversation.id)?,
        agent_id: AgentId::parse(&body.agent.id)?,
        agent_name: DisplayName::parse("agent.name", &body.agent.name)?,
        customer_name: fields::optional(customer.and_then(|c| c.name.as_deref()), |v| {
            DisplayName::parse("customer.name", v)
        })?,
        customer_email: fields::optional(customer.and_then(|c| c.email.as_deref()), |v| {
            Email::parse("customer.email", v)
        })?,
        customer_locale: fields::optional(customer.and_then(|c| c.locale.as_deref()), |v| {
            Locale::parse("customer.locale", v)
        })?,
        metadata: match &body.metadata {
            None => Metadata::empty(),
            Some(m) => Metadata::parse(serde_json::Value::Object(m.0.clone()))?,
        },
        relay_only: body.relay_only.unwrap_or(false),
        lobby: body.lobby.unwrap_or(false),
        post_link_via: None,
        media_mode: match body.media_mode.as_deref() {
            None => None,
            Some(m) => Some(
                crate::media::MediaMode::parse(m)
                    .ok_or_else(|| crate::domain::fields::FieldError {
                        field: "media_mode",
                        message: "must be auto, p2p or routed".into(),
                    })?
                    .as_str(),
            ),
        },
        recording_mode: match body.recording.as_ref().and_then(|r| r.mode.as_deref()) {
            None => None,
            Some("always") if body.media_mode.as_deref() == Some("p2p") => {
                return Err(crate::domain::fields::FieldError {
                    field: "recording.mode",
                    message: "a p2p session cannot be recorded: use media_mode auto or routed"
                        .into(),
                });
            }
            Some(m) => Some(
                crate::domain::recording::RecordingMode::parse(m)
                    .ok_or_else(|| crate::domain::fields::FieldError {
                        field: "recording.mode",
                        message: "must be off, always or on_demand".into(),
                    })?
                    .as_str(),
            ),
        },
    })
}

pub(crate) fn parse_idempotency_key(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(k) if k.is_empty() || k.len() > 255 || !k.bytes().all(|b| b.is_ascii_graphic()) => {
            Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ))
        }
        Some(k) => Ok(Some(k.to_owned())),
    }
}

/// The cursor is the id of the last session on the page (the OpenAPI document declares
/// its form, so clients and fuzzers can tell a well-formed one).
fn encode_cursor(id: &str) -> String {
    id.to_owned()
}

/// Reads a cursor: a session id, or the base64url form earlier versions issued.
fn decode_cursor(c: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("invalid_cursor", "cursor is not one this API issued");
    if c.len() > 128 {
        return Err(bad());
    }
    if let Ok(u) = uuid::Uuid::try_parse(c) {
        return Ok(u.to_string());
    }
    let raw = URL_SAFE_NO_PAD.decode(c.as_bytes()).map_err(|_| bad())?;
    let id = String::from_utf8(raw).map_err(|_| bad())?;
    uuid::Uuid::parse_str(&id).map_err(|_| bad())?;
    Ok(id)
}

pub(crate) fn parse_session_id(id: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(id).map_err(|_| not_found())
}

/// A JSON `null` where an optional body must be an object when given.
pub(crate) fn null_body() -> ApiError {
    ApiError::bad_request("invalid_json", "the body must be a JSON object (or empty)")
}

pub(crate) fn not_found() -> ApiError {
    ApiError::not_found("session_not_found", "no session with this id")
}

/// Creates a session for an API caller or the widget: parses the body, resolves
/// `post_link_via`, honours the idempotency key (namespaced by `key_scope`) and answers
/// 201, or 200 for a replay.
pub(crate) async fn create_session(
    state: &AppState,
    body: &CreateSession,
    api_key_id: &str,
    idempotency_key: Option<&str>,
    key_scope: &str,
) -> Result<CreateResponse, ApiError> {
    let mut new = parse_create(body).map_err(field_err)?;
    new.lobby = body.lobby.unwrap_or(state.config.sessions.lobby);
    if let Some(via) = body.post_link_via.as_deref() {
        let i = crate::store::integrations::find(&state.db, via)
            .await?
            .ok_or_else(|| {
                ApiError::unprocessable(
                    "integration_not_found",
                    "post_link_via names no integration",
                )
            })?;
        // A conversation the platform cannot have (a Chatwoot id that is not a number)
        // would only fail at delivery: refuse it now.
        if let Some(adapter) = crate::delivery::adapters::by_kind(&i.kind)
            && let Err(why) = adapter.check_conversation(&new.conversation.id)
        {
            return Err(ApiError::unprocessable(
                "invalid_conversation_id",
                format!("conversation.id for integration {}: {why}", i.name),
            ));
        }
        new.post_link_via = Some(i.id);
    }
    let key = parse_idempotency_key(idempotency_key)?;
    let caller = crate::services::sessions::Caller {
        id: api_key_id.to_owned(),
        idempotency_key: key.map(|k| format!("{key_scope}{k}")),
    };
    let ttl = chrono::Duration::seconds(state.config.sessions.ttl_secs as i64);
    match services::create(&state.creator, ttl, new, caller, Utc::now()).await? {
        services::Outcome::Created(v) => Ok(CreateResponse::Created(Json(session_view_to_api(
            state, &v,
        )))),
        services::Outcome::Replayed(v) => Ok(CreateResponse::Replayed(Json(session_view_to_api(
            state, &v,
        )))),
    }
}

/// Ends a session (idempotently) and tells its live room (API and widget).
pub(crate) async fn end_session(
    state: &AppState,
    id: &SessionId,
    reason: &str,
) -> Result<Json<Session>, ApiError> {
    let v = services::end(&state.db, &*state.bus, id, reason, None, Utc::now()).await?;
    Ok(Json(session_view_to_api(state, &v)))
}

/// Replaces the customer's link and tells the live room (API and widget).
pub(crate) async fn rotate_link(
    state: &AppState,
    id: &SessionId,
) -> Result<Json<Session>, ApiError> {
    let (db, key, bus) = (&state.db, &state.keys.join, &*state.bus);
    let v = services::rotate_customer_link(db, key, bus, id, Utc::now()).await?;
    Ok(Json(session_view_to_api(state, &v)))
}

/// Queues an e-mail invite for a session (API and widget).
pub(crate) async fn queue_invite(
    state: &AppState,
    id: &SessionId,
    body: &InviteRequest,
) -> Result<InviteResponse, ApiError> {
    let email = fields::optional(body.email.as_deref(), |e| Email::parse("email", e));
    let email = email.map_err(field_err)?;
    let locale = fields::optional(body.locale.as_deref(), |l| Locale::parse("locale", l));
    let locale = locale.map_err(field_err)?;
    let mail = state.mailer.is_some();
    let (row, to) =
        services::invite_by_email(&state.db, mail, id, email, locale, Utc::now()).await?;
    Ok(InviteResponse::Accepted(Json(InviteQueued {
        delivery_id: row.id,
        email: to.as_str().to_owned(),
    })))
}

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Sessions")]
impl SessionsApi {
    /// Create a session
    ///
    /// Creates a video session for a chat conversation and returns signed join links for the
    /// agent and the customer. Send an `Idempotency-Key` header to make retries safe: the
    /// same key with the same body returns the same session (status 200).
    #[oai(path = "/sessions", method = "post", operation_id = "createSession")]
    async fn create(
        &self,
        state: poem::web::Data<&AppState>,
        auth: ApiKeyAuth,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        idempotency_key: Header<Option<String>>,
        body: Json<CreateSession>,
    ) -> Result<CreateResponse, ApiError> {
        create_session(
            &state,
            &body.0,
            &auth.0.key_id,
            idempotency_key.0.as_deref(),
            "",
        )
        .await
    }

    /// Get a session
    #[oai(path = "/sessions/:id", method = "get", operation_id = "getSession")]
    async fn get(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<Session>, ApiError> {
        let id = parse_session_id(&id.0)?;
        let v = repo::get(&state.db, &id).await?.ok_or_else(not_found)?;
        Ok(Json(session_view_to_api(&state, &v)))
    }

    /// Erase a session
    ///
    /// Removes its personal data: names, e-mail addresses and metadata are scrubbed;
    /// chat, photos, ratings and recordings are deleted; the session's recording key is
    /// destroyed (copies of the files in backups become unreadable); timeline entries keep
    /// only neutral fields, and `session.erased` records that it happened (counts only).
    /// A live session is refused (`409 session_live`: end it first); so is one under a
    /// legal hold (`409 legal_hold`). See docs/recording.md.
    #[oai(
        path = "/sessions/:id",
        method = "delete",
        operation_id = "eraseSession"
    )]
    async fn erase(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<crate::http::compliance::Erasure>, ApiError> {
        crate::http::compliance::erase_session(&state, &id.0).await
    }

    /// List sessions
    ///
    /// Newest first. Filter by conversation and status; page with `cursor`.
    #[oai(path = "/sessions", method = "get", operation_id = "listSessions")]
    #[allow(clippy::too_many_arguments)] // one parameter per query filter
    async fn list(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        /// Only sessions of this conversation id.
        #[oai(validator(max_length = 128))]
        conversation_id: Query<Option<String>>,
        /// Only sessions of this chat platform.
        #[oai(validator(max_length = 128))]
        platform: Query<Option<String>>,
        /// Only sessions in this status: `created`, `waiting`, `active` or `ended`.
        #[oai(validator(pattern = r"^(created|waiting|active|ended)$"))]
        status: Query<Option<String>>,
        /// Page size, 1 to 100 (default 20).
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<u64>>,
        /// `next_cursor` of the previous page.
        #[oai(validator(
            pattern = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
        ))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<SessionPage>, ApiError> {
        let limit = limit.0.unwrap_or(20);
        if !(1..=100).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be between 1 and 100",
            ));
        }
        let status = match status.0.as_deref() {
            None => None,
            Some(s) => Some(s.parse::<Status>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_status",
                    "status must be one of created, waiting, active, ended",
                )
            })?),
        };
        for (name, v) in [
            ("conversation_id", &conversation_id.0),
            ("platform", &platform.0),
        ] {
            if v.as_ref().is_some_and(|v| v.len() > 128) {
                return Err(ApiError::bad_request(
                    "invalid_filter",
                    format!("{name} must be at most 128 characters"),
                ));
            }
        }
        let q = ListQuery {
            conversation_id: conversation_id.0.clone(),
            platform: platform.0.clone(),
            status,
            before_id: cursor.0.as_deref().map(decode_cursor).transpose()?,
            limit,
        };
        let (rows, more) = repo::list(&state.db, &q).await?;
        let next_cursor = if more {
            rows.last().map(|v| encode_cursor(&v.session.id))
        } else {
            None
        };
        Ok(Json(SessionPage {
            items: rows
                .iter()
                .map(|v| session_view_to_api(&state, v))
                .collect(),
            next_cursor,
        }))
    }

    /// End a session
    ///
    /// Ends the call for everyone; every link of the session stops working. Ending an
    /// ended session returns it unchanged. The body may be empty.
    #[oai(
        path = "/sessions/:id/end",
        method = "post",
        operation_id = "endSession"
    )]
    async fn end(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        body: Json<Option<EndSession>>,
    ) -> Result<Json<Session>, ApiError> {
        let id = parse_session_id(&id.0)?;
        // An absent body arrives as `{}` (see `http::BodyLimit`), so `None` is a JSON `null`.
        let body = body.0.ok_or_else(null_body)?;
        let reason = fields::end_reason(body.reason.as_deref())
            .map_err(field_err)?
            .unwrap_or_else(|| "ended_via_api".to_owned());
        end_session(&state, &id, &reason).await
    }

    /// Replace the customer link
    ///
    /// Revokes the customer's current link (it answers 410 from now on) and issues a new one.
    #[oai(
        path = "/sessions/:id/customer-link",
        method = "post",
        operation_id = "rotateCustomerLink"
    )]
    async fn rotate_customer_link(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<Session>, ApiError> {
        let id = parse_session_id(&id.0)?;
        rotate_link(&state, &id).await
    }

    /// E-mail the customer's link
    ///
    /// Queues an e-mail (HTML and plain text, in the customer's language) with the
    /// customer's join link, delivered through the outbox with retries.
    #[oai(
        path = "/sessions/:id/invite",
        method = "post",
        operation_id = "inviteByEmail"
    )]
    async fn invite(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        body: Json<Option<InviteRequest>>,
    ) -> Result<InviteResponse, ApiError> {
        let id = parse_session_id(&id.0)?;
        queue_invite(&state, &id, &body.0.ok_or_else(null_body)?).await
    }

    /// Session timeline
    ///
    /// Everything that happened to the session, oldest first.
    #[oai(
        path = "/sessions/:id/events",
        method = "get",
        operation_id = "listSessionEvents"
    )]
    async fn events(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        /// Only events with an id greater than this.
        after: Query<Option<i64>>,
        /// Page size, 1 to 500 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<EventPage>, ApiError> {
        let id = parse_session_id(&id.0)?;
        let limit = limit.0.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be between 1 and 500",
            ));
        }
        if repo::get(&state.db, &id).await?.is_none() {
            return Err(not_found());
        }
        let rows = crate::store::timeline::events(&state.db, &id, after.0, limit).await?;
        let next_after = if rows.len() as u64 == limit {
            rows.last().map(|e| e.id)
        } else {
            None
        };
        Ok(Json(EventPage {
            items: rows
                .into_iter()
                .map(|e| Event {
                    id: e.id,
                    kind: e.kind,
                    at: e.at,
                    participant_id: e.participant_id,
                    data: e.data,
                })
                .collect(),
            next_after,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let id = uuid::Uuid::now_v7().to_string();
        assert_eq!(decode_cursor(&encode_cursor(&id)).unwrap(), id);
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor(&encode_cursor("not-a-uuid")).is_err());
    }

    #[test]
    fn idempotency_key_shape() {
        assert!(parse_idempotency_key(Some("abc-123")).unwrap().is_some());
        assert!(parse_idempotency_key(Some("")).is_err());
        assert!(parse_idempotency_key(Some("a b")).is_err());
        assert!(parse_idempotency_key(Some(&"k".repeat(256))).is_err());
    }
}
