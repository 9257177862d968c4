//! One case of the SFU benchmark (`scripts/bench-sfu` runs them all, side by side): one
//! publisher sends audio and video through a server to N subscribers, all webrtc-rs
//! clients in this process. Measures, over a fixed window: the server process's CPU
//! seconds (`/proc/PID/stat`) per delivered packet, one-way latency publisher → server →
//! subscriber from a timestamp in each RTP payload (p50/p99), loss per packet index, the
//! server's RSS growth per participant, and each subscriber's time from join to its first
//! video packet. Prints one row of the results table.
//!
//! `--server sightline`: the real app (a separate process) through its REST API and
//! signaling WebSocket, `media_mode: routed`. `--server janus`: Janus's VideoRoom over its
//! HTTP transport. `--server direct`: publisher and one subscriber peer to peer, no server
//! (the clients' own latency, to subtract).

mod janus;
mod peer;
mod sightline;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::{Parser, ValueEnum};
use serde_json::json;

use peer::{Kind, Load, Peer, Rx, Sent};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Debug)]
enum Server {
    Sightline,
    Janus,
    Direct,
}

#[derive(Parser)]
struct Args {
    #[arg(long, value_enum)]
    server: Server,
    /// Sightline: its base URL; Janus: the HTTP transport's URL (…/janus).
    #[arg(long, default_value = "")]
    url: String,
    /// Sightline: the file holding an API key.
    #[arg(long)]
    key_file: Option<std::path::PathBuf>,
    /// The server's process id (CPU and memory are read from /proc).
    #[arg(long)]
    pid: Option<u32>,
    #[arg(long, default_value_t = 1)]
    subs: usize,
    /// Length of the measured window, seconds.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    #[arg(long, default_value_t = 200)]
    video_pps: u32,
    #[arg(long, default_value_t = 1000)]
    video_len: usize,
    #[arg(long, default_value_t = 50)]
    audio_pps: u32,
    #[arg(long, default_value_t = 100)]
    audio_len: usize,
    /// The clients' address (Janus gathers no candidates on a loopback interface, so the
    /// script gives both servers and the clients an address on a veth interface).
    #[arg(long, default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Print the table's header first.
    #[arg(long)]
    header: bool,
}

