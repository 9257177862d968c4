//! Core tests: permissions, channels, relaying, policy, bandwidth, robustness.

use super::harness::*;

#[test]
fn permissions_channels_and_relay() {
    let mut core = core_with(settings(), permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let p = peer("198.51.100.7:9000");
    // No permission yet: Send indication and peer data are dropped.
    let mut ind = Vec::new();
    Builder::new(&mut ind, method::SEND, Class::Indication, &[9; 12])
        .xor_addr(attr::XOR_PEER_ADDRESS, p)
        .attr(attr::DATA, b"hello");
    core.handle_client(&mut io, now(1), c.key, &ind);
    assert!(io.to_peer.is_empty());
    let mut pkt = [0u8; 64];
    pkt[HEADROOM..HEADROOM + 3].copy_from_slice(b"abc");
    let sent = io.to_client.len();
    core.handle_peer(&mut io, now(1), 0, p, &mut pkt, 3);
    assert_eq!(io.to_client.len(), sent);
    // CreatePermission then Send works, and peer data comes back as a Data indication.
    let r = c.request(&mut core, &mut io, now(1), method::CREATE_PERMISSION, |b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    core.handle_client(&mut io, now(2), c.key, &ind);
    assert_eq!(io.to_peer.last(), Some(&(0, p, b"hello".to_vec())));
    core.handle_peer(&mut io, now(2), 0, peer("198.51.100.7:1234"), &mut pkt, 3);
    let m = parse(&io.to_client.last().expect("data").1).expect("parse");
    assert_eq!((m.method, m.class), (method::DATA, Class::Indication));
    assert_eq!(m.data, Some(&b"abc"[..]));
    // ChannelBind: then ChannelData both ways.
    let r = c.request(&mut core, &mut io, now(3), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4001_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    core.handle_client(&mut io, now(3), c.key, &[0x40, 0x01, 0, 2, 7, 7]);
    assert_eq!(io.to_peer.last(), Some(&(0, p, vec![7, 7])));
    core.handle_peer(&mut io, now(3), 0, p, &mut pkt, 3);
    assert_eq!(
        io.to_client.last().expect("cd").1,
        vec![0x40, 0x01, 0, 3, b'a', b'b', b'c']
    );
    // Unbound channel: dropped.
    let n = io.to_peer.len();
    core.handle_client(&mut io, now(3), c.key, &[0x40, 0x02, 0, 1, 7]);
    assert_eq!(io.to_peer.len(), n);
    // Channel errors: bad number, rebinding to another peer, peer on another channel.
    for (ch, pr) in [
        (0x3FFFu32, p),
        (0x8000, p),
        (0x4001, peer("198.51.100.8:1")),
        (0x4002, p),
    ] {
        let r = c.request(&mut core, &mut io, now(4), method::CHANNEL_BIND, |b| {
            b.u32_attr(attr::CHANNEL_NUMBER, ch << 16)
                .xor_addr(attr::XOR_PEER_ADDRESS, pr);
        });
        assert_eq!(r.code, Some(400), "channel {ch:#x}");
    }
    // Family mismatch: 443.
    let r = c.request(&mut core, &mut io, now(4), method::CREATE_PERMISSION, |b| {
        b.xor_addr(attr::XOR_PEER_ADDRESS, peer("[2606:4700::1]:1"));
    });
    assert_eq!(r.code, Some(443));
    // Permission expires after 300 s, channel after 600 s (unless refreshed).
    core.tick(&mut io, now(302));
    let n = io.to_peer.len();
    core.handle_client(&mut io, now(302), c.key, &ind);
    assert_eq!(
        io.to_peer.len(),
        n + 1,
        "channel bind refreshed the permission at t=3"
    );
    core.tick(&mut io, now(304));
    core.handle_client(&mut io, now(304), c.key, &[0x40, 0x01, 0, 2, 7, 7]);
    assert_eq!(io.to_peer.len(), n + 1, "permission expired");
    assert_eq!(core.shared.counters.relayed_packets.load(Relaxed), 5);
}

#[test]
fn tcp_clients_get_padded_channel_data() {
    let mut core = core_with(settings(), permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    c.key.conn = 7;
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let p = peer("198.51.100.7:9000");
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    let mut pkt = [0u8; 64];
    pkt[HEADROOM] = 1;
    core.handle_peer(&mut io, now(1), 0, p, &mut pkt, 1);
    assert_eq!(
        io.to_client.last().expect("cd").1,
        vec![0x40, 0x00, 0, 1, 1, 0, 0, 0]
    );
    core.client_closed(&mut io, c.key);
    assert_eq!(core.allocation_count(), 0);
}

#[test]
fn quotas_on_permissions_and_channels() {
    let mut cfg = settings();
    cfg.max_permissions = 2;
    cfg.max_channels = 1;
    let mut core = core_with(cfg, permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    for (i, want) in [(1u8, None), (2, None), (3, Some(508))] {
        let r = c.request(&mut core, &mut io, now(0), method::CREATE_PERMISSION, |b| {
            b.xor_addr(
                attr::XOR_PEER_ADDRESS,
                SocketAddr::from(([198, 51, 100, i], 1)),
            );
        });
        assert_eq!(r.code, want);
    }
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000).xor_addr(
            attr::XOR_PEER_ADDRESS,
            SocketAddr::from(([198, 51, 100, 1], 1)),
        );
    });
    assert_eq!(r.class, Class::Success);
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4001_0000).xor_addr(
            attr::XOR_PEER_ADDRESS,
            SocketAddr::from(([198, 51, 100, 2], 1)),
        );
    });
    assert_eq!(r.code, Some(508));
}

