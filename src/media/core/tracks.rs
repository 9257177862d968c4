//! What each peer sends: its send tracks kept in line with the role rules, and the
//! offers and answers that carry every change (one offer outstanding per peer).

use std::collections::HashMap;
use std::time::Instant;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::{RTCRtpCodingParameters, RTCRtpEncodingParameters};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};

use super::super::pc::{codec, rtc_kind};
use super::{Engine, EngineError, Event, Key, Kind, Outbound, Seat, rules};

impl Engine {
    /// Brings every peer's send tracks in line with the role rules, then offers to each
    /// peer whose tracks changed (one offer outstanding per peer).
    pub(super) fn reconcile(&mut self, call: &str, now: Instant) {
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

    pub(super) fn offer(&mut self, key: &Key, now: Instant) {
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

    pub(super) fn answer(
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
}
