//! Test harness: a fake `Io`, a scripted TURN client, helpers.

pub(super) use super::super::*;
pub(super) use crate::credentials::{long_term_key, rest_credentials};
pub(super) use crate::stun::{Builder, Class, attr, method, parse};
pub(super) use std::time::Duration;

pub(super) const SECRET: &[u8] = b"test-secret";
pub(super) const REALM: &str = "sightline.test";
pub(super) const T0: u64 = 1_800_000_000;

#[derive(Default)]
pub(super) struct FakeIo {
    pub(super) to_client: Vec<(ClientKey, Vec<u8>)>,
    pub(super) to_peer: Vec<(usize, SocketAddr, Vec<u8>)>,
    pub(super) opened: Vec<usize>,
    pub(super) closed: Vec<usize>,
    pub(super) no_relays: bool,
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

pub(super) fn settings() -> CoreSettings {
    let c = TurnConfig {
        realm: REALM.into(),
        secrets: vec![SECRET.to_vec(), b"old-secret".to_vec()],
        ..TurnConfig::default()
    };
    CoreSettings::from(&c)
}

pub(super) fn core_with(cfg: CoreSettings, policy: PeerPolicy) -> Core {
    Core::new(
        cfg,
        policy,
        NonceKey::new([1; 32], 600),
        Arc::new(Shared::default()),
    )
}

pub(super) fn now(s: u64) -> Now {
    Now {
        ms: s * 1000,
        unix: T0 + s,
    }
}

/// A test client speaking to the core.
pub(super) struct Client {
    pub(super) key: ClientKey,
    pub(super) user: String,
    pub(super) pass: String,
    pub(super) nonce: Vec<u8>,
    pub(super) n: u8,
}

impl Client {
    pub(super) fn new(port: u16, id: &str) -> Self {
        let (user, pass) = rest_credentials(SECRET, id, Duration::from_secs(86_400), T0);
        Client {
            key: ClientKey::udp(SocketAddr::from(([192, 0, 2, 10], port))),
            user,
            pass,
            nonce: Vec::new(),
            n: 0,
        }
    }

    pub(super) fn tid(&mut self) -> [u8; 12] {
        self.n = self.n.wrapping_add(1);
        [self.n; 12]
    }

    pub(super) fn build(
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
    pub(super) fn request(
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
pub(super) struct Resp {
    pub(super) class: Class,
    pub(super) code: Option<u16>,
    pub(super) nonce: Option<Vec<u8>>,
    pub(super) relayed: Option<SocketAddr>,
    pub(super) lifetime: Option<u32>,
    pub(super) unknown: Vec<u16>,
    pub(super) has_mi: bool,
}

pub(super) fn send(
    core: &mut Core,
    io: &mut FakeIo,
    t: Now,
    key: ClientKey,
    data: &[u8],
) -> Option<Resp> {
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

pub(super) fn allocate(c: &mut Client, core: &mut Core, io: &mut FakeIo, t: Now) -> Resp {
    c.request(core, io, t, method::ALLOCATE, |b| {
        b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
    })
}

pub(super) fn peer(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

pub(super) fn permissive() -> PeerPolicy {
    PeerPolicy::new(
        vec![
            "0.0.0.0/0".parse().expect("net"),
            "::/0".parse().expect("net"),
        ],
        vec![],
    )
}
