//! Agent tokens: minted with an API key, scoped to one agent (and conversation), used by
//! the widget; expired, tampered and out-of-scope tokens are refused.

mod support;

use serde_json::{Value, json};
use support::{TestApp, assert_problem};

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

    let claims = sightline::agent::AgentClaims {
        agent_id: "a".into(),
        agent_name: "A".into(),
        conversation: Some(("p".into(), "1".into())),
        api_key_id: "k".into(),
        post_link_via: None,
    };
    let expired = sightline::agent::seal(
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
