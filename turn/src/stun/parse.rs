//! Zero-copy STUN parsing. Never panics, never reads past the input.

use super::{Class, HEADER_LEN, MAGIC_COOKIE, attr, decode_addr, is_known_attr, split_type};
use std::net::SocketAddr;

/// Why a datagram is not a usable STUN message (it is dropped silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    TooShort,
    NotStun,
    BadLength,
    BadAttribute,
    BadFingerprint,
}

/// Maximum number of unknown comprehension-required attributes reported.
pub const MAX_UNKNOWN: usize = 8;

/// A parsed STUN message borrowing from the input buffer.
#[derive(Debug, Clone)]
pub struct Msg<'a> {
    /// The whole message (header + attributes), exactly `20 + length` bytes.
    pub raw: &'a [u8],
    pub method: u16,
    pub class: Class,
    pub tid: [u8; 12],
    pub username: Option<&'a [u8]>,
    pub realm: Option<&'a [u8]>,
    pub nonce: Option<&'a [u8]>,
    /// Offset of the MESSAGE-INTEGRITY attribute header.
    pub mi: Option<usize>,
    /// Offset and value length of MESSAGE-INTEGRITY-SHA256.
    pub mi256: Option<(usize, usize)>,
    pub lifetime: Option<u32>,
    pub requested_transport: Option<u8>,
    pub requested_family: Option<u8>,
    pub additional_family: Option<u8>,
    pub channel: Option<u16>,
    pub data: Option<&'a [u8]>,
    /// First XOR-PEER-ADDRESS (use `peers()` for all of them).
    pub peer: Option<SocketAddr>,
    pub peer_count: usize,
    pub even_port: bool,
    pub dont_fragment: bool,
    pub reservation_token: bool,
    pub password_algorithm: Option<u16>,
    /// A known attribute had an invalid value (answer 400).
    pub malformed: bool,
    pub unknown: [u16; MAX_UNKNOWN],
    pub n_unknown: usize,
}

/// Iterator over (type, value) of the attributes of a message body.
pub struct AttrIter<'a> {
    body: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for AttrIter<'a> {
    type Item = (u16, &'a [u8], usize);
    fn next(&mut self) -> Option<Self::Item> {
        let hdr = self.body.get(self.pos..self.pos + 4)?;
        let t = u16::from_be_bytes([hdr[0], hdr[1]]);
        let len = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
        let start = self.pos + 4;
        let v = self.body.get(start..start + len)?;
        let off = self.pos;
        self.pos = start + ((len + 3) & !3);
        Some((t, v, off + HEADER_LEN))
    }
}

impl<'a> Msg<'a> {
    /// All attributes (type, value, offset of the attribute header in `raw`).
    pub fn attrs(&self) -> AttrIter<'a> {
        AttrIter {
            body: &self.raw[HEADER_LEN..],
            pos: 0,
        }
    }

    /// All XOR-PEER-ADDRESS values (before any integrity attribute).
    pub fn peers(&self) -> impl Iterator<Item = Option<SocketAddr>> + '_ {
        let limit = self.integrity_offset();
        self.attrs()
            .filter(move |(t, _, off)| *t == attr::XOR_PEER_ADDRESS && *off < limit)
            .map(|(_, v, _)| decode_addr(v, true, &self.tid))
    }

    /// Offset of the first integrity attribute (or the end of the message).
    pub fn integrity_offset(&self) -> usize {
        match (self.mi, self.mi256) {
            (Some(a), Some((b, _))) => a.min(b),
            (Some(a), None) => a,
            (None, Some((b, _))) => b,
            (None, None) => self.raw.len(),
        }
    }

    pub fn unknown_attrs(&self) -> &[u16] {
        &self.unknown[..self.n_unknown]
    }
}

/// Quick check: could this buffer start a STUN message (first two bits 0 and
/// the magic cookie)?
pub fn looks_like_stun(buf: &[u8]) -> bool {
    buf.len() >= HEADER_LEN
        && buf[0] & 0xC0 == 0
        && u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) == MAGIC_COOKIE
}

