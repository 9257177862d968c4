//! RTP → WebM without transcoding: VP8 frames are reassembled from their packets, Opus
//! packets are frames already, and both go into a WebM stream written strictly forward.
//!
//! # Why our own writer
//!
//! A recording must survive a crash up to its last flushed second, and its bytes go to an
//! append-only, encrypted sink that cannot seek back. That needs a Segment and Clusters of
//! unknown size and no index to patch at the end. The Rust crates looked at (2026-11):
//! `webm` wraps the C++ libwebm (not pure Rust, and its muxer finalizes by seeking);
//! `media-format-matroska` demuxes only (its muxer is not written yet); `webm-iterable`
//! (with `ebml-iterable`) is a pure-Rust EBML *tag* codec that can start unknown-size
//! masters, but it is not a muxer (tracks, block timing, clustering and key-frame rules
//! would still be ours), and it has been idle since 2024 with one maintainer; the
//! remaining ones are young 0.0.x/one-project crates. What a muxer needs from EBML is
//! about sixty lines ([`ebml`]), so the whole writer is kept here, small and tested, and
//! checked against ffprobe/ffmpeg in the integration tests.
//!
//! * [`ebml`] — element encoding; [`webm`] — header, tracks, clusters, SimpleBlocks.
//! * [`vp8`] — RFC 7741 payload descriptor and frame assembly; [`reorder`] — video packets
//!   back in sequence order (waiting briefly for retransmissions); [`clock`] — RTP time
//!   onto the span clock (anchored at arrival, 32-bit wraparound).
//! * [`SpanMuxer`] — one participant's span: when the file starts, which packets go in.

pub mod clock;
pub mod ebml;
pub mod reorder;
pub mod vp8;
pub mod webm;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::media::Kind;
use clock::{TrackClock, micros_since};
use webm::{Layout, Track, Writer};

/// Without any video packet this long after the first audio, the file is audio only.
pub const AUDIO_ONLY_AFTER: Duration = Duration::from_millis(2500);
/// Audio kept while waiting for the first video key frame (about five seconds).
const MAX_PENDING_AUDIO: usize = 250;
/// Largest Opus packet accepted (RFC 6716 allows 1275 bytes per frame, 120 ms per packet).
const MAX_OPUS: usize = 1275 * 6;

#[derive(Debug)]
enum State {
    /// Waiting for the first video key frame (or for the audio-only decision).
    Waiting,
    Writing(Writer),
}

/// One participant's span: RTP packets in, WebM bytes out ([`SpanMuxer::take`]).
///
/// File time zero is the first video key frame when the participant publishes video
/// (audio before it is dropped), otherwise the first audio packet. Each track's RTP time
/// is anchored at its first packet's arrival, so audio and video line up as they arrived.
#[derive(Debug)]
pub struct SpanMuxer {
    base: Option<Instant>,
    audio_clock: TrackClock,
    video_clock: TrackClock,
    vp8: vp8::Depacketizer,
    /// Video packets (with their span time) waiting for their turn.
    reorder: reorder::Reorder<(i64, rtc::rtp::Packet)>,
    seen_video: bool,
    first_audio: Option<i64>,
    pending_audio: VecDeque<(i64, bytes::Bytes)>,
    state: State,
    /// Span time (µs since `base`) of file time zero.
    zero: i64,
    last_ms: [i64; 2],
    frames: [u64; 2],
    end_ms: i64,
    /// Video that came after an audio-only file had started (and was left out).
    late_video: bool,
    out: Vec<u8>,
    /// Packets dropped as unusable (garbage, too old, before time zero).
    pub dropped: u64,
}

impl Default for SpanMuxer {
    fn default() -> Self {
        Self::new()
    }
}

impl SpanMuxer {
    pub fn new() -> Self {
        Self {
            base: None,
            audio_clock: TrackClock::new(48_000),
            video_clock: TrackClock::new(90_000),
            vp8: vp8::Depacketizer::new(),
            reorder: reorder::Reorder::default(),
            seen_video: false,
            first_audio: None,
            pending_audio: VecDeque::new(),
            state: State::Waiting,
            zero: 0,
            last_ms: [-1, -1],
            frames: [0, 0],
            end_ms: 0,
            late_video: false,
            out: Vec::new(),
            dropped: 0,
        }
    }

    /// Takes one accepted RTP packet of the participant, received at `at`.
    pub fn push(&mut self, kind: Kind, packet: &rtc::rtp::Packet, at: Instant) {
        let base = *self.base.get_or_insert(at);
        let arrival = micros_since(base, at);
        let h = &packet.header;
        match kind {
            Kind::Audio => {
                if packet.payload.is_empty() || packet.payload.len() > MAX_OPUS {
                    self.dropped += 1;
                    return;
                }
                let t = self.audio_clock.map(h.ssrc, h.timestamp, arrival);
                self.first_audio.get_or_insert(arrival);
                match &self.state {
                    State::Waiting => {
                        if self.pending_audio.len() >= MAX_PENDING_AUDIO {
                            self.pending_audio.pop_front();
                            self.dropped += 1;
                        }
                        self.pending_audio.push_back((t, packet.payload.clone()));
                    }
                    State::Writing(_) => self.write(Track::Audio, t, true, &packet.payload),
                }
            }
            Kind::Video => {
                self.seen_video = true;
                if !self.video_clock.is_stream(h.ssrc) {
                    // A new stream of the sender: its sequence numbers start afresh.
                    self.vp8 = vp8::Depacketizer::new();
                    self.reorder = reorder::Reorder::default();
                }
                let t = self.video_clock.map(h.ssrc, h.timestamp, arrival);
                let ready = self
                    .reorder
                    .push(h.sequence_number, arrival, (t, packet.clone()));
                self.video_packets(ready);
            }
        }
        self.check_audio_only(arrival);
    }

