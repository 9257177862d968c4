//! The real binary is killed with SIGKILL while deliveries are pending; after a restart
//! on the same data directory every message is delivered, each `webhook-id` succeeds once,
//! and per-session order holds.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support_outbox::*;
use serde_json::json;

pub(crate) fn command(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sightline"));
    c.env("SIGHTLINE_ALLOW_OUTBOUND", "127.0.0.0/8")
        .env("SIGHTLINE_LOG_LEVEL", "warn")
        .env("SIGHTLINE_OUTBOX__POLL_INTERVAL_MS", "50")
        .env("SIGHTLINE_OUTBOX__BASE_DELAY_MS", "50")
        .env("SIGHTLINE_OUTBOX__MAX_DELAY_MS", "300")
        .env("SIGHTLINE_DATA_DIR", dir);
    c
}

pub(crate) fn api_key(dir: &Path) -> String {
    let out = command(dir)
        .args(["api-key", "create", "--name", "test", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A child process that is killed when the test ends, even by a panic.
pub(crate) struct KillOnDrop(pub(crate) Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` and returns it with the URL it prints.
pub(crate) fn serve(dir: &Path) -> (KillOnDrop, String) {
    let mut child = command(dir)
        .args([
            "serve",
            "--no-turn",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Sightline is serving on ") {
                let url = rest.split_whitespace().next().unwrap_or("").to_owned();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the binary prints its URL");
    (child, url)
}

#[tokio::test]
async fn sigkill_with_pending_deliveries_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = api_key(dir.path());
    let rx = Receiver::start().await;
    rx.set_status(503);
    let (mut child, url) = serve(dir.path());
    let api = Api::new(url, key.clone());

    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "g", "kind": "generic",
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let secret = integ["signing_secret"].as_str().unwrap().to_owned();
    const N: usize = 8;
    let mut sessions = Vec::new();
    for i in 0..N {
        let (st, s) = api
            .post(
                "/api/v1/sessions",
                session_body(&format!("k{i}"), Some("g")),
            )
            .await;
        assert_eq!(st, 201, "{s}");
        sessions.push(s["id"].as_str().unwrap().to_owned());
    }
    // Deliveries are being attempted (and failing) when the process is killed.
    eventually(15, "failing attempts", || async {
        (rx.all().len() >= N).then_some(())
    })
    .await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(rx.all().iter().all(|r| r.status == 503));

    rx.set_status(200);
    let (mut child, url) = serve(dir.path());
    let api = Api::new(url, key);
    // Per session: session.created event, the post, session.link_posted event.
    let expected = N * 3;
    eventually(30, "every delivery after restart", || async {
        let (_, p) = api.get("/api/v1/deliveries?status=delivered").await;
        (p["items"].as_array().map(Vec::len) == Some(expected)).then_some(())
    })
    .await;
    let (_, pending) = api.get("/api/v1/deliveries?status=pending").await;
    let (_, dead) = api.get("/api/v1/deliveries?status=dead").await;
    let (_, delivered) = api.get("/api/v1/deliveries?status=delivered").await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(pending["items"].as_array().unwrap().is_empty(), "{pending}");
    assert!(dead["items"].as_array().unwrap().is_empty(), "{dead}");
    assert_eq!(delivered["items"].as_array().unwrap().len(), expected);

    // Each message (webhook-id) succeeded at least once, always with the same body. A
    // request the killed process had already sent may still be answered 200 after the
    // switch: that is the duplicate at-least-once allows, and it carries the same id.
    let mut by_id: HashMap<String, (usize, Vec<u8>)> = HashMap::new();
    let mut first_success: Vec<(String, serde_json::Value)> = Vec::new();
    for r in rx.all() {
        let id = r.header("webhook-id").unwrap().to_owned();
        let e = by_id.entry(id.clone()).or_insert((0, r.body.clone()));
        assert_eq!(e.1, r.body, "a retry must carry the same body");
        if r.status == 200 {
            e.0 += 1;
            assert!(verify_standard_webhook(&secret, &r));
            if e.0 == 1 {
                first_success.push((id, r.json()));
            }
        }
    }
    assert_eq!(
        by_id.len(),
        expected,
        "one id per message, none enqueued twice"
    );
    assert!(
        by_id.values().all(|(ok, _)| *ok >= 1),
        "every message arrived"
    );
    let duplicates: usize = by_id.values().map(|(ok, _)| ok - 1).sum();
    eprintln!("duplicate successes (same webhook-id, allowed): {duplicates}");

    // Per session: created → post → link_posted, in order of first success.
    for sid in &sessions {
        let seq: Vec<String> = first_success
            .iter()
            .filter(|(_, j)| {
                j["session_id"] == sid.as_str() || j["data"]["session_id"] == sid.as_str()
            })
            .map(|(_, j)| j["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            seq,
            ["session.created", "message.post", "session.link_posted"],
            "{sid}"
        );
    }
}
