//! Matrix against a real Synapse on loopback (`support_synapse`): the link arrives in the
//! room exactly once even when Sightline's first attempt timed out (a proxy lets the PUT
//! reach Synapse and swallows the answer), and `!video` from an agent starts a call.

use crate::support_outbox::{Api, config, eventually};
use crate::support_synapse::*;
use serde_json::{Value, json};
use sightline::Application;

async fn app() -> (Application, Api, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(config(dir.path())).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    (app, api, dir)
}

fn count(msgs: &[(String, String)], needle: &str) -> usize {
    msgs.iter().filter(|(_, b)| b.contains(needle)).count()
}

#[tokio::test]
async fn the_link_arrives_in_the_room_exactly_once_after_a_timeout() {
    let Some(hs) = Synapse::start().await else {
        return;
    };
    let bot = hs.register("bot").await;
    let agent = hs.register("agent").await;
    let customer = hs.register("customer").await;
    let room = hs.room(&agent, &[&bot, &customer]).await;
    // The first message PUT reaches Synapse, its answer never comes back.
    let proxy = StallingProxy::start(&hs.base, "/send/m.room.message/", 1).await;
    let (app, api, _dir) = app().await;
    let (st, i) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "mx", "kind": "matrix",
                   "config": {"homeserver_url": proxy.url(), "access_token": bot.token}}),
        )
        .await;
    assert_eq!(st, 201, "{i}");
    assert_eq!(i["config"]["access_token"], "<set>");
    let (st, s) = api
        .post(
            "/api/v1/sessions",
            json!({"conversation": {"platform": "matrix", "id": room},
                   "agent": {"id": agent.user_id, "name": "Ana"}, "post_link_via": "mx"}),
        )
        .await;
    assert_eq!(st, 201, "{s}");
    let sid = s["id"].as_str().unwrap().to_owned();
    let customer_url = s["customer_url"].as_str().unwrap().to_owned();
    let d = eventually(20, "the link post delivered", || async {
        let (_, p) = api
            .get(&format!("/api/v1/deliveries?session_id={sid}"))
            .await;
        p["items"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .find(|d| d["kind"] == "post_message" && d["status"] == "delivered")
    })
    .await;
    assert_eq!(proxy.stalled.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(d["attempts"], 2, "the first attempt timed out: {d}");
    assert!(d["remote_id"].as_str().unwrap().starts_with('$'), "{d}");
    let msgs = hs.messages(&customer, &room).await;
    assert_eq!(count(&msgs, &customer_url), 1, "exactly once: {msgs:?}");
    assert!(msgs.iter().all(|(from, _)| from != &customer.user_id));
    // A conversation id that is not a room id is refused at creation.
    let (st, e) = api
        .post(
            "/api/v1/sessions",
            json!({"conversation": {"platform": "matrix", "id": "42"},
                   "agent": {"id": "a", "name": "Ana"}, "post_link_via": "mx"}),
        )
        .await;
    assert_eq!(
        (st, e["code"].as_str()),
        (422, Some("invalid_conversation_id"))
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn video_from_an_agent_in_a_room_starts_a_call() {
    let Some(hs) = Synapse::start().await else {
        return;
    };
    let bot = hs.register("bot").await;
    let agent = hs.register("agent").await;
    let customer = hs.register("customer").await;
    let room = hs.room(&agent, &[&bot, &customer]).await;
    let notes = hs.room(&agent, &[&bot]).await;
    let (app, api, _dir) = app().await;
    let (st, i) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "mx", "kind": "matrix",
                   "config": {"homeserver_url": hs.base, "access_token": bot.token,
                              "inbound": true, "agents": [agent.user_id], "notes_room": notes}}),
        )
        .await;
    assert_eq!(st, 201, "{i}");
    // The bot's first sync marks "now"; wait until it has one.
    let started = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    hs.say(&customer, &room, "!video").await;
    hs.say(&agent, &room, "!video").await;
    let s: Value = eventually(20, "a session for the room", || async {
        let (_, l) = api
            .get(&format!(
                "/api/v1/sessions?platform=matrix&conversation_id={}",
                enc(&room)
            ))
            .await;
        l["items"].as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert_eq!(s["agent"]["id"], agent.user_id.as_str(), "{s}");
    let customer_url = s["customer_url"].as_str().unwrap().to_owned();
    let agent_url = s["agent_url"].as_str().unwrap().to_owned();
    let msgs = eventually(20, "the link in the room", || async {
        let m = hs.messages(&customer, &room).await;
        (count(&m, &customer_url) == 1).then_some(m)
    })
    .await;
    eprintln!(
        "!video typed -> customer link visible in the room: {:?}",
        started.elapsed()
    );
    assert_eq!(
        count(&msgs, &agent_url),
        0,
        "the agent's link is not in the room"
    );
    let note = eventually(20, "the agent's link in the notes room", || async {
        let m = hs.messages(&agent, &notes).await;
        (count(&m, &agent_url) == 1).then_some(m)
    })
    .await;
    assert_eq!(count(&note, &agent_url), 1);
    // The customer's !video started nothing: one session only.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let (_, l) = api
        .get(&format!(
            "/api/v1/sessions?platform=matrix&conversation_id={}",
            enc(&room)
        ))
        .await;
    assert_eq!(l["items"].as_array().unwrap().len(), 1, "{l}");
    app.shutdown().await.unwrap();
}
