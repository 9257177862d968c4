//! Participant use cases of a running session: invite, remove, set a supervisor's mode,
//! transfer to another agent. The REST API (API key), the widget API (agent token) and the
//! join page (an agent's join link) all call these; each takes the handles it uses.
//!
//! Each use case writes through `participants::store` (one transaction with its timeline
//! events and their webhooks), then tells the session's live room through the
//! [`SessionBus`].

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;

use super::bus::{RoomSignal, SessionBus};
use crate::domain::tokens::TokenKey;
use crate::domain::{Mode, ParticipantId, SessionId};
use crate::store::entities::participant;
use crate::store::participants::{self as store, InviteMail, NewInvite};

pub use crate::store::participants::SessionError;

/// What the participant use cases need.
#[derive(Clone, Copy)]
pub struct Handles<'a> {
    pub db: &'a DatabaseConnection,
    /// Signs join links.
    pub join_key: &'a TokenKey,
    pub bus: &'a dyn SessionBus,
    /// Base of join URLs (`{public_url}/j/{token}`).
    pub public_url: &'a str,
    /// `sessions.max_participants`.
    pub max_participants: u32,
    /// Whether e-mail can be sent (`mail.host` is configured).
    pub mail_enabled: bool,
}

/// Who acts: the participant (an agent using their join link) or, through the API and the
/// widget, nobody in the call; `name` is who the invitation e-mail says invited.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub participant_id: Option<&'a str>,
    pub name: &'a str,
}

/// A participant just added, with their join URL.
#[derive(Debug, Clone)]
pub struct Invitation {
    pub participant: participant::Model,
    pub join_url: String,
    pub expires_at: DateTime<Utc>,
    /// The outbox delivery of the invitation e-mail, when one was queued.
    pub delivery_id: Option<i64>,
}

impl Handles<'_> {
    fn invitation(&self, i: store::Invited) -> Invitation {
        Invitation {
            join_url: format!("{}/j/{}", self.public_url, i.token),
            participant: i.participant,
            expires_at: i.expires_at,
            delivery_id: i.delivery_id,
        }
    }
}

/// Invites an agent, expert or supervisor into a running session; with an e-mail address
/// the link is also e-mailed (through the outbox), in `locale` if given.
pub async fn invite(
    h: Handles<'_>,
    session_id: &SessionId,
    invite: NewInvite,
    locale: Option<String>,
    by: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<Invitation, SessionError> {
    let mail = match &invite.email {
        Some(_) if !h.mail_enabled => return Err(SessionError::MailNotConfigured),
        Some(_) => Some(InviteMail {
            locale,
            invited_by: by.name.to_owned(),
        }),
        None => None,
    };
    let i = store::invite(
        h.db,
        h.join_key,
        session_id,
        invite,
        mail.as_ref(),
        by.participant_id,
        h.max_participants,
        now,
    )
    .await?;
    tracing::info!(session_id = %session_id, participant_id = %i.participant.id, role = %i.participant.role,
        "participant invited");
    Ok(h.invitation(i))
}

/// Removes a participant: their links stop working and their socket is closed.
pub async fn remove(
    h: Handles<'_>,
    session_id: &SessionId,
    participant_id: &ParticipantId,
    by: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<participant::Model, SessionError> {
    let (p, changed) =
        store::remove(h.db, session_id, participant_id, by.participant_id, now).await?;
    if changed {
        tracing::info!(session_id = %session_id, participant_id = %participant_id, "participant removed");
        h.bus
            .publish(
                session_id,
                RoomSignal::Removed {
                    participant_id: p.id.clone(),
                },
            )
            .await;
    }
    Ok(p)
}

/// Sets a supervisor's mode and tells the live room.
pub async fn set_mode(
    h: Handles<'_>,
    session_id: &SessionId,
    participant_id: &ParticipantId,
    mode: Mode,
    by: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<participant::Model, SessionError> {
    let p = store::set_mode(
        h.db,
        session_id,
        participant_id,
        mode,
        by.participant_id,
        now,
    )
    .await?;
    h.bus
        .publish(
            session_id,
            RoomSignal::ModeChanged {
                participant_id: p.id.clone(),
                mode,
            },
        )
        .await;
    Ok(p)
}

/// Starts a transfer to another agent: they get a link; the agents present hand over
/// once they have joined (the room then calls `participants::store::complete_transfer`).
pub async fn transfer(
    h: Handles<'_>,
    session_id: &SessionId,
    agent_id: &str,
    agent_name: &str,
    by: Actor<'_>,
    now: DateTime<Utc>,
) -> Result<Invitation, SessionError> {
    let i = store::start_transfer(
        h.db,
        h.join_key,
        session_id,
        agent_id,
        agent_name,
        by.participant_id,
        h.max_participants,
        now,
    )
    .await?;
    tracing::info!(session_id = %session_id, participant_id = %i.participant.id, "transfer started");
    h.bus
        .publish(
            session_id,
            RoomSignal::TransferStarted {
                to: i.participant.id.clone(),
            },
        )
        .await;
    Ok(h.invitation(i))
}
