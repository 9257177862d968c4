//! The engine's thin socket shell: one task owns the [`Engine`], one UDP socket and a
//! command channel, and sleeps until the next datagram, command or deadline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::core::{Command, Engine, EngineConfig, EngineError, Event, Stats, Tapped};
use super::tcp::{self, Connections, FromConn};
pub use crate::config::media::MediaSettings;

enum Msg {
    Command(Command, oneshot::Sender<Result<(), EngineError>>),
    Subscribe(String, mpsc::UnboundedSender<Event>),
    Tap(mpsc::Sender<Tapped>),
}

/// Handle to the running engine. Cheap to clone.
#[derive(Clone)]
pub struct MediaEngine {
    tx: mpsc::Sender<Msg>,
    local_addr: SocketAddr,
    announce: SocketAddr,
    announce_tcp: Option<SocketAddr>,
    stats: Arc<Mutex<(Stats, usize, usize)>>,
    /// Nanoseconds the engine's task spent working (not waiting), see [`MediaEngine::busy`].
    busy: Arc<std::sync::atomic::AtomicU64>,
    policy: crate::domain::server_quality::Policy,
}

/// The engine's UDP socket, with buffers large enough to absorb the bursts of many routed
/// calls (key frames of every publisher arrive in bursts; the kernel's default receive
/// buffer overflowed at 30-40 recorded calls in the recording benchmark).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.rmem_max / wmem_max.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// Largest datagram read (anything longer is truncated and then refused by DTLS/SRTP).
const MAX_DATAGRAM: usize = 2048;

impl MediaEngine {
    /// Binds `[media] listen` and starts the engine's task. The error names the key.
    pub async fn start(
        settings: &MediaSettings,
        stop: CancellationToken,
    ) -> Result<Self, (&'static str, String)> {
        let socket = bind_udp(settings.listen).map_err(|e| {
            (
                "media.listen",
                format!("cannot bind {}: {e}", settings.listen),
            )
        })?;
        let local_addr = socket
            .local_addr()
            .map_err(|e| ("media.listen", e.to_string()))?;
        let announce = settings.announce_for(local_addr);
        let tcp = match settings.ice_tcp {
            true => Some(tcp::bind(settings.listen_tcp).await?),
            false => None,
        };
        let tcp_addr = match &tcp {
            Some(l) => Some(
                l.local_addr()
                    .map_err(|e| ("media.listen_tcp", e.to_string()))?,
            ),
            None => None,
        };
        let announce_tcp = tcp_addr.map(|a| settings.announce_for(a));
        let engine = Engine::new(EngineConfig {
            local_addr,
            announce,
            max_participants: settings.max_participants,
            max_per_call: settings.max_per_call,
            announce_tcp,
            max_bitrate_bps: u64::from(settings.max_bitrate_kbps) * 1000,
        });
        let (tx, rx) = mpsc::channel(1024);
        let stats = Arc::new(Mutex::new((Stats::default(), 0, 0)));
        let busy = Arc::new(std::sync::atomic::AtomicU64::new(0));
        tokio::spawn(run(
            engine,
            socket,
            tcp,
            rx,
            stop,
            stats.clone(),
            busy.clone(),
        ));
        tracing::info!(%local_addr, %announce, ?announce_tcp, "media engine listening (UDP, ICE-TCP)");
        Ok(Self {
            tx,
            local_addr,
            announce,
            announce_tcp,
            stats,
            busy,
            policy: settings.quality_policy(),
        })
    }

    /// Time the engine's task has spent working since it started: handling datagrams,
    /// commands and timers and sending what they produced (the waits excluded). Measured
    /// with the monotonic clock around each turn; the task does no blocking work, so this
    /// is its CPU time plus whatever preemption hit it mid-turn.
    pub fn busy(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.busy.load(std::sync::atomic::Ordering::Relaxed))
    }

    /// When a routed participant's direction is degraded (`[media] degraded_*`).
    pub fn quality_policy(&self) -> crate::domain::server_quality::Policy {
        self.policy
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address clients connect to (the engine's ICE candidate).
    pub fn announce(&self) -> SocketAddr {
        self.announce
    }

    /// The engine's ICE-TCP address (its passive candidate), when ICE-TCP is on.
    pub fn announce_tcp(&self) -> Option<SocketAddr> {
        self.announce_tcp
    }

    /// Counters, routed calls and routed participants, as of the engine's last turn.
    pub fn stats(&self) -> (Stats, usize, usize) {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    pub async fn command(&self, cmd: Command) -> Result<(), EngineError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Msg::Command(cmd, tx))
            .await
            .map_err(|_| EngineError::Internal("the media engine has stopped".into()))?;
        rx.await
            .map_err(|_| EngineError::Internal("the media engine has stopped".into()))?
    }

    /// The recorded participants' RTP from now on (replacing any earlier receiver), through
    /// a channel of `capacity` items: when the recorder lags, packets are dropped and
    /// counted (`Stats::recorded_dropped`), never waited for.
    pub async fn tap(&self, capacity: usize) -> mpsc::Receiver<Tapped> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let _ = self.tx.send(Msg::Tap(tx)).await;
        rx
    }

    /// Events of one call (offers to relay, connection states) from now on.
    pub async fn subscribe(&self, call: &str) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.tx.send(Msg::Subscribe(call.to_owned(), tx)).await;
        rx
    }
}

