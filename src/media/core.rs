//! The media engine's sans-IO core: commands, datagrams and `now` in; datagrams to send,
//! events for signaling and the next deadline out. No sockets, no clock.
//!
//! Each routed participant has one WebRTC peer connection (webrtc-rs's sans-IO `rtc`
//! crate) terminated here. The engine always makes the offers: every participant gets a
//! receive-only audio and video section (what it publishes) and one send-only section per
//! track of every other participant the role rules let it receive. RTP is forwarded as it
//! came (no transcoding): only the SSRC is rewritten per outgoing stream and header
//! extensions are dropped (they are per hop). Only Opus and VP8 are negotiated, so every
//! participant speaks the same payload types. NACKs are answered and generated per hop by
//! the library's default interceptors; a picture-loss request goes to every video
//! publisher whenever someone starts receiving (a join, a new track, a reconnect).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::RTCPeerConnectionBuilder;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MIME_TYPE_OPUS, MIME_TYPE_VP8, MediaEngine,
};
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters,
    RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::demux::{self, Class};
use super::rules::{self, Kind};
use crate::domain::Seat;

/// Payload types the engine offers (the answerer must use the offerer's numbers).
pub const PT_OPUS: u8 = 111;
pub const PT_VP8: u8 = 96;

/// How often a picture-loss request is repeated after someone starts receiving.
const PLI_REPEATS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(400),
    Duration::from_millis(1500),
];

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The address the engine's UDP socket is bound to (what `handle_datagram` is told).
    pub local_addr: SocketAddr,
    /// The address announced in the engine's ICE candidate (the bound one unless the
    /// socket listens on an unspecified address).
    pub announce: SocketAddr,
    /// Most routed participants on this node, across all calls.
    pub max_participants: usize,
    /// Most participants in one routed call.
    pub max_per_call: usize,
}

/// What signaling asks the engine to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a connection for `participant` in `call`; the engine answers with an offer.
    Join {
        call: String,
        participant: String,
        seat: Seat,
    },
    /// The participant's role or mode changed: forwarding follows at once, tracks are
    /// renegotiated.
    SetSeat {
        call: String,
        participant: String,
        seat: Seat,
    },
    /// Take the participant out: nothing is forwarded to or from it from now on.
    Leave { call: String, participant: String },
    /// The participant's answer to the engine's latest offer.
    Answer {
        call: String,
        participant: String,
        sdp: String,
    },
    /// A trickled ICE candidate of the participant.
    Candidate {
        call: String,
        participant: String,
        candidate: String,
        sdp_mid: Option<String>,
        sdp_mline_index: Option<u16>,
    },
}

/// What the engine tells signaling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Send this offer to the participant (`media_offer`).
    Offer {
        call: String,
        participant: String,
        sdp: String,
    },
    /// The participant's connection to the engine is up.
    Connected { call: String, participant: String },
    /// The participant's connection failed (it may join again).
    Failed { call: String, participant: String },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("this node routes its maximum of {0} participants")]
    NodeFull(usize),
    #[error("a routed call holds at most {0} participants")]
    CallFull(usize),
    #[error("no such routed participant")]
    Unknown,
    #[error("bad session description or candidate: {0}")]
    Sdp(String),
    #[error("media engine: {0}")]
    Internal(String),
}

/// A datagram to send from the engine's socket.
#[derive(Debug)]
pub struct Transmit {
    pub to: SocketAddr,
    pub data: BytesMut,
}

/// Counters for metrics and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_in: u64,
    pub dropped_unknown: u64,
    pub rtp_in: u64,
    /// RTP packets dropped by the role rules (e.g. from a listening supervisor).
    pub rtp_refused: u64,
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub plis_sent: u64,
}

type Key = (String, String);

struct Inbound {
    kind: Kind,
    receiver: RTCRtpReceiverId,
    ssrc: u32,
}

struct Outbound {
    sender: RTCRtpSenderId,
    ssrc: u32,
}

