//! Figures for BENCHMARKS.md ("Calls started from the chat"): from the agent typing the
//! command to the customer's link being visible in the conversation, p50 of 5, against
//! the Chatwoot stand-in (signed webhook in, link posted back) and against a real Synapse
//! (`!video` in a room, the bot's `/sync` long-poll, the link PUT into the room). Ignored
//! by default; run with
//! `cargo test --test api chat_bench -- --ignored --nocapture --test-threads 1`.

use std::time::{Duration, Instant};

use crate::chatwoot::Setup;
use crate::support_chatwoot::*;
use crate::support_outbox::{Api, config};
use crate::support_synapse::*;
use serde_json::json;
use sightline::Application;

fn p50(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: &[Duration]) -> Vec<String> {
    d.iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1000.0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn video_typed_to_link_visible_chatwoot_stand_in() {
    let t = Setup::new(|c| c.outbox.request_timeout_ms = 10_000).await;
    let url = t.integration["chatwoot_events_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut runs = Vec::new();
    for n in 0..5u64 {
        let conv = 500 + n;
        let note = message_created(
            3,
            json!(conv),
            5000 + n,
            "/video",
            true,
            agent_sender(5, "Ana"),
        );
        let t0 = Instant::now();
        let (st, _) = send_webhook(
            &url,
            Some("cw-secret"),
            &format!("bench-{n}"),
            chrono::Utc::now().timestamp(),
            &note,
        )
        .await;
        assert_eq!(st, 200);
        loop {
            if t.cw
                .messages(conv)
                .iter()
                .any(|m| !m.private && m.content.contains("/j/"))
            {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(10));
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        runs.push(t0.elapsed());
    }
    eprintln!(
        "chatwoot stand-in: /video -> customer link visible: p50 {:.1} ms (runs {:?})",
        p50(runs.clone()).as_secs_f64() * 1000.0,
        ms(&runs)
    );
    t.app.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn video_typed_to_link_visible_synapse() {
    let Some(hs) = Synapse::start().await else {
        panic!("the benchmark needs Synapse (scripts/setup-test-deps)");
    };
    let bot = hs.register("bot").await;
    let agent = hs.register("agent").await;
    let customer = hs.register("customer").await;
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbox.request_timeout_ms = 10_000;
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let (st, _) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "mx", "kind": "matrix",
                   "config": {"homeserver_url": hs.base, "access_token": bot.token,
                              "inbound": true, "agents": [agent.user_id]}}),
        )
        .await;
    assert_eq!(st, 201);
    let mut rooms = Vec::new();
    for _ in 0..5 {
        rooms.push(hs.room(&agent, &[&bot, &customer]).await);
    }
    tokio::time::sleep(Duration::from_secs(3)).await; // the bot's first sync
    let mut runs = Vec::new();
    for room in &rooms {
        let t0 = Instant::now();
        hs.say(&agent, room, "!video").await;
        loop {
            let msgs = hs.messages(&customer, room).await;
            if msgs
                .iter()
                .any(|(from, body)| from == &bot.user_id && body.contains("/j/"))
            {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(20));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        runs.push(t0.elapsed());
    }
    eprintln!(
        "synapse: !video -> customer link visible: p50 {:.1} ms (runs {:?})",
        p50(runs.clone()).as_secs_f64() * 1000.0,
        ms(&runs)
    );
    app.shutdown().await.unwrap();
}
