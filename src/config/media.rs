//! `[media]`: the server's media engine for routed calls.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::domain::media::{MediaMode, ROUTED_LIMIT};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Run the engine at all. Without it every call stays peer to peer.
    pub enabled: bool,
    /// The one UDP address every routed call uses (port 0 picks a free port). The default
    /// serves this machine only: set a public address (and `announce`) in production.
    pub listen: SocketAddr,
    /// The IP put in the engine's ICE candidate when `listen` is an unspecified address
    /// (0.0.0.0 / ::) or behind a 1:1 NAT.
    pub announce: Option<IpAddr>,
    /// Sessions created without a `media_mode` get this one. `auto`: two parties and a
    /// mesh of up to four visible participants stay peer to peer; a listening or
    /// whispering supervisor (or a fifth visible participant) routes the call through the
    /// engine, and a routed call stays routed until it ends. `p2p` never routes (the
    /// supervisor then receives over the mesh), `routed` always does.
    pub mode: MediaMode,
    /// Most routed participants on this node (across all calls).
    pub max_participants: usize,
    /// Most participants in one routed call (at most 12).
    pub max_per_call: usize,
    /// ICE-TCP (RFC 6544) for networks without UDP: the engine also listens on
    /// `listen_tcp` and offers a passive TCP candidate there (same `announce` IP).
    pub ice_tcp: bool,
    /// The engine's ICE-TCP address (port 0 picks a free port).
    pub listen_tcp: SocketAddr,
    /// Each routed participant's bitrate cap: publishers are asked (REMB) to stay under
    /// it, and one persistently above 1.5 × the cap gets its excess dropped.
    pub max_bitrate_kbps: u32,
    /// The server's `quality.degraded` for a routed participant's direction: packet loss
    /// above this percentage …
    pub degraded_loss_percent: f64,
    /// … for at least this many seconds without a break (once per episode).
    pub degraded_after_secs: u64,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            announce: None,
            mode: MediaMode::Auto,
            max_participants: 200,
            max_per_call: ROUTED_LIMIT,
            ice_tcp: true,
            listen_tcp: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_bitrate_kbps: 2500,
            degraded_loss_percent: 5.0,
            degraded_after_secs: 15,
        }
    }
}

impl MediaSettings {
    /// Checks what can be checked before binding; the `Err` names the key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.listen.ip().is_unspecified() && self.announce.is_none() && self.enabled {
            return Err((
                "media.announce",
                "must be set when media.listen is an unspecified address".into(),
            ));
        }
        if let Some(a) = self.announce
            && a.is_unspecified()
        {
            return Err(("media.announce", "must be a concrete address".into()));
        }
        if self.max_per_call < 2 || self.max_per_call > ROUTED_LIMIT {
            return Err((
                "media.max_per_call",
                format!("must be between 2 and {ROUTED_LIMIT}"),
            ));
        }
        if !(100..=100_000).contains(&self.max_bitrate_kbps) {
            return Err((
                "media.max_bitrate_kbps",
                "must be between 100 and 100000".into(),
            ));
        }
        if self.ice_tcp
            && self.enabled
            && self.listen_tcp.ip().is_unspecified()
            && self.announce.is_none()
        {
            return Err((
                "media.announce",
                "must be set when media.listen_tcp is an unspecified address".into(),
            ));
        }
        if !(self.degraded_loss_percent > 0.0 && self.degraded_loss_percent < 100.0) {
            return Err((
                "media.degraded_loss_percent",
                "must be above 0 and below 100".into(),
            ));
        }
        if !(1..=3600).contains(&self.degraded_after_secs) {
            return Err((
                "media.degraded_after_secs",
                "must be between 1 and 3600".into(),
            ));
        }
        if self.max_participants == 0 {
            return Err(("media.max_participants", "must be at least 1".into()));
        }
        Ok(())
    }

    /// When the server calls a routed participant's direction degraded.
    pub fn quality_policy(&self) -> crate::domain::server_quality::Policy {
        crate::domain::server_quality::Policy {
            loss: self.degraded_loss_percent / 100.0,
            after: std::time::Duration::from_secs(self.degraded_after_secs),
        }
    }

    /// The address announced to clients for a socket bound at `bound`.
    pub fn announce_for(&self, bound: SocketAddr) -> SocketAddr {
        SocketAddr::new(self.announce.unwrap_or(bound.ip()), bound.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degradation_settings_are_checked_and_become_a_policy() {
        let ok = MediaSettings::default();
        assert_eq!(ok.validate(), Ok(()));
        let p = ok.quality_policy();
        assert!((p.loss - 0.05).abs() < 1e-12);
        assert_eq!(p.after, std::time::Duration::from_secs(15));
        for (loss, after, key) in [
            (0.0, 15, "media.degraded_loss_percent"),
            (100.0, 15, "media.degraded_loss_percent"),
            (f64::NAN, 15, "media.degraded_loss_percent"),
            (5.0, 0, "media.degraded_after_secs"),
            (5.0, 3601, "media.degraded_after_secs"),
        ] {
            let s = MediaSettings {
                degraded_loss_percent: loss,
                degraded_after_secs: after,
                ..Default::default()
            };
            assert_eq!(s.validate().map_err(|e| e.0), Err(key), "{loss} {after}");
        }
    }
}
