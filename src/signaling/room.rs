//! One call's signaling state, pure and sans-IO: inputs and `now` in, outputs out.
//!
//! A room has at most one agent and one customer. A second socket of the same participant
//! takes over from the first. A dropped socket leaves the participant "reconnecting" for a
//! grace period; only after it do they count as gone.

use std::time::{Duration, Instant};

use super::protocol::{ClientMsg, CloseReason, Media, PROTOCOL_VERSION, PeerInfo, ServerMsg};
use crate::sessions::machine::Role;
use crate::sessions::repo::Presence;

/// Identifies one socket, unique for the life of the process.
pub type ConnId = u64;

/// A socket that passed authentication and wants into the room.
#[derive(Debug, Clone)]
pub struct Joiner {
    pub conn: ConnId,
    pub participant_id: String,
    pub role: Role,
    pub name: String,
    pub instance: String,
    pub media: Media,
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
    /// Time passes (grace periods expire).
    Tick,
    /// Something happened to the session outside signaling.
    Signal(crate::services::bus::RoomSignal),
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
}

#[derive(Debug, Clone)]
struct Slot {
    participant_id: String,
    name: String,
    instance: String,
    media: Media,
    conn: Option<ConnId>,
    gone_since: Option<Instant>,
}

impl Slot {
    fn info(&self, role: Role) -> PeerInfo {
        PeerInfo {
            role: role.as_str(),
            name: self.name.clone(),
            instance: self.instance.clone(),
            media: self.media,
        }
    }
}

pub const REASON_ENDED_BY_AGENT: &str = "ended_by_agent";

#[derive(Debug)]
pub struct RoomState {
    grace: Duration,
    agent: Option<Slot>,
    customer: Option<Slot>,
    ended: bool,
}

fn other(role: Role) -> Role {
    match role {
        Role::Agent => Role::Customer,
        _ => Role::Agent,
    }
}

impl RoomState {
    pub fn new(grace: Duration) -> Self {
        Self {
            grace,
            agent: None,
            customer: None,
            ended: false,
        }
    }

    fn slot(&self, role: Role) -> &Option<Slot> {
        match role {
            Role::Customer => &self.customer,
            _ => &self.agent,
        }
    }

    fn slot_mut(&mut self, role: Role) -> &mut Option<Slot> {
        match role {
            Role::Customer => &mut self.customer,
            _ => &mut self.agent,
        }
    }

    fn role_of(&self, conn: ConnId) -> Option<Role> {
        [Role::Agent, Role::Customer]
            .into_iter()
            .find(|r| self.slot(*r).as_ref().and_then(|s| s.conn) == Some(conn))
    }

    fn peer_conn(&self, role: Role) -> Option<ConnId> {
        self.slot(other(role)).as_ref().and_then(|s| s.conn)
    }

    /// Nobody is in the room or coming back: the owner may drop it.
    pub fn is_idle(&self) -> bool {
        self.ended || (self.agent.is_none() && self.customer.is_none())
    }

    pub fn has_ended(&self) -> bool {
        self.ended
    }

    /// Sockets currently attached.
    pub fn connections(&self) -> Vec<ConnId> {
        [&self.agent, &self.customer]
            .into_iter()
            .filter_map(|s| s.as_ref().and_then(|s| s.conn))
            .collect()
    }

