//! `[recording]`: when routed calls are recorded and with whose consent, where the files
//! live at rest and the keys that protect them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};
use crate::domain::recording::RecordingMode;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordingConfig {
    // ---- When recording happens and who agreed ----
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
    // ---- The files at rest and their keys ----
    /// Directory of the encrypted recording files; default `{data_dir}/recordings`.
    pub dir: Option<PathBuf>,
    /// File holding the master key that wraps every session's recording key: 32 random
    /// bytes as 64 hex characters (`openssl rand -hex 32`). Keep it outside the data
    /// directory and its backups. Unset: generated once at `{data_dir}/recording-master.key`
    /// (with a warning at every start, since it then lives beside the data).
    pub master_key_file: Option<PathBuf>,
    /// File holding the Ed25519 key that signs export manifests (a 32-byte seed, 64 hex
    /// characters). Unset: generated once at `{data_dir}/export-signing.key`.
    pub export_key_file: Option<PathBuf>,
    /// `fdatasync` the file after every flush (about once a second), not only when a
    /// recording ends: a power loss then loses at most the last second.
    pub fsync: bool,
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
            dir: None,
            master_key_file: None,
            export_key_file: None,
            fsync: false,
        }
    }
}

impl RecordingConfig {
    /// The directory of the recording files.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| data_dir.join("recordings"))
    }

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
        if let Some(d) = &self.dir
            && d.as_os_str().is_empty()
        {
            return Err(invalid("recording.dir", "must not be empty"));
        }
        for (key, file) in [
            ("recording.master_key_file", &self.master_key_file),
            ("recording.export_key_file", &self.export_key_file),
        ] {
            if let Some(f) = file {
                if f.as_os_str().is_empty() {
                    return Err(invalid(key, "must not be empty"));
                }
                if f.is_dir() {
                    return Err(invalid(key, "is a directory, not a key file"));
                }
                if !f.exists() {
                    return Err(invalid(
                        key,
                        format!(
                            "{} does not exist (create it with `openssl rand -hex 32`)",
                            f.display()
                        ),
                    ));
                }
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

    #[test]
    fn errors_name_the_key() {
        let missing = RecordingConfig {
            master_key_file: Some("/nonexistent/recording.key".into()),
            ..Default::default()
        };
        let e = missing.validate().expect_err("missing file").to_string();
        assert!(e.contains("recording.master_key_file"), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let is_dir = RecordingConfig {
            export_key_file: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let e = is_dir.validate().expect_err("a directory").to_string();
        assert!(e.contains("recording.export_key_file"), "{e}");
        let empty = RecordingConfig {
            dir: Some(PathBuf::new()),
            ..Default::default()
        };
        let e = empty.validate().expect_err("empty").to_string();
        assert!(e.contains("recording.dir"), "{e}");
        assert!(RecordingConfig::default().validate().is_ok());
        assert_eq!(
            RecordingConfig::default().dir(Path::new("/data")),
            PathBuf::from("/data/recordings")
        );
    }
}
