//! Two Sightline nodes (child processes of the `sightline` binary) on one PostgreSQL
//! database and a real NATS broker (`nats-server` on a free loopback port): calls across
//! nodes, a node killed with SIGKILL, the broker restarted, webhooks exactly once.
//! Skipped (with a line saying so) when `nats-server` or the PostgreSQL URL is missing.

mod harness;

use std::collections::HashMap;

use futures_util::StreamExt;
use std::time::{Duration, Instant};

use harness::{Cluster, Ws, close_code, send, until};
use serde_json::json;

/// Agent's socket on node A, customer's on node B: they see each other, signaling flows
/// both ways, and ending the session through node B's REST API closes both sockets.
#[tokio::test]
async fn cluster_call_across_nodes_then_end_on_the_other_node() {
    let Some(c) = Cluster::start("x").await else {
        return;
    };
    let s = c.create_session(0, "conv-x").await;
    let (mut agent, joined) = c.join(0, &s.agent, "a1").await;
    assert_eq!(joined["roster"], json!([]));
    let agent_id = joined["participant_id"].as_str().unwrap().to_owned();
    let (mut customer, joined) = c.join(1, &s.customer, "c1").await;
    let customer_id = joined["participant_id"].as_str().unwrap().to_owned();
    assert_eq!(joined["roster"][0]["id"], agent_id.as_str(), "{joined}");
    let pj = until(&mut agent, "participant_joined").await;
    assert_eq!(pj["participant"]["id"], customer_id.as_str());

    send(
        &mut agent,
        json!({"type": "offer", "to": customer_id, "sdp": "v=0 across"}),
    )
    .await;
    let offer = until(&mut customer, "offer").await;
    assert_eq!(offer["from"], agent_id.as_str());
    assert_eq!(offer["sdp"], "v=0 across");
    // Listen in on what node B forwards to the owner (node A), to replay it below.
    let nats = async_nats::ConnectOptions::with_user_and_password(
        "sightline".into(),
        harness::BROKER_PASSWORD.into(),
    )
    .connect(format!("127.0.0.1:{}", c.nats.port))
    .await
    .expect("nats");
    let mut tap = nats
        .subscribe("sightline.node.x-a.in")
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    // A large SDP (far above PostgreSQL NOTIFY's 8000 bytes) crosses the broker whole.
    let big = format!("v=0 {}", "a".repeat(40_000));
    send(
        &mut customer,
        json!({"type": "answer", "to": agent_id, "sdp": big}),
    )
    .await;
    let answer = until(&mut agent, "answer").await;
    assert_eq!(answer["sdp"].as_str().map(str::len), Some(big.len()));
    let forwarded = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let m = tap.next().await.expect("tap");
            if m.payload.len() > 40_000 {
                return m.payload;
            }
        }
    })
    .await
    .expect("the answer went through the broker");
    // The same message again (a duplicate on the wire): the room applies it once.
    nats.publish("sightline.node.x-a.in", forwarded)
        .await
        .expect("replay");
    nats.flush().await.expect("flush");
    send(
        &mut customer,
        json!({"type": "candidate", "to": agent_id, "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
    )
    .await;
    loop {
        let m = harness::next_json(&mut agent).await;
        assert_ne!(m["type"], "answer", "a replayed message was applied twice");
        if m["type"] == "candidate" {
            break;
        }
    }

    // Malformed and stray broker messages are dropped with a log line; the call goes on.
    for subject in [
        "sightline.node.x-a.in",
        "sightline.node.x-b.in",
        "sightline.node.x-a.out",
        "sightline.node.x-b.out",
        "sightline.signal",
        "sightline.hb",
    ] {
        for junk in [
            &b"{"[..],
            b"\xff\xfe\x00",
            b"[]",
            br#"{"t":"msg","session":"s","from":"nobody","conn":1,"seq":1,"text":"x"}"#,
            br#"{"t":"join","session":"s","from":"z","conn":1,"seq":1,"joiner":{"participant_id":"p","role":"king","mode":null,"name":"n","instance":"i","media":{"audio":true,"video":true},"lobby":false}}"#,
            br#"{"conn":1,"seq":1,"out":{"t":"close","code":4410}}"#,
            br#"{"id":"1","origin":"z","session":"s","signal":{"t":"mode_changed","participant_id":"p","mode":"shout"}}"#,
        ] {
            nats.publish(subject, junk.to_vec().into())
                .await
                .expect("publish");
        }
    }
    nats.flush().await.expect("flush");
    send(
        &mut agent,
        json!({"type": "offer", "to": customer_id, "sdp": "v=0 still here"}),
    )
    .await;
    assert_eq!(until(&mut customer, "offer").await["sdp"], "v=0 still here");
    let m = c.metrics(0).await;
    assert!(
        has_line(&m, "sightline_cluster_dropped_total{reason=\"malformed\"}"),
        "{m}"
    );
    assert!(
        has_line(
            &m,
            "sightline_cluster_dropped_total{reason=\"duplicate\"} 1"
        ),
        "{m}"
    );

    let (st, ended) = c
        .post(
            1,
            &format!("/api/v1/sessions/{}/end", s.id),
            json!({"reason": "done"}),
        )
        .await;
    assert_eq!(st, 200, "{ended}");
    assert_eq!(close_code(&mut agent).await, 4410);
    assert_eq!(close_code(&mut customer).await, 4410);
    let metrics = c.metrics(1).await;
    assert!(
        has_line(&metrics, "sightline_cluster_node_info{node=\"x-b\"} 1"),
        "{metrics}"
    );
    assert!(
        has_line(&metrics, "sightline_cluster_broker_connected 1"),
        "{metrics}"
    );
    let logs = c.full_logs();
    assert!(logs.contains("broker connected"), "{logs}");
    assert!(
        !logs.contains(harness::BROKER_PASSWORD),
        "the broker password was logged"
    );
    c.stop().await;
}

/// The node that owns a room dies (SIGKILL) mid-call: the customer's socket on the other
/// node is told to reconnect, the agent reconnects to the surviving node, the room is
/// rebuilt there and signaling resumes.
#[tokio::test]
async fn cluster_owner_killed_room_moves_to_the_other_node() {
    let Some(mut c) = Cluster::start("k").await else {
        return;
    };
    let s = c.create_session(0, "conv-k").await;
    let (mut agent, joined) = c.join(0, &s.agent, "a1").await;
    let agent_id = joined["participant_id"].as_str().unwrap().to_owned();
    let (mut customer, joined) = c.join(1, &s.customer, "c1").await;
    let customer_id = joined["participant_id"].as_str().unwrap().to_owned();
    until(&mut agent, "participant_joined").await;

    let killed = Instant::now();
    c.kill(0);
    drop(agent);
    // The customer's node stops hearing the owner and closes the socket: "going away".
    let code = close_code(&mut customer).await;
    assert!(code == 1001 || code == 0, "close code {code}");
    let (mut agent, _) = c.join(1, &s.agent, "a1").await;
    let (mut customer, _) = c.join(1, &s.customer, "c1").await;
    send(
        &mut agent,
        json!({"type": "offer", "to": customer_id, "sdp": "v=0 after failover"}),
    )
    .await;
    let offer = until(&mut customer, "offer").await;
    assert_eq!(offer["from"], agent_id.as_str());
    let resumed = killed.elapsed();
    eprintln!(
        "FIGURE failover: {} ms from SIGKILL of the owner to signaling resumed",
        resumed.as_millis()
    );
    assert!(resumed < Duration::from_secs(12), "{resumed:?}");
    let (st, _) = c
        .post(
            1,
            &format!("/api/v1/sessions/{}/end", s.id),
            json!({"reason": "done"}),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(close_code(&mut agent).await, 4410);
    c.stop().await;
}

/// A node stopped with SIGTERM (a rolling upgrade) hands its rooms over at once: it
/// gives its leases up, so the room moves without waiting for the lease to expire.
#[tokio::test]
async fn cluster_node_stopped_gracefully_hands_its_rooms_over() {
    let Some(mut c) = Cluster::start("d").await else {
        return;
    };
    let s = c.create_session(0, "conv-d").await;
    let (mut agent, _) = c.join(0, &s.agent, "a1").await;
    let (customer, joined) = c.join(1, &s.customer, "c1").await;
    let customer_id = joined["participant_id"].as_str().unwrap().to_owned();
    until(&mut agent, "participant_joined").await;
    let stopped = Instant::now();
    c.terminate(0);
    assert_eq!(close_code(&mut agent).await, 1001);
    let (mut agent, _) = c.join(1, &s.agent, "a1").await;
    let mut customer = resume(&c, 1, &s.customer, "c1", customer).await;
    send(
        &mut agent,
        json!({"type": "offer", "to": customer_id, "sdp": "v=0 after drain"}),
    )
    .await;
    assert_eq!(
        until(&mut customer, "offer").await["sdp"],
        "v=0 after drain"
    );
    let moved = stopped.elapsed();
    eprintln!(
        "FIGURE drain: {} ms from SIGTERM to signaling resumed",
        moved.as_millis()
    );
    c.stop().await;
}

/// The broker restarts mid-call: both nodes reconnect by themselves, `/readyz` says so
/// meanwhile, and the pages (reconnecting like the real ones) resume signaling.
#[tokio::test]
async fn cluster_broker_restart_mid_call_signaling_resumes() {
    let Some(mut c) = Cluster::start("r").await else {
        return;
    };
    let s = c.create_session(0, "conv-r").await;
    let (mut agent, _) = c.join(0, &s.agent, "a1").await;
    let (customer, joined) = c.join(1, &s.customer, "c1").await;
    let customer_id = joined["participant_id"].as_str().unwrap().to_owned();
    until(&mut agent, "participant_joined").await;

    // Longer than `dead_after`: each node takes the other for dead and lets its
    // cross-node sockets go.
    c.nats.stop();
    c.wait_ready(1, false).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    c.nats.start();
    c.wait_ready(0, true).await;
    c.wait_ready(1, true).await;
    // Whatever the sockets saw, a page reconnects until its room answers again.
    let mut agent = resume(&c, 0, &s.agent, "a1", agent).await;
    let mut customer = resume(&c, 1, &s.customer, "c1", customer).await;
    send(
        &mut agent,
        json!({"type": "offer", "to": customer_id, "sdp": "v=0 after restart"}),
    )
    .await;
    let offer = until(&mut customer, "offer").await;
    assert_eq!(offer["sdp"], "v=0 after restart");
    c.stop().await;
}

/// Whether a metrics text has a line starting with `start`.
fn has_line(metrics: &str, start: &str) -> bool {
    metrics.lines().any(|l| l.starts_with(start))
}

/// Keeps a socket that still works (answers a ping with a pong); otherwise joins anew.
async fn resume(c: &Cluster, node: usize, token: &str, instance: &str, mut ws: Ws) -> Ws {
    send(&mut ws, json!({"type": "ping"})).await;
    let alive = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match harness::try_next_json(&mut ws).await {
                Some(v) if v["type"] == "pong" => return true,
                Some(_) => continue,
                None => return false,
            }
        }
    })
    .await
    .unwrap_or(false);
    if alive {
        return ws;
    }
    c.join(node, token, instance).await.0
}

