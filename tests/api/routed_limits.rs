//! The node-wide cap on routed participants, seen from the pages: a join the engine cannot
//! take is answered with a clear `media_unavailable` error, and a call a mesh can carry
//! goes back to peer to peer.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support_call::{Call, Ws, drain, next_of, send};

async fn collect(ws: &mut Ws, dur: Duration) -> Vec<Value> {
    let end = tokio::time::Instant::now() + dur;
    let mut seen = Vec::new();
    while tokio::time::Instant::now() < end {
        seen.extend(drain(ws).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_node_answers_a_routed_join_with_a_clear_error() {
    let call = Call::with(|c| {
        c.media.mode = sightline::media::MediaMode::Auto;
        c.media.max_participants = 2;
    })
    .await;
    let (mut agent, _) = call.join(&call.agent, "a").await;
    let (mut customer, joined) = call.join(&call.customer, "c").await;
    assert!(joined.get("routed").is_none(), "two people: peer to peer");
    // A listening supervisor routes the call: the engine takes the agent and the customer
    // (its two places) and refuses the supervisor, who is told why.
    let sup_token = call.invite("supervisor", "Sue").await;
    let (mut sup, joined) = call.join(&sup_token, "s").await;
    assert_eq!(joined["routed"], true, "{joined}");
    let err = next_of(&mut sup, "error").await;
    assert_eq!(err["code"], "media_unavailable", "{err}");
    let message = err["message"].as_str().expect("message");
    assert!(message.contains("routes as many participants"), "{message}");
    // The two who fit get their engine offers; nobody else gets an error.
    for ws in [&mut agent, &mut customer] {
        let seen = collect(ws, Duration::from_millis(600)).await;
        assert!(seen.iter().any(|m| m["type"] == "media_offer"), "{seen:?}");
        assert!(!seen.iter().any(|m| m["type"] == "error"), "{seen:?}");
    }
    // The supervisor hangs up: two remain, no hidden participant, and the node is full, so
    // the call goes back to peer to peer (the one exception to "a routed call stays
    // routed") and the engine lets go of both.
    send(&mut sup, json!({"type": "hang_up"})).await;
    for ws in [&mut agent, &mut customer] {
        let seen = collect(ws, Duration::from_millis(600)).await;
        assert!(
            seen.iter()
                .any(|m| m["type"] == "routed" && m["routed"] == false),
            "{seen:?}"
        );
    }
    call.t.app.shutdown().await.expect("shutdown");
}
