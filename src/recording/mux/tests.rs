use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};

use super::*;

fn rtp(ssrc: u32, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) -> rtc::rtp::Packet {
    rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            marker,
            ssrc,
            sequence_number: seq,
            timestamp: ts,
            ..Default::default()
        },
        payload: payload.into(),
    }
}

fn key_frame() -> Vec<u8> {
    // Descriptor (S, partition 0), then a 320x240 key frame header.
    let mut p = vec![
        0x10, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00,
    ];
    p.resize(200, 0x11);
    p
}

fn delta_frame() -> Vec<u8> {
    let mut p = vec![0x10, 0x31, 0x02, 0x00];
    p.resize(60, 0x22);
    p
}

/// Counts SimpleBlocks per track number by walking the stream's clusters.
fn blocks(out: &[u8]) -> (usize, usize) {
    let (mut v, mut a) = (0, 0);
    let mut i = 0;
    while i + 3 < out.len() {
        // A SimpleBlock ID, then a one- or two-byte size.
        let (len, skip) = match (out[i], out[i + 1]) {
            (0xa3, s) if s & 0x80 != 0 => (usize::from(s & 0x7f), 2),
            (0xa3, s) if s & 0xc0 == 0x40 => {
                ((usize::from(s & 0x3f) << 8) | usize::from(out[i + 2]), 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        if len >= 4 && i + skip + len <= out.len() {
            match out[i + skip] {
                0x81 => v += 1,
                0x82 => a += 1,
                _ => {}
            }
            i += skip + len;
        } else {
            i += 1;
        }
    }
    (v, a)
}

#[test]
fn the_file_starts_at_the_first_key_frame_and_drops_earlier_audio() {
    let t0 = Instant::now();
    let mut m = SpanMuxer::new();
    // 10 audio packets (200 ms) and delta frames: nothing is written yet.
    for i in 0..10u16 {
        let at = t0 + Duration::from_millis(20 * u64::from(i));
        m.push(
            Kind::Audio,
            &rtp(1, i, 960 * u32::from(i), false, vec![0xfc; 40]),
            at,
        );
        if i % 3 == 0 {
            m.push(
                Kind::Video,
                &rtp(2, i / 3, 1800 * u32::from(i), true, delta_frame()),
                at,
            );
        }
    }
    assert!(m.take().is_empty());
    assert!(m.wants_key_frame());
    assert!(m.started().is_none());
    // The key frame at 200 ms starts the file there.
    let at = t0 + Duration::from_millis(200);
    m.push(Kind::Video, &rtp(2, 4, 18_000, true, key_frame()), at);
    assert_eq!(m.started(), Some(at));
    assert!(!m.wants_key_frame());
    let mut seq = 4u16;
    for i in 10..60u16 {
        let at = t0 + Duration::from_millis(20 * u64::from(i));
        m.push(
            Kind::Audio,
            &rtp(1, i, 960 * u32::from(i), false, vec![0xfc; 40]),
            at,
        );
        if i % 2 == 1 {
            seq += 1;
            m.push(
                Kind::Video,
                &rtp(2, seq, 1800 * u32::from(i), true, delta_frame()),
                at,
            );
        }
    }
    let out = m.take();
    assert_eq!(&out[..4], [0x1a, 0x45, 0xdf, 0xa3]);
    let (v, a) = blocks(&out);
    assert_eq!(v, 1 + 25, "the key frame and the deltas after it");
    assert_eq!(a, 50, "audio from time zero on only");
    assert_eq!(m.codecs(), ["vp8", "opus"]);
    assert!(
        (970..=1000).contains(&m.duration_ms()),
        "{}",
        m.duration_ms()
    );
}

#[test]
fn without_video_the_file_is_audio_only_from_the_first_packet() {
    let t0 = Instant::now();
    let mut m = SpanMuxer::new();
    // RTP timestamps across the 32-bit wrap.
    let start = u32::MAX - 960 * 20;
    for i in 0..200u32 {
        let at = t0 + Duration::from_millis(20 * u64::from(i));
        m.push(
            Kind::Audio,
            &rtp(
                5,
                i as u16,
                start.wrapping_add(960 * i),
                false,
                vec![0xfc; 30],
            ),
            at,
        );
    }
    assert_eq!(m.started(), Some(t0));
    let out = m.take();
    let (v, a) = blocks(&out);
    assert_eq!((v, a), (200, 0), "the one track is number 1");
    assert_eq!(m.codecs(), ["opus"]);
    assert!(
        (3990..=4000).contains(&m.duration_ms()),
        "{}",
        m.duration_ms()
    );
    // Video now is left out, and said so.
    m.push(
        Kind::Video,
        &rtp(6, 1, 0, true, key_frame()),
        t0 + Duration::from_secs(4),
    );
    assert!(m.late_video());
}

#[test]
fn a_quiet_span_starts_audio_only_on_tick() {
    let t0 = Instant::now();
    let mut m = SpanMuxer::new();
    m.push(Kind::Audio, &rtp(5, 1, 0, false, vec![0xfc; 30]), t0);
    m.tick(t0 + Duration::from_secs(1));
    assert!(m.started().is_none());
    m.tick(t0 + AUDIO_ONLY_AFTER);
    assert_eq!(m.started(), Some(t0));
    assert_eq!(blocks(&m.take()), (1, 0));
}

#[test]
fn garbage_rtp_never_panics_and_never_writes_a_broken_stream() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let t0 = Instant::now();
    for round in 0..20 {
        let mut m = SpanMuxer::new();
        for i in 0..3000u32 {
            let len = rng.random_range(0..300);
            let mut payload: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            if round % 2 == 0 && i % 50 == 0 {
                payload = key_frame();
            }
            let kind = if rng.random() {
                Kind::Audio
            } else {
                Kind::Video
            };
            let p = rtp(
                rng.random_range(0..3),
                rng.random(),
                rng.random(),
                rng.random(),
                payload,
            );
            let at = t0 + Duration::from_millis(u64::from(i) * rng.random_range(0..40));
            m.push(kind, &p, at);
            m.tick(at);
        }
        let out = m.take();
        if !out.is_empty() {
            assert_eq!(&out[..4], [0x1a, 0x45, 0xdf, 0xa3]);
        }
    }
}

#[test]
fn reordered_video_packets_still_make_whole_frames() {
    let t0 = Instant::now();
    let mut m = SpanMuxer::new();
    let key = key_frame();
    // A key frame in three packets, the last two swapped in flight.
    let parts: Vec<Vec<u8>> = vec![
        key[..80].to_vec(),
        [&[0x00u8][..], &key[81..150]].concat(),
        [&[0x00u8][..], &key[150..]].concat(),
    ];
    m.push(Kind::Video, &rtp(2, 1, 0, false, parts[0].clone()), t0);
    m.push(
        Kind::Video,
        &rtp(2, 3, 0, true, parts[2].clone()),
        t0 + Duration::from_millis(5),
    );
    assert!(m.started().is_none());
    m.push(
        Kind::Video,
        &rtp(2, 2, 0, false, parts[1].clone()),
        t0 + Duration::from_millis(30),
    );
    assert_eq!(m.started(), Some(t0), "the key frame was whole");
    assert_eq!(blocks(&m.take()).0, 1);
    // A packet lost for good: the frame is skipped after the hold, then a key frame is
    // wanted and the recorder asks for one.
    m.push(
        Kind::Video,
        &rtp(2, 4, 3000, false, delta_frame()),
        t0 + Duration::from_millis(40),
    );
    m.push(
        Kind::Video,
        &rtp(2, 6, 3000, true, vec![0x00, 1, 2]),
        t0 + Duration::from_millis(45),
    );
    assert!(!m.wants_key_frame());
    m.tick(t0 + Duration::from_millis(300));
    assert!(m.wants_key_frame());
}

/// The muxing cost per packet (run with `--ignored --nocapture`, ideally optimized:
/// `cargo test --lib --config 'profile.dev.package.sightline.opt-level=3' muxing_cost -- --ignored --nocapture`).
#[test]
#[ignore = "a measurement, not a check"]
fn muxing_cost_per_packet() {
    let t0 = Instant::now();
    // One minute of 30 fps video (1100-byte packets, 3 per frame, a key frame every 2 s)
    // and 20 ms Opus packets of 80 bytes.
    let mut packets = Vec::new();
    let mut seq = 0u16;
    for f in 0..1800u32 {
        let at = Duration::from_micros(u64::from(f) * 33_333);
        let mut frame = if f % 60 == 0 {
            key_frame()
        } else {
            delta_frame()
        };
        frame.resize(3300, 0x33);
        for (i, part) in frame.chunks(1100).enumerate() {
            let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
            p.extend_from_slice(if i == 0 { &part[1..] } else { part });
            seq = seq.wrapping_add(1);
            packets.push((at, Kind::Video, rtp(2, seq, f * 3000, i == 2, p)));
        }
    }
    for n in 0..3000u32 {
        let at = Duration::from_micros(u64::from(n) * 20_000);
        packets.push((
            at,
            Kind::Audio,
            rtp(1, n as u16, n * 960, false, vec![0xfc; 80]),
        ));
    }
    packets.sort_by_key(|p| p.0);
    let runs = 5u32;
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..runs {
        let mut m = SpanMuxer::new();
        for (at, kind, p) in &packets {
            m.push(*kind, p, t0 + *at);
            bytes += m.take().len();
        }
    }
    let per = started.elapsed() / (runs * packets.len() as u32);
    println!(
        "muxing: {per:?} per packet over {} packets x {runs}; {} bytes per minute",
        packets.len(),
        bytes / runs as usize
    );
    assert!(bytes > 0);
}

/// Relative times of the video SimpleBlocks (one cluster).
fn video_times(out: &[u8]) -> Vec<i16> {
    let mut times = Vec::new();
    let mut i = 0;
    while i + 6 < out.len() {
        let (len, skip) = match (out[i], out[i + 1]) {
            (0xa3, s) if s & 0x80 != 0 => (usize::from(s & 0x7f), 2),
            (0xa3, s) if s & 0xc0 == 0x40 => {
                ((usize::from(s & 0x3f) << 8) | usize::from(out[i + 2]), 3)
            }
            _ => {
                i += 1;
                continue;
            }
        };
        if len >= 4 && i + skip + len <= out.len() && out[i + skip] == 0x81 {
            times.push(i16::from_be_bytes([out[i + skip + 1], out[i + skip + 2]]));
            i += skip + len;
        } else {
            i += 1;
        }
    }
    times
}

#[test]
fn video_frames_in_one_millisecond_keep_increasing_times() {
    let t0 = Instant::now();
    let mut m = SpanMuxer::new();
    m.push(Kind::Video, &rtp(2, 1, 90_000, true, key_frame()), t0);
    // 0.5 ms of RTP time later: the same millisecond.
    m.push(Kind::Video, &rtp(2, 2, 90_045, true, delta_frame()), t0);
    m.push(
        Kind::Video,
        &rtp(2, 3, 93_000, true, delta_frame()),
        t0 + Duration::from_millis(33),
    );
    let times = video_times(&m.take());
    assert_eq!(times, [0, 1, 32], "every frame kept, times strictly rising");
}
