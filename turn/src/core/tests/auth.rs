//! Core tests: STUN/TURN requests, authentication, lifetimes, quotas, error codes.

use super::harness::*;

#[test]
fn binding_needs_no_auth_and_reports_mapped_address() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    let tid = c.tid();
    let r = c.build(method::BINDING, tid, false, |_| {});
    let resp = send(&mut core, &mut io, now(0), c.key, &r).expect("answer");
    assert_eq!(resp.class, Class::Success);
    let m = parse(&io.to_client[0].1).expect("parse");
    let (_, v, _) = m
        .attrs()
        .find(|(t, _, _)| *t == attr::XOR_MAPPED_ADDRESS)
        .expect("xma");
    assert_eq!(stun::decode_addr(v, true, &m.tid), Some(c.key.addr));
    // No SOFTWARE by default.
    assert!(m.attrs().all(|(t, _, _)| t != attr::SOFTWARE));
}

#[test]
fn allocate_lifecycle_and_lifetimes() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "agent");
    let r = allocate(&mut c, &mut core, &mut io, now(0));
    assert_eq!(r.class, Class::Success, "{r:?}");
    assert!(r.has_mi);
    assert_eq!(r.lifetime, Some(600));
    assert_eq!(r.relayed, Some(peer("127.0.0.1:50000")));
    assert_eq!(core.shared.counters.allocations.load(Relaxed), 1);
    // Second Allocate on the same 5-tuple with a new transaction: 437.
    let r = allocate(&mut c, &mut core, &mut io, now(1));
    assert_eq!(r.code, Some(437));
    // Refresh caps at 3600 s.
    let r = c.request(&mut core, &mut io, now(2), method::REFRESH, |b| {
        b.u32_attr(attr::LIFETIME, 100_000);
    });
    assert_eq!(r.lifetime, Some(3600));
    // Expires after its lifetime.
    core.tick(&mut io, now(3601));
    assert_eq!(core.allocation_count(), 1);
    core.tick(&mut io, now(3603));
    assert_eq!(core.allocation_count(), 0);
    assert_eq!(io.closed, vec![0]);
    assert_eq!(core.shared.counters.allocations.load(Relaxed), 0);
    // Refresh without allocation: 437 (after a fresh nonce: the old one is stale).
    c.nonce.clear();
    let r = c.request(&mut core, &mut io, now(3604), method::REFRESH, |_| {});
    assert_eq!(r.code, Some(437));
}

#[test]
fn allocate_lifetime_bounds_and_refresh_zero_deletes() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "agent");
    let r = c.request(&mut core, &mut io, now(0), method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .u32_attr(attr::LIFETIME, 99_999);
    });
    assert_eq!(r.lifetime, Some(3600));
    let r = c.request(&mut core, &mut io, now(1), method::REFRESH, |b| {
        b.u32_attr(attr::LIFETIME, 0);
    });
    assert_eq!(r.class, Class::Success);
    assert_eq!(r.lifetime, Some(0));
    assert_eq!(core.allocation_count(), 0);
    assert_eq!(io.closed, vec![0]);
}

#[test]
fn allocate_retransmission_gets_same_answer() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "agent");
    let _ = allocate(&mut c, &mut core, &mut io, now(0));
    // Rebuild the exact same request (same tid) and send it again.
    let tid = [c.n; 12];
    let again = c.build(method::ALLOCATE, tid, true, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    });
    let r = send(&mut core, &mut io, now(1), c.key, &again).expect("resp");
    assert_eq!(r.class, Class::Success);
    assert_eq!(io.opened.len(), 1);
}

