//! Integrations end to end against real HTTP receivers on loopback: the link arrives in a
//! Chatwoot-shaped conversation, event webhooks verify with an independent Standard
//! Webhooks implementation, and the signed inbound "start video" webhook is idempotent
//! and refuses bad signatures, stale timestamps and replays.

use crate::support_outbox::*;
use serde_json::json;
use sightline::Application;

async fn app(dir: &std::path::Path) -> (Application, Api) {
    let app = Application::build(config(dir)).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    (app, api)
}

#[tokio::test]
async fn chatwoot_link_arrives_and_events_are_signed() {
    let dir = tempfile::tempdir().unwrap();
    let (app, api) = app(dir.path()).await;
    let rx = Receiver::start().await;

    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({
                "name": "chatwoot-main",
                "kind": "chatwoot",
                "config": {"base_url": rx.url(""), "account_id": 7, "api_access_token": "cw-token"},
                "events_url": rx.url("/events"),
            }),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let secret = integ["signing_secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(integ["config"]["api_access_token"], "<set>");
    let (_, listed) = api.get("/api/v1/integrations").await;
    assert!(
        !listed.to_string().contains("cw-token"),
        "token must never be returned"
    );
    assert!(
        !listed.to_string().contains(&secret),
        "secret is shown only once"
    );

    let (st, session) = api
        .post(
            "/api/v1/sessions",
            session_body("42", Some("chatwoot-main")),
        )
        .await;
    assert_eq!(st, 201, "{session}");
    let customer_url = session["customer_url"].as_str().unwrap().to_owned();
    let sid = session["id"].as_str().unwrap().to_owned();

    // The link arrives in the conversation, as Chatwoot's documented API expects it.
    let post = eventually(10, "the chat post", || async {
        rx.on("/api/v1/accounts/7/conversations/42/messages").pop()
    })
    .await;
    assert_eq!(post.header("api-access-token"), Some("cw-token"));
    assert_eq!(post.header("api_access_token"), None);
    let body = post.json();
    assert_eq!(body["message_type"], "outgoing");
    assert_eq!(body["private"], false);
    let content = body["content"].as_str().unwrap();
    assert!(content.contains(&customer_url), "{content}");
    assert!(content.contains("Ana Lima"), "{content}");

    // session.created and session.link_posted, in that order, signed.
    let events = eventually(10, "two events", || async {
        let e = rx.on("/events");
        (e.len() >= 2).then_some(e)
    })
    .await;
    let types: Vec<String> = events
        .iter()
        .map(|e| e.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["session.created", "session.link_posted"]);
    for e in &events {
        assert!(verify_standard_webhook(&secret, e), "from-spec verifier");
        if let Some(ok) = verify_with_python_library(&secret, e) {
            assert!(ok, "standardwebhooks (PyPI) verifier");
        } else {
            eprintln!("note: python standardwebhooks not installed; from-spec verifier only");
        }
        assert!(!verify_standard_webhook(
            "whsec_AAAAAAAAAAAAAAAAAAAAAA==",
            e
        ));
        assert_eq!(e.json()["data"]["session_id"], sid.as_str());
        assert_eq!(e.json()["data"]["conversation"]["id"], "42");
    }

    // Ending the session sends session.ended with reason and duration.
    let (st, _) = api
        .post(
            &format!("/api/v1/sessions/{sid}/end"),
            json!({"reason": "customer_done"}),
        )
        .await;
    assert_eq!(st, 200);
    let ended = eventually(10, "session.ended", || async {
        rx.on("/events")
            .into_iter()
            .find(|e| e.json()["type"] == "session.ended")
    })
    .await;
    let d = &ended.json()["data"];
    assert_eq!(d["reason"], "customer_done");
    assert!(d["duration_secs"].as_i64().unwrap() >= 0);
    assert!(verify_standard_webhook(&secret, &ended));

    // Every delivery of the session is recorded as delivered: three events, the link,
    // and the "call ended" private note Chatwoot integrations post by default.
    // (The outcome is recorded just after the receiver answers: poll for it.)
    eventually(10, "five deliveries recorded", || async {
        let (_, page) = api
            .get(&format!("/api/v1/deliveries?session_id={sid}"))
            .await;
        let items = page["items"].as_array().cloned().unwrap_or_default();
        (items.len() == 5 && items.iter().all(|d| d["status"] == "delivered")).then_some(())
    })
    .await;

    // Rotation: a new secret signs from now on.
    let (st, rotated) = api
        .post(
            &format!(
                "/api/v1/integrations/{}/rotate-secret",
                integ["id"].as_str().unwrap()
            ),
            json!({}),
        )
        .await;
    assert_eq!(st, 200);
    assert_ne!(rotated["signing_secret"], secret.as_str());

    // The webhook schema is in the OpenAPI document.
    let doc: serde_json::Value = reqwest::get(format!("{}/api/v1/openapi.json", app.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["components"]["schemas"]["WebhookEvent"].is_object());
    assert!(doc["paths"]["/api/v1/deliveries/{id}/retry"].is_object());
    app.shutdown().await.unwrap();
}

async fn inbound(
    base: &str,
    integration_id: &str,
    secret: &str,
    webhook_id: &str,
    ts: i64,
    body: &serde_json::Value,
    tamper: bool,
) -> (u16, serde_json::Value) {
    let raw = serde_json::to_vec(body).unwrap();
    let mut sig = sign(secret, webhook_id, ts, &raw);
    if tamper {
        sig = sign(secret, webhook_id, ts, b"something else");
    }
    let r = reqwest::Client::new()
        .post(format!(
            "{base}/api/v1/integrations/{integration_id}/inbound"
        ))
        .header("content-type", "application/json")
        .header("webhook-id", webhook_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(raw)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn inbound_start_video_is_verified_idempotent_and_posts_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let (app, api) = app(dir.path()).await;
    let rx = Receiver::start().await;
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "desk", "kind": "generic", "config": {"post_url": rx.url("/post")}, "locale": "de"}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let id = integ["id"].as_str().unwrap();
    let secret = integ["signing_secret"].as_str().unwrap();
    let base = app.base_url();
    let now = chrono::Utc::now().timestamp();
    let body = json!({
        "event_id": "evt-1",
        "conversation_id": "conv-9",
        "agent": {"id": "a1", "name": "Bo"},
        "customer": {"name": "Kim", "locale": "de-AT"},
        "lobby": true,
    });

    let (st, first) = inbound(&base, id, secret, "wh-1", now, &body, false).await;
    assert_eq!(st, 201, "{first}");
    let sid = first["session_id"].as_str().unwrap().to_owned();
    let customer_url = first["customer_url"].as_str().unwrap().to_owned();

    // The same event again (a new delivery of it): same session, no second session.
    let (st, again) = inbound(&base, id, secret, "wh-2", now, &body, false).await;
    assert_eq!(st, 200, "{again}");
    assert_eq!(again["session_id"], sid.as_str());
    // A replay of an already processed webhook-id is refused.
    let (st, replay) = inbound(&base, id, secret, "wh-1", now, &body, false).await;
    assert_eq!(
        (st, replay["code"].as_str()),
        (409, Some("webhook_replayed"))
    );
    // Bad signature, stale and future timestamps are refused.
    let (st, _) = inbound(&base, id, secret, "wh-3", now, &body, true).await;
    assert_eq!(st, 403);
    let (st, stale) = inbound(&base, id, secret, "wh-4", now - 600, &body, false).await;
    assert_eq!((st, stale["code"].as_str()), (400, Some("stale_timestamp")));
    let (st, _) = inbound(&base, id, secret, "wh-5", now + 600, &body, false).await;
    assert_eq!(st, 400);
    let (st, _) = inbound(
        &base,
        id,
        "whsec_c29tZW90aGVyc2VjcmV0a2V5",
        "wh-6",
        now,
        &body,
        false,
    )
    .await;
    assert_eq!(st, 403);

    // Exactly one link post, signed, in German, with the customer's link.
    let post = eventually(10, "the generic post", || async { rx.on("/post").pop() }).await;
    let j = post.json();
    assert_eq!(j["type"], "message.post");
    assert_eq!(j["conversation_id"], "conv-9");
    assert_eq!(j["customer_url"], customer_url.as_str());
    assert!(j["content"].as_str().unwrap().contains("Videoanruf"), "{j}");
    assert!(verify_standard_webhook(secret, &post));
    let (_, list) = api.get("/api/v1/sessions?conversation_id=conv-9").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["items"][0]["lobby"], true,
        "the inbound path stores the lobby"
    );
    eventually(5, "link_posted in timeline", || async {
        let (_, ev) = api.get(&format!("/api/v1/sessions/{sid}/events")).await;
        ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "session.link_posted")
            .then_some(())
    })
    .await;
    assert_eq!(rx.on("/post").len(), 1);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn outbound_urls_follow_the_private_range_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbound.allow.clear();
    c.outbox.max_attempts = 2;
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let rx = Receiver::start().await;
    // An IP literal in a private range is refused at registration.
    let (st, err) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "x", "kind": "generic", "config": {"post_url": "http://10.0.0.1/"},
                   "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 422, "{err}");
    // A name that resolves to loopback is refused at delivery time and never reached.
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "y", "kind": "generic", "scope": "all",
                   "config": {"post_url": format!("http://localhost:{}/post", rx.addr.port())},
                   "events_url": format!("http://localhost:{}/events", rx.addr.port())}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let (st, _) = api
        .post("/api/v1/sessions", session_body("1", Some("y")))
        .await;
    assert_eq!(st, 201);
    let dead = eventually(10, "dead letters", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=dead").await;
        let items = p["items"].as_array().cloned().unwrap_or_default();
        (items.len() >= 2).then_some(items)
    })
    .await;
    assert!(
        dead.iter()
            .all(|d| d["last_error"].as_str().unwrap().contains("not allowed")),
        "{dead:?}"
    );
    assert!(rx.all().is_empty(), "nothing may reach a private address");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn presence_from_signaling_becomes_participant_webhooks() {
    use futures_util::{SinkExt, StreamExt};
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.signaling.grace_secs = 2;
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let rx = Receiver::start().await;
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "g", "kind": "generic", "scope": "all",
                   "events": ["participant.joined", "participant.left", "participant.reconnecting"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201);
    let secret = integ["signing_secret"].as_str().unwrap().to_owned();
    let (_, s) = api.post("/api/v1/sessions", session_body("p1", None)).await;
    let token = s["agent_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (st, info) = api
        .post(&format!("/api/v1/join/{token}/connect"), json!({}))
        .await;
    assert_eq!(st, 200, "{info}");
    let credential = info["credential"].as_str().unwrap();
    let url = format!("ws://{}/api/v1/ws", app.http_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let join = json!({"type": "join", "v": 2, "credential": credential, "instance": "a1"});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        join.to_string().into(),
    ))
    .await
    .unwrap();
    let _joined = ws.next().await.unwrap().unwrap();
    let joined = eventually(10, "participant.joined", || async {
        rx.on("/events")
            .into_iter()
            .find(|e| e.json()["type"] == "participant.joined")
    })
    .await;
    let d = &joined.json()["data"];
    assert_eq!(d["role"], "agent");
    assert_eq!(d["display_name"], "Ana Lima");
    assert!(verify_standard_webhook(&secret, &joined));
    drop(ws);
    let left = eventually(15, "participant.left", || async {
        rx.on("/events")
            .into_iter()
            .find(|e| e.json()["type"] == "participant.left")
    })
    .await;
    assert_eq!(left.json()["data"]["role"], "agent");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn https_receivers_are_accepted_and_their_certificates_checked() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbox.max_attempts = 1;
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    // A plain-HTTP server behind an https:// URL: the TLS handshake must be attempted and
    // fail (nothing unverified is ever sent), and the delivery is dead-lettered with the cause.
    let rx = Receiver::start().await;
    let https_url = rx.url("/events").replacen("http://", "https://", 1);
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "tls", "kind": "generic", "scope": "all",
                   "config": {"post_url": rx.url("/post").replacen("http://", "https://", 1)},
                   "events_url": https_url}),
        )
        .await;
    assert_eq!(st, 201, "https URLs are accepted: {integ}");
    let (st, _) = api
        .post("/api/v1/sessions", session_body("tls-1", Some("tls")))
        .await;
    assert_eq!(st, 201);
    let dead = eventually(10, "dead letters", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=dead").await;
        let items = p["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    for d in &dead {
        let e = d["last_error"].as_str().unwrap_or_default().to_lowercase();
        assert!(!e.contains("not supported"), "{d}");
    }
    assert!(
        rx.all().is_empty(),
        "no request may arrive over an unverified connection"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn adapter_urls_are_checked_at_registration() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbound.allow.clear();
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    for (kind, config) in [
        ("generic", json!({"post_url": "http://127.0.0.1:9/post"})),
        ("generic", json!({"post_url": "http://[::1]/post"})),
        (
            "generic",
            json!({"post_url": "http://169.254.169.254/latest"}),
        ),
        (
            "chatwoot",
            json!({"base_url": "http://10.1.2.3", "account_id": 1, "api_access_token": "t"}),
        ),
        (
            "chatwoot",
            json!({"base_url": "http://192.168.0.10:3000", "account_id": 1, "api_access_token": "t"}),
        ),
    ] {
        let (st, err) = api
            .post(
                "/api/v1/integrations",
                json!({"name": "x", "kind": kind, "config": config}),
            )
            .await;
        assert_eq!(st, 422, "{config}: {err}");
        assert_eq!(err["code"], "invalid_field", "{err}");
        assert!(
            err["detail"].as_str().unwrap().contains("not allowed"),
            "{err}"
        );
    }
    // Public destinations register; changing one to a private address is refused too.
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "ok", "kind": "chatwoot",
                   "config": {"base_url": "https://chat.example.com", "account_id": 1, "api_access_token": "t"}}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let id = integ["id"].as_str().unwrap();
    let (st, err) = api
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/integrations/{id}"),
            Some(json!({"config": {"base_url": "http://127.0.0.1:3000", "account_id": 1}})),
        )
        .await;
    assert_eq!(st, 422, "{err}");
    app.shutdown().await.unwrap();

    // An operator who allows the range may register it.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbound.allow = vec!["127.0.0.0/8".parse().unwrap()];
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "lan", "kind": "generic", "config": {"post_url": "http://127.0.0.1:9/post"}}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_policy_refusal_at_delivery_is_dead_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.outbound.allow.clear();
    c.outbox.max_attempts = 25;
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let rx = Receiver::start().await;
    // A name passes registration (names are checked when resolved) but resolves to
    // loopback at delivery time.
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "y", "kind": "generic",
                   "config": {"post_url": format!("http://localhost:{}/post?token=s3cret", rx.addr.port())}}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let (st, _) = api
        .post("/api/v1/sessions", session_body("1", Some("y")))
        .await;
    assert_eq!(st, 201);
    let dead = eventually(10, "a dead letter", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=dead").await;
        let items = p["items"].as_array().cloned().unwrap_or_default();
        (!items.is_empty()).then_some(items)
    })
    .await;
    let d = &dead[0];
    assert_eq!(d["attempts"], 1, "no retries: {d}");
    let reason = d["last_error"].as_str().unwrap();
    assert!(reason.contains("not allowed"), "{reason}");
    assert!(reason.contains("outbound.allow"), "{reason}");
    assert!(
        !reason.contains("s3cret"),
        "the URL stays out of the reason: {reason}"
    );
    let (_, pending) = api.get("/api/v1/deliveries?status=pending").await;
    assert_eq!(
        pending["items"].as_array().map(Vec::len),
        Some(0),
        "{pending}"
    );
    assert!(rx.all().is_empty());
    app.shutdown().await.unwrap();
}
