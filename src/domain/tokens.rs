//! Signed, expiring, opaque tokens (pure: `now` is passed in).
//!
//! Layout before base64url: `payload ‖ expiry (u32, big-endian unix seconds) ‖ tag`, where
//! `tag` is the first 16 bytes of HMAC-SHA256 over `purpose ‖ payload ‖ expiry` under a key
//! derived for that purpose. A join link's payload is its 16 random link-id bytes, so a
//! link is 43 characters and carries 128 bits of randomness plus a 128-bit tag.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

const TAG_LEN: usize = 16;
const EXP_LEN: usize = 4;
/// Longest token accepted before any work is done (bounds decoding cost).
pub const MAX_TOKEN_CHARS: usize = 512;

/// What a key signs: a token made for one purpose never verifies for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    JoinLink,
    Connection,
    AgentToken,
    Report,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::JoinLink => b"sightline/join-link/v1",
            Purpose::Connection => b"sightline/connection/v1",
            Purpose::AgentToken => b"sightline/agent-token/v1",
            Purpose::Report => b"sightline/report/v1",
        }
    }
}

/// A key for one purpose, derived from the master secret.
#[derive(Clone)]
pub struct TokenKey {
    key: [u8; 32],
    purpose: Purpose,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKey")
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed")]
    Malformed,
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token has expired")]
    Expired,
}

impl TokenKey {
    pub fn derive(master: &[u8], purpose: Purpose) -> Self {
        let mut mac = HmacSha256::new_from_slice(master).expect("HMAC takes any key length");
        mac.update(purpose.label());
        let key: [u8; 32] = mac.finalize().into_bytes().into();
        Self { key, purpose }
    }

    fn tag(&self, payload: &[u8], expiry: u32) -> [u8; TAG_LEN] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(self.purpose.label());
        mac.update(payload);
        mac.update(&expiry.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        tag
    }

    /// Seals `payload` until `expires_at` (unix seconds; clamped to the u32 range).
    pub fn seal(&self, payload: &[u8], expires_at: i64) -> String {
        let expiry = expires_at.clamp(0, i64::from(u32::MAX)) as u32;
        let mut buf = Vec::with_capacity(payload.len() + EXP_LEN + TAG_LEN);
        buf.extend_from_slice(payload);
        buf.extend_from_slice(&expiry.to_be_bytes());
        buf.extend_from_slice(&self.tag(payload, expiry));
        URL_SAFE_NO_PAD.encode(buf)
    }

    /// Opens a token sealed by [`seal`](Self::seal): checks the tag in constant time, then
    /// the expiry against `now` (unix seconds). Returns the payload and the expiry.
    pub fn open(&self, token: &str, now: i64) -> Result<(Vec<u8>, i64), TokenError> {
        self.open_bounded(token, now, MAX_TOKEN_CHARS)
    }

    /// [`open`](Self::open) for tokens whose payload may be longer: refuses tokens over
    /// `max_chars` before any work.
    pub fn open_bounded(
        &self,
        token: &str,
        now: i64,
        max_chars: usize,
    ) -> Result<(Vec<u8>, i64), TokenError> {
        if token.is_empty() || token.len() > max_chars {
            return Err(TokenError::Malformed);
        }
        let raw = URL_SAFE_NO_PAD
            .decode(token.as_bytes())
            .map_err(|_| TokenError::Malformed)?;
        if raw.len() < EXP_LEN + TAG_LEN {
            return Err(TokenError::Malformed);
        }
        let (body, tag) = raw.split_at(raw.len() - TAG_LEN);
        let (payload, exp) = body.split_at(body.len() - EXP_LEN);
        let expiry = u32::from_be_bytes([exp[0], exp[1], exp[2], exp[3]]);
        let expected = self.tag(payload, expiry);
        if !bool::from(expected.ct_eq(tag)) {
            return Err(TokenError::BadSignature);
        }
        if i64::from(expiry) <= now {
            return Err(TokenError::Expired);
        }
        Ok((payload.to_vec(), i64::from(expiry)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: Purpose) -> TokenKey {
        TokenKey::derive(b"0123456789abcdef0123456789abcdef", p)
    }

    #[test]
    fn round_trip_and_length() {
        let k = key(Purpose::JoinLink);
        let t = k.seal(&[7u8; 16], 2_000_000_000);
        assert_eq!(t.len(), 48);
        let (p, exp) = k.open(&t, 1_900_000_000).unwrap();
        assert_eq!(p, vec![7u8; 16]);
        assert_eq!(exp, 2_000_000_000);
    }

    #[test]
    fn expiry_is_enforced() {
        let k = key(Purpose::JoinLink);
        let t = k.seal(b"x", 100);
        assert_eq!(k.open(&t, 100), Err(TokenError::Expired));
        assert!(k.open(&t, 99).is_ok());
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let k = key(Purpose::JoinLink);
        let t = k.seal(&[1u8; 16], 2_000_000_000);
        let raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        for i in 0..raw.len() * 8 {
            let mut m = raw.clone();
            m[i / 8] ^= 1 << (i % 8);
            let forged = URL_SAFE_NO_PAD.encode(&m);
            assert!(k.open(&forged, 0).is_err(), "bit {i} accepted");
        }
    }

    #[test]
    fn purposes_do_not_mix() {
        let t = key(Purpose::Connection).seal(b"abc", 2_000_000_000);
        assert_eq!(
            key(Purpose::JoinLink).open(&t, 0),
            Err(TokenError::BadSignature)
        );
        let other = TokenKey::derive(b"another master secret, 32 bytes!", Purpose::Connection);
        assert_eq!(other.open(&t, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let k = key(Purpose::JoinLink);
        for s in [
            "",
            "!!!",
            "a",
            "-",
            &"A".repeat(600),
            "AAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ] {
            assert!(k.open(s, 0).is_err(), "{s}");
        }
    }
}

#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn open_never_panics_on_arbitrary_text(s in ".{0,700}") {
            let k = TokenKey::derive(b"0123456789abcdef0123456789abcdef", Purpose::JoinLink);
            let _ = k.open(&s, 0);
        }

        #[test]
        fn open_never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let k = TokenKey::derive(b"0123456789abcdef0123456789abcdef", Purpose::JoinLink);
            let _ = k.open(&URL_SAFE_NO_PAD.encode(&b), 0);
        }

        #[test]
        fn sealed_tokens_always_open(payload in proptest::collection::vec(any::<u8>(), 0..64), exp in 1i64..4_000_000_000) {
            let k = TokenKey::derive(b"0123456789abcdef0123456789abcdef", Purpose::Connection);
            let t = k.seal(&payload, exp);
            let exp = exp.min(i64::from(u32::MAX));
            prop_assert_eq!(k.open(&t, exp - 1), Ok((payload, exp)));
        }
    }
}
