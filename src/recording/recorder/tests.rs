use std::sync::Mutex;

use super::*;
use crate::media::{Kind, Recorded};

#[derive(Default)]
struct FakeEngine {
    calls: Mutex<Vec<(String, String, bool)>>,
}

#[async_trait::async_trait]
impl EngineTap for FakeEngine {
    async fn record(&self, call: &str, participant: &str, on: bool) -> Result<(), String> {
        if participant == "refused" {
            return Err("no".into());
        }
        if let Ok(mut c) = self.calls.lock() {
            c.push((call.to_owned(), participant.to_owned(), on));
        }
        Ok(())
    }
}

#[derive(Default)]
struct Files {
    /// id → (start, bytes durable, bytes appended)
    spans: HashMap<String, (SpanStart, Vec<u8>, Vec<u8>)>,
    finished: Vec<(String, SpanEnd)>,
}

#[derive(Default, Clone)]
struct MemStore {
    files: Arc<Mutex<Files>>,
    /// Appends fail after this many bytes (a full disk).
    limit: Option<usize>,
}

struct MemWriter {
    id: String,
    files: Arc<Mutex<Files>>,
    limit: Option<usize>,
}

impl SpanWriter for MemWriter {
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut f = self
            .files
            .lock()
            .map_err(|_| std::io::Error::other("lock"))?;
        let span = f
            .spans
            .get_mut(&self.id)
            .ok_or(std::io::Error::other("gone"))?;
        if self.limit.is_some_and(|l| span.2.len() + bytes.len() > l) {
            return Err(std::io::Error::other("no space left on device"));
        }
        span.2.extend_from_slice(bytes);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        let mut f = self
            .files
            .lock()
            .map_err(|_| std::io::Error::other("lock"))?;
        let span = f
            .spans
            .get_mut(&self.id)
            .ok_or(std::io::Error::other("gone"))?;
        span.1 = span.2.clone();
        Ok(())
    }
    fn len(&self) -> u64 {
        self.files
            .lock()
            .ok()
            .and_then(|f| f.spans.get(&self.id).map(|s| s.2.len() as u64))
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl SpanStore for MemStore {
    async fn open(&self, start: SpanStart) -> Result<Box<dyn SpanWriter>, String> {
        let id = start.recording_id.clone();
        self.files
            .lock()
            .map_err(|e| e.to_string())?
            .spans
            .insert(id.clone(), (start, Vec::new(), Vec::new()));
        Ok(Box::new(MemWriter {
            id,
            files: self.files.clone(),
            limit: self.limit,
        }))
    }
    async fn finish(
        &self,
        recording_id: &str,
        mut writer: Box<dyn SpanWriter>,
        end: SpanEnd,
    ) -> Result<(), String> {
        let _ = writer.flush();
        self.files
            .lock()
            .map_err(|e| e.to_string())?
            .finished
            .push((recording_id.to_owned(), end));
        Ok(())
    }
}

fn audio(call: &str, participant: &str, n: u32, at: Instant) -> Tapped {
    Tapped::Packet(Recorded {
        call: call.to_owned(),
        participant: participant.to_owned(),
        kind: Kind::Audio,
        packet: rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                ssrc: 1,
                sequence_number: n as u16,
                timestamp: n * 960,
                ..Default::default()
            },
            payload: vec![0xfc, 0xff, 0xfe].into(),
        },
        at: at + Duration::from_millis(20 * u64::from(n)),
    })
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn setup(store: MemStore) -> (Recorder, Arc<FakeEngine>, mpsc::Sender<Tapped>) {
    let engine = Arc::new(FakeEngine::default());
    let (tx, rx) = mpsc::channel(1024);
    let r = Recorder::spawn(engine.clone(), rx, Arc::new(store));
    (r, engine, tx)
}