/// utime + stime of a process, seconds.
fn cpu_secs(pid: Option<u32>) -> f64 {
    let Some(pid) = pid else { return 0.0 };
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15 (1-based) → 11, 12 here.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|i| f.get(*i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / hz
}

/// VmRSS of a process, kB.
fn rss_kb(pid: Option<u32>) -> i64 {
    let Some(pid) = pid else { return 0 };
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn first_video(rx: &Rx, since: Instant, limit: Duration) -> anyhow::Result<Duration> {
    let end = since + limit;
    loop {
        if let Some(t) = rx.lock().ok().and_then(|r| r.first_video) {
            return Ok(t.saturating_duration_since(since));
        }
        if Instant::now() > end {
            bail!("no video within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i.min(sorted.len() - 1)]) / 1000.0
}

struct Window {
    from: [u32; 2],
    to: [u32; 2],
}

fn snapshot(sent: &Sent) -> [u32; 2] {
    [
        sent[0].load(Ordering::Relaxed),
        sent[1].load(Ordering::Relaxed),
    ]
}

/// (delivered, expected, latencies in µs sorted) over every subscriber.
fn tally(subs: &[Rx], w: &Window) -> (u64, u64, Vec<u32>) {
    let (mut got, mut want, mut lat) = (0u64, 0u64, Vec::new());
    for rx in subs {
        let Ok(r) = rx.lock() else { continue };
        for k in [Kind::Audio, Kind::Video] {
            let (a, b) = (w.from[k as usize], w.to[k as usize]);
            want += u64::from(b - a);
            let seen = &r.seen[k as usize];
            got += (a..b)
                .filter(|i| seen.get(*i as usize).copied().unwrap_or(false))
                .count() as u64;
        }
        lat.extend(
            r.latency_us
                .iter()
                .filter(|(k, i, _)| (w.from[*k as usize]..w.to[*k as usize]).contains(i))
                .map(|(_, _, l)| *l),
        );
    }
    lat.sort_unstable();
    (got, want, lat)
}

/// What a server adapter hands the measuring code once everyone is connected.
struct Setup {
    sent: Sent,
    subs: Vec<Rx>,
    first_frames: Vec<Duration>,
    teardown: Box<dyn FnOnce() -> futures_util::future::BoxFuture<'static, ()> + Send>,
}

async fn setup_sightline(a: &Args, load: Load, stop: Arc<AtomicBool>) -> anyhow::Result<Setup> {
    let key_file = a.key_file.as_ref().context("--key-file")?;
    let key = std::fs::read_to_string(key_file)?.trim().to_owned();
    let s = sightline::Sightline::session(&a.url, &key, a.subs).await?;
    let publisher = Peer::new(true, a.bind).await?;
    let sent = publisher.start_sending(load, stop);
    let mut pages = vec![s.join(0, publisher).await?];
    let (mut subs, mut first_frames) = (Vec::new(), Vec::new());
    for i in 1..=a.subs {
        let t0 = Instant::now();
        let page = s.join(i, Peer::new(false, a.bind).await?).await?;
        first_frames.push(first_video(&page.rx, t0, Duration::from_secs(30)).await?);
        subs.push(page.rx.clone());
        pages.push(page);
    }
    Ok(Setup {
        sent,
        subs,
        first_frames,
        teardown: Box::new(move || {
            Box::pin(async move {
                let _ = s.end().await;
                for p in pages {
                    p.close().await;
                }
            })
        }),
    })
}

async fn setup_janus(a: &Args, load: Load, stop: Arc<AtomicBool>) -> anyhow::Result<Setup> {
    const WAIT: Duration = Duration::from_secs(20);
    let j = janus::Janus::connect(&a.url).await?;
    let mut ph = j.attach().await?;
    let room = u64::from(rand::random::<u32>());
    j.message(
        &ph,
        json!({"request": "create", "room": room, "publishers": 1, "audiocodec": "opus",
               "videocodec": "vp8", "bitrate": 0, "fir_freq": 0}),
        None,
    )
    .await?;
    let mut publisher = Peer::new(true, a.bind).await?;
    let offer = publisher.offer().await?;
    j.message(
        &ph,
        json!({"request": "joinandconfigure", "room": room, "ptype": "publisher",
               "display": "publisher"}),
        Some(json!({"type": "offer", "sdp": offer})),
    )
    .await?;
    let (data, jsep) = ph.jsep_event(WAIT).await?;
    let feed = data["id"]
        .as_u64()
        .ok_or_else(|| anyhow!("publisher id: {data}"))?;
    publisher
        .set_answer(jsep["sdp"].as_str().context("answer sdp")?)
        .await?;
    j.trickle_done(&ph).await?;
    if !publisher.wait_connected(WAIT).await {
        bail!("the publisher did not connect to Janus");
    }
    ph.core_event("webrtcup", WAIT).await?;
    let sent = publisher.start_sending(load, stop);
    let (mut subs, mut first_frames, mut peers, mut handles) = (
        Vec::new(),
        Vec::new(),
        vec![publisher.pc.clone()],
        Vec::new(),
    );
    for _ in 0..a.subs {
        let t0 = Instant::now();
        let mut h = j.attach().await?;
        // Right after `webrtcup` the plugin may not list the feed yet: ask again.
        let mut tries = 0;
        while let Err(e) = j
            .message(
                &h,
                json!({"request": "join", "room": room, "ptype": "subscriber",
                       "streams": [{"feed": feed}]}),
                None,
            )
            .await
        {
            tries += 1;
            if tries > 100 || !e.to_string().contains("No such feed") {
                return Err(e);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, jsep) = h.jsep_event(WAIT).await?;
        let mut sub = Peer::new(false, a.bind).await?;
        let answer = sub
            .answer(jsep["sdp"].as_str().context("offer sdp")?)
            .await?;
        j.message(
            &h,
            json!({"request": "start"}),
            Some(json!({"type": "answer", "sdp": answer})),
        )
        .await?;
        j.trickle_done(&h).await?;
        first_frames.push(first_video(&sub.rx, t0, Duration::from_secs(30)).await?);
        subs.push(sub.rx.clone());
        peers.push(sub.pc.clone());
        handles.push(h);
    }
    Ok(Setup {
        sent,
        subs,
        first_frames,
        teardown: Box::new(move || {
            Box::pin(async move {
                for pc in peers {
                    let _ = pc.close().await;
                }
                for h in &handles {
                    j.detach(h).await;
                }
                let _ = j
                    .message(&ph, json!({"request": "destroy", "room": room}), None)
                    .await;
                j.detach(&ph).await;
                let _ = &mut ph;
                j.destroy().await;
            })
        }),
    })
}

async fn setup_direct(a: &Args, load: Load, stop: Arc<AtomicBool>) -> anyhow::Result<Setup> {
    let mut publisher = Peer::new(true, a.bind).await?;
    let mut sub = Peer::new(false, a.bind).await?;
    let t0 = Instant::now();
    let offer = publisher.offer().await?;
    let answer = sub.answer(&offer).await?;
    publisher.set_answer(&answer).await?;
    let sent = publisher.start_sending(load, stop);
    let first = first_video(&sub.rx, t0, Duration::from_secs(30)).await?;
    let pcs = [publisher.pc.clone(), sub.pc.clone()];
    Ok(Setup {
        sent,
        subs: vec![sub.rx.clone()],
        first_frames: vec![first],
        teardown: Box::new(move || {
            Box::pin(async move {
                for pc in pcs {
                    let _ = pc.close().await;
                }
            })
        }),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    ::sightline::install_crypto_provider();
    let load = Load {
        video_pps: a.video_pps,
        video_len: a.video_len,
        audio_pps: a.audio_pps,
        audio_len: a.audio_len,
    };
    if a.header {
        println!(
            "| server    | subs | sent/s | window s | delivered | lost | CPU s | CPU µs/pkt | p50 ms | p99 ms | max ms | RSS kB/participant | first video ms (median, max) |"
        );
        println!(
            "|-----------|------|--------|----------|-----------|------|-------|------------|--------|--------|--------|--------------------|------------------------------|"
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let rss0 = rss_kb(a.pid);
    let setup = match a.server {
        Server::Sightline => setup_sightline(&a, load, stop.clone()).await,
        Server::Janus => setup_janus(&a, load, stop.clone()).await,
        Server::Direct => setup_direct(&a, load, stop.clone()).await,
    }
    .with_context(|| format!("{:?} with {} subscribers", a.server, a.subs))?;
    let rss1 = rss_kb(a.pid);
    // Let the joins' renegotiations and key-frame requests settle.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c0, from) = (cpu_secs(a.pid), snapshot(&setup.sent));
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(a.secs)).await;
    let (c1, to) = (cpu_secs(a.pid), snapshot(&setup.sent));
    let window = t0.elapsed().as_secs_f64();
    // Late packets of the window still arrive while sending goes on.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let (got, want, lat) = tally(&setup.subs, &Window { from, to });
    (setup.teardown)().await;
    let mut ff: Vec<u128> = setup.first_frames.iter().map(|d| d.as_millis()).collect();
    ff.sort_unstable();
    let cpu = c1 - c0;
    let per_pkt_us = if got > 0 {
        cpu / got as f64 * 1e6
    } else {
        f64::NAN
    };
    let sent_per_s = f64::from((to[0] - from[0]) + (to[1] - from[1])) / window;
    let participants = (a.subs + 1) as i64;
    println!(
        "| {:<9} | {:>4} | {:>6.0} | {:>8.1} | {:>9} | {:>4} | {:>5.2} | {:>10.2} | {:>6.2} | {:>6.2} | {:>6.2} | {:>18} | {:>28} |",
        format!("{:?}", a.server).to_lowercase(),
        a.subs,
        sent_per_s,
        window,
        got,
        want - got,
        cpu,
        per_pkt_us,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        lat.last().map_or(f64::NAN, |l| f64::from(*l) / 1000.0),
        if a.pid.is_some() {
            ((rss1 - rss0) / participants).to_string()
        } else {
            "-".into()
        },
        format!(
            "{}, {}",
            ff.get(ff.len() / 2).copied().unwrap_or(0),
            ff.last().copied().unwrap_or(0)
        ),
    );
    Ok(())
}
