//! The sessions API's request and response bodies, as the OpenAPI document declares them.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};

use crate::domain::session::Role;
pub use crate::http::JsonObject;

/// The chat conversation this call belongs to.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Conversation {
    /// Chat platform name, e.g. `chatwoot` or `generic`: letters, digits, `-`, `_`, `.`.
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[A-Za-z0-9._-]+$"))]
    #[oai(deserialize_with = "crate::http::strict::string")]
    pub platform: String,
    /// The conversation's id on that platform: visible ASCII, no spaces.
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    #[oai(deserialize_with = "crate::http::strict::string")]
    pub id: String,
}

#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Agent {
    /// The agent's id in the contact center: visible ASCII, no spaces.
    #[oai(validator(min_length = 1, max_length = 128, pattern = r"^[!-~]+$"))]
    #[oai(deserialize_with = "crate::http::strict::string")]
    pub id: String,
    /// Shown to the customer. Trimmed; no control characters.
    #[oai(validator(
        min_length = 1,
        max_length = 80,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(deserialize_with = "crate::http::strict::string")]
    pub name: String,
}

#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct Customer {
    /// Shown to the agent. Trimmed; no control characters; blank means none.
    #[oai(validator(
        max_length = 80,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?)?[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub name: Option<String>,
    /// Blank means none.
    #[oai(validator(
        max_length = 254,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\]{1,64}@[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\.]+(\.[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\.]+)+)?[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub email: Option<String>,
    /// BCP 47 language tag for the join page and messages, e.g. `fr` or `pt-BR`; blank
    /// means none.
    #[oai(validator(
        max_length = 35,
        pattern = r#"^([\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*|[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub locale: Option<String>,
}

/// Create a video session for a chat conversation.
#[derive(Debug, Clone, Object, serde::Serialize)]
#[oai(example)]
pub struct CreateSession {
    pub conversation: Conversation,
    pub agent: Agent,
    #[oai(nullable)]
    pub customer: Option<Customer>,
    /// Your own JSON object, stored and returned as is (≤ 4 KiB, ≤ 50 keys, nested at
    /// most 4 levels).
    #[oai(nullable)]
    pub metadata: Option<JsonObject>,
    /// Force media through the TURN relay for this session.
    #[oai(nullable)]
    pub relay_only: Option<bool>,
    /// Name or id of an integration: post the customer's link into the conversation
    /// through it (delivered by the outbox; `session.link_posted` follows).
    #[oai(validator(max_length = 100))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub post_link_via: Option<String>,
    /// The customer waits in a lobby until an agent admits them (default: the server's
    /// `sessions.lobby`).
    #[oai(nullable)]
    pub lobby: Option<bool>,
    /// `auto` (peer to peer up to four visible participants; through the server's media
    /// engine when a supervisor listens or whispers, or more join), `p2p` or `routed`
    /// (default: the server's `media.mode`).
    #[oai(nullable)]
    #[oai(validator(pattern = "^(auto|p2p|routed)$"))]
    pub media_mode: Option<String>,
    /// Whether and when the call is recorded (default: the server's `recording.mode`).
    /// A session that may be recorded runs `auto` unless `media_mode` says otherwise;
    /// `p2p` sessions cannot be recorded.
    #[oai(nullable)]
    pub recording: Option<RecordingRequest>,
}

/// A session's recording, as asked at creation.
#[derive(Debug, Clone, Object, serde::Serialize)]
pub struct RecordingRequest {
    /// `off` (never), `always` (from the start of the call; agents may pause it) or
    /// `on_demand` (agents start, pause, resume and stop it).
    #[oai(nullable)]
    #[oai(validator(pattern = "^(off|always|on_demand)$"))]
    pub mode: Option<String>,
}

/// A session's recording as it stands.
#[derive(Debug, Clone, Object)]
pub struct RecordingInfo {
    /// `off`, `always` or `on_demand`.
    pub mode: String,
    /// `off` (never started), `recording`, `paused` or `stopped`.
    pub state: String,
}

impl poem_openapi::types::Example for CreateSession {
    fn example() -> Self {
        CreateSession {
            conversation: Conversation {
                platform: "chatwoot".into(),
                id: "4711".into(),
            },
            agent: Agent {
                id: "agent-7".into(),
                name: "Ana Lima".into(),
            },
            customer: Some(Customer {
                name: Some("Sam Carter".into()),
                email: Some("sam@example.com".into()),
                locale: Some("en".into()),
            }),
            metadata: serde_json::json!({"ticket": "T-1001"})
                .as_object()
                .cloned()
                .map(JsonObject),
            relay_only: None,
            post_link_via: Some("chatwoot-main".into()),
            lobby: Some(false),
            media_mode: None,
            recording: None,
        }
    }
}

/// A participant's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum ParticipantRole {
    Agent,
    Customer,
    Expert,
    Supervisor,
}

impl From<Role> for ParticipantRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Agent => Self::Agent,
            Role::Customer => Self::Customer,
            Role::Expert => Self::Expert,
            Role::Supervisor => Self::Supervisor,
        }
    }
}

/// A supervisor's presence: `listen` (hears everyone, publishes nothing, unseen by the
/// customer), `whisper` (heard by agents only, unseen by the customer), `barge` (an
/// ordinary visible participant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum SupervisorMode {
    Listen,
    Whisper,
    Barge,
}

impl From<SupervisorMode> for crate::domain::Mode {
    fn from(m: SupervisorMode) -> Self {
        match m {
            SupervisorMode::Listen => Self::Listen,
            SupervisorMode::Whisper => Self::Whisper,
            SupervisorMode::Barge => Self::Barge,
        }
    }
}

