//! Routed calls inside the room: when the call goes through the media engine, what the
//! engine is told (join, seat, leave, answers, candidates), and the engine's offers relayed
//! to the pages. Pure like the rest of the room: it emits [`Output::Media`] commands.

use super::{ConnId, Member, Output, RoomState, forbidden};
use crate::domain::Seat;
use crate::media::rules::{self, MediaMode};
use crate::media::{Command, Event};
use crate::signaling::protocol::ServerMsg;

impl RoomState {
    /// Names this room's call for the media engine (the session id).
    pub fn set_call_id(&mut self, id: &str) {
        self.call_id = id.to_owned();
    }

    /// The call's media mode: the session's own, else the server's; `None` when this node
    /// runs no media engine.
    fn media_mode(&self) -> Option<MediaMode> {
        self.cfg.media.map(|d| self.session_media.unwrap_or(d))
    }

    /// Whether the call goes through the media engine now.
    pub fn is_routed(&self) -> bool {
        self.routed
    }

    /// How the server's quality verdicts name a member: the role when nobody else in the
    /// room has it, else the display name.
    pub fn quality_label(&self, id: &str) -> Option<String> {
        let m = self.members.iter().find(|m| m.id == id)?;
        let same = self
            .members
            .iter()
            .filter(|o| o.seat.role == m.seat.role)
            .count();
        let role = m.seat.role.as_str();
        Some(crate::services::server_quality::label(role, &m.name, same).to_owned())
    }

    /// Most visible participants at once: the mesh's limit, or the routed one when the
    /// engine may take the call.
    pub(super) fn max_visible(&self) -> usize {
        match self.media_mode() {
            Some(MediaMode::Auto | MediaMode::Routed) => self.cfg.max_routed,
            _ => self.cfg.max_visible,
        }
    }

    pub(super) fn to_engine(
        &self,
        i: usize,
        out: &mut Vec<Output>,
        make: impl FnOnce(String, String) -> Command,
    ) {
        let me = &self.members[i];
        if !self.engine.contains_key(&me.id) {
            if let Some(conn) = me.conn {
                out.push(forbidden(conn, "the call is not routed"));
            }
            return;
        }
        out.push(Output::Media {
            conn: me.conn,
            cmd: make(self.call_id.clone(), me.id.clone()),
        });
    }

    pub(super) fn engine_event(&mut self, e: Event, out: &mut Vec<Output>) {
        if let Event::Offer {
            participant, sdp, ..
        } = e
            && self.engine.contains_key(&participant)
            && let Some(conn) = self.conn_of(&participant)
        {
            out.push(Output::Send {
                conn,
                msg: ServerMsg::MediaOffer { sdp },
            });
        }
    }

    /// Whether a call with these seats may run peer to peer instead of through the engine:
    /// mode `auto`, no hidden participant (only the engine hides one from the customer at
    /// the network level) and no more visible participants than a mesh carries.
    fn mesh_can_carry(mode: MediaMode, seats: &[Seat], max_visible: usize) -> bool {
        mode == MediaMode::Auto
            && !seats.iter().any(|s| s.is_hidden_seat())
            && seats.len() <= max_visible.min(rules::MESH_LIMIT)
    }

    /// The engine refused `participant`. When the node is full and a mesh can carry the
    /// call, the call goes back to peer to peer (the next `sync_media` takes everyone out of
    /// the engine and tells the pages `routed: false`); otherwise the participant stays
    /// without engine media (its page got `media_unavailable`) and is not asked for again.
    pub(super) fn engine_refused(&mut self, participant: &str, node_full: bool) {
        tracing::info!(participant_id = %participant, node_full, "the media engine refused a participant");
        if node_full {
            self.engine_full = true;
        }
    }

