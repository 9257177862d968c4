//! Recording through the real engine: two webrtc-rs participants in a routed call send
//! ffmpeg-made VP8 and Opus in real time; the customer is recorded into a plain file by the
//! recorder; ffprobe and ffmpeg check the file.

use std::sync::Arc;
use std::time::Duration;

use sightline::domain::{Role, Seat};
use sightline::media::{Command, Event, MediaEngine, MediaSettings};
use sightline::recording::Recorder;
use tokio_util::sync::CancellationToken;

use crate::support_media::Participant;
use crate::support_recording::{
    FileStore, Sender, decode_errors, decoded_frames, make_media, probe,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_participant_is_recorded_into_a_webm_that_ffmpeg_plays() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A key frame every second: the stream cannot answer key-frame requests.
    let (video, audio) = make_media(dir.path(), 4, 30);
    let (video, audio) = (Arc::new(video), Arc::new(audio));
    let stop = CancellationToken::new();
    let engine = MediaEngine::start(&MediaSettings::default(), stop.clone())
        .await
        .expect("engine");
    let store = FileStore::new(dir.path());
    let recorder = Recorder::start(&engine, Arc::new(store.clone())).await;
    let call = format!("call-{}", rand::random::<u32>());
    let mut events = engine.subscribe(&call).await;
    let mut parts = vec![
        ("agent", Participant::new("agent").await, Role::Agent),
        (
            "customer",
            Participant::new("customer").await,
            Role::Customer,
        ),
    ];
    for (id, _, role) in &parts {
        engine
            .command(Command::Join {
                call: call.clone(),
                participant: (*id).to_owned(),
                seat: Seat::new(*role, None),
            })
            .await
            .expect("join");
    }
    let mut senders: Vec<Sender> = parts
        .iter()
        .map(|_| Sender::new(video.clone(), audio.clone()))
        .collect();
    let start = tokio::time::Instant::now();
    let on_at = Duration::from_millis(1500);
    let off_at = Duration::from_millis(6500);
    let mut on = false;
    while start.elapsed() < off_at {
        while let Ok(ev) = events.try_recv() {
            if let Event::Offer {
                participant, sdp, ..
            } = ev
                && let Some((_, p, _)) = parts.iter_mut().find(|(id, _, _)| *id == participant)
            {
                let answer = p.answer(&sdp).await;
                engine
                    .command(Command::Answer {
                        call: call.clone(),
                        participant: participant.clone(),
                        sdp: answer,
                    })
                    .await
                    .expect("answer");
            }
        }
        if !on && start.elapsed() >= on_at {
            recorder.set(&call, "customer", true).await.expect("on");
            on = true;
        }
        for ((_, p, _), s) in parts.iter().zip(senders.iter_mut()) {
            s.send_due(p, start.elapsed()).await;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    recorder.set(&call, "customer", false).await.expect("off");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while store.finished().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no span finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finished = store.finished();
    assert_eq!(finished.len(), 1, "one span: the customer's");
    let (span, end, path) = &finished[0];
    assert_eq!(
        (span.session_id.as_str(), span.participant_id.as_str()),
        (call.as_str(), "customer")
    );
    assert_eq!(end.failure, None);
    assert_eq!(end.codecs, ["vp8", "opus"]);
    let (stats, _, _) = engine.stats();
    assert!(stats.rtp_recorded > 300, "{stats:?}");
    assert_eq!(stats.recorded_dropped, 0, "{stats:?}");

    let p = probe(path);
    let mut codecs: Vec<&str> = p.streams.iter().map(|s| s.0.as_str()).collect();
    codecs.sort();
    assert_eq!(codecs, ["opus", "vp8"]);
    assert!(
        (p.streams[0].1 - p.streams[1].1).abs() <= 0.040,
        "start times {:?}",
        p.streams
    );
    // Recorded for 5 s; the file starts at the first key frame after `on` (≤ 1 s later).
    assert!((3.9..=5.2).contains(&p.end), "duration {} s", p.end);
    assert!((end.duration_ms as f64 / 1000.0 - p.end).abs() < 0.1);
    let errors = decode_errors(path);
    assert!(errors.trim().is_empty(), "decode errors: {errors}");
    let (vf, af) = decoded_frames(path);
    assert!(vf >= 100 && af >= 180, "{vf} video, {af} audio frames");
    let bytes = std::fs::metadata(path).expect("file").len();
    println!(
        "recording_engine: {bytes} bytes for {:.2} s = {:.0} bytes/minute; engine {stats:?}",
        p.end,
        bytes as f64 / p.end * 60.0
    );
    recorder.stop_all().await;
    for (_, p, _) in &parts {
        let _ = p.pc.close().await;
    }
    stop.cancel();
}
