//! Which routed participant a datagram on the engine's shared UDP port belongs to.
//!
//! Every routed call shares one port. A packet from a known source address goes to the
//! participant that address belongs to; a packet from an unknown address is taken only if
//! it is a STUN binding request whose USERNAME starts with a local ufrag the engine handed
//! out (RFC 8445 §7.2.2: `local:remote`). Everything else is dropped. This is the only
//! parsing the engine does itself; RTP, RTCP, DTLS and the STUN integrity check belong to
//! the peer connection. Nothing here panics on any input (property-tested).

/// RFC 7983 first-byte classes of what arrives on a WebRTC port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Stun,
    Dtls,
    /// RTP or RTCP (SRTP/SRTCP).
    Rtp,
    Other,
}

pub fn classify(packet: &[u8]) -> Class {
    match packet.first() {
        Some(0..=3) => Class::Stun,
        Some(20..=63) => Class::Dtls,
        Some(128..=191) => Class::Rtp,
        _ => Class::Other,
    }
}

const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const USERNAME: u16 = 0x0006;
/// Longest USERNAME accepted (RFC 8489 §14.3: < 513 bytes).
const MAX_USERNAME: usize = 512;

/// The local ufrag (before the colon) of a STUN binding request's USERNAME, or `None` for
/// anything that is not a well-formed binding request carrying one.
pub fn stun_local_ufrag(packet: &[u8]) -> Option<&str> {
    if packet.len() < 20 || packet[4..8] != MAGIC_COOKIE {
        return None;
    }
    let msg_type = u16::from_be_bytes([packet[0], packet[1]]);
    // Binding request only (class request, method binding).
    if msg_type != 0x0001 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    if len % 4 != 0 || 20 + len > packet.len() {
        return None;
    }
    let mut attrs = &packet[20..20 + len];
    while attrs.len() >= 4 {
        let t = u16::from_be_bytes([attrs[0], attrs[1]]);
        let l = usize::from(u16::from_be_bytes([attrs[2], attrs[3]]));
        let body = attrs.get(4..4 + l)?;
        if t == USERNAME {
            if l > MAX_USERNAME {
                return None;
            }
            let user = std::str::from_utf8(body).ok()?;
            let local = user.split(':').next()?;
            return (!local.is_empty()).then_some(local);
        }
        let padded = 4 + l.div_ceil(4) * 4;
        attrs = attrs.get(padded..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn binding(user: &str) -> Vec<u8> {
        let mut attrs = Vec::new();
        attrs.extend_from_slice(&USERNAME.to_be_bytes());
        attrs.extend_from_slice(&(user.len() as u16).to_be_bytes());
        attrs.extend_from_slice(user.as_bytes());
        while attrs.len() % 4 != 0 {
            attrs.push(0);
        }
        let mut p = vec![0x00, 0x01];
        p.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        p.extend_from_slice(&MAGIC_COOKIE);
        p.extend_from_slice(&[7u8; 12]);
        p.extend_from_slice(&attrs);
        p
    }

    #[test]
    fn finds_the_local_ufrag() {
        assert_eq!(stun_local_ufrag(&binding("abcd:wxyz")), Some("abcd"));
        assert_eq!(stun_local_ufrag(&binding("abc:")), Some("abc"));
        assert_eq!(stun_local_ufrag(&binding(":x")), None);
        let mut not_request = binding("abcd:wxyz");
        not_request[1] = 0x11;
        assert_eq!(stun_local_ufrag(&not_request), None);
        let mut short = binding("abcd:wxyz");
        short.truncate(30);
        assert_eq!(stun_local_ufrag(&short), None);
    }

    #[test]
    fn classes() {
        assert_eq!(classify(&binding("a:b")), Class::Stun);
        assert_eq!(classify(&[22, 254, 253]), Class::Dtls);
        assert_eq!(classify(&[0x80, 96]), Class::Rtp);
        assert_eq!(classify(&[]), Class::Other);
        assert_eq!(classify(&[255]), Class::Other);
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = classify(&data);
            let _ = stun_local_ufrag(&data);
        }

        #[test]
        fn never_panics_on_mangled_requests(user in "[a-z]{1,8}:[a-z]{1,8}", cut in 0usize..64, flip in 0usize..64, byte in any::<u8>()) {
            let mut p = binding(&user);
            if flip < p.len() { p[flip] = byte; }
            p.truncate(p.len().saturating_sub(cut));
            let _ = stun_local_ufrag(&p);
        }
    }
}