#[test]
fn auth_errors() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    // Expired username: 401.
    let mut c = Client::new(4000, "x");
    let (u, p) = rest_credentials(SECRET, "x", Duration::from_secs(10), T0 - 100);
    c.user = u;
    c.pass = p;
    assert_eq!(allocate(&mut c, &mut core, &mut io, now(0)).code, Some(401));
    // Forged password: 401.
    let mut c = Client::new(4001, "x");
    c.pass = "forged".into();
    assert_eq!(allocate(&mut c, &mut core, &mut io, now(0)).code, Some(401));
    assert_eq!(core.shared.counters.auth_failures.load(Relaxed), 2);
    // Old secret still accepted (rotation).
    let mut c = Client::new(4002, "x");
    let (u, p) = rest_credentials(b"old-secret", "x", Duration::from_secs(100), T0);
    c.user = u;
    c.pass = p;
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    // Unknown secret refused.
    let mut c = Client::new(4003, "x");
    let (u, p) = rest_credentials(b"nope", "x", Duration::from_secs(100), T0);
    c.user = u;
    c.pass = p;
    assert_eq!(allocate(&mut c, &mut core, &mut io, now(0)).code, Some(401));
    // MI without USERNAME/REALM/NONCE: 400.
    let mut buf = Vec::new();
    Builder::new(&mut buf, method::ALLOCATE, Class::Request, &[5; 12])
        .attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .integrity(b"k");
    let key = ClientKey::udp(peer("192.0.2.9:1"));
    assert_eq!(
        send(&mut core, &mut io, now(0), key, &buf).expect("r").code,
        Some(400)
    );
}

#[test]
fn stale_nonce_gets_438_with_fresh_nonce() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "agent");
    let r = allocate(&mut c, &mut core, &mut io, now(0));
    assert_eq!(r.class, Class::Success);
    let old = c.nonce.clone();
    let r = c.request(&mut core, &mut io, now(601), method::REFRESH, |_| {});
    assert_eq!(r.code, Some(438));
    let fresh = r.nonce.expect("nonce");
    assert_ne!(fresh, old);
    c.nonce = fresh;
    let r = c.request(&mut core, &mut io, now(602), method::REFRESH, |_| {});
    assert_eq!(r.class, Class::Success);
    // A nonce issued to another client address is not accepted.
    let mut other = Client::new(4001, "agent");
    other.nonce = c.nonce.clone();
    assert_eq!(
        allocate(&mut other, &mut core, &mut io, now(602)).code,
        Some(438)
    );
}

#[test]
fn allocate_error_codes() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    // Missing REQUESTED-TRANSPORT: 400.
    let r = c.request(&mut core, &mut io, now(0), method::ALLOCATE, |_| {});
    assert_eq!(r.code, Some(400));
    // TCP relay: 442.
    let r = c.request(&mut core, &mut io, now(0), method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[6, 0, 0, 0]);
    });
    assert_eq!(r.code, Some(442));
    // Unknown comprehension-required attribute: 420 listing it.
    let r = c.request(&mut core, &mut io, now(0), method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .attr(0x0031, &[1, 2, 3, 4]);
    });
    assert_eq!(r.code, Some(420));
    assert_eq!(r.unknown, vec![0x0031]);
    // Unknown family: 440.
    let r = c.request(&mut core, &mut io, now(0), method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
            .attr(attr::REQUESTED_ADDRESS_FAMILY, &[3, 0, 0, 0]);
    });
    assert_eq!(r.code, Some(440));
    // No relay socket available: 508.
    io.no_relays = true;
    let r = allocate(&mut c, &mut core, &mut io, now(0));
    assert_eq!(r.code, Some(508));
    io.no_relays = false;
    // Unknown request method: 400.
    let r = c.request(&mut core, &mut io, now(0), 0x00B, |_| {});
    assert_eq!(r.code, Some(400));
}

