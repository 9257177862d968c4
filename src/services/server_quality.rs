//! Quality seen by the server in routed calls: what a room does with the engine's samples
//! (store them; record `quality.degraded` with a plain verdict when a participant's
//! direction stays lossy) and what the report page draws of them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::domain::EventKind;
use crate::domain::server_quality::{Degradation, Direction, Policy, Sample, summary, verdict};
use crate::store::server_quality::{NewSample, Stored};

/// Samples stored per participant and direction: four hours at one per 5 s (the pages'
/// own reports have the same bound). Later ones still count towards `quality.degraded`.
pub const MAX_STORED: u32 = 4 * 3600 / 5;

/// One sample of the engine, with the participant named as verdicts name them.
#[derive(Debug, Clone)]
pub struct Reading {
    pub participant_id: String,
    /// "customer", "agent" … (see `RoomState::quality_label`).
    pub who: String,
    pub sample: Sample,
}

/// Follows a room's samples until the room closes: stores them (several per write when
/// they pile up) and records the server's `quality.degraded` once per episode.
pub async fn watch(
    db: sea_orm::DatabaseConnection,
    session_id: String,
    policy: Policy,
    mut rx: mpsc::UnboundedReceiver<Reading>,
) {
    let mut state: HashMap<(String, Direction), (Degradation, u32)> = HashMap::new();
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, 64).await > 0 {
        let at = Utc::now();
        let mut rows = Vec::with_capacity(batch.len());
        let mut degraded = Vec::new();
        for r in batch.drain(..) {
            let key = (r.participant_id.clone(), r.sample.direction);
            let (degradation, stored) = state.entry(key).or_default();
            let store = *stored < MAX_STORED;
            *stored = stored.saturating_add(1);
            if let Some(e) = degradation.feed(&r.sample, &policy) {
                let data = serde_json::json!({
                    "source": "server",
                    "direction": r.sample.direction.as_str(),
                    "loss": (e.loss() * 1000.0).round() / 1000.0,
                    "seconds": e.duration().as_secs_f64().round() as u64,
                    "verdict": verdict(&r.who, r.sample.direction, &e),
                });
                degraded.push((r.participant_id.clone(), data));
            }
            if store {
                rows.push(NewSample {
                    session_id: session_id.clone(),
                    participant_id: r.participant_id,
                    at,
                    sample: r.sample,
                });
            }
        }
        if let Err(e) = crate::store::server_quality::insert(&db, rows).await {
            tracing::error!(error = %e, "storing the engine's quality samples failed");
        }
        for (pid, data) in degraded {
            let r = crate::store::participants::record_event(
                &db,
                &session_id,
                EventKind::QualityDegraded,
                Some(&pid),
                data,
                at,
            )
            .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "recording the server's quality.degraded failed");
            }
        }
    }
}

/// One chart of the report page: a participant's direction over the call.
pub struct Chart {
    pub participant_id: String,
    pub direction: &'static str,
    pub who: String,
    /// Plain verdicts (episodes of loss, or "was fine …").
    pub lines: Vec<String>,
    pub loss_points: String,
    pub jitter_points: String,
    pub kbps_points: String,
    /// Top of the chart per series, as shown in its description.
    pub loss_max: String,
    pub jitter_max: String,
    pub kbps_max: String,
    pub samples: usize,
}

/// Width and height of a chart's drawing area.
pub const CHART: (f64, f64) = (600.0, 100.0);

