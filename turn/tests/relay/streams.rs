//! TCP/TLS robustness against a real server on loopback: clients that send
//! garbage, stop in the middle of a message, or say nothing at all are
//! disconnected within the configured bound while a well-behaved TCP client
//! keeps getting answers; connections past the per-IP cap are refused at once.

use crate::common::{config, start};
use sightline_turn::stun::{self, Builder, Class, method};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The setup bound the server is configured with in these tests.
const SETUP: Duration = Duration::from_secs(2);
/// Closing happens on the engine's one-second tick after the bound.
const SLACK: Duration = Duration::from_millis(2500);

fn binding(n: u32) -> Vec<u8> {
    let mut tid = [7u8; 12];
    tid[..4].copy_from_slice(&n.to_be_bytes());
    let mut buf = Vec::new();
    Builder::new(&mut buf, method::BINDING, Class::Request, &tid);
    buf
}

/// Read one STUN message from a stream (bounded in time).
async fn read_stun(s: &mut TcpStream, limit: Duration) -> Option<Vec<u8>> {
    let mut head = [0u8; 20];
    tokio::time::timeout(limit, s.read_exact(&mut head))
        .await
        .ok()?
        .ok()?;
    let len = u16::from_be_bytes([head[2], head[3]]) as usize;
    let mut msg = head.to_vec();
    msg.resize(20 + len, 0);
    tokio::time::timeout(limit, s.read_exact(&mut msg[20..]))
        .await
        .ok()?
        .ok()?;
    Some(msg)
}

