//! Quality as the engine sees it, per routed participant and direction: sans-IO like the
//! core that feeds it (packets and `now` in, a sample per participant and direction every
//! [`INTERVAL`] out).
//!
//! * **Uplink** (what the engine receives from a participant): packets and bytes as they
//!   arrive, loss from sequence-number gaps and interarrival jitter from RTP timestamps
//!   against arrival times (RFC 3550 §A.3 and §A.8), and video freezes: a gap of more than
//!   [`FREEZE_GAP`] between two frames of the participant.
//! * **Downlink** (what the engine sends to a participant): packets and bytes the engine
//!   forwarded, and from the participant's RTCP receiver reports (RFC 3550 §6.4) how many of
//!   them arrived (the forwarded sequence numbers keep the publisher's own gaps, so the
//!   publisher's loss is not counted twice), the participant's jitter, and the round trip
//!   from LSR/DLSR. The round trip belongs to the connection: both directions carry it.
//!
//! Nothing here reads a clock except one wall-clock reading paired with the first `now`,
//! which is what RTCP's NTP timestamps need (the sender reports are stamped the same way by
//! the library).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::rtcp::reception_report::ReceptionReport;
use rtc::rtcp::sender_report::SenderReport;
use rtc::shared::time::SystemInstant;

use super::rules::Kind;

/// How often a sample per participant and direction is emitted.
pub const INTERVAL: Duration = Duration::from_secs(5);
/// A longer gap between two video frames of a publisher is a freeze.
pub const FREEZE_GAP: Duration = Duration::from_millis(600);
/// Most streams tracked per participant and direction (a routed call has at most 12
/// participants with one audio and one video stream each).
const MAX_STREAMS: usize = 64;

pub use crate::domain::server_quality::{Direction, Sample};

/// RFC 3550 §A.1 sequence and §A.8 jitter state of one received stream.
#[derive(Debug, Clone)]
pub struct SeqJitter {
    clock_rate: f64,
    started: bool,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    received: u64,
    /// Expected and received at the last interval boundary.
    expected_prior: u64,
    received_prior: u64,
    /// Arrival of the first packet: arrival times are measured from it.
    epoch: Option<Instant>,
    last_transit: Option<f64>,
    /// Interarrival jitter in timestamp units.
    jitter: f64,
}

