//! VP8 over RTP (RFC 7741): the payload descriptor, and whole frames assembled from the
//! packets of one RTP timestamp up to the marker bit. A frame with a missing packet is
//! dropped, and after any loss nothing is written until the next key frame (a decoder
//! could not use the frames in between).

/// Largest frame assembled (a 4K key frame is far smaller); bigger ones are dropped.
const MAX_FRAME: usize = 4 << 20;

/// The parsed VP8 payload descriptor of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Descriptor {
    /// The S bit: this packet starts a VP8 partition.
    pub start: bool,
    /// The partition index (PID).
    pub partition: u8,
    /// Length of the descriptor: the VP8 payload follows it.
    pub len: usize,
}

impl Descriptor {
    /// Parses the descriptor; `None` if the payload is too short for what it announces.
    pub fn parse(p: &[u8]) -> Option<Descriptor> {
        let b0 = *p.first()?;
        let mut len = 1;
        if b0 & 0x80 != 0 {
            let x = *p.get(1)?;
            len = 2;
            if x & 0x80 != 0 {
                // PictureID: 7 or 15 bits (M bit).
                let pid = *p.get(len)?;
                len += if pid & 0x80 != 0 { 2 } else { 1 };
            }
            if x & 0x40 != 0 {
                len += 1; // TL0PICIDX
            }
            if x & 0x30 != 0 {
                len += 1; // TID / Y / KEYIDX
            }
        }
        if p.len() <= len {
            return None;
        }
        Some(Descriptor {
            start: b0 & 0x10 != 0,
            partition: b0 & 0x07,
            len,
        })
    }

    /// Starts a frame: the first packet of partition 0.
    pub fn starts_frame(&self) -> bool {
        self.start && self.partition == 0
    }
}

/// A complete VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub timestamp: u32,
    pub data: Vec<u8>,
    pub key: bool,
}

/// Whether a whole frame is a key frame, and its size if so (the key frame header:
/// 3-byte frame tag, start code 9d 01 2a, 14-bit width and height).
pub fn key_frame_size(frame: &[u8]) -> Option<(u16, u16)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3fff;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3fff;
    Some((w, h))
}

/// Assembles frames from packets in arrival order.
#[derive(Debug, Default)]
pub struct Depacketizer {
    /// The frame being assembled: its timestamp, bytes, and whether it is still whole.
    current: Option<(u32, Vec<u8>, bool)>,
    last_seq: Option<u16>,
    /// After a loss: frames are dropped until a key frame.
    need_key: bool,
    /// Frames dropped (incomplete, or waiting for a key frame).
    pub dropped: u64,
}

impl Depacketizer {
    pub fn new() -> Self {
        Self {
            need_key: true,
            ..Default::default()
        }
    }

    /// Whether the next frame written must be a key frame (set after a loss).
    pub fn needs_key_frame(&self) -> bool {
        self.need_key
    }

    /// Takes one RTP packet; returns a frame when this packet completes one that can be
    /// decoded (whole, and a key frame or following an unbroken chain since one).
    pub fn push(
        &mut self,
        seq: u16,
        timestamp: u32,
        marker: bool,
        payload: &[u8],
    ) -> Option<Frame> {
        let in_order = self.last_seq.is_none_or(|l| seq == l.wrapping_add(1));
        if let Some(l) = self.last_seq
            && seq.wrapping_sub(l) > 0x8000
        {
            // An old or duplicate packet (a late retransmission): ignore it.
            return None;
        }
        self.last_seq = Some(seq);
        let desc = Descriptor::parse(payload);
        if let Some((ts, _, whole)) = self.current.as_mut() {
            if *ts != timestamp {
                // The previous frame never got its marker: it is incomplete.
                self.current = None;
                self.lost();
            } else if !in_order {
                *whole = false;
            }
        } else if !in_order {
            self.lost();
        }
        let Some(desc) = desc else {
            if let Some(c) = self.current.as_mut() {
                c.2 = false;
            } else {
                self.lost();
            }
            return self.finish(marker);
        };
        let body = &payload[desc.len..];
        match self.current.as_mut() {
            None if desc.starts_frame() => {
                self.current = Some((timestamp, body.to_vec(), true));
            }
            None => {
                // The middle of a frame whose start was lost.
                self.lost();
                return None;
            }
            Some((_, data, whole)) => {
                if data.len() + body.len() > MAX_FRAME {
                    *whole = false;
                } else if *whole {
                    data.extend_from_slice(body);
                }
            }
        }
        self.finish(marker)
    }

    fn lost(&mut self) {
        self.need_key = true;
        self.dropped += 1;
    }

