use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use parking_lot::Mutex;

use super::format::{Frame, FRAME_LEN, HEADER_LEN};
use super::writer::Request;
use super::*;

mod preallocated;

/// Both ways a segment can end: grown batch by batch (`0`), or followed by preallocated zeroes.
const PREALLOCATE: [u64; 2] = [0, 4096];

fn open(dir: &Path) -> (Journal, Replay) {
    open_with(dir, JournalOptions::default())
}

fn open_with(dir: &Path, options: JournalOptions) -> (Journal, Replay) {
    Journal::open(dir, options).expect("journal opens")
}

fn open_error(dir: &Path) -> String {
    open_error_with(dir, JournalOptions::default())
}

fn open_error_with(dir: &Path, options: JournalOptions) -> String {
    match Journal::open(dir, options) {
        Ok(_) => panic!("open should fail"),
        Err(error) => error.to_string(),
    }
}

fn payload(i: usize) -> Vec<u8> {
    format!("record {i:03}").into_bytes()
}

fn payloads(range: std::ops::Range<usize>) -> Vec<Vec<u8>> {
    range.map(payload).collect()
}

/// Segment files in `dir`, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn only_segment(dir: &Path) -> PathBuf {
    let files = segments(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    files.into_iter().next().unwrap()
}

/// A segment's header and records, and the count of preallocated zeroes after them.
fn split_segment(path: &Path) -> (Vec<u8>, usize) {
    let mut bytes = fs::read(path).unwrap();
    let mut end = HEADER_LEN;
    while let Frame::Valid { end: next, .. } = format::read_frame(&bytes, end) {
        end = next;
    }
    let zeroes = bytes.split_off(end);
    assert!(zeroes.iter().all(|&b| b == 0), "{}: only zeroes follow the records", path.display());
    (bytes, zeroes.len())
}

/// Writes `records` and then `zeroes` zero bytes over the segment at `path`.
fn write_segment(path: &Path, records: &[u8], zeroes: usize) {
    let mut bytes = records.to_vec();
    bytes.resize(records.len() + zeroes, 0);
    fs::write(path, bytes).unwrap();
}

/// What a crash in the middle of writing the last `cut` bytes of the records leaves: a grown file ends
/// early, a preallocated one keeps zeroes where those bytes were never written.
fn tear(path: &Path, cut: usize) {
    let (records, zeroes) = split_segment(path);
    let kept = records.len() - cut;
    write_segment(path, &records[..kept], if zeroes == 0 { 0 } else { zeroes + cut });
}

async fn append_all(journal: &Journal, range: std::ops::Range<usize>) {
    for i in range {
        journal.append(payload(i)).await.unwrap();
    }
}

/// Holds the writer while `queue` enqueues, so everything queued is committed as one batch.
async fn as_one_batch(journal: &Journal, queue: impl FnOnce() -> Vec<Commit>) {
    let (release, paused) = std::sync::mpsc::channel::<()>();
    journal.send(Request::Pause(paused));
    let commits = queue();
    drop(release);
    for commit in commits {
        commit.await.unwrap();
    }
}

#[tokio::test]
async fn records_replay_in_append_order_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, replay) = open(dir.path());
    assert!(replay.snapshot.is_none() && replay.records.is_empty() && replay.warnings.is_empty());
    append_all(&journal, 0..10).await;
    journal.append(Vec::new()).await.unwrap();
    journal.close().await.unwrap();

    let (_journal, replay) = open(dir.path());
    let mut expected = payloads(0..10);
    expected.push(Vec::new());
    assert_eq!(replay.records, expected);
    assert!(replay.snapshot.is_none() && replay.warnings.is_empty());
    assert_eq!(replay.stats.records, 11);
    assert_eq!(replay.stats.segments, 1);
    assert_eq!(replay.stats.bytes, fs::metadata(only_segment(dir.path())).unwrap().len());
}

