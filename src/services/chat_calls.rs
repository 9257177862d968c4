//! Calls started from inside a chat platform (a `/video` note, a macro, a dashboard app, a
//! Matrix `!video`): one use case for all of them. It creates the session with the one
//! session-create service (the customer's link is posted through the platform in the same
//! transaction) and, where the platform has private notes, posts the agent's link as one.
//! The caller (the platform's edge) has parsed and checked the conversation id.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, DbErr};

use crate::domain::fields::{AgentId, ConversationRef, DisplayName, Email, Metadata};
use crate::services::sessions::{Caller, Outcome, SessionError};
use crate::store::batch::Creator;
use crate::store::creation::NewSession;
use crate::store::entities::integration;
use crate::store::fanout::Note;
use crate::store::sessions::SessionView;

/// The handles a start needs.
#[derive(Clone)]
pub struct CallEnv {
    pub db: DatabaseConnection,
    pub creator: Creator,
    pub ttl: chrono::Duration,
    /// The server's default for `lobby`.
    pub lobby: bool,
}

/// "Start a call in this conversation of this platform, for this agent."
#[derive(Debug, Clone)]
pub struct ChatCall {
    pub conversation_id: String,
    pub agent_id: String,
    pub agent_name: String,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    /// Makes the start idempotent: the platform's id of what asked (a message id, a
    /// Matrix event id). The same key answers the same session.
    pub key: String,
    /// Post the agent's link as a private note (when the platform has them; the caller
    /// asks the adapter).
    pub agent_note: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Invalid(String),
    #[error("this request was already used to start a different call")]
    KeyReused,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Starts the call (or answers the one the same key started): `(view, replayed)`.
pub async fn start(
    env: &CallEnv,
    i: &integration::Model,
    call: ChatCall,
    now: DateTime<Utc>,
) -> Result<(SessionView, bool), StartError> {
    let invalid = |e: crate::domain::fields::FieldError| StartError::Invalid(e.to_string());
    let new = NewSession {
        conversation: ConversationRef::parse(&i.kind, &call.conversation_id).map_err(invalid)?,
        agent_id: AgentId::parse(&call.agent_id).map_err(invalid)?,
        agent_name: DisplayName::parse("agent.name", &call.agent_name).map_err(invalid)?,
        customer_name: call
            .customer_name
            .as_deref()
            .and_then(|n| DisplayName::parse("customer.name", n).ok()),
        // A contact's address Sightline cannot use is not a reason to refuse the call.
        customer_email: call
            .customer_email
            .as_deref()
            .and_then(|e| Email::parse("customer.email", e).ok()),
        customer_locale: None,
        metadata: Metadata::empty(),
        relay_only: false,
        lobby: env.lobby,
        post_link_via: Some(i.id.clone()),
        media_mode: None,
        recording_mode: None,
    };
    let caller = Caller {
        id: format!("integration:{}", i.id),
        idempotency_key: Some(format!("{}:{}", i.kind, call.key)),
    };
    let (view, replayed) =
        match crate::services::sessions::create(&env.creator, env.ttl, new, caller, now).await {
            Ok(Outcome::Created(v)) => (v, false),
            Ok(Outcome::Replayed(v)) => (v, true),
            Err(SessionError::IdempotencyKeyReused) => return Err(StartError::KeyReused),
            Err(SessionError::Db(e)) => return Err(e.into()),
            Err(other) => return Err(StartError::Invalid(other.to_string())),
        };
    // Once per session, also when a replay finds an earlier start cut short before it.
    if call.agent_note {
        crate::store::fanout::enqueue_note_once(
            &env.db,
            &view.session.id,
            &view.session.conversation_id,
            &i.id,
            Note::AgentLink,
            now,
        )
        .await?;
    }
    Ok((view, replayed))
}

/// The newest session of a conversation that has not ended, if any.
pub async fn live_call(
    db: &DatabaseConnection,
    platform: &str,
    conversation_id: &str,
) -> Result<Option<SessionView>, DbErr> {
    let (views, _) = crate::store::sessions::list(
        db,
        &crate::store::sessions::ListQuery {
            conversation_id: Some(conversation_id.to_owned()),
            platform: Some(platform.to_owned()),
            status: None,
            before_id: None,
            limit: 5,
        },
    )
    .await?;
    Ok(views
        .into_iter()
        .find(|v| v.status() != crate::domain::session::Status::Ended))
}

/// The newest session of a conversation, ended or not.
pub async fn latest_call(
    db: &DatabaseConnection,
    platform: &str,
    conversation_id: &str,
) -> Result<Option<SessionView>, DbErr> {
    let (views, _) = crate::store::sessions::list(
        db,
        &crate::store::sessions::ListQuery {
            conversation_id: Some(conversation_id.to_owned()),
            platform: Some(platform.to_owned()),
            status: None,
            before_id: None,
            limit: 1,
        },
    )
    .await?;
    Ok(views.into_iter().next())
}
