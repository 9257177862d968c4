//! The room owner's side of recording: carries out the room's recording outputs (the tap,
//! consent records, agents' commands) and answers what the room must learn back.

use std::collections::HashMap;

use tokio::sync::mpsc;

use super::hub::{RoomEnv, ToSocket};
use super::room::{ConnId, Input, Output};
use crate::domain::recording::Actor;
use crate::services::bus::{RecordingNote, RoomSignal};
use crate::signaling::protocol::ServerMsg;

/// Carries out one recording output; the input the room must handle next, if any.
pub(super) async fn apply(
    env: &RoomEnv,
    session_id: &str,
    sockets: &HashMap<ConnId, mpsc::Sender<ToSocket>>,
    o: Output,
) -> Option<Input> {
    let ctl = &env.recording;
    match o {
        Output::Tap { participant_id, on } => {
            ctl.tap.set(session_id, &participant_id, on).await;
            None
        }
        Output::Consent {
            participant_id,
            decision,
            ip,
            user_agent,
        } => {
            let r = ctl
                .record_consent(
                    session_id,
                    &participant_id,
                    decision,
                    ip,
                    user_agent,
                    chrono::Utc::now(),
                )
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, participant_id, "storing a consent decision failed");
            }
            None
        }
        Output::RecordingCommand { conn, by, action } => {
            let actor = if by.is_some() {
                Actor::Staff
            } else {
                Actor::Server
            };
            match ctl
                .command(session_id, action, actor, by.as_deref(), chrono::Utc::now())
                .await
            {
                Ok(status) => Some(Input::Signal(RoomSignal::Recording(RecordingNote {
                    state: status.state,
                }))),
                Err(e) => {
                    tracing::warn!(error = %e, action = action.as_str(), "recording command refused");
                    if let Some(conn) = conn
                        && let Some(tx) = sockets.get(&conn)
                    {
                        let msg = ServerMsg::Error {
                            code: e.code(),
                            message: e.static_message(),
                        };
                        let _ = tx.try_send(ToSocket::Text(msg.to_json()));
                    }
                    None
                }
            }
        }
        _ => None,
    }
}
