//! The outbox against a receiver that is down for a while: deliveries are retried and
//! arrive, in order per session; after the limit they are dead-lettered, visible in
//! `/deliveries`, and a manual retry delivers them.

use crate::support_outbox::*;
use serde_json::json;
use sightline::Application;

/// A generic integration named "g" (scope `all`) that posts and sends events to `rx`.
async fn integration_for_every_session(api: &Api, rx: &Receiver) -> serde_json::Value {
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "g", "kind": "generic", "scope": "all",
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    integ
}

#[tokio::test]
async fn receiver_down_then_up_gets_everything_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(config(dir.path())).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let rx = Receiver::start().await;
    rx.set_status(503);
    let integ = integration_for_every_session(&api, &rx).await;
    let secret = integ["signing_secret"].as_str().unwrap().to_owned();
    let mut sessions = Vec::new();
    for i in 0..5 {
        let (st, s) = api
            .post(
                "/api/v1/sessions",
                session_body(&format!("c{i}"), Some("g")),
            )
            .await;
        assert_eq!(st, 201);
        sessions.push(s["id"].as_str().unwrap().to_owned());
    }
    // While down: attempts pile up, nothing is marked delivered.
    eventually(10, "several failed attempts", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=pending").await;
        let items = p["items"].as_array().cloned().unwrap_or_default();
        items
            .iter()
            .any(|d| d["attempts"].as_i64().unwrap_or(0) >= 3)
            .then_some(())
    })
    .await;
    assert!(rx.all().len() >= 3);
    rx.set_status(200);
    // Wait until the link posts are recorded as delivered (which also appends
    // session.link_posted), then end the sessions.
    eventually(20, "link posts delivered", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=delivered").await;
        let posts = p["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["kind"] == "post_message")
            .count();
        (posts == 5).then_some(())
    })
    .await;
    for sid in &sessions {
        let (st, _) = api
            .post(&format!("/api/v1/sessions/{sid}/end"), json!({}))
            .await;
        assert_eq!(st, 200);
    }

    // Up again: every event arrives; per session: created → (post) → ended.
    let per_session = |sid: &str| {
        let mut seen = Vec::new();
        for r in rx.all() {
            if r.status != 200 || r.path != "/events" {
                continue;
            }
            let j = r.json();
            if j["data"]["session_id"] == sid {
                seen.push((
                    r.header("webhook-id").unwrap().to_owned(),
                    j["type"].as_str().unwrap().to_owned(),
                ));
            }
        }
        seen
    };
    eventually(20, "all deliveries delivered", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=delivered").await;
        (p["items"].as_array().unwrap().len() == 5 * 4).then_some(())
    })
    .await;
    for sid in &sessions {
        // Successful deliveries, in arrival order, each id once.
        let ok = per_session(sid);
        let types: Vec<&str> = ok.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(
            types,
            ["session.created", "session.link_posted", "session.ended"],
            "{sid}"
        );
        let mut ids: Vec<&str> = ok.iter().map(|(i, _)| i.as_str()).collect();
        ids.dedup();
        assert_eq!(ids.len(), 3);
    }
    for r in rx.on("/events") {
        assert!(verify_standard_webhook(&secret, &r));
    }
    let (_, p) = api.get("/api/v1/deliveries?status=dead").await;
    assert!(p["items"].as_array().unwrap().is_empty());
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn dead_letters_after_the_limit_and_manual_retry() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbox.max_attempts = 3;
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let rx = Receiver::start().await;
    rx.set_status(500);
    let (st, _) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "g", "kind": "generic", "events": ["session.created"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, s) = api
        .post("/api/v1/sessions", session_body("c1", Some("g")))
        .await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let dead = eventually(10, "dead letters", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=dead").await;
        let items = p["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 2).then_some(items)
    })
    .await;
    for d in &dead {
        assert_eq!(d["attempts"], 3);
        assert!(d["last_error"].as_str().unwrap().contains("500"), "{d}");
        assert_eq!(d["session_id"], sid.as_str());
    }
    let attempts_before = rx.all().len();
    assert_eq!(
        attempts_before, 6,
        "3 attempts for each of the 2 deliveries"
    );
    rx.set_status(200);
    for d in &dead {
        let (st, r) = api
            .post(&format!("/api/v1/deliveries/{}/retry", d["id"]), json!({}))
            .await;
        assert_eq!(st, 200, "{r}");
        assert_eq!(r["status"], "pending");
    }
    eventually(10, "retried deliveries delivered", || async {
        let (_, p) = api
            .get(&format!(
                "/api/v1/deliveries?session_id={sid}&status=delivered"
            ))
            .await;
        (p["items"].as_array().unwrap().len() == 2).then_some(())
    })
    .await;
    let ok: Vec<_> = rx.all().into_iter().skip(attempts_before).collect();
    assert_eq!(ok.len(), 2);
    // The same webhook-id as the failed attempts: receivers can deduplicate.
    let first_ids: Vec<_> = dead
        .iter()
        .map(|d| d["message_id"].as_str().unwrap().to_owned())
        .collect();
    for r in &ok {
        assert!(first_ids.contains(&r.header("webhook-id").unwrap().to_owned()));
    }
    let (st, _) = api
        .post(
            &format!("/api/v1/deliveries/{}/retry", dead[0]["id"]),
            json!({}),
        )
        .await;
    assert_eq!(st, 409, "a delivered delivery cannot be retried");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn two_instances_on_one_database_send_each_delivery_once() {
    let dir = tempfile::tempdir().unwrap();
    let a = Application::build(config(dir.path())).await.unwrap();
    let b = Application::build(config(dir.path())).await.unwrap();
    let key = a.bootstrap_key().unwrap().to_owned();
    let api_a = Api::new(a.base_url(), key.clone());
    let api_b = Api::new(b.base_url(), key);
    let rx = Receiver::start().await;
    integration_for_every_session(&api_a, &rx).await;
    // Both instances' workers wake on every enqueue and scan the same due rows.
    for i in 0..12 {
        let api = if i % 2 == 0 { &api_a } else { &api_b };
        let (st, _) = api
            .post(
                "/api/v1/sessions",
                session_body(&format!("c{i}"), Some("g")),
            )
            .await;
        assert_eq!(st, 201);
    }
    let delivered = eventually(20, "every delivery sent", || async {
        let (_, p) = api_a.get("/api/v1/deliveries?status=pending").await;
        let pending = p["items"].as_array().map_or(1, |a| a.len());
        let (_, d) = api_a
            .get("/api/v1/deliveries?status=delivered&limit=100")
            .await;
        let delivered = d["items"].as_array().map_or(0, |a| a.len());
        (pending == 0 && delivered >= 24).then_some(delivered)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let mut ids: Vec<String> = rx
        .all()
        .iter()
        .filter_map(|r| r.header("webhook-id").map(str::to_owned))
        .collect();
    let sent = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(sent, ids.len(), "a delivery was sent twice");
    assert_eq!(sent, delivered, "one request per delivery");
}
