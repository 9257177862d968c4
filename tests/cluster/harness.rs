//! A real NATS broker and real Sightline nodes as child processes, on loopback only.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(15);

/// A free TCP port on 127.0.0.1 (bound, then released for the child to take).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// `nats-server` on 127.0.0.1:`port`; restartable on the same port.
pub struct Nats {
    pub port: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Nats {
    fn new(dir: &std::path::Path) -> Self {
        let mut n = Self {
            port: free_port(),
            child: None,
            log: dir.join("nats.log"),
        };
        n.start();
        n
    }

    /// With the broker's credentials (the nodes must never log them).
    pub fn url(&self) -> String {
        format!("nats://sightline:{BROKER_PASSWORD}@127.0.0.1:{}", self.port)
    }

    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("nats log");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["--user", "sightline", "--pass", BROKER_PASSWORD])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One `sightline serve` process.
pub struct Node {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    pub dir: PathBuf,
}

impl Node {
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Session {
    pub id: String,
    pub agent: String,
    pub customer: String,
}

pub struct Cluster {
    pub nats: Nats,
    pub nodes: Vec<Node>,
    pub key: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

const SECRET: &str = "cluster-test-secret-0123456789abcdef";
pub const BROKER_PASSWORD: &str = "broker-pw-4711";

impl Cluster {
    /// A broker, a fresh database and two nodes `{prefix}-a` and `{prefix}-b`; `None`
    /// (with a line saying why) when the broker or PostgreSQL is not available.
    pub async fn start(prefix: &str) -> Option<Self> {
        if !have("nats-server") {
            eprintln!("SKIPPED: nats-server is not installed (scripts/setup-test-deps)");
            return None;
        }
        sightline::install_crypto_provider();
        let db = crate::fresh_database().await?;
        let dir = tempfile::tempdir().expect("tempdir");
        let nats = Nats::new(dir.path());
        let mut c = Self {
            nats,
            nodes: Vec::new(),
            key: String::new(),
            http: reqwest::Client::new(),
            dir,
        };
        for n in ["a", "b"] {
            let node = c.spawn(&format!("{prefix}-{n}"), &db);
            c.nodes.push(node);
            let i = c.nodes.len() - 1;
            c.wait_ready(i, true).await;
        }
        let key_file = c.nodes[0].dir.join("bootstrap-api-key");
        c.key = std::fs::read_to_string(&key_file)
            .expect("first node wrote the bootstrap key")
            .trim()
            .to_owned();
        Some(c)
    }

    fn spawn(&self, name: &str, db: &str) -> Node {
        let port = free_port();
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).expect("node dir");
        let log = std::fs::File::create(self.dir.path().join(format!("{name}.log"))).expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_sightline"))
            .arg("serve")
            .env_clear()
            .env("SIGHTLINE_LISTEN", format!("127.0.0.1:{port}"))
            .env("SIGHTLINE_DATA_DIR", &dir)
            .env("SIGHTLINE_DATABASE_URL", db)
            .env("SIGHTLINE_SECRET_KEY", SECRET)
            .env(
                "SIGHTLINE_LOG_LEVEL",
                "info,sightline=debug,async_nats=debug",
            )
            .env("SIGHTLINE_TURN__ENABLED", "false")
            .env("SIGHTLINE_OUTBOUND__ALLOW", "127.0.0.0/8")
            .env("SIGHTLINE_OUTBOX__POLL_INTERVAL_MS", "100")
            .env("SIGHTLINE_SIGNALING__RATE_PER_SEC", "200")
            .env("SIGHTLINE_SIGNALING__RATE_BURST", "400")
            .env("SIGHTLINE_CLUSTER__NODE", name)
            .env("SIGHTLINE_CLUSTER__BROKER_URL", self.nats.url())
            .env("SIGHTLINE_CLUSTER__ROOM_LEASE_SECS", "3")
            .env("SIGHTLINE_CLUSTER__DEAD_AFTER_MS", "3000")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start sightline");
        Node {
            name: name.to_owned(),
            port,
            child: Some(child),
            dir,
        }
    }

    pub fn base(&self, i: usize) -> String {
        self.nodes[i].base()
    }