    fn video_packets(&mut self, ready: Vec<(i64, rtc::rtp::Packet)>) {
        for (t, p) in ready {
            let h = &p.header;
            let frame = self
                .vp8
                .push(h.sequence_number, h.timestamp, h.marker, &p.payload);
            if let Some(frame) = frame {
                self.video_frame(t, frame);
            }
        }
    }

    /// Lets time pass without packets (starts an audio-only file when it is due).
    pub fn tick(&mut self, now: Instant) {
        if let Some(base) = self.base {
            let now = micros_since(base, now);
            let ready = self.reorder.release(now);
            self.video_packets(ready);
            self.check_audio_only(now);
        }
    }

    /// The container bytes produced since the last call.
    pub fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// The instant of file time zero, once the file has started.
    pub fn started(&self) -> Option<Instant> {
        match self.state {
            State::Writing(_) => {
                let base = self.base?;
                let zero = u64::try_from(self.zero).ok()?;
                Some(base + Duration::from_micros(zero))
            }
            State::Waiting => None,
        }
    }

    /// The video needs a key frame: the file waits for its first one, or a loss broke the
    /// chain of frames. The recorder then asks the publisher for one.
    pub fn wants_key_frame(&self) -> bool {
        match &self.state {
            State::Waiting => self.seen_video,
            State::Writing(w) => w.layout().video.is_some() && self.vp8.needs_key_frame(),
        }
    }

    /// Video arrived after the file had started as audio only (and is not in it).
    pub fn late_video(&self) -> bool {
        self.late_video
    }

    /// File duration so far (the last frame's end), in ms.
    pub fn duration_ms(&self) -> u64 {
        u64::try_from(self.end_ms).unwrap_or(0)
    }

    /// The codecs of the tracks that hold frames ("vp8", "opus").
    pub fn codecs(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.frames[0] > 0 {
            v.push("vp8".to_owned());
        }
        if self.frames[1] > 0 {
            v.push("opus".to_owned());
        }
        v
    }

    fn video_frame(&mut self, t: i64, frame: vp8::Frame) {
        match &self.state {
            State::Writing(w) if w.layout().video.is_some() => {
                self.write(Track::Video, t, frame.key, &frame.data);
            }
            State::Writing(_) => {
                self.late_video = true;
                self.dropped += 1;
            }
            State::Waiting => {
                let Some(size) = vp8::key_frame_size(&frame.data) else {
                    self.dropped += 1;
                    return;
                };
                self.begin(
                    t,
                    Layout {
                        video: Some(size),
                        audio: true,
                    },
                );
                self.write(Track::Video, t, true, &frame.data);
                for (ta, payload) in std::mem::take(&mut self.pending_audio) {
                    self.write(Track::Audio, ta, true, &payload);
                }
            }
        }
    }

    fn check_audio_only(&mut self, now: i64) {
        let (State::Waiting, false, Some(first)) = (&self.state, self.seen_video, self.first_audio)
        else {
            return;
        };
        if now - first < AUDIO_ONLY_AFTER.as_micros() as i64 {
            return;
        }
        let Some(zero) = self.pending_audio.front().map(|p| p.0) else {
            return;
        };
        self.begin(
            zero,
            Layout {
                video: None,
                audio: true,
            },
        );
        for (ta, payload) in std::mem::take(&mut self.pending_audio) {
            self.write(Track::Audio, ta, true, &payload);
        }
    }

    fn begin(&mut self, zero: i64, layout: Layout) {
        self.zero = zero;
        self.state = State::Writing(Writer::start(layout, &mut self.out));
    }

    fn write(&mut self, track: Track, t: i64, key: bool, data: &[u8]) {
        let State::Writing(w) = &mut self.state else {
            return;
        };
        let mut ms = (t - self.zero).div_euclid(1000);
        let i = match track {
            Track::Video => 0,
            Track::Audio => 1,
        };
        // Video frames come in sequence order and each may be the reference of the next:
        // one whose time does not advance (two frames in one millisecond, the clock's
        // anchor moved back) is kept one millisecond after the last, not dropped (a block
        // time that does not advance is an error for players).
        if track == Track::Video && self.last_ms[0] >= 0 && ms <= self.last_ms[0] {
            ms = self.last_ms[0] + 1;
        }
        // Before time zero, or behind what this track already wrote (a late packet).
        if ms < 0 || ms < self.last_ms[i] || (track == Track::Audio && ms == self.last_ms[i]) {
            self.dropped += 1;
            return;
        }
        w.frame(&mut self.out, track, ms, key, data);
        self.last_ms[i] = ms;
        self.frames[i] += 1;
        let len = if track == Track::Audio { 20 } else { 0 };
        self.end_ms = self.end_ms.max(ms + len);
    }
}

#[cfg(test)]
mod tests;
