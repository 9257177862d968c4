//! Browser end-to-end: the real app in-process on port 0, coturn on a free loopback port,
//! two headless Chromium processes (agent and customer, fake camera and microphone) driven
//! by `tests/browser/call.mjs`. Proves with `getStats()` on both sides that video frames
//! are decoded and keep rising and that audio arrives, relayed through TURN and direct;
//! then that a customer reload brings the call back and that the agent's end closes both
//! pages and kills the links. Screenshots land in `tests/artifacts/`.
//!
//! Group calls (protocol 2, a mesh of peer connections) are driven by
//! `tests/browser/group.mjs`: an invited expert, a supervisor the customer never sees, the
//! lobby, a declined call and a transfer, each relayed through coturn.

#[path = "api/support_outbox.rs"]
mod support_outbox;
#[path = "api/support_python.rs"]
mod support_python;

#[path = "api/support_chatwoot.rs"]
mod support_chatwoot;

#[path = "browser_call/recording_files.rs"]
mod recording_files;

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{Value, json};
use sightline::config::IceConfig;
use sightline::relay::TurnSettings;
use sightline::{Application, Config};

/// Browser tests take two Chromium processes each: run them one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TURN_SECRET: &str = "browser-test-turn-secret";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A loopback port free for both UDP and TCP right now.
fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port found");
}

/// coturn on loopback, killed (by pid) when dropped.
struct Coturn {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Coturn {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let relay_min = 20000 + (port % 100) * 200;
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--use-auth-secret",
                &format!("--static-auth-secret={TURN_SECRET}"),
                "--realm=sightline.test",
                "--listening-ip=127.0.0.1",
                &format!("--listening-port={port}"),
                "--relay-ip=127.0.0.1",
                &format!("--min-port={relay_min}"),
                &format!("--max-port={}", relay_min + 199),
                "--allow-loopback-peers",
                "--no-cli",
                "--no-tls",
                "--no-dtls",
                "--no-multicast-peers",
                "--simple-log",
                "--log-file=stdout",
                &format!("--pidfile={}", dir.path().join("turn.pid").display()),
                &format!("--userdb={}", dir.path().join("turndb").display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver (coturn) must be installed: scripts/setup-test-deps");
        let deadline = Instant::now() + Duration::from_secs(15);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "coturn did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_app(turn_port: u16, data: &Path) -> Application {
    start_app_with(turn_port, data, |_| {}).await
}

async fn start_app_with(
    turn_port: u16,
    data: &Path,
    tweak: impl FnOnce(&mut Config),
) -> Application {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.to_owned(),
        ice: IceConfig {
            turn_urls: vec![format!("turn:127.0.0.1:{turn_port}?transport=udp")],
            ..IceConfig::default()
        },
        // coturn stands in for the bundled server here; it shares the secret.
        turn: TurnSettings {
            enabled: false,
            secret: Some(SecretString::from(TURN_SECRET.to_owned())),
            ..TurnSettings::default()
        },
        ..Config::default()
    };
    tweak(&mut config);
    Application::build(config).await.expect("app starts")
}

/// The app with its own bundled TURN server on a free loopback port (loopback peers
/// allowed, as everything here is on 127.0.0.1).
async fn start_app_bundled(data: &Path) -> Application {
    start_app_bundled_with(data, |_| {}).await
}

async fn start_app_bundled_with(data: &Path, tweak: impl FnOnce(&mut Config)) -> Application {
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.to_owned(),
        turn: TurnSettings {
            enabled: true,
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            relay_ips: vec!["127.0.0.1".parse().expect("ip")],
            relay_ports: "0-0".into(),
            allow_peer: vec!["127.0.0.0/8".parse().expect("net")],
            ..TurnSettings::default()
        },
        ..Config::default()
    };
    tweak(&mut config);
    Application::build(config).await.expect("app starts")
}

async fn create_session(app: &Application, relay_only: bool) -> (String, String, String) {
    create_session_with(app, relay_only, false).await
}

async fn create_session_with(
    app: &Application,
    relay_only: bool,
    lobby: bool,
) -> (String, String, String) {
    create_session_full(app, relay_only, lobby, None).await
}

/// `media_mode`: the session's own (else the server's default, `auto`).
async fn create_session_full(
    app: &Application,
    relay_only: bool,
    lobby: bool,
    media_mode: Option<&str>,
) -> (String, String, String) {
    let key = app.bootstrap_key().expect("bootstrap key");
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", app.base_url()))
        .bearer_auth(key)
        .json(&json!({
            "conversation": {"platform": "test", "id": "conv-1"},
            "agent": {"id": "agent-1", "name": "Ana Agent"},
            "customer": {"name": "Sam Customer", "locale": "es"},
            "relay_only": relay_only,
            "lobby": lobby,
            "media_mode": media_mode,
        }))
        .send()
        .await
        .expect("create session");
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.expect("json");
    let s = |k: &str| v[k].as_str().expect(k).to_owned();
    (s("id"), s("agent_url"), s("customer_url"))
}

fn run_driver(args: Value) -> Value {
    run_script("call.mjs", args)
}

fn run_script(script: &str, args: Value) -> Value {
    let dir = root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "run scripts/setup-test-deps (npm ci in tests/browser) first"
    );
    let out = Command::new("node")
        .current_dir(&dir)
        .arg(script)
        .arg(args.to_string())
        .stderr(Stdio::inherit())
        .output()
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("driver said: {stdout}"));
    assert_eq!(v["ok"], true, "browser driver failed: {v:#}");
    v
}

fn assert_flowing(side: &str, m: &Value, relay: bool) {
    let (a, b) = (&m["first"], &m["second"]);
    let frames = (a["videoFrames"].as_u64(), b["videoFrames"].as_u64());
    let packets = (a["audioPackets"].as_u64(), b["audioPackets"].as_u64());
    assert!(
        matches!(frames, (Some(x), Some(y)) if x > 0 && y > x),
        "{side}: video frames not rising: {m}"
    );
    assert!(
        matches!(packets, (Some(x), Some(y)) if x > 0 && y > x),
        "{side}: audio packets not rising: {m}"
    );
    if relay {
        assert_eq!(b["local"], "relay", "{side}: local candidate {m}");
        assert_eq!(b["remote"], "relay", "{side}: remote candidate {m}");
    } else {
        assert_eq!(b["local"], "host", "{side}: expected a direct path {m}");
    }
}

fn artifacts() -> String {
    root().join("tests/artifacts").display().to_string()
}

async fn status_of(url: &str) -> u16 {
    reqwest::get(url).await.expect("get").status().as_u16()
}