    fn conn_of(&self, id: &str) -> Option<ConnId> {
        self.members
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.conn)
    }

    fn in_call(m: &Member) -> bool {
        m.in_call && !m.in_lobby
    }

    /// Decides whether the call is routed now. On a change every page's roster follows
    /// (hidden participants disappear from the pages they are hidden from before anything
    /// else is said about them) and every page in the call gets `routed`. `fresh` is a
    /// member whose own `joined` and announcement are still to come: it is left out here.
    pub(super) fn decide_routing(&mut self, fresh: Option<usize>, out: &mut Vec<Output>) {
        let Some(mode) = self.media_mode() else {
            return;
        };
        let seats: Vec<Seat> = self
            .members
            .iter()
            .filter(|m| Self::in_call(m))
            .map(|m| m.seat)
            .collect();
        // Once routed, a call stays routed while anyone is in it (`auto` too): when the
        // supervisor leaves or barges, the pages keep their one engine connection instead
        // of switching a second time (docs/signaling.md §8a). A full node sends a call a
        // mesh can carry back to peer to peer.
        let fall_back =
            self.engine_full && Self::mesh_can_carry(mode, &seats, self.cfg.max_visible);
        let want = !self.ended
            && !seats.is_empty()
            && (self.routed || rules::routed(mode, &seats, self.recording.keeps_routed()))
            && !fall_back;
        if want == self.routed {
            return;
        }
        let before: Vec<Vec<_>> = (0..self.members.len())
            .map(|i| self.entries_of(i))
            .collect();
        self.routed = want;
        for (k, b) in before.iter().enumerate() {
            if Some(k) == fresh {
                continue;
            }
            let subject = &self.members[k];
            for (v, viewer) in self.members.iter().enumerate() {
                let Some(conn) = viewer.conn else { continue };
                if v == k || Some(v) == fresh {
                    continue;
                }
                let now = super::entry_for(viewer, subject, want);
                let msg = match (b.get(v).cloned().flatten(), now) {
                    (None, Some(e)) => ServerMsg::ParticipantJoined { participant: e },
                    (Some(old), Some(e)) if old != e => {
                        ServerMsg::ParticipantUpdated { participant: e }
                    }
                    (Some(_), None) => ServerMsg::ParticipantLeft {
                        participant_id: subject.id.clone(),
                        reason: "hidden",
                    },
                    _ => continue,
                };
                out.push(Output::Send { conn, msg });
            }
        }
        for (i, m) in self.members.iter().enumerate() {
            if let Some(conn) = m.conn
                && Self::in_call(m)
                && Some(i) != fresh
            {
                out.push(Output::Send {
                    conn,
                    msg: ServerMsg::Routed { routed: want },
                });
            }
        }
    }

    /// Brings the routing decision and the engine's participants in line with the room.
    pub(super) fn sync_media(&mut self, out: &mut Vec<Output>) {
        if self.cfg.media.is_none() {
            return;
        }
        self.decide_routing(None, out);
        let desired: Vec<(String, Seat, String, Option<ConnId>)> = if self.routed {
            self.members
                .iter()
                .filter(|m| Self::in_call(m))
                .map(|m| (m.id.clone(), m.seat, m.instance.clone(), m.conn))
                .collect()
        } else {
            Vec::new()
        };
        let gone: Vec<String> = self
            .engine
            .keys()
            .filter(|id| !desired.iter().any(|d| &d.0 == *id))
            .cloned()
            .collect();
        for id in gone {
            self.engine.remove(&id);
            out.push(Output::Media {
                conn: None,
                cmd: Command::Leave {
                    call: self.call_id.clone(),
                    participant: id,
                },
            });
        }
        for (id, seat, instance, conn) in desired {
            let cmd = match self.engine.get(&id) {
                Some((_, inst)) if *inst != instance => Some(Command::Join {
                    call: self.call_id.clone(),
                    participant: id.clone(),
                    seat,
                }),
                None => Some(Command::Join {
                    call: self.call_id.clone(),
                    participant: id.clone(),
                    seat,
                }),
                Some((s, _)) if *s != seat => Some(Command::SetSeat {
                    call: self.call_id.clone(),
                    participant: id.clone(),
                    seat,
                }),
                Some(_) => None,
            };
            if let Some(cmd) = cmd {
                self.engine.insert(id, (seat, instance));
                out.push(Output::Media { conn, cmd });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Mode, Role};

    #[test]
    fn a_full_node_sends_only_calls_a_mesh_can_carry_back_to_peer_to_peer() {
        let agent = Seat::new(Role::Agent, None);
        let customer = Seat::new(Role::Customer, None);
        let listening = Seat::new(Role::Supervisor, Some(Mode::Listen));
        let four = [agent, customer, agent, customer];
        assert!(RoomState::mesh_can_carry(MediaMode::Auto, &four, 4));
        // Never a call with a hidden supervisor (the mesh would show them to the customer),
        // more than a mesh carries, or a call that asked to be routed.
        assert!(!RoomState::mesh_can_carry(
            MediaMode::Auto,
            &[agent, customer, listening],
            4
        ));
        assert!(!RoomState::mesh_can_carry(
            MediaMode::Auto,
            &[agent, customer, agent, customer, agent],
            12
        ));
        assert!(!RoomState::mesh_can_carry(
            MediaMode::Routed,
            &[agent, customer],
            4
        ));
    }
}
