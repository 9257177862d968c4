//! An in-memory network for the core's tests: sans-IO `rtc` clients (the same library as
//! the engine, with its default codecs and interceptors) answer the engine's offers,
//! publish synthetic Opus and VP8, and exchange packets with the engine through a loop
//! that can drop or inject packets. Time is simulated: no sockets, no sleeps.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::RTCRtpSenderId;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::{Command, Engine, EngineConfig, Event, PT_OPUS, PT_VP8, Transmit};
use crate::domain::{Role, Seat};

pub const ENGINE: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    5000,
);
pub const ENGINE_TCP: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)),
    5001,
);
pub const CALL: &str = "call";

pub fn engine(max_bitrate_bps: u64) -> Engine {
    Engine::new(EngineConfig {
        local_addr: ENGINE,
        announce: ENGINE,
        max_participants: 50,
        max_per_call: 12,
        announce_tcp: Some(ENGINE_TCP),
        max_bitrate_bps,
    })
}

/// What a client got.
#[derive(Default, Debug)]
pub struct Got {
    /// track id (`{publisher}-{kind}`) → sequence numbers received, in order.
    pub rtp: HashMap<String, Vec<u16>>,
    pub plis: u64,
    pub firs: u64,
    pub nacks: u64,
    pub rembs: Vec<u64>,
}

pub struct Client {
    pub id: String,
    pub addr: SocketAddr,
    pub pc: RTCPeerConnection,
    senders: Option<(RTCRtpSenderId, RTCRtpSenderId)>,
    ssrcs: (u32, u32),
    seq: u16,
    pub got: Got,
}

fn track(id: &str, kind: RtpCodecKind, ssrc: u32) -> MediaStreamTrack {
    let (mime, rate, ch, fmtp) = match kind {
        RtpCodecKind::Audio => ("audio/opus", 48000, 2, "minptime=10;useinbandfec=1"),
        _ => ("video/VP8", 90000, 0, ""),
    };
    MediaStreamTrack::new(
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
    )
}

impl Client {
    fn new(id: &str, n: u8, now: Instant) -> Client {
        let mut media = MediaEngine::default();
        media.register_default_codecs().expect("codecs");
        let registry = register_default_interceptors(rtc::interceptor::Registry::new(), &mut media)
            .expect("interceptors")
            .with(
                rtc::interceptor::Slot::Custom(crate::media::tap::SLOT),
                crate::media::tap::FeedbackTap::with_nacks(),
            );
        let settings = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .build();
        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .build(now)
            .expect("client pc");
        Client {
            id: id.to_owned(),
            addr: SocketAddr::from(([10, 0, 1, n], 6000)),
            pc,
            senders: None,
            ssrcs: (rand::random(), rand::random()),
            seq: 0,
            got: Got::default(),
        }
    }

