//! A real browser (headless Chromium) relays a data channel through the
//! bundled server with `iceTransportPolicy: 'relay'`, over TURN/UDP and
//! TURN/TCP (the enterprise case: UDP blocked). Two RTCPeerConnections in one
//! page, so no signalling server is needed. Skipped loudly without Chromium.

use crate::common::{SECRET, config, start, unix_now};
use sightline_turn::credentials::rest_credentials;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CHROMIUM: &str = "/usr/bin/chromium";

fn page(turn_url: &str, user: &str, pass: &str) -> String {
    format!(
        r#"<!doctype html><meta charset="utf-8"><title>turn</title><script>
const report = r => fetch('/result?' + encodeURIComponent(JSON.stringify(r)));
setTimeout(() => report({{ok: false, error: 'timeout'}}), 20000);
(async () => {{
  const cfg = {{ iceServers: [{{ urls: [{turn_url:?}], username: {user:?}, credential: {pass:?} }}],
                iceTransportPolicy: 'relay' }};
  const a = new RTCPeerConnection(cfg), b = new RTCPeerConnection(cfg);
  a.onicecandidate = e => e.candidate && b.addIceCandidate(e.candidate);
  b.onicecandidate = e => e.candidate && a.addIceCandidate(e.candidate);
  b.ondatachannel = e => {{ e.channel.onmessage = m => e.channel.send('echo:' + m.data); }};
  const dc = a.createDataChannel('chat');
  dc.onopen = () => dc.send('hello');
  dc.onmessage = async m => {{
    const stats = await a.getStats();
    let local = null, remote = null;
    stats.forEach(s => {{
      if (s.type === 'transport' && s.selectedCandidatePairId) {{
        const pair = stats.get(s.selectedCandidatePairId);
        local = stats.get(pair.localCandidateId);
        remote = stats.get(pair.remoteCandidateId);
      }}
    }});
    report({{ ok: m.data === 'echo:hello', local: local && local.candidateType,
             relayProtocol: local && local.relayProtocol, remote: remote && remote.candidateType }});
  }};
  await a.setLocalDescription();
  await b.setRemoteDescription(a.localDescription);
  await b.setLocalDescription();
  await a.setRemoteDescription(b.localDescription);
}})().catch(e => report({{ok: false, error: String(e)}}));
</script>"#
    )
}

/// Serve the page and wait (bounded) for the page's result request.
async fn serve_until_result(
    listener: TcpListener,
    html: String,
    limit: Duration,
) -> Option<String> {
    let deadline = tokio::time::Instant::now() + limit;
    for _ in 0..50 {
        let Ok(Ok((mut s, _))) = tokio::time::timeout_at(deadline, listener.accept()).await else {
            return None;
        };
        let mut req = Vec::new();
        let mut buf = [0u8; 4096];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
            match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => req.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        let head = String::from_utf8_lossy(&req).into_owned();
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        let body = if path.starts_with("/result?") {
            "ok".to_string()
        } else {
            html.clone()
        };
        let ctype = if path.starts_with("/result?") {
            "text/plain"
        } else {
            "text/html"
        };
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = s.write_all(resp.as_bytes()).await;
        if let Some(q) = path.strip_prefix("/result?") {
            return Some(percent_decode(q));
        }
    }
    None
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if let (b'%', Some(v)) = (b[i], hex) {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn browser_case(transport: &str) {
    browser_case_with(transport, false).await;
}

async fn browser_case_with(transport: &str, tls: bool) {
    if !std::path::Path::new(CHROMIUM).exists() {
        eprintln!(
            "\n\n*** SKIPPING browser TURN test: {CHROMIUM} not found (apt-get install chromium) ***\n\n"
        );
        return;
    }
    let certs = tempfile::tempdir().expect("cert dir");
    let mut cfg = config();
    if tls {
        let made = crate::common::self_signed_cert(certs.path());
        let Some((cert, key)) = made else {
            eprintln!(
                "\n*** SKIPPING browser TURN/TLS test: openssl could not make a certificate ***\n"
            );
            return;
        };
        cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
        cfg.tls_cert = Some(cert);
        cfg.tls_key = Some(key);
    }
    let server = start(cfg).await;
    let turn_url = if tls {
        format!("turns:{}?transport=tcp", server.tls_addrs()[0])
    } else {
        let turn_addr: SocketAddr = if transport == "tcp" {
            server.tcp_addrs()[0]
        } else {
            server.udp_addrs()[0]
        };
        format!("turn:{turn_addr}?transport={transport}")
    };
    let (user, pass) = rest_credentials(
        SECRET.as_bytes(),
        "browser",
        Duration::from_secs(600),
        unix_now(),
    );
    let http = TcpListener::bind("127.0.0.1:0").await.expect("http bind");
    let url = format!("http://{}/page", http.local_addr().expect("addr"));
    let profile = tempfile::tempdir().expect("profile dir");
    let mut child = tokio::process::Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1",
            "--disable-features=WebRtcHideLocalIpsWithMdns",
            "--allow-loopback-in-peer-connection",
            // Self-signed test certificate for the TURN/TLS case.
            "--ignore-certificate-errors",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(&url)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let result =
        serve_until_result(http, page(&turn_url, &user, &pass), Duration::from_secs(60)).await;
    let stats = server.stats();
    let _ = child.kill().await;
    let result = result.expect("the page reported a result in time");
    assert!(result.contains("\"ok\":true"), "browser result: {result}");
    assert!(
        result.contains("\"local\":\"relay\""),
        "selected pair is relay: {result}"
    );
    assert!(
        result.contains("\"remote\":\"relay\""),
        "selected pair is relay: {result}"
    );
    assert!(
        result.contains(&format!("\"relayProtocol\":\"{transport}\"")),
        "relay over {transport}: {result}"
    );
    assert!(
        stats.allocations_total >= 2 && stats.relayed_packets > 0,
        "{stats:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn chromium_relays_data_channel_over_turn_udp() {
    browser_case("udp").await;
}

#[tokio::test]
async fn chromium_relays_data_channel_over_turn_tcp() {
    browser_case("tcp").await;
}

#[tokio::test]
async fn chromium_relays_data_channel_over_turn_tls() {
    browser_case_with("tls", true).await;
}