/// The customer's pre-join page, with everything it loads before and during the pre-join
/// phase (HTML, join.js, join.css, i18n.js, its own language file, precheck.js), stays
/// under 60 KiB uncompressed in every language: `tests/browser/page_size.sh` against the
/// built binary measures it and fails over the budget. No browser needed.
#[test]
fn pre_join_page_stays_under_60_kib_in_every_language() {
    let out = Command::new("bash")
        .arg(root().join("tests/browser/page_size.sh"))
        .arg(env!("CARGO_BIN_EXE_sightline"))
        .stderr(Stdio::inherit())
        .output()
        .expect("bash runs page_size.sh");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(out.status.success(), "page_size.sh failed:\n{text}");
    assert!(text.contains("page_size: ok"), "{text}");
    for lang in ["en", "es", "de", "fr", "pt", "ar"] {
        let total = text
            .lines()
            .find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(lang)).then(|| w.next()?.parse::<u64>().ok())?
            })
            .unwrap_or_else(|| panic!("no total for {lang}:\n{text}"));
        assert!(total < 61_440, "{lang}: {total} bytes");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relayed_call_survives_reload_and_ends_for_both() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app(turn.port, data.path()).await;
    let (_id, agent_url, customer_url) = create_session(&app, true).await;
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
        "scenario": "full", "label": "relay",
    });
    let r = tokio::task::spawn_blocking(move || run_driver(args))
        .await
        .expect("driver");
    assert_flowing("agent", &r["agent"], true);
    assert_flowing("customer", &r["customer"], true);
    assert_flowing("agent after blip", &r["afterBlip"]["agent"], true);
    assert_flowing("customer after blip", &r["afterBlip"]["customer"], true);
    // The blip did not cost a new peer connection on either side.
    assert_eq!(
        r["afterBlip"]["agent"]["second"]["gen"],
        r["afterBlip"]["gensBefore"][0]
    );
    assert_eq!(
        r["afterBlip"]["customer"]["second"]["gen"],
        r["afterBlip"]["gensBefore"][1]
    );
    assert_flowing("agent after reload", &r["afterReload"]["agent"], true);
    assert_flowing("customer after reload", &r["afterReload"]["customer"], true);
    assert_eq!(r["mediaState"]["micPressed"], "true", "{r}");
    assert_eq!(r["mediaState"]["camPressed"], "true", "{r}");
    assert_eq!(r["ended"], true);
    // Both links are dead once the session has ended.
    assert_eq!(status_of(&agent_url).await, 410);
    assert_eq!(status_of(&customer_url).await, 410);
    eprintln!("first remote frame (relay): {}", r["firstFrame"]);
    app.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_call_flows_both_ways() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app(turn.port, data.path()).await;
    let (_id, agent_url, customer_url) = create_session(&app, false).await;
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
        "scenario": "call", "label": "direct",
    });
    let r = tokio::task::spawn_blocking(move || run_driver(args))
        .await
        .expect("driver");
    assert_flowing("agent", &r["agent"], false);
    assert_flowing("customer", &r["customer"], false);
    app.shutdown().await.expect("shutdown");
}

/// `cargo test --test browser_call -- --ignored bench --nocapture`: time from opening the
/// customer link (agent waiting) to the first decoded remote frame, relay forced, 5 runs,
/// through the bundled TURN server (`SIGHTLINE_BENCH_TURN=coturn` for coturn).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn bench_first_remote_frame() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let coturn = std::env::var("SIGHTLINE_BENCH_TURN").is_ok_and(|v| v == "coturn");
    let turn = coturn.then(Coturn::start);
    let app = match &turn {
        Some(t) => start_app(t.port, data.path()).await,
        None => start_app_bundled(data.path()).await,
    };
    let (_id, agent_url, customer_url) = create_session(&app, true).await;
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
        "scenario": "bench", "runs": 5, "timeoutMs": 180000,
    });
    let r = tokio::task::spawn_blocking(move || run_driver(args))
        .await
        .expect("driver");
    let mut open: Vec<f64> = r["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|x| x["customer"]["sinceOpen"].as_f64().expect("number"))
        .collect();
    open.sort_by(f64::total_cmp);
    let p50 = open[open.len() / 2];
    let max = open[open.len() - 1];
    println!(
        "first remote frame since opening the link, relay via {} (ms): runs={open:?} p50={p50:.0} max={max:.0}",
        if coturn { "coturn" } else { "bundled TURN" }
    );
    let mut join: Vec<f64> = r["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|x| x["customer"]["sinceJoin"].as_f64().expect("number"))
        .collect();
    join.sort_by(f64::total_cmp);
    println!(
        "first remote frame since clicking join (ms): runs={join:?} p50={:.0} max={:.0}",
        join[join.len() / 2],
        join[join.len() - 1]
    );
    println!("raw: {}", r["runs"]);
    app.shutdown().await.expect("shutdown");
}

/// The same call relayed by Sightline's own bundled TURN server instead of coturn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_relayed_by_the_bundled_turn_server() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled(data.path()).await;
    let (_id, agent_url, customer_url) = create_session(&app, true).await;
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
        "scenario": "call", "label": "bundled-turn",
    });
    let r = tokio::task::spawn_blocking(move || run_driver(args))
        .await
        .expect("driver");
    assert_flowing("agent", &r["agent"], true);
    assert_flowing("customer", &r["customer"], true);
    // The relay's own counters agree: media went through it, nobody was refused.
    let stats = app
        .state()
        .relay
        .as_ref()
        .expect("bundled relay")
        .server
        .stats();
    assert!(stats.relayed_packets > 500, "{stats:?}");
    assert_eq!(stats.auth_failures, 0, "{stats:?}");
    assert_eq!(stats.quota_refusals, 0, "{stats:?}");
    app.shutdown().await.expect("shutdown");
}

/// What a customer sees when the call cannot start as is: an in-app webview (offer to
/// open the real browser), blocked devices, no devices, a browser without WebRTC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guidance_when_the_call_cannot_start() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled(data.path()).await;
    let (_id, agent_url, customer_url) = create_session(&app, false).await;
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
        "scenario": "guidance",
    });
    let r = tokio::task::spawn_blocking(move || run_driver(args))
        .await
        .expect("driver");
    let p = &r["pages"];
    assert_eq!(p["webview"]["phase"], "blocked", "{p}");
    assert!(
        p["webview"]["openBrowser"]
            .as_str()
            .is_some_and(|h| h.starts_with("intent://")),
        "{p}"
    );
    assert_eq!(p["denied"]["phase"], "prejoin", "{p}");
    assert_eq!(p["denied"]["retry"], true, "{p}");
    assert_eq!(
        p["denied"]["join"], true,
        "joining without devices stays possible: {p}"
    );
    assert!(
        p["denied"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{p}"
    );
    assert_eq!(p["nodevice"]["phase"], "prejoin", "{p}");
    assert_eq!(p["nodevice"]["join"], true, "{p}");
    assert_eq!(p["nowebrtc"]["phase"], "blocked", "{p}");
    app.shutdown().await.expect("shutdown");
}

/// Enterprise networks often let only TCP out: the browsers are told only about the
/// bundled server's `?transport=tcp` URL, and the call still flows, relayed over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_relayed_over_tcp_only() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled_with(data.path(), |c| c.turn.advertise = vec!["tcp".into()]).await;
    let urls = &app.state().relay.as_ref().expect("relay").urls;
    assert!(
        urls.len() == 1 && urls[0].ends_with("?transport=tcp"),
        "{urls:?}"
    );
    let (_id, agent_url, customer_url) = create_session(&app, true).await;
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
        "scenario": "call", "label": "tcp-only",
    });
    let r = tokio::task::spawn_blocking(move || run_driver(args))
        .await
        .expect("driver");
    assert_flowing("agent", &r["agent"], true);
    assert_flowing("customer", &r["customer"], true);
    for side in ["agent", "customer"] {
        assert_eq!(
            r[side]["second"]["relayProtocol"], "tcp",
            "{side}: {}",
            r[side]
        );
    }
    let stats = app.state().relay.as_ref().expect("relay").server.stats();
    assert!(stats.relayed_packets > 500, "{stats:?}");
    app.shutdown().await.expect("shutdown");
}

