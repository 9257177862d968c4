//! Recordings at rest: spans written through the real `SpanStore`, read back through the
//! API (Range, 416, 404), deleted, purged by retention, held, erased (key destroyed: a
//! surviving copy of the file cannot be opened), exported (verified with the real
//! `openssl` and `sha256sum`), and recovered as `interrupted` after a restart.

use std::time::{Duration, SystemTime};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sightline::recording::contract::{SpanEnd, SpanStart, SpanStore};

use crate::support::{TestApp, assert_problem, config_for};

/// Bytes that look like nothing in particular (and are easy to spot in a file).
fn payload(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Records `chunks` for a participant of `session` through the app's store; finishes it
/// when `finish`. Returns the recording id and the plaintext.
async fn record(
    app: &TestApp,
    session: &str,
    participant: &str,
    chunks: &[Vec<u8>],
    finish: bool,
) -> (String, Vec<u8>) {
    let store = app.app.state().recordings.clone();
    let id = uuid::Uuid::new_v4().to_string();
    let mut w = store
        .open(SpanStart {
            recording_id: id.clone(),
            session_id: session.to_owned(),
            participant_id: participant.to_owned(),
            started_at: SystemTime::now(),
            content_type: "video/webm",
        })
        .await
        .expect("span opens");
    let mut plain = Vec::new();
    for c in chunks {
        w.append(c).expect("append");
        w.flush().expect("flush");
        plain.extend_from_slice(c);
    }
    assert_eq!(w.len(), plain.len() as u64);
    if finish {
        store
            .finish(
                &id,
                w,
                SpanEnd {
                    duration_ms: 2500,
                    codecs: vec!["vp8".into(), "opus".into()],
                    failure: None,
                },
            )
            .await
            .expect("span finishes");
    } else {
        std::mem::forget(w); // A crash: the writer never finishes.
    }
    (id, plain)
}

fn sealed_path(app: &TestApp, session: &str, id: &str) -> std::path::PathBuf {
    app.dir
        .path()
        .join("recordings")
        .join(session)
        .join(format!("{id}.webm.sealed"))
}

async fn events(app: &TestApp, session: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/sessions/{session}/events")).await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["items"].as_array().cloned().unwrap_or_default()
}

fn kinds(ev: &[Value]) -> Vec<String> {
    ev.iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn get_range(app: &TestApp, id: &str, range: Option<&str>) -> reqwest::Response {
    let mut req = app
        .http
        .get(app.url(&format!("/api/v1/recordings/{id}/media")))
        .bearer_auth(&app.key);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    req.send().await.expect("request")
}

async fn end(app: &TestApp, session: &str) {
    let r = app
        .post(&format!("/api/v1/sessions/{session}/end"), &json!({}))
        .await;
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn spans_round_trip_through_the_api_with_ranges_and_deletion() {
    let app = TestApp::spawn().await;
    let s = app.create_session("rec-1").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let chunks = vec![payload(5000, 1), payload(70_000, 2), payload(3, 3)];
    let (id, plain) = record(&app, &sid, "p-agent", &chunks, true).await;

    // At rest: no plaintext in the file.
    let file = std::fs::read(sealed_path(&app, &sid, &id)).expect("sealed file");
    assert!(!file.windows(64).any(|w| w == &plain[1000..1064]));

    let list: Value = app
        .get(&format!("/api/v1/sessions/{sid}/recordings"))
        .await
        .json()
        .await
        .unwrap();
    let item = &list["items"][0];
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["status"], "ready");
    assert_eq!(item["bytes"], plain.len() as u64);
    assert_eq!(item["codecs"], json!(["vp8", "opus"]));
    assert_eq!(item["duration_ms"], 2500);
    let sha = hex::encode(Sha256::digest(&plain));
    assert_eq!(item["sha256"], sha.as_str());
    let one: Value = app
        .get(&format!("/api/v1/recordings/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["sha256"], sha.as_str());

    let r = get_range(&app, &id, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.headers()["content-type"], "video/webm");
    assert_eq!(r.bytes().await.unwrap(), plain);

    let r = get_range(&app, &id, Some("bytes=4990-5009")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 4990-5009/{}", plain.len()).as_str()
    );
    assert_eq!(r.bytes().await.unwrap(), plain[4990..5010]);
    let r = get_range(&app, &id, Some("bytes=-7")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), plain[plain.len() - 7..]);
    let r = get_range(&app, &id, Some("bytes=70000-")).await;
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), plain[70_000..]);
    let r = get_range(&app, &id, Some(&format!("bytes={}-", plain.len()))).await;
    assert_eq!(r.status(), 416);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes */{}", plain.len()).as_str()
    );

    // Guessed ids.
    let guess = uuid::Uuid::new_v4();
    assert_problem(
        get_range(&app, &guess.to_string(), None).await,
        404,
        "recording_not_found",
    )
    .await;
    assert_problem(
        app.get("/api/v1/recordings/not-a-uuid").await,
        404,
        "recording_not_found",
    )
    .await;

    let ev = events(&app, &sid).await;
    let k = kinds(&ev);
    assert!(k.contains(&"recording.ready".to_owned()), "{k:?}");
    let downloads: Vec<&Value> = ev
        .iter()
        .filter(|e| e["kind"] == "recording.downloaded")
        .collect();
    // The whole download is audited; the ranges that do not start at 0 are not.
    assert_eq!(downloads.len(), 1, "{k:?}");
    assert!(
        downloads[0]["data"]["viewer"]
            .as_str()
            .unwrap()
            .starts_with("api_key:")
    );

    // Delete: the file is gone, the id is 404.
    let r = app
        .http
        .delete(app.url(&format!("/api/v1/recordings/{id}")))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(!sealed_path(&app, &sid, &id).exists(), "file removed");
    assert_problem(get_range(&app, &id, None).await, 404, "recording_not_found").await;
    assert_problem(
        app.get(&format!("/api/v1/recordings/{id}")).await,
        404,
        "recording_not_found",
    )
    .await;
    assert!(kinds(&events(&app, &sid).await).contains(&"recording.deleted".to_owned()));
}

