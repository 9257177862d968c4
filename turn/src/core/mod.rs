//! The sans-IO TURN core: STUN/TURN request handling, allocations,
//! permissions, channels, nonces, policy and quotas. Inputs come in with the
//! current time; outputs go out through the [`Io`] trait (which the tokio
//! shell implements with sockets and the tests with vectors).

mod alloc;
mod handlers;

pub use alloc::{
    Bucket, CHANNEL_LIFETIME_MS, DEFAULT_LIFETIME_S, MAX_LIFETIME_S, PERMISSION_LIFETIME_MS,
};

use crate::config::TurnConfig;
use crate::credentials::{check_rest_username, long_term_key, rest_password_into};
use crate::nonce::{NonceCheck, NonceKey};
use crate::policy::{PeerPolicy, Verdict};
use crate::stats::Counters;
use crate::stun::{self, Builder, Class, Msg, attr, method};
use alloc::Allocation;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use subtle::ConstantTimeEq;

/// Bytes of headroom the shell leaves before peer data so that a ChannelData
/// header can be written in place (no copy on the hot path).
pub const HEADROOM: usize = 4;

/// The client side of a 5-tuple as seen by one listener: `conn` is 0 for UDP
/// and the connection id for TCP/TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    pub conn: u32,
    pub addr: SocketAddr,
}

impl ClientKey {
    pub fn udp(addr: SocketAddr) -> Self {
        ClientKey { conn: 0, addr }
    }
    fn is_stream(&self) -> bool {
        self.conn != 0
    }
}

/// Address family of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    V4,
    V6,
}

/// Current time, passed in by the caller.
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Monotonic milliseconds (any origin).
    pub ms: u64,
    /// Wall-clock Unix seconds (REST username expiry, nonces).
    pub unix: u64,
}

/// The outputs of the core.
pub trait Io {
    /// Send a datagram (UDP) or a frame (TCP/TLS) to a client.
    fn send_to_client(&mut self, client: ClientKey, data: &[u8]);
    /// Send a datagram from relay `slot` to `peer`.
    fn send_to_peer(&mut self, slot: usize, peer: SocketAddr, data: &[u8]);
    /// Open a relay socket for allocation `slot`; returns its bound address.
    fn open_relay(&mut self, slot: usize, family: Family) -> Option<SocketAddr>;
    /// Close the relay socket of `slot`.
    fn close_relay(&mut self, slot: usize);
}

/// State shared by all listener shards of one server (control plane only).
#[derive(Debug, Default)]
pub struct Shared {
    pub counters: Counters,
    user_counts: Mutex<HashMap<Box<str>, u32>>,
    relay_addrs: RwLock<HashSet<SocketAddr>>,
}

impl Shared {
    fn is_relay_addr(&self, a: SocketAddr) -> bool {
        self.relay_addrs
            .read()
            .map(|s| s.contains(&a))
            .unwrap_or(false)
    }
}

/// Settings the core needs, derived from [`TurnConfig`].
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub realm: String,
    pub secrets: Vec<Vec<u8>>,
    pub software: Option<String>,
    pub user_quota: u32,
    pub max_allocations: u32,
    pub max_bps: Option<u64>,
    pub max_permissions: u32,
    pub max_channels: u32,
    pub external_ip: Option<IpAddr>,
    pub revocations: crate::revocations::Revocations,
    /// Accept ChannelBind numbers up to 0x7FFF (RFC 5766) instead of 0x4FFF.
    pub legacy_channel_numbers: bool,
}

impl From<&TurnConfig> for CoreSettings {
    fn from(c: &TurnConfig) -> Self {
        CoreSettings {
            realm: c.realm.clone(),
            secrets: c.secrets.clone(),
            software: c.software.clone(),
            user_quota: c.user_quota,
            max_allocations: c.max_allocations,
            max_bps: c.max_bps,
            max_permissions: c.max_permissions,
            max_channels: c.max_channels,
            external_ip: c.external_ip,
            revocations: c.revocations.clone(),
            legacy_channel_numbers: c.legacy_channel_numbers,
        }
    }
}

/// Result of authenticating a request.
#[derive(Debug, Clone, Copy)]
struct Auth {
    key: [u8; 16],
    sha256: bool,
}

/// One shard of the relay: owns its allocations; no locks on the data path.
pub struct Core {
    cfg: CoreSettings,
    policy: PeerPolicy,
    nonces: NonceKey,
    shared: Arc<Shared>,
    allocs: Vec<Option<Allocation>>,
    free: Vec<usize>,
    by_client: HashMap<ClientKey, usize>,
    /// Relay addresses of this shard -> (slot, is the public address).
    relay_index: HashMap<SocketAddr, (usize, bool)>,
    buf: Vec<u8>,
    hairpin_buf: Vec<u8>,
    ind_tid: [u8; 12],
    /// Unix time of the message being handled (for nonces in replies).
    now_unix: u64,
}