impl SeqJitter {
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: f64::from(clock_rate.max(1)),
            started: false,
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            epoch: None,
            last_transit: None,
            jitter: 0.0,
        }
    }

    /// One packet arrived at `now`.
    pub fn on_packet(&mut self, seq: u16, timestamp: u32, now: Instant) {
        if !self.started {
            self.started = true;
            self.max_seq = seq;
            self.base_seq = u32::from(seq);
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < 0x8000 {
                // In order (possibly after a gap): a wrap adds a cycle.
                if seq < self.max_seq {
                    self.cycles = self.cycles.wrapping_add(1 << 16);
                }
                self.max_seq = seq;
            }
            // Otherwise a duplicate or a late packet: counted as received, no new maximum.
        }
        self.received += 1;
        let epoch = *self.epoch.get_or_insert(now);
        let arrival = now.saturating_duration_since(epoch).as_secs_f64() * self.clock_rate;
        let transit = arrival - f64::from(timestamp);
        if let Some(last) = self.last_transit {
            // Timestamps are modular: the smallest difference is the real one.
            let mut d = (transit - last).abs();
            let wrap = f64::from(u32::MAX) + 1.0;
            if d > wrap / 2.0 {
                d = (d - wrap).abs();
            }
            self.jitter += (d - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
    }

    fn expected(&self) -> u64 {
        if !self.started {
            return 0;
        }
        let ext_max = u64::from(self.cycles) + u64::from(self.max_seq);
        (ext_max + 1).saturating_sub(u64::from(self.base_seq))
    }

    /// (received, lost) since the last call.
    pub fn interval(&mut self) -> (u64, u64) {
        let expected = self.expected();
        let exp_int = expected.saturating_sub(self.expected_prior);
        let rec_int = self.received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        (rec_int, exp_int.saturating_sub(rec_int))
    }

    pub fn jitter_ms(&self) -> f64 {
        self.jitter / self.clock_rate * 1000.0
    }
}

/// Freezes of one video stream: gaps between frames longer than [`FREEZE_GAP`].
#[derive(Debug, Clone, Default)]
pub struct Frames {
    last_ts: Option<u32>,
    last_frame_at: Option<Instant>,
    freezes: u32,
}

impl Frames {
    /// A packet of the stream: a new RTP timestamp starts a new frame.
    pub fn on_packet(&mut self, timestamp: u32, now: Instant) {
        if self.last_ts == Some(timestamp) {
            return;
        }
        self.last_ts = Some(timestamp);
        if let Some(prev) = self.last_frame_at
            && now.saturating_duration_since(prev) > FREEZE_GAP
        {
            self.freezes = self.freezes.saturating_add(1);
        }
        self.last_frame_at = Some(now);
    }

    /// Freezes since the last call.
    pub fn take(&mut self) -> u32 {
        std::mem::take(&mut self.freezes)
    }
}

/// The round trip from a reception report: arrival `a` (middle 32 bits of the NTP time at
/// arrival), LSR and DLSR, all in 1/65536 s (RFC 3550 §6.4.1). `None` when no sender report
/// was answered yet (LSR 0) or the result is absurd (clock trouble).
pub fn rtt_from_report(a: u32, lsr: u32, dlsr: u32) -> Option<Duration> {
    if lsr == 0 {
        return None;
    }
    let rtt = a.wrapping_sub(lsr).wrapping_sub(dlsr);
    // More than a minute (or "negative", i.e. wrapped): not a measurement.
    if rtt > 60 * 65536 {
        return None;
    }
    Some(Duration::from_secs_f64(f64::from(rtt) / 65536.0))
}

/// Loss in thousandths of what should have arrived.
pub fn loss_permille(packets: u64, lost: u64) -> u32 {
    let total = packets + lost;
    if total == 0 {
        return 0;
    }
    ((lost as f64 * 1000.0 / total as f64).round() as u32).min(1000)
}

struct Received {
    kind: Kind,
    seq: SeqJitter,
    frames: Frames,
}

/// One stream the engine sends to a participant, and what the participant's reports say.
struct Sent {
    clock_rate: u32,
    /// Packets the engine forwarded on it.
    sent: u64,
    /// `sent` and the report's extended highest sequence number and cumulative loss at
    /// the last report.
    last: Option<(u64, u32, u32)>,
    /// Packets counted as sent that had not reached the receiver's report yet (in flight
    /// when it was written): a later report's surplus of arrivals pays them back.
    credit: i64,
    jitter_ms: f64,
}

#[derive(Default)]
struct Link {
    bytes: u64,
    packets: u64,
    lost: u64,
}

#[derive(Default)]
struct PeerQuality {
    up: HashMap<u32, Received>,
    down: HashMap<u32, Sent>,
    up_link: Link,
    down_link: Link,
    rtt: Option<Duration>,
    since: Option<Instant>,
}

/// An interceptor that lets a participant's sender and receiver reports reach the engine
/// (the library's chain ends inbound RTCP unless an interceptor marks it for the
/// application): [`Tracker::on_rtcp`] reads their reception reports. Everything passes
/// through unchanged.
#[derive(Default)]
pub struct ReportsToEngine {
    read: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
    write: std::collections::VecDeque<rtc::interceptor::TaggedPacket>,
}

/// Where [`ReportsToEngine`] sits in the chain: wire-most, ahead of every library
/// interceptor.
pub const REPORTS_SLOT: rtc::interceptor::Slot = rtc::interceptor::Slot::Custom(500);

impl rtc::sansio::Protocol<rtc::interceptor::TaggedPacket, rtc::interceptor::TaggedPacket, ()>
    for ReportsToEngine
{
    type Rout = rtc::interceptor::TaggedPacket;
    type Wout = rtc::interceptor::TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, mut msg: Self::Rout) -> Result<(), Self::Error> {
        if let rtc::interceptor::Packet::Rtcp(packets) = &msg.message.packet {
            let reports = packets.iter().any(|p| {
                let any = p.as_any();
                any.downcast_ref::<ReceiverReport>()
                    .is_some_and(|r| !r.reports.is_empty())
                    || any
                        .downcast_ref::<SenderReport>()
                        .is_some_and(|r| !r.reports.is_empty())
            });
            if reports {
                msg.message
                    .add(rtc::interceptor::Attribute::DeliverToApplication);
            }
        }
        self.read.push_back(msg);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, msg: Self::Wout) -> Result<(), Self::Error> {
        self.write.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }
}

