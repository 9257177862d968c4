//! Recording inside the room: the session's recording state as the room mirrors it, each
//! participant's consent, what every page is shown (`recording` messages) and the tap —
//! whose media is written right now. Pure like the rest of the room.
//!
//! A participant's media is written exactly while the recording runs, they consented
//! (on their own page, in this session) and the call is routed with them in the engine
//! ([`crate::domain::recording::recorded_now`]). Every change of that is one
//! [`Output::Tap`], after the consent that caused it has been stored ([`Output::Consent`]
//! comes first in the same batch).

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use super::{ConnId, Output, RoomState, forbidden};
pub use crate::domain::recording::RecordingJoin;
use crate::domain::recording::{self, Action, Decision, RecState, RecordingMode};
use crate::domain::{Role, Seat};
use crate::signaling::protocol::ServerMsg;

/// Most consent decisions one participant may make in one call (each is stored).
pub const MAX_DECISIONS: u32 = 20;

/// The `recording` message: the session's recording as one page sees it. Sent whenever
/// it changes, and to every page that enters the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingView {
    pub mode: RecordingMode,
    pub state: RecState,
    /// Something (anyone's media) is being written right now: every page shows it.
    pub writing: bool,
    /// Everyone in the call this page is shown (itself included).
    pub participants: Vec<RecordingEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordingEntry {
    pub id: String,
    /// Whether their media would be recorded, so they are asked (a listening supervisor
    /// publishes nothing and is not).
    pub asked: bool,
    /// Their latest decision (`null`: not answered yet).
    pub consent: Option<Decision>,
    /// Their media is being written now.
    pub recorded: bool,
}

/// What pages were last shown: the state and, per participant in the call, their
/// decision and whether they are recorded.
type Shown = (RecState, Vec<(String, Option<Decision>, bool)>);

/// The room's recording state.
#[derive(Debug, Default)]
pub(super) struct RoomRecording {
    /// Learnt from a joiner: the session may be recorded.
    mode: Option<RecordingMode>,
    state: RecState,
    consents: HashMap<String, Decision>,
    /// Participant → (address, user agent) of their latest page.
    peers: HashMap<String, (Option<String>, Option<String>)>,
    /// Participants whose tap is on (as last told).
    tapped: HashSet<String>,
    /// `always`: the start was asked for once.
    auto_started: bool,
    /// Decisions each participant made in this room (bounded: each one is stored).
    decisions: HashMap<String, u32>,
    /// Bumped on every change of what pages are shown; each socket's last one seen.
    generation: u64,
    seen: HashMap<ConnId, u64>,
    last: Option<Shown>,
}

impl RoomRecording {
    /// The recording is under way: an `auto` call is routed for it.
    pub(super) fn keeps_routed(&self) -> bool {
        self.mode.is_some() && self.state.is_active()
    }
}

impl RoomState {
    /// A joiner's view of the session's recording: the first one tells the room the mode
    /// and state (later changes come as signals); each brings its own consent and address.
    pub(super) fn recording_join(&mut self, participant_id: &str, j: Option<&RecordingJoin>) {
        let Some(j) = j else { return };
        let r = &mut self.recording;
        if r.mode.is_none() {
            r.mode = Some(j.mode);
            r.state = j.state;
        }
        if let Some(d) = j.consent {
            r.consents.entry(participant_id.to_owned()).or_insert(d);
        }
        r.peers.insert(
            participant_id.to_owned(),
            (j.ip.clone(), j.user_agent.clone()),
        );
    }

    /// The session's recording changed state (stored already). A room whose joiners
    /// brought no recording has a session that is never recorded: nothing to follow.
    pub(super) fn recording_changed(&mut self, state: RecState) {
        if self.recording.mode.is_some() {
            self.recording.state = state;
        }
    }

