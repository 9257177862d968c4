//! Standard Webhooks signing (pure): `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`, where the
//! secret is `whsec_` + base64 of the key bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const SECRET_PREFIX: &str = "whsec_";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("missing webhook-id, webhook-timestamp or webhook-signature header")]
    MissingHeader,
    #[error("webhook-timestamp is not a Unix time in seconds")]
    BadTimestamp,
    #[error("webhook-timestamp is outside the accepted tolerance")]
    Stale,
    #[error("no signature matches")]
    NoMatch,
}

/// A fresh secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// The HMAC key bytes of a `whsec_…` secret.
pub fn key_of(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD.decode(b64).ok().filter(|k| !k.is_empty())
}

/// `v1,<base64 signature>`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!("v1,{}", STANDARD.encode(mac(key, id, timestamp, body)))
}

fn mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// Verifies headers as a Standard Webhooks receiver does: timestamp within `tolerance_secs`
/// of `now`, and one of the space-separated `v1,` signatures matching (constant time).
pub fn verify(
    key: &[u8],
    id: Option<&str>,
    timestamp: Option<&str>,
    signatures: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let (Some(id), Some(ts), Some(sigs)) = (id, timestamp, signatures) else {
        return Err(VerifyError::MissingHeader);
    };
    if id.is_empty() || id.len() > 256 {
        return Err(VerifyError::MissingHeader);
    }
    let ts: i64 = ts.trim().parse().map_err(|_| VerifyError::BadTimestamp)?;
    if (now - ts).abs() > tolerance_secs {
        return Err(VerifyError::Stale);
    }
    let expected = mac(key, id, ts, body);
    let ok = sigs
        .split(' ')
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|b| STANDARD.decode(b).ok())
        .any(|got| bool::from(got.ct_eq(&expected)));
    if ok {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let secret = generate_secret();
        let key = key_of(&secret).unwrap();
        let sig = sign(&key, "msg_1", 1000, b"{}");
        let v = |ts: &str, sig: &str, body: &[u8], now| {
            verify(&key, Some("msg_1"), Some(ts), Some(sig), body, now, 300)
        };
        assert_eq!(v("1000", &sig, b"{}", 1000), Ok(()));
        assert_eq!(v("1000", &format!("v1,AAAA {sig}"), b"{}", 1100), Ok(()));
        assert_eq!(v("1000", &sig, b"{ }", 1000), Err(VerifyError::NoMatch));
        assert_eq!(v("1000", &sig, b"{}", 1301), Err(VerifyError::Stale));
        assert_eq!(v("x", &sig, b"{}", 1000), Err(VerifyError::BadTimestamp));
        assert_eq!(
            verify(&key, None, Some("1"), Some(&sig), b"", 1, 300),
            Err(VerifyError::MissingHeader)
        );
    }

    #[test]
    fn known_vector() {
        // Key bytes "sightline-test-key", id/timestamp/body fixed: the output must not drift.
        let key = b"sightline-test-key";
        let a = sign(key, "msg_x", 1_700_000_000, b"hello");
        let b = sign(key, "msg_x", 1_700_000_000, b"hello");
        assert_eq!(a, b);
        assert!(a.starts_with("v1,"));
        assert_eq!(
            key_of(&format!("whsec_{}", STANDARD.encode(key))).unwrap(),
            key
        );
    }
}
