//! REST: who is in a session. `/api/v1/sessions/{id}/participants` and
//! `/sessions/{id}/transfer` (API key), and the same actions for an agent's join page,
//! authorized by the agent's own join link: `/api/v1/join/{token}/participants`,
//! `/join/{token}/transfer`. The widget's variants live in `agent::api`. All are thin
//! wrappers over `services::participants`.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::domain::fields::{AgentId, DisplayName, Email, Locale, optional};
use crate::domain::{Mode, Role};
use crate::domain::{ParticipantId, SessionId};
use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::sessions::{
    Agent, Participant, ParticipantRole, SupervisorMode, field_err, not_found, parse_session_id,
    participant_to_api,
};
use crate::http::state::AppState;
use crate::services::participants::{self as service, Actor, Handles, Invitation};
use crate::store::sessions as repo;

pub use crate::store::participants::SessionError;

#[derive(Tags)]
pub enum ParticipantTags {
    /// Who is in a session: invite experts, supervisors and agents, remove them, set a
    /// supervisor's mode, transfer the call to another agent.
    Participants,
}

/// A string field documented as the enum `T`, that keeps an unknown value instead of
/// failing to parse, so the handler can refuse it with 422 and a stable code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lenient<T>(pub Result<T, String>);

impl<T: Type> Type for Lenient<T> {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        T::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<T: ParseFromJSON> ParseFromJSON for Lenient<T> {
    fn parse_from_json(value: Option<serde_json::Value>) -> ParseResult<Self> {
        match value {
            Some(serde_json::Value::String(s)) => {
                let parsed = T::parse_from_json(Some(serde_json::Value::String(s.clone())));
                Ok(Lenient(parsed.map_err(|_| s)))
            }
            other => T::parse_from_json(other)
                .map(|v| Lenient(Ok(v)))
                .map_err(ParseError::propagate),
        }
    }
}

impl<T: ToJSON> ToJSON for Lenient<T> {
    fn to_json(&self) -> Option<serde_json::Value> {
        match &self.0 {
            Ok(v) => v.to_json(),
            Err(s) => Some(serde_json::Value::String(s.clone())),
        }
    }
}

/// Who can be invited into a running session (a session has exactly one customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum InviteRole {
    /// A colleague, specialist or interpreter: sees, hears, is seen.
    Expert,
    /// Listens in, whispers to agents or barges in (see `mode`).
    Supervisor,
    /// Another agent (a colleague; a transfer uses `/transfer`).
    Agent,
}

/// Invite someone into a running session.
#[derive(Debug, Clone, Object)]
pub struct InviteParticipant {
    /// `expert`, `supervisor` or `agent` (a session has exactly one customer).
    pub role: Lenient<InviteRole>,
    /// Shown to the others in the call.
    #[oai(validator(
        min_length = 1,
        max_length = 80,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(deserialize_with = "crate::http::strict::string")]
    pub name: String,
    /// Also e-mail the link here (through the outbox; needs `mail.host`).
    #[oai(validator(
        max_length = 254,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\]{1,64}@[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\.]+(\.[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\.]+)+)?[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub email: Option<String>,
    /// Supervisors only (default `listen`); any other role with a mode is refused.
    #[oai(nullable)]
    pub mode: Option<Lenient<SupervisorMode>>,
    /// The contact center's id of an invited agent.
    #[oai(validator(max_length = 128, pattern = r"^([\x09-\x0d ]*|[!-~]+)$"))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub agent_id: Option<String>,
    /// Language of the e-mail (`en`, `de`).
    #[oai(validator(
        max_length = 35,
        pattern = r#"^([\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*|[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub locale: Option<String>,
}

/// A participant just invited, with their personal join link.
#[derive(Debug, Clone, Object)]
pub struct ParticipantInvitation {
    pub participant_id: String,
    pub role: ParticipantRole,
    /// Supervisors only; `null` for other roles.
    #[oai(nullable)]
    pub mode: Option<SupervisorMode>,
    pub name: String,
    /// Their personal join link; hand it over or let Sightline e-mail it.
    pub join_url: String,
    pub expires_at: DateTime<Utc>,
    /// The outbox delivery of the invitation e-mail (see `/deliveries/{id}`), if one was
    /// queued.
    #[oai(nullable)]
    pub delivery_id: Option<i64>,
}

