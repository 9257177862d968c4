//! `GET /api/v1/ws`: upgrade, authenticate with a connection credential (first message),
//! then pump messages between the socket and its room with size and rate limits and pings.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use poem::web::Data;
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::{IntoResponse, handler};
use tracing::Instrument;

use super::connect::{Authorized, authorize};
use crate::http::state::AppState;
use crate::signaling::hub::ToSocket;
use crate::signaling::protocol::{self, ClientMsg, CloseReason, PROTOCOL_VERSION, RateLimiter};
use crate::signaling::room::Joiner;

/// How long a fresh socket may take to send its `join`.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);

#[handler]
pub async fn ws(ws: WebSocket, state: Data<&AppState>, req: &poem::Request) -> impl IntoResponse {
    let state = state.clone();
    // Kept with a recording consent given on this socket.
    let peer = Peer {
        ip: req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(poem::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    };
    // The transport refuses frames far above the limit; between the limit and this, the
    // socket is closed with a clear code by `pump`.
    let hard = state.config.signaling.max_message_bytes * 4;
    let config = WebSocketConfig::default()
        .max_message_size(Some(hard))
        .max_frame_size(Some(hard));
    ws.config(config).on_upgrade(move |socket| async move {
        let conn = state.rooms.next_conn_id();
        let span = tracing::info_span!(
            "socket",
            conn,
            session_id = tracing::field::Empty,
            participant_id = tracing::field::Empty,
            role = tracing::field::Empty
        );
        run(socket, state, conn, peer).instrument(span).await;
    })
}

/// Whether a read failed because the peer's frame or message exceeds the transport's
/// limit. poem turns the WebSocket library's capacity error into an `io::Error` of kind
/// `Other` carrying its message; the socket is still writable, so the peer can be told
/// 1009 instead of seeing the connection drop.
fn is_too_large(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::Other && e.to_string().starts_with("Space limit exceeded")
}

type Sink = futures_util::stream::SplitSink<WebSocketStream, Message>;

async fn close(sink: &mut Sink, reason: CloseReason) {
    tracing::debug!(
        code = reason.code(),
        reason = reason.slug(),
        "closing socket"
    );
    let _ = sink
        .send(Message::Close(Some((
            CloseCode::from(reason.code()),
            reason.slug().to_owned(),
        ))))
        .await;
    let _ = sink.close().await;
}

/// Where a socket comes from.
struct Peer {
    ip: Option<String>,
    user_agent: Option<String>,
}

async fn run(socket: WebSocketStream, state: AppState, conn: u64, peer: Peer) {
    let (mut sink, mut stream) = socket.split();
    // 1. The first message must be a `join` carrying a valid credential.
    let first = tokio::select! {
        m = tokio::time::timeout(AUTH_TIMEOUT, stream.next()) => m,
        _ = state.rooms.stop.cancelled() => return close(&mut sink, CloseReason::GoingAway).await,
    };
    let text = match first {
        Err(_) => return close(&mut sink, CloseReason::Timeout).await,
        Ok(Some(Err(e))) if is_too_large(&e) => {
            return close(&mut sink, CloseReason::TooLarge).await;
        }
        Ok(None) | Ok(Some(Err(_))) => return,
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(_))) => return close(&mut sink, CloseReason::BadMessage).await,
    };
    if text.len() > state.config.signaling.max_message_bytes {
        return close(&mut sink, CloseReason::TooLarge).await;
    }
    let (credential, instance, name, media) = match protocol::parse(&text) {
        Ok(ClientMsg::Join { v, .. }) if v != PROTOCOL_VERSION => {
            return close(&mut sink, CloseReason::UnsupportedVersion).await;
        }
        Ok(ClientMsg::Join {
            credential,
            instance,
            name,
            media,
            ..
        }) => (credential, instance, name, media),
        Ok(_) => return close(&mut sink, CloseReason::Unauthorized).await,
        Err(reason) => return close(&mut sink, reason).await,
    };
    let who = match authorize(&state, &credential).await {
        Ok(who) => who,
        Err(reason) => return close(&mut sink, reason).await,
    };
    let Authorized {
        session_id,
        participant_id,
        role,
        mode,
        display_name,
        lobby,
        media_mode,
    } = who;
    let span = tracing::Span::current();
    span.record("session_id", session_id.as_str());
    span.record("participant_id", participant_id.as_str());
    span.record("role", role.as_str());
    let name = match role {
        crate::domain::session::Role::Customer => name
            .as_deref()
            .and_then(protocol::clean_name)
            .unwrap_or(display_name),
        _ => display_name,
    };
    let recording = match state
        .recording
        .join_info(&session_id, &participant_id, peer.ip, peer.user_agent)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "reading the session's recording failed");
            return close(&mut sink, CloseReason::Internal).await;
        }
    };
    // A session that may be recorded runs `auto` unless it chose its media mode.
    let media_mode =
        media_mode.or_else(|| recording.as_ref().map(|_| crate::media::MediaMode::Auto));
    let joiner = Joiner {
        conn,
        recording,
        participant_id,
        role,
        mode,
        lobby,
        name,
        instance,
        media: media.unwrap_or_default(),
        media_mode,
    };
    let pid = joiner.participant_id.clone();
    let mut outbox = state.signaling.join(&session_id, joiner).await;
    tracing::debug!("socket joined");
    // 2. Pump until either side closes.
    let reason = pump(
        &state,
        conn,
        &session_id,
        &pid,
        &mut sink,
        &mut stream,
        &mut outbox,
    )
    .await;
    state.signaling.disconnected(&session_id, conn).await;
    if let Some(reason) = reason {
        close(&mut sink, reason).await;
    }
    tracing::debug!("socket done");
}

