//! The HTTP listener: connection caps and per-connection deadlines.
//!
//! poem (3.1) and hyper as poem drives them have no header-read timeout, no keep-alive
//! idle timeout that survives a trickling client, and no cap on connections; its accept
//! loop retries a failing `accept()` at once. This module puts a [`GuardedAcceptor`] in
//! front of the server:
//!
//! - every accepted socket takes a permit from [`ConnGuard`] (a cap in total and per
//!   client address, IPv6 grouped by /64); past either cap the socket gets a short `503`
//!   written without waiting and is closed at once, and the refusal is counted;
//! - each socket is wrapped in a [`GuardedStream`] that fails its reads when the client
//!   is too slow: a request head must arrive within `header_timeout` of its first byte
//!   (or of the accept), a kept-alive connection may sit idle for `idle_timeout`, an
//!   upgraded (WebSocket) connection must hear from its peer within `idle_timeout`, and a
//!   write that cannot make progress for `idle_timeout` fails too;
//! - the request body deadline is kept by the HTTP middleware (`http::BodyLimit`), which
//!   learns where each connection is through [`ConnGuard::track`];
//! - a failing `accept()` (out of file descriptors, say) is logged at most every ten
//!   seconds and retried after a growing pause instead of in a tight loop.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::Acceptor;
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// The limits one listener enforces (from `[http]` in the configuration).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
}

pub use crate::metrics::ConnMetrics;

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerIp,
}

impl Refusal {
    fn label(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerIp => "max_connections_per_ip",
        }
    }
}

/// Where a connection is, as the HTTP layer tells the transport. Shared between the
/// [`GuardedStream`] and the request middleware.
#[derive(Default)]
pub struct ConnState {
    /// Requests being handled on this connection (HTTP/2 may have several).
    active: AtomicU32,
    /// Set once a response switched protocols (WebSocket).
    upgraded: AtomicBool,
    /// Bumped on every change above, so the stream restarts its clocks.
    epoch: AtomicU64,
}

impl ConnState {
    fn begin(&self) {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    fn end(&self, upgraded: bool) {
        if upgraded {
            self.upgraded.store(true, Ordering::Release);
        }
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }
}

/// Marks a request as in progress on its connection until dropped (also when the
/// handler's future is cancelled).
pub struct RequestMark {
    state: Option<Arc<ConnState>>,
    upgraded: bool,
}

impl RequestMark {
    /// Records that the response switched protocols; the socket then lives by the
    /// upgraded-connection rules.
    pub fn set_upgraded(&mut self) {
        self.upgraded = true;
    }
}

impl Drop for RequestMark {
    fn drop(&mut self) {
        if let Some(s) = self.state.take() {
            s.end(self.upgraded);
        }
    }
}

/// Counts connections and knows each one's [`ConnState`].
pub struct ConnGuard {
    limits: Limits,
    open: AtomicUsize,
    /// Open connections per client key; taken only at accept and close.
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    /// Each connection's state by peer address; read once per request.
    conns: RwLock<HashMap<SocketAddr, Arc<ConnState>>>,
    metrics: ConnMetrics,
}

/// The key connections from one client share: the address, or its /64 for IPv6.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[4..].fill(0);
            IpAddr::V6(seg.into())
        }
        v4 => v4,
    }
}