#[derive(Debug, Clone, Object)]
pub struct ParticipantList {
    pub items: Vec<Participant>,
}

/// Change a supervisor's mode.
#[derive(Debug, Clone, Object)]
pub struct ChangeMode {
    pub mode: Lenient<SupervisorMode>,
}

/// Transfer the call to another agent.
#[derive(Debug, Clone, Object)]
pub struct Transfer {
    /// The agent taking over; they get a join link, and the agents in the call hand over
    /// once they have joined.
    pub agent: Agent,
}

#[derive(ApiResponse)]
pub enum InvitedResponse {
    /// The participant was added; `join_url` is their personal link.
    #[oai(status = 201)]
    Created(Json<ParticipantInvitation>),
}

/// Maps a participant error to its one problem document.
pub fn problem(e: SessionError) -> ApiError {
    ApiError::from(e)
}

/// The participant use cases' handles, taken from the application state.
pub fn handles(state: &AppState) -> Handles<'_> {
    Handles {
        db: &state.db,
        join_key: &state.keys.join,
        bus: &*state.bus,
        public_url: &state.public_url,
        max_participants: state.config.sessions.max_participants,
        mail_enabled: state.mailer.is_some(),
    }
}

fn invitation_to_api(i: &Invitation) -> ParticipantInvitation {
    let p = participant_to_api(&i.participant);
    ParticipantInvitation {
        participant_id: p.participant_id,
        role: p.role,
        mode: p.mode,
        name: p.name,
        join_url: i.join_url.clone(),
        expires_at: i.expires_at,
        delivery_id: i.delivery_id,
    }
}

fn parse_role(r: &Lenient<InviteRole>) -> Result<Role, ApiError> {
    match &r.0 {
        Ok(InviteRole::Agent) => Ok(Role::Agent),
        Ok(InviteRole::Expert) => Ok(Role::Expert),
        Ok(InviteRole::Supervisor) => Ok(Role::Supervisor),
        Err(raw) if raw == Role::Customer.as_str() => {
            Err(problem(SessionError::CustomerNotInvitable))
        }
        Err(_) => Err(ApiError::unprocessable(
            "invalid_role",
            "`role` must be one of expert, supervisor, agent",
        )),
    }
}

fn parse_mode(m: &Lenient<SupervisorMode>) -> Result<Mode, ApiError> {
    match &m.0 {
        Ok(m) => Ok((*m).into()),
        Err(_) => Err(ApiError::unprocessable(
            "invalid_mode",
            "`mode` must be one of listen, whisper, barge",
        )),
    }
}

/// Parses an invitation at the edge: role and mode first (422), then the fields (400).
pub fn parse_invite(
    body: &InviteParticipant,
) -> Result<(crate::store::participants::NewInvite, Option<String>), ApiError> {
    let role = parse_role(&body.role)?;
    let mode = body.mode.as_ref().map(parse_mode).transpose()?;
    if mode.is_some() && role != Role::Supervisor {
        return Err(problem(SessionError::ModeNotAllowed));
    }
    let name = DisplayName::parse("name", &body.name).map_err(field_err)?;
    let email = optional(body.email.as_deref(), |e| Email::parse("email", e));
    let agent_id = optional(body.agent_id.as_deref(), AgentId::parse);
    let locale = optional(body.locale.as_deref(), |l| Locale::parse("locale", l));
    let email = email.map_err(field_err)?;
    let agent_id = agent_id.map_err(field_err)?;
    let locale = locale.map_err(field_err)?;
    Ok((
        crate::store::participants::NewInvite {
            role,
            name: name.as_str().to_owned(),
            email: email.map(|e| e.as_str().to_owned()),
            mode,
            agent_id: agent_id.map(|a| a.as_str().to_owned()),
        },
        locale.map(|l| l.as_str().to_owned()),
    ))
}

