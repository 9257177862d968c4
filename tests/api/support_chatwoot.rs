//! A Chatwoot stand-in written for the tests (a real HTTP server on 127.0.0.1, port 0)
//! and a sender of real signed Chatwoot account webhooks.
//!
//! Like Chatwoot behind nginx it drops every request header whose name contains an
//! underscore, checks `Api-Access-Token`, accepts only numeric conversation ids, and can
//! be told to answer 401/404/422/429/500 or to store a message and then never answer
//! (the client times out after the message was stored).
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Route, handler};
use serde_json::{Value, json};

/// A message stored in a conversation.
#[derive(Debug, Clone)]
pub struct CwMessage {
    pub id: u64,
    pub conversation: u64,
    pub content: String,
    pub private: bool,
    pub message_type: String,
    pub at: Instant,
}

/// What the stand-in does with the next POST of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Answer with this status (200: store the message and return it).
    Status(u16),
    /// 429 with `Retry-After: n` seconds.
    RetryAfter(u64),
    /// Store the message, then never answer.
    StoreThenHang,
}

#[derive(Default)]
struct Inner {
    messages: Vec<CwMessage>,
    next_id: u64,
    /// Scripted answers for the next message POSTs; empty = 200.
    script: VecDeque<Answer>,
    /// Every request: (method, path, header names seen after dropping underscores).
    requests: Vec<(String, String, Vec<String>)>,
}

#[derive(Clone)]
struct Shared {
    inner: Arc<Mutex<Inner>>,
    account: u64,
    /// Access tokens → the user they belong to (`{id, name, ...}`).
    users: Arc<HashMap<String, Value>>,
}

pub struct Chatwoot {
    pub addr: SocketAddr,
    pub account: u64,
    /// The bot's token (the integration's `api_access_token`).
    pub token: String,
    inner: Arc<Mutex<Inner>>,
    stop: tokio_util::sync::CancellationToken,
}

