//! Recording tests' helpers: real VP8 and Opus made by ffmpeg (IVF and Ogg files, parsed
//! here), RTP packetizers for them, ffprobe/ffmpeg checks of a WebM file, and a plain-file
//! span store.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sightline::recording::contract::{SpanEnd, SpanStart, SpanStore, SpanWriter};

use crate::support_media::Participant;

/// One coded frame or packet with its media time in its RTP clock's units.
pub struct Coded {
    pub ts: u32,
    pub data: Vec<u8>,
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .expect("ffmpeg/ffprobe must be installed (scripts/setup-test-deps)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `secs` of 320x240 30 fps VP8 (a key frame every `gop` frames) and 48 kHz Opus in 20 ms
/// packets.
pub fn make_media(dir: &Path, secs: u32, gop: u32) -> (Vec<Coded>, Vec<Coded>) {
    let ivf = dir.join("v.ivf");
    let ogg = dir.join("a.ogg");
    let t = secs.to_string();
    let gop = gop.to_string();
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .args([
            "testsrc=size=320x240:rate=30",
            "-t",
            &t,
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-b:v",
            "300k",
            "-g",
            &gop,
        ])
        .arg(&ivf));
    run(Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .args([
            "sine=f=440:sample_rate=48000",
            "-t",
            &t,
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            "-frame_duration",
            "20",
        ])
        .arg(&ogg));
    let video = parse_ivf(&std::fs::read(&ivf).expect("ivf"));
    let audio = parse_ogg_opus(&std::fs::read(&ogg).expect("ogg"));
    assert!(
        video.len() as u32 >= secs * 29,
        "{} video frames",
        video.len()
    );
    assert!(
        audio.len() as u32 >= secs * 49,
        "{} audio packets",
        audio.len()
    );
    (video, audio)
}

/// IVF: a 32-byte header (DKIF, …, time base), then frames: size, pts (u64), data.
fn parse_ivf(b: &[u8]) -> Vec<Coded> {
    assert_eq!(&b[..4], b"DKIF");
    let header = usize::from(u16::from_le_bytes([b[6], b[7]]));
    let rate = u32::from_le_bytes(b[16..20].try_into().expect("rate"));
    let scale = u32::from_le_bytes(b[20..24].try_into().expect("scale"));
    let mut i = header;
    let mut frames = Vec::new();
    while i + 12 <= b.len() {
        let size = u32::from_le_bytes(b[i..i + 4].try_into().expect("size")) as usize;
        let pts = u64::from_le_bytes(b[i + 4..i + 12].try_into().expect("pts"));
        let data = b[i + 12..i + 12 + size].to_vec();
        let ts = (pts * 90_000 * u64::from(scale) / u64::from(rate)) as u32;
        frames.push(Coded { ts, data });
        i += 12 + size;
    }
    frames
}

/// Ogg pages → Opus packets (the two header packets skipped), 960 samples each.
fn parse_ogg_opus(b: &[u8]) -> Vec<Coded> {
    let mut packets: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::new();
    let mut i = 0;
    while i + 27 <= b.len() {
        assert_eq!(&b[i..i + 4], b"OggS");
        let nseg = usize::from(b[i + 26]);
        let table = &b[i + 27..i + 27 + nseg];
        let mut p = i + 27 + nseg;
        for &lace in table {
            cur.extend_from_slice(&b[p..p + usize::from(lace)]);
            p += usize::from(lace);
            if lace < 255 {
                packets.push(std::mem::take(&mut cur));
            }
        }
        i = p;
    }
    assert!(packets[0].starts_with(b"OpusHead"));
    assert!(packets[1].starts_with(b"OpusTags"));
    packets
        .into_iter()
        .skip(2)
        .enumerate()
        .map(|(n, data)| Coded {
            ts: n as u32 * 960,
            data,
        })
        .collect()
}

/// VP8 RTP payloads of one frame (RFC 7741: a one-byte descriptor, S on the first).
pub fn vp8_payloads(frame: &[u8], mtu: usize) -> Vec<Vec<u8>> {
    frame
        .chunks(mtu)
        .enumerate()
        .map(|(i, c)| {
            let mut p = vec![if i == 0 { 0x10 } else { 0x00 }];
            p.extend_from_slice(c);
            p
        })
        .collect()
}

/// One participant's media, sent on the media clock (looping the clip; the clip is shared).
pub struct Sender {
    video: Arc<Vec<Coded>>,
    audio: Arc<Vec<Coded>>,
    next_video: usize,
    next_audio: usize,
    vseq: u16,
    aseq: u16,
    vbase: u32,
    abase: u32,
}

impl Sender {
    pub fn new(video: Arc<Vec<Coded>>, audio: Arc<Vec<Coded>>) -> Sender {
        Sender {
            video,
            audio,
            next_video: 0,
            next_audio: 0,
            vseq: rand::random(),
            aseq: rand::random(),
            vbase: rand::random(),
            abase: rand::random(),
        }
    }

