//! REST: controlling a session's recording and reading its consents.
//!
//! * `POST /api/v1/sessions/{id}/recording/{start|pause|resume|stop}` (API key)
//! * `POST /api/v1/widget/sessions/{id}/recording/{action}` (agent token)
//! * `POST /api/v1/join/{token}/recording/{action}` (an agent's own join link; a
//!   customer's gets `403`)
//! * `GET /api/v1/sessions/{id}/recording`: mode, state and every consent decision
//! * `GET /api/v1/join/{token}/recording`: what a call page needs (the consent wording)
//!
//! Every refusal leaves the call as it was.

use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use crate::domain::Role;
use crate::domain::recording::{Action, Actor};
use crate::http::auth::ApiKeyAuth;
use crate::http::connect::link_error;
use crate::http::error::ApiError;
use crate::http::sessions::{not_found, parse_session_id};
use crate::http::state::AppState;
use crate::http::widget::{AgentAuth, owned_session};
use crate::services::bus::{RecordingNote, RoomSignal};
use crate::services::recording_control::{RecordingError, Status};

#[derive(Tags)]
pub enum RecordingTags {
    /// Starting, pausing, resuming and stopping a session's recording; consent records.
    Recording,
}

pub struct RecordingControlApi;

/// What to do with the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum RecordingAction {
    Start,
    Pause,
    Resume,
    Stop,
}

impl From<RecordingAction> for Action {
    fn from(a: RecordingAction) -> Self {
        match a {
            RecordingAction::Start => Action::Start,
            RecordingAction::Pause => Action::Pause,
            RecordingAction::Resume => Action::Resume,
            RecordingAction::Stop => Action::Stop,
        }
    }
}

/// A session's recording as it stands.
#[derive(Debug, Clone, Object)]
pub struct RecordingStatus {
    /// `off`, `always` or `on_demand`.
    pub mode: String,
    /// `off` (never started), `recording`, `paused` or `stopped`.
    pub state: String,
}

impl From<Status> for RecordingStatus {
    fn from(s: Status) -> Self {
        Self {
            mode: s.mode.as_str().to_owned(),
            state: s.state.as_str().to_owned(),
        }
    }
}

/// One consent decision, as given on the participant's page.
#[derive(Debug, Clone, Object)]
pub struct ConsentRecord {
    pub participant_id: String,
    /// `given`, `declined` or `withdrawn`.
    pub decision: String,
    pub at: DateTime<Utc>,
    /// The version of the wording the participant was shown (`recording.consent_text_version`).
    pub wording_version: String,
    /// The address the page connected from.
    #[oai(nullable)]
    pub ip: Option<String>,
    /// The page's browser.
    #[oai(nullable)]
    pub user_agent: Option<String>,
}

/// A session's recording with every consent decision, oldest first.
#[derive(Debug, Clone, Object)]
pub struct RecordingDetail {
    pub mode: String,
    pub state: String,
    pub consents: Vec<ConsentRecord>,
}

/// What a call page needs to ask for consent.
#[derive(Debug, Clone, Object)]
pub struct PageRecording {
    pub mode: String,
    pub state: String,
    /// The version stored with this page's decisions.
    pub wording_version: String,
    /// Configured wording per language (`recording.consent_text`); pages use their
    /// built-in text for languages not listed.
    pub wording: std::collections::BTreeMap<String, String>,
}

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> Self {
        let detail = e.to_string();
        match e {
            RecordingError::Session(s) => ApiError::from(s),
            RecordingError::NotAllowed => ApiError::denied("forbidden", detail),
            RecordingError::DiskUnknown(ref source) => {
                tracing::error!(error = %source, "reading the recordings' free space failed");
                ApiError::conflict(e.code(), e.static_message())
            }
            other => ApiError::conflict(other.code(), detail),
        }
    }
}

/// Carries out `action` and tells the live room.
async fn command(
    state: &AppState,
    session_id: &str,
    action: Action,
    by: Option<&str>,
) -> Result<Json<RecordingStatus>, ApiError> {
    let s = state
        .recording
        .command(session_id, action, Actor::Staff, by, Utc::now())
        .await?;
    let note = RecordingNote { state: s.state };
    state
        .bus
        .publish(session_id, RoomSignal::Recording(note))
        .await;
    Ok(Json(s.into()))
}

