//! Driving Janus's VideoRoom plugin over its plain HTTP transport: one Janus session, one
//! plugin handle per participant, events by long poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub struct Janus {
    http: reqwest::Client,
    base: String,
    session: u64,
    handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>>,
    poller: tokio::task::JoinHandle<()>,
}

pub struct Handle {
    pub id: u64,
    events: mpsc::UnboundedReceiver<Value>,
}

fn tx() -> String {
    format!("t{}", rand::random::<u64>())
}

impl Janus {
    pub async fn connect(base: &str) -> anyhow::Result<Janus> {
        let http = reqwest::Client::new();
        let base = base.trim_end_matches('/').to_owned();
        let v: Value = http
            .post(&base)
            .json(&json!({"janus": "create", "transaction": tx()}))
            .send()
            .await?
            .json()
            .await?;
        let session = v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("create session: {v}"))?;
        let handles: Arc<Mutex<HashMap<u64, mpsc::UnboundedSender<Value>>>> = Arc::default();
        let poll_url = format!("{base}/{session}?maxev=20");
        let (h, c) = (handles.clone(), http.clone());
        let poller = tokio::spawn(async move {
            loop {
                let Ok(r) = c.get(&poll_url).send().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(v) = r.json::<Value>().await else {
                    continue;
                };
                let events = match v {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                for e in events {
                    let Some(sender) = e["sender"].as_u64() else {
                        continue;
                    };
                    if let Ok(map) = h.lock()
                        && let Some(tx) = map.get(&sender)
                    {
                        let _ = tx.send(e);
                    }
                }
            }
        });
        Ok(Janus {
            http,
            base,
            session,
            handles,
            poller,
        })
    }

    pub async fn attach(&self) -> anyhow::Result<Handle> {
        let v = self
            .post(
                &format!("{}/{}", self.base, self.session),
                json!({"janus": "attach", "plugin": "janus.plugin.videoroom", "transaction": tx()}),
            )
            .await?;
        let id = v["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("attach: {v}"))?;
        let (etx, events) = mpsc::unbounded_channel();
        if let Ok(mut map) = self.handles.lock() {
            map.insert(id, etx);
        }
        Ok(Handle { id, events })
    }

    async fn post(&self, url: &str, body: Value) -> anyhow::Result<Value> {
        let v: Value = self.http.post(url).json(&body).send().await?.json().await?;
        if v["janus"] == "error" {
            bail!("janus error: {v}");
        }
        Ok(v)
    }

    /// A plugin message; returns the synchronous answer (`success` or `ack`).
    pub async fn message(
        &self,
        h: &Handle,
        body: Value,
        jsep: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut m = json!({"janus": "message", "transaction": tx(), "body": body});
        if let Some(j) = jsep {
            m["jsep"] = j;
        }
        let v = self
            .post(&format!("{}/{}/{}", self.base, self.session, h.id), m)
            .await?;
        if let Some(err) = v["plugindata"]["data"]["error"].as_str() {
            bail!("videoroom: {err}");
        }
        Ok(v)
    }

    /// Tells Janus the client's candidates are all in its SDP.
    pub async fn trickle_done(&self, h: &Handle) -> anyhow::Result<()> {
        self.post(
            &format!("{}/{}/{}", self.base, self.session, h.id),
            json!({"janus": "trickle", "transaction": tx(), "candidate": {"completed": true}}),
        )
        .await
        .map(|_| ())
    }

    pub async fn detach(&self, h: &Handle) {
        let _ = self
            .post(
                &format!("{}/{}/{}", self.base, self.session, h.id),
                json!({"janus": "detach", "transaction": tx()}),
            )
            .await;
        if let Ok(mut map) = self.handles.lock() {
            map.remove(&h.id);
        }
    }

    pub async fn destroy(self) {
        let _ = self
            .post(
                &format!("{}/{}", self.base, self.session),
                json!({"janus": "destroy", "transaction": tx()}),
            )
            .await;
        self.poller.abort();
    }
}

impl Handle {
    /// Waits for a core event such as `webrtcup` (DTLS done, media may flow).
    pub async fn core_event(&mut self, kind: &str, limit: Duration) -> anyhow::Result<()> {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let e = tokio::time::timeout_at(end, self.events.recv())
                .await
                .with_context(|| format!("timed out waiting for Janus's {kind}"))?
                .ok_or_else(|| anyhow!("event channel closed"))?;
            if e["janus"] == kind {
                return Ok(());
            }
        }
    }

    /// The next plugin event carrying a JSEP (an answer or an offer), skipping others.
    pub async fn jsep_event(&mut self, limit: Duration) -> anyhow::Result<(Value, Value)> {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let e = tokio::time::timeout_at(end, self.events.recv())
                .await
                .context("timed out waiting for a Janus event")?
                .ok_or_else(|| anyhow!("event channel closed"))?;
            if let Some(err) = e["plugindata"]["data"]["error"].as_str() {
                bail!("videoroom: {err}");
            }
            if e.get("jsep").is_some() {
                return Ok((e["plugindata"]["data"].clone(), e["jsep"].clone()));
            }
        }
    }
}
