//! TCP/TLS client connections owned by an engine thread. Reads go into one
//! large buffer per engine and every complete frame in it is handed to the
//! core; answers and relayed data are appended to the connection's output
//! buffer and written once per engine turn: one `write` for TCP; over TLS
//! each message is sealed into its own record as it is queued (clients such
//! as coturn's `turnutils_uclient` take one record for one message) and all
//! records of the turn leave in one `writev`. A partial frame is the only
//! thing copied and kept between reads.

use crate::core::{ClientKey, Core, Now};
use crate::framing::{Frame, frame_len};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::engine::NewStream;
use super::limits::ConnPermit;

/// Tokens at and above this value are stream connections.
pub(crate) const STREAM_BASE: usize = 1 << 30;
/// Size of the engine's read buffers (one read syscall per this many bytes).
pub(crate) const READ_BUF: usize = 64 * 1024;
/// Reads from one connection before others get a turn.
const READS_PER_TURN: usize = 4;
/// Output waiting for a slow reader beyond this is dropped (per message,
/// as a full UDP buffer would drop it): about 4 s of a 2 Mbit/s call.
const OUT_CAP: usize = 1024 * 1024;
/// All connections of one engine together never hold more output than this.
const OUT_TOTAL: usize = 64 * 1024 * 1024;
/// Output is written at once (not at the end of the turn) beyond this.
const FLUSH_AT: usize = 32 * 1024;
/// TLS record overhead counted against `OUT_CAP` (header, tag, type).
const TLS_RECORD_OVERHEAD: usize = 32;
const IDX_BITS: u32 = 20;
const IDX_MASK: u32 = (1 << IDX_BITS) - 1;

struct Conn {
    /// The id the core sees in `ClientKey::conn` (generation + index + 1).
    id: u32,
    sock: TcpStream,
    addr: SocketAddr,
    tls: Option<Box<rustls::ServerConnection>>,
    /// Bytes of an incomplete frame carried over to the next read.
    partial: Vec<u8>,
    /// When the incomplete frame in `partial` started (ms).
    partial_since: u64,
    /// TCP: bytes not yet written.
    out: Vec<u8>,
    out_pos: usize,
    /// TLS: approximate bytes of sealed records not yet written.
    tls_pending: usize,
    dirty: bool,
    closing: bool,
    /// No complete frame yet: must get one before `setup_deadline`.
    fresh: bool,
    setup_deadline: u64,
    last_frame: u64,
    /// Output pending and no byte written since (ms), if so.
    stalled_since: Option<u64>,
    _permit: ConnPermit,
}

pub(crate) struct Streams {
    conns: Vec<Option<Conn>>,
    gens: Vec<u16>,
    free: Vec<usize>,
    dirty: Vec<usize>,
    to_close: Vec<usize>,
    setup_ms: u64,
    idle_ms: u64,
    /// Engine time of the current turn (ms).
    pub(crate) now_ms: u64,
    /// Output bytes waiting in all connections (bounded by `OUT_TOTAL`).
    buffered: usize,
}

impl Conn {
    fn pending(&self) -> usize {
        if self.tls.is_some() {
            self.tls_pending
        } else {
            self.out.len() - self.out_pos
        }
    }
}

/// Scratch buffers of the engine for stream reads.
pub(crate) struct StreamBufs {
    read: Vec<u8>,
    plain: Vec<u8>,
}

impl StreamBufs {
    pub(crate) fn new() -> Self {
        StreamBufs {
            read: vec![0; READ_BUF],
            plain: vec![0; READ_BUF],
        }
    }
}

impl Streams {
    pub(crate) fn new(setup: Duration, idle: Duration) -> Self {
        Streams {
            conns: Vec::new(),
            gens: Vec::new(),
            free: Vec::new(),
            dirty: Vec::new(),
            to_close: Vec::new(),
            setup_ms: setup.as_millis().max(1) as u64,
            idle_ms: idle.as_millis().max(1) as u64,
            now_ms: 0,
            buffered: 0,
        }
    }

    fn index(id: u32) -> Option<usize> {
        ((id & IDX_MASK) as usize).checked_sub(1)
    }

    fn get_mut(&mut self, idx: usize) -> Option<&mut Conn> {
        self.conns.get_mut(idx).and_then(Option::as_mut)
    }

    fn by_id(&mut self, id: u32) -> Option<(usize, &mut Conn)> {
        let idx = Self::index(id)?;
        let c = self.get_mut(idx)?;
        (c.id == id).then_some((idx, c))
    }

