//! Driving Sightline the way its pages do: a session over the REST API (`media_mode:
//! routed`), invitations, then per participant the join link's `connect`, the signaling
//! WebSocket, and `media_answer`s to the engine's `media_offer`s.

use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use webrtc::peer_connection::PeerConnection;

use crate::peer::{Peer, Rx};

pub struct Sightline {
    http: reqwest::Client,
    base: String,
    key: String,
    pub session: String,
    tokens: Vec<String>,
}

/// A joined page: its engine connection lives in a task that answers offers.
pub struct Page {
    pub rx: Rx,
    pub pc: Arc<dyn PeerConnection>,
    task: tokio::task::JoinHandle<()>,
}

fn token_of(url: &Value) -> anyhow::Result<String> {
    Ok(url
        .as_str()
        .and_then(|u| u.rsplit('/').next())
        .ok_or_else(|| anyhow!("no link in {url}"))?
        .to_owned())
}

impl Sightline {
    /// A routed session with a publisher (the agent) and `subs` more links.
    pub async fn session(base: &str, key: &str, subs: usize) -> anyhow::Result<Sightline> {
        let http = reqwest::Client::new();
        let base = base.trim_end_matches('/').to_owned();
        let v: Value = http
            .post(format!("{base}/api/v1/sessions"))
            .bearer_auth(key)
            .json(&json!({
                "conversation": {"platform": "bench", "id": format!("b-{}", rand::random::<u32>())},
                "agent": {"id": "a-1", "name": "Publisher"},
                "customer": {"name": "Subscriber 0"},
                "media_mode": "routed",
            }))
            .send()
            .await?
            .json()
            .await?;
        let session = v["id"]
            .as_str()
            .ok_or_else(|| anyhow!("create session: {v}"))?
            .to_owned();
        let mut tokens = vec![token_of(&v["agent_url"])?, token_of(&v["customer_url"])?];
        for i in 1..subs {
            let r: Value = http
                .post(format!("{base}/api/v1/sessions/{session}/participants"))
                .bearer_auth(key)
                .json(&json!({"role": "expert", "name": format!("Subscriber {i}")}))
                .send()
                .await?
                .json()
                .await?;
            tokens.push(token_of(&r["join_url"])?);
        }
        tokens.truncate(subs + 1);
        Ok(Sightline {
            http,
            base,
            key: key.to_owned(),
            session,
            tokens,
        })
    }

    /// Joins link `i` (0 = the publisher) with `peer`.
    pub async fn join(&self, i: usize, mut peer: Peer) -> anyhow::Result<Page> {
        let token = self.tokens.get(i).context("no such link")?;
        let v: Value = self
            .http
            .post(format!("{}/api/v1/join/{token}/connect", self.base))
            .send()
            .await?
            .json()
            .await?;
        let ws_url = format!("{}/api/v1/ws", self.base.replacen("http://", "ws://", 1));
        let (mut ws, _) = tokio_tungstenite::connect_async(ws_url).await?;
        let join = json!({"type": "join", "v": 2, "credential": v["credential"], "instance": format!("b{i}")});
        ws.send(Message::text(join.to_string())).await?;
        let rx = peer.rx.clone();
        let pc = peer.pc.clone();
        let task = tokio::spawn(async move {
            while let Some(Ok(m)) = ws.next().await {
                let Message::Text(t) = m else { continue };
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                match v["type"].as_str() {
                    Some("media_offer") => {
                        let Some(sdp) = v["sdp"].as_str() else {
                            continue;
                        };
                        match peer.answer(sdp).await {
                            Ok(answer) => {
                                let msg = json!({"type": "media_answer", "sdp": answer});
                                if ws.send(Message::text(msg.to_string())).await.is_err() {
                                    break;
                                }
                            }
                            Err(e) => eprintln!("answer failed: {e}"),
                        }
                    }
                    Some("error") => eprintln!("signaling error: {v}"),
                    Some("ended") => break,
                    _ => {}
                }
            }
        });
        Ok(Page { rx, pc, task })
    }

    /// Ends the session (everyone leaves the engine).
    pub async fn end(&self) -> anyhow::Result<()> {
        let r = self
            .http
            .post(format!(
                "{}/api/v1/sessions/{}/end",
                self.base, self.session
            ))
            .bearer_auth(&self.key)
            .json(&json!({}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("end session: {}", r.status());
        }
        Ok(())
    }
}

impl Page {
    pub async fn close(self) {
        let _ = self.pc.close().await;
        self.task.abort();
    }
}
