//! A real Matrix homeserver for the tests: Synapse from the test virtualenv
//! (`scripts/setup-test-deps` installs `matrix-synapse` into
//! `~/.cache/sightline-test/venv`), on 127.0.0.1 with SQLite in a temporary directory,
//! no federation, users registered through the shared-secret admin API.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Synapse {
    child: Child,
    pub dir: tempfile::TempDir,
    pub base: String,
    shared_secret: String,
    http: reqwest::Client,
}

/// A registered user and their access token.
#[derive(Debug, Clone)]
pub struct MxUser {
    pub user_id: String,
    pub token: String,
}

fn venv_python() -> PathBuf {
    crate::support_python::test_venv()
        .unwrap_or_else(|| PathBuf::from("/tmp/sightline-test/venv"))
        .join("bin/python")
}

/// A free loopback port (Synapse cannot report the port it bound, so the test picks one).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Synapse {
    /// Starts Synapse, or returns `None` (with the reason on stderr) when it is not
    /// installed: the Matrix tests then say so and pass without it, unless
    /// `SIGHTLINE_REQUIRE_SYNAPSE=1` (CI) makes that a failure.
    pub async fn start() -> Option<Self> {
        sightline::install_crypto_provider();
        let python = venv_python();
        let have = Command::new(&python)
            .args(["-c", "import synapse"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            let msg = format!(
                "matrix-synapse is not installed in {} (run scripts/setup-test-deps)",
                python.display()
            );
            assert!(
                std::env::var("SIGHTLINE_REQUIRE_SYNAPSE").as_deref() != Ok("1"),
                "{msg}"
            );
            eprintln!("skipping the Synapse part: {msg}");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let port = free_port();
        let shared_secret = format!("test-secret-{}", uuid::Uuid::new_v4().simple());
        let rc = "{per_second: 1000, burst_count: 1000}";
        let config = format!(
            r#"server_name: "localhost"
pid_file: {d}/homeserver.pid
listeners:
  - port: {port}
    bind_addresses: ['127.0.0.1']
    type: http
    tls: false
    x_forwarded: false
    resources:
      - names: [client]
        compress: false
database:
  name: sqlite3
  args:
    database: {d}/homeserver.db
log_config: {d}/log.yaml
media_store_path: {d}/media
signing_key_path: {d}/signing.key
registration_shared_secret: "{shared_secret}"
report_stats: false
trusted_key_servers: []
federation_domain_whitelist: []
enable_metrics: false
url_preview_enabled: false
presence:
  enabled: false
rc_message: {rc}
rc_registration: {rc}
rc_joins:
  local: {rc}
  remote: {rc}
rc_invites:
  per_room: {rc}
  per_user: {rc}
  per_sender: {rc}
rc_login:
  address: {rc}
  account: {rc}
  failed_attempts: {rc}
"#,
            d = d.display()
        );
        std::fs::write(d.join("hs.yaml"), config).unwrap();
        std::fs::write(
            d.join("log.yaml"),
            "version: 1\nformatters: {p: {format: '%(asctime)s %(levelname)s %(name)s %(message)s'}}\n\
             handlers: {f: {class: logging.FileHandler, filename: LOG, formatter: p}}\n\
             root: {level: WARNING, handlers: [f]}\ndisable_existing_loggers: false\n"
                .replace("LOG", &d.join("homeserver.log").display().to_string()),
        )
        .unwrap();
        let keys = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(d.join("hs.yaml"))
            .arg("--generate-keys")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .expect("synapse --generate-keys");
        assert!(
            keys.status.success(),
            "synapse --generate-keys: {}",
            String::from_utf8_lossy(&keys.stderr)
        );
        let child = Command::new(&python)
            .args(["-m", "synapse.app.homeserver", "-c"])
            .arg(d.join("hs.yaml"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start synapse");
        let base = format!("http://127.0.0.1:{port}");
        let s = Self {
            child,
            dir,
            base,
            shared_secret,
            http: reqwest::Client::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = s
                .http
                .get(format!("{}/_matrix/client/versions", s.base))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Synapse did not come up; log: {}",
                std::fs::read_to_string(s.dir.path().join("homeserver.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Some(s)
    }

    /// Registers a user through the shared-secret admin API (HMAC-SHA1 over
    /// `nonce\0user\0password\0notadmin`).
    pub async fn register(&self, name: &str) -> MxUser {
        use hmac::Mac;
        let url = format!("{}/_synapse/admin/v1/register", self.base);
        let nonce: Value = self
            .http
            .get(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let nonce = nonce["nonce"].as_str().unwrap().to_owned();
        let password = format!("pw-{name}-{}", uuid::Uuid::new_v4().simple());
        let mut mac = hmac::Hmac::<sha1::Sha1>::new_from_slice(self.shared_secret.as_bytes())
            .expect("any key length");
        mac.update(format!("{nonce}\0{name}\0{password}\0notadmin").as_bytes());
        let r: Value = self
            .http
            .post(&url)
            .json(
                &json!({"nonce": nonce, "username": name, "password": password,
                          "admin": false, "mac": hex::encode(mac.finalize().into_bytes())}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        MxUser {
            user_id: r["user_id"].as_str().expect("user_id").to_owned(),
            token: r["access_token"].as_str().expect("access_token").to_owned(),
        }
    }

    pub async fn call(
        &self,
        user: &MxUser,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Value {
        let r = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&user.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let st = r.status();
        let v: Value = r.json().await.unwrap_or_default();
        assert!(st.is_success(), "{path}: {st} {v}");
        v
    }

    /// A private room made by `owner`, with `members` invited and joined.
    pub async fn room(&self, owner: &MxUser, members: &[&MxUser]) -> String {
        let invite: Vec<&str> = members.iter().map(|m| m.user_id.as_str()).collect();
        let r = self
            .call(
                owner,
                reqwest::Method::POST,
                "/_matrix/client/v3/createRoom",
                json!({"preset": "private_chat", "invite": invite}),
            )
            .await;
        let room = r["room_id"].as_str().unwrap().to_owned();
        for m in members {
            self.call(
                m,
                reqwest::Method::POST,
                &format!("/_matrix/client/v3/join/{}", enc(&room)),
                json!({}),
            )
            .await;
        }
        room
    }

    /// The text bodies of the room's `m.room.message` events, oldest first.
    pub async fn messages(&self, user: &MxUser, room: &str) -> Vec<(String, String)> {
        let r = self
            .http
            .get(format!(
                "{}/_matrix/client/v3/rooms/{}/messages?dir=b&limit=100",
                self.base,
                enc(room)
            ))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap_or_default();
        let mut out: Vec<(String, String)> = v["chunk"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["type"] == "m.room.message")
            .map(|e| {
                (
                    e["sender"].as_str().unwrap_or_default().to_owned(),
                    e["content"]["body"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        out.reverse();
        out
    }

    /// Sends a text message as `user`.
    pub async fn say(&self, user: &MxUser, room: &str, text: &str) {
        self.call(
            user,
            reqwest::Method::PUT,
            &format!(
                "/_matrix/client/v3/rooms/{}/send/m.room.message/t{}",
                enc(room),
                uuid::Uuid::new_v4().simple()
            ),
            json!({"msgtype": "m.text", "body": text}),
        )
        .await;
    }
}

/// Percent-encodes a room id for a path segment.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Synapse {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP proxy in front of a server that lets the first `stall` requests whose path
/// contains `needle` reach the server but never answers them (the client times out after
/// the server acted): "the first attempt timed out" made real.
pub struct StallingProxy {
    pub addr: std::net::SocketAddr,
    stop: tokio_util::sync::CancellationToken,
    pub stalled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

#[derive(Clone)]
struct ProxyState {
    target: String,
    needle: String,
    remaining: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stalled: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    http: reqwest::Client,
}

#[poem::handler]
async fn proxy(
    req: &poem::Request,
    body: poem::Body,
    st: poem::web::Data<&ProxyState>,
) -> poem::Response {
    use std::sync::atomic::Ordering;
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let body = body.into_vec().await.unwrap_or_default();
    let method = reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
    let mut b = st
        .http
        .request(method, format!("{}{}", st.target, path))
        .body(body);
    for (k, v) in req.headers() {
        if k != "host" && k != "content-length" {
            b = b.header(k.as_str(), v.as_bytes());
        }
    }
    let stall = path.contains(&st.needle)
        && st
            .remaining
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let resp = b.send().await;
    if stall {
        st.stalled.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(120)).await;
    }
    match resp {
        Ok(r) => {
            let status = r.status().as_u16();
            let bytes = r.bytes().await.unwrap_or_default();
            poem::Response::builder()
                .status(poem::http::StatusCode::from_u16(status).unwrap())
                .content_type("application/json")
                .body(bytes.to_vec())
        }
        Err(_) => poem::Response::builder()
            .status(poem::http::StatusCode::BAD_GATEWAY)
            .finish(),
    }
}

impl StallingProxy {
    pub async fn start(target: &str, needle: &str, stall: usize) -> Self {
        sightline::install_crypto_provider();
        use poem::listener::{Acceptor, Listener};
        let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let stalled = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let st = ProxyState {
            target: target.trim_end_matches('/').to_owned(),
            needle: needle.to_owned(),
            remaining: std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(stall)),
            stalled: stalled.clone(),
            http: reqwest::Client::new(),
        };
        let stop = tokio_util::sync::CancellationToken::new();
        let app = poem::EndpointExt::data(poem::Route::new().at("/*path", proxy), st);
        let s = stop.clone();
        tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor)
                .run_with_graceful_shutdown(app, s.cancelled_owned(), Some(Duration::from_secs(1)))
                .await;
        });
        Self {
            addr,
            stop,
            stalled,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for StallingProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
