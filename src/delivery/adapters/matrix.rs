//! Matrix: a message in a room through the client-server API,
//! `PUT {homeserver_url}/_matrix/client/v3/rooms/{room}/send/m.room.message/{txnId}` with
//! `Authorization: Bearer {access_token}` (a bot account) and body
//! `{"msgtype": "m.text", "body": "…"}`. The txnId is derived from the delivery's id, so
//! a retry after a timeout is the same transaction and the homeserver keeps one message.
//!
//! The conversation id is the room id (`!…`). A room has no private notes:
//! notes for agents go to `notes_room` when set (a room only agents are in), else they
//! are not sent. Inbound `!video`: see `delivery::matrix_sync`.
//!
//! Config: `homeserver_url` (root URL), `access_token` (write-only; the bot account's),
//! `inbound` (run the `/sync` loop), `command` (default `!video`), `agents` (user ids
//! `@name:server` or servers `:server` whose command starts a call), `notes_room`.

use serde_json::json;

use super::{Adapter, OutgoingMessage, base_url, bool_field, secret_field, str_field};
use crate::delivery::net::{Method, OutboundRequest};
use crate::domain::matrix;

pub struct Matrix;

const SET: &str = "<set>";

fn agents(input: &serde_json::Value) -> Result<Vec<String>, String> {
    let Some(v) = input.get("agents").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let list = v.as_array().ok_or("config.agents must be a list")?;
    if list.len() > 100 {
        return Err("config.agents holds at most 100 entries".into());
    }
    list.iter()
        .map(|a| {
            let a = a.as_str().ok_or("config.agents must hold strings")?.trim();
            let ok = a.len() <= 255
                && a.len() > 1
                && (a.starts_with('@') && a.contains(':') || a.starts_with(':'))
                && a.bytes().all(|b| b.is_ascii_graphic());
            if ok {
                Ok(a.to_owned())
            } else {
                Err(format!(
                    "config.agents: `{a}` is neither a user id (@name:server) nor a server (:server)"
                ))
            }
        })
        .collect()
}

/// The settings the sync loop reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    pub homeserver_url: String,
    pub access_token: String,
    pub command: String,
    pub agents: Vec<String>,
}

/// The inbound settings of a stored config, when inbound is on.
pub fn inbound(stored: &serde_json::Value) -> Option<Inbound> {
    if stored.get("inbound").and_then(|v| v.as_bool()) != Some(true) {
        return None;
    }
    Some(Inbound {
        homeserver_url: str_field(stored, "homeserver_url", 2048).ok()??.to_owned(),
        access_token: str_field(stored, "access_token", 1024).ok()??.to_owned(),
        command: str_field(stored, "command", 32)
            .ok()
            .flatten()
            .unwrap_or("!video")
            .to_owned(),
        agents: agents(stored).ok()?,
    })
}

