//! Signaling: a page exchanges its join link for a short-lived connection credential
//! (`POST /api/v1/join/{token}/connect`), then speaks the JSON protocol of
//! `docs/signaling.md` over `GET /api/v1/ws`. One task owns each room.

pub mod hub;
pub mod protocol;
pub mod room;

use chrono::Utc;
use sea_orm::EntityTrait;

use crate::http::state::AppState;
use crate::participants::entity::{join_link, participant};
use crate::sessions::entity::session;
use crate::sessions::machine::{Role, Status};
use protocol::CloseReason;

/// The participant a valid connection credential stands for.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub session_id: String,
    pub participant_id: String,
    pub role: Role,
    pub mode: Option<crate::domain::Mode>,
    pub display_name: String,
    /// The session keeps customers in a lobby.
    pub lobby: bool,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    hex::decode(s).ok()
}

/// Seals a connection credential for a join link (its 16-byte id), valid for `ttl_secs`.
pub fn credential_for(state: &AppState, link_id_hex: &str, now_unix: i64) -> Option<String> {
    let id = unhex(link_id_hex)?;
    let ttl = state.config.signaling.credential_ttl_secs as i64;
    Some(state.keys.connection.seal(&id, now_unix + ttl))
}

/// Opens a connection credential and re-checks its link, session and participant, so a
/// credential minted just before a revocation or an end does not get in.
pub async fn authorize(state: &AppState, credential: &str) -> Result<Authorized, CloseReason> {
    let now = Utc::now();
    let id = match state.keys.connection.open(credential, now.timestamp()) {
        Ok((id, _)) if id.len() == 16 => id,
        _ => return Err(CloseReason::Unauthorized),
    };
    let internal = |e: sea_orm::DbErr| {
        tracing::error!(error = %e, "credential lookup failed");
        CloseReason::Internal
    };
    let link = join_link::Entity::find_by_id(hex::encode(&id))
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or(CloseReason::Unauthorized)?;
    let session = session::Entity::find_by_id(link.session_id.clone())
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or(CloseReason::Unauthorized)?;
    if session.status == Status::Ended.as_str() {
        return Err(CloseReason::SessionEnded);
    }
    if link.revoked_at.is_some() {
        return Err(CloseReason::LinkRevoked);
    }
    if link.expires_at <= now {
        return Err(CloseReason::Unauthorized);
    }
    let p = participant::Entity::find_by_id(link.participant_id.clone())
        .one(&state.db)
        .await
        .map_err(internal)?
        .ok_or(CloseReason::Unauthorized)?;
    if p.removed_at.is_some() {
        return Err(CloseReason::Removed);
    }
    let role = link
        .role
        .parse::<Role>()
        .map_err(|_| CloseReason::Unauthorized)?;
    Ok(Authorized {
        session_id: session.id,
        participant_id: p.id,
        role,
        mode: p.mode.as_deref().and_then(|m| m.parse().ok()),
        display_name: p.display_name,
        lobby: session.lobby,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn hex_round_trip() {
        assert_eq!(
            super::unhex(&hex::encode([0, 15, 255])).unwrap(),
            [0, 15, 255]
        );
        assert!(super::unhex("zz").is_none());
        assert!(super::unhex("é1").is_none());
    }
}