#[test]
fn quotas_486_and_508() {
    let mut cfg = settings();
    cfg.max_allocations = 6;
    let mut core = core_with(cfg, PeerPolicy::default());
    let mut io = FakeIo::default();
    for i in 0..4 {
        let mut c = Client::new(5000 + i, "same-user");
        assert_eq!(
            allocate(&mut c, &mut core, &mut io, now(0)).class,
            Class::Success
        );
    }
    let mut fifth = Client::new(5004, "same-user");
    assert_eq!(
        allocate(&mut fifth, &mut core, &mut io, now(0)).code,
        Some(486)
    );
    // Other ids still work until the node-wide cap.
    for i in 0..2 {
        let mut c = Client::new(6000 + i, &format!("other{i}"));
        assert_eq!(
            allocate(&mut c, &mut core, &mut io, now(0)).class,
            Class::Success
        );
    }
    let mut c = Client::new(7000, "third");
    assert_eq!(allocate(&mut c, &mut core, &mut io, now(0)).code, Some(508));
    // Deleting one frees the user's quota.
    let mut first = Client::new(5000, "same-user");
    first.nonce = core.nonces.issue(first.key.addr, T0).to_vec();
    let r = first.request(&mut core, &mut io, now(1), method::REFRESH, |b| {
        b.u32_attr(attr::LIFETIME, 0);
    });
    assert_eq!(r.class, Class::Success);
    fifth.n = 50;
    assert_eq!(
        allocate(&mut fifth, &mut core, &mut io, now(2)).class,
        Class::Success
    );
}

#[test]
fn wrong_credentials_441() {
    let mut core = core_with(settings(), permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let (u, p) = rest_credentials(SECRET, "someone-else", Duration::from_secs(1000), T0);
    c.user = u;
    c.pass = p;
    let r = c.request(&mut core, &mut io, now(1), method::REFRESH, |_| {});
    assert_eq!(r.code, Some(441));
}

#[test]
fn message_integrity_sha256_is_accepted_and_mirrored() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "sha");
    // Get a nonce.
    let tid = c.tid();
    let r = c.build(method::ALLOCATE, tid, false, |_| {});
    c.nonce = send(&mut core, &mut io, now(0), c.key, &r)
        .expect("401")
        .nonce
        .expect("nonce");
    let key = long_term_key(c.user.as_bytes(), REALM.as_bytes(), c.pass.as_bytes());
    let mut buf = Vec::new();
    Builder::new(&mut buf, method::ALLOCATE, Class::Request, &[42; 12])
        .attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0])
        .attr(attr::USERNAME, c.user.as_bytes())
        .attr(attr::REALM, REALM.as_bytes())
        .attr(attr::NONCE, &c.nonce)
        .integrity_sha256(&key)
        .fingerprint();
    let r = send(&mut core, &mut io, now(0), c.key, &buf).expect("resp");
    assert_eq!(r.class, Class::Success);
    let m = parse(&io.to_client.last().expect("out").1).expect("parse");
    let (off, len) = m.mi256.expect("response carries MESSAGE-INTEGRITY-SHA256");
    assert_eq!(
        &stun::integrity_sha256(&key, m.raw, off, len)[..len],
        &m.raw[off + 4..off + 4 + len]
    );
    // A wrong SHA-256 MAC is refused.
    let n = buf.len();
    buf[n - 20] ^= 1;
    let fp_off = n - 8;
    let fp = stun::fingerprint_value(&buf, fp_off);
    buf[fp_off + 4..].copy_from_slice(&fp.to_be_bytes());
    let r = send(
        &mut core,
        &mut io,
        now(0),
        ClientKey::udp(peer("192.0.2.10:4999")),
        &buf,
    )
    .expect("resp");
    assert_eq!(r.code, Some(438), "nonce is bound to the client address");
}

#[test]
fn spoofed_unauthenticated_requests_leave_no_state() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut buf = Vec::new();
    for i in 0..10_000u32 {
        let tid = [(i >> 8) as u8; 12];
        Builder::new(&mut buf, method::ALLOCATE, Class::Request, &tid)
            .attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
        let from = SocketAddr::from((
            [10, (i >> 16) as u8, (i >> 8) as u8, i as u8],
            1000 + (i % 5000) as u16,
        ));
        core.handle_client(&mut io, now(0), ClientKey::udp(from), &buf);
    }
    assert_eq!(io.to_client.len(), 10_000, "every one gets a 401");
    assert_eq!(core.allocation_count(), 0);
    assert!(core.by_client.is_empty() && core.allocs.is_empty() && core.relay_index.is_empty());
    assert!(io.opened.is_empty());
    assert_eq!(
        core.shared.counters.auth_failures.load(Relaxed),
        0,
        "a challenge is not a failure"
    );
}
