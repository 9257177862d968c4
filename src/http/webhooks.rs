//! Event webhook payloads: one stable JSON schema, documented in the OpenAPI document
//! under `webhooks`, delivered with Standard Webhooks signatures.

use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::{Object, Webhook};

/// The conversation a session belongs to.
#[derive(Debug, Clone, Object)]
pub struct EventConversation {
    pub platform: String,
    pub id: String,
}

/// `data` of every event. Fields that do not apply to an event type are absent.
#[derive(Debug, Clone, Object)]
pub struct EventData {
    pub session_id: String,
    /// Id of the timeline event (ascending per session; see `/sessions/{id}/events`).
    pub event_id: i64,
    pub conversation: EventConversation,
    /// `participant.*`: who joined, left or is reconnecting.
    #[oai(nullable)]
    pub participant_id: Option<String>,
    /// `participant.*`: `agent`, `customer`, `expert` or `supervisor`.
    #[oai(nullable)]
    pub role: Option<String>,
    /// `participant.*`: the participant's display name.
    #[oai(nullable)]
    pub display_name: Option<String>,
    /// `participant.*` of a supervisor: `listen`, `whisper` or `barge`.
    #[oai(nullable)]
    pub mode: Option<String>,
    /// `session.created`, `session.transfer_started`, `session.transferred`: the agent
    /// (`{"id", "name"}`; for a transfer, the agent taking over).
    #[oai(nullable)]
    pub agent: Option<serde_json::Value>,
    /// `session.transfer_started`, `session.transferred`: the agent handing over.
    #[oai(nullable)]
    pub from_agent: Option<serde_json::Value>,
    /// `session.ended`: why it ended (e.g. `ended_via_api`, `expired`);
    /// `participant.declined` / `participant.denied`: the reason given;
    /// `delivery.failed`: why (e.g. `the platform answered HTTP 401: Invalid Access Token`).
    #[oai(nullable)]
    pub reason: Option<String>,
    /// `session.ended`: seconds from creation to end.
    #[oai(nullable)]
    pub duration_secs: Option<i64>,
    /// `session.link_posted`, `delivery.failed`: the integration that posted the link,
    /// or tried to.
    #[oai(nullable)]
    pub integration_id: Option<String>,
    /// `session.link_posted`, `delivery.failed`: the delivery (see `/deliveries/{id}`).
    #[oai(nullable)]
    pub delivery_id: Option<i64>,
    /// `session.link_posted`: the platform's id of the posted message, when it said.
    #[oai(nullable)]
    pub platform_message_id: Option<String>,
    /// `recording.*`: the recording (see `/recordings/{id}`).
    #[oai(nullable)]
    pub recording_id: Option<String>,
    /// `recording.*`: wall-clock time of the file's time zero, ms since the Unix epoch.
    #[oai(nullable)]
    pub started_at_ms: Option<i64>,
    /// `recording.ready`, `recording.failed`: length of the recording.
    #[oai(nullable)]
    pub duration_ms: Option<i64>,
    /// `recording.*`: bytes of the (decrypted) file.
    #[oai(nullable)]
    pub bytes: Option<i64>,
    /// `recording.*`: hex SHA-256 of the (decrypted) file.
    #[oai(nullable)]
    pub sha256: Option<String>,
    /// `recording.*`: the codecs written, e.g. `["vp8", "opus"]`.
    #[oai(nullable)]
    pub codecs: Option<Vec<String>>,
    /// `recording.played`, `recording.downloaded`: who (`api_key:<id>` or `report_page`).
    #[oai(nullable)]
    pub viewer: Option<String>,
    /// `session.erased`, `retention.purged`: what was removed (kinds and counts, no
    /// personal data).
    #[oai(nullable)]
    pub purged: Option<serde_json::Value>,
}

/// The body of every event webhook. Headers: `webhook-id` (stable across retries: use it
/// to deduplicate), `webhook-timestamp`, `webhook-signature` (Standard Webhooks `v1`).
#[derive(Debug, Clone, Object)]
pub struct WebhookEvent {
    /// One of `session.created`, `session.link_posted`, `session.ended`,
    /// `session.transfer_started`, `session.transferred`, `participant.invited`,
    /// `participant.removed`, `participant.mode_changed`, `participant.waiting`,
    /// `participant.admitted`, `participant.denied`, `participant.declined`,
    /// `participant.joined`, `participant.left`, `participant.reconnecting`,
    /// `recording.started`, `recording.paused`, `recording.resumed`, `recording.stopped`,
    /// `recording.consent` (a participant gave, declined or withdrew consent),
    /// `delivery.failed` (a post into the conversation was dead-lettered; `reason` is the
    /// platform's), `recording.ready`, `recording.failed`, `recording.played`,
    /// `recording.downloaded`, `recording.deleted`, `session.erased`, `retention.purged`.
    #[oai(rename = "type")]
    pub type_: String,
    /// When the event happened (RFC 3339).
    pub timestamp: DateTime<Utc>,
    pub data: EventData,
}

/// Event webhooks Sightline sends to an integration's `events_url`: one POST per event,
/// `type` is one of the `session.*` and `participant.*` event types (see
/// [`WebhookEvent`]'s `type`).
#[Webhook]
#[allow(dead_code)]
pub trait EventWebhooks {
    /// A session event (signed with Standard Webhooks; deduplicate on `webhook-id`).
    #[oai(name = "sessionEvent", method = "post")]
    fn session_event(&self, body: Json<WebhookEvent>);
}
