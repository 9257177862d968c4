//! The rooms hub: one task owns each room's [`RoomState`]; sockets send it messages.
//!
//! The registry maps a session id to the room task's inbox. Its mutex is only held to look
//! up or insert an entry, never across `.await`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::protocol::CloseReason;
use super::room::{ConnId, Input, Joiner, Output, RoomConfig, RoomState};
use crate::services::bus::RoomSignal;
use crate::services::bus::SessionBus;
use crate::store::sessions as repo;

/// What a room sends to one socket.
#[derive(Debug, Clone)]
pub enum ToSocket {
    Text(String),
    Close(CloseReason),
}

enum RoomCmd {
    Join(Joiner, mpsc::Sender<ToSocket>),
    Input(Input),
}

struct Entry {
    generation: u64,
    tx: mpsc::Sender<RoomCmd>,
}

#[derive(Default)]
struct Registry {
    rooms: Mutex<HashMap<String, Entry>>,
    next_id: AtomicU64,
}

/// What room tasks need from the rest of the application: explicit handles, not the
/// whole application state.
#[derive(Clone)]
pub struct RoomEnv {
    pub db: sea_orm::DatabaseConnection,
    pub config: RoomConfig,
    /// Told when a room ends its session (an agent's `end`): everything on the session
    /// bus but the rooms themselves, e.g. the TURN server's revocations.
    pub ended: Arc<dyn SessionBus>,
    /// The media engine for routed calls, when this node runs one.
    pub media: Option<crate::media::MediaEngine>,
    /// Recording control: commands from agents' pages, consent records, the tap.
    pub recording: Arc<crate::services::recording_control::Control>,
}

/// Handle to all live rooms. Cheap to clone.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Registry>,
    env: Arc<RoomEnv>,
    /// Cancelled when the application stops: sockets close with "going away".
    pub stop: CancellationToken,
}

/// Queue depth of a socket's outbox; a socket that falls this far behind is dropped.
const SOCKET_QUEUE: usize = 256;

impl Rooms {
    pub fn new(stop: CancellationToken, env: RoomEnv) -> Self {
        Self {
            inner: Arc::default(),
            env: Arc::new(env),
            stop,
        }
    }

