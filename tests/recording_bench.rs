//! Recording benchmark (BENCHMARKS.md, "Recording"): webrtc-rs participants in routed 1:1
//! calls send ffmpeg-made VP8 (320x240, 30 fps, 300 kbit/s, a key frame a second) and Opus
//! (32 kbit/s, 20 ms) in real time through the real engine; the recorder writes every
//! participant into a WebM. The server side (engine, recorder, span writers) runs on a
//! runtime of its own whose threads are named `srv`; the clients on threads named `cli`.
//! Server CPU = utime + stime of the `srv` threads from /proc/self/task/*/stat.
//! Ignored by default; `scripts/bench-recording` runs it (release build).

#[path = "api/support_media.rs"]
#[allow(dead_code)]
mod support_media;
#[path = "api/support_recording.rs"]
#[allow(dead_code)]
mod support_recording;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sightline::domain::{Role, Seat};
use sightline::media::{Command, Event, MediaEngine, MediaSettings};
use sightline::recording::Recorder;
use sightline::recording::contract::{SpanEnd, SpanStart, SpanStore, SpanWriter};
use support_media::Participant;
use support_recording::{Coded, FileStore, Sender, decode_errors};
use tokio::sync::watch;

/// Plain files like the tests' `FileStore`, but `sync_data` on flush only with
/// `BENCH_REC_FSYNC=1` (the server's `recording.fsync`, off by default); a flush writes
/// the buffered second to the file (one `write` per span and second, as the sealed
/// writer does).
#[derive(Clone)]
struct BenchStore {
    files: FileStore,
    fsync: bool,
}

struct BenchWriter {
    file: std::fs::File,
    buf: Vec<u8>,
    len: u64,
    fsync: bool,
}

impl SpanWriter for BenchWriter {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        self.len += bytes.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        if self.fsync {
            self.file.sync_data()?;
        }
        Ok(())
    }
    fn len(&self) -> u64 {
        self.len
    }
}

#[async_trait::async_trait]
impl SpanStore for BenchStore {
    async fn open(&self, start: SpanStart) -> Result<Box<dyn SpanWriter>, String> {
        let file = std::fs::File::create(self.files.path(&start.recording_id))
            .map_err(|e| e.to_string())?;
        if let Ok(mut s) = self.files.started.lock() {
            s.push(start);
        }
        Ok(Box::new(BenchWriter {
            file,
            buf: Vec::new(),
            len: 0,
            fsync: self.fsync,
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
            .files
            .started
            .lock()
            .ok()
            .and_then(|s| s.iter().find(|s| s.recording_id == recording_id).cloned())
            .ok_or("unknown span")?;
        if let Ok(mut f) = self.files.finished.lock() {
            f.push((start, end, self.files.path(recording_id)));
        }
        Ok(())
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU seconds of this process's threads whose name starts with `prefix`.
fn cpu_of(prefix: &str) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0u64;
    if let Ok(dir) = std::fs::read_dir("/proc/self/task") {
        for t in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else {
                continue;
            };
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                continue;
            };
            if !stat[open + 1..close].starts_with(prefix) {
                continue;
            }
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            // After the name: state(0) … utime(11) stime(12).
            let u: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0);
            let s: u64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
            total += u + s;
        }
    }
    total as f64 / tick
}

/// The server side: engine and recorder on their own runtime.
struct Server {
    rt: tokio::runtime::Runtime,
    engine: MediaEngine,
    recorder: Recorder,
    store: FileStore,
}

impl Server {
    fn start(dir: &std::path::Path) -> Server {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("srv")
            .enable_all()
            .build()
            .expect("server runtime");
        let store = FileStore::new(dir);
        let st = BenchStore {
            files: store.clone(),
            fsync: env_u64("BENCH_REC_FSYNC", 0) == 1,
        };
        let (engine, recorder) = rt.block_on(async move {
            let stop = tokio_util::sync::CancellationToken::new();
            let engine = MediaEngine::start(&MediaSettings::default(), stop)
                .await
                .expect("engine");
            let recorder = Recorder::start(&engine, Arc::new(st)).await;
            (engine, recorder)
        });
        Server {
            rt,
            engine,
            recorder,
            store,
        }
    }

