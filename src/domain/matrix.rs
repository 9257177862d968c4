//! Matrix, pure (no IO): the transaction id that makes a post idempotent, the paths of
//! the client-server API Sightline uses, and what a `/sync` answer asks Sightline to do
//! (`!video` from an allowed agent in a room the bot is in).

use std::fmt::Write;

/// The transaction id of a delivery: the same for every attempt of one delivery, so a
/// retry after a timeout is de-duplicated by the homeserver (per access token).
pub fn txn_id(message_id: &str) -> String {
    let safe: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(100)
        .collect();
    format!("sightline.{safe}")
}

/// Percent-encodes one path segment (room ids hold `!` and `:`).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A room id as Matrix defines it: `!opaque:server`, or (room version 12 and later) `!`
/// and a hash without a server; visible ASCII, at most 255 bytes.
pub fn is_room_id(s: &str) -> bool {
    s.len() > 1 && s.len() <= 255 && s.starts_with('!') && s.bytes().all(|b| b.is_ascii_graphic())
}

/// `PUT` path that sends an `m.room.message` with a transaction id.
pub fn send_path(room_id: &str, txn: &str) -> String {
    format!(
        "/_matrix/client/v3/rooms/{}/send/m.room.message/{}",
        encode_segment(room_id),
        encode_segment(txn)
    )
}

/// `POST` path that joins a room.
pub fn join_path(room_id: &str) -> String {
    format!("/_matrix/client/v3/join/{}", encode_segment(room_id))
}

/// `GET` path of one long-poll: `since` (absent on the first), `timeout_ms`, and a filter
/// that keeps only room messages and invites.
pub fn sync_path(since: Option<&str>, timeout_ms: u64) -> String {
    let filter = r#"{"presence":{"types":[]},"account_data":{"types":[]},"room":{"timeline":{"types":["m.room.message"],"limit":50},"state":{"types":[]},"ephemeral":{"types":[]},"account_data":{"types":[]}}}"#;
    let mut p = format!(
        "/_matrix/client/v3/sync?timeout={timeout_ms}&filter={}",
        encode_segment(filter)
    );
    if let Some(s) = since {
        p.push_str("&since=");
        p.push_str(&encode_segment(s));
    }
    p
}

/// A user id's localpart (`@ana:hq.example` → `ana`), as a display name of last resort.
pub fn localpart(user_id: &str) -> &str {
    user_id
        .strip_prefix('@')
        .and_then(|u| u.split(':').next())
        .filter(|l| !l.is_empty())
        .unwrap_or(user_id)
}

/// `GET` path of the room's most recent messages (duplicate check before a re-send).
pub fn recent_messages_path(room_id: &str) -> String {
    format!(
        "/_matrix/client/v3/rooms/{}/messages?dir=b&limit=50",
        encode_segment(room_id)
    )
}

/// Whether `user_id` may start calls: an exact user id in `agents`, or a `:server`
/// entry matching the user's server.
pub fn is_agent(agents: &[String], user_id: &str) -> bool {
    agents.iter().any(|a| {
        a == user_id || (a.starts_with(':') && user_id.starts_with('@') && user_id.ends_with(a))
    })
}

/// `!video` typed in a room by an allowed agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub room_id: String,
    pub event_id: String,
    pub sender: String,
    /// When the homeserver received it (Unix ms).
    pub ts: i64,
}

/// What one `/sync` answer holds for Sightline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncBatch {
    pub next_batch: String,
    pub commands: Vec<Command>,
    /// Messages that looked like the command but came from someone not allowed.
    pub refused: Vec<(String, String)>,
    /// Rooms an agent invited the bot into (the bot joins them).
    pub invites: Vec<String>,
}

/// Commands older than this (by the homeserver's clock) are not acted on: after a long
/// outage, a call nobody waits for any more is worse than none.
pub const MAX_COMMAND_AGE_MS: i64 = 10 * 60 * 1000;

