//! Core tests: credentials the application revoked are refused (403) on Allocate and
//! Refresh, while credentials of other participants, or issued after the revocation,
//! still work.

use super::harness::*;

#[test]
fn revoked_credentials_cannot_allocate_or_refresh() {
    let mut cfg = settings();
    let revoked = cfg.revocations.clone();
    let mut core = core_with(cfg.clone(), PeerPolicy::default());
    let mut io = FakeIo::default();

    // A live participant allocates, then their session ends.
    let mut live = Client::new(4000, "p-live");
    let r = allocate(&mut live, &mut core, &mut io, now(0));
    assert_eq!(r.class, Class::Success, "{r:?}");
    let expiry = T0 + 86_400;
    revoked.revoke("p-live", expiry + 1, T0 + 1);
    let r = live.request(&mut core, &mut io, now(2), method::REFRESH, |_| {});
    assert_eq!(r.code, Some(403), "refresh after revocation: {r:?}");
    assert!(r.has_mi, "the refusal is authenticated");

    // A fresh Allocate with the same credentials from another port: 403.
    let mut again = Client::new(4001, "p-live");
    let r = allocate(&mut again, &mut core, &mut io, now(3));
    assert_eq!(r.code, Some(403), "{r:?}");

    // Another participant is unaffected.
    let mut other = Client::new(4002, "p-other");
    let r = allocate(&mut other, &mut core, &mut io, now(4));
    assert_eq!(r.class, Class::Success, "{r:?}");

    // Credentials issued after the cutoff (a new link) work.
    cfg.revocations = Default::default();
    cfg.revocations.revoke("p-new", expiry, T0);
    let mut core = core_with(cfg, PeerPolicy::default());
    let mut fresh = Client::new(4003, "p-new");
    let r = allocate(&mut fresh, &mut core, &mut io, now(5));
    assert_eq!(
        r.class,
        Class::Success,
        "expiry == cutoff is not revoked: {r:?}"
    );
}
