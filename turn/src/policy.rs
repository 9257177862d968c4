//! Peer address policy: which addresses a client may relay to.
//!
//! Secure by default: loopback, unspecified, private, CGNAT, link-local,
//! multicast, broadcast, documentation and reserved ranges are refused, for
//! IPv4 and IPv6, and IPv6 forms that embed an IPv4 address (mapped, NAT64,
//! 6to4) are normalised to that IPv4 address before checking. An explicit
//! allow list overrides the built-in deny list; an explicit deny list
//! overrides everything.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

#[derive(Debug, Clone, Default)]
pub struct PeerPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    /// Exact transport addresses allowed although the built-in table refuses their IP
    /// (e.g. a media server on the same private network): only that address and port.
    exempt: Vec<SocketAddr>,
}

/// Outcome of a policy check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refused by the built-in table (may still be one of our relay addresses).
    DenyBuiltin,
    /// Refused by the operator's deny list (never overridden).
    DenyExplicit,
}

impl PeerPolicy {
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        PeerPolicy {
            allow,
            deny,
            exempt: Vec::new(),
        }
    }

    /// Also allows these exact addresses (IP and port) past the built-in table; the
    /// explicit deny list still wins.
    pub fn with_exempt(mut self, exempt: Vec<SocketAddr>) -> Self {
        self.exempt = exempt;
        self
    }

    /// Whether `addr` is one of the exact addresses exempted from the built-in table.
    pub fn is_exempt(&self, addr: SocketAddr) -> bool {
        self.exempt.contains(&addr)
    }

    pub fn check(&self, ip: IpAddr) -> Verdict {
        let norm = normalize(ip);
        let hit = |nets: &[IpNet]| {
            nets.iter()
                .any(|n| n.contains(&ip) || norm.is_some_and(|v4| n.contains(&IpAddr::V4(v4))))
        };
        if hit(&self.deny) {
            return Verdict::DenyExplicit;
        }
        if hit(&self.allow) {
            return Verdict::Allow;
        }
        if builtin_denied(ip) {
            Verdict::DenyBuiltin
        } else {
            Verdict::Allow
        }
    }
}

/// The IPv4 address embedded in an IPv6 address by IPv4-mapped
/// (::ffff:0:0/96), NAT64 well-known prefix (64:ff9b::/96) or 6to4 (2002::/16).
pub fn normalize(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let o = v6.octets();
            if let Some(v4) = v6.to_ipv4_mapped() {
                Some(v4)
            } else if s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0, 0, 0, 0] {
                Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
            } else if s[0] == 0x2002 {
                Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
            } else {
                None
            }
        }
    }
}

fn v4_denied(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    let n = u32::from(ip);
    let in_net = |base: u32, bits: u32| (n ^ base) >> (32 - bits) == 0;
    o[0] == 0                                  // 0.0.0.0/8 "this network"
        || o[0] == 10                          // private
        || in_net(0x6440_0000, 10)             // 100.64.0.0/10 CGNAT
        || o[0] == 127                         // loopback
        || in_net(0xA9FE_0000, 16)             // 169.254.0.0/16 link-local (metadata)
        || in_net(0xAC10_0000, 12)             // 172.16.0.0/12 private
        || in_net(0xC000_0000, 24)             // 192.0.0.0/24 IETF protocol assignments
        || in_net(0xC000_0200, 24)             // 192.0.2.0/24 TEST-NET-1
        || in_net(0xC058_6300, 24)             // 192.88.99.0/24 6to4 relay anycast
        || in_net(0xC0A8_0000, 16)             // 192.168.0.0/16 private
        || in_net(0xC612_0000, 15)             // 198.18.0.0/15 benchmarking
        || in_net(0xC633_6400, 24)             // 198.51.100.0/24 TEST-NET-2
        || in_net(0xCB00_7100, 24)             // 203.0.113.0/24 TEST-NET-3
        || o[0] >= 224 // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast
}

