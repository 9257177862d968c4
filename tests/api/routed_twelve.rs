//! A full routed call without a browser: twelve webrtc-rs participants join one session
//! through the real app's signaling (REST invitations, the WebSocket, `media_offer` /
//! `media_answer`), each publishes audio and video, and the engine forwards every stream
//! to the eleven others. Then one leaves and its forwarding stops at once, both ways.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::{FutureExt, StreamExt};
use serde_json::{Value, json};
use sightline::media::MediaMode;
use tokio_tungstenite::tungstenite::Message;

use crate::support_call::{Call, Ws, send};
use crate::support_media::Participant;

const KINDS: [&str; 2] = ["audio", "video"];

struct Page {
    id: String,
    ws: Ws,
    media: Participant,
    seen: Vec<Value>,
}

impl Page {
    /// Handles what is already waiting on the socket (never waits): answers the engine's
    /// offers, keeps everything else.
    async fn pump(&mut self) {
        while let Some(Some(Ok(m))) = self.ws.next().now_or_never() {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "media_offer" {
                let answer = self.media.answer(v["sdp"].as_str().expect("sdp")).await;
                send(&mut self.ws, json!({"type": "media_answer", "sdp": answer})).await;
            }
            self.seen.push(v);
        }
    }
}

/// Every page reads its socket and sends one audio and one video packet, every 40 ms,
/// until `done` holds or `limit` passes; returns whether `done` held.
async fn run_until(
    pages: &mut [Page],
    limit: Duration,
    mut done: impl FnMut(&[Page]) -> bool,
) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        for p in pages.iter_mut() {
            p.pump().await;
            p.media.send().await;
        }
        if done(pages) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    false
}

/// (receiver, publisher, kind) → packets received, for every ordered pair.
fn snapshot(pages: &[Page]) -> HashMap<(String, String, &'static str), u64> {
    let mut m = HashMap::new();
    for to in pages {
        for from in pages {
            for k in KINDS {
                m.insert(
                    (to.id.clone(), from.id.clone(), k),
                    to.media.received(&from.id, k),
                );
            }
        }
    }
    m
}