/// The demo agent desktop (issue: the agent side): Start video in the widget, the link
/// appears in the pretend conversation, the customer opens it, both see each other, the
/// host page hears `customer-joined`, forged messages from a foreign origin are ignored,
/// and ending from the widget reaches the host page and the customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_page_from_start_video_to_ended() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled(data.path()).await;
    let args = json!({
        "demoUrl": format!("{}/demo", app.base_url()), "artifacts": artifacts(), "scenario": "demo",
    });
    let r = tokio::task::spawn_blocking(move || run_driver(args))
        .await
        .expect("driver");
    let customer_url = r["customerUrl"].as_str().expect("link in the conversation");
    assert!(
        customer_url.starts_with(&format!("{}/j/", app.base_url())),
        "{r}"
    );
    assert_eq!(r["panelEmbedded"], true, "{r}");
    assert_flowing("agent panel", &r["agent"], false);
    assert_flowing("customer", &r["customer"], false);
    // Forged messages changed nothing.
    let after = &r["afterForgery"];
    assert_eq!(after["panelEnded"], false, "{r}");
    assert_eq!(after["panelAudio"], true, "{r}");
    assert_eq!(after["customerPhase"], "call", "{r}");
    assert_ne!(after["widgetStatus"], "ended", "{r}");
    assert!(
        !after["host"]
            .as_array()
            .expect("events")
            .contains(&json!("ended")),
        "{r}"
    );
    assert_eq!(r["muteCommand"], true);
    // The host page saw the whole story, in order.
    let events: Vec<&str> = r["hostEvents"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    let pos = |e: &str| {
        events
            .iter()
            .position(|x| *x == e)
            .unwrap_or_else(|| panic!("{e} missing: {events:?}"))
    };
    assert!(
        pos("session-created") < pos("customer-joined"),
        "{events:?}"
    );
    assert!(pos("customer-joined") < pos("ended"), "{events:?}");
    assert_eq!(
        events.iter().filter(|e| **e == "ended").count(),
        1,
        "{events:?}"
    );
    assert_eq!(r["customerEnd"], "ended", "{r}");
    // And the link is dead now.
    assert_eq!(status_of(customer_url).await, 410);
    eprintln!(
        "demo: Start video → link in the conversation: {} ms",
        r["linkMs"]
    );
    app.shutdown().await.expect("shutdown");
}

// ---------- the Chatwoot dashboard app ----------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chatwoot_dashboard_app_in_an_iframe() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = Application::build(support_outbox::config(data.path()))
        .await
        .expect("app");
    let api = support_outbox::Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    // Chatwoot (the host page and the API) and a second origin that forges messages.
    let cw =
        support_chatwoot::Chatwoot::start(3, "bot-token", &[("agent-token", 5, "Ana Lima")]).await;
    let evil = support_chatwoot::Chatwoot::start(4, "x", &[]).await;
    let (st, i) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "cw", "kind": "chatwoot",
                   "config": {"base_url": cw.url(), "account_id": 3, "api_access_token": "bot-token"}}),
        )
        .await;
    assert_eq!(st, 201, "{i}");
    let app_url = i["chatwoot_app_url"].as_str().expect("app url");
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let host = format!(
        "{}/app-host?conversation=91&app={}&evil={}",
        cw.url(),
        enc(app_url),
        enc(&format!("{}/evil", evil.url()))
    );
    let args = json!({"hostUrl": host, "badToken": "wrong-token", "token": "agent-token",
                      "artifacts": artifacts()});
    let r = tokio::task::spawn_blocking(move || run_script("chatwoot_app.mjs", args))
        .await
        .expect("driver");
    assert_eq!(
        r["conversation"], "91",
        "context from Chatwoot received: {r}"
    );
    assert!(
        r["asked"].as_u64().unwrap_or(0) >= 1,
        "the app asked for it: {r}"
    );
    assert!(
        r["refusedMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("did not accept"),
        "{r}"
    );
    assert!(
        r["agentLine"]
            .as_str()
            .unwrap_or_default()
            .contains("Ana Lima"),
        "{r}"
    );
    assert!(
        r["popupUrl"].as_str().unwrap_or_default().contains("/j/"),
        "{r}"
    );
    assert_eq!(r["states"], json!(["none", "waiting", "ended"]), "{r}");
    assert_eq!(
        r["conversationAfter"], "91",
        "the forged context was ignored: {r}"
    );
    let (_, forged) = api
        .get("/api/v1/sessions?platform=chatwoot&conversation_id=666")
        .await;
    assert_eq!(
        forged["items"].as_array().map(Vec::len),
        Some(0),
        "{forged}"
    );
    assert_eq!(cw.messages(91).iter().filter(|m| !m.private).count(), 1);
    eprintln!(
        "dashboard app: Start video → agent popup on the call page: {} ms",
        r["popupMs"]
    );
    app.shutdown().await.expect("shutdown");
}

// ---------- group calls (protocol 2: a mesh, one peer connection per pair) ----------

async fn group_driver(args: Value) -> Value {
    let r = tokio::task::spawn_blocking(move || run_script("group.mjs", args))
        .await
        .expect("driver");
    eprintln!("{} took {} ms", r["scenario"], r["ms"]);
    r
}

/// `m` is `{first, second}` of one page's `window.sightline.stats()`: from every remote
/// participant with one of `roles`, video frames are decoded and still rising, audio
/// arrives, and the pair is relayed on both ends.
fn assert_group_flow(side: &str, m: &Value, roles: &[&str]) {
    assert_flow(side, m, roles, true);
}

/// As [`assert_group_flow`]; `relay`: every pair must be relayed.
fn assert_flow(side: &str, m: &Value, roles: &[&str], relay: bool) {
    let second = m["second"].as_object().expect("stats");
    for role in roles {
        let (id, b) = second
            .iter()
            .find(|(_, o)| o["role"] == *role)
            .unwrap_or_else(|| panic!("{side}: no remote {role}: {m}"));
        let a = &m["first"][id];
        let frames = (a["framesDecoded"].as_u64(), b["framesDecoded"].as_u64());
        assert!(
            matches!(frames, (Some(x), Some(y)) if x > 0 && y > x),
            "{side}: video from {role} not rising: {m}"
        );
        let packets = (
            a["audioPacketsReceived"].as_u64(),
            b["audioPacketsReceived"].as_u64(),
        );
        assert!(
            matches!(packets, (Some(x), Some(y)) if x > 0 && y > x),
            "{side}: audio from {role} not rising: {m}"
        );
        if !relay {
            continue;
        }
        // Relay-only pages have relay candidates only: a remote seen first through a
        // check (after an ICE restart) is the other side's relay address, as `prflx`.
        assert_eq!(b["local"], "relay", "{side} ↔ {role}: {m}");
        assert!(
            b["remote"] == "relay" || b["remote"] == "prflx",
            "{side} ↔ {role}: {m}"
        );
    }
}

fn text(v: &Value) -> String {
    v.to_string()
}

