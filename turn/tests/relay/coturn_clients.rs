//! Interoperability with coturn's own clients (turnutils_uclient,
//! turnutils_stunclient) against the bundled server on free loopback ports.

use crate::common::{SECRET, config, coturn_tool, start};
use std::time::Duration;
use tokio::process::Command;

async fn run_tool(tool: &std::path::Path, args: &[String], limit: Duration) -> String {
    let child = Command::new(tool)
        .args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn coturn tool");
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .expect("coturn tool finished in time")
        .expect("coturn tool output");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

fn lost_packets(out: &str) -> Option<u64> {
    let line = out
        .lines()
        .rev()
        .find(|l| l.contains("Total lost packets"))?;
    let after = line.split("Total lost packets").nth(1)?;
    after.split_whitespace().next()?.parse().ok()
}

async fn uclient_case(extra: &[&str], engine_threads: usize) {
    let Some(tool) = coturn_tool("turnutils_uclient") else {
        return;
    };
    let mut cfg = config();
    cfg.user_quota = 0;
    cfg.engine_threads = engine_threads;
    // coturn 4.6's uclient binds random channels in 0x4000-0x7FFF (RFC 5766).
    cfg.legacy_channel_numbers = true;
    let server = start(cfg).await;
    let port = server.udp_addrs()[0].port();
    let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
    for a in [
        "-p",
        &port.to_string(),
        "-u",
        "agent",
        "-W",
        SECRET,
        "-X",
        "-y",
        "-c",
        "-m",
        "4",
        "-n",
        "100",
        "-l",
        "170",
        "127.0.0.1",
    ] {
        args.push(a.to_string());
    }
    let out = run_tool(&tool, &args, Duration::from_secs(60)).await;
    assert_eq!(lost_packets(&out), Some(0), "uclient output:\n{out}");
    let st = server.stats();
    assert!(st.relayed_packets >= 800, "stats: {st:?}");
    assert_eq!(st.auth_failures, 0);
    server.shutdown().await;
}

#[tokio::test]
async fn uclient_udp_client_to_client() {
    uclient_case(&[], 1).await;
}

#[tokio::test]
async fn uclient_tcp_client_to_client() {
    uclient_case(&["-t"], 1).await;
}

#[tokio::test]
async fn uclient_udp_send_indications() {
    uclient_case(&["-s"], 1).await;
}

/// Two engine threads sharing the port (SO_REUSEPORT): pairs of clients
/// that land on different shards relay through the kernel.
#[tokio::test]
async fn uclient_udp_two_engine_threads() {
    uclient_case(&[], 2).await;
}

#[tokio::test]
async fn uclient_tcp_two_engine_threads() {
    uclient_case(&["-t"], 2).await;
}

#[tokio::test]
async fn stunclient_gets_mapped_address() {
    let Some(tool) = coturn_tool("turnutils_stunclient") else {
        return;
    };
    let server = start(config()).await;
    let port = server.udp_addrs()[0].port();
    let args = vec!["-p".to_string(), port.to_string(), "127.0.0.1".to_string()];
    let out = run_tool(&tool, &args, Duration::from_secs(20)).await;
    assert!(
        out.contains("UDP reflexive addr: 127.0.0.1:"),
        "stunclient output:\n{out}"
    );
    server.shutdown().await;
}

/// TURN over TLS (rustls, ring) with coturn's client in secure TCP mode.
#[tokio::test]
async fn uclient_tls_client_to_client() {
    let Some(tool) = coturn_tool("turnutils_uclient") else {
        return;
    };
    if !std::path::Path::new("/usr/bin/openssl").exists() {
        eprintln!("\n*** SKIPPING TLS test: /usr/bin/openssl not found ***\n");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) =
        crate::common::self_signed_cert(dir.path()).expect("openssl makes a certificate");
    let mut cfg = config();
    cfg.user_quota = 0;
    cfg.legacy_channel_numbers = true;
    cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_cert = Some(cert);
    cfg.tls_key = Some(key);
    let server = start(cfg).await;
    let port = server.tls_addrs()[0].port();
    let mut args: Vec<String> = Vec::new();
    for a in [
        "-t",
        "-S",
        "-p",
        &port.to_string(),
        "-u",
        "agent",
        "-W",
        SECRET,
        "-X",
        "-y",
        "-c",
        "-m",
        "2",
        "-n",
        "50",
        "-l",
        "170",
        "127.0.0.1",
    ] {
        args.push(a.to_string());
    }
    let out = run_tool(&tool, &args, Duration::from_secs(60)).await;
    assert_eq!(lost_packets(&out), Some(0), "uclient TLS output:\n{out}");
    assert!(server.stats().relayed_packets >= 200);
    server.shutdown().await;
}
