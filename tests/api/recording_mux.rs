//! The recorder's muxer against real codecs: ffmpeg makes VP8 and Opus, the test sends them
//! as RTP (arrival jitter, audio starting before the video, the video's RTP clock wrapping)
//! through the muxer, and ffprobe/ffmpeg check the WebM: both streams, the duration, the
//! start offsets, a clean decode, and a file cut anywhere still decoding up to the cut.

use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sightline::media::Kind;
use sightline::recording::mux::SpanMuxer;

use crate::support_recording::{
    Coded, decode_errors, decoded_frames, make_media, probe, vp8_payloads,
};

/// Every RTP packet of the two streams with its arrival, in arrival order.
fn packets(
    video: &[Coded],
    audio: &[Coded],
    video_delay: Duration,
) -> Vec<(Duration, Kind, rtc::rtp::Packet)> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut all = Vec::new();
    // The video's RTP clock wraps 1.5 s in.
    let vbase = u32::MAX - 135_000;
    let mut seq = 65_000u16;
    for f in video {
        let at = video_delay
            + Duration::from_micros(u64::from(f.ts) * 1_000_000 / 90_000)
            + Duration::from_millis(rng.random_range(0..12));
        let parts = vp8_payloads(&f.data, 1100);
        let n = parts.len();
        for (i, p) in parts.into_iter().enumerate() {
            seq = seq.wrapping_add(1);
            all.push((
                at,
                Kind::Video,
                rtp(0xabc, seq, vbase.wrapping_add(f.ts), i + 1 == n, p),
            ));
        }
    }
    let abase = rng.random::<u32>();
    for (n, a) in audio.iter().enumerate() {
        let at = Duration::from_micros(u64::from(a.ts) * 1_000_000 / 48_000)
            + Duration::from_millis(rng.random_range(0..12));
        all.push((
            at,
            Kind::Audio,
            rtp(
                0xdef,
                n as u16,
                abase.wrapping_add(a.ts),
                false,
                a.data.clone(),
            ),
        ));
    }
    all.sort_by_key(|p| p.0);
    all
}

fn rtp(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            marker,
            ssrc,
            sequence_number: seq,
            timestamp: ts,
            payload_type: 96,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

#[test]
fn vp8_and_opus_from_rtp_make_a_webm_that_ffmpeg_plays_even_cut_short() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (video, audio) = make_media(dir.path(), 4, 60);
    // The video starts 300 ms after the audio (its first key frame is time zero).
    let all = packets(&video, &audio, Duration::from_millis(300));
    let t0 = Instant::now();
    let mut m = SpanMuxer::new();
    let mut file = Vec::new();
    let started = Instant::now();
    for (at, kind, p) in &all {
        m.push(*kind, p, t0 + *at);
        file.extend(m.take());
    }
    let first_pass = started.elapsed();
    // The muxing cost per packet: the mean of 20 more passes (of a fresh muxer each).
    let timed = Instant::now();
    for _ in 0..20 {
        let mut m = SpanMuxer::new();
        for (at, kind, p) in &all {
            m.push(*kind, p, t0 + *at);
            std::hint::black_box(m.take());
        }
    }
    let per_packet = timed.elapsed() / (20 * all.len() as u32);
    assert!(
        first_pass < Duration::from_secs(2),
        "muxing took {first_pass:?}"
    );
    assert_eq!(
        m.started(),
        Some(
            t0 + all
                .iter()
                .find(|p| p.1 == Kind::Video)
                .map(|p| p.0)
                .expect("video")
        )
    );
    assert_eq!(m.codecs(), ["vp8", "opus"]);
    let path = dir.path().join("out.webm");
    std::fs::write(&path, &file).expect("write");

    let p = probe(&path);
    let mut codecs: Vec<&str> = p.streams.iter().map(|s| s.0.as_str()).collect();
    codecs.sort();
    assert_eq!(codecs, ["opus", "vp8"], "one VP8 and one Opus stream");
    let starts: Vec<f64> = p.streams.iter().map(|s| s.1).collect();
    assert!(
        (starts[0] - starts[1]).abs() <= 0.040,
        "stream start times {starts:?} differ by more than 40 ms"
    );
    assert!((p.end - 4.0).abs() <= 1.0, "duration {} s", p.end);
    assert!(
        (m.duration_ms() as f64 / 1000.0 - p.end).abs() < 0.1,
        "the muxer's duration {} ms vs ffprobe's {} s",
        m.duration_ms(),
        p.end
    );
    let errors = decode_errors(&path);
    assert!(errors.trim().is_empty(), "ffmpeg decode errors: {errors}");
    let (vf, af) = decoded_frames(&path);
    assert!(vf >= 115, "{vf} video frames decoded");
    assert!(af >= 180, "{af} audio frames decoded");

    // Cut at an arbitrary point (a crash between two flushes): what is before still plays.
    let cut_at = file.len() * 11 / 20 + 7;
    let cut = dir.path().join("cut.webm");
    std::fs::write(&cut, &file[..cut_at]).expect("write");
    let pc = probe(&cut);
    assert_eq!(pc.streams.len(), 2);
    let (cv, ca) = decoded_frames(&cut);
    assert!(
        cv >= vf * 2 / 5 && cv < vf,
        "{cv} of {vf} video frames before the cut"
    );
    assert!(
        ca >= af * 2 / 5 && ca < af,
        "{ca} of {af} audio frames before the cut"
    );
    assert!(pc.end > 1.5, "the cut file plays {} s", pc.end);

    let bytes_per_minute = file.len() as f64 / p.end * 60.0;
    println!(
        "recording_mux: {} packets, {} bytes for {:.2} s = {:.0} bytes/minute \
         (VP8 300 kbit/s 320x240 + Opus 32 kbit/s); muxing {:?} per packet (this build)",
        all.len(),
        file.len(),
        p.end,
        bytes_per_minute,
        per_packet
    );
    let cut_errors = decode_errors(&cut);
    println!("recording_mux: ffmpeg on the cut file said: {cut_errors:?}");
}
