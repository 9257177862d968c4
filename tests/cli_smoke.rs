//! Starts the actual binary and talks to it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sightline");

/// A child process that is killed when the test ends, even by a panic.
struct KillOnDrop(Child);

impl std::ops::Deref for KillOnDrop {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn help_explains_every_option() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--data-dir",
        "--public-url",
        "--config",
        "--database-url",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}

#[test]
fn bad_configuration_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "ftp://nope",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("public_url"), "{err}");
}

#[tokio::test]
async fn binary_serves_healthz_and_api_key_create_works() {
    let dir = tempfile::tempdir().unwrap();
    let created = Command::new(BIN)
        .args(["api-key", "create", "--name", "smoke", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("sl_"), "{key}");

    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--turn-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("Sightline is serving on ") {
                let url = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let _ = tx.send(url);
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("binary prints its URL");
    sightline::install_crypto_provider();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let health = loop {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await {
            break r;
        }
        assert!(Instant::now() < deadline, "healthz never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(health.status(), 200);
    // The key made by the CLI works against the server.
    let r = http
        .get(format!("{url}/api/v1/sessions"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // SIGTERM → graceful exit.
    unsafe_kill(child.id(), 15);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Without a terminal on stdout, the first API key goes to a 0600 file in the data
/// directory; neither output stream carries it, and the log names the file.
#[tokio::test]
async fn first_key_goes_to_a_private_file_when_stdout_is_not_a_terminal() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--no-turn",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map(KillOnDrop)
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let err_text = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut out_text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !out_text.contains("Sightline is serving on") {
        assert!(Instant::now() < deadline, "no serving line: {out_text}");
        let mut line = String::new();
        if stdout.read_line(&mut line).unwrap() == 0 {
            break;
        }
        out_text.push_str(&line);
    }
    let path = dir.path().join("bootstrap-api-key");
    let key = std::fs::read_to_string(&path).expect("key file written");
    let key = key.trim();
    assert!(key.starts_with("sl_"), "{key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
    }
    unsafe_kill(child.id(), 15);
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    out_text.push_str(&rest);
    let err_text = err_text.join().unwrap();
    assert!(!out_text.contains(key), "key on stdout");
    assert!(!err_text.contains(key), "key in the logs");
    assert!(
        err_text.contains("bootstrap-api-key"),
        "log names the file:\n{err_text}"
    );
}

fn unsafe_kill(pid: u32, sig: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

#[test]
fn turn_subcommand_documents_its_flags() {
    let out = Command::new(BIN).args(["turn", "--help"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--tls-listen",
        "--tls-cert",
        "--tls-key",
        "--relay-ip",
        "--relay-ports",
        "--external-ip",
        "--realm",
        "--secret",
        "--allow-peer",
        "--deny-peer",
        "--user-quota",
        "--max-bps",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}
