//! Text chat in the call (issue 15): relayed over signaling to everyone who sees the
//! sender, with the server's id and time; stored; listed by the API and the report page;
//! bounded in size and rate (`error` `too_long` / `rate_limited`, never stored).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{assert_problem, eventually};
use crate::support_call::*;

async fn messages(c: &Call) -> Value {
    let r =
        c.t.get(&format!("/api/v1/sessions/{}/messages", c.id))
            .await;
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

#[tokio::test]
async fn chat_reaches_both_sides_is_stored_listed_and_escaped_on_the_report() {
    let c = Call::new().await;
    let (mut agent, a) = c.join(&c.agent, "a1").await;
    let (mut customer, j) = c.join(&c.customer, "c1").await;
    let customer_id = j["participant_id"].as_str().expect("id").to_owned();
    let agent_id = a["participant_id"].as_str().expect("id").to_owned();
    let text = "Look <b>here</b>: https://example.com/a?b=1\nline two";
    send(&mut customer, json!({"type": "chat", "text": text})).await;
    let got = next_of(&mut agent, "chat").await;
    let echo = next_of(&mut customer, "chat").await;
    assert_eq!(got, echo, "the sender gets the same message back");
    assert_eq!(got["from"], customer_id.as_str());
    assert_eq!(got["role"], "customer");
    assert_eq!(got["name"], "Sam");
    assert_eq!(got["text"], text);
    assert!(got.get("internal").is_none(), "{got}");
    assert!(got["at"].as_str().expect("at").ends_with('Z'));
    send(
        &mut agent,
        json!({"type": "chat", "text": "  thanks \u{7}!  "}),
    )
    .await;
    let back = next_of(&mut customer, "chat").await;
    assert_eq!(back["text"], "thanks  !");
    assert_eq!(back["from"], agent_id.as_str());

    let list = eventually(Duration::from_secs(5), "two stored messages", || async {
        let v = messages(&c).await;
        (v["items"].as_array().map(Vec::len) == Some(2)).then_some(v)
    })
    .await;
    let items = list["items"].as_array().expect("items");
    assert_eq!(items[0]["id"], got["id"]);
    assert_eq!(items[0]["text"], text);
    assert_eq!(items[0]["participant_id"], customer_id.as_str());
    assert_eq!(items[1]["role"], "agent");
    assert_eq!(items[1]["internal"], false);
    // Paging by id.
    let after = items[0]["id"].as_str().expect("id");
    let r =
        c.t.get(&format!(
            "/api/v1/sessions/{}/messages?after={after}&limit=1",
            c.id
        ))
        .await;
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["items"][0]["text"], "thanks  !");
    assert_eq!(page["next_after"], page["items"][0]["id"]);

    // The report shows the text, escaped.
    let report = c.t.get(&format!("/api/v1/sessions/{}", c.id)).await;
    let report: Value = report.json().await.expect("json");
    let html =
        c.t.http
            .get(report["report_url"].as_str().expect("report_url"))
            .send()
            .await
            .expect("report")
            .text()
            .await
            .expect("text");
    assert!(
        html.contains("Look &#60;b&#62;here&#60;/b&#62;")
            || html.contains("Look &lt;b&gt;here&lt;/b&gt;"),
        "{html}"
    );
    assert!(!html.contains("<b>here</b>"));

    // Errors: unknown session, bad paging.
    let r =
        c.t.get("/api/v1/sessions/00000000-0000-7000-8000-000000000000/messages")
            .await;
    assert_problem(r, 404, "session_not_found").await;
    let r =
        c.t.get(&format!("/api/v1/sessions/{}/messages?limit=0", c.id))
            .await;
    assert_eq!(r.status(), 400);
    let r = reqwest::Client::new()
        .get(c.t.url(&format!("/api/v1/sessions/{}/messages", c.id)))
        .send()
        .await
        .expect("get");
    assert_problem(r, 401, "unauthorized").await;
}

