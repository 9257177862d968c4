//! Table tests of the pure room: every role and mode, who may send what to whom, who sees
//! whom, the lobby, transfer, takeover, grace periods.

use super::*;
use crate::domain::Grant;
use crate::signaling::protocol::{DeclineReason, WireMode};

const GRACE: Duration = Duration::from_secs(10);

fn joiner(conn: ConnId, id: &str, role: Role) -> Joiner {
    Joiner {
        conn,
        participant_id: id.to_owned(),
        role,
        mode: role.default_mode(),
        name: format!("{id}-name"),
        instance: format!("{id}-page1"),
        media: Media {
            audio: true,
            video: true,
        },
        lobby: false,
        media_mode: None,
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

fn records(out: &[Output]) -> Vec<(EventKind, &str)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Record {
                kind,
                participant_id,
                ..
            } => Some((*kind, participant_id.as_str())),
            _ => None,
        })
        .collect()
}

fn msg(conn: ConnId, msg: ClientMsg) -> Input {
    Input::Message { conn, msg }
}

fn offer(to: &str) -> ClientMsg {
    ClientMsg::Offer {
        to: to.into(),
        sdp: "v=0".into(),
        restart: false,
    }
}

/// The roster a page got in its last `joined`.
fn roster(out: &[Output], conn: ConnId) -> Vec<Entry> {
    sends_to(out, conn)
        .into_iter()
        .rev()
        .find_map(|m| match m {
            ServerMsg::Joined { roster, .. } => Some(roster.clone()),
            _ => None,
        })
        .expect("a joined message")
}

fn joined_entries(out: &[Output], conn: ConnId) -> Vec<Entry> {
    sends_to(out, conn)
        .into_iter()
        .filter_map(|m| match m {
            ServerMsg::ParticipantJoined { participant } => Some(participant.clone()),
            _ => None,
        })
        .collect()
}

/// Agent "a" (conn 1) and customer "c" (conn 2) in a call.
fn call(now: Instant) -> RoomState {
    let mut r = RoomState::new(GRACE);
    r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
    r.handle(Input::Join(joiner(2, "c", Role::Customer)), now);
    r
}

#[test]
fn one_to_one_call_announces_both_ways_with_pair_politeness() {
    let now = Instant::now();
    let mut r = RoomState::new(GRACE);
    let out = r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
    assert_eq!(presences(&out), vec![("a", Presence::Joined)]);
    assert!(roster(&out, 1).is_empty());
    let out = r.handle(Input::Join(joiner(2, "c", Role::Customer)), now);
    let c_view = roster(&out, 2);
    assert_eq!(c_view.len(), 1);
    assert_eq!(c_view[0].id, "a");
    assert_eq!(c_view[0].role, Some("agent"));
    assert_eq!(c_view[0].send, Grant::ALL);
    assert!(c_view[0].receive);
    // "c" > "a": the customer is the polite side of this pair, the agent impolite.
    assert!(c_view[0].polite);
    let a_new = joined_entries(&out, 1);
    assert_eq!(a_new.len(), 1);
    assert_eq!(a_new[0].id, "c");
    assert!(!a_new[0].polite);
    assert_eq!(a_new[0].state, Some("connected"));
}

#[test]
fn addressed_signals_reach_only_their_target_with_from() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(Input::Join(joiner(3, "e", Role::Expert)), now);
    let out = r.handle(msg(1, offer("c")), now);
    assert_eq!(out.len(), 1);
    assert!(matches!(sends_to(&out, 2)[..], [ServerMsg::Offer { from, .. }] if from == "a"));
    let out = r.handle(
        msg(
            3,
            ClientMsg::Candidate {
                to: "a".into(),
                candidate: crate::signaling::protocol::Candidate {
                    candidate: "candidate:1".into(),
                    sdp_mid: None,
                    sdp_m_line_index: None,
                    username_fragment: None,
                },
            },
        ),
        now,
    );
    assert!(matches!(sends_to(&out, 1)[..], [ServerMsg::Candidate { from, .. }] if from == "e"));
    // Unknown target: an error to the sender, nothing to anyone else.
    let out = r.handle(msg(1, offer("nobody")), now);
    assert!(matches!(
        sends_to(&out, 1)[..],
        [ServerMsg::Error {
            code: "forbidden",
            ..
        }]
    ));
    assert_eq!(out.len(), 1);
    // A stranger's messages are ignored.
    assert!(r.handle(msg(99, ClientMsg::Ping), now).is_empty());
}

