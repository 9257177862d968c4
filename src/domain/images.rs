//! Photos participants upload ("show me", frame captures): which formats are accepted,
//! decided by the bytes themselves, and the metadata taken out of them before they are
//! stored. Pure functions, no IO.
//!
//! JPEG metadata lives in marker segments before the image data: APP1 holds EXIF (camera,
//! time, **GPS position**) and XMP, APP13 holds IPTC, COM free comments. Those are dropped;
//! everything needed to show the picture (JFIF/APP0, ICC profile/APP2, Adobe/APP14,
//! quantization and Huffman tables, frame header, scan data) is kept byte for byte.
//!
//! PNG keeps metadata in ancillary chunks: `eXIf` (EXIF, GPS included), `tEXt`, `zTXt` and
//! `iTXt` (free text, XMP) and `tIME`; those are dropped, every other chunk is kept with its
//! CRC. WebP (a RIFF container) keeps it in `EXIF` and `XMP ` chunks; those are dropped,
//! the extended header's (`VP8X`) flags for them cleared and the RIFF size rewritten.

/// An accepted image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Jpeg,
    Png,
    Webp,
}

impl ImageType {
    pub fn content_type(self) -> &'static str {
        match self {
            ImageType::Jpeg => "image/jpeg",
            ImageType::Png => "image/png",
            ImageType::Webp => "image/webp",
        }
    }
}

/// The format of `bytes` by its magic number; `None` for anything else (whatever the
/// client's `Content-Type` said).
pub fn sniff(bytes: &[u8]) -> Option<ImageType> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageType::Jpeg)
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageType::Png)
    } else if bytes.len() >= 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageType::Webp)
    } else {
        None
    }
}

/// Why an image could not be cleaned (and is refused rather than stored with its
/// metadata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JpegError {
    #[error("not an image of the format it starts like")]
    NotJpeg,
    #[error("the image ends inside its headers")]
    Truncated,
    #[error("the image headers are malformed")]
    Malformed,
}

/// Returns `bytes` of type `ty` without location and other metadata (see the module docs).
pub fn strip_metadata(ty: ImageType, bytes: &[u8]) -> Result<Vec<u8>, JpegError> {
    match ty {
        ImageType::Jpeg => strip_jpeg_metadata(bytes),
        ImageType::Png => strip_png_metadata(bytes),
        ImageType::Webp => strip_webp_metadata(bytes),
    }
}

const PNG_SIGNATURE: &[u8; 8] = b"\x89PNG\r\n\x1a\n";

/// PNG chunks dropped: EXIF, the three text kinds (XMP travels in `iTXt`), the time stamp.
fn is_png_metadata(kind: &[u8]) -> bool {
    matches!(kind, b"eXIf" | b"tEXt" | b"zTXt" | b"iTXt" | b"tIME")
}

/// Returns the PNG without its metadata chunks; stops after `IEND` (trailing bytes go).
pub fn strip_png_metadata(bytes: &[u8]) -> Result<Vec<u8>, JpegError> {
    if !bytes.starts_with(PNG_SIGNATURE) {
        return Err(JpegError::NotJpeg);
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(PNG_SIGNATURE);
    let mut i = PNG_SIGNATURE.len();
    loop {
        let head = bytes.get(i..i + 8).ok_or(JpegError::Truncated)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let len = usize::try_from(len).map_err(|_| JpegError::Malformed)?;
        let kind = &head[4..8];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(JpegError::Malformed);
        }
        // Length, type, data, CRC.
        let end = i
            .checked_add(12)
            .and_then(|n| n.checked_add(len))
            .ok_or(JpegError::Malformed)?;
        let chunk = bytes.get(i..end).ok_or(JpegError::Truncated)?;
        if !is_png_metadata(kind) {
            out.extend_from_slice(chunk);
        }
        if kind == b"IEND" {
            return Ok(out);
        }
        i = end;
    }
}

