//! Recovery on open: reads every segment, checks it, repairs a torn tail and says what to replay.
//!
//! A segment ends at its last valid record. What follows may be zeroes (preallocated by the writer, or
//! never written), which is a clean end; anything else after the last valid record of the last segment is a
//! torn write, dropped with a warning; anything invalid with a valid record after it, or in an earlier
//! segment, is damage and stops the open.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use tokio::time::Instant;

use super::format::{self, Frame, Kind, HEADER_LEN};
use super::{io_error, sync_dir, JournalError, Replay};

/// Sits beside the segments; its name never parses as one.
const LOCK_FILE: &str = "journal.lock";

/// Where the writer carries on after recovery.
pub(super) struct Tail {
    /// Segments still needed by replay, oldest first, as (first sequence number, path); the last is the one
    /// appended to.
    pub segments: Vec<(u64, PathBuf)>,
    /// Bytes of the last segment's header and records after any repair; preallocated zeroes may follow.
    pub len: u64,
    /// Records (snapshots included) in the last segment.
    pub records: u64,
    /// The first sequence number of the segment that begins with the snapshot replay starts from.
    pub snapshot_seq: Option<u64>,
    /// Held open while the journal is: its lock keeps a second writer out of the directory.
    pub lock: File,
}

/// Reads the journal in `dir` (created when missing), repairing a torn final record.
pub(super) fn recover(dir: &Path, fsync: bool) -> Result<(Replay, Tail), JournalError> {
    let started = Instant::now();
    let mut replay = Replay::default();
    fs::create_dir_all(dir).map_err(io_error(dir, "create the journal directory"))?;
    let lock = lock_dir(dir)?;
    let segments = list_segments(dir, &mut replay.warnings)?;
    if segments.is_empty() {
        let tail = start_first_segment(dir, fsync, lock)?;
        replay.stats.duration = started.elapsed();
        return Ok((replay, tail));
    }

    let mut start = 0;
    let mut snapshot_seq = None;
    let mut expected_seq = None;
    let mut last = (0, 0);
    let mut torn = None;
    for (i, (first_seq, path)) in segments.iter().enumerate() {
        let is_last = i + 1 == segments.len();
        let bytes = fs::read(path).map_err(io_error(path, "read a segment"))?;
        replay.stats.bytes += bytes.len() as u64;
        let read = read_segment(path, &bytes, *first_seq, is_last, &mut replay.warnings)?;
        if let Some(expected) = expected_seq.filter(|&e| e != *first_seq) {
            return Err(corrupt(
                path,
                0,
                format!("it starts at record {first_seq} but the segment before ends just before record {expected}: a segment is missing"),
            ));
        }
        let count = read.records.len() as u64;
        expected_seq = Some(first_seq + count);
        let mut records = read.records.into_iter();
        if read.starts_with_snapshot {
            replay.snapshot = records.next().map(|range| bytes[range].to_vec());
            replay.records.clear();
            start = i;
            snapshot_seq = Some(*first_seq);
        }
        replay.records.extend(records.map(|range| bytes[range].to_vec()));
        torn = read.torn_at.map(|len| (path, len));
        last = (read.valid_len, count);
    }
    if snapshot_seq.is_none() && segments[0].0 != 1 {
        let (first_seq, path) = &segments[0];
        return Err(corrupt(
            path,
            0,
            format!("the journal starts at record {first_seq} without a snapshot: earlier segments are missing"),
        ));
    }
    // Repairs only once every check has passed: a journal that is refused is left exactly as it was.
    if let Some((path, len)) = torn {
        truncate(path, len, fsync)?;
    }
    remove_superseded(dir, &segments[..start], fsync, &mut replay.warnings)?;

    replay.stats.segments = segments.len() - start;
    replay.stats.records = replay.records.len();
    replay.stats.duration = started.elapsed();
    let tail = Tail { segments: segments[start..].to_vec(), len: last.0, records: last.1, snapshot_seq, lock };
    Ok((replay, tail))
}

/// Segment files in `dir`, oldest first.
fn list_segments(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<(u64, PathBuf)>, JournalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir, "list the journal directory"))? {
        let entry = entry.map_err(io_error(dir, "list the journal directory"))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        match format::parse_segment_name(&name) {
            Some(seq) => segments.push((seq, entry.path())),
            None if format::looks_like_segment(&name) => {
                warnings.push(format!("ignored {}: not a well-formed segment name", entry.path().display()));
            }
            None => {}
        }
    }
    segments.sort();
    Ok(segments)
}

/// Takes the directory's advisory lock: two writers appending to one journal would interleave records.
/// The kernel drops it when the process dies, so a crash never leaves the directory locked.
pub(crate) fn lock_dir(dir: &Path) -> Result<File, JournalError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path, "open the journal lock"))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(JournalError::InUse(dir.to_path_buf())),
        Err(TryLockError::Error(error)) => Err(io_error(&path, "lock the journal directory")(error)),
    }
}

fn start_first_segment(dir: &Path, fsync: bool, lock: File) -> Result<Tail, JournalError> {
    let path = dir.join(format::segment_name(1));
    write_header(&path, 1, fsync)?;
    if fsync {
        sync_dir(dir)?;
    }
    Ok(Tail { segments: vec![(1, path)], len: HEADER_LEN as u64, records: 0, snapshot_seq: None, lock })
}

