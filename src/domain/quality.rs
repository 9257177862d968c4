//! Call quality as pages report it every few seconds (`stats` over signaling): validation
//! of a report, its level (what an agent's network indicator shows), the degradation rule
//! behind `quality.degraded`, and what the report page draws. Pure, no IO.

use serde_json::Value;

/// Why the sender's outgoing video is limited (`RTCOutboundRtpStreamStats.qualityLimitationReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limitation {
    None,
    Cpu,
    Bandwidth,
    Other,
}

impl Limitation {
    pub fn as_str(self) -> &'static str {
        match self {
            Limitation::None => "none",
            Limitation::Cpu => "cpu",
            Limitation::Bandwidth => "bandwidth",
            Limitation::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "none" => Some(Limitation::None),
            "cpu" => Some(Limitation::Cpu),
            "bandwidth" => Some(Limitation::Bandwidth),
            "other" => Some(Limitation::Other),
            _ => None,
        }
    }
}

/// One validated report: what the page received over the last interval (its worst link).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Fraction of packets lost, 0 to 1.
    pub loss: f64,
    /// Milliseconds.
    pub jitter: f64,
    /// Round-trip time, milliseconds.
    pub rtt: f64,
    /// Received, kbit/s.
    pub bitrate: f64,
    /// Received video frames per second.
    pub fps: f64,
    /// Video freezes in the interval.
    pub freezes: u32,
    pub limitation: Limitation,
}

/// Bounds of each field (inclusive): anything outside is refused, not clamped.
const BOUNDS: [(&str, f64); 6] = [
    ("loss", 1.0),
    ("jitter", 10_000.0),
    ("rtt", 60_000.0),
    ("bitrate", 1_000_000.0),
    ("fps", 240.0),
    ("freezes", 10_000.0),
];

/// Parses the fields of a `stats` message; `None` when any is missing, not a finite
/// number within its bounds, or the limitation reason is unknown.
pub fn parse(fields: &[(&str, Option<&Value>)], limitation: Option<&Value>) -> Option<Report> {
    let mut v = [0.0f64; 6];
    for (k, (name, max)) in BOUNDS.iter().enumerate() {
        let x = fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| *v)?
            .as_f64()?;
        if !x.is_finite() || x < 0.0 || x > *max {
            return None;
        }
        v[k] = x;
    }
    let limitation = match limitation {
        None | Some(Value::Null) => Limitation::None,
        Some(Value::String(s)) => Limitation::parse(s)?,
        Some(_) => return None,
    };
    Some(Report {
        loss: v[0],
        jitter: v[1],
        rtt: v[2],
        bitrate: v[3],
        fps: v[4],
        freezes: v[5] as u32,
        limitation,
    })
}

/// What an agent's network indicator shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Good,
    Fair,
    Poor,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Good => "good",
            Level::Fair => "fair",
            Level::Poor => "poor",
        }
    }
}

/// Loss above this counts towards degradation.
pub const DEGRADED_LOSS: f64 = 0.05;
/// Consecutive reports above [`DEGRADED_LOSS`] that make `quality.degraded`.
pub const DEGRADED_REPORTS: u32 = 3;

impl Report {
    pub fn level(&self) -> Level {
        if self.loss > DEGRADED_LOSS || self.rtt > 500.0 || self.freezes > 2 {
            Level::Poor
        } else if self.loss > 0.02
            || self.rtt > 250.0
            || self.jitter > 50.0
            || self.freezes > 0
            || self.limitation == Limitation::Bandwidth
        {
            Level::Fair
        } else {
            Level::Good
        }
    }
}

/// A report as stored: small integers (a compact time series, one row per report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compact {
    pub loss_permille: u32,
    pub jitter_ms: u32,
    pub rtt_ms: u32,
    pub kbps: u32,
    pub fps: u32,
    pub freezes: u32,
    pub limitation: Limitation,
    pub level: Level,
}

impl Report {
    pub fn compact(&self) -> Compact {
        let r = |x: f64| x.round().clamp(0.0, f64::from(u32::MAX)) as u32;
        Compact {
            loss_permille: r(self.loss * 1000.0),
            jitter_ms: r(self.jitter),
            rtt_ms: r(self.rtt),
            kbps: r(self.bitrate),
            fps: r(self.fps),
            freezes: self.freezes,
            limitation: self.limitation,
            level: self.level(),
        }
    }
}

/// Counts consecutive lossy reports; says once per episode when they reach the threshold.
#[derive(Debug, Clone, Copy, Default)]
pub struct Degradation {
    run: u32,
}

impl Degradation {
    /// Feeds one report; true exactly when this report makes the episode "degraded".
    pub fn feed(&mut self, r: &Report) -> bool {
        if r.loss > DEGRADED_LOSS {
            self.run = self.run.saturating_add(1);
            self.run == DEGRADED_REPORTS
        } else {
            self.run = 0;
            false
        }
    }
}

/// A stored sample, as the report page reads it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Seconds since the session was created.
    pub t: f64,
    pub loss: f64,
    pub rtt: f64,
    pub level: Level,
}