/// Returns the WebP without its `EXIF` and `XMP ` chunks.
pub fn strip_webp_metadata(bytes: &[u8]) -> Result<Vec<u8>, JpegError> {
    if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err(JpegError::NotJpeg);
    }
    let riff = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    let end = usize::try_from(riff)
        .ok()
        .and_then(|n| n.checked_add(8))
        .ok_or(JpegError::Malformed)?;
    let body = bytes.get(12..end).ok_or(JpegError::Truncated)?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(b"RIFF\0\0\0\0WEBP");
    let mut i = 0;
    while i < body.len() {
        let head = body.get(i..i + 8).ok_or(JpegError::Truncated)?;
        let size = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        let size = usize::try_from(size).map_err(|_| JpegError::Malformed)?;
        // Chunks are padded to an even size.
        let padded = size.checked_add(size & 1).ok_or(JpegError::Malformed)?;
        let next = i
            .checked_add(8)
            .and_then(|n| n.checked_add(padded))
            .ok_or(JpegError::Malformed)?;
        let chunk = body.get(i..next).ok_or(JpegError::Truncated)?;
        match &head[..4] {
            b"EXIF" | b"XMP " => {}
            b"VP8X" if size >= 1 => {
                let at = out.len();
                out.extend_from_slice(chunk);
                // Flags: bit 3 EXIF, bit 2 XMP present.
                out[at + 8] &= !0b0000_1100;
            }
            _ => out.extend_from_slice(chunk),
        }
        i = next;
    }
    let riff = u32::try_from(out.len() - 8).map_err(|_| JpegError::Malformed)?;
    out[4..8].copy_from_slice(&riff.to_le_bytes());
    Ok(out)
}

/// Segments dropped: APP1 (EXIF, XMP), APP13 (IPTC), COM.
fn is_metadata(marker: u8) -> bool {
    matches!(marker, 0xE1 | 0xED | 0xFE)
}

