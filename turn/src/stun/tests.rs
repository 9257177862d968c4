use super::*;
use proptest::prelude::*;

/// RFC 5769 section 2.1: sample request (short-term credentials).
const RFC5769_REQUEST: [u8; 108] = [
    0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10, 0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
    0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
    0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1, 0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
    0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76, 0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
    0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56, 0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
    0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04, 0xe5, 0x7a, 0x3b, 0xcf,
];

/// RFC 5769 section 2.2: sample IPv4 response.
const RFC5769_RESPONSE_V4: [u8; 80] = [
    0x01, 0x01, 0x00, 0x3c, 0x21, 0x12, 0xa4, 0x42, 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x0b, 0x74, 0x65, 0x73, 0x74, 0x20, 0x76, 0x65, 0x63,
    0x74, 0x6f, 0x72, 0x20, 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1, 0x47, 0xe1, 0x12, 0xa6, 0x43,
    0x00, 0x08, 0x00, 0x14, 0x2b, 0x91, 0xf5, 0x99, 0xfd, 0x9e, 0x90, 0xc3, 0x8c, 0x74, 0x89, 0xf9,
    0x2a, 0xf9, 0xba, 0x53, 0xf0, 0x6b, 0xe7, 0xd7, 0x80, 0x28, 0x00, 0x04, 0xc0, 0x7d, 0x4c, 0x96,
];

const RFC5769_PASSWORD: &[u8] = b"VOkJxbRl1RmTxUk/WvJxBt";

#[test]
fn rfc5769_request_integrity_and_fingerprint() {
    let m = parse(&RFC5769_REQUEST).expect("valid vector");
    assert_eq!(m.method, method::BINDING);
    assert_eq!(m.class, Class::Request);
    assert_eq!(m.username, Some(&b"evtj:h6vY"[..]));
    let off = m.mi.expect("has MI");
    let mac = integrity_sha1(RFC5769_PASSWORD, m.raw, off);
    assert_eq!(&mac[..], &m.raw[off + 4..off + 24]);
    // A single flipped bit breaks the fingerprint.
    let mut bad = RFC5769_REQUEST;
    bad[30] ^= 1;
    assert_eq!(parse(&bad).err(), Some(ParseError::BadFingerprint));
}

#[test]
fn rfc5769_ipv4_response() {
    let m = parse(&RFC5769_RESPONSE_V4).expect("valid vector");
    assert_eq!(m.class, Class::Success);
    let (_, v, _) = m
        .attrs()
        .find(|(t, _, _)| *t == attr::XOR_MAPPED_ADDRESS)
        .expect("xor mapped");
    let a = decode_addr(v, true, &m.tid).expect("addr");
    assert_eq!(a, "192.0.2.1:32853".parse().expect("addr"));
    let off = m.mi.expect("MI");
    assert_eq!(
        &integrity_sha1(RFC5769_PASSWORD, m.raw, off)[..],
        &m.raw[off + 4..off + 24]
    );
    // Re-encoding the address gives the vector's bytes.
    let mut out = [0u8; 20];
    let n = encode_xor_addr(a, &m.tid, &mut out);
    assert_eq!(&out[..n], v);
}

#[test]
fn rfc5769_ipv6_xor_address_roundtrip() {
    let tid = [
        0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86, 0xfa, 0x87, 0xdf, 0xae,
    ];
    let a: SocketAddr = "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
        .parse()
        .expect("addr");
    let mut out = [0u8; 20];
    let n = encode_xor_addr(a, &tid, &mut out);
    assert_eq!(n, 20);
    // RFC 5769 section 2.3 value of XOR-MAPPED-ADDRESS.
    assert_eq!(
        &out[..20],
        &[
            0x00, 0x02, 0xa1, 0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
            0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9
        ]
    );
    assert_eq!(decode_addr(&out[..n], true, &tid), Some(a));
}

#[test]
fn message_type_roundtrip() {
    for m in [1u16, 3, 4, 6, 7, 8, 9, 0xFFF] {
        for c in [
            Class::Request,
            Class::Indication,
            Class::Success,
            Class::Error,
        ] {
            assert_eq!(split_type(message_type(m, c)), (m, c));
        }
    }
    assert_eq!(message_type(method::ALLOCATE, Class::Request), 0x0003);
    assert_eq!(message_type(method::ALLOCATE, Class::Success), 0x0103);
    assert_eq!(message_type(method::ALLOCATE, Class::Error), 0x0113);
    assert_eq!(message_type(method::DATA, Class::Indication), 0x0017);
}

