//! TURN request handlers (RFC 8656 sections 7-11).

use super::alloc::{
    Allocation, Bucket, CHANNEL_LIFETIME_MS, Channel, DEFAULT_LIFETIME_S, MAX_LIFETIME_S,
    PERMISSION_LIFETIME_MS,
};
use super::{Auth, ClientKey, Core, Family, Io, Now};
use crate::credentials::check_rest_username;
use crate::framing::{CHANNEL_BIND_MAX, CHANNEL_BIND_MAX_LEGACY, CHANNEL_MIN};
use crate::stun::{Msg, attr};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;

const UDP: u8 = 17;

impl Core {
    fn own_allocation(&self, client: ClientKey, m: &Msg) -> Result<usize, u16> {
        let &slot = self.by_client.get(&client).ok_or(437u16)?;
        let a = self
            .allocs
            .get(slot)
            .and_then(Option::as_ref)
            .ok_or(437u16)?;
        if Some(&*a.username) != m.username {
            return Err(441);
        }
        Ok(slot)
    }

    fn send_allocate_success(
        &mut self,
        io: &mut impl Io,
        now: Now,
        m: &Msg,
        auth: Auth,
        slot: usize,
        extra_family_error: bool,
    ) {
        let Some(a) = self.allocs.get(slot).and_then(Option::as_ref) else {
            return;
        };
        let client = a.client;
        let relay = a.relay_public;
        let lifetime = (a.expires_ms.saturating_sub(now.ms) / 1000) as u32;
        self.reply(io, client, m, Some(auth), 0, |b| {
            b.xor_addr(attr::XOR_RELAYED_ADDRESS, relay)
                .u32_attr(attr::LIFETIME, lifetime)
                .xor_addr(attr::XOR_MAPPED_ADDRESS, client.addr);
            if extra_family_error {
                // ADDRESS-ERROR-CODE: family IPv6, 440.
                b.attr(attr::ADDRESS_ERROR_CODE, &[0x02, 0, 4, 40]);
            }
        });
    }