struct Peer {
    seat: Seat,
    pc: RTCPeerConnection,
    ufrag: String,
    addrs: Vec<SocketAddr>,
    inbound: HashMap<String, Inbound>,
    /// (publisher id, kind) → the sender carrying it to this peer.
    outbound: HashMap<(String, Kind), Outbound>,
    awaiting_answer: bool,
    renegotiate: bool,
    offered_once: bool,
    connected: bool,
}

pub struct Engine {
    cfg: EngineConfig,
    peers: HashMap<Key, Peer>,
    by_ufrag: HashMap<String, Key>,
    by_addr: HashMap<SocketAddr, Key>,
    /// call → its participants in join order.
    calls: HashMap<String, Vec<String>>,
    /// call → when to ask its video publishers for a key frame.
    pli_due: HashMap<String, Vec<Instant>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
}

fn random_token(n: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

fn codec(kind: Kind) -> RTCRtpCodecParameters {
    match kind {
        Kind::Audio => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_OPUS.to_owned(),
                clock_rate: 48000,
                channels: 2,
                sdp_fmtp_line: "minptime=10;useinbandfec=1".to_owned(),
                rtcp_feedback: vec![],
            },
            payload_type: PT_OPUS,
        },
        Kind::Video => RTCRtpCodecParameters {
            rtp_codec: RTCRtpCodec {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                channels: 0,
                sdp_fmtp_line: String::new(),
                rtcp_feedback: ["nack", "nack pli", "ccm fir"]
                    .iter()
                    .map(|f| {
                        let (typ, parameter) = f.split_once(' ').unwrap_or((f, ""));
                        RTCPFeedback {
                            typ: typ.to_owned(),
                            parameter: parameter.to_owned(),
                        }
                    })
                    .collect(),
            },
            payload_type: PT_VP8,
        },
    }
}

fn rtc_kind(kind: Kind) -> RtpCodecKind {
    match kind {
        Kind::Audio => RtpCodecKind::Audio,
        Kind::Video => RtpCodecKind::Video,
    }
}