/// Parse one STUN message that must fill `buf` exactly (a UDP datagram or a
/// TCP frame).
pub fn parse(buf: &[u8]) -> Result<Msg<'_>, ParseError> {
    if buf.len() < HEADER_LEN {
        return Err(ParseError::TooShort);
    }
    if !looks_like_stun(buf) {
        return Err(ParseError::NotStun);
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    if !len.is_multiple_of(4) || HEADER_LEN + len != buf.len() {
        return Err(ParseError::BadLength);
    }
    let (method, class) = split_type(u16::from_be_bytes([buf[0], buf[1]]));
    let mut tid = [0u8; 12];
    tid.copy_from_slice(&buf[8..20]);
    let mut m = Msg {
        raw: buf,
        method,
        class,
        tid,
        username: None,
        realm: None,
        nonce: None,
        mi: None,
        mi256: None,
        lifetime: None,
        requested_transport: None,
        requested_family: None,
        additional_family: None,
        channel: None,
        data: None,
        peer: None,
        peer_count: 0,
        even_port: false,
        dont_fragment: false,
        reservation_token: false,
        password_algorithm: None,
        malformed: false,
        unknown: [0; MAX_UNKNOWN],
        n_unknown: 0,
    };
    let body = &buf[HEADER_LEN..];
    let mut pos = 0usize;
    let mut after_integrity = false;
    let mut seen_fingerprint = false;
    while pos < body.len() {
        if seen_fingerprint {
            // FINGERPRINT must be the last attribute.
            return Err(ParseError::BadAttribute);
        }
        let hdr = body.get(pos..pos + 4).ok_or(ParseError::BadAttribute)?;
        let t = u16::from_be_bytes([hdr[0], hdr[1]]);
        let vlen = u16::from_be_bytes([hdr[2], hdr[3]]) as usize;
        let start = pos + 4;
        let v = body
            .get(start..start + vlen)
            .ok_or(ParseError::BadAttribute)?;
        let padded = (vlen + 3) & !3;
        if start + padded > body.len() {
            return Err(ParseError::BadAttribute);
        }
        let off = HEADER_LEN + pos;
        pos = start + padded;
        if t == attr::FINGERPRINT {
            if vlen != 4 {
                return Err(ParseError::BadFingerprint);
            }
            let want = super::fingerprint_value(buf, off);
            if u32::from_be_bytes([v[0], v[1], v[2], v[3]]) != want {
                return Err(ParseError::BadFingerprint);
            }
            seen_fingerprint = true;
            continue;
        }
        if after_integrity {
            // Only MESSAGE-INTEGRITY-SHA256 may follow MESSAGE-INTEGRITY; the
            // rest is ignored (RFC 8489 section 14.5).
            if t == attr::MESSAGE_INTEGRITY_SHA256 && m.mi256.is_none() {
                m.mi256 = Some((off, vlen));
                if !(16..=32).contains(&vlen) || !vlen.is_multiple_of(4) {
                    m.malformed = true;
                }
            }
            continue;
        }
        match t {
            attr::USERNAME => m.username = Some(v),
            attr::REALM => m.realm = Some(v),
            attr::NONCE => m.nonce = Some(v),
            attr::MESSAGE_INTEGRITY => {
                if vlen != 20 {
                    m.malformed = true;
                }
                m.mi = Some(off);
                after_integrity = true;
            }
            attr::MESSAGE_INTEGRITY_SHA256 => {
                if !(16..=32).contains(&vlen) || !vlen.is_multiple_of(4) {
                    m.malformed = true;
                }
                m.mi256 = Some((off, vlen));
                after_integrity = true;
            }
            attr::LIFETIME => match v {
                [a, b, c, d] => m.lifetime = Some(u32::from_be_bytes([*a, *b, *c, *d])),
                _ => m.malformed = true,
            },
            attr::REQUESTED_TRANSPORT => match v {
                [p, _, _, _] => m.requested_transport = Some(*p),
                _ => m.malformed = true,
            },
            attr::REQUESTED_ADDRESS_FAMILY => match v {
                [f, _, _, _] => m.requested_family = Some(*f),
                _ => m.malformed = true,
            },
            attr::ADDITIONAL_ADDRESS_FAMILY => match v {
                [f, _, _, _] => m.additional_family = Some(*f),
                _ => m.malformed = true,
            },
            attr::CHANNEL_NUMBER => match v {
                [a, b, _, _] => m.channel = Some(u16::from_be_bytes([*a, *b])),
                _ => m.malformed = true,
            },
            attr::DATA => m.data = Some(v),
            attr::XOR_PEER_ADDRESS => {
                m.peer_count += 1;
                match decode_addr(v, true, &tid) {
                    Some(a) => {
                        if m.peer.is_none() {
                            m.peer = Some(a);
                        }
                    }
                    None => m.malformed = true,
                }
            }
            attr::EVEN_PORT => {
                if vlen != 1 {
                    m.malformed = true;
                }
                m.even_port = true;
            }
            attr::DONT_FRAGMENT => m.dont_fragment = true,
            attr::RESERVATION_TOKEN => m.reservation_token = true,
            attr::PASSWORD_ALGORITHM => match v {
                [a, b, ..] => m.password_algorithm = Some(u16::from_be_bytes([*a, *b])),
                _ => m.malformed = true,
            },
            _ => {
                if !is_known_attr(t) && m.n_unknown < MAX_UNKNOWN {
                    m.unknown[m.n_unknown] = t;
                    m.n_unknown += 1;
                }
            }
        }
    }
    Ok(m)
}
