//! Security behaviour over real loopback sockets: peer policy (403), bad
//! credentials (401), quotas (486), robustness against garbage.

use crate::common::{SECRET, TestClient, config, start, unix_now};
use sightline_turn::credentials::rest_credentials;
use sightline_turn::stun::{Class, attr, method};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const REFUSED: &[&str] = &[
    "127.0.0.1:9",
    "127.1.2.3:80",
    "0.0.0.0:9",
    "10.0.0.1:9",
    "100.64.0.1:9",
    "169.254.169.254:80",
    "172.16.0.1:9",
    "192.168.1.1:9",
    "192.0.0.1:9",
    "192.0.2.1:9",
    "198.18.0.1:9",
    "198.51.100.1:9",
    "203.0.113.1:9",
    "224.0.0.251:5353",
    "239.255.255.250:1900",
    "240.0.0.1:9",
    "255.255.255.255:9",
    "[::1]:9",
    "[::]:9",
    "[::ffff:127.0.0.1]:9",
    "[::ffff:169.254.169.254]:80",
    "[::ffff:10.0.0.1]:9",
    "[::127.0.0.1]:9",
    "[64:ff9b::7f00:1]:9",
    "[64:ff9b::a9fe:a9fe]:80",
    "[64:ff9b:1::1]:9",
    "[2002:7f00:1::1]:9",
    "[2002:a9fe:a9fe::1]:80",
    "[2001:0:4136:e378:8000:63bf:3fff:fdd2]:9",
    "[2001:db8::1]:9",
    "[fc00::1]:9",
    "[fd00::1]:9",
    "[fe80::1]:9",
    "[fec0::1]:9",
    "[ff02::1]:9",
    "[100::1]:9",
];

/// Asks for a permission and a channel to each peer; expects `code` for both.
async fn expect_refusals(c: &mut TestClient, peers: &[&str], code: u16, what: &str) {
    for (i, p) in peers.iter().enumerate() {
        let peer: SocketAddr = p.parse().expect("peer");
        let r = c
            .request(method::CREATE_PERMISSION, &|b| {
                b.xor_addr(attr::XOR_PEER_ADDRESS, peer);
            })
            .await;
        assert_eq!(r.code, Some(code), "{what} CreatePermission {p}: {r:?}");
        let ch = 0x4000 + i as u32;
        let r = c
            .request(method::CHANNEL_BIND, &|b| {
                b.u32_attr(attr::CHANNEL_NUMBER, ch << 16)
                    .xor_addr(attr::XOR_PEER_ADDRESS, peer);
            })
            .await;
        assert_eq!(r.code, Some(code), "{what} ChannelBind {p}: {r:?}");
    }
}

#[tokio::test]
async fn refused_peers_get_403_on_create_permission_and_channel_bind() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let (v6, v4): (Vec<&str>, Vec<&str>) = REFUSED.iter().partition(|p| p.starts_with('['));
    let mut c = TestClient::new(addr, "policy").await;
    assert_eq!(c.allocate(1).await.class, Class::Success);
    expect_refusals(&mut c, &v4, 403, "v4").await;
    // A peer of the other family is a 443 (RFC 8656), whatever the policy.
    expect_refusals(&mut c, &v6, 443, "v6 peer, v4 relay").await;
    assert_eq!(server.stats().policy_refusals, 2 * v4.len() as u64);
    // IPv6 allocation (relay on ::1), when the host has IPv6 loopback.
    let mut c6 = TestClient::new(addr, "policy6").await;
    let r = c6.allocate(2).await;
    if r.class == Class::Success {
        expect_refusals(&mut c6, &v6, 403, "v6").await;
        expect_refusals(
            &mut c6,
            &["127.0.0.1:9", "198.51.100.1:9"],
            443,
            "v4 peer, v6 relay",
        )
        .await;
        assert_eq!(
            server.stats().policy_refusals,
            2 * (v4.len() + v6.len()) as u64
        );
    } else {
        eprintln!("note: no IPv6 relay on this host ({r:?}); IPv6 allocation part skipped");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn own_relay_addresses_are_allowed_peers() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let mut a = TestClient::new(addr, "a").await;
    let mut b = TestClient::new(addr, "b").await;
    let _ = a.allocate(1).await;
    let rb = b.allocate(1).await;
    let relay_b = rb.relayed.expect("relay address");
    let r = a
        .request(method::CHANNEL_BIND, &|bl| {
            bl.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
                .xor_addr(attr::XOR_PEER_ADDRESS, relay_b);
        })
        .await;
    assert_eq!(r.class, Class::Success, "{r:?}");
    // Another port on the same loopback address stays refused.
    let other = SocketAddr::new(relay_b.ip(), relay_b.port().wrapping_add(1).max(1));
    let r = a
        .request(method::CREATE_PERMISSION, &|bl| {
            bl.xor_addr(attr::XOR_PEER_ADDRESS, other);
        })
        .await;
    assert_eq!(r.code, Some(403));
    server.shutdown().await;
}

