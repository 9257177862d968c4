//! Participants of a running session in the database: invitation, removal, a supervisor's
//! mode, transfer between agents, and the timeline events the signaling room produces.
//!
//! Every change and its timeline events are written in one transaction through
//! `super::sessions::append_event`, so the webhooks of these events (the outbox hook)
//! commit with them.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QuerySelect, Set,
};
use serde_json::json;

use crate::domain::session::Status;
use crate::domain::tokens::TokenKey;
use crate::domain::{EventKind, Mode, Role};
use crate::store::entities::session;
use crate::store::entities::{join_link, participant};
use crate::store::outbox::NewDelivery;
use crate::store::sessions::{self as repo, SessionView};

pub use super::error::SessionError;

/// A validated invitation (names and addresses already parsed at the edge).
#[derive(Debug, Clone)]
pub struct NewInvite {
    pub role: Role,
    pub name: String,
    pub email: Option<String>,
    /// Supervisors only; `None` means the role's default (`listen`).
    pub mode: Option<Mode>,
    /// The contact center's id of an invited agent.
    pub agent_id: Option<String>,
}

/// An e-mail to send with the invitation, queued in the same transaction.
#[derive(Debug, Clone)]
pub struct InviteMail {
    pub locale: Option<String>,
    /// Who invites (shown in the e-mail).
    pub invited_by: String,
}

/// A participant just added, with the token of their link.
#[derive(Debug, Clone)]
pub struct Invited {
    pub participant: participant::Model,
    pub token: String,
    pub expires_at: DateTime<Utc>,
    /// The outbox delivery of the invitation e-mail, when one was queued.
    pub delivery_id: Option<i64>,
}

/// Participants that count toward `sessions.max_participants` (removed ones do not).
pub fn counted(participants: &[participant::Model]) -> usize {
    participants
        .iter()
        .filter(|p| p.removed_at.is_none())
        .count()
}

/// The view of a session that is still running, or why not. Inside a write transaction:
/// on PostgreSQL the session's row is locked first, so concurrent changes to one session
/// (two invitations racing for the last seat) run one after the other; SQLite's write
/// transactions already do.
async fn running<C: ConnectionTrait>(c: &C, session_id: &str) -> Result<SessionView, SessionError> {
    if c.get_database_backend() == sea_orm::DbBackend::Postgres {
        session::Entity::find_by_id(session_id.to_owned())
            .lock_exclusive()
            .one(c)
            .await?;
    }
    let v = repo::get(c, session_id)
        .await?
        .ok_or(SessionError::SessionNotFound)?;
    if v.status() == Status::Ended {
        return Err(SessionError::SessionEnded);
    }
    Ok(v)
}

fn find<'a>(
    v: &'a SessionView,
    participant_id: &str,
) -> Result<&'a participant::Model, SessionError> {
    v.participants
        .iter()
        .find(|p| p.id == participant_id)
        .ok_or(SessionError::ParticipantNotFound)
}

fn role_of(p: &participant::Model) -> Role {
    p.role.parse().unwrap_or(Role::Customer)
}

/// The data of a `participant.*` event about `p`.
fn about(p: &participant::Model) -> serde_json::Value {
    json!({"role": p.role, "display_name": p.display_name, "mode": p.mode})
}

/// An e-mail invitation for `p` as an outbox delivery (rendered at delivery time with the
/// participant's then-live link).
pub fn invite_delivery(
    session_id: &str,
    p: &participant::Model,
    to: &str,
    mail: &InviteMail,
) -> NewDelivery {
    NewDelivery {
        kind: crate::store::outbox::Kind::Email,
        event_type: None,
        session_id: Some(session_id.to_owned()),
        integration_id: None,
        ordering_key: format!("{session_id}/mail"),
        payload: json!({
            "to": to,
            "locale": mail.locale,
            "participant_id": p.id,
            "invited_by": mail.invited_by,
        }),
    }
}

/// Adds a participant to a running session with a link of their own (valid until the
/// session expires); records `participant.invited` and `link.issued`, and with `mail`
/// queues the e-mail to `invite.email`. `by` is the participant who invited, if known.
#[allow(clippy::too_many_arguments)]
pub async fn invite(
    db: &DatabaseConnection,
    key: &TokenKey,
    session_id: &str,
    invite: NewInvite,
    mail: Option<&InviteMail>,
    by: Option<&str>,
    max_participants: u32,
    now: DateTime<Utc>,
) -> Result<Invited, SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let v = running(&txn, session_id).await?;
    let invited = add(&txn, key, &v, &invite, mail, by, max_participants, now).await?;
    txn.commit().await?;
    Ok(invited)
}

