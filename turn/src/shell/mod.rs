//! The tokio shell: binds sockets, starts one engine thread per UDP
//! listener, accepts TCP/TLS connections, exposes stats and shutdown.

mod conns;
mod engine;
mod limits;
mod stream;
mod tls;

use crate::config::{TurnConfig, TurnError};
use crate::core::{Core, CoreSettings, Shared};
use crate::nonce::NonceKey;
use crate::policy::PeerPolicy;
use crate::stats::TurnStats;
use engine::{EngineMsg, EngineTx, RelayBind};
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// A running TURN server. Dropping it stops the engines; prefer
/// [`TurnServer::shutdown`] to wait for them.
pub struct TurnServer {
    udp: Vec<SocketAddr>,
    tcp: Vec<SocketAddr>,
    tls: Vec<SocketAddr>,
    engines: Vec<EngineTx>,
    threads: Vec<std::thread::JoinHandle<()>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
    shared: Arc<Shared>,
}

fn udp_socket(addr: SocketAddr, reuse_port: bool) -> Result<std::net::UdpSocket, TurnError> {
    let bind_err = |source| TurnError::Bind { addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(bind_err)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(bind_err)?;
    }
    if reuse_port {
        // Several engine threads share the port; the kernel spreads clients
        // over them by 4-tuple hash (same effective user only).
        s.set_reuse_port(true).map_err(bind_err)?;
    }
    // Larger buffers absorb bursts on the shared listener socket.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into()).map_err(bind_err)?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> Result<TcpListener, TurnError> {
    let bind_err = |source| TurnError::Bind { addr, source };
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(bind_err)?;
    if addr.is_ipv6() {
        s.set_only_v6(true).map_err(bind_err)?;
    }
    s.set_reuse_address(true).map_err(bind_err)?;
    s.set_nonblocking(true).map_err(bind_err)?;
    s.bind(&addr.into()).map_err(bind_err)?;
    s.listen(1024).map_err(bind_err)?;
    TcpListener::from_std(s.into()).map_err(TurnError::Io)
}

/// Bind `n` UDP sockets (SO_REUSEPORT when `n > 1`) and TCP on the same
/// port (when the port is 0, retry until the OS-chosen port is free for all).
fn bind_group(
    addr: SocketAddr,
    n: usize,
) -> Result<(Vec<std::net::UdpSocket>, TcpListener), TurnError> {
    let mut last = None;
    for _ in 0..20 {
        let first = udp_socket(addr, n > 1)?;
        let real = first.local_addr()?;
        let mut socks = vec![first];
        let mut ok = true;
        for _ in 1..n {
            match udp_socket(real, true) {
                Ok(s) => socks.push(s),
                Err(e) if addr.port() == 0 => {
                    last = Some(e);
                    ok = false;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        if !ok {
            continue;
        }
        match tcp_listener(real) {
            Ok(t) => return Ok((socks, t)),
            Err(e) if addr.port() == 0 => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| TurnError::Config(format!("cannot bind {addr}"))))
}

impl TurnServer {
    /// Bind every listener (port 0 allowed) and start serving.
    pub async fn start(cfg: TurnConfig) -> Result<TurnServer, TurnError> {
        cfg.validate()?;
        let shared = Arc::new(Shared::default());
        let settings = CoreSettings::from(&cfg);
        let policy = PeerPolicy::new(cfg.allow_peer.clone(), cfg.deny_peer.clone())
            .with_exempt(cfg.allow_peer_addrs.clone());
        let nonces = NonceKey::random(cfg.nonce_ttl_secs);
        let tls_acceptor = if cfg.tls_listen.is_empty() {
            None
        } else {
            Some(tls::acceptor(&cfg)?)
        };
        let configured = |v6: bool| cfg.relay_ips.iter().copied().find(|ip| ip.is_ipv6() == v6);
        let relay_bind = |listen: Option<IpAddr>| {
            let b = RelayBind {
                v4: configured(false).or_else(|| engine::default_relay_ip(listen, false)),
                v6: configured(true).or_else(|| engine::default_relay_ip(listen, true)),
                ports: cfg.relay_ports,
            };
            if b.v4.is_none() && b.v6.is_none() {
                tracing::warn!(
                    ?listen,
                    "no relay address found: set relay_ips (--relay-ip); Allocate will fail"
                );
            }
            b
        };
        let (stop, stop_rx) = watch::channel(false);
        let mut server = TurnServer {
            udp: Vec::new(),
            tcp: Vec::new(),
            tls: Vec::new(),
            engines: Vec::new(),
            threads: Vec::new(),
            tasks: Vec::new(),
            stop,
            shared: shared.clone(),
        };
        let limits = limits::ConnLimits::new(
            cfg.max_stream_connections
                .unwrap_or_else(limits::derived_connection_cap),
            cfg.max_stream_connections_per_ip,
        );
        let streams = || conns::Streams::new(cfg.stream_setup_timeout, cfg.stream_idle_timeout);
        let make_core = || {
            Core::new(
                settings.clone(),
                policy.clone(),
                nonces.clone(),
                shared.clone(),
            )
        };
        let shards = cfg.engine_threads.max(1);
        for &addr in &cfg.listen {
            let (udps, tcp) = bind_group(addr, shards)?;
            let real = udps[0].local_addr()?;
            let mut group = Vec::new();
            for udp in udps {
                let (tx, th) = engine::spawn(
                    make_core(),
                    Some(udp),
                    relay_bind(Some(real.ip())),
                    streams(),
                )?;
                server.engines.push(tx.clone());
                server.threads.push(th);
                group.push(tx);
            }
            server.udp.push(real);
            server.tcp.push(tcp.local_addr()?);
            let acc = stream::Acceptor {
                listener: tcp,
                engines: group,
                tls: None,
                limits: limits.clone(),
                setup_timeout: cfg.stream_setup_timeout,
            };
            server.tasks.push(tokio::spawn(acc.run(stop_rx.clone())));
        }
        for &addr in &cfg.tls_listen {
            let tcp = tcp_listener(addr)?;
            if server.engines.is_empty() {
                let (tx, th) =
                    engine::spawn(make_core(), None, relay_bind(Some(addr.ip())), streams())?;
                server.engines.push(tx);
                server.threads.push(th);
            }
            server.tls.push(tcp.local_addr()?);
            let acc = stream::Acceptor {
                listener: tcp,
                engines: server.engines.clone(),
                tls: tls_acceptor.clone(),
                limits: limits.clone(),
                setup_timeout: cfg.stream_setup_timeout,
            };
            server.tasks.push(tokio::spawn(acc.run(stop_rx.clone())));
        }
        Ok(server)
    }

    /// Bound UDP listener addresses (real ports).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp.clone()
    }

    /// Bound TCP listener addresses.
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp.clone()
    }

    /// Bound TLS listener addresses.
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls.clone()
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> TurnStats {
        self.shared.counters.snapshot()
    }

    fn signal_stop(&self) {
        let _ = self.stop.send(true);
        for e in &self.engines {
            e.send(EngineMsg::Shutdown);
        }
    }

    /// Stop accepting, close all allocations and wait for the engines.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let threads: Vec<_> = self.threads.drain(..).collect();
        let _ = tokio::task::spawn_blocking(move || {
            for th in threads {
                let _ = th.join();
            }
        })
        .await;
    }
}

impl Drop for TurnServer {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