#[tokio::test]
async fn a_missing_directory_is_created_and_an_empty_journal_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not/yet/there");
    let (journal, replay) = open(&path);
    assert!(replay.snapshot.is_none() && replay.records.is_empty() && replay.warnings.is_empty());
    journal.close().await.unwrap();
    let (_journal, replay) = open(&path);
    assert!(replay.records.is_empty() && replay.warnings.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_durable_in_enqueue_order() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    // Stands in for the ledger's lock: the order of its state changes is the order records must replay in.
    let order = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = (0..64)
        .map(|task| {
            let (journal, order) = (journal.clone(), Arc::clone(&order));
            tokio::spawn(async move {
                for i in 0..40 {
                    let commit = {
                        let mut order = order.lock();
                        let record = format!("task {task} record {i}").into_bytes();
                        order.push(record.clone());
                        journal.append(record)
                    };
                    commit.await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stats = journal.stats();
    assert_eq!(stats.records, 64 * 40);
    journal.close().await.unwrap();

    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.records, *order.lock());
}

#[tokio::test]
async fn a_queued_batch_is_written_with_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    as_one_batch(&journal, || (0..100).map(|i| journal.append(payload(i))).collect()).await;
    let stats = journal.stats();
    assert_eq!((stats.batches, stats.records, stats.syncs), (1, 100, 1));
    assert_eq!(stats.bytes, payloads(0..100).iter().map(|p| (FRAME_LEN + p.len()) as u64).sum::<u64>());
    // The zeroes that preallocate the segment went out with the batch, under the same fdatasync.
    let preallocated = HEADER_LEN as u64 + stats.bytes + stats.preallocated;
    assert_eq!(preallocated, JournalOptions::default().preallocate_bytes);
}

#[tokio::test]
async fn the_observer_sees_every_committed_record() {
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    let on_commit: CommitObserver = Arc::new(move |_| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    let (journal, _) = open_with(dir.path(), JournalOptions { on_commit: Some(on_commit), ..Default::default() });
    append_all(&journal, 0..10).await;
    journal.close().await.unwrap();
    assert_eq!(seen.load(Ordering::Relaxed), 10);
}

#[tokio::test]
async fn a_torn_final_record_is_dropped_with_a_warning_at_every_cut_point() {
    for preallocate_bytes in PREALLOCATE {
        let options = JournalOptions { preallocate_bytes, ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open_with(dir.path(), options.clone());
        append_all(&journal, 0..3).await;
        journal.close().await.unwrap();
        let path = only_segment(dir.path());
        let (full, zeroes) = split_segment(&path);
        assert_eq!(zeroes > 0, preallocate_bytes > 0);
        let last_len = FRAME_LEN + payload(2).len();

        for cut in 1..last_len {
            write_segment(&path, &full, zeroes);
            tear(&path, cut);
            let (journal, replay) = open_with(dir.path(), options.clone());
            assert_eq!(replay.records, payloads(0..2), "cut {cut}");
            assert_eq!(replay.warnings.len(), 1, "cut {cut}: {:?}", replay.warnings);
            assert!(replay.warnings[0].contains("torn final record"), "{}", replay.warnings[0]);
            let truncated = (full.len() - last_len) as u64;
            assert_eq!(fs::metadata(&path).unwrap().len(), truncated, "truncated before appends");

            journal.append(b"after the tear".to_vec()).await.unwrap();
            journal.close().await.unwrap();
            let (journal, replay) = open_with(dir.path(), options.clone());
            let mut expected = payloads(0..2);
            expected.push(b"after the tear".to_vec());
            assert_eq!(replay.records, expected, "cut {cut}");
            assert!(replay.warnings.is_empty());
            journal.close().await.unwrap();
        }
    }
}

#[tokio::test]
async fn a_bad_checksum_at_the_very_end_is_a_torn_tail_but_zeroes_are_a_clean_end() {
    for preallocate_bytes in PREALLOCATE {
        let options = JournalOptions { preallocate_bytes, ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open_with(dir.path(), options.clone());
        append_all(&journal, 0..3).await;
        journal.close().await.unwrap();
        let path = only_segment(dir.path());
        let (full, zeroes) = split_segment(&path);

        let mut flipped = full.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        write_segment(&path, &flipped, zeroes);
        let (journal, replay) = open_with(dir.path(), options.clone());
        assert_eq!(replay.records, payloads(0..2));
        assert!(replay.warnings[0].contains("checksum"), "{}", replay.warnings[0]);
        journal.close().await.unwrap();

        // Preallocated by a writer, or blocks a file system allocated but never wrote before a crash.
        write_segment(&path, &full, zeroes + 4096);
        let (journal, replay) = open_with(dir.path(), options.clone());
        assert_eq!(replay.records, payloads(0..3));
        assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
        assert_eq!(fs::metadata(&path).unwrap().len(), (full.len() + zeroes + 4096) as u64, "nothing to repair");
        journal.close().await.unwrap();
    }
}

#[tokio::test]
async fn damage_before_the_final_record_stops_open_with_the_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    append_all(&journal, 0..3).await;
    journal.close().await.unwrap();
    let path = only_segment(dir.path());
    let full = fs::read(&path).unwrap();
    let middle = HEADER_LEN + FRAME_LEN + payload(0).len();

    // A payload byte, the checksum, the kind, and the length prefix of the middle record.
    for at in [middle + FRAME_LEN + 2, middle + 5, middle + 8, middle] {
        let mut damaged = full.clone();
        damaged[at] ^= 0x40;
        fs::write(&path, &damaged).unwrap();
        let message = open_error(dir.path());
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(message.contains(&format!("at byte {middle}")), "flip at {at}: {message}");
        assert_eq!(fs::read(&path).unwrap(), damaged, "a refused journal is left as it was");
    }
}

#[tokio::test]
async fn damage_at_the_end_of_an_earlier_segment_stops_open() {
    for preallocate_bytes in PREALLOCATE {
        let options = JournalOptions { segment_bytes: 64, preallocate_bytes, ..Default::default() };
        let dir = tempfile::tempdir().unwrap();
        let (journal, _) = open_with(dir.path(), options.clone());
        append_all(&journal, 0..12).await;
        journal.close().await.unwrap();
        let files = segments(dir.path());
        assert!(files.len() >= 3, "{files:?}");
        let (first, zeroes) = split_segment(&files[0]);
        let last_record = first.len() - (FRAME_LEN + payload(0).len());

        tear(&files[0], 1);
        let message = open_error_with(dir.path(), options.clone());
        assert!(message.contains(&files[0].display().to_string()), "{message}");
        assert!(message.contains(&format!("at byte {last_record}")), "{message}");

        let mut flipped = first.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        write_segment(&files[0], &flipped, zeroes);
        assert!(open_error_with(dir.path(), options).contains("checksum"));
    }
}

#[tokio::test]
async fn a_missing_segment_stops_open() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_with(dir.path(), JournalOptions { segment_bytes: 64, ..Default::default() });
    append_all(&journal, 0..12).await;
    journal.close().await.unwrap();
    let files = segments(dir.path());
    fs::remove_file(&files[1]).unwrap();
    assert!(open_error(dir.path()).contains("a segment is missing"));

    fs::remove_file(&files[0]).unwrap();
    assert!(open_error(dir.path()).contains("earlier segments are missing"));
}

#[tokio::test]
async fn segments_rotate_by_size_and_replay_across_them() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions { segment_bytes: 100, ..Default::default() };
    let (journal, _) = open_with(dir.path(), options.clone());
    append_all(&journal, 0..10).await;
    // Rotation inside one batch too.
    as_one_batch(&journal, || (10..30).map(|i| journal.append(payload(i))).collect()).await;
    journal.close().await.unwrap();

    let files = segments(dir.path());
    assert!(files.len() >= 5, "{files:?}");
    let mut next_seq = 1;
    for (i, file) in files.iter().enumerate() {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(name, format::segment_name(next_seq));
        // The records fill a segment; the zeroes preallocated after them do not count.
        let len = split_segment(file).0.len();
        let records = (len - HEADER_LEN) / (FRAME_LEN + payload(0).len());
        if i + 1 < files.len() {
            assert!((100..100 + FRAME_LEN + payload(0).len()).contains(&len), "{name}: {len} bytes of records");
        }
        next_seq += records as u64;
    }
    assert_eq!(next_seq, 31);
    let (_journal, replay) = open_with(dir.path(), options);
    assert_eq!(replay.records, payloads(0..30));
    assert_eq!(replay.stats.segments, files.len());
}

#[tokio::test]
async fn a_snapshot_starts_a_segment_deletes_older_ones_and_replays_with_later_records() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions { segment_bytes: 64, ..Default::default() };
    let (journal, _) = open_with(dir.path(), options.clone());
    append_all(&journal, 0..8).await;
    assert!(segments(dir.path()).len() > 1);
    journal.snapshot(b"state after 8".to_vec()).await.unwrap();
    append_all(&journal, 8..10).await;
    journal.close().await.unwrap();

    let files = segments(dir.path());
    assert_eq!(files[0].file_name().unwrap().to_string_lossy(), format::segment_name(9));
    let (journal, replay) = open_with(dir.path(), options.clone());
    assert_eq!(replay.snapshot.as_deref(), Some(&b"state after 8"[..]));
    assert_eq!(replay.records, payloads(8..10));
    assert!(replay.warnings.is_empty());

    // A snapshot and records around it in one batch: the newest snapshot wins.
    as_one_batch(&journal, || {
        vec![journal.append(payload(10)), journal.snapshot(b"state after 11".to_vec()), journal.append(payload(11))]
    })
    .await;
    journal.close().await.unwrap();
    let (_journal, replay) = open_with(dir.path(), options);
    assert_eq!(replay.snapshot.as_deref(), Some(&b"state after 11"[..]));
    assert_eq!(replay.records, payloads(11..12));
    assert_eq!(segments(dir.path())[0].file_name().unwrap().to_string_lossy(), format::segment_name(13));
}

#[tokio::test]
async fn a_first_snapshot_goes_into_the_empty_segment() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    journal.snapshot(b"genesis".to_vec()).await.unwrap();
    append_all(&journal, 0..2).await;
    journal.close().await.unwrap();
    only_segment(dir.path());
    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.snapshot.as_deref(), Some(&b"genesis"[..]));
    assert_eq!(replay.records, payloads(0..2));
}

