//! The report page's recordings section: one player per recording, each offset by its
//! file's wall-clock start so they play in sync (`templates/report_recordings.html`,
//! `static/report-recordings.js`). Media is fetched with the report link's own token.

use crate::store::recordings::Recording;

pub struct RecordingRow {
    pub id: String,
    pub who: String,
    pub status: String,
    /// `/r/{token}/recordings/{id}`.
    pub src: String,
    /// From the first recording's start, in ms.
    pub offset_ms: i64,
    pub offset: String,
    pub duration_ms: i64,
    pub duration: String,
    pub size: String,
    pub sha256: String,
}

/// The rows, and the span from the first start to the last end (the seek bar's length).
pub fn rows(
    recordings: &[Recording],
    token: &str,
    who: impl Fn(&str) -> String,
) -> (Vec<RecordingRow>, i64) {
    let t0 = recordings
        .iter()
        .map(|r| r.started_at_ms)
        .min()
        .unwrap_or(0);
    let mut span = 0;
    let rows = recordings
        .iter()
        .map(|r| {
            let offset_ms = r.started_at_ms - t0;
            let duration_ms = r.duration_ms.unwrap_or(0).max(0);
            span = span.max(offset_ms + duration_ms);
            RecordingRow {
                id: r.id.clone(),
                who: who(&r.participant_id),
                status: r.status.clone(),
                src: format!("/r/{token}/recordings/{}", r.id),
                offset_ms,
                offset: secs(offset_ms),
                duration_ms,
                duration: secs(duration_ms),
                size: format!("{:.1} MB", r.bytes as f64 / 1_048_576.0),
                sha256: r.sha256.clone().unwrap_or_default(),
            }
        })
        .collect();
    (rows, span)
}

fn secs(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{}:{:02}", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, start: i64, dur: i64) -> Recording {
        Recording {
            id: id.into(),
            session_id: "s".into(),
            participant_id: format!("p-{id}"),
            status: "ready".into(),
            started_at_ms: start,
            ended_at: None,
            duration_ms: Some(dur),
            bytes: 2_097_152,
            sha256: Some("ab".into()),
            codecs: "vp8,opus".into(),
            content_type: "video/webm".into(),
            rel_path: String::new(),
            failure: None,
            created_at: chrono::Utc::now(),
            deleted_at: None,
        }
    }

    #[test]
    fn files_are_offset_from_the_first_start() {
        let (rows, span) = rows(
            &[rec("a", 10_000, 60_000), rec("b", 12_500, 65_000)],
            "tok",
            |p| p.to_uppercase(),
        );
        assert_eq!(rows[0].offset_ms, 0);
        assert_eq!(rows[1].offset_ms, 2_500);
        assert_eq!(span, 67_500);
        assert_eq!(rows[1].src, "/r/tok/recordings/b");
        assert_eq!(rows[1].who, "P-B");
        assert_eq!(rows[0].size, "2.0 MB");
    }
}