impl From<crate::domain::Mode> for SupervisorMode {
    fn from(m: crate::domain::Mode) -> Self {
        match m {
            crate::domain::Mode::Listen => Self::Listen,
            crate::domain::Mode::Whisper => Self::Whisper,
            crate::domain::Mode::Barge => Self::Barge,
        }
    }
}

/// Where a participant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum ParticipantState {
    /// Has a link, never joined.
    Invited,
    /// Connected right now.
    Present,
    /// Joined, then left (may come back).
    Left,
    /// Removed from the session; their link answers 410.
    Removed,
}

#[derive(Debug, Clone, Object)]
pub struct Participant {
    pub participant_id: String,
    pub role: ParticipantRole,
    /// Supervisors only; `null` for other roles.
    #[oai(nullable)]
    pub mode: Option<SupervisorMode>,
    pub name: String,
    pub state: ParticipantState,
    /// When they first joined.
    #[oai(nullable)]
    pub joined_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub left_at: Option<DateTime<Utc>>,
    /// Seconds in the call so far (the sum of their joined → left intervals); given by
    /// the participant lists (`…/participants`), absent in session objects.
    #[oai(nullable)]
    pub time_in_call_secs: Option<i64>,
    /// Same as `participant_id` (kept for compatibility).
    pub id: String,
    /// Same as `name` (kept for compatibility).
    pub display_name: String,
    /// Connected right now (kept for compatibility; see `state`).
    pub present: bool,
    /// Same as `joined_at` (kept for compatibility).
    #[oai(nullable)]
    pub first_joined_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub last_joined_at: Option<DateTime<Utc>>,
}

/// The API's view of a stored participant.
pub fn participant_to_api(p: &crate::store::entities::participant::Model) -> Participant {
    let role: Role = p.role.parse().unwrap_or(Role::Customer);
    let state = match crate::store::links::state_of(p) {
        "removed" => ParticipantState::Removed,
        "present" => ParticipantState::Present,
        "left" => ParticipantState::Left,
        _ => ParticipantState::Invited,
    };
    Participant {
        participant_id: p.id.clone(),
        role: role.into(),
        mode: p
            .mode
            .as_deref()
            .filter(|_| role == Role::Supervisor)
            .and_then(|m| m.parse::<crate::domain::Mode>().ok())
            .map(Into::into),
        name: p.display_name.clone(),
        state,
        joined_at: p.first_joined_at,
        left_at: p.left_at,
        time_in_call_secs: None,
        id: p.id.clone(),
        display_name: p.display_name.clone(),
        present: p.present,
        first_joined_at: p.first_joined_at,
        last_joined_at: p.last_joined_at,
    }
}

#[derive(Debug, Clone, Object)]
pub struct Session {
    pub id: String,
    /// `created`, `waiting`, `active` or `ended`.
    pub status: String,
    pub conversation: Conversation,
    pub agent: Agent,
    pub customer: Customer,
    /// The agent's join link; absent once the session has ended.
    #[oai(nullable)]
    pub agent_url: Option<String>,
    /// The customer's join link; absent once the session has ended.
    #[oai(nullable)]
    pub customer_url: Option<String>,
    /// The session's report page (timeline, participants, durations); signed, valid
    /// until 30 days after the session's expiry. Shows no join link.
    #[oai(nullable)]
    pub report_url: Option<String>,
    pub relay_only: bool,
    /// The customer waits in a lobby until an agent admits them.
    pub lobby: bool,
    pub metadata: serde_json::Value,
    /// Everyone in the session: the agent and the customer, and anyone invited.
    pub participants: Vec<Participant>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[oai(nullable)]
    pub ended_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub end_reason: Option<String>,
    /// The session's recording: its mode and where it stands.
    pub recording: RecordingInfo,
}

#[derive(Debug, Clone, Object)]
pub struct SessionPage {
    pub items: Vec<Session>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct EndSession {
    /// Why the session ended (free text, ≤ 200 characters, no control characters).
    #[oai(validator(
        max_length = 200,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]([^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?)?[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct Event {
    pub id: i64,
    /// e.g. `session.created`, `link.issued`, `participant.joined`, `session.ended`.
    pub kind: String,
    pub at: DateTime<Utc>,
    #[oai(nullable)]
    pub participant_id: Option<String>,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, Object)]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `after` to continue; absent when there is nothing more right now.
    #[oai(nullable)]
    pub next_after: Option<i64>,
}

/// Send the customer's link by e-mail.
#[derive(Debug, Clone, Object)]
pub struct InviteRequest {
    /// Recipient; defaults to the session's customer e-mail.
    #[oai(validator(
        max_length = 254,
        pattern = r#"^[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*([^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\]{1,64}@[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\.]+(\.[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000@<>,;\"\\.]+)+)?[\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub email: Option<String>,
    /// Language of the e-mail (`en`, `de`); defaults to the customer's locale.
    #[oai(validator(
        max_length = 35,
        pattern = r#"^([\x09-\x0d \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*|[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*)$"#
    ))]
    #[oai(nullable)]
    #[oai(deserialize_with = "crate::http::strict::opt_string")]
    pub locale: Option<String>,
}

#[derive(Debug, Clone, Object)]
pub struct InviteQueued {
    /// The outbox delivery carrying the e-mail (see `/deliveries/{id}`).
    pub delivery_id: i64,
    pub email: String,
}

#[derive(ApiResponse)]
pub enum InviteResponse {
    /// The e-mail is queued in the outbox.
    #[oai(status = 202)]
    Accepted(Json<InviteQueued>),
}

#[derive(ApiResponse)]
pub enum CreateResponse {
    /// The session was created.
    #[oai(status = 201)]
    Created(Json<Session>),
    /// A request with the same Idempotency-Key and body already created this session.
    #[oai(status = 200)]
    Replayed(Json<Session>),
}