#[tokio::test]
async fn segments_a_crash_left_behind_a_snapshot_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    append_all(&journal, 0..3).await;
    let old = only_segment(dir.path());
    let old_bytes = fs::read(&old).unwrap();
    journal.snapshot(b"state".to_vec()).await.unwrap();
    append_all(&journal, 3..4).await;
    journal.close().await.unwrap();
    assert!(!old.exists());
    fs::write(&old, &old_bytes).unwrap();

    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.snapshot.as_deref(), Some(&b"state"[..]));
    assert_eq!(replay.records, payloads(3..4));
    assert!(replay.warnings[0].contains("superseded"), "{:?}", replay.warnings);
    assert!(!old.exists());
}

#[tokio::test]
async fn a_torn_snapshot_falls_back_to_the_records_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    append_all(&journal, 0..2).await;
    let old = only_segment(dir.path());
    let old_bytes = fs::read(&old).unwrap();
    journal.snapshot(b"a snapshot cut short by a crash".to_vec()).await.unwrap();
    journal.close().await.unwrap();
    // The crash: the snapshot segment is torn and the old segment was never deleted.
    tear(&only_segment(dir.path()), 3);
    fs::write(&old, &old_bytes).unwrap();

    let (journal, replay) = open(dir.path());
    assert!(replay.snapshot.is_none());
    assert_eq!(replay.records, payloads(0..2));
    assert_eq!(replay.warnings.len(), 1, "{:?}", replay.warnings);
    append_all(&journal, 2..3).await;
    journal.close().await.unwrap();
    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..3));
}

