//! One call's signaling state, pure and sans-IO: inputs and `now` in, outputs out.
//!
//! A room holds any number of participants of any role (at most `max_visible` of them
//! visible at once: a mesh). Each page sees a roster computed for it: who it is told
//! about, what it sends to whom, and its politeness per pair (see `docs/signaling.md`).
//! A second socket of the same participant takes over from the first. A dropped socket
//! leaves the participant "reconnecting" for a grace period; only after it do they count
//! as gone. Customers of a session with a lobby wait there until an agent admits them;
//! no signaling reaches or leaves a participant in the lobby.

mod incall;
mod lifecycle;
pub mod recording;
pub use recording::{RecordingJoin, RecordingView};

use lifecycle::not_found;
mod routed;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::protocol::{
    ClientMsg, CloseReason, Entry, Media, PROTOCOL_VERSION, ServerMsg, Waiting, Who, clean_text,
};
use crate::domain::{EventKind, Mode, Role, Seat};
use crate::services::bus::RoomSignal;
use crate::store::sessions::Presence;

/// Identifies one socket, unique for the life of the process.
pub type ConnId = u64;

/// A socket that passed authentication and wants into the room.
#[derive(Debug, Clone)]
pub struct Joiner {
    pub conn: ConnId,
    pub participant_id: String,
    pub role: Role,
    pub mode: Option<Mode>,
    pub name: String,
    pub instance: String,
    pub media: Media,
    /// The session keeps customers in a lobby until an agent admits them.
    pub lobby: bool,
    /// The session's own media mode (`None`: the server's).
    pub media_mode: Option<crate::media::MediaMode>,
    /// The session's recording (`None`: not recorded).
    pub recording: Option<RecordingJoin>,
}

#[derive(Debug, Clone)]
pub enum Input {
    Join(Joiner),
    /// A parsed message other than `join` from a socket.
    Message {
        conn: ConnId,
        msg: ClientMsg,
    },
    /// The socket closed or failed.
    Disconnected {
        conn: ConnId,
    },
    /// Time passes (grace periods and hand-overs run out).
    Tick,
    /// Something happened to the session outside signaling.
    Signal(RoomSignal),
    /// The media engine has something for a routed participant (an offer to relay).
    Engine(crate::media::Event),
    /// The media engine refused to take a participant (`node_full`: this node routes its
    /// maximum); the call falls back to peer to peer where it can.
    EngineRefused {
        participant_id: String,
        node_full: bool,
    },
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Send {
        conn: ConnId,
        msg: ServerMsg,
    },
    Close {
        conn: ConnId,
        reason: CloseReason,
    },
    Presence {
        participant_id: String,
        presence: Presence,
    },
    /// Persist the end of the session (by this participant) before anything else.
    EndSession {
        by: String,
        reason: String,
    },
    /// Append an event to the session's timeline (and its webhooks).
    Record {
        kind: EventKind,
        participant_id: String,
        data: serde_json::Value,
    },
    /// Persist a supervisor's new mode (changed over signaling).
    SetMode {
        participant_id: String,
        mode: Mode,
    },
    /// A participant's access ended inside the room (an agent handed the call over): their
    /// TURN credentials must stop working too.
    AccessEnded {
        participant_id: String,
    },
    /// Persist a completed transfer: `from` lose their links, `to` owns the session.
    TransferComplete {
        to: String,
        from: Vec<String>,
    },
    /// Store a participant's quality report.
    Quality {
        participant_id: String,
        sample: crate::domain::quality::Compact,
    },
    /// Tell the media engine (a routed call); a refusal goes to `conn` as an `error`.
    Media {
        conn: Option<ConnId>,
        cmd: crate::media::Command,
    },
    /// Switch the recording of a participant's media on or off (the recording tap).
    Tap {
        participant_id: String,
        on: bool,
    },
    /// Store a consent decision (before any tap it opens).
    Consent {
        participant_id: String,
        decision: crate::domain::recording::Decision,
        ip: Option<String>,
        user_agent: Option<String>,
    },
    /// Carry out a recording command against the stored state (an agent's page, or the
    /// server for `always`); the outcome comes back as a signal, a refusal to `conn`.
    RecordingCommand {
        conn: Option<ConnId>,
        by: Option<String>,
        action: crate::domain::recording::Action,
    },
    /// Relay a chat message to `to` (the sender included), then store it.
    Chat {
        to: Vec<ConnId>,
        from: String,
        name: String,
        role: &'static str,
        text: String,
        internal: bool,
    },
}