/// Reads a `/sync` answer. `bot` is the bot's own user id (its messages are never
/// commands); `now_ms` is the Unix time in milliseconds.
pub fn parse_sync(
    body: &[u8],
    bot: &str,
    command: &str,
    agents: &[String],
    now_ms: i64,
) -> Result<SyncBatch, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("sync answer is not JSON: {e}"))?;
    let next_batch = v
        .get("next_batch")
        .and_then(|n| n.as_str())
        .filter(|n| !n.is_empty() && n.len() <= 1024)
        .ok_or("sync answer has no next_batch")?
        .to_owned();
    let mut out = SyncBatch {
        next_batch,
        ..Default::default()
    };
    let invited = v
        .get("rooms")
        .and_then(|r| r.get("invite"))
        .and_then(|j| j.as_object());
    for (room_id, room) in invited.into_iter().flatten().take(100) {
        let inviter = room
            .get("invite_state")
            .and_then(|s| s.get("events"))
            .and_then(|e| e.as_array())
            .into_iter()
            .flatten()
            .find(|e| {
                e.get("type").and_then(|t| t.as_str()) == Some("m.room.member")
                    && e.get("state_key").and_then(|k| k.as_str()) == Some(bot)
            })
            .and_then(|e| e.get("sender"))
            .and_then(|s| s.as_str());
        if is_room_id(room_id) && inviter.is_some_and(|s| is_agent(agents, s)) {
            out.invites.push(room_id.clone());
        }
    }
    let Some(rooms) = v
        .get("rooms")
        .and_then(|r| r.get("join"))
        .and_then(|j| j.as_object())
    else {
        return Ok(out);
    };
    for (room_id, room) in rooms.iter().take(1000) {
        if !is_room_id(room_id) {
            continue;
        }
        let events = room
            .get("timeline")
            .and_then(|t| t.get("events"))
            .and_then(|e| e.as_array());
        for e in events.into_iter().flatten().take(1000) {
            if e.get("type").and_then(|t| t.as_str()) != Some("m.room.message") {
                continue;
            }
            let body = e
                .get("content")
                .and_then(|c| c.get("body"))
                .and_then(|b| b.as_str())
                .unwrap_or("");
            if !body.trim().eq_ignore_ascii_case(command) {
                continue;
            }
            let sender = e.get("sender").and_then(|s| s.as_str()).unwrap_or("");
            let event_id = e.get("event_id").and_then(|s| s.as_str()).unwrap_or("");
            if sender == bot || event_id.is_empty() || event_id.len() > 255 {
                continue;
            }
            let ts = e
                .get("origin_server_ts")
                .and_then(|t| t.as_i64())
                .unwrap_or(now_ms);
            if now_ms - ts > MAX_COMMAND_AGE_MS {
                continue;
            }
            if is_agent(agents, sender) {
                out.commands.push(Command {
                    room_id: room_id.clone(),
                    event_id: event_id.to_owned(),
                    sender: sender.to_owned(),
                    ts,
                });
            } else {
                out.refused.push((room_id.clone(), sender.to_owned()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn txn_ids_are_stable_and_paths_encoded() {
        assert_eq!(txn_id("msg_0193abc"), "sightline.msg_0193abc");
        assert_eq!(txn_id("msg_0193abc"), txn_id("msg_0193abc"));
        assert_eq!(txn_id("a/b?c"), "sightline.abc");
        assert_eq!(
            send_path("!room:localhost", "sightline.msg_1"),
            "/_matrix/client/v3/rooms/%21room%3Alocalhost/send/m.room.message/sightline.msg_1"
        );
        assert!(is_room_id("!abc:example.org"));
        assert!(!is_room_id("#alias:example.org"));
        assert!(is_room_id("!31hneApxJ_1o-63DmFrpeqnkFfWppnzWso1JvH3ogLM"));
        assert!(!is_room_id("!"));
        assert!(!is_room_id("!a b:c"));
    }

    #[test]
    fn agents_by_id_or_server() {
        let agents = vec!["@ana:hq.example".to_owned(), ":staff.example".to_owned()];
        assert!(is_agent(&agents, "@ana:hq.example"));
        assert!(is_agent(&agents, "@bo:staff.example"));
        assert!(!is_agent(&agents, "@eve:hq.example"));
        assert!(!is_agent(&agents, "@eve:evilstaff.example.com"));
        assert!(!is_agent(&[], "@ana:hq.example"));
    }

    #[test]
    fn sync_yields_commands_of_agents_only() {
        let body = json!({
            "next_batch": "s72_1",
            "rooms": {"join": {
                "!r1:hq": {"timeline": {"events": [
                    {"type": "m.room.message", "sender": "@ana:hq", "event_id": "$1",
                     "content": {"msgtype": "m.text", "body": " !video "}},
                    {"type": "m.room.message", "sender": "@cust:hq", "event_id": "$2",
                     "content": {"msgtype": "m.text", "body": "!video"}},
                    {"type": "m.room.message", "sender": "@bot:hq", "event_id": "$3",
                     "content": {"msgtype": "m.text", "body": "!video"}},
                    {"type": "m.room.message", "sender": "@ana:hq", "event_id": "$4",
                     "content": {"msgtype": "m.text", "body": "hello"}},
                    {"type": "m.room.member", "sender": "@ana:hq", "event_id": "$5"},
                ]}},
                "not-a-room": {"timeline": {"events": [{"type": "m.room.message", "sender": "@ana:hq", "event_id": "$9", "content": {"body": "!video"}}]}},
            }},
        });
        let b = parse_sync(
            &serde_json::to_vec(&body).unwrap(),
            "@bot:hq",
            "!video",
            &["@ana:hq".to_owned()],
            1_000_000,
        )
        .unwrap();
        assert_eq!(b.next_batch, "s72_1");
        assert_eq!(
            b.commands,
            vec![Command {
                room_id: "!r1:hq".into(),
                event_id: "$1".into(),
                sender: "@ana:hq".into(),
                ts: 1_000_000,
            }]
        );
        assert_eq!(b.refused, vec![("!r1:hq".into(), "@cust:hq".into())]);
        assert!(parse_sync(b"{}", "@bot:hq", "!video", &[], 0).is_err());
        assert!(parse_sync(b"nope", "@bot:hq", "!video", &[], 0).is_err());
        // An old command is not acted on.
        let old = json!({"next_batch": "n", "rooms": {"join": {"!r:hq": {"timeline": {"events": [
            {"type": "m.room.message", "sender": "@ana:hq", "event_id": "$1",
             "origin_server_ts": 0, "content": {"body": "!video"}}]}}}}});
        let b = parse_sync(
            &serde_json::to_vec(&old).unwrap(),
            "@bot:hq",
            "!video",
            &["@ana:hq".to_owned()],
            MAX_COMMAND_AGE_MS + 1,
        )
        .unwrap();
        assert!(b.commands.is_empty());
    }
}
