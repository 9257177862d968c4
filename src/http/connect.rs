//! REST: `POST /api/v1/join/{token}/connect` exchanges a join link for a connection
//! credential, the ICE servers and what the page needs to show.

use chrono::Utc;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use crate::http::error::ApiError;
use crate::http::state::AppState;
use crate::ice::IceServer;
use crate::participants::{self, LinkError};
use crate::sessions::machine::Role;

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
        let credential = crate::signaling::credential_for(&state, &r.link.id, now.timestamp())
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
