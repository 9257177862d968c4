//! STUN message codec (RFC 8489): zero-copy parsing, a builder writing into a
//! reusable buffer, MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT.

mod builder;
mod parse;

pub use builder::Builder;
pub use parse::{AttrIter, Msg, ParseError, parse};

use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub const MAGIC_COOKIE: u32 = 0x2112_A442;
pub const HEADER_LEN: usize = 20;
const FINGERPRINT_XOR: u32 = 0x5354_554e;

/// STUN/TURN methods.
pub mod method {
    pub const BINDING: u16 = 0x001;
    pub const ALLOCATE: u16 = 0x003;
    pub const REFRESH: u16 = 0x004;
    pub const SEND: u16 = 0x006;
    pub const DATA: u16 = 0x007;
    pub const CREATE_PERMISSION: u16 = 0x008;
    pub const CHANNEL_BIND: u16 = 0x009;
}

/// Attribute types used by this server.
pub mod attr {
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    pub const USERNAME: u16 = 0x0006;
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    pub const ERROR_CODE: u16 = 0x0009;
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    pub const LIFETIME: u16 = 0x000D;
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    pub const DATA: u16 = 0x0013;
    pub const REALM: u16 = 0x0014;
    pub const NONCE: u16 = 0x0015;
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    pub const EVEN_PORT: u16 = 0x0018;
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    pub const DONT_FRAGMENT: u16 = 0x001A;
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    pub const USERHASH: u16 = 0x001E;
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    pub const PRIORITY: u16 = 0x0024;
    pub const USE_CANDIDATE: u16 = 0x0025;
    pub const ADDITIONAL_ADDRESS_FAMILY: u16 = 0x8000;
    pub const ADDRESS_ERROR_CODE: u16 = 0x8001;
    pub const SOFTWARE: u16 = 0x8022;
    pub const FINGERPRINT: u16 = 0x8028;
    pub const ICE_CONTROLLED: u16 = 0x8029;
    pub const ICE_CONTROLLING: u16 = 0x802A;
}

/// Message class (the two C bits of the message type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Request,
    Indication,
    Success,
    Error,
}

/// Encode method + class into the 14-bit message type.
pub fn message_type(method: u16, class: Class) -> u16 {
    let c: u16 = match class {
        Class::Request => 0,
        Class::Indication => 1,
        Class::Success => 2,
        Class::Error => 3,
    };
    (method & 0x000F)
        | ((method & 0x0070) << 1)
        | ((method & 0x0F80) << 2)
        | ((c & 1) << 4)
        | ((c & 2) << 7)
}

/// Split a message type into (method, class).
pub fn split_type(t: u16) -> (u16, Class) {
    let method = (t & 0x000F) | ((t & 0x00E0) >> 1) | ((t & 0x3E00) >> 2);
    let class = match ((t >> 4) & 1) | ((t >> 7) & 2) {
        0 => Class::Request,
        1 => Class::Indication,
        2 => Class::Success,
        _ => Class::Error,
    };
    (method, class)
}

/// Attribute types this server understands. Unknown comprehension-required
/// attributes (type < 0x8000) in a request get a 420 answer.
pub fn is_known_attr(t: u16) -> bool {
    use attr::*;
    matches!(
        t,
        MAPPED_ADDRESS
            | USERNAME
            | MESSAGE_INTEGRITY
            | ERROR_CODE
            | UNKNOWN_ATTRIBUTES
            | CHANNEL_NUMBER
            | LIFETIME
            | XOR_PEER_ADDRESS
            | DATA
            | REALM
            | NONCE
            | XOR_RELAYED_ADDRESS
            | REQUESTED_ADDRESS_FAMILY
            | EVEN_PORT
            | REQUESTED_TRANSPORT
            | DONT_FRAGMENT
            | MESSAGE_INTEGRITY_SHA256
            | PASSWORD_ALGORITHM
            | XOR_MAPPED_ADDRESS
            | RESERVATION_TOKEN
            | PRIORITY
            | USE_CANDIDATE
    ) || t >= 0x8000
}

