//! The seam between the recorder (media → container bytes) and the storage of the files
//! (keys, encryption, rows). The recorder never sees keys or SQL; storage never sees RTP.

use std::time::SystemTime;

/// A participant's recording span begins (one file per participant and span).
#[derive(Debug, Clone)]
pub struct SpanStart {
    /// Chosen by the recorder (UUID v4, canonical text); becomes the recording's id.
    pub recording_id: String,
    pub session_id: String,
    pub participant_id: String,
    /// Wall-clock time of the file's time zero (for the manifest that syncs files).
    pub started_at: SystemTime,
    /// "video/webm"
    pub content_type: &'static str,
}

/// The span ended (stop, pause, consent withdrawn, participant left, call ended, failure).
#[derive(Debug, Clone)]
pub struct SpanEnd {
    pub duration_ms: u64,
    /// e.g. ["vp8", "opus"]: the tracks actually written.
    pub codecs: Vec<String>,
    /// `None` when it ended normally; otherwise why it stopped early (disk full…).
    pub failure: Option<String>,
}

/// Where a span's container bytes go. Implemented by storage (encrypting, appending).
pub trait SpanWriter: Send {
    /// Buffers bytes (cheap, no I/O required).
    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes everything appended so far durable and readable (called about once a second
    /// and before finish). An error ends the span (e.g. disk full): the call goes on.
    fn flush(&mut self) -> std::io::Result<()>;
    /// Plaintext bytes appended so far.
    fn len(&self) -> u64;
}

/// Opens and closes spans. Implemented by storage (REC-STORE); used by the recorder.
#[async_trait::async_trait]
pub trait SpanStore: Send + Sync + 'static {
    /// Creates the file and its row (status `writing`).
    async fn open(&self, start: SpanStart) -> Result<Box<dyn SpanWriter>, String>;
    /// Flushes, records size/sha256/duration/codecs, marks the row `ready` (or `failed`),
    /// appends `recording.ready` (or `recording.failed`) to the session's timeline.
    async fn finish(
        &self,
        recording_id: &str,
        writer: Box<dyn SpanWriter>,
        end: SpanEnd,
    ) -> Result<(), String>;
}