fn internal(e: impl std::fmt::Display) -> EngineError {
    EngineError::Internal(e.to_string())
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            peers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            calls: HashMap::new(),
            pli_due: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.cfg.local_addr
    }

    /// Routed calls with at least one participant.
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    pub fn participants(&self) -> usize {
        self.peers.len()
    }

    /// The participants of a routed call, in join order.
    pub fn members(&self, call: &str) -> Vec<String> {
        self.calls.get(call).cloned().unwrap_or_default()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The earliest instant at which `handle_timeout` has work.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let pcs = self.peers.values_mut().filter_map(|p| p.pc.poll_timeout());
        let plis = self.pli_due.values().flat_map(|v| v.iter().copied());
        pcs.chain(plis).min()
    }

    pub fn handle_command(&mut self, cmd: Command, now: Instant) -> Result<(), EngineError> {
        match cmd {
            Command::Join {
                call,
                participant,
                seat,
            } => self.join(call, participant, seat, now),
            Command::SetSeat {
                call,
                participant,
                seat,
            } => {
                let key = (call.clone(), participant);
                let peer = self.peers.get_mut(&key).ok_or(EngineError::Unknown)?;
                peer.seat = seat;
                self.reconcile(&call, now);
                Ok(())
            }
            Command::Leave { call, participant } => {
                self.leave(&call, &participant, now);
                Ok(())
            }
            Command::Answer {
                call,
                participant,
                sdp,
            } => self.answer(call, participant, sdp, now),
            Command::Candidate {
                call,
                participant,
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let key = (call, participant);
                let peer = self.peers.get_mut(&key).ok_or(EngineError::Unknown)?;
                // End-of-candidates markers carry no candidate.
                if candidate.trim().is_empty() {
                    return Ok(());
                }
                peer.pc
                    .add_remote_candidate(RTCIceCandidateInit {
                        candidate,
                        sdp_mid,
                        sdp_mline_index,
                        ..Default::default()
                    })
                    .map_err(|e| EngineError::Sdp(e.to_string()))?;
                self.drain(&key, now);
                Ok(())
            }
        }
    }

    fn new_pc(&self, ufrag: &str, now: Instant) -> Result<RTCPeerConnection, EngineError> {
        let mut media = MediaEngine::default();
        for kind in Kind::ALL {
            media
                .register_codec(codec(kind), rtc_kind(kind))
                .map_err(internal)?;
        }
        let registry = register_default_interceptors(rtc::interceptor::Registry::new(), &mut media)
            .map_err(internal)?;
        let settings = SettingEngineBuilder::new()
            .with_ice_credentials(ufrag.to_owned(), random_token(32))
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(true)
            .build();
        RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .build(now)
            .map_err(internal)
    }

    fn join(
        &mut self,
        call: String,
        participant: String,
        seat: Seat,
        now: Instant,
    ) -> Result<(), EngineError> {
        let key = (call.clone(), participant.clone());
        // A new connection of the same participant (a reload) replaces the old one.
        if self.peers.contains_key(&key) {
            self.leave(&call, &participant, now);
        }
        if self.peers.len() >= self.cfg.max_participants {
            return Err(EngineError::NodeFull(self.cfg.max_participants));
        }
        if self.calls.get(&call).map_or(0, Vec::len) >= self.cfg.max_per_call {
            return Err(EngineError::CallFull(self.cfg.max_per_call));
        }
        let ufrag = random_token(16);
        let mut pc = self.new_pc(&ufrag, now)?;
        // What this participant publishes: one receive-only section per kind.
        for kind in Kind::ALL {
            pc.add_transceiver_from_kind(
                rtc_kind(kind),
                Some(RTCRtpTransceiverInit {
                    direction: RTCRtpTransceiverDirection::Recvonly,
                    streams: vec![],
                    send_encodings: vec![],
                }),
            )
            .map_err(internal)?;
        }
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".to_owned(),
                address: self.cfg.announce.ip().to_string(),
                port: self.cfg.announce.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(internal)?;
        let init = RTCIceCandidate::from(&host).to_json().map_err(internal)?;
        pc.add_local_candidate(init).map_err(internal)?;
        self.by_ufrag.insert(ufrag.clone(), key.clone());
        self.peers.insert(
            key.clone(),
            Peer {
                seat,
                pc,
                ufrag,
                addrs: Vec::new(),
                inbound: HashMap::new(),
                outbound: HashMap::new(),
                awaiting_answer: false,
                renegotiate: true,
                offered_once: false,
                connected: false,
            },
        );
        self.calls
            .entry(call.clone())
            .or_default()
            .push(participant);
        self.reconcile(&call, now);
        Ok(())
    }

    fn leave(&mut self, call: &str, participant: &str, now: Instant) {
        let key = (call.to_owned(), participant.to_owned());
        let Some(mut peer) = self.peers.remove(&key) else {
            return;
        };
        self.by_ufrag.remove(&peer.ufrag);
        for a in &peer.addrs {
            if self.by_addr.get(a) == Some(&key) {
                self.by_addr.remove(a);
            }
        }
        let _ = peer.pc.close();
        while let Some(t) = peer.pc.poll_write() {
            self.transmits.push_back(Transmit {
                to: t.transport.peer_addr,
                data: t.message,
            });
        }
        if let Some(list) = self.calls.get_mut(call) {
            list.retain(|p| p != participant);
            if list.is_empty() {
                self.calls.remove(call);
                self.pli_due.remove(call);
                return;
            }
        }
        self.reconcile(call, now);
    }

    /// Brings every peer's send tracks in line with the role rules, then offers to each
    /// peer whose tracks changed (one offer outstanding per peer).
    fn reconcile(&mut self, call: &str, now: Instant) {
        let members = self.members(call);
        let seats: HashMap<String, Seat> = members
            .iter()
            .filter_map(|m| {
                self.peers
                    .get(&(call.to_owned(), m.clone()))
                    .map(|p| (m.clone(), p.seat))
            })
            .collect();
        for sub in &members {
            let key = (call.to_owned(), sub.clone());
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let mut changed = false;
            // Remove what is no longer allowed (or whose publisher is gone).
            let stale: Vec<(String, Kind)> = peer
                .outbound
                .keys()
                .filter(|(publ, kind)| {
                    seats
                        .get(publ)
                        .is_none_or(|s| !rules::forwards(*s, peer.seat, *kind))
                })
                .cloned()
                .collect();
            for k in stale {
                if let Some(o) = peer.outbound.remove(&k) {
                    if let Err(e) = peer.pc.remove_track(o.sender) {
                        tracing::debug!(error = %e, "remove_track failed");
                    }
                    changed = true;
                }
            }
            for publ in &members {
                if publ == sub {
                    continue;
                }
                let Some(pseat) = seats.get(publ) else {
                    continue;
                };
                for kind in Kind::ALL {
                    let k = (publ.clone(), kind);
                    if !rules::forwards(*pseat, peer.seat, kind) || peer.outbound.contains_key(&k) {
                        continue;
                    }
                    let ssrc = rand::random::<u32>();
                    let track = MediaStreamTrack::new(
                        publ.clone(),
                        format!("{publ}-{}", kind.as_str()),
                        format!("{publ}-{}", kind.as_str()),
                        rtc_kind(kind),
                        vec![RTCRtpEncodingParameters {
                            rtp_coding_parameters: RTCRtpCodingParameters {
                                ssrc: Some(ssrc),
                                ..Default::default()
                            },
                            codec: codec(kind).rtp_codec,
                            ..Default::default()
                        }],
                    );
                    // A fresh send-only section each time (`add_track` would take over the
                    // participant's own receive-only section of that kind).
                    let added = peer.pc.add_transceiver_from_track(
                        track,
                        Some(RTCRtpTransceiverInit {
                            direction: RTCRtpTransceiverDirection::Sendonly,
                            streams: vec![publ.clone()],
                            send_encodings: vec![],
                        }),
                    );
                    let sender = added
                        .ok()
                        .and_then(|t| peer.pc.rtp_transceiver(t))
                        .and_then(|t| t.sender());
                    match sender {
                        Some(sender) => {
                            peer.outbound.insert(k, Outbound { sender, ssrc });
                            changed = true;
                        }
                        None => tracing::warn!("the engine could not add a send track"),
                    }
                }
            }
            if changed {
                peer.renegotiate = true;
            }
            if peer.renegotiate && !peer.awaiting_answer {
                self.offer(&key, now);
            }
        }
    }

    fn offer(&mut self, key: &Key, now: Instant) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        let made = peer
            .pc
            .create_offer(None)
            .and_then(|o| peer.pc.set_local_description(now, o));
        let sdp = match made {
            Ok(()) => peer.pc.local_description().map(|d| d.sdp),
            Err(e) => {
                tracing::warn!(error = %e, "the engine could not make an offer");
                None
            }
        };
        if let Some(sdp) = sdp {
            peer.awaiting_answer = true;
            peer.renegotiate = false;
            peer.offered_once = true;
            self.events.push_back(Event::Offer {
                call: key.0.clone(),
                participant: key.1.clone(),
                sdp,
            });
        }
        self.drain(key, now);
    }

    fn answer(
        &mut self,
        call: String,
        participant: String,
        sdp: String,
        now: Instant,
    ) -> Result<(), EngineError> {
        let key = (call.clone(), participant);
        let peer = self.peers.get_mut(&key).ok_or(EngineError::Unknown)?;
        if !peer.awaiting_answer {
            return Err(EngineError::Sdp("no offer is waiting for an answer".into()));
        }
        let desc =
            RTCSessionDescription::answer(sdp).map_err(|e| EngineError::Sdp(e.to_string()))?;
        peer.pc
            .set_remote_description(now, desc)
            .map_err(|e| EngineError::Sdp(e.to_string()))?;
        peer.awaiting_answer = false;
        let again = peer.renegotiate;
        let connected = peer.connected;
        self.drain(&key, now);
        if again {
            self.offer(&key, now);
        }
        if connected {
            // New tracks may have started: their receivers need a key frame.
            self.schedule_pli(&call, now);
        }
        Ok(())
    }

    fn schedule_pli(&mut self, call: &str, now: Instant) {
        self.pli_due.insert(
            call.to_owned(),
            PLI_REPEATS.iter().map(|d| now + *d).collect(),
        );
    }

    /// A datagram arrived on the engine's port. Malformed or unknown input is dropped.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.stats.datagrams_in += 1;
        let class = demux::classify(data);
        let key = match self.by_addr.get(&from) {
            Some(k) if class != Class::Stun => Some(k.clone()),
            _ => match class {
                Class::Stun => demux::stun_local_ufrag(data)
                    .and_then(|u| self.by_ufrag.get(u).cloned())
                    .or_else(|| self.by_addr.get(&from).cloned()),
                _ => None,
            },
        };
        let Some(key) = key else {
            self.stats.dropped_unknown += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(&key) else {
            self.stats.dropped_unknown += 1;
            return;
        };
        if class == Class::Stun && self.by_addr.get(&from) != Some(&key) {
            self.by_addr.insert(from, key.clone());
            if !peer.addrs.contains(&from) && peer.addrs.len() < 16 {
                peer.addrs.push(from);
            }
        }
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.cfg.local_addr,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        };
        if let Err(e) = peer.pc.handle_read(msg) {
            tracing::trace!(error = %e, "datagram refused by the peer connection");
        }
        self.drain(&key, now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<Key> = self
            .peers
            .iter_mut()
            .filter_map(|(k, p)| {
                p.pc.poll_timeout()
                    .is_some_and(|t| t <= now)
                    .then(|| k.clone())
            })
            .collect();
        for key in due {
            if let Some(peer) = self.peers.get_mut(&key)
                && let Err(e) = peer.pc.handle_timeout(now)
            {
                tracing::trace!(error = %e, "peer connection timeout");
            }
            self.drain(&key, now);
        }
        let calls: Vec<String> = self
            .pli_due
            .iter_mut()
            .filter_map(|(call, due)| {
                let before = due.len();
                due.retain(|t| *t > now);
                (due.len() != before).then(|| call.clone())
            })
            .collect();
        self.pli_due.retain(|_, d| !d.is_empty());
        for call in calls {
            self.send_pli(&call, now);
        }
    }

    fn send_pli(&mut self, call: &str, now: Instant) {
        for m in self.members(call) {
            let key = (call.to_owned(), m);
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let targets: Vec<(RTCRtpReceiverId, u32)> = peer
                .inbound
                .values()
                .filter(|i| i.kind == Kind::Video)
                .map(|i| (i.receiver, i.ssrc))
                .collect();
            for (receiver, media_ssrc) in targets {
                if let Some(mut r) = peer.pc.rtp_receiver(receiver) {
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc,
                    };
                    if r.write_rtcp(now, vec![Box::new(pli)]).is_ok() {
                        self.stats.plis_sent += 1;
                    }
                }
            }
            self.flush(&key);
        }
    }

    /// Moves a peer's pending datagrams to the engine's queue.
    fn flush(&mut self, key: &Key) {
        if let Some(peer) = self.peers.get_mut(key) {
            while let Some(t) = peer.pc.poll_write() {
                self.transmits.push_back(Transmit {
                    to: t.transport.peer_addr,
                    data: t.message,
                });
            }
        }
    }

    /// Runs a peer's outputs: datagrams, state events, received RTP (forwarded).
    fn drain(&mut self, key: &Key, now: Instant) {
        let mut rtp = Vec::new();
        let mut became_connected = false;
        {
            let Some(peer) = self.peers.get_mut(key) else {
                return;
            };
            while let Some(t) = peer.pc.poll_write() {
                self.transmits.push_back(Transmit {
                    to: t.transport.peer_addr,
                    data: t.message,
                });
            }
            while let Some(ev) = peer.pc.poll_event() {
                match ev {
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(s) => match s {
                        RTCPeerConnectionState::Connected if !peer.connected => {
                            peer.connected = true;
                            became_connected = true;
                            self.events.push_back(Event::Connected {
                                call: key.0.clone(),
                                participant: key.1.clone(),
                            });
                        }
                        RTCPeerConnectionState::Failed => {
                            peer.connected = false;
                            self.events.push_back(Event::Failed {
                                call: key.0.clone(),
                                participant: key.1.clone(),
                            });
                        }
                        _ => {}
                    },
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        let kind = peer.pc.rtp_receiver(init.receiver_id).map(|r| {
                            match r.track().kind() {
                                RtpCodecKind::Video => Kind::Video,
                                _ => Kind::Audio,
                            }
                        });
                        if let Some(kind) = kind {
                            peer.inbound.insert(
                                init.track_id,
                                Inbound {
                                    kind,
                                    receiver: init.receiver_id,
                                    ssrc: init.ssrc,
                                },
                            );
                            if kind == Kind::Video {
                                became_connected = true;
                            }
                        }
                    }
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnClose(track_id)) => {
                        peer.inbound.remove(&track_id);
                    }
                    _ => {}
                }
            }
            while let Some(m) = peer.pc.poll_read() {
                if let RTCMessage::RtpPacket(track_id, packet) = m.message {
                    rtp.push((track_id, packet));
                }
            }
        }
        if became_connected {
            self.schedule_pli(&key.0, now);
        }
        for (track_id, packet) in rtp {
            self.forward(key, &track_id, packet, now);
        }
    }

    /// Sends one publisher's RTP packet to every subscriber the rules allow. Per packet:
    /// one key buffer and one header rewrite; per subscriber only the SSRC changes (the
    /// payload is shared, not copied).
    fn forward(&mut self, from: &Key, track_id: &str, mut packet: rtc::rtp::Packet, now: Instant) {
        self.stats.rtp_in += 1;
        let Some(publ) = self.peers.get(from) else {
            return;
        };
        let Some(kind) = publ.inbound.get(track_id).map(|i| i.kind) else {
            return;
        };
        let pseat = publ.seat;
        if !rules::accepts(pseat, kind) {
            self.stats.rtp_refused += 1;
            return;
        }
        let (call, pid) = from;
        let Some(members) = self.calls.get(call) else {
            return;
        };
        packet.header.payload_type = match kind {
            Kind::Audio => PT_OPUS,
            Kind::Video => PT_VP8,
        };
        packet.header.extension = false;
        packet.header.extensions.clear();
        let bytes = packet.payload.len() as u64;
        let out_key = (pid.clone(), kind);
        let mut key: Key = (call.clone(), String::new());
        for sub in members {
            if sub == pid {
                continue;
            }
            key.1.clear();
            key.1.push_str(sub);
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            if !peer.connected || !rules::forwards(pseat, peer.seat, kind) {
                continue;
            }
            let Some(out) = peer.outbound.get(&out_key) else {
                continue;
            };
            let mut p = packet.clone();
            p.header.ssrc = out.ssrc;
            if let Some(mut s) = peer.pc.rtp_sender(out.sender)
                && s.write_rtp(now, p).is_ok()
            {
                self.stats.forwarded_packets += 1;
                self.stats.forwarded_bytes += bytes;
            }
            while let Some(t) = peer.pc.poll_write() {
                self.transmits.push_back(Transmit {
                    to: t.transport.peer_addr,
                    data: t.message,
                });
            }
        }
    }
}
