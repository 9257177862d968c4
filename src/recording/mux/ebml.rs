//! The few EBML encodings a WebM writer needs (RFC 8794): element IDs, data sizes as
//! variable-length integers, unsigned integers, floats, strings, binary, and masters whose
//! size is known (built in memory) or unknown (written as they stream).

/// The "unknown" data size: a one-byte length marker followed by all ones (8 bytes).
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];

/// Appends an element ID (IDs carry their own length marker, so they are written as is).
pub fn id(out: &mut Vec<u8>, id: u32) {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(3);
    out.extend_from_slice(&bytes[skip..]);
}

/// Appends a data size as the shortest variable-length integer (the all-ones value of
/// each length is reserved for "unknown", so it moves to the next length).
pub fn size(out: &mut Vec<u8>, n: u64) {
    let mut len = 1usize;
    while len < 8 && n >= (1u64 << (7 * len)) - 1 {
        len += 1;
    }
    // 8 bytes carry 56 bits; larger sizes do not occur here (elements are small).
    let n = n.min((1u64 << 56) - 2);
    let marked = n | (1u64 << (7 * len));
    out.extend_from_slice(&marked.to_be_bytes()[8 - len..]);
}

/// An unsigned integer element, in as few bytes as the value needs (at least one).
pub fn uint(out: &mut Vec<u8>, el: u32, v: u64) {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    id(out, el);
    size(out, (8 - skip) as u64);
    out.extend_from_slice(&bytes[skip..]);
}

/// A float element (8 bytes, big-endian IEEE 754).
pub fn float(out: &mut Vec<u8>, el: u32, v: f64) {
    id(out, el);
    size(out, 8);
    out.extend_from_slice(&v.to_be_bytes());
}

/// A binary (or ASCII/UTF-8 string) element.
pub fn bytes(out: &mut Vec<u8>, el: u32, data: &[u8]) {
    id(out, el);
    size(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A master element of known size whose children `f` writes.
pub fn master(out: &mut Vec<u8>, el: u32, f: impl FnOnce(&mut Vec<u8>)) {
    let mut body = Vec::new();
    f(&mut body);
    bytes(out, el, &body);
}

/// The start of a master element of unknown size (its children follow in the stream).
pub fn master_unknown(out: &mut Vec<u8>, el: u32) {
    id(out, el);
    out.extend_from_slice(&UNKNOWN_SIZE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sized(n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        size(&mut v, n);
        v
    }

    /// Decodes a variable-length integer the way a reader does.
    fn read_vint(b: &[u8]) -> (u64, usize) {
        let len = b[0].leading_zeros() as usize + 1;
        let mut v = u64::from(b[0]) & ((1u64 << (8 - len)) - 1);
        for x in &b[1..len] {
            v = (v << 8) | u64::from(*x);
        }
        (v, len)
    }

    #[test]
    fn sizes_use_the_shortest_form_and_avoid_the_reserved_all_ones() {
        assert_eq!(sized(0), [0x80]);
        assert_eq!(sized(1), [0x81]);
        assert_eq!(sized(126), [0xfe]);
        // 127 in one byte would be 0xff, which means "unknown".
        assert_eq!(sized(127), [0x40, 0x7f]);
        assert_eq!(sized(300), [0x41, 0x2c]);
        assert_eq!(sized(16382), [0x7f, 0xfe]);
        assert_eq!(sized(16383), [0x20, 0x3f, 0xff]);
        for n in [
            0u64,
            5,
            127,
            128,
            16383,
            1 << 20,
            (1 << 35) + 7,
            (1 << 49) + 3,
        ] {
            let v = sized(n);
            assert_eq!(read_vint(&v), (n, v.len()), "{n}");
        }
    }

    #[test]
    fn ids_keep_their_marker_bytes() {
        let mut v = Vec::new();
        id(&mut v, 0x1A45_DFA3);
        id(&mut v, 0x4286);
        id(&mut v, 0xA3);
        assert_eq!(v, [0x1a, 0x45, 0xdf, 0xa3, 0x42, 0x86, 0xa3]);
    }

    #[test]
    fn integers_floats_strings_and_masters_encode_as_the_spec_says() {
        let mut v = Vec::new();
        uint(&mut v, 0x2AD7B1, 1_000_000);
        assert_eq!(v, [0x2a, 0xd7, 0xb1, 0x83, 0x0f, 0x42, 0x40]);
        let mut v = Vec::new();
        uint(&mut v, 0xD7, 0);
        assert_eq!(v, [0xd7, 0x81, 0x00]);
        let mut v = Vec::new();
        float(&mut v, 0xB5, 48000.0);
        assert_eq!(v, [0xb5, 0x88, 0x40, 0xe7, 0x70, 0, 0, 0, 0, 0]);
        let mut v = Vec::new();
        bytes(&mut v, 0x4282, b"webm");
        assert_eq!(v, [0x42, 0x82, 0x84, b'w', b'e', b'b', b'm']);
        let mut v = Vec::new();
        master(&mut v, 0xE0, |m| uint(m, 0xB0, 320));
        assert_eq!(v, [0xe0, 0x84, 0xb0, 0x82, 0x01, 0x40]);
        let mut v = Vec::new();
        master_unknown(&mut v, 0x1F43_B675);
        assert_eq!(v[..4], [0x1f, 0x43, 0xb6, 0x75]);
        assert_eq!(v[4..], UNKNOWN_SIZE);
    }
}