pub(crate) fn reason(code: u16) -> &'static str {
    match code {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        420 => "Unknown Attribute",
        437 => "Allocation Mismatch",
        438 => "Stale Nonce",
        440 => "Address Family not Supported",
        441 => "Wrong Credentials",
        442 => "Unsupported Transport Protocol",
        443 => "Peer Address Family Mismatch",
        486 => "Allocation Quota Reached",
        508 => "Insufficient Capacity",
        _ => "Error",
    }
}

impl Core {
    pub fn new(
        cfg: CoreSettings,
        policy: PeerPolicy,
        nonces: NonceKey,
        shared: Arc<Shared>,
    ) -> Self {
        Core {
            cfg,
            policy,
            nonces,
            shared,
            allocs: Vec::new(),
            free: Vec::new(),
            by_client: HashMap::new(),
            relay_index: HashMap::new(),
            buf: Vec::with_capacity(1500),
            hairpin_buf: Vec::with_capacity(1500),
            ind_tid: rand::random(),
            now_unix: 0,
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Number of live allocations in this shard.
    pub fn allocation_count(&self) -> usize {
        self.by_client.len()
    }

    /// Whether `client` holds an allocation (the shell keeps quiet stream
    /// connections without one for a shorter time).
    pub fn has_allocation(&self, client: ClientKey) -> bool {
        self.by_client.contains_key(&client)
    }

    /// A datagram or frame from a client.
    pub fn handle_client(&mut self, io: &mut impl Io, now: Now, client: ClientKey, data: &[u8]) {
        match data.first().map(|b| b >> 6) {
            Some(0) => self.handle_stun(io, now, client, data),
            Some(1) => self.handle_channel_data(io, now, client, data),
            _ => {}
        }
    }

    /// Hot path: ChannelData from a client, relayed to the bound peer.
    fn handle_channel_data(&mut self, io: &mut impl Io, now: Now, client: ClientKey, data: &[u8]) {
        let Some((ch, payload)) = crate::framing::parse_channel_data(data) else {
            return;
        };
        let Some(&slot) = self.by_client.get(&client) else {
            return;
        };
        let Some(a) = self.allocs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        let peer = match a.channels.get(&ch) {
            Some(c) if c.expires_ms > now.ms => c.peer,
            _ => return,
        };
        if !a.permitted(peer.ip(), now.ms) || !a.admit(payload.len(), now.ms) {
            self.shared.counters.dropped_packets.fetch_add(1, Relaxed);
            return;
        }
        self.count_relayed(payload.len());
        self.relay_out(io, now, slot, peer, payload);
    }

    /// Send relayed data from allocation `slot` to `peer`. When the peer is
    /// another relay address of this shard (two parties of one call both
    /// relayed through this server), deliver it in-process: the result is the
    /// same as the kernel round trip, minus two syscalls per packet.
    fn relay_out(
        &mut self,
        io: &mut impl Io,
        now: Now,
        slot: usize,
        peer: SocketAddr,
        data: &[u8],
    ) {
        let hairpin = self.relay_index.get(&peer).copied();
        let (Some((dst, public)), Some(src)) =
            (hairpin, self.allocs.get(slot).and_then(Option::as_ref))
        else {
            io.send_to_peer(slot, peer, data);
            return;
        };
        let from = if public {
            src.relay_public
        } else {
            src.relay_local
        };
        let mut buf = std::mem::take(&mut self.hairpin_buf);
        buf.clear();
        buf.resize(HEADROOM + data.len() + 4, 0);
        buf[HEADROOM..HEADROOM + data.len()].copy_from_slice(data);
        self.handle_peer(io, now, dst, from, &mut buf, data.len());
        self.hairpin_buf = buf;
    }

    fn count_relayed(&self, n: usize) {
        let c = &self.shared.counters;
        c.relayed_packets.fetch_add(1, Relaxed);
        c.relayed_bytes.fetch_add(n as u64, Relaxed);
    }

    /// Hot path: a datagram from a peer to relay `slot`. `pkt` holds the
    /// payload at `pkt[HEADROOM..HEADROOM + len]` and has at least 3 spare
    /// bytes after it (for TCP padding).
    pub fn handle_peer(
        &mut self,
        io: &mut impl Io,
        now: Now,
        slot: usize,
        from: SocketAddr,
        pkt: &mut [u8],
        len: usize,
    ) {
        let Some(a) = self.allocs.get_mut(slot).and_then(Option::as_mut) else {
            return;
        };
        if HEADROOM + len > pkt.len() || len > u16::MAX as usize {
            return;
        }
        if !a.permitted(from.ip(), now.ms) || !a.admit(len, now.ms) {
            self.shared.counters.dropped_packets.fetch_add(1, Relaxed);
            return;
        }
        let client = a.client;
        if let Some(ch) = a.channel_for(&from, now.ms) {
            pkt[..2].copy_from_slice(&ch.to_be_bytes());
            pkt[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            let mut total = HEADROOM + len;
            if client.is_stream() {
                let pad = (4 - len % 4) % 4;
                if total + pad <= pkt.len() {
                    pkt[total..total + pad].fill(0);
                    total += pad;
                }
            }
            io.send_to_client(client, &pkt[..total]);
        } else {
            self.next_ind_tid();
            let tid = self.ind_tid;
            let mut buf = std::mem::take(&mut self.buf);
            Builder::new(&mut buf, method::DATA, Class::Indication, &tid)
                .xor_addr(attr::XOR_PEER_ADDRESS, from)
                .attr(attr::DATA, &pkt[HEADROOM..HEADROOM + len]);
            io.send_to_client(client, &buf);
            self.buf = buf;
        }
        self.count_relayed(len);
    }

    fn next_ind_tid(&mut self) {
        for b in self.ind_tid.iter_mut().rev() {
            *b = b.wrapping_add(1);
            if *b != 0 {
                break;
            }
        }
    }

    /// A TCP/TLS client connection closed: its allocation goes with it.
    pub fn client_closed(&mut self, io: &mut impl Io, client: ClientKey) {
        if let Some(&slot) = self.by_client.get(&client) {
            self.delete_allocation(io, slot);
        }
    }

    /// Expire allocations, permissions and channels. Call about once a second.
    pub fn tick(&mut self, io: &mut impl Io, now: Now) {
        let mut expired = Vec::new();
        for (slot, a) in self.allocs.iter_mut().enumerate() {
            if let Some(a) = a {
                if a.expires_ms <= now.ms {
                    expired.push(slot);
                } else {
                    a.prune(now.ms);
                }
            }
        }
        for slot in expired {
            self.delete_allocation(io, slot);
        }
    }

    /// Delete every allocation (shutdown).
    pub fn close_all(&mut self, io: &mut impl Io) {
        for slot in 0..self.allocs.len() {
            if self.allocs[slot].is_some() {
                self.delete_allocation(io, slot);
            }
        }
    }

    fn delete_allocation(&mut self, io: &mut impl Io, slot: usize) {
        let Some(a) = self.allocs.get_mut(slot).and_then(Option::take) else {
            return;
        };
        self.by_client.remove(&a.client);
        self.relay_index.remove(&a.relay_local);
        self.relay_index.remove(&a.relay_public);
        self.free.push(slot);
        io.close_relay(slot);
        if let Ok(mut s) = self.shared.relay_addrs.write() {
            s.remove(&a.relay_local);
            s.remove(&a.relay_public);
        }
        if let Ok(mut u) = self.shared.user_counts.lock()
            && let Some(n) = u.get_mut(&a.cred_id)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                u.remove(&a.cred_id);
            }
        }
        self.shared.counters.allocations.fetch_sub(1, Relaxed);
    }

    /// Peer policy including the exemption for our own relay addresses.
    fn peer_allowed(&self, peer: SocketAddr) -> bool {
        match self.policy.check(peer.ip()) {
            Verdict::Allow => true,
            Verdict::DenyExplicit => false,
            // Our own relay addresses: this shard's index first (no lock),
            // then the other shards' (control path and rare Send indications).
            Verdict::DenyBuiltin => {
                self.policy.is_exempt(peer)
                    || self.relay_index.contains_key(&peer)
                    || self.shared.is_relay_addr(peer)
            }
        }
    }

    fn handle_stun(&mut self, io: &mut impl Io, now: Now, client: ClientKey, data: &[u8]) {
        let Ok(m) = stun::parse(data) else {
            return;
        };
        self.now_unix = now.unix;
        match (m.class, m.method) {
            (Class::Request, method::BINDING) => {
                self.reply(io, client, &m, None, 0, |b| {
                    b.xor_addr(attr::XOR_MAPPED_ADDRESS, client.addr);
                });
            }
            (
                Class::Request,
                method::ALLOCATE
                | method::REFRESH
                | method::CREATE_PERMISSION
                | method::CHANNEL_BIND,
            ) => {
                let auth = match self.authenticate(io, now, client, &m) {
                    Some(a) => a,
                    None => return,
                };
                if m.n_unknown > 0 {
                    let unknown = m.unknown;
                    let n = m.n_unknown;
                    self.reply(io, client, &m, Some(auth), 420, |b| {
                        b.unknown_attributes(&unknown[..n]);
                    });
                    return;
                }
                if m.malformed {
                    self.reply_error(io, client, &m, Some(auth), 400);
                    return;
                }
                match m.method {
                    method::ALLOCATE => self.allocate(io, now, client, &m, auth),
                    method::REFRESH => self.refresh(io, now, client, &m, auth),
                    method::CREATE_PERMISSION => self.create_permission(io, now, client, &m, auth),
                    _ => self.channel_bind(io, now, client, &m, auth),
                }
            }
            (Class::Request, _) => self.reply_error(io, client, &m, None, 400),
            (Class::Indication, method::SEND) => self.send_indication(io, now, client, &m),
            _ => {}
        }
    }

    /// Long-term credential check with TURN REST usernames. Answers the
    /// client itself (401/400/438) and returns `None` on failure.
    fn authenticate(
        &mut self,
        io: &mut impl Io,
        now: Now,
        client: ClientKey,
        m: &Msg,
    ) -> Option<Auth> {
        if m.mi.is_none() && m.mi256.is_none() {
            self.reply_error(io, client, m, None, 401);
            return None;
        }
        let (Some(user), Some(realm), Some(nonce)) = (m.username, m.realm, m.nonce) else {
            self.reply_error(io, client, m, None, 400);
            return None;
        };
        if self.nonces.check(nonce, client.addr, now.unix) == NonceCheck::Stale {
            self.reply_error(io, client, m, None, 438);
            return None;
        }
        let realm_ok = bool::from(realm.ct_eq(self.cfg.realm.as_bytes()));
        if !realm_ok || check_rest_username(user, now.unix).is_err() {
            self.shared.counters.auth_failures.fetch_add(1, Relaxed);
            self.reply_error(io, client, m, None, 401);
            return None;
        }
        for secret in &self.cfg.secrets {
            let mut pw = [0u8; 28];
            let n = rest_password_into(secret, user, &mut pw);
            let key = long_term_key(user, realm, &pw[..n]);
            let ok = if let Some((off, vlen)) = m.mi256 {
                let mac = stun::integrity_sha256(&key, m.raw, off, vlen);
                vlen <= 32
                    && off + 4 + vlen <= m.raw.len()
                    && bool::from(mac[..vlen].ct_eq(&m.raw[off + 4..off + 4 + vlen]))
            } else if let Some(off) = m.mi {
                let mac = stun::integrity_sha1(&key, m.raw, off);
                off + 24 <= m.raw.len() && bool::from(mac.ct_eq(&m.raw[off + 4..off + 24]))
            } else {
                false
            };
            if ok {
                let auth = Auth {
                    key,
                    sha256: m.mi256.is_some(),
                };
                // Valid, but taken back by the application (session ended, link replaced).
                if self.cfg.revocations.refuses(user, now.unix) {
                    self.shared.counters.auth_failures.fetch_add(1, Relaxed);
                    self.reply_error(io, client, m, Some(auth), 403);
                    return None;
                }
                return Some(auth);
            }
        }
        self.shared.counters.auth_failures.fetch_add(1, Relaxed);
        self.reply_error(io, client, m, None, 401);
        None
    }

    fn reply_error(
        &mut self,
        io: &mut impl Io,
        client: ClientKey,
        m: &Msg,
        auth: Option<Auth>,
        code: u16,
    ) {
        self.reply(io, client, m, auth, code, |_| {});
    }

    /// Send a success (`code == 0`) or error response; `f` adds attributes.
    fn reply(
        &mut self,
        io: &mut impl Io,
        client: ClientKey,
        m: &Msg,
        auth: Option<Auth>,
        code: u16,
        f: impl FnOnce(&mut Builder),
    ) {
        let class = if code == 0 {
            Class::Success
        } else {
            Class::Error
        };
        if code != 0 {
            tracing::debug!(code, method = m.method, client = %client.addr, "TURN error response");
        }
        let mut buf = std::mem::take(&mut self.buf);
        {
            let mut b = Builder::new(&mut buf, m.method, class, &m.tid);
            if code != 0 {
                b.error_code(attr::ERROR_CODE, code, reason(code));
            }
            if code == 401 || code == 438 {
                let nonce = self.nonces.issue(client.addr, self.now_unix);
                b.attr(attr::REALM, self.cfg.realm.as_bytes())
                    .attr(attr::NONCE, &nonce);
            }
            f(&mut b);
            if let Some(s) = &self.cfg.software {
                b.attr(attr::SOFTWARE, s.as_bytes());
            }
            if let Some(a) = auth {
                if a.sha256 {
                    b.integrity_sha256(&a.key);
                } else {
                    b.integrity(&a.key);
                }
            }
            b.fingerprint();
        }
        io.send_to_client(client, &buf);
        self.buf = buf;
    }
}

#[cfg(test)]
mod tests;
