//! RTCP the engine acts on, per hop: key-frame requests and bandwidth feedback.
//!
//! * Key frames: a picture-loss request (PLI) goes to every video publisher of a call when
//!   someone starts receiving (join, new track, reconnect; repeated twice). A PLI or FIR a
//!   subscriber sends about a stream it receives goes to that stream's publisher, mapped
//!   to the publisher's SSRC, at most once per [`KEYFRAME_INTERVAL`] per publisher (a
//!   dozen subscribers losing the same packet ask once).
//! * Bandwidth: every [`REMB_INTERVAL`] each video publisher gets a REMB: the
//!   participant cap (`[media] max_bitrate_kbps`), lowered to the lowest fresh estimate
//!   (REMB) of the subscribers receiving its video, never below [`REMB_FLOOR_BPS`].
//! * NACKs are not handled here: the library's interceptors answer subscribers' NACKs
//!   from their send buffers and NACK what publishers lose (see the tests).

use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::full_intra_request::{FirEntry, FullIntraRequest};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::payload_feedbacks::receiver_estimated_maximum_bitrate::ReceiverEstimatedMaximumBitrate;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::{Engine, Key, Kind};

/// How often a picture-loss request is repeated after someone starts receiving.
const PLI_REPEATS: [Duration; 3] = [
    Duration::ZERO,
    Duration::from_millis(600),
    Duration::from_millis(1500),
];
/// At most one forwarded key-frame request per publisher in this time.
pub const KEYFRAME_INTERVAL: Duration = Duration::from_millis(500);
/// How often publishers get a REMB.
pub const REMB_INTERVAL: Duration = Duration::from_secs(1);
/// A subscriber's estimate counts this long after its last REMB.
const ESTIMATE_TTL: Duration = Duration::from_secs(5);
/// No REMB asks for less than this (one struggling subscriber must not starve the rest).
pub const REMB_FLOOR_BPS: u64 = 150_000;
/// The SSRC the engine's own RTCP feedback is sent from.
const ENGINE_SSRC: u32 = 1;

/// Per-peer feedback state.
#[derive(Debug, Default)]
pub(super) struct Feedback {
    /// When this peer (as a publisher) was last asked for a key frame.
    last_keyframe: Option<Instant>,
    fir_seq: u8,
    /// This peer's latest REMB as a subscriber: bits per second, and when.
    estimate: Option<(u64, Instant)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ask {
    Pli,
    Fir,
}

impl Engine {
    pub(super) fn schedule_pli(&mut self, call: &str, now: Instant) {
        self.pli_due.insert(
            call.to_owned(),
            PLI_REPEATS.iter().map(|d| now + *d).collect(),
        );
    }

    /// Asks every video publisher of the call for a key frame (someone started receiving).
    pub(super) fn send_pli(&mut self, call: &str, now: Instant) {
        for m in self.members(call) {
            let key = (call.to_owned(), m);
            if self.ask_keyframe(&key, Ask::Pli, now) {
                self.stats.plis_sent += 1;
            }
        }
    }

    /// RTCP a peer sent about the streams it receives from the engine.
    pub(super) fn on_feedback(
        &mut self,
        from: &Key,
        packets: &[Box<dyn rtc::rtcp::Packet>],
        now: Instant,
    ) {
        let Some(peer) = self.peers.get_mut(from) else {
            return;
        };
        let mut asks: Vec<(String, Ask)> = Vec::new();
        for p in packets {
            let any = p.as_any();
            let (ssrcs, ask): (Vec<u32>, Ask) =
                if let Some(pli) = any.downcast_ref::<PictureLossIndication>() {
                    (vec![pli.media_ssrc], Ask::Pli)
                } else if let Some(fir) = any.downcast_ref::<FullIntraRequest>() {
                    (fir.fir.iter().map(|e| e.ssrc).collect(), Ask::Fir)
                } else {
                    if let Some(remb) = any.downcast_ref::<ReceiverEstimatedMaximumBitrate>()
                        && remb.bitrate.is_finite()
                        && remb.bitrate >= 0.0
                    {
                        peer.feedback.estimate = Some((remb.bitrate as u64, now));
                        self.stats.rembs_received += 1;
                    }
                    continue;
                };
            for ssrc in ssrcs {
                let publisher = peer
                    .outbound
                    .iter()
                    .find(|((_, kind), o)| *kind == Kind::Video && o.ssrc == ssrc)
                    .map(|((p, _), _)| p.clone());
                if let Some(p) = publisher
                    && !asks.iter().any(|(q, _)| *q == p)
                {
                    asks.push((p, ask));
                }
            }
        }
        for (publisher, ask) in asks {
            match ask {
                Ask::Pli => self.stats.plis_received += 1,
                Ask::Fir => self.stats.firs_received += 1,
            }
            let key = (from.0.clone(), publisher);
            if self.ask_keyframe(&key, ask, now) {
                self.stats.keyframe_requests_forwarded += 1;
            } else {
                self.stats.keyframe_requests_limited += 1;
            }
        }
    }