/// CRC-32 (ISO-HDLC, as used by FINGERPRINT), table-driven.
pub fn crc32(data: &[u8]) -> u32 {
    crc32_parts(&[data])
}

const fn make_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}
static CRC_TABLE: [u32; 256] = make_table();

fn crc32_parts(parts: &[&[u8]]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for p in parts {
        for &b in *p {
            c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
    }
    c ^ 0xFFFF_FFFF
}

/// The header of `msg` with its length field replaced by `len`.
fn patched_header(msg: &[u8], len: usize) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&msg[..HEADER_LEN]);
    h[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    h
}

/// FINGERPRINT value for the message prefix `msg[..off]` where `off` is the
/// offset of the FINGERPRINT attribute header.
pub(crate) fn fingerprint_value(msg: &[u8], off: usize) -> u32 {
    let h = patched_header(msg, off + 8 - HEADER_LEN);
    crc32_parts(&[&h, &msg[HEADER_LEN..off]]) ^ FINGERPRINT_XOR
}

/// HMAC-SHA1 for MESSAGE-INTEGRITY at offset `off`.
pub(crate) fn integrity_sha1(key: &[u8], msg: &[u8], off: usize) -> [u8; 20] {
    let h = patched_header(msg, off + 24 - HEADER_LEN);
    // HMAC accepts keys of any length; `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 20],
    };
    mac.update(&h);
    mac.update(&msg[HEADER_LEN..off]);
    mac.finalize().into_bytes().into()
}

/// HMAC-SHA256 for MESSAGE-INTEGRITY-SHA256 at `off` with a value of `vlen` bytes.
pub(crate) fn integrity_sha256(key: &[u8], msg: &[u8], off: usize, vlen: usize) -> [u8; 32] {
    let h = patched_header(msg, off + 4 + vlen - HEADER_LEN);
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(&h);
    mac.update(&msg[HEADER_LEN..off]);
    mac.finalize().into_bytes().into()
}

/// Decode an (XOR-)address attribute value.
pub fn decode_addr(v: &[u8], xor: bool, tid: &[u8; 12]) -> Option<SocketAddr> {
    if v.len() < 4 {
        return None;
    }
    let mut port = u16::from_be_bytes([v[2], v[3]]);
    if xor {
        port ^= (MAGIC_COOKIE >> 16) as u16;
    }
    match (v[1], v.len()) {
        (1, 8) => {
            let mut a = [v[4], v[5], v[6], v[7]];
            if xor {
                for (x, k) in a.iter_mut().zip(MAGIC_COOKIE.to_be_bytes()) {
                    *x ^= k;
                }
            }
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
        }
        (2, 20) => {
            let mut a = [0u8; 16];
            a.copy_from_slice(&v[4..20]);
            if xor {
                let mut k = [0u8; 16];
                k[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
                k[4..].copy_from_slice(tid);
                for (x, k) in a.iter_mut().zip(k) {
                    *x ^= k;
                }
            }
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

/// Encode an XOR address value into `out`, returning the used length (8 or 20).
pub fn encode_xor_addr(addr: SocketAddr, tid: &[u8; 12], out: &mut [u8; 20]) -> usize {
    let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
    out[0] = 0;
    out[2..4].copy_from_slice(&port.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(ip) => {
            out[1] = 1;
            for (i, (b, k)) in ip
                .octets()
                .iter()
                .zip(MAGIC_COOKIE.to_be_bytes())
                .enumerate()
            {
                out[4 + i] = b ^ k;
            }
            8
        }
        IpAddr::V6(ip) => {
            out[1] = 2;
            let mut k = [0u8; 16];
            k[..4].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
            k[4..].copy_from_slice(tid);
            for (i, (b, k)) in ip.octets().iter().zip(k).enumerate() {
                out[4 + i] = b ^ k;
            }
            20
        }
    }
}

#[cfg(test)]
mod tests;