#[test]
fn builder_roundtrip_with_integrity_and_fingerprint() {
    let mut buf = Vec::new();
    let tid = [7u8; 12];
    let mut b = Builder::new(&mut buf, method::ALLOCATE, Class::Error, &tid);
    b.error_code(attr::ERROR_CODE, 420, "Unknown Attribute")
        .unknown_attributes(&[0x0031, 0x0032, 0x0033])
        .attr(attr::USERNAME, b"abc")
        .integrity(b"key")
        .integrity_sha256(b"key")
        .fingerprint();
    let m = parse(&buf).expect("parses");
    assert_eq!(m.class, Class::Error);
    assert_eq!(m.username, Some(&b"abc"[..]));
    let off = m.mi.expect("mi");
    assert_eq!(
        &integrity_sha1(b"key", m.raw, off)[..],
        &m.raw[off + 4..off + 24]
    );
    let (off2, l) = m.mi256.expect("mi256");
    assert_eq!(
        &integrity_sha256(b"key", m.raw, off2, l)[..],
        &m.raw[off2 + 4..off2 + 4 + l]
    );
}

#[test]
fn rejects_bad_headers() {
    assert_eq!(parse(&[0u8; 4]).err(), Some(ParseError::TooShort));
    let mut h = RFC5769_REQUEST;
    h[4] = 0;
    assert_eq!(parse(&h).err(), Some(ParseError::NotStun));
    assert_eq!(
        parse(&RFC5769_REQUEST[..100]).err(),
        Some(ParseError::BadLength)
    );
    // Attribute length running past the end.
    let mut buf = Vec::new();
    Builder::new(&mut buf, method::BINDING, Class::Request, &[0; 12]).attr(0x0006, b"abcd");
    buf[22..24].copy_from_slice(&100u16.to_be_bytes());
    assert_eq!(parse(&buf).err(), Some(ParseError::BadAttribute));
}

#[test]
fn crc32_check_value() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse(&data);
    }

    #[test]
    fn parse_never_panics_on_stun_shaped(body in proptest::collection::vec(any::<u8>(), 0..400), t in any::<u16>()) {
        let mut buf = Vec::new();
        let len = body.len() & !3;
        buf.extend_from_slice(&(t & 0x3FFF).to_be_bytes());
        buf.extend_from_slice(&(len as u16).to_be_bytes());
        buf.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf.extend_from_slice(&[1u8; 12]);
        buf.extend_from_slice(&body[..len]);
        if let Ok(m) = parse(&buf) {
            for (_, v, off) in m.attrs() { prop_assert!(off + 4 + v.len() <= buf.len()); }
            for p in m.peers() { let _ = p; }
        }
    }

    #[test]
    fn xor_addr_roundtrip(ip in any::<[u8; 16]>(), v4 in any::<[u8; 4]>(), port in any::<u16>(), tid in any::<[u8; 12]>(), six in any::<bool>()) {
        let a = if six {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port)
        } else {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(v4)), port)
        };
        let mut out = [0u8; 20];
        let n = encode_xor_addr(a, &tid, &mut out);
        prop_assert_eq!(decode_addr(&out[..n], true, &tid), Some(a));
    }
}

/// RFC 8489 Appendix B.1 with its erratum (the published vector lacked the
/// PASSWORD-ALGORITHM attribute; the corrected one has PASSWORD-ALGORITHM
/// SHA-256 and the key SHA-256(username ":" realm ":" password)).
#[test]
fn rfc8489_b1_sha256_integrity_with_erratum() {
    use sha2::Digest;
    let tid = [
        0x78, 0xad, 0x34, 0x33, 0xc6, 0xad, 0x72, 0xc0, 0x29, 0xda, 0x41, 0x2e,
    ];
    let user = "\u{30DE}\u{30C8}\u{30EA}\u{30C3}\u{30AF}\u{30B9}";
    let userhash: [u8; 32] = sha2::Sha256::digest(format!("{user}:example.org").as_bytes()).into();
    assert_eq!(
        userhash[..8],
        [0x4a, 0x3c, 0xf3, 0x8f, 0xef, 0x69, 0x92, 0xbd],
        "USERHASH value of the vector"
    );
    let key: [u8; 32] =
        sha2::Sha256::digest(format!("{user}:example.org:TheMatrIX").as_bytes()).into();
    let mut buf = Vec::new();
    Builder::new(&mut buf, method::BINDING, Class::Request, &tid)
        .attr(attr::USERHASH, &userhash)
        .attr(attr::NONCE, b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA")
        .attr(attr::REALM, b"example.org")
        .attr(attr::PASSWORD_ALGORITHM, &[0, 2, 0, 0])
        .integrity_sha256(&key);
    // The erratum also corrects the length: 0x90, not the printed 0x9c.
    assert_eq!(&buf[..4], &[0x00, 0x01, 0x00, 0x90]);
    let m = parse(&buf).expect("parses");
    let (off, len) = m.mi256.expect("mi256");
    assert_eq!(len, 32);
    assert_eq!(
        &m.raw[off + 4..off + 36],
        &[
            0xb5, 0xc7, 0xbf, 0x00, 0x5b, 0x6c, 0x52, 0xa2, 0x1c, 0x51, 0xc5, 0xe8, 0x92, 0xf8,
            0x19, 0x24, 0x13, 0x62, 0x96, 0xcb, 0x92, 0x7c, 0x43, 0x14, 0x93, 0x09, 0x27, 0x8c,
            0xc6, 0x51, 0x8e, 0x65
        ]
    );
    assert_eq!(m.password_algorithm, Some(2));
}