/// Wait until the server closes `s` (EOF or reset); returns how long it took
/// from `since`, or `None` if it stayed open until `limit`.
async fn closed_within(mut s: TcpStream, since: Instant, limit: Duration) -> Option<Duration> {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::from_std(since + limit);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(since.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// A client that asks for a Binding every 50 ms and records the slowest answer.
async fn well_behaved(addr: SocketAddr, run_for: Duration) -> (u32, Duration) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let start = Instant::now();
    let (mut answered, mut worst) = (0u32, Duration::ZERO);
    let mut n = 0u32;
    while start.elapsed() < run_for {
        n += 1;
        let req = binding(n);
        let t = Instant::now();
        s.write_all(&req).await.expect("write");
        let resp = read_stun(&mut s, Duration::from_secs(2))
            .await
            .expect("the well-behaved client gets an answer");
        let m = stun::parse(&resp).expect("response parses");
        assert_eq!(m.class, Class::Success);
        assert_eq!(m.tid, <[u8; 12]>::try_from(&req[8..20]).expect("tid"));
        answered += 1;
        worst = worst.max(t.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (answered, worst)
}

#[tokio::test]
async fn bad_stream_clients_are_disconnected_while_good_ones_are_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tls = crate::common::self_signed_cert(dir.path());
    let mut cfg = config();
    cfg.stream_setup_timeout = SETUP;
    if let Some((cert, key)) = &tls {
        cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
        cfg.tls_cert = Some(cert.clone());
        cfg.tls_key = Some(key.clone());
    } else {
        eprintln!("note: no openssl, TLS cases skipped");
    }
    let server = start(cfg).await;
    let tcp = server.tcp_addrs()[0];
    let bound = SETUP + SLACK;
    let good = tokio::spawn(well_behaved(tcp, bound + Duration::from_secs(1)));

    // Garbage: closed at once (not STUN, not ChannelData).
    let t0 = Instant::now();
    let mut garbage = TcpStream::connect(tcp).await.expect("connect");
    garbage.write_all(&[0xFFu8; 64]).await.expect("write");
    let garbage = tokio::spawn(closed_within(garbage, t0, Duration::from_secs(1)));

    // STUN-shaped garbage (no magic cookie) after a valid request.
    let t0 = Instant::now();
    let mut bad_cookie = TcpStream::connect(tcp).await.expect("connect");
    bad_cookie.write_all(&binding(1)).await.expect("write");
    assert!(
        read_stun(&mut bad_cookie, Duration::from_secs(2))
            .await
            .is_some()
    );
    let mut fake = binding(2);
    fake[4] = 0;
    bad_cookie.write_all(&fake).await.expect("write");
    let bad_cookie = tokio::spawn(closed_within(bad_cookie, t0, Duration::from_secs(1)));

    // Partial frame: a valid request, then half of another one.
    let t0 = Instant::now();
    let mut partial = TcpStream::connect(tcp).await.expect("connect");
    partial.write_all(&binding(1)).await.expect("write");
    assert!(
        read_stun(&mut partial, Duration::from_secs(2))
            .await
            .is_some()
    );
    partial.write_all(&binding(2)[..10]).await.expect("write");
    let partial = tokio::spawn(closed_within(partial, t0, bound));

    // Partial ChannelData header announcing a large payload that never comes.
    let t0 = Instant::now();
    let mut big = TcpStream::connect(tcp).await.expect("connect");
    big.write_all(&[0x40, 0x00, 0xFF, 0xF0, 1, 2, 3])
        .await
        .expect("write");
    let big = tokio::spawn(closed_within(big, t0, bound));

    // Silent connection: nothing at all.
    let t0 = Instant::now();
    let silent = TcpStream::connect(tcp).await.expect("connect");
    let silent = tokio::spawn(closed_within(silent, t0, bound));

    // TLS: silent, and a handshake that stops after a few bytes.
    let mut tls_cases = Vec::new();
    if let Some(&tls_addr) = server.tls_addrs().first() {
        let t0 = Instant::now();
        let s = TcpStream::connect(tls_addr).await.expect("connect");
        tls_cases.push(("silent TLS", tokio::spawn(closed_within(s, t0, bound))));
        let t0 = Instant::now();
        let mut s = TcpStream::connect(tls_addr).await.expect("connect");
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .expect("write");
        tls_cases.push((
            "slow TLS handshake",
            tokio::spawn(closed_within(s, t0, bound)),
        ));
        let t0 = Instant::now();
        let mut s = TcpStream::connect(tls_addr).await.expect("connect");
        s.write_all(&[0xFFu8; 64]).await.expect("write");
        tls_cases.push(("TLS garbage", tokio::spawn(closed_within(s, t0, bound))));
    }

    for (what, h) in [
        ("garbage", garbage),
        ("bad magic cookie", bad_cookie),
        ("partial frame", partial),
        ("partial ChannelData", big),
        ("silent", silent),
    ]
    .into_iter()
    .chain(tls_cases)
    {
        let took = h.await.expect("task");
        assert!(took.is_some(), "{what}: still open after {bound:?}");
        eprintln!("{what}: closed after {took:?}");
    }
    let (answered, worst) = good.await.expect("good client");
    eprintln!("well-behaved client: {answered} answers, slowest {worst:?}");
    assert!(answered >= 40, "only {answered} answers");
    // Generous for a loaded 2-core box (debug-built TLS handshakes share the
    // test runtime); a stalled server would take seconds.
    assert!(worst < Duration::from_secs(1), "slowest answer {worst:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_per_ip_cap_are_refused_at_once() {
    let mut cfg = config();
    cfg.max_stream_connections_per_ip = 3;
    let server = start(cfg).await;
    let tcp = server.tcp_addrs()[0];
    let mut held = Vec::new();
    for i in 0..3 {
        let mut s = TcpStream::connect(tcp).await.expect("connect");
        s.write_all(&binding(i)).await.expect("write");
        assert!(
            read_stun(&mut s, Duration::from_secs(2)).await.is_some(),
            "connection {i} under the cap is served"
        );
        held.push(s);
    }
    let t0 = Instant::now();
    let extra = TcpStream::connect(tcp).await.expect("connect");
    let took = closed_within(extra, t0, Duration::from_secs(1)).await;
    assert!(took.is_some(), "the 4th connection is closed at once");
    // The held connections still work; freeing one admits a new one.
    let mut s = held.pop().expect("held");
    s.write_all(&binding(9)).await.expect("write");
    assert!(read_stun(&mut s, Duration::from_secs(2)).await.is_some());
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let mut s = TcpStream::connect(tcp).await.expect("connect");
        let _ = s.write_all(&binding(10)).await;
        if read_stun(&mut s, Duration::from_millis(500))
            .await
            .is_some()
        {
            break;
        }
        assert!(Instant::now() < deadline, "a freed slot is reused");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await;
}
