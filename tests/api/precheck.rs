//! The pre-call check (issue 15): a join page reports camera, microphone and which TURN
//! transports gave a relay; agents in the call get `precheck` at once (before the customer
//! joins); `participant.prechecked` is on the timeline.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{assert_problem, eventually};
use crate::support_call::*;

async fn report(c: &Call, token: &str, body: Value) -> reqwest::Response {
    c.t.http
        .post(c.t.url(&format!("/api/v1/join/{token}/precheck")))
        .json(&body)
        .send()
        .await
        .expect("precheck")
}

#[tokio::test]
async fn the_agent_sees_the_customers_check_before_they_join() {
    let c = Call::new().await;
    let (mut agent, _) = c.join(&c.agent, "a1").await;
    let body = json!({"camera": true, "microphone": false,
                      "relay": {"udp": false, "tcp": true, "tls": null}});
    let r = report(&c, &c.customer, body).await;
    assert_eq!(r.status(), 204);
    let m = next_of(&mut agent, "precheck").await;
    assert_eq!(m["name"], "Sam");
    assert_eq!(m["camera"], true);
    assert_eq!(m["microphone"], false);
    assert_eq!(m["relay"], json!({"udp": false, "tcp": true, "tls": null}));
    let ev = eventually(Duration::from_secs(5), "participant.prechecked", || async {
        let v: Value =
            c.t.get(&format!("/api/v1/sessions/{}/events", c.id))
                .await
                .json()
                .await
                .ok()?;
        v["items"]
            .as_array()?
            .iter()
            .find(|e| e["kind"] == "participant.prechecked")
            .cloned()
    })
    .await;
    assert_eq!(ev["data"]["relay"]["tcp"], true);
    assert_eq!(ev["participant_id"], m["participant_id"]);
    // Ten per participant at most.
    for n in 1..=10 {
        let body = json!({"camera": true, "microphone": true, "relay": {}});
        let r = report(&c, &c.customer, body).await;
        if n < 10 {
            assert_eq!(r.status(), 204);
        } else {
            assert_problem(r, 429, "rate_limited").await;
        }
    }
    // Wrong shapes and dead links.
    let r = report(
        &c,
        &c.customer,
        json!({"camera": "yes", "microphone": true, "relay": {}}),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = report(
        &c,
        "nope",
        json!({"camera": true, "microphone": true, "relay": {}}),
    )
    .await;
    assert_problem(r, 404, "link_invalid").await;
}
