//! The recording tap: while a participant is recorded, every RTP packet the engine accepts
//! from it (after the role rules) is queued for the recorder, untouched. Turning the tap
//! on asks that publisher for a key frame a few times, so a file can start soon.
//!
//! The engine never waits for the recorder: the queue is capped, and what does not fit is
//! counted in [`Stats::recorded_dropped`](super::Stats).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::RTCRtpReceiverId;

use super::{Engine, EngineError, Key};
use crate::media::rules::Kind;

/// One RTP packet a recorded participant published, as the engine accepted it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub call: String,
    pub participant: String,
    pub kind: Kind,
    pub packet: rtc::rtp::Packet,
    /// When the engine received it.
    pub at: Instant,
}

/// What the tap hands the recorder.
#[derive(Debug, Clone)]
pub enum Tapped {
    Packet(Recorded),
    /// The recorded participant's connection to the engine ended (it left, reloaded, or the
    /// call stopped being routed): its span ends. Recording stays on: a new connection of the
    /// same participant starts a new span.
    Gone {
        call: String,
        participant: String,
    },
}

/// Most items queued between two polls (the shell drains after every input).
const MAX_QUEUED: usize = 8192;
/// Most participants recorded on this node at once.
const MAX_RECORDED: usize = 10_000;
/// When key frames are asked for after the tap is turned on.
const PLI_AFTER_ON: [Duration; 4] = [
    Duration::ZERO,
    Duration::from_millis(300),
    Duration::from_millis(1000),
    Duration::from_millis(2500),
];

#[derive(Default)]
pub(super) struct Tap {
    on: HashSet<Key>,
    queue: VecDeque<Tapped>,
    /// Publisher → when to ask it for a key frame.
    pli_due: HashMap<Key, Vec<Instant>>,
}

impl Tap {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.pli_due.values().flatten().min().copied()
    }

    fn push(&mut self, item: Tapped) -> bool {
        if self.queue.len() >= MAX_QUEUED {
            return false;
        }
        self.queue.push_back(item);
        true
    }
}

impl Engine {
    /// The next packet (or end of a connection) for the recorder.
    pub fn poll_recorded(&mut self) -> Option<Tapped> {
        self.tap.queue.pop_front()
    }

    /// Whether `participant` of `call` is being handed to the recorder.
    pub fn is_recorded(&self, call: &str, participant: &str) -> bool {
        self.tap
            .on
            .contains(&(call.to_owned(), participant.to_owned()))
    }

    pub(super) fn record(
        &mut self,
        call: String,
        participant: String,
        on: bool,
        now: Instant,
    ) -> Result<(), EngineError> {
        let key = (call, participant);
        if !on {
            self.tap.on.remove(&key);
            self.tap.pli_due.remove(&key);
            return Ok(());
        }
        if !self.tap.on.contains(&key) && self.tap.on.len() >= MAX_RECORDED {
            return Err(EngineError::Internal(format!(
                "at most {MAX_RECORDED} participants are recorded at once"
            )));
        }
        // A participant not (yet) routed is recorded from its first packet.
        self.tap.on.insert(key.clone());
        self.tap
            .pli_due
            .insert(key, PLI_AFTER_ON.iter().map(|d| now + *d).collect());
        Ok(())
    }

    /// Called with each accepted packet, before it is forwarded.
    pub(super) fn tap_packet(
        &mut self,
        from: &Key,
        kind: Kind,
        packet: &rtc::rtp::Packet,
        now: Instant,
    ) {
        if !self.tap.on.contains(from) {
            return;
        }
        let item = Tapped::Packet(Recorded {
            call: from.0.clone(),
            participant: from.1.clone(),
            kind,
            packet: packet.clone(),
            at: now,
        });
        if self.tap.push(item) {
            self.stats.rtp_recorded += 1;
        } else {
            self.stats.recorded_dropped += 1;
        }
    }

    /// A participant's connection is gone (called before it is removed).
    pub(super) fn tap_gone(&mut self, key: &Key) {
        if self.tap.on.contains(key) {
            let gone = Tapped::Gone {
                call: key.0.clone(),
                participant: key.1.clone(),
            };
            // The end of a span must not be lost to a full queue: make room for it.
            if !self.tap.push(gone.clone()) {
                self.tap.queue.pop_back();
                self.stats.recorded_dropped += 1;
                self.tap.queue.push_back(gone);
            }
        }
    }