impl ConnGuard {
    pub fn new(limits: Limits, metrics: ConnMetrics) -> Arc<Self> {
        Arc::new(Self {
            limits,
            open: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
            conns: RwLock::new(HashMap::new()),
            metrics,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Open connections right now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    // A panic while holding one of these locks cannot leave its map half-updated (each
    // update is one statement), so a poisoned lock is still usable.
    fn per_ip(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn conns_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<SocketAddr, Arc<ConnState>>> {
        self.conns.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a permit for a connection from `peer`, or says why not.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr) -> Result<Permit, Refusal> {
        let key = client_key(peer.ip());
        let state = Arc::new(ConnState::default());
        {
            let mut per_ip = self.per_ip();
            if self.open.load(Ordering::Acquire) >= self.limits.max_connections {
                return Err(Refusal::Total);
            }
            let n = per_ip.entry(key).or_insert(0);
            if *n >= self.limits.max_connections_per_ip {
                return Err(Refusal::PerIp);
            }
            *n += 1;
            self.open.fetch_add(1, Ordering::AcqRel);
        }
        self.conns_mut().insert(peer, state.clone());
        self.metrics.open.inc();
        self.metrics.accepted.inc();
        Ok(Permit {
            guard: self.clone(),
            peer,
            key,
            state,
        })
    }

    /// Marks a request from `peer` as in progress until the returned mark is dropped.
    pub fn track(&self, peer: Option<&SocketAddr>) -> RequestMark {
        let state = peer.and_then(|p| {
            self.conns
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .get(p)
                .cloned()
        });
        if let Some(s) = &state {
            s.begin();
        }
        RequestMark {
            state,
            upgraded: false,
        }
    }

    pub fn count_timeout(&self, phase: &str) {
        self.metrics.timeouts.with_label_values(&[phase]).inc();
    }
}

/// One admitted connection; dropping it gives the slot back.
pub struct Permit {
    guard: Arc<ConnGuard>,
    peer: SocketAddr,
    key: IpAddr,
    state: Arc<ConnState>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        {
            let mut conns = self.guard.conns_mut();
            if conns
                .get(&self.peer)
                .is_some_and(|s| Arc::ptr_eq(s, &self.state))
            {
                conns.remove(&self.peer);
            }
        }
        {
            let mut per_ip = self.guard.per_ip();
            if let Some(n) = per_ip.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    per_ip.remove(&self.key);
                }
            }
            self.guard.open.fetch_sub(1, Ordering::AcqRel);
        }
        self.guard.metrics.open.dec();
    }
}

/// What a refused client reads before the socket closes (best effort, never waited on):
/// the same RFC 9457 problem document every other error is.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\
content-type: application/problem+json\r\ncontent-length: 149\r\nretry-after: 5\r\n\r\n\
{\"type\":\"about:blank\",\"title\":\"Service Unavailable\",\"status\":503,\"detail\":\"too many open connections; try again later\",\"code\":\"too_many_connections\"}";

/// Accepts TCP connections within the caps of a [`ConnGuard`].
pub struct GuardedAcceptor {
    listener: TcpListener,
    local: LocalAddr,
    guard: Arc<ConnGuard>,
    last_refusal_log: Option<Instant>,
    refused_since_log: u64,
    last_error_log: Option<Instant>,
    errors_since_log: u64,
}

const LOG_EVERY: Duration = Duration::from_secs(10);

impl GuardedAcceptor {
    pub async fn bind(addr: SocketAddr, guard: Arc<ConnGuard>) -> io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let local = LocalAddr(listener.local_addr()?.into());
        Ok(Self {
            listener,
            local,
            guard,
            last_refusal_log: None,
            refused_since_log: 0,
            last_error_log: None,
            errors_since_log: 0,
        })
    }

    pub fn local_socket_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn refuse(&mut self, stream: TcpStream, peer: SocketAddr, why: Refusal) {
        self.guard
            .metrics
            .refused
            .with_label_values(&[why.label()])
            .inc();
        let _ = stream.try_write(REFUSED);
        drop(stream);
        self.refused_since_log += 1;
        let due = self
            .last_refusal_log
            .is_none_or(|t| t.elapsed() >= LOG_EVERY);
        if due {
            tracing::warn!(
                client = %client_key(peer.ip()),
                reason = why.label(),
                refused = self.refused_since_log,
                open = self.guard.open(),
                "refusing HTTP connections over the cap (logged at most every 10 s)"
            );
            self.last_refusal_log = Some(Instant::now());
            self.refused_since_log = 0;
        }
    }

    /// Pauses after an `accept()` failure; out of descriptors or memory pauses longer.
    async fn back_off(&mut self, e: &io::Error, streak: u32) {
        self.guard.metrics.accept_errors.inc();
        self.errors_since_log += 1;
        if self.last_error_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            tracing::error!(
                error = %e,
                failures = self.errors_since_log,
                open = self.guard.open(),
                "accepting an HTTP connection failed; pausing (logged at most every 10 s)"
            );
            self.last_error_log = Some(Instant::now());
            self.errors_since_log = 0;
        }
        let pause = Duration::from_millis(10u64 << streak.min(7)).min(Duration::from_secs(1));
        tokio::time::sleep(pause).await;
    }
}

/// Errors that concern only the one connection being accepted: try the next at once.
fn per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    )
}

