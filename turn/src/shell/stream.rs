//! TCP and TLS listeners (RFC 8656 section 12.5 stream framing). This side
//! only accepts: it applies the connection caps, backs off when accept()
//! fails (EMFILE), runs the TLS handshake under a deadline, then hands the
//! socket (and the TLS session) to an engine thread, which reads, frames,
//! relays and writes it with the UDP traffic: no task or channel hop per
//! message.

use super::engine::{EngineMsg, EngineTx, NewStream};
use super::limits::{ConnLimits, LogLimiter, Refusal};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// First and longest pause after a failed accept().
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one warning per kind in this period.
const WARN_EVERY: Duration = Duration::from_secs(10);

pub(crate) struct Acceptor {
    pub listener: TcpListener,
    /// Engines of this listener; connections are spread over them.
    pub engines: Vec<EngineTx>,
    pub tls: Option<TlsAcceptor>,
    pub limits: Arc<ConnLimits>,
    pub setup_timeout: Duration,
}

impl Acceptor {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff = BACKOFF_MIN;
        let mut accept_warn = LogLimiter::new(WARN_EVERY);
        let mut cap_warn = LogLimiter::new(WARN_EVERY);
        let mut next = 0usize;
        let proto = if self.tls.is_some() { "TLS" } else { "TCP" };
        // A descriptor kept in reserve: when accept() fails for lack of
        // descriptors, it is given up for a moment to take a waiting
        // connection and close it, so that client is refused at once instead
        // of hanging in the backlog. Best effort: the engine may take the
        // freed descriptor first (a relay socket), and accept() reports
        // EMFILE even with nothing waiting; the back-off below bounds both.
        // The connection cap normally keeps the process below its limit.
        let mut reserve = std::fs::File::open("/dev/null").ok();
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = stop.changed() => break,
            };
            let (stream, addr) = match accepted {
                Ok(a) => {
                    backoff = BACKOFF_MIN;
                    a
                }
                Err(e) => {
                    let out_of_fds = matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                    if out_of_fds && let Some(spare) = reserve.take() {
                        drop(spare);
                        let shed = tokio::time::timeout(BACKOFF_MIN, self.listener.accept()).await;
                        let shed = match shed {
                            Ok(Ok((stream, addr))) => {
                                drop(stream);
                                Some(addr)
                            }
                            _ => None,
                        };
                        reserve = std::fs::File::open("/dev/null").ok();
                        if let Some(addr) = shed {
                            if let Some(skipped) = accept_warn.allow(Instant::now()) {
                                tracing::warn!(error = %e, client = %addr.ip(), skipped,
                                    "TURN {proto} connection refused: out of file descriptors");
                            }
                            if reserve.is_some() {
                                continue;
                            }
                        }
                    }
                    if reserve.is_none() {
                        reserve = std::fs::File::open("/dev/null").ok();
                    }
                    // Otherwise (or without a reserve) the pending connection
                    // stays in the backlog; retrying at once would spin.
                    if let Some(skipped) = accept_warn.allow(Instant::now()) {
                        tracing::warn!(error = %e, ?backoff, skipped, "TURN {proto} accept failed; backing off");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            let permit = match self.limits.try_admit(addr.ip()) {
                Ok(p) => p,
                Err(why) => {
                    // Closed at once (dropped here).
                    if let Some(skipped) = cap_warn.allow(Instant::now()) {
                        let cap = match why {
                            Refusal::Total => "total",
                            Refusal::PerIp => "per-IP",
                        };
                        tracing::warn!(client = %addr.ip(), cap, total_cap = self.limits.total_cap(), skipped,
                            "TURN {proto} connection refused: connection cap reached");
                    }
                    continue;
                }
            };
            let accepted_at = Instant::now();
            let _ = stream.set_nodelay(true);
            let Some(engine) = self.engines.get(next % self.engines.len().max(1)).cloned() else {
                continue;
            };
            next = next.wrapping_add(1);
            match &self.tls {
                None => {
                    let Ok(sock) = stream.into_std() else {
                        continue;
                    };
                    engine.send(EngineMsg::StreamOpen(Box::new(NewStream {
                        sock,
                        addr,
                        tls: None,
                        permit,
                        accepted: accepted_at,
                    })));
                }
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let limit = self.setup_timeout;
                    let mut stop = stop.clone();
                    tokio::spawn(async move {
                        let hs = tokio::select! {
                            r = tokio::time::timeout(limit, handshake(acceptor, stream)) => r,
                            _ = stop.changed() => return,
                        };
                        match hs {
                            Ok(Some((sock, conn))) => {
                                engine.send(EngineMsg::StreamOpen(Box::new(NewStream {
                                    sock,
                                    addr,
                                    tls: Some(Box::new(conn)),
                                    permit,
                                    accepted: accepted_at,
                                })))
                            }
                            Ok(None) => tracing::debug!(%addr, "TURN TLS handshake failed"),
                            Err(_) => tracing::debug!(%addr, "TURN TLS handshake timed out"),
                        }
                    });
                }
            }
        }
    }
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
) -> Option<(std::net::TcpStream, rustls::ServerConnection)> {
    let tls = acceptor.accept(stream).await.ok()?;
    let (tcp, conn) = tls.into_inner();
    let sock = tcp.into_std().ok()?;
    Some((sock, conn))
}
