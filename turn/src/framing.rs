//! ChannelData (RFC 8656 section 12.4) and stream framing for TCP/TLS
//! (RFC 8656 section 12.5: STUN messages and padded ChannelData back to back).

use crate::stun::{HEADER_LEN, MAGIC_COOKIE};

/// Channel numbers recognised in ChannelData framing: a first byte whose two
/// top bits are `01` (0x4000-0x7FFF). Data on a channel that is not bound is
/// dropped, so this wider range only decides where a frame ends.
pub const CHANNEL_MIN: u16 = 0x4000;
pub const CHANNEL_MAX: u16 = 0x7FFF;
/// Highest channel number ChannelBind accepts (RFC 8656 section 12:
/// 0x4000-0x4FFF; 0x5000-0xFFFF are reserved and answered with 400).
pub const CHANNEL_BIND_MAX: u16 = 0x4FFF;
/// Highest channel number accepted with `TurnConfig::legacy_channel_numbers`
/// (the RFC 5766 range, still picked by some older clients).
pub const CHANNEL_BIND_MAX_LEGACY: u16 = 0x7FFF;

/// Largest frame accepted on a stream: a STUN message or a ChannelData
/// message with a 16-bit length and padding.
pub const MAX_FRAME: usize = 4 + 0xFFFF + 3;

/// Parse a ChannelData message (UDP: trailing padding is allowed).
/// Returns the channel number and the payload.
pub fn parse_channel_data(buf: &[u8]) -> Option<(u16, &[u8])> {
    if buf.len() < 4 {
        return None;
    }
    let ch = u16::from_be_bytes([buf[0], buf[1]]);
    if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&ch) {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let payload = buf.get(4..4 + len)?;
    Some((ch, payload))
}

/// Result of looking at the start of a stream buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// Need more bytes.
    Incomplete,
    /// A complete frame of this many bytes is at the start of the buffer.
    Complete(usize),
    /// Not STUN or ChannelData: the connection must be closed.
    Invalid,
}

/// Determine the length of the frame at the start of `buf`.
pub fn frame_len(buf: &[u8]) -> Frame {
    let Some(&first) = buf.first() else {
        return Frame::Incomplete;
    };
    match first >> 6 {
        0 => {
            if buf.len() < 8 {
                return Frame::Incomplete;
            }
            if u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) != MAGIC_COOKIE {
                return Frame::Invalid;
            }
            let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            if !len.is_multiple_of(4) {
                return Frame::Invalid;
            }
            complete(buf, HEADER_LEN + len)
        }
        1 => {
            if buf.len() < 4 {
                return Frame::Incomplete;
            }
            let ch = u16::from_be_bytes([buf[0], buf[1]]);
            if !(CHANNEL_MIN..=CHANNEL_MAX).contains(&ch) {
                return Frame::Invalid;
            }
            let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
            complete(buf, 4 + ((len + 3) & !3))
        }
        _ => Frame::Invalid,
    }
}

fn complete(buf: &[u8], need: usize) -> Frame {
    if buf.len() >= need {
        Frame::Complete(need)
    } else {
        Frame::Incomplete
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn channel_data() {
        assert_eq!(
            parse_channel_data(&[0x40, 0x00, 0, 2, 9, 8, 0, 0]),
            Some((0x4000, &[9u8, 8][..]))
        );
        assert_eq!(parse_channel_data(&[0x40, 0x00, 0, 5, 9, 8]), None);
        assert_eq!(parse_channel_data(&[0x80, 0x00, 0, 0]), None);
        assert_eq!(parse_channel_data(&[0x3f, 0xff, 0, 0]), None);
        assert_eq!(parse_channel_data(&[0x40]), None);
    }

    #[test]
    fn stream_frames() {
        assert_eq!(frame_len(&[]), Frame::Incomplete);
        assert_eq!(frame_len(&[0x40, 0x01, 0x00, 0x05]), Frame::Incomplete);
        assert_eq!(
            frame_len(&[0x40, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5, 0, 0, 0, 0xff]),
            Frame::Complete(12)
        );
        assert_eq!(frame_len(&[0x80, 0, 0, 0]), Frame::Invalid);
        assert_eq!(frame_len(&[0x7f, 0xff, 0, 0]), Frame::Complete(4));
        assert_eq!(frame_len(&[0xc0, 0x00, 0, 0]), Frame::Invalid);
        let mut stun = vec![0, 1, 0, 4, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[0; 16]);
        assert_eq!(frame_len(&stun), Frame::Complete(24));
        assert_eq!(frame_len(&stun[..10]), Frame::Incomplete);
        stun[4] = 0;
        assert_eq!(frame_len(&stun), Frame::Invalid);
    }

    proptest! {
        #[test]
        fn framing_never_overreads(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Frame::Complete(n) = frame_len(&data) {
                prop_assert!(n <= data.len() && n <= MAX_FRAME + HEADER_LEN);
            }
            if let Some((_, p)) = parse_channel_data(&data) {
                prop_assert!(p.len() + 4 <= data.len());
            }
        }
    }
}