pub const REASON_ENDED_BY_AGENT: &str = "ended_by_agent";
/// Most visible participants (everyone but listening or whispering supervisors) in a mesh.
pub const MAX_VISIBLE: usize = 4;

#[derive(Debug, Clone)]
struct Member {
    id: String,
    seat: Seat,
    name: String,
    instance: String,
    media: Media,
    conn: Option<ConnId>,
    gone_since: Option<Instant>,
    /// Waiting to be admitted: sees nobody, nobody sees them (agents see the lobby list).
    in_lobby: bool,
    /// Counted as present on the timeline (joined the call and not yet left).
    in_call: bool,
    /// Handed the call over: taken out at this instant.
    leave_at: Option<Instant>,
    /// Per-participant limits and state of the in-call features (chat, photos, stats).
    incall: incall::InCall,
}

impl Member {
    fn connected(&self) -> bool {
        self.conn.is_some()
    }
}

/// Room settings that come from configuration.
#[derive(Debug, Clone, Copy)]
pub struct RoomConfig {
    pub grace: Duration,
    /// How long the agents who handed a call over may stay with the new agent.
    pub transfer_warm: Duration,
    pub max_visible: usize,
    /// The media mode of calls in this room; `None` when the node runs no media engine
    /// (every call stays peer to peer).
    pub media: Option<crate::media::MediaMode>,
    /// Most participants of a routed call.
    pub max_routed: usize,
}

impl RoomConfig {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            transfer_warm: Duration::from_secs(30),
            max_visible: MAX_VISIBLE,
            media: None,
            max_routed: crate::media::rules::ROUTED_LIMIT,
        }
    }
}

#[derive(Debug)]
pub struct RoomState {
    cfg: RoomConfig,
    members: Vec<Member>,
    ended: bool,
    /// Customers admitted once stay admitted when they reconnect.
    admitted: HashSet<String>,
    lobby_message: Option<String>,
    /// The agent a transfer goes to, until they join.
    transfer_to: Option<String>,
    /// The first instant the room saw: the origin of its rate limiters' clocks.
    epoch: Option<Instant>,
    /// The call goes through the media engine.
    routed: bool,
    /// The call's name for the media engine (the session id).
    call_id: String,
    /// The session's own media mode, learnt from its joiners.
    session_media: Option<crate::media::MediaMode>,
    /// What the media engine was told: participant → (seat, page instance).
    engine: std::collections::HashMap<String, (Seat, String)>,
    /// The session's recording, consents and tap.
    recording: recording::RoomRecording,
    /// The engine refused a participant because the node is full: the call stays (or
    /// goes back to) peer to peer whenever a mesh can carry it.
    engine_full: bool,
}

fn forbidden(conn: ConnId, message: &'static str) -> Output {
    Output::Send {
        conn,
        msg: ServerMsg::Error {
            code: "forbidden",
            message,
        },
    }
}