fn event_call(e: &Event) -> &str {
    match e {
        Event::Offer { call, .. }
        | Event::Connected { call, .. }
        | Event::Failed { call, .. }
        | Event::Quality { call, .. } => call,
    }
}

async fn run(
    mut engine: Engine,
    socket: UdpSocket,
    listener: Option<tokio::net::TcpListener>,
    mut rx: mpsc::Receiver<Msg>,
    stop: CancellationToken,
    stats: Arc<Mutex<(Stats, usize, usize)>>,
    busy: Arc<std::sync::atomic::AtomicU64>,
) {
    let mut subs: HashMap<String, mpsc::UnboundedSender<Event>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut tap: Option<mpsc::Sender<Tapped>> = None;
    let mut tap_dropped = 0u64;
    let (conn_tx, mut conn_rx) = mpsc::channel(1024);
    let mut conns = Connections::new(conn_tx, stop.child_token());
    let mut turn = Instant::now();
    loop {
        while let Some(t) = engine.poll_transmit() {
            if t.tcp {
                conns.send(t.to, &t.data);
            } else if let Err(e) = socket.try_send_to(&t.data, t.to) {
                tracing::trace!(error = %e, to = %t.to, "media send failed");
            }
        }
        while let Some(ev) = engine.poll_event() {
            let call = event_call(&ev).to_owned();
            if let Some(tx) = subs.get(&call)
                && tx.send(ev).is_err()
            {
                subs.remove(&call);
            }
        }
        while let Some(t) = engine.poll_recorded() {
            if tap.as_ref().is_none_or(|tx| tx.try_send(t).is_err()) {
                tap_dropped += 1;
            }
        }
        if let Ok(mut s) = stats.lock() {
            let mut st = engine.stats();
            st.recorded_dropped += tap_dropped;
            *s = (st, engine.calls(), engine.participants());
        }
        let deadline = engine.poll_timeout();
        let spent = u64::try_from(turn.elapsed().as_nanos()).unwrap_or(u64::MAX);
        busy.fetch_add(spent, std::sync::atomic::Ordering::Relaxed);
        let wake = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    turn = Instant::now();
                    engine.handle_datagram(from, &buf[..n], turn)
                }
                Err(e) => {
                    turn = Instant::now();
                    tracing::trace!(error = %e, "media receive failed")
                }
            },
            m = rx.recv() => match m {
                Some(Msg::Command(cmd, reply)) => {
                    turn = Instant::now();
                    let _ = reply.send(engine.handle_command(cmd, turn));
                }
                Some(Msg::Subscribe(call, tx)) => {
                    turn = Instant::now();
                    subs.insert(call, tx);
                }
                Some(Msg::Tap(tx)) => tap = Some(tx),
                None => break,
            },
            a = async {
                match &listener {
                    Some(l) => l.accept().await,
                    None => std::future::pending().await,
                }
            } => {
                turn = Instant::now();
                match a {
                    Ok((stream, from)) => conns.accept(stream, from),
                    Err(e) => tracing::debug!(error = %e, "ICE-TCP accept failed"),
                }
            }
            Some(f) = conn_rx.recv() => {
                turn = Instant::now();
                match f {
                    FromConn::Frame(from, data) => engine.handle_packet(from, true, &data, turn),
                    FromConn::Closed(from) => conns.closed(from),
                }
            }
            _ = wake => {
                turn = Instant::now();
                engine.handle_timeout(turn)
            }
        }
    }
    tracing::debug!("media engine stopped");
}