#[test]
fn policy_refuses_internal_peers_but_allows_own_relays() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut a = Client::new(4000, "a");
    let mut b = Client::new(4001, "b");
    assert_eq!(
        allocate(&mut a, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let rb = allocate(&mut b, &mut core, &mut io, now(0));
    let b_relay = rb.relayed.expect("relay");
    for bad in [
        "127.0.0.1:80",
        "10.0.0.1:1",
        "169.254.169.254:80",
        "0.0.0.0:1",
        "224.0.0.1:1",
        "100.64.0.1:1",
        "255.255.255.255:1",
    ] {
        let r = a.request(
            &mut core,
            &mut io,
            now(1),
            method::CREATE_PERMISSION,
            |bld| {
                bld.xor_addr(attr::XOR_PEER_ADDRESS, peer(bad));
            },
        );
        assert_eq!(r.code, Some(403), "{bad}");
        let r = a.request(&mut core, &mut io, now(1), method::CHANNEL_BIND, |bld| {
            bld.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
                .xor_addr(attr::XOR_PEER_ADDRESS, peer(bad));
        });
        assert_eq!(r.code, Some(403), "{bad}");
    }
    // The relay address of another allocation on this server is allowed...
    let r = a.request(&mut core, &mut io, now(1), method::CHANNEL_BIND, |bld| {
        bld.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, b_relay);
    });
    assert_eq!(r.class, Class::Success);
    // ...but not another port on the same loopback address, even via Send.
    let mut ind = Vec::new();
    Builder::new(&mut ind, method::SEND, Class::Indication, &[9; 12])
        .xor_addr(attr::XOR_PEER_ADDRESS, peer("127.0.0.1:22"))
        .attr(attr::DATA, b"x");
    core.handle_client(&mut io, now(2), a.key, &ind);
    assert!(io.to_peer.is_empty());
    // Explicit deny overrides even the relay exemption; allow overrides the table.
    let mut core2 = core_with(
        settings(),
        PeerPolicy::new(
            vec!["10.0.0.0/8".parse().expect("n")],
            vec!["10.1.0.0/16".parse().expect("n")],
        ),
    );
    let mut c = Client::new(4000, "c");
    assert_eq!(
        allocate(&mut c, &mut core2, &mut io, now(0)).class,
        Class::Success
    );
    let r = c.request(
        &mut core2,
        &mut io,
        now(0),
        method::CREATE_PERMISSION,
        |bld| {
            bld.xor_addr(attr::XOR_PEER_ADDRESS, peer("10.2.0.1:1"));
        },
    );
    assert_eq!(r.class, Class::Success);
    let r = c.request(
        &mut core2,
        &mut io,
        now(0),
        method::CREATE_PERMISSION,
        |bld| {
            bld.xor_addr(attr::XOR_PEER_ADDRESS, peer("10.1.0.1:1"));
        },
    );
    assert_eq!(r.code, Some(403));
    assert!(core.shared.counters.policy_refusals.load(Relaxed) >= 14);
}

