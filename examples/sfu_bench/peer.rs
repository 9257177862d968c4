//! The bench's WebRTC clients (webrtc-rs): a publisher that stamps every RTP payload with
//! its index and send time, and subscribers that read the stamp back and record loss and
//! one-way latency. Both servers forward payloads unchanged, and everything runs in this
//! one process, so one monotonic clock serves both ends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// Marks a bench payload: `SLBN`, then the packet's index and its send time.
const MAGIC: [u8; 4] = *b"SLBN";
/// Where the stamp starts (after a VP8 payload descriptor and key-frame-looking header).
const STAMP_AT: usize = 8;

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    base().elapsed().as_micros() as u64
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Audio,
    Video,
}

/// What one subscriber received: per kind, which indices arrived, and (index, latency).
#[derive(Default)]
pub struct Received {
    pub first_video: Option<Instant>,
    pub seen: [Vec<bool>; 2],
    pub latency_us: Vec<(Kind, u32, u32)>,
}

pub type Rx = Arc<Mutex<Received>>;

fn record(rx: &Rx, kind: Kind, payload: &[u8]) {
    let Some(stamp) = payload.get(STAMP_AT..STAMP_AT + 16) else {
        return;
    };
    if stamp[..4] != MAGIC {
        return;
    }
    let idx = u32::from_be_bytes([stamp[4], stamp[5], stamp[6], stamp[7]]);
    let mut sent = [0u8; 8];
    sent.copy_from_slice(&stamp[8..16]);
    let lat = now_us().saturating_sub(u64::from_be_bytes(sent));
    let Ok(mut r) = rx.lock() else { return };
    if kind == Kind::Video && r.first_video.is_none() {
        r.first_video = Some(Instant::now());
    }
    let seen = &mut r.seen[kind as usize];
    let i = idx as usize;
    if seen.len() <= i {
        seen.resize(i + 1024, false);
    }
    seen[i] = true;
    r.latency_us
        .push((kind, idx, u32::try_from(lat).unwrap_or(u32::MAX)));
}

struct Handler {
    gathered: mpsc::Sender<()>,
    connected: mpsc::Sender<()>,
    rx: Rx,
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
        let rx = self.rx.clone();
        tokio::spawn(async move {
            let kind = match track.kind().await {
                RtpCodecKind::Video => Kind::Video,
                _ => Kind::Audio,
            };
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => record(&rx, kind, &p.payload),
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }
}

pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    gathered: mpsc::Receiver<()>,
    connected: mpsc::Receiver<()>,
    pub rx: Rx,
    tracks: Option<(Arc<TrackLocalStaticRTP>, Arc<TrackLocalStaticRTP>)>,
    tracks_added: bool,
    pub ssrcs: (u32, u32),
}

