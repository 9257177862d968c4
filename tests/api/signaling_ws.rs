//! WebSocket-level tests of the signaling protocol against the real app on port 0:
//! credentials, close codes for bad input, rate limit, takeover, roles, ends, presence.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sightline::config::SignalingConfig;
use sightline::{Application, Config};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const WAIT: Duration = Duration::from_secs(10);

struct Call {
    app: Application,
    _data: tempfile::TempDir,
    session_id: String,
    agent_token: String,
    customer_token: String,
}

async fn setup(signaling: SignalingConfig) -> Call {
    setup_with(signaling, 12 * 3600).await
}

async fn setup_with(signaling: SignalingConfig, turn_ttl_secs: u64) -> Call {
    setup_full(signaling, turn_ttl_secs, Default::default()).await
}

/// The peer-to-peer mesh's own semantics (hidden entries): the media engine stays out.
async fn setup_p2p(signaling: SignalingConfig) -> Call {
    let media = sightline::media::MediaSettings {
        mode: sightline::media::MediaMode::P2p,
        ..Default::default()
    };
    setup_full(signaling, 12 * 3600, media).await
}

async fn setup_full(
    signaling: SignalingConfig,
    turn_ttl_secs: u64,
    media: sightline::media::MediaSettings,
) -> Call {
    let data = tempfile::tempdir().expect("tempdir");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.path().to_owned(),
        signaling,
        turn: sightline::relay::TurnSettings {
            enabled: false,
            credential_ttl_secs: turn_ttl_secs,
            ..Default::default()
        },
        ice: sightline::config::IceConfig {
            turn_urls: vec!["turn:turn.test:3478?transport=udp".into()],
            ..Default::default()
        },
        media,
        ..Config::default()
    };
    let app = Application::build(config).await.expect("app");
    let v: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", app.base_url()))
        .bearer_auth(app.bootstrap_key().expect("key"))
        .json(&json!({
            "conversation": {"platform": "test", "id": "c-1"},
            "agent": {"id": "a-1", "name": "Ana"},
            "customer": {"name": "Sam"},
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let token = |k: &str| {
        v[k].as_str()
            .expect(k)
            .rsplit('/')
            .next()
            .expect("token")
            .to_owned()
    };
    Call {
        session_id: v["id"].as_str().expect("id").to_owned(),
        agent_token: token("agent_url"),
        customer_token: token("customer_url"),
        app,
        _data: data,
    }
}

impl Call {
    async fn connect_info(&self, token: &str) -> (u16, Value) {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/join/{token}/connect",
                self.app.base_url()
            ))
            .send()
            .await
            .expect("connect");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn credential(&self, token: &str) -> String {
        let (status, v) = self.connect_info(token).await;
        assert_eq!(status, 200, "{v}");
        v["credential"].as_str().expect("credential").to_owned()
    }

    async fn socket(&self) -> Ws {
        let url = format!("ws://{}/api/v1/ws", self.app.http_addr());
        tokio_tungstenite::connect_async(url).await.expect("ws").0
    }

    /// A socket that has joined as the link's participant; returns it and `joined`.
    async fn join(&self, token: &str, instance: &str) -> (Ws, Value) {
        let credential = self.credential(token).await;
        let mut ws = self.socket().await;
        send(
            &mut ws,
            json!({"type": "join", "v": 2, "credential": credential, "instance": instance}),
        )
        .await;
        let joined = next_json(&mut ws).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        (ws, joined)
    }

    async fn status(&self) -> String {
        let v: Value = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/sessions/{}",
                self.app.base_url(),
                self.session_id
            ))
            .bearer_auth(self.app.bootstrap_key().expect("key"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        v["status"].as_str().unwrap_or_default().to_owned()
    }

    /// Polls the session status until it is `want` (bounded by a deadline).
    async fn wait_status(&self, want: &str) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let s = self.status().await;
            if s == want {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "status stayed {s}, wanted {want}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::text(v.to_string())).await.expect("send");
}

/// The next text message as JSON (pings skipped); panics on close or timeout.
async fn next_json(ws: &mut Ws) -> Value {
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

/// Reads until the close frame and returns its code (0 if the socket just ended).
async fn close_code(ws: &mut Ws) -> u16 {
    for _ in 0..10_000 {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("timed out waiting for a close");
        match m {
            Some(Ok(Message::Close(Some(f)))) => return u16::from(f.code),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 0,
            Some(Ok(_)) => continue,
        }
    }
    panic!("no close frame");
}

#[tokio::test]
async fn join_signal_and_presence_drive_the_session() {
    let c = setup(SignalingConfig::default()).await;
    let (info_status, info) = c.connect_info(&c.agent_token).await;
    assert_eq!(info_status, 200);
    assert_eq!(info["participant"]["role"], "agent");
    assert_eq!(info["ice_transport_policy"], "all");
    let (mut agent, joined) = c.join(&c.agent_token, "a1").await;
    assert_eq!(joined["roster"], json!([]));
    assert_eq!(joined["lobby"], false);
    assert_eq!(joined["role"], "agent");
    let agent_id = joined["participant_id"].as_str().expect("id").to_owned();
    c.wait_status("waiting").await;
    let (mut customer, joined) = c.join(&c.customer_token, "c1").await;
    let customer_id = joined["participant_id"].as_str().expect("id").to_owned();
    let seen = &joined["roster"][0];
    assert_eq!(seen["id"], agent_id.as_str());
    assert_eq!(seen["role"], "agent");
    assert_eq!(seen["name"], "Ana");
    assert_eq!(seen["send"], json!({"audio": true, "video": true}));
    let pj = next_json(&mut agent).await;
    assert_eq!(pj["type"], "participant_joined");
    assert_eq!(pj["participant"]["instance"], "c1");
    assert_eq!(pj["participant"]["id"], customer_id.as_str());
    // One side of the pair is polite, the other not.
    assert_ne!(pj["participant"]["polite"], seen["polite"]);
    c.wait_status("active").await;

    send(
        &mut agent,
        json!({"type": "offer", "to": customer_id, "sdp": "v=0 fake"}),
    )
    .await;
    let offer = next_json(&mut customer).await;
    assert_eq!(
        offer,
        json!({"type": "offer", "from": agent_id, "sdp": "v=0 fake", "restart": false})
    );
    send(
        &mut customer,
        json!({"type": "candidate", "to": agent_id, "candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}),
    )
    .await;
    assert_eq!(next_json(&mut agent).await["type"], "candidate");
    send(
        &mut customer,
        json!({"type": "media", "audio": false, "video": true}),
    )
    .await;
    let m = next_json(&mut agent).await;
    assert_eq!(m["type"], "participant_updated");
    assert_eq!(
        m["participant"]["media"],
        json!({"audio": false, "video": true})
    );
    send(&mut customer, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut customer).await["type"], "pong");

    // The customer's socket drops: reconnecting now, back within the grace period.
    drop(customer);
    let m = next_json(&mut agent).await;
    assert_eq!(m["type"], "participant_updated");
    assert_eq!(m["participant"]["state"], "reconnecting");
    let (_customer, joined) = c.join(&c.customer_token, "c1").await;
    assert_eq!(joined["took_over"], false);
    // The same page came back: updated (keep the connection), not joined.
    let m = next_json(&mut agent).await;
    assert_eq!(m["type"], "participant_updated");
    assert_eq!(m["participant"]["state"], "connected");
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn bad_credentials_and_bad_input_close_with_codes() {
    let c = setup(SignalingConfig::default()).await;
    let cases: Vec<(Value, u16)> = vec![
        (
            json!({"type": "join", "v": 2, "credential": "forged", "instance": "x"}),
            4401,
        ),
        // A join-link token is not a connection credential.
        (
            json!({"type": "join", "v": 2, "credential": c.agent_token, "instance": "x"}),
            4401,
        ),
        // A version-1 page (from before the roster) is told to reload.
        (
            json!({"type": "join", "v": 1, "credential": "x", "instance": "x"}),
            4406,
        ),
        (
            json!({"type": "join", "v": 3, "credential": "x", "instance": "x"}),
            4406,
        ),
        (json!({"type": "ping"}), 4401),
        (json!({"type": "launch"}), 4400),
    ];
    for (msg, code) in cases {
        let mut ws = c.socket().await;
        send(&mut ws, msg.clone()).await;
        assert_eq!(close_code(&mut ws).await, code, "{msg}");
    }
    let mut ws = c.socket().await;
    ws.send(Message::text("not json")).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 4400);
    let mut ws = c.socket().await;
    ws.send(Message::binary(vec![1, 2, 3])).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 4400);

    // After joining: oversize, garbage, a second join.
    let (mut ws, _) = c.join(&c.agent_token, "a").await;
    let big = format!(
        r#"{{"type":"offer","to":"x","sdp":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    ws.send(Message::text(big)).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 1009);
    let (mut ws, _) = c.join(&c.agent_token, "a").await;
    ws.send(Message::text("{")).await.expect("send");
    assert_eq!(close_code(&mut ws).await, 4400);
    let (mut ws, _) = c.join(&c.agent_token, "a").await;
    send(
        &mut ws,
        json!({"type": "join", "v": 2, "credential": "x", "instance": "y"}),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 4400);
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn frames_over_the_transport_limit_close_with_1009() {
    let c = setup(SignalingConfig::default()).await;
    // 64 KiB is the message limit, four times that the transport's: above it the frame is
    // refused from its header, and the page must still be told 1009, not see 1006.
    let big = format!(r#"{{"type":"offer","sdp":"{}"}}"#, "a".repeat(300 * 1024));
    let mut ws = c.socket().await;
    let _ = ws.send(Message::text(big.clone())).await;
    assert_eq!(close_code(&mut ws).await, 1009, "before join");
    let (mut ws, _) = c.join(&c.agent_token, "a").await;
    let _ = ws.send(Message::text(big)).await;
    assert_eq!(close_code(&mut ws).await, 1009, "after join");
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_peer_that_stops_answering_pings_is_closed() {
    let c = setup(SignalingConfig {
        ping_secs: 1,
        ..SignalingConfig::default()
    })
    .await;
    let (mut agent, _) = c.join(&c.agent_token, "a").await;
    let (mut customer, _) = c.join(&c.customer_token, "c").await;
    // The agent's socket stops reading, so it answers no pings (a half-open peer looks
    // the same): after three ping intervals without a word the server drops it, and the
    // customer, who keeps answering, hears that the agent is reconnecting.
    let started = tokio::time::Instant::now();
    let m = next_json(&mut customer).await;
    assert_eq!(m["type"], "participant_updated", "{m}");
    assert_eq!(m["participant"]["state"], "reconnecting");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "{took:?}"
    );
    // The silent socket was closed with 4408 (a client that queued pongs meanwhile may
    // see the reset before the close frame).
    let code = close_code(&mut agent).await;
    assert!(code == 4408 || code == 0, "{code}");
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn floods_are_rate_limited() {
    let c = setup(SignalingConfig {
        rate_per_sec: 5,
        rate_burst: 20,
        ..SignalingConfig::default()
    })
    .await;
    let (mut ws, _) = c.join(&c.agent_token, "a").await;
    for _ in 0..100 {
        if ws.send(Message::text(r#"{"type":"ping"}"#)).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut ws).await, 4429);
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_second_connection_takes_over() {
    let c = setup(SignalingConfig::default()).await;
    let (mut agent, _) = c.join(&c.agent_token, "a").await;
    let (mut first, _) = c.join(&c.customer_token, "tab1").await;
    assert_eq!(next_json(&mut agent).await["type"], "participant_joined");
    let (_second, joined) = c.join(&c.customer_token, "tab2").await;
    assert_eq!(joined["took_over"], true);
    assert_eq!(close_code(&mut first).await, 4409);
    let pj = next_json(&mut agent).await;
    assert_eq!(pj["type"], "participant_joined");
    assert_eq!(pj["participant"]["instance"], "tab2");
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn only_the_agent_ends_and_then_links_are_dead() {
    let c = setup(SignalingConfig::default()).await;
    let (mut agent, _) = c.join(&c.agent_token, "a").await;
    let (mut customer, _) = c.join(&c.customer_token, "c").await;
    assert_eq!(next_json(&mut agent).await["type"], "participant_joined");
    send(&mut customer, json!({"type": "end"})).await;
    let e = next_json(&mut customer).await;
    assert_eq!(e["type"], "error");
    assert_eq!(e["code"], "forbidden");
    send(&mut agent, json!({"type": "end"})).await;
    for ws in [&mut agent, &mut customer] {
        let m = next_json(ws).await;
        assert_eq!(m["type"], "ended", "{m}");
        assert_eq!(close_code(ws).await, 4410);
    }
    assert_eq!(c.status().await, "ended");
    assert_eq!(c.connect_info(&c.customer_token).await.0, 410);
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn rest_end_reaches_live_sockets_and_grace_expiry_means_left() {
    let c = setup(SignalingConfig {
        grace_secs: 2,
        ..SignalingConfig::default()
    })
    .await;
    let (mut agent, _) = c.join(&c.agent_token, "a").await;
    let (customer, _) = c.join(&c.customer_token, "c").await;
    assert_eq!(next_json(&mut agent).await["type"], "participant_joined");
    c.wait_status("active").await;
    drop(customer);
    assert_eq!(next_json(&mut agent).await["type"], "participant_updated");
    let left = next_json(&mut agent).await;
    assert_eq!(left["type"], "participant_left");
    assert_eq!(left["reason"], "timeout");
    c.wait_status("waiting").await;

    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/sessions/{}/end",
            c.app.base_url(),
            c.session_id
        ))
        .bearer_auth(c.app.bootstrap_key().expect("key"))
        .send()
        .await
        .expect("end");
    assert_eq!(r.status(), 200);
    assert_eq!(next_json(&mut agent).await["type"], "ended");
    assert_eq!(close_code(&mut agent).await, 4410);
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn join_page_is_strict_and_assets_are_immutable() {
    let c = setup(SignalingConfig::default()).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/j/{}", c.app.base_url(), c.customer_token))
        .header("accept-language", "de-DE,de;q=0.9")
        .send()
        .await
        .expect("page");
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    let csp = h["content-security-policy"].to_str().expect("csp");
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["cache-control"], "no-store");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("<html lang=\"de\" dir=\"ltr\">"),
        "language from Accept-Language"
    );
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("src=\"//"));
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/static/"))
        .collect();
    // join.css, i18n.js (English), join.js and this page's language only.
    assert_eq!(assets.len(), 4, "{assets:?}");
    assert!(
        assets.iter().any(|a| a.ends_with("/i18n/de.js")),
        "{assets:?}"
    );
    assert!(
        !assets.iter().any(|a| a.ends_with("/i18n/es.js")),
        "{assets:?}"
    );
    for a in &assets {
        let r = client
            .get(format!("{}{a}", c.app.base_url()))
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{a}");
        assert_eq!(
            r.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(r.headers().get("content-encoding").is_none(), "{a}");
        let plain = r.bytes().await.expect("body");
        // The same file compressed for a client that accepts gzip.
        let r = client
            .get(format!("{}{a}", c.app.base_url()))
            .header("accept-encoding", "br, gzip;q=0.8")
            .send()
            .await
            .expect("asset");
        assert_eq!(r.status(), 200, "{a}");
        assert_eq!(r.headers()["content-encoding"], "gzip", "{a}");
        assert_eq!(r.headers()["vary"], "accept-encoding", "{a}");
        let z = r.bytes().await.expect("body");
        assert!(
            z.len() < plain.len() / 2,
            "{a}: {} of {}",
            z.len(),
            plain.len()
        );
        let mut unzipped = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&z[..]), &mut unzipped)
            .expect("gunzip");
        assert_eq!(unzipped, plain, "{a}");
    }
    // A stale hash is not served (it would be cached forever with the wrong content).
    let stale = assets[0].replacen("/static/", "/static/000000000000", 1);
    let r = client
        .get(format!("{}{stale}", c.app.base_url()))
        .send()
        .await
        .expect("asset");
    assert_eq!(r.status(), 404);
    // Only plain names, at most one folder deep: nothing outside the embedded assets.
    let hash = assets[0].split('/').nth(2).expect("hash");
    // Sent as raw bytes: an HTTP client would resolve the dot segments itself.
    let addr = c.app.base_url().trim_start_matches("http://").to_owned();
    for path in [
        "i18n/../join.js",
        "../../Cargo.toml",
        "i18n/%2e%2e/join.js",
        "i18n/.hidden",
        "a/b/c.js",
        "i18n/xx.js",
    ] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut sock = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let req = format!(
            "GET /static/{hash}/{path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n"
        );
        sock.write_all(req.as_bytes()).await.expect("write");
        let mut head = vec![0; 12];
        sock.read_exact(&mut head).await.expect("read");
        assert_eq!(&head[9..12], b"404", "{path}");
    }
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn turn_credentials_are_renewed_over_signaling_before_they_expire() {
    // The shortest lifetime the configuration accepts; renewal comes at half of it.
    let c = setup_with(SignalingConfig::default(), 60).await;
    let (_, info) = c.connect_info(&c.customer_token).await;
    let first = info["ice_servers"].clone();
    let (mut ws, _) = c.join(&c.customer_token, "c").await;
    let started = std::time::Instant::now();
    let msg = loop {
        let m = tokio::time::timeout(Duration::from_secs(40), ws.next())
            .await
            .expect("renewal within 40 s")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "ice_servers" {
                break v;
            }
        }
    };
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(25),
        "renewed after {waited:?}"
    );
    assert_eq!(msg["expires_in"], 60);
    let turn = |list: &Value| {
        list.as_array()
            .expect("servers")
            .iter()
            .find(|s| {
                s["urls"][0]
                    .as_str()
                    .is_some_and(|u| u.starts_with("turn:"))
            })
            .cloned()
            .expect("a TURN entry")
    };
    let (old, new) = (turn(&first), turn(&msg["ice_servers"]));
    let expiry = |v: &Value| -> u64 {
        let user = v["username"].as_str().expect("username");
        user.split(':')
            .next()
            .expect("expiry")
            .parse()
            .expect("number")
    };
    assert!(
        expiry(&new) > expiry(&old),
        "a later expiry: {old} then {new}"
    );
    assert_ne!(old["credential"], new["credential"]);
    c.app.shutdown().await.expect("shutdown");
}

impl Call {
    /// Invites a participant through the REST API; returns (participant id, link token).
    async fn invite(&self, body: Value) -> (String, String) {
        let r = reqwest::Client::new()
            .post(format!(
                "{}/api/v1/sessions/{}/participants",
                self.app.base_url(),
                self.session_id
            ))
            .bearer_auth(self.app.bootstrap_key().expect("key"))
            .json(&body)
            .send()
            .await
            .expect("invite");
        assert_eq!(r.status(), 201);
        let v: Value = r.json().await.expect("json");
        let token = v["join_url"]
            .as_str()
            .expect("url")
            .rsplit('/')
            .next()
            .expect("token")
            .to_owned();
        (v["participant_id"].as_str().expect("id").to_owned(), token)
    }

    async fn api_post(&self, path: &str, body: Value) -> reqwest::StatusCode {
        reqwest::Client::new()
            .post(format!(
                "{}/api/v1/sessions/{}{path}",
                self.app.base_url(),
                self.session_id
            ))
            .bearer_auth(self.app.bootstrap_key().expect("key"))
            .json(&body)
            .send()
            .await
            .expect("post")
            .status()
    }

    async fn event_types(&self) -> Vec<String> {
        let v: Value = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/sessions/{}/events",
                self.app.base_url(),
                self.session_id
            ))
            .bearer_auth(self.app.bootstrap_key().expect("key"))
            .send()
            .await
            .expect("events")
            .json()
            .await
            .expect("json");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
            .collect()
    }
}

/// Reads messages until one of type `t` arrives (skipping others) and returns it.
async fn until(ws: &mut Ws, t: &str) -> Value {
    for _ in 0..20 {
        let m = next_json(ws).await;
        if m["type"] == t {
            return m;
        }
    }
    panic!("no {t} message");
}

#[tokio::test]
async fn four_participants_roles_and_a_hidden_supervisor() {
    let c = setup_p2p(SignalingConfig::default()).await;
    let (expert_id, expert_token) = c.invite(json!({"role": "expert", "name": "Kim"})).await;
    let (sup_id, sup_token) = c.invite(json!({"role": "supervisor", "name": "Sue"})).await;
    let (mut agent, _) = c.join(&c.agent_token, "a").await;
    let (mut customer, joined) = c.join(&c.customer_token, "c").await;
    let customer_id = joined["participant_id"].as_str().expect("id").to_owned();
    assert_eq!(
        until(&mut agent, "participant_joined").await["participant"]["role"],
        "customer"
    );
    let (mut expert, joined) = c.join(&expert_token, "e").await;
    assert_eq!(joined["role"], "expert");
    assert_eq!(joined["roster"].as_array().expect("roster").len(), 2);
    for ws in [&mut agent, &mut customer] {
        let pj = until(ws, "participant_joined").await;
        assert_eq!(pj["participant"]["id"], expert_id.as_str());
        assert_eq!(pj["participant"]["name"], "Kim");
    }
    // The supervisor joins listening: it receives from all three and sends nothing.
    let (mut sup, joined) = c.join(&sup_token, "s").await;
    assert_eq!(joined["mode"], "listen");
    let roster = joined["roster"].as_array().expect("roster");
    assert_eq!(roster.len(), 3);
    for e in roster {
        assert_eq!(e["send"], json!({"audio": false, "video": false}), "{e}");
        assert_eq!(e["receive"], true);
    }
    let seen_by_agent = until(&mut agent, "participant_joined").await;
    assert_eq!(seen_by_agent["participant"]["role"], "supervisor");
    // The customer and the expert get a hidden entry: no role, no name.
    for ws in [&mut customer, &mut expert] {
        let pj = until(ws, "participant_joined").await;
        let e = &pj["participant"];
        assert_eq!(e["hidden"], true, "{pj}");
        assert!(e.get("role").is_none() && e.get("name").is_none(), "{pj}");
        assert!(!pj.to_string().contains("Sue"), "{pj}");
        assert_eq!(e["send"], json!({"audio": true, "video": true}));
    }
    // Addressed signaling: the agent offers to the supervisor, only the supervisor gets it.
    send(
        &mut agent,
        json!({"type": "offer", "to": sup_id, "sdp": "v=0 to-sup"}),
    )
    .await;
    let offer = until(&mut sup, "offer").await;
    assert_eq!(offer["sdp"], "v=0 to-sup");
    // The customer may not address a pair it does not have (nobody) nor end the call.
    send(
        &mut customer,
        json!({"type": "offer", "to": "nobody", "sdp": "v=0"}),
    )
    .await;
    assert_eq!(until(&mut customer, "error").await["code"], "forbidden");
    send(&mut expert, json!({"type": "end"})).await;
    assert_eq!(until(&mut expert, "error").await["code"], "forbidden");

    // Whisper through the REST API: agents now receive the supervisor's audio; nothing
    // changes on the customer's page.
    let path = format!("/participants/{sup_id}/mode");
    assert!(
        c.api_post(&path, json!({"mode": "whisper"}))
            .await
            .is_success()
    );
    let up = until(&mut agent, "participant_updated").await;
    assert_eq!(up["participant"]["mode"], "whisper");
    assert_eq!(up["participant"]["receive"], true);
    let own = until(&mut sup, "joined").await;
    let to_customer = own["roster"]
        .as_array()
        .expect("roster")
        .iter()
        .find(|e| e["id"] == customer_id.as_str())
        .cloned()
        .expect("customer entry");
    assert_eq!(to_customer["send"], json!({"audio": false, "video": false}));
    // A fifth visible participant does not fit the mesh: a barging supervisor is visible,
    // so a second expert is refused with 4413 once the supervisor barges.
    send(
        &mut sup,
        json!({"type": "set_mode", "participant_id": sup_id, "mode": "barge"}),
    )
    .await;
    let up = until(&mut customer, "participant_updated").await;
    assert_eq!(up["participant"]["role"], "supervisor");
    assert_eq!(up["participant"]["name"], "Sue");
    let (_e2, e2_token) = c.invite(json!({"role": "expert", "name": "Lee"})).await;
    let credential = c.credential(&e2_token).await;
    let mut ws = c.socket().await;
    send(
        &mut ws,
        json!({"type": "join", "v": 2, "credential": credential, "instance": "e2"}),
    )
    .await;
    assert_eq!(close_code(&mut ws).await, 4413);
    // Removing the expert through the API closes their socket with 4403.
    let r = reqwest::Client::new()
        .delete(format!(
            "{}/api/v1/sessions/{}/participants/{expert_id}",
            c.app.base_url(),
            c.session_id
        ))
        .bearer_auth(c.app.bootstrap_key().expect("key"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 200);
    assert_eq!(close_code(&mut expert).await, 4403);
    let left = until(&mut customer, "participant_left").await;
    assert_eq!(left["reason"], "removed");
    let types = c.event_types().await;
    assert!(
        types.iter().any(|t| t == "participant.mode_changed"),
        "{types:?}"
    );
    assert!(
        types.iter().any(|t| t == "participant.removed"),
        "{types:?}"
    );
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn lobby_admit_and_decline() {
    let c = setup(SignalingConfig::default()).await;
    // Sessions made by `setup` have no lobby; make one that has.
    let v: Value = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", c.app.base_url()))
        .bearer_auth(c.app.bootstrap_key().expect("key"))
        .json(&json!({
            "conversation": {"platform": "test", "id": "c-lobby"},
            "agent": {"id": "a-1", "name": "Ana"},
            "customer": {"name": "Sam"},
            "lobby": true,
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    assert_eq!(v["lobby"], true);
    let token = |k: &str| {
        v[k].as_str()
            .expect(k)
            .rsplit('/')
            .next()
            .expect("t")
            .to_owned()
    };
    let (agent_token, customer_token) = (token("agent_url"), token("customer_url"));
    let (_, info) = c.connect_info(&customer_token).await;
    assert_eq!(info["session"]["lobby"], true);
    let (mut agent, _) = c.join(&agent_token, "a").await;
    let (mut customer, joined) = c.join(&customer_token, "c1").await;
    assert_eq!(joined["lobby"], true);
    assert_eq!(joined["roster"], json!([]));
    let customer_id = joined["participant_id"].as_str().expect("id").to_owned();
    let lobby = until(&mut agent, "lobby").await;
    assert_eq!(lobby["waiting"][0]["name"], "Sam");
    // Nothing leaves the lobby.
    send(
        &mut customer,
        json!({"type": "offer", "to": "x", "sdp": "v=0"}),
    )
    .await;
    assert_eq!(until(&mut customer, "error").await["code"], "forbidden");
    send(
        &mut agent,
        json!({"type": "lobby_message", "text": "Two minutes, please"}),
    )
    .await;
    assert_eq!(
        until(&mut customer, "lobby_message").await["text"],
        "Two minutes, please"
    );
    send(
        &mut agent,
        json!({"type": "admit", "participant_id": customer_id}),
    )
    .await;
    let joined = until(&mut customer, "joined").await;
    assert_eq!(joined["lobby"], false);
    assert_eq!(joined["roster"][0]["role"], "agent");
    assert_eq!(
        until(&mut agent, "participant_joined").await["participant"]["id"],
        customer_id.as_str()
    );
    // The customer declines (from the call): the agent sees the reason at once.
    send(
        &mut customer,
        json!({"type": "decline", "reason": "not_now", "message": "after 5pm"}),
    )
    .await;
    assert_eq!(close_code(&mut customer).await, 1000);
    let d = until(&mut agent, "declined").await;
    assert_eq!(d["reason"], "not_now");
    assert_eq!(d["message"], "after 5pm");
    assert_eq!(d["name"], "Sam");
    let events: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/sessions/{}/events",
            c.app.base_url(),
            v["id"].as_str().expect("id")
        ))
        .bearer_auth(c.app.bootstrap_key().expect("key"))
        .send()
        .await
        .expect("events")
        .json()
        .await
        .expect("json");
    let types: Vec<&str> = events["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    for t in [
        "participant.waiting",
        "participant.admitted",
        "participant.declined",
    ] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    c.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn transfer_hands_the_call_to_a_new_agent() {
    let c = setup(SignalingConfig {
        transfer_warm_secs: 1,
        ..SignalingConfig::default()
    })
    .await;
    let (mut old, joined) = c.join(&c.agent_token, "a").await;
    let old_id = joined["participant_id"].as_str().expect("id").to_owned();
    let (mut customer, _) = c.join(&c.customer_token, "c").await;
    until(&mut old, "participant_joined").await;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/api/v1/sessions/{}/transfer",
            c.app.base_url(),
            c.session_id
        ))
        .bearer_auth(c.app.bootstrap_key().expect("key"))
        .json(&json!({"agent": {"id": "a-2", "name": "Bo"}}))
        .send()
        .await
        .expect("transfer");
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    let new_token = v["join_url"]
        .as_str()
        .expect("url")
        .rsplit('/')
        .next()
        .expect("token")
        .to_owned();
    let (mut new, joined) = c.join(&new_token, "b").await;
    assert_eq!(joined["roster"].as_array().expect("roster").len(), 2);
    let t = until(&mut old, "transferred").await;
    assert_eq!(t["to"]["name"], "Bo");
    // Warm: the old agent is taken out after a second; the customer stays, sees them go.
    assert_eq!(close_code(&mut old).await, 4411);
    let left = until(&mut customer, "participant_left").await;
    assert_eq!(left["participant_id"], old_id.as_str());
    assert_eq!(left["reason"], "transferred");
    assert_eq!(
        until(&mut new, "participant_left").await["reason"],
        "transferred"
    );
    assert_eq!(c.connect_info(&c.agent_token).await.0, 410);
    c.wait_status("active").await;
    let types = c.event_types().await;
    for t in ["session.transfer_started", "session.transferred"] {
        assert!(types.iter().any(|x| x == t), "{t} in {types:?}");
    }
    c.app.shutdown().await.expect("shutdown");
}

/// One page of a routed call: its signaling socket, its webrtc-rs engine connection and
/// every message it was sent.
struct RoutedPage {
    ws: Ws,
    media: crate::support_media::Participant,
    seen: Vec<Value>,
}

impl RoutedPage {
    /// Reads what is waiting on the socket; answers the engine's offers.
    async fn pump(&mut self) {
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(Duration::from_millis(2), self.ws.next()).await
        {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "media_offer" {
                let answer = self.media.answer(v["sdp"].as_str().expect("sdp")).await;
                send(&mut self.ws, json!({"type": "media_answer", "sdp": answer})).await;
            }
            self.seen.push(v);
        }
    }
}

async fn run_pages(pages: &mut [&mut RoutedPage], dur: Duration) {
    let end = tokio::time::Instant::now() + dur;
    while tokio::time::Instant::now() < end {
        for p in pages.iter_mut() {
            p.pump().await;
            p.media.send().await;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_supervisor_routes_the_call_through_the_engine() {
    let media = sightline::media::MediaSettings {
        mode: sightline::media::MediaMode::Auto,
        ..Default::default()
    };
    let c = setup_full(SignalingConfig::default(), 12 * 3600, media).await;
    let (sup_id, sup_token) = c.invite(json!({"role": "supervisor", "name": "Sue"})).await;
    let (agent_ws, joined) = c.join(&c.agent_token, "a").await;
    let agent_id = joined["participant_id"].as_str().expect("id").to_owned();
    let (customer_ws, joined) = c.join(&c.customer_token, "c").await;
    let customer_id = joined["participant_id"].as_str().expect("id").to_owned();
    assert!(joined.get("routed").is_none(), "two people: peer to peer");
    let mut agent = RoutedPage {
        ws: agent_ws,
        media: crate::support_media::Participant::new(&agent_id).await,
        seen: vec![],
    };
    let mut customer = RoutedPage {
        ws: customer_ws,
        media: crate::support_media::Participant::new(&customer_id).await,
        seen: vec![],
    };
    let (sup_ws, joined) = c.join(&sup_token, "s").await;
    assert_eq!(joined["routed"], true, "{joined}");
    let mut sup = RoutedPage {
        ws: sup_ws,
        media: crate::support_media::Participant::new(&sup_id).await,
        seen: vec![joined],
    };
    run_pages(
        &mut [&mut agent, &mut customer, &mut sup],
        Duration::from_secs(5),
    )
    .await;
    for p in [&agent, &customer] {
        assert!(
            p.seen
                .iter()
                .any(|m| m["type"] == "routed" && m["routed"] == true)
        );
        assert!(p.seen.iter().any(|m| m["type"] == "media_offer"));
    }
    // The supervisor decodes both; the agent and the customer get each other.
    for from in [&agent_id, &customer_id] {
        assert!(sup.media.received(from, "video") > 10, "sup ← {from}");
        assert!(sup.media.received(from, "audio") > 10, "sup ← {from}");
    }
    assert!(agent.media.received(&customer_id, "video") > 10);
    assert!(customer.media.received(&agent_id, "video") > 10);
    // The customer's page and engine connection carry no trace of the supervisor.
    let all = serde_json::to_string(&customer.seen).expect("json");
    assert!(!all.contains(&sup_id), "{all}");
    let sdp = customer
        .media
        .pc
        .remote_description()
        .await
        .expect("sdp")
        .sdp;
    assert!(!sdp.contains(&sup_id));
    assert_eq!(
        customer.media.sources(),
        vec![(agent_id.clone(), "audio"), (agent_id.clone(), "video")]
    );

    // Whisper: the agent hears the supervisor, the customer does not.
    let path = format!("/participants/{sup_id}/mode");
    assert!(
        c.api_post(&path, json!({"mode": "whisper"}))
            .await
            .is_success()
    );
    run_pages(
        &mut [&mut agent, &mut customer, &mut sup],
        Duration::from_secs(3),
    )
    .await;
    assert!(agent.media.received(&sup_id, "audio") > 10);
    assert_eq!(customer.media.received(&sup_id, "audio"), 0);
    let all = serde_json::to_string(&customer.seen).expect("json");
    assert!(!all.contains(&sup_id));
    // The engine's counters reach /metrics.
    let m = reqwest::get(format!("{}/metrics", c.app.base_url()))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        m.contains("sightline_media{counter=\"routed_participants\"} 3"),
        "{m}"
    );
    let forwarded = m
        .lines()
        .find(|l| l.starts_with("sightline_media{counter=\"forwarded_packets\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(forwarded > 500, "{forwarded}");
    for p in [&agent, &customer, &sup] {
        let _ = p.media.pc.close().await;
    }
}

#[tokio::test]
async fn a_session_can_ask_for_routed_media_and_bad_modes_are_refused() {
    let c = setup(SignalingConfig::default()).await;
    let post = |mode: &'static str| {
        let base = c.app.base_url();
        let key = c.app.bootstrap_key().expect("key").to_owned();
        async move {
            reqwest::Client::new()
                .post(format!("{base}/api/v1/sessions"))
                .bearer_auth(key)
                .json(&json!({
                    "conversation": {"platform": "test", "id": format!("m-{mode}")},
                    "agent": {"id": "a-1", "name": "Ana"},
                    "media_mode": mode,
                }))
                .send()
                .await
                .expect("post")
        }
    };
    let bad = post("sfu").await;
    assert!(bad.status().is_client_error(), "{}", bad.status());
    let r = post("routed").await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    let token = v["agent_url"]
        .as_str()
        .expect("agent_url")
        .rsplit('/')
        .next()
        .expect("token")
        .to_owned();
    let (mut ws, joined) = c.join(&token, "a").await;
    assert_eq!(joined["routed"], true, "{joined}");
    let offer = until(&mut ws, "media_offer").await;
    assert!(offer["sdp"].as_str().expect("sdp").contains("m=video"));
}
