//! A small reordering buffer for one video stream: packets go out in sequence-number
//! order; a missing one is waited for (a retransmission answering the engine's NACK
//! usually comes within a round trip) for at most [`HOLD_US`] or [`MAX_HELD`] packets, then
//! skipped (the frame assembler sees the gap and waits for a key frame).

use std::collections::BTreeMap;

/// How long a gap is waited for (µs of arrival time).
pub const HOLD_US: i64 = 150_000;
/// Most packets held behind a gap.
pub const MAX_HELD: usize = 128;

/// Extends 16-bit sequence numbers to a monotonic count.
#[derive(Debug, Default, Clone, Copy)]
struct SeqExt {
    last: Option<i64>,
}

impl SeqExt {
    fn extend(&mut self, seq: u16) -> i64 {
        let v = match self.last {
            None => i64::from(seq),
            Some(last) => last + i64::from(seq.wrapping_sub(last as u16) as i16),
        };
        if self.last.is_none_or(|l| v > l) {
            self.last = Some(v);
        }
        v
    }
}

/// Packets of type `T`, released in order.
#[derive(Debug)]
pub struct Reorder<T> {
    ext: SeqExt,
    next: Option<i64>,
    /// Extended sequence number → (arrival µs, packet).
    held: BTreeMap<i64, (i64, T)>,
    /// Packets that came after their place had been skipped (or twice).
    pub late: u64,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Self {
            ext: SeqExt::default(),
            next: None,
            held: BTreeMap::new(),
            late: 0,
        }
    }
}

impl<T> Reorder<T> {
    /// Takes a packet that arrived at `arrival` (µs); returns those now in order.
    pub fn push(&mut self, seq: u16, arrival: i64, packet: T) -> Vec<T> {
        let ext = self.ext.extend(seq);
        let next = *self.next.get_or_insert(ext);
        if ext < next || self.held.contains_key(&ext) {
            self.late += 1;
            return self.release(arrival);
        }
        self.held.insert(ext, (arrival, packet));
        self.release(arrival)
    }

    /// Releases what is in order, skipping a gap that has been waited for long enough.
    pub fn release(&mut self, now: i64) -> Vec<T> {
        let mut out = Vec::new();
        let Some(mut next) = self.next else {
            return out;
        };
        loop {
            if let Some((_, p)) = self.held.remove(&next) {
                out.push(p);
                next += 1;
                continue;
            }
            let Some((&first, _)) = self.held.iter().next() else {
                break;
            };
            let oldest = self.held.values().map(|h| h.0).min().unwrap_or(now);
            if self.held.len() > MAX_HELD || now - oldest >= HOLD_US {
                next = first;
                continue;
            }
            break;
        }
        self.next = Some(next);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reordered_packets_come_out_in_order_across_the_wrap() {
        let mut r = Reorder::default();
        assert_eq!(r.push(65534, 0, 'a'), ['a']);
        assert_eq!(r.push(0, 1, 'c'), Vec::<char>::new());
        assert_eq!(r.push(65535, 2, 'b'), ['b', 'c']);
        assert_eq!(r.push(1, 3, 'd'), ['d']);
        // A duplicate, and a packet from before: both late.
        assert_eq!(r.push(1, 4, 'x'), Vec::<char>::new());
        assert_eq!(r.push(65533, 4, 'y'), Vec::<char>::new());
        assert_eq!(r.late, 2);
    }

    #[test]
    fn a_gap_is_skipped_after_the_hold_time_or_when_too_much_waits() {
        let mut r = Reorder::default();
        assert_eq!(r.push(10, 0, 10), [10]);
        assert!(r.push(12, 1_000, 12).is_empty());
        assert!(r.push(13, 2_000, 13).is_empty());
        assert!(r.release(100_000).is_empty(), "still waiting for 11");
        assert_eq!(r.release(1_000 + HOLD_US), [12, 13]);
        // 11 arriving now is too late.
        assert!(r.push(11, 200_000, 11).is_empty());
        assert_eq!(r.late, 1);
        // Too many held behind a gap: released at once.
        let mut got = Vec::new();
        for s in 15..(15 + MAX_HELD as u16 + 1) {
            got.extend(r.push(s, 300_000, s));
        }
        assert_eq!(got.len(), MAX_HELD + 1);
        assert_eq!(got.first(), Some(&15));
    }
}
