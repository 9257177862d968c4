//! Hostile and careless HTTP clients against the real app on port 0 (loopback only,
//! bounded in count and time): idle, slow-header and slow-body connections are closed
//! within the configured timeouts while a well-behaved client keeps being served; a
//! connection flood past the caps is refused at once and counted; plus the response
//! headers that harden the edge (HSTS, `Allow`) and the `/metrics` token.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sightline::config::{HttpConfig, MetricsConfig};
use support::TestApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Reads until the server closes (EOF or reset) and returns what it sent and when it
/// closed; panics if it is still open after `limit`.
async fn until_closed(
    s: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> (String, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit
            .checked_sub(start.elapsed())
            .expect("server kept the connection open too long");
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Err(_) => panic!("server kept the connection open too long"),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&got).into_owned(), start.elapsed())
}

async fn connect_from(local: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let sock = TcpSocket::new_v4()?;
    sock.bind(format!("{local}:0").parse().expect("addr"))?;
    sock.connect(to).await
}

fn short_timeouts(c: &mut sightline::Config) {
    c.http = HttpConfig {
        header_timeout_ms: 600,
        idle_timeout_ms: 900,
        body_timeout_ms: 700,
        ..HttpConfig::default()
    };
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_while_others_are_served() {
    let t = TestApp::spawn_with(short_timeouts).await;
    let addr = t.app.http_addr();
    let margin = Duration::from_millis(1500);

    // A well-behaved client polls /healthz the whole time.
    let http = t.http.clone();
    let health = t.url("/healthz");
    let good = tokio::spawn(async move {
        let mut served = 0;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let r = http.get(&health).send().await.expect("healthz answers");
            assert_eq!(r.status(), 200);
            served += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        served
    });

    // 1. Connects and never sends a byte: closed at the header timeout.
    let idle = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let (_, took) = until_closed(&mut s, Duration::from_millis(600) + margin).await;
        assert!(
            took >= Duration::from_millis(450),
            "closed too early: {took:?}"
        );
    };
    // 2. One request, then idle on keep-alive: closed at the idle timeout.
    let kept_alive = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .expect("write");
        let (text, took) = until_closed(&mut s, Duration::from_millis(900) + margin).await;
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert!(
            took >= Duration::from_millis(700),
            "closed too early: {took:?}"
        );
    };
    // 3. Trickles a header line every 150 ms, forever: closed at the header timeout
    //    although bytes keep coming.
    let slow_header = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let start = Instant::now();
        s.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
            .await
            .expect("write");
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            if s.write_all(format!("x-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            let mut probe = [0u8; 1];
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(1), s.read(&mut probe)).await
            {
                break;
            }
        }
        let took = start.elapsed();
        assert!(
            took < Duration::from_millis(600) + margin,
            "slow header held {took:?}"
        );
    };
    // 4. Sends its headers and then the body a byte at a time: answered 408 at the
    //    body timeout and closed.
    let slow_body = async {
        let s = TcpStream::connect(addr).await.expect("connect");
        let (mut rd, mut s) = s.into_split();
        s.write_all(
            format!(
                "POST /api/v1/sessions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
                 content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{",
                t.key
            )
            .as_bytes(),
        )
        .await
        .expect("write");
        let start = Instant::now();
        let trickle = async {
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if s.write_all(b" ").await.is_err() {
                    break;
                }
            }
        };
        let (reply, _) = tokio::join!(
            until_closed(&mut rd, Duration::from_millis(700) + margin),
            tokio::time::timeout(Duration::from_millis(700) + margin, trickle)
        );
        let (text, _) = reply;
        assert!(text.starts_with("HTTP/1.1 408"), "{text}");
        assert!(start.elapsed() >= Duration::from_millis(500));
    };
    tokio::join!(idle, kept_alive, slow_header, slow_body);
    let served = good.await.expect("good client");
    assert!(
        served >= 10,
        "the well-behaved client was served {served} times"
    );

    let m = t.get("/metrics").await.text().await.expect("metrics");
    for phase in ["header", "idle", "body"] {
        assert!(
            m.contains(&format!(
                "sightline_http_connection_timeouts_total{{phase=\"{phase}\"}}"
            )),
            "{phase} timeout not counted:\n{m}"
        );
    }
    t.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_connection_flood_past_the_caps_leaves_healthz_answering() {
    let t = TestApp::spawn_with(|c| {
        c.http.max_connections = Some(50);
        c.http.max_connections_per_ip = Some(40);
    })
    .await;
    let addr = t.app.http_addr();

    // 200 idle connections from one client address: 40 are held, the rest refused at once.
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let mut s = connect_from("127.0.0.2", addr).await.expect("connect");
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(20), s.read(&mut buf)).await {
            Ok(Ok(n)) => {
                assert!(n == 0 || buf.starts_with(b"HTTP/1.1 503"));
                refused += 1;
            }
            Ok(Err(_)) => refused += 1,
            Err(_) => held.push(s),
        }
    }
    assert_eq!(held.len(), 40, "one client holds at most its cap");
    assert_eq!(refused, 160);

    // Another client is still served while the flood holds its connections…
    for _ in 0..5 {
        let r = t.http.get(t.url("/healthz")).send().await.expect("healthz");
        assert_eq!(r.status(), 200);
    }
    // …until the total cap is reached by a second flooding address.
    for _ in 0..50 {
        if let Ok(s) = connect_from("127.0.0.3", addr).await {
            held.push(s);
        }
    }
    let mut s = connect_from("127.0.0.1", addr).await.expect("connect");
    let (text, _) = until_closed(&mut s, Duration::from_secs(2)).await;
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 503"),
        "{text}"
    );
    drop(held);
    // The slots come back as soon as the flood lets go.
    let m = support::eventually(
        Duration::from_secs(5),
        "metrics after the flood",
        || async {
            let r = reqwest::Client::new()
                .get(t.url("/metrics"))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())?;
            r.text().await.ok()
        },
    )
    .await;
    assert!(
        m.contains(
            "sightline_http_connections_refused_total{reason=\"max_connections_per_ip\"} 160"
        ),
        "{m}"
    );
    assert!(
        m.contains("sightline_http_connections_refused_total{reason=\"max_connections\"}"),
        "{m}"
    );
    t.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn hsts_only_for_https_public_urls() {
    let t = TestApp::spawn_with(|c| c.public_url = Some("https://video.example.com".into())).await;
    let r = t.http.get(t.url("/healthz")).send().await.expect("get");
    assert_eq!(
        r.headers()
            .get("strict-transport-security")
            .and_then(|v| v.to_str().ok()),
        Some("max-age=31536000")
    );
    t.app.shutdown().await.expect("shutdown");

    let t = TestApp::spawn().await;
    let r = t.http.get(t.url("/healthz")).send().await.expect("get");
    assert!(r.headers().get("strict-transport-security").is_none());
    t.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn method_not_allowed_names_the_allowed_methods() {
    let t = TestApp::spawn().await;
    for (method, path, allow) in [
        (
            reqwest::Method::DELETE,
            "/api/v1/sessions",
            "GET, HEAD, POST",
        ),
        (
            reqwest::Method::PUT,
            "/api/v1/sessions/0190f5d2-0000-7000-8000-000000000000/end",
            "POST",
        ),
        (reqwest::Method::POST, "/healthz", "GET, HEAD"),
        (
            reqwest::Method::GET,
            "/api/v1/integrations/x/inbound",
            "POST",
        ),
    ] {
        let r = t
            .http
            .request(method.clone(), t.url(path))
            .bearer_auth(&t.key)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(
            r.headers().get("allow").and_then(|v| v.to_str().ok()),
            Some(allow),
            "{method} {path}"
        );
        support::assert_problem(r, 405, "method_not_allowed").await;
    }
    t.app.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let t = TestApp::spawn_with(|c| {
        c.metrics = MetricsConfig {
            token: Some("metrics-token-0123456789".to_owned().into()),
            ..MetricsConfig::default()
        }
    })
    .await;
    let r = t.http.get(t.url("/metrics")).send().await.expect("get");
    assert_eq!(
        r.headers()
            .get("www-authenticate")
            .map(|v| v.as_bytes().starts_with(b"Bearer")),
        Some(true)
    );
    support::assert_problem(r, 401, "unauthorized").await;
    let r = t
        .http
        .get(t.url("/metrics"))
        .bearer_auth("metrics-token-0123456788")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = t
        .http
        .get(t.url("/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .expect("text")
            .contains("sightline_http_connections_open")
    );
    t.app.shutdown().await.expect("shutdown");
}
