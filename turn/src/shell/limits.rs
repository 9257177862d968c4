//! Caps on concurrent TCP/TLS connections (total and per client IP) and a
//! rate limiter for the warnings logged when they refuse.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// File descriptors kept free for listeners, logs and the app itself.
const FD_RESERVE: u64 = 64;

/// The total cap when none is configured: each connection needs its own
/// descriptor and usually a relay socket, so half of what the open-file
/// limit leaves after a reserve (480 under 1,024).
pub(crate) fn derived_connection_cap() -> usize {
    let soft = open_file_limit().unwrap_or(1024);
    (soft.saturating_sub(FD_RESERVE) / 2).clamp(16, 100_000) as usize
}

fn open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some(lim.rlim_cur)
}

#[derive(Debug)]
pub(crate) struct ConnLimits {
    total: usize,
    per_ip: usize,
    state: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    by_ip: HashMap<IpAddr, usize>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Total,
    PerIp,
}

/// One admitted connection; the count drops when this is dropped.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl ConnLimits {
    /// `per_ip == 0`: no per-IP cap.
    pub(crate) fn new(total: usize, per_ip: usize) -> Arc<Self> {
        Arc::new(ConnLimits {
            total: total.max(1),
            per_ip,
            state: Mutex::new(Counts::default()),
        })
    }

    pub(crate) fn total_cap(&self) -> usize {
        self.total
    }

    pub(crate) fn try_admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, Refusal> {
        let mut s = self.state.lock().map_err(|_| Refusal::Total)?;
        if s.total >= self.total {
            return Err(Refusal::Total);
        }
        let n = s.by_ip.get(&ip).copied().unwrap_or(0);
        if self.per_ip > 0 && n >= self.per_ip {
            return Err(Refusal::PerIp);
        }
        s.total += 1;
        s.by_ip.insert(ip, n + 1);
        Ok(ConnPermit {
            limits: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn open(&self) -> usize {
        self.state.lock().map(|s| s.total).unwrap_or(0)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if let Ok(mut s) = self.limits.state.lock() {
            s.total = s.total.saturating_sub(1);
            if let Some(n) = s.by_ip.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    s.by_ip.remove(&self.ip);
                }
            }
        }
    }
}

/// Lets a warning through at most once per period and counts the rest.
#[derive(Debug)]
pub(crate) struct LogLimiter {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimiter {
    pub(crate) fn new(period: Duration) -> Self {
        LogLimiter {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)`: log now, `n` similar events were not logged since the last time.
    pub(crate) fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_ip() {
        let l = ConnLimits::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().expect("ip");
        let b: IpAddr = "192.0.2.2".parse().expect("ip");
        let p1 = l.try_admit(a).expect("first");
        let _p2 = l.try_admit(a).expect("second");
        assert_eq!(l.try_admit(a).err(), Some(Refusal::PerIp));
        let _p3 = l.try_admit(b).expect("other ip");
        assert_eq!(l.try_admit(b).err(), Some(Refusal::Total));
        drop(p1);
        assert_eq!(l.open(), 2);
        assert!(l.try_admit(a).is_ok());
        let unlimited = ConnLimits::new(10, 0);
        let held: Vec<_> = (0..10)
            .filter_map(|_| unlimited.try_admit(a).ok())
            .collect();
        assert_eq!(held.len(), 10);
    }

    #[test]
    fn derived_cap_is_below_the_fd_limit() {
        let cap = derived_connection_cap() as u64;
        let soft = open_file_limit().unwrap_or(1024);
        assert!(cap * 2 < soft.max(64) || cap == 16);
    }

    #[test]
    fn log_limiter_counts_suppressed() {
        let mut l = LogLimiter::new(Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(l.allow(t), Some(0));
        assert_eq!(l.allow(t + Duration::from_secs(1)), None);
        assert_eq!(l.allow(t + Duration::from_secs(2)), None);
        assert_eq!(l.allow(t + Duration::from_secs(11)), Some(2));
    }
}
