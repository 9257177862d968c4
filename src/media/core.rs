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
//! the library's default interceptors; key-frame requests and bandwidth feedback are in
//! [`rtcp`], the per-participant bitrate cap in [`limits`]. The same core serves UDP and
//! ICE-TCP (RFC 6544, a passive candidate): the shell tells it which a packet came by.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::BytesMut;
use rtc::ice::tcp_type::TcpType;
use rtc::peer_connection::RTCPeerConnection;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::RTCMessage;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{
    RTCRtpReceiverId, RTCRtpSenderId, RTCRtpTransceiverDirection, RTCRtpTransceiverInit,
};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

use super::demux::{self, Class};
use super::pc::{internal, new_pc, random_token, rtc_kind};
use super::rules::{self, Kind};
use crate::domain::Seat;

#[cfg(test)]
mod harness;
mod limits;
mod record;
mod rtcp;
#[cfg(test)]
mod tests;
mod tracks;
pub use record::{Recorded, Tapped};

/// Payload types the engine offers (the answerer must use the offerer's numbers).
pub const PT_OPUS: u8 = 111;
pub const PT_VP8: u8 = 96;

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
    /// The ICE-TCP address (passive candidate) announced, when ICE-TCP is on.
    pub announce_tcp: Option<SocketAddr>,
    /// Each participant's bitrate cap (REMB and the limiter), in bits per second.
    pub max_bitrate_bps: u64,
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
    /// Start (`on`) or stop handing the participant's accepted RTP to the recorder
    /// ([`Engine::poll_recorded`]); `on` also asks it for a key frame soon.
    Record {
        call: String,
        participant: String,
        on: bool,
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
    /// What the engine measured of one participant's direction over the last interval.
    Quality {
        call: String,
        participant: String,
        sample: super::quality::Sample,
    },
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
    /// Goes out on the peer's ICE-TCP connection (framed), not the UDP socket.
    pub tcp: bool,
}

impl Transmit {
    fn from_pc(t: TaggedBytesMut) -> Self {
        Transmit {
            to: t.transport.peer_addr,
            data: t.message,
            tcp: t.transport.transport_protocol == TransportProtocol::TCP,
        }
    }
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
    /// RTP packets handed to the recorder, and those dropped because it lagged behind.
    pub rtp_recorded: u64,
    pub recorded_dropped: u64,
    /// Key-frame requests (PLI, FIR) subscribers sent about forwarded video.
    pub plis_received: u64,
    pub firs_received: u64,
    /// Of those, passed on to the publisher / held back by the per-publisher interval.
    pub keyframe_requests_forwarded: u64,
    pub keyframe_requests_limited: u64,
    pub rembs_received: u64,
    pub rembs_sent: u64,
    /// The bitrate of the latest REMB sent.
    pub last_remb_bps: u64,
    /// RTP packets dropped because their publisher kept above the bitrate cap.
    pub rtp_over_cap: u64,
}

type Key = (String, String);
/// A remote transport address: the address and whether it is an ICE-TCP connection.
type Remote = (SocketAddr, bool);

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
    addrs: Vec<Remote>,
    feedback: rtcp::Feedback,
    budget: limits::Budget,
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
    by_addr: HashMap<Remote, Key>,
    /// When publishers get their next REMB (while anyone is connected).
    next_remb: Option<Instant>,
    /// call → its participants in join order.
    calls: HashMap<String, Vec<String>>,
    /// call → when to ask its video publishers for a key frame.
    pli_due: HashMap<String, Vec<Instant>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    tap: record::Tap,
    quality: super::quality::Tracker,
}

