//! Settings of the in-call features (issue 15): photos participants upload.

use serde::{Deserialize, Serialize};

use super::{ConfigError, invalid};

/// Photos ("show me") and frame captures.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotsConfig {
    /// Largest accepted photo in bytes (JPEG, PNG or WebP); larger uploads get `413`.
    pub max_bytes: usize,
    /// Most photos one session keeps; more get `409 snapshot_limit`.
    pub max_per_session: u32,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024,
            max_per_session: 50,
        }
    }
}

impl SnapshotsConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1024..=64 * 1024 * 1024).contains(&self.max_bytes) {
            return Err(invalid(
                "snapshots.max_bytes",
                "must be between 1024 and 67108864",
            ));
        }
        if !(1..=1000).contains(&self.max_per_session) {
            return Err(invalid(
                "snapshots.max_per_session",
                "must be between 1 and 1000",
            ));
        }
        Ok(())
    }
}
