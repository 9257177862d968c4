//! `GET /r/{token}`: a session's report page — who joined when, how long, how it ended,
//! and the whole timeline. Reached through the signed `report_url` in the session API
//! (valid 30 days past the session's expiry); it reveals no join link.

use askama::Template;
use askama_web::WebTemplate;
use chrono::{DateTime, Utc};
use poem::http::StatusCode;
use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};

use crate::sessions::repo::{self, SessionView};
use crate::state::AppState;

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
    role: String,
    name: String,
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

/// Seconds during which both sides were present, from the ordered timeline.
pub fn talk_time(events: &[(DateTime<Utc>, &str, &str)], end: DateTime<Utc>) -> i64 {
    let (mut agent, mut customer) = (false, false);
    let mut since: Option<DateTime<Utc>> = None;
    let mut total = 0;
    for (at, kind, role) in events {
        let present = match *kind {
            "participant.joined" => true,
            "participant.left" => false,
            "session.ended" => {
                agent = false;
                customer = false;
                if let Some(s) = since.take() {
                    total += (*at - s).num_seconds();
                }
                continue;
            }
            _ => continue,
        };
        match *role {
            "agent" => agent = present,
            "customer" => customer = present,
            _ => continue,
        }
        match (agent && customer, since) {
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
    let not_found = || crate::join::link_error_response(crate::participants::LinkError::Invalid);
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
    let timeline: Vec<(DateTime<Utc>, &str, &str)> = events
        .iter()
        .map(|e| {
            let role = e
                .participant_id
                .as_deref()
                .and_then(|p| names.get(p))
                .map(|(r, _)| *r)
                .unwrap_or("");
            (e.at, e.kind.as_str(), role)
        })
        .collect();
    let rows = events
        .iter()
        .map(|e| {
            let who = e
                .participant_id
                .as_deref()
                .and_then(|p| names.get(p))
                .map(|(r, n)| format!("{n} ({r})"))
                .unwrap_or_default();
            let detail = match e.kind.as_str() {
                "session.ended" => e
                    .data
                    .get("reason")
                    .and_then(|r| r.as_str())
                    .unwrap_or("")
                    .to_owned(),
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
            role: p.role.clone(),
            name: p.display_name.clone(),
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
    crate::join::harden(page)
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
        let ev = vec![
            (t(0), "session.created", ""),
            (t(10), "participant.joined", "agent"),
            (t(30), "participant.joined", "customer"),
            (t(90), "participant.left", "customer"),
            (t(100), "participant.joined", "customer"),
            (t(160), "session.ended", ""),
        ];
        assert_eq!(talk_time(&ev, t(200)), 60 + 60);
        // Still talking: counted up to `end`.
        assert_eq!(talk_time(&ev[..3], t(50)), 20);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_secs(65), "1m 05s");
        assert_eq!(fmt_secs(3725), "1h 02m 05s");
        assert_eq!(fmt_secs(-3), "0m 00s");
    }
}
