//! gzip for the embedded static assets (join page script, styles, widget).
//!
//! The assets are compiled into the binary and never change while it runs, so each one is
//! compressed once, at its first request, and kept. Only these public, secret-free files
//! are compressed: pages that carry a join token or session data are not (a compressed
//! response that mixes a secret with attacker-chosen text can leak the secret through its
//! length).

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Mutex, OnceLock};

/// True when an `Accept-Encoding` value accepts gzip: `gzip`, `x-gzip` or `*` with a
/// non-zero quality, and no explicit `gzip;q=0` refusing it.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(value) = accept_encoding else {
        return false;
    };
    let mut gzip = None;
    let mut any = None;
    for item in value.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for p in parts {
            if let Some((k, v)) = p.split_once('=')
                && k.trim().eq_ignore_ascii_case("q")
            {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => any = Some(q > 0.0),
            _ => {}
        }
    }
    gzip.or(any).unwrap_or(false)
}

/// Whether a file of this name is worth compressing (text, not already compressed).
pub fn compressible(file: &str) -> bool {
    matches!(
        file.rsplit('.').next(),
        Some("js" | "css" | "svg" | "html" | "json" | "txt")
    )
}

/// The gzip form of `data`, the embedded asset called `name`, made on first use; `None`
/// when it would not be smaller.
pub fn gzipped(name: &str, data: &[u8]) -> Option<&'static [u8]> {
    type Made = HashMap<String, Option<&'static [u8]>>;
    static CACHE: OnceLock<Mutex<Made>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = cache.get(name) {
        return *found;
    }
    let made = gzip(data).filter(|z| z.len() < data.len());
    // Leaked on purpose: one copy per embedded asset, for the life of the process.
    let kept: Option<&'static [u8]> = made.map(|z| &*Box::leak(z.into_boxed_slice()));
    cache.insert(name.to_owned(), kept);
    kept
}

fn gzip(data: &[u8]) -> Option<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).ok()?;
    enc.finish().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn accept_encoding_is_read_with_its_qualities() {
        for yes in [
            "gzip",
            "gzip, deflate, br",
            "br;q=1.0, GZIP;q=0.5",
            "x-gzip",
            "*",
            "deflate, *;q=0.1",
        ] {
            assert!(accepts_gzip(Some(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip;q=0.0, *",
            "*;q=0",
            "gzip;q=nonsense",
        ] {
            assert!(!accepts_gzip(Some(no)), "{no}");
        }
        assert!(!accepts_gzip(None));
    }

    #[test]
    fn text_assets_are_compressed_once_and_decompress_to_the_original() {
        let data = "const x = 1;\n".repeat(200);
        let z = gzipped("test-a.js", data.as_bytes()).expect("text compresses");
        assert!(z.len() < data.len() / 10);
        let again = gzipped("test-a.js", data.as_bytes()).unwrap();
        assert!(std::ptr::eq(z, again), "compressed once");
        let mut out = String::new();
        flate2::read::GzDecoder::new(z)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }

    #[test]
    fn incompressible_data_is_served_as_it_is() {
        let noise: Vec<u8> = (0..64u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8)
            .collect();
        assert_eq!(gzipped("test-b.js", &noise), None);
        assert!(compressible("join.js") && compressible("join.css"));
        assert!(!compressible("logo.png") && !compressible("favicon.ico"));
    }
}
