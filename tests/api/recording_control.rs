//! Recording control over REST, the widget, join links and signaling: the state machine's
//! answers and refusals, consent given and withdrawn on the pages, and exactly when the
//! recording tap switches each participant on and off.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sightline::services::recording_control::TapLedger;

use crate::support::{TestApp, assert_problem, config_for, eventually, session_body};
use crate::support_call::{Call, next_of, send, token_of};

/// A running app whose recording tap is a ledger the test reads.
async fn app_with_tap(tweak: impl FnOnce(&mut sightline::Config)) -> (TestApp, Arc<TapLedger>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = config_for(dir.path());
    tweak(&mut config);
    let tap = Arc::new(TapLedger::default());
    let app = sightline::Application::build_with_tap(config, tap.clone())
        .await
        .expect("app builds");
    let key = app.bootstrap_key().expect("key").to_owned();
    let base = app.base_url();
    let t = TestApp {
        app,
        dir,
        base,
        key,
        http: reqwest::Client::new(),
    };
    (t, tap)
}

fn body_with(conversation: &str, recording: Value, media_mode: Option<&str>) -> Value {
    let mut b = session_body(conversation);
    b["recording"] = recording;
    if let Some(m) = media_mode {
        b["media_mode"] = json!(m);
    }
    b
}

async fn create(t: &TestApp, body: &Value) -> Value {
    let r = t.post("/api/v1/sessions", body).await;
    assert_eq!(r.status(), 201);
    r.json().await.expect("json")
}

async fn control(t: &TestApp, id: &str, action: &str) -> reqwest::Response {
    t.post(
        &format!("/api/v1/sessions/{id}/recording/{action}"),
        &json!({}),
    )
    .await
}

async fn state_after(t: &TestApp, id: &str, action: &str) -> String {
    let r = control(t, id, action).await;
    assert_eq!(r.status(), 200, "{action}");
    let v: Value = r.json().await.expect("json");
    v["state"].as_str().expect("state").to_owned()
}

async fn kinds(t: &TestApp, id: &str) -> Vec<String> {
    let r = t
        .get(&format!("/api/v1/sessions/{id}/events?limit=500"))
        .await;
    let v: Value = r.json().await.expect("json");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .filter(|k| k.starts_with("recording."))
        .collect()
}

