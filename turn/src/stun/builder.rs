//! Writes STUN messages into a caller-owned, reusable buffer (no allocation
//! once the buffer has grown).

use super::{
    Class, HEADER_LEN, MAGIC_COOKIE, attr, encode_xor_addr, fingerprint_value, integrity_sha1,
    integrity_sha256, message_type,
};
use std::net::SocketAddr;

/// Builder for one STUN message. The header length is kept up to date.
pub struct Builder<'b> {
    buf: &'b mut Vec<u8>,
    tid: [u8; 12],
}

impl<'b> Builder<'b> {
    pub fn new(buf: &'b mut Vec<u8>, method: u16, class: Class, tid: &[u8; 12]) -> Self {
        buf.clear();
        buf.extend_from_slice(&message_type(method, class).to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(tid);
        Builder { buf, tid: *tid }
    }

    fn set_len(&mut self) {
        let len = (self.buf.len() - HEADER_LEN) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
    }

    /// Append an attribute (value truncated at 65535 bytes), padded to 4.
    pub fn attr(&mut self, t: u16, v: &[u8]) -> &mut Self {
        let v = &v[..v.len().min(u16::MAX as usize - 3)];
        self.buf.extend_from_slice(&t.to_be_bytes());
        self.buf.extend_from_slice(&(v.len() as u16).to_be_bytes());
        self.buf.extend_from_slice(v);
        let pad = (4 - v.len() % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
        self.set_len();
        self
    }

    pub fn u32_attr(&mut self, t: u16, v: u32) -> &mut Self {
        self.attr(t, &v.to_be_bytes())
    }

    pub fn xor_addr(&mut self, t: u16, a: SocketAddr) -> &mut Self {
        let mut v = [0u8; 20];
        let n = encode_xor_addr(a, &self.tid, &mut v);
        self.attr(t, &v[..n])
    }

    /// ERROR-CODE (or ADDRESS-ERROR-CODE with `t`) with a reason phrase.
    pub fn error_code(&mut self, t: u16, code: u16, reason: &str) -> &mut Self {
        let mut v = [0u8; 68];
        let r = reason.as_bytes();
        let r = &r[..r.len().min(64)];
        v[2] = (code / 100) as u8;
        v[3] = (code % 100) as u8;
        v[4..4 + r.len()].copy_from_slice(r);
        self.attr(t, &v[..4 + r.len()])
    }

    pub fn unknown_attributes(&mut self, types: &[u16]) -> &mut Self {
        let mut v = [0u8; 32];
        let n = types.len().min(16);
        for (i, t) in types[..n].iter().enumerate() {
            v[2 * i..2 * i + 2].copy_from_slice(&t.to_be_bytes());
        }
        self.attr(attr::UNKNOWN_ATTRIBUTES, &v[..2 * n])
    }

    /// Append MESSAGE-INTEGRITY (HMAC-SHA1) with `key`.
    pub fn integrity(&mut self, key: &[u8]) -> &mut Self {
        let off = self.buf.len();
        let mac = integrity_sha1(key, self.buf.as_slice(), off);
        self.attr(attr::MESSAGE_INTEGRITY, &mac)
    }

    /// Append MESSAGE-INTEGRITY-SHA256 (full 32 bytes) with `key`.
    pub fn integrity_sha256(&mut self, key: &[u8]) -> &mut Self {
        let off = self.buf.len();
        let mac = integrity_sha256(key, self.buf.as_slice(), off, 32);
        self.attr(attr::MESSAGE_INTEGRITY_SHA256, &mac)
    }

    /// Append FINGERPRINT; must be last.
    pub fn fingerprint(&mut self) -> &mut Self {
        let off = self.buf.len();
        let fp = fingerprint_value(self.buf.as_slice(), off);
        self.attr(attr::FINGERPRINT, &fp.to_be_bytes())
    }
}
