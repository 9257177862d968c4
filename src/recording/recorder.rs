//! The recorder: one task that turns the engine's tapped RTP into one WebM file per
//! participant and span, through the storage's [`SpanStore`].
//!
//! [`Recorder::set`] turns a participant's recording on or off (and tells the engine). A
//! span opens when its file has a first frame (the first video key frame, or the first
//! audio of a participant without video), is flushed about once a second, and ends on
//! `off`, when the participant's connection ends (a reconnection starts a new span), on a
//! write error (the span ends with its failure; the call goes on) and at
//! [`Recorder::stop_all`]. Every end calls [`SpanStore::finish`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;

use super::contract::{SpanEnd, SpanStart, SpanStore, SpanWriter};
use super::mux::SpanMuxer;
use crate::media::{Command, MediaEngine, Tapped};

/// Writes are made durable at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// How often idle spans are looked at (audio-only start, flushes).
const TICK: Duration = Duration::from_millis(250);
/// A key frame is asked for again at most this often while the video needs one.
const KEY_FRAME_ASK_EVERY: Duration = Duration::from_secs(2);
/// Tapped packets buffered between the engine and the recorder.
pub const TAP_CAPACITY: usize = 8192;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecorderError {
    #[error("the media engine refused: {0}")]
    Engine(String),
    #[error("the recorder has stopped")]
    Stopped,
}

/// What the recorder needs of the media engine: turning a participant's tap on or off.
#[async_trait::async_trait]
pub trait EngineTap: Send + Sync + 'static {
    async fn record(&self, call: &str, participant: &str, on: bool) -> Result<(), String>;
}

#[async_trait::async_trait]
impl EngineTap for MediaEngine {
    async fn record(&self, call: &str, participant: &str, on: bool) -> Result<(), String> {
        self.command(Command::Record {
            call: call.to_owned(),
            participant: participant.to_owned(),
            on,
        })
        .await
        .map_err(|e| e.to_string())
    }
}

enum Ctl {
    Set {
        session: String,
        participant: String,
        on: bool,
        done: oneshot::Sender<Result<(), RecorderError>>,
    },
    StopAll(oneshot::Sender<()>),
}

/// Handle to the recorder's task. Cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Ctl>,
}

impl Recorder {
    /// Starts the recorder on the engine's tap.
    pub async fn start(engine: &MediaEngine, store: Arc<dyn SpanStore>) -> Recorder {
        let rx = engine.tap(TAP_CAPACITY).await;
        Self::spawn(Arc::new(engine.clone()), rx, store)
    }

    /// Starts the recorder on any tap (tests give their own).
    pub fn spawn(
        engine: Arc<dyn EngineTap>,
        tapped: mpsc::Receiver<Tapped>,
        store: Arc<dyn SpanStore>,
    ) -> Recorder {
        let (tx, rx) = mpsc::channel(256);
        let task = Task {
            engine,
            store,
            spans: HashMap::new(),
            finishing: JoinSet::new(),
        };
        tokio::spawn(task.run(rx, tapped));
        Recorder { tx }
    }

