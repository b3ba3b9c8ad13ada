//! The single writer: group commit on a dedicated OS thread.
//!
//! A plain thread rather than a tokio task because `fdatasync` blocks for hundreds of microseconds; on a
//! runtime worker it would stall every auction queued behind it, and `spawn_blocking` would add a hop per
//! batch. The thread sleeps in `recv` when there is nothing to write.

use std::fs::{File, OpenOptions};
use std::mem;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::format::{self, Kind, FRAME_LEN};
use super::reader::Tail;
use super::{io_error, sync_dir, CommitObserver, Counters, JournalError, JournalOptions};

/// Stops draining the channel once a batch holds this much, so one batch's latency stays bounded when
/// producers outpace the disk.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// What segments are preallocated with, a piece at a time (a static buffer, so a large step allocates nothing).
static ZEROES: [u8; 64 << 10] = [0; 64 << 10];

/// The answer a waiter gets.
pub(super) type Done = oneshot::Sender<Result<(), JournalError>>;

/// What the handles send to the writer.
pub(super) enum Request {
    Write {
        kind: Kind,
        payload: Vec<u8>,
        done: Done,
        enqueued: Option<Instant>,
    },
    /// Answered once everything enqueued before it is durable; writes nothing.
    Barrier {
        done: Done,
    },
    Close {
        done: Done,
    },
    /// Holds the writer until the sender side is dropped, so a test can queue a batch deterministically.
    #[cfg(test)]
    Pause(std::sync::mpsc::Receiver<()>),
}

/// The writer's state: the open segment and where the journal stands.
pub(super) struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    /// Zeroes to keep written ahead of the records, in steps of this many bytes; 0 grows the file instead.
    preallocate_bytes: u64,
    fsync: bool,
    observer: Option<CommitObserver>,
    counters: Arc<Counters>,
    file: File,
    /// Live segments, oldest first; the last is `file`.
    segments: Vec<(u64, PathBuf)>,
    /// Bytes of the open segment's header and records already written: where the next batch goes.
    segment_len: u64,
    /// Size of the open segment's file: `segment_len` plus the preallocated zeroes after it.
    file_len: u64,
    /// Records in the open segment, written or in `buf`.
    segment_records: u64,
    /// Sequence number of the next record.
    next_seq: u64,
    /// First sequence number of the segment that begins with the newest snapshot.
    snapshot_seq: Option<u64>,
    /// Encoded bytes of the batch not yet written to `file`.
    buf: Vec<u8>,
    /// A new segment's directory entry must reach the disk before anything in it is acknowledged.
    dir_dirty: bool,
    /// The first failure; once set nothing more is written.
    failed: Option<Arc<JournalError>>,
    /// The directory lock, released when the writer stops.
    _lock: File,
}

impl Writer {
    /// Opens the last recovered segment for appending.
    pub(super) fn new(
        dir: &Path,
        tail: Tail,
        options: &JournalOptions,
        counters: Arc<Counters>,
    ) -> Result<Writer, JournalError> {
        let (first_seq, path) = tail.segments.last().cloned().expect("recovery leaves at least one segment");
        // Positioned writes, not `append`: the file may already extend past the records (preallocated).
        let file = OpenOptions::new().write(true).open(&path).map_err(io_error(&path, "open the last segment"))?;
        let file_len = file.metadata().map_err(io_error(&path, "read the size of the last segment"))?.len();
        Ok(Writer {
            _lock: tail.lock,
            dir: dir.to_path_buf(),
            segment_bytes: options.segment_bytes,
            preallocate_bytes: options.preallocate_bytes,
            fsync: options.fsync,
            observer: options.on_commit.clone(),
            counters,
            file,
            segments: tail.segments,
            segment_len: tail.len,
            file_len: file_len.max(tail.len),
            segment_records: tail.records,
            next_seq: first_seq + tail.records,
            snapshot_seq: tail.snapshot_seq,
            buf: Vec::with_capacity(64 << 10),
            dir_dirty: false,
            failed: None,
        })
    }

