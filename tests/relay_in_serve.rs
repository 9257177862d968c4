//! The bundled TURN server starts inside the app and answers STUN on the port it reports.

mod support;

use std::time::Duration;

use serde_json::json;
use support::TestApp;

#[tokio::test]
async fn serve_runs_the_bundled_turn_server() {
    let app = TestApp::spawn().await;
    let relay = app.app.state().relay.clone().expect("TURN runs by default");
    let udp = relay.server.udp_addrs()[0];
    assert!(
        relay
            .urls
            .iter()
            .any(|u| u == &format!("turn:127.0.0.1:{}?transport=udp", udp.port())),
        "{:?}",
        relay.urls
    );
    assert!(
        relay.urls.iter().any(|u| u.ends_with("?transport=tcp")),
        "{:?}",
        relay.urls
    );

    // A STUN Binding request answered with a success response carrying our transaction id.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut req = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    let txid: [u8; 12] = *b"sightline-tx";
    req.extend_from_slice(&txid);
    let mut buf = [0u8; 1500];
    let mut answered = None;
    for _ in 0..20 {
        sock.send_to(&req, udp).await.unwrap();
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(250), sock.recv_from(&mut buf)).await
        {
            answered = Some(n);
            break;
        }
    }
    let n = answered.expect("binding answered");
    assert!(n >= 20);
    assert_eq!(&buf[0..2], &[0x01, 0x01], "binding success response");
    assert_eq!(&buf[8..20], &txid);

    let metrics = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("sightline_turn{counter=\"allocations\"} 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn turn_can_be_switched_off() {
    let app = TestApp::spawn_with(|c| c.turn.enabled = false).await;
    assert!(app.app.state().relay.is_none());
}

mod turn_client {
    //! A minimal TURN client over UDP on loopback: long-term credentials, Allocate and
    //! Refresh, bounded retransmissions.
    use std::net::SocketAddr;
    use std::time::Duration;

    use sightline_turn::credentials::long_term_key;
    use sightline_turn::stun::{self, Builder, Class, attr, method};
    use tokio::net::UdpSocket;

    pub struct Client {
        sock: UdpSocket,
        server: SocketAddr,
        user: String,
        pass: String,
        realm: String,
        nonce: Vec<u8>,
        n: u32,
    }

    /// `(class, error code)` of an answer.
    pub type Answer = (Class, Option<u16>);

    impl Client {
        pub async fn new(server: SocketAddr, user: &str, pass: &str) -> Self {
            Self {
                sock: UdpSocket::bind("127.0.0.1:0").await.expect("bind"),
                server,
                user: user.to_owned(),
                pass: pass.to_owned(),
                realm: "sightline".to_owned(),
                nonce: Vec::new(),
                n: 0,
            }
        }

        fn build(&mut self, meth: u16, auth: bool, lifetime: Option<u32>) -> Vec<u8> {
            self.n += 1;
            let mut tid = [7u8; 12];
            tid[..4].copy_from_slice(&self.n.to_be_bytes());
            let mut buf = Vec::new();
            let mut b = Builder::new(&mut buf, meth, Class::Request, &tid);
            if meth == method::ALLOCATE {
                b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
            }
            if let Some(l) = lifetime {
                b.u32_attr(attr::LIFETIME, l);
            }
            if auth {
                let key = long_term_key(
                    self.user.as_bytes(),
                    self.realm.as_bytes(),
                    self.pass.as_bytes(),
                );
                b.attr(attr::USERNAME, self.user.as_bytes())
                    .attr(attr::REALM, self.realm.as_bytes())
                    .attr(attr::NONCE, &self.nonce)
                    .integrity(&key)
                    .fingerprint();
            }
            buf
        }

        async fn transact(&self, req: &[u8]) -> (Answer, Option<Vec<u8>>) {
            let mut buf = vec![0u8; 2048];
            for _ in 0..10 {
                self.sock.send_to(req, self.server).await.expect("send");
                let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
                while let Ok(Ok((n, _))) =
                    tokio::time::timeout_at(deadline, self.sock.recv_from(&mut buf)).await
                {
                    let Ok(m) = stun::parse(&buf[..n]) else {
                        continue;
                    };
                    if m.tid[..] != req[8..20] {
                        continue;
                    }
                    let code = m
                        .attrs()
                        .find(|(t, v, _)| *t == attr::ERROR_CODE && v.len() >= 4)
                        .map(|(_, v, _)| u16::from(v[2]) * 100 + u16::from(v[3]));
                    return ((m.class, code), m.nonce.map(<[u8]>::to_vec));
                }
            }
            panic!("no answer from the bundled TURN server");
        }

        /// An authenticated request (getting a nonce first when needed).
        pub async fn request(&mut self, meth: u16, lifetime: Option<u32>) -> Answer {
            if self.nonce.is_empty() {
                let r = self.build(meth, false, lifetime);
                let (answer, nonce) = self.transact(&r).await;
                assert_eq!(answer.1, Some(401), "challenge expected");
                self.nonce = nonce.expect("nonce in the challenge");
            }
            let r = self.build(meth, true, lifetime);
            self.transact(&r).await.0
        }

