//! Storage of recording control: a session's recording state (columns of `sessions`) and
//! the consent decisions (table `recording_consents`). Every change commits with its
//! timeline event (and that event's webhooks).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use serde_json::json;

use crate::domain::EventKind;
use crate::domain::recording::{Decision, RecState};
use crate::domain::session::Status;
use crate::store::entities::session;
use crate::store::error::SessionError;

pub mod consent {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "recording_consents")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub session_id: String,
        pub participant_id: String,
        /// `given`, `declined` or `withdrawn`.
        pub decision: String,
        pub at: ChronoDateTimeUtc,
        pub wording_version: String,
        pub ip: Option<String>,
        pub user_agent: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The session's stored recording state (`off` when never started).
pub fn state_of(s: &session::Model) -> RecState {
    s.recording_state
        .as_deref()
        .and_then(RecState::parse)
        .unwrap_or(RecState::Off)
}

/// What a transition decided: the new state and the event that records it.
pub struct Step {
    pub to: RecState,
    pub kind: EventKind,
    pub data: serde_json::Value,
}

/// Changes a session's recording state in one write transaction: `decide` sees the
/// current row (an ended session is refused before it is asked) and answers the step or
/// its own refusal. The event is appended in the same transaction.
pub async fn transition<E>(
    db: &DatabaseConnection,
    session_id: &str,
    participant_id: Option<&str>,
    now: DateTime<Utc>,
    decide: impl FnOnce(&session::Model) -> Result<Step, E>,
) -> Result<Result<session::Model, E>, SessionError> {
    let txn = crate::store::begin_write(db).await?;
    let s = session::Entity::find_by_id(session_id.to_owned())
        .one(&txn)
        .await?
        .ok_or(SessionError::SessionNotFound)?;
    if s.status == Status::Ended.as_str() {
        return Err(SessionError::SessionEnded);
    }
    let step = match decide(&s) {
        Ok(step) => step,
        Err(e) => return Ok(Err(e)),
    };
    let mut row = s.into_active_model();
    row.recording_state = Set(Some(step.to.as_str().to_owned()));
    row.updated_at = Set(now);
    let s = row.update(&txn).await?;
    crate::store::timeline::append_event(
        &txn,
        session_id,
        step.kind,
        participant_id,
        step.data,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(Ok(s))
}

/// A consent decision to store.
#[derive(Debug, Clone)]
pub struct NewConsent {
    pub session_id: String,
    pub participant_id: String,
    pub decision: Decision,
    pub wording_version: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub at: DateTime<Utc>,
}

/// Stores a consent decision and its `recording.consent` event in one transaction.
pub async fn record_consent(db: &DatabaseConnection, c: NewConsent) -> Result<(), SessionError> {
    let txn = crate::store::begin_write(db).await?;
    if session::Entity::find_by_id(c.session_id.clone())
        .one(&txn)
        .await?
        .is_none()
    {
        return Err(SessionError::SessionNotFound);
    }
    consent::ActiveModel {
        id: sea_orm::NotSet,
        session_id: Set(c.session_id.clone()),
        participant_id: Set(c.participant_id.clone()),
        decision: Set(c.decision.as_str().to_owned()),
        at: Set(c.at),
        wording_version: Set(c.wording_version.clone()),
        ip: Set(c.ip.clone()),
        user_agent: Set(c.user_agent.clone()),
    }
    .insert(&txn)
    .await?;
    let data = json!({
        "decision": c.decision.as_str(),
        "wording_version": c.wording_version,
        "ip": c.ip,
        "user_agent": c.user_agent,
    });
    crate::store::timeline::append_event(
        &txn,
        &c.session_id,
        EventKind::RecordingConsent,
        Some(&c.participant_id),
        data,
        c.at,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// Every consent decision of a session, oldest first.
pub async fn consents<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
) -> Result<Vec<consent::Model>, DbErr> {
    consent::Entity::find()
        .filter(consent::Column::SessionId.eq(session_id.to_owned()))
        .order_by_asc(consent::Column::Id)
        .all(c)
        .await
}

/// Each participant's latest decision in a session.
pub async fn latest_decisions<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
) -> Result<HashMap<String, Decision>, DbErr> {
    let mut out = HashMap::new();
    for row in consents(c, session_id).await? {
        if let Some(d) = Decision::parse(&row.decision) {
            out.insert(row.participant_id, d);
        }
    }
    Ok(out)
}

/// One participant's latest decision in a session, if any.
pub async fn latest_decision<C: ConnectionTrait>(
    c: &C,
    session_id: &str,
    participant_id: &str,
) -> Result<Option<Decision>, DbErr> {
    let row = consent::Entity::find()
        .filter(consent::Column::SessionId.eq(session_id.to_owned()))
        .filter(consent::Column::ParticipantId.eq(participant_id.to_owned()))
        .order_by_desc(consent::Column::Id)
        .one(c)
        .await?;
    Ok(row.and_then(|r| Decision::parse(&r.decision)))
}