    /// Serves requests until a close or until every handle is gone.
    pub(super) fn run(mut self, requests: Receiver<Request>) {
        let mut batch = Vec::new();
        while let Ok(first) = requests.recv() {
            #[cfg(test)]
            if let Request::Pause(release) = first {
                let _ = release.recv();
                continue;
            }
            let mut bytes = request_len(&first);
            batch.push(first);
            while bytes < MAX_BATCH_BYTES {
                let Ok(next) = requests.try_recv() else { break };
                bytes += request_len(&next);
                batch.push(next);
            }
            if let Some(close) = self.serve(&mut batch) {
                let result = self.close();
                // The file is closed before the answer, so a caller may reopen the directory at once.
                drop(self);
                let _ = close.send(result);
                // Requests queued behind the close are dropped with `requests`; their waiters see `Closed`.
                return;
            }
        }
    }

    /// Commits the writes of one batch and answers them; returns the close request if the batch holds one.
    fn serve(&mut self, batch: &mut Vec<Request>) -> Option<Done> {
        let close_at = batch.iter().position(|r| matches!(r, Request::Close { .. }));
        let rest = batch.split_off(close_at.unwrap_or(batch.len()));
        let result = match &self.failed {
            Some(cause) => Err(JournalError::Failed(Arc::clone(cause))),
            None => self.commit(batch),
        };
        if let Err(error) = &result {
            if self.failed.is_none() {
                self.failed = Some(Arc::new(error.clone()));
            }
        }
        let durable_at = Instant::now();
        let mut waits = Vec::new();
        for request in batch.drain(..) {
            match request {
                Request::Write { done, enqueued, .. } => {
                    let _ = done.send(result.clone());
                    waits.extend(enqueued.map(|at| durable_at.saturating_duration_since(at)));
                }
                Request::Barrier { done } => {
                    let _ = done.send(result.clone());
                }
                _ => {}
            }
        }
        // After the answers, so metrics never delay a waiter.
        if let (Some(observe), true) = (&self.observer, result.is_ok()) {
            for wait in waits {
                observe(wait);
            }
        }
        match rest.into_iter().next() {
            Some(Request::Close { done }) => Some(done),
            _ => None,
        }
    }

    /// Writes a batch and makes it durable: one `write_all` and one `fdatasync` per segment it touches.
    fn commit(&mut self, batch: &[Request]) -> Result<(), JournalError> {
        let mut records = 0;
        let mut snapshot_taken = false;
        for request in batch {
            let Request::Write { kind, payload, .. } = request else { continue };
            // The records' bytes, not the file's size: preallocated zeroes do not fill a segment.
            let pending = self.segment_len + self.buf.len() as u64;
            let rotate = *kind == Kind::Snapshot || pending >= self.segment_bytes;
            if rotate && self.segment_records > 0 {
                self.flush()?;
                self.start_segment()?;
            }
            if *kind == Kind::Snapshot {
                self.snapshot_seq = self.segments.last().map(|(seq, _)| *seq);
                snapshot_taken = true;
            }
            format::encode_record(*kind, payload, &mut self.buf);
            self.segment_records += 1;
            self.next_seq += 1;
            records += 1;
        }
        if records == 0 {
            return Ok(());
        }
        self.flush()?;
        self.counters.batches.fetch_add(1, Ordering::Relaxed);
        self.counters.records.fetch_add(records, Ordering::Relaxed);
        if snapshot_taken {
            self.remove_superseded();
        }
        Ok(())
    }

