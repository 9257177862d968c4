//! `GET /r/{token}`: a session's report page — who joined when, how long, how it ended,
//! and the whole timeline. Reached through the signed `report_url` in the session API
//! (valid 30 days past the session's expiry); it reveals no join link.

use askama::Template;
use askama_web::WebTemplate;
use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};

use crate::domain::EventKind;
use crate::http::state::AppState;
use crate::sessions::repo::{self, SessionView};

/// How long after a session's expiry its report link still opens.
pub const REPORT_GRACE_DAYS: i64 = 30;

pub fn report_url(state: &AppState, v: &SessionView) -> Option<String> {
    let id = uuid::Uuid::parse_str(&v.session.id).ok()?;
    let exp = (v.session.expires_at + chrono::Duration::days(REPORT_GRACE_DAYS)).timestamp();
    Some(format!(
        "{}/r/{}",
        state.public_url,
        state.keys.report.seal(id.as_bytes(), exp)
    ))
}

struct Row {
    offset: String,
    at: String,
    kind: String,
    who: String,
    detail: String,
}

struct Person {
    id: String,
    role: String,
    /// A supervisor's mode, `—` for other roles.
    mode: String,
    name: String,
    time_in_call: String,
    removed: bool,
    first_joined: String,
    last_left: String,
    present: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "report.html")]
struct ReportPage {
    id: String,
    status: String,
    conversation: String,
    agent: String,
    customer: String,
    created: String,
    ended: String,
    duration: String,
    talk_time: String,
    end_reason: String,
    people: Vec<Person>,
    rows: Vec<Row>,
}

fn fmt_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn fmt_secs(secs: i64) -> String {
    let secs = secs.max(0);
    if secs >= 3600 {
        format!(
            "{}h {:02}m {:02}s",
            secs / 3600,
            (secs % 3600) / 60,
            secs % 60
        )
    } else {
        format!("{}m {:02}s", secs / 60, secs % 60)
    }
}

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
    events: &[crate::sessions::entity::event::Model],
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

#[handler]
pub async fn page(req: &Request, state: Data<&AppState>) -> Response {
    let token = req.uri().path().strip_prefix("/r/").unwrap_or_default();
    let not_found =
        || crate::http::pages::join::link_error_response(crate::participants::LinkError::Invalid);
    let Ok((raw, _)) = state.keys.report.open(token, Utc::now().timestamp()) else {
        return not_found();
    };
    let Ok(id) = uuid::Uuid::from_slice(&raw) else {
        return not_found();
    };
    let id = id.to_string();
    let view = match repo::get(&state.db, &id).await {
        Ok(Some(v)) => v,
        Ok(None) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "report lookup failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let events = match repo::events(&state.db, &id, None, 1000).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "report events failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let s = &view.session;
    let now = Utc::now();
    let end = s.ended_at.unwrap_or(now);
    let names: std::collections::HashMap<&str, (&str, &str)> = view
        .participants
        .iter()
        .map(|p| (p.id.as_str(), (p.role.as_str(), p.display_name.as_str())))
        .collect();
    let timeline: Vec<Entry<'_>> = events
        .iter()
        .filter_map(|e| {
            let kind = e.kind.parse::<EventKind>().ok()?;
            let pid = e.participant_id.as_deref().unwrap_or("");
            let role = names.get(pid).map(|(r, _)| *r).unwrap_or("");
            Some((e.at, kind, role, pid))
        })
        .collect();
    let in_call = time_in_call(&timeline, end);
    let rows = events
        .iter()
        .map(|e| {
            let who = e
                .participant_id
                .as_deref()
                .and_then(|p| names.get(p))
                .map(|(r, n)| format!("{n} ({r})"))
                .unwrap_or_default();
            let text = |key: &str| {
                e.data
                    .get(key)
                    .and_then(|r| r.as_str())
                    .unwrap_or("")
                    .to_owned()
            };
            let detail = match e.kind.parse::<EventKind>() {
                Ok(
                    EventKind::SessionEnded
                    | EventKind::ParticipantDeclined
                    | EventKind::ParticipantDenied,
                ) => text("reason"),
                Ok(EventKind::ParticipantModeChanged) => text("mode"),
                Ok(EventKind::SessionTransferStarted | EventKind::SessionTransferred) => e
                    .data
                    .get("agent")
                    .and_then(|a| a.get("name"))
                    .and_then(|n| n.as_str())
                    .map(|n| format!("to {n}"))
                    .unwrap_or_default(),
                _ => String::new(),
            };
            Row {
                offset: format!("+{}", fmt_secs((e.at - s.created_at).num_seconds())),
                at: fmt_time(&e.at),
                kind: e.kind.clone(),
                who,
                detail,
            }
        })
        .collect();
    let people = view
        .participants
        .iter()
        .map(|p| Person {
            id: p.id.clone(),
            role: p.role.clone(),
            mode: p.mode.clone().unwrap_or_else(|| "—".into()),
            name: p.display_name.clone(),
            time_in_call: fmt_secs(in_call.get(&p.id).copied().unwrap_or(0)),
            removed: p.removed_at.is_some(),
            first_joined: p
                .first_joined_at
                .as_ref()
                .map(fmt_time)
                .unwrap_or_else(|| "never".into()),
            last_left: p
                .left_at
                .as_ref()
                .map(fmt_time)
                .unwrap_or_else(|| "—".into()),
            present: p.present,
        })
        .collect();
    let page = ReportPage {
        id: s.id.clone(),
        status: s.status.clone(),
        conversation: format!("{} / {}", s.conversation_platform, s.conversation_id),
        agent: format!("{} ({})", s.agent_name, s.agent_id),
        customer: s.customer_name.clone().unwrap_or_else(|| "Customer".into()),
        created: fmt_time(&s.created_at),
        ended: s
            .ended_at
            .as_ref()
            .map(fmt_time)
            .unwrap_or_else(|| "—".into()),
        duration: fmt_secs((end - s.created_at).num_seconds()),
        talk_time: fmt_secs(talk_time(&timeline, end)),
        end_reason: s.end_reason.clone().unwrap_or_else(|| "—".into()),
        people,
        rows,
    };
    crate::http::pages::join::harden(page)
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

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_secs(65), "1m 05s");
        assert_eq!(fmt_secs(3725), "1h 02m 05s");
        assert_eq!(fmt_secs(-3), "0m 00s");
    }
}
