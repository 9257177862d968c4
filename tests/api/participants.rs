//! Calls with more than two people, against the real app on port 0: invite experts,
//! supervisors and agents, list, remove, a supervisor's mode, transfer; through the API
//! key, the widget's agent token and the agent's own join link; the lobby flag; the
//! `participant.invited` webhook and the invitation e-mail.

use crate::support_outbox::*;
use reqwest::Method;
use serde_json::{Value, json};
use sightline::Application;

async fn app_with(
    tweak: impl FnOnce(&mut sightline::Config),
) -> (tempfile::TempDir, Application, Api) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    tweak(&mut c);
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    (dir, app, api)
}

fn token_of(url: &Value) -> String {
    url.as_str().unwrap().rsplit('/').next().unwrap().to_owned()
}

fn code(v: &Value) -> &str {
    v["code"].as_str().unwrap_or_default()
}

/// Sends with a bearer token other than the API key (an agent token), or none.
async fn send_as(
    api: &Api,
    bearer: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut b = api.http.request(method, format!("{}{}", api.base, path));
    if let Some(t) = bearer {
        b = b.bearer_auth(t);
    }
    if let Some(body) = body {
        b = b.json(&body);
    }
    let r = b.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn connect(api: &Api, join_url: &Value) -> (u16, Value) {
    let t = token_of(join_url);
    send_as(
        api,
        None,
        Method::POST,
        &format!("/api/v1/join/{t}/connect"),
        Some(json!({})),
    )
    .await
}

#[tokio::test]
async fn invite_list_mode_remove_and_transfer_with_an_api_key() {
    let (_dir, app, api) = app_with(|_| {}).await;
    let (st, s) = api.post("/api/v1/sessions", session_body("m1", None)).await;
    assert_eq!(st, 201, "{s}");
    let sid = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["lobby"], false);
    let ps = s["participants"].as_array().unwrap();
    assert_eq!(ps.len(), 2);
    assert!(
        ps.iter()
            .all(|p| p["state"] == "invited" && p["mode"].is_null())
    );
    assert!(s["agent_url"].is_string() && s["customer_url"].is_string());
    let base = format!("/api/v1/sessions/{sid}");

    // An expert: 201 with a personal link that connects as an expert.
    let (st, expert) = api
        .post(
            &format!("{base}/participants"),
            json!({"role": "expert", "name": "Dr. Kim"}),
        )
        .await;
    assert_eq!(st, 201, "{expert}");
    assert_eq!(expert["role"], "expert");
    assert!(expert["mode"].is_null());
    assert_eq!(expert["name"], "Dr. Kim");
    assert!(expert["expires_at"].is_string());
    let (st, c) = connect(&api, &expert["join_url"]).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["participant"]["role"], "expert");
    assert_eq!(c["participant"]["id"], expert["participant_id"]);

    // A supervisor listens unless told otherwise.
    let (st, sup) = api
        .post(
            &format!("{base}/participants"),
            json!({"role": "supervisor", "name": "Sue"}),
        )
        .await;
    assert_eq!(st, 201, "{sup}");
    assert_eq!(sup["mode"], "listen");
    let (st, c) = connect(&api, &sup["join_url"]).await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["participant"]["role"], "supervisor");

    // Another agent.
    let (st, colleague) = api
        .post(
            &format!("{base}/participants"),
            json!({"role": "agent", "name": "Bo", "agent_id": "agent-8"}),
        )
        .await;
    assert_eq!(st, 201, "{colleague}");
    assert_eq!(
        connect(&api, &colleague["join_url"]).await.1["participant"]["role"],
        "agent"
    );
    // The same agent twice is refused.
    let (st, p) = api
        .post(
            &format!("{base}/participants"),
            json!({"role": "agent", "name": "Bo", "agent_id": "agent-8"}),
        )
        .await;
    assert_eq!((st, code(&p)), (409, "same_agent"), "{p}");

    // Refusals, each with its stable code.
    for (body, status, want) in [
        (json!({"role": "owner", "name": "X"}), 422, "invalid_role"),
        (
            json!({"role": "customer", "name": "X"}),
            422,
            "customer_not_invitable",
        ),
        (
            json!({"role": "supervisor", "name": "X", "mode": "shout"}),
            422,
            "invalid_mode",
        ),
        (
            json!({"role": "expert", "name": "X", "mode": "listen"}),
            422,
            "mode_not_allowed",
        ),
        (
            json!({"role": "expert", "name": "  "}),
            400,
            "invalid_field",
        ),
        (
            json!({"role": "expert", "name": "X", "email": "nope"}),
            400,
            "invalid_field",
        ),
        // No mail server configured here.
        (
            json!({"role": "expert", "name": "X", "email": "kim@example.org"}),
            409,
            "mail_not_configured",
        ),
    ] {
        let (st, p) = api
            .post(&format!("{base}/participants"), body.clone())
            .await;
        assert_eq!((st, code(&p)), (status, want), "{body}: {p}");
    }

    // The agent's URL is still the session's agent's, not the invited colleague's.
    let (_, got) = api.get(&base).await;
    assert_eq!(got["agent_url"], s["agent_url"]);
    assert_eq!(got["participants"].as_array().unwrap().len(), 5);

    // Six is the default limit: the sixth is in, the seventh is refused.
    let (st, _) = api
        .post(
            &format!("{base}/participants"),
            json!({"role": "expert", "name": "Interpreter"}),
        )
        .await;
    assert_eq!(st, 201);
    let (st, p) = api
        .post(
            &format!("{base}/participants"),
            json!({"role": "expert", "name": "One too many"}),
        )
        .await;
    assert_eq!((st, code(&p)), (409, "participant_limit"), "{p}");

    let (st, list) = api.get(&format!("{base}/participants")).await;
    assert_eq!(st, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert!(items.iter().all(|p| p["time_in_call_secs"] == 0), "{list}");
    let roles: Vec<&str> = items.iter().map(|p| p["role"].as_str().unwrap()).collect();
    assert_eq!(
        roles,
        [
            "agent",
            "customer",
            "expert",
            "supervisor",
            "agent",
            "expert"
        ]
    );

    // A supervisor's mode changes; an expert has none.
    let sup_id = sup["participant_id"].as_str().unwrap();
    let (st, p) = api
        .post(
            &format!("{base}/participants/{sup_id}/mode"),
            json!({"mode": "whisper"}),
        )
        .await;
    assert_eq!((st, &p["mode"]), (200, &json!("whisper")), "{p}");
    let expert_id = expert["participant_id"].as_str().unwrap();
    let (st, p) = api
        .post(
            &format!("{base}/participants/{expert_id}/mode"),
            json!({"mode": "barge"}),
        )
        .await;
    assert_eq!((st, code(&p)), (422, "mode_not_allowed"), "{p}");
    let (st, p) = api
        .post(
            &format!("{base}/participants/{sup_id}/mode"),
            json!({"mode": "yell"}),
        )
        .await;
    assert_eq!((st, code(&p)), (422, "invalid_mode"), "{p}");

    // Removing the expert: their link and their connect answer 410 participant_removed.
    let (st, p) = api
        .send(
            Method::DELETE,
            &format!("{base}/participants/{expert_id}"),
            None,
        )
        .await;
    assert_eq!((st, &p["state"]), (200, &json!("removed")), "{p}");
    let page = api
        .http
        .get(expert["join_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 410);
    assert!(page.text().await.unwrap().contains("participant_removed"));
    let (st, c) = connect(&api, &expert["join_url"]).await;
    assert_eq!((st, code(&c)), (410, "participant_removed"), "{c}");
    // Removing twice changes nothing.
    let (st, _) = api
        .send(
            Method::DELETE,
            &format!("{base}/participants/{expert_id}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let unknown = uuid::Uuid::now_v7();
    let (st, p) = api
        .send(
            Method::DELETE,
            &format!("{base}/participants/{unknown}"),
            None,
        )
        .await;
    assert_eq!((st, code(&p)), (404, "participant_not_found"));

    // The customer and the last agent stay.
    let customer_id = items[1]["participant_id"].as_str().unwrap();
    let (st, p) = api
        .send(
            Method::DELETE,
            &format!("{base}/participants/{customer_id}"),
            None,
        )
        .await;
    assert_eq!((st, code(&p)), (409, "cannot_remove_customer"));
    let colleague_id = colleague["participant_id"].as_str().unwrap();
    let (st, _) = api
        .send(
            Method::DELETE,
            &format!("{base}/participants/{colleague_id}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let owner_id = items[0]["participant_id"].as_str().unwrap();
    let (st, p) = api
        .send(
            Method::DELETE,
            &format!("{base}/participants/{owner_id}"),
            None,
        )
        .await;
    assert_eq!((st, code(&p)), (409, "last_agent"));

    // Transfer: not to the session's own agent; to another one, with a link.
    let (st, p) = api
        .post(
            &format!("{base}/transfer"),
            json!({"agent": {"id": "agent-7", "name": "Ana again"}}),
        )
        .await;
    assert_eq!((st, code(&p)), (409, "same_agent"), "{p}");
    let (st, t) = api
        .post(
            &format!("{base}/transfer"),
            json!({"agent": {"id": "agent-9", "name": "Cleo"}}),
        )
        .await;
    assert_eq!(st, 201, "{t}");
    assert_eq!((&t["role"], &t["name"]), (&json!("agent"), &json!("Cleo")));
    assert_eq!(connect(&api, &t["join_url"]).await.0, 200);
    let (st, p) = api
        .post(
            &format!("{base}/transfer"),
            json!({"agent": {"id": "agent-9", "name": "Cleo"}}),
        )
        .await;
    assert_eq!((st, code(&p)), (409, "same_agent"), "{p}");

    // Everything is on the timeline.
    let (_, ev) = api.get(&format!("{base}/events?limit=500")).await;
    let kinds: Vec<&str> = ev["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in [
        "participant.invited",
        "participant.mode_changed",
        "participant.removed",
        "session.transfer_started",
    ] {
        assert!(kinds.contains(&k), "{k} in {kinds:?}");
    }

    // The report page lists everyone with their mode and time in the call.
    let html = api
        .http
        .get(got["report_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-field=\"time-in-call\""), "{html}");
    for text in ["supervisor", "whisper", "Dr. Kim", "Cleo", "removed"] {
        assert!(html.contains(text), "{text} in the report");
    }

    // An ended session takes nobody in.
    let (st, _) = api.post(&format!("{base}/end"), json!({})).await;
    assert_eq!(st, 200);
    for (path, body) in [
        (
            format!("{base}/participants"),
            json!({"role": "expert", "name": "Late"}),
        ),
        (
            format!("{base}/transfer"),
            json!({"agent": {"id": "agent-10", "name": "Dee"}}),
        ),
        (
            format!("{base}/participants/{sup_id}/mode"),
            json!({"mode": "barge"}),
        ),
    ] {
        let (st, p) = api.post(&path, body).await;
        assert_eq!((st, code(&p)), (409, "session_ended"), "{path}: {p}");
    }
    let (st, p) = api
        .send(
            Method::DELETE,
            &format!("{base}/participants/{sup_id}"),
            None,
        )
        .await;
    assert_eq!((st, code(&p)), (409, "session_ended"));
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn widget_and_agent_join_link_variants() {
    let (_dir, app, api) = app_with(|c| c.sessions.max_participants = 12).await;
    let (st, s) = api.post("/api/v1/sessions", session_body("w1", None)).await;
    assert_eq!(st, 201);
    let sid = s["id"].as_str().unwrap().to_owned();
    let (st, tok) = api
        .post(
            "/api/v1/agent-tokens",
            json!({"agent": {"id": "agent-7", "name": "Ana Lima"}}),
        )
        .await;
    assert_eq!(st, 200, "{tok}");
    let at = tok["token"].as_str().unwrap().to_owned();
    let w = format!("/api/v1/widget/sessions/{sid}");

    // Widget: invite, list, mode, remove, transfer.
    let (st, sup) = send_as(
        &api,
        Some(&at),
        Method::POST,
        &format!("{w}/participants"),
        Some(json!({"role": "supervisor", "name": "Sue", "mode": "barge"})),
    )
    .await;
    assert_eq!((st, &sup["mode"]), (201, &json!("barge")), "{sup}");
    let sup_id = sup["participant_id"].as_str().unwrap();
    let (st, list) = send_as(
        &api,
        Some(&at),
        Method::GET,
        &format!("{w}/participants"),
        None,
    )
    .await;
    assert_eq!((st, list["items"].as_array().unwrap().len()), (200, 3));
    let (st, p) = send_as(
        &api,
        Some(&at),
        Method::POST,
        &format!("{w}/participants/{sup_id}/mode"),
        Some(json!({"mode": "listen"})),
    )
    .await;
    assert_eq!((st, &p["mode"]), (200, &json!("listen")));
    let (st, p) = send_as(
        &api,
        Some(&at),
        Method::DELETE,
        &format!("{w}/participants/{sup_id}"),
        None,
    )
    .await;
    assert_eq!((st, &p["state"]), (200, &json!("removed")));
    let (st, p) = send_as(
        &api,
        Some(&at),
        Method::POST,
        &format!("{w}/transfer"),
        Some(json!({"agent": {"id": "agent-7", "name": "Ana"}})),
    )
    .await;
    assert_eq!((st, code(&p)), (409, "same_agent"));
    let (st, t) = send_as(
        &api,
        Some(&at),
        Method::POST,
        &format!("{w}/transfer"),
        Some(json!({"agent": {"id": "agent-11", "name": "Eli"}})),
    )
    .await;
    assert_eq!((st, &t["role"]), (201, &json!("agent")), "{t}");

    // Another agent's token does not see this session.
    let (_, other) = api
        .post(
            "/api/v1/agent-tokens",
            json!({"agent": {"id": "agent-99", "name": "Zed"}}),
        )
        .await;
    let (st, _) = send_as(
        &api,
        other["token"].as_str(),
        Method::POST,
        &format!("{w}/participants"),
        Some(json!({"role": "expert", "name": "X"})),
    )
    .await;
    assert_eq!(st, 404);

    // The agent's own join link manages the call; the customer's is refused.
    let agent_t = token_of(&s["agent_url"]);
    let customer_t = token_of(&s["customer_url"]);
    let j = |t: &str, rest: &str| format!("/api/v1/join/{t}{rest}");
    let (st, x) = send_as(
        &api,
        None,
        Method::POST,
        &j(&agent_t, "/participants"),
        Some(json!({"role": "expert", "name": "Dr. Kim"})),
    )
    .await;
    assert_eq!(st, 201, "{x}");
    assert_eq!(
        connect(&api, &x["join_url"]).await.1["participant"]["role"],
        "expert"
    );
    let (st, p) = send_as(
        &api,
        None,
        Method::POST,
        &j(&customer_t, "/participants"),
        Some(json!({"role": "expert", "name": "Nope"})),
    )
    .await;
    assert_eq!((st, code(&p)), (403, "forbidden"), "{p}");
    let x_id = x["participant_id"].as_str().unwrap();
    let (st, p) = send_as(
        &api,
        None,
        Method::DELETE,
        &j(&customer_t, &format!("/participants/{x_id}")),
        None,
    )
    .await;
    assert_eq!((st, code(&p)), (403, "forbidden"));
    let (st, p) = send_as(
        &api,
        None,
        Method::POST,
        &j(&customer_t, "/transfer"),
        Some(json!({"agent": {"id": "agent-12", "name": "Fay"}})),
    )
    .await;
    assert_eq!((st, code(&p)), (403, "forbidden"));
    // An expert's link may not invite either.
    let (st, _) = send_as(
        &api,
        None,
        Method::POST,
        &j(&token_of(&x["join_url"]), "/participants"),
        Some(json!({"role": "expert", "name": "Nope"})),
    )
    .await;
    assert_eq!(st, 403);
    let (st, p) = send_as(
        &api,
        None,
        Method::DELETE,
        &j(&agent_t, &format!("/participants/{x_id}")),
        None,
    )
    .await;
    assert_eq!((st, &p["state"]), (200, &json!("removed")));
    let (st, t) = send_as(
        &api,
        None,
        Method::POST,
        &j(&agent_t, "/transfer"),
        Some(json!({"agent": {"id": "agent-12", "name": "Fay"}})),
    )
    .await;
    assert_eq!(st, 201, "{t}");
    // A forged token is no link at all.
    let (st, _) = send_as(
        &api,
        None,
        Method::POST,
        &j(
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "/participants",
        ),
        Some(json!({"role": "expert", "name": "X"})),
    )
    .await;
    assert_eq!(st, 404);

    // The invitation events name who invited (the agent's participant, via their link).
    let (_, ev) = api
        .get(&format!("/api/v1/sessions/{sid}/events?limit=500"))
        .await;
    let invited_by_link = ev["items"].as_array().unwrap().iter().any(|e| {
        e["kind"] == "participant.invited"
            && e["participant_id"] == x["participant_id"]
            && e["data"]["invited_by"] == s["participants"][0]["participant_id"]
    });
    assert!(invited_by_link, "{ev}");
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn lobby_flag_defaults_from_config_and_is_validated() {
    let (_dir, app, api) = app_with(|c| c.sessions.lobby = true).await;
    let (st, s) = api.post("/api/v1/sessions", session_body("l1", None)).await;
    assert_eq!((st, &s["lobby"]), (201, &json!(true)), "{s}");
    let mut body = session_body("l2", None);
    body["lobby"] = json!(false);
    let (st, s) = api.post("/api/v1/sessions", body).await;
    assert_eq!((st, &s["lobby"]), (201, &json!(false)));
    let (_, got) = api
        .get(&format!("/api/v1/sessions/{}", s["id"].as_str().unwrap()))
        .await;
    assert_eq!(got["lobby"], false);
    let mut body = session_body("l3", None);
    body["lobby"] = json!("yes");
    let (st, p) = api.post("/api/v1/sessions", body).await;
    assert_eq!(st, 400, "{p}");
    // The OpenAPI document lists the roles and modes.
    let (_, doc) = api.get("/api/v1/openapi.json").await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["SupervisorMode"]["enum"],
        json!(["listen", "whisper", "barge"])
    );
    assert_eq!(
        schemas["InviteRole"]["enum"],
        json!(["expert", "supervisor", "agent"])
    );
    assert!(
        schemas["ParticipantRole"]["enum"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("customer")))
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn invitation_fires_its_webhook_and_e_mails_the_link() {
    let smtp = SmtpSink::start().await;
    let (_dir, app, api) = app_with(|c| {
        c.mail.host = Some("127.0.0.1".into());
        c.mail.port = smtp.port;
        c.mail.tls = sightline::config::SmtpTls::None;
        c.mail.from = "Sightline <video@example.test>".into();
    })
    .await;
    let rx = Receiver::start().await;
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "g", "kind": "generic", "scope": "all",
                   "events": ["participant.invited", "participant.removed"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let secret = integ["signing_secret"].as_str().unwrap().to_owned();
    let (_, s) = api.post("/api/v1/sessions", session_body("e1", None)).await;
    let sid = s["id"].as_str().unwrap();
    let (st, x) = api
        .post(
            &format!("/api/v1/sessions/{sid}/participants"),
            json!({"role": "expert", "name": "Kim", "email": "kim@example.org"}),
        )
        .await;
    assert_eq!(st, 201, "{x}");
    assert!(x["delivery_id"].is_i64(), "{x}");

    let hook = eventually(10, "participant.invited", || async {
        rx.on("/events")
            .into_iter()
            .find(|e| e.json()["type"] == "participant.invited")
    })
    .await;
    let d = &hook.json()["data"];
    assert_eq!(d["role"], "expert");
    assert_eq!(d["display_name"], "Kim");
    assert_eq!(d["participant_id"], x["participant_id"]);
    assert!(verify_standard_webhook(&secret, &hook));

    let mail = eventually(10, "the invitation e-mail", || async { smtp.all().pop() }).await;
    let flat = mail.replace("=\r\n", "");
    assert!(flat.contains("To: kim@example.org"), "{mail}");
    assert!(flat.contains("Ana Lima invites you"), "{mail}");
    assert!(flat.contains(x["join_url"].as_str().unwrap()), "{mail}");
    assert!(
        !flat.contains(s["customer_url"].as_str().unwrap()),
        "{mail}"
    );
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_hub_completes_a_transfer_and_records_room_events() {
    use sightline::domain::EventKind;
    use sightline::store::sessions as repo;
    let (_dir, app, api) = app_with(|_| {}).await;
    let rx = Receiver::start().await;
    let (st, _) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "g", "kind": "generic", "scope": "all",
                   "events": ["participant.declined", "session.transferred"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201);
    let (_, s) = api.post("/api/v1/sessions", session_body("h1", None)).await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let owner = s["participants"][0]["participant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let customer = s["participants"][1]["participant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (st, t) = api
        .post(
            &format!("/api/v1/sessions/{sid}/transfer"),
            json!({"agent": {"id": "agent-9", "name": "Cleo"}}),
        )
        .await;
    assert_eq!(st, 201, "{t}");
    let new = t["participant_id"].as_str().unwrap();
    let db = &app.state().db;

    // Only an agent can take over.
    let err = sightline::store::participants::complete_transfer(
        db,
        &sid,
        &customer,
        std::slice::from_ref(&owner),
        chrono::Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, repo::SessionError::NotAnAgent), "{err}");

    let updated = sightline::store::participants::complete_transfer(
        db,
        &sid,
        new,
        std::slice::from_ref(&owner),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert_eq!(
        (updated.agent_id.as_str(), updated.agent_name.as_str()),
        ("agent-9", "Cleo")
    );
    let (_, got) = api.get(&format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(got["agent"], json!({"id": "agent-9", "name": "Cleo"}));
    assert_eq!(
        got["agent_url"], t["join_url"],
        "the session's agent link is the new agent's"
    );
    let (st, c) = connect(&api, &s["agent_url"]).await;
    assert_eq!((st, code(&c)), (410, "link_revoked"), "{c}");
    assert_eq!(connect(&api, &t["join_url"]).await.0, 200);

    // An event of the room goes through the timeline and the webhooks, with the
    // participant's role and name added.
    let id = sightline::store::participants::record_event(
        db,
        &sid,
        EventKind::ParticipantDeclined,
        Some(&customer),
        json!({"reason": "busy"}),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    assert!(id > 0);
    let hook = eventually(10, "participant.declined", || async {
        rx.on("/events")
            .into_iter()
            .find(|e| e.json()["type"] == "participant.declined")
    })
    .await;
    let d = &hook.json()["data"];
    assert_eq!(
        (&d["role"], &d["reason"]),
        (&json!("customer"), &json!("busy"))
    );
    let transferred = eventually(10, "session.transferred", || async {
        rx.on("/events")
            .into_iter()
            .find(|e| e.json()["type"] == "session.transferred")
    })
    .await;
    assert_eq!(transferred.json()["data"]["agent"]["id"], "agent-9");

    // The widget now belongs to the new agent.
    let (_, tok) = api
        .post(
            "/api/v1/agent-tokens",
            json!({"agent": {"id": "agent-9", "name": "Cleo"}}),
        )
        .await;
    let (st, _) = send_as(
        &api,
        tok["token"].as_str(),
        Method::GET,
        &format!("/api/v1/widget/sessions/{sid}"),
        None,
    )
    .await;
    assert_eq!(st, 200);

    // Nothing happens to an ended session.
    api.post(&format!("/api/v1/sessions/{sid}/end"), json!({}))
        .await;
    let err =
        sightline::store::participants::complete_transfer(db, &sid, new, &[], chrono::Utc::now())
            .await
            .unwrap_err();
    assert!(matches!(err, repo::SessionError::SessionEnded), "{err}");
    let err = sightline::store::participants::record_event(
        db,
        "00000000-0000-0000-0000-000000000000",
        EventKind::ParticipantWaiting,
        None,
        json!({}),
        chrono::Utc::now(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, repo::SessionError::SessionNotFound), "{err}");
    app.shutdown().await.unwrap();
}