/// (a) Agent and customer talk; the agent invites an expert from its own page (the
/// invite form); the expert joins; all three decode video from the other two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_call_with_an_expert_invited_from_the_agent_page() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app(turn.port, data.path()).await;
    let (_id, agent_url, customer_url) = create_session(&app, true).await;
    let r = group_driver(json!({
        "scenario": "invite", "debug": std::env::var("GROUP_DEBUG").is_ok(), "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
    }))
    .await;
    assert_group_flow("agent", &r["two"]["agent"], &["customer"]);
    assert_group_flow("customer", &r["two"]["customer"], &["agent"]);
    assert!(
        r["expertUrl"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("{}/j/", app.base_url()))),
        "{r}"
    );
    assert_group_flow("agent", &r["three"]["agent"], &["customer", "expert"]);
    assert_group_flow("customer", &r["three"]["customer"], &["agent", "expert"]);
    assert_group_flow("expert", &r["three"]["expert"], &["agent", "customer"]);
    // Each page shows two tiles with names and role badges.
    for side in ["agent", "customer", "expert"] {
        let tiles = r["views"][side]["tiles"].as_array().expect("tiles");
        assert_eq!(tiles.len(), 2, "{side}: {}", r["views"][side]);
    }
    assert!(
        text(&r["views"]["customer"]["tiles"]).contains("Kim Expert (Experto)"),
        "{}",
        r["views"]
    );
    // Renewed TURN credentials: an ICE restart per pair, media still flowing, relayed.
    assert_eq!(r["restarts"], 2, "{r}");
    assert_group_flow(
        "agent (renewed)",
        &r["afterRenewal"]["agent"],
        &["customer", "expert"],
    );
    assert_group_flow(
        "customer (renewed)",
        &r["afterRenewal"]["customer"],
        &["agent", "expert"],
    );
    // Removed from the agent's roster: the expert's page stops, the customer's tile goes.
    assert_eq!(r["expertEnd"], "removed", "{r}");
    assert_eq!(
        r["afterRemove"]["customer"]["tiles"],
        json!(["Ana Agent (Agente)"]),
        "{r}"
    );
    eprintln!(
        "third participant: first remote frame {} ms after pressing join",
        r["expertFirstFrameMs"]
    );
    app.shutdown().await.expect("shutdown");
}

/// (b) In a `p2p` session (a mesh) a supervisor joins in listen mode: the supervisor decodes both, the customer's
/// page shows no entry, tile or media from it; switched to whisper (from the agent's
/// roster, `set_mode`), the agent hears the supervisor and the customer still receives
/// nothing from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_listens_unseen_then_whispers_to_the_agent_only() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app(turn.port, data.path()).await;
    // The mesh's own supervisor (`p2p`); under `auto` the call is routed (the test below).
    let (_id, agent_url, customer_url) = create_session_full(&app, true, false, Some("p2p")).await;
    let r = group_driver(json!({
        "scenario": "supervisor", "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
    }))
    .await;
    assert_group_flow(
        "supervisor",
        &r["listen"]["supervisor"],
        &["agent", "customer"],
    );
    let cv = &r["listen"]["customerView"];
    assert_eq!(cv["tiles"].as_array().map(Vec::len), Some(1), "{cv}");
    assert_eq!(cv["roster"].as_array().map(Vec::len), Some(1), "{cv}");
    for s in ["Sue", "upervisor", "Escuchar", "Listen"] {
        assert!(
            !cv["text"].as_str().expect("text").contains(s),
            "customer page shows {s}: {cv}"
        );
    }
    // The customer's page holds a connection to a hidden entry that sends it nothing.
    let hidden: Vec<&Value> = r["listen"]["customerStats"]
        .as_object()
        .expect("stats")
        .values()
        .filter(|o| o["hidden"] == true)
        .collect();
    assert_eq!(hidden.len(), 1, "{}", r["listen"]["customerStats"]);
    assert_eq!(hidden[0]["framesDecoded"], 0, "{}", hidden[0]);
    assert_eq!(hidden[0]["audioPacketsReceived"], 0, "{}", hidden[0]);
    assert!(
        text(&r["listen"]["agentView"]["roster"]).contains("Sue Supervisor"),
        "{r}"
    );
    // Whisper: the agent's audio from the supervisor rises; the customer's stays at zero.
    let w = &r["whisper"];
    assert!(
        w["agent"][0][0].as_u64() > Some(0)
            && w["agent"][1][0].as_u64() > w["agent"][0][0].as_u64(),
        "{w}"
    );
    assert_eq!(w["customer"], json!([[0], [0]]), "{w}");
    assert!(
        !w["customerView"]["text"]
            .as_str()
            .expect("text")
            .contains("Sue"),
        "{w}"
    );
    // Barge (the supervisor's own switch): a visible participant for everyone.
    assert_group_flow(
        "customer (barge)",
        &r["barge"]["customer"],
        &["agent", "supervisor"],
    );
    assert_group_flow(
        "agent (barge)",
        &r["barge"]["agent"],
        &["customer", "supervisor"],
    );
    assert!(
        text(&r["barge"]["customerView"]["tiles"]).contains("Sue Supervisor (Supervisor)"),
        "{r}"
    );
    // Barge → listen: gone from the customer's page again, and nothing more arrives from it.
    let back = &r["relisten"];
    assert_eq!(back["supervisorMode"], "listen", "{back}");
    assert_eq!(
        back["customerView"]["tiles"].as_array().map(Vec::len),
        Some(1),
        "{back}"
    );
    assert!(
        !back["customerView"]["text"]
            .as_str()
            .expect("text")
            .contains("Sue"),
        "{back}"
    );
    // (A connection replaced on the switch may take its counters with it: never more.)
    assert!(
        back["received"][1].as_u64() <= back["received"][0].as_u64(),
        "{back}"
    );
    app.shutdown().await.expect("shutdown");
}

