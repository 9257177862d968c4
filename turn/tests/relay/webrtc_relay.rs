//! Two WebRTC peers (webrtc-rs 0.21, relay-only ICE) connect through the
//! bundled TURN server and exchange data-channel messages both ways.

use crate::common::{SECRET, config, start, unix_now};
use sightline_turn::credentials::rest_credentials;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCIceServer, RTCIceTransportPolicy, RTCPeerConnectionState,
    SettingEngineBuilder,
};

struct Handler {
    gathered: mpsc::Sender<()>,
    connected: mpsc::Sender<()>,
    messages: mpsc::Sender<String>,
    echo: bool,
}

async fn pump(
    dc: Arc<dyn DataChannel>,
    messages: mpsc::Sender<String>,
    opened: Option<mpsc::Sender<()>>,
    echo: bool,
) {
    while let Some(event) = dc.poll().await {
        match event {
            DataChannelEvent::OnOpen => {
                if let Some(o) = &opened {
                    let _ = o.try_send(());
                }
            }
            DataChannelEvent::OnMessage(msg) => {
                let text = String::from_utf8_lossy(&msg.data).into_owned();
                if echo {
                    let _ = dc.send_text(&format!("echo:{text}")).await;
                }
                let _ = messages.try_send(text);
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.try_send(());
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if state == RTCPeerConnectionState::Connected {
            let _ = self.connected.try_send(());
        }
    }
    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        tokio::spawn(pump(dc, self.messages.clone(), None, self.echo));
    }
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathered: mpsc::Receiver<()>,
    connected: mpsc::Receiver<()>,
    messages: mpsc::Receiver<String>,
    msg_tx: mpsc::Sender<String>,
}

async fn peer(turn_url: &str, id: &str, echo: bool) -> Peer {
    let (user, pass) =
        rest_credentials(SECRET.as_bytes(), id, Duration::from_secs(600), unix_now());
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(vec![RTCIceServer {
            urls: vec![turn_url.to_string()],
            username: user,
            credential: pass,
        }])
        .with_ice_transport_policy(RTCIceTransportPolicy::Relay)
        .build();
    let (g_tx, gathered) = mpsc::channel(4);
    let (c_tx, connected) = mpsc::channel(4);
    let (m_tx, messages) = mpsc::channel(64);
    let handler = Arc::new(Handler {
        gathered: g_tx,
        connected: c_tx,
        messages: m_tx.clone(),
        echo,
    });
    // No mDNS: hermetic, and it works in a loopback-only network namespace.
    let setting_engine = SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    let pc = PeerConnectionBuilder::new()
        .with_setting_engine(setting_engine)
        .with_configuration(config)
        .with_handler(handler)
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await
        .expect("peer connection");
    Peer {
        pc: Arc::new(pc),
        gathered,
        connected,
        messages,
        msg_tx: m_tx,
    }
}

async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relay_only_peers_exchange_data_channel_messages() {
    let server = start(config()).await;
    let url = format!("turn:{}?transport=udp", server.udp_addrs()[0]);
    let mut offerer = peer(&url, "agent", false).await;
    let mut answerer = peer(&url, "customer", true).await;

    let dc = offerer
        .pc
        .create_data_channel("chat", None)
        .await
        .expect("data channel");
    let (open_tx, mut open_rx) = mpsc::channel(4);
    tokio::spawn(pump(
        dc.clone(),
        offerer.msg_tx.clone(),
        Some(open_tx),
        false,
    ));

    let offer = offerer.pc.create_offer(None).await.expect("offer");
    offerer
        .pc
        .set_local_description(offer)
        .await
        .expect("set local offer");
    within(10, "offerer gathering", offerer.gathered.recv()).await;
    let offer_sdp = offerer.pc.local_description().await.expect("offer sdp");
    assert!(
        offer_sdp.sdp.contains("typ relay"),
        "offer has relay candidates:\n{}",
        offer_sdp.sdp
    );

    answerer
        .pc
        .set_remote_description(offer_sdp)
        .await
        .expect("remote offer");
    let answer = answerer.pc.create_answer(None).await.expect("answer");
    answerer
        .pc
        .set_local_description(answer)
        .await
        .expect("set local answer");
    within(10, "answerer gathering", answerer.gathered.recv()).await;
    let answer_sdp = answerer.pc.local_description().await.expect("answer sdp");
    offerer
        .pc
        .set_remote_description(answer_sdp)
        .await
        .expect("remote answer");

    within(20, "offerer connected", offerer.connected.recv()).await;
    within(20, "answerer connected", answerer.connected.recv()).await;
    within(20, "data channel open", open_rx.recv()).await;

    for i in 0..5 {
        dc.send_text(&format!("hello {i}")).await.expect("send");
        let got = within(10, "message at answerer", answerer.messages.recv()).await;
        assert_eq!(got.as_deref(), Some(format!("hello {i}").as_str()));
        let echo = within(10, "echo at offerer", offerer.messages.recv()).await;
        assert_eq!(echo.as_deref(), Some(format!("echo:hello {i}").as_str()));
    }
    let st = server.stats();
    assert!(st.allocations >= 2, "{st:?}");
    assert!(st.relayed_packets >= 20, "{st:?}");
    let _ = offerer.pc.close().await;
    let _ = answerer.pc.close().await;
    server.shutdown().await;
}
