//! WAL checkpoints off the write path (SQLite).
//!
//! With SQLite's own automatic checkpoints, the commit that brings the WAL past 1,000
//! pages copies them into the database file and syncs both files before it returns, and
//! every write queued behind that commit waits for the two syncs. Under a steady stream of
//! session creates that was several checkpoints a second, each holding the single writer
//! for 5–20 ms (far more on a slow disk): most of the API's p99.
//!
//! Here every connection of the process turns automatic checkpoints off
//! (`wal_autocheckpoint = 0` in `storage::SQLITE_PRAGMAS`) and one thread with a
//! connection of its own runs a PASSIVE checkpoint every [`INTERVAL`]. A passive
//! checkpoint takes no write lock, so writers keep committing while it copies and syncs.
//!
//! A WAL file starts over from its beginning only when a write begins while every frame
//! in it has been copied back, and under constant writes the background checkpoint never
//! quite catches up. So once the WAL holds [`RESET_FRAMES`] frames, the checkpointer
//! catches up as far as it can without blocking anybody, then takes the database's write
//! gate (the in-process queue every writer of this process waits in) for one last, short
//! checkpoint of the few frames written meanwhile; the next write then restarts the WAL.
//! Writers wait for one small checkpoint per [`RESET_FRAMES`] frames instead of a large
//! one per 1,000.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::sqlite_writer::{Gate, WriterError};

/// How often the background checkpoint runs.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// WAL length (in frames, one page each) at which the checkpointer makes the WAL restart.
/// 32,768 frames of 4 KiB pages are ~128 MiB; `journal_size_limit` is twice that, so a
/// restarting WAL is reused in place rather than truncated and grown again. (A WAL
/// restart costs writers one short wait; the larger the WAL may grow, the rarer the
/// waits: at 8,192 frames they came several times a second under full load.)
pub const RESET_FRAMES: i64 = 32768;
/// Frames left to copy that are small enough to copy while holding the write gate.
const SMALL_REMAINDER: i64 = 256;
/// Catch-up passes outside the gate before it is taken anyway.
const CATCH_UP_PASSES: usize = 4;

/// What one `PRAGMA wal_checkpoint` reported. A checkpoint copies the WAL as it was
/// when it began, so `copied` equals `frames` whenever nobody stopped it; what writers
/// appended meanwhile shows only in the next checkpoint's `frames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Frames in the WAL (`-1` when the database is not in WAL mode).
    pub frames: i64,
    /// Frames of those already copied into the database file.
    pub copied: i64,
}

/// What a cycle should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing more until the next interval.
    Wait,
    /// Checkpoint again without the gate: writers appended much during the last one.
    CatchUp,
    /// Take the write gate for a last short checkpoint, so the WAL restarts.
    Reset,
}

/// The decision after a checkpoint of a cycle (pure: tested below). `before` is what the
/// previous checkpoint of this cycle reported, `passes` how many ran in it so far, and
/// `reset_at` the WAL length at the last gated checkpoint (a WAL that has not grown since
/// needs none: it restarts at the next write by itself).
pub fn next(
    before: Option<Progress>,
    now: Progress,
    passes: usize,
    reset_at: i64,
    reset_frames: i64,
) -> Next {
    if now.frames < reset_frames || now.frames == reset_at {
        return Next::Wait;
    }
    // Frames appended while the previous checkpoint ran (unknown after the first).
    let appended = match before {
        Some(b) if now.frames >= b.frames => now.frames - b.frames,
        Some(_) => return Next::Wait, // the WAL restarted in between
        None => i64::MAX,
    };
    if appended > SMALL_REMAINDER && passes < CATCH_UP_PASSES {
        Next::CatchUp
    } else {
        Next::Reset
    }
}

/// The background checkpointer of one database file. Stops (after a last checkpoint)
/// when dropped.
pub struct Checkpointer {
    _stop: mpsc::Sender<()>,
}

impl Checkpointer {
    /// Opens a connection of its own to `file` and starts the thread. `gate` is the
    /// file's write gate; `observe` is told how long each checkpoint took and whether it
    /// held the gate.
    pub fn start(
        file: &Path,
        gate: Gate,
        observe: impl Fn(Duration, bool) + Send + 'static,
    ) -> Result<Self, WriterError> {
        Self::start_with(file, gate, RESET_FRAMES, observe)
    }

    /// [`Checkpointer::start`] with another WAL length for restarts (tests).
    pub fn start_with(
        file: &Path,
        gate: Gate,
        reset_frames: i64,
        observe: impl Fn(Duration, bool) + Send + 'static,
    ) -> Result<Self, WriterError> {
        let conn = super::sqlite_writer::open_connection(file)?;
        let (stop, stopped) = mpsc::channel::<()>();
        let file: PathBuf = file.to_owned();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || {
                let mut failing = false;
                let mut reset_at = -1;
                // Until the owner drops its end of the channel.
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(INTERVAL) {
                    match cycle(&conn, &gate, &mut reset_at, reset_frames, &observe) {
                        Ok(()) => failing = false,
                        // Logged once per failing stretch, not every 50 ms.
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!(error = %e, file = %file.display(), "WAL checkpoint failed");
                        }
                        Err(_) => {}
                    }
                }
                let _ = checkpoint(&conn);
            })
            .map_err(|e| WriterError::Thread(e.to_string()))?;
        Ok(Self { _stop: stop })
    }
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: copies what it can without waiting for anybody.
pub fn checkpoint(conn: &rusqlite::Connection) -> Result<Progress, WriterError> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Progress {
            frames: r.get(1)?,
            copied: r.get(2)?,
        })
    })?)
}

