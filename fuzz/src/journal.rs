//! Journal recovery (`Journal::open`) on what a disk may hold after a crash, a bad sector or a stray edit.
//!
//! Three shapes of input, by the first byte:
//! - raw: the rest is the whole first segment file;
//! - after a header: a valid segment header, then the rest;
//! - damaged history: the rest drives a real journal (appends and snapshots, small segments), then damages its
//!   files (truncation, flipped bytes, zeroed runs, appended bytes, a removed segment).
//!
//! Invariants: `open` never panics; it either fails with `JournalError::Corrupt` and leaves the files exactly
//! as they were, or succeeds, and then a second open succeeds with no warnings and the same replay (repair is
//! idempotent), and a record appended after recovery reads back after it. Without damage, replay is exactly
//! what was written; with damage other than added bytes, it is what was written up to some point.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use gavel::ledger::journal::{Journal, JournalError, JournalOptions, Replay};

use crate::{block_on, Outcome};

/// What a history does to the journal.
#[derive(Arbitrary, Debug)]
enum Op {
    Append(Vec<u8>),
    Snapshot(Vec<u8>),
}

/// What happens to one of its files afterwards; `file` counts segments in name order, `at` wraps.
#[derive(Arbitrary, Debug)]
enum Damage {
    Truncate { file: u8, at: u16 },
    Flip { file: u8, at: u16, mask: u8 },
    Zero { file: u8, at: u16, len: u8 },
    Extend { file: u8, bytes: Vec<u8> },
    Remove { file: u8 },
}

#[derive(Arbitrary, Debug)]
struct History {
    /// Segments close after about 24 + this many bytes, so short histories span several.
    segment_bytes: u8,
    ops: Vec<Op>,
    damage: Vec<Damage>,
}

/// Runs one input (see the module doc); accepted when the journal opened.
pub fn run(data: &[u8]) -> Outcome {
    let Some((&mode, rest)) = data.split_first() else { return Outcome::Skipped };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let journal = dir.path().join("journal");
    match mode % 3 {
        0 => {
            fs::create_dir_all(&journal).expect("create the journal directory");
            fs::write(journal.join(first_segment_name()), rest).expect("write the segment");
            Outcome::of(check_open(&journal, None).is_some())
        }
        1 => {
            fs::create_dir_all(&journal).expect("create the journal directory");
            let mut bytes = empty_segment().to_vec();
            bytes.extend_from_slice(rest);
            fs::write(journal.join(first_segment_name()), bytes).expect("write the segment");
            Outcome::of(check_open(&journal, None).is_some())
        }
        _ => match History::arbitrary_take_rest(Unstructured::new(rest)) {
            Ok(history) => run_history(&journal, history),
            Err(_) => Outcome::Skipped,
        },
    }
}

fn options(segment_bytes: u64) -> JournalOptions {
    // No fsync: these files live in a temporary directory and durability is not what is tested here.
    JournalOptions { segment_bytes, fsync: false, ..JournalOptions::default() }
}

/// The state a replay rebuilds: the snapshot it starts from and the records after it.
type State = (Option<Vec<u8>>, Vec<Vec<u8>>);