    /// Sends everything due `elapsed` into the stream (looping the media).
    pub async fn send_due(&mut self, p: &Participant, elapsed: Duration) {
        let us = elapsed.as_micros() as u64;
        loop {
            let n = self.next_video;
            let f = &self.video[n % self.video.len()];
            let lap = (n / self.video.len()) as u64;
            let lap_len = self.video.len() as u64 * 3000;
            let ts = u64::from(f.ts) + lap * lap_len;
            if ts * 1_000_000 / 90_000 > us {
                break;
            }
            let parts = vp8_payloads(&f.data, 1100);
            let last = parts.len();
            for (i, part) in parts.into_iter().enumerate() {
                self.vseq = self.vseq.wrapping_add(1);
                let rtp_ts = self.vbase.wrapping_add(ts as u32);
                p.send_rtp(true, self.vseq, rtp_ts, i + 1 == last, part)
                    .await;
            }
            self.next_video += 1;
        }
        loop {
            let n = self.next_audio;
            let a = &self.audio[n % self.audio.len()];
            let lap = (n / self.audio.len()) as u64;
            let ts = u64::from(a.ts) + lap * self.audio.len() as u64 * 960;
            if ts * 1_000_000 / 48_000 > us {
                break;
            }
            self.aseq = self.aseq.wrapping_add(1);
            let rtp_ts = self.abase.wrapping_add(ts as u32);
            p.send_rtp(false, self.aseq, rtp_ts, false, a.data.clone())
                .await;
            self.next_audio += 1;
        }
    }
}

/// What ffprobe says about a file: (codec, start time s) per stream, and the end of the
/// last packet (s). A live-written WebM has no Duration element (as a browser's
/// MediaRecorder file), so the duration is where its packets end.
pub struct Probe {
    pub streams: Vec<(String, f64)>,
    pub end: f64,
}

pub fn probe(file: &Path) -> Probe {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_format",
            "-show_packets",
            "-of",
            "json",
        ])
        .arg(file));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let f = |x: &serde_json::Value| {
        x.as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let streams = v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or("").to_owned(),
                f(&s["start_time"]),
            )
        })
        .collect();
    let end = v["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| f(&p["pts_time"]) + f(&p["duration_time"]).max(0.0))
        .filter(|t| t.is_finite())
        .fold(0.0, f64::max);
    Probe { streams, end }
}

/// Decodes the whole file; returns what ffmpeg printed at level "error".
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Frames of each stream ffmpeg decodes (video, audio).
pub fn decoded_frames(file: &Path) -> (u64, u64) {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "quiet",
            "-count_frames",
            "-show_entries",
            "stream=codec_type,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(file));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let mut r = (0, 0);
    for s in v["streams"].as_array().into_iter().flatten() {
        let n = s["nb_read_frames"]
            .as_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        match s["codec_type"].as_str() {
            Some("video") => r.0 = n,
            Some("audio") => r.1 = n,
            _ => {}
        }
    }
    r
}

/// A span store writing plain files into a directory (what storage does, minus keys).
#[derive(Clone, Default)]
pub struct FileStore {
    pub dir: PathBuf,
    pub finished: Arc<Mutex<Vec<(SpanStart, SpanEnd, PathBuf)>>>,
    pub started: Arc<Mutex<Vec<SpanStart>>>,
    pub flushes: Arc<Mutex<u64>>,
}

struct FileWriter {
    file: std::fs::File,
    buf: Vec<u8>,
    len: u64,
    flushes: Arc<Mutex<u64>>,
}

impl SpanWriter for FileWriter {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        if let Ok(mut n) = self.flushes.lock() {
            *n += 1;
        }
        self.file.sync_data()
    }
    fn len(&self) -> u64 {
        self.len
    }
}

impl FileStore {
    pub fn new(dir: &Path) -> FileStore {
        FileStore {
            dir: dir.to_owned(),
            ..Default::default()
        }
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.webm"))
    }

    pub fn finished(&self) -> Vec<(SpanStart, SpanEnd, PathBuf)> {
        self.finished.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl SpanStore for FileStore {
    async fn open(&self, start: SpanStart) -> Result<Box<dyn SpanWriter>, String> {
        let file =
            std::fs::File::create(self.path(&start.recording_id)).map_err(|e| e.to_string())?;
        if let Ok(mut s) = self.started.lock() {
            s.push(start);
        }
        Ok(Box::new(FileWriter {
            file,
            buf: Vec::new(),
            len: 0,
            flushes: self.flushes.clone(),
        }))
    }

    async fn finish(
        &self,
        recording_id: &str,
        mut writer: Box<dyn SpanWriter>,
        end: SpanEnd,
    ) -> Result<(), String> {
        writer.flush().map_err(|e| e.to_string())?;
        let start = self
            .started
            .lock()
            .ok()
            .and_then(|s| s.iter().find(|s| s.recording_id == recording_id).cloned())
            .ok_or("unknown span")?;
        if let Ok(mut f) = self.finished.lock() {
            f.push((start, end, self.path(recording_id)));
        }
        Ok(())
    }
}
