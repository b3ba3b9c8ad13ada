//! # Gavel's fuzz targets
//!
//! Each target is a plain function from bytes to nothing that panics when an invariant breaks. libFuzzer
//! drives them through the thin binaries in `fuzz_targets/`; `tests/corpus.rs` replays the committed corpus
//! through the very same functions on stable Rust, so the harness is built and run by CI and cannot rot.
//!
//! ## Layout
//! - [`request`] — a seller's request body → envelope → `Lead::parse`, on raw bytes.
//! - [`lead`] — `Lead::parse` on structure-aware lead objects (well-known keys, phone-, email- and ZIP-like
//!   values), checking that normalization is idempotent and that the hashes agree.
//! - [`buyer_answer`] — `classify_ping` and `classify_post` on a buyer's status and body; a bid is exact.
//! - [`buyer_wire`] — the buyer client's framing of an answer off the wire, whichever pieces it comes in.
//! - [`journal`] — journal recovery (`Journal::open`) on arbitrary and on damaged segment files.
//! - [`ledger`] — ledger replay (`Ledger::open`) on arbitrary record payloads and snapshots.
#![forbid(unsafe_code)]

pub mod buyer_answer;
pub mod buyer_wire;
pub mod journal;
pub mod lead;
pub mod ledger;
pub mod request;

use chrono::{DateTime, Utc};

/// What one input came to. The targets check their invariants by panicking; this is only for the corpus
/// test, which checks that each seed still reaches the path its name promises (`accepted-…`, `refused-…`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The input does not decode into the target's structure.
    Skipped,
    /// The code under test took it: a lead parsed, a bid read, a journal opened, a ledger replayed.
    Accepted,
    /// The code under test refused it with a clean error (or, for a buyer's answer, read no bid).
    Refused,
}

impl Outcome {
    fn of(accepted: bool) -> Outcome {
        if accepted {
            Outcome::Accepted
        } else {
            Outcome::Refused
        }
    }
}

/// Every target's notion of "now", so a run is reproducible from its input alone.
pub fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").expect("a valid fixed time").with_timezone(&Utc)
}

/// Runs a future to completion on a small runtime of this thread (the journal's `close` is async).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a current-thread runtime");
    }
    RUNTIME.with(|runtime| runtime.block_on(future))
}