/// [`invite`] inside the caller's transaction.
#[allow(clippy::too_many_arguments)]
async fn add<C: ConnectionTrait>(
    c: &C,
    key: &TokenKey,
    v: &SessionView,
    invite: &NewInvite,
    mail: Option<&InviteMail>,
    by: Option<&str>,
    max_participants: u32,
    now: DateTime<Utc>,
) -> Result<Invited, SessionError> {
    let now = now.trunc_subsecs(6);
    if !invite.role.invitable() {
        return Err(SessionError::CustomerNotInvitable);
    }
    if invite.mode.is_some() && invite.role != Role::Supervisor {
        return Err(SessionError::ModeNotAllowed);
    }
    if let (Role::Agent, Some(agent_id)) = (invite.role, invite.agent_id.as_deref())
        && agent_in_session(v, agent_id)
    {
        return Err(SessionError::SameAgent);
    }
    if counted(&v.participants) >= max_participants as usize {
        return Err(SessionError::ParticipantLimit {
            max: max_participants,
        });
    }
    let s = &v.session;
    let mut p = crate::store::links::new_participant(&s.id, invite.role, &invite.name, now);
    if let Some(m) = invite.mode {
        p.mode = Some(m.as_str().to_owned());
    }
    p.external_id = invite.agent_id.clone();
    p.email = invite.email.clone();
    let p = p.into_active_model().insert(c).await?;
    let (link, token) = crate::store::links::issue_link(c, key, &p, s.expires_at, now).await?;
    let mut data = about(&p);
    data["invited_by"] = json!(by);
    if let Some(a) = &p.external_id {
        data["agent_id"] = json!(a);
    }
    crate::store::timeline::append_event(
        c,
        &s.id,
        EventKind::ParticipantInvited,
        Some(&p.id),
        data,
        now,
    )
    .await?;
    crate::store::timeline::append_event(
        c,
        &s.id,
        EventKind::LinkIssued,
        Some(&p.id),
        json!({"role": p.role, "expires_at": link.expires_at}),
        now,
    )
    .await?;
    let mut delivery_id = None;
    if let (Some(mail), Some(to)) = (mail, p.email.as_deref()) {
        crate::store::timeline::append_event(
            c,
            &s.id,
            EventKind::InviteQueued,
            Some(&p.id),
            json!({"channel": "email"}),
            now,
        )
        .await?;
        let row =
            crate::store::outbox::enqueue(c, invite_delivery(&s.id, &p, to, mail), now).await?;
        delivery_id = Some(row.id);
    }
    Ok(Invited {
        participant: p,
        token,
        expires_at: link.expires_at,
        delivery_id,
    })
}

/// Revokes every live link of the given participants of a session; returns how many.
async fn revoke_links<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
    participant_ids: &[String],
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if participant_ids.is_empty() {
        return Ok(0);
    }
    let r = join_link::Entity::update_many()
        .col_expr(join_link::Column::RevokedAt, Expr::value(now))
        .filter(join_link::Column::SessionId.eq(session_id.to_owned()))
        .filter(join_link::Column::ParticipantId.is_in(participant_ids.iter().cloned()))
        .filter(join_link::Column::RevokedAt.is_null())
        .exec(c)
        .await?;
    Ok(r.rows_affected)
}

