//! The call's chat transcript, posted into the chat conversation when the call ends: an
//! outbox delivery of its own kind (`transcript`) with its own sender, registered in
//! `app.rs` like the others.
//!
//! Enqueued by [`TranscriptOnEnd`], a part of the session bus beyond the rooms, so every
//! way a session ends (an agent's `end`, the REST API, the expiry sweeper) is covered; one
//! delivery per integration the session is bound to, only when the call had a chat, and
//! never twice. Staff-only messages (from a listening or whispering supervisor) are left
//! out: the conversation is the customer's.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter};

use crate::delivery::adapters::{self, OutgoingMessage};
use crate::delivery::senders::{DeliveryEnv, Sender, Sent};
use crate::delivery::webhook;
use crate::delivery::worker::AttemptError;
use crate::domain::outcome::Outcome;
use crate::services::bus::{RoomSignal, SessionBus};
use crate::store::chat::ChatMessage;
use crate::store::integrations::session_link;
use crate::store::outbox::delivery;
use crate::store::outbox::{Kind, NewDelivery};

/// Longest transcript posted, in characters; longer ones end with a note.
pub const MAX_TRANSCRIPT_CHARS: usize = 20_000;

/// The transcript's text: one line per message (`[HH:MM] Name: text`, times in UTC).
pub fn render(agent_name: &str, messages: &[ChatMessage]) -> String {
    let mut out = format!("Chat from the video call with {agent_name}:\n");
    for m in messages {
        let line = format!(
            "[{}] {}: {}\n",
            m.at.format("%H:%M"),
            m.display_name,
            m.text.replace('\n', "\n    ")
        );
        if out.chars().count() + line.chars().count() > MAX_TRANSCRIPT_CHARS {
            out.push_str("… (shortened; the whole chat is on the call report)\n");
            break;
        }
        out.push_str(&line);
    }
    out.trim_end().to_owned()
}

/// Enqueues the transcript deliveries of an ended session.
pub struct TranscriptOnEnd {
    pub db: DatabaseConnection,
}

#[async_trait]
impl SessionBus for TranscriptOnEnd {
    async fn publish(&self, session_id: &str, signal: RoomSignal) {
        if let RoomSignal::Ended { .. } = signal
            && let Err(e) = enqueue(&self.db, session_id, Utc::now()).await
        {
            tracing::error!(error = %e, session_id, "queueing the chat transcript failed");
        }
    }
}

async fn enqueue(
    db: &DatabaseConnection,
    session_id: &str,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    use crate::store::chat::chat_message;
    let chatted = chat_message::Entity::find()
        .filter(chat_message::Column::SessionId.eq(session_id))
        .filter(chat_message::Column::Internal.eq(false))
        .count(db)
        .await?;
    if chatted == 0 {
        return Ok(());
    }
    let txn = crate::store::begin_write(db).await?;
    let links = session_link::Entity::find()
        .filter(session_link::Column::SessionId.eq(session_id))
        .all(&txn)
        .await?;
    for l in links {
        let queued = delivery::Entity::find()
            .filter(delivery::Column::SessionId.eq(session_id))
            .filter(delivery::Column::IntegrationId.eq(l.integration_id.as_str()))
            .filter(delivery::Column::Kind.eq(Kind::Transcript.as_str()))
            .count(&txn)
            .await?;
        if queued > 0 {
            continue;
        }
        crate::store::outbox::enqueue(
            &txn,
            NewDelivery {
                kind: Kind::Transcript,
                event_type: None,
                session_id: Some(session_id.to_owned()),
                integration_id: Some(l.integration_id.clone()),
                // After the link post of the same conversation.
                ordering_key: format!("{session_id}/{}", l.integration_id),
                payload: serde_json::json!({}),
            },
            now,
        )
        .await?;
    }
    txn.commit().await
}

/// Posts the transcript through the integration's adapter.
pub struct TranscriptSender(pub DeliveryEnv);

#[async_trait]
impl Sender for TranscriptSender {
    async fn send(&self, row: &delivery::Model) -> Result<Sent, AttemptError> {
        let env = &self.0;
        let db_err = |e: DbErr| AttemptError::retry(format!("database: {e}"));
        let (Some(session_id), Some(integration_id)) = (&row.session_id, &row.integration_id)
        else {
            return Err(AttemptError::permanent(
                "transcript without session or integration",
            ));
        };
        let i = crate::store::integrations::find(&env.db, integration_id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| AttemptError::permanent("the integration was deleted"))?;
        let adapter = adapters::by_kind(&i.kind)
            .ok_or_else(|| AttemptError::permanent(format!("no adapter for kind {}", i.kind)))?;
        let view = crate::store::sessions::get(&env.db, session_id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| AttemptError::permanent("the session was deleted"))?;
        let s = &view.session;
        let messages: Vec<ChatMessage> = crate::store::chat::list(&env.db, session_id, None, 5000)
            .await
            .map_err(db_err)?
            .into_iter()
            .filter(|m| !m.internal)
            .collect();
        let content = render(&s.agent_name, &messages);
        let msg = OutgoingMessage {
            message_id: &row.message_id,
            session_id: &s.id,
            conversation_id: &s.conversation_id,
            content: &content,
            customer_url: "",
            agent_name: &s.agent_name,
            private: false,
        };
        let mut req = adapter
            .post_message(&i.config, &msg)
            .map_err(AttemptError::permanent)?;
        if adapter.signs_posts() {
            webhook::sign(&mut req, &i.signing_secret, &row.message_id)?;
        }
        // Classified like every post: refusals dead-letter at once, 429 waits, 5xx retries.
        match webhook::exchange(env, &req).await? {
            (Outcome::Delivered, body) => Ok(Sent {
                remote_id: adapter.message_id(&body),
            }),
            (other, _) => Err(webhook::into_error(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, text: &str) -> ChatMessage {
        ChatMessage {
            id: "i".into(),
            session_id: "s".into(),
            participant_id: "p".into(),
            role: "customer".into(),
            display_name: name.into(),
            text: text.into(),
            internal: false,
            at: DateTime::parse_from_rfc3339("2026-11-30T15:20:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn one_line_per_message_and_bounded() {
        assert_eq!(
            render("Ana", &[m("Sam", "hi\nthere"), m("Ana", "hello")]),
            "Chat from the video call with Ana:\n[15:20] Sam: hi\n    there\n[15:20] Ana: hello"
        );
        let long = vec![m("Sam", &"x".repeat(1000)); 100];
        let t = render("Ana", &long);
        assert!(t.chars().count() <= MAX_TRANSCRIPT_CHARS + 80);
        assert!(t.ends_with("(shortened; the whole chat is on the call report)"));
    }
}
