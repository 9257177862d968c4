//! Several nodes behind a load balancer acting as one (`[cluster]`; see docs/cluster.md).
//!
//! * The broker is NATS (core pub/sub and request/reply; no JetStream): room traffic
//!   between a socket's node and the room's owner ([`router`]), session-bus signals for
//!   every node ([`bus`]), and a heartbeat per node (liveness of the other nodes).
//! * Room ownership and cluster-wide tasks are leases in PostgreSQL
//!   ([`crate::store::leases`]), compared in the database's clock.
//!
//! Without `[cluster]` nothing here runs: one node, in-process rooms, no broker.

pub mod bus;
pub mod router;
pub mod wire;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;

use crate::config::cluster::ClusterConfig;

pub use router::Signaling;

/// Why the cluster could not start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster: broker client: {0}")]
    Connect(String),
    #[error("cluster: subscribing to {subject}: {message}")]
    Subscribe { subject: String, message: String },
}

/// Per-node cluster metrics (every node is scraped on its own; the `node` label of
/// `sightline_cluster_node_info` names it). The registry adds the `sightline_` prefix.
pub struct ClusterMetrics {
    pub broker_connected: IntGauge,
    pub rooms_owned: IntGauge,
    pub remote_sockets: IntGaugeVec,
    pub forwarded: IntCounterVec,
    pub dropped: IntCounterVec,
}

impl ClusterMetrics {
    fn new(registry: &prometheus::Registry, node: &str) -> Self {
        let info = IntGaugeVec::new(
            Opts::new(
                "cluster_node_info",
                "This node's name in the cluster (always 1)",
            ),
            &["node"],
        )
        .expect("valid metric");
        info.with_label_values(&[node]).set(1);
        let m = Self {
            broker_connected: IntGauge::new(
                "cluster_broker_connected",
                "1 while this node is connected to the broker",
            )
            .expect("valid metric"),
            rooms_owned: IntGauge::new(
                "cluster_rooms_owned",
                "Rooms whose ownership lease this node holds",
            )
            .expect("valid metric"),
            remote_sockets: IntGaugeVec::new(
                Opts::new(
                    "cluster_remote_sockets",
                    "Sockets whose room is on another node (to_owner: sockets here; \
                     from_nodes: sockets elsewhere in rooms here)",
                ),
                &["side"],
            )
            .expect("valid metric"),
            forwarded: IntCounterVec::new(
                Opts::new(
                    "cluster_forwarded_total",
                    "Room messages sent over the broker",
                ),
                &["direction"],
            )
            .expect("valid metric"),
            dropped: IntCounterVec::new(
                Opts::new(
                    "cluster_dropped_total",
                    "Broker messages dropped (malformed, duplicate, unknown socket)",
                ),
                &["reason"],
            )
            .expect("valid metric"),
        };
        for c in [
            Box::new(info) as Box<dyn prometheus::core::Collector>,
            Box::new(m.broker_connected.clone()),
            Box::new(m.rooms_owned.clone()),
            Box::new(m.remote_sockets.clone()),
            Box::new(m.forwarded.clone()),
            Box::new(m.dropped.clone()),
        ] {
            if let Err(e) = registry.register(c) {
                tracing::warn!(error = %e, "cluster metric not registered");
            }
        }
        m
    }
}

/// This node in the cluster: its name, the broker client, who else is alive.
pub struct Node {
    pub name: String,
    prefix: String,
    pub client: async_nats::Client,
    pub lease_ttl: Duration,
    pub dead_after: Duration,
    draining: AtomicBool,
    peers: Mutex<HashMap<String, Instant>>,
    pub metrics: ClusterMetrics,
}

