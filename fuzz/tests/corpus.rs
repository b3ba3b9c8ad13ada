//! Replays the committed corpus (`corpus/<target>/`) through the same functions the fuzz targets call, on
//! stable Rust: the harness is built and exercised by CI where libFuzzer does not run, every input that once
//! found a bug stays fixed, and a seed named `accepted-…` or `refused-…` must still reach that path, so a
//! change of format cannot quietly turn the seeds into noise.

use std::fs;
use std::path::Path;

use gavel_fuzz::Outcome;

fn replay(target: &str, run: fn(&[u8]) -> Outcome) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut inputs: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty(), "no seeds in {}", dir.display());
    for input in inputs {
        let data = fs::read(&input).expect("read a corpus file");
        let name = input.file_name().expect("a file name").to_string_lossy().into_owned();
        let outcome = run(&data);
        let expected = match name.split('-').next() {
            Some("accepted") => Some(Outcome::Accepted),
            Some("refused") => Some(Outcome::Refused),
            _ => None,
        };
        if let Some(expected) = expected {
            assert_eq!(outcome, expected, "{target}/{name}");
        }
    }
}

#[test]
fn request_corpus() {
    replay("request", gavel_fuzz::request::run);
}

#[test]
fn lead_corpus() {
    replay("lead", gavel_fuzz::lead::run);
}

#[test]
fn buyer_answer_corpus() {
    replay("buyer_answer", gavel_fuzz::buyer_answer::run);
}

#[test]
fn buyer_wire_corpus() {
    replay("buyer_wire", gavel_fuzz::buyer_wire::run);
}

#[test]
fn journal_corpus() {
    replay("journal", gavel_fuzz::journal::run);
}

#[test]
fn ledger_corpus() {
    replay("ledger", gavel_fuzz::ledger::run);
}
