//! The per-participant bitrate cap (`[media] max_bitrate_kbps`).
//!
//! Publishers are asked to stay under the cap by REMB (see `rtcp`). One that keeps
//! sending more is limited here: a token bucket filled at [`OVERSHOOT`] × the cap, one
//! second deep, so key frames and short bursts pass and only a persistent excess is
//! dropped. Video is dropped first: audio may overdraw the bucket by a further second
//! (audio alone never comes near the cap; a flood of "audio" does).

use std::time::{Duration, Instant};

use super::{Engine, Key, Kind};

/// How far above the cap a publisher may go before its packets are dropped.
pub const OVERSHOOT: f64 = 1.5;
/// How long a burst above the limit passes.
const BURST: Duration = Duration::from_secs(1);

/// One publisher's bucket, in bytes.
#[derive(Debug, Default)]
pub(super) struct Budget {
    tokens: f64,
    last: Option<Instant>,
}

impl Budget {
    /// Charges a packet of `bytes`; `false` when it must be dropped (not charged then).
    pub(super) fn admit(&mut self, cap_bps: u64, bytes: usize, kind: Kind, now: Instant) -> bool {
        let rate = cap_bps as f64 * OVERSHOOT / 8.0;
        let depth = rate * BURST.as_secs_f64();
        self.tokens = match self.last {
            None => depth,
            Some(t) => {
                (self.tokens + rate * now.saturating_duration_since(t).as_secs_f64()).min(depth)
            }
        };
        self.last = Some(now);
        let floor = match kind {
            Kind::Audio => -depth,
            Kind::Video => 0.0,
        };
        let left = self.tokens - bytes as f64;
        if left < floor {
            return false;
        }
        self.tokens = left;
        true
    }
}

impl Engine {
    /// Whether a publisher's packet fits its budget (counted when it does not).
    pub(super) fn within_cap(
        &mut self,
        from: &Key,
        kind: Kind,
        bytes: usize,
        now: Instant,
    ) -> bool {
        let cap = self.cfg.max_bitrate_bps;
        let Some(peer) = self.peers.get_mut(from) else {
            return false;
        };
        if peer.budget.admit(cap, bytes, kind, now) {
            return true;
        }
        self.stats.rtp_over_cap += 1;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_excess_is_cut_to_the_overshoot_and_bursts_pass() {
        let t0 = Instant::now();
        let cap = 800_000; // 100 kB/s; the bucket passes 150 kB/s
        let mut b = Budget::default();
        // 2.4 Mbit/s for 10 s: 1000-byte packets every 2.5 ms.
        let mut passed = 0u64;
        for i in 0..4000u32 {
            let now = t0 + Duration::from_micros(2500 * u64::from(i));
            if b.admit(cap, 1000, Kind::Video, now) {
                passed += 1;
            }
        }
        // 150 kB/s × 10 s + one second's burst = 1650 packets.
        assert!((1600..=1700).contains(&passed), "{passed}");
        // Audio still passes while video is cut (it may overdraw by a second).
        assert!(b.admit(cap, 100, Kind::Audio, t0 + Duration::from_secs(10)));

        // Under the cap nothing is dropped, bursts included.
        let mut b = Budget::default();
        for i in 0..1000u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(i));
            let size = if i % 50 == 0 { 60_000 } else { 1500 };
            assert!(b.admit(cap, size, Kind::Video, now), "packet {i}");
        }
    }
}
