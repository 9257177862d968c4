//! Quality seen by the server in a routed call: the customer's test client drops every
//! 10th packet before sending; the engine's timeline shows about 10 % loss on the
//! customer's uplink (and not on the agent's downlink: the engine does not count the
//! customer's loss twice), `quality.degraded` is recorded with a plain verdict, the report
//! page draws it, and /metrics counts the routed call.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Value, json};
use sightline::domain::server_quality::Direction;
use tokio_tungstenite::tungstenite::Message;

use crate::support::eventually;
use crate::support_call::*;
use crate::support_media::Participant;

struct Page {
    ws: Ws,
    media: Participant,
}

impl Page {
    /// Reads what is waiting on the socket; answers the engine's offers.
    async fn pump(&mut self) {
        while let Ok(Some(Ok(m))) =
            tokio::time::timeout(Duration::from_millis(2), self.ws.next()).await
        {
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).expect("json");
            if v["type"] == "media_offer" {
                let answer = self.media.answer(v["sdp"].as_str().expect("sdp")).await;
                send(&mut self.ws, json!({"type": "media_answer", "sdp": answer})).await;
            }
        }
    }
}

async fn run(pages: &mut [&mut Page], dur: Duration) {
    let end = tokio::time::Instant::now() + dur;
    while tokio::time::Instant::now() < end {
        for p in pages.iter_mut() {
            p.pump().await;
            p.media.send().await;
        }
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
}

/// `sightline_media{counter="NAME"}` or `sightline_NAME` from /metrics.
async fn metric(c: &Call, name: &str) -> f64 {
    let m = c.t.get("/metrics").await.text().await.expect("text");
    let labelled = format!("sightline_media{{counter=\"{name}\"}} ");
    let plain = format!("sightline_{name} ");
    m.lines()
        .find_map(|l| l.strip_prefix(&labelled).or_else(|| l.strip_prefix(&plain)))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_uplink_shows_on_the_servers_timeline_and_degrades() {
    let c = Call::with(|cfg| {
        cfg.media.mode = sightline::media::MediaMode::Routed;
        cfg.media.degraded_loss_percent = 5.0;
        cfg.media.degraded_after_secs = 10;
    })
    .await;
    let (ws, joined) = c.join(&c.agent, "a").await;
    assert_eq!(joined["routed"], true, "{joined}");
    let agent_id = joined["participant_id"].as_str().expect("id").to_owned();
    let mut agent = Page {
        ws,
        media: Participant::new(&agent_id).await,
    };
    let (ws, joined) = c.join(&c.customer, "c").await;
    let customer_id = joined["participant_id"].as_str().expect("id").to_owned();
    let mut customer = Page {
        ws,
        media: Participant::new(&customer_id).await,
    };
    customer.media.drop_every = Some(10);

    run(&mut [&mut agent, &mut customer], Duration::from_secs(3)).await;
    let (fwd0, busy0) = (
        metric(&c, "forwarded_packets").await,
        metric(&c, "media_engine_busy_seconds").await,
    );
    assert_eq!(metric(&c, "routed_calls").await, 1.0);
    assert_eq!(metric(&c, "routed_participants").await, 2.0);
    assert!(agent.media.received(&customer_id, "audio") > 10);

    // Two full 5 s intervals of loss (and a bit): the 10 s threshold is crossed.
    run(&mut [&mut agent, &mut customer], Duration::from_secs(13)).await;
    let (fwd1, busy1) = (
        metric(&c, "forwarded_packets").await,
        metric(&c, "media_engine_busy_seconds").await,
    );
    eprintln!("metrics: forwarded {fwd0} → {fwd1}, engine busy {busy0:.4} s → {busy1:.4} s");
    assert!(fwd1 > fwd0 + 500.0, "{fwd0} → {fwd1}");
    assert!(busy1 > busy0 && busy0 > 0.0, "{busy0} → {busy1}");
    assert!(metric(&c, "plis_sent").await > 0.0);

    // The stored timeline: every sample of the customer's uplink lost about 10 %.
    let db = &c.t.app.state().db;
    let samples = eventually(Duration::from_secs(5), "three samples each", || async {
        let s = sightline::store::server_quality::list(db, &c.id)
            .await
            .ok()?;
        let n = |pid: &str, d: Direction| {
            s.iter()
                .filter(|x| x.participant_id == pid && x.sample.direction == d)
                .count()
        };
        (n(&customer_id, Direction::Uplink) >= 3 && n(&agent_id, Direction::Downlink) >= 3)
            .then_some(s)
    })
    .await;
    for s in &samples {
        let who = if s.participant_id == customer_id {
            "customer"
        } else {
            "agent"
        };
        eprintln!("{who} {:?}", s.sample);
    }
    let of = |pid: &str, d: Direction| -> Vec<_> {
        samples
            .iter()
            .filter(|x| x.participant_id == pid && x.sample.direction == d)
            .map(|x| x.sample)
            .collect()
    };
    for s in of(&customer_id, Direction::Uplink) {
        assert!(
            (80..=120).contains(&s.loss_permille),
            "customer uplink {s:?}"
        );
        assert!(s.packets > 150 && s.kbps > 50, "{s:?}");
    }
    for s in of(&agent_id, Direction::Uplink) {
        assert!(s.loss_permille <= 10, "agent uplink {s:?}");
    }
    // The agent receives the customer's gaps, but its own downlink loses nothing here.
    let down = of(&agent_id, Direction::Downlink);
    for s in &down {
        assert!(s.loss_permille <= 20, "agent downlink {s:?}");
    }
    assert!(
        down.iter().any(|s| s.rtt_ms.is_some_and(|r| r < 1000)),
        "a round trip from the agent's receiver reports: {down:?}"
    );

    // quality.degraded, from the server, about the customer's uplink, once.
    let events = eventually(Duration::from_secs(5), "quality.degraded", || async {
        let v: Value =
            c.t.get(&format!("/api/v1/sessions/{}/events", c.id))
                .await
                .json()
                .await
                .ok()?;
        let found: Vec<Value> = v["items"]
            .as_array()?
            .iter()
            .filter(|e| e["kind"] == "quality.degraded")
            .cloned()
            .collect();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    eprintln!("event: {e}");
    assert_eq!(e["participant_id"], customer_id.as_str());
    assert_eq!(e["data"]["source"], "server");
    assert_eq!(e["data"]["direction"], "uplink");
    let loss = e["data"]["loss"].as_f64().expect("loss");
    assert!((0.08..=0.12).contains(&loss), "{e}");
    let verdict = e["data"]["verdict"].as_str().expect("verdict");
    assert!(verdict.starts_with("customer's uplink lost "), "{verdict}");
    let secs = e["data"]["seconds"].as_u64().expect("seconds");
    assert!((10..=15).contains(&secs), "{e}");
    let pct: f64 = verdict
        .strip_prefix("customer's uplink lost ")
        .and_then(|v| v.strip_suffix(&format!(" % for {secs} s")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{verdict}"));
    assert!((8.0..=12.0).contains(&pct), "{verdict}");

    // The report page: a chart per participant and direction, with the verdict.
    let session: Value =
        c.t.get(&format!("/api/v1/sessions/{}", c.id))
            .await
            .json()
            .await
            .expect("json");
    let url = session["report_url"]
        .as_str()
        .expect("report_url")
        .to_owned();
    let html =
        c.t.http
            .get(&url)
            .send()
            .await
            .expect("report")
            .text()
            .await
            .expect("html");
    assert!(html.contains("Call quality seen by the server"), "{html}");
    for (pid, d) in [(&customer_id, "uplink"), (&agent_id, "downlink")] {
        assert!(
            html.contains(&format!("data-server-quality=\"{pid}-{d}\"")),
            "{pid} {d}"
        );
    }
    let line = html
        .split("data-field=\"server-verdict\">")
        .skip(1)
        .map(|s| s.split('<').next().unwrap_or(""))
        .find(|l| {
            l.starts_with("customer&#39;s uplink lost") || l.starts_with("customer's uplink lost")
        })
        .unwrap_or_else(|| panic!("no customer verdict in {html}"));
    eprintln!("report verdict: {line}");
    let _ = agent.media.pc.close().await;
    let _ = customer.media.pc.close().await;
}
