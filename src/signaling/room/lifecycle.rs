//! Membership changes of a room: admitting from the lobby, forwarding between two
//! participants, a supervisor's mode, taking someone out (removal, transfer), dropped
//! sockets and their grace period, and the end of the call.

use std::time::Instant;

use super::super::protocol::{CloseReason, ServerMsg};
use super::{ConnId, Member, Output, RoomState, entry_for, forbidden};
use crate::domain::{EventKind, Mode, Role, Seat};
use crate::store::sessions::Presence;

impl RoomState {
    pub(super) fn admit(
        &mut self,
        me: &Member,
        participant_id: &str,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let Some(conn) = me.conn else { return };
        if !me.seat.role.can_admit() {
            out.push(forbidden(conn, "only an agent can admit"));
            return;
        }
        let Some(k) = self
            .idx_of(participant_id)
            .filter(|k| self.members[*k].in_lobby)
        else {
            out.push(not_found(conn));
            return;
        };
        if self.members[k].seat.is_visible()
            && self.visible_in_call(participant_id) >= self.cfg.max_visible
        {
            out.push(Output::Send {
                conn,
                msg: ServerMsg::Error {
                    code: "room_full",
                    message: "four people are already in the call",
                },
            });
            return;
        }
        self.admitted.insert(participant_id.to_owned());
        self.members[k].in_lobby = false;
        out.push(Output::Record {
            kind: EventKind::ParticipantAdmitted,
            participant_id: participant_id.to_owned(),
            data: serde_json::json!({"by": me.id}),
        });
        let none = vec![None; self.members.len()];
        self.enter_call(k, false, &none, now, out);
        self.lobby_update(out);
    }

    /// Forwards a negotiation message from member `i` to `to`, if the pair exchanges media.
    pub(super) fn forward(
        &self,
        i: usize,
        to: &str,
        out: &mut Vec<Output>,
        make: impl FnOnce(String) -> ServerMsg,
    ) {
        let me = &self.members[i];
        let Some(conn) = me.conn else { return };
        let target = self.idx_of(to).map(|k| &self.members[k]);
        match target {
            Some(t) if entry_for(me, t, self.routed).is_some() => {
                // A participant who is reconnecting gets a fresh offer when they return.
                if let Some(tc) = t.conn {
                    out.push(Output::Send {
                        conn: tc,
                        msg: make(me.id.clone()),
                    });
                }
            }
            _ => out.push(forbidden(conn, "no such participant in the call")),
        }
    }

    pub(super) fn change_mode(&mut self, participant_id: &str, mode: Mode, out: &mut Vec<Output>) {
        let Some(i) = self.idx_of(participant_id) else {
            return;
        };
        if self.members[i].seat.role != Role::Supervisor {
            return;
        }
        let before = self.entries_of(i);
        self.members[i].seat = Seat::new(Role::Supervisor, Some(mode));
        // Routing changes before anyone hears of the new mode (a customer must never see
        // a hidden entry for a supervisor the engine is about to carry).
        // (The supervisor's own page gets a fresh `joined` below.)
        self.decide_routing(Some(i), out);
        self.announce(i, &before, out);
        // The supervisor's own page: every entry's `send` may have changed.
        if let Some(conn) = self.members[i].conn
            && !self.members[i].in_lobby
        {
            out.push(Output::Send {
                conn,
                msg: self.joined_msg(i, false),
            });
        }
    }

    /// Takes a participant out of the call because of something outside signaling.
    pub(super) fn take_out(
        &mut self,
        participant_id: &str,
        close: CloseReason,
        reason: &'static str,
        out: &mut Vec<Output>,
    ) {
        let Some(i) = self.idx_of(participant_id) else {
            return;
        };
        if let Some(conn) = self.members[i].conn {
            out.push(Output::Close {
                conn,
                reason: close,
            });
        }
        self.remove(i, reason, out);
    }

    /// Member `i` is gone for good: presence, the others' rosters, the lobby list.
    pub(super) fn remove(&mut self, i: usize, reason: &'static str, out: &mut Vec<Output>) {
        let entries = self.entries_of(i);
        let m = self.members.remove(i);
        if m.in_lobby {
            self.lobby_update(out);
            return;
        }
        if m.in_call {
            out.push(Output::Presence {
                participant_id: m.id.clone(),
                presence: Presence::Left,
            });
        }
        // Indices after `i` shifted down by one.
        for (k, e) in entries.into_iter().enumerate() {
            if k == i || e.is_none() {
                continue;
            }
            let viewer = &self.members[if k > i { k - 1 } else { k }];
            if let Some(conn) = viewer.conn {
                out.push(Output::Send {
                    conn,
                    msg: ServerMsg::ParticipantLeft {
                        participant_id: m.id.clone(),
                        reason,
                    },
                });
            }
        }
    }

    pub(super) fn disconnected(&mut self, conn: ConnId, now: Instant, out: &mut Vec<Output>) {
        let Some(i) = self.idx_of_conn(conn) else {
            return;
        };
        if self.members[i].in_lobby {
            // Waiting costs nothing to redo: a page that comes back waits again.
            self.members.remove(i);
            self.lobby_update(out);
            return;
        }
        let before = self.entries_of(i);
        let m = &mut self.members[i];
        m.conn = None;
        m.gone_since = Some(now);
        let pid = m.id.clone();
        if self.ended {
            return;
        }
        out.push(Output::Presence {
            participant_id: pid,
            presence: Presence::Reconnecting,
        });
        self.announce(i, &before, out);
    }

    pub(super) fn tick(&mut self, now: Instant, out: &mut Vec<Output>) {
        let grace = self.cfg.grace;
        while let Some(i) = self
            .members
            .iter()
            .position(|m| m.gone_since.is_some_and(|t| now >= t + grace))
        {
            self.remove(i, "timeout", out);
        }
        while let Some(i) = self
            .members
            .iter()
            .position(|m| m.leave_at.is_some_and(|t| now >= t))
        {
            if let Some(conn) = self.members[i].conn {
                out.push(Output::Close {
                    conn,
                    reason: CloseReason::LinkRevoked,
                });
            }
            out.push(Output::AccessEnded {
                participant_id: self.members[i].id.clone(),
            });
            self.remove(i, "transferred", out);
        }
    }

    pub(super) fn end_all(&mut self, reason: String, out: &mut Vec<Output>) {
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
        self.members.clear();
    }
}

pub(super) fn not_found(conn: ConnId) -> Output {
    Output::Send {
        conn,
        msg: ServerMsg::Error {
            code: "not_found",
            message: "no such participant",
        },
    }
}