#[test]
fn four_people_see_each_other_and_a_fifth_visible_one_is_refused() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(Input::Join(joiner(3, "e", Role::Expert)), now);
    let out = r.handle(Input::Join(joiner(4, "b", Role::Agent)), now);
    assert_eq!(roster(&out, 4).len(), 3);
    for conn in [1, 2, 3] {
        assert_eq!(joined_entries(&out, conn).len(), 1, "conn {conn} told");
    }
    let out = r.handle(Input::Join(joiner(5, "f", Role::Expert)), now);
    assert_eq!(closes(&out), vec![(5, CloseReason::RoomFull)]);
    assert!(presences(&out).is_empty());
    // A listening supervisor is not visible: it still fits.
    let out = r.handle(Input::Join(joiner(6, "s", Role::Supervisor)), now);
    assert!(closes(&out).is_empty());
    assert_eq!(roster(&out, 6).len(), 4);
}

#[test]
fn listening_supervisor_is_invisible_to_the_customer_and_sends_nothing() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(Input::Join(joiner(3, "e", Role::Expert)), now);
    let out = r.handle(Input::Join(joiner(4, "s", Role::Supervisor)), now);
    // The supervisor receives from everyone, sends nothing.
    let view = roster(&out, 4);
    assert_eq!(view.len(), 3);
    for e in &view {
        assert_eq!(e.send, Grant::NONE, "{} gets nothing from a listener", e.id);
        assert!(e.receive);
        assert!(!e.hidden);
    }
    // The agent knows who it is.
    let a = joined_entries(&out, 1);
    assert_eq!(a[0].role, Some("supervisor"));
    assert_eq!(a[0].mode, Some("listen"));
    assert!(!a[0].receive, "a listener sends nothing to show");
    // Customer and expert: a hidden entry without role or name; they send to it.
    for conn in [2, 3] {
        let e = &joined_entries(&out, conn)[0];
        assert!(e.hidden);
        assert_eq!((e.role, e.name.as_deref(), e.media), (None, None, None));
        assert_eq!(e.send, Grant::ALL);
        assert!(!e.receive);
    }
    let json = sends_to(&out, 2)[0].to_json();
    assert!(
        !json.contains("supervisor") && !json.contains("s-name"),
        "{json}"
    );
    // The supervisor's media state never reaches the customer.
    let out = r.handle(
        msg(
            4,
            ClientMsg::Media(Media {
                audio: false,
                video: false,
            }),
        ),
        now,
    );
    assert!(sends_to(&out, 2).is_empty());
    assert_eq!(sends_to(&out, 1).len(), 1);
}

#[test]
fn whisper_reaches_agents_only_and_barge_makes_the_supervisor_visible() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(Input::Join(joiner(3, "s", Role::Supervisor)), now);
    let out = r.handle(
        Input::Signal(RoomSignal::ModeChanged {
            participant_id: "s".into(),
            mode: Mode::Whisper,
        }),
        now,
    );
    // The agent now receives the supervisor's audio.
    let a = sends_to(&out, 1);
    assert!(
        matches!(a[..], [ServerMsg::ParticipantUpdated { participant }]
        if participant.mode == Some("whisper") && participant.receive)
    );
    // The customer's hidden entry does not change: nothing is sent to the customer.
    assert!(sends_to(&out, 2).is_empty());
    // The supervisor's own roster: audio to the agent, nothing to the customer.
    let view = roster(&out, 3);
    let to_a = view.iter().find(|e| e.id == "a").unwrap();
    let to_c = view.iter().find(|e| e.id == "c").unwrap();
    assert_eq!(
        to_a.send,
        Grant {
            audio: true,
            video: false
        }
    );
    assert_eq!(to_c.send, Grant::NONE);
    let out = r.handle(
        msg(
            3,
            ClientMsg::SetMode {
                participant_id: "s".into(),
                mode: WireMode::Barge,
            },
        ),
        now,
    );
    assert!(out.contains(&Output::SetMode {
        participant_id: "s".into(),
        mode: Mode::Barge
    }));
    let c = sends_to(&out, 2);
    assert!(
        matches!(c[..], [ServerMsg::ParticipantUpdated { participant }]
        if participant.role == Some("supervisor") && !participant.hidden && participant.receive)
    );
}

