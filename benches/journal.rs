//! Journal throughput with 200-byte records (about one sale): group commit from many producers against one
//! fsync per record and against fsync off, all in the same run (PERF.md: ratios to a same-run baseline).
//! Each durable case runs twice side by side: segments preallocated with zeroes (the default) and grown by
//! every batch (`preallocate_bytes: 0`), so that what preallocation buys is read from one run.
//!
//! `cargo bench --bench journal -- --warm-up-time 1 --measurement-time 5`; criterion reports records/s as
//! `elem/s`. The journal lives under `$GAVEL_BENCH_DIR`, else the system temp directory: on tmpfs an fsync
//! costs nothing and the figures say nothing about a disk.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gavel::ledger::journal::{Journal, JournalOptions};
use tokio::time::Instant;

const RECORD_BYTES: usize = 200;

/// The default preallocation step; 0 grows the file with each batch.
const PREALLOCATED: u64 = 1 << 20;
const GROWN: u64 = 0;

/// (name, producers, fsync, preallocate_bytes), each grown case right before its preallocated twin so that
/// drift in the machine's load hits both alike. Fsync off runs last so its dirty pages do not slow the
/// durable runs' fsyncs.
const CASES: [(&str, u64, bool, u64); 7] = [
    ("group commit, 64 producers, grown per batch", 64, true, GROWN),
    ("group commit, 64 producers", 64, true, PREALLOCATED),
    ("group commit, 256 producers, grown per batch", 256, true, GROWN),
    ("group commit, 256 producers", 256, true, PREALLOCATED),
    ("fsync per record, 1 producer, grown per batch", 1, true, GROWN),
    ("fsync per record, 1 producer", 1, true, PREALLOCATED),
    ("fsync off, 64 producers", 64, false, PREALLOCATED),
];

fn journal_throughput(c: &mut Criterion) {
    // Two workers, as on the 2-core machines the target is set for; the writer is a thread of its own.
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("runtime");
    let root = std::env::var_os("GAVEL_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    let mut group = c.benchmark_group("journal");
    // Few, long samples: each must hold thousands of records for 64 producers to be busy at once.
    group.sample_size(10);
    group.throughput(Throughput::Elements(1));
    for (name, producers, fsync, preallocate_bytes) in CASES {
        let dir = tempfile::Builder::new().prefix("gavel-journal-bench").tempdir_in(&root).expect("bench directory");
        let options = JournalOptions { fsync, preallocate_bytes, ..JournalOptions::default() };
        let (journal, _) = Journal::open(dir.path(), options).expect("journal opens");
        group
            .bench_function(name, |b| b.iter_custom(|records| runtime.block_on(produce(&journal, producers, records))));
        let stats = journal.stats();
        // How much group commit batched, which the throughput alone does not show.
        eprintln!("{name}: {:.1} records per batch", stats.records as f64 / stats.batches.max(1) as f64);
        runtime.block_on(journal.close()).expect("journal closes");
    }
    group.finish();
}

/// Appends `records` records from `producers` tasks, each awaiting its commit before the next append, as a
/// seller's post waits for "sold"; returns the time until the last is durable.
async fn produce(journal: &Journal, producers: u64, records: u64) -> Duration {
    let started = Instant::now();
    let tasks: Vec<_> = (0..producers)
        .map(|p| {
            let share = records / producers + u64::from(p < records % producers);
            let journal = journal.clone();
            tokio::spawn(async move {
                for _ in 0..share {
                    journal.append(vec![0xA5; RECORD_BYTES]).await.expect("record is durable");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("producer finishes");
    }
    started.elapsed()
}

criterion_group!(benches, journal_throughput);
criterion_main!(benches);
