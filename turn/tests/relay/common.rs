//! Shared helpers for the integration tests: start the bundled server on
//! free loopback ports, a small TURN test client, coturn tool discovery.
#![allow(dead_code)]

use sightline_turn::credentials::{long_term_key, rest_credentials};
use sightline_turn::stun::{self, Builder, Class, attr, method};
use sightline_turn::{TurnConfig, TurnServer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;

pub const SECRET: &str = "integration-secret";
pub const REALM: &str = "sightline.test";

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn config() -> TurnConfig {
    TurnConfig {
        listen: vec!["127.0.0.1:0".parse().expect("addr")],
        relay_ips: vec!["127.0.0.1".parse().expect("ip"), "::1".parse().expect("ip")],
        realm: REALM.into(),
        secrets: vec![SECRET.as_bytes().to_vec()],
        ..TurnConfig::default()
    }
}

pub async fn start(cfg: TurnConfig) -> TurnServer {
    TurnServer::start(cfg).await.expect("server starts")
}

/// Path of a coturn tool, or `None` with a loud message (tests then skip).
pub fn coturn_tool(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin").join(name);
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "\n\n*** SKIPPING: {} not found. Install coturn (apt-get install -y coturn) to run the interoperability tests. ***\n\n",
            p.display()
        );
        None
    }
}

/// A minimal TURN client over UDP for the security tests.
pub struct TestClient {
    pub sock: UdpSocket,
    pub server: SocketAddr,
    pub user: String,
    pub pass: String,
    pub nonce: Vec<u8>,
    n: u32,
}

#[derive(Debug)]
pub struct Reply {
    pub class: Class,
    pub code: Option<u16>,
    pub nonce: Option<Vec<u8>>,
    pub relayed: Option<SocketAddr>,
    pub mapped: Option<SocketAddr>,
}

impl TestClient {
    pub async fn new(server: SocketAddr, id: &str) -> Self {
        let (user, pass) =
            rest_credentials(SECRET.as_bytes(), id, Duration::from_secs(3600), unix_now());
        Self::with_credentials(server, user, pass).await
    }

    pub async fn with_credentials(server: SocketAddr, user: String, pass: String) -> Self {
        let sock = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        TestClient {
            sock,
            server,
            user,
            pass,
            nonce: Vec::new(),
            n: 0,
        }
    }

    fn tid(&mut self) -> [u8; 12] {
        self.n += 1;
        let mut t = [0u8; 12];
        t[..4].copy_from_slice(&self.n.to_be_bytes());
        t[4..].copy_from_slice(&rand_bytes());
        t
    }

    pub fn build(&mut self, meth: u16, auth: bool, f: &dyn Fn(&mut Builder)) -> Vec<u8> {
        let tid = self.tid();
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

    /// Send and wait for the matching response (retransmits, bounded).
    pub async fn transact(&self, req: &[u8]) -> Reply {
        let mut buf = vec![0u8; 2048];
        for _ in 0..5 {
            self.sock.send_to(req, self.server).await.expect("send");
            let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
            loop {
                let Ok(Ok((n, _))) =
                    tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await
                else {
                    break;
                };
                let Ok(m) = stun::parse(&buf[..n]) else {
                    continue;
                };
                if m.tid[..] != req[8..20] {
                    continue;
                }
                let mut r = Reply {
                    class: m.class,
                    code: None,
                    nonce: m.nonce.map(<[u8]>::to_vec),
                    relayed: None,
                    mapped: None,
                };
                for (t, v, _) in m.attrs() {
                    match t {
                        attr::ERROR_CODE if v.len() >= 4 => {
                            r.code = Some(v[2] as u16 * 100 + v[3] as u16)
                        }
                        attr::XOR_RELAYED_ADDRESS => r.relayed = stun::decode_addr(v, true, &m.tid),
                        attr::XOR_MAPPED_ADDRESS => r.mapped = stun::decode_addr(v, true, &m.tid),
                        _ => {}
                    }
                }
                return r;
            }
        }
        panic!("no response from the TURN server");
    }

    /// Authenticated request (fetching a nonce first when needed).
    pub async fn request(&mut self, meth: u16, f: &dyn Fn(&mut Builder)) -> Reply {
        if self.nonce.is_empty() {
            let r = self.build(meth, false, f);
            let reply = self.transact(&r).await;
            assert_eq!(reply.code, Some(401), "challenge expected: {reply:?}");
            self.nonce = reply.nonce.expect("nonce in 401");
        }
        let r = self.build(meth, true, f);
        self.transact(&r).await
    }

    pub async fn allocate(&mut self, family: u8) -> Reply {
        self.request(method::ALLOCATE, &|b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
            if family == 2 {
                b.attr(attr::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0]);
            }
        })
        .await
    }

    pub async fn binding(&mut self) -> Reply {
        let r = self.build(method::BINDING, false, &|_| {});
        self.transact(&r).await
    }
}

fn rand_bytes() -> [u8; 8] {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0) as u64;
    (t ^ 0x9E37_79B9_7F4A_7C15).to_be_bytes()
}

/// A fresh self-signed certificate for 127.0.0.1 (openssl CLI), as (cert, key) paths
/// inside `dir`; `None` when openssl is missing or fails.
pub fn self_signed_cert(dir: &std::path::Path) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ok = std::process::Command::new("/usr/bin/openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some((cert, key))
}
