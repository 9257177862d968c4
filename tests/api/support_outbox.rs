//! Test helpers for the outbox tests: a recording HTTP receiver, an SMTP sink, an
//! independent Standard Webhooks verifier, and polling with deadlines.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use poem::listener::{Acceptor, Listener, TcpListener};
use poem::{Request, Response, Route, handler};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// What the receiver answered.
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("receiver got JSON")
    }
}

/// A real HTTP server on 127.0.0.1:0 that records every request and answers with a
/// status that tests can switch (200 = healthy, 503 = down).
pub struct Receiver {
    pub addr: SocketAddr,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<AtomicU16>,
    stop: tokio_util::sync::CancellationToken,
}

#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Recorded>>>,
    status: Arc<AtomicU16>,
}

#[handler]
async fn record(req: &Request, body: poem::Body, shared: poem::web::Data<&Shared>) -> Response {
    let body = body.into_vec().await.unwrap_or_default();
    let status = shared.status.load(Ordering::SeqCst);
    shared.requests.lock().unwrap().push(Recorded {
        path: req.uri().path().to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
        status,
        at: Instant::now(),
    });
    Response::builder()
        .status(poem::http::StatusCode::from_u16(status).unwrap())
        .body("{}")
}

impl Receiver {
    pub async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let shared = Shared {
            requests: Arc::default(),
            status: Arc::new(AtomicU16::new(200)),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let app = poem::EndpointExt::data(Route::new().at("/*path", record), shared.clone());
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(app, s.cancelled_owned(), Some(Duration::from_secs(1)))
                .await;
        });
        Self {
            addr,
            requests: shared.requests,
            status: shared.status,
            stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn set_status(&self, s: u16) {
        self.status.store(s, Ordering::SeqCst);
    }

    pub fn all(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn on(&self, path: &str) -> Vec<Recorded> {
        self.all().into_iter().filter(|r| r.path == path).collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A minimal SMTP server (RFC 5321 happy path) that keeps every message's DATA.
pub struct SmtpSink {
    pub port: u16,
    pub messages: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages: Arc<Mutex<Vec<String>>> = Arc::default();
        let store = messages.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(sock, store).await;
                });
            }
        });
        Self { port, messages }
    }

    pub fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }
}

async fn smtp_session(
    sock: tokio::net::TcpStream,
    store: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = BufReader::new(r);
    w.write_all(b"220 sink.test ESMTP\r\n").await?;
    let mut line = String::new();
    for _ in 0..10_000 {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_ascii_uppercase();
        if cmd.starts_with("EHLO") {
            w.write_all(b"250-sink.test\r\n250 8BITMIME\r\n").await?;
        } else if cmd.starts_with("DATA") {
            w.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            for _ in 0..100_000 {
                line.clear();
                if r.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            store.lock().unwrap().push(data);
            w.write_all(b"250 queued\r\n").await?;
        } else if cmd.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"250 ok\r\n").await?;
        }
    }
    Ok(())
}

/// Polls `f` until it returns `Some`, or panics after `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Standard Webhooks verification written from the specification, independently of
/// `src/`: HMAC-SHA256 over `{id}.{timestamp}.{body}` with the base64-decoded part of
/// the `whsec_` secret, compared with each `v1,` entry of `webhook-signature`.
pub fn verify_standard_webhook(secret: &str, r: &Recorded) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let (Some(id), Some(ts), Some(sigs)) = (
        r.header("webhook-id"),
        r.header("webhook-timestamp"),
        r.header("webhook-signature"),
    ) else {
        return false;
    };
    let now = chrono::Utc::now().timestamp();
    let ts_n: i64 = ts.parse().unwrap();
    if (now - ts_n).abs() > 300 {
        return false;
    }
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&r.body);
    let expected = b64.encode(mac.finalize().into_bytes());
    sigs.split(' ').any(|s| s == format!("v1,{expected}"))
}

/// Verifies with the `standardwebhooks` PyPI library when it is installed (scripts/
/// setup-test-deps installs it). Returns `None` if python or the library is missing.
pub fn verify_with_python_library(secret: &str, r: &Recorded) -> Option<bool> {
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, wid, ts, sig = sys.argv[1:5]
body = sys.stdin.buffer.read()
try:
    Webhook(secret).verify(body, {"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": sig})
    print("ok")
except Exception as e:
    print("fail", e)
"#;
    // The test virtualenv (where setup-test-deps puts it), else the system's Python.
    let python = crate::support_python::test_venv()
        .map(|v| v.join("bin/python"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "python3".into());
    let check = std::process::Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .output()
        .ok()?;
    if !check.status.success() {
        return None;
    }
    let mut child = std::process::Command::new(&python)
        .args([
            "-c",
            script,
            secret,
            r.header("webhook-id")?,
            r.header("webhook-timestamp")?,
            r.header("webhook-signature")?,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child.stdin.take()?.write_all(&r.body).ok()?;
    let out = child.wait_with_output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim() == "ok")
}

/// Signs a request the way a Standard Webhooks sender does (for inbound tests).
pub fn sign(secret: &str, id: &str, ts: i64, body: &[u8]) -> String {
    use base64::Engine;
    use hmac::Mac;
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = b64.decode(secret.trim_start_matches("whsec_")).unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(body);
    format!("v1,{}", b64.encode(mac.finalize().into_bytes()))
}

/// A config for an in-process app: port 0, fresh data dir, loopback allowed, fast retries.
pub fn config(dir: &std::path::Path) -> sightline::Config {
    let mut c = sightline::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_owned(),
        log_level: "warn".into(),
        turn: sightline::relay::TurnSettings {
            enabled: false,
            ..Default::default()
        },
        ..Default::default()
    };
    c.outbound.allow = vec!["127.0.0.0/8".parse().unwrap()];
    c.outbox.poll_interval_ms = 50;
    c.outbox.base_delay_ms = 20;
    c.outbox.max_delay_ms = 200;
    c.outbox.request_timeout_ms = 2000;
    c
}

pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String, key: String) -> Self {
        sightline::install_crypto_provider();
        Self {
            base,
            key,
            http: reqwest::Client::new(),
        }
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut b = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            b = b.json(&body);
        }
        let r = b.send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(reqwest::Method::GET, path, None).await
    }
}

pub fn session_body(conversation: &str, via: Option<&str>) -> serde_json::Value {
    let mut b = serde_json::json!({
        "conversation": {"platform": "chatwoot", "id": conversation},
        "agent": {"id": "agent-7", "name": "Ana Lima"},
        "customer": {"name": "Sam", "email": "sam@example.com", "locale": "en"},
    });
    if let Some(v) = via {
        b["post_link_via"] = serde_json::json!(v);
    }
    b
}
