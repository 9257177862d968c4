//! The core's behaviour on the in-memory network (see `harness`): forwarding, key-frame
//! requests, NACK per hop, REMB and the bitrate cap, and bad input.

use std::time::Duration;

use super::harness::{Net, is_rtp};
use crate::domain::Role;

fn call_of_two(cap_bps: u64) -> Net {
    let mut net = Net::new(cap_bps);
    net.join("a", Role::Agent);
    net.join("b", Role::Customer);
    net.settle();
    // ICE, DTLS, the first media and renegotiations.
    net.run(Duration::from_secs(2), 900);
    assert!(
        net.client("b").seqs("a", "video").len() > 20,
        "b got {:?}",
        net.client("b").got.rtp.keys().collect::<Vec<_>>()
    );
    net
}

#[test]
fn two_clients_exchange_media_in_memory() {
    let mut net = call_of_two(2_500_000);
    let before = net.client("a").seqs("b", "audio").len();
    net.run(Duration::from_secs(1), 900);
    assert!(net.client("a").seqs("b", "audio").len() >= before + 45);
    let _ = is_rtp(&[]);
}

/// RTP sequence number and SSRC of an SRTP packet (both are in the clear).
fn seq_ssrc(p: &[u8]) -> (u16, u32) {
    (
        u16::from_be_bytes([p[2], p[3]]),
        u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
    )
}

/// Sequence numbers missing between the first and last received (wrap-free here).
fn gaps(seqs: &[u16]) -> usize {
    let (Some(lo), Some(hi)) = (seqs.iter().min(), seqs.iter().max()) else {
        return 0;
    };
    let got: std::collections::HashSet<u16> = seqs.iter().copied().collect();
    (*lo..=*hi).filter(|s| !got.contains(s)).count()
}

#[test]
fn nacks_are_answered_per_hop_from_the_engine_and_from_publishers() {
    use super::harness::Direction;
    use std::collections::HashSet;
    let mut net = call_of_two(2_500_000);
    let b_addr = net.client("b").addr;
    let a_addr = net.client("a").addr;
    // Lose one RTP packet in ten, the first time it is sent: engine → b (a's media to b)
    // and a → engine (a's media before the engine).
    let mut lost: HashSet<(bool, u32, u16)> = HashSet::new();
    // Retransmissions that passed: (engine → b, a → engine).
    let resent = std::rc::Rc::new(std::cell::Cell::new((0u64, 0u64)));
    let counter = resent.clone();
    net.filter = Some(Box::new(move |dir, p| {
        if !is_rtp(p) || p.len() < 12 {
            return false;
        }
        let (seq, ssrc) = seq_ssrc(p);
        let down = match dir {
            Direction::Down(to) if to == b_addr => true,
            Direction::Up(from) if from == a_addr => false,
            _ => return false,
        };
        let key = (down, ssrc, seq);
        if lost.contains(&key) {
            let (d, u) = counter.get();
            counter.set(if down { (d + 1, u) } else { (d, u + 1) });
            return false;
        }
        if seq % 10 == 3 {
            lost.insert(key);
            return true;
        }
        false
    }));
    let start_a = net.client("b").seqs("a", "video").len();
    net.run(Duration::from_secs(3), 900);
    net.filter = None;
    net.run(Duration::from_millis(500), 900);
    let video = net.client("b").seqs("a", "video")[start_a..].to_vec();
    let audio = net.client("b").seqs("a", "audio")[start_a..].to_vec();
    let stats = net.engine.stats();
    let nacks = net.client("a").got.nacks;
    eprintln!(
        "dropped {} packets, retransmissions passed (engine → b, a → engine): {:?}; b got {} video packets of a with {} gaps, \
         {} audio with {} gaps; a got {} NACKs; {stats:?}",
        net.dropped,
        resent.get(),
        video.len(),
        gaps(&video),
        audio.len(),
        gaps(&audio),
        nacks,
    );
    assert!(net.dropped > 20, "{}", net.dropped);
    // Video (negotiated with NACK) is whole; audio (no NACK for Opus) keeps its holes.
    assert_eq!(gaps(&video), 0, "video gaps: {video:?}");
    assert!(gaps(&audio) > 5, "audio should show the losses");
    // The engine NACKed a (the publisher) and a retransmitted.
    assert!(net.client("a").got.nacks > 0);
    let (down, up) = resent.get();
    assert!(down > 5 && up > 5, "retransmissions: {down} down, {up} up");
}