    /// Take over a connection handed over by an acceptor. Returns its index.
    pub(crate) fn open(
        &mut self,
        new: NewStream,
        registry: &Registry,
        start: Instant,
        now_ms: u64,
    ) -> Option<usize> {
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                if self.conns.len() >= IDX_MASK as usize - 1 {
                    return None;
                }
                self.conns.push(None);
                self.gens.push(0);
                self.conns.len() - 1
            }
        };
        let g = self.gens.get_mut(idx)?;
        *g = (*g + 1) & 0x0FFF;
        let id = ((*g as u32) << IDX_BITS) | (idx as u32 + 1);
        let NewStream {
            sock,
            addr,
            mut tls,
            permit,
            accepted,
        } = new;
        if sock.set_nonblocking(true).is_err() {
            self.free.push(idx);
            return None;
        }
        let mut sock = TcpStream::from_std(sock);
        if registry
            .register(
                &mut sock,
                Token(STREAM_BASE + idx),
                Interest::READABLE | Interest::WRITABLE,
            )
            .is_err()
        {
            self.free.push(idx);
            return None;
        }
        if let Some(t) = tls.as_mut() {
            // `queue` enforces OUT_CAP itself and never splits a message.
            t.set_buffer_limit(None);
        }
        let accepted_ms = accepted.saturating_duration_since(start).as_millis() as u64;
        self.conns[idx] = Some(Conn {
            id,
            sock,
            addr,
            tls,
            partial: Vec::new(),
            partial_since: now_ms,
            out: Vec::new(),
            out_pos: 0,
            tls_pending: 0,
            dirty: false,
            closing: false,
            fresh: true,
            setup_deadline: accepted_ms + self.setup_ms,
            last_frame: now_ms,
            stalled_since: None,
            _permit: permit,
        });
        Some(idx)
    }

    /// Queue a frame for a client; false if it was dropped.
    pub(crate) fn queue(&mut self, id: u32, data: &[u8]) -> bool {
        let room = OUT_TOTAL.saturating_sub(self.buffered);
        let Some((idx, c)) = self.by_id(id) else {
            return false;
        };
        if c.closing {
            return false;
        }
        if let Some(tls) = c.tls.as_deref_mut() {
            let cost = data.len() + TLS_RECORD_OVERHEAD;
            if cost > room
                || c.tls_pending + cost > OUT_CAP
                || tls.writer().write_all(data).is_err()
            {
                return false;
            }
            c.tls_pending += cost;
            let eager = c.tls_pending >= FLUSH_AT;
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
            self.buffered += cost;
            if eager {
                self.flush(idx);
            }
            return true;
        }
        if c.out_pos > 0 && c.out_pos == c.out.len() {
            c.out.clear();
            c.out_pos = 0;
        }
        if data.len() > room || c.out.len() - c.out_pos + data.len() > OUT_CAP {
            return false;
        }
        if c.out_pos >= 16 * 1024 {
            c.out.drain(..c.out_pos);
            c.out_pos = 0;
        }
        c.out.extend_from_slice(data);
        let eager = c.out.len() - c.out_pos >= FLUSH_AT;
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(idx);
        }
        self.buffered += data.len();
        if eager {
            self.flush(idx);
        }
        true
    }

    fn mark_close(&mut self, idx: usize) {
        if let Some(c) = self.get_mut(idx)
            && !c.closing
        {
            c.closing = true;
            self.to_close.push(idx);
        }
    }

    fn mark_dirty(&mut self, idx: usize) {
        if let Some(c) = self.get_mut(idx)
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push(idx);
        }
    }

    /// Write what is queued for `idx` (until the socket is full).
    pub(crate) fn flush(&mut self, idx: usize) {
        let now_ms = self.now_ms;
        let Some(c) = self.get_mut(idx) else {
            return;
        };
        if c.closing {
            return;
        }
        let before = c.pending();
        let ok = match c.tls.as_deref_mut() {
            Some(tls) => flush_tls(tls, &c.sock, &mut c.tls_pending),
            None => flush_tcp(&c.sock, &mut c.out, &mut c.out_pos),
        };
        let written = before.saturating_sub(c.pending());
        match ok {
            Ok(progress) => {
                let pending =
                    c.out_pos < c.out.len() || c.tls.as_ref().is_some_and(|t| t.wants_write());
                if !pending {
                    c.out.clear();
                    c.out_pos = 0;
                    if c.out.capacity() > 4 * FLUSH_AT {
                        c.out = Vec::new();
                    }
                    c.stalled_since = None;
                } else if progress {
                    c.stalled_since = None;
                } else if c.stalled_since.is_none() {
                    c.stalled_since = Some(now_ms);
                }
                self.buffered = self.buffered.saturating_sub(written);
            }
            Err(()) => {
                self.buffered = self.buffered.saturating_sub(written);
                self.mark_close(idx);
            }
        }
    }

    /// Write every connection that got output this turn.
    pub(crate) fn flush_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        for &idx in &dirty {
            if let Some(c) = self.get_mut(idx) {
                c.dirty = false;
            }
            self.flush(idx);
        }
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// Close connections past their deadlines (setup, partial frame, idle,
    /// stalled output).
    pub(crate) fn check_timeouts(&mut self, core: &Core, now_ms: u64) {
        let (setup, idle) = (self.setup_ms, self.idle_ms);
        let mut expired = Vec::new();
        for (idx, c) in self.conns.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            if c.closing {
                continue;
            }
            let key = ClientKey {
                conn: c.id,
                addr: c.addr,
            };
            let quiet_limit = if core.has_allocation(key) {
                idle
            } else {
                setup
            };
            let late = (c.fresh && now_ms >= c.setup_deadline)
                || (!c.partial.is_empty() && now_ms.saturating_sub(c.partial_since) >= setup)
                || now_ms.saturating_sub(c.last_frame) >= quiet_limit
                || c.stalled_since
                    .is_some_and(|t| now_ms.saturating_sub(t) >= idle.min(3 * setup));
            if late {
                expired.push(idx);
            }
        }
        for idx in expired {
            tracing::debug!(idx, "TURN stream connection timed out");
            self.mark_close(idx);
        }
    }

    /// Remove the connections marked for closing; returns their keys so the
    /// core can drop their allocations.
    pub(crate) fn take_closed(&mut self, registry: &Registry, keys: &mut Vec<ClientKey>) {
        for idx in std::mem::take(&mut self.to_close) {
            let Some(mut c) = self.conns.get_mut(idx).and_then(Option::take) else {
                continue;
            };
            if let Some(tls) = c.tls.as_deref_mut() {
                tls.send_close_notify();
                let _ = tls.write_tls(&mut &c.sock);
            }
            let _ = registry.deregister(&mut c.sock);
            self.buffered = self.buffered.saturating_sub(c.pending());
            keys.push(ClientKey {
                conn: c.id,
                addr: c.addr,
            });
            self.free.push(idx);
        }
    }

    pub(crate) fn has_closing(&self) -> bool {
        !self.to_close.is_empty()
    }

    /// Mark every connection for closing (shutdown).
    pub(crate) fn close_all(&mut self) {
        for idx in 0..self.conns.len() {
            self.mark_close(idx);
        }
    }

    fn key(&mut self, idx: usize) -> Option<ClientKey> {
        let c = self.get_mut(idx)?;
        (!c.closing).then_some(ClientKey {
            conn: c.id,
            addr: c.addr,
        })
    }
}

