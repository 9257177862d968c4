//! The REST API against the real app on port 0 with a fresh SQLite database.

use crate::support;

use std::time::Duration;

use crate::support::{TestApp, assert_problem, session_body};
use serde_json::{Value, json};

fn token_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

async fn page_status(app: &TestApp, url: &str) -> u16 {
    app.http.get(url).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn whole_session_flow() {
    let app = TestApp::spawn().await;
    let s = app.create_session("conv-1").await;
    let id = s["id"].as_str().unwrap();
    assert_eq!(s["status"], "created");
    assert_eq!(
        s["conversation"],
        json!({"platform": "chatwoot", "id": "conv-1"})
    );
    assert_eq!(s["metadata"], json!({"ticket": "T-1"}));
    let agent_url = s["agent_url"].as_str().unwrap().to_owned();
    let customer_url = s["customer_url"].as_str().unwrap().to_owned();
    assert!(agent_url.starts_with(&format!("{}/j/", app.base)));
    assert_ne!(agent_url, customer_url);
    // ≥128 bits of randomness: 16 random bytes + expiry + tag, base64url.
    assert!(token_of(&customer_url).len() >= 43);
    assert_eq!(s["participants"].as_array().unwrap().len(), 2);

    // Both links open while the session lives, and open again (re-join).
    for _ in 0..2 {
        assert_eq!(page_status(&app, &agent_url).await, 200);
        assert_eq!(page_status(&app, &customer_url).await, 200);
    }

    let got: Value = app
        .get(&format!("/api/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], id);
    assert_eq!(got["customer_url"], customer_url.as_str());
    let roles: Vec<_> = got["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["role"].clone())
        .collect();
    assert_eq!(roles, vec![json!("agent"), json!("customer")]);

    let ended = app
        .post(
            &format!("/api/v1/sessions/{id}/end"),
            &json!({"reason": "customer satisfied"}),
        )
        .await;
    assert_eq!(ended.status(), 200);
    let ended: Value = ended.json().await.unwrap();
    assert_eq!(ended["status"], "ended");
    assert_eq!(ended["end_reason"], "customer satisfied");
    assert!(ended["ended_at"].is_string());
    assert!(ended["agent_url"].is_null() && ended["customer_url"].is_null());

    // Every link of the session is dead, with a friendly page that leaks nothing.
    for url in [&agent_url, &customer_url] {
        let r = app.http.get(url.as_str()).send().await.unwrap();
        assert_eq!(r.status(), 410);
        assert_eq!(r.headers()["referrer-policy"], "no-referrer");
        let html = r.text().await.unwrap();
        assert!(html.contains("data-error=\"session_ended\""), "{html}");
        assert!(!html.contains(id));
    }

    // Ending again is idempotent.
    let again = app
        .post(&format!("/api/v1/sessions/{id}/end"), &json!({}))
        .await;
    assert_eq!(again.status(), 200);

    let events: Value = app
        .get(&format!("/api/v1/sessions/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            "session.created",
            "link.issued",
            "link.issued",
            "session.ended"
        ]
    );
    let end = &events["items"][3];
    assert_eq!(end["data"]["reason"], "customer satisfied");
    assert!(end["data"]["duration_secs"].is_number());
}

#[tokio::test]
async fn end_without_a_body_works() {
    let app = TestApp::spawn().await;
    let s = app.create_session("c").await;
    let r = app
        .http
        .post(app.url(&format!(
            "/api/v1/sessions/{}/end",
            s["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["end_reason"], "ended_via_api");
}

#[tokio::test]
async fn idempotency_key_returns_the_same_session() {
    let app = TestApp::spawn().await;
    let send = |key: &'static str, body: Value| {
        let app = &app;
        async move {
            app.http
                .post(app.url("/api/v1/sessions"))
                .bearer_auth(&app.key)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let first = send("k-1", session_body("c-9")).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let second = send("k-1", session_body("c-9")).await;
    assert_eq!(second.status(), 200);
    let second: Value = second.json().await.unwrap();
    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["customer_url"], second["customer_url"]);
    // The fingerprint is over the parsed request: the same request spelled differently
    // (a blank optional field, padding the server trims) is a replay, not a conflict.
    let mut same = session_body("c-9");
    same["agent"]["name"] = Value::from(format!(" {} ", same["agent"]["name"].as_str().unwrap()));
    same["relay_only"] = Value::Bool(false);
    let third = send("k-1", same).await;
    assert_eq!(third.status(), 200);
    let third: Value = third.json().await.unwrap();
    assert_eq!(first["id"], third["id"]);

    // Same key, different body: refused, nothing created.
    assert_problem(
        send("k-1", session_body("c-10")).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    // Concurrent retries with a new key still make exactly one session.
    let (a, b) = tokio::join!(
        send("k-2", session_body("c-11")),
        send("k-2", session_body("c-11"))
    );
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["id"], b["id"]);
    let list: Value = app
        .get("/api/v1/sessions?limit=100")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 2);

    assert_problem(
        app.http
            .post(app.url("/api/v1/sessions"))
            .bearer_auth(&app.key)
            .header("Idempotency-Key", "has space")
            .json(&session_body("c"))
            .send()
            .await
            .unwrap(),
        400,
        "invalid_idempotency_key",
    )
    .await;
}

#[tokio::test]
async fn list_is_newest_first_with_cursor_pagination_and_filters() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(
            app.create_session("conv-p").await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    app.create_session("other").await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0..10 {
        let q = match &cursor {
            Some(c) => format!("/api/v1/sessions?conversation_id=conv-p&limit=2&cursor={c}"),
            None => "/api/v1/sessions?conversation_id=conv-p&limit=2".to_owned(),
        };
        let v: Value = app.get(&q).await.json().await.unwrap();
        let items = v["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|s| s["id"].as_str().unwrap().to_owned()));
        cursor = v["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            assert_eq!(page, 2);
            break;
        }
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, no gaps, no duplicates");

    app.post(&format!("/api/v1/sessions/{}/end", ids[0]), &json!({}))
        .await;
    let ended: Value = app
        .get("/api/v1/sessions?status=ended")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(ended["items"].as_array().unwrap().len(), 1);
    assert_eq!(ended["items"][0]["id"], ids[0].as_str());
    let created: Value = app
        .get("/api/v1/sessions?status=created&platform=chatwoot")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["items"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn links_refuse_tampering_expiry_and_revocation() {
    let app = TestApp::spawn().await;
    let s = app.create_session("c").await;
    let id = s["id"].as_str().unwrap();
    let customer_url = s["customer_url"].as_str().unwrap().to_owned();
    let token = token_of(&customer_url).to_owned();

    // Tampered: every position changed still fails as "invalid" (404), not a 5xx.
    for i in [0, 10, token.len() / 2, token.len() - 1] {
        let mut b = token.clone().into_bytes();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        let t = String::from_utf8(b).unwrap();
        let r = app
            .http
            .get(app.url(&format!("/j/{t}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "position {i}");
        assert!(r.text().await.unwrap().contains("link_invalid"));
    }
    for junk in ["x", "-", "--help", &"A".repeat(600), "%00%ff"] {
        let r = app
            .http
            .get(app.url(&format!("/j/{junk}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{junk}");
    }

    // Expired: a correctly signed token whose expiry has passed.
    let expired = {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&token)
            .unwrap();
        app.app
            .state()
            .keys
            .join
            .seal(&raw[..16], chrono::Utc::now().timestamp() - 1)
    };
    let r = app
        .http
        .get(app.url(&format!("/j/{expired}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("link_expired"));

    // Revoked: a new customer link replaces the old one.
    let rotated: Value = app
        .post(&format!("/api/v1/sessions/{id}/customer-link"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let new_url = rotated["customer_url"].as_str().unwrap();
    assert_ne!(new_url, customer_url);
    assert_eq!(rotated["agent_url"], s["agent_url"]);
    let r = app.http.get(&customer_url).send().await.unwrap();
    assert_eq!(r.status(), 410);
    assert!(r.text().await.unwrap().contains("link_revoked"));
    assert_eq!(page_status(&app, new_url).await, 200);

    let events: Value = app
        .get(&format!("/api/v1/sessions/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.ends_with(&["link.revoked", "link.issued"]),
        "{kinds:?}"
    );

    // After the end, rotating is a conflict.
    app.post(&format!("/api/v1/sessions/{id}/end"), &json!({}))
        .await;
    assert_problem(
        app.post(&format!("/api/v1/sessions/{id}/customer-link"), &json!({}))
            .await,
        409,
        "session_ended",
    )
    .await;
}

#[tokio::test]
async fn sweeper_ends_expired_sessions_nobody_joined() {
    let app = TestApp::spawn().await;
    let s = app.create_session("c").await;
    let id = s["id"].as_str().unwrap();
    let later = chrono::Utc::now() + chrono::Duration::hours(5);
    let n = sightline::store::sessions::sweep_expired(&app.app.state().db, later)
        .await
        .unwrap();
    assert_eq!(n, 1);
    let got: Value = app
        .get(&format!("/api/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["status"], "ended");
    assert_eq!(got["end_reason"], "expired");
    assert_eq!(
        page_status(&app, s["customer_url"].as_str().unwrap()).await,
        410
    );
}

#[tokio::test]
async fn bad_input_gets_a_clear_problem_never_a_5xx() {
    let app = TestApp::spawn_with(|c| c.max_body_bytes = 8 * 1024).await;
    let raw = |body: &'static str| {
        app.http
            .post(app.url("/api/v1/sessions"))
            .bearer_auth(&app.key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_problem(
        raw("{\"conversation\":").await.unwrap(),
        400,
        "invalid_json",
    )
    .await;
    assert_problem(raw("[]").await.unwrap(), 400, "invalid_json").await;
    assert_problem(
        raw("{\"agent\":{\"id\":\"a\",\"name\":\"b\"}}")
            .await
            .unwrap(),
        400,
        "invalid_json",
    )
    .await;

    let mut b = session_body("c");
    b["agent"]["name"] = json!("   ");
    assert_problem(app.post("/api/v1/sessions", &b).await, 400, "invalid_field").await;
    let mut b = session_body("c");
    b["customer"]["email"] = json!("not-an-email");
    let p = assert_problem(app.post("/api/v1/sessions", &b).await, 400, "invalid_field").await;
    // The OpenAPI pattern refuses it before the parser; the detail names the field.
    assert!(p["detail"].as_str().unwrap().contains("email"), "{p}");
    let mut b = session_body("c");
    b["conversation"]["id"] = json!("x".repeat(300));
    assert_problem(app.post("/api/v1/sessions", &b).await, 400, "invalid_field").await;
    // A number where the document says string is refused, not turned into text.
    let mut b = session_body("c");
    b["agent"]["name"] = json!(42);
    assert_problem(app.post("/api/v1/sessions", &b).await, 400, "invalid_json").await;
    let mut b = session_body("c");
    b["metadata"] = json!({"blob": "y".repeat(5000)});
    assert_problem(app.post("/api/v1/sessions", &b).await, 400, "invalid_field").await;
    let mut b = session_body("c");
    b["metadata"] = json!({"blob": "y".repeat(20_000)});
    assert_problem(
        app.post("/api/v1/sessions", &b).await,
        413,
        "payload_too_large",
    )
    .await;

    // Unknown and malformed ids, wrong keys, bad query parameters.
    assert_problem(
        app.get("/api/v1/sessions/00000000-0000-7000-8000-000000000000")
            .await,
        404,
        "session_not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/sessions/not-a-uuid").await,
        404,
        "session_not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/sessions?limit=0").await,
        400,
        "invalid_limit",
    )
    .await;
    assert_problem(
        app.get("/api/v1/sessions?limit=abc").await,
        400,
        "bad_request",
    )
    .await;
    assert_problem(
        app.get("/api/v1/sessions?status=paused").await,
        400,
        "invalid_status",
    )
    .await;
    assert_problem(
        app.get("/api/v1/sessions?cursor=!!").await,
        400,
        "invalid_cursor",
    )
    .await;
    assert_problem(
        app.http
            .get(app.url("/api/v1/sessions"))
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.http
            .get(app.url("/api/v1/sessions"))
            .bearer_auth("sl_wrong")
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        app.http
            .get(app.url("/api/v1/sessions"))
            .header("authorization", "Basic Zm9vOmJhcg==")
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_problem(app.get("/api/v1/nothing-here").await, 404, "not_found").await;
    assert_problem(
        app.http
            .delete(app.url("/api/v1/sessions"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    let r = app
        .http
        .post(app.url("/api/v1/sessions"))
        .bearer_auth(&app.key)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/problem+json")
    );
}

#[tokio::test]
async fn revoked_api_keys_stop_working() {
    let app = TestApp::spawn().await;
    let db = &app.app.state().db;
    let second = sightline::store::apikeys::create(db, "ci", chrono::Utc::now())
        .await
        .unwrap();
    let ok = app
        .http
        .get(app.url("/api/v1/sessions"))
        .bearer_auth(&second.secret)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // The use is recorded (in the background) for `sightline api-key list`.
    let unused = sightline::store::apikeys::create(db, "unused", chrono::Utc::now())
        .await
        .unwrap();
    support::eventually(Duration::from_secs(5), "last use recorded", || async {
        let keys = sightline::store::apikeys::list(db).await.unwrap();
        let used = keys.iter().find(|k| k.id == second.id)?.last_used_at?;
        assert!(
            keys.iter()
                .find(|k| k.id == unused.id)?
                .last_used_at
                .is_none()
        );
        (chrono::Utc::now() - used < chrono::Duration::seconds(30)).then_some(())
    })
    .await;
    assert!(
        sightline::store::apikeys::revoke(db, "ci", chrono::Utc::now())
            .await
            .unwrap()
    );
    // A verified key is trusted for up to `VERIFIED_FOR` without a lookup; a revocation
    // (from any process) takes effect within it.
    let revoked_at = std::time::Instant::now();
    let r = support::eventually(Duration::from_secs(5), "revocation to take effect", || {
        let req = app
            .http
            .get(app.url("/api/v1/sessions"))
            .bearer_auth(&second.secret)
            .send();
        async move {
            let r = req.await.unwrap();
            (r.status() == 401).then_some(r)
        }
    })
    .await;
    assert!(
        revoked_at.elapsed() < sightline::store::apikeys::VERIFIED_FOR + Duration::from_millis(500)
    );
    assert_problem(r, 401, "unauthorized").await;
    // And stays refused (a refusal is never remembered as a success).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = app
        .http
        .get(app.url("/api/v1/sessions"))
        .bearer_auth(&second.secret)
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn data_survives_a_restart_on_the_same_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let app = sightline::Application::build(support::config_for(dir.path()))
        .await
        .unwrap();
    let key = app.bootstrap_key().unwrap().to_owned();
    let http = reqwest::Client::new();
    let s: Value = http
        .post(format!("{}/api/v1/sessions", app.base_url()))
        .bearer_auth(&key)
        .json(&session_body("persist"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    app.shutdown().await.unwrap();

    let app = sightline::Application::build(support::config_for(dir.path()))
        .await
        .unwrap();
    assert!(
        app.bootstrap_key().is_none(),
        "the first key is minted only once"
    );
    let got = http
        .get(format!(
            "{}/api/v1/sessions/{}",
            app.base_url(),
            s["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    let got: Value = got.json().await.unwrap();
    // Links stay valid across restarts (the signing secret is kept in the data directory),
    // but the port changed, so open the same token on the new address.
    let token = token_of(s["customer_url"].as_str().unwrap());
    assert_eq!(token, token_of(got["customer_url"].as_str().unwrap()));
    let r = http
        .get(format!("{}/j/{token}", app.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_readiness_metrics_and_docs() {
    let app = TestApp::spawn().await;
    app.create_session("m").await;
    let h = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let m = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("sightline_http_requests_total{method=\"POST\",route=\"/api/v1/sessions\",status=\"201\"} 1"), "{m}");
    assert!(
        m.contains("sightline_sessions{status=\"created\"} 1"),
        "{m}"
    );
    assert!(m.contains("sightline_http_request_duration_seconds_bucket"));
    let spec: Value = app
        .http
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/api/v1/sessions"]["post"].is_object());
    let responses = &spec["paths"]["/api/v1/sessions"]["post"]["responses"];
    assert!(
        responses["201"].is_object()
            && responses["400"].is_object()
            && responses["401"].is_object()
    );
    assert!(responses["400"]["content"]["application/problem+json"].is_object());
    assert!(spec["components"]["schemas"]["Problem"].is_object());
    let docs = app.http.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
}

#[tokio::test]
async fn report_page_shows_the_timeline() {
    use sightline::store::sessions::{Presence, record_presence};
    let app = TestApp::spawn().await;
    let s = app.create_session("rep").await;
    let id = s["id"].as_str().unwrap();
    let db = &app.app.state().db;
    let now = chrono::Utc::now();
    for p in s["participants"].as_array().unwrap() {
        record_presence(db, id, p["id"].as_str().unwrap(), Presence::Joined, now)
            .await
            .unwrap()
            .unwrap();
    }
    let live: Value = app
        .get(&format!("/api/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "active");
    let customer = s["participants"][1]["id"].as_str().unwrap();
    record_presence(
        db,
        id,
        customer,
        Presence::Left,
        now + chrono::Duration::seconds(75),
    )
    .await
    .unwrap()
    .unwrap();
    let back: Value = app
        .get(&format!("/api/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(back["status"], "waiting");
    app.post(
        &format!("/api/v1/sessions/{id}/end"),
        &json!({"reason": "resolved"}),
    )
    .await;

    let report_url = s["report_url"].as_str().unwrap();
    assert!(report_url.starts_with(&format!("{}/r/", app.base)));
    let r = app.http.get(report_url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let html = r.text().await.unwrap();
    for kind in [
        "session.created",
        "participant.joined",
        "participant.left",
        "session.ended",
    ] {
        assert!(
            html.contains(&format!("data-kind=\"{kind}\"")),
            "{kind} missing"
        );
    }
    assert!(html.contains("resolved"));
    assert!(
        html.contains("data-field=\"talk-time\">1m 15s<"),
        "talk time: {html}"
    );
    // No join link leaks into the report.
    assert!(!html.contains("/j/"));
    // A forged report link is refused like a bad join link.
    let forged = format!("{}x", report_url.trim_end_matches(|c: char| c != '/'));
    assert_eq!(app.http.get(&forged).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn an_expired_session_not_yet_swept_gets_no_new_link() {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
    use sightline::store::entities::session;

    // Mail configured (nothing listens: invites would only be queued).
    let app = TestApp::spawn_with(|c| {
        c.mail.host = Some("127.0.0.1".into());
        c.mail.port = 9;
        c.mail.tls = sightline::config::SmtpTls::None;
    })
    .await;
    let s = app.create_session("expired").await;
    let id = s["id"].as_str().unwrap();
    // The session's expiry passes; the sweeper (every 30 s) has not ended it yet.
    session::Entity::update_many()
        .col_expr(
            session::Column::ExpiresAt,
            Expr::value(chrono::Utc::now() - chrono::Duration::seconds(1)),
        )
        .filter(session::Column::Id.eq(id))
        .exec(&app.app.state().db)
        .await
        .unwrap();
    let v: Value = app
        .get(&format!("/api/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(v["status"], "ended", "not swept yet: {v}");

    assert_problem(
        app.post(&format!("/api/v1/sessions/{id}/customer-link"), &json!({}))
            .await,
        410,
        "session_expired",
    )
    .await;
    // No new link was issued, the old one was not revoked.
    let events: Value = app
        .get(&format!("/api/v1/sessions/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        !events.to_string().contains("link.revoked"),
        "nothing rotated: {events}"
    );
    // Nor is an e-mail invite sent with a dead link.
    assert_problem(
        app.post(&format!("/api/v1/sessions/{id}/invite"), &json!({}))
            .await,
        410,
        "session_expired",
    )
    .await;
}
