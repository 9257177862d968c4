//! Credentials the application has taken back before they expire (the participant's
//! session ended, or their link was replaced).
//!
//! TURN REST credentials carry their own expiry (`"<expiry>:<id>"`), so a server that only
//! checks the HMAC keeps honouring them until then. [`Revocations`] is a shared set the
//! application writes and the core consults when it authenticates a request: an entry
//! `id → cutoff` refuses every credential for `id` whose expiry is before `cutoff`.
//! Credentials issued later (expiring at or after the cutoff, e.g. for the participant's
//! new link) still work. An entry is useless once `now` reaches its cutoff (every
//! credential it refuses has expired by then) and is dropped by [`Revocations::prune`].
//!
//! Pure: callers pass the time in. Cheap to clone (one `Arc`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// A shared set of revoked credential ids with cutoffs.
#[derive(Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<HashMap<Box<str>, u64>>>,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("len", &self.len())
            .finish()
    }
}

/// Entries kept at most; past this, the entries with the earliest cutoffs give way first.
pub const MAX_ENTRIES: usize = 1_000_000;

impl Revocations {
    /// Refuses credentials for `id` that expire before `cutoff` (Unix seconds). A later
    /// cutoff for the same id extends the entry; an earlier one changes nothing.
    pub fn revoke(&self, id: &str, cutoff: u64, now_unix: u64) {
        if cutoff <= now_unix {
            return;
        }
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(id) {
            map.retain(|_, c| *c > now_unix);
            if map.len() >= MAX_ENTRIES
                && let Some(k) = map.iter().min_by_key(|(_, c)| **c).map(|(k, _)| k.clone())
            {
                map.remove(&k);
            }
        }
        let entry = map.entry(id.into()).or_insert(cutoff);
        if *entry < cutoff {
            *entry = cutoff;
        }
    }

    /// Whether the REST username `"<expiry>:<id>"` names a revoked credential. Malformed
    /// usernames are not this set's business (the caller refuses them anyway).
    pub fn refuses(&self, username: &[u8], now_unix: u64) -> bool {
        let Ok(s) = std::str::from_utf8(username) else {
            return false;
        };
        let Some((ts, id)) = s.split_once(':') else {
            return false;
        };
        let Ok(expiry) = ts.parse::<u64>() else {
            return false;
        };
        let map = self.inner.read().unwrap_or_else(|p| p.into_inner());
        map.get(id)
            .is_some_and(|cutoff| expiry < *cutoff && now_unix < *cutoff)
    }

    /// Drops entries whose cutoff has passed.
    pub fn prune(&self, now_unix: u64) {
        let mut map = self.inner.write().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, c| *c > now_unix);
    }

    pub fn len(&self) -> usize {
        self.inner.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_only_credentials_issued_before_the_cutoff() {
        let r = Revocations::default();
        assert!(!r.refuses(b"1600:p-1", 1000));
        r.revoke("p-1", 1600, 1000);
        assert!(r.refuses(b"1599:p-1", 1000));
        assert!(!r.refuses(b"1600:p-1", 1000), "issued after the revocation");
        assert!(!r.refuses(b"1599:p-2", 1000), "another participant");
        // An earlier cutoff does not shrink the entry; a later one extends it.
        r.revoke("p-1", 1200, 1000);
        assert!(r.refuses(b"1599:p-1", 1000));
        r.revoke("p-1", 2000, 1000);
        assert!(r.refuses(b"1999:p-1", 1000));
    }

    #[test]
    fn garbage_usernames_are_not_revoked_and_do_not_panic() {
        let r = Revocations::default();
        r.revoke("", 2000, 0);
        for u in [
            &b""[..],
            b":",
            b"abc",
            b"x:",
            b"\xff:p",
            b"99999999999999999999999:",
        ] {
            let _ = r.refuses(u, 0);
        }
        assert!(r.refuses(b"5:", 0), "an empty id is an id like any other");
    }

    #[test]
    fn entries_expire_and_are_pruned() {
        let r = Revocations::default();
        r.revoke("p", 100, 10);
        r.revoke("q", 50, 60);
        assert_eq!(r.len(), 1, "a cutoff already passed is not stored");
        assert!(!r.refuses(b"90:p", 100));
        r.prune(99);
        assert_eq!(r.len(), 1);
        r.prune(100);
        assert!(r.is_empty());
        assert!(format!("{r:?}").contains("len"));
    }
}
