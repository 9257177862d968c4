//! The session lifecycle as a pure state machine: `created → waiting → active → ended`.
//!
//! * `created`: links minted, nobody has joined yet.
//! * `waiting`: someone has joined, but not an agent and the customer together.
//! * `active`: at least one agent and the customer are present (experts and supervisors
//!   may be there too; they do not make a call active on their own).
//! * `ended`: terminal; every link is dead.
//!
//! A session nobody is in ends as `expired` once its expiry passes; a call in progress is
//! not cut at expiry, it ends when both have left or someone ends it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Created,
    Waiting,
    Active,
    Ended,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Created,
        Status::Waiting,
        Status::Active,
        Status::Ended,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Waiting => "waiting",
            Status::Active => "active",
            Status::Ended => "ended",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

pub use super::role::Role;

/// What can happen to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Joined(Role),
    Left(Role),
    End(String),
    Tick,
}

/// The machine's view of one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub status: Status,
    /// How many participants of each role are present, indexed like [`Role::ALL`].
    pub present: [u32; 4],
    pub expires_at: DateTime<Utc>,
}

/// What the caller must persist after a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub from: Status,
    pub to: Status,
    /// Set when this step ended the session.
    pub end_reason: Option<String>,
}

impl Step {
    pub fn changed(&self) -> bool {
        self.from != self.to
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MachineError {
    #[error("the session has ended")]
    Ended,
}

pub const REASON_EXPIRED: &str = "expired";

impl Machine {
    fn idx(role: Role) -> usize {
        Role::ALL.iter().position(|r| *r == role).unwrap_or(0)
    }

    /// Participants of `role` present now.
    pub fn count(&self, role: Role) -> u32 {
        self.present[Self::idx(role)]
    }

    /// Nobody is present.
    pub fn nobody(&self) -> bool {
        self.present.iter().all(|n| *n == 0)
    }

    fn present_status(&self) -> Status {
        if self.count(Role::Agent) > 0 && self.count(Role::Customer) > 0 {
            Status::Active
        } else {
            Status::Waiting
        }
    }

    fn set_present(&mut self, role: Role, present: bool) {
        let n = &mut self.present[Self::idx(role)];
        *n = if present {
            n.saturating_add(1)
        } else {
            n.saturating_sub(1)
        };
    }

    /// Applies one input at `now`.
    pub fn apply(&mut self, input: Input, now: DateTime<Utc>) -> Result<Step, MachineError> {
        let from = self.status;
        match input {
            Input::Joined(role) => {
                if from == Status::Ended {
                    return Err(MachineError::Ended);
                }
                self.set_present(role, true);
                self.status = self.present_status();
                Ok(Step {
                    from,
                    to: self.status,
                    end_reason: None,
                })
            }
            Input::Left(role) => {
                if from == Status::Ended {
                    // Leaving an ended call is a no-op, not an error: sockets close late.
                    self.set_present(role, false);
                    return Ok(Step {
                        from,
                        to: from,
                        end_reason: None,
                    });
                }
                self.set_present(role, false);
                self.status = self.present_status();
                Ok(Step {
                    from,
                    to: self.status,
                    end_reason: None,
                })
            }
            Input::End(reason) => {
                if from == Status::Ended {
                    return Err(MachineError::Ended);
                }
                self.status = Status::Ended;
                self.present = [0; 4];
                Ok(Step {
                    from,
                    to: Status::Ended,
                    end_reason: Some(reason),
                })
            }
            Input::Tick => {
                let nobody = self.nobody();
                if from != Status::Ended && nobody && now >= self.expires_at {
                    self.status = Status::Ended;
                    return Ok(Step {
                        from,
                        to: Status::Ended,
                        end_reason: Some(REASON_EXPIRED.to_owned()),
                    });
                }
                Ok(Step {
                    from,
                    to: from,
                    end_reason: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn fresh() -> Machine {
        Machine {
            status: Status::Created,
            present: [0; 4],
            expires_at: t(100),
        }
    }

    #[test]
    fn full_call_lifecycle() {
        let mut m = fresh();
        let s = m.apply(Input::Joined(Role::Agent), t(1)).unwrap();
        assert_eq!((s.from, s.to), (Status::Created, Status::Waiting));
        let s = m.apply(Input::Joined(Role::Customer), t(2)).unwrap();
        assert_eq!(s.to, Status::Active);
        let s = m.apply(Input::Left(Role::Customer), t(3)).unwrap();
        assert_eq!(s.to, Status::Waiting);
        let s = m.apply(Input::Joined(Role::Customer), t(4)).unwrap();
        assert_eq!(s.to, Status::Active);
        let s = m.apply(Input::End("agent_hung_up".into()), t(5)).unwrap();
        assert_eq!(s.to, Status::Ended);
        assert_eq!(s.end_reason.as_deref(), Some("agent_hung_up"));
        assert!(m.nobody());
    }

    #[test]
    fn ended_is_terminal() {
        let mut m = fresh();
        m.apply(Input::End("x".into()), t(1)).unwrap();
        assert_eq!(
            m.apply(Input::Joined(Role::Agent), t(2)),
            Err(MachineError::Ended)
        );
        assert_eq!(
            m.apply(Input::End("y".into()), t(2)),
            Err(MachineError::Ended)
        );
        assert!(!m.apply(Input::Left(Role::Agent), t(2)).unwrap().changed());
        assert!(!m.apply(Input::Tick, t(500)).unwrap().changed());
    }

    #[test]
    fn unjoined_session_expires() {
        let mut m = fresh();
        assert!(!m.apply(Input::Tick, t(99)).unwrap().changed());
        let s = m.apply(Input::Tick, t(100)).unwrap();
        assert_eq!(s.to, Status::Ended);
        assert_eq!(s.end_reason.as_deref(), Some(REASON_EXPIRED));
    }

    #[test]
    fn call_in_progress_is_not_cut_at_expiry() {
        let mut m = fresh();
        m.apply(Input::Joined(Role::Agent), t(1)).unwrap();
        assert!(!m.apply(Input::Tick, t(200)).unwrap().changed());
        m.apply(Input::Left(Role::Agent), t(201)).unwrap();
        assert_eq!(m.status, Status::Waiting);
        assert_eq!(m.apply(Input::Tick, t(202)).unwrap().to, Status::Ended);
    }

    #[test]
    fn several_agents_and_guests() {
        let mut m = fresh();
        m.apply(Input::Joined(Role::Agent), t(1)).unwrap();
        m.apply(Input::Joined(Role::Expert), t(1)).unwrap();
        m.apply(Input::Joined(Role::Supervisor), t(1)).unwrap();
        assert_eq!(m.status, Status::Waiting, "no customer yet");
        m.apply(Input::Joined(Role::Customer), t(2)).unwrap();
        m.apply(Input::Joined(Role::Agent), t(3)).unwrap();
        assert_eq!(m.status, Status::Active);
        // A transfer: the first agent leaves, the second stays; the call stays active.
        assert!(!m.apply(Input::Left(Role::Agent), t(4)).unwrap().changed());
        assert_eq!(m.count(Role::Agent), 1);
        let s = m.apply(Input::Left(Role::Agent), t(5)).unwrap();
        assert_eq!(s.to, Status::Waiting);
        // Guests alone keep the session from expiring.
        m.apply(Input::Left(Role::Customer), t(6)).unwrap();
        assert!(!m.apply(Input::Tick, t(500)).unwrap().changed());
        m.apply(Input::Left(Role::Expert), t(501)).unwrap();
        m.apply(Input::Left(Role::Supervisor), t(501)).unwrap();
        assert_eq!(m.apply(Input::Tick, t(502)).unwrap().to, Status::Ended);
    }

    #[test]
    fn status_and_role_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        assert_eq!("agent".parse::<Role>(), Ok(Role::Agent));
        assert!("admin".parse::<Role>().is_err());
    }
}