/// What one segment holds.
struct Segment {
    /// Payload ranges of its valid records, in order.
    records: Vec<std::ops::Range<usize>>,
    starts_with_snapshot: bool,
    /// Bytes up to the end of the last valid record; only zeroes (or a torn record) follow.
    valid_len: u64,
    /// Set when a torn tail was found: the length to truncate the file to.
    torn_at: Option<u64>,
}

fn read_segment(
    path: &Path,
    bytes: &[u8],
    first_seq: u64,
    is_last: bool,
    warnings: &mut Vec<String>,
) -> Result<Segment, JournalError> {
    if is_last && header_never_written(bytes) {
        // A crash between creating the file and syncing its first batch; nothing in it was acknowledged.
        warnings.push(format!("{}: rewrote a torn segment header ({} bytes)", path.display(), bytes.len()));
        let valid_len = HEADER_LEN as u64;
        return Ok(Segment { records: Vec::new(), starts_with_snapshot: false, valid_len, torn_at: Some(0) });
    }
    let declared = format::decode_header(bytes).map_err(|reason| corrupt(path, 0, reason))?;
    if declared != first_seq {
        return Err(corrupt(
            path,
            12,
            format!("the header says it starts at record {declared}, its name says {first_seq}"),
        ));
    }

    let mut segment =
        Segment { records: Vec::new(), starts_with_snapshot: false, valid_len: HEADER_LEN as u64, torn_at: None };
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        match format::read_frame(bytes, at) {
            Frame::Valid { kind, payload, end } => {
                if kind == Kind::Snapshot {
                    if !segment.records.is_empty() {
                        return Err(corrupt(path, at, "a snapshot that is not the first record of its segment"));
                    }
                    segment.starts_with_snapshot = true;
                }
                segment.records.push(payload);
                at = end;
                segment.valid_len = end as u64;
            }
            Frame::Incomplete { reason } | Frame::Invalid { reason } => {
                if bytes[at..].iter().all(|&b| b == 0) {
                    // The zeroes a writer keeps ahead of its records (or blocks a file system allocated but
                    // never wrote): the clean end of the segment, in any segment. The writer carries on
                    // over them, so there is nothing to repair.
                    break;
                }
                if !is_last || format::valid_record_from(bytes, at + 1) {
                    return Err(corrupt(path, at, reason));
                }
                warnings.push(format!(
                    "{}: dropped a torn final record at byte {at} ({reason}); truncated {} bytes",
                    path.display(),
                    bytes.len() - at
                ));
                segment.torn_at = Some(at as u64);
                break;
            }
        }
    }
    Ok(segment)
}

/// Whether a segment's header is cut short, or zeros (blocks allocated but never written) with no valid
/// record after them. A foreign or newer-version header is never taken for one: that is refused, not
/// overwritten.
fn header_never_written(bytes: &[u8]) -> bool {
    match bytes.get(..HEADER_LEN) {
        None => true,
        Some(header) => header.iter().all(|&b| b == 0) && !format::valid_record_from(bytes, HEADER_LEN),
    }
}

/// Cuts a torn tail off (or rewrites a torn header) so new records follow the last good one.
fn truncate(path: &Path, len: u64, fsync: bool) -> Result<(), JournalError> {
    if len < HEADER_LEN as u64 {
        let first_seq = path
            .file_name()
            .and_then(|name| format::parse_segment_name(&name.to_string_lossy()))
            .expect("only segment files are read");
        return write_header(path, first_seq, fsync);
    }
    let file = OpenOptions::new().write(true).open(path).map_err(io_error(path, "open a torn segment"))?;
    file.set_len(len).map_err(io_error(path, "truncate a torn segment"))?;
    if fsync {
        file.sync_all().map_err(io_error(path, "sync a truncated segment"))?;
    }
    Ok(())
}

fn write_header(path: &Path, first_seq: u64, fsync: bool) -> Result<(), JournalError> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    format::encode_header(first_seq, &mut header);
    fs::write(path, &header).map_err(io_error(path, "write a segment header"))?;
    if fsync {
        let file = fs::File::open(path).map_err(io_error(path, "open a new segment"))?;
        file.sync_all().map_err(io_error(path, "sync a new segment"))?;
    }
    Ok(())
}

/// Deletes segments before the newest snapshot: a crash came between the snapshot and their deletion.
fn remove_superseded(
    dir: &Path,
    superseded: &[(u64, PathBuf)],
    fsync: bool,
    warnings: &mut Vec<String>,
) -> Result<(), JournalError> {
    // Oldest first, so a crash part-way leaves the survivors contiguous.
    for (_, path) in superseded {
        fs::remove_file(path).map_err(io_error(path, "remove a segment superseded by a snapshot"))?;
        warnings.push(format!("removed {}: superseded by a later snapshot", path.display()));
    }
    if fsync && !superseded.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> JournalError {
    JournalError::Corrupt { file: path.to_path_buf(), offset: offset as u64, reason: reason.into() }
}
