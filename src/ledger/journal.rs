//! The durable journal: append-only, checksummed segments of opaque records with group commit.
//!
//! The ledger serializes its own changes; the journal only promises that the bytes of each [`Journal::append`]
//! reach the disk **in the order the calls were made**, and tells each caller when its record is durable.
//!
//! ## How the ledger uses it
//! Enqueue while holding the lock that orders the state changes, await outside it:
//! ```ignore
//! let commit = {
//!     let mut books = self.books.lock();
//!     books.apply(&change);                       // in memory, in lock order
//!     self.journal.append(change.to_bytes())      // enqueued in the same order; no I/O here
//! };
//! commit.await?;                                  // answer "sold" only after this
//! ```
//! A later record is durable only once every earlier one is, so an answer that waited for its own commit
//! never depends on a change a crash can lose. Dropping a [`Commit`] does not withdraw the record: the
//! enqueue is the point of no return.
//!
//! ## Failures
//! A failed write or fsync fails every waiter of its batch and every later call with
//! [`JournalError::Failed`]: after a failed `fdatasync` the kernel may have dropped the dirty pages, so
//! nothing this process writes afterwards can be trusted. A failed commit means *unknown*, not *absent*:
//! part of the batch may be on disk. The ledger should stop taking money and restart; recovery then
//! decides from what is really on disk.
//!
//! ## Snapshots and recovery
//! [`Journal::snapshot`] starts a new segment with the whole state; once it is durable the older segments
//! are deleted, and [`Journal::open`] replays the newest snapshot plus the records after it. On open, a torn
//! final record (cut short, or failing its checksum with nothing valid after it) is dropped with a warning
//! and cut off the file; damage anywhere else makes `open` fail with the file and byte offset. A lock file
//! keeps a second journal (another process) out of the directory.
//!
//! ## Preallocation
//! The writer keeps the open segment extended with written zeroes ahead of its records
//! ([`JournalOptions::preallocate_bytes`] at a time), so a batch's `fdatasync` writes data blocks only: a
//! batch that grew the file would also make it write the inode with the new size, a second synchronous
//! device write per batch (BENCHMARKS.md, `## Journal`). Zeroes after the last record are therefore the
//! normal end of a segment, read without a warning; a segment is full when its *records* reach
//! `segment_bytes`. The price: a growing file's new size reached the disk after its data, so a power cut in
//! the middle of a batch's `fdatasync` could not show a later block of that batch without an earlier one.
//! Over preallocated zeroes it can (the disk may persist the blocks of an unacknowledged batch in any order),
//! and recovery then finds zeroes followed by valid records, which it refuses as damage rather than guess.
//! A process crash cannot cause this (the page cache takes a `write` in order: at worst the batch is cut
//! short, a torn tail), only losing power can.
//!
//! ## Layout
//! - `journal/format.rs` — file names, the segment header and the record frame (the format is written
//!   out there).
//! - `journal/reader.rs` — recovery on open: checks, torn-tail repair, what to replay.
//! - `journal/writer.rs` — the writer thread: batches, segments, snapshots.

mod format;
mod reader;
pub(crate) use reader::lock_dir;
#[cfg(test)]
mod tests;
mod writer;

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use format::Kind;
use writer::{Request, Writer};

/// Called with each record's time from enqueue to durable (for `gavel_journal_commit_seconds`). It runs on
/// the writer thread after the batch is answered, so it must be cheap and must not block.
pub type CommitObserver = Arc<dyn Fn(Duration) + Send + Sync>;

/// How a journal writes.
#[derive(Clone)]
pub struct JournalOptions {
    /// A segment is closed and a new one started once it holds this many bytes.
    pub segment_bytes: u64,
    /// `fdatasync` every batch before answering it. Off only to measure what durability costs: with it off
    /// an answered record can be lost in a crash.
    pub fsync: bool,
    /// Sees every committed record's latency; `None` skips the clock reads.
    pub on_commit: Option<CommitObserver>,
    /// Keeps the open segment extended with written zeroes up to the next multiple of this many bytes past
    /// its records, so that a batch's `fdatasync` writes its data blocks only and not also the file's new
    /// size. 0 grows the file with every batch instead (slower). Files written either way read the same.
    pub preallocate_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions { segment_bytes: 64 << 20, fsync: true, on_commit: None, preallocate_bytes: 1 << 20 }
    }
}