/// Invites into session `id` (API key, widget, join link).
pub async fn invite(
    state: &AppState,
    id: &SessionId,
    body: &InviteParticipant,
    by: Actor<'_>,
) -> Result<InvitedResponse, ApiError> {
    let (new, locale) = parse_invite(body)?;
    let i = service::invite(handles(state), id, new, locale, by, Utc::now())
        .await
        .map_err(problem)?;
    Ok(InvitedResponse::Created(Json(invitation_to_api(&i))))
}

/// Lists the participants of session `id`, with each one's time in the call.
pub async fn list(state: &AppState, id: &SessionId) -> Result<Json<ParticipantList>, ApiError> {
    let v = repo::get(&state.db, id).await?.ok_or_else(not_found)?;
    let events = crate::store::timeline::events(&state.db, id, None, MAX_TIMELINE).await?;
    let end = v.session.ended_at.unwrap_or_else(Utc::now);
    let in_call = crate::services::reports::time_in_call_of(&events, end);
    Ok(Json(ParticipantList {
        items: v
            .participants
            .iter()
            .map(|p| {
                let mut api = participant_to_api(p);
                api.time_in_call_secs = Some(in_call.get(&p.id).copied().unwrap_or(0));
                api
            })
            .collect(),
    }))
}

/// The most timeline events read to sum up times in the call.
const MAX_TIMELINE: u64 = 10_000;

/// Removes participant `pid` from session `id`.
pub async fn remove(
    state: &AppState,
    id: &SessionId,
    pid: &ParticipantId,
    by: Actor<'_>,
) -> Result<Json<Participant>, ApiError> {
    let p = service::remove(handles(state), id, pid, by, Utc::now())
        .await
        .map_err(problem)?;
    Ok(Json(participant_to_api(&p)))
}

/// Sets the mode of supervisor `pid` of session `id`.
pub async fn change_mode(
    state: &AppState,
    id: &SessionId,
    pid: &ParticipantId,
    body: &ChangeMode,
    by: Actor<'_>,
) -> Result<Json<Participant>, ApiError> {
    let mode = parse_mode(&body.mode)?;
    let p = service::set_mode(handles(state), id, pid, mode, by, Utc::now())
        .await
        .map_err(problem)?;
    Ok(Json(participant_to_api(&p)))
}

/// Starts a transfer of session `id` to another agent.
pub async fn transfer(
    state: &AppState,
    id: &SessionId,
    body: &Transfer,
    by: Actor<'_>,
) -> Result<InvitedResponse, ApiError> {
    let agent_id = AgentId::parse(&body.agent.id).map_err(field_err)?;
    let agent_name = DisplayName::parse("agent.name", &body.agent.name).map_err(field_err)?;
    let i = service::transfer(
        handles(state),
        id,
        agent_id.as_str(),
        agent_name.as_str(),
        by,
        Utc::now(),
    )
    .await
    .map_err(problem)?;
    Ok(InvitedResponse::Created(Json(invitation_to_api(&i))))
}

/// The participant id must look like one we issued (a UUID).
pub(crate) fn parse_participant_id(pid: &str) -> Result<ParticipantId, ApiError> {
    ParticipantId::parse(pid).map_err(|_| problem(SessionError::ParticipantNotFound))
}

/// The agent a join link stands for, with their session (403 for any other role).
async fn agent_of_link(
    state: &AppState,
    token: &str,
) -> Result<crate::store::links::Resolved, ApiError> {
    let r = crate::store::links::resolve(&state.db, &state.keys.join, token, Utc::now())
        .await?
        .map_err(crate::http::connect::link_error)?;
    if !r.role.can_manage() {
        return Err(ApiError::Forbidden(
            "only an agent's link may manage the call's participants".to_owned(),
        ));
    }
    Ok(r)
}

