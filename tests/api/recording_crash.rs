//! The real binary is killed with SIGKILL while it records a routed call (two webrtc-rs
//! participants sending ffmpeg-made VP8 and Opus, consent given over signaling); after a
//! restart on the same data directory the recordings are `interrupted`, download, decode
//! with ffmpeg and hold more than a second of media.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::outbox_restart::{api_key, serve};
use crate::support_call::{Ws, next_json, send, token_of};
use crate::support_media::Participant;
use crate::support_outbox::Api;
use crate::support_recording::{Sender, decode_errors, make_media, probe};

struct Page {
    ws: Ws,
    media: Participant,
    sender: Sender,
}

impl Page {
    async fn join(api: &Api, url: &Value, sender: Sender) -> Page {
        let token = token_of(url);
        let r = api
            .http
            .post(format!("{}/api/v1/join/{token}/connect", api.base))
            .send()
            .await
            .expect("connect");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.expect("json");
        let ws_url = format!("{}/api/v1/ws", api.base.replacen("http", "ws", 1));
        let mut ws = tokio_tungstenite::connect_async(ws_url)
            .await
            .expect("ws")
            .0;
        send(
            &mut ws,
            json!({"type": "join", "v": 2, "credential": v["credential"], "instance": "i"}),
        )
        .await;
        let joined = next_json(&mut ws).await;
        assert_eq!(joined["type"], "joined", "{joined}");
        let id = joined["participant_id"].as_str().expect("id");
        send(&mut ws, json!({"type": "consent", "decision": "given"})).await;
        Page {
            ws,
            media: Participant::new(id).await,
            sender,
        }
    }

    /// Answers the engine's offers waiting on the socket.
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
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_recording_leaves_files_that_decode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = tempfile::tempdir().expect("tempdir");
    let (video, audio) = make_media(media.path(), 4, 30);
    let (video, audio) = (std::sync::Arc::new(video), std::sync::Arc::new(audio));
    let key = api_key(dir.path());
    let (mut child, url) = serve(dir.path());
    let api = Api::new(url, key.clone());
    let (st, s) = api
        .post(
            "/api/v1/sessions",
            json!({"conversation": {"platform": "test", "id": "conv-crash"},
                   "agent": {"id": "agent-1", "name": "Ana Agent"},
                   "customer": {"name": "Sam Customer"},
                   "recording": {"mode": "always"}}),
        )
        .await;
    assert_eq!(st, 201, "{s}");
    let id = s["id"].as_str().expect("id").to_owned();
    let mut pages = [
        Page::join(
            &api,
            &s["agent_url"],
            Sender::new(video.clone(), audio.clone()),
        )
        .await,
        Page::join(&api, &s["customer_url"], Sender::new(video, audio)).await,
    ];
    // Media until both files have been written to for about three seconds.
    let start = tokio::time::Instant::now();
    let mut writing_since = None;
    let mut polled = start;
    loop {
        for p in pages.iter_mut() {
            p.pump().await;
            p.sender.send_due(&p.media, start.elapsed()).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        if writing_since.is_none() && polled.elapsed() >= Duration::from_millis(250) {
            polled = tokio::time::Instant::now();
            let (_, v) = api.get(&format!("/api/v1/sessions/{id}/recordings")).await;
            if v["items"].as_array().is_some_and(|i| i.len() == 2) {
                writing_since = Some(tokio::time::Instant::now());
            }
        }
        if writing_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(3)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "recording never started"
        );
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let (_child, url) = serve(dir.path());
    let api = Api::new(url, key);
    let (st, v) = api.get(&format!("/api/v1/sessions/{id}/recordings")).await;
    assert_eq!(st, 200, "{v}");
    let items = v["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{v}");
    for it in items {
        assert_eq!(it["status"], "interrupted", "{it}");
        let rid = it["id"].as_str().expect("id");
        let r = api
            .http
            .get(format!("{}/api/v1/recordings/{rid}/media", api.base))
            .bearer_auth(&api.key)
            .send()
            .await
            .expect("media");
        assert_eq!(r.status(), 200);
        let body = r.bytes().await.expect("body");
        let file = media.path().join(format!("{rid}.webm"));
        std::fs::write(&file, &body).expect("write");
        let p = probe(&file);
        let errors = decode_errors(&file);
        // A file cut by the kill may end mid-element; nothing else may go wrong.
        assert!(
            errors
                .lines()
                .all(|l| l.contains("ended prematurely") || l.contains("truncat")),
            "{rid}: ffmpeg: {errors}"
        );
        assert!(p.end > 1.0, "{rid}: {} s of media", p.end);
        let mut codecs: Vec<&str> = p.streams.iter().map(|s| s.0.as_str()).collect();
        codecs.sort();
        assert_eq!(codecs, ["opus", "vp8"], "{rid}");
        println!(
            "after SIGKILL: {rid} interrupted, {} bytes, {:.2} s of media, ffmpeg: {:?}",
            body.len(),
            p.end,
            errors.trim()
        );
    }
}