impl fmt::Debug for JournalOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalOptions")
            .field("segment_bytes", &self.segment_bytes)
            .field("fsync", &self.fsync)
            .field("on_commit", &self.on_commit.is_some())
            .field("preallocate_bytes", &self.preallocate_bytes)
            .finish()
    }
}

/// Why the journal could not open, write or close.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JournalError {
    /// An operating-system call failed.
    #[error("journal: could not {action} ({path}): {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: Arc<io::Error>,
    },
    /// The files hold something recovery must not guess about: damage before the final record, a missing
    /// segment, a foreign file.
    #[error("journal file {file} is damaged at byte {offset}: {reason}; start-up stops rather than guess")]
    Corrupt { file: PathBuf, offset: u64, reason: String },
    /// Another open journal (in this process or another) holds the directory.
    #[error("journal directory {0} is in use by another journal (is another Gavel process running?)")]
    InUse(PathBuf),
    /// An earlier write or fsync failed; the journal accepts nothing more until the process restarts.
    #[error("journal stopped after an earlier failure, restart to recover: {0}")]
    Failed(#[source] Arc<JournalError>),
    /// The journal was closed (or its writer is gone); nothing more is written.
    #[error("journal is closed")]
    Closed,
    /// A payload over the format's 4 GiB record limit.
    #[error("journal record of {0} bytes is over the 4 GiB limit")]
    TooLarge(usize),
}

/// What [`Journal::open`] found on disk, to rebuild state from.
#[derive(Debug, Default)]
pub struct Replay {
    /// The newest durable snapshot, if any; `records` follow it.
    pub snapshot: Option<Vec<u8>>,
    /// Every record after the snapshot (or from the start), in append order.
    pub records: Vec<Vec<u8>>,
    /// Repairs made on open (a torn final record dropped, leftover segments removed), for the log.
    pub warnings: Vec<String>,
    /// What recovery read, for the start-up log line.
    pub stats: ReplayStats,
}

/// How much recovery read and how long it took.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayStats {
    /// Segments replayed (from the snapshot's on).
    pub segments: usize,
    /// Bytes read, superseded segments included.
    pub bytes: u64,
    /// Records replayed after the snapshot.
    pub records: usize,
    /// Wall time of recovery, repairs included.
    pub duration: Duration,
}

/// Running totals of the writer, for metrics and for tests that check batching.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct JournalStats {
    /// Batches committed.
    pub batches: u64,
    /// Records (snapshots included) committed.
    pub records: u64,
    /// Bytes written, headers included.
    pub bytes: u64,
    /// `fdatasync` calls on segments.
    pub syncs: u64,
    /// Zeroes written ahead of the records to preallocate segments (not in `bytes`).
    pub preallocated: u64,
}

#[derive(Default)]
struct Counters {
    batches: AtomicU64,
    records: AtomicU64,
    bytes: AtomicU64,
    syncs: AtomicU64,
    preallocated: AtomicU64,
    #[cfg(test)]
    fail_writes: std::sync::atomic::AtomicBool,
}

/// A handle on the journal; clones share one writer.
#[derive(Clone)]
pub struct Journal {
    shared: Arc<Shared>,
}

