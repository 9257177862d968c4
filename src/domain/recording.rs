//! When a call is recorded and whose media may be written: the recording's state machine,
//! consent decisions and the tap rule. Pure: no IO, no clock.
//!
//! ```text
//!  off ──start──▶ recording ◀──resume── paused
//!                    │  └──────pause──────▶ │
//!                    └──stop──▶ stopped ◀──stop┘
//!  stopped ──start (on_demand)──▶ recording
//! ```
//!
//! With `always` the server starts the recording when the call starts (agent and customer
//! in the call); agents may pause and resume it but neither start nor stop it themselves.

use std::fmt;

use crate::domain::media::{self, Kind, MediaMode};
use crate::domain::{EventKind, Seat};

/// A session's recording mode (`recording.mode` in the API, `[recording] mode` in config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingMode {
    /// Never recorded.
    #[default]
    Off,
    /// Recorded from the moment the call starts.
    Always,
    /// An agent starts, pauses, resumes and stops it.
    OnDemand,
}

impl RecordingMode {
    pub const ALL: [RecordingMode; 3] = [Self::Off, Self::Always, Self::OnDemand];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Always => "always",
            Self::OnDemand => "on_demand",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// Where a session's recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecState {
    /// Never started.
    #[default]
    Off,
    /// Running: consenting participants' media is being written.
    Recording,
    /// Held (a card number being read out): nothing is written, the call stays routed.
    Paused,
    /// Stopped; with `on_demand` it may be started again.
    Stopped,
}

impl RecState {
    pub const ALL: [RecState; 4] = [Self::Off, Self::Recording, Self::Paused, Self::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Recording => "recording",
            Self::Paused => "paused",
            Self::Stopped => "stopped",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Media is being written (for participants who consented).
    pub fn is_writing(self) -> bool {
        self == Self::Recording
    }

    /// The recording is under way (running or paused): the call stays routed, so a
    /// resume needs no switch of the media path, and participants are asked for consent.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Recording | Self::Paused)
    }
}

/// What an agent (or the server, for `always`) asks of the recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Start,
    Pause,
    Resume,
    Stop,
}

impl Action {
    pub const ALL: [Action; 4] = [Self::Start, Self::Pause, Self::Resume, Self::Stop];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Pause => "pause",
            Self::Resume => "resume",
            Self::Stop => "stop",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The timeline event a successful action appends.
    pub fn event(self) -> EventKind {
        match self {
            Self::Start => EventKind::RecordingStarted,
            Self::Pause => EventKind::RecordingPaused,
            Self::Resume => EventKind::RecordingResumed,
            Self::Stop => EventKind::RecordingStopped,
        }
    }
}

/// Who asks for an action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// An agent (call page, widget) or an API client.
    Staff,
    /// The server itself (`always`: the call started).
    Server,
}

/// Why an action is refused; the state stays as it was (and the call goes on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("recording is off for this session")]
    ModeOff,
    #[error("this session records always: the server starts and stops it")]
    Automatic,
    #[error("already recording")]
    AlreadyRecording,
    #[error("the recording is already paused")]
    AlreadyPaused,
    #[error("nothing is being recorded")]
    NotRecording,
}

/// The state after `action`, or why it is refused.
pub fn transition(
    mode: RecordingMode,
    state: RecState,
    action: Action,
    actor: Actor,
) -> Result<RecState, Refusal> {
    use {Action as A, RecState as S};
    if mode == RecordingMode::Off {
        return Err(Refusal::ModeOff);
    }
    if mode == RecordingMode::Always
        && actor == Actor::Staff
        && matches!(action, A::Start | A::Stop)
    {
        return Err(Refusal::Automatic);
    }
    match (action, state) {
        (A::Start, S::Recording | S::Paused) => Err(Refusal::AlreadyRecording),
        (A::Start, S::Off) => Ok(S::Recording),
        // A stopped `always` recording is not restarted by the server.
        (A::Start, S::Stopped) if mode == RecordingMode::OnDemand => Ok(S::Recording),
        (A::Start, S::Stopped) => Err(Refusal::Automatic),
        (A::Pause, S::Recording) => Ok(S::Paused),
        (A::Pause, S::Paused) => Err(Refusal::AlreadyPaused),
        (A::Resume, S::Paused) => Ok(S::Recording),
        (A::Resume, S::Recording) => Err(Refusal::AlreadyRecording),
        (A::Stop, S::Recording | S::Paused) => Ok(S::Stopped),
        (A::Pause | A::Resume | A::Stop, S::Off | S::Stopped) => Err(Refusal::NotRecording),
    }
}

