//! `[retention]`: how long each kind of data is kept (days; unset = keep).

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Longest retention accepted (100 years).
const MAX_DAYS: u32 = 36_500;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RetentionConfig {
    /// Recordings are deleted this many days after they began.
    pub recordings_days: Option<u32>,
    /// Photos and chat messages are deleted this many days after they were taken or sent.
    pub snapshots_and_chat_days: Option<u32>,
    /// Sessions (with their participants, links, timeline and everything left of them)
    /// are deleted this many days after they were created.
    pub sessions_days: Option<u32>,
}

impl RetentionConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (key, v) in [
            ("retention.recordings_days", self.recordings_days),
            (
                "retention.snapshots_and_chat_days",
                self.snapshots_and_chat_days,
            ),
            ("retention.sessions_days", self.sessions_days),
        ] {
            if let Some(d) = v
                && d > MAX_DAYS
            {
                return Err(invalid(key, format!("must be at most {MAX_DAYS}")));
            }
        }
        Ok(())
    }

    /// Whether any kind expires (the sweeper's retention job runs only then).
    pub fn is_active(&self) -> bool {
        self.recordings_days.is_some()
            || self.snapshots_and_chat_days.is_some()
            || self.sessions_days.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_bounded_and_named() {
        let c = RetentionConfig {
            sessions_days: Some(MAX_DAYS + 1),
            ..Default::default()
        };
        let e = c.validate().expect_err("too long").to_string();
        assert!(e.contains("retention.sessions_days"), "{e}");
        assert!(!RetentionConfig::default().is_active());
        let c = RetentionConfig {
            recordings_days: Some(0),
            ..Default::default()
        };
        assert!(c.validate().is_ok() && c.is_active());
    }
}