#[tokio::test]
async fn a_torn_segment_header_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions { segment_bytes: 64, ..Default::default() };
    let (journal, _) = open_with(dir.path(), options.clone());
    append_all(&journal, 0..4).await;
    journal.close().await.unwrap();
    let files = segments(dir.path());
    let last = files.last().unwrap();
    let (last_bytes, _) = split_segment(last);
    let records_in_last = (last_bytes.len() - HEADER_LEN) / (FRAME_LEN + payload(0).len());
    fs::write(last, &last_bytes[..HEADER_LEN - 5]).unwrap();

    let (journal, replay) = open_with(dir.path(), options.clone());
    assert_eq!(replay.records, payloads(0..4 - records_in_last));
    assert!(replay.warnings[0].contains("header"), "{:?}", replay.warnings);
    append_all(&journal, 10..11).await;
    journal.close().await.unwrap();
    let (_journal, replay) = open_with(dir.path(), options);
    assert_eq!(replay.records.last(), Some(&payload(10)));
}

#[tokio::test]
async fn a_zeroed_last_segment_is_a_torn_header_but_a_foreign_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions { segment_bytes: 64, ..Default::default() };
    let (journal, _) = open_with(dir.path(), options.clone());
    append_all(&journal, 0..4).await;
    journal.close().await.unwrap();
    let files = segments(dir.path());
    let last = files.last().unwrap();
    let last_len = fs::metadata(last).unwrap().len() as usize;
    let records_in_last = (split_segment(last).0.len() - HEADER_LEN) / (FRAME_LEN + payload(0).len());

    fs::write(last, b"NOTOURS!-and-some-more-bytes").unwrap();
    assert!(open_error(dir.path()).contains("bad magic"));

    fs::write(last, vec![0; last_len]).unwrap();
    let (journal, replay) = open_with(dir.path(), options);
    assert_eq!(replay.records, payloads(0..4 - records_in_last));
    assert!(replay.warnings[0].contains("header"), "{:?}", replay.warnings);
    assert_eq!(fs::metadata(last).unwrap().len(), HEADER_LEN as u64);
    journal.close().await.unwrap();
}

