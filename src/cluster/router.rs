//! Where a socket's messages go: its room in this process (one node, or a cluster room
//! this node owns), or the room's owner over the broker.
//!
//! Across nodes the socket's node forwards the client's messages to the owner
//! (`{prefix}.node.{owner}.in`) and relays the owner's outputs back to its socket
//! (`{prefix}.node.{node}.out`). The owner puts a remote socket into the room under a
//! connection id of its own, so the pure room ([`crate::signaling::room`]) never knows.
//! Each direction numbers its messages per socket; a number is applied once.
//!
//! Ownership is a lease in the database (see [`crate::store::leases`]): the first node
//! to see a socket of a room without a live owner takes it; the owner renews it while
//! the room lives and gives it up when the room is gone. When the owner stops answering
//! (no heartbeat for `dead_after`), the sockets bound to it close with "going away", the
//! pages reconnect, and the first node that finds the lease expired rebuilds the room
//! from the reconnecting sockets.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Node;
use super::wire::{self, JoinReply, ToOwner, ToSocketNode, WireJoiner, WireOut};
use crate::signaling::hub::{Rooms, ToSocket};
use crate::signaling::protocol::{self, ClientMsg, CloseReason};
use crate::signaling::room::{ConnId, Input, Joiner};
use crate::store::leases::{self, Owner};

/// Queue depth of a socket's outbox (as in the hub).
const SOCKET_QUEUE: usize = 256;
/// How long a socket waits for its room to find an owner before it is told to reconnect.
const JOIN_WAIT_MIN: Duration = Duration::from_secs(15);
/// How long one broker hop may take before the socket is told to reconnect.
const HOP_TIMEOUT: Duration = Duration::from_secs(2);

/// The signaling entry point of the sockets (`http/ws.rs`).
#[derive(Clone)]
pub enum Signaling {
    /// One node: rooms in this process.
    Local(Rooms),
    /// A cluster node.
    Cluster(Arc<Router>),
}

impl Signaling {
    pub fn rooms(&self) -> &Rooms {
        match self {
            Self::Local(r) => r,
            Self::Cluster(r) => &r.rooms,
        }
    }

    /// Puts a socket into its session's room, wherever it lives. Returns its outbox,
    /// whose first message is the room's answer (`joined`, or a close).
    pub async fn join(&self, session_id: &str, j: Joiner) -> mpsc::Receiver<ToSocket> {
        match self {
            Self::Local(r) => r.join(session_id, j).await,
            Self::Cluster(r) => r.join(session_id, j).await,
        }
    }

    /// A client's message (`text` as received, `msg` parsed). An error closes the socket.
    pub async fn message(
        &self,
        session_id: &str,
        conn: ConnId,
        msg: ClientMsg,
        text: &str,
    ) -> Result<(), CloseReason> {
        match self {
            Self::Local(r) => {
                r.tell(session_id, Input::Message { conn, msg }).await;
                Ok(())
            }
            Self::Cluster(r) => r.message(session_id, conn, msg, text).await,
        }
    }

    /// The socket closed.
    pub async fn disconnected(&self, session_id: &str, conn: ConnId) {
        match self {
            Self::Local(r) => r.tell(session_id, Input::Disconnected { conn }).await,
            Self::Cluster(r) => r.disconnected(session_id, conn).await,
        }
    }
}

/// A socket here whose room is on another node.
struct Bound {
    owner: String,
    session: String,
    tx: mpsc::Sender<ToSocket>,
    /// Number of the next message to the owner.
    next_seq: u64,
    /// Last number applied from the owner.
    last_in: u64,
    since: Instant,
}

/// A socket on another node in a room here.
struct Guest {
    session: String,
    local: ConnId,
    /// Last number applied from the socket's node.
    last_seq: u64,
    since: Instant,
}

pub struct Router {
    pub node: Arc<Node>,
    pub rooms: Rooms,
    db: sea_orm::DatabaseConnection,
    /// Rooms whose lease this node holds, with when they were last used.
    owned: Mutex<HashMap<String, Instant>>,
    bound: Mutex<HashMap<ConnId, Bound>>,
    guests: Mutex<HashMap<(String, ConnId), Guest>>,
}

impl Router {
    pub fn new(node: Arc<Node>, rooms: Rooms, db: sea_orm::DatabaseConnection) -> Arc<Self> {
        Arc::new(Self {
            node,
            rooms,
            db,
            owned: Mutex::default(),
            bound: Mutex::default(),
            guests: Mutex::default(),
        })
    }