    pub fn next_conn_id(&self) -> ConnId {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Number of rooms with a live task.
    pub fn len(&self) -> usize {
        self.inner.rooms.lock().map(|r| r.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn room(&self, session_id: &str) -> mpsc::Sender<RoomCmd> {
        let Ok(mut rooms) = self.inner.rooms.lock() else {
            // A poisoned registry cannot happen without a panic elsewhere; fail closed.
            let (tx, _) = mpsc::channel(1);
            return tx;
        };
        if let Some(e) = rooms.get(session_id)
            && !e.tx.is_closed()
        {
            return e.tx.clone();
        }
        let generation = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(256);
        rooms.insert(
            session_id.to_owned(),
            Entry {
                generation,
                tx: tx.clone(),
            },
        );
        let span = tracing::info_span!("room", session_id = %session_id);
        tokio::spawn(
            run_room(self.clone(), session_id.to_owned(), generation, rx).instrument(span),
        );
        tx
    }

    /// Puts a socket into its session's room. Returns its outbox, whose first message is
    /// the room's answer (`joined`, or a close).
    pub async fn join(&self, session_id: &str, j: Joiner) -> mpsc::Receiver<ToSocket> {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let mut cmd = RoomCmd::Join(j, tx);
        // A room that is shutting down refuses the message; the next attempt makes a new one.
        for _ in 0..3 {
            match self.room(session_id).send(cmd).await {
                Ok(()) => break,
                Err(mpsc::error::SendError(c)) => cmd = c,
            }
        }
        rx
    }

    /// Tells a room about something; a session without a live room needs nothing.
    pub async fn tell(&self, session_id: &str, input: Input) {
        let tx = self
            .inner
            .rooms
            .lock()
            .ok()
            .and_then(|r| r.get(session_id).map(|e| e.tx.clone()));
        if let Some(tx) = tx {
            let _ = tx.send(RoomCmd::Input(input)).await;
        }
    }

    /// Whether the session has a live room task here.
    pub fn contains(&self, session_id: &str) -> bool {
        self.inner
            .rooms
            .lock()
            .map(|r| r.get(session_id).is_some_and(|e| !e.tx.is_closed()))
            .unwrap_or(false)
    }

    /// Drops the session's room here without ending the session (its ownership moved to
    /// another node): the room task stops, its sockets close with "going away" and
    /// reconnect to the new owner.
    pub fn evict(&self, session_id: &str) {
        if let Ok(mut rooms) = self.inner.rooms.lock() {
            rooms.remove(session_id);
        }
    }

    fn forget(&self, session_id: &str, generation: u64) {
        if let Ok(mut rooms) = self.inner.rooms.lock()
            && rooms
                .get(session_id)
                .is_some_and(|e| e.generation == generation)
        {
            rooms.remove(session_id);
        }
    }
}

#[async_trait::async_trait]
impl crate::services::bus::SessionBus for Rooms {
    async fn publish(&self, session_id: &str, signal: RoomSignal) {
        self.tell(session_id, Input::Signal(signal)).await;
    }
}

async fn run_room(
    rooms: Rooms,
    session_id: String,
    generation: u64,
    mut rx: mpsc::Receiver<RoomCmd>,
) {
    let env = rooms.env.clone();
    let mut room = RoomState::with_config(env.config);
    room.set_call_id(&session_id);
    // The engine's offers for this call's participants come back into the room.
    let mut media_events = match &env.media {
        Some(m) => Some(m.subscribe(&session_id).await),
        None => None,
    };
    let mut sockets: HashMap<ConnId, mpsc::Sender<ToSocket>> = HashMap::new();
    // Presence is written in order by a helper task, so a slow database never delays
    // the signaling itself.
    let (presence, presence_rx) = mpsc::unbounded_channel();
    tokio::spawn(
        record_presence(env.db.clone(), session_id.clone(), presence_rx)
            .instrument(tracing::Span::current()),
    );
    // Chat messages are stored in order by a helper task too (relayed first).
    let (chats, chats_rx) = mpsc::unbounded_channel();
    tokio::spawn(store_chats(env.db.clone(), chats_rx).instrument(tracing::Span::current()));
    // Quality reports too, several per write when they pile up.
    let (quality, quality_rx) = mpsc::unbounded_channel();
    tokio::spawn(store_quality(env.db.clone(), quality_rx).instrument(tracing::Span::current()));
    // The engine's quality samples of this call: stored, and `quality.degraded` past the
    // configured threshold, by a helper task too.
    let server_quality = env.media.as_ref().map(|m| {
        let (tx, rx) = mpsc::unbounded_channel();
        let watch = crate::services::server_quality::watch(
            env.db.clone(),
            session_id.clone(),
            m.quality_policy(),
            rx,
        );
        tokio::spawn(watch.instrument(tracing::Span::current()));
        tx
    });
    let out = Out {
        env: &env,
        session_id: &session_id,
        presence: &presence,
        chats: &chats,
        quality: &quality,
        again: Default::default(),
    };
    tracing::debug!("room opened");
    loop {
        // The room sleeps until its next deadline (a grace period or a hand-over running
        // out), not on a fixed tick.
        let deadline = room.next_deadline();
        let wake = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        let input = tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(RoomCmd::Join(j, tx)) => {
                    sockets.insert(j.conn, tx);
                    Input::Join(j)
                }
                Some(RoomCmd::Input(i)) => i,
                None => break,
            },
            _ = wake => Input::Tick,
            Some(ev) = async {
                match media_events.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => match ev {
                crate::media::Event::Quality { participant, sample, .. } => {
                    if let (Some(tx), Some(who)) =
                        (&server_quality, room.quality_label(&participant))
                    {
                        let _ = tx.send(crate::services::server_quality::Reading {
                            participant_id: participant,
                            who,
                            sample,
                        });
                    }
                    continue;
                }
                ev => Input::Engine(ev),
            },
            // Sockets close with "going away" on shutdown; the room need not wait out
            // their grace periods.
            _ = rooms.stop.cancelled() => break,
        };
        let outputs = room.handle(input, Instant::now());
        let mut dropped = Vec::new();
        let mut refused = Vec::new();
        for o in outputs {
            refused.extend(out.apply(&mut sockets, &mut dropped, o).await);
        }
        // The engine's refusals go back into the room (it may fall back to peer to peer).
        for input in refused {
            let outs = room.handle(input, Instant::now());
            for o in outs {
                out.apply(&mut sockets, &mut dropped, o).await;
            }
        }
        for conn in dropped {
            let outs = room.handle(Input::Disconnected { conn }, Instant::now());
            for o in outs {
                let _ = out.apply(&mut sockets, &mut Vec::new(), o).await;
            }
        }
        // Outcomes the room must learn of (a recording command carried out here).
        for _ in 0..4 {
            let again = out.take_again();
            if again.is_empty() {
                break;
            }
            for input in again {
                for o in room.handle(input, Instant::now()) {
                    out.apply(&mut sockets, &mut Vec::new(), o).await;
                }
            }
        }
        if room.is_idle() {
            // Stop taking new work, then settle what is already queued.
            rx.close();
            rooms.forget(&session_id, generation);
            while let Ok(cmd) = rx.try_recv() {
                if let RoomCmd::Join(j, tx) = cmd {
                    // Too late for this room: the socket retries in a fresh one.
                    drop((j, tx));
                }
            }
            break;
        }
    }
    tracing::debug!("room closed");
}

type PresenceRecord = (String, repo::Presence, chrono::DateTime<chrono::Utc>);

async fn record_presence(
    db: sea_orm::DatabaseConnection,
    session_id: String,
    mut rx: mpsc::UnboundedReceiver<PresenceRecord>,
) {
    while let Some((participant_id, presence, at)) = rx.recv().await {
        let r = repo::record_presence(&db, &session_id, &participant_id, presence, at).await;
        if let Err(e) = r {
            tracing::error!(error = %e, participant_id = %participant_id, "recording presence failed");
        }
    }
}

async fn store_chats(
    db: sea_orm::DatabaseConnection,
    mut rx: mpsc::UnboundedReceiver<crate::store::chat::ChatMessage>,
) {
    while let Some(m) = rx.recv().await {
        if let Err(e) = crate::store::chat::insert(&db, m).await {
            tracing::error!(error = %e, "storing a chat message failed");
        }
    }
}

async fn store_quality(
    db: sea_orm::DatabaseConnection,
    mut rx: mpsc::UnboundedReceiver<crate::store::quality::NewSample>,
) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 64).await > 0 {
        if let Err(e) = crate::store::quality::insert(&db, std::mem::take(&mut batch)).await {
            tracing::error!(error = %e, "storing quality reports failed");
        }
    }
}

