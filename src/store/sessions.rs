//! Sessions in the database: the session with its participants and links as one view,
//! reads, and the lifecycle (end, link rotation, presence, expiry). Every state change and
//! its timeline events are written in one transaction through [`super::timeline`].

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde_json::json;

use crate::domain::EventKind;
use crate::domain::fields::Email;
use crate::domain::session::{Input, Machine, MachineError, Role, Status};
use crate::domain::tokens::TokenKey;
use crate::store::entities::session;
use crate::store::entities::{join_link, participant};
use crate::store::links as participants;

pub use super::error::SessionError;
use super::timeline::append_event;

/// A session with its participants and their live links.
#[derive(Debug, Clone)]
pub struct SessionView {
    pub session: session::Model,
    pub participants: Vec<participant::Model>,
    pub links: Vec<join_link::Model>,
}

impl SessionView {
    pub fn status(&self) -> Status {
        self.session.status.parse().unwrap_or(Status::Ended)
    }

    /// The URL of a role's live link (`{public_url}/j/{token}`), if the session has not ended.
    pub fn join_url(&self, key: &TokenKey, public_url: &str, role: Role) -> Option<String> {
        self.link(role)
            .and_then(|l| participants::token_for(key, l))
            .map(|t| format!("{public_url}/j/{t}"))
    }

    /// The participant a role's URL belongs to: the customer, or the session's agent (the
    /// agent participant with the session's `agent_id`, else the first agent not removed).
    pub fn owner(&self, role: Role) -> Option<&participant::Model> {
        let mut of_role = self
            .participants
            .iter()
            .filter(|p| p.role == role.as_str() && p.removed_at.is_none());
        match role {
            Role::Agent => of_role
                .clone()
                .find(|p| p.external_id.as_deref() == Some(self.session.agent_id.as_str()))
                .or_else(|| of_role.next()),
            _ => of_role.next(),
        }
    }

    /// The live (unrevoked) link of a role's owner (see [`SessionView::owner`]), if the
    /// session has not ended.
    pub fn link(&self, role: Role) -> Option<&join_link::Model> {
        self.participant_link(&self.owner(role)?.id)
    }

    /// The live (unrevoked) link of a participant, if the session has not ended and the
    /// participant was not removed.
    pub fn participant_link(&self, participant_id: &str) -> Option<&join_link::Model> {
        if self.status() == Status::Ended {
            return None;
        }
        let removed = self
            .participants
            .iter()
            .any(|p| p.id == participant_id && p.removed_at.is_some());
        if removed {
            return None;
        }
        self.links
            .iter()
            .filter(|l| l.participant_id == participant_id && l.revoked_at.is_none())
            .max_by_key(|l| l.created_at)
    }

    /// The URL of a participant's live link.
    pub fn participant_url(
        &self,
        key: &TokenKey,
        public_url: &str,
        participant_id: &str,
    ) -> Option<String> {
        self.participant_link(participant_id)
            .and_then(|l| participants::token_for(key, l))
            .map(|t| format!("{public_url}/j/{t}"))
    }
}

pub const DEFAULT_CUSTOMER_NAME: &str = "Customer";

pub(super) async fn load_view<C: ConnectionTrait>(
    c: &C,
    s: session::Model,
) -> Result<SessionView, DbErr> {
    let participants = participant::Entity::find()
        .filter(participant::Column::SessionId.eq(s.id.clone()))
        .order_by_asc(participant::Column::CreatedAt)
        .all(c)
        .await?;
    let links = join_link::Entity::find()
        .filter(join_link::Column::SessionId.eq(s.id.clone()))
        .all(c)
        .await?;
    Ok(SessionView {
        session: s,
        participants,
        links,
    })
}

pub async fn get<C: ConnectionTrait>(c: &C, id: &str) -> Result<Option<SessionView>, DbErr> {
    match session::Entity::find_by_id(id.to_owned()).one(c).await? {
        Some(s) => Ok(Some(load_view(c, s).await?)),
        None => Ok(None),
    }
}

/// Filters for listing sessions, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub conversation_id: Option<String>,
    pub platform: Option<String>,
    pub status: Option<Status>,
    /// Return sessions older than this id (the previous page's last id).
    pub before_id: Option<String>,
    pub limit: u64,
}

/// One page; `more` tells whether another page follows.
pub async fn list(
    db: &DatabaseConnection,
    q: &ListQuery,
) -> Result<(Vec<SessionView>, bool), DbErr> {
    let mut find = session::Entity::find();
    if let Some(c) = &q.conversation_id {
        find = find.filter(session::Column::ConversationId.eq(c.clone()));
    }
    if let Some(p) = &q.platform {
        find = find.filter(session::Column::ConversationPlatform.eq(p.clone()));
    }
    if let Some(s) = q.status {
        find = find.filter(session::Column::Status.eq(s.as_str()));
    }
    if let Some(b) = &q.before_id {
        find = find.filter(session::Column::Id.lt(b.clone()));
    }
    let mut rows = find
        .order_by_desc(session::Column::Id)
        .limit(q.limit + 1)
        .all(db)
        .await?;
    let more = rows.len() as u64 > q.limit;
    rows.truncate(q.limit as usize);
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(load_view(db, r).await?);
    }
    Ok((out, more))
}