/// A session created with `"media_mode": "auto"`: agent and customer in a 1:1 call (peer to
/// peer); a supervisor joins listening, the call switches to the server's media engine
/// (routed.js) and frames keep rising on both pages through the switch; the supervisor
/// decodes both; the customer's engine connection carries exactly one video and no trace
/// of the supervisor. Whisper: the agent hears the supervisor through the engine, the
/// customer does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_supervisor_switches_the_call_to_the_engine_without_a_break() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app(turn.port, data.path()).await;
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", app.base_url()))
        .bearer_auth(app.bootstrap_key().expect("key"))
        .json(&json!({
            "conversation": {"platform": "test", "id": "conv-routed"},
            "agent": {"id": "agent-1", "name": "Ana Agent"},
            "customer": {"name": "Sam Customer", "locale": "es"},
            "media_mode": "auto",
        }))
        .send()
        .await
        .expect("create session");
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.expect("json");
    let r = group_driver(json!({
        "scenario": "routed", "agentUrl": v["agent_url"], "customerUrl": v["customer_url"],
        "artifacts": artifacts(), "relay": false, "timeoutMs": 90000,
    }))
    .await;
    eprintln!(
        "routed switch: {} ms after the supervisor joined; longest frame gap (page) {}, before the switch {}; sampled {} / {}; steps {}",
        r["switchMs"],
        r["gapMs"],
        r["steadyGapMs"],
        r["sampled"]["agent"],
        r["sampled"]["customer"],
        r["steps"]
    );
    // Frames never stopped for long on either page through the switch.
    for side in ["agent", "customer"] {
        let gap = r["gapMs"][side].as_u64().expect("gap measured");
        assert!(gap < 1000, "{side}: {gap} ms without a frame: {r}");
        let sampled = r["sampled"][side]["maxGapMs"].as_u64().expect("sampled");
        assert!(sampled < 1500, "{side}: frames stalled {sampled} ms: {r}");
    }
    for (side, role) in [("agent", "customer"), ("customer", "agent")] {
        let second = &r["listen"][side]["second"];
        let o = second
            .as_object()
            .expect("stats")
            .values()
            .find(|o| o["role"] == role)
            .unwrap_or_else(|| panic!("{side}: no {role}: {r}"));
        assert_eq!(o["routed"], true, "{side}: {o}");
    }
    let sup = &r["listen"]["supervisor"]["second"];
    for role in ["agent", "customer"] {
        assert!(
            sup.as_object()
                .expect("stats")
                .values()
                .any(|o| o["role"] == role && o["framesDecoded"].as_u64() > Some(0)),
            "supervisor ← {role}: {r}"
        );
    }
    let ce = &r["listen"]["customerEngine"];
    assert_eq!(ce["inbound"]["video"], 1, "{ce}");
    assert_eq!(ce["meshPcs"], 0, "{ce}");
    assert_eq!(ce["supTrace"], false, "{ce}");
    assert_eq!(ce["sue"], false, "{ce}");
    let cv = &r["listen"]["customerView"];
    assert_eq!(cv["tiles"].as_array().map(Vec::len), Some(1), "{cv}");
    // Whisper: the agent's audio from the supervisor rises; the customer has none.
    let w = &r["whisper"];
    assert!(
        w["agent"][0][0].as_u64() > Some(0)
            && w["agent"][1][0].as_u64() > w["agent"][0][0].as_u64(),
        "{w}"
    );
    assert_eq!(w["customer"], json!([[], []]), "{w}");
    // In a routed call the agent's roster lists the listening supervisor (the customer's
    // shows no trace of them, above).
    let roster = r["listen"]["agentView"]["roster"].to_string();
    assert!(roster.contains("Sue Supervisor"), "{roster}");
    // The supervisor left: the call stayed routed on both pages (no second switch) and
    // frames kept rising (checked in group.mjs), the agent's roster without the supervisor.
    let after = &r["afterLeave"];
    assert_eq!(
        after["routed"],
        json!({"agent": true, "customer": true}),
        "{after}"
    );
    assert!(
        !after["agentView"]["roster"].to_string().contains("Sue"),
        "{after}"
    );
    // Quality reports went on through the engine connection: stored samples from both
    // pages after the switch, with a bitrate and a frame rate.
    let session_id = v["id"].as_str().expect("id");
    let switched = r["switchedAt"].as_i64().expect("switchedAt") + 1000;
    let samples = sightline::store::quality::list(&app.state().db, session_id)
        .await
        .expect("quality samples");
    for side in ["agent", "customer"] {
        let id = r["ids"][side].as_str().expect("participant id");
        let routed: Vec<_> = samples
            .iter()
            .filter(|q| q.participant_id == id && q.at.timestamp_millis() > switched)
            .collect();
        assert!(
            routed.iter().any(|q| q.kbps > 0 && q.fps > 0),
            "{side}: no quality report with media after the switch: {routed:?}"
        );
    }
    // The server measured both pages' engine connections itself, each direction.
    let server = sightline::store::server_quality::list(&app.state().db, session_id)
        .await
        .expect("server quality samples");
    for side in ["agent", "customer"] {
        let id = r["ids"][side].as_str().expect("participant id");
        let mine: Vec<_> = server.iter().filter(|q| q.participant_id == id).collect();
        for q in &mine {
            eprintln!("server quality {side}: {:?}", q.sample);
        }
        for d in [
            sightline::domain::server_quality::Direction::Uplink,
            sightline::domain::server_quality::Direction::Downlink,
        ] {
            assert!(
                mine.iter()
                    .any(|q| q.sample.direction == d && q.sample.kbps > 0),
                "{side} {d:?}: {mine:?}"
            );
        }
    }
    app.shutdown().await.expect("shutdown");
}

/// Issue 13's test (2): a routed 4-party call (`media_mode` routed: agent, customer, expert
/// and a listening supervisor) where the customer's network lets only TCP out. The
/// customer's page may use only the bundled TURN server's TCP address, relayed candidates
/// only: it reaches the engine through TURN over TCP (the relay policy lets relays reach
/// the engine's own address, and only that among private ones: no `allow_peer` here).
/// Every page decodes every other visible participant, and frames keep rising.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_four_party_call_reaches_a_tcp_only_customer_through_turn() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled_with(data.path(), |c| {
        c.turn.allow_peer = Vec::new();
        c.turn.advertise = vec!["udp".into(), "tcp".into()];
    })
    .await;
    let (id, agent_url, customer_url) =
        create_session_full(&app, false, false, Some("routed")).await;
    let invite = |role: &'static str, name: &'static str| {
        let url = format!("{}/api/v1/sessions/{id}/participants", app.base_url());
        let key = app.bootstrap_key().expect("key");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(key)
                .json(&json!({"role": role, "name": name}))
                .send()
                .await
                .expect("invite");
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.expect("json");
            v["join_url"].as_str().expect("join_url").to_owned()
        }
    };
    let expert_url = invite("expert", "Kim Expert").await;
    let supervisor_url = invite("supervisor", "Sue Supervisor").await;
    let r = group_driver(json!({
        "scenario": "routedTcp", "agentUrl": agent_url, "customerUrl": customer_url,
        "expertUrl": expert_url, "supervisorUrl": supervisor_url,
        "artifacts": artifacts(), "relay": false, "timeoutMs": 120000,
    }))
    .await;
    assert_flow(
        "agent",
        &r["flows"]["agent"],
        &["customer", "expert"],
        false,
    );
    assert_flow(
        "customer",
        &r["flows"]["customer"],
        &["agent", "expert"],
        false,
    );
    assert_flow(
        "expert",
        &r["flows"]["expert"],
        &["agent", "customer"],
        false,
    );
    assert_flow(
        "supervisor",
        &r["flows"]["supervisor"],
        &["agent", "customer", "expert"],
        false,
    );
    let engine_port = app
        .state()
        .media
        .as_ref()
        .expect("media engine")
        .announce()
        .port();
    for side in ["agent", "customer", "expert", "supervisor"] {
        let p = &r["pairs"][side];
        assert_eq!(p["routed"], true, "{side}: {p}");
        assert_eq!(p["meshPcs"], 0, "{side}: {p}");
        assert_eq!(p["remotePort"], engine_port, "{side}: {p}");
    }
    // The customer: relayed, over TCP, and told about nothing else.
    let c = &r["pairs"]["customer"];
    assert_eq!(c["local"], "relay", "{c}");
    assert_eq!(c["relayProtocol"], "tcp", "{c}");
    assert!(
        c["servers"].as_array().is_some_and(|s| !s.is_empty()
            && s.iter()
                .all(|u| u.as_str().is_some_and(|u| u.ends_with("transport=tcp")))),
        "{c}"
    );
    // The others reach the engine directly.
    assert_ne!(r["pairs"]["agent"]["local"], "relay", "{r}");
    let stats = app.state().relay.as_ref().expect("relay").server.stats();
    assert!(stats.relayed_packets > 500, "{stats:?}");
    // The customer's page shows the agent and the expert, nothing of the supervisor.
    let cv = &r["customerView"];
    assert_eq!(cv["tiles"].as_array().map(Vec::len), Some(2), "{cv}");
    assert!(!cv["text"].as_str().expect("text").contains("Sue"), "{cv}");
    app.shutdown().await.expect("shutdown");
}