pub struct ParticipantsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ParticipantTags::Participants")]
impl ParticipantsApi {
    /// Invite a participant
    ///
    /// Adds an expert, a supervisor (in `listen` mode unless `mode` says otherwise) or
    /// another agent to a running session and returns their personal join link; with
    /// `email`, the link is also e-mailed. Refused with 409 `participant_limit` beyond
    /// `sessions.max_participants`, 409 `session_ended`, 422 `customer_not_invitable`,
    /// `invalid_role`, `invalid_mode` or `mode_not_allowed`.
    #[oai(
        path = "/sessions/:id/participants",
        method = "post",
        operation_id = "inviteParticipant"
    )]
    async fn invite(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        body: Json<InviteParticipant>,
    ) -> Result<InvitedResponse, ApiError> {
        let id = parse_session_id(&id.0)?;
        let v = repo::get(&state.db, &id).await?.ok_or_else(not_found)?;
        let by = Actor {
            participant_id: None,
            name: &v.session.agent_name,
        };
        invite(&state, &id, &body.0, by).await
    }

    /// List participants
    #[oai(
        path = "/sessions/:id/participants",
        method = "get",
        operation_id = "listParticipants"
    )]
    async fn list(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<ParticipantList>, ApiError> {
        let id = parse_session_id(&id.0)?;
        list(&state, &id).await
    }

    /// Remove a participant
    ///
    /// Their links answer 410 `participant_removed` from now on and their connection is
    /// closed. The customer (409 `cannot_remove_customer`) and the last agent (409
    /// `last_agent`) cannot be removed. Removing a removed participant changes nothing.
    #[oai(
        path = "/sessions/:id/participants/:participant_id",
        method = "delete",
        operation_id = "removeParticipant"
    )]
    async fn remove(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        participant_id: Path<String>,
    ) -> Result<Json<Participant>, ApiError> {
        let id = parse_session_id(&id.0)?;
        let pid = parse_participant_id(&participant_id.0)?;
        let by = Actor {
            participant_id: None,
            name: "",
        };
        remove(&state, &id, &pid, by).await
    }

    /// Change a supervisor's mode
    ///
    /// `listen`, `whisper` or `barge`; only supervisors have a mode (422
    /// `mode_not_allowed`).
    #[oai(
        path = "/sessions/:id/participants/:participant_id/mode",
        method = "post",
        operation_id = "changeParticipantMode"
    )]
    async fn mode(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        participant_id: Path<String>,
        body: Json<ChangeMode>,
    ) -> Result<Json<Participant>, ApiError> {
        let id = parse_session_id(&id.0)?;
        let pid = parse_participant_id(&participant_id.0)?;
        let by = Actor {
            participant_id: None,
            name: "",
        };
        change_mode(&state, &id, &pid, &body.0, by).await
    }

    /// Transfer to another agent
    ///
    /// Adds the agent with a join link of their own; once they have joined, the agents in
    /// the call hand over and the session becomes theirs. An agent already in the session
    /// is refused with 409 `same_agent`.
    #[oai(
        path = "/sessions/:id/transfer",
        method = "post",
        operation_id = "transferSession"
    )]
    async fn transfer(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        body: Json<Transfer>,
    ) -> Result<InvitedResponse, ApiError> {
        let id = parse_session_id(&id.0)?;
        let v = repo::get(&state.db, &id).await?.ok_or_else(not_found)?;
        let by = Actor {
            participant_id: None,
            name: &v.session.agent_name,
        };
        transfer(&state, &id, &body.0, by).await
    }

    /// Invite a participant (agent's join link)
    ///
    /// What an agent's join page calls; authorized by the agent's own join link (403 for
    /// any other role's link).
    #[oai(
        path = "/join/:token/participants",
        method = "post",
        operation_id = "joinInviteParticipant"
    )]
    async fn join_invite(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        body: Json<InviteParticipant>,
    ) -> Result<InvitedResponse, ApiError> {
        let r = agent_of_link(&state, &token.0).await?;
        let by = Actor {
            participant_id: Some(&r.participant.id),
            name: &r.participant.display_name,
        };
        invite(&state, &parse_session_id(&r.session.id)?, &body.0, by).await
    }

    /// List participants (agent's join link)
    #[oai(
        path = "/join/:token/participants",
        method = "get",
        operation_id = "joinListParticipants"
    )]
    async fn join_list(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
    ) -> Result<Json<ParticipantList>, ApiError> {
        let r = agent_of_link(&state, &token.0).await?;
        list(&state, &parse_session_id(&r.session.id)?).await
    }

    /// Remove a participant (agent's join link)
    #[oai(
        path = "/join/:token/participants/:participant_id",
        method = "delete",
        operation_id = "joinRemoveParticipant"
    )]
    async fn join_remove(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        participant_id: Path<String>,
    ) -> Result<Json<Participant>, ApiError> {
        let r = agent_of_link(&state, &token.0).await?;
        let pid = parse_participant_id(&participant_id.0)?;
        let by = Actor {
            participant_id: Some(&r.participant.id),
            name: &r.participant.display_name,
        };
        remove(&state, &parse_session_id(&r.session.id)?, &pid, by).await
    }

    /// Change a supervisor's mode (agent's join link)
    #[oai(
        path = "/join/:token/participants/:participant_id/mode",
        method = "post",
        operation_id = "joinChangeParticipantMode"
    )]
    async fn join_mode(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        participant_id: Path<String>,
        body: Json<ChangeMode>,
    ) -> Result<Json<Participant>, ApiError> {
        let r = agent_of_link(&state, &token.0).await?;
        let pid = parse_participant_id(&participant_id.0)?;
        let by = Actor {
            participant_id: Some(&r.participant.id),
            name: &r.participant.display_name,
        };
        change_mode(&state, &parse_session_id(&r.session.id)?, &pid, &body.0, by).await
    }

    /// Transfer to another agent (agent's join link)
    #[oai(
        path = "/join/:token/transfer",
        method = "post",
        operation_id = "joinTransferSession"
    )]
    async fn join_transfer(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        body: Json<Transfer>,
    ) -> Result<InvitedResponse, ApiError> {
        let r = agent_of_link(&state, &token.0).await?;
        let by = Actor {
            participant_id: Some(&r.participant.id),
            name: &r.participant.display_name,
        };
        transfer(&state, &parse_session_id(&r.session.id)?, &body.0, by).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_keeps_unknown_values() {
        let ok = Lenient::<SupervisorMode>::parse_from_json(Some(serde_json::json!("whisper")));
        assert_eq!(ok.unwrap(), Lenient(Ok(SupervisorMode::Whisper)));
        let unknown = Lenient::<SupervisorMode>::parse_from_json(Some(serde_json::json!("yell")));
        assert_eq!(unknown.unwrap(), Lenient(Err("yell".into())));
        assert!(Lenient::<SupervisorMode>::parse_from_json(Some(serde_json::json!(3))).is_err());
    }

    fn body(role: &str, mode: Option<&str>) -> InviteParticipant {
        InviteParticipant {
            role: Lenient::parse_from_json(Some(serde_json::json!(role))).unwrap(),
            name: "Kim".into(),
            email: None,
            mode: mode.map(|m| Lenient::parse_from_json(Some(serde_json::json!(m))).unwrap()),
            agent_id: None,
            locale: None,
        }
    }

    #[test]
    fn invitations_are_parsed_at_the_edge() {
        let code = |r: Result<_, ApiError>| r.err().map(|e| e.code());
        assert_eq!(code(parse_invite(&body("expert", None))), None);
        let (i, _) = parse_invite(&body("supervisor", Some("barge"))).unwrap();
        assert_eq!((i.role, i.mode), (Role::Supervisor, Some(Mode::Barge)));
        assert_eq!(
            code(parse_invite(&body("customer", None))),
            Some("customer_not_invitable")
        );
        assert_eq!(
            code(parse_invite(&body("owner", None))),
            Some("invalid_role")
        );
        assert_eq!(
            code(parse_invite(&body("supervisor", Some("shout")))),
            Some("invalid_mode")
        );
        assert_eq!(
            code(parse_invite(&body("expert", Some("listen")))),
            Some("mode_not_allowed")
        );
        let mut b = body("expert", None);
        b.name = "  ".into();
        assert_eq!(code(parse_invite(&b)), Some("invalid_field"));
        b.name = "Kim".into();
        b.email = Some("not-an-address".into());
        assert_eq!(code(parse_invite(&b)), Some("invalid_field"));
    }
}