#[tokio::test]
async fn a_legal_hold_blocks_deletion_and_erasure_destroys_the_key() {
    let app = TestApp::spawn().await;
    let s = app.create_session("rec-hold").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let (id, _) = record(&app, &sid, "p-customer", &[payload(2000, 9)], true).await;

    // A live session is not erased.
    let del = |path: String| {
        let app = &app;
        async move {
            app.http
                .delete(app.url(&path))
                .bearer_auth(&app.key)
                .send()
                .await
                .unwrap()
        }
    };
    assert_problem(
        del(format!("/api/v1/sessions/{sid}")).await,
        409,
        "session_live",
    )
    .await;
    end(&app, &sid).await;

    let r = app
        .post(
            &format!("/api/v1/sessions/{sid}/hold"),
            &json!({"reason": "case 17"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    assert_problem(
        del(format!("/api/v1/sessions/{sid}")).await,
        409,
        "legal_hold",
    )
    .await;
    assert_problem(
        del(format!("/api/v1/recordings/{id}")).await,
        409,
        "legal_hold",
    )
    .await;
    assert_problem(
        del("/api/v1/customers?email=sam@example.com".into()).await,
        409,
        "legal_hold",
    )
    .await;
    // Retention skips it too.
    let state = app.app.state();
    let cfg = sightline::config::retention::RetentionConfig {
        recordings_days: Some(0),
        snapshots_and_chat_days: Some(0),
        sessions_days: Some(0),
    };
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    let purged =
        sightline::services::recordings::purge_expired(&state.db, &state.recordings, &cfg, later)
            .await
            .unwrap();
    assert_eq!(purged.recordings, 0);
    assert_eq!(purged.sessions, 0);
    assert!(sealed_path(&app, &sid, &id).exists());

    assert_eq!(
        del(format!("/api/v1/sessions/{sid}/hold")).await.status(),
        204
    );

    // A backup of the file, made before the erasure.
    let path = sealed_path(&app, &sid, &id);
    let backup = std::fs::read(&path).unwrap();
    let r = del(format!("/api/v1/sessions/{sid}")).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["recordings"], 1);
    assert!(!path.exists(), "file removed");
    assert_problem(get_range(&app, &id, None).await, 404, "recording_not_found").await;

    // The backup put back cannot be opened: the session key is gone.
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &backup).unwrap();
    use sea_orm::EntityTrait;
    let row = sightline::store::recordings::recording::Entity::find_by_id(id.clone())
        .one(&state.db)
        .await
        .unwrap()
        .expect("row kept as deleted");
    assert_eq!(row.status, "deleted");
    assert!(matches!(
        state.recordings.reader(&row).await,
        Err(sightline::recording::files::ReadError::KeyDestroyed)
    ));

    // The timeline says it happened, without personal data.
    let ev = events(&app, &sid).await;
    assert!(kinds(&ev).contains(&"session.erased".to_owned()));
    let all = serde_json::to_string(&ev).unwrap();
    assert!(
        !all.contains("Sam") && !all.contains("sam@example.com"),
        "{all}"
    );
    let session: Value = app
        .get(&format!("/api/v1/sessions/{sid}"))
        .await
        .json()
        .await
        .unwrap();
    let text = session.to_string();
    assert!(
        !text.contains("sam@example.com") && !text.contains("\"Sam\""),
        "{text}"
    );
}

#[tokio::test]
async fn retention_purges_expired_recordings_and_sessions() {
    let app = TestApp::spawn().await;
    let s = app.create_session("rec-ret").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let (id, _) = record(&app, &sid, "p1", &[payload(100, 4)], true).await;
    let state = app.app.state();
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    // Recordings kept 1 day: nothing yet.
    let keep = sightline::config::retention::RetentionConfig {
        recordings_days: Some(1),
        ..Default::default()
    };
    let p =
        sightline::services::recordings::purge_expired(&state.db, &state.recordings, &keep, later)
            .await
            .unwrap();
    assert_eq!(p.recordings, 0);
    assert!(sealed_path(&app, &sid, &id).exists());
    // 0 days: the recording expired.
    let cfg = sightline::config::retention::RetentionConfig {
        recordings_days: Some(0),
        ..Default::default()
    };
    let p =
        sightline::services::recordings::purge_expired(&state.db, &state.recordings, &cfg, later)
            .await
            .unwrap();
    assert_eq!(p.recordings, 1);
    assert!(!sealed_path(&app, &sid, &id).exists());
    assert_problem(get_range(&app, &id, None).await, 404, "recording_not_found").await;
    let ev = events(&app, &sid).await;
    let purged = ev
        .iter()
        .find(|e| e["kind"] == "retention.purged")
        .expect("retention.purged");
    assert_eq!(purged["data"]["purged"]["recordings"], 1);

    // Sessions: a live one stays; an ended one goes.
    let sessions = sightline::config::retention::RetentionConfig {
        sessions_days: Some(0),
        ..Default::default()
    };
    let p = sightline::services::recordings::purge_expired(
        &state.db,
        &state.recordings,
        &sessions,
        later,
    )
    .await
    .unwrap();
    assert_eq!(p.sessions, 0);
    end(&app, &sid).await;
    let p = sightline::services::recordings::purge_expired(
        &state.db,
        &state.recordings,
        &sessions,
        later,
    )
    .await
    .unwrap();
    assert_eq!(p.sessions, 1);
    assert_eq!(
        app.get(&format!("/api/v1/sessions/{sid}")).await.status(),
        404
    );
}

#[tokio::test]
async fn a_restart_turns_writing_into_interrupted_and_it_still_reads() {
    let app = TestApp::spawn().await;
    let s = app.create_session("rec-crash").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let (id, plain) = record(
        &app,
        &sid,
        "p1",
        &[payload(900, 1), payload(1100, 2)],
        false,
    )
    .await;
    let TestApp {
        app: first,
        dir,
        key,
        ..
    } = app;
    first.shutdown().await.expect("stops");
    let second = sightline::Application::build(config_for(dir.path()))
        .await
        .expect("restarts");
    let app = TestApp {
        base: second.base_url(),
        app: second,
        dir,
        key,
        http: reqwest::Client::new(),
    };
    let one: Value = app
        .get(&format!("/api/v1/recordings/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["status"], "interrupted", "{one}");
    assert_eq!(one["bytes"], plain.len() as u64);
    assert_eq!(one["sha256"], hex::encode(Sha256::digest(&plain)).as_str());
    let r = get_range(&app, &id, None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap(), plain);
}

#[tokio::test]
async fn an_export_verifies_with_openssl_and_sha256sum() {
    let app = TestApp::spawn().await;
    let s = app.create_session("rec-export").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let (id, plain) = record(&app, &sid, "p1", &[payload(4096, 7)], true).await;
    let r = app.get("/api/v1/exports?email=SAM@example.com").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let zip_bytes = r.bytes().await.unwrap();
    let out = tempfile::tempdir().unwrap();
    zip::ZipArchive::new(std::io::Cursor::new(zip_bytes.to_vec()))
        .expect("a zip")
        .extract(out.path())
        .expect("extracts");
    let pem = app
        .get("/api/v1/exports/public-key")
        .await
        .text()
        .await
        .unwrap();
    std::fs::write(out.path().join("export-key.pem"), pem).unwrap();
    let rec = out
        .path()
        .join(format!("sessions/{sid}/recordings/{id}.webm"));
    assert_eq!(
        std::fs::read(&rec).unwrap(),
        plain,
        "decrypted in the export"
    );

    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .current_dir(out.path())
            .output()
            .expect("runs")
    };
    let verify = |file: &str| {
        let sig = format!("{file}.sig");
        run(
            "openssl",
            &[
                "pkeyutl",
                "-verify",
                "-pubin",
                "-inkey",
                "export-key.pem",
                "-rawin",
                "-in",
                file,
                "-sigfile",
                &sig,
            ],
        )
    };
    let v = verify("manifest.json");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let v = verify("SHA256SUMS");
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let c = run("sha256sum", &["-c", "SHA256SUMS"]);
    assert!(c.status.success(), "{}", String::from_utf8_lossy(&c.stdout));
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f["path"] == format!("sessions/{sid}/timeline.json"))
    );
    assert!(
        files
            .iter()
            .any(|f| f["sha256"] == hex::encode(Sha256::digest(&plain)).as_str())
    );

    // Tampering is caught: a changed file by sha256sum, a changed manifest by openssl.
    std::fs::write(&rec, b"not the recording").unwrap();
    assert!(
        !run("sha256sum", &["-c", "--quiet", "SHA256SUMS"])
            .status
            .success()
    );
    let mpath = out.path().join("manifest.json");
    let mut m = std::fs::read(&mpath).unwrap();
    m[10] ^= 1;
    std::fs::write(&mpath, m).unwrap();
    assert!(!verify("manifest.json").status.success());

    assert_problem(
        app.get("/api/v1/exports?email=nobody@example.com").await,
        404,
        "nothing_to_export",
    )
    .await;
    assert_problem(app.get("/api/v1/exports").await, 422, "export_subject").await;
}