#[OpenApi(prefix_path = "/api/v1", tag = "RecordingTags::Recording")]
impl RecordingControlApi {
    /// Start, pause, resume or stop the recording
    ///
    /// `409` with a stable `code` when it cannot be done: `session_ended`,
    /// `already_recording`, `already_paused`, `not_recording`, `recording_off` (the session
    /// is not recorded), `recording_automatic` (`always` sessions are started and stopped
    /// by the server), `media_p2p` (a `p2p` session cannot be recorded),
    /// `media_unavailable` (no media engine), `insufficient_storage` (below
    /// `recording.min_free_bytes`). The call goes on unaffected either way.
    #[oai(
        path = "/sessions/:id/recording/:action",
        method = "post",
        operation_id = "controlRecording"
    )]
    async fn control(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        action: Path<RecordingAction>,
    ) -> Result<Json<RecordingStatus>, ApiError> {
        let id = parse_session_id(&id.0)?;
        command(&state, id.as_str(), action.0.into(), None).await
    }

    /// Get the recording and its consents
    #[oai(
        path = "/sessions/:id/recording",
        method = "get",
        operation_id = "getSessionRecording"
    )]
    async fn get(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
    ) -> Result<Json<RecordingDetail>, ApiError> {
        let id = parse_session_id(&id.0)?;
        let v = crate::store::sessions::get(&state.db, id.as_str())
            .await?
            .ok_or_else(not_found)?;
        let s = state.recording.status_of(&v.session);
        let consents = crate::store::recording_control::consents(&state.db, id.as_str())
            .await?
            .into_iter()
            .map(|c| ConsentRecord {
                participant_id: c.participant_id,
                decision: c.decision,
                at: c.at,
                wording_version: c.wording_version,
                ip: c.ip,
                user_agent: c.user_agent,
            })
            .collect();
        Ok(Json(RecordingDetail {
            mode: s.mode.as_str().to_owned(),
            state: s.state.as_str().to_owned(),
            consents,
        }))
    }

    /// Start, pause, resume or stop the recording (widget)
    #[oai(
        path = "/widget/sessions/:id/recording/:action",
        method = "post",
        operation_id = "widgetControlRecording"
    )]
    async fn widget_control(
        &self,
        state: poem::web::Data<&AppState>,
        auth: AgentAuth,
        id: Path<String>,
        action: Path<RecordingAction>,
    ) -> Result<Json<RecordingStatus>, ApiError> {
        let v = owned_session(&state, &auth.0, &id.0).await?;
        command(&state, &v.session.id, action.0.into(), None).await
    }

    /// Start, pause, resume or stop the recording (an agent's call page)
    ///
    /// Authorized by the page's own join link; only an agent's link may (`403` for a
    /// customer's or a guest's).
    #[oai(
        path = "/join/:token/recording/:action",
        method = "post",
        operation_id = "joinControlRecording"
    )]
    async fn join_control(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
        action: Path<RecordingAction>,
    ) -> Result<Json<RecordingStatus>, ApiError> {
        let r = crate::store::links::resolve(&state.db, &state.keys.join, &token.0, Utc::now())
            .await?
            .map_err(link_error)?;
        if r.role != Role::Agent {
            return Err(RecordingError::NotAllowed.into());
        }
        command(
            &state,
            &r.session.id,
            action.0.into(),
            Some(&r.participant.id),
        )
        .await
    }

    /// What a call page shows about the recording
    ///
    /// The mode, the state and the consent wording configured for each language.
    #[oai(
        path = "/join/:token/recording",
        method = "get",
        operation_id = "joinGetRecording"
    )]
    async fn join_get(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
    ) -> Result<Json<PageRecording>, ApiError> {
        let r = crate::store::links::resolve(&state.db, &state.keys.join, &token.0, Utc::now())
            .await?
            .map_err(link_error)?;
        let s = state.recording.status_of(&r.session);
        let cfg = &state.recording.config;
        Ok(Json(PageRecording {
            mode: s.mode.as_str().to_owned(),
            state: s.state.as_str().to_owned(),
            wording_version: cfg.consent_text_version.clone(),
            wording: cfg.consent_text.clone(),
        }))
    }
}
