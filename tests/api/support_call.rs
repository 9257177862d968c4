//! Helpers for in-call tests (chat, photos, quality): a session on the real app, pages
//! joined over the signaling WebSocket.
#![allow(dead_code)]

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::TestApp;

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub const WAIT: Duration = Duration::from_secs(10);

/// A session with its links' tokens.
pub struct Call {
    pub t: TestApp,
    pub id: String,
    pub session: Value,
    pub agent: String,
    pub customer: String,
}

pub fn token_of(url: &Value) -> String {
    url.as_str()
        .expect("url")
        .rsplit('/')
        .next()
        .expect("token")
        .to_owned()
}

impl Call {
    pub async fn new() -> Self {
        Self::with(|_| {}).await
    }

    pub async fn with(tweak: impl FnOnce(&mut sightline::Config)) -> Self {
        let t = TestApp::spawn_with(tweak).await;
        let session = t.create_session("conv-incall").await;
        Self {
            id: session["id"].as_str().expect("id").to_owned(),
            agent: token_of(&session["agent_url"]),
            customer: token_of(&session["customer_url"]),
            session,
            t,
        }
    }

    /// A call over a session created with `body` on an app already running.
    pub async fn with_session(t: TestApp, body: &Value) -> Self {
        let r = t.post("/api/v1/sessions", body).await;
        assert_eq!(r.status(), 201);
        let session: Value = r.json().await.expect("json");
        Self {
            id: session["id"].as_str().expect("id").to_owned(),
            agent: token_of(&session["agent_url"]),
            customer: token_of(&session["customer_url"]),
            session,
            t,
        }
    }

    /// Joins as the link's participant; returns the socket and `joined`.
    pub async fn join(&self, token: &str, instance: &str) -> (Ws, Value) {
        let r = self
            .t
            .http
            .post(self.t.url(&format!("/api/v1/join/{token}/connect")))
            .send()
            .await
            .expect("connect");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        let url = format!("ws://{}/api/v1/ws", self.t.app.http_addr());
        let mut ws = tokio_tungstenite::connect_async(url).await.expect("ws").0;
        send(
            &mut ws,
            json!({"type": "join", "v": 2, "credential": v["credential"], "instance": instance}),
        )
        .await;
        let joined = next_json(&mut ws).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        (ws, joined)
    }

    /// Invites someone (`role`, e.g. `supervisor`) and returns their link's token.
    pub async fn invite(&self, role: &str, name: &str) -> String {
        let r = self
            .t
            .post(
                &format!("/api/v1/sessions/{}/participants", self.id),
                &json!({"role": role, "name": name}),
            )
            .await;
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        token_of(&v["join_url"])
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next text message as JSON (pings skipped); panics on close or timeout.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("socket ended")
            .expect("socket error");
        match m {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected text, got {other:?}"),
        }
    }
}

/// The next message of type `ty`, skipping others (roster updates and the like).
pub async fn next_of(ws: &mut Ws, ty: &str) -> Value {
    for _ in 0..100 {
        let m = next_json(ws).await;
        if m["type"] == ty {
            return m;
        }
    }
    panic!("no {ty} message");
}

/// Sends a ping and returns everything that arrives before the pong.
pub async fn drain(ws: &mut Ws) -> Vec<Value> {
    send(ws, json!({"type": "ping"})).await;
    let mut seen = Vec::new();
    loop {
        let m = next_json(ws).await;
        if m["type"] == "pong" {
            return seen;
        }
        seen.push(m);
    }
}
