//! RTP timestamps onto the span's clock. Each track is anchored at its first packet's
//! arrival; after that only RTP time counts (so network jitter does not reach the file),
//! unwrapped across the 32-bit wraparound. Times are microseconds from the span's base
//! instant (any fixed instant; the muxer uses the first packet's arrival).

use std::time::Instant;

/// Signed microseconds from `base` to `t`.
pub fn micros_since(base: Instant, t: Instant) -> i64 {
    match t.checked_duration_since(base) {
        Some(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        None => -i64::try_from(base.duration_since(t).as_micros()).unwrap_or(i64::MAX),
    }
}

/// Extends 32-bit RTP timestamps into a monotonic 64-bit count (reordered packets map
/// back correctly: each one is taken as the nearest value to the last one seen).
#[derive(Debug, Clone, Copy, Default)]
pub struct Unwrapper {
    last: Option<i64>,
}

impl Unwrapper {
    pub fn unwrap(&mut self, ts: u32) -> i64 {
        let v = match self.last {
            None => i64::from(ts),
            Some(last) => {
                // The last value truncated to 32 bits, then the signed distance to `ts`.
                let delta = ts.wrapping_sub(last as u32) as i32;
                last + i64::from(delta)
            }
        };
        // Follow forward moves only: an old packet must not drag the reference back.
        if self.last.is_none_or(|l| v > l) {
            self.last = Some(v);
        }
        v
    }
}

/// One track's mapping from RTP time to the span clock.
#[derive(Debug, Clone)]
pub struct TrackClock {
    rate: i64,
    unwrap: Unwrapper,
    /// (span time of the anchor in µs, unwrapped RTP time of the anchor).
    anchor: Option<(i64, i64)>,
    ssrc: Option<u32>,
}

impl TrackClock {
    pub fn new(rate: u32) -> Self {
        Self {
            rate: i64::from(rate.max(1)),
            unwrap: Unwrapper::default(),
            anchor: None,
            ssrc: None,
        }
    }

    /// The span time (µs since the base) of a packet with RTP timestamp `ts` that
    /// arrived `arrival_us` after the base. A new SSRC (the sender restarted its stream)
    /// anchors the clock again, as does RTP time running more than ten seconds away
    /// from arrival time (a jump in the sender's timestamps).
    pub fn map(&mut self, ssrc: u32, ts: u32, arrival_us: i64) -> i64 {
        if self.ssrc != Some(ssrc) {
            self.ssrc = Some(ssrc);
            self.unwrap = Unwrapper::default();
            self.anchor = None;
        }
        let rtp = self.unwrap.unwrap(ts);
        let (at, base) = *self.anchor.get_or_insert((arrival_us, rtp));
        let t = at + (rtp - base) * 1_000_000 / self.rate;
        if arrival_us < t && t - arrival_us <= 10_000_000 {
            // Less delayed than the anchor: it is the better reference.
            self.anchor = Some((arrival_us, rtp));
            return arrival_us;
        }
        if (t - arrival_us).abs() > 10_000_000 {
            self.unwrap = Unwrapper::default();
            let rtp = self.unwrap.unwrap(ts);
            self.anchor = Some((arrival_us, rtp));
            return arrival_us;
        }
        t
    }

    /// Whether the clock has seen a packet of `ssrc` (a different one restarts it).
    pub fn is_stream(&self, ssrc: u32) -> bool {
        self.ssrc == Some(ssrc)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn unwrapping_crosses_the_32_bit_boundary_both_ways() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap(u32::MAX - 959), i64::from(u32::MAX) - 959);
        assert_eq!(u.unwrap(0), i64::from(u32::MAX) + 1);
        assert_eq!(u.unwrap(960), i64::from(u32::MAX) + 961);
        // A reordered packet from before the wrap maps back below it.
        assert_eq!(u.unwrap(u32::MAX - 959), i64::from(u32::MAX) - 959);
        assert_eq!(u.unwrap(1920), i64::from(u32::MAX) + 1921);
        // Many wraps in a row (a long call): always increasing.
        let mut u = Unwrapper::default();
        let mut ts = 0u32;
        let mut prev = u.unwrap(ts);
        for _ in 0..20_000 {
            ts = ts.wrapping_add(1 << 20);
            let v = u.unwrap(ts);
            assert_eq!(v - prev, 1 << 20);
            prev = v;
        }
    }

    #[test]
    fn tracks_follow_rtp_time_from_their_first_arrival() {
        let mut audio = TrackClock::new(48_000);
        // First packet arrives 5 ms after the base: that is its time.
        assert_eq!(audio.map(1, 1_000_000, 5_000), 5_000);
        // 20 ms of RTP later, arriving with 7 ms of jitter: RTP time counts.
        assert_eq!(audio.map(1, 1_000_960, 32_000), 25_000);
        // Across the wrap of the RTP clock.
        let mut video = TrackClock::new(90_000);
        assert_eq!(video.map(9, u32::MAX - 2_999, 0), 0);
        assert_eq!(video.map(9, 3_000, 67_000), 66_666);
        // A new SSRC anchors again at its arrival.
        assert_eq!(video.map(10, 77, 1_000_000), 1_000_000);
        assert!(video.is_stream(10));
        // A jump of the sender's RTP clock (a minute ahead) anchors again too.
        assert_eq!(video.map(10, 77 + 90_000 * 60, 1_033_000), 1_033_000);
    }

    #[test]
    fn a_less_delayed_packet_moves_the_anchor_back() {
        let mut audio = TrackClock::new(48_000);
        // The first packet was held up 60 ms; the next ones arrive on time.
        assert_eq!(audio.map(1, 0, 60_000), 60_000);
        assert_eq!(audio.map(1, 960, 21_000), 21_000);
        // From then on RTP time counts from the better anchor (later jitter ignored).
        assert_eq!(audio.map(1, 1_920, 45_000), 41_000);
        assert_eq!(audio.map(1, 2_880, 61_000), 61_000);
    }

    #[test]
    fn signed_micros_between_instants() {
        let base = Instant::now();
        let later = base + Duration::from_millis(1500);
        assert_eq!(micros_since(base, later), 1_500_000);
        assert_eq!(micros_since(later, base), -1_500_000);
    }
}