impl Acceptor for GuardedAcceptor {
    type Io = GuardedStream<TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        vec![self.local.clone()]
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        let mut streak = 0u32;
        loop {
            match self.listener.accept().await {
                Ok((stream, peer)) => match self.guard.admit(peer) {
                    Ok(permit) => {
                        let _ = stream.set_nodelay(true);
                        let io = GuardedStream::new(stream, permit);
                        return Ok((
                            io,
                            self.local.clone(),
                            RemoteAddr(peer.into()),
                            Scheme::HTTP,
                        ));
                    }
                    Err(why) => self.refuse(stream, peer, why),
                },
                Err(e) if per_connection(&e) => continue,
                Err(e) => {
                    self.back_off(&e, streak).await;
                    streak = streak.saturating_add(1);
                }
            }
        }
    }
}

/// A socket whose reads and writes fail once the client is too slow (see the module
/// documentation); it holds its connection's [`Permit`].
pub struct GuardedStream<T> {
    inner: T,
    permit: Permit,
    header_timeout: Duration,
    idle_timeout: Duration,
    /// The [`ConnState::epoch`] the clocks below belong to.
    epoch: u64,
    /// When the current phase began (accept, end of a request, upgrade).
    since: Instant,
    /// First byte of a request head read in this phase.
    first_byte: Option<Instant>,
    /// Last byte read on an upgraded connection.
    last_read: Instant,
    /// When writes started to block without progress.
    write_blocked: Option<Instant>,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

fn timed_out(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what)
}

impl<T> GuardedStream<T> {
    pub fn new(inner: T, permit: Permit) -> Self {
        let limits = permit.guard.limits;
        let now = Instant::now();
        Self {
            inner,
            permit,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            epoch: 0,
            since: now,
            first_byte: None,
            last_read: now,
            write_blocked: None,
            read_timer: None,
            write_timer: None,
        }
    }

    /// The read deadline now, with the phase it belongs to; `None` while a request is
    /// being handled (the body deadline is the middleware's).
    fn read_deadline(&mut self) -> Option<(Instant, &'static str)> {
        let state = &self.permit.state;
        let epoch = state.epoch.load(Ordering::Acquire);
        if epoch != self.epoch {
            self.epoch = epoch;
            self.since = Instant::now();
            self.first_byte = None;
            self.last_read = self.since;
        }
        if state.upgraded.load(Ordering::Acquire) {
            return Some((self.last_read + self.idle_timeout, "upgraded"));
        }
        if state.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        Some(match self.first_byte {
            Some(t) => (t + self.header_timeout, "header"),
            // A fresh connection owes its first request head from the accept on.
            None if epoch == 0 => (self.since + self.header_timeout, "header"),
            None => (self.since + self.idle_timeout, "idle"),
        })
    }