    fn ttl(&self) -> f64 {
        self.node.lease_ttl.as_secs_f64()
    }

    fn touch(&self, session_id: &str) {
        if let Ok(mut o) = self.owned.lock() {
            o.insert(session_id.to_owned(), Instant::now());
        }
    }

    fn owns(&self, session_id: &str) -> bool {
        self.owned
            .lock()
            .map(|o| o.contains_key(session_id))
            .unwrap_or(false)
    }

    async fn claim(&self, session_id: &str) -> Result<Owner, sea_orm::DbErr> {
        let may_take = !self.node.is_draining();
        let owner =
            leases::claim_room(&self.db, session_id, &self.node.name, self.ttl(), may_take).await?;
        if owner == Owner::Me {
            self.touch(session_id);
        }
        Ok(owner)
    }

    async fn publish<T: serde::Serialize>(&self, subject: String, msg: &T) -> bool {
        let send = self.node.client.publish(subject, wire::encode(msg).into());
        matches!(tokio::time::timeout(HOP_TIMEOUT, send).await, Ok(Ok(())))
    }

    async fn join(&self, session_id: &str, j: Joiner) -> mpsc::Receiver<ToSocket> {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let conn = j.conn;
        let deadline = Instant::now() + JOIN_WAIT_MIN.max(self.node.lease_ttl * 3);
        let mut pause = Duration::from_millis(100);
        loop {
            match self.claim(session_id).await {
                Ok(Owner::Me) => return self.rooms.join(session_id, j).await,
                Ok(Owner::Other(owner)) => {
                    if let Ok(mut b) = self.bound.lock() {
                        b.insert(
                            conn,
                            Bound {
                                owner: owner.clone(),
                                session: session_id.to_owned(),
                                tx: tx.clone(),
                                next_seq: 2,
                                last_in: 0,
                                since: Instant::now(),
                            },
                        );
                    }
                    let req = ToOwner::Join {
                        session: session_id.to_owned(),
                        from: self.node.name.clone(),
                        conn,
                        seq: 1,
                        joiner: WireJoiner::from_joiner(&j),
                    };
                    let reply = self
                        .node
                        .client
                        .request(self.node.subject_in(&owner), wire::encode(&req).into())
                        .await;
                    match reply.map(|m| wire::decode::<JoinReply>(&m.payload)) {
                        Ok(Ok(JoinReply::Ok)) => {
                            tracing::debug!(%owner, "socket joined a room on another node");
                            return rx;
                        }
                        Ok(Ok(JoinReply::NotOwner)) => {
                            tracing::debug!(%owner, "owner gave the room up; looking again")
                        }
                        Ok(Err(e)) => tracing::warn!(error = %e, "malformed join reply dropped"),
                        Err(e) => tracing::debug!(%owner, error = %e, "owner not reachable"),
                    }
                    if let Ok(mut b) = self.bound.lock() {
                        b.remove(&conn);
                    }
                }
                Ok(Owner::Nobody) => tracing::debug!("no owner and draining: waiting"),
                Err(e) => tracing::warn!(error = %e, "room lease unavailable"),
            }
            if Instant::now() + pause > deadline {
                tracing::info!("no node could take the room; the page will reconnect");
                let _ = tx.try_send(ToSocket::Close(CloseReason::GoingAway));
                return rx;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// The owner and message number for a bound socket's next message.
    fn next_hop(&self, conn: ConnId) -> Option<(String, u64)> {
        let mut b = self.bound.lock().ok()?;
        let bound = b.get_mut(&conn)?;
        let seq = bound.next_seq;
        bound.next_seq += 1;
        Some((bound.owner.clone(), seq))
    }

    async fn message(
        &self,
        session_id: &str,
        conn: ConnId,
        msg: ClientMsg,
        text: &str,
    ) -> Result<(), CloseReason> {
        let Some((owner, seq)) = self.next_hop(conn) else {
            self.rooms
                .tell(session_id, Input::Message { conn, msg })
                .await;
            return Ok(());
        };
        let m = ToOwner::Msg {
            session: session_id.to_owned(),
            from: self.node.name.clone(),
            conn,
            seq,
            text: text.to_owned(),
        };
        if self.publish(self.node.subject_in(&owner), &m).await {
            self.node
                .metrics
                .forwarded
                .with_label_values(&["to_owner"])
                .inc();
            Ok(())
        } else {
            tracing::info!(%owner, "could not reach the room's owner; the page will reconnect");
            self.unbind(conn);
            Err(CloseReason::GoingAway)
        }
    }

    fn unbind(&self, conn: ConnId) -> Option<Bound> {
        self.bound.lock().ok()?.remove(&conn)
    }

    async fn disconnected(&self, session_id: &str, conn: ConnId) {
        let Some(mut bound) = self.unbind(conn) else {
            self.rooms
                .tell(session_id, Input::Disconnected { conn })
                .await;
            return;
        };
        let m = ToOwner::Gone {
            session: bound.session.clone(),
            from: self.node.name.clone(),
            conn,
            seq: bound.next_seq,
        };
        bound.next_seq += 1;
        self.publish(self.node.subject_in(&bound.owner), &m).await;
    }

    /// Starts the broker subscriptions and the lease keeper.
    pub async fn start(
        self: &Arc<Self>,
        stop: CancellationToken,
    ) -> Result<Vec<tokio::task::JoinHandle<()>>, super::ClusterError> {
        let inbox = self
            .node
            .subscribe(self.node.subject_in(&self.node.name))
            .await?;
        let outbox = self
            .node
            .subscribe(self.node.subject_out(&self.node.name))
            .await?;
        Ok(vec![
            tokio::spawn(self.clone().serve_owner(inbox, stop.clone())),
            tokio::spawn(self.clone().serve_sockets(outbox, stop.clone())),
            tokio::spawn(self.clone().keep_leases(stop)),
        ])
    }

    /// Owner side: joins, messages and closes of sockets on other nodes, in arrival order.
    async fn serve_owner(
        self: Arc<Self>,
        mut sub: async_nats::Subscriber,
        stop: CancellationToken,
    ) {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            match wire::decode::<ToOwner>(&msg.payload) {
                Ok(m) => {
                    let reply = self.on_owner_msg(m).await;
                    if let (Some(to), Some(r)) = (msg.reply, reply) {
                        let _ = self.node.client.publish(to, wire::encode(&r).into()).await;
                    }
                }
                Err(e) => {
                    self.node
                        .metrics
                        .dropped
                        .with_label_values(&["malformed"])
                        .inc();
                    tracing::warn!(error = %e, bytes = msg.payload.len(), "malformed room message dropped");
                }
            }
        }
    }

    async fn on_owner_msg(self: &Arc<Self>, m: ToOwner) -> Option<JoinReply> {
        match m {
            ToOwner::Join {
                session,
                from,
                conn,
                seq,
                joiner,
            } => {
                let key = (from.clone(), conn);
                if self.guests.lock().ok()?.contains_key(&key) {
                    // A retried join: applied once already.
                    self.dropped("duplicate");
                    return Some(JoinReply::Ok);
                }
                if !self.owns(&session) {
                    match self.claim(&session).await {
                        Ok(Owner::Me) => {}
                        _ => return Some(JoinReply::NotOwner),
                    }
                }
                self.touch(&session);
                let local = self.rooms.next_conn_id();
                let Some(j) = joiner.into_joiner(local) else {
                    self.dropped("malformed");
                    tracing::warn!("join with an unknown role or mode dropped");
                    return Some(JoinReply::NotOwner);
                };
                let rx = self.rooms.join(&session, j).await;
                self.guests.lock().ok()?.insert(
                    key,
                    Guest {
                        session: session.clone(),
                        local,
                        last_seq: seq,
                        since: Instant::now(),
                    },
                );
                tokio::spawn(self.clone().forward(rx, from, conn, local));
                Some(JoinReply::Ok)
            }
            ToOwner::Msg {
                session,
                from,
                conn,
                seq,
                text,
            } => {
                let local = self.accept(&from, conn, seq)?;
                match protocol::parse(&text) {
                    Ok(msg) => {
                        self.rooms
                            .tell(&session, Input::Message { conn: local, msg })
                            .await
                    }
                    Err(reason) => {
                        self.dropped("malformed");
                        tracing::warn!(%reason, "forwarded client message did not parse; dropped");
                    }
                }
                None
            }
            ToOwner::Gone {
                session,
                from,
                conn,
                seq,
            } => {
                if let Some(local) = self.accept(&from, conn, seq) {
                    if let Ok(mut g) = self.guests.lock() {
                        g.remove(&(from, conn));
                    }
                    self.rooms
                        .tell(&session, Input::Disconnected { conn: local })
                        .await;
                }
                None
            }
        }
    }

    fn dropped(&self, reason: &str) {
        self.node.metrics.dropped.with_label_values(&[reason]).inc();
    }

    /// The room-side id of a guest socket, if `seq` is new (applied once, in order).
    /// An unknown socket is told to reconnect (the room moved or was rebuilt).
    fn accept(self: &Arc<Self>, from: &str, conn: ConnId, seq: u64) -> Option<ConnId> {
        let mut guests = self.guests.lock().ok()?;
        match guests.get_mut(&(from.to_owned(), conn)) {
            Some(g) if seq > g.last_seq => {
                g.last_seq = seq;
                Some(g.local)
            }
            Some(_) => {
                drop(guests);
                self.dropped("duplicate");
                None
            }
            None => {
                drop(guests);
                self.dropped("unknown_socket");
                let me = self.clone();
                let to = from.to_owned();
                tokio::spawn(async move {
                    let m = ToSocketNode {
                        conn,
                        seq: u64::MAX,
                        out: WireOut::Gone,
                    };
                    me.publish(me.node.subject_out(&to), &m).await;
                });
                None
            }
        }
    }

    /// Owner side: carries a guest socket's outbox to its node.
    async fn forward(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<ToSocket>,
        node: String,
        conn: ConnId,
        local: ConnId,
    ) {
        let subject = self.node.subject_out(&node);
        let mut seq = 0;
        let mut closed = false;
        while let Some(out) = rx.recv().await {
            seq += 1;
            let out = match out {
                ToSocket::Text(text) => WireOut::Text { text },
                ToSocket::Close(reason) => {
                    closed = true;
                    WireOut::Close {
                        code: reason.code(),
                    }
                }
            };
            let m = ToSocketNode { conn, seq, out };
            if self.publish(subject.clone(), &m).await {
                self.node
                    .metrics
                    .forwarded
                    .with_label_values(&["to_socket"])
                    .inc();
            }
            if closed {
                break;
            }
        }
        if !closed {
            let m = ToSocketNode {
                conn,
                seq: seq + 1,
                out: WireOut::Gone,
            };
            self.publish(subject, &m).await;
        }
        if let Ok(mut g) = self.guests.lock()
            && g.get(&(node.clone(), conn))
                .is_some_and(|g| g.local == local)
        {
            g.remove(&(node, conn));
        }
    }

    /// Socket side: what owners send to the sockets here.
    async fn serve_sockets(
        self: Arc<Self>,
        mut sub: async_nats::Subscriber,
        stop: CancellationToken,
    ) {
        loop {
            let msg = tokio::select! {
                _ = stop.cancelled() => return,
                m = sub.next() => match m { Some(m) => m, None => return },
            };
            let m = match wire::decode::<ToSocketNode>(&msg.payload) {
                Ok(m) => m,
                Err(e) => {
                    self.dropped("malformed");
                    tracing::warn!(error = %e, bytes = msg.payload.len(), "malformed socket message dropped");
                    continue;
                }
            };
            self.on_socket_msg(m).await;
        }
    }

    async fn on_socket_msg(&self, m: ToSocketNode) {
        let Ok(mut bound) = self.bound.lock() else {
            return;
        };
        let Some(b) = bound.get_mut(&m.conn) else {
            drop(bound);
            self.dropped("unknown_socket");
            return;
        };
        let gone = matches!(m.out, WireOut::Gone);
        if m.seq <= b.last_in && !gone {
            drop(bound);
            self.dropped("duplicate");
            return;
        }
        b.last_in = m.seq;
        let keep = match m.out {
            WireOut::Text { text } => b.tx.try_send(ToSocket::Text(text)).is_ok(),
            WireOut::Close { code } => {
                let _ = b.tx.try_send(ToSocket::Close(wire::close_reason(code)));
                false
            }
            // Dropping the sender ends the socket's outbox: it closes "going away".
            WireOut::Gone => false,
        };
        if !keep {
            bound.remove(&m.conn);
        }
    }

    /// Renews this node's room leases, gives up those of rooms that are gone, evicts rooms
    /// whose lease was lost, and lets go of sockets whose other node went silent.
    async fn keep_leases(self: Arc<Self>, stop: CancellationToken) {
        let renew_every = self.node.lease_ttl / 3;
        let mut last_renewed = Instant::now();
        let mut next_renew = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = stop.cancelled() => {
                    self.node.drain();
                    match leases::release_all(&self.db, &self.node.name).await {
                        Ok(n) => tracing::info!(rooms = n, "room leases given up"),
                        Err(e) => tracing::warn!(error = %e, "could not give up room leases"),
                    }
                    return;
                }
                _ = tick.tick() => {}
            }
            self.watch_peers();
            if Instant::now() < next_renew {
                continue;
            }
            next_renew = Instant::now() + renew_every;
            let started = Instant::now();
            self.release_idle().await;
            let held: Vec<String> = self
                .owned
                .lock()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default();
            match leases::renew_rooms(&self.db, &self.node.name, &held, self.ttl()).await {
                Ok(kept) => {
                    last_renewed = started;
                    for s in held.iter().filter(|s| !kept.contains(s)) {
                        tracing::warn!(session_id = %s, "room lease lost; the room moves");
                        self.lose(s);
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not renew room leases");
                    // Past two thirds of the lease another node may take the rooms over:
                    // stop serving them first.
                    if last_renewed.elapsed() > self.node.lease_ttl * 2 / 3 {
                        for s in &held {
                            self.lose(s);
                        }
                    }
                }
            }
            let owned = self.owned.lock().map(|o| o.len()).unwrap_or(0);
            self.node.metrics.rooms_owned.set(owned as i64);
        }
    }

    fn lose(&self, session_id: &str) {
        if let Ok(mut o) = self.owned.lock() {
            o.remove(session_id);
        }
        if let Ok(mut g) = self.guests.lock() {
            g.retain(|_, g| g.session != session_id);
        }
        self.rooms.evict(session_id);
    }

    /// Gives up the leases of rooms that closed here (and were not used for a moment).
    async fn release_idle(&self) {
        let idle: Vec<String> = {
            let guests: std::collections::HashSet<String> = self
                .guests
                .lock()
                .map(|g| g.values().map(|g| g.session.clone()).collect())
                .unwrap_or_default();
            let Ok(mut owned) = self.owned.lock() else {
                return;
            };
            let idle: Vec<String> = owned
                .iter()
                .filter(|(s, used)| {
                    used.elapsed() > Duration::from_secs(2)
                        && !guests.contains(*s)
                        && !self.rooms.contains(s)
                })
                .map(|(s, _)| s.clone())
                .collect();
            for s in &idle {
                owned.remove(s);
            }
            idle
        };
        for s in idle {
            if let Err(e) = leases::release_room(&self.db, &s, &self.node.name).await {
                tracing::warn!(error = %e, "could not give a room lease up; it expires");
            }
        }
    }

    /// Sockets bound to a silent owner reconnect; silent nodes' sockets leave rooms here.
    fn watch_peers(&self) {
        let dead_owners: Vec<ConnId> = self
            .bound
            .lock()
            .map(|b| {
                b.iter()
                    .filter(|(_, b)| !self.node.peer_alive(&b.owner, b.since))
                    .map(|(c, _)| *c)
                    .collect()
            })
            .unwrap_or_default();
        for conn in dead_owners {
            if let Some(b) = self.unbind(conn) {
                tracing::info!(owner = %b.owner, "room owner silent; the page will reconnect");
            }
        }
        let dead_guests: Vec<(String, ConnId)> = self
            .guests
            .lock()
            .map(|mut g| {
                let mut dead = Vec::new();
                for ((node, _), guest) in g.iter() {
                    if !self.node.peer_alive(node, guest.since) {
                        dead.push((guest.session.clone(), guest.local));
                    }
                }
                g.retain(|(node, _), guest| self.node.peer_alive(node, guest.since));
                dead
            })
            .unwrap_or_default();
        let remote_here = self.bound.lock().map(|b| b.len()).unwrap_or(0);
        let guests = self.guests.lock().map(|g| g.len()).unwrap_or(0);
        let m = &self.node.metrics.remote_sockets;
        m.with_label_values(&["to_owner"]).set(remote_here as i64);
        m.with_label_values(&["from_nodes"]).set(guests as i64);
        for (session, local) in dead_guests {
            tracing::info!(session_id = %session, "a socket's node went silent; it left the room");
            let rooms = self.rooms.clone();
            tokio::spawn(async move {
                rooms
                    .tell(&session, Input::Disconnected { conn: local })
                    .await
            });
        }
    }
}