#[test]
fn keyframe_requests_reach_the_publisher_once_per_interval() {
    let mut net = call_of_two(2_500_000);
    // Let the join-time PLIs (0, 0.6, 1.5 s) pass.
    net.run(Duration::from_secs(2), 900);
    let (plis, firs) = (net.client("a").got.plis, net.client("a").got.firs);
    let before = net.engine.stats();
    let now = net.now;
    net.client("b").feedback("a-video", false, None, now);
    net.settle();
    assert_eq!(net.client("a").got.plis, plis + 1, "the PLI reaches a");
    // A second request 100 ms later is held back (one per publisher per 500 ms)…
    net.run(Duration::from_millis(100), 900);
    let now = net.now;
    net.client("b").feedback("a-video", false, None, now);
    net.settle();
    assert_eq!(net.client("a").got.plis, plis + 1);
    // …and a FIR after the interval goes through as a FIR with a's SSRC.
    net.run(Duration::from_millis(500), 900);
    let now = net.now;
    net.client("b").feedback("a-video", true, None, now);
    net.settle();
    assert_eq!(net.client("a").got.firs, firs + 1);
    // b was not asked for anything by its own requests.
    let s = net.engine.stats();
    assert_eq!(s.plis_received - before.plis_received, 2);
    assert_eq!(s.firs_received - before.firs_received, 1);
    assert_eq!(
        s.keyframe_requests_forwarded - before.keyframe_requests_forwarded,
        2
    );
    assert_eq!(
        s.keyframe_requests_limited - before.keyframe_requests_limited,
        1
    );
}

#[test]
fn remb_carries_the_cap_and_the_lowest_receiver_estimate() {
    let cap = 1_000_000;
    let mut net = call_of_two(cap);
    net.run(Duration::from_secs(1), 900);
    assert_eq!(net.client("a").got.rembs.last(), Some(&cap));
    assert_eq!(net.client("b").got.rembs.last(), Some(&cap));
    // b can take only 400 kbit/s of a: a is asked for 400; b still for the cap.
    let now = net.now;
    net.client("b")
        .feedback("a-video", false, Some(400_000), now);
    net.run(Duration::from_millis(1100), 900);
    assert_eq!(net.client("a").got.rembs.last(), Some(&400_000));
    assert_eq!(net.client("b").got.rembs.last(), Some(&cap));
    // An estimate above the cap never raises it; a tiny one stops at the floor.
    let now = net.now;
    net.client("b")
        .feedback("a-video", false, Some(9_000_000), now);
    net.run(Duration::from_millis(1100), 900);
    assert_eq!(net.client("a").got.rembs.last(), Some(&cap));
    let now = net.now;
    net.client("b").feedback("a-video", false, Some(1_000), now);
    net.run(Duration::from_millis(1100), 900);
    assert_eq!(
        net.client("a").got.rembs.last(),
        Some(&super::rtcp::REMB_FLOOR_BPS)
    );
    assert!(net.engine.stats().rembs_received >= 3);
}

#[test]
fn a_publisher_above_the_cap_is_limited_and_one_below_is_not() {
    // Cap 200 kbit/s: the limiter passes 300 kbit/s. a sends ~500 kbit/s of video
    // (1200-byte packets, 50 a second), b 130 kbit/s.
    let cap = 200_000;
    let mut net = call_of_two(cap);
    let (a0, b0) = (
        net.client("b").seqs("a", "video").len(),
        net.client("a").seqs("b", "video").len(),
    );
    let over0 = net.engine.stats().rtp_over_cap;
    let secs = 6;
    net.run_with(Duration::from_secs(secs), |id| {
        if id == "a" { 1200 } else { 300 }
    });
    let got_a = net.client("b").seqs("a", "video").len() - a0;
    let got_b = net.client("a").seqs("b", "video").len() - b0;
    let stats = net.engine.stats();
    let rate = got_a as f64 * (1200.0 + 12.0) * 8.0 / secs as f64;
    eprintln!(
        "a sent {} video packets, b received {got_a} (≈ {:.0} kbit/s); b's video to a: {got_b}; \
         dropped over the cap: {}",
        secs * 50,
        rate / 1000.0,
        stats.rtp_over_cap - over0
    );
    assert!(stats.rtp_over_cap - over0 > 50, "{stats:?}");
    // What passes is the overshoot (1.5 × cap) plus what the bucket held, within 20 %.
    assert!(rate < 1.5 * cap as f64 * 1.35, "{rate}");
    assert!(rate > 1.5 * cap as f64 * 0.8, "{rate}");
    // b, under the cap, lost nothing.
    assert!(got_b >= (secs as usize * 50) - 3, "{got_b}");
    // Audio of the limited publisher still flows.
    assert!(net.client("b").seqs("a", "audio").len() > 250);
}