/// (c) Lobby: the customer waits (lobby screen with the agent's name and message), the
/// agent admits, frames flow. Admit → first remote frame on the customer's page, 5 runs,
/// each a fresh session (target ≤ 300 ms; asserted loosely, printed exactly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lobby_admit_to_first_frame() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app(turn.port, data.path()).await;
    let mut sessions = Vec::new();
    for _ in 0..5 {
        let (_id, agent_url, customer_url) = create_session_with(&app, true, true).await;
        sessions.push(json!({"agentUrl": agent_url, "customerUrl": customer_url}));
    }
    let (_id, agent_url, customer_url) = create_session_with(&app, true, true).await;
    let deny = json!({"agentUrl": agent_url, "customerUrl": customer_url});
    let r = group_driver(json!({
        "scenario": "lobby", "sessions": sessions, "denySession": deny, "artifacts": artifacts(),
    }))
    .await;
    // Denied: the customer's page stops (4404) and the agent's lobby list is empty again.
    assert_eq!(r["denied"]["end"], "denied", "{r}");
    assert_eq!(r["denied"]["agentWaiting"], 0, "{r}");
    let lobby = r["lobbyView"].as_str().expect("lobby text");
    assert!(lobby.contains("Ana Agent"), "{lobby}");
    assert!(lobby.contains("one moment please"), "{lobby}");
    assert_group_flow("agent", &r["flows"]["agent"], &["customer"]);
    assert_group_flow("customer", &r["flows"]["customer"], &["agent"]);
    let mut ms: Vec<i64> = r["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|x| x["ms"].as_i64().expect("ms"))
        .collect();
    ms.sort_unstable();
    let (p50, max) = (ms[ms.len() / 2], ms[ms.len() - 1]);
    println!(
        "lobby admit → first remote frame on the customer page (ms): runs={ms:?} p50={p50} max={max}"
    );
    assert!(max < 3000, "admit → first frame far too slow: {ms:?}");
    app.shutdown().await.expect("shutdown");
}

/// (d) The customer declines with `not_now` before joining: the agent's page shows it at
/// once and a signed `participant.declined` webhook arrives at a real HTTP receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_declines_and_the_agent_sees_why() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_with(turn.port, data.path(), |c| {
        c.outbound.allow = vec!["127.0.0.0/8".parse().expect("net")];
        c.outbox.poll_interval_ms = 50;
    })
    .await;
    let rx = support_outbox::Receiver::start().await;
    let api =
        support_outbox::Api::new(app.base_url(), app.bootstrap_key().expect("key").to_owned());
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "events", "kind": "generic", "scope": "all",
                   "events": ["participant.declined"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let (_id, agent_url, customer_url) = create_session(&app, true).await;
    let r = group_driver(json!({
        "scenario": "decline", "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
    }))
    .await;
    let banner = r["agent"]["banner"].as_str().expect("banner");
    assert!(banner.contains("Not now"), "{banner}");
    assert!(banner.contains("Sam Customer"), "{banner}");
    assert_eq!(r["customerEnd"], "declined", "{r}");
    let secret = integ["signing_secret"].as_str().expect("secret").to_owned();
    let hook = support_outbox::eventually(10, "participant.declined", || async {
        rx.on("/events")
            .into_iter()
            .find(|e| e.json()["type"] == "participant.declined")
    })
    .await;
    assert!(support_outbox::verify_standard_webhook(&secret, &hook));
    let d = &hook.json()["data"];
    assert_eq!(d["reason"], "not_now", "{d}");
    eprintln!("decline → agent banner: {} ms", r["agentBannerMs"]);
    app.shutdown().await.expect("shutdown");
}

/// (e) Transfer: the agent hands the call over from its page; a second agent joins by the
/// new link; the first agent's page is taken out after the warm period; the customer's
/// frames keep rising all along (sampled every 500 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_to_a_second_agent_keeps_the_customer_picture() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let turn = Coturn::start();
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_with(turn.port, data.path(), |c| {
        c.signaling.transfer_warm_secs = 3;
    })
    .await;
    let (_id, agent_url, customer_url) = create_session(&app, true).await;
    let r = group_driver(json!({
        "scenario": "transfer", "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
    }))
    .await;
    assert!(
        r["firstAgentBanner"]
            .as_str()
            .is_some_and(|b| b.contains("Bo Second")),
        "{r}"
    );
    assert_group_flow("second agent", &r["agent2"], &["customer"]);
    assert_eq!(r["firstAgentEnd"], "transferred", "{r}");
    assert_group_flow("customer after", &r["customerAfter"], &["agent"]);
    assert_eq!(r["stalls"], json!([]), "{r}");
    assert!(r["samples"].as_u64() > Some(6), "{r}");
    let tiles = &r["customerView"]["tiles"];
    assert_eq!(tiles, &json!(["Bo Second (Agente)"]), "{r}");
    app.shutdown().await.expect("shutdown");
}

/// In-call features (issue 15), driven by `tests/browser/incall.mjs`: chat both ways from
/// the chat panel (keyboard, links as safe anchors, markup shown as text), with chat round
/// trips measured; five "show me" photos from the customer's page (request to picture on
/// the agent's page timed), the same SHA-256 on the agent's page as the API's download,
/// and a frame captured from the customer's video; the customer's quality reports reaching
/// the agent's tile; the customer's pre-call check on the agent's page before they join; the
/// agent's screen shared to the customer's page; the customer's rating on the end screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_and_photos_in_the_call() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled(data.path()).await;
    let (id, agent_url, customer_url) = create_session(&app, false).await;
    let args = json!({
        "agentUrl": agent_url, "customerUrl": customer_url, "artifacts": artifacts(),
        "photos": 5,
    });
    let r = tokio::task::spawn_blocking(move || run_script("incall.mjs", args))
        .await
        .expect("driver");
    // Before the customer joined, the agent saw their pre-call check: devices, and relay
    // over UDP through the bundled TURN server.
    let pre = &r["precheck"];
    assert_eq!(pre["customerPhase"], "prejoin", "{pre}");
    assert_eq!(pre["camera"], true, "{pre}");
    assert_eq!(pre["microphone"], true, "{pre}");
    assert_eq!(pre["relay"]["udp"], true, "{pre}");
    assert_eq!(
        pre["shown"], "Sam Customer: camera ok, microphone ok, network: relay over UDP",
        "{pre}"
    );
    println!(
        "pre-call check: page opened -> result on the agent's page {} ms",
        pre["sinceOpen"]
    );
    let chat = &r["chat"];
    assert_eq!(chat["chatButtonExpanded"], "true", "{chat}");
    assert_eq!(chat["inputLabel"], "Mensaje", "{chat}"); // the customer speaks Spanish
    assert_eq!(
        chat["agentGot"],
        "Hello, see https://example.com/manual?p=2. Thanks"
    );
    assert_eq!(
        chat["agentLink"],
        json!({"href": "https://example.com/manual?p=2", "text": "https://example.com/manual?p=2",
               "rel": "noopener noreferrer", "target": "_blank"})
    );
    assert_eq!(
        chat["customerSawMarkupAsText"],
        json!({"text": "Hi <b>Sam</b> <img src=x onerror=alert(1)> javascript:alert(1)", "elements": 0})
    );
    assert_eq!(chat["agentEntries"], 7, "{chat}");
    let after: Vec<&str> = chat["afterReload"]
        .as_array()
        .expect("afterReload")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(after.len(), 7, "{chat}");
    assert_eq!(
        after[0],
        "Hello, see https://example.com/manual?p=2. Thanks"
    );
    assert_eq!(after[6], "ping 4");
    let ms = |k: &str| -> Vec<f64> {
        let mut v: Vec<f64> = chat[k]
            .as_array()
            .expect(k)
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (one_way, echo) = (ms("oneWay"), ms("echo"));
    println!(
        "chat customer -> agent page (ms): {one_way:?} p50={}; back to the sender: {echo:?} p50={}",
        one_way[2], echo[2]
    );
    // Stored: what the API lists is what was said.
    let key = app.bootstrap_key().expect("key").to_owned();
    let v: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/sessions/{id}/messages", app.base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .expect("messages")
        .json()
        .await
        .expect("json");
    assert_eq!(v["items"].as_array().map(Vec::len), Some(7), "{v}");

    // Quality: the agent's tile shows the customer's network level.
    assert!(
        r["quality"]["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("Network: ")),
        "{r}"
    );
    assert_eq!(r["customerStats"]["type"], "stats", "{r}");

    // Photos: five asked for and shown, then a frame capture; the picture the agent's
    // page shows has the SHA-256 that the API's download has.
    let p = &r["photos"];
    let shown = &p["shown"];
    assert_eq!(shown["kind"], "photo", "{p}");
    assert_eq!(shown["announced"], shown["computed"], "{p}");
    assert!(shown["width"].as_u64().unwrap_or(0) > 0, "{p}");
    assert!(
        shown["alt"]
            .as_str()
            .unwrap_or("")
            .starts_with("Photo from Sam"),
        "{p}"
    );
    assert_eq!(p["customerFacing"], "user", "the camera went back: {p}");
    assert_eq!(p["frame"]["kind"], "frame", "{p}");
    let download = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/snapshots/{}",
            app.base_url(),
            shown["id"].as_str().expect("id")
        ))
        .bearer_auth(&key)
        .send()
        .await
        .expect("download");
    assert_eq!(download.status(), 200);
    let bytes = download.bytes().await.expect("bytes");
    use sha2::Digest;
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&bytes)),
        shown["computed"].as_str().expect("hash")
    );
    let list: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/sessions/{id}/snapshots", app.base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(6), "{list}");
    let mut runs: Vec<f64> = p["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    runs.sort_by(f64::total_cmp);
    println!(
        "photo request -> photo shown on the agent page (ms): {runs:?} p50={}",
        runs[runs.len() / 2]
    );
    // Screen share: the agent's screen shown large on the customer's page, the tile
    // keeping the agent's camera; gone when the agent stops.
    let screen = &r["screen"];
    assert!(screen["width"].as_u64().unwrap_or(0) > 0, "{screen}");
    assert_eq!(screen["tileKeepsCamera"], true, "{screen}");
    assert_eq!(screen["pressed"], "true", "{screen}");
    assert_eq!(screen["stopped"], true, "{screen}");
    // The customer rated the call on the end screen.
    assert_eq!(r["rated"]["score"], 4, "{r}");
    let ratings: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/sessions/{id}/ratings", app.base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .expect("ratings")
        .json()
        .await
        .expect("json");
    assert_eq!(ratings["items"][0]["score"], 4, "{ratings}");
    assert_eq!(ratings["items"][0]["comment"], "Quick and clear");
    app.shutdown().await.expect("shutdown");
}

