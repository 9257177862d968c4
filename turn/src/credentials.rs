//! TURN REST credentials (compatible with coturn's `use-auth-secret`) and the
//! long-term credential key.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha1::Sha1;
use std::time::Duration;

/// Make TURN REST credentials: username `"<expiry>:<id>"`, password
/// `base64(HMAC-SHA1(secret, username))`.
pub fn rest_credentials(secret: &[u8], id: &str, ttl: Duration, now_unix: u64) -> (String, String) {
    let username = format!("{}:{}", now_unix.saturating_add(ttl.as_secs()), id);
    let password = rest_password(secret, username.as_bytes());
    (username, password)
}

/// `base64(HMAC-SHA1(secret, username))`.
pub fn rest_password(secret: &[u8], username: &[u8]) -> String {
    let mut out = [0u8; 28];
    let n = rest_password_into(secret, username, &mut out);
    String::from_utf8_lossy(&out[..n]).into_owned()
}

/// Same as [`rest_password`] without allocating; returns the length (28).
pub(crate) fn rest_password_into(secret: &[u8], username: &[u8], out: &mut [u8; 28]) -> usize {
    let mut mac = match Hmac::<Sha1>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return 0,
    };
    mac.update(username);
    let digest = mac.finalize().into_bytes();
    base64::engine::general_purpose::STANDARD
        .encode_slice(digest, out)
        .unwrap_or(0)
}

/// Long-term credential key: MD5(username ":" realm ":" password).
pub fn long_term_key(username: &[u8], realm: &[u8], password: &[u8]) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(username);
    h.update(b":");
    h.update(realm);
    h.update(b":");
    h.update(password);
    h.finalize().into()
}

/// Why a REST username is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsernameError {
    Malformed,
    Expired,
}

/// Parse a REST username `"<expiry>[:<id>]"`; returns the credential id
/// (used for quotas). Refuses expired or malformed usernames.
pub fn check_rest_username(username: &[u8], now_unix: u64) -> Result<&str, UsernameError> {
    let s = std::str::from_utf8(username).map_err(|_| UsernameError::Malformed)?;
    let (ts, id) = match s.split_once(':') {
        Some((ts, id)) => (ts, id),
        None => (s, ""),
    };
    if ts.is_empty() || ts.len() > 19 || !ts.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UsernameError::Malformed);
    }
    let expiry: u64 = ts.parse().map_err(|_| UsernameError::Malformed)?;
    if expiry < now_unix {
        return Err(UsernameError::Expired);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rest_credentials_match_coturn_scheme() {
        let (u, p) = rest_credentials(
            b"s3cret",
            "agent-7",
            Duration::from_secs(3600),
            1_700_000_000,
        );
        assert_eq!(u, "1700003600:agent-7");
        // base64(HMAC-SHA1("s3cret", "1700003600:agent-7")), computed independently
        // with `printf %s 1700003600:agent-7 | openssl dgst -sha1 -hmac s3cret -binary | base64`.
        assert_eq!(p, "bAFqACrhwlJPoufVkugzteReH90=");
        assert_eq!(
            check_rest_username(u.as_bytes(), 1_700_000_000),
            Ok("agent-7")
        );
        assert_eq!(
            check_rest_username(u.as_bytes(), 1_700_003_601),
            Err(UsernameError::Expired)
        );
        assert_eq!(
            check_rest_username(b"abc:x", 0),
            Err(UsernameError::Malformed)
        );
        assert_eq!(check_rest_username(b"", 0), Err(UsernameError::Malformed));
        assert_eq!(
            check_rest_username(b"\xff\xfe", 0),
            Err(UsernameError::Malformed)
        );
        assert_eq!(check_rest_username(b"99", 0), Ok(""));
    }

    #[test]
    fn long_term_key_rfc5769_2_4() {
        // RFC 5769 section 2.4: username "<U+30DE><U+30C8><U+30EA><U+30C3><U+30AF><U+30B9>",
        // realm "example.org", password "TheMatrIX" (after SASLprep).
        let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
        let k = long_term_key(user.as_bytes(), b"example.org", b"TheMatrIX");
        let mut h = Md5::new();
        h.update(format!("{user}:example.org:TheMatrIX").as_bytes());
        let want: [u8; 16] = h.finalize().into();
        assert_eq!(k, want);
    }
}