impl Adapter for Matrix {
    fn kind(&self) -> &'static str {
        "matrix"
    }

    fn parse_config(
        &self,
        input: &serde_json::Value,
        previous: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let hs =
            str_field(input, "homeserver_url", 2048)?.ok_or("config.homeserver_url is required")?;
        let hs = base_url("homeserver_url", hs)?;
        let token = secret_field(input, previous, "access_token", 1024, SET)?
            .ok_or("config.access_token is required (the bot account's access token)")?;
        let inbound = bool_field(input, "inbound", false)?;
        let command = str_field(input, "command", 32)?.unwrap_or("!video");
        if command.chars().any(char::is_whitespace) {
            return Err("config.command must be one word, e.g. !video".into());
        }
        let agents = agents(input)?;
        if inbound && agents.is_empty() {
            return Err(
                "config.agents is required when inbound is on: the user ids (@name:server) \
                 or servers (:server) whose !video starts a call"
                    .into(),
            );
        }
        let notes_room = str_field(input, "notes_room", 255)?;
        if let Some(r) = notes_room
            && !matrix::is_room_id(r)
        {
            return Err("config.notes_room must be a room id (!…)".into());
        }
        Ok(json!({
            "homeserver_url": hs,
            "access_token": token,
            "inbound": inbound,
            "command": command,
            "agents": agents,
            "notes_room": notes_room,
            "notes": notes_room.is_some(),
        }))
    }

    fn public_config(&self, stored: &serde_json::Value) -> serde_json::Value {
        let mut v = stored.clone();
        if let Some(o) = v.as_object_mut() {
            o.insert("access_token".into(), json!(SET));
        }
        v
    }

    fn check_conversation(&self, id: &str) -> Result<(), String> {
        if matrix::is_room_id(id) {
            Ok(())
        } else {
            Err("a Matrix conversation id is a room id (!…)".into())
        }
    }

    fn post_message(
        &self,
        stored: &serde_json::Value,
        m: &OutgoingMessage<'_>,
    ) -> Result<OutboundRequest, String> {
        let hs = str_field(stored, "homeserver_url", 2048)?.ok_or("homeserver_url missing")?;
        let token = str_field(stored, "access_token", 1024)?.ok_or("access_token missing")?;
        let room = if m.private {
            str_field(stored, "notes_room", 255)?.ok_or("private notes need config.notes_room")?
        } else {
            m.conversation_id
        };
        self.check_conversation(room)?;
        let body = json!({
            "msgtype": if m.private { "m.notice" } else { "m.text" },
            "body": m.content,
        });
        Ok(OutboundRequest {
            method: Method::Put,
            url: format!(
                "{hs}{}",
                matrix::send_path(room, &matrix::txn_id(m.message_id))
            ),
            headers: vec![("authorization".into(), format!("Bearer {token}"))],
            body: serde_json::to_vec(&body).map_err(|e| e.to_string())?,
        })
    }

    fn message_id(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        v.get("event_id")?.as_str().map(str::to_owned)
    }

    fn destinations<'a>(&self, stored: &'a serde_json::Value) -> Vec<(&'static str, &'a str)> {
        str_field(stored, "homeserver_url", 2048)
            .ok()
            .flatten()
            .map(|u| vec![("homeserver_url", u)])
            .unwrap_or_default()
    }

    fn signs_posts(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puts_with_a_txn_id_from_the_delivery_and_hides_the_token() {
        let cfg = Matrix
            .parse_config(
                &json!({"homeserver_url": "http://hs.example/", "access_token": "syt_x"}),
                None,
            )
            .unwrap();
        let m = OutgoingMessage {
            message_id: "msg_1",
            session_id: "s",
            conversation_id: "!room:hs.example",
            content: "hi",
            customer_url: "u",
            agent_name: "a",
            private: false,
        };
        let r = Matrix.post_message(&cfg, &m).unwrap();
        assert_eq!(r.method, Method::Put);
        assert_eq!(
            r.url,
            "http://hs.example/_matrix/client/v3/rooms/%21room%3Ahs.example/send/m.room.message/sightline.msg_1"
        );
        assert_eq!(Matrix.post_message(&cfg, &m).unwrap().url, r.url);
        assert_eq!(
            r.headers,
            vec![("authorization".into(), "Bearer syt_x".into())]
        );
        assert_eq!(Matrix.public_config(&cfg)["access_token"], "<set>");
        assert!(!Matrix.private_notes(&cfg));
        let private = OutgoingMessage {
            private: true,
            ..m.clone()
        };
        assert!(Matrix.post_message(&cfg, &private).is_err());
        let bad = OutgoingMessage {
            conversation_id: "42",
            ..m
        };
        assert!(Matrix.post_message(&cfg, &bad).is_err());
        assert!(
            Matrix
                .parse_config(
                    &json!({"homeserver_url": "http://hs.example", "access_token": "t", "inbound": true}),
                    None
                )
                .is_err(),
            "inbound needs agents"
        );
        let kept = Matrix
            .parse_config(
                &json!({"homeserver_url": "http://hs.example", "inbound": true, "agents": ["@ana:hs.example"]}),
                Some(&cfg),
            )
            .unwrap();
        assert_eq!(kept["access_token"], "syt_x");
        assert_eq!(inbound(&kept).unwrap().agents, vec!["@ana:hs.example"]);
    }
}
