//! The WebM container as a stream: EBML header, a Segment of unknown size, Info, Tracks,
//! then Clusters of unknown size holding SimpleBlocks. Nothing is ever rewritten, so the
//! bytes can go straight to an append-only (encrypted) file, and a file cut anywhere
//! plays up to the cut (a reader ends an unknown-size element at the next top-level ID).

use super::ebml;

const EBML: u32 = 0x1A45_DFA3;
const EBML_VERSION: u32 = 0x4286;
const EBML_READ_VERSION: u32 = 0x42F7;
const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
const DOC_TYPE: u32 = 0x4282;
const DOC_TYPE_VERSION: u32 = 0x4287;
const DOC_TYPE_READ_VERSION: u32 = 0x4285;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const MUXING_APP: u32 = 0x4D80;
const WRITING_APP: u32 = 0x5741;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const TRACK_UID: u32 = 0x73C5;
const TRACK_TYPE: u32 = 0x83;
const FLAG_LACING: u32 = 0x9C;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const CODEC_DELAY: u32 = 0x56AA;
const SEEK_PRE_ROLL: u32 = 0x56BB;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const AUDIO: u32 = 0xE1;
const SAMPLING_FREQUENCY: u32 = 0xB5;
const CHANNELS: u32 = 0x9F;
const CLUSTER: u32 = 0x1F43_B675;
const TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;

/// Opus in WebM: 80 ms of pre-roll after a seek (the Matroska codec mapping).
const OPUS_SEEK_PRE_ROLL_NS: u64 = 80_000_000;
/// Samples the decoder drops at the start. RTP carries no pre-skip: a receiver plays
/// what it decodes at the packet's RTP time, so the file does the same (zero), which
/// keeps audio where the RTP clock puts it relative to the video.
const OPUS_PRE_SKIP: u16 = 0;
/// A new cluster at least this often (ms), and whenever a video key frame comes.
const CLUSTER_MAX_MS: i64 = 1000;

/// The tracks of a file (decided before the header is written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// VP8 video of this size (from the first key frame), if any.
    pub video: Option<(u16, u16)>,
    pub audio: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// OpusHead (RFC 7845 §5.1): stereo, 48 kHz, mapping family 0.
pub fn opus_head() -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1); // version
    h.push(2); // channels
    h.extend_from_slice(&OPUS_PRE_SKIP.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes()); // input sample rate (informational)
    h.extend_from_slice(&0i16.to_le_bytes()); // output gain
    h.push(0); // channel mapping family
    h
}

/// Writes one WebM stream into the caller's buffer.
#[derive(Debug)]
pub struct Writer {
    layout: Layout,
    /// The current cluster's timestamp (ms), once one is open.
    cluster: Option<i64>,
}

