//! REST: `POST /api/v1/join/{token}/connect` exchanges a join link for a connection
//! credential, the ICE servers and what the page needs to show.

use chrono::Utc;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};
use sea_orm::EntityTrait;

use crate::domain::session::{Role, Status};
use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::relay::ice::IceServer;
use crate::signaling::protocol::CloseReason;
use crate::store::entities::session;
use crate::store::entities::{join_link, participant};
use crate::store::links::{self as participants, LinkError};

#[derive(Tags)]
pub enum JoinTags {
    /// What the join page uses to enter a call.
    Join,
}

pub struct JoinApi;

#[derive(Debug, Clone, Object)]
pub struct ConnectParticipant {
    pub id: String,
    /// `agent`, `customer`, `expert` or `supervisor`.
    pub role: String,
    /// A supervisor's mode (`listen`, `whisper`, `barge`); null for other roles.
    pub mode: Option<String>,
    pub display_name: String,
}

#[derive(Debug, Clone, Object)]
pub struct ConnectSession {
    pub id: String,
    pub status: String,
    /// Name of the other side (the agent's, or the customer's if known).
    #[oai(nullable)]
    pub peer_name: Option<String>,
    /// BCP 47 tag chosen for the customer, if any.
    #[oai(nullable)]
    pub customer_locale: Option<String>,
    /// Customers wait in a lobby until an agent admits them.
    pub lobby: bool,
}

/// Everything a page needs to open the signaling socket.
#[derive(Debug, Clone, Object)]
pub struct Connect {
    /// Send as `credential` in the first (`join`) WebSocket message. Single purpose,
    /// short-lived; never put it in a URL.
    pub credential: String,
    /// Seconds the credential stays valid.
    pub expires_in: u64,
    /// Path of the signaling WebSocket.
    pub ws_path: String,
    /// Signaling protocol version (`v` of the `join` message).
    pub protocol: u32,
    /// For `RTCConfiguration.iceServers`, with TURN REST credentials.
    pub ice_servers: Vec<IceServer>,
    /// For `RTCConfiguration.iceTransportPolicy`: `all` or `relay`.
    pub ice_transport_policy: String,
    /// Seconds a dropped participant has to come back.
    pub grace_secs: u64,
    pub participant: ConnectParticipant,
    pub session: ConnectSession,
}

pub(crate) fn link_error(e: LinkError) -> ApiError {
    match e {
        LinkError::Invalid => ApiError::not_found("link_invalid", "this link is not valid"),
        LinkError::Expired => ApiError::gone("link_expired", "this link has expired"),
        LinkError::Revoked => ApiError::gone("link_revoked", "this link has been replaced"),
        LinkError::Ended => ApiError::gone("session_ended", "this call has ended"),
        LinkError::Removed => {
            ApiError::gone("participant_removed", "you were removed from this call")
        }
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "JoinTags::Join")]
impl JoinApi {
    /// Connect with a join link
    ///
    /// Exchanges the token of a join link for a connection credential (valid about a
    /// minute) and the participant's ICE servers. Pages call this before every
    /// (re)connection of the signaling WebSocket.
    #[oai(
        path = "/join/:token/connect",
        method = "post",
        operation_id = "connectJoinLink"
    )]
    async fn connect(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
    ) -> Result<Json<Connect>, ApiError> {
        let now = Utc::now();
        let r = participants::resolve(&state.db, &state.keys.join, &token.0, now)
            .await?
            .map_err(link_error)?;
        let credential = credential_for(&state, &r.link.id, now.timestamp())
            .ok_or_else(|| ApiError::not_found("link_invalid", "this link is not valid"))?;
        let now_unix = u64::try_from(now.timestamp()).unwrap_or(0);
        let relay = state.ice.relay_only(r.session.relay_only);
        let peer_name = match r.role {
            Role::Agent => r.session.customer_name.clone(),
            Role::Customer | Role::Expert | Role::Supervisor => Some(r.session.agent_name.clone()),
        };
        Ok(Json(Connect {
            credential,
            expires_in: state.config.signaling.credential_ttl_secs,
            ws_path: "/api/v1/ws".to_owned(),
            protocol: crate::signaling::protocol::PROTOCOL_VERSION,
            ice_servers: state.ice.servers_for(&r.participant.id, now_unix),
            ice_transport_policy: if relay { "relay" } else { "all" }.to_owned(),
            grace_secs: state.config.signaling.grace_secs,
            participant: ConnectParticipant {
                id: r.participant.id.clone(),
                role: r.role.as_str().to_owned(),
                mode: r.participant.mode.clone(),
                display_name: r.participant.display_name.clone(),
            },
            session: ConnectSession {
                id: r.session.id.clone(),
                status: r.session.status.clone(),
                peer_name,
                customer_locale: r.session.customer_locale.clone(),
                lobby: r.session.lobby,
            },
        }))
    }
}

// Connection credentials: sealed per link, re-checked when the socket joins.

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
    /// The session's own media mode, if it has one.
    pub media_mode: Option<crate::media::MediaMode>,
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
        media_mode: session
            .media_mode
            .as_deref()
            .and_then(crate::media::MediaMode::parse),
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
