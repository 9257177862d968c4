//! One allocation: relay address, permissions, channel bindings, bandwidth.

use super::ClientKey;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

pub const PERMISSION_LIFETIME_MS: u64 = 300_000;
pub const CHANNEL_LIFETIME_MS: u64 = 600_000;
pub const DEFAULT_LIFETIME_S: u32 = 600;
pub const MAX_LIFETIME_S: u32 = 3600;

/// Token bucket in bytes/s with a one-second burst.
#[derive(Debug, Clone)]
pub struct Bucket {
    rate: u64,
    cap: u64,
    tokens: u64,
    last_ms: u64,
}

impl Bucket {
    pub fn new(rate: u64, now_ms: u64) -> Self {
        let cap = rate.max(1500);
        Bucket {
            rate,
            cap,
            tokens: cap,
            last_ms: now_ms,
        }
    }

    /// Take `n` bytes; false means the packet must be dropped.
    pub fn take(&mut self, n: usize, now_ms: u64) -> bool {
        let elapsed = now_ms.saturating_sub(self.last_ms);
        if elapsed > 0 {
            let add = self.rate.saturating_mul(elapsed) / 1000;
            if add > 0 {
                self.tokens = self.tokens.saturating_add(add).min(self.cap);
                self.last_ms = now_ms;
            }
        }
        let n = n as u64;
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Channel {
    pub peer: SocketAddr,
    pub expires_ms: u64,
}

#[derive(Debug)]
pub struct Allocation {
    pub client: ClientKey,
    /// Address the relay socket is bound to.
    pub relay_local: SocketAddr,
    /// Address advertised in XOR-RELAYED-ADDRESS.
    pub relay_public: SocketAddr,
    pub username: Box<[u8]>,
    pub cred_id: Box<str>,
    pub expires_ms: u64,
    pub alloc_tid: [u8; 12],
    pub perms: HashMap<IpAddr, u64>,
    pub channels: HashMap<u16, Channel>,
    pub chan_by_peer: HashMap<SocketAddr, u16>,
    pub bucket: Option<Bucket>,
}

impl Allocation {
    pub fn is_ipv6(&self) -> bool {
        self.relay_local.is_ipv6()
    }

    pub fn permitted(&self, ip: IpAddr, now_ms: u64) -> bool {
        self.perms.get(&ip).is_some_and(|&e| e > now_ms)
    }

    pub fn admit(&mut self, n: usize, now_ms: u64) -> bool {
        match &mut self.bucket {
            Some(b) => b.take(n, now_ms),
            None => true,
        }
    }

    /// Channel bound to `peer`, if still valid.
    pub fn channel_for(&self, peer: &SocketAddr, now_ms: u64) -> Option<u16> {
        let ch = *self.chan_by_peer.get(peer)?;
        match self.channels.get(&ch) {
            Some(c) if c.expires_ms > now_ms => Some(ch),
            _ => None,
        }
    }

    /// Drop expired permissions and channels.
    pub fn prune(&mut self, now_ms: u64) {
        self.perms.retain(|_, e| *e > now_ms);
        let before = self.channels.len();
        self.channels.retain(|_, c| c.expires_ms > now_ms);
        if self.channels.len() != before {
            let chans = &self.channels;
            self.chan_by_peer.retain(|_, ch| chans.contains_key(ch));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_limits_rate() {
        let mut b = Bucket::new(10_000, 0);
        // Full burst of one second.
        let mut sent = 0;
        while b.take(1000, 0) {
            sent += 1;
        }
        assert_eq!(sent, 10);
        assert!(!b.take(1000, 50));
        assert!(b.take(1000, 100));
        assert!(!b.take(1000, 100));
        // Refill is capped at one second worth.
        assert!(b.take(10_000, 100_000));
        assert!(!b.take(1, 100_000));
    }
}