/// The roster entry `subject` has on `viewer`'s page, or `None` when the two exchange
/// nothing (or the subject is in the lobby).
fn entry_for(viewer: &Member, subject: &Member, routed: bool) -> Option<Entry> {
    if subject.in_lobby || viewer.in_lobby || viewer.id == subject.id {
        return None;
    }
    // Routed: a hidden participant leaves no trace on a page it is hidden from, and pairs
    // with a hidden participant exchange nothing peer to peer (the engine carries it).
    if routed && !subject.seat.shown_to(viewer.seat) {
        return None;
    }
    let via_engine = routed && (viewer.seat.is_hidden_seat() || subject.seat.is_hidden_seat());
    let send = if via_engine {
        crate::domain::Grant::NONE
    } else {
        viewer.seat.sends_to(subject.seat)
    };
    let gets = subject.seat.sends_to(viewer.seat);
    // Nothing exchanged: no entry, except that in a routed call agents and supervisors
    // still see a hidden supervisor (a listener sends nothing and the engine feeds it).
    let known = routed && subject.seat.is_hidden_seat() && subject.seat.shown_to(viewer.seat);
    if !send.any() && !gets.any() && !known {
        return None;
    }
    let polite = viewer.id > subject.id;
    if !subject.seat.shown_to(viewer.seat) {
        return Some(Entry {
            id: subject.id.clone(),
            role: None,
            mode: None,
            name: None,
            instance: subject.instance.clone(),
            media: None,
            state: None,
            hidden: true,
            send,
            receive: false,
            polite,
        });
    }
    Some(Entry {
        id: subject.id.clone(),
        role: Some(subject.seat.role.as_str()),
        mode: subject.seat.mode.map(Mode::as_str),
        name: Some(subject.name.clone()),
        instance: subject.instance.clone(),
        media: Some(subject.media),
        state: Some(if subject.connected() {
            "connected"
        } else {
            "reconnecting"
        }),
        hidden: false,
        send,
        receive: gets.any(),
        polite,
    })
}

impl RoomState {
    pub fn new(grace: Duration) -> Self {
        Self::with_config(RoomConfig::new(grace))
    }

    pub fn with_config(cfg: RoomConfig) -> Self {
        Self {
            cfg,
            members: Vec::new(),
            ended: false,
            admitted: HashSet::new(),
            lobby_message: None,
            transfer_to: None,
            epoch: None,
            routed: false,
            call_id: String::new(),
            session_media: None,
            engine: Default::default(),
            recording: Default::default(),
            engine_full: false,
        }
    }

    fn idx_of_conn(&self, conn: ConnId) -> Option<usize> {
        self.members.iter().position(|m| m.conn == Some(conn))
    }

    fn idx_of(&self, id: &str) -> Option<usize> {
        self.members.iter().position(|m| m.id == id)
    }

    /// Nobody is in the room or coming back: the owner may drop it.
    pub fn is_idle(&self) -> bool {
        self.ended || self.members.is_empty()
    }

    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Sockets currently attached.
    pub fn connections(&self) -> Vec<ConnId> {
        self.members.iter().filter_map(|m| m.conn).collect()
    }

