//! The in-call features of a room (issue 15): text chat, and later photos and quality
//! reports. Same rules as the rest of the room: pure, `now` in, outputs out.
//!
//! Chat follows "who sees whom": a message reaches every page in the call on which its
//! sender is shown (and the sender itself, as confirmation with the server's id and
//! time). A listening or whispering supervisor's messages therefore reach staff only and
//! are marked `internal`.

use std::time::Instant;

use super::{ConnId, Output, RoomState};
use crate::domain::EventKind;
use crate::domain::Role;
use crate::domain::quality::{Degradation, Report};
use crate::services::bus::{PrecheckNote, SnapshotNote};
use crate::signaling::protocol::{MAX_CHAT_CHARS, RateLimiter, ServerMsg, clean_chat};

/// Chat messages per second a participant may send, sustained.
pub const CHAT_PER_SEC: u32 = 5;
/// Chat messages a participant may send in a burst.
pub const CHAT_BURST: u32 = 10;

/// Least time between two accepted `stats` reports of one participant (pages send one
/// every 5 s).
pub const STATS_MIN_INTERVAL_MS: u64 = 2_000;
/// Most reports stored per participant (four hours at one every 5 s); later ones are still
/// shown to staff.
pub const MAX_STORED_REPORTS: u32 = 2_880;

/// Per-participant state of the in-call features.
#[derive(Debug, Clone, Default)]
pub(super) struct InCall {
    chat: Option<RateLimiter>,
    stats_at: Option<u64>,
    stored: u32,
    degradation: Degradation,
}

pub(super) fn refuse(conn: ConnId, code: &'static str, message: &'static str) -> Output {
    Output::Send {
        conn,
        msg: ServerMsg::Error { code, message },
    }
}