#[test]
fn who_may_do_what() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(Input::Join(joiner(3, "e", Role::Expert)), now);
    r.handle(Input::Join(joiner(4, "s", Role::Supervisor)), now);
    let forbidden_for = |r: &mut RoomState, conn: ConnId, m: ClientMsg| {
        let out = r.handle(msg(conn, m.clone()), now);
        assert!(
            matches!(
                sends_to(&out, conn)[..],
                [ServerMsg::Error {
                    code: "forbidden",
                    ..
                }]
            ),
            "{conn} {m:?}: {out:?}"
        );
        assert_eq!(out.len(), 1, "nothing else changes");
    };
    // Only agents end; experts, customers and supervisors may not.
    for conn in [2, 3, 4] {
        forbidden_for(&mut r, conn, ClientMsg::End);
    }
    // Only the customer declines.
    for conn in [1, 3, 4] {
        forbidden_for(
            &mut r,
            conn,
            ClientMsg::Decline {
                reason: DeclineReason::Busy,
                message: None,
            },
        );
    }
    // Only agents admit, deny and set the lobby message.
    for conn in [2, 3, 4] {
        forbidden_for(
            &mut r,
            conn,
            ClientMsg::Admit {
                participant_id: "x".into(),
            },
        );
        forbidden_for(&mut r, conn, ClientMsg::LobbyMessage { text: "hi".into() });
    }
    // Modes: only for supervisors, set by agents or the supervisor itself.
    forbidden_for(
        &mut r,
        2,
        ClientMsg::SetMode {
            participant_id: "s".into(),
            mode: WireMode::Barge,
        },
    );
    forbidden_for(
        &mut r,
        1,
        ClientMsg::SetMode {
            participant_id: "e".into(),
            mode: WireMode::Barge,
        },
    );
    // A listener and the customer exchange no signaling in the customer's direction
    // of a pair that does not exist: two listeners.
    r.handle(Input::Join(joiner(5, "t", Role::Supervisor)), now);
    forbidden_for(&mut r, 4, offer("t"));
    // The agent ends: everyone is told and closed.
    let out = r.handle(msg(1, ClientMsg::End), now);
    assert!(matches!(out[0], Output::EndSession { .. }));
    assert_eq!(closes(&out).len(), 5);
    assert!(r.has_ended());
}

#[test]
fn lobby_keeps_the_customer_apart_until_admitted() {
    let now = Instant::now();
    let mut r = RoomState::new(GRACE);
    r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
    let mut c = joiner(2, "c", Role::Customer);
    c.lobby = true;
    let out = r.handle(Input::Join(c.clone()), now);
    assert!(
        matches!(sends_to(&out, 2)[..], [ServerMsg::Joined { lobby: true, roster, .. }] if roster.is_empty())
    );
    assert!(presences(&out).is_empty(), "waiting is not joining");
    assert_eq!(records(&out), vec![(EventKind::ParticipantWaiting, "c")]);
    assert!(matches!(sends_to(&out, 1)[..], [ServerMsg::Lobby { waiting }] if waiting.len() == 1));
    // Nothing reaches or leaves the lobby.
    let out = r.handle(msg(2, offer("a")), now);
    assert!(matches!(sends_to(&out, 2)[..], [ServerMsg::Error { .. }]));
    assert!(sends_to(&out, 1).is_empty());
    let out = r.handle(msg(1, offer("c")), now);
    assert!(sends_to(&out, 2).is_empty());
    // The lobby message reaches the waiting customer.
    let out = r.handle(
        msg(
            1,
            ClientMsg::LobbyMessage {
                text: "one minute\n".into(),
            },
        ),
        now,
    );
    assert!(
        matches!(sends_to(&out, 2)[..], [ServerMsg::LobbyMessage { text }] if text == "one minute")
    );
    // Admit: the customer gets the call, the agent a new participant, presence joined.
    let out = r.handle(
        msg(
            1,
            ClientMsg::Admit {
                participant_id: "c".into(),
            },
        ),
        now,
    );
    assert_eq!(presences(&out), vec![("c", Presence::Joined)]);
    assert_eq!(records(&out), vec![(EventKind::ParticipantAdmitted, "c")]);
    assert!(
        matches!(sends_to(&out, 2)[..], [ServerMsg::Joined { lobby: false, roster, .. }] if roster.len() == 1)
    );
    assert_eq!(joined_entries(&out, 1).len(), 1);
    // Admitted once: a reconnecting page does not wait again.
    r.handle(Input::Disconnected { conn: 2 }, now);
    c.conn = 3;
    let out = r.handle(Input::Join(c), now);
    assert!(matches!(
        sends_to(&out, 3)[..],
        [ServerMsg::Joined { lobby: false, .. }]
    ));
}