/// Removes a participant from a running session: sets `removed_at`, revokes their links
/// (they answer 410 `participant_removed`), records `participant.removed`. Removing a
/// removed participant returns it unchanged (`false`). The customer and the last agent
/// cannot be removed.
pub async fn remove(
    db: &DatabaseConnection,
    session_id: &str,
    participant_id: &str,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(participant::Model, bool), SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let v = running(&txn, session_id).await?;
    let p = find(&v, participant_id)?.clone();
    if p.removed_at.is_some() {
        return Ok((p, false));
    }
    match role_of(&p) {
        Role::Customer => return Err(SessionError::CannotRemoveCustomer),
        Role::Agent => {
            let agents = v
                .participants
                .iter()
                .filter(|x| x.role == Role::Agent.as_str() && x.removed_at.is_none())
                .count();
            if agents <= 1 {
                return Err(SessionError::LastAgent);
            }
        }
        Role::Expert | Role::Supervisor => {}
    }
    let mut active = p.clone().into_active_model();
    active.removed_at = Set(Some(now));
    let p = active.update(&txn).await?;
    let revoked = revoke_links(&txn, session_id, std::slice::from_ref(&p.id), now).await?;
    let mut data = about(&p);
    data["by"] = json!(by);
    crate::store::timeline::append_event(
        &txn,
        session_id,
        EventKind::ParticipantRemoved,
        Some(&p.id),
        data,
        now,
    )
    .await?;
    if revoked > 0 {
        crate::store::timeline::append_event(
            &txn,
            session_id,
            EventKind::LinkRevoked,
            Some(&p.id),
            json!({"role": p.role, "reason": "removed"}),
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok((p, true))
}

/// Sets a supervisor's mode and records `participant.mode_changed` (nothing is recorded
/// when the mode does not change). Used by the REST API and by signaling.
pub async fn set_mode(
    db: &DatabaseConnection,
    session_id: &str,
    participant_id: &str,
    mode: Mode,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<participant::Model, SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let v = running(&txn, session_id).await?;
    let p = find(&v, participant_id)?.clone();
    if p.removed_at.is_some() {
        return Err(SessionError::ParticipantRemoved);
    }
    if role_of(&p) != Role::Supervisor {
        return Err(SessionError::ModeNotAllowed);
    }
    if p.mode.as_deref() == Some(mode.as_str()) {
        return Ok(p);
    }
    let from = p.mode.clone();
    let mut active = p.into_active_model();
    active.mode = Set(Some(mode.as_str().to_owned()));
    let p = active.update(&txn).await?;
    let mut data = about(&p);
    data["from"] = json!(from);
    data["by"] = json!(by);
    crate::store::timeline::append_event(
        &txn,
        session_id,
        EventKind::ParticipantModeChanged,
        Some(&p.id),
        data,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(p)
}

/// The session's agent is `agent_id`, or an agent participant (not removed) has that id.
fn agent_in_session(v: &SessionView, agent_id: &str) -> bool {
    v.session.agent_id == agent_id
        || v.participants.iter().any(|p| {
            p.role == Role::Agent.as_str()
                && p.removed_at.is_none()
                && p.external_id.as_deref() == Some(agent_id)
        })
}

fn agent_json(id: &str, name: &str) -> serde_json::Value {
    json!({"id": id, "name": name})
}

/// Starts a transfer to another agent: adds them as an agent participant with a link and
/// records `participant.invited`, `link.issued` and `session.transfer_started`. An agent
/// already in the session (the session's agent, or an agent participant with this id) is
/// refused with [`SessionError::SameAgent`].
#[allow(clippy::too_many_arguments)]
pub async fn start_transfer(
    db: &DatabaseConnection,
    key: &TokenKey,
    session_id: &str,
    agent_id: &str,
    agent_name: &str,
    by: Option<&str>,
    max_participants: u32,
    now: DateTime<Utc>,
) -> Result<Invited, SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let v = running(&txn, session_id).await?;
    let s = &v.session;
    if agent_in_session(&v, agent_id) {
        return Err(SessionError::SameAgent);
    }
    let invite = NewInvite {
        role: Role::Agent,
        name: agent_name.to_owned(),
        email: None,
        mode: None,
        agent_id: Some(agent_id.to_owned()),
    };
    let invited = add(&txn, key, &v, &invite, None, by, max_participants, now).await?;
    crate::store::timeline::append_event(
        &txn,
        session_id,
        EventKind::SessionTransferStarted,
        Some(&invited.participant.id),
        json!({
            "agent": agent_json(agent_id, agent_name),
            "from_agent": agent_json(&s.agent_id, &s.agent_name),
            "by": by,
        }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(invited)
}

/// Completes a transfer (called by the room hub once the new agent has joined): revokes
/// the links of the old agents, makes the new agent the session's agent (`agent_id`,
/// `agent_name`) and records `session.transferred`. Returns the updated session.
pub async fn complete_transfer(
    db: &DatabaseConnection,
    session_id: &str,
    new_agent_participant_id: &str,
    old_agent_participant_ids: &[String],
    now: DateTime<Utc>,
) -> Result<session::Model, SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let v = running(&txn, session_id).await?;
    let new = find(&v, new_agent_participant_id)?.clone();
    if role_of(&new) != Role::Agent {
        return Err(SessionError::NotAnAgent);
    }
    if new.removed_at.is_some() {
        return Err(SessionError::ParticipantRemoved);
    }
    let old: Vec<String> = v
        .participants
        .iter()
        .filter(|p| {
            p.id != new.id
                && p.role == Role::Agent.as_str()
                && old_agent_participant_ids.contains(&p.id)
        })
        .map(|p| p.id.clone())
        .collect();
    revoke_links(&txn, session_id, &old, now).await?;
    for id in &old {
        crate::store::timeline::append_event(
            &txn,
            session_id,
            EventKind::LinkRevoked,
            Some(id),
            json!({"role": Role::Agent.as_str(), "reason": "transferred"}),
            now,
        )
        .await?;
    }
    let s = v.session.clone();
    let new_agent_id = new
        .external_id
        .clone()
        .unwrap_or_else(|| s.agent_id.clone());
    let mut active = s.clone().into_active_model();
    active.agent_id = Set(new_agent_id.clone());
    active.agent_name = Set(new.display_name.clone());
    active.updated_at = Set(now);
    let updated = active.update(&txn).await?;
    crate::store::timeline::append_event(
        &txn,
        session_id,
        EventKind::SessionTransferred,
        Some(&new.id),
        json!({
            "agent": agent_json(&new_agent_id, &new.display_name),
            "from_agent": agent_json(&s.agent_id, &s.agent_name),
            "revoked": old,
        }),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(updated)
}

/// Records an event the signaling room produced (`participant.declined` with its reason,
/// `participant.waiting`, `participant.admitted`, `participant.denied`, …) through the
/// timeline and webhook path. For a participant's event, their `role`, `display_name`
/// and `mode` are added to `data` unless it carries them. Returns the event's id.
pub async fn record_event(
    db: &DatabaseConnection,
    session_id: &str,
    kind: EventKind,
    participant_id: Option<&str>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<i64, SessionError> {
    let txn = crate::store::begin_write(db).await?;
    if session::Entity::find_by_id(session_id.to_owned())
        .one(&txn)
        .await?
        .is_none()
    {
        return Err(SessionError::SessionNotFound);
    }
    let mut data = match data {
        serde_json::Value::Object(m) => serde_json::Value::Object(m),
        serde_json::Value::Null => json!({}),
        other => json!({ "value": other }),
    };
    if let Some(pid) = participant_id {
        let p = participant::Entity::find_by_id(pid.to_owned())
            .filter(participant::Column::SessionId.eq(session_id.to_owned()))
            .one(&txn)
            .await?
            .ok_or(SessionError::ParticipantNotFound)?;
        if let (Some(obj), serde_json::Value::Object(extra)) = (data.as_object_mut(), about(&p)) {
            for (k, v) in extra {
                obj.entry(k).or_insert(v);
            }
        }
    }
    let id =
        crate::store::timeline::append_event(&txn, session_id, kind, participant_id, data, now)
            .await?;
    txn.commit().await?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(role: Role, removed: bool) -> participant::Model {
        let mut p = crate::store::links::new_participant("s", role, "X", Utc::now());
        if removed {
            p.removed_at = Some(Utc::now());
        }
        p
    }

    #[test]
    fn removed_participants_do_not_count() {
        let all = [
            p(Role::Agent, false),
            p(Role::Customer, false),
            p(Role::Expert, true),
            p(Role::Supervisor, false),
        ];
        assert_eq!(counted(&all), 3);
    }

    #[test]
    fn invitation_mail_names_participant_and_inviter() {
        let x = p(Role::Expert, false);
        let d = invite_delivery(
            "s",
            &x,
            "kim@example.org",
            &InviteMail {
                locale: None,
                invited_by: "Ana".into(),
            },
        );
        assert_eq!(d.payload["participant_id"], x.id.as_str());
        assert_eq!(d.payload["invited_by"], "Ana");
        assert_eq!(d.payload["to"], "kim@example.org");
    }
}