fn json_resp(status: u16, v: Value) -> Response {
    Response::builder()
        .status(poem::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(v.to_string())
}

#[handler]
async fn serve(req: &Request, body: poem::Body, sh: poem::web::Data<&Shared>) -> Response {
    // nginx's default `underscores_in_headers off`: such headers never reach Rails.
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| !k.as_str().contains('_'))
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    // Pages standing in for Chatwoot's dashboard (no sign-in): the host of a dashboard
    // app, and a page of another origin that forges appContext messages.
    if method == "GET" && (path == "/app-host" || path == "/evil") {
        let q: HashMap<String, String> = req
            .uri()
            .query()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let html = if path == "/app-host" {
            host_page(
                q.get("app").map(String::as_str).unwrap_or_default(),
                q.get("evil").map(String::as_str).unwrap_or_default(),
                q.get("conversation").map(String::as_str).unwrap_or("1"),
            )
        } else {
            EVIL_PAGE.to_owned()
        };
        return Response::builder()
            .content_type("text/html; charset=utf-8")
            .body(html);
    }
    sh.inner.lock().unwrap().requests.push((
        method.clone(),
        path.clone(),
        headers.iter().map(|(k, _)| k.clone()).collect(),
    ));
    let token = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-access-token"))
        .map(|(_, v)| v.clone());
    let Some(user) = token.as_ref().and_then(|t| sh.users.get(t)) else {
        return json_resp(
            401,
            json!({"error": "You need to sign in or sign up before continuing."}),
        );
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (method.as_str(), segs.as_slice()) {
        ("GET", ["api", "v1", "profile"]) => json_resp(200, user.clone()),
        (
            m,
            [
                "api",
                "v1",
                "accounts",
                acct,
                "conversations",
                conv,
                "messages",
            ],
        ) => {
            if acct.parse::<u64>().ok() != Some(sh.account) {
                return json_resp(401, json!({"error": "Unauthorized"}));
            }
            // Rails routes only numeric display ids to a conversation.
            let Ok(conv) = conv.parse::<u64>() else {
                return json_resp(404, json!({"error": "Resource could not be found"}));
            };
            if m == "GET" {
                let inner = sh.inner.lock().unwrap();
                let payload: Vec<Value> = inner
                    .messages
                    .iter()
                    .filter(|x| x.conversation == conv)
                    .map(|x| {
                        json!({"id": x.id, "content": x.content, "private": x.private,
                                    "message_type": if x.message_type == "outgoing" {1} else {0}})
                    })
                    .collect();
                return json_resp(200, json!({"meta": {}, "payload": payload}));
            }
            if m != "POST" {
                return json_resp(404, json!({}));
            }
            let body: Value = match body.into_json().await {
                Ok(v) => v,
                Err(_) => return json_resp(422, json!({"error": "bad json"})),
            };
            let answer = sh
                .inner
                .lock()
                .unwrap()
                .script
                .pop_front()
                .unwrap_or(Answer::Status(200));
            match answer {
                Answer::Status(200) | Answer::StoreThenHang => {
                    let Some(content) = body["content"].as_str() else {
                        return json_resp(422, json!({"error": "content missing"}));
                    };
                    let msg = {
                        let mut inner = sh.inner.lock().unwrap();
                        inner.next_id += 1;
                        let m = CwMessage {
                            id: 1000 + inner.next_id,
                            conversation: conv,
                            content: content.to_owned(),
                            private: body["private"].as_bool().unwrap_or(false),
                            message_type: body["message_type"]
                                .as_str()
                                .unwrap_or("outgoing")
                                .to_owned(),
                            at: Instant::now(),
                        };
                        inner.messages.push(m.clone());
                        m
                    };
                    if answer == Answer::StoreThenHang {
                        tokio::time::sleep(Duration::from_secs(120)).await;
                    }
                    json_resp(
                        200,
                        json!({"id": msg.id, "content": msg.content, "private": msg.private,
                               "conversation_id": conv, "message_type": 1}),
                    )
                }
                Answer::RetryAfter(secs) => Response::builder()
                    .status(poem::http::StatusCode::TOO_MANY_REQUESTS)
                    .header("retry-after", secs.to_string())
                    .content_type("application/json")
                    .body(json!({"error": "Too many requests"}).to_string()),
                Answer::Status(401) => json_resp(401, json!({"error": "Invalid Access Token"})),
                Answer::Status(404) => {
                    json_resp(404, json!({"error": "Resource could not be found"}))
                }
                Answer::Status(422) => json_resp(
                    422,
                    json!({"message": "Validation failed: Conversation is closed"}),
                ),
                Answer::Status(s) => json_resp(s, json!({"error": "Internal Server Error"})),
            }
        }
        _ => json_resp(404, json!({"error": "Resource could not be found"})),
    }
}

/// Chatwoot's side of a dashboard app, as its frontend does it: an iframe of the app's
/// URL, sent the `appContext` (a JSON string) on load and whenever the app asks with
/// `chatwoot-dashboard-app:fetch-info`.
fn host_page(app: &str, evil: &str, conversation: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('"', "&quot;")
            .replace('<', "&lt;")
    };
    let conversation: u64 = conversation.parse().unwrap_or(1);
    format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Chatwoot</title></head><body>
<iframe id="app" src="{app}" width="640" height="520"></iframe>
<iframe id="evil" src="{evil}" width="20" height="20"></iframe>
<script>
const ctx = JSON.stringify({{event: 'appContext', data: {{
  conversation: {{id: {conversation}, meta: {{sender: {{id: 77, name: 'Sam Customer'}}}}}},
  contact: {{id: 77, name: 'Sam Customer'}},
  currentAgent: {{id: 5, name: 'Ana Lima', email: 'ana@example.com'}}}}}});
const app = document.getElementById('app');
window.__asked = 0;
window.addEventListener('message', (e) => {{
  if (e.source === app.contentWindow && e.data === 'chatwoot-dashboard-app:fetch-info') {{
    window.__asked++;
    app.contentWindow.postMessage(ctx, '*');
  }}
}});
app.addEventListener('load', () => app.contentWindow.postMessage(ctx, '*'));
</script></body></html>"#,
        app = esc(app),
        evil = esc(evil),
    )
}

/// Another origin: keeps telling the app (its sibling frame) that conversation 666 is open.
const EVIL_PAGE: &str = r#"<!doctype html><html><body><script>
const forged = JSON.stringify({event: 'appContext', data: {conversation: {id: 666}, currentAgent: {id: 1, name: 'Mallory'}}});
setInterval(() => { try { parent.frames[0].postMessage(forged, '*'); } catch (e) {} }, 50);
</script></body></html>"#;