#[tokio::test]
async fn the_report_link_plays_the_sessions_recordings_only() {
    let app = TestApp::spawn().await;
    let s = app.create_session("rec-report").await;
    let sid = s["id"].as_str().unwrap().to_owned();
    let (id, plain) = record(&app, &sid, "p1", &[payload(300, 5)], true).await;
    let report = s["report_url"].as_str().expect("report_url").to_owned();
    let token = report.rsplit('/').next().unwrap().to_owned();
    // The page has a player per recording, fed by the report link's own media route.
    let page = app
        .http
        .get(&report)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(&format!("data-recording=\"{id}\"")), "{page}");
    assert!(page.contains(&format!("src=\"/r/{token}/recordings/{id}\"")));
    assert!(page.contains("data-offset-ms=\"0\""));
    assert!(page.contains("/report-recordings.js"));
    let r = app
        .http
        .get(app.url(&format!("/r/{token}/recordings/{id}")))
        .header("range", "bytes=0-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap(), plain[..100]);
    let played = crate::support::eventually(Duration::from_secs(5), "recording.played", || async {
        events(&app, &sid)
            .await
            .into_iter()
            .find(|e| e["kind"] == "recording.played")
    })
    .await;
    assert_eq!(played["data"]["viewer"], "report_page");
    assert_eq!(played["data"]["recording_id"], id.as_str());
    // Another session's report link does not reach it.
    let other = app.create_session("rec-report-2").await;
    let other_token = other["report_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let r = app
        .http
        .get(app.url(&format!("/r/{other_token}/recordings/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .http
        .get(app.url(&format!("/r/garbage/recordings/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}
