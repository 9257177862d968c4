//! Unit tests of the core without sockets; time is passed in.

use super::*;
use crate::credentials::{long_term_key, rest_credentials};
use crate::stun::{Builder, Class, attr, method, parse};
use std::time::Duration;

const SECRET: &[u8] = b"test-secret";
const REALM: &str = "sightline.test";
const T0: u64 = 1_800_000_000;

#[derive(Default)]
struct FakeIo {
    to_client: Vec<(ClientKey, Vec<u8>)>,
    to_peer: Vec<(usize, SocketAddr, Vec<u8>)>,
    opened: Vec<usize>,
    closed: Vec<usize>,
    no_relays: bool,
}

impl Io for FakeIo {
    fn send_to_client(&mut self, client: ClientKey, data: &[u8]) {
        self.to_client.push((client, data.to_vec()));
    }
    fn send_to_peer(&mut self, slot: usize, peer: SocketAddr, data: &[u8]) {
        self.to_peer.push((slot, peer, data.to_vec()));
    }
    fn open_relay(&mut self, slot: usize, family: Family) -> Option<SocketAddr> {
        if self.no_relays {
            return None;
        }
        self.opened.push(slot);
        let port = 50_000 + slot as u16;
        Some(match family {
            Family::V4 => SocketAddr::from(([127, 0, 0, 1], port)),
            Family::V6 => SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], port)),
        })
    }
    fn close_relay(&mut self, slot: usize) {
        self.closed.push(slot);
    }
}

fn settings() -> CoreSettings {
    let c = TurnConfig {
        realm: REALM.into(),
        secrets: vec![SECRET.to_vec(), b"old-secret".to_vec()],
        ..TurnConfig::default()
    };
    CoreSettings::from(&c)
}

fn core_with(cfg: CoreSettings, policy: PeerPolicy) -> Core {
    Core::new(
        cfg,
        policy,
        NonceKey::new([1; 32], 600),
        Arc::new(Shared::default()),
    )
}

fn now(s: u64) -> Now {
    Now {
        ms: s * 1000,
        unix: T0 + s,
    }
}

/// A test client speaking to the core.
struct Client {
    key: ClientKey,
    user: String,
    pass: String,
    nonce: Vec<u8>,
    n: u8,
}

impl Client {
    fn new(port: u16, id: &str) -> Self {
        let (user, pass) = rest_credentials(SECRET, id, Duration::from_secs(86_400), T0);
        Client {
            key: ClientKey::udp(SocketAddr::from(([192, 0, 2, 10], port))),
            user,
            pass,
            nonce: Vec::new(),
            n: 0,
        }
    }

    fn tid(&mut self) -> [u8; 12] {
        self.n = self.n.wrapping_add(1);
        [self.n; 12]
    }

    fn build(
        &mut self,
        meth: u16,
        tid: [u8; 12],
        auth: bool,
        f: impl FnOnce(&mut Builder),
    ) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut b = Builder::new(&mut buf, meth, Class::Request, &tid);
        f(&mut b);
        if auth {
            let key = long_term_key(self.user.as_bytes(), REALM.as_bytes(), self.pass.as_bytes());
            b.attr(attr::USERNAME, self.user.as_bytes())
                .attr(attr::REALM, REALM.as_bytes())
                .attr(attr::NONCE, &self.nonce)
                .integrity(&key)
                .fingerprint();
        }
        buf
    }

    /// Send a request (getting a nonce first if needed); returns the response.
    fn request(
        &mut self,
        core: &mut Core,
        io: &mut FakeIo,
        t: Now,
        meth: u16,
        f: impl Fn(&mut Builder),
    ) -> Resp {
        if self.nonce.is_empty() {
            let tid = self.tid();
            let r = self.build(meth, tid, false, &f);
            let resp = send(core, io, t, self.key, &r).expect("challenge");
            assert_eq!(resp.code, Some(401));
            self.nonce = resp.nonce.clone().expect("nonce");
        }
        let tid = self.tid();
        let r = self.build(meth, tid, true, &f);
        send(core, io, t, self.key, &r).expect("response")
    }
}

#[derive(Debug)]
struct Resp {
    class: Class,
    code: Option<u16>,
    nonce: Option<Vec<u8>>,
    relayed: Option<SocketAddr>,
    lifetime: Option<u32>,
    unknown: Vec<u16>,
    has_mi: bool,
}

