//! `[recording]`: recording routed calls.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::domain::recording::RecordingMode;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordingConfig {
    // ---- When recording happens and who agreed (recording control) ----
    /// Sessions created without `recording.mode` get this one: `off`, `always` or
    /// `on_demand`.
    pub mode: RecordingMode,
    /// The version of the consent wording participants are shown; stored with every
    /// consent decision. Change it whenever the wording changes.
    pub consent_text_version: String,
    /// The consent wording per page language (`en`, `es`, `de`, `fr`, `pt`, `ar`),
    /// replacing the built-in text; languages not listed keep the built-in one.
    pub consent_text: BTreeMap<String, String>,
    /// A recording does not start while the recordings' file system has less free space
    /// than this (bytes).
    pub min_free_bytes: u64,
}

/// Longest consent wording, in characters.
pub const MAX_CONSENT_CHARS: usize = 2000;

impl Default for RecordingConfig {
    fn default() -> Self {
        Self {
            mode: RecordingMode::Off,
            consent_text_version: "2026-11-1".to_owned(),
            consent_text: BTreeMap::new(),
            min_free_bytes: 1024 * 1024 * 1024,
        }
    }
}

impl RecordingConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let v = &self.consent_text_version;
        if v.is_empty() || v.len() > 40 || !v.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid(
                "recording.consent_text_version",
                "must be 1 to 40 visible ASCII characters",
            ));
        }
        if self.consent_text.len() > 20 {
            return Err(invalid("recording.consent_text", "at most 20 languages"));
        }
        for (lang, text) in &self.consent_text {
            let lang_ok =
                (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase());
            if !lang_ok {
                return Err(invalid(
                    "recording.consent_text",
                    format!("`{lang}` is not a language code such as `en`"),
                ));
            }
            let n = text.trim().chars().count();
            if n == 0 || n > MAX_CONSENT_CHARS {
                return Err(invalid(
                    "recording.consent_text",
                    format!("the `{lang}` wording must be 1 to {MAX_CONSENT_CHARS} characters"),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_off() {
        let c = RecordingConfig::default();
        assert!(c.validate().is_ok());
        assert_eq!(c.mode, RecordingMode::Off);
        assert_eq!(c.min_free_bytes, 1 << 30);
    }

    #[test]
    fn bad_wording_is_refused() {
        let mut c = RecordingConfig::default();
        c.consent_text.insert("EN".into(), "x".into());
        assert!(c.validate().is_err());
        let mut c = RecordingConfig::default();
        c.consent_text.insert("en".into(), " ".into());
        assert!(c.validate().is_err());
        let c = RecordingConfig {
            consent_text_version: "a b".into(),
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