fn v6_denied(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let n = u128::from(ip);
    let in_net = |base: u128, bits: u32| (n ^ base) >> (128 - bits) == 0;
    in_net(0, 96)                                   // ::/96: unspecified, loopback, IPv4-compatible
        || in_net(0x0064_ff9b_0001 << 80, 48)       // 64:ff9b:1::/48 local-use NAT64
        || in_net(0x0100 << 112, 64)                // 100::/64 discard-only
        || in_net(0x2001 << 112, 23)                // 2001::/23 IETF protocol assignments (incl. Teredo 2001::/32, benchmarking, ORCHID)
        || in_net(0x2001_0db8 << 96, 32)            // documentation
        || in_net(0x3fff << 112, 20)                // documentation (RFC 9637)
        || in_net(0x5f00 << 112, 16)                // SRv6 SIDs
        || (s[0] & 0xfe00) == 0xfc00                // fc00::/7 ULA
        || (s[0] & 0xffc0) == 0xfe80                // fe80::/10 link-local
        || (s[0] & 0xffc0) == 0xfec0                // fec0::/10 site-local (deprecated)
        || s[0] >> 8 == 0xff // ff00::/8 multicast
}

/// Built-in refusal table (after normalising embedded IPv4 addresses).
pub fn builtin_denied(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_denied(v4),
        IpAddr::V6(v6) => {
            if v6_denied(v6) && v6.to_ipv4_mapped().is_none() {
                return true;
            }
            match normalize(ip) {
                Some(v4) => v4_denied(v4),
                None => false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_exemptions_cover_one_port_only() {
        let engine: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let p = PeerPolicy::default().with_exempt(vec![engine]);
        assert!(p.is_exempt(engine));
        assert!(!p.is_exempt("127.0.0.1:40001".parse().expect("addr")));
        assert!(!p.is_exempt("10.0.0.1:40000".parse().expect("addr")));
        // The IP itself is still refused by the built-in table.
        assert_eq!(p.check(engine.ip()), Verdict::DenyBuiltin);
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn builtin_table() {
        let denied = [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "192.0.0.8",
            "192.0.2.7",
            "192.88.99.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.1",
            "203.0.113.5",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "::8.8.8.8",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::ffff:0.0.0.0",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "64:ff9b:1:ffff::8.8.8.8",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "2001:db8::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "100::1",
            "5f00::1",
            "2001:2::1",
            "2001:10::1",
        ];
        for d in denied {
            assert!(builtin_denied(ip(d)), "{d} should be denied");
        }
        let allowed = [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "2400::1",
        ];
        for a in allowed {
            assert!(!builtin_denied(ip(a)), "{a} should be allowed");
        }
    }

    #[test]
    fn allow_and_deny_lists() {
        let p = PeerPolicy::new(
            vec![
                "10.0.0.0/8".parse().expect("net"),
                "127.0.0.0/8".parse().expect("net"),
            ],
            vec![
                "10.9.0.0/16".parse().expect("net"),
                "8.8.4.0/24".parse().expect("net"),
            ],
        );
        assert_eq!(p.check(ip("10.1.1.1")), Verdict::Allow);
        assert_eq!(p.check(ip("::ffff:10.1.1.1")), Verdict::Allow);
        assert_eq!(p.check(ip("10.9.1.1")), Verdict::DenyExplicit);
        assert_eq!(p.check(ip("::ffff:10.9.1.1")), Verdict::DenyExplicit);
        assert_eq!(p.check(ip("64:ff9b::a09:101")), Verdict::DenyExplicit);
        assert_eq!(p.check(ip("8.8.4.4")), Verdict::DenyExplicit);
        assert_eq!(p.check(ip("8.8.8.8")), Verdict::Allow);
        assert_eq!(p.check(ip("192.168.0.1")), Verdict::DenyBuiltin);
        let d = PeerPolicy::default();
        assert_eq!(d.check(ip("127.0.0.1")), Verdict::DenyBuiltin);
    }
}