fn send(core: &mut Core, io: &mut FakeIo, t: Now, key: ClientKey, data: &[u8]) -> Option<Resp> {
    let before = io.to_client.len();
    core.handle_client(io, t, key, data);
    let (_, out) = io.to_client.get(before)?;
    let m = parse(out).expect("server output parses");
    let mut r = Resp {
        class: m.class,
        code: None,
        nonce: m.nonce.map(<[u8]>::to_vec),
        relayed: None,
        lifetime: m.lifetime,
        unknown: Vec::new(),
        has_mi: m.mi.is_some(),
    };
    for (ty, v, _) in m.attrs() {
        match ty {
            attr::ERROR_CODE => r.code = Some(v[2] as u16 * 100 + v[3] as u16),
            attr::XOR_RELAYED_ADDRESS => r.relayed = stun::decode_addr(v, true, &m.tid),
            attr::UNKNOWN_ATTRIBUTES => {
                r.unknown = v
                    .chunks(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect()
            }
            _ => {}
        }
    }
    Some(r)
}

fn allocate(c: &mut Client, core: &mut Core, io: &mut FakeIo, t: Now) -> Resp {
    c.request(core, io, t, method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    })
}

fn peer(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn permissive() -> PeerPolicy {
    PeerPolicy::new(
        vec![
            "0.0.0.0/0".parse().expect("net"),
            "::/0".parse().expect("net"),
        ],
        vec![],
    )
}

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
fn permissions_channels_and_relay() {
    let mut core = core_with(settings(), permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let p = peer("198.51.100.7:9000");
    // No permission yet: Send indication and peer data are dropped.
    let mut ind = Vec::new();
    Builder::new(&mut ind, method::SEND, Class::Indication, &[9; 12])
        .xor_addr(attr::XOR_PEER_ADDRESS, p)
        .attr(attr::DATA, b"hello");
    core.handle_client(&mut io, now(1), c.key, &ind);
    assert!(io.to_peer.is_empty());
    let mut pkt = [0u8; 64];
    pkt[HEADROOM..HEADROOM + 3].copy_from_slice(b"abc");
    let sent = io.to_client.len();
    core.handle_peer(&mut io, now(1), 0, p, &mut pkt, 3);
    assert_eq!(io.to_client.len(), sent);
    // CreatePermission then Send works, and peer data comes back as a Data indication.
    let r = c.request(&mut core, &mut io, now(1), method::CREATE_PERMISSION, |b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    core.handle_client(&mut io, now(2), c.key, &ind);
    assert_eq!(io.to_peer.last(), Some(&(0, p, b"hello".to_vec())));
    core.handle_peer(&mut io, now(2), 0, peer("198.51.100.7:1234"), &mut pkt, 3);
    let m = parse(&io.to_client.last().expect("data").1).expect("parse");
    assert_eq!((m.method, m.class), (method::DATA, Class::Indication));
    assert_eq!(m.data, Some(&b"abc"[..]));
    // ChannelBind: then ChannelData both ways.
    let r = c.request(&mut core, &mut io, now(3), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4001_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    core.handle_client(&mut io, now(3), c.key, &[0x40, 0x01, 0, 2, 7, 7]);
    assert_eq!(io.to_peer.last(), Some(&(0, p, vec![7, 7])));
    core.handle_peer(&mut io, now(3), 0, p, &mut pkt, 3);
    assert_eq!(
        io.to_client.last().expect("cd").1,
        vec![0x40, 0x01, 0, 3, b'a', b'b', b'c']
    );
    // Unbound channel: dropped.
    let n = io.to_peer.len();
    core.handle_client(&mut io, now(3), c.key, &[0x40, 0x02, 0, 1, 7]);
    assert_eq!(io.to_peer.len(), n);
    // Channel errors: bad number, rebinding to another peer, peer on another channel.
    for (ch, pr) in [
        (0x3FFFu32, p),
        (0x8000, p),
        (0x4001, peer("198.51.100.8:1")),
        (0x4002, p),
    ] {
        let r = c.request(&mut core, &mut io, now(4), method::CHANNEL_BIND, |b| {
            b.u32_attr(attr::CHANNEL_NUMBER, ch << 16)
                .xor_addr(attr::XOR_PEER_ADDRESS, pr);
        });
        assert_eq!(r.code, Some(400), "channel {ch:#x}");
    }
    // Family mismatch: 443.
    let r = c.request(&mut core, &mut io, now(4), method::CREATE_PERMISSION, |b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, peer("[2606:4700::1]:1"));
    });
    assert_eq!(r.code, Some(443));
    // Permission expires after 300 s, channel after 600 s (unless refreshed).
    core.tick(&mut io, now(302));
    let n = io.to_peer.len();
    core.handle_client(&mut io, now(302), c.key, &ind);
    assert_eq!(
        io.to_peer.len(),
        n + 1,
        "channel bind refreshed the permission at t=3"
    );
    core.tick(&mut io, now(304));
    core.handle_client(&mut io, now(304), c.key, &[0x40, 0x01, 0, 2, 7, 7]);
    assert_eq!(io.to_peer.len(), n + 1, "permission expired");
    assert_eq!(core.shared.counters.relayed_packets.load(Relaxed), 5);
}

#[test]
fn tcp_clients_get_padded_channel_data() {
    let mut core = core_with(settings(), permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    c.key.conn = 7;
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let p = peer("198.51.100.7:9000");
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    let mut pkt = [0u8; 64];
    pkt[HEADROOM] = 1;
    core.handle_peer(&mut io, now(1), 0, p, &mut pkt, 1);
    assert_eq!(
        io.to_client.last().expect("cd").1,
        vec![0x40, 0x00, 0, 1, 1, 0, 0, 0]
    );
    core.client_closed(&mut io, c.key);
    assert_eq!(core.allocation_count(), 0);
}

#[test]
fn quotas_on_permissions_and_channels() {
    let mut cfg = settings();
    cfg.max_permissions = 2;
    cfg.max_channels = 1;
    let mut core = core_with(cfg, permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    for (i, want) in [(1u8, None), (2, None), (3, Some(508))] {
        let r = c.request(&mut core, &mut io, now(0), method::CREATE_PERMISSION, |b| {
            b.xor_addr(
                attr::XOR_PEER_ADDRESS,
                SocketAddr::from(([198, 51, 100, i], 1)),
            );
        });
        assert_eq!(r.code, want);
    }
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000).xor_addr(
            attr::XOR_PEER_ADDRESS,
            SocketAddr::from(([198, 51, 100, 1], 1)),
        );
    });
    assert_eq!(r.class, Class::Success);
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4001_0000).xor_addr(
            attr::XOR_PEER_ADDRESS,
            SocketAddr::from(([198, 51, 100, 2], 1)),
        );
    });
    assert_eq!(r.code, Some(508));
}

