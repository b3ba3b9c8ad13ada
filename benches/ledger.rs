//! What start-up costs: replaying a journal of sales into the books, from the entries and from a snapshot.
//! Each sale entry is what the engine really writes (ping fields and the phone and email hashes).

use std::time::Duration;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion};
use gavel::domain::money::Money;
use gavel::ledger::journal::JournalOptions;
use gavel::ledger::{Ledger, Recovery, Sale};
use serde_json::json;

const SALES: usize = 100_000;

fn sale(n: usize) -> Sale {
    let lead = json!({"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true,
        "phone_sha256": format!("{:064x}", n), "email_sha256": format!("{:064x}", n + 1)});
    Sale {
        lead_id: format!("l_{n:032x}"),
        ping_id: format!("p_{n:032x}"),
        campaign: "auto-insurance".into(),
        seller: "acme-leads".into(),
        buyer: format!("buyer-{}", n % 10),
        source: Some("site-a".into()),
        price: Money::from_cents(1250),
        payout: Money::from_cents(1125),
        at: Utc::now(),
        lead: lead.as_object().unwrap().clone(),
    }
}

/// A journal of `SALES` sales under `dir`, written without fsync (only the replay is measured).
fn write_journal(dir: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let options = JournalOptions { fsync: false, ..JournalOptions::default() };
        let (ledger, _) = Ledger::open(dir, options).unwrap();
        let pending: Vec<_> = (0..SALES).map(|n| ledger.record_sale(sale(n))).collect();
        for sold in futures_util::future::join_all(pending).await {
            sold.unwrap();
        }
        ledger.close().await.unwrap();
    });
}

fn open(dir: &std::path::Path) -> (Ledger, Recovery) {
    Ledger::open(dir, JournalOptions::default()).unwrap()
}

fn replay(c: &mut Criterion) {
    let mut group = c.benchmark_group("replay");
    group.sample_size(10).measurement_time(Duration::from_secs(10));
    let dir = tempfile::tempdir().unwrap();
    write_journal(dir.path());
    let bytes: u64 = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
    eprintln!("journal of {SALES} sales: {bytes} bytes, {} bytes a sale", bytes / SALES as u64);
    group.bench_function("100k sales from entries", |b| b.iter(|| assert_eq!(open(dir.path()).1.entries, SALES)));

    // The same books from a snapshot: what every start-up after the first costs.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (ledger, recovery) = open(dir.path());
        ledger.snapshot_if_long(&recovery).await.unwrap();
        ledger.close().await.unwrap();
    });
    group.bench_function("100k sales from a snapshot", |b| {
        b.iter(|| {
            let (ledger, recovery) = open(dir.path());
            assert!(recovery.from_snapshot);
            assert_eq!(ledger.sale_count(), SALES);
        })
    });
    group.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
