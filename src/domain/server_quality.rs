//! Call quality as the server's media engine measures it (routed calls): the sample the
//! engine emits per participant and direction, the degradation rule behind the server's
//! `quality.degraded` (loss above a threshold sustained for a while, once per episode) and
//! the plain-words verdicts of the report page. Pure, no IO.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// What the engine receives from the participant.
    Uplink,
    /// What the engine sends to the participant.
    Downlink,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Uplink => "uplink",
            Direction::Downlink => "downlink",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "uplink" => Some(Direction::Uplink),
            "downlink" => Some(Direction::Downlink),
            _ => None,
        }
    }
}

/// One participant's quality in one direction over one interval. Small integers: this is
/// what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub direction: Direction,
    /// Length of the interval the sample covers.
    pub interval_ms: u32,
    /// Packets that arrived (uplink) or were sent (downlink) in the interval.
    pub packets: u32,
    /// Packets lost in the interval.
    pub lost: u32,
    /// `lost` over `packets + lost`, in thousandths.
    pub loss_permille: u32,
    /// The worst stream's interarrival jitter at the end of the interval, milliseconds.
    pub jitter_ms: u32,
    /// The connection's latest round trip, milliseconds (none before the first receiver
    /// report that answers one of the engine's sender reports).
    pub rtt_ms: Option<u32>,
    /// kbit/s over the interval (RTP header and payload).
    pub kbps: u32,
    /// Video freezes in the interval (uplink only).
    pub freezes: u32,
}

/// When the server calls a direction degraded (`[media] degraded_loss_percent`,
/// `degraded_after_secs`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Loss above this fraction (0..1) counts.
    pub loss: f64,
    /// For at least this long without a break.
    pub after: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            loss: 0.05,
            after: Duration::from_secs(15),
        }
    }
}

impl Policy {
    fn lossy(&self, s: &Sample) -> bool {
        f64::from(s.loss_permille) / 1000.0 > self.loss
    }
}

/// One run of lossy samples of a participant's direction.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Episode {
    /// Sum of the run's intervals.
    pub ms: u64,
    pub packets: u64,
    pub lost: u64,
    fired: bool,
}

impl Episode {
    /// Loss over the whole run, 0..1.
    pub fn loss(&self) -> f64 {
        let total = self.packets + self.lost;
        if total == 0 {
            0.0
        } else {
            self.lost as f64 / total as f64
        }
    }

    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.ms)
    }

    /// Adds one sample. Its interval counts to the nearest 100 ms: the engine's samples are
    /// 5 s apart give or take a few milliseconds of scheduling, and two of them should make
    /// 10 s.
    fn add(&mut self, s: &Sample) {
        self.ms += (u64::from(s.interval_ms) + 50) / 100 * 100;
        self.packets += u64::from(s.packets);
        self.lost += u64::from(s.lost);
    }
}

/// Follows one participant's direction sample by sample.
#[derive(Debug, Clone, Copy, Default)]
pub struct Degradation {
    run: Option<Episode>,
}

impl Degradation {
    /// Feeds one sample; returns the episode so far exactly when this sample makes it
    /// "degraded" (once per episode; a sample at or below the threshold ends it).
    pub fn feed(&mut self, s: &Sample, policy: &Policy) -> Option<Episode> {
        if !policy.lossy(s) {
            self.run = None;
            return None;
        }
        let e = self.run.get_or_insert_with(Episode::default);
        e.add(s);
        if !e.fired && e.duration() >= policy.after {
            e.fired = true;
            return Some(*e);
        }
        None
    }
}

/// "12 s", "2 min 05 s".
fn span(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    if secs < 120 {
        format!("{secs} s")
    } else {
        format!("{} min {:02} s", secs / 60, secs % 60)
    }
}

fn percent(loss: f64) -> String {
    let p = loss * 100.0;
    if (p - p.round()).abs() > 0.05 {
        format!("{p:.1} %")
    } else {
        format!("{p:.0} %")
    }
}

/// The plain verdict of one episode: "customer's uplink lost 8 % for 40 s".
pub fn verdict(who: &str, direction: Direction, e: &Episode) -> String {
    format!(
        "{who}'s {} lost {} for {}",
        direction.as_str(),
        percent(e.loss()),
        span(e.duration())
    )
}