/// Returns the reason to close with, or `None` when the peer already closed.
async fn pump(
    state: &AppState,
    conn: u64,
    session_id: &str,
    participant_id: &str,
    sink: &mut Sink,
    stream: &mut futures_util::stream::SplitStream<WebSocketStream>,
    outbox: &mut tokio::sync::mpsc::Receiver<ToSocket>,
) -> Option<CloseReason> {
    let cfg = &state.config.signaling;
    let started = Instant::now();
    let ms = || started.elapsed().as_millis() as u64;
    let mut limiter = RateLimiter::new(cfg.rate_per_sec, cfg.rate_burst, 0);
    let ping_every = Duration::from_secs(cfg.ping_secs);
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    // TURN credentials are short-lived: hand out fresh ones halfway through their life.
    let renew_every = (state.ice.ttl() / 2).max(Duration::from_secs(5));
    let mut renew =
        tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
    loop {
        tokio::select! {
            out = outbox.recv() => match out {
                Some(ToSocket::Text(t)) => {
                    if sink.send(Message::Text(t)).await.is_err() {
                        return None;
                    }
                }
                Some(ToSocket::Close(reason)) => return Some(reason),
                // The room went away without answering (it was closing): treat as a
                // server restart so the page reconnects.
                None => return Some(CloseReason::GoingAway),
            },
            msg = stream.next() => {
                last_heard = Instant::now();
                let text = match msg {
                    Some(Err(e)) if is_too_large(&e) => return Some(CloseReason::TooLarge),
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => return Some(CloseReason::BadMessage),
                    Some(Ok(Message::Text(t))) => t,
                };
                if text.len() > cfg.max_message_bytes {
                    return Some(CloseReason::TooLarge);
                }
                if !limiter.allow(ms()) {
                    tracing::info!("socket exceeded the message rate");
                    return Some(CloseReason::RateLimited);
                }
                let msg = match protocol::parse(&text) {
                    Ok(m) => m,
                    Err(reason) => return Some(reason),
                };
                if let Err(reason) = state.signaling.message(session_id, conn, msg, &text).await {
                    return Some(reason);
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 3 {
                    return Some(CloseReason::Timeout);
                }
                if sink.send(Message::Ping(Vec::new())).await.is_err() {
                    return None;
                }
            },
            _ = renew.tick() => {
                let now = chrono::Utc::now().timestamp();
                let msg = crate::signaling::protocol::ServerMsg::IceServers {
                    ice_servers: state
                        .ice
                        .servers_for(participant_id, u64::try_from(now).unwrap_or(0)),
                    expires_in: state.ice.ttl().as_secs(),
                };
                if sink.send(Message::Text(msg.to_json())).await.is_err() {
                    return None;
                }
            },
            _ = state.rooms.stop.cancelled() => return Some(CloseReason::GoingAway),
        }
    }
}