    /// Records (or stops) both participants of a call, from the server runtime.
    fn record(&self, call: &str, on: bool) {
        let r = self.recorder.clone();
        let call = call.to_owned();
        self.rt.block_on(async move {
            for who in ["agent", "customer"] {
                r.set(&call, who, on).await.expect("record");
            }
        });
    }
}

/// A 1:1 call driven by one client task: answers the engine's offers, sends both
/// participants' media until `stop` turns true.
async fn run_call(
    engine: MediaEngine,
    call: String,
    media: (Arc<Vec<Coded>>, Arc<Vec<Coded>>),
    mut stop: watch::Receiver<bool>,
) {
    let mut events = engine.subscribe(&call).await;
    let mut parts = vec![
        ("agent", Participant::new("agent").await, Role::Agent),
        (
            "customer",
            Participant::new("customer").await,
            Role::Customer,
        ),
    ];
    for (id, _, role) in &parts {
        engine
            .command(Command::Join {
                call: call.clone(),
                participant: (*id).to_owned(),
                seat: Seat::new(*role, None),
            })
            .await
            .expect("join");
    }
    let mut senders: Vec<Sender> = parts
        .iter()
        .map(|_| Sender::new(media.0.clone(), media.1.clone()))
        .collect();
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !*stop.borrow() {
        while let Ok(ev) = events.try_recv() {
            if let Event::Offer {
                participant, sdp, ..
            } = ev
                && let Some((_, p, _)) = parts.iter_mut().find(|(id, _, _)| *id == participant)
            {
                let answer = p.answer(&sdp).await;
                let _ = engine
                    .command(Command::Answer {
                        call: call.clone(),
                        participant: participant.clone(),
                        sdp: answer,
                    })
                    .await;
            }
        }
        for ((_, p, _), s) in parts.iter().zip(senders.iter_mut()) {
            s.send_due(p, start.elapsed()).await;
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => {}
        }
    }
    for (_, p, _) in &parts {
        let _ = p.pc.close().await;
    }
}

fn clients_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("cli")
        .enable_all()
        .build()
        .expect("client runtime")
}

fn media(dir: &std::path::Path) -> (Arc<Vec<Coded>>, Arc<Vec<Coded>>) {
    let (v, a) = support_recording::make_media(dir, 4, 30);
    (Arc::new(v), Arc::new(a))
}

/// Per stream (codec, first pts, end = last pts + duration) from ffprobe's packets.
fn stream_ends(file: &std::path::Path) -> Vec<(String, f64, f64)> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_streams",
            "-show_packets",
            "-of",
            "json",
        ])
        .arg(file)
        .output()
        .expect("ffprobe");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ffprobe json");
    let num = |x: &serde_json::Value| x.as_str().and_then(|s| s.parse::<f64>().ok());
    let mut r: Vec<(String, f64, f64)> = v["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            (
                s["codec_name"].as_str().unwrap_or("").to_owned(),
                f64::INFINITY,
                0.0,
            )
        })
        .collect();
    for p in v["packets"].as_array().into_iter().flatten() {
        let (Some(i), Some(pts)) = (p["stream_index"].as_u64(), num(&p["pts_time"])) else {
            continue;
        };
        let d = num(&p["duration_time"]).unwrap_or(0.0);
        if let Some(s) = r.get_mut(i as usize) {
            s.1 = s.1.min(pts);
            s.2 = s.2.max(pts + d);
        }
    }
    r.sort_by(|a, b| a.0.cmp(&b.0));
    r
}

