//! Rosters of a routed call over the signaling WebSocket (server default `[media] mode`,
//! `auto`): a listening supervisor routes the call; agents and other supervisors see it in
//! their roster although nothing flows between them, customers never hear of it; the call
//! stays routed when it leaves.

use serde_json::{Value, json};

use crate::support_call::{Call, Ws, drain, next_of};

/// Every message up to the next pong, as one string (for "no trace of" checks).
async fn everything(ws: &mut Ws) -> String {
    Value::from(drain(ws).await).to_string()
}

#[tokio::test]
async fn agents_and_supervisors_see_a_hidden_supervisor_and_customers_never_do() {
    let c = Call::new().await;
    let sue = c.invite("supervisor", "Sue").await;
    let max = c.invite("supervisor", "Max").await;
    let (mut agent, _) = c.join(&c.agent, "a").await;
    let (mut customer, joined) = c.join(&c.customer, "c").await;
    assert_ne!(joined["routed"], true, "two people stay peer to peer");
    next_of(&mut agent, "participant_joined").await;

    // Sue listens: the call is routed, and the agent's roster gains her, with her role,
    // name and mode, although she sends nothing and receives through the engine.
    let (mut sue_ws, joined) = c.join(&sue, "s1").await;
    assert_eq!(joined["routed"], true, "{joined}");
    let sue_id = joined["participant_id"].as_str().expect("id").to_owned();
    let mut seen = Vec::new();
    loop {
        let m = next_of(&mut agent, "participant_joined").await;
        if m["participant"]["id"] == sue_id.as_str() {
            seen.push(m);
            break;
        }
    }
    let e = &seen[0]["participant"];
    assert_eq!(e["role"], "supervisor", "{e}");
    assert_eq!(e["name"], "Sue", "{e}");
    assert_eq!(e["mode"], "listen", "{e}");
    assert_ne!(e["hidden"], true, "{e}");
    assert_eq!(e["receive"], false, "{e}");
    assert_eq!(e["send"], json!({"audio": false, "video": false}), "{e}");

    // Max listens too: his roster lists Sue, Sue's page gains Max.
    let (mut max_ws, joined) = c.join(&max, "s2").await;
    let max_id = joined["participant_id"].as_str().expect("id").to_owned();
    let roster = joined["roster"].as_array().expect("roster");
    let sue_entry = roster
        .iter()
        .find(|e| e["id"] == sue_id.as_str())
        .unwrap_or_else(|| panic!("Max's roster has no Sue: {joined}"));
    assert_eq!(sue_entry["role"], "supervisor");
    assert_eq!(sue_entry["name"], "Sue");
    assert_eq!(roster.len(), 3, "agent, customer, Sue: {joined}");
    let m = next_of(&mut sue_ws, "participant_joined").await;
    assert_eq!(m["participant"]["id"], max_id.as_str(), "{m}");
    assert_eq!(m["participant"]["name"], "Max", "{m}");

    // Sue whispers: the agent's entry follows.
    let path = format!("/api/v1/sessions/{}/participants/{sue_id}/mode", c.id);
    let r = c.t.post(&path, &json!({"mode": "whisper"})).await;
    assert!(r.status().is_success(), "{}", r.status());
    let up = next_of(&mut agent, "participant_updated").await;
    assert_eq!(up["participant"]["id"], sue_id.as_str(), "{up}");
    assert_eq!(up["participant"]["mode"], "whisper", "{up}");

    // The customer's page never heard of either supervisor.
    let all = everything(&mut customer).await;
    for trace in [sue_id.as_str(), max_id.as_str(), "Sue", "Max", "supervisor"] {
        assert!(!all.contains(trace), "customer saw {trace}: {all}");
    }

    // Both leave: the agent's roster drops them, and the call stays routed (no second
    // switch: no `routed: false` to anyone).
    for ws in [&mut sue_ws, &mut max_ws] {
        crate::support_call::send(ws, json!({"type": "hang_up"})).await;
    }
    let mut left = Vec::new();
    while left.len() < 2 {
        let m = next_of(&mut agent, "participant_left").await;
        left.push(m["participant_id"].as_str().expect("id").to_owned());
    }
    left.sort();
    let mut want = vec![sue_id.clone(), max_id.clone()];
    want.sort();
    assert_eq!(left, want);
    for ws in [&mut agent, &mut customer] {
        let all = everything(ws).await;
        assert!(!all.contains("\"routed\":false"), "{all}");
    }
    let all = everything(&mut customer).await;
    assert!(!all.contains("Sue") && !all.contains("Max"), "{all}");
}