async fn routed_participants(call: &Call) -> Option<u64> {
    let m = call.t.get("/metrics").await.text().await.ok()?;
    m.lines()
        .find(|l| l.starts_with("sightline_media{counter=\"routed_participants\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twelve_participants_get_the_eleven_others_and_a_leaver_stops_at_once() {
    let started = Instant::now();
    let call = Call::with(|c| {
        c.sessions.max_participants = 12;
        c.media.mode = MediaMode::Routed;
    })
    .await;
    let mut tokens = vec![call.agent.clone(), call.customer.clone()];
    for i in 0..10 {
        tokens.push(call.invite("expert", &format!("Expert {i}")).await);
    }
    let mut pages = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let (ws, joined) = call.join(token, &format!("p{i}")).await;
        assert_eq!(joined["routed"], true, "{joined}");
        let id = joined["participant_id"].as_str().expect("id").to_owned();
        let mut media = Participant::new(&id).await;
        media.payload = (16, 24);
        pages.push(Page {
            id,
            ws,
            media,
            seen: vec![joined],
        });
    }
    let ids: Vec<String> = pages.iter().map(|p| p.id.clone()).collect();

    // Everyone receives the eleven others' audio and video (a few packets each).
    let all_flowing = run_until(&mut pages, Duration::from_secs(90), |pages| {
        pages.iter().all(|to| {
            pages
                .iter()
                .filter(|from| from.id != to.id)
                .all(|from| KINDS.iter().all(|k| to.media.received(&from.id, k) >= 3))
        })
    })
    .await;
    let connected_after = started.elapsed();
    let missing: Vec<String> = pages
        .iter()
        .flat_map(|to| {
            pages
                .iter()
                .filter(|from| from.id != to.id)
                .flat_map(move |from| KINDS.iter().map(move |k| (to, from, *k)))
                .filter(|(to, from, k)| to.media.received(&from.id, k) < 3)
                .map(|(to, from, k)| format!("{} ← {} {k}", to.id, from.id))
        })
        .collect();
    assert!(all_flowing, "not flowing: {missing:?}");
    for p in &pages {
        let want: Vec<(String, &str)> = {
            let mut v: Vec<_> = ids
                .iter()
                .filter(|id| **id != p.id)
                .flat_map(|id| KINDS.iter().map(move |k| (id.clone(), *k)))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            p.media.sources(),
            want,
            "{} receives exactly the others",
            p.id
        );
        // The engine's offer: this page's own two receive sections and 22 send sections.
        let sdp = p.media.pc.remote_description().await.expect("sdp").sdp;
        assert_eq!(sdp.matches("m=audio").count(), 12, "{}", p.id);
        assert_eq!(sdp.matches("m=video").count(), 12, "{}", p.id);
    }

    // Packets keep rising on every one of the 264 forwarded streams.
    let before = snapshot(&pages);
    let rising = run_until(&mut pages, Duration::from_secs(30), |pages| {
        before.iter().all(|((to, from, k), n)| {
            to == from || {
                let page = pages.iter().find(|p| &p.id == to).expect("page");
                page.media.received(from, k) > *n
            }
        })
    })
    .await;
    assert!(rising, "some stream stalled");
    assert_eq!(routed_participants(&call).await, Some(12));

    // One leaves (hangs up; its connection keeps sending). Once the others are told,
    // nothing more is forwarded from it or to it; the eleven keep exchanging media.
    let leaver = pages.remove(5);
    let leaver_id = leaver.id.clone();
    let mut leaver = leaver;
    send(&mut leaver.ws, json!({"type": "hang_up"})).await;
    let told = run_until(&mut pages, Duration::from_secs(10), |pages| {
        pages.iter().all(|p| {
            p.seen.iter().any(|m| {
                m["type"] == "participant_left" && m["participant_id"] == leaver_id.as_str()
            })
        })
    })
    .await;
    assert!(told, "participant_left reached every page");
    // Packets already on their way (socket buffers) drain in this grace time.
    let grace = Instant::now() + Duration::from_millis(300);
    while Instant::now() < grace {
        leaver.media.send().await;
        run_until(&mut pages, Duration::from_millis(40), |_| false).await;
    }
    let from_leaver: Vec<u64> = pages
        .iter()
        .flat_map(|p| KINDS.map(|k| p.media.received(&leaver_id, k)))
        .collect();
    let to_leaver: Vec<u64> = ids
        .iter()
        .flat_map(|id| KINDS.map(|k| leaver.media.received(id, k)))
        .collect();
    let before = snapshot(&pages);
    let end = Instant::now() + Duration::from_secs(1);
    while Instant::now() < end {
        leaver.media.send().await;
        run_until(&mut pages, Duration::from_millis(40), |_| false).await;
    }
    let from_after: Vec<u64> = pages
        .iter()
        .flat_map(|p| KINDS.map(|k| p.media.received(&leaver_id, k)))
        .collect();
    let to_after: Vec<u64> = ids
        .iter()
        .flat_map(|id| KINDS.map(|k| leaver.media.received(id, k)))
        .collect();
    assert_eq!(from_after, from_leaver, "nothing forwarded from the leaver");
    assert_eq!(to_after, to_leaver, "nothing forwarded to the leaver");
    for ((to, from, k), n) in &before {
        if to != from && *from != leaver_id {
            let page = pages.iter().find(|p| &p.id == to).expect("page");
            assert!(
                page.media.received(from, k) > *n,
                "{to} ← {from} {k} stalled"
            );
        }
    }
    assert_eq!(routed_participants(&call).await, Some(11));
    eprintln!(
        "twelve routed participants: all 264 streams flowing after {connected_after:?}, test {:?}",
        started.elapsed()
    );
    let _ = leaver.media.pc.close().await;
    for p in &pages {
        let _ = p.media.pc.close().await;
    }
}