/// Whether a recording can run at all under the session's media mode: only routed calls
/// are recorded, and `p2p` never routes.
pub fn allowed_under(media_mode: MediaMode) -> bool {
    media_mode != MediaMode::P2p
}

/// The media mode a session's call runs under: its own; else `auto` when it may be
/// recorded (so a recording can route it); else the server's.
pub fn media_mode_for(
    session: Option<MediaMode>,
    recording: RecordingMode,
    server: MediaMode,
) -> MediaMode {
    match (session, recording) {
        (Some(m), _) => m,
        (None, RecordingMode::Off) => server,
        (None, _) => MediaMode::Auto,
    }
}

/// A participant's answer to the consent prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Given,
    Declined,
    Withdrawn,
}

impl Decision {
    pub const ALL: [Decision; 3] = [Self::Given, Self::Declined, Self::Withdrawn];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Given => "given",
            Self::Declined => "declined",
            Self::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// Whether this decision lets the participant's media be written.
    pub fn consents(self) -> bool {
        self == Self::Given
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a participant in this seat would have media recorded, and so must be asked:
/// everyone who publishes something (a listening supervisor publishes nothing).
pub fn needs_consent(seat: Seat) -> bool {
    Kind::ALL.into_iter().any(|k| media::accepts(seat, k))
}

/// The tap rule: a participant's media is written now exactly when the recording runs,
/// they consented, and the call goes through the server (their media reaches it).
pub fn recorded_now(state: RecState, consent: Option<Decision>, routed: bool) -> bool {
    state.is_writing() && consent.is_some_and(Decision::consents) && routed
}

/// What the room learns of the session's recording with each joiner (read with their
/// credential; `None` on a joiner: the session is not recorded).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordingJoin {
    pub mode: RecordingMode,
    pub state: RecState,
    /// This participant's latest decision in the session.
    pub consent: Option<Decision>,
    /// Where the page connects from, for the consent record.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Mode, Role};

    const OD: RecordingMode = RecordingMode::OnDemand;

    fn go(mode: RecordingMode, from: RecState, a: Action) -> Result<RecState, Refusal> {
        transition(mode, from, a, Actor::Staff)
    }

    #[test]
    fn on_demand_runs_the_whole_cycle() {
        let mut s = RecState::Off;
        for (a, want) in [
            (Action::Start, RecState::Recording),
            (Action::Pause, RecState::Paused),
            (Action::Resume, RecState::Recording),
            (Action::Pause, RecState::Paused),
            (Action::Stop, RecState::Stopped),
            (Action::Start, RecState::Recording),
            (Action::Stop, RecState::Stopped),
        ] {
            s = go(OD, s, a).unwrap_or_else(|e| panic!("{a:?} from {s:?}: {e}"));
            assert_eq!(s, want, "{a:?}");
        }
    }

    #[test]
    fn twice_and_out_of_order_are_refused() {
        use RecState as S;
        assert_eq!(
            go(OD, S::Recording, Action::Start),
            Err(Refusal::AlreadyRecording)
        );
        assert_eq!(
            go(OD, S::Paused, Action::Start),
            Err(Refusal::AlreadyRecording)
        );
        assert_eq!(
            go(OD, S::Recording, Action::Resume),
            Err(Refusal::AlreadyRecording)
        );
        assert_eq!(
            go(OD, S::Paused, Action::Pause),
            Err(Refusal::AlreadyPaused)
        );
        for s in [S::Off, S::Stopped] {
            for a in [Action::Pause, Action::Resume, Action::Stop] {
                assert_eq!(go(OD, s, a), Err(Refusal::NotRecording), "{a:?} from {s:?}");
            }
        }
    }

    #[test]
    fn off_refuses_everything() {
        for s in RecState::ALL {
            for a in Action::ALL {
                for actor in [Actor::Staff, Actor::Server] {
                    assert_eq!(
                        transition(RecordingMode::Off, s, a, actor),
                        Err(Refusal::ModeOff)
                    );
                }
            }
        }
    }

    #[test]
    fn always_is_started_by_the_server_and_only_paused_by_agents() {
        let m = RecordingMode::Always;
        assert_eq!(
            transition(m, RecState::Off, Action::Start, Actor::Server),
            Ok(RecState::Recording)
        );
        assert_eq!(
            transition(m, RecState::Off, Action::Start, Actor::Staff),
            Err(Refusal::Automatic)
        );
        assert_eq!(
            transition(m, RecState::Recording, Action::Stop, Actor::Staff),
            Err(Refusal::Automatic)
        );
        assert_eq!(
            transition(m, RecState::Recording, Action::Pause, Actor::Staff),
            Ok(RecState::Paused)
        );
        assert_eq!(
            transition(m, RecState::Paused, Action::Resume, Actor::Staff),
            Ok(RecState::Recording)
        );
        // Once stopped (the call ended), the server does not start it again.
        assert_eq!(
            transition(m, RecState::Stopped, Action::Start, Actor::Server),
            Err(Refusal::Automatic)
        );
    }

    #[test]
    fn actions_name_their_events() {
        let kinds: std::collections::HashSet<_> = Action::ALL.iter().map(|a| a.event()).collect();
        assert_eq!(kinds.len(), 4);
        assert_eq!(Action::Pause.event().as_str(), "recording.paused");
    }

    #[test]
    fn names_round_trip() {
        for m in RecordingMode::ALL {
            assert_eq!(RecordingMode::parse(m.as_str()), Some(m));
        }
        for s in RecState::ALL {
            assert_eq!(RecState::parse(s.as_str()), Some(s));
        }
        for a in Action::ALL {
            assert_eq!(Action::parse(a.as_str()), Some(a));
        }
        for d in Decision::ALL {
            assert_eq!(Decision::parse(d.as_str()), Some(d));
        }
        assert_eq!(RecordingMode::parse("ondemand"), None);
    }

    #[test]
    fn the_tap_needs_running_consent_and_routing() {
        use Decision as D;
        use RecState as S;
        assert!(recorded_now(S::Recording, Some(D::Given), true));
        for s in [S::Off, S::Paused, S::Stopped] {
            assert!(!recorded_now(s, Some(D::Given), true), "{s:?}");
        }
        for c in [None, Some(D::Declined), Some(D::Withdrawn)] {
            assert!(!recorded_now(S::Recording, c, true), "{c:?}");
        }
        assert!(!recorded_now(S::Recording, Some(D::Given), false));
    }

    #[test]
    fn only_publishers_are_asked() {
        for r in [Role::Agent, Role::Customer, Role::Expert] {
            assert!(needs_consent(Seat::new(r, None)));
        }
        assert!(!needs_consent(Seat::new(
            Role::Supervisor,
            Some(Mode::Listen)
        )));
        assert!(needs_consent(Seat::new(
            Role::Supervisor,
            Some(Mode::Whisper)
        )));
        assert!(needs_consent(Seat::new(
            Role::Supervisor,
            Some(Mode::Barge)
        )));
    }

    #[test]
    fn a_recordable_session_without_a_media_mode_runs_auto() {
        let (off, od) = (RecordingMode::Off, RecordingMode::OnDemand);
        assert_eq!(media_mode_for(None, off, MediaMode::P2p), MediaMode::P2p);
        assert_eq!(media_mode_for(None, od, MediaMode::P2p), MediaMode::Auto);
        let p2p = Some(MediaMode::P2p);
        assert_eq!(media_mode_for(p2p, od, MediaMode::Routed), MediaMode::P2p);
    }

    #[test]
    fn p2p_cannot_record() {
        assert!(!allowed_under(MediaMode::P2p));
        assert!(allowed_under(MediaMode::Auto));
        assert!(allowed_under(MediaMode::Routed));
    }
}