/// A session whose customer speaks `locale`, with the lobby on (so the customer's page
/// shows every state: pre-join, lobby, call, end).
async fn create_session_in(app: &Application, locale: &str) -> (String, String) {
    let key = app.bootstrap_key().expect("bootstrap key");
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", app.base_url()))
        .bearer_auth(key)
        .json(&json!({
            "conversation": {"platform": "test", "id": format!("a11y-{locale}")},
            "agent": {"id": "agent-1", "name": "Ana Agent"},
            "customer": {"name": "Sam Customer", "locale": locale},
            "lobby": true,
        }))
        .send()
        .await
        .expect("create session");
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.expect("json");
    let s = |k: &str| v[k].as_str().expect(k).to_owned();
    (s("agent_url"), s("customer_url"))
}

/// Accessibility of the customer's page (`tests/browser/a11y.mjs`, one Chromium process):
/// axe-core finds no serious or critical violation in any state — pre-join, lobby, in the
/// call with the chat open, ended with the rating form — in English and Arabic, on a
/// desktop and a phone viewport; nothing scrolls sideways; the controls are reached by
/// Tab; the Arabic page is right-to-left and mirrored (self view top-left, controls
/// starting from the right, chat panel on the right). Screenshots: `tests/artifacts/a11y-*`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_page_is_accessible_and_mirrored_in_arabic() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled(data.path()).await;
    assert!(
        root()
            .join("tests/browser/node_modules/axe-core/axe.min.js")
            .exists(),
        "run scripts/setup-test-deps (npm ci in tests/browser) first"
    );
    let mut flows = Vec::new();
    for (lang, phone) in [("en", false), ("ar", false), ("en", true), ("ar", true)] {
        let (agent_url, customer_url) = create_session_in(&app, lang).await;
        // The agent's page (English, desktop) is audited once, in the first call.
        let audit_agent = flows.is_empty();
        flows.push(json!({"lang": lang, "phone": phone, "agentUrl": agent_url,
                          "customerUrl": customer_url, "auditAgent": audit_agent}));
    }
    let args = json!({"flows": flows, "artifacts": artifacts()});
    let r = tokio::task::spawn_blocking(move || run_script("a11y.mjs", args))
        .await
        .expect("driver");
    println!("axe-core {}", r["axeVersion"]);
    let flows = r["flows"].as_array().expect("flows");
    assert_eq!(flows.len(), 4, "{r}");
    let ids = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    // Every finding first (all states, both languages), then the checks.
    let mut findings = Vec::new();
    let agent = flows
        .iter()
        .find(|f| !f["agent"].is_null())
        .map(|f| &f["agent"])
        .expect("the agent's page was audited");
    println!(
        "agent page in the call, panel open: serious/critical {}, minor {}",
        agent["axe"]["serious"].as_array().map_or(0, Vec::len),
        agent["axe"]["minor"]
    );
    for v in agent["axe"]["serious"].as_array().into_iter().flatten() {
        findings.push(format!(
            "agent page: {} ({}) at {}",
            v["id"], v["impact"], v["nodes"]
        ));
    }
    for f in flows {
        for s in f["states"].as_array().into_iter().flatten() {
            for v in s["axe"]["serious"].as_array().into_iter().flatten() {
                findings.push(format!(
                    "{} {} {}: {} ({}) at {}",
                    f["lang"],
                    if f["phone"] == true {
                        "phone"
                    } else {
                        "desktop"
                    },
                    s["state"],
                    v["id"],
                    v["impact"],
                    v["nodes"]
                ));
            }
        }
    }
    assert!(
        findings.is_empty(),
        "axe: serious or critical violations:\n{}",
        findings.join("\n")
    );
    for f in flows {
        let (lang, phone) = (f["lang"].as_str().unwrap_or("?"), f["phone"] == true);
        let rtl = lang == "ar";
        let states = f["states"].as_array().expect("states");
        let names: Vec<&str> = states.iter().filter_map(|s| s["state"].as_str()).collect();
        assert_eq!(names, ["prejoin", "lobby", "call", "ended"], "{lang}");
        for s in states {
            let at = format!(
                "{lang} {} {}",
                if phone { "phone" } else { "desktop" },
                s["state"]
            );
            println!(
                "{at}: serious/critical {}, minor {}",
                s["axe"]["serious"].as_array().map_or(0, Vec::len),
                s["axe"]["minor"]
            );
            assert_eq!(s["axe"]["serious"], json!([]), "{at}: {:#}", s["axe"]);
            let g = &s["geometry"];
            assert_eq!(g["dir"], if rtl { "rtl" } else { "ltr" }, "{at}");
            assert!(
                g["scrollWidth"].as_u64() <= g["width"].as_u64(),
                "{at}: scrolls sideways {g}"
            );
        }
        // The pre-join page: the join button is reached by Tab, and labelled in the language.
        let pre = &states[0];
        assert!(ids(&pre["keyboard"]).contains(&"join".into()), "{pre}");
        assert_eq!(
            pre["joinLabel"],
            if rtl {
                "انضم إلى المكالمة"
            } else {
                "Join call"
            }
        );
        // In the call: every control in the bar is reached by Tab; the layout mirrors.
        let call = &states[2];
        let keys = ids(&call["keyboard"]);
        for b in ["mic-btn", "cam-btn", "chat-btn", "leave-btn", "chat-input"] {
            assert!(
                keys.contains(&b.into()),
                "{lang}: {b} not reached by Tab: {keys:?}"
            );
        }
        let g = &call["geometry"];
        let width = g["width"].as_i64().expect("width");
        let x = |v: &Value| v["x"].as_i64().expect("x");
        let w = |v: &Value| v["w"].as_i64().expect("w");
        let self_mid = x(&g["self"]) + w(&g["self"]) / 2;
        assert_eq!(
            self_mid < width / 2,
            rtl,
            "{lang}: self view on the wrong side {g}"
        );
        let bar = g["bar"].as_array().expect("bar");
        // (The bar may wrap on a phone: compare the first two, which share a row.)
        let (first, second) = (&bar[0], &bar[1]);
        assert_eq!(first["id"], "mic-btn", "{g}");
        assert_eq!(
            x(first) > x(second),
            rtl,
            "{lang}: controls not mirrored {g}"
        );
        let chat = &g["chat"];
        if w(chat) < width {
            let at_right = x(chat) + w(chat) >= width - 1;
            assert_eq!(at_right, rtl, "{lang}: chat panel on the wrong side {g}");
        }
        // Ended: the rating form is reached by keyboard.
        let keys = ids(&states[3]["keyboard"]);
        assert!(keys.contains(&"rate-comment".into()), "{keys:?}");
    }
    app.shutdown().await.expect("shutdown");
}