    /// Records (`on`) or stops recording a participant of a session (a routed call).
    pub async fn set(
        &self,
        session_id: &str,
        participant_id: &str,
        on: bool,
    ) -> Result<(), RecorderError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Ctl::Set {
                session: session_id.to_owned(),
                participant: participant_id.to_owned(),
                on,
                done,
            })
            .await
            .map_err(|_| RecorderError::Stopped)?;
        rx.await.map_err(|_| RecorderError::Stopped)?
    }

    /// Ends every span (each is finished in storage) and returns when all are.
    pub async fn stop_all(&self) {
        let (done, rx) = oneshot::channel();
        if self.tx.send(Ctl::StopAll(done)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

type Key = (String, String);

struct Open {
    id: String,
    writer: Box<dyn SpanWriter>,
    flushed: Instant,
    dirty: bool,
}

/// A participant being recorded: the muxer of its current span and, once the file has
/// begun, the storage writer.
struct Span {
    muxer: SpanMuxer,
    open: Option<Open>,
    asked_key: Option<Instant>,
}

impl Span {
    fn new() -> Span {
        Span {
            muxer: SpanMuxer::new(),
            open: None,
            asked_key: None,
        }
    }
}

struct Task {
    engine: Arc<dyn EngineTap>,
    store: Arc<dyn SpanStore>,
    spans: HashMap<Key, Span>,
    finishing: JoinSet<()>,
}

impl Task {
    async fn run(mut self, mut ctl: mpsc::Receiver<Ctl>, mut tapped: mpsc::Receiver<Tapped>) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tap_open = true;
        loop {
            tokio::select! {
                c = ctl.recv() => match c {
                    Some(Ctl::Set { session, participant, on, done }) => {
                        let r = self.set((session, participant), on).await;
                        let _ = done.send(r);
                    }
                    Some(Ctl::StopAll(done)) => {
                        self.end_all().await;
                        let _ = done.send(());
                    }
                    None => break,
                },
                t = tapped.recv(), if tap_open => match t {
                    Some(Tapped::Packet(r)) => {
                        let key = (r.call, r.participant);
                        let Some(span) = self.spans.get_mut(&key) else {
                            continue;
                        };
                        span.muxer.push(r.kind, &r.packet, r.at);
                        self.after_input(&key).await;
                    }
                    Some(Tapped::Gone { call, participant }) => {
                        let key = (call, participant);
                        if self.spans.contains_key(&key) {
                            // Recording stays on: a new connection starts a new span.
                            self.end(&key, None, true);
                        }
                    }
                    None => {
                        tracing::warn!("the media engine's tap closed: recordings end");
                        tap_open = false;
                        self.end_all().await;
                    }
                },
                _ = tick.tick() => {
                    while self.finishing.try_join_next().is_some() {}
                    let now = Instant::now();
                    let keys: Vec<Key> = self.spans.keys().cloned().collect();
                    for key in keys {
                        if let Some(span) = self.spans.get_mut(&key) {
                            span.muxer.tick(now);
                        }
                        self.after_input(&key).await;
                    }
                }
            }
        }
        self.end_all().await;
    }

    async fn set(&mut self, key: Key, on: bool) -> Result<(), RecorderError> {
        if on {
            self.engine
                .record(&key.0, &key.1, true)
                .await
                .map_err(RecorderError::Engine)?;
            self.spans.entry(key).or_insert_with(Span::new);
            return Ok(());
        }
        if self.spans.contains_key(&key) {
            self.end(&key, None, false);
        }
        self.engine
            .record(&key.0, &key.1, false)
            .await
            .map_err(RecorderError::Engine)
    }

    /// After the muxer took input or time: open the span once the file begins, append
    /// its bytes, flush when due, ask for key frames, and end on a write error.
    async fn after_input(&mut self, key: &Key) {
        let Some(span) = self.spans.get_mut(key) else {
            return;
        };
        let now = Instant::now();
        if span.muxer.wants_key_frame()
            && span
                .asked_key
                .is_none_or(|t| now.duration_since(t) >= KEY_FRAME_ASK_EVERY)
        {
            span.asked_key = Some(now);
            let engine = self.engine.clone();
            let (call, participant) = key.clone();
            tokio::spawn(async move {
                let _ = engine.record(&call, &participant, true).await;
            });
        }
        let bytes = span.muxer.take();
        if !bytes.is_empty() && span.open.is_none() {
            let Some(zero) = span.muxer.started() else {
                return;
            };
            let started_at = SystemTime::now()
                .checked_sub(now.saturating_duration_since(zero))
                .unwrap_or_else(SystemTime::now);
            let id = uuid::Uuid::new_v4().to_string();
            let start = SpanStart {
                recording_id: id.clone(),
                session_id: key.0.clone(),
                participant_id: key.1.clone(),
                started_at,
                content_type: "video/webm",
            };
            match self.store.open(start).await {
                Ok(writer) => {
                    tracing::info!(session_id = %key.0, participant_id = %key.1, recording_id = %id, "recording span started");
                    if let Some(span) = self.spans.get_mut(key) {
                        span.open = Some(Open {
                            id,
                            writer,
                            flushed: now,
                            dirty: false,
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(session_id = %key.0, participant_id = %key.1, error = %e, "a recording span could not be opened: this participant is not recorded");
                    self.spans.remove(key);
                    self.tap_off(key);
                    return;
                }
            }
        }
        let Some(span) = self.spans.get_mut(key) else {
            return;
        };
        let late_video = span.muxer.late_video();
        let Some(open) = span.open.as_mut() else {
            return;
        };
        let mut result = Ok(());
        if !bytes.is_empty() {
            result = open.writer.append(&bytes);
            open.dirty = true;
        }
        if result.is_ok() && open.dirty && now.duration_since(open.flushed) >= FLUSH_EVERY {
            result = open.writer.flush();
            open.flushed = now;
            open.dirty = false;
        }
        if let Err(e) = result {
            tracing::warn!(session_id = %key.0, participant_id = %key.1, error = %e, "recording write failed: the span ends");
            self.end(key, Some(format!("write failed: {e}")), false);
            self.tap_off(key);
        } else if late_video {
            // The participant started sending video into an audio-only file: a new span
            // (with both tracks) begins at its next key frame.
            self.end(key, None, true);
        }
    }

    /// Ends a participant's current span (finishing it in storage, in the background).
    /// With `again`, recording goes on in a new span.
    fn end(&mut self, key: &Key, failure: Option<String>, again: bool) {
        let Some(mut span) = self.spans.remove(key) else {
            return;
        };
        if again {
            self.spans.insert(key.clone(), Span::new());
        }
        let Some(mut open) = span.open.take() else {
            return;
        };
        let rest = span.muxer.take();
        let mut failure = failure;
        if failure.is_none()
            && !rest.is_empty()
            && let Err(e) = open.writer.append(&rest)
        {
            failure = Some(format!("write failed: {e}"));
        }
        let end = SpanEnd {
            duration_ms: span.muxer.duration_ms(),
            codecs: span.muxer.codecs(),
            failure,
        };
        let store = self.store.clone();
        let (session, participant) = key.clone();
        self.finishing.spawn(async move {
            let id = open.id;
            if let Err(e) = store.finish(&id, open.writer, end).await {
                tracing::warn!(session_id = %session, participant_id = %participant, recording_id = %id, error = %e, "finishing a recording span failed");
            } else {
                tracing::info!(session_id = %session, participant_id = %participant, recording_id = %id, "recording span finished");
            }
        });
    }

    fn tap_off(&self, key: &Key) {
        let engine = self.engine.clone();
        let (call, participant) = key.clone();
        tokio::spawn(async move {
            let _ = engine.record(&call, &participant, false).await;
        });
    }

    async fn end_all(&mut self) {
        let keys: Vec<Key> = self.spans.keys().cloned().collect();
        for key in keys {
            self.end(&key, None, false);
            self.tap_off(&key);
        }
        while self.finishing.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests;