impl Engine {
    pub fn new(cfg: EngineConfig) -> Self {
        Self {
            cfg,
            peers: HashMap::new(),
            by_ufrag: HashMap::new(),
            by_addr: HashMap::new(),
            next_remb: None,
            calls: HashMap::new(),
            pli_due: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            tap: record::Tap::default(),
            quality: Default::default(),
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
        pcs.chain(plis)
            .chain(self.next_remb)
            .chain(self.tap.deadline())
            .chain(self.quality.next_due())
            .min()
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
            Command::Record {
                call,
                participant,
                on,
            } => self.record(call, participant, on, now),
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
        let mut pc = new_pc(&ufrag, now)?;
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
        // One UDP host candidate and, with ICE-TCP on, one passive TCP candidate (RFC 6544).
        let tcp = self.cfg.announce_tcp.map(|a| (a, "tcp", TcpType::Passive));
        for (addr, network, tcp_type) in [(self.cfg.announce, "udp", TcpType::Unspecified)]
            .into_iter()
            .chain(tcp)
        {
            let host = CandidateHostConfig {
                base_config: CandidateConfig {
                    network: network.to_owned(),
                    address: addr.ip().to_string(),
                    port: addr.port(),
                    component: 1,
                    ..Default::default()
                },
                tcp_type,
            }
            .new_candidate_host()
            .map_err(internal)?;
            let init = RTCIceCandidate::from(&host).to_json().map_err(internal)?;
            pc.add_local_candidate(init).map_err(internal)?;
        }
        self.by_ufrag.insert(ufrag.clone(), key.clone());
        self.peers.insert(
            key.clone(),
            Peer {
                seat,
                pc,
                ufrag,
                addrs: Vec::new(),
                feedback: Default::default(),
                budget: Default::default(),
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
        self.quality.forget(&key);
        self.by_ufrag.remove(&peer.ufrag);
        self.tap_gone(&key);
        for a in &peer.addrs {
            if self.by_addr.get(a) == Some(&key) {
                self.by_addr.remove(a);
            }
        }
        let _ = peer.pc.close();
        while let Some(t) = peer.pc.poll_write() {
            self.transmits.push_back(Transmit::from_pc(t));
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

    /// A datagram arrived on the engine's port. Malformed or unknown input is dropped.
    pub fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.handle_packet(from, false, data, now);
    }

    /// A packet arrived on the engine's UDP port (`tcp` false) or, de-framed, on the
    /// ICE-TCP connection from `from`. Malformed or unknown input is dropped.
    pub fn handle_packet(&mut self, from: SocketAddr, tcp: bool, data: &[u8], now: Instant) {
        self.stats.datagrams_in += 1;
        let class = demux::classify(data);
        let from_addr = from;
        let from: Remote = (from, tcp);
        let local_addr = match (tcp, self.cfg.announce_tcp) {
            (true, Some(a)) => a,
            (true, None) => {
                self.stats.dropped_unknown += 1;
                return;
            }
            // What the engine's candidate says (the ICE agent matches it).
            (false, _) => self.cfg.announce,
        };
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
        if !self.peers.contains_key(&key) {
            self.stats.dropped_unknown += 1;
            return;
        }
        // A STUN request names its peer before its integrity is checked: it may claim a
        // free address, never one a live participant uses (that would hijack its media).
        if let Some(owner) = self.by_addr.get(&from)
            && *owner != key
            && self.peers.contains_key(owner)
        {
            self.stats.dropped_unknown += 1;
            return;
        }
        let Some(peer) = self.peers.get_mut(&key) else {
            return;
        };
        if class == Class::Stun
            && self.by_addr.get(&from) != Some(&key)
            && (peer.addrs.contains(&from) || peer.addrs.len() < 16)
        {
            self.by_addr.insert(from, key.clone());
            if !peer.addrs.contains(&from) {
                peer.addrs.push(from);
            }
        }
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr,
                peer_addr: from_addr,
                ecn: None,
                transport_protocol: if tcp {
                    TransportProtocol::TCP
                } else {
                    TransportProtocol::UDP
                },
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
        if self.next_remb.is_some_and(|t| t <= now) {
            self.send_remb(now);
            let anyone = self.peers.values().any(|p| p.connected);
            self.next_remb = anyone.then_some(now + rtcp::REMB_INTERVAL);
        }
        for ((call, participant), sample) in self.quality.poll(now) {
            self.events.push_back(Event::Quality {
                call,
                participant,
                sample,
            });
        }
        self.tap_timeout(now);
    }

    /// Moves a peer's pending datagrams to the engine's queue.
    fn flush(&mut self, key: &Key) {
        if let Some(peer) = self.peers.get_mut(key) {
            while let Some(t) = peer.pc.poll_write() {
                self.transmits.push_back(Transmit::from_pc(t));
            }
        }
    }

    /// Runs a peer's outputs: datagrams, state events, received RTP (forwarded).
    fn drain(&mut self, key: &Key, now: Instant) {
        let mut rtp = Vec::new();
        let mut feedback = Vec::new();
        let mut became_connected = false;
        {
            let Some(peer) = self.peers.get_mut(key) else {
                return;
            };
            while let Some(t) = peer.pc.poll_write() {
                self.transmits.push_back(Transmit::from_pc(t));
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
                match m.message {
                    RTCMessage::RtpPacket(track_id, packet) => rtp.push((track_id, packet)),
                    RTCMessage::RtcpPacket(_, packets) => {
                        self.quality.on_rtcp(key, &packets, now);
                        feedback.push(packets);
                    }
                    _ => {}
                }
            }
        }
        if became_connected {
            self.schedule_pli(&key.0, now);
            self.next_remb.get_or_insert(now + rtcp::REMB_INTERVAL);
        }
        for packets in feedback {
            self.on_feedback(key, &packets, now);
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
        let size =
            rtc::shared::marshal::MarshalSize::marshal_size(&packet.header) + packet.payload.len();
        (self.quality).on_receive(from, kind, &packet.header, size, now);
        if !rules::accepts(pseat, kind) {
            self.stats.rtp_refused += 1;
            return;
        }
        let size = 12 + 4 * packet.header.csrc.len() + packet.payload.len();
        if !self.within_cap(from, kind, size, now) {
            return;
        }
        self.tap_packet(from, kind, &packet, now);
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
            let out_ssrc = out.ssrc;
            if let Some(mut s) = peer.pc.rtp_sender(out.sender)
                && s.write_rtp(now, p).is_ok()
            {
                self.stats.forwarded_packets += 1;
                self.stats.forwarded_bytes += bytes;
                (self.quality).on_send(&key, out_ssrc, kind, size, now);
            }
            while let Some(t) = peer.pc.poll_write() {
                self.transmits.push_back(Transmit::from_pc(t));
            }
        }
    }
}