fn measure(server: &Server, secs: u64) -> (f64, f64, f64) {
    let (s0, c0, b0, t0) = (
        cpu_of("srv"),
        cpu_of("cli"),
        server.engine.busy(),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let wall = t0.elapsed().as_secs_f64();
    (
        (cpu_of("srv") - s0) / wall,
        (cpu_of("cli") - c0) / wall,
        (server.engine.busy() - b0).as_secs_f64() / wall,
    )
}

/// (a) recorded against unrecorded, same calls, same run; (b) a ramp of recorded calls
/// until the server's threads use one core, the clients saturate the machine, or
/// `BENCH_REC_MAX_CALLS`; (c) bytes per minute per participant from every file.
#[test]
#[ignore = "benchmark"]
fn recording_cpu_and_capacity() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = media(dir.path());
    let server = Server::start(dir.path());
    let clients = clients_runtime();
    println!(
        "span files: fsync on flush {}",
        if env_u64("BENCH_REC_FSYNC", 0) == 1 {
            "on"
        } else {
            "off"
        }
    );
    let step = env_u64("BENCH_REC_STEP", 5) as usize;
    let max_calls = env_u64("BENCH_REC_MAX_CALLS", 60) as usize;
    let secs = env_u64("BENCH_REC_SECS", 10);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut calls: Vec<String> = Vec::new();
    let mut tasks = Vec::new();
    let mut add_calls = |n: usize, calls: &mut Vec<String>| {
        for _ in 0..n {
            let call = format!("call-{}", rand::random::<u32>());
            tasks.push(clients.spawn(run_call(
                server.engine.clone(),
                call.clone(),
                media.clone(),
                stop_rx.clone(),
            )));
            calls.push(call);
        }
        // Connect, key frames flowing.
        std::thread::sleep(Duration::from_secs(4));
    };
    println!(
        "| calls | recorded | server CPU (share of one core) | engine busy | clients CPU | fwd pkts/s | recorded pkts/s | recorded_dropped |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let row = |n: usize, rec: bool, secs: u64| {
        let (st0, _, _) = server.engine.stats();
        let (srv, cli, busy) = measure(&server, secs);
        let (st1, _, _) = server.engine.stats();
        let rate = |a: u64, b: u64| (b - a) as f64 / secs as f64;
        println!(
            "| {n} | {} | {:.1}% | {:.1}% | {:.1}% | {:.0} | {:.0} | {} |",
            if rec { "yes" } else { "no" },
            srv * 100.0,
            busy * 100.0,
            cli * 100.0,
            rate(st0.forwarded_packets, st1.forwarded_packets),
            rate(st0.rtp_recorded, st1.rtp_recorded),
            st1.recorded_dropped,
        );
        (srv, cli, rate(st0.forwarded_packets, st1.forwarded_packets))
    };

    // (a) The same calls, forwarded, then also recorded.
    let first = step.min(max_calls);
    add_calls(first, &mut calls);
    let (plain, _, first_fwd) = row(calls.len(), false, secs);
    let first_rate = first_fwd / calls.len() as f64;
    let on_at: Vec<(usize, SystemTime)> = Vec::new();
    let mut on_at = on_at;
    for c in &calls {
        server.record(c, true);
    }
    on_at.push((calls.len(), SystemTime::now()));
    std::thread::sleep(Duration::from_secs(2));
    let (recorded, _, _) = row(calls.len(), true, secs);
    println!(
        "\n(a) {} calls: forwarding {:.2}% of a core per call, forwarding + recording {:.2}% \
         per call: recording costs {:.2}% of a core per call, x{:.2} the forwarding alone\n",
        calls.len(),
        plain * 100.0 / calls.len() as f64,
        recorded * 100.0 / calls.len() as f64,
        (recorded - plain) * 100.0 / calls.len() as f64,
        recorded / plain
    );

    // (b) Ramp.
    let mut last = (calls.len(), recorded);
    while calls.len() < max_calls {
        let before = calls.len();
        add_calls(step.min(max_calls - before), &mut calls);
        for c in &calls[before..] {
            server.record(c, true);
        }
        std::thread::sleep(Duration::from_secs(2));
        let (srv, cli, fwd) = row(calls.len(), true, secs);
        // Healthy: every call's packets still forwarded at the first step's rate.
        if fwd / (calls.len() as f64) < 0.9 * first_rate {
            println!("stopping the ramp: forwarding fell to {fwd:.0} packets/s");
            break;
        }
        last = (calls.len(), srv);
        if srv >= 0.95 || srv + cli >= 1.9 {
            println!("stopping the ramp: server {srv:.2} cores, clients {cli:.2} cores");
            break;
        }
    }
    let (stats, _, _) = server.engine.stats();
    let stopped_at = SystemTime::now();
    let r = server.recorder.clone();
    server.rt.block_on(async move { r.stop_all().await });
    let _ = stop_tx.send(true);
    clients.block_on(async {
        for t in tasks {
            let _ = t.await;
        }
    });
    println!(
        "\n(b) {} recorded 1:1 calls (the last healthy step): server {:.1}% of a core = {:.2}% per call → {:.0} calls \
         per core at this cost per call; engine {stats:?}",
        last.0,
        last.1 * 100.0,
        last.1 * 100.0 / last.0 as f64,
        last.0 as f64 / last.1
    );

    // (c) and completeness: every file against the time it was recorded.
    let finished = server.store.finished();
    assert_eq!(finished.len(), calls.len() * 2, "one file per participant");
    let mut rates = Vec::new();
    let mut worst_gap: f64 = 0.0;
    for (i, (span, end, path)) in finished.iter().enumerate() {
        assert_eq!(end.failure, None, "{path:?}");
        let s = stream_ends(path);
        assert_eq!(
            s.iter().map(|x| x.0.as_str()).collect::<Vec<_>>(),
            ["opus", "vp8"],
            "{path:?}"
        );
        let file_end = s[0].2.max(s[1].2);
        let wall = stopped_at
            .duration_since(span.started_at)
            .unwrap_or_default()
            .as_secs_f64();
        worst_gap = worst_gap.max((wall - file_end).abs());
        let bytes = std::fs::metadata(path).expect("file").len() as f64;
        rates.push(bytes / file_end * 60.0);
        if i % 10 == 0 {
            let errors = decode_errors(path);
            assert!(errors.trim().is_empty(), "{path:?}: {errors}");
        }
    }
    rates.sort_by(f64::total_cmp);
    println!(
        "\n(c) {} files: bytes per minute per participant p50 {:.0} (min {:.0}, max {:.0}); \
         the worst file ends {:.2} s from its wall-clock span; every 10th file decoded clean",
        rates.len(),
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        worst_gap,
    );
    assert!(worst_gap < 1.5, "a file is {worst_gap:.2} s short");
}