#[tokio::test]
async fn expired_and_forged_credentials_get_401() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let (user, pass) = rest_credentials(
        SECRET.as_bytes(),
        "old",
        Duration::from_secs(60),
        unix_now() - 3600,
    );
    let mut expired = TestClient::with_credentials(addr, user, pass).await;
    assert_eq!(expired.allocate(1).await.code, Some(401));
    let (user, _) = rest_credentials(
        SECRET.as_bytes(),
        "forger",
        Duration::from_secs(600),
        unix_now(),
    );
    let mut forged =
        TestClient::with_credentials(addr, user, "bm90IHRoZSBwYXNzd29yZA==".into()).await;
    assert_eq!(forged.allocate(1).await.code, Some(401));
    let (user, pass) =
        rest_credentials(b"another-secret", "x", Duration::from_secs(600), unix_now());
    let mut wrong_secret = TestClient::with_credentials(addr, user, pass).await;
    assert_eq!(wrong_secret.allocate(1).await.code, Some(401));
    assert_eq!(server.stats().auth_failures, 3);
    assert_eq!(server.stats().allocations, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn fifth_allocation_of_one_credential_gets_486() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let mut clients = Vec::new();
    for _ in 0..4 {
        let mut c = TestClient::new(addr, "quota-user").await;
        assert_eq!(c.allocate(1).await.class, Class::Success);
        clients.push(c);
    }
    let mut fifth = TestClient::new(addr, "quota-user").await;
    assert_eq!(fifth.allocate(1).await.code, Some(486));
    // Another credential id is unaffected.
    let mut other = TestClient::new(addr, "someone-else").await;
    assert_eq!(other.allocate(1).await.class, Class::Success);
    assert_eq!(server.stats().allocations, 5);
    server.shutdown().await;
}

#[tokio::test]
async fn garbage_flood_does_not_stop_the_server() {
    let server = start(config()).await;
    let addr = server.udp_addrs()[0];
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut buf = [0u8; 600];
    for i in 0..20_000u32 {
        let len = (next() % 600) as usize;
        for b in buf[..len].iter_mut() {
            *b = next() as u8;
        }
        // Every other datagram is STUN- or ChannelData-shaped garbage.
        if len >= 20 && i % 2 == 0 {
            buf[0] &= 0x3F;
            buf[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
            let l = ((len - 20) & !3) as u16;
            buf[2..4].copy_from_slice(&l.to_be_bytes());
        } else if len >= 4 && i % 3 == 0 {
            buf[0] = 0x40 | (buf[0] & 0x3F);
        }
        let _ = sock.send_to(&buf[..len], addr).await;
    }
    // Garbage over TCP: the connection is closed, the server carries on.
    let mut tcp = tokio::net::TcpStream::connect(server.tcp_addrs()[0])
        .await
        .expect("tcp");
    let _ = tcp.write_all(&[0xFFu8; 4096]).await;
    let mut c = TestClient::new(addr, "after-flood").await;
    let r = c.binding().await;
    assert_eq!(r.class, Class::Success);
    assert_eq!(r.mapped, Some(c.sock.local_addr().expect("local")));
    assert_eq!(c.allocate(1).await.class, Class::Success);
    server.shutdown().await;
}

#[tokio::test]
async fn ipv6_listener_answers_binding() {
    let mut cfg = config();
    cfg.listen = vec!["[::1]:0".parse().expect("addr")];
    let Ok(server) = sightline_turn::TurnServer::start(cfg).await else {
        eprintln!("note: no IPv6 loopback on this host; IPv6 listener test skipped");
        return;
    };
    let addr = server.udp_addrs()[0];
    let sock = tokio::net::UdpSocket::bind("[::1]:0")
        .await
        .expect("bind v6");
    let mut c = TestClient::new(addr, "v6").await;
    c.sock = sock;
    let r = c.binding().await;
    assert_eq!(r.class, Class::Success);
    assert_eq!(r.mapped, Some(c.sock.local_addr().expect("local")));
    let r = c.allocate(2).await;
    assert_eq!(r.class, Class::Success, "{r:?}");
    assert!(r.relayed.is_some_and(|a| a.is_ipv6()));
    server.shutdown().await;
}