    /// When the next grace period or hand-over runs out, if any: the room's owner sleeps
    /// until then (or until the next message).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.members
            .iter()
            .flat_map(|m| [m.gone_since.map(|t| t + self.cfg.grace), m.leave_at])
            .flatten()
            .min()
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Join(j) => self.join(j, now, &mut out),
            Input::Message { conn, msg } => self.message(conn, msg, now, &mut out),
            Input::Disconnected { conn } => self.disconnected(conn, now, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::Signal(s) => self.signal(s, now, &mut out),
            Input::Engine(e) => self.engine_event(e, &mut out),
            Input::EngineRefused {
                participant_id,
                node_full,
            } => self.engine_refused(&participant_id, node_full),
        }
        self.sync_media(&mut out);
        self.sync_recording(&mut out);
        out
    }

    fn signal(&mut self, s: RoomSignal, now: Instant, out: &mut Vec<Output>) {
        match s {
            RoomSignal::Ended { reason } => self.end_all(reason, out),
            RoomSignal::LinkRevoked { participant_id } => self.take_out(
                &participant_id,
                CloseReason::LinkRevoked,
                "link_revoked",
                out,
            ),
            RoomSignal::Removed { participant_id } => {
                self.take_out(&participant_id, CloseReason::Removed, "removed", out)
            }
            RoomSignal::ModeChanged {
                participant_id,
                mode,
            } => self.change_mode(&participant_id, mode, out),
            RoomSignal::TransferStarted { to } => {
                self.transfer_to = Some(to.clone());
                // The new agent may already be here (joined before the signal arrived).
                if let Some(i) = self.idx_of(&to)
                    && self.members[i].in_call
                {
                    self.hand_over(i, now, out);
                }
            }
            RoomSignal::Snapshot(note) => self.snapshot(note, out),
            RoomSignal::Precheck {
                participant_id,
                name,
                note,
            } => self.precheck(participant_id, name, note, out),
            RoomSignal::Recording(note) => self.recording_changed(note.state),
        }
    }

    /// Sends each page the entry `subject` now has for it (joined, updated or left),
    /// given the entries they had before.
    fn announce(&self, subject: usize, before: &[Option<Entry>], out: &mut Vec<Output>) {
        let s = &self.members[subject];
        for (i, viewer) in self.members.iter().enumerate() {
            let Some(conn) = viewer.conn else { continue };
            if i == subject {
                continue;
            }
            let now = entry_for(viewer, s, self.routed);
            let msg = match (before.get(i).cloned().flatten(), now) {
                (None, Some(e)) => ServerMsg::ParticipantJoined { participant: e },
                (Some(old), Some(e)) if old != e => {
                    ServerMsg::ParticipantUpdated { participant: e }
                }
                (Some(_), None) => ServerMsg::ParticipantLeft {
                    participant_id: s.id.clone(),
                    reason: "hidden",
                },
                _ => continue,
            };
            out.push(Output::Send { conn, msg });
        }
    }

    /// The entries of `subject` on every page, indexed like `members`.
    fn entries_of(&self, subject: usize) -> Vec<Option<Entry>> {
        let s = &self.members[subject];
        self.members
            .iter()
            .map(|v| entry_for(v, s, self.routed))
            .collect()
    }

    fn roster_for(&self, viewer: usize) -> Vec<Entry> {
        let v = &self.members[viewer];
        self.members
            .iter()
            .filter_map(|s| entry_for(v, s, self.routed))
            .collect()
    }

    fn joined_msg(&self, i: usize, took_over: bool) -> ServerMsg {
        let m = &self.members[i];
        ServerMsg::Joined {
            v: PROTOCOL_VERSION,
            participant_id: m.id.clone(),
            role: m.seat.role.as_str(),
            mode: m.seat.mode.map(Mode::as_str),
            roster: self.roster_for(i),
            lobby: m.in_lobby,
            took_over,
            lobby_message: if m.in_lobby {
                self.lobby_message.clone()
            } else {
                None
            },
            routed: self.routed && !m.in_lobby,
        }
    }

    fn visible_in_call(&self, except: &str) -> usize {
        self.members
            .iter()
            .filter(|m| m.id != except && !m.in_lobby && m.seat.is_visible())
            .count()
    }

    fn lobby_update(&self, out: &mut Vec<Output>) {
        let waiting: Vec<Waiting> = self
            .members
            .iter()
            .filter(|m| m.in_lobby)
            .map(|m| Waiting {
                id: m.id.clone(),
                name: m.name.clone(),
            })
            .collect();
        for m in &self.members {
            if let Some(conn) = m.conn
                && m.seat.role.can_admit()
                && !m.in_lobby
            {
                out.push(Output::Send {
                    conn,
                    msg: ServerMsg::Lobby {
                        waiting: waiting.clone(),
                    },
                });
            }
        }
    }

    fn join(&mut self, j: Joiner, now: Instant, out: &mut Vec<Output>) {
        if self.ended {
            out.push(Output::Close {
                conn: j.conn,
                reason: CloseReason::SessionEnded,
            });
            return;
        }
        if j.media_mode.is_some() {
            self.session_media = j.media_mode;
        }
        self.recording_join(&j.participant_id, j.recording.as_ref());
        let seat = Seat::new(j.role, j.mode);
        let existing = self.idx_of(&j.participant_id);
        let in_lobby = match existing {
            Some(i) => self.members[i].in_lobby,
            None => {
                j.lobby && j.role.waits_in_lobby() && !self.admitted.contains(&j.participant_id)
            }
        };
        if !in_lobby
            && seat.is_visible()
            && self.visible_in_call(&j.participant_id) >= self.max_visible()
        {
            out.push(Output::Close {
                conn: j.conn,
                reason: CloseReason::RoomFull,
            });
            return;
        }
        let (i, took_over, before) = match existing {
            Some(i) => {
                let before = self.entries_of(i);
                // A routed page that comes back gets a fresh engine connection (an offer
                // sent while it was away is lost).
                self.engine.remove(&j.participant_id);
                let m = &mut self.members[i];
                let took_over = m.conn.is_some();
                if let Some(old) = m.conn {
                    out.push(Output::Close {
                        conn: old,
                        reason: CloseReason::Replaced,
                    });
                }
                let new_page = m.instance != j.instance;
                m.conn = Some(j.conn);
                m.gone_since = None;
                m.instance = j.instance;
                m.media = j.media;
                m.name = j.name;
                // A new page must be offered to afresh: announce it as a newcomer.
                let before = if new_page {
                    vec![None; before.len()]
                } else {
                    before
                };
                (i, took_over, before)
            }
            None => {
                self.members.push(Member {
                    id: j.participant_id.clone(),
                    seat,
                    name: j.name,
                    instance: j.instance,
                    media: j.media,
                    conn: Some(j.conn),
                    gone_since: None,
                    in_lobby,
                    in_call: false,
                    leave_at: None,
                    incall: Default::default(),
                });
                let n = self.members.len();
                (n - 1, false, vec![None; n])
            }
        };
        let m = &self.members[i];
        if m.in_lobby {
            out.push(Output::Send {
                conn: j.conn,
                msg: self.joined_msg(i, took_over),
            });
            if existing.is_none() {
                out.push(Output::Record {
                    kind: EventKind::ParticipantWaiting,
                    participant_id: m.id.clone(),
                    data: serde_json::json!({"role": m.seat.role.as_str(), "display_name": m.name}),
                });
                self.lobby_update(out);
            }
            return;
        }
        self.enter_call(i, took_over, &before, now, out);
    }

    /// Puts member `i` (connected, not in the lobby) into the call: presence, their
    /// `joined`, the others' roster updates, a pending transfer.
    fn enter_call(
        &mut self,
        i: usize,
        took_over: bool,
        before: &[Option<Entry>],
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(conn) = self.members[i].conn else {
            return;
        };
        // A takeover changes nothing for the session; a first join or a return does.
        if !took_over || !self.members[i].in_call {
            self.members[i].in_call = true;
            out.push(Output::Presence {
                participant_id: self.members[i].id.clone(),
                presence: Presence::Joined,
            });
        }
        // A call that becomes routed with this arrival hides its hidden participants
        // before the newcomer's roster is computed.
        self.decide_routing(Some(i), out);
        out.push(Output::Send {
            conn,
            msg: self.joined_msg(i, took_over),
        });
        self.announce(i, before, out);
        let m = &self.members[i];
        if m.seat.role.can_admit() && self.members.iter().any(|x| x.in_lobby) {
            self.lobby_update(out);
        }
        if self.transfer_to.as_deref() == Some(m.id.as_str()) {
            self.hand_over(i, now, out);
        }
    }

    /// The transfer's new agent (member `to`) is in: the agents who were in the call hand
    /// over and are taken out after the warm period.
    fn hand_over(&mut self, to: usize, now: Instant, out: &mut Vec<Output>) {
        self.transfer_to = None;
        let who = Who {
            id: self.members[to].id.clone(),
            name: self.members[to].name.clone(),
        };
        let leave_at = now + self.cfg.transfer_warm;
        let mut from = Vec::new();
        for (k, m) in self.members.iter_mut().enumerate() {
            if k == to || m.seat.role != Role::Agent || m.in_lobby {
                continue;
            }
            from.push(m.id.clone());
            m.leave_at = Some(leave_at);
            if let Some(conn) = m.conn {
                out.push(Output::Send {
                    conn,
                    msg: ServerMsg::Transferred {
                        to: who.clone(),
                        warm_secs: self.cfg.transfer_warm.as_secs(),
                    },
                });
            }
        }
        out.push(Output::TransferComplete {
            to: who.id.clone(),
            from,
        });
        if self.cfg.transfer_warm.is_zero() {
            self.tick(now, out);
        }
    }

    fn message(&mut self, conn: ConnId, msg: ClientMsg, now: Instant, out: &mut Vec<Output>) {
        // Messages from a socket that was replaced or closed are dropped.
        let Some(i) = self.idx_of_conn(conn) else {
            return;
        };
        if self.members[i].in_lobby
            && !matches!(
                msg,
                ClientMsg::Ping
                    | ClientMsg::HangUp
                    | ClientMsg::Decline { .. }
                    | ClientMsg::Media(_)
            )
        {
            out.push(forbidden(conn, "waiting in the lobby"));
            return;
        }
        // Relays between two pages, the bulk of the traffic, need nothing of the sender's
        // but its index: no copy of its member record.
        let msg = match msg {
            ClientMsg::Offer { to, sdp, restart } => {
                return self.forward(i, &to, out, |from| ServerMsg::Offer { from, sdp, restart });
            }
            ClientMsg::Answer { to, sdp } => {
                return self.forward(i, &to, out, |from| ServerMsg::Answer { from, sdp });
            }
            ClientMsg::Candidate { to, candidate } => {
                return self.forward(i, &to, out, |from| ServerMsg::Candidate { from, candidate });
            }
            ClientMsg::RestartIce { to } => {
                return self.forward(i, &to, out, |from| ServerMsg::RestartIce { from });
            }
            other => other,
        };
        let me = self.members[i].clone();
        match msg {
            ClientMsg::Join { .. } => out.push(Output::Close {
                conn,
                reason: CloseReason::BadMessage,
            }),
            // Relayed above.
            ClientMsg::Offer { .. }
            | ClientMsg::Answer { .. }
            | ClientMsg::Candidate { .. }
            | ClientMsg::RestartIce { .. } => {}
            ClientMsg::MediaAnswer { sdp } => {
                self.to_engine(i, out, |call, participant| crate::media::Command::Answer {
                    call,
                    participant,
                    sdp,
                })
            }
            ClientMsg::MediaCandidate { candidate } => {
                self.to_engine(i, out, |call, participant| {
                    crate::media::Command::Candidate {
                        call,
                        participant,
                        candidate: candidate.candidate,
                        sdp_mid: candidate.sdp_mid,
                        sdp_mline_index: candidate.sdp_m_line_index,
                    }
                })
            }
            ClientMsg::Media(m) => {
                let before = self.entries_of(i);
                self.members[i].media = m;
                self.announce(i, &before, out);
            }
            ClientMsg::Ping => out.push(Output::Send {
                conn,
                msg: ServerMsg::Pong,
            }),
            ClientMsg::HangUp => {
                out.push(Output::Close {
                    conn,
                    reason: CloseReason::Normal,
                });
                self.remove(i, "hung_up", out);
            }
            ClientMsg::End => {
                if !me.seat.role.can_end() {
                    out.push(forbidden(conn, "only an agent can end the session"));
                    return;
                }
                out.push(Output::EndSession {
                    by: me.id.clone(),
                    reason: REASON_ENDED_BY_AGENT.to_owned(),
                });
                self.end_all(REASON_ENDED_BY_AGENT.to_owned(), out);
            }
            ClientMsg::Decline { reason, message } => {
                if !me.seat.role.can_decline() {
                    out.push(forbidden(conn, "only the customer can decline"));
                    return;
                }
                let message = message.as_deref().and_then(clean_text);
                out.push(Output::Record {
                    kind: EventKind::ParticipantDeclined,
                    participant_id: me.id.clone(),
                    data: serde_json::json!({
                        "role": me.seat.role.as_str(),
                        "display_name": me.name,
                        "reason": reason.as_str(),
                        "message": message,
                    }),
                });
                for m in &self.members {
                    if let Some(c) = m.conn
                        && m.seat.role == Role::Agent
                        && !m.in_lobby
                    {
                        out.push(Output::Send {
                            conn: c,
                            msg: ServerMsg::Declined {
                                participant_id: me.id.clone(),
                                name: me.name.clone(),
                                reason: reason.as_str(),
                                message: message.clone(),
                            },
                        });
                    }
                }
                out.push(Output::Close {
                    conn,
                    reason: CloseReason::Normal,
                });
                self.remove(i, "declined", out);
            }
            ClientMsg::Admit { participant_id } => self.admit(&me, &participant_id, now, out),
            ClientMsg::Deny { participant_id } => {
                if !me.seat.role.can_admit() {
                    out.push(forbidden(conn, "only an agent can turn someone away"));
                    return;
                }
                let Some(k) = self
                    .idx_of(&participant_id)
                    .filter(|k| self.members[*k].in_lobby)
                else {
                    out.push(not_found(conn));
                    return;
                };
                let denied = self.members.remove(k);
                if let Some(c) = denied.conn {
                    out.push(Output::Close {
                        conn: c,
                        reason: CloseReason::Denied,
                    });
                }
                out.push(Output::Record {
                    kind: EventKind::ParticipantDenied,
                    participant_id: denied.id.clone(),
                    data: serde_json::json!({"by": me.id}),
                });
                self.lobby_update(out);
            }
            ClientMsg::LobbyMessage { text } => {
                if !me.seat.role.can_admit() {
                    out.push(forbidden(conn, "only an agent can set the lobby message"));
                    return;
                }
                let text = clean_text(&text);
                self.lobby_message = text.clone();
                for m in &self.members {
                    if let Some(c) = m.conn
                        && m.in_lobby
                    {
                        out.push(Output::Send {
                            conn: c,
                            msg: ServerMsg::LobbyMessage {
                                text: text.clone().unwrap_or_default(),
                            },
                        });
                    }
                }
            }
            ClientMsg::SetMode {
                participant_id,
                mode,
            } => {
                let Some(k) = self.idx_of(&participant_id) else {
                    out.push(not_found(conn));
                    return;
                };
                let target = &self.members[k];
                let allowed =
                    me.seat.role.can_manage() || (k == i && me.seat.role == Role::Supervisor);
                if !allowed || target.seat.role != Role::Supervisor {
                    out.push(forbidden(conn, "only a supervisor has a mode"));
                    return;
                }
                let mode = Mode::from(mode);
                if target.seat.mode == Some(mode) {
                    return;
                }
                out.push(Output::SetMode {
                    participant_id: participant_id.clone(),
                    mode,
                });
                self.change_mode(&participant_id, mode, out);
            }
            ClientMsg::Chat { text } => self.chat(i, &text, now, out),
            ClientMsg::Recording { action } => self.recording_command(i, action, out),
            ClientMsg::Consent { decision } => self.consent(i, decision, out),
            ClientMsg::Stats {
                loss,
                jitter,
                rtt,
                bitrate,
                fps,
                freezes,
                quality_limitation_reason,
            } => {
                let fields = [
                    ("loss", loss.as_ref()),
                    ("jitter", jitter.as_ref()),
                    ("rtt", rtt.as_ref()),
                    ("bitrate", bitrate.as_ref()),
                    ("fps", fps.as_ref()),
                    ("freezes", freezes.as_ref()),
                ];
                let report =
                    crate::domain::quality::parse(&fields, quality_limitation_reason.as_ref());
                self.stats(i, report, now, out)
            }
            ClientMsg::RequestPhoto { to } => {
                if !me.seat.role.can_manage() {
                    out.push(forbidden(conn, "only an agent can ask for a photo"));
                    return;
                }
                let name = me.name.clone();
                self.forward(i, &to, out, |from| ServerMsg::RequestPhoto { from, name })
            }
        }
    }
}