    pub(super) fn tap_timeout(&mut self, now: Instant) {
        let due: Vec<Key> = self
            .tap
            .pli_due
            .iter_mut()
            .filter_map(|(k, due)| {
                let before = due.len();
                due.retain(|t| *t > now);
                (due.len() != before).then(|| k.clone())
            })
            .collect();
        self.tap.pli_due.retain(|_, d| !d.is_empty());
        for key in due {
            self.ask_key_frame(&key, now);
        }
    }

    /// Sends a picture-loss request for each video stream `publisher` sends the engine.
    fn ask_key_frame(&mut self, publisher: &Key, now: Instant) {
        let Some(peer) = self.peers.get_mut(publisher) else {
            return;
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
        self.flush(publisher);
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;
    use crate::domain::{Role, Seat};
    use crate::media::core::{Command, EngineConfig};

    fn engine() -> Engine {
        let addr: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        Engine::new(EngineConfig {
            local_addr: addr,
            announce: addr,
            announce_tcp: None,
            max_participants: 10,
            max_per_call: 4,
            max_bitrate_bps: 2_500_000,
        })
    }

    fn packet(seq: u16) -> rtc::rtp::Packet {
        rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                sequence_number: seq,
                timestamp: u32::from(seq) * 960,
                ssrc: 7,
                payload_type: 111,
                ..Default::default()
            },
            payload: vec![0xf8, 1, 2, 3].into(),
        }
    }

    fn key(p: &str) -> Key {
        ("call".to_owned(), p.to_owned())
    }

    fn record(e: &mut Engine, p: &str, on: bool, now: Instant) {
        e.handle_command(
            Command::Record {
                call: "call".into(),
                participant: p.into(),
                on,
            },
            now,
        )
        .expect("record");
    }

    #[test]
    fn only_recorded_participants_are_queued_untouched_until_turned_off() {
        let mut e = engine();
        let now = Instant::now();
        e.tap_packet(&key("a"), Kind::Audio, &packet(1), now);
        assert!(
            e.poll_recorded().is_none(),
            "nothing is recorded by default"
        );
        record(&mut e, "a", true, now);
        assert!(e.is_recorded("call", "a"));
        e.tap_packet(&key("a"), Kind::Audio, &packet(2), now);
        e.tap_packet(&key("b"), Kind::Audio, &packet(3), now);
        match e.poll_recorded() {
            Some(Tapped::Packet(r)) => {
                assert_eq!((r.call.as_str(), r.participant.as_str()), ("call", "a"));
                assert_eq!(r.kind, Kind::Audio);
                assert_eq!(r.packet, packet(2));
                assert_eq!(r.at, now);
            }
            other => panic!("expected a's packet, got {other:?}"),
        }
        assert!(e.poll_recorded().is_none(), "b is not recorded");
        record(&mut e, "a", false, now);
        e.tap_packet(&key("a"), Kind::Audio, &packet(4), now);
        assert!(e.poll_recorded().is_none());
        assert_eq!(e.stats().rtp_recorded, 1);
    }

    #[test]
    fn turning_on_schedules_key_frame_requests_and_off_cancels_them() {
        let mut e = engine();
        let now = Instant::now();
        assert_eq!(e.poll_timeout(), None);
        record(&mut e, "a", true, now);
        assert_eq!(e.poll_timeout(), Some(now));
        e.handle_timeout(now);
        assert_eq!(e.poll_timeout(), Some(now + PLI_AFTER_ON[1]));
        record(&mut e, "a", false, now);
        assert_eq!(e.poll_timeout(), None);
    }

    #[test]
    fn a_full_queue_drops_and_counts_but_keeps_the_end_of_a_span() {
        let mut e = engine();
        let now = Instant::now();
        e.handle_command(
            Command::Join {
                call: "call".into(),
                participant: "a".into(),
                seat: Seat::new(Role::Agent, None),
            },
            now,
        )
        .expect("join");
        record(&mut e, "a", true, now);
        for i in 0..(MAX_QUEUED + 10) {
            e.tap_packet(&key("a"), Kind::Audio, &packet(i as u16), now);
        }
        assert_eq!(e.stats().recorded_dropped, 10);
        e.handle_command(
            Command::Leave {
                call: "call".into(),
                participant: "a".into(),
            },
            now,
        )
        .expect("leave");
        let mut last = None;
        let mut n = 0;
        while let Some(t) = e.poll_recorded() {
            n += 1;
            last = Some(t);
        }
        assert_eq!(n, MAX_QUEUED);
        assert!(
            matches!(last, Some(Tapped::Gone { ref participant, .. }) if participant == "a"),
            "{last:?}"
        );
        // Still on: a new connection of the participant is recorded again.
        assert!(e.is_recorded("call", "a"));
    }
}
