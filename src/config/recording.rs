//! `[recording]`: where recordings live at rest and the keys that protect them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Recordings of routed calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct RecordingConfig {
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

impl RecordingConfig {
    /// The directory of the recording files.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        self.dir
            .clone()
            .unwrap_or_else(|| data_dir.join("recordings"))
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
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
