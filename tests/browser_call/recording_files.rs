//! Recording with the real recorder, end to end (`tests/browser/recording_files.mjs`): two
//! Chromium pages in routed calls recorded `always`; the files are downloaded through the
//! API and checked with ffprobe and ffmpeg.

use std::path::Path;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sightline::Application;

use super::{ONE_AT_A_TIME, artifacts, run_script, start_app_bundled_with, support_outbox};

/// One file as ffprobe sees it: codecs, each stream's first timestamp and where its last
/// packet ends (the files carry no duration: they are written as the media arrives).
#[derive(Debug)]
struct Probe {
    codecs: Vec<(String, String)>,
    audio_start: f64,
    video_start: f64,
    end: f64,
}

fn probe(file: &Path) -> Probe {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe (Debian ffmpeg) must be installed");
    assert!(out.status.success(), "ffprobe: {out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let streams = v["streams"].as_array().expect("streams");
    let codecs = streams
        .iter()
        .map(|s| {
            let f = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            (f("codec_type"), f("codec_name"))
        })
        .collect();
    let index_of = |kind: &str| {
        streams
            .iter()
            .find(|s| s["codec_type"] == kind)
            .and_then(|s| s["index"].as_u64())
    };
    let (a, vi) = (index_of("audio"), index_of("video"));
    let num = |p: &Value, k: &str| p[k].as_str().and_then(|t| t.parse::<f64>().ok());
    let (mut audio_start, mut video_start, mut end) = (f64::MAX, f64::MAX, 0f64);
    for p in v["packets"].as_array().expect("packets") {
        let Some(t) = num(p, "pts_time") else {
            continue;
        };
        let idx = p["stream_index"].as_u64();
        if idx == a {
            audio_start = audio_start.min(t);
        } else if idx == vi {
            video_start = video_start.min(t);
        }
        end = end.max(t + num(p, "duration_time").unwrap_or(0.0));
    }
    Probe {
        codecs,
        audio_start,
        video_start,
        end,
    }
}

/// `ffmpeg -v error` decoding the whole file: what it printed.
fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn create(app: &Application, conv: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("{}/api/v1/sessions", app.base_url()))
        .bearer_auth(app.bootstrap_key().expect("key"))
        .json(&json!({
            "conversation": {"platform": "test", "id": conv},
            "agent": {"id": "agent-1", "name": "Ana Agent"},
            "customer": {"name": "Sam Customer", "locale": "en"},
            "recording": {"mode": "always"},
        }))
        .send()
        .await
        .expect("create session");
    assert_eq!(resp.status(), 201);
    let v: Value = resp.json().await.expect("json");
    let p = |i: usize| v["participants"][i]["participant_id"].clone();
    json!({"id": v["id"], "agentUrl": v["agent_url"], "customerUrl": v["customer_url"],
           "agentId": p(0), "customerId": p(1)})
}

fn epoch_ms(at: Instant) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
        * 1000.0;
    now - at.elapsed().as_secs_f64() * 1000.0
}