        pub async fn allocate(&mut self) -> Answer {
            self.request(method::ALLOCATE, None).await
        }

        pub async fn refresh(&mut self) -> Answer {
            self.request(method::REFRESH, Some(600)).await
        }
    }
}

/// `(username, password)` of the TURN credentials a link's connect call hands out.
async fn turn_credentials(app: &TestApp, join_url: &str) -> (String, String) {
    let token = join_url.rsplit('/').next().expect("token");
    let r = app
        .http
        .post(app.url(&format!("/api/v1/join/{token}/connect")))
        .send()
        .await
        .expect("connect");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    let turn = v["ice_servers"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["username"].is_string()))
        .expect("TURN credentials in ice_servers");
    (
        turn["username"].as_str().unwrap_or_default().to_owned(),
        turn["credential"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Allocates until the server answers 403 (bounded: 5 s).
async fn refused_soon(c: &mut turn_client::Client, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let answer = c.allocate().await;
        if answer == (sightline_turn::stun::Class::Error, Some(403)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not refused {what}: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test]
async fn turn_credentials_die_with_their_session_and_their_link() {
    use sightline_turn::stun::Class;
    use turn_client::Client;

    let app = TestApp::spawn().await;
    let udp = app
        .app
        .state()
        .relay
        .clone()
        .expect("TURN runs")
        .server
        .udp_addrs()[0];

    // Default lifetime is short (minutes, not hours).
    let ended = app.create_session("turn-ended").await;
    let (user, pass) = turn_credentials(&app, ended["agent_url"].as_str().unwrap()).await;
    let expiry: i64 = user.split(':').next().unwrap().parse().unwrap();
    let left = expiry - chrono::Utc::now().timestamp();
    assert!((590..=601).contains(&left), "credentials live {left} s");

    let live = app.create_session("turn-live").await;
    let (live_user, live_pass) = turn_credentials(&app, live["agent_url"].as_str().unwrap()).await;

    // Before the end, both allocate.
    let mut before = Client::new(udp, &user, &pass).await;
    assert_eq!(before.allocate().await, (Class::Success, None));

    let id = ended["id"].as_str().unwrap();
    let r = app
        .post(&format!("/api/v1/sessions/{id}/end"), &json!({}))
        .await;
    assert_eq!(r.status(), 200);

    // After the end: a new Allocate and a Refresh of the existing allocation are refused.
    let mut after = Client::new(udp, &user, &pass).await;
    refused_soon(&mut after, "after the end").await;
    assert_eq!(before.refresh().await, (Class::Error, Some(403)));

    // A live session's credentials still allocate.
    let mut other = Client::new(udp, &live_user, &live_pass).await;
    assert_eq!(other.allocate().await, (Class::Success, None));

    // Replacing the customer link: the old link's credentials die, the new link's work.
    let (old_user, old_pass) = turn_credentials(&app, live["customer_url"].as_str().unwrap()).await;
    let issued: i64 = old_user.split(':').next().unwrap().parse().unwrap();
    // Revocation has one-second granularity (the expiry in the username is in seconds):
    // credentials count as older than a replacement made in a later second.
    support::eventually(Duration::from_secs(3), "the next second", || async {
        (chrono::Utc::now().timestamp() + 600 > issued).then_some(())
    })
    .await;
    let lid = live["id"].as_str().unwrap();
    let rotated: serde_json::Value = app
        .post(&format!("/api/v1/sessions/{lid}/customer-link"), &json!({}))
        .await
        .json()
        .await
        .unwrap();
    let mut old = Client::new(udp, &old_user, &old_pass).await;
    refused_soon(&mut old, "with the old link").await;
    let (new_user, new_pass) =
        turn_credentials(&app, rotated["customer_url"].as_str().unwrap()).await;
    let mut new = Client::new(udp, &new_user, &new_pass).await;
    assert_eq!(new.allocate().await, (Class::Success, None));
}

#[tokio::test]
async fn turn_revocations_are_loaded_at_start() {
    use sightline_turn::stun::Class;
    use turn_client::Client;

    let app = TestApp::spawn().await;
    let s = app.create_session("turn-restart").await;
    let (user, pass) = turn_credentials(&app, s["agent_url"].as_str().unwrap()).await;
    let id = s["id"].as_str().unwrap();
    app.post(&format!("/api/v1/sessions/{id}/end"), &json!({}))
        .await;
    // Restart on the same data directory: the ended session's credentials stay refused.
    let TestApp {
        app: running, dir, ..
    } = app;
    running.shutdown().await.expect("shutdown");
    let mut config = support::config_for(dir.path());
    config.bootstrap_api_key = false;
    let again = sightline::Application::build(config)
        .await
        .expect("restart");
    let udp = again
        .state()
        .relay
        .clone()
        .expect("TURN runs")
        .server
        .udp_addrs()[0];
    let mut c = Client::new(udp, &user, &pass).await;
    assert_eq!(c.allocate().await, (Class::Error, Some(403)));
    again.shutdown().await.expect("shutdown");
}