impl RoomState {
    /// Milliseconds on the room's own clock (for the rate limiters).
    pub(super) fn ms(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        u64::try_from(now.saturating_duration_since(epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// A pre-call check: agents and supervisors in the call see it (the participant is
    /// usually still on the pre-join page).
    pub(super) fn precheck(
        &self,
        participant_id: String,
        name: String,
        n: PrecheckNote,
        out: &mut Vec<Output>,
    ) {
        for m in &self.members {
            let Some(conn) = m.conn else { continue };
            if m.in_lobby || !matches!(m.seat.role, Role::Agent | Role::Supervisor) {
                continue;
            }
            out.push(Output::Send {
                conn,
                msg: ServerMsg::Precheck {
                    participant_id: participant_id.clone(),
                    name: name.clone(),
                    camera: n.camera,
                    microphone: n.microphone,
                    relay: crate::signaling::protocol::Relay {
                        udp: n.udp,
                        tcp: n.tcp,
                        tls: n.tls,
                    },
                },
            });
        }
    }

    /// A stored snapshot: staff in the call (everyone but customers) and its uploader see
    /// it at once.
    pub(super) fn snapshot(&self, n: SnapshotNote, out: &mut Vec<Output>) {
        let name = self
            .members
            .iter()
            .find(|m| m.id == n.participant_id)
            .map(|m| m.name.clone())
            .unwrap_or_default();
        for m in &self.members {
            let Some(conn) = m.conn else { continue };
            if m.in_lobby || (m.seat.role == Role::Customer && m.id != n.participant_id) {
                continue;
            }
            out.push(Output::Send {
                conn,
                msg: ServerMsg::Snapshot {
                    id: n.id.clone(),
                    from: n.participant_id.clone(),
                    name: name.clone(),
                    kind: n.kind.clone(),
                    content_type: n.content_type.clone(),
                    size: n.size,
                    sha256: n.sha256.clone(),
                    at: n.at.clone(),
                },
            });
        }
    }

    /// A quality report: stored, summarised to staff, `quality.degraded` past the
    /// threshold. Malformed or too frequent reports are refused with an `error` and change
    /// nothing.
    pub(super) fn stats(
        &mut self,
        i: usize,
        report: Option<Report>,
        now: Instant,
        out: &mut Vec<Output>,
    ) {
        let ms = self.ms(now);
        let Some(conn) = self.members[i].conn else {
            return;
        };
        let Some(report) = report else {
            out.push(refuse(
                conn,
                "invalid_stats",
                "a stats value is missing or out of bounds",
            ));
            return;
        };
        let st = &mut self.members[i].incall;
        if st
            .stats_at
            .is_some_and(|t| ms.saturating_sub(t) < STATS_MIN_INTERVAL_MS)
        {
            out.push(refuse(
                conn,
                "rate_limited",
                "one stats report every few seconds",
            ));
            return;
        }
        st.stats_at = Some(ms);
        let degraded = st.degradation.feed(&report);
        let store = st.stored < MAX_STORED_REPORTS;
        st.stored = st.stored.saturating_add(1);
        let c = report.compact();
        let me = &self.members[i];
        if store {
            out.push(Output::Quality {
                participant_id: me.id.clone(),
                sample: c,
            });
        }
        for m in &self.members {
            let Some(to) = m.conn else { continue };
            if m.id == me.id || m.in_lobby || !matches!(m.seat.role, Role::Agent | Role::Supervisor)
            {
                continue;
            }
            out.push(Output::Send {
                conn: to,
                msg: ServerMsg::Quality {
                    participant_id: me.id.clone(),
                    level: c.level.as_str(),
                    loss_permille: c.loss_permille,
                    rtt_ms: c.rtt_ms,
                    fps: c.fps,
                    limitation: c.limitation.as_str(),
                },
            });
        }
        if degraded {
            out.push(Output::Record {
                kind: EventKind::QualityDegraded,
                participant_id: me.id.clone(),
                data: serde_json::json!({
                    "loss": report.loss,
                    "rtt_ms": c.rtt_ms,
                    "jitter_ms": c.jitter_ms,
                    "fps": c.fps,
                    "reports": crate::domain::quality::DEGRADED_REPORTS,
                }),
            });
        }
    }

    pub(super) fn chat(&mut self, i: usize, raw: &str, now: Instant, out: &mut Vec<Output>) {
        let ms = self.ms(now);
        let Some(conn) = self.members[i].conn else {
            return;
        };
        // Refused messages cost a token too: a flood of over-long ones is still a flood.
        let allowed = self.members[i]
            .incall
            .chat
            .get_or_insert_with(|| RateLimiter::new(CHAT_PER_SEC, CHAT_BURST, ms))
            .allow(ms);
        if !allowed {
            out.push(refuse(
                conn,
                "rate_limited",
                "too many chat messages; slow down",
            ));
            return;
        }
        if raw.chars().count() > MAX_CHAT_CHARS {
            out.push(refuse(
                conn,
                "too_long",
                "a chat message has at most 2000 characters",
            ));
            return;
        }
        let Some(text) = clean_chat(raw) else {
            out.push(refuse(conn, "empty", "a chat message needs some text"));
            return;
        };
        let me = &self.members[i];
        let to = self
            .members
            .iter()
            .enumerate()
            .filter(|(k, m)| *k == i || (!m.in_lobby && me.seat.shown_to(m.seat)))
            .filter_map(|(_, m)| m.conn)
            .collect();
        out.push(Output::Chat {
            to,
            from: me.id.clone(),
            name: me.name.clone(),
            role: me.seat.role.as_str(),
            text,
            internal: !me.seat.is_visible(),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::signaling::protocol::{ClientMsg, Media};
    use crate::signaling::room::{Input, Joiner};

    fn join(room: &mut RoomState, conn: ConnId, id: &str, role: Role, now: Instant) {
        room.handle(
            Input::Join(Joiner {
                conn,
                participant_id: id.into(),
                role,
                mode: role.default_mode(),
                name: id.into(),
                instance: format!("{id}-i"),
                media: Media::default(),
                lobby: false,
                media_mode: None,
                recording: None,
            }),
            now,
        );
    }

    fn chat(room: &mut RoomState, conn: ConnId, text: &str, now: Instant) -> Vec<Output> {
        room.handle(
            Input::Message {
                conn,
                msg: ClientMsg::Chat { text: text.into() },
            },
            now,
        )
    }

    fn refused(out: &[Output]) -> Option<&'static str> {
        out.iter().find_map(|o| match o {
            Output::Send {
                msg: ServerMsg::Error { code, .. },
                ..
            } => Some(*code),
            _ => None,
        })
    }

    #[test]
    fn chat_goes_to_everyone_who_sees_the_sender_and_refills_at_five_per_second() {
        let t0 = Instant::now();
        let mut room = RoomState::new(Duration::from_secs(10));
        join(&mut room, 1, "a", Role::Agent, t0);
        join(&mut room, 2, "c", Role::Customer, t0);
        join(&mut room, 3, "s", Role::Supervisor, t0);
        let out = chat(&mut room, 2, "hi", t0);
        assert!(matches!(&out[..], [Output::Chat { to, internal: false, .. }] if to.len() == 3));
        // The listening supervisor reaches the agent and itself, not the customer.
        let out = chat(&mut room, 3, "psst", t0);
        assert!(matches!(&out[..], [Output::Chat { to, internal: true, .. }] if to == &vec![1, 3]));
        for _ in 0..9 {
            assert!(refused(&chat(&mut room, 2, "x", t0)).is_none());
        }
        assert_eq!(refused(&chat(&mut room, 2, "x", t0)), Some("rate_limited"));
        let later = t0 + Duration::from_millis(200);
        assert!(refused(&chat(&mut room, 2, "x", later)).is_none());
        assert_eq!(
            refused(&chat(&mut room, 1, &"x".repeat(MAX_CHAT_CHARS + 1), later)),
            Some("too_long")
        );
        assert_eq!(refused(&chat(&mut room, 1, "\u{1}", later)), Some("empty"));
    }
}