#[test]
fn policy_refuses_internal_peers_but_allows_own_relays() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut a = Client::new(4000, "a");
    let mut b = Client::new(4001, "b");
    assert_eq!(
        allocate(&mut a, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let rb = allocate(&mut b, &mut core, &mut io, now(0));
    let b_relay = rb.relayed.expect("relay");
    for bad in [
        "127.0.0.1:80",
        "10.0.0.1:1",
        "169.254.169.254:80",
        "0.0.0.0:1",
        "224.0.0.1:1",
        "100.64.0.1:1",
        "255.255.255.255:1",
    ] {
        let r = a.request(
            &mut core,
            &mut io,
            now(1),
            method::CREATE_PERMISSION,
            |bld| {
                bld.xor_addr(attr::XOR_PEER_ADDRESS, peer(bad));
            },
        );
        assert_eq!(r.code, Some(403), "{bad}");
        let r = a.request(&mut core, &mut io, now(1), method::CHANNEL_BIND, |bld| {
            bld.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
                .xor_addr(attr::XOR_PEER_ADDRESS, peer(bad));
        });
        assert_eq!(r.code, Some(403), "{bad}");
    }
    // The relay address of another allocation on this server is allowed...
    let r = a.request(&mut core, &mut io, now(1), method::CHANNEL_BIND, |bld| {
        bld.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, b_relay);
    });
    assert_eq!(r.class, Class::Success);
    // ...but not another port on the same loopback address, even via Send.
    let mut ind = Vec::new();
    Builder::new(&mut ind, method::SEND, Class::Indication, &[9; 12])
        .xor_addr(attr::XOR_PEER_ADDRESS, peer("127.0.0.1:22"))
        .attr(attr::DATA, b"x");
    core.handle_client(&mut io, now(2), a.key, &ind);
    assert!(io.to_peer.is_empty());
    // Explicit deny overrides even the relay exemption; allow overrides the table.
    let mut core2 = core_with(
        settings(),
        PeerPolicy::new(
            vec!["10.0.0.0/8".parse().expect("n")],
            vec!["10.1.0.0/16".parse().expect("n")],
        ),
    );
    let mut c = Client::new(4000, "c");
    assert_eq!(
        allocate(&mut c, &mut core2, &mut io, now(0)).class,
        Class::Success
    );
    let r = c.request(
        &mut core2,
        &mut io,
        now(0),
        method::CREATE_PERMISSION,
        |bld| {
            bld.xor_addr(attr::XOR_PEER_ADDRESS, peer("10.2.0.1:1"));
        },
    );
    assert_eq!(r.class, Class::Success);
    let r = c.request(
        &mut core2,
        &mut io,
        now(0),
        method::CREATE_PERMISSION,
        |bld| {
            bld.xor_addr(attr::XOR_PEER_ADDRESS, peer("10.1.0.1:1"));
        },
    );
    assert_eq!(r.code, Some(403));
    assert!(core.shared.counters.policy_refusals.load(Relaxed) >= 14);
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
fn bandwidth_cap_drops_excess() {
    let mut cfg = settings();
    cfg.max_bps = Some(2000);
    let mut core = core_with(cfg, permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let p = peer("198.51.100.7:9000");
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    let mut pkt = vec![0x40, 0x00, 0x01, 0xF4];
    pkt.extend_from_slice(&[0u8; 500]);
    for _ in 0..10 {
        core.handle_client(&mut io, now(0), c.key, &pkt);
    }
    assert_eq!(io.to_peer.len(), 4);
    core.handle_client(&mut io, now(1), c.key, &pkt);
    assert_eq!(io.to_peer.len(), 5);
    assert!(core.shared.counters.dropped_packets.load(Relaxed) >= 6);
}

#[test]
fn garbage_is_ignored() {
    let mut core = core_with(settings(), permissive());
    let mut io = FakeIo::default();
    let key = ClientKey::udp(peer("192.0.2.1:1"));
    for data in [
        &[][..],
        &[0xff; 30],
        &[0x40, 0, 0, 0],
        &[0, 1, 0, 0],
        &[0x80],
    ] {
        core.handle_client(&mut io, now(0), key, data);
    }
    assert!(io.to_client.is_empty());
}

#[test]
fn hairpin_between_allocations_of_one_shard_skips_the_kernel() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut a = Client::new(4000, "a");
    let mut b = Client::new(4001, "b");
    let ra = allocate(&mut a, &mut core, &mut io, now(0))
        .relayed
        .expect("relay a");
    let rb = allocate(&mut b, &mut core, &mut io, now(0))
        .relayed
        .expect("relay b");
    let r = a.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |bl| {
        bl.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, rb);
    });
    assert_eq!(r.class, Class::Success);
    // Without a permission at B for A's relay, the packet is dropped at B.
    core.handle_client(&mut io, now(1), a.key, &[0x40, 0x00, 0, 3, 1, 2, 3]);
    assert!(io.to_peer.is_empty());
    assert!(io.to_client.last().is_some_and(|(k, _)| *k == a.key));
    let r = b.request(
        &mut core,
        &mut io,
        now(1),
        method::CREATE_PERMISSION,
        |bl| {
            bl.xor_addr(attr::XOR_PEER_ADDRESS, ra);
        },
    );
    assert_eq!(r.class, Class::Success);
    core.handle_client(&mut io, now(2), a.key, &[0x40, 0x00, 0, 3, 1, 2, 3]);
    assert!(io.to_peer.is_empty(), "delivered in-process");
    let (to, data) = io.to_client.last().expect("delivered to b");
    assert_eq!(*to, b.key);
    let m = parse(data).expect("data indication");
    assert_eq!(m.method, method::DATA);
    assert_eq!(m.peer, Some(ra));
    assert_eq!(m.data, Some(&[1u8, 2, 3][..]));
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

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Arbitrary client and peer input never panics the core and every
        /// output it produces is a well-formed STUN message or ChannelData.
        #[test]
        fn core_survives_arbitrary_input(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
            stun_shaped in any::<bool>(),
        ) {
            let mut core = core_with(settings(), permissive());
            let mut io = FakeIo::default();
            let mut c = Client::new(4000, "p");
            prop_assert_eq!(allocate(&mut c, &mut core, &mut io, now(0)).class, Class::Success);
            for (i, mut p) in packets.into_iter().enumerate() {
                if stun_shaped && p.len() >= 20 {
                    p[0] &= 0x3F;
                    p[4..8].copy_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
                    let l = ((p.len() - 20) & !3) as u16;
                    p[2..4].copy_from_slice(&l.to_be_bytes());
                    p.truncate(20 + l as usize);
                }
                core.handle_client(&mut io, now(i as u64), c.key, &p);
                let mut pkt = vec![0u8; HEADROOM + p.len() + 4];
                pkt[HEADROOM..HEADROOM + p.len()].copy_from_slice(&p);
                core.handle_peer(&mut io, now(i as u64), 0, peer("198.51.100.1:1"), &mut pkt, p.len());
                core.handle_peer(&mut io, now(i as u64), 99, peer("198.51.100.1:1"), &mut pkt, p.len());
            }
            for (_, out) in &io.to_client {
                prop_assert!(parse(out).is_ok() || crate::framing::parse_channel_data(out).is_some());
            }
        }
    }
}
