//! REST: `/api/v1/agent-tokens` (API key) and `/api/v1/widget/…` (agent token).

use chrono::{DateTime, TimeZone, Utc};
use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::param::{Header, Path};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, SecurityScheme, Tags};

use crate::domain::agent_token::{AgentClaims, DEFAULT_TTL_SECS, MAX_TTL_SECS};
use crate::domain::fields::{AgentId, ConversationRef, DisplayName};
use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::participants::{
    ChangeMode, InviteParticipant, InvitedResponse, ParticipantList, Transfer, parse_participant_id,
};
use crate::http::sessions::Participant;
use crate::http::sessions::{
    Agent, Conversation, CreateResponse, CreateSession, Customer, InviteRequest, InviteResponse,
    Session, create_session, end_session, field_err, not_found, parse_session_id, queue_invite,
    rotate_link, session_view_to_api,
};
use crate::http::state::AppState;
use crate::services::participants::Actor;
use crate::store::sessions as repo;

#[derive(Tags)]
pub enum AgentTags {
    /// Short-lived agent tokens for the browser widget.
    AgentTokens,
    /// What the embeddable widget calls with an agent token.
    Widget,
}

#[derive(Debug, Clone, Object)]
pub struct CreateAgentToken {
    pub agent: Agent,
    /// Limit the token to this conversation.
    #[oai(nullable)]
    pub conversation: Option<Conversation>,
    /// Lifetime in seconds, 60 to 43200 (default 3600).
    #[oai(validator(minimum(value = "60"), maximum(value = "43200")))]
    #[oai(nullable)]
    pub ttl_secs: Option<u64>,
    /// Always post the customer's link through this integration (id or name); one that
    /// names no integration answers `422`.
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub post_link_via: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct AgentToken {
    /// The token's id: revoke the token with `DELETE /api/v1/agent-tokens/{id}`.
    pub id: String,
    /// Hand this to `Sightline.mount(…, { token })`.
    pub token: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(ApiResponse)]
pub enum Revoked {
    /// The token is revoked (or already was); it stops working within a second.
    #[oai(status = 204)]
    Revoked,
}

/// `Authorization: Bearer <agent token>` (minted by `POST /api/v1/agent-tokens`).
#[derive(SecurityScheme)]
#[oai(ty = "bearer", key_name = "Authorization", checker = "check_agent")]
pub struct AgentAuth(pub AgentClaims);

async fn check_agent(req: &Request, bearer: Bearer) -> poem::Result<AgentClaims> {
    let state = req
        .data::<AppState>()
        .ok_or_else(|| ApiError::internal(anyhow::anyhow!("state missing")))?;
    let claims =
        crate::domain::agent_token::open(&state.keys.agent, &bearer.token, Utc::now().timestamp())
            .map(|(c, _)| c)
            .map_err(|_| ApiError::Unauthorized)?;
    let live = if claims.demo {
        // Demo tokens are not recorded; they live only while the demo is on.
        state.config.demo.is_enabled()
    } else {
        // Recorded, not revoked, and minted by a key that is not revoked.
        state
            .agent_tokens
            .is_live(&state.db, &claims)
            .await
            .map_err(ApiError::from)?
    };
    if !live {
        return Err(ApiError::Unauthorized.into());
    }
    Ok(claims)
}

/// What the widget sends to start a call.
#[derive(Debug, Clone, Object)]
pub struct WidgetCreateSession {
    /// Required unless the token is limited to a conversation; must match it if it is.
    #[oai(nullable)]
    pub conversation: Option<Conversation>,
    #[oai(nullable)]
    pub customer: Option<Customer>,
    /// Your own JSON object, stored with the session (as in `createSession`).
    #[oai(nullable)]
    pub metadata: Option<crate::http::sessions::JsonObject>,
    /// Post the customer's link into the conversation through this integration (id or
    /// name), unless the agent token already names one.
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub post_link_via: Option<String>,
    /// The customer waits in a lobby until an agent admits them (default: the server's
    /// `sessions.lobby`).
    #[oai(nullable)]
    pub lobby: Option<bool>,
    /// Whether and when the call is recorded (as in `createSession`).
    #[oai(nullable)]
    pub recording: Option<crate::http::sessions::RecordingRequest>,
}

pub struct AgentApi;

fn forbidden(msg: &str) -> ApiError {
    ApiError::Forbidden(msg.to_owned())
}

/// The session, if this agent may act on it.
pub(crate) async fn owned_session(
    state: &AppState,
    claims: &AgentClaims,
    id: &str,
) -> Result<repo::SessionView, ApiError> {
    let id = parse_session_id(id)?;
    let v = repo::get(&state.db, &id).await?.ok_or_else(not_found)?;
    let s = &v.session;
    let conversation_ok = claims
        .conversation
        .as_ref()
        .is_none_or(|(p, c)| *p == s.conversation_platform && *c == s.conversation_id);
    if s.agent_id != claims.agent_id || !conversation_ok {
        // Same answer as a missing session: do not confirm that the id exists.
        return Err(not_found());
    }
    Ok(v)
}

#[OpenApi(prefix_path = "/api/v1")]
impl AgentApi {
    /// Mint an agent token
    ///
    /// Your backend calls this with its API key and hands the token to the widget in the
    /// agent's browser. The token acts only as this agent (and, if given, only for this
    /// conversation) and expires quickly.
    #[oai(
        path = "/agent-tokens",
        method = "post",
        operation_id = "createAgentToken",
        tag = "AgentTags::AgentTokens"
    )]
    async fn create_token(
        &self,
        state: poem::web::Data<&AppState>,
        auth: ApiKeyAuth,
        body: Json<CreateAgentToken>,
    ) -> Result<Json<AgentToken>, ApiError> {
        let ttl = body.0.ttl_secs.unwrap_or(DEFAULT_TTL_SECS);
        if !(60..=MAX_TTL_SECS).contains(&ttl) {
            return Err(ApiError::bad_request(
                "invalid_field",
                "`ttl_secs` must be between 60 and 43200",
            ));
        }
        let agent_id = AgentId::parse(&body.0.agent.id).map_err(field_err)?;
        let agent_name = DisplayName::parse("agent.name", &body.0.agent.name).map_err(field_err)?;
        let conversation = body
            .0
            .conversation
            .as_ref()
            .map(|c| ConversationRef::parse(&c.platform, &c.id))
            .transpose()
            .map_err(field_err)?
            .map(|c| (c.platform, c.id));
        let post_link_via = match body.0.post_link_via.as_deref() {
            None => None,
            Some(via) => Some(
                crate::store::integrations::find(&state.db, via)
                    .await?
                    .ok_or_else(|| {
                        ApiError::unprocessable(
                            "integration_not_found",
                            "post_link_via names no integration",
                        )
                    })?
                    .id,
            ),
        };
        let claims = AgentClaims {
            agent_id: agent_id.as_str().to_owned(),
            agent_name: agent_name.as_str().to_owned(),
            conversation,
            api_key_id: auth.0.key_id,
            post_link_via,
            token_id: crate::store::agent_tokens::new_token_id(),
            demo: false,
        };
        let now = Utc::now();
        let expires = now.timestamp() + ttl as i64;
        let token = crate::domain::agent_token::seal(&state.keys.agent, &claims, expires);
        if token.len() > crate::domain::agent_token::MAX_TOKEN_CHARS {
            // Cannot happen with the field limits above; refuse rather than mint a token
            // that every use would refuse.
            return Err(ApiError::unprocessable(
                "token_too_large",
                "these fields make an agent token too long to use; shorten them",
            ));
        }
        let expires_at = Utc
            .timestamp_opt(expires, 0)
            .single()
            .unwrap_or_else(Utc::now);
        crate::store::agent_tokens::record(&state.db, &claims, now, expires_at).await?;
        Ok(Json(AgentToken {
            id: claims.token_id,
            token,
            expires_at,
        }))
    }

    /// Revoke an agent token
    ///
    /// The token (its id came with it from `POST /agent-tokens`) stops working within a
    /// second, in every instance sharing the database. Revoking the API key that minted a
    /// token revokes the token too.
    #[oai(
        path = "/agent-tokens/:id",
        method = "delete",
        operation_id = "revokeAgentToken",
        tag = "AgentTags::AgentTokens"
    )]
    async fn revoke_token(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Revoked, ApiError> {
        let id = id.0;
        let missing =
            || ApiError::not_found("agent_token_not_found", "no agent token with this id");
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(missing());
        }
        let target = crate::store::agent_tokens::Target::Token(id.clone());
        let n = crate::store::agent_tokens::revoke(&state.db, &target, Utc::now()).await?;
        state.agent_tokens.forget_all();
        if n > 0 || crate::store::agent_tokens::exists(&state.db, &id).await? {
            Ok(Revoked::Revoked)
        } else {
            Err(missing())
        }
    }

    /// Start a call (widget)
    ///
    /// Creates a session for the token's agent. Send an `Idempotency-Key` to make retries
    /// safe.
    #[oai(
        path = "/widget/sessions",
        method = "post",
        operation_id = "widgetCreateSession",
        tag = "AgentTags::Widget"
    )]
    async fn widget_create(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        #[oai(
            name = "Idempotency-Key",
            validator(max_length = 255, pattern = r"^[!-~]+$")
        )]
        idempotency_key: Header<Option<String>>,
        body: Json<Option<WidgetCreateSession>>,
    ) -> Result<CreateResponse, ApiError> {
        let claims = auth.0;
        // An empty body arrives as `{}` (see `http::BodyLimit`), so `None` is a JSON `null`.
        let body = body.0.ok_or_else(crate::http::sessions::null_body)?;
        let conversation = match (&claims.conversation, &body.conversation) {
            (Some((p, c)), None) => Conversation {
                platform: p.clone(),
                id: c.clone(),
            },
            (Some((p, c)), Some(given)) if *p == given.platform && *c == given.id => given.clone(),
            (Some(_), Some(_)) => {
                return Err(forbidden(
                    "this agent token is limited to another conversation",
                ));
            }
            (None, Some(given)) => given.clone(),
            (None, None) => {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "`conversation` is required",
                ));
            }
        };
        if claims.demo {
            if claims.post_link_via.is_some() || body.post_link_via.is_some() {
                return Err(crate::http::pages::demo::not_for_demo(
                    "post links through an integration",
                ));
            }
            if !state.demo.sessions.try_take(std::time::Instant::now()) {
                return Err(ApiError::TooManyRequests);
            }
        }
        let via = claims
            .post_link_via
            .clone()
            .or_else(|| body.post_link_via.clone());
        let full = CreateSession {
            conversation,
            agent: Agent {
                id: claims.agent_id.clone(),
                name: claims.agent_name.clone(),
            },
            customer: body.customer.clone(),
            metadata: body.metadata.clone(),
            relay_only: None,
            post_link_via: via,
            lobby: body.lobby,
            media_mode: None,
            recording: body.recording.clone(),
        };
        let scope = format!("widget:{}:", claims.agent_id);
        create_session(
            &state,
            &full,
            &claims.api_key_id,
            idempotency_key.0.as_deref(),
            &scope,
        )
        .await
    }

    /// Get a call (widget)
    #[oai(
        path = "/widget/sessions/:id",
        method = "get",
        operation_id = "widgetGetSession",
        tag = "AgentTags::Widget"
    )]
    async fn widget_get(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
    ) -> Result<Json<Session>, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        Ok(Json(session_view_to_api(&state, &v)))
    }

    /// End a call (widget)
    #[oai(
        path = "/widget/sessions/:id/end",
        method = "post",
        operation_id = "widgetEndSession",
        tag = "AgentTags::Widget"
    )]
    async fn widget_end(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
    ) -> Result<Json<Session>, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        end_session(&state, &parse_session_id(&v.session.id)?, "ended_by_agent").await
    }

    /// Replace the customer link (widget)
    #[oai(
        path = "/widget/sessions/:id/customer-link",
        method = "post",
        operation_id = "widgetRotateCustomerLink",
        tag = "AgentTags::Widget"
    )]
    async fn widget_rotate(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
    ) -> Result<Json<Session>, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        rotate_link(&state, &parse_session_id(&v.session.id)?).await
    }

    /// E-mail the customer's link (widget)
    #[oai(
        path = "/widget/sessions/:id/invite",
        method = "post",
        operation_id = "widgetInviteByEmail",
        tag = "AgentTags::Widget"
    )]
    async fn widget_invite(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
        body: Json<Option<InviteRequest>>,
    ) -> Result<InviteResponse, ApiError> {
        if auth.0.demo {
            return Err(crate::http::pages::demo::not_for_demo(
                "send e-mail invites",
            ));
        }
        let v = owned_session(&state, &auth.0, &id.0).await?;
        let body = body.0.ok_or_else(crate::http::sessions::null_body)?;
        queue_invite(&state, &parse_session_id(&v.session.id)?, &body).await
    }

    /// Invite a participant (widget)
    #[oai(
        path = "/widget/sessions/:id/participants",
        method = "post",
        operation_id = "widgetInviteParticipant",
        tag = "AgentTags::Widget"
    )]
    async fn widget_invite_participant(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
        body: Json<InviteParticipant>,
    ) -> Result<InvitedResponse, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        let by = Actor {
            participant_id: None,
            name: &auth.0.agent_name,
        };
        crate::http::participants::invite(&state, &parse_session_id(&v.session.id)?, &body.0, by)
            .await
    }

    /// List participants (widget)
    #[oai(
        path = "/widget/sessions/:id/participants",
        method = "get",
        operation_id = "widgetListParticipants",
        tag = "AgentTags::Widget"
    )]
    async fn widget_list_participants(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
    ) -> Result<Json<ParticipantList>, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        crate::http::participants::list(&state, &parse_session_id(&v.session.id)?).await
    }

    /// Remove a participant (widget)
    #[oai(
        path = "/widget/sessions/:id/participants/:participant_id",
        method = "delete",
        operation_id = "widgetRemoveParticipant",
        tag = "AgentTags::Widget"
    )]
    async fn widget_remove_participant(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
        participant_id: Path<String>,
    ) -> Result<Json<Participant>, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        let pid = parse_participant_id(&participant_id.0)?;
        let by = Actor {
            participant_id: None,
            name: &auth.0.agent_name,
        };
        crate::http::participants::remove(&state, &parse_session_id(&v.session.id)?, &pid, by).await
    }

    /// Change a supervisor's mode (widget)
    #[oai(
        path = "/widget/sessions/:id/participants/:participant_id/mode",
        method = "post",
        operation_id = "widgetChangeParticipantMode",
        tag = "AgentTags::Widget"
    )]
    async fn widget_change_mode(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
        participant_id: Path<String>,
        body: Json<ChangeMode>,
    ) -> Result<Json<Participant>, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        let pid = parse_participant_id(&participant_id.0)?;
        let by = Actor {
            participant_id: None,
            name: &auth.0.agent_name,
        };
        crate::http::participants::change_mode(
            &state,
            &parse_session_id(&v.session.id)?,
            &pid,
            &body.0,
            by,
        )
        .await
    }

    /// Transfer to another agent (widget)
    #[oai(
        path = "/widget/sessions/:id/transfer",
        method = "post",
        operation_id = "widgetTransferSession",
        tag = "AgentTags::Widget"
    )]
    async fn widget_transfer(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
        body: Json<Transfer>,
    ) -> Result<InvitedResponse, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        let by = Actor {
            participant_id: None,
            name: &auth.0.agent_name,
        };
        crate::http::participants::transfer(&state, &parse_session_id(&v.session.id)?, &body.0, by)
            .await
    }
}