impl Writer {
    /// Writes the header (EBML, Segment start, Info, Tracks).
    pub fn start(layout: Layout, out: &mut Vec<u8>) -> Writer {
        ebml::master(out, EBML, |m| {
            ebml::uint(m, EBML_VERSION, 1);
            ebml::uint(m, EBML_READ_VERSION, 1);
            ebml::uint(m, EBML_MAX_ID_LENGTH, 4);
            ebml::uint(m, EBML_MAX_SIZE_LENGTH, 8);
            ebml::bytes(m, DOC_TYPE, b"webm");
            ebml::uint(m, DOC_TYPE_VERSION, 4);
            ebml::uint(m, DOC_TYPE_READ_VERSION, 2);
        });
        ebml::master_unknown(out, SEGMENT);
        ebml::master(out, INFO, |m| {
            ebml::uint(m, TIMESTAMP_SCALE, 1_000_000);
            ebml::bytes(m, MUXING_APP, b"Sightline");
            ebml::bytes(m, WRITING_APP, b"Sightline");
        });
        let w = Writer {
            layout,
            cluster: None,
        };
        ebml::master(out, TRACKS, |m| {
            if let Some((width, height)) = layout.video {
                ebml::master(m, TRACK_ENTRY, |t| {
                    ebml::uint(t, TRACK_NUMBER, w.number(Track::Video));
                    ebml::uint(t, TRACK_UID, rand::random::<u32>().max(1).into());
                    ebml::uint(t, TRACK_TYPE, 1);
                    ebml::uint(t, FLAG_LACING, 0);
                    ebml::bytes(t, CODEC_ID, b"V_VP8");
                    ebml::master(t, VIDEO, |v| {
                        ebml::uint(v, PIXEL_WIDTH, width.into());
                        ebml::uint(v, PIXEL_HEIGHT, height.into());
                    });
                });
            }
            if layout.audio {
                ebml::master(m, TRACK_ENTRY, |t| {
                    ebml::uint(t, TRACK_NUMBER, w.number(Track::Audio));
                    ebml::uint(t, TRACK_UID, rand::random::<u32>().max(1).into());
                    ebml::uint(t, TRACK_TYPE, 2);
                    ebml::uint(t, FLAG_LACING, 0);
                    ebml::bytes(t, CODEC_ID, b"A_OPUS");
                    ebml::bytes(t, CODEC_PRIVATE, &opus_head());
                    ebml::uint(
                        t,
                        CODEC_DELAY,
                        u64::from(OPUS_PRE_SKIP) * 1_000_000_000 / 48_000,
                    );
                    ebml::uint(t, SEEK_PRE_ROLL, OPUS_SEEK_PRE_ROLL_NS);
                    ebml::master(t, AUDIO, |a| {
                        ebml::float(a, SAMPLING_FREQUENCY, 48_000.0);
                        ebml::uint(a, CHANNELS, 2);
                    });
                });
            }
        });
        w
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    fn number(&self, track: Track) -> u64 {
        match (track, self.layout.video.is_some()) {
            (Track::Video, _) => 1,
            (Track::Audio, true) => 2,
            (Track::Audio, false) => 1,
        }
    }

    /// Appends one frame at `ms` (file time, ≥ 0) as a SimpleBlock, opening a cluster
    /// first when needed. Frames of a track the layout lacks are ignored.
    pub fn frame(&mut self, out: &mut Vec<u8>, track: Track, ms: i64, key: bool, data: &[u8]) {
        let present = match track {
            Track::Video => self.layout.video.is_some(),
            Track::Audio => self.layout.audio,
        };
        if !present || ms < 0 {
            return;
        }
        let rel = self.cluster.map(|c| ms - c);
        let new_cluster = match rel {
            None => true,
            Some(r) => {
                (track == Track::Video && key)
                    || r >= CLUSTER_MAX_MS
                    || r > i64::from(i16::MAX)
                    || r < i64::from(i16::MIN)
            }
        };
        if new_cluster {
            ebml::master_unknown(out, CLUSTER);
            ebml::uint(out, TIMESTAMP, ms as u64);
            self.cluster = Some(ms);
        }
        let rel = ms - self.cluster.unwrap_or(ms);
        let rel = i16::try_from(rel).unwrap_or(0);
        let number = self.number(track);
        // Track number (a one-byte vint: 1 or 2), relative timestamp, flags.
        let header_len = 4;
        ebml::id(out, SIMPLE_BLOCK);
        ebml::size(out, (header_len + data.len()) as u64);
        out.push(0x80 | number as u8);
        out.extend_from_slice(&rel.to_be_bytes());
        // Every Opus frame is a key frame; VP8 ones as the frame says.
        let keyframe = track == Track::Audio || key;
        out.push(if keyframe { 0x80 } else { 0x00 });
        out.extend_from_slice(data);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    #[test]
    fn the_header_declares_unknown_sizes_and_both_tracks() {
        let mut out = Vec::new();
        let w = Writer::start(
            Layout {
                video: Some((320, 240)),
                audio: true,
            },
            &mut out,
        );
        assert_eq!(&out[..4], [0x1a, 0x45, 0xdf, 0xa3]);
        let seg = find(&out, &[0x18, 0x53, 0x80, 0x67]).expect("segment");
        assert_eq!(out[seg + 4..seg + 12], ebml::UNKNOWN_SIZE);
        assert!(find(&out, b"V_VP8").is_some());
        assert!(find(&out, b"A_OPUS").is_some());
        assert!(find(&out, b"webm").is_some());
        // PixelWidth 320, PixelHeight 240.
        assert!(find(&out, &[0xb0, 0x82, 0x01, 0x40]).is_some());
        assert!(find(&out, &[0xba, 0x81, 0xf0]).is_some());
        // The OpusHead with its magic, version 1 and two channels.
        let head = find(&out, b"OpusHead").expect("OpusHead");
        assert_eq!(out[head + 8..head + 10], [1, 2]);
        assert_eq!(w.number(Track::Audio), 2);
    }

    #[test]
    fn clusters_open_on_key_frames_every_second_and_before_overflow() {
        let mut out = Vec::new();
        let mut w = Writer::start(
            Layout {
                video: Some((16, 16)),
                audio: true,
            },
            &mut out,
        );
        let header = out.len();
        let count = |o: &[u8]| {
            o.windows(4)
                .filter(|x| *x == [0x1f, 0x43, 0xb6, 0x75])
                .count()
        };
        w.frame(&mut out, Track::Video, 0, true, &[1, 2, 3]);
        w.frame(&mut out, Track::Audio, 10, true, &[9]);
        w.frame(&mut out, Track::Video, 33, false, &[4]);
        assert_eq!(count(&out[header..]), 1);
        // The block: ID, size 4+1, track 2, +10 ms, key flag, payload.
        assert!(find(&out, &[0xa3, 0x85, 0x82, 0x00, 0x0a, 0x80, 9]).is_some());
        // A non-key video block carries no key flag.
        assert!(find(&out, &[0xa3, 0x85, 0x81, 0x00, 0x21, 0x00, 4]).is_some());
        w.frame(&mut out, Track::Video, 66, true, &[5]);
        assert_eq!(count(&out[header..]), 2, "a key frame opens a cluster");
        w.frame(&mut out, Track::Audio, 1066, true, &[6]);
        assert_eq!(count(&out[header..]), 3, "a second passed");
        w.frame(&mut out, Track::Audio, 40_000, true, &[6]);
        assert_eq!(count(&out[header..]), 4, "a gap longer than i16 ms");
        // Audio-only files number their one track 1.
        let mut out = Vec::new();
        let mut w = Writer::start(
            Layout {
                video: None,
                audio: true,
            },
            &mut out,
        );
        assert!(find(&out, b"V_VP8").is_none());
        w.frame(&mut out, Track::Video, 0, true, &[1]);
        assert_eq!(count(&out), 0, "no video track, no video frames");
        w.frame(&mut out, Track::Audio, 0, true, &[1]);
        assert!(find(&out, &[0xa3, 0x85, 0x81, 0x00, 0x00, 0x80, 1]).is_some());
    }
}