    fn expire(&self, phase: &'static str) -> io::Error {
        self.permit.guard.count_timeout(phase);
        tracing::debug!(phase, "closing a slow HTTP connection");
        timed_out("client too slow")
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GuardedStream<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let deadline = this.read_deadline();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let now = Instant::now();
                if buf.filled().len() > before {
                    this.last_read = now;
                    if this.first_byte.is_none() {
                        this.first_byte = Some(now);
                    }
                }
                match deadline {
                    // Bytes that come too late (a trickled head) still end the connection.
                    Some((d, phase)) if now >= d && phase == "header" => {
                        Poll::Ready(Err(this.expire(phase)))
                    }
                    _ => Poll::Ready(Ok(())),
                }
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((d, phase)) = deadline else {
                    return Poll::Pending;
                };
                let timer = this
                    .read_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(d)));
                if timer.deadline() != d {
                    timer.as_mut().reset(d);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(this.expire(phase))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T> GuardedStream<T> {
    /// Turns a blocked write into an error once it has made no progress for the idle
    /// timeout (a peer that stopped reading, or vanished without a FIN).
    fn write_progress<R>(
        &mut self,
        cx: &mut Context<'_>,
        r: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => {
                let now = Instant::now();
                let d = *self.write_blocked.get_or_insert(now) + self.idle_timeout;
                let timer = self
                    .write_timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(d)));
                if timer.deadline() != d {
                    timer.as_mut().reset(d);
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(self.expire("write"))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                self.write_blocked = None;
                ready
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GuardedStream<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.write_progress(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.write_progress(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.write_progress(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.write_progress(cx, r)
    }
}

/// Raises the soft limit on open files to the hard limit and returns the limit now in
/// force (`None` where it cannot be read).
pub fn raise_nofile_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read/write the struct we pass, which lives
        // on this stack frame for the duration of the calls.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
            return None;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        // `rlim_t` is `u64` on Linux but not on every Unix.
        #[allow(clippy::useless_conversion)]
        Some(u64::try_from(lim.rlim_cur).unwrap_or(u64::MAX))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Default caps for a process allowed `nofile` open files: a quarter of the descriptors
/// stays for the database, TURN sockets, outbound requests and logs; one client address
/// may hold a quarter of the rest (a contact center behind one NAT opens many).
pub fn default_caps(nofile: Option<u64>) -> (usize, usize) {
    let nofile = nofile.unwrap_or(1024).min(1 << 20);
    let total = usize::try_from(nofile - nofile / 4)
        .unwrap_or(usize::MAX)
        .clamp(32, 65_536);
    (total, (total / 4).max(8))
}

/// The limits in force given the `[http]` settings and the process's open-file limit.
pub fn limits(cfg: &crate::config::HttpConfig, nofile: Option<u64>) -> Limits {
    let (total, per_ip) = default_caps(nofile);
    let total = cfg.max_connections.unwrap_or(total);
    let per_ip = cfg
        .max_connections_per_ip
        .unwrap_or(if cfg.max_connections.is_some() {
            (total / 4).max(1)
        } else {
            per_ip
        })
        .min(total);
    Limits {
        header_timeout: std::time::Duration::from_millis(cfg.header_timeout_ms),
        idle_timeout: std::time::Duration::from_millis(cfg.idle_timeout_ms),
        body_timeout: std::time::Duration::from_millis(cfg.body_timeout_ms),
        max_connections: total,
        max_connections_per_ip: per_ip,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> ConnMetrics {
        ConnMetrics {
            open: prometheus::IntGauge::new("open", "o").unwrap(),
            accepted: prometheus::IntCounter::new("accepted", "a").unwrap(),
            refused: prometheus::IntCounterVec::new(prometheus::Opts::new("r", "r"), &["reason"])
                .unwrap(),
            timeouts: prometheus::IntCounterVec::new(prometheus::Opts::new("t", "t"), &["phase"])
                .unwrap(),
            accept_errors: prometheus::IntCounter::new("e", "e").unwrap(),
        }
    }

    fn limits(total: usize, per_ip: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            body_timeout: Duration::from_secs(1),
            max_connections: total,
            max_connections_per_ip: per_ip,
        }
    }

    #[test]
    fn caps_count_per_client_and_in_total() {
        let g = ConnGuard::new(limits(3, 2), metrics());
        let a1 = g.admit("10.0.0.1:1".parse().unwrap()).unwrap();
        let _a2 = g.admit("10.0.0.1:2".parse().unwrap()).unwrap();
        assert_eq!(
            g.admit("10.0.0.1:3".parse().unwrap()).err(),
            Some(Refusal::PerIp)
        );
        let _b1 = g.admit("10.0.0.2:1".parse().unwrap()).unwrap();
        assert_eq!(
            g.admit("10.0.0.3:1".parse().unwrap()).err(),
            Some(Refusal::Total)
        );
        drop(a1);
        assert_eq!(g.open(), 2);
        assert!(g.admit("10.0.0.1:4".parse().unwrap()).is_ok());
    }

    #[test]
    fn ipv6_clients_are_grouped_by_slash_64() {
        let g = ConnGuard::new(limits(10, 1), metrics());
        let _a = g.admit("[2001:db8::1]:1".parse().unwrap()).unwrap();
        assert!(g.admit("[2001:db8::2]:1".parse().unwrap()).is_err());
        assert!(g.admit("[2001:db8:0:1::2]:1".parse().unwrap()).is_ok());
    }

    #[test]
    fn the_refusal_is_a_complete_problem_document() {
        let text = std::str::from_utf8(REFUSED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["status"], 503);
        assert_eq!(v["code"], "too_many_connections");
    }

    #[test]
    fn default_caps_stay_below_the_limit() {
        assert_eq!(default_caps(Some(1024)), (768, 192));
        let (total, per_ip) = default_caps(Some(20_000));
        assert!(total < 20_000 && per_ip < total);
        assert_eq!(default_caps(Some(10)).0, 32);
    }
}