impl rtc::interceptor::Interceptor for ReportsToEngine {
    fn bind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_local_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn bind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
    fn unbind_remote_stream(&mut self, _: &rtc::interceptor::StreamInfo) {}
}

/// Every routed participant's quality, keyed like the core's peers (call, participant).
#[derive(Default)]
pub struct Tracker {
    peers: HashMap<(String, String), PeerQuality>,
    next: Option<Instant>,
    clock: Option<SystemInstant>,
}

fn clock_rate(kind: Kind) -> u32 {
    match kind {
        Kind::Audio => 48_000,
        Kind::Video => 90_000,
    }
}

impl Tracker {
    /// When [`Tracker::poll`] has samples to emit.
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    fn peer(&mut self, key: &(String, String), now: Instant) -> Option<&mut PeerQuality> {
        if self.next.is_none() {
            self.next = Some(now + INTERVAL);
        }
        // Looked up before inserting: this runs per packet, and the key is two strings.
        if !self.peers.contains_key(key) {
            self.peers.insert(key.clone(), PeerQuality::default());
        }
        let p = self.peers.get_mut(key)?;
        p.since.get_or_insert(now);
        Some(p)
    }

    /// A participant's RTP packet arrived (before the role rules: what the network carried).
    pub fn on_receive(
        &mut self,
        key: &(String, String),
        kind: Kind,
        header: &rtc::rtp::header::Header,
        bytes: usize,
        now: Instant,
    ) {
        let Some(p) = self.peer(key, now) else {
            return;
        };
        if !p.up.contains_key(&header.ssrc) && p.up.len() >= MAX_STREAMS {
            return;
        }
        let s = p.up.entry(header.ssrc).or_insert_with(|| Received {
            kind,
            seq: SeqJitter::new(clock_rate(kind)),
            frames: Frames::default(),
        });
        s.seq
            .on_packet(header.sequence_number, header.timestamp, now);
        if kind == Kind::Video {
            s.frames.on_packet(header.timestamp, now);
        }
        p.up_link.bytes += bytes as u64;
    }

    /// The engine forwarded a packet of `bytes` to a participant on its stream `ssrc`.
    pub fn on_send(
        &mut self,
        key: &(String, String),
        ssrc: u32,
        kind: Kind,
        bytes: usize,
        now: Instant,
    ) {
        let Some(p) = self.peer(key, now) else {
            return;
        };
        if !p.down.contains_key(&ssrc) && p.down.len() >= MAX_STREAMS {
            return;
        }
        let s = p.down.entry(ssrc).or_insert_with(|| Sent {
            clock_rate: clock_rate(kind),
            sent: 0,
            last: None,
            credit: 0,
            jitter_ms: 0.0,
        });
        s.sent += 1;
        p.down_link.bytes += bytes as u64;
        p.down_link.packets += 1;
    }