/// Polyline points of (t, value) pairs scaled into a `w`×`h` box (y grows downwards; `max`
/// at the top). Only digits, dots, commas and spaces: safe inside an attribute.
pub fn polyline(series: &[(f64, f64)], max: f64, w: f64, h: f64) -> String {
    let (Some(first), Some(last)) = (series.first(), series.last()) else {
        return String::new();
    };
    let span = (last.0 - first.0).max(1.0);
    let max = if max > 0.0 { max } else { 1.0 };
    series
        .iter()
        .map(|(t, v)| {
            let x = (t - first.0) / span * w;
            let y = h - (v / max).clamp(0.0, 1.0) * h;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// How verdicts name a participant: the role when nobody else in the call has it, else the
/// display name.
pub fn label<'a>(role: &'a str, name: &'a str, same_role: usize) -> &'a str {
    if same_role <= 1 { role } else { name }
}

/// The report page's charts: per participant (in `people` order: id, role, name) and
/// direction, uplink first.
pub fn charts(
    samples: &[Stored],
    people: &[(String, String, String)],
    start: DateTime<Utc>,
    policy: &Policy,
) -> Vec<Chart> {
    let mut out = Vec::new();
    for (id, role, name) in people {
        let same = people.iter().filter(|(_, r, _)| r == role).count();
        let who = label(role, name, same);
        for direction in [Direction::Uplink, Direction::Downlink] {
            let mine: Vec<(f64, Sample)> = samples
                .iter()
                .filter(|s| &s.participant_id == id && s.sample.direction == direction)
                .map(|s| ((s.at - start).num_milliseconds() as f64 / 1000.0, s.sample))
                .collect();
            if mine.is_empty() {
                continue;
            }
            let series = |f: fn(&Sample) -> f64| -> Vec<(f64, f64)> {
                mine.iter().map(|(t, s)| (*t, f(s))).collect()
            };
            let loss = series(|s| f64::from(s.loss_permille) / 10.0);
            let jitter = series(|s| f64::from(s.jitter_ms));
            let kbps = series(|s| f64::from(s.kbps));
            let top = |v: &[(f64, f64)], floor: f64| v.iter().map(|x| x.1).fold(floor, f64::max);
            let (lmax, jmax, kmax) = (top(&loss, 10.0), top(&jitter, 50.0), top(&kbps, 100.0));
            let plain: Vec<Sample> = mine.iter().map(|(_, s)| *s).collect();
            out.push(Chart {
                participant_id: id.clone(),
                direction: direction.as_str(),
                who: who.to_owned(),
                lines: summary(who, direction, &plain, policy),
                loss_points: polyline(&loss, lmax, CHART.0, CHART.1),
                jitter_points: polyline(&jitter, jmax, CHART.0, CHART.1),
                kbps_points: polyline(&kbps, kmax, CHART.0, CHART.1),
                loss_max: format!("{lmax:.0} %"),
                jitter_max: format!("{jmax:.0} ms"),
                kbps_max: format!("{kmax:.0} kbit/s"),
                samples: mine.len(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(pid: &str, direction: Direction, secs: i64, loss_permille: u32) -> Stored {
        Stored {
            participant_id: pid.into(),
            at: DateTime::from_timestamp(1_000 + secs, 0).expect("time"),
            sample: Sample {
                direction,
                interval_ms: 5000,
                packets: 1000 - loss_permille,
                lost: loss_permille,
                loss_permille,
                jitter_ms: 5,
                rtt_ms: Some(20),
                kbps: 800,
                freezes: 0,
            },
        }
    }

    #[test]
    fn charts_per_participant_and_direction_with_verdicts() {
        let start = DateTime::from_timestamp(1_000, 0).expect("time");
        let mut samples = Vec::new();
        for k in 0..6 {
            samples.push(stored("c", Direction::Uplink, 5 * k, 100));
            samples.push(stored("a", Direction::Downlink, 5 * k, 0));
        }
        let people = [
            ("a".to_owned(), "agent".to_owned(), "Ana".to_owned()),
            ("c".to_owned(), "customer".to_owned(), "Sam".to_owned()),
            ("x".to_owned(), "expert".to_owned(), "Eve".to_owned()),
        ];
        let charts = charts(&samples, &people, start, &Policy::default());
        let names: Vec<(&str, &str)> = charts
            .iter()
            .map(|c| (c.participant_id.as_str(), c.direction))
            .collect();
        assert_eq!(names, [("a", "downlink"), ("c", "uplink")]);
        assert_eq!(charts[1].lines, ["customer's uplink lost 10 % for 30 s"]);
        assert!(charts[0].lines[0].starts_with("agent's downlink was fine"));
        // 10 % on a chart whose top is 10 %: a flat line along the top.
        assert_eq!(
            charts[1].loss_points,
            "0.0,0.0 120.0,0.0 240.0,0.0 360.0,0.0 480.0,0.0 600.0,0.0"
        );
        assert_eq!(charts[1].samples, 6);
        assert_eq!(polyline(&[], 1.0, 1.0, 1.0), "");
        assert_eq!(label("expert", "Eve", 2), "Eve");
    }
}
