//! Server counters (atomics, written by the engines, read by `stats()`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Debug, Default)]
pub struct Counters {
    pub allocations: AtomicU64,
    pub allocations_total: AtomicU64,
    pub relayed_packets: AtomicU64,
    pub relayed_bytes: AtomicU64,
    pub auth_failures: AtomicU64,
    pub policy_refusals: AtomicU64,
    pub quota_refusals: AtomicU64,
    pub dropped_packets: AtomicU64,
}

/// A cheap snapshot of the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TurnStats {
    /// Live allocations (gauge).
    pub allocations: u64,
    /// Allocations created since start.
    pub allocations_total: u64,
    /// Packets relayed (both directions).
    pub relayed_packets: u64,
    pub relayed_bytes: u64,
    /// Requests refused with 401 after a credential was presented.
    pub auth_failures: u64,
    /// Peers refused by policy (403 and dropped Send indications).
    pub policy_refusals: u64,
    /// 486 and 508 answers.
    pub quota_refusals: u64,
    /// Relay packets dropped (no permission, bandwidth cap, full buffers).
    pub dropped_packets: u64,
}

impl Counters {
    pub fn snapshot(&self) -> TurnStats {
        TurnStats {
            allocations: self.allocations.load(Relaxed),
            allocations_total: self.allocations_total.load(Relaxed),
            relayed_packets: self.relayed_packets.load(Relaxed),
            relayed_bytes: self.relayed_bytes.load(Relaxed),
            auth_failures: self.auth_failures.load(Relaxed),
            policy_refusals: self.policy_refusals.load(Relaxed),
            quota_refusals: self.quota_refusals.load(Relaxed),
            dropped_packets: self.dropped_packets.load(Relaxed),
        }
    }
}
