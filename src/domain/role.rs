//! Who a participant is in a call, and what each role may do and see.
//!
//! A role is one enum variant with its permissions. Supervisors also have a [`Mode`]:
//! `listen` (sees and hears everyone, publishes nothing, invisible to the customer),
//! `whisper` (heard by agents only, invisible to the customer) and `barge` (an ordinary
//! visible participant).

use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Runs the call; several agents may be in one session (transfer, a colleague).
    Agent,
    /// The person the conversation is with.
    Customer,
    /// An invited guest: colleague, specialist, interpreter. Sees, hears, is seen.
    Expert,
    /// Listens in, whispers to agents or barges in, depending on its [`Mode`].
    Supervisor,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Agent, Role::Customer, Role::Expert, Role::Supervisor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Customer => "customer",
            Role::Expert => "expert",
            Role::Supervisor => "supervisor",
        }
    }

    /// May end the session for everyone.
    pub fn can_end(self) -> bool {
        self == Role::Agent
    }

    /// May invite, remove and transfer participants, and set a supervisor's mode.
    pub fn can_manage(self) -> bool {
        self == Role::Agent
    }

    /// May admit or turn away someone waiting in the lobby.
    pub fn can_admit(self) -> bool {
        self == Role::Agent
    }

    /// May decline the call with a reason.
    pub fn can_decline(self) -> bool {
        self == Role::Customer
    }

    /// Roles that wait in the lobby of a session that has one.
    pub fn waits_in_lobby(self) -> bool {
        self == Role::Customer
    }

    /// Roles that can be added to a running session through an invitation.
    pub fn invitable(self) -> bool {
        matches!(self, Role::Agent | Role::Expert | Role::Supervisor)
    }

    /// The mode a participant of this role starts in (supervisors only).
    pub fn default_mode(self) -> Option<Mode> {
        match self {
            Role::Supervisor => Some(Mode::Listen),
            _ => None,
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A supervisor's presence in the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Listen,
    Whisper,
    Barge,
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Listen, Mode::Whisper, Mode::Barge];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Listen => "listen",
            Mode::Whisper => "whisper",
            Mode::Barge => "barge",
        }
    }
}

impl FromStr for Mode {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role together with its mode: what the visibility and media rules look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seat {
    pub role: Role,
    pub mode: Option<Mode>,
}

/// Which media one participant sends to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Grant {
    pub audio: bool,
    pub video: bool,
}

impl Grant {
    pub const ALL: Grant = Grant {
        audio: true,
        video: true,
    };
    pub const NONE: Grant = Grant {
        audio: false,
        video: false,
    };
    pub fn any(self) -> bool {
        self.audio || self.video
    }
}

impl Seat {
    pub fn new(role: Role, mode: Option<Mode>) -> Self {
        let mode = match role {
            Role::Supervisor => Some(mode.unwrap_or(Mode::Listen)),
            _ => None,
        };
        Seat { role, mode }
    }

    /// A supervisor listening or whispering: not part of the visible call.
    pub fn is_hidden_seat(self) -> bool {
        matches!(self.mode, Some(Mode::Listen | Mode::Whisper))
    }

    /// Counts toward the mesh limit of visible participants.
    pub fn is_visible(self) -> bool {
        !self.is_hidden_seat()
    }

    /// Whether `viewer` is told who this participant is (roster entry with role and name).
    /// A listening or whispering supervisor is known to agents and other supervisors only.
    pub fn shown_to(self, viewer: Seat) -> bool {
        !self.is_hidden_seat() || matches!(viewer.role, Role::Agent | Role::Supervisor)
    }

    /// What this participant sends to `to`.
    pub fn sends_to(self, to: Seat) -> Grant {
        match self.mode {
            Some(Mode::Listen) => Grant::NONE,
            Some(Mode::Whisper) => Grant {
                audio: to.role == Role::Agent || to.role == Role::Supervisor,
                video: false,
            },
            _ => Grant::ALL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(role: Role, mode: Option<Mode>) -> Seat {
        Seat::new(role, mode)
    }

    #[test]
    fn names_round_trip() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
        }
        assert!("owner".parse::<Role>().is_err());
        assert!("Listen".parse::<Mode>().is_err());
    }

    #[test]
    fn only_supervisors_have_a_mode() {
        assert_eq!(s(Role::Supervisor, None).mode, Some(Mode::Listen));
        assert_eq!(s(Role::Agent, Some(Mode::Barge)).mode, None);
    }

    #[test]
    fn permissions_per_role() {
        let table = [
            // role, end, manage, admit, decline, lobby, invitable
            (Role::Agent, true, true, true, false, false, true),
            (Role::Customer, false, false, false, true, true, false),
            (Role::Expert, false, false, false, false, false, true),
            (Role::Supervisor, false, false, false, false, false, true),
        ];
        for (r, end, manage, admit, decline, lobby, inv) in table {
            assert_eq!(r.can_end(), end, "{r} end");
            assert_eq!(r.can_manage(), manage, "{r} manage");
            assert_eq!(r.can_admit(), admit, "{r} admit");
            assert_eq!(r.can_decline(), decline, "{r} decline");
            assert_eq!(r.waits_in_lobby(), lobby, "{r} lobby");
            assert_eq!(r.invitable(), inv, "{r} invitable");
        }
    }

    #[test]
    fn who_sees_whom() {
        let agent = s(Role::Agent, None);
        let customer = s(Role::Customer, None);
        let expert = s(Role::Expert, None);
        for mode in [Mode::Listen, Mode::Whisper] {
            let sup = s(Role::Supervisor, Some(mode));
            assert!(sup.shown_to(agent));
            assert!(!sup.shown_to(customer), "{mode} hidden from customer");
            assert!(!sup.shown_to(expert), "{mode} hidden from expert");
            assert!(sup.shown_to(s(Role::Supervisor, None)));
            assert!(!sup.is_visible());
        }
        let barge = s(Role::Supervisor, Some(Mode::Barge));
        assert!(barge.shown_to(customer) && barge.is_visible());
        for a in [agent, customer, expert] {
            for b in [agent, customer, expert] {
                assert!(a.shown_to(b));
            }
        }
    }

    #[test]
    fn what_flows_where() {
        let agent = s(Role::Agent, None);
        let customer = s(Role::Customer, None);
        let listen = s(Role::Supervisor, Some(Mode::Listen));
        let whisper = s(Role::Supervisor, Some(Mode::Whisper));
        let barge = s(Role::Supervisor, Some(Mode::Barge));
        assert_eq!(listen.sends_to(agent), Grant::NONE);
        assert_eq!(listen.sends_to(customer), Grant::NONE);
        assert_eq!(
            whisper.sends_to(agent),
            Grant {
                audio: true,
                video: false
            }
        );
        assert_eq!(whisper.sends_to(customer), Grant::NONE);
        assert_eq!(barge.sends_to(customer), Grant::ALL);
        // Everyone else sends everything, to supervisors too (they must hear the call).
        assert_eq!(customer.sends_to(listen), Grant::ALL);
        assert_eq!(agent.sends_to(whisper), Grant::ALL);
    }
}