fn run_history(dir: &Path, history: History) -> Outcome {
    let ops: Vec<Op> = history.ops.into_iter().take(64).collect();
    let (journal, _) = Journal::open(dir, options(24 + u64::from(history.segment_bytes))).expect("a new journal");
    let mut states: Vec<State> = vec![(None, Vec::new())];
    let mut commits = Vec::new();
    for op in ops {
        let mut state = states.last().cloned().expect("at least the empty state");
        match op {
            Op::Append(payload) => {
                state.1.push(payload.clone());
                commits.push(journal.append(payload));
            }
            Op::Snapshot(payload) => {
                state = (Some(payload.clone()), Vec::new());
                commits.push(journal.snapshot(payload));
            }
        }
        states.push(state);
    }
    block_on(async {
        for commit in commits {
            commit.await.expect("a commit to a healthy journal");
        }
        journal.close().await.expect("close");
    });

    let damage: Vec<Damage> = history.damage.into_iter().take(4).collect();
    let adds_bytes = damage.iter().any(|d| matches!(d, Damage::Extend { .. }));
    for one in &damage {
        apply(dir, one);
    }
    let replay = check_open(dir, Some(options(64)));
    let Some(replay) = replay else {
        assert!(!damage.is_empty(), "an undamaged journal failed to open");
        return Outcome::Refused;
    };
    let found = (replay.snapshot, replay.records);
    if damage.is_empty() {
        assert_eq!(&found, states.last().expect("the final state"), "replay differs from what was written");
    } else if !adds_bytes {
        assert!(states.contains(&found), "replay is no state the journal ever had: {found:?}");
    }
    Outcome::Accepted
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list the journal")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

fn apply(dir: &Path, damage: &Damage) {
    let files = segments(dir);
    if files.is_empty() {
        return;
    }
    let pick = |file: u8| &files[usize::from(file) % files.len()];
    let (path, mut bytes) = match damage {
        Damage::Remove { file } => {
            fs::remove_file(pick(*file)).expect("remove a segment");
            return;
        }
        Damage::Truncate { file, .. }
        | Damage::Flip { file, .. }
        | Damage::Zero { file, .. }
        | Damage::Extend { file, .. } => {
            let path = pick(*file);
            (path, fs::read(path).expect("read a segment"))
        }
    };
    let wrap = |at: u16, len: usize| usize::from(at) % len.max(1);
    match damage {
        Damage::Truncate { at, .. } => bytes.truncate(wrap(*at, bytes.len())),
        Damage::Flip { at, mask, .. } if !bytes.is_empty() => {
            let at = wrap(*at, bytes.len());
            bytes[at] ^= (*mask).max(1);
        }
        Damage::Zero { at, len, .. } if !bytes.is_empty() => {
            let at = wrap(*at, bytes.len());
            let end = (at + usize::from(*len) + 1).min(bytes.len());
            bytes[at..end].fill(0);
        }
        Damage::Extend { bytes: extra, .. } => bytes.extend_from_slice(extra),
        _ => {}
    }
    fs::write(path, bytes).expect("write a damaged segment");
}

/// Opens the journal in `dir` and checks the invariants; the replay if it opened.
fn check_open(dir: &Path, options: Option<JournalOptions>) -> Option<Replay> {
    let options = options.unwrap_or_else(|| self::options(64));
    let before = files_of(dir);
    let (journal, replay) = match Journal::open(dir, options.clone()) {
        Ok(opened) => opened,
        Err(JournalError::Corrupt { .. }) => {
            assert_eq!(files_of(dir), before, "a refused journal was changed");
            return None;
        }
        Err(other) => panic!("open failed with something other than damage: {other}"),
    };
    block_on(journal.close()).expect("close after recovery");

    let (journal, again) = Journal::open(dir, options.clone()).expect("a repaired journal reopens");
    assert!(again.warnings.is_empty(), "a second open still repairs: {:?}", again.warnings);
    assert_eq!((&again.snapshot, &again.records), (&replay.snapshot, &replay.records), "reopen replays otherwise");
    block_on(async {
        journal.append(b"after recovery".to_vec()).await.expect("append after recovery");
        journal.close().await.expect("close");
    });

    let (journal, last) = Journal::open(dir, options).expect("reopen after an append");
    assert!(last.warnings.is_empty(), "{:?}", last.warnings);
    let mut expected = replay.records.clone();
    expected.push(b"after recovery".to_vec());
    assert_eq!((&last.snapshot, &last.records), (&replay.snapshot, &expected), "the appended record is lost");
    block_on(journal.close()).expect("close");
    Some(replay)
}

/// Every file in `dir` but the lock, with its bytes.
fn files_of(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fs::read_dir(dir)
        .expect("list the journal")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "log"))
        .map(|path| {
            let bytes = fs::read(&path).expect("read a file");
            (path, bytes)
        })
        .collect()
}

/// A new journal's first segment, as the journal itself writes it: (file name, bytes). Taken from a real
/// journal rather than written out here, so the targets follow the format wherever it goes.
fn first_segment() -> &'static (String, Vec<u8>) {
    static FIRST: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    FIRST.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let (journal, _) = Journal::open(dir.path(), options(64)).expect("a new journal");
        block_on(journal.close()).expect("close");
        let path = segments(dir.path()).into_iter().next().expect("a new journal has a segment");
        let name = path.file_name().expect("a file name").to_string_lossy().into_owned();
        let bytes = fs::read(&path).expect("read the segment");
        (name, bytes)
    })
}

fn first_segment_name() -> &'static str {
    &first_segment().0
}

fn empty_segment() -> &'static [u8] {
    &first_segment().1
}