#[tokio::test]
async fn a_span_opens_with_its_first_frames_and_finishes_on_off() {
    let store = MemStore::default();
    let (rec, engine, tx) = setup(store.clone());
    rec.set("s1", "p1", true).await.expect("on");
    let t0 = Instant::now();
    // Packets of someone not recorded are ignored.
    tx.send(audio("s1", "other", 0, t0)).await.expect("send");
    for n in 0..200 {
        tx.send(audio("s1", "p1", n, t0)).await.expect("send");
    }
    until("every packet to be taken", || {
        tx.capacity() == tx.max_capacity()
    })
    .await;
    until("the span to open", || {
        store
            .files
            .lock()
            .map(|f| f.spans.len() == 1)
            .unwrap_or(false)
    })
    .await;
    rec.set("s1", "p1", false).await.expect("off");
    until("the span to finish", || {
        store
            .files
            .lock()
            .map(|f| f.finished.len() == 1)
            .unwrap_or(false)
    })
    .await;
    let f = store.files.lock().expect("lock");
    let (id, end) = &f.finished[0];
    let (start, durable, _) = &f.spans[id];
    assert_eq!(
        (start.session_id.as_str(), start.participant_id.as_str()),
        ("s1", "p1")
    );
    assert_eq!(start.content_type, "video/webm");
    assert!(uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 4));
    assert_eq!(end.codecs, ["opus"]);
    assert_eq!(end.failure, None);
    assert!(
        (3900..=4000).contains(&end.duration_ms),
        "{}",
        end.duration_ms
    );
    assert_eq!(&durable[..4], [0x1a, 0x45, 0xdf, 0xa3], "flushed at finish");
    let calls = engine.calls.lock().expect("lock").clone();
    assert_eq!(calls.first(), Some(&("s1".into(), "p1".into(), true)));
    assert_eq!(calls.last(), Some(&("s1".into(), "p1".into(), false)));
}

#[tokio::test]
async fn a_reconnection_ends_the_span_and_the_next_connection_starts_another() {
    let store = MemStore::default();
    let (rec, _engine, tx) = setup(store.clone());
    rec.set("s", "p", true).await.expect("on");
    let t0 = Instant::now();
    for n in 0..150 {
        tx.send(audio("s", "p", n, t0)).await.expect("send");
    }
    tx.send(Tapped::Gone {
        call: "s".into(),
        participant: "p".into(),
    })
    .await
    .expect("send");
    until("the first span to finish", || {
        store
            .files
            .lock()
            .map(|f| f.finished.len() == 1)
            .unwrap_or(false)
    })
    .await;
    let t1 = Instant::now();
    for n in 0..150 {
        tx.send(audio("s", "p", n, t1)).await.expect("send");
    }
    rec.stop_all().await;
    let f = store.files.lock().expect("lock");
    assert_eq!(f.finished.len(), 2, "two spans, both finished by stop_all");
    assert_ne!(f.finished[0].0, f.finished[1].0);
}

#[tokio::test]
async fn a_write_error_ends_the_span_with_its_failure_and_stops_the_tap() {
    let store = MemStore {
        limit: Some(2000),
        ..Default::default()
    };
    let (rec, engine, tx) = setup(store.clone());
    rec.set("s", "p", true).await.expect("on");
    let t0 = Instant::now();
    for n in 0..1000 {
        if tx.send(audio("s", "p", n, t0)).await.is_err() {
            break;
        }
    }
    until("the failed span", || {
        store
            .files
            .lock()
            .map(|f| f.finished.len() == 1)
            .unwrap_or(false)
    })
    .await;
    let failure = store.files.lock().expect("lock").finished[0]
        .1
        .failure
        .clone();
    assert!(failure.is_some_and(|f| f.contains("no space left")));
    until("the tap to be turned off", || {
        engine
            .calls
            .lock()
            .map(|c| c.last() == Some(&("s".into(), "p".into(), false)))
            .unwrap_or(false)
    })
    .await;
    // The recorder itself goes on.
    assert!(rec.set("s", "q", true).await.is_ok());
    assert_eq!(
        rec.set("s", "refused", true).await,
        Err(RecorderError::Engine("no".into()))
    );
}