    /// Waits until node `i`'s `/readyz` answers `ready` (or, `ready` false, stops to).
    pub async fn wait_ready(&self, i: usize, ready: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self
                .http
                .get(format!("{}/readyz", self.base(i)))
                .timeout(Duration::from_secs(2))
                .send()
                .await;
            let ok = matches!(&r, Ok(r) if r.status() == 200);
            if ok == ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {} never became {}ready (logs in {})",
                self.nodes[i].name,
                if ready { "" } else { "un" },
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM: the node drains (gives its leases up, closes its sockets) and exits;
    /// waits for the exit.
    pub fn terminate(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let pid = i32::try_from(c.id()).expect("pid");
            // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            while c.try_wait().ok().flatten().is_none() {
                assert!(Instant::now() < deadline, "node did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// SIGKILL: the node dies without a word (no lease given up, no socket closed).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub async fn post(&self, i: usize, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base(i)))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .expect("request");
        let st = r.status().as_u16();
        (st, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self, i: usize) -> String {
        self.http
            .get(format!("{}/metrics", self.base(i)))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default()
    }

    pub async fn create_session(&self, i: usize, conversation: &str) -> Session {
        let (st, v) = self
            .post(
                i,
                "/api/v1/sessions",
                json!({
                    "conversation": {"platform": "test", "id": conversation},
                    "agent": {"id": "a-1", "name": "Ana"},
                    "customer": {"name": "Sam"},
                }),
            )
            .await;
        assert_eq!(st, 201, "{v}");
        let token = |k: &str| {
            v[k].as_str()
                .expect(k)
                .rsplit('/')
                .next()
                .expect("token")
                .to_owned()
        };
        Session {
            id: v["id"].as_str().expect("id").to_owned(),
            agent: token("agent_url"),
            customer: token("customer_url"),
        }
    }

    /// Joins through node `i` as a page does: a fresh credential, a socket, `join`;
    /// retried (like the page's reconnect) until the room answers `joined`.
    pub async fn join(&self, i: usize, token: &str, instance: &str) -> (Ws, Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = self.try_join(i, token, instance).await {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "could not join through {} (logs in {})",
                self.nodes[i].name,
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn try_join(&self, i: usize, token: &str, instance: &str) -> Option<(Ws, Value)> {
        let r = self
            .http
            .post(format!("{}/api/v1/join/{token}/connect", self.base(i)))
            .send()
            .await
            .ok()?;
        let v: Value = r.json().await.ok()?;
        let credential = v["credential"].as_str()?.to_owned();
        let url = format!("ws://127.0.0.1:{}/api/v1/ws", self.nodes[i].port);
        let (mut ws, _) = tokio_tungstenite::connect_async(url).await.ok()?;
        send(
            &mut ws,
            json!({"type": "join", "v": 2, "credential": credential, "instance": instance}),
        )
        .await;
        let joined = tokio::time::timeout(Duration::from_secs(25), try_next_json(&mut ws))
            .await
            .ok()??;
        (joined["type"] == "joined").then_some((ws, joined))
    }

    /// Every node's whole log.
    pub fn full_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                std::fs::read_to_string(self.dir.path().join(format!("{}.log", n.name)))
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The last lines of every node's log (for failure messages).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{}.log", n.name)))
                .unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let from = lines.len().saturating_sub(40);
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                n.name,
                lines[from..].join("\n")
            ));
        }
        out
    }

    pub async fn stop(mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

pub async fn send(ws: &mut Ws, v: Value) {
    let _ = ws.send(Message::text(v.to_string())).await;
}

/// The next text message as JSON, or `None` when the socket ends.
pub async fn try_next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return serde_json::from_str(&t).ok(),
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            _ => return None,
        }
    }
}

pub async fn next_json(ws: &mut Ws) -> Value {
    tokio::time::timeout(WAIT, try_next_json(ws))
        .await
        .expect("timed out waiting for a message")
        .expect("socket ended")
}

/// Reads until a message of type `t` (skipping others).
pub async fn until(ws: &mut Ws, t: &str) -> Value {
    for _ in 0..50 {
        let m = next_json(ws).await;
        if m["type"] == t {
            return m;
        }
    }
    panic!("no {t} message");
}

/// Reads until the close frame and returns its code (0 if the socket just ended).
pub async fn close_code(ws: &mut Ws) -> u16 {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = tokio::time::timeout(left, ws.next())
            .await
            .expect("timed out waiting for a close");
        match m {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 0,
            Some(Ok(_)) => continue,
        }
    }
}
