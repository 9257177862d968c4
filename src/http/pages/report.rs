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
use crate::services::reports::{Entry, talk_time, time_in_call};
use crate::store::sessions::{self as repo, SessionView};

/// How long after a session's expiry its report link still opens.
pub use crate::services::reports::REPORT_GRACE_DAYS;

pub fn report_url(state: &AppState, v: &SessionView) -> Option<String> {
    crate::services::reports::report_url(
        &state.keys.report,
        &state.public_url,
        v,
        REPORT_GRACE_DAYS,
    )
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

/// A chat message on the report (plain text; the template escapes it).
struct ChatRow {
    offset: String,
    at: String,
    who: String,
    text: String,
    internal: bool,
}

/// A photo taken during the call (metadata; the bytes are at the API).
struct PhotoRow {
    at: String,
    who: String,
    kind: String,
    content_type: String,
    size: String,
    sha256: String,
}

/// One participant's quality over the call: an inline SVG chart and a verdict.
struct QualityRow {
    id: String,
    who: String,
    verdict: String,
    loss_points: String,
    rtt_points: String,
    loss_max: String,
    rtt_max: String,
    reports: usize,
}

/// Width and height of the quality chart's drawing area.
const CHART: (f64, f64) = (600.0, 100.0);

fn quality_rows(
    samples: &[crate::store::quality::QualitySample],
    people: &[(String, String)],
    start: DateTime<Utc>,
) -> Vec<QualityRow> {
    use crate::domain::quality::{Level, Sample, points, verdict};
    people
        .iter()
        .filter_map(|(id, who)| {
            let series: Vec<Sample> = samples
                .iter()
                .filter(|q| &q.participant_id == id)
                .map(|q| Sample {
                    t: (q.at - start).num_milliseconds() as f64 / 1000.0,
                    loss: f64::from(q.loss_permille) / 1000.0,
                    rtt: f64::from(q.rtt_ms),
                    level: match q.level.as_str() {
                        "poor" => Level::Poor,
                        "fair" => Level::Fair,
                        _ => Level::Good,
                    },
                })
                .collect();
            if series.is_empty() {
                return None;
            }
            let loss_max = series.iter().map(|s| s.loss).fold(0.1, f64::max);
            let rtt_max = series.iter().map(|s| s.rtt).fold(200.0, f64::max);
            Some(QualityRow {
                id: id.clone(),
                who: who.clone(),
                verdict: verdict(&series, 5.0),
                loss_points: points(&series, |s| s.loss, loss_max, CHART.0, CHART.1),
                rtt_points: points(&series, |s| s.rtt, rtt_max, CHART.0, CHART.1),
                loss_max: format!("{:.0} %", loss_max * 100.0),
                rtt_max: format!("{rtt_max:.0} ms"),
                reports: series.len(),
            })
        })
        .collect()
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
    chat: Vec<ChatRow>,
    quality: Vec<QualityRow>,
    /// Routed calls: quality as the server's media engine measured it.
    server_quality: Vec<crate::services::server_quality::Chart>,
    photos: Vec<PhotoRow>,
    /// The customer's rating (`4/5`), `—` when none was given.
    rating: String,
    rating_comment: String,
    /// The recordings section (`report_recordings.html`).
    recordings: Vec<crate::http::pages::report_recordings::RecordingRow>,
    recordings_span_ms: i64,
    assets: String,
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

/// The session a report link opens, if the link is genuine and unexpired.
pub fn session_of(state: &AppState, token: &str) -> Option<String> {
    let (raw, _) = state.keys.report.open(token, Utc::now().timestamp()).ok()?;
    uuid::Uuid::from_slice(&raw).ok().map(|id| id.to_string())
}

#[handler]
pub async fn page(req: &Request, state: Data<&AppState>) -> Response {
    let token = req.uri().path().strip_prefix("/r/").unwrap_or_default();
    let not_found =
        || crate::http::pages::join::link_error_response(crate::store::links::LinkError::Invalid);
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
    let events = match crate::store::timeline::events(&state.db, &id, None, 1000).await {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "report events failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let chat = match crate::store::chat::list(&state.db, &id, None, 2000).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "report chat failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let samples = match crate::store::quality::list(&state.db, &id).await {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, "report quality failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let server_samples = match crate::store::server_quality::list(&state.db, &id).await {
        Ok(q) => q,
        Err(e) => {
            tracing::error!(error = %e, "report server quality failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let photos = match crate::store::snapshots::list(&state.db, &id).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "report photos failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let recordings = match crate::store::recordings::list(&state.db, &id).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "report recordings failed");
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    };
    let rating = match crate::store::feedback::list(&state.db, &id).await {
        Ok(r) => r.into_iter().next(),
        Err(e) => {
            tracing::error!(error = %e, "report rating failed");
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
                // A consent decision: what, under which wording.
                Ok(EventKind::RecordingConsent) => {
                    format!("{} (wording {})", text("decision"), text("wording_version"))
                }
                Ok(EventKind::QualityDegraded) => text("verdict"),
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
    let (recordings, recordings_span_ms) =
        crate::http::pages::report_recordings::rows(&recordings, token, |p| {
            names
                .get(p)
                .map(|(r, n)| format!("{n} ({r})"))
                .unwrap_or_else(|| p.to_owned())
        });
    let page = ReportPage {
        recordings,
        recordings_span_ms,
        assets: crate::http::pages::join::assets_base(),
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
        photos: photos
            .into_iter()
            .map(|p| PhotoRow {
                at: fmt_time(&p.created_at),
                who: names
                    .get(p.participant_id.as_str())
                    .map(|(r, n)| format!("{n} ({r})"))
                    .unwrap_or_default(),
                kind: p.kind,
                content_type: p.content_type,
                size: format!("{:.1} KB", p.size as f64 / 1024.0),
                sha256: p.sha256,
            })
            .collect(),
        rating: rating
            .as_ref()
            .map(|r| format!("{}/5", r.score))
            .unwrap_or_else(|| "—".into()),
        rating_comment: rating.and_then(|r| r.comment).unwrap_or_default(),
        quality: quality_rows(
            &samples,
            &view
                .participants
                .iter()
                .map(|p| (p.id.clone(), format!("{} ({})", p.display_name, p.role)))
                .collect::<Vec<_>>(),
            s.created_at,
        ),
        server_quality: crate::services::server_quality::charts(
            &server_samples,
            &view
                .participants
                .iter()
                .map(|p| (p.id.clone(), p.role.clone(), p.display_name.clone()))
                .collect::<Vec<_>>(),
            s.created_at,
            &state
                .media
                .as_ref()
                .map(|m| m.quality_policy())
                .unwrap_or_default(),
        ),
        chat: chat
            .into_iter()
            .map(|m| ChatRow {
                offset: format!("+{}", fmt_secs((m.at - s.created_at).num_seconds())),
                at: fmt_time(&m.at),
                who: format!("{} ({})", m.display_name, m.role),
                text: m.text,
                internal: m.internal,
            })
            .collect(),
    };
    crate::http::pages::join::harden(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(fmt_secs(65), "1m 05s");
        assert_eq!(fmt_secs(3725), "1h 02m 05s");
        assert_eq!(fmt_secs(-3), "0m 00s");
    }
}
