//! `Range: bytes=…` for media downloads (RFC 9110 §14): one range, `a-b`, `a-` or `-n`.
//! Several ranges, or another unit, get the whole body (which the RFC allows).

/// What to send for a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `200`: all of it.
    Full,
    /// `206`: bytes `start..=end`.
    Partial { start: u64, end: u64 },
    /// `416`: the range lies outside the body.
    Unsatisfiable,
}

pub fn plan(header: Option<&str>, len: u64) -> Plan {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Plan::Full;
    };
    if spec.contains(',') {
        return Plan::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Plan::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let num = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            // Digits too many for u64: as large as can be.
            Some(s.parse().unwrap_or(u64::MAX))
        }
    };
    match (num(a), num(b)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if a.is_empty() => {
            if n == 0 || len == 0 {
                Plan::Unsatisfiable
            } else {
                Plan::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }
            }
        }
        (Some(start), None) if b.is_empty() => {
            if start >= len {
                Plan::Unsatisfiable
            } else {
                Plan::Partial {
                    start,
                    end: len - 1,
                }
            }
        }
        (Some(start), Some(end)) => {
            if start > end {
                Plan::Full // Syntactically invalid: ignored.
            } else if start >= len {
                Plan::Unsatisfiable
            } else {
                Plan::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
        _ => Plan::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h: &str| plan(Some(h), 100);
        assert_eq!(plan(None, 100), Plan::Full);
        assert_eq!(p("bytes=0-9"), Plan::Partial { start: 0, end: 9 });
        assert_eq!(p("bytes=90-"), Plan::Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=-10"), Plan::Partial { start: 90, end: 99 });
        assert_eq!(p("bytes=-1000"), Plan::Partial { start: 0, end: 99 });
        assert_eq!(p("bytes=50-5000"), Plan::Partial { start: 50, end: 99 });
        assert_eq!(p("bytes=100-"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=100-200"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=99999999999999999999999-"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=5-2"), Plan::Full);
        assert_eq!(p("bytes=0-1,5-6"), Plan::Full);
        assert_eq!(p("items=0-1"), Plan::Full);
        assert_eq!(p("bytes=a-b"), Plan::Full);
        assert_eq!(plan(Some("bytes=0-"), 0), Plan::Unsatisfiable);
    }
}