#[tokio::test]
async fn chat_limits_answer_errors_and_store_nothing() {
    let c = Call::new().await;
    let (mut agent, _) = c.join(&c.agent, "a1").await;
    let (mut customer, _) = c.join(&c.customer, "c1").await;
    drain(&mut agent).await;
    let long = "é".repeat(2001);
    send(&mut customer, json!({"type": "chat", "text": long})).await;
    let e = next_of(&mut customer, "error").await;
    assert_eq!(e["code"], "too_long");
    send(&mut customer, json!({"type": "chat", "text": " \n "})).await;
    assert_eq!(next_of(&mut customer, "error").await["code"], "empty");
    // Two tokens spent above; a burst of 10 more leaves the bucket empty.
    for n in 0..10 {
        send(
            &mut customer,
            json!({"type": "chat", "text": format!("m{n}")}),
        )
        .await;
    }
    let seen = drain(&mut customer).await;
    let chats = seen.iter().filter(|m| m["type"] == "chat").count();
    let limited = seen
        .iter()
        .filter(|m| m["type"] == "error" && m["code"] == "rate_limited")
        .count();
    assert_eq!(chats + limited, 10, "{seen:?}");
    assert!(limited >= 1 && chats >= 8, "{seen:?}");
    // The socket stays open, the agent saw only the relayed ones.
    let at_agent = drain(&mut agent).await;
    assert_eq!(
        at_agent.iter().filter(|m| m["type"] == "chat").count(),
        chats
    );
    let stored = eventually(Duration::from_secs(5), "stored chats", || async {
        let v = messages(&c).await;
        let n = v["items"].as_array().map(Vec::len).unwrap_or(0);
        (n == chats).then_some(n)
    })
    .await;
    assert_eq!(stored, chats);
    // Non-string text is a broken page: closed with 4400.
    send(&mut customer, json!({"type": "chat", "text": 5})).await;
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

#[tokio::test]
async fn a_listening_supervisors_chat_reaches_staff_only() {
    let c = Call::new().await;
    let sup = c.invite("supervisor", "Sue").await;
    let (mut agent, _) = c.join(&c.agent, "a1").await;
    let (mut customer, _) = c.join(&c.customer, "c1").await;
    let (mut supervisor, _) = c.join(&sup, "s1").await;
    drain(&mut customer).await;
    send(
        &mut supervisor,
        json!({"type": "chat", "text": "offer the refund"}),
    )
    .await;
    let m = next_of(&mut agent, "chat").await;
    assert_eq!(m["internal"], true);
    assert_eq!(next_of(&mut supervisor, "chat").await, m, "its own echo");
    assert_eq!(m["role"], "supervisor");
    assert!(
        drain(&mut customer)
            .await
            .iter()
            .all(|m| m["type"] != "chat")
    );
    // The customer's messages reach the supervisor too.
    send(&mut customer, json!({"type": "chat", "text": "hello?"})).await;
    assert_eq!(next_of(&mut supervisor, "chat").await["text"], "hello?");
    let v = eventually(Duration::from_secs(5), "stored", || async {
        let v = messages(&c).await;
        (v["items"].as_array().map(Vec::len) == Some(2)).then_some(v)
    })
    .await;
    assert_eq!(v["items"][0]["internal"], true);
    assert_eq!(v["items"][1]["internal"], false);
    // A reloaded page gets the chat so far, as its participant saw it.
    let c = &c;
    let page = |token: String| async move {
        let v: Value =
            c.t.http
                .get(c.t.url(&format!("/api/v1/join/{token}/messages")))
                .send()
                .await
                .expect("history")
                .json()
                .await
                .expect("json");
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(page(c.agent.clone()).await, ["offer the refund", "hello?"]);
    assert_eq!(page(sup.clone()).await, ["offer the refund", "hello?"]);
    assert_eq!(page(c.customer.clone()).await, ["hello?"]);
}