    /// RTCP from a participant: reception reports about the streams the engine sends it.
    pub fn on_rtcp(
        &mut self,
        key: &(String, String),
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) {
        let Some(p) = self.peers.get_mut(key) else {
            return;
        };
        let clock = *self.clock.get_or_insert_with(|| SystemInstant::now(now));
        let a = ((clock.ntp(now) >> 16) & 0xFFFF_FFFF) as u32;
        let reports = packets.iter().flat_map(|pkt| {
            let any = pkt.as_any();
            let blocks: &[ReceptionReport] = if let Some(rr) = any.downcast_ref::<ReceiverReport>()
            {
                &rr.reports
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                &sr.reports
            } else {
                &[]
            };
            blocks.iter()
        });
        for r in reports {
            let Some(s) = p.down.get_mut(&r.ssrc) else {
                continue;
            };
            if let Some(rtt) = rtt_from_report(a, r.last_sender_report, r.delay) {
                p.rtt = Some(rtt);
            }
            s.jitter_ms = f64::from(r.jitter) / f64::from(s.clock_rate) * 1000.0;
            if let Some((sent0, ext0, lost0)) = s.last {
                let sent = s.sent.saturating_sub(sent0);
                // Arrived between the two reports: expected minus lost, by the receiver.
                let expected = r.last_sequence_number.wrapping_sub(ext0);
                let lost = r.total_lost.wrapping_sub(lost0) & 0x00FF_FFFF;
                if expected < 0x8000_0000 && lost < 0x0080_0000 {
                    let arrived = i64::from(expected.saturating_sub(lost));
                    let missing = i64::try_from(sent).unwrap_or(i64::MAX) - arrived + s.credit;
                    // Packets in flight when a report is written count as missing in it and
                    // arrive by the next: a surplus is kept as a credit, so the loss counted
                    // follows the high-water mark of (sent − arrived) instead of adding up
                    // every interval's in-flight packets.
                    s.credit = missing.min(0);
                    p.down_link.lost += u64::try_from(missing).unwrap_or(0);
                }
            }
            s.last = Some((s.sent, r.last_sequence_number, r.total_lost));
        }
    }

    /// The participant left: forget it.
    pub fn forget(&mut self, key: &(String, String)) {
        self.peers.remove(key);
        if self.peers.is_empty() {
            self.next = None;
        }
    }