    /// Sends a PLI or FIR to a publisher for each of its video streams, unless it was
    /// asked less than [`KEYFRAME_INTERVAL`] ago. Returns whether it was sent.
    pub(super) fn ask_keyframe(&mut self, publisher: &Key, ask: Ask, now: Instant) -> bool {
        let Some(peer) = self.peers.get_mut(publisher) else {
            return false;
        };
        let targets: Vec<(RTCRtpReceiverId, u32)> = peer
            .inbound
            .values()
            .filter(|i| i.kind == Kind::Video)
            .map(|i| (i.receiver, i.ssrc))
            .collect();
        if targets.is_empty() {
            return false;
        }
        if peer
            .feedback
            .last_keyframe
            .is_some_and(|t| now < t + KEYFRAME_INTERVAL)
        {
            return false;
        }
        peer.feedback.last_keyframe = Some(now);
        let mut sent = false;
        for (receiver, media_ssrc) in targets {
            let packet: Box<dyn rtc::rtcp::Packet> = match ask {
                Ask::Pli => Box::new(PictureLossIndication {
                    sender_ssrc: ENGINE_SSRC,
                    media_ssrc,
                }),
                Ask::Fir => {
                    peer.feedback.fir_seq = peer.feedback.fir_seq.wrapping_add(1);
                    Box::new(FullIntraRequest {
                        sender_ssrc: ENGINE_SSRC,
                        media_ssrc: 0,
                        fir: vec![FirEntry {
                            ssrc: media_ssrc,
                            sequence_number: peer.feedback.fir_seq,
                        }],
                    })
                }
            };
            if let Some(mut r) = peer.pc.rtp_receiver(receiver) {
                sent |= r.write_rtcp(now, vec![packet]).is_ok();
            }
        }
        self.flush(publisher);
        sent
    }

    /// What a publisher is asked to send at most, in bits per second.
    pub(super) fn remb_for(&self, publisher: &Key, now: Instant) -> u64 {
        let cap = self.cfg.max_bitrate_bps;
        let lowest = self
            .members(&publisher.0)
            .into_iter()
            .filter(|m| *m != publisher.1)
            .filter_map(|m| self.peers.get(&(publisher.0.clone(), m)))
            .filter(|sub| {
                sub.connected
                    && sub
                        .outbound
                        .contains_key(&(publisher.1.clone(), Kind::Video))
            })
            .filter_map(|sub| sub.feedback.estimate)
            .filter(|(_, at)| now < *at + ESTIMATE_TTL)
            .map(|(bps, _)| bps)
            .min();
        lowest
            .map_or(cap, |l| l.min(cap))
            .max(REMB_FLOOR_BPS.min(cap))
    }

    /// Sends every connected video publisher its REMB.
    pub(super) fn send_remb(&mut self, now: Instant) {
        let keys: Vec<Key> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && p.inbound.values().any(|i| i.kind == Kind::Video))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            let bitrate = self.remb_for(&key, now);
            let Some(peer) = self.peers.get_mut(&key) else {
                continue;
            };
            let ssrcs: Vec<u32> = peer.inbound.values().map(|i| i.ssrc).collect();
            let Some(receiver) = peer
                .inbound
                .values()
                .find(|i| i.kind == Kind::Video)
                .map(|i| i.receiver)
            else {
                continue;
            };
            let remb = ReceiverEstimatedMaximumBitrate {
                sender_ssrc: ENGINE_SSRC,
                bitrate: bitrate as f32,
                ssrcs,
            };
            if let Some(mut r) = peer.pc.rtp_receiver(receiver)
                && r.write_rtcp(now, vec![Box::new(remb)]).is_ok()
            {
                self.stats.rembs_sent += 1;
                self.stats.last_remb_bps = bitrate;
            }
            self.flush(&key);
        }
    }
}