fn machine_of(s: &session::Model, participants: &[participant::Model]) -> Machine {
    let mut present = [0u32; 4];
    for (i, role) in Role::ALL.into_iter().enumerate() {
        present[i] = participants
            .iter()
            .filter(|p| p.role == role.as_str() && p.present)
            .count() as u32;
    }
    Machine {
        status: s.status.parse().unwrap_or(Status::Ended),
        present,
        expires_at: s.expires_at,
    }
}

async fn save_step<C: ConnectionTrait>(
    c: &C,
    s: &session::Model,
    to: Status,
    end_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut active: session::ActiveModel = s.clone().into();
    active.status = Set(to.as_str().to_owned());
    active.updated_at = Set(now);
    if to == Status::Ended {
        active.ended_at = Set(Some(now));
        active.end_reason = Set(end_reason.map(str::to_owned));
    }
    active.update(c).await?;
    Ok(())
}

/// Ends a session. Returns its view and whether this call ended it (`false`: it had ended
/// already, so callers can answer idempotently).
pub async fn end(
    db: &DatabaseConnection,
    id: &str,
    reason: &str,
    by: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(SessionView, bool), SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let Some(view) = get(&txn, id).await? else {
        return Err(SessionError::SessionNotFound);
    };
    let mut m = machine_of(&view.session, &view.participants);
    match m.apply(Input::End(reason.to_owned()), now) {
        Err(MachineError::Ended) => {
            drop(txn);
            return Ok((view, false));
        }
        Ok(_) => {}
    }
    save_step(&txn, &view.session, Status::Ended, Some(reason), now).await?;
    participant::Entity::update_many()
        .col_expr(participant::Column::Present, Expr::value(false))
        .filter(participant::Column::SessionId.eq(id.to_owned()))
        .filter(participant::Column::Present.eq(true))
        .col_expr(participant::Column::LeftAt, Expr::value(now))
        .exec(&txn)
        .await?;
    let duration = (now - view.session.created_at).num_seconds();
    append_event(
        &txn,
        id,
        EventKind::SessionEnded,
        by,
        json!({"reason": reason, "duration_secs": duration, "from_status": view.session.status}),
        now,
    )
    .await?;
    let fresh = get(&txn, id).await?.ok_or(SessionError::SessionNotFound)?;
    txn.commit().await?;
    Ok((fresh, true))
}

/// Revokes the customer's live link and issues a new one. Refused when the session has
/// ended, or has expired (the sweeper has not ended it yet: a new link would be dead on
/// arrival).
pub async fn rotate_customer_link(
    db: &DatabaseConnection,
    key: &TokenKey,
    id: &str,
    now: DateTime<Utc>,
) -> Result<SessionView, SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let Some(view) = get(&txn, id).await? else {
        return Err(SessionError::SessionNotFound);
    };
    if view.status() == Status::Ended {
        return Err(SessionError::SessionEnded);
    }
    if view.session.expires_at <= now {
        return Err(SessionError::SessionExpired);
    }
    let Some(customer) = view
        .participants
        .iter()
        .find(|p| p.role == Role::Customer.as_str())
        .cloned()
    else {
        return Err(SessionError::SessionEnded);
    };
    join_link::Entity::update_many()
        .col_expr(join_link::Column::RevokedAt, Expr::value(now))
        .filter(join_link::Column::ParticipantId.eq(customer.id.clone()))
        .filter(join_link::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    append_event(
        &txn,
        id,
        EventKind::LinkRevoked,
        Some(&customer.id),
        json!({"role": "customer"}),
        now,
    )
    .await?;
    participants::issue_link(&txn, key, &customer, view.session.expires_at, now).await?;
    append_event(
        &txn,
        id,
        EventKind::LinkIssued,
        Some(&customer.id),
        json!({"role": "customer", "expires_at": view.session.expires_at}),
        now,
    )
    .await?;
    let fresh = get(&txn, id).await?.ok_or(SessionError::SessionNotFound)?;
    txn.commit().await?;
    Ok(fresh)
}