/// (d) One call, both participants recorded for `BENCH_REC_SKEW_SECS` (600): the audio
/// and video ends in the file against each other and against the wall clock.
#[test]
#[ignore = "benchmark"]
fn recording_av_skew() {
    let dir = tempfile::tempdir().expect("tempdir");
    let media = media(dir.path());
    let server = Server::start(dir.path());
    let clients = clients_runtime();
    let secs = env_u64("BENCH_REC_SKEW_SECS", 600);
    let (stop_tx, stop_rx) = watch::channel(false);
    let call = format!("call-{}", rand::random::<u32>());
    let task = clients.spawn(run_call(
        server.engine.clone(),
        call.clone(),
        media,
        stop_rx,
    ));
    std::thread::sleep(Duration::from_secs(4));
    server.record(&call, true);
    std::thread::sleep(Duration::from_secs(secs));
    let stopped_at = SystemTime::now();
    server.record(&call, false);
    let r = server.recorder.clone();
    server.rt.block_on(async move { r.stop_all().await });
    let _ = stop_tx.send(true);
    let _ = clients.block_on(task);
    let (stats, _, _) = server.engine.stats();
    for (span, end, path) in server.store.finished() {
        let wall = stopped_at
            .duration_since(span.started_at)
            .unwrap_or_default()
            .as_secs_f64();
        let s = stream_ends(&path);
        let (a, v) = (&s[0], &s[1]);
        let bytes = std::fs::metadata(&path).expect("file").len() as f64;
        println!(
            "(d) {}: wall clock {wall:.3} s; opus {:.3}–{:.3} s, vp8 {:.3}–{:.3} s; \
             end skew audio−video {:+.0} ms; audio end − wall {:+.0} ms, video end − wall \
             {:+.0} ms; {:.0} bytes/min; failure {:?}",
            span.participant_id,
            a.1,
            a.2,
            v.1,
            v.2,
            (a.2 - v.2) * 1000.0,
            (a.2 - wall) * 1000.0,
            (v.2 - wall) * 1000.0,
            bytes / v.2.max(a.2) * 60.0,
            end.failure,
        );
        let errors = decode_errors(&path);
        assert!(errors.trim().is_empty(), "{path:?}: {errors}");
        assert!((a.2 - v.2).abs() < 0.1, "end skew");
        assert!((a.2 - wall).abs() < 1.0, "audio end vs wall clock");
    }
    println!("engine {stats:?}");
}