#[test]
fn bandwidth_cap_drops_excess() {
    let mut cfg = settings();
    cfg.max_bps = Some(2000);
    let mut core = core_with(cfg, permissive());
    let mut io = FakeIo::default();
    let mut c = Client::new(4000, "a");
    assert_eq!(
        allocate(&mut c, &mut core, &mut io, now(0)).class,
        Class::Success
    );
    let p = peer("198.51.100.7:9000");
    let r = c.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |b| {
        b.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, p);
    });
    assert_eq!(r.class, Class::Success);
    let mut pkt = vec![0x40, 0x00, 0x01, 0xF4];
    pkt.extend_from_slice(&[0u8; 500]);
    for _ in 0..10 {
        core.handle_client(&mut io, now(0), c.key, &pkt);
    }
    assert_eq!(io.to_peer.len(), 4);
    core.handle_client(&mut io, now(1), c.key, &pkt);
    assert_eq!(io.to_peer.len(), 5);
    assert!(core.shared.counters.dropped_packets.load(Relaxed) >= 6);
}

#[test]
fn garbage_is_ignored() {
    let mut core = core_with(settings(), permissive());
    let mut io = FakeIo::default();
    let key = ClientKey::udp(peer("192.0.2.1:1"));
    for data in [
        &[][..],
        &[0xff; 30],
        &[0x40, 0, 0, 0],
        &[0, 1, 0, 0],
        &[0x80],
    ] {
        core.handle_client(&mut io, now(0), key, data);
    }
    assert!(io.to_client.is_empty());
}

#[test]
fn hairpin_between_allocations_of_one_shard_skips_the_kernel() {
    let mut core = core_with(settings(), PeerPolicy::default());
    let mut io = FakeIo::default();
    let mut a = Client::new(4000, "a");
    let mut b = Client::new(4001, "b");
    let ra = allocate(&mut a, &mut core, &mut io, now(0))
        .relayed
        .expect("relay a");
    let rb = allocate(&mut b, &mut core, &mut io, now(0))
        .relayed
        .expect("relay b");
    let r = a.request(&mut core, &mut io, now(0), method::CHANNEL_BIND, |bl| {
        bl.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
            .xor_addr(attr::XOR_PEER_ADDRESS, rb);
    });
    assert_eq!(r.class, Class::Success);
    // Without a permission at B for A's relay, the packet is dropped at B.
    core.handle_client(&mut io, now(1), a.key, &[0x40, 0x00, 0, 3, 1, 2, 3]);
    assert!(io.to_peer.is_empty());
    assert!(io.to_client.last().is_some_and(|(k, _)| *k == a.key));
    let r = b.request(
        &mut core,
        &mut io,
        now(1),
        method::CREATE_PERMISSION,
        |bl| {
            bl.xor_addr(attr::XOR_PEER_ADDRESS, ra);
        },
    );
    assert_eq!(r.class, Class::Success);
    core.handle_client(&mut io, now(2), a.key, &[0x40, 0x00, 0, 3, 1, 2, 3]);
    assert!(io.to_peer.is_empty(), "delivered in-process");
    let (to, data) = io.to_client.last().expect("delivered to b");
    assert_eq!(*to, b.key);
    let m = parse(data).expect("data indication");
    assert_eq!(m.method, method::DATA);
    assert_eq!(m.peer, Some(ra));
    assert_eq!(m.data, Some(&[1u8, 2, 3][..]));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// Arbitrary client and peer input never panics the core and every
        /// output it produces is a well-formed STUN message or ChannelData.
        #[test]
        fn core_survives_arbitrary_input(
            packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
            stun_shaped in any::<bool>(),
        ) {
            let mut core = core_with(settings(), permissive());
            let mut io = FakeIo::default();
            let mut c = Client::new(4000, "p");
            prop_assert_eq!(allocate(&mut c, &mut core, &mut io, now(0)).class, Class::Success);
            for (i, mut p) in packets.into_iter().enumerate() {
                if stun_shaped && p.len() >= 20 {
                    p[0] &= 0x3F;
                    p[4..8].copy_from_slice(&stun::MAGIC_COOKIE.to_be_bytes());
                    let l = ((p.len() - 20) & !3) as u16;
                    p[2..4].copy_from_slice(&l.to_be_bytes());
                    p.truncate(20 + l as usize);
                }
                core.handle_client(&mut io, now(i as u64), c.key, &p);
                let mut pkt = vec![0u8; HEADROOM + p.len() + 4];
                pkt[HEADROOM..HEADROOM + p.len()].copy_from_slice(&p);
                core.handle_peer(&mut io, now(i as u64), 0, peer("198.51.100.1:1"), &mut pkt, p.len());
                core.handle_peer(&mut io, now(i as u64), 99, peer("198.51.100.1:1"), &mut pkt, p.len());
            }
            for (_, out) in &io.to_client {
                prop_assert!(parse(out).is_ok() || crate::framing::parse_channel_data(out).is_some());
            }
        }
    }
}

