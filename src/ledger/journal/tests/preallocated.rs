//! Segments the writer keeps extended with zeroes ahead of their records: the zeroes are a clean end, a
//! torn record inside them is still a torn tail, and rotation counts records, not the file's size.

use super::*;

fn preallocating(preallocate_bytes: u64) -> JournalOptions {
    JournalOptions { preallocate_bytes, ..Default::default() }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[tokio::test]
async fn a_preallocated_segment_reopens_without_a_warning_and_appends_right_after_its_last_record() {
    let dir = tempfile::tempdir().unwrap();
    // A small step, so that the appends below cross several of them.
    let options = preallocating(256);
    let (journal, _) = open_with(dir.path(), options.clone());
    append_all(&journal, 0..3).await;
    journal.close().await.unwrap();
    let path = only_segment(dir.path());
    let (records, zeroes) = split_segment(&path);
    assert!(zeroes > 0 && file_len(&path).is_multiple_of(256), "{} bytes of records, {zeroes} zeroes", records.len());

    for round in 0..4 {
        let (journal, replay) = open_with(dir.path(), options.clone());
        assert_eq!(replay.records, payloads(0..3 + round * 10), "round {round}");
        assert!(replay.warnings.is_empty(), "round {round}: {:?}", replay.warnings);
        append_all(&journal, 3 + round * 10..3 + (round + 1) * 10).await;
        journal.close().await.unwrap();
        let (records, zeroes) = split_segment(&path);
        assert_eq!(records.len(), HEADER_LEN + (3 + (round + 1) * 10) * (FRAME_LEN + payload(0).len()));
        assert!(zeroes > 0 && file_len(&path).is_multiple_of(256), "round {round}: {zeroes} zeroes");
    }
    // A writer that does not preallocate carries on over the zeroes too.
    let (journal, _) = open_with(dir.path(), preallocating(0));
    append_all(&journal, 43..45).await;
    journal.close().await.unwrap();
    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..45));
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
}

#[tokio::test]
async fn a_grown_segment_is_preallocated_from_where_its_records_end() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_with(dir.path(), preallocating(0));
    append_all(&journal, 0..3).await;
    journal.close().await.unwrap();
    let path = only_segment(dir.path());
    assert_eq!(split_segment(&path).1, 0, "grown batch by batch, no zeroes");

    let (journal, replay) = open_with(dir.path(), preallocating(4096));
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
    append_all(&journal, 3..5).await;
    journal.close().await.unwrap();
    assert_eq!(file_len(&path), 4096);
    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..5));
}

#[tokio::test]
async fn a_torn_record_inside_the_preallocated_region_warns_and_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open(dir.path());
    append_all(&journal, 0..3).await;
    journal.close().await.unwrap();
    let path = only_segment(dir.path());
    let (records, zeroes) = split_segment(&path);

    // The first sectors of a record whose batch never finished its fdatasync: a length, a checksum, a kind
    // and part of the payload, then the preallocated zeroes the rest of it never reached.
    let mut torn = records.clone();
    format::encode_record(format::Kind::Record, &[0xA5; 600], &mut torn);
    torn.truncate(records.len() + 300);
    write_segment(&path, &torn, zeroes - 300);
    let (journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..3));
    assert_eq!(replay.warnings.len(), 1, "{:?}", replay.warnings);
    assert!(replay.warnings[0].contains("torn final record"), "{}", replay.warnings[0]);
    assert!(replay.warnings[0].contains(&format!("at byte {}", records.len())), "{}", replay.warnings[0]);
    assert_eq!(file_len(&path), records.len() as u64, "the tear is cut off before appends");
    append_all(&journal, 3..4).await;
    journal.close().await.unwrap();
    let (journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..4));
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
    journal.close().await.unwrap();

    // A stray byte deep in the zeroes, with nothing valid after it, is a torn tail as well.
    let (records, zeroes) = split_segment(&path);
    let mut stray = records.clone();
    stray.resize(records.len() + zeroes / 2, 0);
    stray.push(0x17);
    write_segment(&path, &stray, zeroes - zeroes / 2 - 1);
    let (journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..4));
    assert!(replay.warnings[0].contains("torn final record"), "{:?}", replay.warnings);
    journal.close().await.unwrap();

    // But a valid record after damage in the zeroes may be acknowledged data: open refuses to guess.
    let (records, zeroes) = split_segment(&path);
    let mut damaged = records.clone();
    damaged.extend_from_slice(&[0xFF; 7]);
    format::encode_record(format::Kind::Record, b"behind the damage", &mut damaged);
    write_segment(&path, &damaged, zeroes.saturating_sub(damaged.len() - records.len()));
    let message = open_error(dir.path());
    assert!(message.contains(&format!("damaged at byte {}", records.len())), "{message}");
}

#[tokio::test]
async fn a_crash_without_close_reopens_after_the_last_durable_record() {
    let dir = tempfile::tempdir().unwrap();
    let (journal, _) = open_with(dir.path(), JournalOptions { segment_bytes: 100, ..Default::default() });
    append_all(&journal, 0..12).await;
    // What a crash leaves: every answered record, in segments still preallocated past their records.
    let crashed = tempfile::tempdir().unwrap();
    for file in segments(dir.path()) {
        fs::copy(&file, crashed.path().join(file.file_name().unwrap())).unwrap();
    }
    let (journal_after_crash, replay) = open(crashed.path());
    assert_eq!(replay.records, payloads(0..12));
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
    append_all(&journal_after_crash, 12..14).await;
    journal_after_crash.close().await.unwrap();
    let (_journal, replay) = open(crashed.path());
    assert_eq!(replay.records, payloads(0..14));

    // The last handle dropped without `close`: the writer still lets go of the directory.
    append_all(&journal, 12..13).await;
    drop(journal);
    let (journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..13));
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
    append_all(&journal, 13..14).await;
    journal.close().await.unwrap();
    let (_journal, replay) = open(dir.path());
    assert_eq!(replay.records, payloads(0..14));
}

#[tokio::test]
async fn zeroes_after_the_records_of_an_earlier_segment_are_its_clean_end() {
    let dir = tempfile::tempdir().unwrap();
    let options = JournalOptions { segment_bytes: 100, preallocate_bytes: 4096, ..Default::default() };
    let (journal, _) = open_with(dir.path(), options.clone());
    append_all(&journal, 0..20).await;
    journal.close().await.unwrap();
    let files = segments(dir.path());
    assert!(files.len() >= 3, "{files:?}");
    for file in &files {
        let (records, zeroes) = split_segment(file);
        assert_eq!(records.len() + zeroes, 4096, "{}: preallocated", file.display());
    }

    let (journal, replay) = open_with(dir.path(), options.clone());
    assert_eq!(replay.records, payloads(0..20));
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
    assert_eq!(replay.stats.segments, files.len());
    append_all(&journal, 20..25).await;
    journal.snapshot(b"state after 25".to_vec()).await.unwrap();
    append_all(&journal, 25..27).await;
    journal.close().await.unwrap();

    let (_journal, replay) = open_with(dir.path(), options);
    assert_eq!(replay.snapshot.as_deref(), Some(&b"state after 25"[..]));
    assert_eq!(replay.records, payloads(25..27));
    assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
    assert_eq!(segments(dir.path())[0].file_name().unwrap().to_string_lossy(), format::segment_name(26));
}