#[test]
fn deny_closes_the_waiting_customer() {
    let now = Instant::now();
    let mut r = RoomState::new(GRACE);
    r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
    let mut c = joiner(2, "c", Role::Customer);
    c.lobby = true;
    r.handle(Input::Join(c), now);
    let out = r.handle(
        msg(
            1,
            ClientMsg::Deny {
                participant_id: "c".into(),
            },
        ),
        now,
    );
    assert_eq!(closes(&out), vec![(2, CloseReason::Denied)]);
    assert_eq!(records(&out), vec![(EventKind::ParticipantDenied, "c")]);
    assert!(matches!(sends_to(&out, 1)[..], [ServerMsg::Lobby { waiting }] if waiting.is_empty()));
    // Admitting someone who is not waiting: not found.
    let out = r.handle(
        msg(
            1,
            ClientMsg::Admit {
                participant_id: "c".into(),
            },
        ),
        now,
    );
    assert!(matches!(
        sends_to(&out, 1)[..],
        [ServerMsg::Error {
            code: "not_found",
            ..
        }]
    ));
}

#[test]
fn decline_tells_the_agents_and_records_the_reason() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(Input::Join(joiner(3, "e", Role::Expert)), now);
    let out = r.handle(
        msg(
            2,
            ClientMsg::Decline {
                reason: DeclineReason::NotNow,
                message: Some("call me at 5".into()),
            },
        ),
        now,
    );
    assert_eq!(records(&out), vec![(EventKind::ParticipantDeclined, "c")]);
    assert!(
        matches!(sends_to(&out, 1)[0], ServerMsg::Declined { reason: "not_now", message: Some(m), .. } if m == "call me at 5")
    );
    // The expert is not an agent: no declined banner, but the roster update.
    assert!(matches!(
        sends_to(&out, 3)[..],
        [ServerMsg::ParticipantLeft {
            reason: "declined",
            ..
        }]
    ));
    assert_eq!(closes(&out), vec![(2, CloseReason::Normal)]);
    assert_eq!(presences(&out), vec![("c", Presence::Left)]);
}

#[test]
fn transfer_hands_over_after_the_warm_period_and_the_customer_stays() {
    let now = Instant::now();
    let mut r = RoomState::with_config(RoomConfig {
        grace: GRACE,
        transfer_warm: Duration::from_secs(5),
        max_visible: MAX_VISIBLE,
        ..RoomConfig::new(GRACE)
    });
    r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
    r.handle(Input::Join(joiner(2, "c", Role::Customer)), now);
    r.handle(
        Input::Signal(RoomSignal::TransferStarted { to: "b".into() }),
        now,
    );
    let out = r.handle(Input::Join(joiner(3, "b", Role::Agent)), now);
    assert!(out.contains(&Output::TransferComplete {
        to: "b".into(),
        from: vec!["a".into()]
    }));
    assert!(
        matches!(sends_to(&out, 1)[..], [.., ServerMsg::Transferred { to, warm_secs: 5 }] if to.id == "b")
    );
    assert_eq!(r.next_deadline(), Some(now + Duration::from_secs(5)));
    // Warm: all three talk until the deadline.
    assert!(
        r.handle(Input::Tick, now + Duration::from_secs(4))
            .is_empty()
    );
    let out = r.handle(Input::Tick, now + Duration::from_secs(5));
    assert_eq!(closes(&out), vec![(1, CloseReason::LinkRevoked)]);
    // Their TURN credentials end with their part in the call.
    assert!(out.contains(&Output::AccessEnded {
        participant_id: "a".into()
    }));
    assert_eq!(presences(&out), vec![("a", Presence::Left)]);
    for conn in [2, 3] {
        assert!(matches!(
            sends_to(&out, conn)[..],
            [ServerMsg::ParticipantLeft {
                reason: "transferred",
                ..
            }]
        ));
    }
    // The customer's connection to the new agent was never touched.
    assert!(closes(&out).iter().all(|(c, _)| *c == 1));
}

