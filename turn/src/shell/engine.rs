//! The UDP engine: one OS thread per UDP listener owns a [`Core`], the
//! listener socket and all relay sockets of its allocations, driven by mio
//! (epoll). The hot path has no locks, no per-packet allocation and O(1)
//! dispatch (token = allocation slot). TCP/TLS connections are accepted
//! (and TLS-handshaked) on tokio, then handed to the engine through a
//! channel plus a waker; from then on the engine reads and writes them
//! itself (see `conns`), so a message relayed between a stream client and
//! a peer costs no task wake-up or channel hop.

use super::conns::{self, STREAM_BASE, StreamBufs, StreamIo, Streams};
use super::limits::ConnPermit;
use crate::core::{ClientKey, Core, Family, HEADROOM, Io, Now, Shared};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const RELAY_BASE: usize = 2;
/// Packets read from one socket before others get a turn.
const BUDGET: usize = 64;
const RECV_BUF: usize = 65_536;
/// Stream-side messages handled before sockets get a turn.
const MSG_BUDGET: usize = 256;

/// A TCP/TLS connection handed to an engine.
pub(crate) struct NewStream {
    pub sock: std::net::TcpStream,
    pub addr: SocketAddr,
    /// The TLS session after its handshake (`None`: plain TCP).
    pub tls: Option<Box<rustls::ServerConnection>>,
    pub permit: ConnPermit,
    /// When it was accepted (the setup deadline counts from here).
    pub accepted: Instant,
}

/// Messages from the tokio side to an engine.
pub(crate) enum EngineMsg {
    StreamOpen(Box<NewStream>),
    Shutdown,
}

/// Handle to an engine thread (cheap to clone the sending part).
#[derive(Clone)]
pub(crate) struct EngineTx {
    tx: mpsc::Sender<EngineMsg>,
    waker: Arc<Waker>,
}

