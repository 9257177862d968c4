//! Figures for BENCHMARKS.md ("Outbox and webhooks"). Ignored by default; run with
//! `cargo test --release --test outbox_bench -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use crate::support_outbox::*;
use serde_json::json;
use sightline::Application;
use sightline::store::outbox::{self, Kind, NewDelivery};

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn delivery_latency_and_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbox.poll_interval_ms = 250; // the default: latency must not depend on polling
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let rx = Receiver::start().await;
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "bench", "kind": "generic", "scope": "all", "events": ["session.created"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201);
    let integration_id = integ["id"].as_str().unwrap().to_owned();

    // Latency: from just before POST /sessions until the receiver has session.created.
    let mut lat = Vec::new();
    for i in 0..300 {
        let before = rx.all().len();
        let t0 = Instant::now();
        let (st, _) = api
            .post("/api/v1/sessions", session_body(&format!("l{i}"), None))
            .await;
        assert_eq!(st, 201);
        let arrived =
            eventually(10, "event", || async { rx.all().get(before).map(|r| r.at) }).await;
        lat.push(arrived - t0);
    }
    lat.sort();
    println!(
        "latency (API call → receiver), n={}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        lat.len(),
        pct(&lat, 0.50).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3
    );

    // Throughput: a backlog of events enqueued at once, drained by the worker.
    for (keys, per_key) in [(500usize, 10usize), (1, 1000)] {
        let start_count = rx.all().len();
        let total = keys * per_key;
        let db = &app.state().db;
        let txn = sightline::store::begin_write(db).await.unwrap();
        let now = chrono::Utc::now();
        for n in 0..per_key {
            for k in 0..keys {
                let body = json!({"type": "session.created", "data": {"n": n, "k": k}}).to_string();
                outbox::enqueue(
                    &txn,
                    NewDelivery {
                        kind: Kind::Event,
                        event_type: Some("session.created".into()),
                        session_id: None,
                        integration_id: Some(integration_id.clone()),
                        ordering_key: format!("bench-{k}"),
                        payload: json!({"url": rx.url("/events"), "body": body}),
                    },
                    now,
                )
                .await
                .unwrap();
            }
        }
        let t0 = Instant::now();
        txn.commit().await.unwrap();
        eventually(300, "backlog drained", || async {
            (rx.all().len() >= start_count + total).then_some(())
        })
        .await;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "throughput, {total} events over {keys} ordering keys: {:.2} s, {:.0} events/s",
            secs,
            total as f64 / secs
        );
    }
    app.shutdown().await.unwrap();
}