#[test]
fn removal_and_link_revocation_close_with_their_codes() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(Input::Join(joiner(3, "e", Role::Expert)), now);
    let out = r.handle(
        Input::Signal(RoomSignal::Removed {
            participant_id: "e".into(),
        }),
        now,
    );
    assert_eq!(closes(&out), vec![(3, CloseReason::Removed)]);
    assert!(matches!(
        sends_to(&out, 2)[..],
        [ServerMsg::ParticipantLeft {
            reason: "removed",
            ..
        }]
    ));
    let out = r.handle(
        Input::Signal(RoomSignal::LinkRevoked {
            participant_id: "c".into(),
        }),
        now,
    );
    assert_eq!(closes(&out), vec![(2, CloseReason::LinkRevoked)]);
    let out = r.handle(
        Input::Signal(RoomSignal::Ended {
            reason: "ended".into(),
        }),
        now,
    );
    assert!(matches!(sends_to(&out, 1)[..], [ServerMsg::Ended { .. }]));
    assert!(r.has_ended() && r.is_idle());
}

#[test]
fn grace_period_then_timeout_and_takeover() {
    let t0 = Instant::now();
    let mut r = call(t0);
    let out = r.handle(Input::Disconnected { conn: 2 }, t0);
    assert_eq!(presences(&out), vec![("c", Presence::Reconnecting)]);
    assert!(
        matches!(sends_to(&out, 1)[..], [ServerMsg::ParticipantUpdated { participant }] if participant.state == Some("reconnecting"))
    );
    assert_eq!(r.next_deadline(), Some(t0 + GRACE));
    // Back in time from the same page: updated, not joined (keep the connection).
    let out = r.handle(
        Input::Join(joiner(5, "c", Role::Customer)),
        t0 + Duration::from_secs(3),
    );
    assert_eq!(presences(&out), vec![("c", Presence::Joined)]);
    assert!(
        matches!(sends_to(&out, 1)[..], [ServerMsg::ParticipantUpdated { participant }] if participant.state == Some("connected"))
    );
    // A second tab takes over: the old socket is replaced, presence unchanged.
    let mut again = joiner(6, "c", Role::Customer);
    again.instance = "c-page2".into();
    let out = r.handle(Input::Join(again), t0 + Duration::from_secs(4));
    assert_eq!(closes(&out), vec![(5, CloseReason::Replaced)]);
    assert!(presences(&out).is_empty());
    assert!(matches!(
        sends_to(&out, 6)[..],
        [ServerMsg::Joined {
            took_over: true,
            ..
        }]
    ));
    // A new page: announced as joined so the agent makes a fresh connection.
    assert_eq!(joined_entries(&out, 1).len(), 1);
    // Gone for good after the grace period.
    r.handle(Input::Disconnected { conn: 6 }, t0 + Duration::from_secs(5));
    assert!(
        r.handle(Input::Tick, t0 + Duration::from_secs(14))
            .is_empty()
    );
    let out = r.handle(Input::Tick, t0 + Duration::from_secs(15));
    assert_eq!(presences(&out), vec![("c", Presence::Left)]);
    assert!(matches!(
        sends_to(&out, 1)[..],
        [ServerMsg::ParticipantLeft {
            reason: "timeout",
            ..
        }]
    ));
    // Hang up leaves the room to the others; the last one out makes it idle.
    let out = r.handle(msg(1, ClientMsg::HangUp), t0 + Duration::from_secs(16));
    assert_eq!(closes(&out), vec![(1, CloseReason::Normal)]);
    assert!(r.is_idle());
}

