//! What a chat platform's HTTP answer means for a delivery, pure: delivered, retry
//! (maybe not before a given time), or fail at once with the platform's reason.
//!
//! * 2xx: delivered.
//! * 401, 403, 404, 422 (and the other 4xx but 408 and 429): retrying cannot help (a
//!   revoked token, a deleted conversation, a closed one): dead-letter now, keeping the
//!   platform's own message as the reason.
//! * 429: retry, not before `Retry-After` (seconds or an HTTP date; capped).
//! * 408, 5xx: retry with backoff. 3xx: fail (redirects are never followed).

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The longest `Retry-After` honoured; longer waits are cut to this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retry {
        reason: String,
        not_before: Option<Duration>,
    },
    Fail {
        reason: String,
    },
}

/// Classifies an answer. `body` is the (bounded) answer body; `now` reads HTTP dates.
pub fn classify(
    status: u16,
    retry_after: Option<&str>,
    body: &[u8],
    now: DateTime<Utc>,
) -> Outcome {
    if (200..300).contains(&status) {
        return Outcome::Delivered;
    }
    let reason = match platform_reason(body) {
        Some(r) => format!("the platform answered HTTP {status}: {r}"),
        None => format!("the platform answered HTTP {status}"),
    };
    match status {
        429 => Outcome::Retry {
            reason,
            not_before: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        408 | 500..=599 => Outcome::Retry {
            reason,
            not_before: None,
        },
        _ => Outcome::Fail { reason },
    }
}

/// `Retry-After`: delay-seconds or an HTTP date, capped at [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(v: &str, now: DateTime<Utc>) -> Option<Duration> {
    let v = v.trim();
    let d = if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(v.parse().ok()?)
    } else {
        let at = DateTime::parse_from_rfc2822(v).ok()?.with_timezone(&Utc);
        (at - now).to_std().unwrap_or(Duration::ZERO)
    };
    Some(d.min(MAX_RETRY_AFTER))
}

/// The platform's own error message from a JSON answer (`message`, `error`, `errors`,
/// Matrix's `error`/`errcode`), one line, at most 200 characters.
pub fn platform_reason(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let pick = |k: &str| -> Option<String> {
        match v.get(k)? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(a) => Some(
                a.iter()
                    .filter_map(|x| x.as_str())
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            other if !other.is_null() => Some(other.to_string()),
            _ => None,
        }
    };
    let text = pick("message")
        .or_else(|| pick("error"))
        .or_else(|| pick("errors"))
        .or_else(|| pick("errcode"))?;
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    let t = one_line.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-30T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn statuses() {
        assert_eq!(classify(200, None, b"", now()), Outcome::Delivered);
        assert_eq!(classify(204, None, b"", now()), Outcome::Delivered);
        for s in [401, 403, 404, 422, 400, 410, 301] {
            assert!(
                matches!(classify(s, None, b"", now()), Outcome::Fail { .. }),
                "{s}"
            );
        }
        for s in [500, 502, 503, 504, 408] {
            assert!(
                matches!(
                    classify(s, None, b"", now()),
                    Outcome::Retry {
                        not_before: None,
                        ..
                    }
                ),
                "{s}"
            );
        }
        assert_eq!(
            classify(429, Some("7"), b"", now()),
            Outcome::Retry {
                reason: "the platform answered HTTP 429".into(),
                not_before: Some(Duration::from_secs(7))
            }
        );
    }

    #[test]
    fn the_platforms_reason_is_kept() {
        let Outcome::Fail { reason } =
            classify(401, None, br#"{"error":"Invalid Access Token"}"#, now())
        else {
            panic!()
        };
        assert_eq!(
            reason,
            "the platform answered HTTP 401: Invalid Access Token"
        );
        assert_eq!(
            platform_reason(br#"{"message":"Validation failed:\nConversation is closed"}"#)
                .as_deref(),
            Some("Validation failed: Conversation is closed")
        );
        assert_eq!(
            platform_reason(br#"{"errors":["a","b"]}"#).as_deref(),
            Some("a; b")
        );
        assert_eq!(
            platform_reason(br#"{"errcode":"M_FORBIDDEN","error":"not in room"}"#).as_deref(),
            Some("not in room")
        );
        assert_eq!(platform_reason(b"<html>"), None);
        assert_eq!(
            platform_reason(format!(r#"{{"error":"{}"}}"#, "x".repeat(500)).as_bytes())
                .map(|r| r.len()),
            Some(200)
        );
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date_capped() {
        assert_eq!(
            parse_retry_after("120", now()),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 30 Nov 2026 10:00:30 GMT", now()),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Mon, 30 Nov 2026 09:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("999999", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("soon", now()), None);
    }
}