/// Returns the JPEG without its metadata segments (see the module docs). Everything from
/// the first start-of-scan on is copied unchanged: metadata segments only occur before it
/// in practice, and the scan data itself carries none.
pub fn strip_jpeg_metadata(bytes: &[u8]) -> Result<Vec<u8>, JpegError> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return Err(JpegError::NotJpeg);
    }
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&[0xFF, 0xD8]);
    let mut i = 2;
    loop {
        // A marker: 0xFF, optional 0xFF fill bytes, then the marker code.
        if bytes.get(i) != Some(&0xFF) {
            return Err(if i >= bytes.len() {
                JpegError::Truncated
            } else {
                JpegError::Malformed
            });
        }
        while bytes.get(i) == Some(&0xFF) {
            i += 1;
        }
        let marker = *bytes.get(i).ok_or(JpegError::Truncated)?;
        i += 1;
        match marker {
            // End of image before any scan: nothing more to copy.
            0xD9 => {
                out.extend_from_slice(&[0xFF, 0xD9]);
                return Ok(out);
            }
            // Markers without a length (TEM, RSTn): copy.
            0x01 | 0xD0..=0xD7 => out.extend_from_slice(&[0xFF, marker]),
            0x00 | 0xD8 => return Err(JpegError::Malformed),
            _ => {
                let hi = *bytes.get(i).ok_or(JpegError::Truncated)?;
                let lo = *bytes.get(i + 1).ok_or(JpegError::Truncated)?;
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len < 2 {
                    return Err(JpegError::Malformed);
                }
                let end = i.checked_add(len).ok_or(JpegError::Malformed)?;
                let segment = bytes.get(i..end).ok_or(JpegError::Truncated)?;
                if marker == 0xDA {
                    // Start of scan: the rest (scan data, further scans, EOI) as it is.
                    out.extend_from_slice(&[0xFF, marker]);
                    out.extend_from_slice(&bytes[i..]);
                    return Ok(out);
                }
                if !is_metadata(marker) {
                    out.extend_from_slice(&[0xFF, marker]);
                    out.extend_from_slice(segment);
                }
                i = end;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(marker: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len() + 2).unwrap().to_be_bytes();
        [&[0xFF, marker][..], &len, payload].concat()
    }

    /// SOI, APP0 (JFIF), APP1 (EXIF with a GPS tag), COM, DQT, SOS + scan data, EOI.
    fn sample() -> Vec<u8> {
        [
            vec![0xFF, 0xD8],
            seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"),
            seg(0xE1, b"Exif\0\0MM\0*GPSLatitude 52.52 GPSLongitude 13.40"),
            seg(0xFE, b"shot at home"),
            seg(0xED, b"Photoshop 3.0\08BIM"),
            seg(0xDB, &[0u8; 65]),
            seg(0xDA, &[1, 1, 0, 0, 0x3F, 0]),
            vec![0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56],
            vec![0xFF, 0xD9],
        ]
        .concat()
    }

    #[test]
    fn sniffs_by_magic_bytes_only() {
        assert_eq!(sniff(&sample()), Some(ImageType::Jpeg));
        assert_eq!(
            sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"),
            Some(ImageType::Png)
        );
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some(ImageType::Webp));
        for bad in [
            &b""[..],
            b"GIF89a",
            b"<svg xmlns",
            b"RIFF\x10\0\0\0WAVE",
            b"\xFF\xD8",
            b"%PDF-1.7",
        ] {
            assert_eq!(sniff(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn strips_exif_iptc_and_comments_and_keeps_the_picture() {
        let clean = strip_jpeg_metadata(&sample()).unwrap();
        let expected = [
            vec![0xFF, 0xD8],
            seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"),
            seg(0xDB, &[0u8; 65]),
            seg(0xDA, &[1, 1, 0, 0, 0x3F, 0]),
            vec![0x12, 0xFF, 0x00, 0x34, 0xFF, 0xD0, 0x56],
            vec![0xFF, 0xD9],
        ]
        .concat();
        assert_eq!(clean, expected);
        assert!(!clean.windows(3).any(|w| w == b"GPS"));
        // Idempotent.
        assert_eq!(strip_jpeg_metadata(&clean).unwrap(), clean);
    }

    #[test]
    fn fill_bytes_and_standalone_markers_are_understood() {
        let j = [
            vec![0xFF, 0xD8, 0xFF, 0xFF],
            seg(0xE1, b"Exif"),
            vec![0xFF, 0x01],
            seg(0xDA, &[0]),
            vec![7, 7],
        ]
        .concat();
        assert_eq!(
            strip_jpeg_metadata(&j).unwrap(),
            [vec![0xFF, 0xD8, 0xFF, 0x01], seg(0xDA, &[0]), vec![7, 7]].concat()
        );
    }

    #[test]
    fn refuses_broken_headers() {
        assert_eq!(strip_jpeg_metadata(b"\x89PNG"), Err(JpegError::NotJpeg));
        assert_eq!(
            strip_jpeg_metadata(&[0xFF, 0xD8]),
            Err(JpegError::Truncated)
        );
        assert_eq!(
            strip_jpeg_metadata(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00]),
            Err(JpegError::Truncated)
        );
        // A segment longer than the file.
        assert_eq!(
            strip_jpeg_metadata(&[0xFF, 0xD8, 0xFF, 0xE1, 0x10, 0x00, 1, 2]),
            Err(JpegError::Truncated)
        );
        assert_eq!(
            strip_jpeg_metadata(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x01]),
            Err(JpegError::Malformed)
        );
        assert_eq!(
            strip_jpeg_metadata(&[0xFF, 0xD8, 0x00]),
            Err(JpegError::Malformed)
        );
    }

    fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let len = u32::try_from(data.len()).unwrap().to_be_bytes();
        // The CRC is kept as it is; these tests do not check it.
        [&len[..], kind, data, &[1, 2, 3, 4]].concat()
    }

    #[test]
    fn png_loses_exif_text_and_time_and_keeps_the_rest() {
        let ihdr = png_chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
        let idat = png_chunk(b"IDAT", &[0x78, 0x9C, 1, 2, 3]);
        let iend = png_chunk(b"IEND", &[]);
        let png = [
            &PNG_SIGNATURE[..],
            &ihdr,
            &png_chunk(b"eXIf", b"MM\0*GPSLatitude 52.52"),
            &png_chunk(b"tEXt", b"Comment\0at home"),
            &png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\0\0\0\0<x:xmpmeta/>"),
            &png_chunk(b"tIME", &[7, 234, 11, 30, 12, 0, 0]),
            &idat,
            &iend,
            b"trailing",
        ]
        .concat();
        let clean = strip_metadata(ImageType::Png, &png).unwrap();
        assert_eq!(clean, [&PNG_SIGNATURE[..], &ihdr, &idat, &iend].concat());
        assert_eq!(
            strip_png_metadata(&png[..png.len() - 20]),
            Err(JpegError::Truncated)
        );
        assert_eq!(strip_png_metadata(b"GIF89a"), Err(JpegError::NotJpeg));
    }

    fn webp_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let size = u32::try_from(data.len()).unwrap().to_le_bytes();
        let pad: &[u8] = if data.len() % 2 == 1 { &[0] } else { &[] };
        [kind, &size[..], data, pad].concat()
    }

    fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
        let body = chunks.concat();
        let size = u32::try_from(body.len() + 4).unwrap().to_le_bytes();
        [&b"RIFF"[..], &size, b"WEBP", &body].concat()
    }

    #[test]
    fn webp_loses_exif_and_xmp_and_its_flags() {
        let vp8x = |flags: u8| webp_chunk(b"VP8X", &[flags, 0, 0, 0, 9, 0, 0, 9, 0, 0]);
        let image = webp_chunk(b"VP8 ", &[1, 2, 3, 4, 5]);
        let with = riff(&[
            vp8x(0b0000_1100),
            image.clone(),
            webp_chunk(b"EXIF", b"MM\0*GPSLatitude 52.52"),
            webp_chunk(b"XMP ", b"<x:xmpmeta/>"),
        ]);
        let clean = strip_metadata(ImageType::Webp, &with).unwrap();
        assert_eq!(clean, riff(&[vp8x(0), image]));
        assert_eq!(sniff(&clean), Some(ImageType::Webp));
        let mut short = with.clone();
        short.truncate(with.len() - 3);
        assert_eq!(strip_webp_metadata(&short), Err(JpegError::Truncated));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// PNG and WebP parsers on random bytes behind their signatures: never a panic,
        /// never longer output than input (plus nothing).
        #[test]
        fn random_png_and_webp_never_panic(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let png = [&PNG_SIGNATURE[..], &tail].concat();
            if let Ok(out) = strip_png_metadata(&png) {
                prop_assert!(out.len() <= png.len());
            }
            let mut webp = riff(std::slice::from_ref(&tail));
            if let Ok(out) = strip_webp_metadata(&webp) {
                prop_assert!(out.len() <= webp.len());
            }
            webp[4] ^= 0x55;
            let _ = strip_webp_metadata(&webp);
            let _ = strip_png_metadata(&tail);
            let _ = strip_webp_metadata(&tail);
        }

        /// Random bytes (behind a JPEG start, so the parser gets past the first check):
        /// never a panic; whatever comes out is a JPEG without a metadata segment header
        /// before its scan, and never longer than what went in.
        #[test]
        fn random_input_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..600)) {
            let input = [&[0xFF, 0xD8][..], &tail].concat();
            if let Ok(out) = strip_jpeg_metadata(&input) {
                prop_assert!(out.starts_with(&[0xFF, 0xD8]));
                prop_assert!(out.len() <= input.len());
            }
            let _ = sniff(&tail);
            let _ = strip_jpeg_metadata(&tail);
        }

        /// Metadata segments of any content and size vanish; the rest is unchanged.
        #[test]
        fn any_exif_payload_is_removed(payload in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let with = [vec![0xFF, 0xD8], seg(0xE1, &payload), seg(0xDA, &[0]), vec![1, 2, 0xFF, 0xD9]].concat();
            let without = [vec![0xFF, 0xD8], seg(0xDA, &[0]), vec![1, 2, 0xFF, 0xD9]].concat();
            prop_assert_eq!(strip_jpeg_metadata(&with).unwrap(), without);
        }
    }
}