#[tokio::test]
async fn after_close_appends_fail_and_a_reopen_appends_after_existing_records() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    append_all(&journal, 0..3).await;
    let clone = journal.clone();
    journal.close().await.unwrap();
    assert!(matches!(clone.append(payload(99)).await, Err(JournalError::Closed)));
    assert!(matches!(journal.close().await, Err(JournalError::Closed)));

    let (journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..3));
    append_all(&journal, 3..5).await;
    journal.close().await.unwrap();
    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..5));
}

#[tokio::test]
async fn a_directory_has_one_journal_open_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    assert!(matches!(Journal::open(dir.path(), JournalOptions::default()), Err(JournalError::InUse(_))));
    journal.close().await.unwrap();
    let (_journal, _) = open(dir.path());
}

#[tokio::test]
async fn a_failed_write_fails_its_whole_batch_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    append_all(&journal, 0..2).await;

    journal.shared.counters.fail_writes.store(true, Ordering::Relaxed);
    let (release, paused) = std::sync::mpsc::channel::<()>();
    journal.send(Request::Pause(paused));
    let batch: Vec<Commit> = (2..5).map(|i| journal.append(payload(i))).collect();
    drop(release);
    for commit in batch {
        let error = commit.await.unwrap_err();
        assert!(matches!(error, JournalError::Io { .. }), "{error}");
        assert!(error.to_string().contains("injected failure"), "{error}");
    }
    // Even once the disk would work again, this process's journal is not trusted.
    journal.shared.counters.fail_writes.store(false, Ordering::Relaxed);
    let later = journal.append(payload(5)).await.unwrap_err();
    assert!(matches!(later, JournalError::Failed(_)), "{later}");
    assert!(later.to_string().contains("restart"), "{later}");
    assert!(matches!(journal.close().await, Err(JournalError::Failed(_))));

    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..2));
}

/// `durable` answers once what was enqueued before it is on disk, and with the failure when it could not be.
#[tokio::test]
async fn durable_waits_for_the_records_enqueued_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    let (release, paused) = std::sync::mpsc::channel::<()>();
    journal.send(Request::Pause(paused));
    let record = journal.append(payload(0));
    let mut durable = journal.durable();
    assert!((&mut durable).now_or_never().is_none(), "the record is still queued behind the paused writer");
    drop(release);
    durable.await.unwrap();
    assert_eq!(journal.stats().records, 1, "the record was durable before the answer");
    record.await.unwrap();

    journal.shared.counters.fail_writes.store(true, Ordering::Relaxed);
    let (release, paused) = std::sync::mpsc::channel::<()>();
    journal.send(Request::Pause(paused));
    let failed = journal.append(payload(1));
    let durable = journal.durable();
    drop(release);
    assert!(failed.await.is_err());
    assert!(durable.await.is_err(), "nothing after a failed record is reported durable");
}