    pub(super) fn allocate(
        &mut self,
        io: &mut impl Io,
        now: Now,
        client: ClientKey,
        m: &Msg,
        auth: Auth,
    ) {
        if let Some(&slot) = self.by_client.get(&client) {
            let retransmit = self
                .allocs
                .get(slot)
                .and_then(Option::as_ref)
                .is_some_and(|a| a.alloc_tid == m.tid);
            if retransmit {
                self.send_allocate_success(io, now, m, auth, slot, false);
            } else {
                self.reply_error(io, client, m, Some(auth), 437);
            }
            return;
        }
        match m.requested_transport {
            None => return self.reply_error(io, client, m, Some(auth), 400),
            Some(UDP) => {}
            Some(_) => return self.reply_error(io, client, m, Some(auth), 442),
        }
        if m.reservation_token && (m.even_port || m.requested_family.is_some()) {
            return self.reply_error(io, client, m, Some(auth), 400);
        }
        if m.reservation_token {
            // Reservations are not supported: nothing is ever reserved.
            return self.reply_error(io, client, m, Some(auth), 508);
        }
        if m.requested_family.is_some() && m.additional_family.is_some() {
            return self.reply_error(io, client, m, Some(auth), 400);
        }
        let family = match m.requested_family {
            None | Some(1) => Family::V4,
            Some(2) => Family::V6,
            Some(_) => return self.reply_error(io, client, m, Some(auth), 440),
        };
        let extra_family_error = match m.additional_family {
            None => false,
            Some(2) => true,
            Some(_) => return self.reply_error(io, client, m, Some(auth), 400),
        };
        let Some(user) = m.username else {
            return self.reply_error(io, client, m, Some(auth), 400);
        };
        let cred_id: Box<str> = match check_rest_username(user, now.unix) {
            Ok(id) => id.into(),
            Err(_) => return self.reply_error(io, client, m, Some(auth), 401),
        };
        // Quotas: node-wide (508) then per credential id (486).
        let counters = &self.shared.counters;
        if self.cfg.max_allocations > 0
            && counters.allocations.load(Relaxed) >= self.cfg.max_allocations as u64
        {
            counters.quota_refusals.fetch_add(1, Relaxed);
            return self.reply_error(io, client, m, Some(auth), 508);
        }
        let quota_ok = match self.shared.user_counts.lock() {
            Ok(mut u) => {
                let n = u.entry(cred_id.clone()).or_insert(0);
                if self.cfg.user_quota > 0 && *n >= self.cfg.user_quota {
                    false
                } else {
                    *n += 1;
                    true
                }
            }
            Err(_) => false,
        };
        if !quota_ok {
            self.shared.counters.quota_refusals.fetch_add(1, Relaxed);
            return self.reply_error(io, client, m, Some(auth), 486);
        }
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.allocs.push(None);
                self.allocs.len() - 1
            }
        };
        let Some(local) = io.open_relay(slot, family) else {
            self.free.push(slot);
            if let Ok(mut u) = self.shared.user_counts.lock()
                && let Some(n) = u.get_mut(&cred_id)
            {
                *n = n.saturating_sub(1);
            }
            let code = if matches!(family, Family::V6) {
                440
            } else {
                508
            };
            return self.reply_error(io, client, m, Some(auth), code);
        };
        let public = match self.cfg.external_ip {
            Some(ip) if ip.is_ipv4() == local.is_ipv4() => SocketAddr::new(ip, local.port()),
            _ => local,
        };
        let lifetime = m
            .lifetime
            .unwrap_or(DEFAULT_LIFETIME_S)
            .clamp(DEFAULT_LIFETIME_S, MAX_LIFETIME_S);
        let alloc = Allocation {
            client,
            relay_local: local,
            relay_public: public,
            username: user.into(),
            cred_id,
            expires_ms: now.ms + lifetime as u64 * 1000,
            alloc_tid: m.tid,
            perms: HashMap::new(),
            channels: HashMap::new(),
            chan_by_peer: HashMap::new(),
            bucket: self.cfg.max_bps.map(|r| Bucket::new(r, now.ms)),
        };
        if let Ok(mut s) = self.shared.relay_addrs.write() {
            s.insert(local);
            s.insert(public);
        }
        self.allocs[slot] = Some(alloc);
        self.by_client.insert(client, slot);
        if !local.ip().is_unspecified() {
            self.relay_index.insert(local, (slot, false));
        }
        self.relay_index.insert(public, (slot, true));
        self.shared.counters.allocations.fetch_add(1, Relaxed);
        self.shared.counters.allocations_total.fetch_add(1, Relaxed);
        self.send_allocate_success(io, now, m, auth, slot, extra_family_error);
    }

    pub(super) fn refresh(
        &mut self,
        io: &mut impl Io,
        now: Now,
        client: ClientKey,
        m: &Msg,
        auth: Auth,
    ) {
        let slot = match self.own_allocation(client, m) {
            Ok(s) => s,
            Err(code) => return self.reply_error(io, client, m, Some(auth), code),
        };
        let v6 = self.allocs[slot].as_ref().is_some_and(|a| a.is_ipv6());
        match m.requested_family {
            None => {}
            Some(1) if !v6 => {}
            Some(2) if v6 => {}
            Some(_) => return self.reply_error(io, client, m, Some(auth), 443),
        }
        let lifetime = m.lifetime.unwrap_or(DEFAULT_LIFETIME_S).min(MAX_LIFETIME_S);
        if lifetime == 0 {
            self.delete_allocation(io, slot);
        } else if let Some(a) = self.allocs[slot].as_mut() {
            a.expires_ms = now.ms + lifetime as u64 * 1000;
        }
        self.reply(io, client, m, Some(auth), 0, |b| {
            b.u32_attr(attr::LIFETIME, lifetime);
        });
    }

    /// Common checks for a peer address of CreatePermission / ChannelBind.
    fn check_peer(&self, slot: usize, peer: SocketAddr) -> Result<(), u16> {
        // Family first (RFC 8656 sections 9.1 and 11.2): a peer of the other
        // family can never be reached from this relay, whatever the policy
        // says about it, so it is a 443 (Peer Address Family Mismatch).
        let v6 = self.allocs[slot].as_ref().is_some_and(|a| a.is_ipv6());
        if peer.is_ipv6() != v6 {
            return Err(443);
        }
        if !self.peer_allowed(peer) {
            self.shared.counters.policy_refusals.fetch_add(1, Relaxed);
            return Err(403);
        }
        Ok(())
    }

    pub(super) fn create_permission(
        &mut self,
        io: &mut impl Io,
        now: Now,
        client: ClientKey,
        m: &Msg,
        auth: Auth,
    ) {
        let slot = match self.own_allocation(client, m) {
            Ok(s) => s,
            Err(code) => return self.reply_error(io, client, m, Some(auth), code),
        };
        if m.peer_count == 0 {
            return self.reply_error(io, client, m, Some(auth), 400);
        }
        let mut new = 0usize;
        for p in m.peers() {
            let Some(p) = p else {
                return self.reply_error(io, client, m, Some(auth), 400);
            };
            if let Err(code) = self.check_peer(slot, p) {
                return self.reply_error(io, client, m, Some(auth), code);
            }
            if self.allocs[slot]
                .as_ref()
                .is_some_and(|a| !a.perms.contains_key(&p.ip()))
            {
                new += 1;
            }
        }
        let max = self.cfg.max_permissions as usize;
        let Some(a) = self.allocs[slot].as_mut() else {
            return;
        };
        if a.perms.len() + new > max {
            a.prune(now.ms);
        }
        if a.perms.len() + new > max {
            self.shared.counters.quota_refusals.fetch_add(1, Relaxed);
            return self.reply_error(io, client, m, Some(auth), 508);
        }
        let peers: Vec<SocketAddr> = m.peers().flatten().collect();
        for p in peers {
            a.perms.insert(p.ip(), now.ms + PERMISSION_LIFETIME_MS);
        }
        self.reply(io, client, m, Some(auth), 0, |_| {});
    }

    pub(super) fn channel_bind(
        &mut self,
        io: &mut impl Io,
        now: Now,
        client: ClientKey,
        m: &Msg,
        auth: Auth,
    ) {
        let slot = match self.own_allocation(client, m) {
            Ok(s) => s,
            Err(code) => return self.reply_error(io, client, m, Some(auth), code),
        };
        let (Some(ch), Some(peer)) = (m.channel, m.peer) else {
            return self.reply_error(io, client, m, Some(auth), 400);
        };
        let max = if self.cfg.legacy_channel_numbers {
            CHANNEL_BIND_MAX_LEGACY
        } else {
            CHANNEL_BIND_MAX
        };
        if !(CHANNEL_MIN..=max).contains(&ch) || m.peer_count != 1 {
            return self.reply_error(io, client, m, Some(auth), 400);
        }
        if let Err(code) = self.check_peer(slot, peer) {
            return self.reply_error(io, client, m, Some(auth), code);
        }
        let (max_ch, max_perm) = (
            self.cfg.max_channels as usize,
            self.cfg.max_permissions as usize,
        );
        let Some(a) = self.allocs[slot].as_mut() else {
            return;
        };
        a.prune(now.ms);
        if let Some(c) = a.channels.get(&ch) {
            if c.peer != peer {
                return self.reply_error(io, client, m, Some(auth), 400);
            }
        } else if a.chan_by_peer.contains_key(&peer) {
            return self.reply_error(io, client, m, Some(auth), 400);
        }
        let new_chan = !a.channels.contains_key(&ch);
        let new_perm = !a.perms.contains_key(&peer.ip());
        if (new_chan && a.channels.len() >= max_ch) || (new_perm && a.perms.len() >= max_perm) {
            self.shared.counters.quota_refusals.fetch_add(1, Relaxed);
            return self.reply_error(io, client, m, Some(auth), 508);
        }
        a.channels.insert(
            ch,
            Channel {
                peer,
                expires_ms: now.ms + CHANNEL_LIFETIME_MS,
            },
        );
        a.chan_by_peer.insert(peer, ch);
        let pe = a.perms.entry(peer.ip()).or_insert(0);
        *pe = (*pe).max(now.ms + PERMISSION_LIFETIME_MS);
        self.reply(io, client, m, Some(auth), 0, |_| {});
    }

    pub(super) fn send_indication(
        &mut self,
        io: &mut impl Io,
        now: Now,
        client: ClientKey,
        m: &Msg,
    ) {
        if m.n_unknown > 0 || m.malformed {
            return;
        }
        let (Some(peer), Some(data)) = (m.peer, m.data) else {
            return;
        };
        let Some(&slot) = self.by_client.get(&client) else {
            return;
        };
        let v6 = self.allocs[slot].as_ref().is_some_and(|a| a.is_ipv6());
        if peer.is_ipv6() != v6 {
            return;
        }
        if !self.peer_allowed(peer) {
            self.shared.counters.policy_refusals.fetch_add(1, Relaxed);
            return;
        }
        let Some(a) = self.allocs[slot].as_mut() else {
            return;
        };
        if !a.permitted(peer.ip(), now.ms) || !a.admit(data.len(), now.ms) {
            self.shared.counters.dropped_packets.fetch_add(1, Relaxed);
            return;
        }
        self.count_relayed(data.len());
        self.relay_out(io, now, slot, peer, data);
    }
}
