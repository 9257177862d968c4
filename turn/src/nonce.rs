//! Stateless nonces: `hex(issued_at) || hex(HMAC-SHA1(key, issued_at || client))[..16]`.
//! Spoofed requests therefore cost no memory; a nonce is stale after `ttl`.

use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::net::{IpAddr, SocketAddr};
use subtle::ConstantTimeEq;

/// Nonce length in bytes (8 hex time + 24 hex MAC).
pub const NONCE_LEN: usize = 32;

/// Issues and checks stateless nonces bound to the client transport address.
#[derive(Clone)]
pub struct NonceKey {
    key: [u8; 32],
    ttl_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    Valid,
    /// Expired, forged or bound to another client: answer 438.
    Stale,
}

fn hex(out: &mut [u8], bytes: &[u8]) {
    const H: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in bytes.iter().enumerate() {
        out[2 * i] = H[(b >> 4) as usize];
        out[2 * i + 1] = H[(b & 15) as usize];
    }
}

impl NonceKey {
    pub fn new(key: [u8; 32], ttl_secs: u64) -> Self {
        NonceKey { key, ttl_secs }
    }

    pub fn random(ttl_secs: u64) -> Self {
        Self::new(rand::random(), ttl_secs)
    }

    fn mac(&self, ts: u32, client: SocketAddr) -> [u8; 12] {
        let mut m = match Hmac::<Sha1>::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => return [0; 12],
        };
        m.update(&ts.to_be_bytes());
        match client.ip() {
            IpAddr::V4(ip) => m.update(&ip.octets()),
            IpAddr::V6(ip) => m.update(&ip.octets()),
        }
        m.update(&client.port().to_be_bytes());
        let d = m.finalize().into_bytes();
        let mut out = [0u8; 12];
        out.copy_from_slice(&d[..12]);
        out
    }

    /// A fresh nonce for `client` issued at `now_unix`.
    pub fn issue(&self, client: SocketAddr, now_unix: u64) -> [u8; NONCE_LEN] {
        let ts = now_unix as u32;
        let mut out = [0u8; NONCE_LEN];
        hex(&mut out[..8], &ts.to_be_bytes());
        hex(&mut out[8..], &self.mac(ts, client));
        out
    }

    pub fn check(&self, nonce: &[u8], client: SocketAddr, now_unix: u64) -> NonceCheck {
        if nonce.len() != NONCE_LEN {
            return NonceCheck::Stale;
        }
        let ts = match std::str::from_utf8(&nonce[..8])
            .ok()
            .and_then(|s| u32::from_str_radix(s, 16).ok())
        {
            Some(t) => t,
            None => return NonceCheck::Stale,
        };
        let mut want = [0u8; 24];
        hex(&mut want, &self.mac(ts, client));
        if !bool::from(want.ct_eq(&nonce[8..])) {
            return NonceCheck::Stale;
        }
        let now = now_unix as u32;
        let age = now.wrapping_sub(ts);
        // Issued in the future (beyond a small skew) or too old: stale.
        if age > self.ttl_secs as u32 && ts.wrapping_sub(now) > 5 {
            return NonceCheck::Stale;
        }
        NonceCheck::Valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_lifecycle() {
        let k = NonceKey::new([9; 32], 600);
        let c: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        let n = k.issue(c, 1_000_000);
        assert_eq!(k.check(&n, c, 1_000_000), NonceCheck::Valid);
        assert_eq!(k.check(&n, c, 1_000_600), NonceCheck::Valid);
        assert_eq!(k.check(&n, c, 1_000_601), NonceCheck::Stale);
        let other: SocketAddr = "127.0.0.1:5001".parse().expect("addr");
        assert_eq!(k.check(&n, other, 1_000_000), NonceCheck::Stale);
        let mut forged = n;
        forged[20] = if forged[20] == b'0' { b'1' } else { b'0' };
        assert_eq!(k.check(&forged, c, 1_000_000), NonceCheck::Stale);
        assert_eq!(k.check(b"short", c, 1_000_000), NonceCheck::Stale);
        let other_key = NonceKey::new([8; 32], 600);
        assert_eq!(other_key.check(&n, c, 1_000_000), NonceCheck::Stale);
    }
}