    /// An agent's page asks to start, pause, resume or stop: the room's owner carries it
    /// out against the stored state and tells the room the outcome.
    pub(super) fn recording_command(&mut self, i: usize, action: Action, out: &mut Vec<Output>) {
        let m = &self.members[i];
        let Some(conn) = m.conn else { return };
        if m.seat.role != Role::Agent {
            out.push(forbidden(conn, "only an agent can control the recording"));
            return;
        }
        out.push(Output::RecordingCommand {
            conn: Some(conn),
            by: Some(m.id.clone()),
            action,
        });
    }

    /// A participant answers the consent prompt (or withdraws, or changes their mind).
    pub(super) fn consent(&mut self, i: usize, decision: Decision, out: &mut Vec<Output>) {
        let m = &self.members[i];
        let Some(conn) = m.conn else { return };
        if self
            .recording
            .mode
            .is_none_or(|md| md == RecordingMode::Off)
        {
            out.push(forbidden(conn, "this session is not recorded"));
            return;
        }
        if !recording::needs_consent(m.seat) {
            out.push(forbidden(conn, "nothing of yours would be recorded"));
            return;
        }
        let current = self.recording.consents.get(&m.id).copied();
        if decision == Decision::Withdrawn && current != Some(Decision::Given) {
            out.push(forbidden(conn, "there is no consent to withdraw"));
            return;
        }
        if current == Some(decision) {
            return;
        }
        let n = self.recording.decisions.entry(m.id.clone()).or_default();
        if *n >= MAX_DECISIONS {
            out.push(super::incall::refuse(
                conn,
                "rate_limited",
                "too many consent changes in this call",
            ));
            return;
        }
        *n += 1;
        let (ip, user_agent) = self.recording.peers.get(&m.id).cloned().unwrap_or_default();
        self.recording.consents.insert(m.id.clone(), decision);
        out.push(Output::Consent {
            participant_id: m.id.clone(),
            decision,
            ip,
            user_agent,
        });
    }

    fn records(seat: Seat) -> bool {
        recording::needs_consent(seat)
    }

