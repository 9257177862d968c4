//! Who gets whose media in a routed call, and when a call is routed at all. Pure rules on
//! top of [`crate::domain::Seat`]; the engine's core asks them for every forwarded packet.

use crate::domain::{Grant, Seat};

/// The kind of a media track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Audio,
    Video,
}

impl Kind {
    pub const ALL: [Kind; 2] = [Kind::Audio, Kind::Video];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
        }
    }

    fn of(self, g: Grant) -> bool {
        match self {
            Kind::Audio => g.audio,
            Kind::Video => g.video,
        }
    }
}

/// Whether the engine forwards `publisher`'s media of `kind` to `subscriber`.
/// The domain rule (`Seat::sends_to`) decides: a listening supervisor's media goes nowhere,
/// a whisperer's audio goes to agents and supervisors only, everyone else's everywhere.
pub fn forwards(publisher: Seat, subscriber: Seat, kind: Kind) -> bool {
    kind.of(publisher.sends_to(subscriber))
}

/// Whether the engine accepts `kind` from `publisher` at all (forwards it to some seat).
/// Packets it would forward to nobody are dropped on arrival.
pub fn accepts(publisher: Seat, kind: Kind) -> bool {
    use crate::domain::Role;
    Role::ALL
        .iter()
        .any(|r| forwards(publisher, Seat::new(*r, None), kind))
}

/// A session's media mode (`media_mode` in the API, `[media] mode` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaMode {
    /// Peer to peer (a mesh of at most four visible participants) until the call needs the
    /// server: a supervisor listening or whispering, or more than four participants.
    #[default]
    Auto,
    /// Always peer to peer (the server never sees the media).
    P2p,
    /// Always through the server's media engine.
    Routed,
}

impl MediaMode {
    pub const ALL: [MediaMode; 3] = [MediaMode::Auto, MediaMode::P2p, MediaMode::Routed];

    pub fn as_str(self) -> &'static str {
        match self {
            MediaMode::Auto => "auto",
            MediaMode::P2p => "p2p",
            MediaMode::Routed => "routed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Most participants in a mesh before `auto` routes the call.
pub const MESH_LIMIT: usize = 4;
/// Most participants (of every role) in one routed call.
pub const ROUTED_LIMIT: usize = 12;

/// Whether a call with these seats (everyone in the call, hidden or not) goes through the
/// engine. `auto` routes when a supervisor listens or whispers (only the engine can hide
/// them from the customer at the network level), when more than [`MESH_LIMIT`] take part,
/// or while the session's recording is under way (`recording`: running or paused; only the
/// server can write the media). `p2p` never routes, so a recording cannot start there.
pub fn routed(mode: MediaMode, seats: &[Seat], recording: bool) -> bool {
    match mode {
        MediaMode::P2p => false,
        MediaMode::Routed => true,
        MediaMode::Auto => {
            recording || seats.len() > MESH_LIMIT || seats.iter().any(|s| s.is_hidden_seat())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Mode, Role};

    fn s(role: Role, mode: Option<Mode>) -> Seat {
        Seat::new(role, mode)
    }

    #[test]
    fn listen_supervisor_receives_everything_and_sends_nothing() {
        let sup = s(Role::Supervisor, Some(Mode::Listen));
        let others = [
            s(Role::Agent, None),
            s(Role::Customer, None),
            s(Role::Expert, None),
            s(Role::Supervisor, Some(Mode::Barge)),
        ];
        for other in others {
            let r = other.role;
            for k in Kind::ALL {
                assert!(!forwards(sup, other, k), "listen → {r} {k:?}");
                assert!(forwards(other, sup, k), "{r} → listen {k:?}");
            }
        }
        assert!(!accepts(sup, Kind::Audio) && !accepts(sup, Kind::Video));
    }

    #[test]
    fn whisper_reaches_agents_only_and_never_the_customer() {
        let sup = s(Role::Supervisor, Some(Mode::Whisper));
        let agent = s(Role::Agent, None);
        let customer = s(Role::Customer, None);
        let expert = s(Role::Expert, None);
        assert!(forwards(sup, agent, Kind::Audio));
        assert!(!forwards(sup, agent, Kind::Video));
        for other in [customer, expert] {
            for k in Kind::ALL {
                assert!(!forwards(sup, other, k), "{other:?} {k:?}");
            }
        }
        assert!(accepts(sup, Kind::Audio) && !accepts(sup, Kind::Video));
        // The customer's media still reaches the whisperer.
        assert!(forwards(customer, sup, Kind::Video));
    }

    #[test]
    fn barge_is_an_ordinary_participant() {
        let sup = s(Role::Supervisor, Some(Mode::Barge));
        for r in [Role::Agent, Role::Customer, Role::Expert] {
            for k in Kind::ALL {
                assert!(forwards(sup, s(r, None), k));
                assert!(forwards(s(r, None), sup, k));
            }
        }
    }

    #[test]
    fn visible_roles_forward_everything_to_each_other() {
        for a in [Role::Agent, Role::Customer, Role::Expert] {
            for b in [Role::Agent, Role::Customer, Role::Expert] {
                for k in Kind::ALL {
                    assert!(forwards(s(a, None), s(b, None), k));
                }
            }
        }
    }

    #[test]
    fn when_auto_routes() {
        let agent = s(Role::Agent, None);
        let customer = s(Role::Customer, None);
        let expert = s(Role::Expert, None);
        let two = [agent, customer];
        assert!(!routed(MediaMode::Auto, &two, false));
        assert!(routed(MediaMode::Routed, &two, false));
        for mode in [Mode::Listen, Mode::Whisper] {
            let with_sup = [agent, customer, s(Role::Supervisor, Some(mode))];
            assert!(routed(MediaMode::Auto, &with_sup, false), "{mode}");
            assert!(!routed(MediaMode::P2p, &with_sup, false), "{mode}");
        }
        let barge = [agent, customer, s(Role::Supervisor, Some(Mode::Barge))];
        assert!(!routed(MediaMode::Auto, &barge, false));
        let four = [agent, customer, expert, expert];
        assert!(!routed(MediaMode::Auto, &four, false));
        let five = [agent, customer, expert, expert, expert];
        assert!(routed(MediaMode::Auto, &five, false));
    }

    #[test]
    fn a_running_recording_routes_under_auto_only() {
        let two = [s(Role::Agent, None), s(Role::Customer, None)];
        assert!(!routed(MediaMode::Auto, &two, false));
        assert!(routed(MediaMode::Auto, &two, true));
        assert!(!routed(MediaMode::P2p, &two, true));
        assert!(routed(MediaMode::Routed, &two, true));
        // Nobody in the call: still the rule's answer; the room asks only with someone in.
        assert!(routed(MediaMode::Auto, &[], true));
    }

    #[test]
    fn media_modes_parse() {
        for m in MediaMode::ALL {
            assert_eq!(MediaMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(MediaMode::parse("sfu"), None);
    }
}