    /// When the interval is over: one sample per participant and direction that carried
    /// anything since it joined.
    pub fn poll(&mut self, now: Instant) -> Vec<((String, String), Sample)> {
        let Some(due) = self.next else {
            return Vec::new();
        };
        if now < due {
            return Vec::new();
        }
        self.next = Some(now + INTERVAL);
        let mut out = Vec::new();
        for (key, p) in &mut self.peers {
            let since = p.since.replace(now).unwrap_or(now);
            let secs = now.saturating_duration_since(since).as_secs_f64();
            let interval_ms = (secs * 1000.0).round() as u32;
            let kbps = |bytes: u64| {
                if secs > 0.0 {
                    (bytes as f64 * 8.0 / secs / 1000.0).round() as u32
                } else {
                    0
                }
            };
            let rtt_ms = p
                .rtt
                .map(|d| d.as_millis().min(u128::from(u32::MAX)) as u32);
            let c = |x: u64| u32::try_from(x).unwrap_or(u32::MAX);
            if !p.up.is_empty() {
                let mut packets = 0;
                let mut lost = 0;
                let mut jitter: f64 = 0.0;
                let mut freezes = 0u32;
                for s in p.up.values_mut() {
                    let (r, l) = s.seq.interval();
                    packets += r;
                    lost += l;
                    jitter = jitter.max(s.seq.jitter_ms());
                    if s.kind == Kind::Video {
                        freezes = freezes.saturating_add(s.frames.take());
                    }
                }
                out.push((
                    key.clone(),
                    Sample {
                        direction: Direction::Uplink,
                        interval_ms,
                        packets: c(packets),
                        lost: c(lost),
                        loss_permille: loss_permille(packets, lost),
                        jitter_ms: jitter.round() as u32,
                        rtt_ms,
                        kbps: kbps(std::mem::take(&mut p.up_link.bytes)),
                        freezes,
                    },
                ));
            }
            if !p.down.is_empty() {
                let link = std::mem::take(&mut p.down_link);
                let jitter = p.down.values().map(|s| s.jitter_ms).fold(0.0, f64::max);
                out.push((
                    key.clone(),
                    Sample {
                        direction: Direction::Downlink,
                        interval_ms,
                        packets: c(link.packets),
                        lost: c(link.lost),
                        loss_permille: loss_permille(link.packets, link.lost),
                        jitter_ms: jitter.round() as u32,
                        rtt_ms,
                        kbps: kbps(link.bytes),
                        freezes: 0,
                    },
                ));
            }
        }
        out.sort_by(|a, b| (&a.0, a.1.direction.as_str()).cmp(&(&b.0, b.1.direction.as_str())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn sequence_gaps_are_loss_and_wraps_are_not() {
        let t0 = Instant::now();
        let mut s = SeqJitter::new(48_000);
        // 100 packets from 65500 (wrapping past 65535), every 10th missing.
        for i in 0u16..100 {
            if i % 10 == 9 {
                continue;
            }
            let seq = 65_500u16.wrapping_add(i);
            s.on_packet(seq, u32::from(i) * 960, ms(t0, u64::from(i) * 20));
        }
        // The last one (i = 99) never came: 99 expected so far, 90 arrived.
        assert_eq!(s.interval(), (90, 9));
        assert_eq!(s.interval(), (0, 0));
        // A late duplicate of an old packet counts as received, never negative loss.
        s.on_packet(65_510, 10 * 960, ms(t0, 2100));
        assert_eq!(s.interval(), (1, 0));
        assert_eq!(loss_permille(90, 10), 100);
        assert_eq!(loss_permille(0, 0), 0);
        assert_eq!(loss_permille(0, 5), 1000);
    }

    #[test]
    fn jitter_follows_rfc_3550() {
        let t0 = Instant::now();
        // Perfectly paced: no jitter.
        let mut s = SeqJitter::new(48_000);
        for i in 0u16..50 {
            s.on_packet(i, u32::from(i) * 960, ms(t0, u64::from(i) * 20));
        }
        assert!(s.jitter_ms() < 0.01, "{}", s.jitter_ms());
        // Alternating 10 ms early and late: each difference is 20 ms, and J converges
        // towards it (J += (|D| - J) / 16).
        let mut s = SeqJitter::new(48_000);
        for i in 0u16..400 {
            let wobble = if i % 2 == 0 { 0 } else { 20 };
            s.on_packet(i, u32::from(i) * 960, ms(t0, u64::from(i) * 20 + wobble));
        }
        assert!((s.jitter_ms() - 20.0).abs() < 0.5, "{}", s.jitter_ms());
    }

    #[test]
    fn a_gap_between_frames_over_600_ms_is_a_freeze() {
        let t0 = Instant::now();
        let mut f = Frames::default();
        // Two packets per frame at 30 fps, then 700 ms of nothing, then 30 fps again.
        let mut at = 0;
        for frame in 0u32..10 {
            f.on_packet(frame * 3000, ms(t0, at));
            f.on_packet(frame * 3000, ms(t0, at + 2));
            at += 33;
        }
        assert_eq!(f.take(), 0);
        at += 700;
        for frame in 10u32..20 {
            f.on_packet(frame * 3000, ms(t0, at));
            at += 33;
        }
        // 33 + 540 = 573 ms since the last frame is not a freeze.
        at += 540;
        f.on_packet(99 * 3000, ms(t0, at));
        assert_eq!(f.take(), 1);
        assert_eq!(f.take(), 0);
    }

    #[test]
    fn round_trip_from_lsr_and_dlsr() {
        // Sent at 10.0 s, held 0.25 s by the receiver, back at 10.3 s: 50 ms.
        let t = |s: f64| (s * 65536.0) as u32;
        let rtt = rtt_from_report(t(10.3), t(10.0), t(0.25)).expect("rtt");
        assert!((rtt.as_secs_f64() - 0.05).abs() < 0.001, "{rtt:?}");
        assert_eq!(rtt_from_report(t(10.3), 0, 0), None);
        // A report claiming more delay than elapsed (clock trouble) is ignored.
        assert_eq!(rtt_from_report(t(10.3), t(10.0), t(0.5)), None);
    }

    #[test]
    fn packets_in_flight_at_a_report_are_not_loss() {
        let t0 = Instant::now();
        let bob = ("c".to_owned(), "bob".to_owned());
        let mut q = Tracker::default();
        let report = |ext: u32| -> Vec<Box<dyn rtc::rtcp::Packet>> {
            vec![Box::new(ReceiverReport {
                ssrc: 99,
                reports: vec![ReceptionReport {
                    ssrc: 7,
                    last_sequence_number: ext,
                    ..Default::default()
                }],
                profile_extensions: Default::default(),
            })]
        };
        q.on_send(&bob, 7, Kind::Audio, 100, t0);
        q.on_rtcp(&bob, &report(0), t0);
        // 50 sent per report; 3 of them still on the way at every other report.
        let mut ext = 0;
        for k in 1..=4u32 {
            for _ in 0..50 {
                q.on_send(&bob, 7, Kind::Audio, 100, t0);
            }
            ext += if k % 2 == 1 { 47 } else { 53 };
            q.on_rtcp(&bob, &report(ext), t0);
        }
        let s = q.poll(t0 + INTERVAL);
        // Counted once (the high-water mark), not at every report with packets in flight.
        assert_eq!(s[0].1.lost, 3, "{s:?}");
    }

    fn header(ssrc: u32, seq: u16, ts: u32) -> rtc::rtp::header::Header {
        rtc::rtp::header::Header {
            ssrc,
            sequence_number: seq,
            timestamp: ts,
            ..Default::default()
        }
    }

    #[test]
    fn samples_per_direction_with_downlink_loss_net_of_the_publishers() {
        let t0 = Instant::now();
        let mut q = Tracker::default();
        let alice = ("c".to_owned(), "alice".to_owned());
        let bob = ("c".to_owned(), "bob".to_owned());
        // Alice publishes 250 audio packets over 5 s, every 10th lost on her uplink; the
        // engine forwards what arrives to Bob on its stream 7.
        for i in 0u16..250 {
            let at = ms(t0, u64::from(i) * 20);
            if i % 10 == 5 {
                continue;
            }
            q.on_receive(
                &alice,
                Kind::Audio,
                &header(1, i, u32::from(i) * 960),
                100,
                at,
            );
            q.on_send(&bob, 7, Kind::Audio, 100, at);
        }
        // Bob's reports: at the second one, 125 sequence numbers later, 12 + 3 lost: the
        // 12 Alice never delivered and 3 on Bob's downlink.
        let report = |ext: u32, lost: u32| -> Vec<Box<dyn rtc::rtcp::Packet>> {
            vec![Box::new(ReceiverReport {
                ssrc: 99,
                reports: vec![ReceptionReport {
                    ssrc: 7,
                    last_sequence_number: ext,
                    total_lost: lost,
                    jitter: 480,
                    ..Default::default()
                }],
                profile_extensions: Default::default(),
            })]
        };
        let mut q2 = Tracker::default();
        // Bob's downlink: 113 forwarded between the reports, 110 arrived.
        for i in 0..114 {
            q2.on_send(&bob, 7, Kind::Audio, 100, ms(t0, i * 20));
            if i == 0 {
                q2.on_rtcp(&bob, &report(1000, 0), ms(t0, 0));
            }
        }
        q2.on_rtcp(&bob, &report(1125, 15), ms(t0, 2500));
        let s = q2.poll(ms(t0, 5000));
        let down = s
            .iter()
            .find(|(k, s)| k == &bob && s.direction == Direction::Downlink)
            .map(|(_, s)| *s)
            .expect("downlink");
        assert_eq!((down.packets, down.lost), (114, 3));
        assert_eq!(down.jitter_ms, 10, "480 at 48 kHz");
        assert_eq!(down.rtt_ms, None, "no sender report answered");

        let samples = q.poll(ms(t0, 5000));
        let up = samples
            .iter()
            .find(|(k, s)| k == &alice && s.direction == Direction::Uplink)
            .map(|(_, s)| *s)
            .expect("uplink");
        // Sequence numbers 0..=249 expected, every 10th missing.
        assert_eq!((up.packets, up.lost), (225, 25));
        assert_eq!(up.loss_permille, 100);
        assert_eq!(up.interval_ms, 5000);
        assert_eq!(
            up.kbps,
            (225.0f64 * 100.0 * 8.0 / 5.0 / 1000.0).round() as u32
        );
        assert!(up.jitter_ms <= 1, "{up:?}");
        assert!(
            samples
                .iter()
                .all(|(k, s)| k != &alice || s.direction == Direction::Uplink),
            "Alice receives nothing: no downlink sample"
        );
        // Nothing due before the next interval; a participant who left is forgotten.
        assert!(q.poll(ms(t0, 6000)).is_empty());
        q.forget(&alice);
        q.forget(&bob);
        assert_eq!(q.next_due(), None);
    }
}
