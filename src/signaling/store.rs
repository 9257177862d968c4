//! What the room hub persists besides presence: a supervisor's mode changed over
//! signaling, and a completed transfer.

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, Set,
};
use serde_json::json;

use crate::domain::{EventKind, Mode};
use crate::participants::entity::{join_link, participant};
use crate::sessions::entity::session;
use crate::sessions::repo;

/// Saves a supervisor's new mode and records `participant.mode_changed`.
pub async fn set_mode(
    db: &DatabaseConnection,
    session_id: &str,
    participant_id: &str,
    mode: Mode,
) -> Result<(), DbErr> {
    let now = Utc::now();
    let txn = crate::storage::begin_write(db).await?;
    let Some(p) = participant::Entity::find_by_id(participant_id.to_owned())
        .one(&txn)
        .await?
    else {
        return Ok(());
    };
    if p.session_id != session_id {
        return Ok(());
    }
    let mut a = p.into_active_model();
    a.mode = Set(Some(mode.as_str().to_owned()));
    a.update(&txn).await?;
    repo::append_event(
        &txn,
        session_id,
        EventKind::ParticipantModeChanged,
        Some(participant_id),
        json!({"mode": mode.as_str(), "via": "signaling"}),
        now,
    )
    .await?;
    txn.commit().await
}

/// The new agent `to` is in the call: the agents `from` lose their links, `to` becomes
/// the session's agent, and `session.transferred` is recorded.
pub async fn complete_transfer(
    db: &DatabaseConnection,
    session_id: &str,
    to: &str,
    from: &[String],
) -> Result<(), DbErr> {
    let now = Utc::now();
    let txn = crate::storage::begin_write(db).await?;
    let Some(new_agent) = participant::Entity::find_by_id(to.to_owned())
        .one(&txn)
        .await?
    else {
        return Ok(());
    };
    if !from.is_empty() {
        join_link::Entity::update_many()
            .col_expr(
                join_link::Column::RevokedAt,
                sea_orm::sea_query::Expr::value(Some(now)),
            )
            .filter(join_link::Column::SessionId.eq(session_id))
            .filter(join_link::Column::ParticipantId.is_in(from.iter().cloned()))
            .filter(join_link::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
    }
    if let Some(s) = session::Entity::find_by_id(session_id.to_owned())
        .one(&txn)
        .await?
    {
        let mut a = s.into_active_model();
        if let Some(id) = new_agent.external_id.clone() {
            a.agent_id = Set(id);
        }
        a.agent_name = Set(new_agent.display_name.clone());
        a.updated_at = Set(now);
        a.update(&txn).await?;
    }
    repo::append_event(
        &txn,
        session_id,
        EventKind::SessionTransferred,
        Some(to),
        json!({"to": {"participant_id": to, "agent_id": new_agent.external_id,
                      "display_name": new_agent.display_name},
               "from": from}),
        now,
    )
    .await?;
    txn.commit().await
}
