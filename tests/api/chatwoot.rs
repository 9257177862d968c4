//! Chatwoot end to end against the stand-in in `support_chatwoot` (drops underscore
//! headers like nginx, checks `Api-Access-Token`, numeric conversation ids only, scripted
//! failures): posts that behave well on failure, and calls started from Chatwoot.

use crate::support_chatwoot::*;
use crate::support_outbox::{Api, Receiver, config, eventually};
use serde_json::{Value, json};
use sightline::Application;

pub const BOT_TOKEN: &str = "bot-token-1";
pub const AGENT_TOKEN: &str = "agent-token-5";

pub struct Setup {
    pub app: Application,
    pub api: Api,
    pub cw: Chatwoot,
    pub events: Receiver,
    pub integration: Value,
    pub _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn new(tweak: impl FnOnce(&mut sightline::Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        tweak(&mut c);
        let app = Application::build(c).await.unwrap();
        let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
        let cw = Chatwoot::start(3, BOT_TOKEN, &[(AGENT_TOKEN, 5, "Ana Lima")]).await;
        let events = Receiver::start().await;
        let (st, integration) = api
            .post(
                "/api/v1/integrations",
                json!({"name": "cw", "kind": "chatwoot", "scope": "linked",
                       "events_url": events.url("/events"),
                       "config": {"base_url": cw.url(), "account_id": 3,
                                  "api_access_token": BOT_TOKEN, "webhook_secret": "cw-secret"}}),
            )
            .await;
        assert_eq!(st, 201, "{integration}");
        Self {
            app,
            api,
            cw,
            events,
            integration,
            _dir: dir,
        }
    }

    pub fn id(&self) -> &str {
        self.integration["id"].as_str().unwrap()
    }

    /// A session for conversation `conv`, its link posted through Chatwoot.
    pub async fn session(&self, conv: u64) -> Value {
        let (st, s) = self
            .api
            .post(
                "/api/v1/sessions",
                json!({"conversation": {"platform": "chatwoot", "id": conv.to_string()},
                       "agent": {"id": "5", "name": "Ana Lima"},
                       "customer": {"name": "Sam"}, "post_link_via": "cw"}),
            )
            .await;
        assert_eq!(st, 201, "{s}");
        s
    }

    pub async fn deliveries(&self, sid: &str) -> Vec<Value> {
        let (_, p) = self
            .api
            .get(&format!("/api/v1/deliveries?session_id={sid}"))
            .await;
        p["items"].as_array().cloned().unwrap_or_default()
    }

    pub async fn timeline(&self, sid: &str) -> Vec<Value> {
        let (_, p) = self
            .api
            .get(&format!("/api/v1/sessions/{sid}/events"))
            .await;
        p["items"].as_array().cloned().unwrap_or_default()
    }
}

fn sid(s: &Value) -> String {
    s["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_link_arrives_through_nginx_rules_and_chatwoots_id_is_kept() {
    let t = Setup::new(|_| {}).await;
    let s = t.session(42).await;
    let customer_url = s["customer_url"].as_str().unwrap();
    let posted = eventually(10, "the link in the conversation", || async {
        t.cw.messages(42).pop()
    })
    .await;
    assert!(posted.content.contains(customer_url), "{}", posted.content);
    assert!(!posted.private);
    assert_eq!(t.cw.messages(42).len(), 1);
    // Every request reached Chatwoot authenticated although underscore headers are dropped.
    assert!(
        t.cw.requests()
            .iter()
            .all(|(_, _, h)| h.iter().any(|k| k == "api-access-token")),
        "{:?}",
        t.cw.requests()
    );
    let d = eventually(10, "the delivery recorded", || async {
        t.deliveries(&sid(&s))
            .await
            .into_iter()
            .find(|d| d["kind"] == "post_message" && d["status"] == "delivered")
    })
    .await;
    assert_eq!(d["remote_id"], posted.id.to_string());
    let ev = eventually(10, "session.link_posted", || async {
        t.timeline(&sid(&s))
            .await
            .into_iter()
            .find(|e| e["kind"] == "session.link_posted")
    })
    .await;
    assert_eq!(
        ev["data"]["platform_message_id"],
        posted.id.to_string(),
        "{ev}"
    );
    // A conversation Chatwoot cannot have is refused when the session is created.
    let (st, err) = t
        .api
        .post(
            "/api/v1/sessions",
            json!({"conversation": {"platform": "chatwoot", "id": "conv-x"},
                   "agent": {"id": "5", "name": "Ana"}, "post_link_via": "cw"}),
        )
        .await;
    assert_eq!(
        (st, err["code"].as_str()),
        (422, Some("invalid_conversation_id"))
    );
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_retry_after_a_timeout_does_not_post_twice() {
    // Chatwoot stores the message, then never answers: the attempt times out (2 s in the
    // test config); the retry finds the link in the conversation and does not post again.
    let t = Setup::new(|_| {}).await;
    t.cw.script(&[Answer::StoreThenHang]);
    let s = t.session(43).await;
    let d = eventually(15, "the delivery recorded", || async {
        t.deliveries(&sid(&s))
            .await
            .into_iter()
            .find(|d| d["kind"] == "post_message" && d["status"] == "delivered")
    })
    .await;
    assert_eq!(d["attempts"], 2, "{d}");
    let msgs = t.cw.messages(43);
    assert_eq!(msgs.len(), 1, "posted once: {msgs:?}");
    assert_eq!(d["remote_id"], msgs[0].id.to_string());
    assert_eq!(t.cw.posts(), 1, "the retry looked, and did not post");
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn refusals_dead_letter_at_once_with_chatwoots_reason() {
    let t = Setup::new(|_| {}).await;
    for (conv, answer, reason) in [
        (51, 401, "Invalid Access Token"),
        (52, 404, "Resource could not be found"),
        (53, 422, "Conversation is closed"),
    ] {
        t.cw.script(&[Answer::Status(answer)]);
        let s = t.session(conv).await;
        let d = eventually(10, "a dead letter", || async {
            t.deliveries(&sid(&s))
                .await
                .into_iter()
                .find(|d| d["kind"] == "post_message" && d["status"] == "dead")
        })
        .await;
        assert_eq!(d["attempts"], 1, "no retries: {d}");
        let e = d["last_error"].as_str().unwrap();
        assert!(e.contains(&answer.to_string()) && e.contains(reason), "{e}");
        // ... visible as a delivery.failed event, on the timeline and as a webhook.
        let ev = eventually(10, "delivery.failed", || async {
            t.timeline(&sid(&s))
                .await
                .into_iter()
                .find(|e| e["kind"] == "delivery.failed")
        })
        .await;
        assert_eq!(ev["data"]["delivery_id"], d["id"]);
        let hook = eventually(10, "the delivery.failed webhook", || async {
            t.events.on("/events").into_iter().find(|r| {
                let j = r.json();
                j["type"] == "delivery.failed" && j["data"]["session_id"] == sid(&s)
            })
        })
        .await;
        assert!(
            hook.json()["data"]["reason"]
                .as_str()
                .unwrap()
                .contains(reason)
        );
    }
    assert!(t.cw.messages(51).is_empty());
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after_and_errors_retry() {
    let t = Setup::new(|_| {}).await;
    t.cw.script(&[Answer::RetryAfter(1), Answer::Status(500)]);
    let started = std::time::Instant::now();
    let s = t.session(61).await;
    let d = eventually(15, "delivered", || async {
        t.deliveries(&sid(&s))
            .await
            .into_iter()
            .find(|d| d["kind"] == "post_message" && d["status"] == "delivered")
    })
    .await;
    assert_eq!(d["attempts"], 3, "{d}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );
    assert_eq!(t.cw.messages(61).len(), 1);
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_expired_link_post_is_not_sent() {
    // Chatwoot is down (500) for longer than link_post_max_age_secs: the link post is
    // dead-lettered as expired instead of arriving late.
    let t = Setup::new(|c| c.outbox.link_post_max_age_secs = 1).await;
    t.cw.script(&[Answer::Status(500); 200]);
    let s = t.session(71).await;
    let d = eventually(10, "an expired dead letter", || async {
        t.deliveries(&sid(&s))
            .await
            .into_iter()
            .find(|d| d["kind"] == "post_message" && d["status"] == "dead")
    })
    .await;
    assert!(d["last_error"].as_str().unwrap().contains("expired"), "{d}");
    assert!(t.cw.messages(71).is_empty(), "never posted");
    let before = t.cw.posts();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(t.cw.posts(), before, "no attempts after expiry");
    t.app.shutdown().await.unwrap();
}

fn events_url(t: &Setup) -> String {
    t.integration["chatwoot_events_url"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn sessions_of(t: &Setup, conv: &str) -> Vec<Value> {
    let (_, l) = t
        .api
        .get(&format!(
            "/api/v1/sessions?platform=chatwoot&conversation_id={conv}"
        ))
        .await;
    l["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn video_in_a_private_note_posts_the_customer_link_once_and_the_agents_privately() {
    let t = Setup::new(|_| {}).await;
    let url = events_url(&t);
    let now = chrono::Utc::now().timestamp();
    let note = message_created(
        3,
        json!(42),
        901,
        "/video",
        true,
        agent_sender(5, "Ana Lima"),
    );
    let (st, r) = send_webhook(&url, Some("cw-secret"), "d-1", now, &note).await;
    assert_eq!((st, r["result"].as_str()), (200, Some("started")), "{r}");
    let sid = r["session_id"].as_str().unwrap().to_owned();
    let (_, s) = t.api.get(&format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(s["conversation"]["id"], "42");
    assert_eq!(s["agent"]["id"], "5", "{s}");
    let customer_url = s["customer_url"].as_str().unwrap().to_owned();
    let agent_url = s["agent_url"].as_str().unwrap().to_owned();
    let msgs = eventually(10, "both posts", || async {
        let m = t.cw.messages(42);
        (m.len() >= 2).then_some(m)
    })
    .await;
    let public: Vec<_> = msgs.iter().filter(|m| !m.private).collect();
    let private: Vec<_> = msgs.iter().filter(|m| m.private).collect();
    assert_eq!(public.len(), 1, "{msgs:?}");
    assert!(public[0].content.contains(&customer_url));
    assert!(
        !public[0].content.contains(&agent_url),
        "the agent's link is never public"
    );
    assert_eq!(private.len(), 1, "{msgs:?}");
    assert!(private[0].content.contains(&agent_url));
    // The same delivery again: acknowledged, nothing new. The same note in a new delivery
    // (Chatwoot retrying): the same call.
    let (st, r) = send_webhook(&url, Some("cw-secret"), "d-1", now, &note).await;
    assert_eq!((st, r["result"].as_str()), (200, Some("duplicate")), "{r}");
    let (st, r) = send_webhook(&url, Some("cw-secret"), "d-2", now, &note).await;
    assert_eq!((st, r["result"].as_str()), (200, Some("replayed")), "{r}");
    assert_eq!(r["session_id"], sid.as_str());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(t.cw.messages(42).len(), 2, "nothing posted twice");
    assert_eq!(sessions_of(&t, "42").await.len(), 1);
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn forged_stale_or_odd_webhooks_start_nothing() {
    let t = Setup::new(|_| {}).await;
    let url = events_url(&t);
    let now = chrono::Utc::now().timestamp();
    let note = |conv: Value, private: bool, sender: Value| {
        message_created(3, conv, 777, "/video", private, sender)
    };
    let agent = || agent_sender(5, "Ana Lima");
    let refused = [
        (
            "forged",
            Some("another-secret"),
            now,
            note(json!(42), true, agent()),
            401,
            "signature_mismatch",
        ),
        (
            "unsigned",
            None,
            now,
            note(json!(42), true, agent()),
            401,
            "signature_missing",
        ),
        (
            "old",
            Some("cw-secret"),
            now - 600,
            note(json!(42), true, agent()),
            401,
            "stale_timestamp",
        ),
        (
            "future",
            Some("cw-secret"),
            now + 600,
            note(json!(42), true, agent()),
            401,
            "stale_timestamp",
        ),
        (
            "not a number",
            Some("cw-secret"),
            now,
            note(json!("42abc"), true, agent()),
            400,
            "invalid_conversation_id",
        ),
    ];
    for (what, secret, ts, body, status, code) in refused {
        let (st, r) = send_webhook(&url, secret, &format!("d-{what}"), ts, &body).await;
        assert_eq!(
            (st, r["code"].as_str()),
            (status, Some(code)),
            "{what}: {r}"
        );
    }
    let ignored = [
        ("from a contact", note(json!(42), true, contact_sender())),
        ("public", note(json!(42), false, agent())),
        (
            "other event",
            json!({"event": "conversation_status_changed", "id": 42}),
        ),
        (
            "other text",
            message_created(3, json!(42), 778, "hello", true, agent()),
        ),
        (
            "other account",
            message_created(9, json!(42), 779, "/video", true, agent()),
        ),
    ];
    for (what, body) in ignored {
        let (st, r) = send_webhook(&url, Some("cw-secret"), &format!("d-{what}"), now, &body).await;
        assert_eq!(
            (st, r["result"].as_str()),
            (200, Some("ignored")),
            "{what}: {r}"
        );
    }
    // Not JSON at all.
    let raw = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(
        raw.status(),
        401,
        "unsigned garbage is refused before it is read"
    );
    let (_, all) = t.api.get("/api/v1/sessions").await;
    assert_eq!(all["items"].as_array().unwrap().len(), 0, "{all}");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(t.cw.requests().is_empty(), "nothing was posted");
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_macro_starts_the_call_for_the_assignee() {
    let t = Setup::new(|_| {}).await;
    let url = t.integration["chatwoot_macro_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(t.integration["chatwoot_app_url"].as_str().is_some());
    let conversation = |id: Value, assignee: Value| {
        json!({"event": "macro.executed", "id": id, "account_id": 3, "status": "open",
               "meta": {"assignee": assignee, "sender": {"name": "Kim", "type": "contact"}}})
    };
    let post = |url: String, body: Value| async move {
        let r = reqwest::Client::new()
            .post(url)
            .json(&body)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json::<Value>().await.unwrap_or_default())
    };
    let bo = json!({"id": 9, "name": "Bo Berg", "type": "user"});
    let (st, r) = post(url.clone(), conversation(json!(44), bo.clone())).await;
    assert_eq!((st, r["result"].as_str()), (200, Some("started")), "{r}");
    let sid = r["session_id"].as_str().unwrap().to_owned();
    let (_, s) = t.api.get(&format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(s["agent"]["id"], "9", "the assignee: {s}");
    let msgs = eventually(10, "both posts", || async {
        let m = t.cw.messages(44);
        (m.len() >= 2).then_some(m)
    })
    .await;
    assert_eq!(msgs.iter().filter(|m| m.private).count(), 1);
    // Again while the call is live: that call, nothing new posted.
    let (st, r) = post(url.clone(), conversation(json!(44), bo.clone())).await;
    assert_eq!(
        (st, r["result"].as_str()),
        (200, Some("already_live")),
        "{r}"
    );
    assert_eq!(r["session_id"], sid.as_str());
    // Refused: a wrong secret, no assignee, a conversation id that is not a number.
    let wrong = format!("{}x", &url[..url.len() - 1]);
    let (st, r) = post(wrong, conversation(json!(45), bo.clone())).await;
    assert_eq!(
        (st, r["code"].as_str()),
        (401, Some("macro_secret_mismatch")),
        "{r}"
    );
    let (st, r) = post(url.clone(), conversation(json!(45), Value::Null)).await;
    assert_eq!((st, r["code"].as_str()), (422, Some("no_assignee")), "{r}");
    let (st, r) = post(url.clone(), conversation(json!("x45"), bo)).await;
    assert_eq!(
        (st, r["code"].as_str()),
        (400, Some("invalid_conversation_id")),
        "{r}"
    );
    assert_eq!(sessions_of(&t, "45").await.len(), 0);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(t.cw.messages(44).len(), 2);
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_agent_sees_the_calls_progress_as_private_notes() {
    use futures_util::{SinkExt, StreamExt};
    let t = Setup::new(|_| {}).await;
    let now = chrono::Utc::now().timestamp();
    let note = message_created(
        3,
        json!(81),
        902,
        "/video",
        true,
        agent_sender(5, "Ana Lima"),
    );
    let (st, r) = send_webhook(&events_url(&t), Some("cw-secret"), "d-81", now, &note).await;
    assert_eq!(st, 200, "{r}");
    let sid = r["session_id"].as_str().unwrap().to_owned();
    let (_, s) = t.api.get(&format!("/api/v1/sessions/{sid}")).await;
    let token = s["customer_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    // The customer opens the link and joins.
    let (st, info) = t
        .api
        .post(&format!("/api/v1/join/{token}/connect"), json!({}))
        .await;
    assert_eq!(st, 200, "{info}");
    let ws_url = format!("ws://{}/api/v1/ws", t.app.http_addr());
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await.unwrap();
    let join = json!({"type": "join", "v": 2, "credential": info["credential"], "instance": "c1"});
    ws.send(tokio_tungstenite::tungstenite::Message::Text(
        join.to_string().into(),
    ))
    .await
    .unwrap();
    let _ = ws.next().await;
    let joined = eventually(10, "the 'customer joined' note", || async {
        t.cw.messages(81)
            .into_iter()
            .find(|m| m.private && m.content.contains("joined the video call"))
    })
    .await;
    assert!(
        joined.content.contains("Sam Customer"),
        "{}",
        joined.content
    );
    let (st, _) = t
        .api
        .post(&format!("/api/v1/sessions/{sid}/end"), json!({}))
        .await;
    assert_eq!(st, 200);
    let ended = eventually(10, "the 'call ended' note", || async {
        t.cw.messages(81)
            .into_iter()
            .find(|m| m.private && m.content.contains("ended after"))
    })
    .await;
    assert!(
        ended.content.contains("/r/"),
        "a report link: {}",
        ended.content
    );
    let msgs = t.cw.messages(81);
    assert_eq!(msgs.iter().filter(|m| !m.private).count(), 1, "{msgs:?}");
    assert_eq!(
        msgs.iter().filter(|m| m.private).count(),
        3,
        "agent link, joined, ended: {msgs:?}"
    );
    drop(ws);
    t.app.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_dashboard_app_signs_agents_in_through_chatwoot_and_runs_the_call() {
    let t = Setup::new(|_| {}).await;
    let id = t.id().to_owned();
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1/integrations/{id}/chatwoot/app", t.app.base_url());
    // The page: framed only by this integration's Chatwoot.
    let page = http
        .get(t.integration["chatwoot_app_url"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains(&format!("frame-ancestors {}", t.cw.url())),
        "{csp}"
    );
    // A token Chatwoot refuses.
    let r = http
        .post(format!("{api}/session"))
        .header("x-sightline-app", "1")
        .json(&json!({"token": "not-a-token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["code"], "chatwoot_token_refused");
    // Without the app header (a cross-site form): refused.
    let r = http
        .post(format!("{api}/session"))
        .json(&json!({"token": AGENT_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The agent's own token.
    let r = http
        .post(format!("{api}/session"))
        .header("x-sightline-app", "1")
        .json(&json!({"token": AGENT_TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=None", "Partitioned"] {
        assert!(set.contains(attr), "{set}");
    }
    assert!(!set.contains(AGENT_TOKEN), "a reference, not the token");
    let cookie = set.split(';').next().unwrap().to_owned();
    let agent: Value = r.json().await.unwrap();
    assert_eq!(agent["id"], "5");
    let r = http
        .get(format!("{api}/call?conversation=91"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no cookie");
    let state = |c: &str| {
        let http = http.clone();
        let url = format!("{api}/call?conversation=91");
        let c = c.to_owned();
        async move {
            let r = http.get(url).header("cookie", c).send().await.unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    assert_eq!(state(&cookie).await["call"], Value::Null);
    let r = http
        .post(format!("{api}/call"))
        .header("x-sightline-app", "1")
        .header("cookie", &cookie)
        .json(&json!({"conversation": 91}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    assert!(
        started["call"]["agent_url"]
            .as_str()
            .unwrap()
            .contains("/j/")
    );
    assert_eq!(started["call"]["customer_present"], false);
    let msgs = eventually(10, "the link and the note", || async {
        let m = t.cw.messages(91);
        (m.len() >= 2).then_some(m)
    })
    .await;
    assert_eq!(msgs.iter().filter(|m| m.private).count(), 1);
    assert_eq!(
        state(&cookie).await["call"]["session_id"],
        started["call"]["session_id"]
    );
    let r = http
        .post(format!("{api}/call/end"))
        .header("x-sightline-app", "1")
        .header("cookie", &cookie)
        .json(&json!({"conversation": 91}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(state(&cookie).await["call"]["status"], "ended");
    t.app.shutdown().await.unwrap();
}
