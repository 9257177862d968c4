//! The customer's rating after the call (issue 15): with the customer's own link, also
//! once the session has ended; once; `session.rated` on the timeline; listed by the API
//! and shown on the report page.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{assert_problem, eventually};
use crate::support_call::*;

async fn rate(c: &Call, token: &str, body: Value) -> reqwest::Response {
    c.t.http
        .post(c.t.url(&format!("/api/v1/join/{token}/rating")))
        .json(&body)
        .send()
        .await
        .expect("rate")
}

#[tokio::test]
async fn the_customer_rates_the_ended_call_once() {
    let c = Call::new().await;
    let r =
        c.t.post(&format!("/api/v1/sessions/{}/end", c.id), &json!({}))
            .await;
    assert_eq!(r.status(), 200);
    // Out of range, wrong types: refused as the document says.
    for bad in [
        json!({"score": 0}),
        json!({"score": 6}),
        json!({"score": "5"}),
        json!({"comment": "x"}),
    ] {
        let r = rate(&c, &c.customer, bad.clone()).await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = rate(&c, &c.agent, json!({"score": 5})).await;
    assert_problem(r, 403, "not_customer").await;
    let r = rate(&c, "nope", json!({"score": 5})).await;
    assert_problem(r, 404, "link_invalid").await;
    let r = rate(
        &c,
        &c.customer,
        json!({"score": 4, "comment": " Clear picture <b>thanks</b>\u{7} "}),
    )
    .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["score"], 4);
    assert_eq!(v["comment"], "Clear picture <b>thanks</b>");
    let r = rate(&c, &c.customer, json!({"score": 1})).await;
    assert_problem(r, 409, "already_rated").await;

    let list: Value =
        c.t.get(&format!("/api/v1/sessions/{}/ratings", c.id))
            .await
            .json()
            .await
            .expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["items"][0]["score"], 4);
    let ev = eventually(Duration::from_secs(5), "session.rated", || async {
        let v: Value =
            c.t.get(&format!("/api/v1/sessions/{}/events", c.id))
                .await
                .json()
                .await
                .ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "session.rated")
            .cloned()
    })
    .await;
    assert_eq!(ev["data"]["score"], 4);
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
    assert!(html.contains("4/5"), "{html}");
    assert!(
        html.contains("Clear picture &#60;b&#62;thanks")
            || html.contains("Clear picture &lt;b&gt;thanks"),
        "{html}"
    );
}