fn local_track(kind: RtpCodecKind) -> (TrackLocalStaticRTP, u32) {
    let ssrc = rand::random::<u32>();
    let (mime, rate, ch, fmtp) = match kind {
        RtpCodecKind::Video => ("video/VP8", 90000, 0, ""),
        _ => ("audio/opus", 48000, 2, "minptime=10;useinbandfec=1"),
    };
    let track = TrackLocalStaticRTP::new(MediaStreamTrack::new(
        "bench".to_owned(),
        format!("bench-{kind}"),
        format!("bench-{kind}"),
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

impl Peer {
    /// A peer with one UDP socket on `bind`; `publish` gives it one audio and one video
    /// track, added on first use.
    pub async fn new(publish: bool, bind: std::net::IpAddr) -> anyhow::Result<Peer> {
        let (g_tx, gathered) = mpsc::channel(4);
        let (c_tx, connected) = mpsc::channel(4);
        let rx: Rx = Arc::default();
        let handler = Arc::new(Handler {
            gathered: g_tx,
            connected: c_tx,
            rx: rx.clone(),
        });
        let setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let mut media = rtc::peer_connection::configuration::media_engine::MediaEngine::default();
        media.register_default_codecs()?;
        let registry = rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors(
            rtc::interceptor::Registry::new(),
            &mut media,
        )?;
        let pc = PeerConnectionBuilder::new()
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_setting_engine(setting_engine)
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_handler(handler)
            .with_udp_addrs(vec![std::net::SocketAddr::new(bind, 0).to_string()])
            .build()
            .await?;
        let (tracks, ssrcs) = if publish {
            let (a, sa) = local_track(RtpCodecKind::Audio);
            let (v, sv) = local_track(RtpCodecKind::Video);
            (Some((Arc::new(a), Arc::new(v))), (sa, sv))
        } else {
            (None, (0, 0))
        };
        Ok(Peer {
            pc: Arc::new(pc),
            gathered,
            connected,
            rx,
            tracks,
            tracks_added: false,
            ssrcs,
        })
    }

    async fn add_tracks(&mut self) -> anyhow::Result<()> {
        if let Some((a, v)) = &self.tracks
            && !self.tracks_added
        {
            self.pc.add_track(a.clone() as Arc<dyn TrackLocal>).await?;
            self.pc.add_track(v.clone() as Arc<dyn TrackLocal>).await?;
            self.tracks_added = true;
        }
        Ok(())
    }

    /// The local description once gathering is complete (candidates inside: no trickle).
    async fn local_sdp(&mut self, first: bool) -> anyhow::Result<String> {
        if first {
            let _ = tokio::time::timeout(Duration::from_secs(5), self.gathered.recv()).await;
        }
        Ok(self
            .pc
            .local_description()
            .await
            .ok_or_else(|| anyhow::anyhow!("no local description"))?
            .sdp)
    }

    /// An offer with this peer's tracks (a Janus publisher offers).
    pub async fn offer(&mut self) -> anyhow::Result<String> {
        self.add_tracks().await?;
        let offer = self.pc.create_offer(None).await?;
        let first = self.pc.local_description().await.is_none();
        self.pc.set_local_description(offer).await?;
        self.local_sdp(first).await
    }

    pub async fn set_answer(&self, sdp: &str) -> anyhow::Result<()> {
        self.pc
            .set_remote_description(RTCSessionDescription::answer(sdp.to_owned())?)
            .await?;
        Ok(())
    }

    /// Answers a server's offer (adding this peer's tracks the first time).
    pub async fn answer(&mut self, offer: &str) -> anyhow::Result<String> {
        self.pc
            .set_remote_description(RTCSessionDescription::offer(offer.to_owned())?)
            .await?;
        self.add_tracks().await?;
        let answer = self.pc.create_answer(None).await?;
        let first = self.pc.local_description().await.is_none();
        self.pc.set_local_description(answer).await?;
        self.local_sdp(first).await
    }

    pub async fn wait_connected(&mut self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.connected.recv())
            .await
            .is_ok()
    }

    /// Starts sending: `video_pps` video packets of `video_len` bytes and `audio_pps`
    /// audio packets of `audio_len` bytes a second, until `stop` is set. Returns the
    /// counters of packets sent per kind (their next index).
    pub fn start_sending(&self, load: Load, stop: Arc<std::sync::atomic::AtomicBool>) -> Sent {
        let sent: Sent = Arc::default();
        let Some((audio, video)) = self.tracks.clone() else {
            return sent;
        };
        let ssrcs = self.ssrcs;
        let counters = sent.clone();
        tokio::spawn(async move {
            let tick = Duration::from_micros(1_000_000 / u64::from(load.video_pps.max(1)));
            let audio_every = (load.video_pps / load.audio_pps.max(1)).max(1);
            let mut timer = tokio::time::interval(tick);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n: u32 = 0;
            while !stop.load(Ordering::Relaxed) {
                timer.tick().await;
                let v = counters[1].fetch_add(1, Ordering::Relaxed);
                let _ = video
                    .write_rtp(packet(96, ssrcs.1, v, load.video_len, v * 3000))
                    .await;
                if n.is_multiple_of(audio_every) {
                    let a = counters[0].fetch_add(1, Ordering::Relaxed);
                    let _ = audio
                        .write_rtp(packet(111, ssrcs.0, a, load.audio_len, a * 960))
                        .await;
                }
                n = n.wrapping_add(1);
            }
        });
        sent
    }
}

/// Packets sent so far per kind ([audio, video]); the next packet's index.
pub type Sent = Arc<[AtomicU32; 2]>;

#[derive(Clone, Copy, Debug)]
pub struct Load {
    pub video_pps: u32,
    pub video_len: usize,
    pub audio_pps: u32,
    pub audio_len: usize,
}

fn packet(pt: u8, ssrc: u32, idx: u32, len: usize, ts: u32) -> rtc::rtp::Packet {
    let mut payload = if pt == 96 {
        // VP8 payload descriptor (start of partition) and a key-frame-looking header.
        vec![0x10u8, 0x00, 0x9d, 0x01, 0x2a, 0, 0, 0]
    } else {
        vec![0xF8u8; STAMP_AT]
    };
    payload.extend_from_slice(&MAGIC);
    payload.extend_from_slice(&idx.to_be_bytes());
    payload.extend_from_slice(&now_us().to_be_bytes());
    payload.resize(len.max(payload.len()), 0x55);
    rtc::rtp::Packet {
        header: rtc::rtp::header::Header {
            version: 2,
            marker: true,
            payload_type: pt,
            ssrc,
            sequence_number: idx as u16,
            timestamp: ts,
            ..Default::default()
        },
        payload: payload.into(),
    }
}