/// Queues an invite for a session in one transaction: a timeline event and the outbox row.
pub async fn queue_email_invite(
    db: &DatabaseConnection,
    session_id: &str,
    to: &Email,
    locale: Option<&str>,
    now: DateTime<Utc>,
) -> Result<crate::store::outbox::delivery::Model, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    append_event(
        &txn,
        session_id,
        crate::domain::EventKind::InviteQueued,
        None,
        json!({"channel": "email"}),
        now,
    )
    .await?;
    let row = crate::store::outbox::enqueue(
        &txn,
        crate::store::outbox::NewDelivery {
            kind: crate::store::outbox::Kind::Email,
            event_type: None,
            session_id: Some(session_id.to_owned()),
            integration_id: None,
            ordering_key: format!("{session_id}/mail"),
            payload: json!({"to": to.as_str(), "locale": locale}),
        },
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(row)
}

/// Presence changes reported by signaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Joined,
    Left,
    Reconnecting,
}

/// Records a participant joining, leaving or reconnecting and drives the session state.
/// Returns the new status, or `Err(Ended)` if the session had ended.
pub async fn record_presence(
    db: &DatabaseConnection,
    session_id: &str,
    participant_id: &str,
    presence: Presence,
    now: DateTime<Utc>,
) -> Result<Result<Status, MachineError>, DbErr> {
    let txn = crate::store::begin_write(db).await?;
    let Some(view) = get(&txn, session_id).await? else {
        return Ok(Err(MachineError::Ended));
    };
    let Some(p) = view
        .participants
        .iter()
        .find(|p| p.id == participant_id)
        .cloned()
    else {
        return Ok(Err(MachineError::Ended));
    };
    let role: Role = p.role.parse().unwrap_or(Role::Customer);
    let mut m = machine_of(&view.session, &view.participants);
    let (input, kind) = match presence {
        Presence::Joined => (Some(Input::Joined(role)), EventKind::ParticipantJoined),
        Presence::Left => (Some(Input::Left(role)), EventKind::ParticipantLeft),
        Presence::Reconnecting => (None, EventKind::ParticipantReconnecting),
    };
    let step = match input {
        Some(i) => match m.apply(i, now) {
            Ok(s) => Some(s),
            Err(e) => return Ok(Err(e)),
        },
        None if view.status() == Status::Ended => return Ok(Err(MachineError::Ended)),
        None => None,
    };
    let mut active: participant::ActiveModel = p.clone().into();
    match presence {
        Presence::Joined => {
            active.present = Set(true);
            active.last_joined_at = Set(Some(now));
            if p.first_joined_at.is_none() {
                active.first_joined_at = Set(Some(now));
            }
        }
        Presence::Left => {
            active.present = Set(false);
            active.left_at = Set(Some(now));
        }
        Presence::Reconnecting => {}
    }
    active.update(&txn).await?;
    if let Some(s) = &step
        && s.changed()
    {
        save_step(&txn, &view.session, s.to, None, now).await?;
    }
    append_event(
        &txn,
        session_id,
        kind,
        Some(participant_id),
        json!({"role": role.as_str(), "display_name": p.display_name}),
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(step.map(|s| s.to).unwrap_or(m.status)))
}

/// Ends every session that has expired with nobody in it. Returns how many ended.
pub async fn sweep_expired(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    Ok(sweep_expired_ids(db, now).await?.len() as u64)
}

/// Ends expired sessions (up to 500 a call) and returns their ids.
pub async fn sweep_expired_ids(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
) -> Result<Vec<String>, DbErr> {
    let candidates = session::Entity::find()
        .filter(session::Column::Status.ne(Status::Ended.as_str()))
        .filter(session::Column::ExpiresAt.lte(now))
        .limit(500)
        .all(db)
        .await?;
    let mut ended = Vec::new();
    for s in candidates {
        let txn = crate::store::begin_write(db).await?;
        let Some(view) = get(&txn, &s.id).await? else {
            continue;
        };
        let mut m = machine_of(&view.session, &view.participants);
        let Ok(step) = m.apply(Input::Tick, now) else {
            continue;
        };
        if step.to == Status::Ended {
            let reason = step.end_reason.unwrap_or_default();
            save_step(&txn, &view.session, Status::Ended, Some(&reason), now).await?;
            let duration = (now - view.session.created_at).num_seconds();
            append_event(
                &txn,
                &s.id,
                EventKind::SessionEnded,
                None,
                json!({"reason": reason, "duration_secs": duration, "from_status": view.session.status}),
                now,
            )
            .await?;
            txn.commit().await?;
            ended.push(s.id.clone());
        }
    }
    Ok(ended)
}

/// Counts sessions by status (for metrics).
pub async fn count_by_status(db: &DatabaseConnection) -> Result<Vec<(String, i64)>, DbErr> {
    session::Entity::find()
        .select_only()
        .column(session::Column::Status)
        .column_as(session::Column::Id.count(), "n")
        .group_by(session::Column::Status)
        .into_tuple::<(String, i64)>()
        .all(db)
        .await
}
