//! TCP and TLS client connections (RFC 8656 section 12.5 stream framing).
//! Each connection is a tokio task that cuts frames and hands them to its
//! engine; the engine answers through a bounded channel (full = dropped,
//! as media over UDP would be).

use super::engine::{EngineMsg, EngineTx};
use crate::framing::{Frame, MAX_FRAME, frame_len};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// A connection that sends no complete frame for this long is closed.
const IDLE: Duration = Duration::from_secs(600);
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 20_000;

pub(crate) struct Acceptor {
    pub listener: TcpListener,
    /// Engines of this listener; connections are spread over them.
    pub engines: Vec<EngineTx>,
    pub tls: Option<TlsAcceptor>,
    pub conn_ids: Arc<AtomicU32>,
    pub limit: Arc<Semaphore>,
}

pub(crate) fn connection_limit() -> Arc<Semaphore> {
    Arc::new(Semaphore::new(MAX_CONNECTIONS))
}

impl Acceptor {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                r = self.listener.accept() => r,
                _ = stop.changed() => break,
            };
            let Ok((stream, addr)) = accepted else {
                continue;
            };
            let Ok(permit) = self.limit.clone().try_acquire_owned() else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let conn = self.conn_ids.fetch_add(1, Ordering::Relaxed).max(1);
            let Some(engine) = self
                .engines
                .get(conn as usize % self.engines.len().max(1))
                .cloned()
            else {
                continue;
            };
            let tls = self.tls.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tls {
                    None => serve(stream, addr, conn, engine, stop).await,
                    Some(acceptor) => {
                        match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => serve(s, addr, conn, engine, stop).await,
                            _ => tracing::debug!(%addr, "TURN TLS handshake failed"),
                        }
                    }
                }
            });
        }
    }
}

async fn serve<S>(
    stream: S,
    addr: SocketAddr,
    conn: u32,
    engine: EngineTx,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1024);
    engine.send(EngineMsg::StreamOpen { conn, tx });
    let (mut r, mut w) = tokio::io::split(stream);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if w.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    'read: loop {
        // Hand over every complete frame in the buffer.
        loop {
            match frame_len(&buf) {
                Frame::Complete(n) => {
                    let rest = buf.split_off(n);
                    let data = std::mem::replace(&mut buf, rest);
                    engine.send(EngineMsg::StreamFrame { conn, addr, data });
                }
                Frame::Incomplete => break,
                Frame::Invalid => break 'read,
            }
        }
        if buf.len() > MAX_FRAME + 64 {
            break;
        }
        if buf.capacity() - buf.len() < 2048 {
            buf.reserve(8192);
        }
        let read = tokio::select! {
            r = tokio::time::timeout(IDLE, r.read_buf(&mut buf)) => r,
            _ = stop.changed() => break,
        };
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
    }
    engine.send(EngineMsg::StreamClosed { conn, addr });
    writer.abort();
}
