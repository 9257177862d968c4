//! "Show me" photos (issue 15): an agent asks over signaling; a page uploads with its own
//! join link; the server accepts JPEG/PNG/WebP by their bytes, caps the size, strips JPEG
//! metadata, keeps the SHA-256; staff in the call get `snapshot` at once; the API lists
//! and downloads; `snapshot.taken` is on the timeline.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::assert_problem;
use crate::support_call::*;

fn seg(marker: u8, payload: &[u8]) -> Vec<u8> {
    let len = u16::try_from(payload.len() + 2).unwrap().to_be_bytes();
    [&[0xFF, marker][..], &len, payload].concat()
}

/// A JPEG-shaped file with an EXIF segment that carries a GPS position.
fn jpeg_with_gps() -> Vec<u8> {
    [
        vec![0xFF, 0xD8],
        seg(0xE0, b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"),
        seg(0xE1, b"Exif\0\0MM\0*GPSLatitude 52.52N GPSLongitude 13.40E"),
        seg(0xDB, &[3u8; 65]),
        seg(0xDA, &[1, 1, 0, 0, 0x3F, 0]),
        vec![0x12, 0x34, 0x56, 0xFF, 0xD9],
    ]
    .concat()
}

fn sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

async fn upload(c: &Call, token: &str, kind: &str, bytes: Vec<u8>) -> reqwest::Response {
    c.t.http
        .post(c.t.url(&format!("/api/v1/join/{token}/snapshots?kind={kind}")))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .expect("upload")
}

async fn bytes_of(r: reqwest::Response) -> (u16, String, Vec<u8>) {
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (status, ct, r.bytes().await.expect("bytes").to_vec())
}

#[tokio::test]
async fn a_requested_photo_is_cleaned_stored_announced_and_downloads_with_its_sha256() {
    let c = Call::new().await;
    let (mut agent, _) = c.join(&c.agent, "a1").await;
    let (mut customer, j) = c.join(&c.customer, "c1").await;
    let customer_id = j["participant_id"].as_str().expect("id").to_owned();
    // Only agents ask, and the customer's page hears it.
    send(&mut customer, json!({"type": "request_photo", "to": "x"})).await;
    assert_eq!(next_of(&mut customer, "error").await["code"], "forbidden");
    send(
        &mut agent,
        json!({"type": "request_photo", "to": customer_id}),
    )
    .await;
    let asked = next_of(&mut customer, "request_photo").await;
    assert_eq!(asked["name"], "Ana Lima");

    let original = jpeg_with_gps();
    let r = upload(&c, &c.customer, "photo", original.clone()).await;
    assert_eq!(r.status(), 201);
    let stored: Value = r.json().await.expect("json");
    assert_eq!(stored["content_type"], "image/jpeg");
    assert_eq!(stored["kind"], "photo");
    assert_eq!(stored["participant_id"], customer_id.as_str());
    let sha256 = stored["sha256"].as_str().expect("sha").to_owned();
    assert_ne!(sha256, sha(&original), "metadata was removed");
    let id = stored["id"].as_str().expect("id").to_owned();

    // Staff hear about it at once, and so does the uploader.
    let note = next_of(&mut agent, "snapshot").await;
    assert_eq!(note["id"], id.as_str());
    assert_eq!(note["sha256"], sha256.as_str());
    assert_eq!(note["from"], customer_id.as_str());
    assert_eq!(note["name"], "Sam");
    assert_eq!(next_of(&mut customer, "snapshot").await["id"], id.as_str());

    // The API: list, download; same bytes, same hash, no GPS.
    let list: Value =
        c.t.get(&format!("/api/v1/sessions/{}/snapshots", c.id))
            .await
            .json()
            .await
            .expect("json");
    assert_eq!(list["items"][0]["sha256"], sha256.as_str());
    let (status, ct, body) = bytes_of(c.t.get(&format!("/api/v1/snapshots/{id}")).await).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(sha(&body), sha256);
    assert!(!body.windows(3).any(|w| w == b"GPS"));
    assert_eq!(body.len() as i64, stored["size"].as_i64().expect("size"));
    // The agent's page views it with its own link; the customer sees their own.
    for token in [&c.agent, &c.customer] {
        let r =
            c.t.http
                .get(c.t.url(&format!("/api/v1/join/{token}/snapshots/{id}")))
                .send()
                .await
                .expect("view");
        assert_eq!(
            r.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("private, no-store")
        );
        let (status, _, b) = bytes_of(r).await;
        assert_eq!((status, sha(&b)), (200, sha256.clone()));
    }
    // On the timeline.
    let ev: Value =
        c.t.get(&format!("/api/v1/sessions/{}/events", c.id))
            .await
            .json()
            .await
            .expect("json");
    let taken = ev["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|e| e["kind"] == "snapshot.taken")
        .expect("snapshot.taken");
    assert_eq!(taken["data"]["sha256"], sha256.as_str());
    // The report page lists it.
    let s: Value =
        c.t.get(&format!("/api/v1/sessions/{}", c.id))
            .await
            .json()
            .await
            .expect("json");
    let html =
        c.t.http
            .get(s["report_url"].as_str().expect("report_url"))
            .send()
            .await
            .expect("report")
            .text()
            .await
            .expect("text");
    assert!(html.contains(&sha256), "{html}");
    // Without an API key: 401.
    let r = reqwest::get(c.t.url(&format!("/api/v1/snapshots/{id}")))
        .await
        .expect("get");
    assert_problem(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn uploads_are_sniffed_capped_and_kept_to_their_session() {
    let c = Call::with(|cfg| {
        cfg.snapshots.max_bytes = 4096;
        cfg.snapshots.max_per_session = 3;
    })
    .await;
    // PNG and WebP with EXIF (a GPS position) and text: what is stored has none of it.
    let chunk = |kind: &[u8], data: &[u8]| {
        let len = u32::try_from(data.len()).expect("len").to_be_bytes();
        [&len[..], kind, data, &[0, 0, 0, 0]].concat()
    };
    let ihdr = chunk(b"IHDR", &[0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]);
    let idat = chunk(b"IDAT", &[0x78, 0x9C, 0, 0, 0, 1]);
    let iend = chunk(b"IEND", &[]);
    let sig = &b"\x89PNG\r\n\x1a\n"[..];
    let exif = chunk(b"eXIf", b"MM\0*GPSLatitude 52.52");
    let text = chunk(b"tEXt", b"Comment\0at home");
    let png = [sig, &ihdr, &exif, &text, &idat, &iend].concat();
    let png_clean = [sig, &ihdr, &idat, &iend].concat();
    let riff = |body: &[u8]| {
        let size = u32::try_from(body.len() + 4).expect("len").to_le_bytes();
        [&b"RIFF"[..], &size, b"WEBP", body].concat()
    };
    let webp_chunk = |kind: &[u8], data: &[u8]| {
        let size = u32::try_from(data.len()).expect("len").to_le_bytes();
        let pad: &[u8] = if data.len() % 2 == 1 { &[0] } else { &[] };
        [kind, &size[..], data, pad].concat()
    };
    let vp8 = webp_chunk(b"VP8 ", &[1, 2, 3, 4]);
    let vp8x = |flags: u8| webp_chunk(b"VP8X", &[flags, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    let webp_exif = webp_chunk(b"EXIF", b"MM\0*GPSLatitude 52.52");
    let webp = riff(&[vp8x(0x08), vp8.clone(), webp_exif].concat());
    let webp_clean = riff(&[vp8x(0), vp8].concat());
    // Not an image, whatever it claims.
    for bad in [&b"GIF89a......"[..], b"<svg onload=alert(1)>", b"%PDF-1.7"] {
        let r = upload(&c, &c.customer, "photo", bad.to_vec()).await;
        assert_problem(r, 422, "unsupported_image").await;
    }
    let r = upload(&c, &c.customer, "photo", vec![0xFF, 0xD8, 0xFF, 0xE1, 0x40]).await;
    assert_problem(r, 422, "malformed_image").await;
    // Over the cap: refused before it is read.
    let mut big = png.clone();
    big.resize(4097, 0);
    let r = upload(&c, &c.customer, "photo", big).await;
    assert_problem(r, 413, "payload_too_large").await;
    // PNG and WebP are stored without their metadata.
    let r = upload(&c, &c.customer, "photo", png.clone()).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["content_type"], "image/png");
    assert_eq!(v["sha256"], sha(&png_clean).as_str());
    let png_id = v["id"].as_str().expect("id").to_owned();
    let r = upload(&c, &c.agent, "frame", webp.clone()).await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(
        (v["content_type"].as_str(), v["kind"].as_str()),
        (Some("image/webp"), Some("frame"))
    );
    assert_eq!(v["sha256"], sha(&webp_clean).as_str());
    let frame_id = v["id"].as_str().expect("id").to_owned();
    // A customer does not see the agent's frame capture; nobody sees a bad id.
    for (token, id) in [(&c.customer, frame_id.as_str()), (&c.agent, "nope")] {
        let r =
            c.t.http
                .get(c.t.url(&format!("/api/v1/join/{token}/snapshots/{id}")))
                .send()
                .await
                .expect("view");
        assert_problem(r, 404, "snapshot_not_found").await;
    }
    // Another session's agent cannot reach this session's photo.
    let other = c.t.create_session("conv-other").await;
    let other_agent = token_of(&other["agent_url"]);
    let r =
        c.t.http
            .get(c.t.url(&format!("/api/v1/join/{other_agent}/snapshots/{png_id}")))
            .send()
            .await
            .expect("view");
    assert_problem(r, 404, "snapshot_not_found").await;
    let r = upload(&c, "not-a-token", "photo", png.clone()).await;
    assert_problem(r, 404, "link_invalid").await;
    // The session's cap.
    assert_eq!(
        upload(&c, &c.customer, "photo", png.clone()).await.status(),
        201
    );
    let r = upload(&c, &c.customer, "photo", png.clone()).await;
    assert_problem(r, 409, "snapshot_limit").await;
    let r = c.t.get("/api/v1/snapshots/nope").await;
    assert_problem(r, 404, "snapshot_not_found").await;
    let r =
        c.t.get("/api/v1/sessions/00000000-0000-7000-8000-000000000000/snapshots")
            .await;
    assert_problem(r, 404, "session_not_found").await;
    // Once the session has ended, its links upload nothing.
    let r =
        c.t.post(&format!("/api/v1/sessions/{}/end", c.id), &json!({}))
            .await;
    assert_eq!(r.status(), 200);
    let r = upload(&c, &c.customer, "photo", png).await;
    assert_problem(r, 410, "session_ended").await;
}
