//! The same code migrates and serves on PostgreSQL (`--features postgres`). Needs a server:
//! `scripts/with-postgres cargo test --features postgres --test postgres` (scripts/test does).
//! The `cluster` module runs two nodes against it with a real NATS broker.
#![cfg(feature = "postgres")]

#[path = "api/support.rs"]
mod support;
#[path = "api/support_outbox.rs"]
mod support_outbox;
#[path = "api/support_python.rs"]
mod support_python;
// Two nodes on one database and a NATS broker (needs `nats-server`).
#[path = "cluster/mod.rs"]
mod cluster;

use sea_orm::{ConnectionTrait, Database};
use serde_json::{Value, json};

async fn fresh_database() -> Option<String> {
    let Ok(admin_url) = std::env::var("SIGHTLINE_TEST_PG_URL") else {
        eprintln!("SKIPPED: SIGHTLINE_TEST_PG_URL is not set (run through scripts/with-postgres)");
        return None;
    };
    let admin = Database::connect(admin_url.as_str())
        .await
        .expect("connect to PostgreSQL");
    let name = format!("sl_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    Some(admin_url.replacen("/postgres?", &format!("/{name}?"), 1))
}

#[tokio::test]
async fn migrates_and_serves_on_postgres() {
    let Some(url) = fresh_database().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = support::config_for(dir.path());
    config.database_url = Some(url.clone());
    let app = sightline::Application::build(config.clone())
        .await
        .expect("app on PostgreSQL");
    let key = app.bootstrap_key().unwrap().to_owned();
    let http = reqwest::Client::new();
    let base = app.base_url();

    let created = http
        .post(format!("{base}/api/v1/sessions"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "pg-1")
        .json(&support::session_body("pg-conv"))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let s: Value = created.json().await.unwrap();
    let id = s["id"].as_str().unwrap().to_owned();
    // The media engine's quality samples: stored and read back (a nullable round trip).
    {
        use sightline::domain::server_quality::{Direction, Sample};
        let db = &app.state().db;
        let sample = |direction, rtt_ms| Sample {
            direction,
            interval_ms: 5000,
            packets: 450,
            lost: 50,
            loss_permille: 100,
            jitter_ms: 12,
            rtt_ms,
            kbps: 820,
            freezes: 1,
        };
        let rows = [
            sample(Direction::Uplink, None),
            sample(Direction::Downlink, Some(35)),
        ];
        sightline::store::server_quality::insert(
            db,
            rows.iter()
                .map(|s| sightline::store::server_quality::NewSample {
                    session_id: id.clone(),
                    participant_id: "p-1".into(),
                    at: chrono::Utc::now(),
                    sample: *s,
                })
                .collect(),
        )
        .await
        .unwrap();
        let back: Vec<Sample> = sightline::store::server_quality::list(db, &id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.sample)
            .collect();
        assert_eq!(back, rows);
    }
    let again = http
        .post(format!("{base}/api/v1/sessions"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "pg-1")
        .json(&support::session_body("pg-conv"))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        http.get(s["customer_url"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    let list: Value = http
        .get(format!(
            "{base}/api/v1/sessions?conversation_id=pg-conv&status=created"
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let ended: Value = http
        .post(format!("{base}/api/v1/sessions/{id}/end"))
        .bearer_auth(&key)
        .json(&json!({"reason": "done"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ended["status"], "ended");
    let events: Value = http
        .get(format!("{base}/api/v1/sessions/{id}/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["items"].as_array().unwrap().last().unwrap()["kind"],
        "session.ended"
    );
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sightline_sessions{status=\"ended\"} 1"),
        "{metrics}"
    );
    recordings_on_postgres(&app, &http, &key, &id).await;
    app.shutdown().await.unwrap();

    // A second instance on the same database (and secret) sees the same data.
    let app = sightline::Application::build(config).await.unwrap();
    let r = http
        .get(format!("{}/api/v1/sessions/{id}", app.base_url()))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.shutdown().await.unwrap();
}

/// Recordings at rest on PostgreSQL: a span through the store, the listing, an export, a
/// retention round (its legal-hold subquery), then erasure.
async fn recordings_on_postgres(
    app: &sightline::Application,
    http: &reqwest::Client,
    key: &str,
    id: &str,
) {
    use sightline::recording::contract::{SpanEnd, SpanStart, SpanStore};
    let base = app.base_url();
    let state = app.state();
    let rec = uuid::Uuid::new_v4().to_string();
    let mut w = state
        .recordings
        .open(SpanStart {
            recording_id: rec.clone(),
            session_id: id.to_owned(),
            participant_id: "p1".into(),
            started_at: std::time::SystemTime::now(),
            content_type: "video/webm",
        })
        .await
        .expect("span opens");
    w.append(b"webm bytes").unwrap();
    state
        .recordings
        .finish(
            &rec,
            w,
            SpanEnd {
                duration_ms: 1000,
                codecs: vec!["vp8".into()],
                failure: None,
            },
        )
        .await
        .expect("finishes");
    let get = |path: String| http.get(format!("{base}{path}")).bearer_auth(key).send();
    let list: Value = get(format!("/api/v1/sessions/{id}/recordings"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"][0]["status"], "ready", "{list}");
    let media = get(format!("/api/v1/recordings/{rec}/media"))
        .await
        .unwrap();
    assert_eq!(media.bytes().await.unwrap().as_ref(), b"webm bytes");
    let export = get("/api/v1/exports?email=SAM@example.com".into())
        .await
        .unwrap();
    assert_eq!(export.status(), 200);
    let r = http
        .post(format!("{base}/api/v1/sessions/{id}/hold"))
        .bearer_auth(key)
        .json(&json!({"reason": "pg"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
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
    assert_eq!(purged.recordings, 0, "held");
    let r = http
        .delete(format!("{base}/api/v1/sessions/{id}/hold"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .delete(format!("{base}/api/v1/sessions/{id}"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let media = get(format!("/api/v1/recordings/{rec}/media"))
        .await
        .unwrap();
    assert_eq!(media.status(), 404);
}