impl Chatwoot {
    /// Account `account`; `bot_token` is the integration's token; `agents` are
    /// (access token, user id, name) of agents the profile endpoint knows.
    pub async fn start(account: u64, bot_token: &str, agents: &[(&str, u64, &str)]) -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let mut users = HashMap::new();
        users.insert(
            bot_token.to_owned(),
            json!({"id": 1, "name": "Sightline bot", "type": "user", "account_id": account}),
        );
        for (token, id, name) in agents {
            users.insert(
                (*token).to_owned(),
                json!({"id": id, "name": name, "available_name": name, "type": "user",
                       "account_id": account, "email": format!("agent{id}@example.com")}),
            );
        }
        let inner: Arc<Mutex<Inner>> = Arc::default();
        let shared = Shared {
            inner: inner.clone(),
            account,
            users: Arc::new(users),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let app = poem::EndpointExt::data(Route::new().at("/*path", serve), shared);
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(app, s.cancelled_owned(), Some(Duration::from_secs(1)))
                .await;
        });
        Self {
            addr,
            account,
            token: bot_token.to_owned(),
            inner,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The next message POSTs are answered like this, in order.
    pub fn script(&self, answers: &[Answer]) {
        self.inner.lock().unwrap().script.extend(answers);
    }

    pub fn messages(&self, conversation: u64) -> Vec<CwMessage> {
        self.inner
            .lock()
            .unwrap()
            .messages
            .iter()
            .filter(|m| m.conversation == conversation)
            .cloned()
            .collect()
    }

    /// Requests received: (method, path, header names kept).
    pub fn requests(&self) -> Vec<(String, String, Vec<String>)> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// Message POSTs received (whatever was answered).
    pub fn posts(&self) -> usize {
        self.requests()
            .iter()
            .filter(|(m, p, _)| m == "POST" && p.ends_with("/messages"))
            .count()
    }
}

impl Drop for Chatwoot {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A `message_created` account webhook as Chatwoot sends it for a note.
pub fn message_created(
    account: u64,
    conversation: Value,
    message_id: u64,
    content: &str,
    private: bool,
    sender: Value,
) -> Value {
    json!({
        "event": "message_created",
        "id": message_id,
        "content": content,
        "content_type": "text",
        "message_type": if private { "outgoing" } else { "incoming" },
        "private": private,
        "created_at": "2026-11-30T10:00:00.000Z",
        "sender": sender,
        "account": {"id": account, "name": "Acme"},
        "inbox": {"id": 1, "name": "Website"},
        "conversation": {
            "id": conversation, "inbox_id": 1, "status": "open",
            "meta": {"sender": {"id": 77, "name": "Sam Customer", "email": "sam@example.com", "type": "contact"},
                     "assignee": {"id": 5, "name": "Ana Lima", "type": "user"}},
        },
    })
}

pub fn agent_sender(id: u64, name: &str) -> Value {
    json!({"id": id, "name": name, "email": "ana@example.com", "type": "user"})
}

pub fn contact_sender() -> Value {
    json!({"id": 77, "name": "Sam Customer", "type": "contact"})
}

/// Sends a signed account webhook (`X-Chatwoot-Signature`, `-Timestamp`, `-Delivery`).
/// `secret = None` sends no signature.
pub async fn send_webhook(
    url: &str,
    secret: Option<&str>,
    delivery: &str,
    ts: i64,
    body: &Value,
) -> (u16, Value) {
    use hmac::Mac;
    sightline::install_crypto_provider();
    let raw = serde_json::to_vec(body).unwrap();
    let mut b = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-chatwoot-timestamp", ts.to_string())
        .header("x-chatwoot-delivery", delivery);
    if let Some(secret) = secret {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{ts}.").as_bytes());
        mac.update(&raw);
        b = b.header(
            "x-chatwoot-signature",
            format!("sha256={}", hex::encode(mac.finalize().into_bytes())),
        );
    }
    let r = b.body(raw).send().await.unwrap();
    let st = r.status().as_u16();
    (st, r.json().await.unwrap_or_default())
}