    fn finish(&mut self, marker: bool) -> Option<Frame> {
        if !marker {
            return None;
        }
        let (timestamp, data, whole) = self.current.take()?;
        if !whole {
            self.lost();
            return None;
        }
        let key = key_frame_size(&data).is_some();
        if self.need_key && !key {
            self.dropped += 1;
            return None;
        }
        self.need_key = false;
        Some(Frame {
            timestamp,
            data,
            key,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_frame(w: u16, h: u16, len: usize) -> Vec<u8> {
        let mut f = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        f.extend_from_slice(&w.to_le_bytes());
        f.extend_from_slice(&h.to_le_bytes());
        f.resize(len, 0xab);
        f
    }

    fn delta_frame(len: usize) -> Vec<u8> {
        let mut f = vec![0x31, 0x02, 0x00];
        f.resize(len, 0xcd);
        f
    }

    /// Splits a frame into packets with a minimal descriptor (S on the first).
    fn packets(frame: &[u8], mtu: usize) -> Vec<(Vec<u8>, bool)> {
        let chunks: Vec<&[u8]> = frame.chunks(mtu).collect();
        let n = chunks.len();
        chunks
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
                p.extend_from_slice(c);
                (p, i + 1 == n)
            })
            .collect()
    }

    #[test]
    fn descriptors_with_every_optional_field_parse() {
        // X, I with a 15-bit picture id, L, T/K.
        let p = [0x90, 0xf0, 0x81, 0x23, 0x05, 0x40, 0x99];
        assert_eq!(
            Descriptor::parse(&p),
            Some(Descriptor {
                start: true,
                partition: 0,
                len: 6
            })
        );
        // X with a 7-bit picture id only; partition 2, no S.
        let p = [0x82, 0x80, 0x11, 0x77];
        let d = Descriptor::parse(&p).expect("parses");
        assert_eq!((d.start, d.partition, d.len), (false, 2, 3));
        assert!(!d.starts_frame());
        // Minimal.
        assert_eq!(Descriptor::parse(&[0x10, 1]).map(|d| d.len), Some(1));
        // Truncated: announces fields that are missing, or carries no payload.
        assert_eq!(Descriptor::parse(&[0x90, 0x80]), None);
        assert_eq!(
            Descriptor::parse(&[0x90, 0xf0, 0x81, 0x23, 0x05, 0x40]),
            None
        );
        assert_eq!(Descriptor::parse(&[0x10]), None);
        assert_eq!(Descriptor::parse(&[]), None);
    }

    #[test]
    fn key_frames_are_recognised_with_their_size() {
        assert_eq!(key_frame_size(&key_frame(320, 240, 40)), Some((320, 240)));
        assert_eq!(
            key_frame_size(&key_frame(0x4000 | 640, 480, 40)),
            Some((640, 480))
        );
        assert_eq!(key_frame_size(&delta_frame(40)), None);
        assert_eq!(key_frame_size(&key_frame(320, 240, 40)[..9]), None);
    }

    #[test]
    fn frames_assemble_across_packets_and_wait_for_a_key_frame() {
        let mut d = Depacketizer::new();
        let mut seq = 100u16;
        let mut feed = |d: &mut Depacketizer, frame: &[u8], ts: u32| {
            let mut out = None;
            for (p, m) in packets(frame, 500) {
                seq = seq.wrapping_add(1);
                if let Some(f) = d.push(seq, ts, m, &p) {
                    assert!(out.is_none());
                    out = Some(f);
                }
            }
            out
        };
        // A delta frame first: nothing can decode it.
        assert_eq!(feed(&mut d, &delta_frame(1200), 0), None);
        let key = key_frame(320, 240, 1800);
        let f = feed(&mut d, &key, 3000).expect("key frame");
        assert_eq!((f.timestamp, f.key, f.data.clone()), (3000, true, key));
        let delta = delta_frame(700);
        let f = feed(&mut d, &delta, 6000).expect("delta frame");
        assert_eq!((f.key, f.data), (false, delta));
        assert!(!d.needs_key_frame());
    }

    #[test]
    fn a_gap_drops_the_frame_and_everything_until_the_next_key_frame() {
        let mut d = Depacketizer::new();
        let key = packets(&key_frame(320, 240, 1200), 500);
        assert_eq!(key.len(), 3);
        let mut got = Vec::new();
        for (i, (p, m)) in key.iter().enumerate() {
            got.extend(d.push(i as u16, 0, *m, p));
        }
        assert_eq!(got.len(), 1);
        // A delta frame of three packets loses its middle one.
        let delta = packets(&delta_frame(1200), 500);
        assert_eq!(d.push(3, 3000, delta[0].1, &delta[0].0), None);
        assert_eq!(d.push(5, 3000, delta[2].1, &delta[2].0), None);
        assert!(d.needs_key_frame());
        // The next delta frame is whole but cannot be decoded.
        let next = packets(&delta_frame(300), 500);
        assert_eq!(d.push(6, 6000, next[0].1, &next[0].0), None);
        // A key frame restarts the chain; a stale retransmission is ignored.
        let key2 = packets(&key_frame(320, 240, 400), 500);
        assert_eq!(d.push(4, 3000, true, &delta[1].0), None);
        let f = d.push(7, 9000, key2[0].1, &key2[0].0).expect("key frame");
        assert!(f.key);
        assert!(!d.needs_key_frame());
        assert!(d.dropped >= 2);
    }

    #[test]
    fn a_frame_without_its_marker_is_dropped_when_the_next_begins() {
        let mut d = Depacketizer::new();
        let key = key_frame(160, 120, 300);
        let p = packets(&key, 1000);
        // The marker packet is lost: the next timestamp starts.
        assert_eq!(d.push(1, 0, false, &p[0].0), None);
        let key2 = key_frame(160, 120, 200);
        let p2 = packets(&key2, 1000);
        let f = d.push(3, 3000, true, &p2[0].0).expect("second key frame");
        assert_eq!(f.data, key2);
    }

    #[test]
    fn random_payloads_never_panic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut d = Depacketizer::new();
        for i in 0..20_000u32 {
            let len = rng.random_range(0..64);
            let p: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let seq: u16 = if i % 7 == 0 { rng.random() } else { i as u16 };
            let _ = Descriptor::parse(&p);
            let _ = key_frame_size(&p);
            let _ = d.push(seq, rng.random_range(0..4) * 3000, rng.random(), &p);
        }
    }
}
