//! Quality reports (issue 15): pages send `stats` every 5 s; the server checks them
//! (`invalid_stats`, `rate_limited`; never stored when refused), stores a compact series,
//! tells staff a per-participant level, records `quality.degraded` after three lossy
//! reports in a row, and the report page draws the series with a verdict.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::eventually;
use crate::support_call::*;

fn stats(loss: f64, rtt: f64) -> Value {
    json!({"type": "stats", "loss": loss, "jitter": 3.5, "rtt": rtt, "bitrate": 850,
           "fps": 24, "freezes": 0, "quality_limitation_reason": "none"})
}

#[tokio::test]
async fn reports_are_checked_relayed_to_staff_stored_charted_and_degrade() {
    let c = Call::new().await;
    let (mut agent, _) = c.join(&c.agent, "a1").await;
    let (mut customer, j) = c.join(&c.customer, "c1").await;
    let customer_id = j["participant_id"].as_str().expect("id").to_owned();

    // Malformed reports are refused and change nothing; the socket stays.
    let mut bad = stats(0.0, 50.0);
    bad["loss"] = json!(1.5);
    send(&mut customer, bad).await;
    assert_eq!(
        next_of(&mut customer, "error").await["code"],
        "invalid_stats"
    );
    let mut bad = stats(0.0, 50.0);
    bad["rtt"] = json!("fast");
    send(&mut customer, bad).await;
    assert_eq!(
        next_of(&mut customer, "error").await["code"],
        "invalid_stats"
    );
    let mut bad = stats(0.0, 50.0);
    bad.as_object_mut().expect("obj").remove("fps");
    send(&mut customer, bad).await;
    assert_eq!(
        next_of(&mut customer, "error").await["code"],
        "invalid_stats"
    );

    // Three lossy reports, 2 s apart (the least interval).
    for n in 0..3 {
        send(&mut customer, stats(0.08, 120.0)).await;
        let q = next_of(&mut agent, "quality").await;
        assert_eq!(q["participant_id"], customer_id.as_str());
        assert_eq!(q["level"], "poor");
        assert_eq!(q["loss_permille"], 80);
        assert_eq!(q["rtt_ms"], 120);
        if n == 0 {
            // Too soon after the last one.
            send(&mut customer, stats(0.0, 50.0)).await;
            assert_eq!(
                next_of(&mut customer, "error").await["code"],
                "rate_limited"
            );
        }
        if n < 2 {
            tokio::time::sleep(Duration::from_millis(2050)).await;
        }
    }
    // The customer's page is not told about its own (or anyone's) quality.
    assert!(
        drain(&mut customer)
            .await
            .iter()
            .all(|m| m["type"] != "quality")
    );

    let ev = eventually(Duration::from_secs(5), "quality.degraded", || async {
        let v: Value =
            c.t.get(&format!("/api/v1/sessions/{}/events", c.id))
                .await
                .json()
                .await
                .ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "quality.degraded")
            .cloned()
    })
    .await;
    assert_eq!(ev["participant_id"], customer_id.as_str());
    assert_eq!(ev["data"]["reports"], 3);

    // The report page: a chart and a verdict, from the three stored reports.
    let s: Value =
        c.t.get(&format!("/api/v1/sessions/{}", c.id))
            .await
            .json()
            .await
            .expect("json");
    let url = s["report_url"].as_str().expect("report_url").to_owned();
    let html = eventually(
        Duration::from_secs(5),
        "three reports on the page",
        || async {
            let html = c.t.http.get(&url).send().await.ok()?.text().await.ok()?;
            html.contains("3 reports over the call").then_some(html)
        },
    )
    .await;
    assert!(html.contains("<polyline points=\"0.0,"), "{html}");
    assert!(
        html.contains("Poor: median loss 8.0 %, worst 8.0 %, median round trip 120 ms"),
        "{html}"
    );
}

#[tokio::test]
async fn unknown_stats_fields_are_a_broken_page() {
    let c = Call::new().await;
    let (mut customer, _) = c.join(&c.customer, "c1").await;
    let mut bad = stats(0.0, 50.0);
    bad["mos"] = json!(4.2);
    send(&mut customer, bad).await;
    loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(WAIT, customer.next())
            .await
            .expect("close")
        {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 4400);
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("{other:?}"),
        }
    }
}