/// Recording on the pages (`tests/browser/recording.mjs`): a session recorded on demand
/// (running `auto`, so the recording routes it); the agent starts from the call page and
/// declines for themself; the customer's page (Arabic) asks for consent before anything of
/// theirs is written, the customer agrees, both pages show the indicator and the agent's
/// page the customer's badge; the agent pauses and resumes and the indicator follows on both
/// pages; the customer withdraws. The recording tap (a ledger here) switched the customer
/// exactly on, off, on, off and never the agent. axe-core finds nothing serious in the
/// prompt or the running call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_asks_for_consent_and_the_indicator_follows() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let mut config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        data_dir: data.path().to_owned(),
        turn: TurnSettings {
            enabled: true,
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            relay_ips: vec!["127.0.0.1".parse().expect("ip")],
            relay_ports: "0-0".into(),
            allow_peer: vec!["127.0.0.0/8".parse().expect("net")],
            ..TurnSettings::default()
        },
        ..Config::default()
    };
    let wording = "نسجّل هذه المكالمة لأغراض الجودة.";
    config
        .recording
        .consent_text
        .insert("ar".into(), wording.into());
    let tap = std::sync::Arc::new(sightline::services::recording_control::TapLedger::default());
    let app = Application::build_with_tap(config, tap.clone())
        .await
        .expect("app starts");
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", app.base_url()))
        .bearer_auth(app.bootstrap_key().expect("key"))
        .json(&json!({
            "conversation": {"platform": "test", "id": "conv-rec"},
            "agent": {"id": "agent-1", "name": "Ana Agent"},
            "customer": {"name": "Sam Customer", "locale": "ar"},
            "recording": {"mode": "on_demand"},
        }))
        .send()
        .await
        .expect("create session");
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.expect("json");
    let id = v["id"].as_str().expect("id").to_owned();
    let customer_id = v["participants"][1]["participant_id"]
        .as_str()
        .expect("customer")
        .to_owned();
    let agent_id = v["participants"][0]["participant_id"]
        .as_str()
        .expect("agent")
        .to_owned();
    let args = json!({"agentUrl": v["agent_url"], "customerUrl": v["customer_url"],
                      "artifacts": artifacts(), "wording": wording});
    let r = tokio::task::spawn_blocking(move || run_script("recording.mjs", args))
        .await
        .expect("driver");
    println!(
        "recording: consent → indicator on both pages in {} ms",
        r["agreeToIndicatorMs"]
    );
    assert_eq!(r["before"], json!({"ind": false, "prompt": false}), "{r}");
    assert_eq!(
        r["agentFocus"], "rec-agree",
        "the prompt takes the focus: {r}"
    );
    let p = &r["prompt"];
    assert_eq!(p["onScreen"], true, "the whole prompt is on screen: {p}");
    assert_eq!(p["title"], "هذه المكالمة مسجّلة", "{p}");
    assert_eq!(p["role"], "dialog", "{p}");
    assert_eq!(p["dir"], "rtl", "{p}");
    assert_eq!(
        p["indWriting"], "false",
        "nothing written before consent: {p}"
    );
    assert_eq!(
        p["indShown"], false,
        "no indicator while nothing is written: {p}"
    );
    let on = &r["on"];
    assert_eq!(on["agentInd"], "Recording", "{on}");
    assert_eq!(on["customerInd"], "جارٍ التسجيل", "{on}");
    assert_eq!(
        on["ind"],
        json!({"dir": "rtl", "centred": true, "onScreen": true}),
        "{on}"
    );
    assert_eq!(
        on["selfClear"], true,
        "the indicator leaves the self view clear: {on}"
    );
    assert_eq!(on["withdrawLabel"], "أوقف تسجيلي", "{on}");
    assert_eq!(
        on["badgeOnAgentPage"],
        json!([["true", "recorded"]]),
        "the agent's page shows the customer recorded: {on}"
    );
    let list = on["agentList"].to_string();
    assert!(list.contains("agreed") && list.contains("declined"), "{on}");
    assert_eq!(r["paused"]["agentInd"], "Recording paused", "{r}");
    assert_eq!(r["resumed"], true, "{r}");
    assert_eq!(r["withdrawn"]["allowLabel"], "اسمح بالتسجيل", "{r}");
    assert_eq!(
        r["withdrawn"]["status"], "sConnected",
        "the call goes on: {r}"
    );
    for k in ["axeConsent", "axeAgent", "axeCustomer"] {
        assert_eq!(r[k], json!([]), "{k}: {r}");
    }
    // The tap: the customer on after consent, off on pause, on on resume, off on withdrawal;
    // the agent, who declined, never.
    assert_eq!(tap.flips(&id, &customer_id), [true, false, true, false]);
    assert!(tap.flips(&id, &agent_id).is_empty());
    let consents: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/sessions/{id}/recording", app.base_url()))
        .bearer_auth(app.bootstrap_key().expect("key"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let decisions: Vec<(String, String)> = consents["consents"]
        .as_array()
        .expect("consents")
        .iter()
        .map(|c| {
            let ua = c["user_agent"].as_str().unwrap_or_default();
            assert!(ua.contains("Chrome"), "the browser is recorded: {c}");
            (
                c["participant_id"].as_str().unwrap_or_default().to_owned(),
                c["decision"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        decisions,
        [
            (agent_id.clone(), "declined".to_owned()),
            (customer_id.clone(), "given".to_owned()),
            (customer_id.clone(), "withdrawn".to_owned()),
        ]
    );
    app.shutdown().await.expect("shutdown");
}
