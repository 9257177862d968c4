//! ICE-TCP for the engine (RFC 6544, passive side): one listening socket beside the UDP
//! port. Each accepted connection carries RFC 4571 frames (a 2-byte big-endian length,
//! then one STUN, DTLS, RTP or RTCP packet); its task hands each frame to the engine's task
//! tagged with the connection's remote address, and writes back what the engine sends to
//! that address. Bounded everywhere: connections, frame size, queue depths, idle time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Most ICE-TCP connections open at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Most ICE-TCP connections from one IP address (an office behind one NAT has many
/// participants; one host cannot take every slot).
pub const MAX_PER_IP: usize = 64;
/// Largest frame accepted (the UDP side's datagram limit); a longer one closes the
/// connection.
pub const MAX_FRAME: usize = 2048;
/// A connection that carries nothing for this long is closed (ICE consent checks run
/// every few seconds on a live one).
const IDLE: Duration = Duration::from_secs(30);
/// Frames waiting to be written to one connection; beyond it they are dropped (as UDP).
const OUT_QUEUE: usize = 512;

#[derive(Debug, PartialEq, Eq)]
pub struct FrameTooLong(pub usize);

/// Takes every complete RFC 4571 frame off the front of `buf`.
pub fn take_frames(buf: &mut BytesMut, out: &mut Vec<Bytes>) -> Result<(), FrameTooLong> {
    while buf.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
        if len > MAX_FRAME {
            return Err(FrameTooLong(len));
        }
        if buf.len() < 2 + len {
            break;
        }
        buf.advance(2);
        out.push(buf.split_to(len).freeze());
    }
    Ok(())
}

/// One packet framed for the wire (`None` when it cannot be: longer than 65535 bytes).
pub fn frame(packet: &[u8]) -> Option<Bytes> {
    let len = u16::try_from(packet.len()).ok()?;
    let mut b = BytesMut::with_capacity(2 + packet.len());
    b.put_u16(len);
    b.put_slice(packet);
    Some(b.freeze())
}

/// What connection tasks tell the engine's task.
pub enum FromConn {
    Frame(SocketAddr, Bytes),
    Closed(SocketAddr),
}

/// The engine task's side: open connections by remote address.
pub struct Connections {
    out: HashMap<SocketAddr, mpsc::Sender<Bytes>>,
    to_engine: mpsc::Sender<FromConn>,
    stop: CancellationToken,
}

impl Connections {
    pub fn new(to_engine: mpsc::Sender<FromConn>, stop: CancellationToken) -> Self {
        Self {
            out: HashMap::new(),
            to_engine,
            stop,
        }
    }

    /// Takes a new connection (or refuses it when too many are open).
    pub fn accept(&mut self, stream: TcpStream, from: SocketAddr) {
        let same_ip = self.out.keys().filter(|a| a.ip() == from.ip()).count();
        if self.out.len() >= MAX_CONNECTIONS || same_ip >= MAX_PER_IP {
            tracing::debug!(%from, "ICE-TCP connection refused: too many open");
            return;
        }
        let _ = stream.set_nodelay(true);
        let (tx, rx) = mpsc::channel(OUT_QUEUE);
        self.out.insert(from, tx);
        let to_engine = self.to_engine.clone();
        tokio::spawn(serve(stream, from, rx, to_engine, self.stop.clone()));
    }

    pub fn closed(&mut self, from: SocketAddr) {
        self.out.remove(&from);
    }

    /// Sends a packet to the connection from `to`; dropped when there is none or it lags.
    pub fn send(&mut self, to: SocketAddr, packet: &[u8]) {
        if let (Some(tx), Some(framed)) = (self.out.get(&to), frame(packet))
            && tx.try_send(framed).is_err()
            && tx.is_closed()
        {
            self.out.remove(&to);
        }
    }

    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }
}

async fn serve(
    stream: TcpStream,
    from: SocketAddr,
    mut rx: mpsc::Receiver<Bytes>,
    to_engine: mpsc::Sender<FromConn>,
    stop: CancellationToken,
) {
    let (mut read, mut write) = stream.into_split();
    let writer = async {
        while let Some(b) = rx.recv().await {
            if write.write_all(&b).await.is_err() {
                break;
            }
        }
    };
    let reader = async {
        let mut buf = BytesMut::with_capacity(4096);
        let mut frames = Vec::new();
        loop {
            match tokio::time::timeout(IDLE, read.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => break,
            }
            if let Err(FrameTooLong(n)) = take_frames(&mut buf, &mut frames) {
                tracing::debug!(%from, len = n, "ICE-TCP frame too long: closing");
                break;
            }
            for f in frames.drain(..) {
                if to_engine.send(FromConn::Frame(from, f)).await.is_err() {
                    return;
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(4096);
            }
        }
    };
    tokio::select! {
        _ = writer => {}
        _ = reader => {}
        _ = stop.cancelled() => {}
    }
    let _ = to_engine.send(FromConn::Closed(from)).await;
}

/// Binds the ICE-TCP listener; the error names the key.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, (&'static str, String)> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ("media.listen_tcp", format!("cannot bind {addr}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_split_and_join() {
        let mut wire = BytesMut::new();
        for p in [&b"abc"[..], b"", &[7u8; 300]] {
            wire.extend_from_slice(&frame(p).expect("frame"));
        }
        let mut partial = wire.split_to(10);
        let mut out = Vec::new();
        take_frames(&mut partial, &mut out).expect("ok");
        assert_eq!(out, vec![Bytes::from_static(b"abc"), Bytes::new()]);
        partial.unsplit(wire);
        take_frames(&mut partial, &mut out).expect("ok");
        assert_eq!(out.len(), 3);
        assert_eq!(out[2].len(), 300);
        assert!(partial.is_empty());
        let mut long = BytesMut::from(&[0x10u8, 0x00, 1, 2][..]);
        assert_eq!(take_frames(&mut long, &mut out), Err(FrameTooLong(4096)));
        assert!(frame(&vec![0u8; 70_000]).is_none());
    }

    proptest! {
        #[test]
        fn any_byte_stream_splits_without_panic_and_in_order(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..MAX_FRAME), 0..6),
            cuts in proptest::collection::vec(1usize..900, 1..8),
            junk in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut wire = BytesMut::new();
            for p in &packets { wire.extend_from_slice(&frame(p).expect("frame")); }
            // Delivered in arbitrary pieces, the frames come out whole and in order.
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut rest = wire.clone();
            let mut i = 0;
            while !rest.is_empty() {
                let n = cuts[i % cuts.len()].min(rest.len());
                buf.extend_from_slice(&rest.split_to(n));
                take_frames(&mut buf, &mut out).expect("well-formed");
                i += 1;
            }
            prop_assert_eq!(out.len(), packets.len());
            for (o, p) in out.iter().zip(&packets) { prop_assert_eq!(&o[..], &p[..]); }
            // Garbage never panics and never yields more than it holds.
            let mut g = BytesMut::from(&junk[..]);
            let mut got = Vec::new();
            let _ = take_frames(&mut g, &mut got);
            prop_assert!(got.iter().map(|f| f.len() + 2).sum::<usize>() <= junk.len());
        }
    }
}
