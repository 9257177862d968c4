//! The bundled TURN server starts inside the app and answers STUN on the port it reports.

mod support;

use std::time::Duration;

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