/// 200 sessions created alternately on both nodes, each with a `session.created`
/// webhook to a real HTTP receiver: every webhook arrives exactly once.
#[tokio::test]
async fn cluster_webhooks_from_both_nodes_exactly_once() {
    let Some(c) = Cluster::start("w").await else {
        return;
    };
    let rx = crate::support_outbox::Receiver::start().await;
    let (st, integ) = c
        .post(
            0,
            "/api/v1/integrations",
            json!({"name": "g", "kind": "generic", "scope": "all", "events": ["session.created"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let mut ids = Vec::new();
    for i in 0..200 {
        let s = c.create_session(i % 2, &format!("conv-w-{i}")).await;
        ids.push(s.id);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while rx.on("/events").len() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Anything sent twice would arrive within a few more poll intervals.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = rx.on("/events");
    let mut per_session: HashMap<String, usize> = HashMap::new();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &got {
        let v = r.json();
        let sid = v["data"]["session"]["id"]
            .as_str()
            .or(v["data"]["session_id"].as_str())
            .unwrap_or_default()
            .to_owned();
        *per_session.entry(sid).or_default() += 1;
        *per_id
            .entry(r.header("webhook-id").unwrap_or_default().to_owned())
            .or_default() += 1;
    }
    assert_eq!(got.len(), 200, "deliveries: {}\n{}", got.len(), c.logs());
    assert!(per_id.values().all(|n| *n == 1), "a webhook id twice");
    for id in &ids {
        assert_eq!(per_session.get(id), Some(&1), "session {id}");
    }
    c.stop().await;
}

/// Figures for BENCHMARKS.md (run explicitly, see there): signaling latency across
/// nodes and on one node, session creation throughput on two nodes and one.
#[tokio::test]
#[ignore = "benchmark; run with --ignored --nocapture"]
async fn cluster_bench_figures() {
    let Some(c) = Cluster::start("bench").await else {
        return;
    };
    for (label, customer_node) in [("one node", 0), ("across nodes", 1)] {
        let s = c
            .create_session(0, &format!("conv-bench-{customer_node}"))
            .await;
        let (mut agent, _) = c.join(0, &s.agent, "a1").await;
        let (mut customer, joined) = c.join(customer_node, &s.customer, "c1").await;
        let cid = joined["participant_id"].as_str().unwrap().to_owned();
        until(&mut agent, "participant_joined").await;
        let mut lat = Vec::new();
        for i in 0..300 {
            let t = Instant::now();
            send(
                &mut agent,
                json!({"type": "candidate", "to": cid, "candidate": {"candidate": format!("candidate:{i} 1 udp 1 127.0.0.1 9 typ host"), "sdpMid": "0", "sdpMLineIndex": 0}}),
            )
            .await;
            until(&mut customer, "candidate").await;
            lat.push(t.elapsed());
            if i % 30 == 29 {
                // Stay under the per-socket message rate.
                tokio::time::sleep(Duration::from_millis(800)).await;
            }
        }
        lat.sort();
        let p = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
        eprintln!(
            "FIGURE latency {label}: p50 {:.2} ms, p99 {:.2} ms (n={})",
            p(0.50).as_secs_f64() * 1000.0,
            p(0.99).as_secs_f64() * 1000.0,
            lat.len()
        );
    }
    for targets in [
        vec![0usize],
        vec![1],
        vec![0, 1],
        vec![0],
        vec![1],
        vec![0, 1],
    ] {
        let nodes = targets.len();
        let n = 400;
        let started = Instant::now();
        let mut set = tokio::task::JoinSet::new();
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
        for i in 0..n {
            let url = format!("{}/api/v1/sessions", c.base(targets[i % nodes]));
            let key = c.key.clone();
            let http = c.http.clone();
            let sem = sem.clone();
            set.spawn(async move {
                let _p = sem.acquire().await;
                let r = http
                    .post(url)
                    .bearer_auth(key)
                    .json(&json!({
                        "conversation": {"platform": "test", "id": format!("tp-{nodes}-{i}-{}", uuid::Uuid::new_v4())},
                        "agent": {"id": "a-1", "name": "Ana"},
                        "customer": {"name": "Sam"},
                    }))
                    .send()
                    .await;
                r.map(|r| r.status().as_u16()).unwrap_or(0)
            });
        }
        let mut ok = 0;
        while let Some(r) = set.join_next().await {
            if r.unwrap_or(0) == 201 {
                ok += 1;
            }
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "FIGURE create throughput on node(s) {targets:?}: {:.0} sessions/s ({ok}/{n} in {secs:.2} s, 32 concurrent)",
            ok as f64 / secs
        );
    }
    c.stop().await;
}

/// Real browsers: the agent's page served by node A, the customer's by node B (each page's
/// socket on its own node); video and audio flow; the session ended through node B's REST
/// API ends both pages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_browser_call_across_nodes_ends_on_the_other_node() {
    let driver = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    if !driver.join("node_modules/playwright-core").exists()
        || !std::path::Path::new("/usr/bin/chromium").exists()
    {
        eprintln!(
            "SKIPPED: chromium or tests/browser/node_modules missing (scripts/setup-test-deps)"
        );
        return;
    }
    let Some(c) = Cluster::start("br").await else {
        return;
    };
    let (st, v) = c
        .post(
            0,
            "/api/v1/sessions",
            json!({
                "conversation": {"platform": "test", "id": "conv-br"},
                "agent": {"id": "a-1", "name": "Ana"},
                "customer": {"name": "Sam"},
            }),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let id = v["id"].as_str().unwrap().to_owned();
    // Links name node A (its public URL); the customer's goes to node B instead.
    let agent_url = v["agent_url"].as_str().unwrap().to_owned();
    let customer_url = v["customer_url"]
        .as_str()
        .unwrap()
        .replacen(&c.base(0), &c.base(1), 1);
    assert!(customer_url.starts_with(&c.base(1)), "{customer_url}");
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/artifacts");
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url,
        "artifacts": artifacts.display().to_string(),
        "scenario": "cluster", "label": "cluster",
        "endUrl": format!("{}/api/v1/sessions/{id}/end", c.base(1)), "apiKey": c.key,
    });
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .current_dir(&driver)
            .arg("call.mjs")
            .arg(args.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("node must be installed")
    })
    .await
    .expect("driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("driver said: {stdout}"));
    assert_eq!(r["ok"], true, "browser driver failed: {r:#}\n{}", c.logs());
    for side in ["agent", "customer"] {
        let (a, b) = (&r[side]["first"], &r[side]["second"]);
        let frames = (a["videoFrames"].as_u64(), b["videoFrames"].as_u64());
        assert!(
            matches!(frames, (Some(x), Some(y)) if x > 0 && y > x),
            "{side}: video frames not rising: {r}"
        );
        let packets = (a["audioPackets"].as_u64(), b["audioPackets"].as_u64());
        assert!(
            matches!(packets, (Some(x), Some(y)) if x > 0 && y > x),
            "{side}: audio packets not rising: {r}"
        );
    }
    assert_eq!(r["endStatus"], 200, "{r}");
    assert_eq!(r["ended"], true, "{r}");
    c.stop().await;
}

/// Room and task leases are taken, kept and handed over in the database's clock: a live
/// lease is never taken by another node, an expired one is (with a new epoch), and the
/// loser's renewal reports the loss.
#[tokio::test]
async fn cluster_leases_follow_database_time() {
    use sightline::store::leases::{self, Owner};
    let Some(url) = crate::fresh_database().await else {
        return;
    };
    let db = sea_orm::Database::connect(url.as_str())
        .await
        .expect("connect");
    sightline::store::migrate(&db).await.expect("migrate");
    let s = "0190f0e0-0000-7000-8000-000000000001";
    assert_eq!(
        leases::claim_room(&db, s, "a", 30.0, true).await.unwrap(),
        Owner::Me
    );
    assert_eq!(
        leases::claim_room(&db, s, "b", 30.0, true).await.unwrap(),
        Owner::Other("a".into())
    );
    // A draining node takes nothing, but keeps what it holds.
    assert_eq!(
        leases::claim_room(&db, s, "a", 30.0, false).await.unwrap(),
        Owner::Me
    );
    let other = "0190f0e0-0000-7000-8000-000000000002";
    assert_eq!(
        leases::claim_room(&db, other, "b", 30.0, false)
            .await
            .unwrap(),
        Owner::Nobody
    );
    assert_eq!(
        leases::renew_rooms(&db, "a", &[s.to_owned()], 30.0)
            .await
            .unwrap(),
        vec![s.to_owned()]
    );
    // The owner stops renewing; in database time the lease runs out.
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("UPDATE room_leases SET expires_at = now() - interval '1 second'")
        .await
        .unwrap();
    assert_eq!(
        leases::claim_room(&db, s, "b", 30.0, true).await.unwrap(),
        Owner::Me
    );
    assert!(
        leases::renew_rooms(&db, "a", &[s.to_owned()], 30.0)
            .await
            .unwrap()
            .is_empty(),
        "the old owner learns it lost the room"
    );
    let epoch = db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT epoch FROM room_leases",
        ))
        .await
        .unwrap()
        .and_then(|r| r.try_get::<i64>("", "epoch").ok());
    assert_eq!(epoch, Some(2));
    leases::release_room(&db, s, "a").await.unwrap();
    assert_eq!(
        leases::claim_room(&db, s, "a", 30.0, true).await.unwrap(),
        Owner::Other("b".into()),
        "only the holder can give a lease up"
    );
    // One node at a time holds a task.
    assert!(leases::claim_task(&db, "sweeper", "a", 30.0).await.unwrap());
    assert!(!leases::claim_task(&db, "sweeper", "b", 30.0).await.unwrap());
    assert!(leases::claim_task(&db, "sweeper", "a", 30.0).await.unwrap());
    assert_eq!(leases::release_all(&db, "b").await.unwrap(), 1);
    assert!(!leases::claim_task(&db, "sweeper", "b", 30.0).await.unwrap());
}