impl Node {
    /// Connects to the broker in the background: a node starts (and serves what it can)
    /// while the broker is down, and reconnects by itself.
    pub async fn connect(
        cfg: &ClusterConfig,
        registry: &prometheus::Registry,
    ) -> Result<Arc<Self>, ClusterError> {
        let shown = cfg.broker_display();
        let (url, options) = split_credentials(
            cfg.broker_url
                .as_ref()
                .map(|u| u.expose_secret().trim())
                .unwrap_or_default(),
        )
        .ok_or_else(|| ClusterError::Connect(format!("{shown}: not a URL")))?;
        let logged = shown.clone();
        let metrics = ClusterMetrics::new(registry, &cfg.node);
        let gauge = metrics.broker_connected.clone();
        // One warning per outage, not one per reconnect attempt.
        let down = Arc::new(AtomicBool::new(false));
        let client = options
            .name(format!("sightline-{}", cfg.node))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .request_timeout(Some(Duration::from_secs(2)))
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((attempts as u64 * 200).min(2000))
            })
            .event_callback(move |event| {
                let broker = logged.clone();
                let down = down.clone();
                let gauge = gauge.clone();
                async move {
                    use async_nats::Event;
                    let unreachable = || {
                        gauge.set(0);
                        if !down.swap(true, Ordering::Relaxed) {
                            tracing::warn!(
                                %broker,
                                "broker unreachable: rooms on other nodes are out of reach, \
                                 rooms here keep running; reconnecting"
                            );
                        }
                    };
                    match event {
                        Event::Connected => {
                            // The gauge follows the connection at once; the heartbeat
                            // loop also refreshes it every tick.
                            gauge.set(1);
                            down.store(false, Ordering::Relaxed);
                            tracing::info!(%broker, "broker connected");
                        }
                        Event::Disconnected => unreachable(),
                        Event::ClientError(e) => {
                            unreachable();
                            tracing::debug!(error = %e, "broker client error");
                        }
                        Event::ServerError(e) => tracing::warn!(error = %e, "broker error"),
                        other => tracing::debug!(event = %other, "broker event"),
                    }
                }
            })
            .connect(url.as_str())
            .await
            // The error text of a URL that fails to parse may repeat the URL: say only
            // which broker, never its credentials.
            .map_err(|e| ClusterError::Connect(format!("{shown}: {:?}", e.kind())))?;
        tracing::info!(node = %cfg.node, broker = %shown, "cluster node starting");
        Ok(Arc::new(Self {
            metrics,
            name: cfg.node.clone(),
            prefix: cfg.subject_prefix.clone(),
            client,
            lease_ttl: Duration::from_secs(cfg.room_lease_secs),
            dead_after: Duration::from_millis(cfg.dead_after_ms),
            draining: AtomicBool::new(false),
            peers: Mutex::default(),
        }))
    }

    pub fn broker_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// A draining node (stopping) takes no new rooms and reports not ready.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn drain(&self) {
        if !self.draining.swap(true, Ordering::Relaxed) {
            tracing::info!("draining: this node takes no new rooms");
        }
    }

    /// Whether this node can take traffic: broker reachable and not draining.
    pub fn ready(&self) -> bool {
        self.broker_connected() && !self.is_draining()
    }

    pub fn subject_in(&self, node: &str) -> String {
        format!("{}.node.{node}.in", self.prefix)
    }

    pub fn subject_out(&self, node: &str) -> String {
        format!("{}.node.{node}.out", self.prefix)
    }

    fn subject_hb(&self) -> String {
        format!("{}.hb", self.prefix)
    }

    pub fn subject_signal(&self) -> String {
        format!("{}.signal", self.prefix)
    }

    async fn subscribe(&self, subject: String) -> Result<async_nats::Subscriber, ClusterError> {
        self.client
            .subscribe(subject.clone())
            .await
            .map_err(|e| ClusterError::Subscribe {
                subject,
                message: e.to_string(),
            })
    }

    /// Whether `node` was heard from within `dead_after` (counting from `since` for a
    /// node not heard from yet).
    pub fn peer_alive(&self, node: &str, since: Instant) -> bool {
        let heard = self
            .peers
            .lock()
            .ok()
            .and_then(|p| p.get(node).copied())
            .map_or(since, |t| t.max(since));
        heard.elapsed() <= self.dead_after
    }

    /// Publishes this node's heartbeat every second and records the others'.
    pub async fn run_heartbeat(self: Arc<Self>, stop: CancellationToken) {
        let mut sub = match self.subscribe(self.subject_hb()).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "heartbeats off");
                return;
            }
        };
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    self.metrics.broker_connected.set(i64::from(self.broker_connected()));
                    let hb = wire::Heartbeat { node: self.name.clone(), draining: self.is_draining() };
                    if self.broker_connected() {
                        let _ = self.client.publish(self.subject_hb(), wire::encode(&hb).into()).await;
                    }
                }
                msg = sub.next() => {
                    let Some(msg) = msg else { return };
                    match wire::decode::<wire::Heartbeat>(&msg.payload) {
                        Ok(hb) => {
                            if let Ok(mut p) = self.peers.lock() {
                                p.insert(hb.node, Instant::now());
                            }
                        }
                        Err(e) => {
                            self.metrics.dropped.with_label_values(&["malformed"]).inc();
                            tracing::warn!(error = %e, "malformed heartbeat dropped");
                        }
                    }
                }
            }
        }
    }
}

/// The broker URL without its credentials, and options carrying them: the NATS client
/// logs server addresses (at debug level), so the address it is given holds no secret.
fn split_credentials(url: &str) -> Option<(String, async_nats::ConnectOptions)> {
    let mut u = url::Url::parse(url).ok()?;
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let user = decode(u.username());
    let pass = u.password().map(decode);
    let options = match (user.is_empty(), pass) {
        (false, Some(pass)) => async_nats::ConnectOptions::with_user_and_password(user, pass),
        (false, None) => async_nats::ConnectOptions::with_token(user),
        (true, _) => async_nats::ConnectOptions::new(),
    };
    u.set_username("").ok()?;
    u.set_password(None).ok()?;
    Some((u.to_string(), options))
}

/// Runs a cluster-wide task on one node at a time: `held` is true while this node holds
/// the task's lease (taken when free or expired, renewed on every call).
pub struct TaskLease {
    pub db: sea_orm::DatabaseConnection,
    pub node: Arc<Node>,
    pub name: &'static str,
    pub ttl: Duration,
}

impl TaskLease {
    pub async fn held(&self) -> bool {
        if self.node.is_draining() {
            return false;
        }
        let ttl = self.ttl.as_secs_f64();
        match crate::store::leases::claim_task(&self.db, self.name, &self.node.name, ttl).await {
            Ok(held) => held,
            Err(e) => {
                tracing::warn!(error = %e, task = self.name, "task lease unavailable");
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_leave_the_url() {
        let (url, _) = super::split_credentials("nats://us%40er:p%3Ass@127.0.0.1:4222").unwrap();
        assert_eq!(url, "nats://127.0.0.1:4222");
        let (url, _) = super::split_credentials("tls://tok@nats.internal").unwrap();
        assert_eq!(url, "tls://nats.internal");
        assert!(super::split_credentials("not a url").is_none());
    }
}
