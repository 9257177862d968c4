//! REST: `GET /api/v1/sessions/{id}/messages`, the text chat of a session's call (sent
//! over signaling, `docs/signaling.md`), oldest first.

use chrono::{DateTime, Utc};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi, Tags};

use crate::http::auth::ApiKeyAuth;
use crate::http::error::ApiError;
use crate::http::sessions::{not_found, parse_session_id};
use crate::http::state::AppState;

#[derive(Tags)]
pub enum ChatTags {
    /// What was written in the call's text chat.
    Chat,
}

pub struct ChatApi;

/// One chat message.
#[derive(Debug, Clone, Object)]
pub struct ChatMessage {
    /// Time-ordered id (UUIDv7); pass the last one seen as `after`.
    pub id: String,
    pub participant_id: String,
    /// The sender's role: `agent`, `customer`, `expert` or `supervisor`.
    pub role: String,
    /// The sender's name as the call showed it.
    pub name: String,
    /// Plain text (line breaks kept); never HTML.
    pub text: String,
    /// Only staff saw it (sent by a listening or whispering supervisor).
    pub internal: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Object)]
pub struct ChatPage {
    pub items: Vec<ChatMessage>,
    /// Pass as `after` to continue; absent when there is nothing more right now.
    #[oai(nullable)]
    pub next_after: Option<String>,
}

pub fn to_api(m: crate::store::chat::ChatMessage) -> ChatMessage {
    ChatMessage {
        id: m.id,
        participant_id: m.participant_id,
        role: m.role,
        name: m.display_name,
        text: m.text,
        internal: m.internal,
        at: m.at,
    }
}

#[OpenApi(prefix_path = "/api/v1", tag = "ChatTags::Chat")]
impl ChatApi {
    /// Session chat
    ///
    /// The messages written in the call's text chat, oldest first.
    #[oai(
        path = "/sessions/:id/messages",
        method = "get",
        operation_id = "listSessionMessages"
    )]
    async fn messages(
        &self,
        state: poem::web::Data<&AppState>,
        _auth: ApiKeyAuth,
        id: Path<String>,
        /// Only messages after the one with this id.
        #[oai(validator(
            pattern = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
        ))]
        after: Query<Option<String>>,
        /// Page size, 1 to 500 (default 200).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u64>>,
    ) -> Result<Json<ChatPage>, ApiError> {
        let id = parse_session_id(&id.0)?;
        let limit = limit.0.unwrap_or(200);
        if !(1..=500).contains(&limit) {
            return Err(ApiError::bad_request(
                "invalid_limit",
                "limit must be between 1 and 500",
            ));
        }
        if let Some(a) = &after.0
            && uuid::Uuid::parse_str(a).is_err()
        {
            return Err(ApiError::bad_request(
                "invalid_after",
                "after must be a message id",
            ));
        }
        if crate::store::sessions::get(&state.db, &id).await?.is_none() {
            return Err(not_found());
        }
        let rows = crate::store::chat::list(&state.db, &id, after.0.as_deref(), limit).await?;
        let next_after = if rows.len() as u64 == limit {
            rows.last().map(|m| m.id.clone())
        } else {
            None
        };
        Ok(Json(ChatPage {
            items: rows.into_iter().map(to_api).collect(),
            next_after,
        }))
    }

    /// Chat history for a join page
    ///
    /// The call's chat as this participant saw it (a page that reloads or joins late shows
    /// it again): staff-only messages for agents and supervisors only. The newest 500.
    #[oai(
        path = "/join/:token/messages",
        method = "get",
        operation_id = "listMessagesForPage"
    )]
    async fn page_messages(
        &self,
        state: poem::web::Data<&AppState>,
        token: Path<String>,
    ) -> Result<Json<ChatPage>, ApiError> {
        let r = crate::store::links::resolve(&state.db, &state.keys.join, &token.0, Utc::now())
            .await?
            .map_err(crate::http::connect::link_error)?;
        let staff = matches!(
            r.role,
            crate::domain::Role::Agent | crate::domain::Role::Supervisor
        );
        let rows = crate::store::chat::latest(&state.db, &r.session.id, 500).await?;
        Ok(Json(ChatPage {
            items: rows
                .into_iter()
                .filter(|m| staff || !m.internal)
                .map(to_api)
                .collect(),
            next_after: None,
        }))
    }
}