impl EngineTx {
    pub(crate) fn send(&self, msg: EngineMsg) {
        if self.tx.send(msg).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// Where relay sockets are bound.
#[derive(Debug, Clone)]
pub(crate) struct RelayBind {
    pub v4: Option<IpAddr>,
    pub v6: Option<IpAddr>,
    pub ports: (u16, u16),
}

struct ShellIo {
    listener: Option<UdpSocket>,
    relays: Vec<Option<UdpSocket>>,
    registry: Registry,
    streams: Streams,
    bind: RelayBind,
    shared: Arc<Shared>,
}

impl ShellIo {
    /// A send failed (full buffer, unreachable peer): counted as dropped.
    fn dropped(&self) {
        self.shared
            .counters
            .dropped_packets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    fn bind_relay(&self, ip: IpAddr) -> Option<std::net::UdpSocket> {
        let (lo, hi) = self.bind.ports;
        if lo == 0 && hi == 0 {
            return std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).ok();
        }
        let span = (hi - lo) as u32 + 1;
        let start: u32 = rand::random::<u32>() % span;
        for i in 0..span.min(256) {
            let port = lo as u32 + (start + i * 7919) % span;
            if let Ok(s) = std::net::UdpSocket::bind(SocketAddr::new(ip, port as u16)) {
                return Some(s);
            }
        }
        None
    }
}

impl Io for ShellIo {
    fn send_to_client(&mut self, client: ClientKey, data: &[u8]) {
        if client.conn == 0 {
            if let Some(l) = &self.listener
                && l.send_to(data, client.addr).is_err()
            {
                self.dropped();
            }
        } else if !self.streams.queue(client.conn, data) {
            self.dropped();
        }
    }

    fn send_to_peer(&mut self, slot: usize, peer: SocketAddr, data: &[u8]) {
        if let Some(Some(s)) = self.relays.get(slot)
            && s.send_to(data, peer).is_err()
        {
            self.dropped();
        }
    }

    fn open_relay(&mut self, slot: usize, family: Family) -> Option<SocketAddr> {
        let ip = match family {
            Family::V4 => self.bind.v4?,
            Family::V6 => self.bind.v6?,
        };
        let std_sock = self.bind_relay(ip)?;
        std_sock.set_nonblocking(true).ok()?;
        let local = std_sock.local_addr().ok()?;
        let mut sock = UdpSocket::from_std(std_sock);
        self.registry
            .register(&mut sock, Token(RELAY_BASE + slot), Interest::READABLE)
            .ok()?;
        if self.relays.len() <= slot {
            self.relays.resize_with(slot + 1, || None);
        }
        self.relays[slot] = Some(sock);
        Some(local)
    }

    fn close_relay(&mut self, slot: usize) {
        if let Some(mut s) = self.relays.get_mut(slot).and_then(Option::take) {
            let _ = self.registry.deregister(&mut s);
        }
    }
}

impl StreamIo for ShellIo {
    fn streams(&mut self) -> &mut Streams {
        &mut self.streams
    }
}

/// Pick the address relay sockets bind to for one family when none is
/// configured: the listener's own address if specific, otherwise the source
/// address the kernel would route from (a UDP `connect` sends no packet).
pub(crate) fn default_relay_ip(listen: Option<IpAddr>, v6: bool) -> Option<IpAddr> {
    if let Some(ip) = listen {
        if ip.is_ipv6() == v6 && !ip.is_unspecified() {
            return Some(ip);
        }
        if ip.is_ipv6() != v6 {
            return None;
        }
    }
    let (bind, probe): (IpAddr, SocketAddr) = if v6 {
        (
            Ipv6Addr::UNSPECIFIED.into(),
            "[2001:db8::1]:9".parse().ok()?,
        )
    } else {
        (Ipv4Addr::UNSPECIFIED.into(), "192.0.2.1:9".parse().ok()?)
    };
    let s = std::net::UdpSocket::bind(SocketAddr::new(bind, 0)).ok()?;
    s.connect(probe).ok()?;
    Some(s.local_addr().ok()?.ip())
}

/// Start an engine thread. `listener` may be `None` (TLS-only shard).
pub(crate) fn spawn(
    core: Core,
    listener: Option<std::net::UdpSocket>,
    bind: RelayBind,
    streams: Streams,
) -> std::io::Result<(EngineTx, std::thread::JoinHandle<()>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
    let mut mio_listener = match listener {
        Some(l) => {
            l.set_nonblocking(true)?;
            Some(UdpSocket::from_std(l))
        }
        None => None,
    };
    if let Some(l) = &mut mio_listener {
        poll.registry().register(l, LISTENER, Interest::READABLE)?;
    }
    let (tx, rx) = mpsc::channel();
    let io = ShellIo {
        listener: mio_listener,
        relays: Vec::new(),
        registry: poll.registry().try_clone()?,
        streams,
        bind,
        shared: core.shared().clone(),
    };
    let handle = std::thread::Builder::new()
        .name("turn-engine".into())
        .spawn(move || run(poll, core, io, rx))?;
    Ok((EngineTx { tx, waker }, handle))
}

fn now_at(start: Instant) -> Now {
    Now {
        ms: start.elapsed().as_millis() as u64,
        unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    }
}

/// Read up to BUDGET datagrams from `token`'s socket (or a budget of
/// reads from a stream connection); true if more may remain.
fn drain(token: Token, core: &mut Core, io: &mut ShellIo, bufs: &mut Bufs, now: Now) -> bool {
    if token.0 >= STREAM_BASE {
        return conns::read_ready(token.0 - STREAM_BASE, core, io, &mut bufs.stream, now);
    }
    let buf = &mut bufs.udp;
    for _ in 0..BUDGET {
        if token == LISTENER {
            let r = match &io.listener {
                Some(l) => l.recv_from(buf),
                None => return false,
            };
            match r {
                Ok((n, from)) => core.handle_client(io, now, ClientKey::udp(from), &buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => continue,
            }
        } else {
            let slot = token.0 - RELAY_BASE;
            let r = match io.relays.get(slot) {
                Some(Some(s)) => s.recv_from(&mut buf[HEADROOM..HEADROOM + RECV_BUF]),
                _ => return false,
            };
            match r {
                Ok((n, from)) => core.handle_peer(io, now, slot, from, buf, n),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
                Err(_) => continue,
            }
        }
    }
    true
}

struct Bufs {
    udp: Vec<u8>,
    stream: StreamBufs,
}

/// Handle up to `MSG_BUDGET` messages from the tokio side. Returns
/// `Some(true)` if more may be waiting, `None` on shutdown.
fn drain_msgs(
    rx: &mpsc::Receiver<EngineMsg>,
    core: &mut Core,
    io: &mut ShellIo,
    bufs: &mut Bufs,
    start: Instant,
    now: Now,
) -> Option<bool> {
    for _ in 0..MSG_BUDGET {
        let Ok(msg) = rx.try_recv() else {
            return Some(false);
        };
        match msg {
            EngineMsg::StreamOpen(new) => {
                let tls = new.tls.is_some();
                let Some(idx) = io.streams.open(*new, &io.registry, start, now.ms) else {
                    continue;
                };
                // A TLS session may already hold records read during the
                // handshake, and tickets to send.
                if tls {
                    conns::tls_pump(idx, core, io, &mut bufs.stream, now);
                }
            }
            EngineMsg::Shutdown => return None,
        }
    }
    Some(true)
}

/// Close the stream connections marked for closing and drop their allocations.
fn reap(core: &mut Core, io: &mut ShellIo, keys: &mut Vec<ClientKey>) {
    while io.streams.has_closing() {
        io.streams.take_closed(&io.registry, keys);
        for key in keys.drain(..) {
            core.client_closed(io, key);
        }
    }
}

fn shutdown(core: &mut Core, io: &mut ShellIo) {
    io.streams.close_all();
    reap(core, io, &mut Vec::new());
    core.close_all(io);
}

fn run(mut poll: Poll, mut core: Core, mut io: ShellIo, rx: mpsc::Receiver<EngineMsg>) {
    let start = Instant::now();
    let mut events = Events::with_capacity(512);
    let mut bufs = Bufs {
        udp: vec![0u8; HEADROOM + RECV_BUF + 4],
        stream: StreamBufs::new(),
    };
    let mut closed = Vec::new();
    // Sockets (and the message queue, as WAKER) that used up their budget:
    // edge-triggered readiness will not report them again, so they get
    // another turn after everyone else.
    let mut pending: Vec<Token> = Vec::new();
    let mut still: Vec<Token> = Vec::new();
    let mut next_tick = 1000u64;
    loop {
        let now_ms = start.elapsed().as_millis() as u64;
        let timeout = if pending.is_empty() {
            Duration::from_millis(next_tick.saturating_sub(now_ms).max(1))
        } else {
            Duration::ZERO
        };
        if let Err(e) = poll.poll(&mut events, Some(timeout))
            && e.kind() != ErrorKind::Interrupted
        {
            tracing::error!(error = %e, "TURN engine poll failed");
            break;
        }
        let now = now_at(start);
        io.streams.now_ms = now.ms;
        for ev in events.iter() {
            let t = ev.token();
            if t.0 >= STREAM_BASE && ev.is_writable() {
                io.streams.flush(t.0 - STREAM_BASE);
            }
            if pending.contains(&t) {
                continue;
            }
            if t.0 >= STREAM_BASE && !(ev.is_readable() || ev.is_read_closed() || ev.is_error()) {
                continue;
            }
            let more = if t == WAKER {
                match drain_msgs(&rx, &mut core, &mut io, &mut bufs, start, now) {
                    Some(more) => more,
                    None => {
                        shutdown(&mut core, &mut io);
                        return;
                    }
                }
            } else {
                drain(t, &mut core, &mut io, &mut bufs, now)
            };
            if more {
                pending.push(t);
            }
        }
        still.clear();
        for &t in &pending {
            let more = if t == WAKER {
                match drain_msgs(&rx, &mut core, &mut io, &mut bufs, start, now) {
                    Some(more) => more,
                    None => {
                        shutdown(&mut core, &mut io);
                        return;
                    }
                }
            } else {
                drain(t, &mut core, &mut io, &mut bufs, now)
            };
            if more {
                still.push(t);
            }
        }
        std::mem::swap(&mut pending, &mut still);
        // One write per connection for everything queued this turn.
        io.streams.flush_dirty();
        if now.ms >= next_tick {
            core.tick(&mut io, now);
            io.streams.check_timeouts(&core, now.ms);
            next_tick = now.ms + 1000;
        }
        reap(&mut core, &mut io, &mut closed);
    }
    shutdown(&mut core, &mut io);
}