    fn answer(&mut self, offer: String, now: Instant) -> String {
        let offer = RTCSessionDescription::offer(offer).expect("offer");
        self.pc
            .set_remote_description(now, offer)
            .expect("remote offer");
        if self.senders.is_none() {
            let a = self
                .pc
                .add_track(track(&self.id, RtpCodecKind::Audio, self.ssrcs.0))
                .expect("audio");
            let v = self
                .pc
                .add_track(track(&self.id, RtpCodecKind::Video, self.ssrcs.1))
                .expect("video");
            self.senders = Some((a, v));
            let host = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: "udp".to_owned(),
                    address: self.addr.ip().to_string(),
                    port: self.addr.port(),
                    component: 1,
                    ..Default::default()
                },
                ..Default::default()
            }
            .new_candidate_host()
            .expect("candidate");
            let init = RTCIceCandidate::from(&host).to_json().expect("json");
            self.pc.add_local_candidate(init).expect("local candidate");
        }
        let answer = self.pc.create_answer(None).expect("answer");
        self.pc
            .set_local_description(now, answer)
            .expect("local answer");
        self.pc.local_description().expect("sdp").sdp
    }

    /// Sends one audio packet and one video packet of `video_size` bytes.
    pub fn send(&mut self, video_size: usize, now: Instant) {
        let Some((a, v)) = self.senders else { return };
        self.seq = self.seq.wrapping_add(1);
        for (sender, ssrc, pt, payload) in [
            (a, self.ssrcs.0, PT_OPUS, vec![0xF8u8; 60]),
            (v, self.ssrcs.1, PT_VP8, {
                let mut p = vec![0x10u8, 0x00, 0x9d, 0x01, 0x2a];
                p.resize(video_size.max(5), 0x55);
                p
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
            if let Some(mut s) = self.pc.rtp_sender(sender) {
                let _ = s.write_rtp(now, packet);
            }
        }
    }

    /// Sends RTCP about the stream received on track `track_id` (a subscriber's feedback).
    pub fn feedback(&mut self, track_id: &str, fir: bool, remb_bps: Option<u64>, now: Instant) {
        let receivers: Vec<_> = self.pc.get_receivers().collect();
        for id in receivers {
            let Some(mut r) = self.pc.rtp_receiver(id) else {
                continue;
            };
            if r.track().track_id() != track_id {
                continue;
            }
            let Some(ssrc) = r.track().ssrcs().next() else {
                continue;
            };
            let mut packets: Vec<Box<dyn rtc::rtcp::Packet>> = vec![if fir {
                Box::new(FullIntraRequest {
                    sender_ssrc: 7,
                    media_ssrc: 0,
                    fir: vec![FirEntry {
                        ssrc,
                        sequence_number: 1,
                    }],
                })
            } else {
                Box::new(PictureLossIndication {
                    sender_ssrc: 7,
                    media_ssrc: ssrc,
                })
            }];
            if let Some(bps) = remb_bps {
                packets = vec![Box::new(ReceiverEstimatedMaximumBitrate {
                    sender_ssrc: 7,
                    bitrate: bps as f32,
                    ssrcs: vec![ssrc],
                })];
            }
            r.write_rtcp(now, packets).expect("rtcp");
        }
    }

    fn drain(&mut self) {
        while self.pc.poll_event().is_some() {}
        while let Some(m) = self.pc.poll_read() {
            match m.message {
                RTCMessage::RtpPacket(track, p) => self
                    .got
                    .rtp
                    .entry(track)
                    .or_default()
                    .push(p.header.sequence_number),
                RTCMessage::RtcpPacket(_, packets) => {
                    for p in packets {
                        let any = p.as_any();
                        if any.is::<PictureLossIndication>() {
                            self.got.plis += 1;
                        } else if any.is::<FullIntraRequest>() {
                            self.got.firs += 1;
                        } else if any.is::<rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack>() {
                            self.got.nacks += 1;
                        } else if let Some(r) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>() {
                            self.got.rembs.push(r.bitrate as u64);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Sequence numbers received of `publisher`'s `kind` ("audio" | "video").
    pub fn seqs(&self, publisher: &str, kind: &str) -> &[u16] {
        self.got
            .rtp
            .get(&format!("{publisher}-{kind}"))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Decides a packet's fate on the wire: `true` drops it.
pub type Filter = Box<dyn FnMut(Direction, &[u8]) -> bool>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Engine → client `addr`.
    Down(SocketAddr),
    /// Client `addr` → engine.
    Up(SocketAddr),
}

pub struct Net {
    pub engine: Engine,
    pub clients: Vec<Client>,
    pub now: Instant,
    pub filter: Option<Filter>,
    pub dropped: u64,
}

/// Whether an SRTP/SRTCP packet is RTP (RFC 5761: RTCP packet types 192..=223).
pub fn is_rtp(p: &[u8]) -> bool {
    p.len() > 1 && (128..=191).contains(&p[0]) && !(192..=223).contains(&p[1])
}

impl Net {
    pub fn new(max_bitrate_bps: u64) -> Net {
        Net {
            engine: engine(max_bitrate_bps),
            clients: Vec::new(),
            now: Instant::now(),
            filter: None,
            dropped: 0,
        }
    }

    pub fn join(&mut self, id: &str, role: Role) {
        let n = u8::try_from(self.clients.len() + 2).expect("few clients");
        self.clients.push(Client::new(id, n, self.now));
        self.engine
            .handle_command(
                Command::Join {
                    call: CALL.into(),
                    participant: id.into(),
                    seat: Seat::new(role, None),
                },
                self.now,
            )
            .expect("join");
    }

    pub fn client(&mut self, id: &str) -> &mut Client {
        self.clients
            .iter_mut()
            .find(|c| c.id == id)
            .expect("client")
    }

    /// Moves packets and signaling until nothing is left to move (bounded).
    pub fn settle(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            while let Some(ev) = self.engine.poll_event() {
                if let Event::Offer {
                    participant, sdp, ..
                } = ev
                {
                    let now = self.now;
                    let answer = self.client(&participant).answer(sdp, now);
                    self.engine
                        .handle_command(
                            Command::Answer {
                                call: CALL.into(),
                                participant,
                                sdp: answer,
                            },
                            now,
                        )
                        .expect("answer");
                }
                moved = true;
            }
            while let Some(t) = self.engine.poll_transmit() {
                moved = true;
                self.deliver_down(t);
            }
            for i in 0..self.clients.len() {
                while let Some(t) = self.clients[i].pc.poll_write() {
                    moved = true;
                    let from = self.clients[i].addr;
                    if let Some(f) = self.filter.as_mut()
                        && f(Direction::Up(from), &t.message)
                    {
                        self.dropped += 1;
                        continue;
                    }
                    self.engine.handle_packet(from, false, &t.message, self.now);
                }
                self.clients[i].drain();
            }
            if !moved {
                return;
            }
        }
    }

    fn deliver_down(&mut self, t: Transmit) {
        if let Some(f) = self.filter.as_mut()
            && f(Direction::Down(t.to), &t.data)
        {
            self.dropped += 1;
            return;
        }
        let now = self.now;
        if let Some(c) = self.clients.iter_mut().find(|c| c.addr == t.to) {
            let msg = TaggedBytesMut {
                now,
                transport: TransportContext {
                    local_addr: c.addr,
                    peer_addr: ENGINE,
                    ecn: None,
                    transport_protocol: TransportProtocol::UDP,
                },
                message: t.data,
            };
            let _ = c.pc.handle_read(msg);
        }
    }

    /// Advances the clock by `dt`, running every timer that falls due.
    pub fn advance(&mut self, dt: Duration) {
        self.now += dt;
        let now = self.now;
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        for c in &mut self.clients {
            if c.pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = c.pc.handle_timeout(now);
            }
        }
        self.settle();
    }

    /// Runs `dur` in 20 ms steps, every client sending audio and `video_size` video.
    pub fn run(&mut self, dur: Duration, video_size: usize) {
        self.run_with(dur, |_| video_size);
    }

    /// As `run`, with each client's video size chosen by its id.
    pub fn run_with(&mut self, dur: Duration, video_size: impl Fn(&str) -> usize) {
        let end = self.now + dur;
        while self.now < end {
            let now = self.now;
            for c in &mut self.clients {
                let size = video_size(&c.id);
                c.send(size, now);
            }
            self.settle();
            self.advance(Duration::from_millis(20));
        }
    }
}