#[test]
fn peer_of_the_other_family_is_443_before_policy() {
    // (relay family, peer, expected code for CreatePermission and ChannelBind)
    let table: &[(u8, &str, Option<u16>)] = &[
        (1, "1.1.1.1:9", None),
        (1, "127.0.0.1:9", Some(403)),
        (1, "[2606:4700::1]:9", Some(443)),
        (1, "[::1]:9", Some(443)),
        (1, "[::ffff:127.0.0.1]:9", Some(443)),
        (1, "[fe80::1]:9", Some(443)),
        (2, "[2606:4700::1]:9", None),
        (2, "[::1]:9", Some(403)),
        (2, "1.1.1.1:9", Some(443)),
        (2, "127.0.0.1:9", Some(443)),
        (2, "169.254.169.254:80", Some(443)),
    ];
    for (i, &(family, p, want)) in table.iter().enumerate() {
        let mut core = core_with(settings(), PeerPolicy::default());
        let mut io = FakeIo::default();
        let mut c = Client::new(4000 + i as u16, "fam");
        let r = c.request(&mut core, &mut io, now(0), method::ALLOCATE, |b| {
            b.attr(attr::REQUESTED_TRANSPORT, &[17, 0, 0, 0]);
            if family == 2 {
                b.attr(attr::REQUESTED_ADDRESS_FAMILY, &[2, 0, 0, 0]);
            }
        });
        assert_eq!(r.class, Class::Success, "allocate family {family}");
        let r = c.request(&mut core, &mut io, now(1), method::CREATE_PERMISSION, |b| {
            b.xor_addr(attr::XOR_PEER_ADDRESS, peer(p));
        });
        assert_eq!(r.code, want, "CreatePermission {p} on family {family}");
        let r = c.request(&mut core, &mut io, now(1), method::CHANNEL_BIND, |b| {
            b.u32_attr(attr::CHANNEL_NUMBER, 0x4000_0000)
                .xor_addr(attr::XOR_PEER_ADDRESS, peer(p));
        });
        assert_eq!(r.code, want, "ChannelBind {p} on family {family}");
    }
}

#[test]
fn channel_bind_accepts_0x4000_to_0x4fff_only() {
    // (channel, strict RFC 8656 answer, answer with legacy_channel_numbers)
    let table: &[(u16, Option<u16>, Option<u16>)] = &[
        (0x0000, Some(400), Some(400)),
        (0x3FFF, Some(400), Some(400)),
        (0x4000, None, None),
        (0x4001, None, None),
        (0x4FFF, None, None),
        (0x5000, Some(400), None),
        (0x6ABC, Some(400), None),
        (0x7FFF, Some(400), None),
        (0x8000, Some(400), Some(400)),
        (0xFFFF, Some(400), Some(400)),
    ];
    for legacy in [false, true] {
        let mut cfg = settings();
        cfg.legacy_channel_numbers = legacy;
        let mut core = core_with(cfg, permissive());
        let mut io = FakeIo::default();
        let mut c = Client::new(4000, "ch");
        assert_eq!(
            allocate(&mut c, &mut core, &mut io, now(0)).class,
            Class::Success
        );
        for (i, &(ch, strict, old)) in table.iter().enumerate() {
            // A fresh peer per row, so only the channel number can fail.
            let p = SocketAddr::from(([198, 51, 100, 1], 1000 + i as u16));
            let r = c.request(&mut core, &mut io, now(1), method::CHANNEL_BIND, |b| {
                b.u32_attr(attr::CHANNEL_NUMBER, u32::from(ch) << 16)
                    .xor_addr(attr::XOR_PEER_ADDRESS, p);
            });
            let want = if legacy { old } else { strict };
            assert_eq!(r.code, want, "channel {ch:#06x}, legacy {legacy}");
        }
    }
}
