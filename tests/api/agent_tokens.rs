//! Agent tokens: minted with an API key, scoped to one agent (and conversation), used by
//! the widget; expired, tampered and out-of-scope tokens are refused.

use std::time::{Duration, Instant};

use crate::support::{TestApp, assert_problem};
use serde_json::{Value, json};

async fn mint(app: &TestApp, body: Value) -> String {
    let r = app.post("/api/v1/agent-tokens", &body).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert!(v["expires_at"].is_string());
    v["token"].as_str().unwrap().to_owned()
}

async fn widget_post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn widget_flow_with_a_scoped_token() {
    let app = TestApp::spawn().await;
    let token = mint(
        &app,
        json!({"agent": {"id": "agent-7", "name": "Ana"}, "conversation": {"platform": "demo", "id": "c-1"}, "ttl_secs": 600}),
    )
    .await;
    assert!(token.starts_with("at_"));

    // The token cannot call the API-key endpoints, and an API key is no agent token.
    assert_problem(
        app.http
            .get(app.url("/api/v1/sessions"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        401,
        "unauthorized",
    )
    .await;
    assert_problem(
        widget_post(&app, &app.key, "/api/v1/widget/sessions", json!({})).await,
        401,
        "unauthorized",
    )
    .await;

    let r = widget_post(
        &app,
        &token,
        "/api/v1/widget/sessions",
        json!({"customer": {"name": "Sam"}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["agent"], json!({"id": "agent-7", "name": "Ana"}));
    assert_eq!(s["conversation"], json!({"platform": "demo", "id": "c-1"}));
    let id = s["id"].as_str().unwrap();

    let other_conv = widget_post(
        &app,
        &token,
        "/api/v1/widget/sessions",
        json!({"conversation": {"platform": "demo", "id": "c-2"}}),
    )
    .await;
    assert_problem(other_conv, 403, "forbidden").await;

    let got = app
        .http
        .get(app.url(&format!("/api/v1/widget/sessions/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);

    // Another agent's token cannot see or end this session.
    let other = mint(&app, json!({"agent": {"id": "agent-8", "name": "Bo"}})).await;
    let r = app
        .http
        .get(app.url(&format!("/api/v1/widget/sessions/{id}")))
        .bearer_auth(&other)
        .send()
        .await
        .unwrap();
    assert_problem(r, 404, "session_not_found").await;
    assert_problem(
        widget_post(
            &app,
            &other,
            &format!("/api/v1/widget/sessions/{id}/end"),
            json!({}),
        )
        .await,
        404,
        "session_not_found",
    )
    .await;
    // A token without a conversation must name one.
    assert_problem(
        widget_post(&app, &other, "/api/v1/widget/sessions", json!({})).await,
        400,
        "invalid_field",
    )
    .await;

    let rotated: Value = widget_post(
        &app,
        &token,
        &format!("/api/v1/widget/sessions/{id}/customer-link"),
        json!({}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(rotated["customer_url"], s["customer_url"]);

    let ended = widget_post(
        &app,
        &token,
        &format!("/api/v1/widget/sessions/{id}/end"),
        json!({}),
    )
    .await;
    assert_eq!(ended.status(), 200);
    let ended: Value = ended.json().await.unwrap();
    assert_eq!(ended["status"], "ended");
    assert_eq!(ended["end_reason"], "ended_by_agent");
}

#[tokio::test]
async fn expired_tampered_and_malformed_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let token = mint(
        &app,
        json!({"agent": {"id": "a", "name": "A"}, "conversation": {"platform": "p", "id": "1"}}),
    )
    .await;

    let claims = sightline::domain::agent_token::AgentClaims {
        agent_id: "a".into(),
        agent_name: "A".into(),
        conversation: Some(("p".into(), "1".into())),
        api_key_id: "k".into(),
        post_link_via: None,
        ..Default::default()
    };
    let expired = sightline::domain::agent_token::seal(
        &app.app.state().keys.agent,
        &claims,
        chrono::Utc::now().timestamp() - 1,
    );
    let mut tampered = token.clone().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'x' { b'y' } else { b'x' };
    let tampered = String::from_utf8(tampered).unwrap();
    for bad in [
        expired.as_str(),
        tampered.as_str(),
        "at_",
        "at_!!!",
        "garbage",
    ] {
        let r = widget_post(&app, bad, "/api/v1/widget/sessions", json!({})).await;
        assert_problem(r, 401, "unauthorized").await;
    }
    // Minting needs an API key and checks its input.
    let r = app
        .http
        .post(app.url("/api/v1/agent-tokens"))
        .json(&json!({"agent": {"id": "a", "name": "A"}}))
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
    assert_problem(
        app.post(
            "/api/v1/agent-tokens",
            &json!({"agent": {"id": "a", "name": "A"}, "ttl_secs": 999999}),
        )
        .await,
        400,
        "invalid_field",
    )
    .await;
    assert_problem(
        app.post(
            "/api/v1/agent-tokens",
            &json!({"agent": {"id": "a b", "name": "A"}}),
        )
        .await,
        400,
        "invalid_field",
    )
    .await;
}

#[tokio::test]
async fn widget_endpoints_allow_only_configured_origins() {
    let app =
        TestApp::spawn_with(|c| c.embed.allowed_origins = vec!["https://desk.example.com".into()])
            .await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/widget/sessions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let ok = preflight("https://desk.example.com").await.unwrap();
    assert_eq!(ok.status(), 204);
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://desk.example.com"
    );
    assert!(
        ok.headers()["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization")
    );
    let evil = preflight("https://evil.example.com").await.unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());

    let token = mint(
        &app,
        json!({"agent": {"id": "a", "name": "A"}, "conversation": {"platform": "p", "id": "1"}}),
    )
    .await;
    let r = app
        .http
        .post(app.url("/api/v1/widget/sessions"))
        .header("origin", "https://desk.example.com")
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://desk.example.com"
    );
    // API-key endpoints never answer with CORS headers.
    let r = app
        .http
        .get(app.url("/api/v1/sessions"))
        .header("origin", "https://desk.example.com")
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn widget_invite_and_post_link_via_are_checked() {
    let app = TestApp::spawn().await;
    let token = mint(
        &app,
        json!({"agent": {"id": "a", "name": "A"}, "conversation": {"platform": "p", "id": "1"}}),
    )
    .await;
    let s: Value = widget_post(
        &app,
        &token,
        "/api/v1/widget/sessions",
        json!({"customer": {"email": "sam@example.com"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let id = s["id"].as_str().unwrap();
    // No SMTP configured: a clear conflict, not a silent success.
    let r = widget_post(
        &app,
        &token,
        &format!("/api/v1/widget/sessions/{id}/invite"),
        json!({}),
    )
    .await;
    assert_problem(r, 409, "mail_not_configured").await;
    let other = mint(&app, json!({"agent": {"id": "b", "name": "B"}})).await;
    let r = widget_post(
        &app,
        &other,
        &format!("/api/v1/widget/sessions/{id}/invite"),
        json!({}),
    )
    .await;
    assert_problem(r, 404, "session_not_found").await;
    // Unknown integrations are refused when minting and when starting.
    let r = app
        .post(
            "/api/v1/agent-tokens",
            &json!({"agent": {"id": "a", "name": "A"}, "post_link_via": "nope"}),
        )
        .await;
    assert_problem(r, 422, "integration_not_found").await;
    let r = widget_post(
        &app,
        &token,
        "/api/v1/widget/sessions",
        json!({"post_link_via": "nope", "metadata": {"x": 1}}),
    )
    .await;
    assert_problem(r, 422, "integration_not_found").await;
}

#[tokio::test]
async fn widget_script_is_compressed_for_clients_that_accept_gzip_and_revalidates() {
    let app = TestApp::spawn().await;
    let plain = app.get("/widget.js").await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_tag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let plain = plain.bytes().await.unwrap();

    let get = |enc: &'static str, tag: Option<String>| {
        let mut r = app
            .http
            .get(app.url("/widget.js"))
            .header("accept-encoding", enc);
        if let Some(t) = tag {
            r = r.header("if-none-match", t);
        }
        r.send()
    };
    let gz = get("gzip", None).await.unwrap();
    assert_eq!(gz.status(), 200);
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["vary"], "accept-encoding");
    let gz_tag = gz.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(gz_tag, plain_tag, "each encoding has its own validator");
    let z = gz.bytes().await.unwrap();
    let mut unzipped = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut unzipped).unwrap();
    assert_eq!(unzipped, plain);
    assert!(z.len() < plain.len() / 2);

    // Revalidation: the matching validator answers 304, the other encoding's does not.
    let r = get("gzip", Some(gz_tag.clone())).await.unwrap();
    assert_eq!(r.status(), 304);
    let r = get("identity", Some(gz_tag)).await.unwrap();
    assert_eq!(r.status(), 200);
    let r = get("gzip;q=0", Some(plain_tag)).await.unwrap();
    assert_eq!(r.status(), 304);
    app.app.shutdown().await.unwrap();
}

/// Mints with a given API key; returns `(id, token)`.
async fn mint_with(app: &TestApp, key: &str, body: Value) -> (String, String) {
    let r = app
        .http
        .post(app.url("/api/v1/agent-tokens"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    (
        v["id"].as_str().expect("id").to_owned(),
        v["token"].as_str().expect("token").to_owned(),
    )
}

async fn start_status(app: &TestApp, token: &str, conversation: &str) -> u16 {
    widget_post(
        app,
        token,
        "/api/v1/widget/sessions",
        json!({"conversation": {"platform": "p", "id": conversation}}),
    )
    .await
    .status()
    .as_u16()
}

/// Polls until the token is refused; returns how long that took.
async fn refused_within(app: &TestApp, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let status = start_status(app, token, &format!("poll-{n}")).await;
        if status == 401 {
            return start.elapsed();
        }
        assert_eq!(status, 201);
        assert!(start.elapsed() < limit, "still accepted after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_agent_token_dies_with_its_api_key() {
    let app = TestApp::spawn().await;
    let db = &app.app.state().db;
    let key = sightline::store::apikeys::create(db, "widget-backend", chrono::Utc::now())
        .await
        .unwrap();
    let (_, token) = mint_with(
        &app,
        &key.secret,
        json!({"agent": {"id": "a", "name": "A"}}),
    )
    .await;
    let other = mint(&app, json!({"agent": {"id": "a", "name": "A"}})).await;
    assert_eq!(start_status(&app, &token, "before").await, 201);

    // As `sightline api-key revoke` does (possibly from another process).
    assert!(
        sightline::store::apikeys::revoke(db, &key.id, chrono::Utc::now())
            .await
            .unwrap()
    );
    let took = refused_within(&app, &token, Duration::from_millis(2500)).await;
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
    let r = widget_post(&app, &token, "/api/v1/widget/sessions", json!({})).await;
    assert_problem(r, 401, "unauthorized").await;
    // A token of another key lives on.
    assert_eq!(start_status(&app, &other, "other").await, 201);
}

#[tokio::test]
async fn a_revoked_agent_token_is_refused() {
    let app = TestApp::spawn().await;
    let (id, token) = mint_with(&app, &app.key, json!({"agent": {"id": "a", "name": "A"}})).await;
    let (_, keep) = mint_with(&app, &app.key, json!({"agent": {"id": "b", "name": "B"}})).await;
    assert_eq!(start_status(&app, &token, "1").await, 201);

    // REST, with the API key: refused at once in this process.
    let del = |id: String| {
        app.http
            .delete(app.url(&format!("/api/v1/agent-tokens/{id}")))
            .bearer_auth(&app.key)
            .send()
    };
    let r = del(id.clone()).await.unwrap();
    assert_eq!(r.status(), 204);
    let r = widget_post(&app, &token, "/api/v1/widget/sessions", json!({})).await;
    assert_problem(r, 401, "unauthorized").await;
    // Again: still 204 (idempotent); unknown ids: 404; the API key is needed.
    assert_eq!(del(id.clone()).await.unwrap().status(), 204);
    assert_problem(
        del("0123456789abcdef0123456789abcdef".into())
            .await
            .unwrap(),
        404,
        "agent_token_not_found",
    )
    .await;
    assert_problem(
        del("nope".into()).await.unwrap(),
        404,
        "agent_token_not_found",
    )
    .await;
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/agent-tokens/{id}")))
        .bearer_auth(&keep)
        .send()
        .await
        .unwrap();
    assert_problem(r, 401, "unauthorized").await;
    assert_eq!(start_status(&app, &keep, "2").await, 201);

    // What `sightline agent-token revoke --agent b` does, from another process: within a
    // second.
    let n = sightline::store::agent_tokens::revoke(
        &app.app.state().db,
        &sightline::store::agent_tokens::Target::Agent("b".into()),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(n, 1);
    let took = refused_within(&app, &keep, Duration::from_millis(2500)).await;
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
async fn tokens_with_the_longest_fields_work() {
    let app = TestApp::spawn().await;
    let name: String = "\u{5F20}\u{4F1F}".repeat(40); // 80 CJK characters
    let id = "agent-".repeat(21) + "xy"; // 128 characters
    let conv = "c".repeat(128);
    let r = app
        .post(
            "/api/v1/agent-tokens",
            &json!({"agent": {"id": id, "name": name}, "conversation": {"platform": "p", "id": conv}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(token.len() > 512, "{} characters", token.len());
    let r = widget_post(&app, &token, "/api/v1/widget/sessions", json!({})).await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["agent"]["name"], name.as_str());
    // Bounded all the same: a token longer than any mint makes is refused unread.
    let huge = format!("at_{}", "A".repeat(4096));
    let r = widget_post(&app, &huge, "/api/v1/widget/sessions", json!({})).await;
    assert_problem(r, 401, "unauthorized").await;
}

/// The agent token the demo page hands out.
async fn demo_token(app: &TestApp) -> String {
    let r = app.http.get(app.url("/demo")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    attr_in(&r.text().await.unwrap(), "data-token")
}

#[tokio::test]
async fn a_demo_token_cannot_email_or_post() {
    let app = TestApp::spawn_with(|c| {
        // Mail configured, so a normal token's invite would be queued.
        c.mail.host = Some("127.0.0.1".into());
        c.mail.port = 9;
        c.mail.tls = sightline::config::SmtpTls::None;
    })
    .await;
    let r = app
        .post(
            "/api/v1/integrations",
            &json!({"name": "chat", "kind": "generic", "config": {"post_url": "https://chat.example.com/hook"}}),
        )
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap_or_default());

    let token = demo_token(&app).await;
    let r = widget_post(
        &app,
        &token,
        "/api/v1/widget/sessions",
        json!({"post_link_via": "chat"}),
    )
    .await;
    assert_problem(r, 403, "demo_not_allowed").await;

    // Starting a call works; inviting by e-mail does not.
    let html = app
        .http
        .get(app.url("/demo"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = attr_in(&html, "data-token");
    let conv = attr_in(&html, "data-conversation");
    let r = widget_post(
        &app,
        &token,
        "/api/v1/widget/sessions",
        json!({"customer": {"email": "sam@example.com"}}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["conversation"]["id"], conv.as_str());
    let id = s["id"].as_str().unwrap();
    let r = widget_post(
        &app,
        &token,
        &format!("/api/v1/widget/sessions/{id}/invite"),
        json!({"email": "anyone@example.org"}),
    )
    .await;
    assert_problem(r, 403, "demo_not_allowed").await;

    // The same with a real agent token is queued (202): the refusal is about the demo.
    let real = mint(&app, json!({"agent": {"id": "a", "name": "A"}})).await;
    let s: Value = widget_post(
        &app,
        &real,
        "/api/v1/widget/sessions",
        json!({"conversation": {"platform": "p", "id": "1"}, "customer": {"email": "sam@example.com"}}),
    )
    .await
    .json()
    .await
    .unwrap();
    let rid = s["id"].as_str().unwrap();
    let r = widget_post(
        &app,
        &real,
        &format!("/api/v1/widget/sessions/{rid}/invite"),
        json!({}),
    )
    .await;
    assert_eq!(r.status(), 202);
}

/// The value of `name="…"` in a page.
fn attr_in(html: &str, name: &str) -> String {
    let at = format!("{name}=\"");
    let start = html
        .find(&at)
        .unwrap_or_else(|| panic!("{name} in the page"))
        + at.len();
    let len = html[start..].find('"').expect("end of the attribute");
    html[start..start + len].to_owned()
}

#[tokio::test]
async fn the_demo_is_off_on_a_non_loopback_address_unless_enabled() {
    // Listening on every interface (the test talks to it over loopback only).
    let app = TestApp::spawn_with(|c| c.listen = "0.0.0.0:0".parse().unwrap()).await;
    let port = app.app.http_addr().port();
    let r = app
        .http
        .get(format!("http://127.0.0.1:{port}/demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(app.app.state().config.demo.enabled, Some(false));

    // Behind a proxy with a public URL: off too.
    let proxied =
        TestApp::spawn_with(|c| c.public_url = Some("https://video.example.com".into())).await;
    assert_eq!(proxied.get("/demo").await.status(), 404);

    // Explicitly enabled: on.
    let on = TestApp::spawn_with(|c| {
        c.listen = "0.0.0.0:0".parse().unwrap();
        c.demo.enabled = Some(true);
    })
    .await;
    let port = on.app.http_addr().port();
    let r = on
        .http
        .get(format!("http://127.0.0.1:{port}/demo"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn demo_tokens_and_demo_sessions_are_rate_limited() {
    let app = TestApp::spawn_with(|c| {
        c.demo.pages_per_minute = 2;
        c.demo.sessions_per_minute = 1;
    })
    .await;
    let token = demo_token(&app).await;
    let _ = demo_token(&app).await;
    let r = app.http.get(app.url("/demo")).send().await.unwrap();
    assert_problem(r, 429, "rate_limited").await;
    // The token is bound to its own conversation: no body needed.
    let r = widget_post(&app, &token, "/api/v1/widget/sessions", json!({})).await;
    assert_eq!(r.status(), 201);
    let r = widget_post(&app, &token, "/api/v1/widget/sessions", json!({})).await;
    assert_problem(r, 429, "rate_limited").await;
}