fn cycle(
    conn: &rusqlite::Connection,
    gate: &Gate,
    reset_at: &mut i64,
    reset_frames: i64,
    observe: &impl Fn(Duration, bool),
) -> Result<(), WriterError> {
    let mut passes = 0;
    let mut before = None;
    loop {
        let started = Instant::now();
        let p = checkpoint(conn)?;
        passes += 1;
        if p.copied > 0 {
            observe(started.elapsed(), false);
        }
        match next(before, p, passes, *reset_at, reset_frames) {
            Next::Wait => return Ok(()),
            Next::CatchUp => before = Some(p),
            Next::Reset => {
                // A plain thread (never a runtime's), so blocking here is fine.
                let _gate = gate.blocking_lock();
                let started = Instant::now();
                let last = checkpoint(conn)?;
                observe(started.elapsed(), true);
                *reset_at = last.frames;
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(frames: i64, copied: i64) -> Progress {
        Progress { frames, copied }
    }

    #[test]
    fn a_short_wal_is_left_to_the_next_interval() {
        assert_eq!(next(None, p(0, 0), 1, -1, RESET_FRAMES), Next::Wait);
        assert_eq!(next(None, p(-1, -1), 1, -1, RESET_FRAMES), Next::Wait);
        assert_eq!(
            next(
                None,
                p(RESET_FRAMES - 1, RESET_FRAMES - 1),
                1,
                -1,
                RESET_FRAMES
            ),
            Next::Wait
        );
    }

    #[test]
    fn a_long_wal_is_caught_up_outside_the_gate_then_reset_under_it() {
        let long = p(RESET_FRAMES, RESET_FRAMES);
        assert_eq!(next(None, long, 1, -1, RESET_FRAMES), Next::CatchUp);
        // The catch-up found many new frames: once more; then few: reset.
        let grown = p(RESET_FRAMES + 1000, RESET_FRAMES + 1000);
        assert_eq!(next(Some(long), grown, 2, -1, RESET_FRAMES), Next::CatchUp);
        let few = p(RESET_FRAMES + 1010, RESET_FRAMES + 1010);
        assert_eq!(next(Some(grown), few, 3, -1, RESET_FRAMES), Next::Reset);
        // Writers that outrun the copying do not keep the reset away for ever.
        let far = p(4 * RESET_FRAMES, 4 * RESET_FRAMES);
        assert_eq!(
            next(Some(long), far, CATCH_UP_PASSES, -1, RESET_FRAMES),
            Next::Reset
        );
    }

    #[test]
    fn a_wal_that_restarted_or_did_not_grow_since_its_reset_needs_no_gate() {
        let long = p(RESET_FRAMES + 5, RESET_FRAMES + 5);
        assert_eq!(next(Some(long), p(10, 10), 2, -1, RESET_FRAMES), Next::Wait);
        assert_eq!(
            next(None, long, 1, RESET_FRAMES + 5, RESET_FRAMES),
            Next::Wait
        );
        assert_eq!(
            next(
                None,
                p(RESET_FRAMES + 6, RESET_FRAMES + 6),
                1,
                RESET_FRAMES + 5,
                RESET_FRAMES
            ),
            Next::CatchUp
        );
    }

    fn setup() -> (tempfile::TempDir, PathBuf, rusqlite::Connection) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.db");
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE t(x BLOB);")
            .unwrap();
        drop(conn);
        let w = super::super::sqlite_writer::open_connection(&file).unwrap();
        (dir, file, w)
    }

    fn insert_rows(w: &rusqlite::Connection, n: usize) {
        w.execute_batch("BEGIN").unwrap();
        for _ in 0..n {
            w.execute("INSERT INTO t VALUES (randomblob(3000))", [])
                .unwrap();
        }
        w.execute_batch("COMMIT").unwrap();
    }

    fn wal_frames(file: &Path) -> i64 {
        let c = rusqlite::Connection::open(file).unwrap();
        checkpoint(&c).unwrap().frames
    }

    #[test]
    fn connections_leave_checkpoints_to_the_checkpointer() {
        let (_dir, file, w) = setup();
        insert_rows(&w, 3000);
        insert_rows(&w, 1);
        // With SQLite's automatic checkpoint, the first commit would have copied the WAL
        // (it passed 1,000 frames) and the second would have started it over.
        let frames = wal_frames(&file);
        assert!(frames >= 3000, "WAL holds {frames} frames");
    }

    #[test]
    fn the_checkpointer_copies_in_the_background_and_makes_a_long_wal_restart() {
        let (_dir, file, w) = setup();
        let gated = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = gated.clone();
        let reset = 2000;
        let c = Checkpointer::start_with(&file, Gate::default(), reset, move |_, under_gate| {
            if under_gate {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        })
        .unwrap();
        // Write past the reset length, then wait (with a deadline) for the gated catch-up.
        let rows = reset as usize + 500;
        insert_rows(&w, rows);
        let deadline = Instant::now() + Duration::from_secs(20);
        while gated.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "no catch-up under the gate");
            std::thread::sleep(Duration::from_millis(10));
        }
        // Everything was copied, so the next write starts the WAL over from frame 1.
        insert_rows(&w, 1);
        let frames = wal_frames(&file);
        assert!(frames < 50, "WAL did not restart: {frames} frames");
        let count: i64 = w
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count as usize, rows + 1);
        drop(c);
    }
}
