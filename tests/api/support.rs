//! Shared helpers for integration tests: a real app on port 0 with a fresh data directory.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sightline::{Application, Config};

pub struct TestApp {
    pub app: Application,
    pub dir: tempfile::TempDir,
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

pub fn config_for(dir: &std::path::Path) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        turn: sightline::relay::TurnSettings {
            listen: vec!["127.0.0.1:0".parse().unwrap()],
            relay_ports: "0-0".into(),
            ..Default::default()
        },
        ..Config::default()
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config_for(dir.path());
        tweak(&mut config);
        let app = Application::build(config).await.expect("app builds");
        let key = app
            .bootstrap_key()
            .expect("first start mints a key")
            .to_owned();
        let base = app.base_url();
        Self {
            app,
            dir,
            base,
            key,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(&self.key)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("request")
    }

    pub async fn create_session(&self, conversation: &str) -> Value {
        let r = self
            .post("/api/v1/sessions", &session_body(conversation))
            .await;
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }
}

pub fn session_body(conversation: &str) -> Value {
    json!({
        "conversation": {"platform": "chatwoot", "id": conversation},
        "agent": {"id": "agent-1", "name": "Ana Lima"},
        "customer": {"name": "Sam", "email": "sam@example.com", "locale": "fr"},
        "metadata": {"ticket": "T-1"}
    })
}

/// Asserts an RFC 9457 problem document with the given status and code.
pub async fn assert_problem(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        ct.starts_with("application/problem+json"),
        "content-type {ct}"
    );
    let body: Value = r.json().await.expect("problem body is JSON");
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

/// Polls `f` until it returns `Some`, or panics after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
