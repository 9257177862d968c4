//! The chat transcript goes into the conversation at the end of the call (issue 15): a
//! `transcript` outbox delivery through the integration the session is bound to, with
//! every message but staff-only ones; none when nobody chatted.

use serde_json::{Value, json};

use crate::support::TestApp;
use crate::support_call::*;
use crate::support_outbox::{Receiver, eventually, session_body};

#[tokio::test]
async fn the_transcript_is_posted_into_the_conversation_when_the_call_ends() {
    let rx = Receiver::start().await;
    let t = TestApp::spawn_with(|c| {
        c.turn.enabled = false;
        c.outbound.allow = vec!["127.0.0.0/8".parse().expect("net")];
        c.outbox.poll_interval_ms = 50;
        c.outbox.base_delay_ms = 20;
    })
    .await;
    let r = t
        .post(
            "/api/v1/integrations",
            &json!({"name": "desk", "kind": "generic", "config": {"post_url": rx.url("/post")}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let c = Call::with_session(t, &session_body("conv-77", Some("desk"))).await;
    // First the link post.
    eventually(10, "the link post", || async { rx.on("/post").pop() }).await;
    let sup = c.invite("supervisor", "Sue").await;
    let (mut agent, _) = c.join(&c.agent, "a1").await;
    let (mut customer, _) = c.join(&c.customer, "c1").await;
    let (mut supervisor, _) = c.join(&sup, "s1").await;
    send(
        &mut customer,
        json!({"type": "chat", "text": "my order is late"}),
    )
    .await;
    next_of(&mut agent, "chat").await;
    send(
        &mut supervisor,
        json!({"type": "chat", "text": "offer a voucher"}),
    )
    .await;
    next_of(&mut agent, "chat").await;
    send(
        &mut agent,
        json!({"type": "chat", "text": "Sorry!\nLet me check."}),
    )
    .await;
    next_of(&mut customer, "chat").await;
    send(&mut agent, json!({"type": "end"})).await;

    let post = eventually(10, "the transcript post", || async {
        let posts = rx.on("/post");
        (posts.len() >= 2).then(|| posts[1].clone())
    })
    .await;
    let body: Value = post.json();
    assert_eq!(body["conversation_id"], "conv-77");
    let content = body["content"].as_str().expect("content");
    assert!(
        content.starts_with("Chat from the video call with Ana Lima:\n"),
        "{content}"
    );
    assert!(content.contains("] Sam: my order is late\n"), "{content}");
    assert!(
        content.contains("] Ana Lima: Sorry!\n    Let me check."),
        "{content}"
    );
    assert!(
        !content.contains("voucher"),
        "staff-only messages stay out: {content}"
    );
    let d: Value =
        c.t.get(&format!("/api/v1/deliveries?session_id={}", c.id))
            .await
            .json()
            .await
            .expect("json");
    let kinds: Vec<&str> = d["items"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["kind"].as_str()).collect())
        .unwrap_or_default();
    assert!(kinds.contains(&"transcript"), "{d}");
    // Exactly once, even if the end is repeated.
    let r =
        c.t.post(&format!("/api/v1/sessions/{}/end", c.id), &json!({}))
            .await;
    assert!(r.status().is_success() || r.status() == 409);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(rx.on("/post").len(), 2);
}

#[tokio::test]
async fn no_chat_no_transcript() {
    let rx = Receiver::start().await;
    let t = TestApp::spawn_with(|c| {
        c.turn.enabled = false;
        c.outbound.allow = vec!["127.0.0.0/8".parse().expect("net")];
        c.outbox.poll_interval_ms = 50;
    })
    .await;
    let r = t
        .post(
            "/api/v1/integrations",
            &json!({"name": "desk", "kind": "generic", "config": {"post_url": rx.url("/post")}}),
        )
        .await;
    assert_eq!(r.status(), 201);
    let c = Call::with_session(t, &session_body("conv-78", Some("desk"))).await;
    eventually(10, "the link post", || async { rx.on("/post").pop() }).await;
    let r =
        c.t.post(&format!("/api/v1/sessions/{}/end", c.id), &json!({}))
            .await;
    assert!(r.status().is_success());
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(rx.on("/post").len(), 1);
}