/// Session A (`always`): the agent agrees at once and is written; the customer's page asks,
/// and while it waits the list holds no file of the customer; after the customer agrees
/// both are written; pause and resume give each a second span; the end of the call finishes
/// every file and `recording.ready` reaches a webhook receiver. Every file downloads, holds
/// one VP8 and one Opus stream starting within 40 ms of each other, lasts its recorded
/// time (±1 s), decodes without an error; a Range request returns the right bytes.
/// Session B: the customer declines: no file of theirs, and their page's video keeps
/// rising.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_files_follow_consent_pause_and_end() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let data = tempfile::tempdir().expect("tempdir");
    let app = start_app_bundled_with(data.path(), |c| {
        c.outbound.allow = vec!["127.0.0.0/8".parse().expect("net")];
        c.outbox.poll_interval_ms = 50;
    })
    .await;
    let rx = support_outbox::Receiver::start().await;
    let key = app.bootstrap_key().expect("key").to_owned();
    let api = support_outbox::Api::new(app.base_url(), key.clone());
    let (st, integ) = api
        .post(
            "/api/v1/integrations",
            json!({"name": "events", "kind": "generic", "scope": "all",
                   "events": ["recording.ready"],
                   "config": {"post_url": rx.url("/post")}, "events_url": rx.url("/events")}),
        )
        .await;
    assert_eq!(st, 201, "{integ}");
    let (a, b) = (
        create(&app, "conv-rec-a").await,
        create(&app, "conv-rec-b").await,
    );
    let args = json!({"a": a, "b": b, "api": app.base_url(), "key": key, "artifacts": artifacts()});
    let r = tokio::task::spawn_blocking(move || run_script("recording_files.mjs", args))
        .await
        .expect("driver");
    let s = |v: &Value| v.as_str().expect("id").to_owned();
    let (a_id, agent, customer) = (s(&a["id"]), s(&a["agentId"]), s(&a["customerId"]));

    // Before the customer answered: the agent's span, nothing of the customer.
    let before = r["a"]["beforeConsent"].as_array().expect("list");
    assert_eq!(r["a"]["promptStillOpen"], true, "{r}");
    assert!(
        before.iter().any(|i| i["participant"] == agent.as_str()),
        "{r}"
    );
    assert!(
        !before.iter().any(|i| i["participant"] == customer.as_str()),
        "{r}"
    );

    // recording.ready for each span of A (2 per participant) and B's agent span.
    let hooks = support_outbox::eventually(20, "recording.ready ×5", || async {
        let all = rx.on("/events");
        (all.len() >= 5).then_some(all)
    })
    .await;
    let secret = integ["signing_secret"].as_str().expect("secret");
    assert!(
        hooks
            .iter()
            .all(|h| support_outbox::verify_standard_webhook(secret, h))
    );
    let ended = r["a"]["endedAt"].as_f64().expect("endedAt");
    let list = |id: String| {
        let api = &api;
        async move {
            let (st, v) = api.get(&format!("/api/v1/sessions/{id}/recordings")).await;
            assert_eq!(st, 200, "{v}");
            v["items"].as_array().expect("items").clone()
        }
    };
    let items = list(a_id.clone()).await;
    let of = |p: &str| -> Vec<Value> {
        items
            .iter()
            .filter(|i| i["participant_id"] == p)
            .cloned()
            .collect()
    };
    let (agent_spans, customer_spans) = (of(&agent), of(&customer));
    let last_a = hooks
        .iter()
        .filter(|h| {
            items
                .iter()
                .any(|i| i["id"] == h.json()["data"]["recording_id"])
        })
        .map(|h| epoch_ms(h.at))
        .fold(0f64, f64::max);
    assert_eq!(agent_spans.len(), 2, "{items:?}");
    assert_eq!(customer_spans.len(), 2, "{items:?}");
    let b_items = list(s(&b["id"])).await;
    assert!(
        b_items.iter().all(|i| i["participant_id"] == b["agentId"]),
        "the customer who declined is in no file: {b_items:?}"
    );
    assert_eq!(b_items.len(), 1, "{b_items:?}");
    let frames = &r["b"]["customerFrames"];
    assert!(
        frames[0].as_u64() > Some(0) && frames[1].as_u64() > frames[0].as_u64(),
        "the call goes on for the customer who declined: {r}"
    );
    assert_eq!(r["b"]["customerStatus"], "sConnected", "{r}");

    // Every file: download, probe, decode.
    let files = tempfile::tempdir().expect("tempdir");
    let http = reqwest::Client::new();
    let page_ms = [&r["a"]["firstSpanMs"], &r["a"]["secondSpanMs"]];
    let mut per_minute = Vec::new();
    let mut skews = Vec::new();
    for it in items.iter().chain(b_items.iter()) {
        assert_eq!(it["status"], "ready", "{it}");
        assert_eq!(it["codecs"], json!(["vp8", "opus"]), "{it}");
        let rid = s(&it["id"]);
        let resp = http
            .get(format!("{}/api/v1/recordings/{rid}/media", app.base_url()))
            .bearer_auth(&key)
            .send()
            .await
            .expect("media");
        assert_eq!(resp.status(), 200);
        let body = resp.bytes().await.expect("body");
        assert_eq!(body.len() as i64, it["bytes"].as_i64().expect("bytes"));
        let file = files.path().join(format!("{rid}.webm"));
        std::fs::write(&file, &body).expect("write");
        let p = probe(&file);
        let mut codecs = p.codecs.clone();
        codecs.sort();
        assert_eq!(
            codecs,
            [
                ("audio".into(), "opus".into()),
                ("video".into(), "vp8".into())
            ],
            "{rid}: {p:?}"
        );
        let dur = it["duration_ms"].as_f64().expect("duration") / 1000.0;
        assert!((p.end - dur).abs() <= 1.0, "{rid}: {p:?} vs duration {dur}");
        let skew = (p.audio_start - p.video_start).abs();
        assert!(skew <= 0.040, "{rid}: A/V start offset {skew} s: {p:?}");
        skews.push(skew);
        let errors = decode_errors(&file);
        if !errors.trim().is_empty() {
            let _ = std::fs::copy(&file, Path::new(&artifacts()).join(format!("{rid}.webm")));
        }
        assert!(errors.trim().is_empty(), "{rid}: ffmpeg: {errors}");
        per_minute.push(body.len() as f64 / dur * 60.0);
    }
    // The customer's spans last what their pages showed (the indicator on → off), ±1 s.
    for (span, page) in customer_spans.iter().zip(page_ms) {
        let d = span["duration_ms"].as_f64().expect("d");
        let page = page.as_f64().expect("page ms");
        assert!((d - page).abs() <= 1000.0, "span {d} ms, page {page} ms");
    }
    // Range: the bytes asked for, 206.
    let rid = s(&customer_spans[0]["id"]);
    let whole = std::fs::read(files.path().join(format!("{rid}.webm"))).expect("read");
    let resp = http
        .get(format!("{}/api/v1/recordings/{rid}/media", app.base_url()))
        .bearer_auth(&key)
        .header("range", "bytes=100-1099")
        .send()
        .await
        .expect("range");
    assert_eq!(resp.status(), 206);
    assert_eq!(
        resp.headers()["content-range"],
        format!("bytes 100-1099/{}", whole.len()).as_str()
    );
    assert_eq!(
        resp.bytes().await.expect("body").as_ref(),
        &whole[100..1100]
    );
    println!(
        "recording files: {:.0} bytes/min per participant (mean of {}), A/V start offset max {:.1} ms, end → last recording.ready {:.0} ms",
        per_minute.iter().sum::<f64>() / per_minute.len() as f64,
        per_minute.len(),
        skews.iter().cloned().fold(0f64, f64::max) * 1000.0,
        last_a - ended,
    );
    app.shutdown().await.expect("shutdown");
}