    /// After every input: the tap follows the rule, `always` starts when the call does,
    /// and every page in the call sees the recording as it now stands.
    pub(super) fn sync_recording(&mut self, out: &mut Vec<Output>) {
        let Some(mode) = self.recording.mode else {
            return;
        };
        if mode == RecordingMode::Off {
            return;
        }
        // `always`: the call starts when an agent and the customer are both in it.
        if mode == RecordingMode::Always
            && self.recording.state == RecState::Off
            && !self.recording.auto_started
            && !self.ended
        {
            let present = |r: Role| {
                self.members
                    .iter()
                    .any(|m| m.seat.role == r && m.in_call && !m.in_lobby)
            };
            if present(Role::Agent) && present(Role::Customer) {
                self.recording.auto_started = true;
                out.push(Output::RecordingCommand {
                    conn: None,
                    by: None,
                    action: Action::Start,
                });
            }
        }
        // The tap.
        let mut want: Vec<(String, bool)> = Vec::new();
        for m in &self.members {
            let routed = self.routed && self.engine.contains_key(&m.id);
            let on = !self.ended
                && m.in_call
                && !m.in_lobby
                && Self::records(m.seat)
                && recording::recorded_now(
                    self.recording.state,
                    self.recording.consents.get(&m.id).copied(),
                    routed,
                );
            want.push((m.id.clone(), on));
        }
        let gone: Vec<String> = self
            .recording
            .tapped
            .iter()
            .filter(|id| !want.iter().any(|(w, on)| w == *id && *on))
            .cloned()
            .collect();
        for id in gone {
            self.recording.tapped.remove(&id);
            out.push(Output::Tap {
                participant_id: id,
                on: false,
            });
        }
        for (id, on) in &want {
            if *on && self.recording.tapped.insert(id.clone()) {
                out.push(Output::Tap {
                    participant_id: id.clone(),
                    on: true,
                });
            }
        }
        // What pages are shown.
        let snapshot: Vec<(String, Option<Decision>, bool)> = self
            .members
            .iter()
            .filter(|m| m.in_call && !m.in_lobby)
            .map(|m| {
                (
                    m.id.clone(),
                    self.recording.consents.get(&m.id).copied(),
                    self.recording.tapped.contains(&m.id),
                )
            })
            .collect();
        let now = Some((self.recording.state, snapshot));
        if self.recording.last != now {
            self.recording.last = now;
            self.recording.generation += 1;
        }
        let generation = self.recording.generation;
        let writing = !self.recording.tapped.is_empty();
        for viewer in &self.members {
            let Some(conn) = viewer.conn else { continue };
            if !viewer.in_call || viewer.in_lobby {
                continue;
            }
            if self.recording.seen.get(&conn) == Some(&generation) {
                continue;
            }
            self.recording.seen.insert(conn, generation);
            let participants = self
                .members
                .iter()
                .filter(|s| s.in_call && !s.in_lobby)
                .filter(|s| s.id == viewer.id || s.seat.shown_to(viewer.seat))
                .map(|s| RecordingEntry {
                    id: s.id.clone(),
                    asked: Self::records(s.seat),
                    consent: self.recording.consents.get(&s.id).copied(),
                    recorded: self.recording.tapped.contains(&s.id),
                })
                .collect();
            out.push(Output::Send {
                conn,
                msg: ServerMsg::Recording(RecordingView {
                    mode,
                    state: self.recording.state,
                    writing,
                    participants,
                }),
            });
        }
        // Forget sockets that are gone.
        let live: HashSet<ConnId> = self.members.iter().filter_map(|m| m.conn).collect();
        self.recording.seen.retain(|c, _| live.contains(c));
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::domain::Mode;
    use crate::media::MediaMode;
    use crate::signaling::protocol::{ClientMsg, Media};
    use crate::signaling::room::{Input, Joiner, RoomConfig};

    fn room() -> RoomState {
        let mut r = RoomState::with_config(RoomConfig {
            media: Some(MediaMode::Auto),
            ..RoomConfig::new(Duration::from_secs(10))
        });
        r.set_call_id("s1");
        r
    }

    fn joiner(conn: ConnId, id: &str, role: Role, mode: RecordingMode) -> Joiner {
        Joiner {
            conn,
            participant_id: id.into(),
            role,
            mode: role.default_mode(),
            name: id.to_uppercase(),
            instance: format!("i-{id}"),
            media: Media {
                audio: true,
                video: true,
            },
            lobby: false,
            media_mode: Some(MediaMode::Auto),
            recording: Some(RecordingJoin {
                mode,
                state: RecState::Off,
                consent: None,
                ip: Some("192.0.2.7".into()),
                user_agent: Some("UA".into()),
            }),
        }
    }

    fn taps(out: &[Output]) -> Vec<(String, bool)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Tap { participant_id, on } => Some((participant_id.clone(), *on)),
                _ => None,
            })
            .collect()
    }

    fn views(out: &[Output], to: ConnId) -> Vec<RecordingView> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send {
                    conn,
                    msg: ServerMsg::Recording(v),
                } if *conn == to => Some(v.clone()),
                _ => None,
            })
            .collect()
    }

    fn msg(conn: ConnId, msg: ClientMsg) -> Input {
        Input::Message { conn, msg }
    }

    fn started(r: &mut RoomState, now: Instant) -> Vec<Output> {
        r.handle(
            Input::Signal(crate::services::bus::RoomSignal::Recording(
                crate::services::bus::RecordingNote {
                    state: RecState::Recording,
                },
            )),
            now,
        )
    }

    #[test]
    fn the_tap_opens_only_after_consent_and_follows_pause_and_withdrawal() {
        let now = Instant::now();
        let mut r = room();
        let od = RecordingMode::OnDemand;
        r.handle(Input::Join(joiner(1, "a", Role::Agent, od)), now);
        r.handle(Input::Join(joiner(2, "c", Role::Customer, od)), now);
        assert!(!r.is_routed(), "not routed before the recording");
        let out = started(&mut r, now);
        assert!(r.is_routed(), "a running recording routes an auto call");
        assert!(taps(&out).is_empty(), "nobody consented yet");
        let v = views(&out, 2);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].state, RecState::Recording);
        assert!(!v[0].writing);
        // The customer agrees: the consent is stored before the tap opens.
        let out = r.handle(
            msg(
                2,
                ClientMsg::Consent {
                    decision: Decision::Given,
                },
            ),
            now,
        );
        let consent_at = out
            .iter()
            .position(|o| matches!(o, Output::Consent { .. }))
            .expect("consent stored");
        let tap_at = out
            .iter()
            .position(|o| matches!(o, Output::Tap { .. }))
            .expect("tap");
        assert!(consent_at < tap_at);
        assert!(matches!(
            &out[consent_at],
            Output::Consent { ip: Some(ip), user_agent: Some(_), .. } if ip == "192.0.2.7"
        ));
        assert_eq!(taps(&out), vec![("c".to_owned(), true)]);
        assert!(
            views(&out, 1)[0].writing,
            "the agent's page sees the indicator"
        );
        // Pause closes it, resume opens it again.
        let out = r.handle(
            Input::Signal(crate::services::bus::RoomSignal::Recording(
                crate::services::bus::RecordingNote {
                    state: RecState::Paused,
                },
            )),
            now,
        );
        assert_eq!(taps(&out), vec![("c".to_owned(), false)]);
        assert!(r.is_routed(), "paused stays routed");
        assert!(!views(&out, 2)[0].writing);
        let out = started(&mut r, now);
        assert_eq!(taps(&out), vec![("c".to_owned(), true)]);
        // Withdrawal closes it at once; nothing repeats.
        let out = r.handle(
            msg(
                2,
                ClientMsg::Consent {
                    decision: Decision::Withdrawn,
                },
            ),
            now,
        );
        assert_eq!(taps(&out), vec![("c".to_owned(), false)]);
        let out = r.handle(msg(1, ClientMsg::Ping), now);
        assert!(taps(&out).is_empty());
        assert!(views(&out, 1).is_empty(), "no news, no message");
    }

    #[test]
    fn decline_keeps_the_call_and_listeners_are_not_asked() {
        let now = Instant::now();
        let mut r = room();
        let od = RecordingMode::OnDemand;
        r.handle(Input::Join(joiner(1, "a", Role::Agent, od)), now);
        r.handle(Input::Join(joiner(2, "c", Role::Customer, od)), now);
        r.handle(
            Input::Join(Joiner {
                mode: Some(Mode::Listen),
                ..joiner(3, "s", Role::Supervisor, od)
            }),
            now,
        );
        started(&mut r, now);
        let out = r.handle(
            msg(
                2,
                ClientMsg::Consent {
                    decision: Decision::Declined,
                },
            ),
            now,
        );
        assert!(taps(&out).is_empty());
        assert!(
            !out.iter().any(|o| matches!(o, Output::Close { .. })),
            "declining keeps the call"
        );
        let out = r.handle(
            msg(
                3,
                ClientMsg::Consent {
                    decision: Decision::Given,
                },
            ),
            now,
        );
        assert!(matches!(
            &out[..],
            [Output::Send {
                msg: ServerMsg::Error {
                    code: "forbidden",
                    ..
                },
                ..
            }]
        ));
        // The customer's page does not learn of the listener.
        let out = r.handle(
            msg(
                1,
                ClientMsg::Consent {
                    decision: Decision::Given,
                },
            ),
            now,
        );
        let v = &views(&out, 2)[0];
        assert!(v.participants.iter().all(|p| p.id != "s"));
        let a = v.participants.iter().find(|p| p.id == "a").unwrap();
        assert!(a.recorded && a.asked);
        let c = v.participants.iter().find(|p| p.id == "c").unwrap();
        assert_eq!(c.consent, Some(Decision::Declined));
        assert!(!c.recorded);
    }

    #[test]
    fn only_agents_command_and_always_starts_with_the_call() {
        let now = Instant::now();
        let mut r = room();
        let always = RecordingMode::Always;
        let out = r.handle(Input::Join(joiner(1, "a", Role::Agent, always)), now);
        assert!(
            !out.iter()
                .any(|o| matches!(o, Output::RecordingCommand { .. }))
        );
        let out = r.handle(Input::Join(joiner(2, "c", Role::Customer, always)), now);
        let starts: Vec<_> = out
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Output::RecordingCommand {
                        by: None,
                        action: Action::Start,
                        ..
                    }
                )
            })
            .collect();
        assert_eq!(starts.len(), 1);
        let out = r.handle(
            msg(
                2,
                ClientMsg::Recording {
                    action: Action::Pause,
                },
            ),
            now,
        );
        assert!(matches!(
            &out[..],
            [Output::Send {
                conn: 2,
                msg: ServerMsg::Error {
                    code: "forbidden",
                    ..
                }
            }]
        ));
        let out = r.handle(
            msg(
                1,
                ClientMsg::Recording {
                    action: Action::Pause,
                },
            ),
            now,
        );
        assert!(out.contains(&Output::RecordingCommand {
            conn: Some(1),
            by: Some("a".into()),
            action: Action::Pause
        }));
    }

    #[test]
    fn consent_changes_are_bounded() {
        let now = Instant::now();
        let mut r = room();
        let od = RecordingMode::OnDemand;
        r.handle(Input::Join(joiner(1, "a", Role::Agent, od)), now);
        let mut stored = 0;
        for k in 0..2 * MAX_DECISIONS {
            let decision = if k % 2 == 0 {
                Decision::Given
            } else {
                Decision::Withdrawn
            };
            let out = r.handle(msg(1, ClientMsg::Consent { decision }), now);
            stored += out
                .iter()
                .filter(|o| matches!(o, Output::Consent { .. }))
                .count() as u32;
        }
        assert_eq!(stored, MAX_DECISIONS);
        // The last one stored was a withdrawal: agreeing again is over the bound.
        let out = r.handle(
            msg(
                1,
                ClientMsg::Consent {
                    decision: Decision::Given,
                },
            ),
            now,
        );
        assert!(matches!(
            &out[..],
            [Output::Send {
                msg: ServerMsg::Error {
                    code: "rate_limited",
                    ..
                },
                ..
            }]
        ));
    }

    #[test]
    fn a_room_without_recording_ignores_recording_signals() {
        let now = Instant::now();
        let mut r = room();
        r.handle(
            Input::Join(Joiner {
                recording: None,
                ..joiner(1, "a", Role::Agent, RecordingMode::Off)
            }),
            now,
        );
        let out = started(&mut r, now);
        assert!(!r.is_routed());
        assert!(views(&out, 1).is_empty() && taps(&out).is_empty());
    }

    #[test]
    fn the_end_closes_every_tap() {
        let now = Instant::now();
        let mut r = room();
        let od = RecordingMode::OnDemand;
        r.handle(Input::Join(joiner(1, "a", Role::Agent, od)), now);
        r.handle(Input::Join(joiner(2, "c", Role::Customer, od)), now);
        started(&mut r, now);
        for c in [1, 2] {
            r.handle(
                msg(
                    c,
                    ClientMsg::Consent {
                        decision: Decision::Given,
                    },
                ),
                now,
            );
        }
        let out = r.handle(msg(1, ClientMsg::End), now);
        let mut t = taps(&out);
        t.sort();
        assert_eq!(t, vec![("a".into(), false), ("c".into(), false)]);
    }
}