    /// When the next grace period runs out, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        [&self.agent, &self.customer]
            .into_iter()
            .filter_map(|s| s.as_ref().and_then(|s| s.gone_since))
            .map(|t| t + self.grace)
            .min()
    }

    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        match input {
            Input::Join(j) => self.join(j, &mut out),
            Input::Message { conn, msg } => self.message(conn, msg, &mut out),
            Input::Disconnected { conn } => self.disconnected(conn, now, &mut out),
            Input::Tick => self.tick(now, &mut out),
            Input::Signal(crate::services::bus::RoomSignal::Ended { reason }) => {
                self.end_all(reason, &mut out)
            }
            Input::Signal(_) => {
                if let Some(s) = self.customer.take() {
                    if let Some(conn) = s.conn {
                        out.push(Output::Close {
                            conn,
                            reason: CloseReason::LinkRevoked,
                        });
                    }
                    self.left(Role::Customer, s, "link_revoked", &mut out);
                }
            }
        }
        out
    }

    fn join(&mut self, j: Joiner, out: &mut Vec<Output>) {
        if self.ended {
            out.push(Output::Close {
                conn: j.conn,
                reason: CloseReason::SessionEnded,
            });
            return;
        }
        let role = j.role;
        let previous = self.slot_mut(role).take();
        let took_over = previous.as_ref().is_some_and(|p| p.conn.is_some());
        if let Some(old) = previous.as_ref().and_then(|p| p.conn) {
            out.push(Output::Close {
                conn: old,
                reason: CloseReason::Replaced,
            });
        }
        let slot = Slot {
            participant_id: j.participant_id.clone(),
            name: j.name,
            instance: j.instance,
            media: j.media,
            conn: Some(j.conn),
            gone_since: None,
        };
        let me = slot.info(role);
        *self.slot_mut(role) = Some(slot);
        // A takeover changes nothing for the session; a first join or a return does.
        if !took_over {
            out.push(Output::Presence {
                participant_id: j.participant_id.clone(),
                presence: Presence::Joined,
            });
        }
        let peer = self.slot(other(role)).clone();
        out.push(Output::Send {
            conn: j.conn,
            msg: ServerMsg::Joined {
                v: PROTOCOL_VERSION,
                role: role.as_str(),
                participant_id: j.participant_id,
                polite: role == Role::Customer,
                peer: peer.as_ref().map(|p| p.info(other(role))),
                took_over,
            },
        });
        match peer {
            Some(p) if p.conn.is_none() => out.push(Output::Send {
                conn: j.conn,
                msg: ServerMsg::PeerReconnecting,
            }),
            Some(p) => {
                if let Some(pc) = p.conn {
                    out.push(Output::Send {
                        conn: pc,
                        msg: ServerMsg::PeerJoined { peer: me },
                    });
                }
            }
            None => {}
        }
    }

    fn message(&mut self, conn: ConnId, msg: ClientMsg, out: &mut Vec<Output>) {
        // Messages from a socket that was replaced or closed are dropped.
        let Some(role) = self.role_of(conn) else {
            return;
        };
        let to_peer = |msg: ServerMsg, out: &mut Vec<Output>| {
            if let Some(pc) = self.peer_conn(role) {
                out.push(Output::Send { conn: pc, msg });
            }
        };
        match msg {
            ClientMsg::Join { .. } => out.push(Output::Close {
                conn,
                reason: CloseReason::BadMessage,
            }),
            ClientMsg::Offer { sdp, restart } => to_peer(ServerMsg::Offer { sdp, restart }, out),
            ClientMsg::Answer { sdp } => to_peer(ServerMsg::Answer { sdp }, out),
            ClientMsg::Candidate { candidate } => to_peer(ServerMsg::Candidate { candidate }, out),
            ClientMsg::RestartIce => to_peer(ServerMsg::RestartIce, out),
            ClientMsg::Media(m) => {
                to_peer(ServerMsg::PeerMedia(m), out);
                if let Some(s) = self.slot_mut(role) {
                    s.media = m;
                }
            }
            ClientMsg::Ping => out.push(Output::Send {
                conn,
                msg: ServerMsg::Pong,
            }),
            ClientMsg::HangUp => {
                if let Some(s) = self.slot_mut(role).take() {
                    out.push(Output::Close {
                        conn,
                        reason: CloseReason::Normal,
                    });
                    self.left(role, s, "hung_up", out);
                }
            }
            ClientMsg::End => {
                if role != Role::Agent {
                    out.push(Output::Send {
                        conn,
                        msg: ServerMsg::Error {
                            code: "forbidden",
                            message: "only the agent can end the session",
                        },
                    });
                    return;
                }
                let by = self
                    .slot(role)
                    .as_ref()
                    .map(|s| s.participant_id.clone())
                    .unwrap_or_default();
                out.push(Output::EndSession {
                    by,
                    reason: REASON_ENDED_BY_AGENT.to_owned(),
                });
                self.end_all(REASON_ENDED_BY_AGENT.to_owned(), out);
            }
        }
    }

    fn left(&mut self, role: Role, slot: Slot, reason: &'static str, out: &mut Vec<Output>) {
        out.push(Output::Presence {
            participant_id: slot.participant_id,
            presence: Presence::Left,
        });
        if let Some(pc) = self.peer_conn(role) {
            out.push(Output::Send {
                conn: pc,
                msg: ServerMsg::PeerLeft { reason },
            });
        }
    }

    fn disconnected(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Output>) {
        let Some(role) = self.role_of(conn) else {
            return;
        };
        let Some(slot) = self.slot_mut(role).as_mut() else {
            return;
        };
        slot.conn = None;
        slot.gone_since = Some(now);
        let pid = slot.participant_id.clone();
        if self.ended {
            return;
        }
        out.push(Output::Presence {
            participant_id: pid,
            presence: Presence::Reconnecting,
        });
        if let Some(pc) = self.peer_conn(role) {
            out.push(Output::Send {
                conn: pc,
                msg: ServerMsg::PeerReconnecting,
            });
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        for role in [Role::Agent, Role::Customer] {
            let expired = self
                .slot(role)
                .as_ref()
                .and_then(|s| s.gone_since)
                .is_some_and(|t| now >= t + self.grace);
            if expired && let Some(s) = self.slot_mut(role).take() {
                self.left(role, s, "timeout", out);
            }
        }
    }

    fn end_all(&mut self, reason: String, out: &mut Vec<Output>) {
        if self.ended {
            return;
        }
        self.ended = true;
        for conn in self.connections() {
            out.push(Output::Send {
                conn,
                msg: ServerMsg::Ended {
                    reason: reason.clone(),
                },
            });
            out.push(Output::Close {
                conn,
                reason: CloseReason::SessionEnded,
            });
        }
        self.agent = None;
        self.customer = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(10);

    fn joiner(conn: ConnId, role: Role, instance: &str) -> Joiner {
        Joiner {
            conn,
            participant_id: format!("p-{}", role.as_str()),
            role,
            name: role.as_str().to_owned(),
            instance: instance.to_owned(),
            media: Media {
                audio: true,
                video: true,
            },
        }
    }

    fn sends_to(out: &[Output], conn: ConnId) -> Vec<&ServerMsg> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send { conn: c, msg } if *c == conn => Some(msg),
                _ => None,
            })
            .collect()
    }

    fn presences(out: &[Output]) -> Vec<(&str, Presence)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Presence {
                    participant_id,
                    presence,
                } => Some((participant_id.as_str(), *presence)),
                _ => None,
            })
            .collect()
    }

    fn closes(out: &[Output]) -> Vec<(ConnId, CloseReason)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Close { conn, reason } => Some((*conn, *reason)),
                _ => None,
            })
            .collect()
    }

    fn room_with_both(now: Instant) -> RoomState {
        let mut r = RoomState::new(GRACE);
        r.handle(Input::Join(joiner(1, Role::Agent, "a1")), now);
        r.handle(Input::Join(joiner(2, Role::Customer, "c1")), now);
        r
    }

    #[test]
    fn join_announces_both_ways_and_sets_politeness() {
        let now = Instant::now();
        let mut r = RoomState::new(GRACE);
        let out = r.handle(Input::Join(joiner(1, Role::Agent, "a1")), now);
        assert_eq!(presences(&out), vec![("p-agent", Presence::Joined)]);
        assert!(matches!(
            sends_to(&out, 1)[..],
            [ServerMsg::Joined {
                polite: false,
                peer: None,
                ..
            }]
        ));
        let out = r.handle(Input::Join(joiner(2, Role::Customer, "c1")), now);
        assert!(matches!(
            sends_to(&out, 2)[..],
            [ServerMsg::Joined {
                polite: true,
                peer: Some(PeerInfo { role: "agent", .. }),
                ..
            }]
        ));
        assert!(matches!(
            sends_to(&out, 1)[..],
            [ServerMsg::PeerJoined {
                peer: PeerInfo {
                    role: "customer",
                    ..
                }
            }]
        ));
    }

    #[test]
    fn signals_go_to_the_peer_only() {
        let now = Instant::now();
        let mut r = room_with_both(now);
        let out = r.handle(
            Input::Message {
                conn: 1,
                msg: ClientMsg::Offer {
                    sdp: "v=0".into(),
                    restart: false,
                },
            },
            now,
        );
        assert_eq!(out.len(), 1);
        assert!(matches!(sends_to(&out, 2)[..], [ServerMsg::Offer { .. }]));
        let out = r.handle(
            Input::Message {
                conn: 2,
                msg: ClientMsg::Media(Media {
                    audio: false,
                    video: true,
                }),
            },
            now,
        );
        assert!(matches!(
            sends_to(&out, 1)[..],
            [ServerMsg::PeerMedia(Media { audio: false, .. })]
        ));
        // A stranger's messages are ignored.
        assert!(
            r.handle(
                Input::Message {
                    conn: 99,
                    msg: ClientMsg::Ping
                },
                now
            )
            .is_empty()
        );
    }

    #[test]
    fn second_socket_of_a_participant_takes_over() {
        let now = Instant::now();
        let mut r = room_with_both(now);
        let out = r.handle(Input::Join(joiner(3, Role::Customer, "c2")), now);
        assert_eq!(closes(&out), vec![(2, CloseReason::Replaced)]);
        assert!(presences(&out).is_empty(), "takeover is not a new join");
        assert!(matches!(
            sends_to(&out, 3)[..],
            [ServerMsg::Joined {
                took_over: true,
                ..
            }]
        ));
        assert!(matches!(
            sends_to(&out, 1)[..],
            [ServerMsg::PeerJoined { peer: PeerInfo { instance, .. } }] if instance == "c2"
        ));
        // The replaced socket's late close does nothing.
        assert!(r.handle(Input::Disconnected { conn: 2 }, now).is_empty());
    }

    #[test]
    fn drop_then_return_within_grace_is_a_reconnect() {
        let t0 = Instant::now();
        let mut r = room_with_both(t0);
        let out = r.handle(Input::Disconnected { conn: 2 }, t0);
        assert_eq!(
            presences(&out),
            vec![("p-customer", Presence::Reconnecting)]
        );
        assert_eq!(sends_to(&out, 1), vec![&ServerMsg::PeerReconnecting]);
        assert_eq!(r.next_deadline(), Some(t0 + GRACE));
        assert!(r.handle(Input::Tick, t0 + GRACE / 2).is_empty());
        let out = r.handle(Input::Join(joiner(4, Role::Customer, "c1")), t0 + GRACE / 2);
        assert_eq!(presences(&out), vec![("p-customer", Presence::Joined)]);
        assert!(matches!(
            sends_to(&out, 1)[..],
            [ServerMsg::PeerJoined { .. }]
        ));
        assert!(r.handle(Input::Tick, t0 + GRACE * 2).is_empty());
    }

    #[test]
    fn gone_after_grace() {
        let t0 = Instant::now();
        let mut r = room_with_both(t0);
        r.handle(Input::Disconnected { conn: 2 }, t0);
        let out = r.handle(Input::Tick, t0 + GRACE);
        assert_eq!(presences(&out), vec![("p-customer", Presence::Left)]);
        assert_eq!(
            sends_to(&out, 1),
            vec![&ServerMsg::PeerLeft { reason: "timeout" }]
        );
        r.handle(Input::Disconnected { conn: 1 }, t0 + GRACE);
        assert!(!r.is_idle());
        r.handle(Input::Tick, t0 + GRACE * 2);
        assert!(r.is_idle());
    }

    #[test]
    fn only_the_agent_ends_the_session() {
        let now = Instant::now();
        let mut r = room_with_both(now);
        let out = r.handle(
            Input::Message {
                conn: 2,
                msg: ClientMsg::End,
            },
            now,
        );
        assert!(matches!(
            sends_to(&out, 2)[..],
            [ServerMsg::Error {
                code: "forbidden",
                ..
            }]
        ));
        assert!(!r.has_ended());
        let out = r.handle(
            Input::Message {
                conn: 1,
                msg: ClientMsg::End,
            },
            now,
        );
        assert!(matches!(&out[0], Output::EndSession { by, .. } if by == "p-agent"));
        assert_eq!(
            closes(&out),
            vec![
                (1, CloseReason::SessionEnded),
                (2, CloseReason::SessionEnded)
            ]
        );
        assert!(r.is_idle());
        let out = r.handle(Input::Join(joiner(5, Role::Customer, "c1")), now);
        assert_eq!(closes(&out), vec![(5, CloseReason::SessionEnded)]);
    }

    #[test]
    fn external_end_and_hang_up_and_revocation() {
        let now = Instant::now();
        let mut r = room_with_both(now);
        let out = r.handle(
            Input::Message {
                conn: 2,
                msg: ClientMsg::HangUp,
            },
            now,
        );
        assert_eq!(closes(&out), vec![(2, CloseReason::Normal)]);
        assert_eq!(
            sends_to(&out, 1),
            vec![&ServerMsg::PeerLeft { reason: "hung_up" }]
        );
        r.handle(Input::Join(joiner(3, Role::Customer, "c3")), now);
        let out = r.handle(
            Input::Signal(crate::services::bus::RoomSignal::LinkRevoked {
                participant_id: "p-customer".into(),
            }),
            now,
        );
        assert_eq!(closes(&out), vec![(3, CloseReason::LinkRevoked)]);
        let out = r.handle(
            Input::Signal(crate::services::bus::RoomSignal::Ended {
                reason: "ended_via_api".into(),
            }),
            now,
        );
        assert_eq!(
            sends_to(&out, 1),
            vec![&ServerMsg::Ended {
                reason: "ended_via_api".into()
            }]
        );
        assert!(r.has_ended());
    }
}