/// The engine's `Io`, with access to its stream connections.
pub(crate) trait StreamIo: crate::core::Io {
    fn streams(&mut self) -> &mut Streams;
}

fn flush_tcp(sock: &TcpStream, out: &mut [u8], pos: &mut usize) -> Result<bool, ()> {
    let mut progress = false;
    let mut s = sock;
    while *pos < out.len() {
        match s.write(&out[*pos..]) {
            Ok(0) => return Err(()),
            Ok(n) => {
                *pos += n;
                progress = true;
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
    Ok(progress)
}

fn flush_tls(
    tls: &mut rustls::ServerConnection,
    sock: &TcpStream,
    pending: &mut usize,
) -> Result<bool, ()> {
    let mut progress = false;
    let mut s = sock;
    // rustls writes its queued records with one writev per call.
    while tls.wants_write() {
        match tls.write_tls(&mut s) {
            Ok(0) => return Err(()),
            Ok(n) => {
                progress = true;
                *pending = pending.saturating_sub(n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(progress),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
    *pending = 0;
    Ok(progress)
}

/// The connection `idx` is readable: read (up to a budget), hand every
/// complete frame to the core. True if more may be waiting.
pub(crate) fn read_ready<I: StreamIo>(
    idx: usize,
    core: &mut Core,
    io: &mut I,
    bufs: &mut StreamBufs,
    now: Now,
) -> bool {
    for _ in 0..READS_PER_TURN {
        let Some(c) = io.streams().get_mut(idx) else {
            return false;
        };
        if c.closing {
            return false;
        }
        let r = (&c.sock).read(&mut bufs.read);
        let n = match r {
            Ok(0) => {
                io.streams().mark_close(idx);
                return false;
            }
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                io.streams().mark_close(idx);
                return false;
            }
        };
        let alive = if c.tls.is_some() {
            tls_input(idx, core, io, bufs, n, now)
        } else {
            let StreamBufs { read, .. } = bufs;
            deliver(idx, core, io, &read[..n], now)
        };
        // A short read emptied the socket; new data brings a new event.
        if !alive || n < bufs.read.len() {
            return false;
        }
    }
    true
}

/// Feed `bufs.read[..n]` (TLS records) to the session and deliver the plaintext.
fn tls_input<I: StreamIo>(
    idx: usize,
    core: &mut Core,
    io: &mut I,
    bufs: &mut StreamBufs,
    n: usize,
    now: Now,
) -> bool {
    let mut off = 0;
    while off < n {
        let Some(tls) = io.streams().get_mut(idx).and_then(|c| c.tls.as_deref_mut()) else {
            return false;
        };
        let mut rest = &bufs.read[off..n];
        let before = rest.len();
        if tls.read_tls(&mut rest).is_err() {
            io.streams().mark_close(idx);
            return false;
        }
        let used = before - rest.len();
        off += used;
        if !tls_pump(idx, core, io, bufs, now) {
            return false;
        }
        if used == 0 {
            // close_notify received: nothing more will be read.
            io.streams().mark_close(idx);
            return false;
        }
    }
    true
}

/// Process what the TLS session holds and deliver its plaintext.
pub(crate) fn tls_pump<I: StreamIo>(
    idx: usize,
    core: &mut Core,
    io: &mut I,
    bufs: &mut StreamBufs,
    now: Now,
) -> bool {
    loop {
        let Some(c) = io.streams().get_mut(idx) else {
            return false;
        };
        let Some(tls) = c.tls.as_deref_mut() else {
            return false;
        };
        if tls.process_new_packets().is_err() {
            // The alert rustls queued goes out when the connection closes.
            io.streams().mark_close(idx);
            return false;
        }
        let wants_write = tls.wants_write();
        let got = tls.reader().read(&mut bufs.plain);
        if wants_write {
            io.streams().mark_dirty(idx);
        }
        match got {
            Ok(0) => {
                io.streams().mark_close(idx);
                return false;
            }
            Ok(k) => {
                let StreamBufs { plain, .. } = bufs;
                if !deliver(idx, core, io, &plain[..k], now) {
                    return false;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => {
                io.streams().mark_close(idx);
                return false;
            }
        }
    }
}

/// Hand every complete frame of (carried-over partial frame +) `data` to
/// the core; keep the incomplete tail. False if the connection must close.
fn deliver<I: StreamIo>(idx: usize, core: &mut Core, io: &mut I, data: &[u8], now: Now) -> bool {
    let Some(key) = io.streams().key(idx) else {
        return false;
    };
    let Some(c) = io.streams().get_mut(idx) else {
        return false;
    };
    let mut partial = std::mem::take(&mut c.partial);
    let had_partial = !partial.is_empty();
    let (frames, invalid, rest_start) = if had_partial {
        partial.extend_from_slice(data);
        let (frames, used, invalid) = cut(&partial, key, core, io, now);
        partial.drain(..used);
        (frames, invalid, None)
    } else {
        let (frames, used, invalid) = cut(data, key, core, io, now);
        (frames, invalid, Some(used))
    };
    let Some(c) = io.streams().get_mut(idx) else {
        return false;
    };
    if let Some(used) = rest_start {
        partial.extend_from_slice(&data[used..]);
    }
    if frames > 0 {
        c.fresh = false;
        c.last_frame = now.ms;
    }
    if !partial.is_empty() && (frames > 0 || !had_partial) {
        c.partial_since = now.ms;
    }
    if partial.is_empty() && partial.capacity() > READ_BUF {
        partial = Vec::new();
    }
    c.partial = partial;
    if invalid {
        tracing::debug!(client = %key.addr, "TURN stream: not STUN or ChannelData, closing");
        io.streams().mark_close(idx);
        return false;
    }
    true
}

/// Deliver the complete frames at the start of `buf`: (frames, bytes used, invalid).
fn cut<I: StreamIo>(
    buf: &[u8],
    key: ClientKey,
    core: &mut Core,
    io: &mut I,
    now: Now,
) -> (usize, usize, bool) {
    let mut off = 0;
    let mut frames = 0;
    loop {
        match frame_len(&buf[off..]) {
            Frame::Complete(n) => {
                core.handle_client(io, now, key, &buf[off..off + n]);
                off += n;
                frames += 1;
            }
            Frame::Incomplete => return (frames, off, false),
            Frame::Invalid => return (frames, off, true),
        }
    }
}