/// Polyline points of a series scaled into a `w`×`h` box (y grows downwards; `max` at
/// the top). Only digits, dots, commas and spaces: safe inside an attribute.
pub fn points(
    samples: &[Sample],
    value: impl Fn(&Sample) -> f64,
    max: f64,
    w: f64,
    h: f64,
) -> String {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return String::new();
    };
    let span = (last.t - first.t).max(1.0);
    samples
        .iter()
        .map(|s| {
            let x = (s.t - first.t) / span * w;
            let y = h - (value(s) / max).clamp(0.0, 1.0) * h;
            format!("{x:.1},{y:.1}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One line about a participant's call quality, for the report page.
pub fn verdict(samples: &[Sample], interval_secs: f64) -> String {
    if samples.is_empty() {
        return "No quality reports.".to_owned();
    }
    let mut loss: Vec<f64> = samples.iter().map(|s| s.loss).collect();
    let mut rtt: Vec<f64> = samples.iter().map(|s| s.rtt).collect();
    loss.sort_by(f64::total_cmp);
    rtt.sort_by(f64::total_cmp);
    let median = |v: &[f64]| v[v.len() / 2];
    let poor = samples.iter().filter(|s| s.level == Level::Poor).count();
    let worst = loss[loss.len() - 1];
    let head = if poor * 10 > samples.len() {
        "Poor"
    } else if poor > 0 || samples.iter().any(|s| s.level == Level::Fair) {
        "Fair"
    } else {
        "Good"
    };
    let mut line = format!(
        "{head}: median loss {:.1} %, worst {:.1} %, median round trip {:.0} ms",
        median(&loss) * 100.0,
        worst * 100.0,
        median(&rtt)
    );
    if poor > 0 {
        let secs = (poor as f64 * interval_secs).round() as i64;
        line.push_str(&format!(
            "; poor for about {}m {:02}s",
            secs / 60,
            secs % 60
        ));
    }
    line.push('.');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(v: &Value) -> Option<Report> {
        let names = ["loss", "jitter", "rtt", "bitrate", "fps", "freezes"];
        let fields: Vec<(&str, Option<&Value>)> = names.iter().map(|n| (*n, v.get(*n))).collect();
        parse(&fields, v.get("quality_limitation_reason"))
    }

    #[test]
    fn reports_are_validated_not_clamped() {
        let ok = json!({"loss": 0.01, "jitter": 4.5, "rtt": 80, "bitrate": 900, "fps": 29.9, "freezes": 0, "quality_limitation_reason": "bandwidth"});
        let r = report(&ok).unwrap();
        assert_eq!(r.limitation, Limitation::Bandwidth);
        assert_eq!(r.level(), Level::Fair);
        for bad in [
            json!({"loss": 1.5, "jitter": 0, "rtt": 0, "bitrate": 0, "fps": 0, "freezes": 0}),
            json!({"loss": -0.1, "jitter": 0, "rtt": 0, "bitrate": 0, "fps": 0, "freezes": 0}),
            json!({"loss": "0.1", "jitter": 0, "rtt": 0, "bitrate": 0, "fps": 0, "freezes": 0}),
            json!({"jitter": 0, "rtt": 0, "bitrate": 0, "fps": 0, "freezes": 0}),
            json!({"loss": 0, "jitter": 0, "rtt": 1e9, "bitrate": 0, "fps": 0, "freezes": 0}),
            json!({"loss": 0, "jitter": 0, "rtt": 0, "bitrate": 0, "fps": 0, "freezes": 0, "quality_limitation_reason": "aliens"}),
            json!({"loss": 0, "jitter": 0, "rtt": 0, "bitrate": 0, "fps": 0, "freezes": 0, "quality_limitation_reason": 3}),
        ] {
            assert_eq!(report(&bad), None, "{bad}");
        }
    }

    #[test]
    fn three_lossy_reports_in_a_row_degrade_once_per_episode() {
        let lossy = Report {
            loss: 0.08,
            jitter: 0.0,
            rtt: 50.0,
            bitrate: 500.0,
            fps: 25.0,
            freezes: 0,
            limitation: Limitation::None,
        };
        let fine = Report { loss: 0.0, ..lossy };
        let mut d = Degradation::default();
        assert_eq!(
            [&lossy, &lossy, &fine, &lossy, &lossy, &lossy, &lossy].map(|r| d.feed(r)),
            [false, false, false, false, false, true, false]
        );
        assert_eq!(lossy.level(), Level::Poor);
        assert_eq!(fine.level(), Level::Good);
    }

    #[test]
    fn chart_points_and_verdict() {
        let s = |t: f64, loss: f64| Sample {
            t,
            loss,
            rtt: 100.0,
            level: if loss > DEGRADED_LOSS {
                Level::Poor
            } else {
                Level::Good
            },
        };
        let samples = [s(0.0, 0.0), s(5.0, 0.1), s(10.0, 0.2)];
        assert_eq!(
            points(&samples, |x| x.loss, 0.2, 100.0, 50.0),
            "0.0,50.0 50.0,25.0 100.0,0.0"
        );
        assert_eq!(
            verdict(&samples, 5.0),
            "Poor: median loss 10.0 %, worst 20.0 %, median round trip 100 ms; poor for about 0m 10s."
        );
        assert_eq!(
            verdict(&samples[..1], 5.0),
            "Good: median loss 0.0 %, worst 0.0 %, median round trip 100 ms."
        );
        assert_eq!(verdict(&[], 5.0), "No quality reports.");
        assert_eq!(points(&[], |x| x.loss, 1.0, 1.0, 1.0), "");
    }
}
