//! The session lifecycle as a pure state machine: `created → waiting → active → ended`.
//!
//! * `created`: links minted, nobody has joined yet.
//! * `waiting`: someone has joined, but not both sides are present.
//! * `active`: agent and customer are both present.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Agent,
    Customer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agent => "agent",
            Role::Customer => "customer",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "agent" => Ok(Role::Agent),
            "customer" => Ok(Role::Customer),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    pub agent_present: bool,
    pub customer_present: bool,
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
    fn present_status(&self) -> Status {
        match (self.agent_present, self.customer_present) {
            (true, true) => Status::Active,
            _ => Status::Waiting,
        }
    }

    fn set_present(&mut self, role: Role, present: bool) {
        match role {
            Role::Agent => self.agent_present = present,
            Role::Customer => self.customer_present = present,
        }
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
                self.agent_present = false;
                self.customer_present = false;
                Ok(Step {
                    from,
                    to: Status::Ended,
                    end_reason: Some(reason),
                })
            }
            Input::Tick => {
                let nobody = !self.agent_present && !self.customer_present;
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
            agent_present: false,
            customer_present: false,
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
        assert!(!m.agent_present && !m.customer_present);
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
    fn status_and_role_round_trip() {
        for s in Status::ALL {
            assert_eq!(s.as_str().parse::<Status>(), Ok(s));
        }
        assert_eq!("agent".parse::<Role>(), Ok(Role::Agent));
        assert!("admin".parse::<Role>().is_err());
    }
}