#[test]
fn joining_an_ended_room_is_closed() {
    let now = Instant::now();
    let mut r = call(now);
    r.handle(msg(1, ClientMsg::End), now);
    let out = r.handle(Input::Join(joiner(7, "c", Role::Customer)), now);
    assert_eq!(closes(&out), vec![(7, CloseReason::SessionEnded)]);
}

mod routed {
    //! The room's side of routed calls: when `auto` routes, what the engine is told, and
    //! what each page sees.
    use super::*;
    use crate::media::{Command, Event, MediaMode};

    fn room(mode: MediaMode) -> RoomState {
        let mut r = RoomState::with_config(RoomConfig {
            media: Some(mode),
            ..RoomConfig::new(GRACE)
        });
        r.set_call_id("s1");
        r
    }

    fn media(out: &[Output]) -> Vec<&Command> {
        out.iter()
            .filter_map(|o| match o {
                Output::Media { cmd, .. } => Some(cmd),
                _ => None,
            })
            .collect()
    }

    fn supervisor(conn: ConnId, id: &str, mode: Mode) -> Joiner {
        Joiner {
            mode: Some(mode),
            ..joiner(conn, id, Role::Supervisor)
        }
    }

    #[test]
    fn a_listening_supervisor_routes_an_auto_call_and_leaves_no_trace_for_the_customer() {
        let now = Instant::now();
        let mut r = room(MediaMode::Auto);
        r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
        let out = r.handle(Input::Join(joiner(2, "c", Role::Customer)), now);
        assert!(
            media(&out).is_empty(),
            "two visible people stay peer to peer"
        );
        assert!(!r.is_routed());
        let out = r.handle(Input::Join(supervisor(3, "s", Mode::Listen)), now);
        assert!(r.is_routed());
        let joins: Vec<&str> = media(&out)
            .iter()
            .filter_map(|c| match c {
                Command::Join { participant, .. } => Some(participant.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(joins.len(), 3, "{joins:?}");
        // Every page in the call hears that the call is routed.
        for conn in [1, 2, 3] {
            assert!(
                sends_to(&out, conn)
                    .iter()
                    .any(|m| matches!(m, ServerMsg::Routed { routed: true }))
                    || sends_to(&out, conn)
                        .iter()
                        .any(|m| matches!(m, ServerMsg::Joined { routed: true, .. })),
                "conn {conn}"
            );
        }
        // The customer never hears of the supervisor.
        for m in sends_to(&out, 2) {
            let json = m.to_json();
            assert!(!json.contains("\"s\""), "{json}");
        }
        // The engine's offer goes to its participant only.
        let out = r.handle(
            Input::Engine(Event::Offer {
                call: "s1".into(),
                participant: "c".into(),
                sdp: "v=0".into(),
            }),
            now,
        );
        assert!(matches!(
            sends_to(&out, 2)[..],
            [ServerMsg::MediaOffer { .. }]
        ));
        assert!(sends_to(&out, 1).is_empty());
        // Answers go to the engine with the session as the call.
        let out = r.handle(msg(2, ClientMsg::MediaAnswer { sdp: "v=0".into() }), now);
        assert!(matches!(
            media(&out)[..],
            [Command::Answer { call, participant, .. }] if call == "s1" && participant == "c"
        ));
    }

    #[test]
    fn mode_changes_reach_the_engine_and_a_routed_call_stays_routed() {
        let now = Instant::now();
        let mut r = room(MediaMode::Auto);
        r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
        r.handle(Input::Join(joiner(2, "c", Role::Customer)), now);
        let out = r.handle(Input::Join(supervisor(3, "s", Mode::Listen)), now);
        // The agent sees the listening supervisor in its roster (nothing flows between
        // them: the engine feeds the supervisor); the customer does not.
        assert!(
            sends_to(&out, 1).iter().any(|m| matches!(m,
                ServerMsg::ParticipantJoined { participant } if participant.id == "s" && !participant.hidden && participant.role == Some("supervisor"))),
            "{:?}",
            sends_to(&out, 1)
        );
        assert!(
            !sends_to(&out, 2)
                .iter()
                .any(|m| m.to_json().contains("\"s\""))
        );
        let out = r.handle(
            msg(
                1,
                ClientMsg::SetMode {
                    participant_id: "s".into(),
                    mode: WireMode::Whisper,
                },
            ),
            now,
        );
        assert!(
            media(&out)
                .iter()
                .any(|c| matches!(c, Command::SetSeat { participant, seat, .. } if participant == "s" && seat.mode == Some(Mode::Whisper)))
        );
        // Barge: visible, and three visible people would fit a mesh, but the call stays
        // routed (no second switch); the engine hears the new seat, nobody leaves it.
        let out = r.handle(
            msg(
                1,
                ClientMsg::SetMode {
                    participant_id: "s".into(),
                    mode: WireMode::Barge,
                },
            ),
            now,
        );
        assert!(r.is_routed());
        assert!(
            !media(&out)
                .iter()
                .any(|c| matches!(c, Command::Leave { .. }))
        );
        assert!(!out.iter().any(|o| matches!(
            o,
            Output::Send {
                msg: ServerMsg::Routed { .. },
                ..
            }
        )));
        // The supervisor leaves: still routed, the engine lets go of them only.
        let out = r.handle(msg(3, ClientMsg::HangUp), now);
        assert!(r.is_routed());
        let leaves: Vec<&str> = media(&out)
            .iter()
            .filter_map(|c| match c {
                Command::Leave { participant, .. } => Some(participant.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(leaves, ["s"]);
        // Someone joining later joins the routed call.
        let out = r.handle(Input::Join(joiner(4, "e", Role::Expert)), now);
        assert!(matches!(
            sends_to(&out, 4)[..],
            [ServerMsg::Joined { routed: true, .. }, ..]
        ));
    }

    #[test]
    fn p2p_never_routes_and_routed_always_does() {
        let now = Instant::now();
        let mut r = room(MediaMode::P2p);
        r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
        let out = r.handle(Input::Join(supervisor(3, "s", Mode::Listen)), now);
        assert!(media(&out).is_empty() && !r.is_routed());
        // Not routed: media messages are refused.
        let out = r.handle(msg(1, ClientMsg::MediaAnswer { sdp: "v=0".into() }), now);
        assert!(matches!(
            sends_to(&out, 1)[..],
            [ServerMsg::Error {
                code: "forbidden",
                ..
            }]
        ));

        let mut r = room(MediaMode::Routed);
        let out = r.handle(Input::Join(joiner(1, "a", Role::Agent)), now);
        assert!(r.is_routed());
        assert_eq!(media(&out).len(), 1);
    }

    #[test]
    fn the_sessions_own_mode_wins_over_the_servers() {
        let now = Instant::now();
        let mut r = room(MediaMode::Auto);
        let out = r.handle(
            Input::Join(Joiner {
                media_mode: Some(MediaMode::Routed),
                ..joiner(1, "a", Role::Agent)
            }),
            now,
        );
        assert!(r.is_routed());
        assert!(matches!(
            sends_to(&out, 1)[..],
            [ServerMsg::Joined { routed: true, .. }]
        ));
        // Without an engine on this node, nothing is routed whatever the session says.
        let mut r = RoomState::new(GRACE);
        r.handle(
            Input::Join(Joiner {
                media_mode: Some(MediaMode::Routed),
                ..joiner(1, "a", Role::Agent)
            }),
            now,
        );
        assert!(!r.is_routed());
    }

    #[test]
    fn routed_rooms_take_twelve_visible_participants() {
        let now = Instant::now();
        let mut r = room(MediaMode::Auto);
        for i in 0..12u64 {
            let out = r.handle(
                Input::Join(joiner(i + 1, &format!("e{i:02}"), Role::Expert)),
                now,
            );
            assert!(closes(&out).is_empty(), "{i}");
        }
        assert!(r.is_routed());
        let out = r.handle(Input::Join(joiner(99, "late", Role::Expert)), now);
        assert_eq!(closes(&out), vec![(99, CloseReason::RoomFull)]);
    }
}
