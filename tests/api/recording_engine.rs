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
    Coded, FileStore, decode_errors, decoded_frames, make_media, probe, vp8_payloads,
};

/// One participant's media, sent on the media clock.
pub(crate) struct Sender {
    video: Vec<Coded>,
    audio: Vec<Coded>,
    next_video: usize,
    next_audio: usize,
    vseq: u16,
    aseq: u16,
    vbase: u32,
    abase: u32,
}

impl Sender {
    pub(crate) fn new(video: Vec<Coded>, audio: Vec<Coded>) -> Sender {
        Sender {
            video,
            audio,
            next_video: 0,
            next_audio: 0,
            vseq: rand::random(),
            aseq: rand::random(),
            vbase: rand::random(),
            abase: rand::random(),
        }
    }

    /// Sends everything due `elapsed` into the stream (looping the media).
    pub(crate) async fn send_due(&mut self, p: &Participant, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        loop {
            let n = self.next_video;
            let f = &self.video[n % self.video.len()];
            let lap = (n / self.video.len()) as u64;
            let lap_len = self.video.len() as u64 * 3000;
            let ts = u64::from(f.ts) + lap * lap_len;
            if ts * 1_000_000 / 90_000 > us {
                break;
            }
            let parts = vp8_payloads(&f.data, 1100);
            let last = parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                self.vseq = self.vseq.wrapping_add(1);
                let rtp_ts = self.vbase.wrapping_add(ts as u32);
                p.send_rtp(true, self.vseq, rtp_ts, i + 1 == last, part)
                    .await;
            }
            self.next_video += 1;
        }
        loop {
            let n = self.next_audio;
            let a = &self.audio[n % self.audio.len()];
            let lap = (n / self.audio.len()) as u64;
            let ts = u64::from(a.ts) + lap * self.audio.len() as u64 * 960;
            if ts * 1_000_000 / 48_000 > us {
                break;
            }
            self.aseq = self.aseq.wrapping_add(1);
            let rtp_ts = self.abase.wrapping_add(ts as u32);
            p.send_rtp(false, self.aseq, rtp_ts, false, a.data.clone())
                .await;
            self.next_audio += 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routed_participant_is_recorded_into_a_webm_that_ffmpeg_plays() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A key frame every second: the stream cannot answer key-frame requests.
    let (video, audio) = make_media(dir.path(), 4, 30);
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
        .map(|_| Sender::new(video.clone_all(), audio.clone_all()))
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

pub(crate) trait CloneAll {
    fn clone_all(&self) -> Vec<Coded>;
}

impl CloneAll for Vec<Coded> {
    fn clone_all(&self) -> Vec<Coded> {
        self.iter()
            .map(|c| Coded {
                ts: c.ts,
                data: c.data.clone(),
            })
            .collect()
    }
}