struct Shared {
    requests: mpsc::Sender<Request>,
    counters: Arc<Counters>,
    timed: bool,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Shared {
    /// The last handle gone: flush what is queued and wait for the writer to let go of the directory lock,
    /// so that reopening the directory in this process right after never finds it still in use.
    fn drop(&mut self) {
        let (done, _) = oneshot::channel();
        let _ = self.requests.send(Request::Close { done });
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Journal {
    /// Opens the journal in `dir` (creating it), recovers it and starts the writer thread. Blocking I/O:
    /// call it at start-up, before serving, or from `spawn_blocking`.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<(Journal, Replay), JournalError> {
        let (replay, tail) = reader::recover(dir, options.fsync)?;
        let counters = Arc::new(Counters::default());
        let timed = options.on_commit.is_some();
        let writer = Writer::new(dir, tail, &options, Arc::clone(&counters))?;
        let (requests, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("gavel-journal".into())
            .spawn(move || writer.run(receiver))
            .map_err(io_error(dir, "start the journal writer thread"))?;
        let shared = Shared { requests, counters, timed, writer: Some(writer) };
        Ok((Journal { shared: Arc::new(shared) }, replay))
    }

    /// Enqueues a record without blocking; the returned [`Commit`] resolves once it is on disk. Records
    /// reach the disk in the order of these calls, so call it under the lock that orders the changes.
    pub fn append(&self, payload: Vec<u8>) -> Commit {
        self.enqueue(Kind::Record, payload)
    }

    /// Resolves once every record enqueued before this call is durable (or with the error that stopped the
    /// writer): for an answer that reports on records it did not write itself.
    pub fn durable(&self) -> Commit {
        let (done, answer) = oneshot::channel();
        match self.shared.requests.send(Request::Barrier { done }) {
            Ok(()) => Commit { state: CommitState::Waiting(answer) },
            Err(_) => Commit::failed(JournalError::Closed),
        }
    }

    /// Enqueues the whole state as of this point in the record order. It starts a new segment; once it is
    /// durable, older segments are deleted, and replay starts from it.
    pub fn snapshot(&self, payload: Vec<u8>) -> Commit {
        self.enqueue(Kind::Snapshot, payload)
    }

    /// Waits for everything enqueued before it to be durable, syncs, and stops the writer. Later calls
    /// fail with [`JournalError::Closed`]; closing twice is `Closed` too.
    pub async fn close(&self) -> Result<(), JournalError> {
        let (done, answer) = oneshot::channel();
        self.shared.requests.send(Request::Close { done }).map_err(|_| JournalError::Closed)?;
        answer.await.unwrap_or(Err(JournalError::Closed))
    }

    /// Totals since open.
    pub fn stats(&self) -> JournalStats {
        let c = &self.shared.counters;
        JournalStats {
            batches: c.batches.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            syncs: c.syncs.load(Ordering::Relaxed),
            preallocated: c.preallocated.load(Ordering::Relaxed),
        }
    }

    fn enqueue(&self, kind: Kind, payload: Vec<u8>) -> Commit {
        if u32::try_from(payload.len()).is_err() {
            return Commit::failed(JournalError::TooLarge(payload.len()));
        }
        let (done, answer) = oneshot::channel();
        let enqueued = self.shared.timed.then(Instant::now);
        match self.shared.requests.send(Request::Write { kind, payload, done, enqueued }) {
            Ok(()) => Commit { state: CommitState::Waiting(answer) },
            Err(_) => Commit::failed(JournalError::Closed),
        }
    }

    #[cfg(test)]
    fn send(&self, request: Request) {
        self.shared.requests.send(request).expect("writer is running");
    }
}

/// Resolves once its record is durable, or with the error that stopped it.
#[must_use = "awaiting the commit is how an answer waits for the disk; dropping it does not withdraw the record"]
pub struct Commit {
    state: CommitState,
}

enum CommitState {
    Waiting(oneshot::Receiver<Result<(), JournalError>>),
    Failed(Option<JournalError>),
}

impl Commit {
    fn failed(error: JournalError) -> Commit {
        Commit { state: CommitState::Failed(Some(error)) }
    }
}

impl Future for Commit {
    type Output = Result<(), JournalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.state {
            // A dropped sender means the writer is gone: closed with this record still queued behind it.
            CommitState::Waiting(answer) => Pin::new(answer).poll(cx).map(|r| r.unwrap_or(Err(JournalError::Closed))),
            CommitState::Failed(error) => Poll::Ready(Err(error.take().unwrap_or(JournalError::Closed))),
        }
    }
}

/// Wraps an `io::Error` with the path and what was being done.
fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> JournalError {
    let path = path.to_path_buf();
    move |source| JournalError::Io { path, action, source: Arc::new(source) }
}

/// Makes the directory's entries (new or removed segments) durable.
fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir, "fsync the journal directory"))
}