/// The report page's lines about one participant's direction over the whole call: every
/// degraded episode in plain words, or a one-line "was fine" with the typical figures.
pub fn summary(
    who: &str,
    direction: Direction,
    samples: &[Sample],
    policy: &Policy,
) -> Vec<String> {
    if samples.is_empty() {
        return Vec::new();
    }
    let mut lines = Vec::new();
    let mut run: Option<Episode> = None;
    let close = |run: &mut Option<Episode>, lines: &mut Vec<String>| {
        if let Some(e) = run.take()
            && e.duration() >= policy.after
        {
            lines.push(verdict(who, direction, &e));
        }
    };
    for s in samples {
        if policy.lossy(s) {
            run.get_or_insert_with(Episode::default).add(s);
        } else {
            close(&mut run, &mut lines);
        }
    }
    close(&mut run, &mut lines);
    let freezes: u32 = samples.iter().map(|s| s.freezes).sum();
    if lines.is_empty() {
        let v = |f: &dyn Fn(&Sample) -> Option<u32>| {
            let mut x: Vec<u32> = samples.iter().filter_map(f).collect();
            x.sort_unstable();
            x.get(x.len() / 2).copied()
        };
        let (packets, lost) = samples.iter().fold((0u64, 0u64), |(p, l), s| {
            (p + u64::from(s.packets), l + u64::from(s.lost))
        });
        let loss = if packets + lost == 0 {
            0.0
        } else {
            lost as f64 / (packets + lost) as f64
        };
        let mut line = format!(
            "{who}'s {} was fine: lost {} overall, jitter {} ms",
            direction.as_str(),
            percent(loss),
            v(&|s| Some(s.jitter_ms)).unwrap_or(0)
        );
        if let Some(rtt) = v(&|s| s.rtt_ms) {
            line.push_str(&format!(", round trip {rtt} ms"));
        }
        line.push_str(&format!(", {} kbit/s", v(&|s| Some(s.kbps)).unwrap_or(0)));
        lines.push(line);
    }
    if freezes > 0 {
        lines.push(format!(
            "{who}'s video froze {freezes} time{} on the way to the server",
            if freezes == 1 { "" } else { "s" }
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(loss_permille: u32) -> Sample {
        Sample {
            direction: Direction::Uplink,
            interval_ms: 5000,
            packets: 1000 - loss_permille,
            lost: loss_permille,
            loss_permille,
            jitter_ms: 4,
            rtt_ms: Some(30),
            kbps: 900,
            freezes: 0,
        }
    }

    #[test]
    fn sustained_loss_degrades_once_per_episode() {
        let p = Policy::default();
        let mut d = Degradation::default();
        let fed: Vec<bool> = [80, 80, 10, 80, 80, 80, 80, 50, 90, 90, 90]
            .iter()
            .enumerate()
            .map(|(k, l)| {
                // A few milliseconds either way of 5 s.
                let mut x = s(*l);
                x.interval_ms = [4972, 5001, 5030][k % 3];
                d.feed(&x, &p).is_some()
            })
            .collect();
        // 15 s of loss above 5 % makes it; 5 % itself is not above; a new run starts over.
        assert_eq!(
            fed,
            [
                false, false, false, false, false, true, false, false, false, false, true
            ]
        );
        let mut d = Degradation::default();
        let e = [s(80), s(80), s(80)]
            .iter()
            .filter_map(|x| d.feed(x, &p))
            .next()
            .expect("episode");
        assert_eq!(e.duration(), Duration::from_secs(15));
        assert!((e.loss() - 0.08).abs() < 1e-9);
        assert_eq!(
            verdict("customer", Direction::Uplink, &e),
            "customer's uplink lost 8 % for 15 s"
        );
    }

    #[test]
    fn verdicts_read_as_plain_words() {
        let p = Policy {
            loss: 0.05,
            after: Duration::from_secs(10),
        };
        let mut samples = vec![s(0); 4];
        samples.extend(vec![s(80); 8]);
        samples.extend(vec![s(2); 4]);
        // Too short to count: 5 s.
        samples.push(s(300));
        samples.push(s(0));
        samples.extend(vec![s(125); 25]);
        assert_eq!(
            summary("customer", Direction::Uplink, &samples, &p),
            [
                "customer's uplink lost 8 % for 40 s",
                "customer's uplink lost 12.5 % for 2 min 05 s"
            ]
        );
        let mut fine = vec![s(3); 5];
        fine[2].freezes = 2;
        assert_eq!(
            summary("agent", Direction::Downlink, &fine, &p),
            [
                "agent's downlink was fine: lost 0.3 % overall, jitter 4 ms, round trip 30 ms, 900 kbit/s",
                "agent's video froze 2 times on the way to the server"
            ]
        );
        assert!(summary("agent", Direction::Downlink, &[], &p).is_empty());
    }
}