    /// Writes `buf` to the open segment after its records and syncs it: one `write` of the whole batch,
    /// plus one of zeroes when the batch reached past the preallocated end, then one `fdatasync`.
    fn flush(&mut self) -> Result<(), JournalError> {
        #[cfg(test)]
        if self.counters.fail_writes.load(Ordering::Relaxed) {
            return Err(io_error(self.path(), "write records")(std::io::Error::other("injected failure")));
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all_at(&self.buf, self.segment_len).map_err(io_error(self.path(), "write records"))?;
        let written = self.buf.len() as u64;
        self.segment_len += written;
        self.counters.bytes.fetch_add(written, Ordering::Relaxed);
        self.buf.clear();
        if self.segment_len > self.file_len {
            self.file_len = self.segment_len;
            self.preallocate()?;
        }
        if self.fsync {
            self.file.sync_data().map_err(io_error(self.path(), "fsync records"))?;
            self.counters.syncs.fetch_add(1, Ordering::Relaxed);
            if mem::take(&mut self.dir_dirty) {
                sync_dir(&self.dir)?;
            }
        }
        Ok(())
    }

    /// Extends the open segment with zeroes up to the next multiple of `preallocate_bytes` past its records.
    ///
    /// Why: a batch that grows the file makes its `fdatasync` write the inode (the new size) as well as the
    /// data, a second synchronous device write; over blocks already written and synced, it writes the data
    /// only. Real zeroes rather than `fallocate`: an unwritten extent still needs its metadata changed on
    /// the first write into it. The zeroes are synced with the batch that reached past the old end, so the
    /// size changes once per step rather than once per batch. The reader takes zeroes after the last
    /// record for the clean end of a segment (zero is no record kind).
    fn preallocate(&mut self) -> Result<(), JournalError> {
        if self.preallocate_bytes == 0 {
            return Ok(());
        }
        let step = self.preallocate_bytes;
        let end = (self.segment_len / step).saturating_add(1).saturating_mul(step);
        while self.file_len < end {
            let piece = &ZEROES[..ZEROES.len().min(usize::try_from(end - self.file_len).unwrap_or(usize::MAX))];
            self.file.write_all_at(piece, self.file_len).map_err(io_error(self.path(), "preallocate a segment"))?;
            self.file_len += piece.len() as u64;
            self.counters.preallocated.fetch_add(piece.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Opens a new segment named after the next record; its header goes out with the next flush.
    fn start_segment(&mut self) -> Result<(), JournalError> {
        let path = self.dir.join(format::segment_name(self.next_seq));
        self.file =
            OpenOptions::new().write(true).create_new(true).open(&path).map_err(io_error(&path, "create a segment"))?;
        self.segments.push((self.next_seq, path));
        self.segment_len = 0;
        self.file_len = 0;
        self.segment_records = 0;
        self.dir_dirty = true;
        format::encode_header(self.next_seq, &mut self.buf);
        Ok(())
    }

    /// The open segment's path, for errors.
    fn path(&self) -> &Path {
        &self.segments.last().expect("at least one segment").1
    }

    /// Deletes the segments before the newest snapshot, which is durable by now. A failure here loses
    /// nothing (recovery skips and removes superseded segments), so it is logged, not fatal, and the
    /// segments left are retried after the next snapshot.
    fn remove_superseded(&mut self) {
        let Some(snapshot_seq) = self.snapshot_seq else { return };
        let superseded = self.segments.iter().take_while(|(seq, _)| *seq < snapshot_seq).count();
        let mut removed = 0;
        // Oldest first, so a crash part-way leaves the survivors contiguous for recovery.
        for (_, path) in &self.segments[..superseded] {
            if let Err(error) = std::fs::remove_file(path) {
                tracing::warn!(path = %path.display(), %error, "journal: could not remove a superseded segment");
                break;
            }
            removed += 1;
        }
        self.segments.drain(..removed);
        if self.fsync && removed > 0 {
            if let Err(error) = sync_dir(&self.dir) {
                tracing::warn!(%error, "journal: could not sync the removal of superseded segments");
            }
        }
    }

    /// The final flush: with fsync off, a graceful stop still leaves everything on disk.
    fn close(&mut self) -> Result<(), JournalError> {
        if let Some(cause) = &self.failed {
            return Err(JournalError::Failed(Arc::clone(cause)));
        }
        self.file.sync_all().map_err(io_error(self.path(), "sync on close"))?;
        if mem::take(&mut self.dir_dirty) {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

fn request_len(request: &Request) -> usize {
    match request {
        Request::Write { payload, .. } => FRAME_LEN + payload.len(),
        _ => 0,
    }
}