/// Carries out a room's outputs.
struct Out<'a> {
    env: &'a RoomEnv,
    session_id: &'a str,
    presence: &'a mpsc::UnboundedSender<PresenceRecord>,
    chats: &'a mpsc::UnboundedSender<crate::store::chat::ChatMessage>,
    quality: &'a mpsc::UnboundedSender<crate::store::quality::NewSample>,
    /// Inputs for the room produced while carrying out its outputs.
    again: std::sync::Mutex<Vec<Input>>,
}

impl Out<'_> {
    fn take_again(&self) -> Vec<Input> {
        self.again
            .lock()
            .map(|mut a| std::mem::take(&mut *a))
            .unwrap_or_default()
    }

    async fn apply(
        &self,
        sockets: &mut HashMap<ConnId, mpsc::Sender<ToSocket>>,
        dropped: &mut Vec<ConnId>,
        o: Output,
    ) -> Option<Input> {
        let (env, session_id) = (self.env, self.session_id);
        match o {
            Output::Media { conn, cmd } => {
                let env_media = env.media.as_ref()?;
                let joining = match &cmd {
                    crate::media::Command::Join { participant, .. } => Some(participant.clone()),
                    _ => None,
                };
                if let Err(e) = env_media.command(cmd).await {
                    tracing::warn!(error = %e, "the media engine refused a command");
                    let node_full = matches!(e, crate::media::EngineError::NodeFull(_));
                    let message = match e {
                        crate::media::EngineError::NodeFull(_) => {
                            "this server routes as many participants as it can"
                        }
                        crate::media::EngineError::CallFull(_) => {
                            "a routed call holds at most 12 participants"
                        }
                        _ => "the media engine refused the request",
                    };
                    if let Some(conn) = conn
                        && let Some(tx) = sockets.get(&conn)
                    {
                        let msg = crate::signaling::protocol::ServerMsg::Error {
                            code: "media_unavailable",
                            message,
                        };
                        let _ = tx.try_send(ToSocket::Text(msg.to_json()));
                    }
                    return joining.map(|participant_id| Input::EngineRefused {
                        participant_id,
                        node_full,
                    });
                }
            }
            Output::Send { conn, msg } => {
                if let Some(tx) = sockets.get(&conn)
                    && tx.try_send(ToSocket::Text(msg.to_json())).is_err()
                {
                    sockets.remove(&conn);
                    dropped.push(conn);
                }
            }
            Output::Close { conn, reason } => {
                if let Some(tx) = sockets.remove(&conn) {
                    let _ = tx.try_send(ToSocket::Close(reason));
                }
            }
            Output::Presence {
                participant_id,
                presence,
            } => {
                let _ = self
                    .presence
                    .send((participant_id, presence, chrono::Utc::now()));
            }
            Output::EndSession { by, reason } => {
                match repo::end(&env.db, session_id, &reason, Some(&by), chrono::Utc::now()).await {
                    Ok((_, true)) => {
                        let ended = crate::services::bus::RoomSignal::Ended { reason };
                        env.ended.publish(session_id, ended).await;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::error!(error = %e, "ending the session failed"),
                }
            }
            Output::Record {
                kind,
                participant_id,
                data,
            } => {
                let r = crate::store::participants::record_event(
                    &env.db,
                    session_id,
                    kind,
                    Some(&participant_id),
                    data,
                    chrono::Utc::now(),
                )
                .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, kind = %kind, "recording an event failed");
                }
            }
            Output::SetMode {
                participant_id,
                mode,
            } => {
                let r = crate::store::participants::set_mode(
                    &env.db,
                    session_id,
                    &participant_id,
                    mode,
                    None,
                    chrono::Utc::now(),
                )
                .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "saving a supervisor's mode failed");
                }
            }
            Output::AccessEnded { participant_id } => {
                // Everything beyond the rooms (the TURN revocations); the room itself has
                // already taken the participant out.
                let signal = crate::services::bus::RoomSignal::Removed { participant_id };
                env.ended.publish(session_id, signal).await;
            }
            Output::Chat {
                to,
                from,
                name,
                role,
                text,
                internal,
            } => {
                let at = chrono::Utc::now();
                let id = uuid::Uuid::now_v7().to_string();
                let msg = crate::signaling::protocol::ServerMsg::Chat {
                    id: id.clone(),
                    from: from.clone(),
                    name: name.clone(),
                    role,
                    text: text.clone(),
                    at: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    internal,
                }
                .to_json();
                for conn in to {
                    if let Some(tx) = sockets.get(&conn)
                        && tx.try_send(ToSocket::Text(msg.clone())).is_err()
                    {
                        sockets.remove(&conn);
                        dropped.push(conn);
                    }
                }
                let _ = self.chats.send(crate::store::chat::ChatMessage {
                    id,
                    session_id: session_id.to_owned(),
                    participant_id: from,
                    role: role.to_owned(),
                    display_name: name,
                    text,
                    internal,
                    at,
                });
            }
            Output::Quality {
                participant_id,
                sample,
            } => {
                let _ = self.quality.send(crate::store::quality::NewSample {
                    session_id: session_id.to_owned(),
                    participant_id,
                    at: chrono::Utc::now(),
                    sample,
                });
            }
            Output::Tap { .. } | Output::Consent { .. } | Output::RecordingCommand { .. } => {
                if let Some(input) = super::recording_out::apply(env, session_id, sockets, o).await
                    && let Ok(mut a) = self.again.lock()
                {
                    a.push(input);
                }
            }
            Output::TransferComplete { to, from } => {
                let r = crate::store::participants::complete_transfer(
                    &env.db,
                    session_id,
                    &to,
                    &from,
                    chrono::Utc::now(),
                )
                .await;
                if let Err(e) = r {
                    tracing::error!(error = %e, "saving a transfer failed");
                }
            }
        }
        None
    }
}