#[tokio::test]
async fn the_rest_endpoints_walk_the_state_machine_and_refuse_out_of_order() {
    let t = TestApp::spawn().await;
    let s = create(&t, &body_with("rec-1", json!({"mode": "on_demand"}), None)).await;
    let id = s["id"].as_str().unwrap().to_owned();
    assert_eq!(s["recording"], json!({"mode": "on_demand", "state": "off"}));

    assert_eq!(state_after(&t, &id, "start").await, "recording");
    assert_problem(control(&t, &id, "start").await, 409, "already_recording").await;
    assert_eq!(state_after(&t, &id, "pause").await, "paused");
    assert_problem(control(&t, &id, "pause").await, 409, "already_paused").await;
    assert_problem(control(&t, &id, "start").await, 409, "already_recording").await;
    assert_eq!(state_after(&t, &id, "resume").await, "recording");
    assert_eq!(state_after(&t, &id, "stop").await, "stopped");
    assert_problem(control(&t, &id, "stop").await, 409, "not_recording").await;
    assert_problem(control(&t, &id, "resume").await, 409, "not_recording").await;
    // on_demand may start again.
    assert_eq!(state_after(&t, &id, "start").await, "recording");

    let v: Value = t
        .get(&format!("/api/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["recording"],
        json!({"mode": "on_demand", "state": "recording"})
    );
    assert_eq!(
        kinds(&t, &id).await,
        [
            "recording.started",
            "recording.paused",
            "recording.resumed",
            "recording.stopped",
            "recording.started"
        ]
    );
    // Unknown actions and sessions.
    let r = control(&t, &id, "rewind").await;
    assert_eq!(r.status(), 400);
    let missing = "0193a4a0-0000-7000-8000-000000000000";
    assert_problem(
        control(&t, missing, "start").await,
        404,
        "session_not_found",
    )
    .await;

    // An ended session: 409, and it shows as stopped.
    let r = t
        .post(&format!("/api/v1/sessions/{id}/end"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    assert_problem(control(&t, &id, "pause").await, 409, "session_ended").await;
    assert_problem(control(&t, &id, "start").await, 409, "session_ended").await;
    let v: Value = t
        .get(&format!("/api/v1/sessions/{id}/recording"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "stopped");
}

#[tokio::test]
async fn refusals_name_their_cause() {
    let t = TestApp::spawn().await;
    // Not recorded at all (the server's default is off).
    let s = create(&t, &session_body("rec-off")).await;
    assert_eq!(s["recording"]["mode"], "off");
    let id = s["id"].as_str().unwrap();
    assert_problem(control(&t, id, "start").await, 409, "recording_off").await;

    // A p2p session cannot be recorded; `always` with p2p is refused at creation.
    let s = create(
        &t,
        &body_with("rec-p2p", json!({"mode": "on_demand"}), Some("p2p")),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    let p = assert_problem(control(&t, id, "start").await, 409, "media_p2p").await;
    assert!(p["detail"].as_str().unwrap().contains("p2p"), "{p}");
    let r = t
        .post(
            "/api/v1/sessions",
            &body_with("rec-p2p-always", json!({"mode": "always"}), Some("p2p")),
        )
        .await;
    assert_problem(r, 400, "invalid_field").await;
    let r = t
        .post(
            "/api/v1/sessions",
            &body_with("rec-bad", json!({"mode": "sometimes"}), None),
        )
        .await;
    assert_eq!(r.status(), 400);

    // `always`: the server starts and stops it, not the API.
    let s = create(
        &t,
        &body_with("rec-always", json!({"mode": "always"}), None),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    assert_problem(control(&t, id, "start").await, 409, "recording_automatic").await;

    // The join links: an agent's may, a customer's may not.
    let s = create(
        &t,
        &body_with("rec-links", json!({"mode": "on_demand"}), None),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    let customer = token_of(&s["customer_url"]);
    let agent = token_of(&s["agent_url"]);
    let r = t
        .post(
            &format!("/api/v1/join/{customer}/recording/start"),
            &json!({}),
        )
        .await;
    assert_problem(r, 403, "forbidden").await;
    assert_eq!(
        kinds(&t, id).await,
        Vec::<String>::new(),
        "nothing happened"
    );
    let r = t
        .post(&format!("/api/v1/join/{agent}/recording/start"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);
    let events: Value = t
        .get(&format!("/api/v1/sessions/{id}/events"))
        .await
        .json()
        .await
        .unwrap();
    let started = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "recording.started")
        .expect("started");
    assert_eq!(
        started["participant_id"],
        s["participants"][0]["participant_id"]
    );
    // The page's view: mode, state and the wording version.
    let v: Value = t
        .get(&format!("/api/v1/join/{customer}/recording"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "recording");
    assert_eq!(v["wording_version"], "2026-11-1");
}

#[tokio::test]
async fn below_the_free_space_floor_nothing_starts() {
    let t = TestApp::spawn_with(|c| c.recording.min_free_bytes = u64::MAX).await;
    let s = create(
        &t,
        &body_with("rec-disk", json!({"mode": "on_demand"}), None),
    )
    .await;
    let id = s["id"].as_str().unwrap();
    let p = assert_problem(control(&t, id, "start").await, 409, "insufficient_storage").await;
    assert!(
        p["detail"].as_str().unwrap().contains("min_free_bytes"),
        "{p}"
    );
    let v: Value = t
        .get(&format!("/api/v1/sessions/{id}/recording"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["state"], "off");
    assert!(kinds(&t, id).await.is_empty());
}

#[tokio::test]
async fn the_widget_controls_its_own_sessions_only() {
    let t = TestApp::spawn().await;
    let r = t
        .post(
            "/api/v1/agent-tokens",
            &json!({"agent": {"id": "agent-1", "name": "Ana"}}),
        )
        .await;
    assert_eq!(r.status(), 200);
    let token = r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = t
        .http
        .post(t.url("/api/v1/widget/sessions"))
        .bearer_auth(&token)
        .json(
            &json!({"conversation": {"platform": "chatwoot", "id": "rec-w"},
                      "recording": {"mode": "on_demand"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let s: Value = r.json().await.unwrap();
    assert_eq!(s["recording"]["mode"], "on_demand");
    let id = s["id"].as_str().unwrap();
    let post = |path: String| {
        t.http
            .post(t.url(&path))
            .bearer_auth(&token)
            .json(&json!({}))
            .send()
    };
    let r = post(format!("/api/v1/widget/sessions/{id}/recording/start"))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = post(format!("/api/v1/widget/sessions/{id}/recording/start"))
        .await
        .unwrap();
    assert_problem(r, 409, "already_recording").await;
    // Someone else's session looks missing.
    let mut other = body_with("rec-w2", json!({"mode": "on_demand"}), None);
    other["agent"]["id"] = json!("agent-2");
    let s2 = create(&t, &other).await;
    let r = post(format!(
        "/api/v1/widget/sessions/{}/recording/start",
        s2["id"].as_str().unwrap()
    ))
    .await
    .unwrap();
    assert_problem(r, 404, "session_not_found").await;
}

/// Waits until the ledger shows exactly `want` for the participant.
async fn flips_become(tap: &TapLedger, session: &str, pid: &str, want: &[bool]) {
    eventually(Duration::from_secs(10), "tap flips", || async {
        (tap.flips(session, pid) == want).then_some(())
    })
    .await;
}

/// The next `recording` message whose state is `state`.
async fn recording_in(ws: &mut crate::support_call::Ws, state: &str) -> Value {
    for _ in 0..20 {
        let m = next_of(ws, "recording").await;
        if m["state"] == state {
            return m;
        }
    }
    panic!("no recording message in state {state}");
}

#[tokio::test]
async fn consent_over_signaling_opens_the_tap_and_withdrawal_and_pause_close_it() {
    let (t, tap) = app_with_tap(|_| {}).await;
    let call =
        Call::with_session(t, &body_with("rec-ws", json!({"mode": "on_demand"}), None)).await;
    let ids: Vec<String> = call.session["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["participant_id"].as_str().unwrap().to_owned())
        .collect();
    let (agent_id, customer_id) = (ids[0].clone(), ids[1].clone());
    let (mut a, _) = call.join(&call.agent, "page-a").await;
    let (mut c, _) = call.join(&call.customer, "page-c").await;
    // Not yet recording: the pages learn the mode.
    let m = next_of(&mut c, "recording").await;
    assert_eq!(m["state"], "off");

    // The agent starts it from the call page.
    send(&mut a, json!({"type": "recording", "action": "start"})).await;
    let m = recording_in(&mut c, "recording").await;
    assert_eq!(m["writing"], false, "nobody consented: nothing is written");
    let me = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == customer_id.as_str())
        .expect("the customer is listed")
        .clone();
    assert_eq!(me["asked"], true);
    assert!(me["consent"].is_null());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        tap.calls().is_empty(),
        "no tap before consent: {:?}",
        tap.calls()
    );

    // A customer cannot control it; the call is untouched.
    send(&mut c, json!({"type": "recording", "action": "stop"})).await;
    let e = next_of(&mut c, "error").await;
    assert_eq!(e["code"], "forbidden");
    // Twice from the page: the error comes back to the agent only.
    send(&mut a, json!({"type": "recording", "action": "start"})).await;
    let e = next_of(&mut a, "error").await;
    assert_eq!(e["code"], "already_recording");

    // The customer agrees: their tap opens (the agent's stays closed).
    send(&mut c, json!({"type": "consent", "decision": "given"})).await;
    flips_become(&tap, &call.id, &customer_id, &[true]).await;
    assert!(tap.flips(&call.id, &agent_id).is_empty());
    let mut writing = false;
    for _ in 0..10 {
        if next_of(&mut a, "recording").await["writing"] == true {
            writing = true;
            break;
        }
    }
    assert!(writing, "the agent's page shows that something is written");

    // Pause closes it, resume reopens it (over REST: the room follows).
    send(&mut a, json!({"type": "recording", "action": "pause"})).await;
    flips_become(&tap, &call.id, &customer_id, &[true, false]).await;
    let r = call
        .t
        .post(
            &format!("/api/v1/sessions/{}/recording/resume", call.id),
            &json!({}),
        )
        .await;
    assert_eq!(r.status(), 200);
    flips_become(&tap, &call.id, &customer_id, &[true, false, true]).await;

    // Withdrawal closes it at once.
    send(&mut c, json!({"type": "consent", "decision": "withdrawn"})).await;
    flips_become(&tap, &call.id, &customer_id, &[true, false, true, false]).await;

    // The agent declines: never tapped; the call goes on (the socket still answers).
    send(&mut a, json!({"type": "consent", "decision": "declined"})).await;
    send(&mut a, json!({"type": "ping"})).await;
    next_of(&mut a, "pong").await;
    assert!(tap.flips(&call.id, &agent_id).is_empty());

    // The consent records: who, what, which wording, from where.
    let v: Value = eventually(Duration::from_secs(5), "three consents", || async {
        let v: Value = call
            .t
            .get(&format!("/api/v1/sessions/{}/recording", call.id))
            .await
            .json()
            .await
            .ok()?;
        (v["consents"].as_array()?.len() == 3).then_some(v)
    })
    .await;
    let c0 = &v["consents"][0];
    assert_eq!(c0["participant_id"], customer_id.as_str());
    assert_eq!(c0["decision"], "given");
    assert_eq!(c0["wording_version"], "2026-11-1");
    assert_eq!(c0["ip"], "127.0.0.1");
    assert_eq!(v["consents"][1]["decision"], "withdrawn");
    assert_eq!(v["consents"][2]["decision"], "declined");
    assert_eq!(v["consents"][2]["participant_id"], agent_id.as_str());
    let consents: Vec<String> = kinds(&call.t, &call.id)
        .await
        .into_iter()
        .filter(|k| k == "recording.consent")
        .collect();
    assert_eq!(consents.len(), 3);
    // The report page's timeline names each decision and its wording.
    let html = call
        .t
        .http
        .get(call.session["report_url"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("data-kind=\"recording.consent\""));
    assert!(html.contains("given (wording 2026-11-1)"), "{html}");
    assert!(html.contains("withdrawn (wording 2026-11-1)"));
}

#[tokio::test]
async fn always_starts_with_the_call_and_the_end_closes_every_tap() {
    let (t, tap) = app_with_tap(|_| {}).await;
    let call = Call::with_session(
        t,
        &body_with("rec-always-ws", json!({"mode": "always"}), None),
    )
    .await;
    let customer_id = call.session["participants"][1]["participant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut a, _) = call.join(&call.agent, "page-a").await;
    let (mut c, _) = call.join(&call.customer, "page-c").await;
    recording_in(&mut a, "recording").await;
    recording_in(&mut c, "recording").await;
    assert_eq!(kinds(&call.t, &call.id).await, ["recording.started"]);
    send(&mut c, json!({"type": "consent", "decision": "given"})).await;
    flips_become(&tap, &call.id, &customer_id, &[true]).await;
    // The agent may pause an `always` recording, not stop it.
    send(&mut a, json!({"type": "recording", "action": "stop"})).await;
    assert_eq!(
        next_of(&mut a, "error").await["code"],
        "recording_automatic"
    );
    send(&mut a, json!({"type": "end"})).await;
    flips_become(&tap, &call.id, &customer_id, &[true, false]).await;
}

#[tokio::test]
async fn a_fresh_room_takes_the_state_and_consents_from_the_database() {
    let (t, tap) = app_with_tap(|_| {}).await;
    let call = Call::with_session(
        t,
        &body_with("rec-again", json!({"mode": "on_demand"}), None),
    )
    .await;
    let customer_id = call.session["participants"][1]["participant_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut a, _) = call.join(&call.agent, "page-a").await;
    let (mut c, _) = call.join(&call.customer, "page-c").await;
    let r = control(&call.t, &call.id, "start").await;
    assert_eq!(r.status(), 200);
    recording_in(&mut c, "recording").await;
    send(&mut c, json!({"type": "consent", "decision": "given"})).await;
    flips_become(&tap, &call.id, &customer_id, &[true]).await;
    // Everyone leaves: the tap closes and the room goes away.
    send(&mut c, json!({"type": "hang_up"})).await;
    send(&mut a, json!({"type": "hang_up"})).await;
    flips_become(&tap, &call.id, &customer_id, &[true, false]).await;
    let rooms = call.t.app.state().rooms.clone();
    eventually(Duration::from_secs(10), "the room to close", || async {
        (!rooms.contains(&call.id)).then_some(())
    })
    .await;
    // Back in a new room: still recording, the customer's consent stands (no new prompt).
    let (_a2, _) = call.join(&call.agent, "page-a2").await;
    let (mut c2, _) = call.join(&call.customer, "page-c2").await;
    let m = recording_in(&mut c2, "recording").await;
    let me = m["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == customer_id.as_str())
        .expect("listed")
        .clone();
    assert_eq!(me["consent"], "given", "{m}");
    flips_become(&tap, &call.id, &customer_id, &[true, false, true]).await;
}

#[tokio::test]
async fn the_page_gets_the_configured_wording_and_its_version() {
    let t = TestApp::spawn_with(|c| {
        c.recording.consent_text_version = "v7".into();
        c.recording
            .consent_text
            .insert("fr".into(), "Nous enregistrons cet appel.".into());
        c.recording.mode = sightline::domain::recording::RecordingMode::Always;
    })
    .await;
    // The server's default mode applies to a session that names none.
    let s = create(&t, &session_body("rec-wording")).await;
    assert_eq!(s["recording"], json!({"mode": "always", "state": "off"}));
    let customer = token_of(&s["customer_url"]);
    let v: Value = t
        .get(&format!("/api/v1/join/{customer}/recording"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["wording_version"], "v7");
    assert_eq!(v["wording"], json!({"fr": "Nous enregistrons cet appel."}));
    let r = t.get("/api/v1/join/not-a-token/recording").await;
    assert_problem(r, 404, "link_invalid").await;
}
