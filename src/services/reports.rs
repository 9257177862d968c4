//! What a session's report computes from its timeline, pure: each participant's time in
//! the call and the time agent and customer talked together. The report page itself is
//! `http/pages/report.rs`.

use chrono::{DateTime, Utc};

use crate::domain::EventKind;

/// One timeline entry as the report reads it: when, what, and the participant's role and
/// id (empty when the event has no participant).
pub type Entry<'a> = (DateTime<Utc>, EventKind, &'a str, &'a str);

/// Seconds each participant spent in the call: the sum of their joined → left intervals
/// (an interval still open counts up to the session's end, or up to `end`).
pub fn time_in_call(
    events: &[Entry<'_>],
    end: DateTime<Utc>,
) -> std::collections::HashMap<String, i64> {
    let mut open: std::collections::HashMap<&str, DateTime<Utc>> = Default::default();
    let mut total: std::collections::HashMap<String, i64> = Default::default();
    let mut close = |pid: &str, since: DateTime<Utc>, at: DateTime<Utc>| {
        *total.entry(pid.to_owned()).or_default() += (at - since).num_seconds().max(0);
    };
    for (at, kind, _, pid) in events {
        match kind {
            EventKind::ParticipantJoined if !pid.is_empty() => {
                open.entry(pid).or_insert(*at);
            }
            EventKind::ParticipantLeft | EventKind::ParticipantRemoved => {
                if let Some(since) = open.remove(pid) {
                    close(pid, since, *at);
                }
            }
            EventKind::SessionEnded => {
                for (pid, since) in open.drain() {
                    close(pid, since, *at);
                }
            }
            _ => {}
        }
    }
    for (pid, since) in open {
        close(pid, since, end);
    }
    total
}

/// [`time_in_call`] of stored timeline events (oldest first) of a session that ended at
/// `end` (or is still running: then `end` is now).
pub fn time_in_call_of(
    events: &[crate::store::entities::event::Model],
    end: DateTime<Utc>,
) -> std::collections::HashMap<String, i64> {
    let entries: Vec<Entry<'_>> = events
        .iter()
        .filter_map(|e| {
            let kind = e.kind.parse::<EventKind>().ok()?;
            Some((e.at, kind, "", e.participant_id.as_deref().unwrap_or("")))
        })
        .collect();
    time_in_call(&entries, end)
}

/// Seconds during which an agent and the customer were both present, from the ordered
/// timeline.
pub fn talk_time(events: &[Entry<'_>], end: DateTime<Utc>) -> i64 {
    let (mut agent, mut customer) = (0u32, 0u32);
    let mut since: Option<DateTime<Utc>> = None;
    let mut total = 0;
    for (at, kind, role, _) in events {
        let present = match kind {
            EventKind::ParticipantJoined => true,
            EventKind::ParticipantLeft => false,
            EventKind::SessionEnded => {
                agent = 0;
                customer = 0;
                if let Some(s) = since.take() {
                    total += (*at - s).num_seconds();
                }
                continue;
            }
            _ => continue,
        };
        let count = match role.parse::<crate::domain::Role>() {
            Ok(crate::domain::Role::Agent) => &mut agent,
            Ok(crate::domain::Role::Customer) => &mut customer,
            _ => continue,
        };
        *count = if present {
            count.saturating_add(1)
        } else {
            count.saturating_sub(1)
        };
        match (agent > 0 && customer > 0, since) {
            (true, None) => since = Some(*at),
            (false, Some(s)) => {
                total += (*at - s).num_seconds();
                since = None;
            }
            _ => {}
        }
    }
    if let Some(s) = since {
        total += (end - s).num_seconds();
    }
    total
}

/// How long after a session's expiry its report link still opens.
pub const REPORT_GRACE_DAYS: i64 = 30;

/// The signed URL of a session's report page, valid `grace_days` past its expiry.
pub fn report_url(
    key: &crate::domain::tokens::TokenKey,
    public_url: &str,
    v: &crate::store::sessions::SessionView,
    grace_days: i64,
) -> Option<String> {
    let id = uuid::Uuid::parse_str(&v.session.id).ok()?;
    let exp = (v.session.expires_at + chrono::Duration::days(grace_days)).timestamp();
    Some(format!("{public_url}/r/{}", key.seal(id.as_bytes(), exp)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn talk_time_counts_only_both_present() {
        use EventKind::*;
        let ev = vec![
            (t(0), SessionCreated, "", ""),
            (t(10), ParticipantJoined, "agent", "a"),
            (t(30), ParticipantJoined, "customer", "c"),
            (t(90), ParticipantLeft, "customer", "c"),
            (t(100), ParticipantJoined, "customer", "c"),
            (t(160), SessionEnded, "", ""),
        ];
        assert_eq!(talk_time(&ev, t(200)), 60 + 60);
        // Still talking: counted up to `end`.
        assert_eq!(talk_time(&ev[..3], t(50)), 20);
    }

    #[test]
    fn talk_time_survives_a_transfer_between_agents() {
        use EventKind::*;
        let ev = vec![
            (t(0), ParticipantJoined, "agent", "a1"),
            (t(0), ParticipantJoined, "customer", "c"),
            (t(50), ParticipantJoined, "agent", "a2"),
            (t(60), ParticipantLeft, "agent", "a1"),
            (t(100), SessionEnded, "", ""),
        ];
        assert_eq!(talk_time(&ev, t(200)), 100);
    }

    #[test]
    fn time_in_call_sums_each_participants_intervals() {
        use EventKind::*;
        let ev = vec![
            (t(0), SessionCreated, "", ""),
            (t(10), ParticipantJoined, "agent", "a"),
            (t(20), ParticipantJoined, "expert", "x"),
            (t(30), ParticipantLeft, "expert", "x"),
            (t(40), ParticipantJoined, "expert", "x"),
            (t(45), ParticipantJoined, "supervisor", "s"),
            (t(60), ParticipantRemoved, "supervisor", "s"),
            (t(70), ParticipantJoined, "customer", "c"),
            (t(100), SessionEnded, "", ""),
        ];
        let m = time_in_call(&ev, t(500));
        assert_eq!(m["a"], 90);
        assert_eq!(m["x"], 10 + 60);
        assert_eq!(m["s"], 15);
        assert_eq!(m["c"], 30);
        // Still in the call: counted up to `end`.
        let m = time_in_call(&ev[..3], t(25));
        assert_eq!((m["a"], m["x"]), (15, 5));
    }
}
