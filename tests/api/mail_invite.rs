//! E-mail invites through the outbox to a real SMTP server (a sink in the test): both
//! parts, the right link, the customer's language.

use crate::support_outbox::*;
use serde_json::json;
use sightline::Application;

#[tokio::test]
async fn invite_arrives_with_both_parts_and_the_link() {
    let dir = tempfile::tempdir().unwrap();
    let smtp = SmtpSink::start().await;
    let mut c = config(dir.path());
    c.mail.host = Some("127.0.0.1".into());
    c.mail.port = smtp.port;
    c.mail.tls = sightline::config::SmtpTls::None;
    c.mail.from = "Sightline <video@example.test>".into();
    let app = Application::build(c).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());

    let (st, s) = api.post("/api/v1/sessions", session_body("c1", None)).await;
    assert_eq!(st, 201);
    let sid = s["id"].as_str().unwrap();
    let link = s["customer_url"].as_str().unwrap();

    // To the session's customer address, in English.
    let (st, q) = api
        .post(&format!("/api/v1/sessions/{sid}/invite"), json!({}))
        .await;
    assert_eq!(st, 202, "{q}");
    assert_eq!(q["email"], "sam@example.com");
    let mail = eventually(10, "the e-mail", || async { smtp.all().pop() }).await;
    let flat = mail.replace("=\r\n", "");
    assert!(flat.contains("To: sam@example.com"), "{mail}");
    assert!(flat.contains("multipart/alternative"), "{mail}");
    assert!(flat.contains("text/plain"), "{mail}");
    assert!(flat.contains("text/html"), "{mail}");
    assert!(flat.contains("invites you to a video call"), "{mail}");
    assert!(
        flat.contains(link),
        "the customer's link must be in the mail: {mail}"
    );

    // To another address, in German.
    let (st, _) = api
        .post(
            &format!("/api/v1/sessions/{sid}/invite"),
            json!({"email": "kim@example.org", "locale": "de"}),
        )
        .await;
    assert_eq!(st, 202);
    let mail = eventually(10, "the second e-mail", || async {
        let all = smtp.all();
        (all.len() == 2).then(|| all[1].clone())
    })
    .await;
    assert!(mail.contains("To: kim@example.org"), "{mail}");
    assert!(
        mail.contains("Videoanruf") || mail.contains("=?utf-8?"),
        "{mail}"
    );

    let (st, e) = api
        .post(
            &format!("/api/v1/sessions/{sid}/invite"),
            json!({"email": "not-an-address"}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (400, Some("invalid_field")));
    let (_, p) = api
        .get(&format!("/api/v1/deliveries?session_id={sid}"))
        .await;
    let kinds: Vec<_> = p["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].clone())
        .collect();
    assert_eq!(kinds, [json!("email"), json!("email")]);
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn invite_without_mail_configured_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let app = Application::build(config(dir.path())).await.unwrap();
    let api = Api::new(app.base_url(), app.bootstrap_key().unwrap().to_owned());
    let (_, s) = api.post("/api/v1/sessions", session_body("c1", None)).await;
    let (st, e) = api
        .post(
            &format!("/api/v1/sessions/{}/invite", s["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!((st, e["code"].as_str()), (409, Some("mail_not_configured")));
    app.shutdown().await.unwrap();
}
