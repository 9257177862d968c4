//! `[cluster]`: several nodes on one PostgreSQL database, room and session signals over a
//! NATS broker. Absent (the default), a node is alone and needs no broker.

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster: letters, digits, `-` and `_`, at most 64.
    pub node: String,
    /// The broker, `nats://host:4222` (or `tls://…`); may carry credentials
    /// (`nats://user:password@host:4222`), so it is a secret and never logged.
    #[serde(serialize_with = "super::ser_secret_opt")]
    pub broker_url: Option<SecretString>,
    /// Read `cluster.broker_url` from this file.
    pub broker_url_file: Option<std::path::PathBuf>,
    /// First token of every subject this deployment uses (several deployments may share a
    /// broker).
    pub subject_prefix: String,
    /// Lifetime of a room's ownership lease in seconds (renewed every third of it). A dead
    /// owner's rooms move to another node within about this long; must be shorter than
    /// `signaling.grace_secs`.
    pub room_lease_secs: u64,
    /// A node not heard from for this many milliseconds is taken for dead: sockets bound to
    /// its rooms reconnect, its sockets leave the rooms here.
    pub dead_after_ms: u64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        Self {
            node: String::new(),
            broker_url: None,
            broker_url_file: None,
            subject_prefix: "sightline".to_owned(),
            room_lease_secs: 6,
            dead_after_ms: 3000,
        }
    }
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl ClusterConfig {
    /// Checks the section against the rest of the configuration; the message names the
    /// key (never the broker URL's content).
    pub fn validate(
        &self,
        database_url: Option<&str>,
        grace_secs: u64,
    ) -> Result<(), (&'static str, String)> {
        if !is_token(&self.node) {
            return Err((
                "cluster.node",
                "must be 1 to 64 letters, digits, `-` or `_`".into(),
            ));
        }
        if !is_token(&self.subject_prefix) {
            return Err((
                "cluster.subject_prefix",
                "must be 1 to 64 letters, digits, `-` or `_`".into(),
            ));
        }
        let Some(url) = &self.broker_url else {
            return Err((
                "cluster.broker_url",
                "is required in [cluster] (nats://host:4222)".into(),
            ));
        };
        match url::Url::parse(url.expose_secret().trim()) {
            Ok(u) if matches!(u.scheme(), "nats" | "tls") && u.host_str().is_some() => {}
            // The value may hold a password: say what is wrong, not what it is.
            _ => {
                return Err((
                    "cluster.broker_url",
                    "must be a nats:// or tls:// URL with a host".into(),
                ));
            }
        }
        let db = database_url.unwrap_or_default();
        if !(db.starts_with("postgres://") || db.starts_with("postgresql://")) {
            return Err((
                "cluster",
                "needs a shared PostgreSQL database_url (SQLite serves one node)".into(),
            ));
        }
        if !(2..=120).contains(&self.room_lease_secs) {
            return Err((
                "cluster.room_lease_secs",
                "must be between 2 and 120".into(),
            ));
        }
        if self.room_lease_secs >= grace_secs {
            return Err((
                "cluster.room_lease_secs",
                format!(
                    "must be shorter than signaling.grace_secs ({grace_secs}) so that a \
                     dead node's rooms move before their participants count as gone"
                ),
            ));
        }
        if !(500..=60_000).contains(&self.dead_after_ms) {
            return Err((
                "cluster.dead_after_ms",
                "must be between 500 and 60000".into(),
            ));
        }
        Ok(())
    }

    /// `host:port` of the broker, for log lines (no user, no password).
    pub fn broker_display(&self) -> String {
        self.broker_url
            .as_ref()
            .and_then(|u| url::Url::parse(u.expose_secret().trim()).ok())
            .map(|u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or("?"),
                    u.port().unwrap_or(4222)
                )
            })
            .unwrap_or_else(|| "<unset>".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> ClusterConfig {
        ClusterConfig {
            node: "a-1".into(),
            broker_url: Some(SecretString::from("nats://u:hunter2@127.0.0.1:4222")),
            ..Default::default()
        }
    }

    const PG: Option<&str> = Some("postgres://x@localhost/db");

    #[test]
    fn validates_and_hides_credentials() {
        assert!(ok().validate(PG, 12).is_ok());
        assert_eq!(ok().broker_display(), "nats://127.0.0.1:4222");
        let dumped = serde_json::to_string(&ok()).unwrap_or_default();
        assert!(!dumped.contains("hunter2"), "{dumped}");
        let mut c = ok();
        c.node = "a.b".into();
        assert_eq!(c.validate(PG, 12).map_err(|e| e.0), Err("cluster.node"));
        let mut c = ok();
        c.broker_url = Some(SecretString::from("http://secret@x"));
        let e = c.validate(PG, 12).unwrap_err();
        assert_eq!(e.0, "cluster.broker_url");
        assert!(!e.1.contains("secret"));
        assert_eq!(ok().validate(None, 12).map_err(|e| e.0), Err("cluster"));
        assert_eq!(
            ok().validate(PG, 5).map_err(|e| e.0),
            Err("cluster.room_lease_secs")
        );
    }
}