/// Random and mutated STUN, DTLS, RTP and RTCP from known and unknown addresses, over UDP
/// and ICE-TCP: nothing panics, and the call still forwards afterwards.
#[test]
fn garbage_and_mutated_packets_neither_crash_nor_stall_the_engine() {
    use super::harness::{Direction, ENGINE};
    use rand::{Rng, SeedableRng};
    let mut net = call_of_two(2_500_000);
    // Capture real packets of the call to mutate.
    let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::<Vec<u8>>::new()));
    let keep = seen.clone();
    net.filter = Some(Box::new(move |_, p| {
        if keep.borrow().len() < 400 {
            keep.borrow_mut().push(p.to_vec());
        }
        false
    }));
    net.run(Duration::from_millis(500), 900);
    net.filter = None;
    let samples = seen.borrow().clone();
    assert!(samples.len() > 50);
    let known = [net.client("a").addr, net.client("b").addr];
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5167_4711);
    let before = net.engine.stats();
    let start = std::time::Instant::now();
    for i in 0..FUZZ {
        let mut p: Vec<u8> = match i % 3 {
            // Random bytes with a first byte in each RFC 7983 range.
            0 => {
                let len = rng.random_range(0..1500);
                let mut p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                if let Some(b) = p.first_mut() {
                    *b = [0u8, 1, 20, 22, 63, 128, 129, 191][rng.random_range(0..8)];
                }
                p
            }
            // A real packet with bytes flipped, cut or extended.
            _ => {
                let mut p = samples[rng.random_range(0..samples.len())].clone();
                for _ in 0..rng.random_range(1..6) {
                    if p.is_empty() {
                        break;
                    }
                    let at = rng.random_range(0..p.len());
                    p[at] = rng.random();
                }
                match rng.random_range(0..4) {
                    0 => p.truncate(rng.random_range(0..=p.len())),
                    1 => p.extend((0..rng.random_range(0..64)).map(|_| rng.random::<u8>())),
                    _ => {}
                }
                p
            }
        };
        if i % 7 == 0 {
            p.clear();
        }
        let from = if rng.random_bool(0.5) {
            known[rng.random_range(0..2)]
        } else {
            std::net::SocketAddr::from(([10, 9, rng.random(), rng.random()], rng.random()))
        };
        let tcp = rng.random_bool(0.2);
        net.engine.handle_packet(from, tcp, &p, net.now);
        if i % 100 == 0 {
            net.advance(Duration::from_millis(5));
        }
    }
    let fuzz_time = start.elapsed();
    let after = net.engine.stats();
    // Still forwarding both ways.
    let (a0, b0) = (
        net.client("b").seqs("a", "video").len(),
        net.client("a").seqs("b", "video").len(),
    );
    net.run(Duration::from_secs(1), 900);
    let (a1, b1) = (
        net.client("b").seqs("a", "video").len(),
        net.client("a").seqs("b", "video").len(),
    );
    eprintln!(
        "{FUZZ} bad packets in {fuzz_time:?}: {} from unknown sources dropped; afterwards b got {} and a \
         got {} video packets in 1 s",
        after.dropped_unknown - before.dropped_unknown,
        a1 - a0,
        b1 - b0
    );
    assert!(after.dropped_unknown > before.dropped_unknown);
    assert!(a1 - a0 >= 45 && b1 - b0 >= 45, "{a0}->{a1}, {b0}->{b1}");
    let _ = (Direction::Up(ENGINE), ENGINE);
}

const FUZZ: u32 = 3000;

/// A participant's STUN request replayed from another live participant's address must not
/// move that address to it (the engine would hand the victim's media to the wrong peer).
#[test]
fn a_stun_request_cannot_take_over_a_live_participants_address() {
    use crate::media::demux::{Class, classify};
    let mut net = call_of_two(2_500_000);
    let a_addr = net.client("a").addr;
    let b_addr = net.client("b").addr;
    let stun = std::rc::Rc::new(std::cell::RefCell::new(None::<Vec<u8>>));
    let keep = stun.clone();
    net.filter = Some(Box::new(move |dir, p| {
        // A binding request (not a response): it names a's ufrag.
        if dir == super::harness::Direction::Up(a_addr)
            && classify(p) == Class::Stun
            && p.starts_with(&[0x00, 0x01])
        {
            keep.borrow_mut().get_or_insert_with(|| p.to_vec());
        }
        false
    }));
    // Consent checks run every few seconds.
    net.run(Duration::from_secs(6), 900);
    net.filter = None;
    let request = stun.borrow().clone().expect("a sent a STUN request");
    let before = net.client("a").seqs("b", "video").len();
    // Replayed from b's address over and over (b's own checks would win it back now and
    // then): b's media must keep reaching a all along.
    for _ in 0..50 {
        let now = net.now;
        net.engine.handle_packet(b_addr, false, &request, now);
        net.run(Duration::from_millis(20), 900);
    }
    let got = net.client("a").seqs("b", "video").len() - before;
    assert!(
        got >= 45,
        "a got {got} of b's video packets after the replay"
    );
}
