//! Participants of routed-call tests without a browser: webrtc-rs 0.21 peers that answer
//! the engine's offers, publish synthetic Opus and VP8 RTP and count what they receive
//! per publisher (the engine names each forwarded stream after its publisher).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCPeerConnectionState, RTCSessionDescription, SettingEngineBuilder,
};

/// (publisher stream id, "audio" | "video") → packets received.
pub type Counts = Arc<Mutex<HashMap<(String, &'static str), u64>>>;

struct Handler {
    gathered: mpsc::Sender<()>,
    connected: mpsc::Sender<()>,
    counts: Counts,
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
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let counts = self.counts.clone();
        tokio::spawn(async move {
            let stream = track.stream_id().await;
            let kind = match track.kind().await {
                RtpCodecKind::Video => "video",
                _ => "audio",
            };
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(_) => {
                        if let Ok(mut c) = counts.lock() {
                            *c.entry((stream.clone(), kind)).or_default() += 1;
                        }
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

pub struct Participant {
    pub pc: Arc<dyn PeerConnection>,
    gathered: mpsc::Receiver<()>,
    pub _connected: mpsc::Receiver<()>,
    pub counts: Counts,
    audio: Arc<TrackLocalStaticRTP>,
    video: Arc<TrackLocalStaticRTP>,
    ssrcs: (u32, u32),
    tracks_added: bool,
    tcp_only: bool,
    seq: u16,
    /// Drop every n-th packet before it is sent (a lossy uplink).
    pub drop_every: Option<u16>,
    /// Payload bytes of each synthetic (audio, video) packet.
    pub payload: (usize, usize),
}

fn local_track(
    id: &str,
    kind: RtpCodecKind,
    mime: &str,
    rate: u32,
    ch: u16,
    fmtp: &str,
) -> (TrackLocalStaticRTP, u32) {
    let ssrc = rand::random::<u32>();
    let track = TrackLocalStaticRTP::new(MediaStreamTrack::new(
        id.to_owned(),
        format!("{id}-{kind}"),
        format!("{id}-{kind}"),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: RTCRtpCodec {
                mime_type: mime.to_owned(),
                clock_rate: rate,
                channels: ch,
                sdp_fmtp_line: fmtp.to_owned(),
                rtcp_feedback: vec![],
            },
            ..Default::default()
        }],
    ));
    (track, ssrc)
}

impl Participant {
    pub async fn new(id: &str) -> Participant {
        Self::build(id, false).await
    }

    /// A participant whose network carries no UDP: ICE-TCP only (active candidates).
    pub async fn tcp_only(id: &str) -> Participant {
        Self::build(id, true).await
    }

    async fn build(id: &str, tcp_only: bool) -> Participant {
        let (udp, tcp) = match tcp_only {
            false => (vec!["127.0.0.1:0".to_string()], vec![]),
            true => (vec![], vec!["127.0.0.1:0".to_string()]),
        };
        let audio = local_track(
            id,
            RtpCodecKind::Audio,
            "audio/opus",
            48000,
            2,
            "minptime=10;useinbandfec=1",
        );
        let video = local_track(id, RtpCodecKind::Video, "video/VP8", 90000, 0, "");
        let (g_tx, gathered) = mpsc::channel(4);
        let (c_tx, connected) = mpsc::channel(4);
        let counts: Counts = Arc::default();
        let handler = Arc::new(Handler {
            gathered: g_tx,
            connected: c_tx,
            counts: counts.clone(),
        });
        let setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let mut media = rtc::peer_connection::configuration::media_engine::MediaEngine::default();
        media.register_default_codecs().expect("codecs");
        let registry = rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors(
            rtc::interceptor::Registry::new(),
            &mut media,
        )
        .expect("interceptors");
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting_engine)
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_handler(handler)
            .with_udp_addrs(udp)
            .with_tcp_addrs(tcp)
            .build()
            .await
            .expect("peer connection");
        Participant {
            pc: Arc::new(pc),
            gathered,
            _connected: connected,
            counts,
            audio: Arc::new(audio.0),
            video: Arc::new(video.0),
            ssrcs: (audio.1, video.1),
            tracks_added: false,
            tcp_only,
            seq: 0,
            drop_every: None,
            payload: (60, 900),
        }
    }

    /// Answers an offer of the engine (adding this participant's tracks the first time)
    /// and returns the answer with all candidates in it.
    pub async fn answer(&mut self, offer: &str) -> String {
        let offer_sdp = offer.to_owned();
        let offer = RTCSessionDescription::offer(offer_sdp.clone()).expect("offer");
        self.pc
            .set_remote_description(offer)
            .await
            .expect("remote offer");
        // This client dials TCP only for trickled passive candidates, not for those in the
        // offer: hand it the engine's ICE-TCP candidate (a browser needs no such help).
        if self.tcp_only && !self.tracks_added {
            for line in offer_sdp.lines().filter(|l| l.contains("tcptype passive")) {
                let candidate = line.trim_start_matches("a=").to_owned();
                self.pc
                    .add_ice_candidate(webrtc::peer_connection::RTCIceCandidateInit {
                        candidate,
                        sdp_mid: Some("0".into()),
                        sdp_mline_index: Some(0),
                        ..Default::default()
                    })
                    .await
                    .expect("tcp candidate");
            }
        }
        if !self.tracks_added {
            self.pc
                .add_track(self.audio.clone() as Arc<dyn TrackLocal>)
                .await
                .expect("audio track");
            self.pc
                .add_track(self.video.clone() as Arc<dyn TrackLocal>)
                .await
                .expect("video track");
            self.tracks_added = true;
        }
        let answer = self.pc.create_answer(None).await.expect("answer");
        let first = self.pc.local_description().await.is_none();
        self.pc
            .set_local_description(answer)
            .await
            .expect("local answer");
        if first {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.recv()).await;
        }
        self.pc.local_description().await.expect("answer sdp").sdp
    }

    /// Sends one synthetic audio and one video packet.
    pub async fn send(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        if self
            .drop_every
            .is_some_and(|n| n > 0 && self.seq.is_multiple_of(n))
        {
            return;
        }
        for (track, ssrc, pt, payload) in [
            (
                &self.audio,
                self.ssrcs.0,
                111u8,
                vec![0xF8u8; self.payload.0],
            ),
            // A VP8 payload descriptor (S bit) and a key-frame-looking header.
            (&self.video, self.ssrcs.1, 96u8, {
                let mut v = vec![0x10u8, 0x00, 0x9d, 0x01, 0x2a];
                v.resize(self.payload.1.max(5), 0x55);
                v
            }),
        ] {
            let packet = rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    version: 2,
                    marker: true,
                    payload_type: pt,
                    ssrc,
                    sequence_number: self.seq,
                    timestamp: u32::from(self.seq) * 3000,
                    ..Default::default()
                },
                payload: payload.into(),
            };
            let _ = track.write_rtp(packet).await;
        }
    }

    /// Sends one RTP packet of real media on the audio or the video track.
    pub async fn send_rtp(&self, video: bool, seq: u16, ts: u32, marker: bool, payload: Vec<u8>) {
        let (track, ssrc, pt) = if video {
            (&self.video, self.ssrcs.1, 96u8)
        } else {
            (&self.audio, self.ssrcs.0, 111u8)
        };
        let packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                marker,
                payload_type: pt,
                ssrc,
                sequence_number: seq,
                timestamp: ts,
                ..Default::default()
            },
            payload: payload.into(),
        };
        let _ = track.write_rtp(packet).await;
    }

    pub fn received(&self, from: &str, kind: &'static str) -> u64 {
        self.counts
            .lock()
            .map(|c| c.get(&(from.to_owned(), kind)).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Every publisher this participant has received anything from.
    pub fn sources(&self) -> Vec<(String, &'static str)> {
        let mut v: Vec<_> = self
            .counts
            .lock()
            .map(|c| c.keys().cloned().collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}
