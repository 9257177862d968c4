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
        // of switching a second time (docs/signaling.md §8a).
        let want = !self.ended && !seats.is_empty() && (self.routed || rules::routed(mode, &seats));
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
