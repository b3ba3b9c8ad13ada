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
/// Sales go round these buyers; each buyer's terms are one more entry.
const BUYERS: usize = 10;

fn sale(n: usize) -> Sale {
    let lead = json!({"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true,
        "phone_sha256": format!("{:064x}", n), "email_sha256": format!("{:064x}", n + 1)});
    Sale {
        lead_id: format!("l_{n:032x}"),
        ping_id: format!("p_{n:032x}"),
        campaign: "auto-insurance".into(),
        seller: "acme-leads".into(),
        buyer: format!("buyer-{}", n % BUYERS),
        source: Some("site-a".into()),
        price: Money::from_cents(1250),
        payout: Money::from_cents(1125),
        at: Utc::now(),
        lead: lead.as_object().unwrap().clone(),
        terms_id: 0,
    }
}

/// A buyer's terms about the size the engine records (filters, caps, ramp, returns, SLA): written once per
/// buyer, named by every sale.
fn terms() -> serde_json::Value {
    json!({
        "filters": {"states": ["CA", "NV"], "postal_codes": ["94107", "941"], "exclude_postal_codes": ["94130"],
            "schedule": {"timezone": "America/Los_Angeles", "days": ["mon", "tue", "wed", "thu", "fri"],
                "open": "08:00", "close": "20:00"},
            "rules": [{"field": "age", "op": "gte", "value": 21}], "required_fields": ["age"],
            "require_consent": true, "max_lead_age_s": 600},
        "caps": {"hourly": 20, "daily": 200, "weekly": 800, "monthly": 3000, "daily_budget": "2500.00",
            "monthly_budget": "60000.00", "concurrent_pings": 64},
        "ramp": null, "dedupe_days": 30,
        "returns": {"enabled": true, "window_days": 7, "reasons": ["wrong_number", "disconnected", "duplicate",
            "out_of_area", "missing_fields", "fake_info", "no_consent"], "rate_cap_percent": "10", "policy_note": null},
        "sla": {"enabled": true, "window": 200, "min_samples": 20, "max_timeout_rate": 0.25, "max_error_rate": 0.25,
            "min_acceptance_rate": 0.2, "cooldown_s": 30, "probe_share": 0.1}
    })
}

const REVISION: &str = "5d41402abc4b2a76b9719d911017c592ae1b6a7b6d9f1b0d2d1e8c3f4a5b6c7d";

/// A journal of `SALES` sales under `dir`, written without fsync (only the replay is measured).
fn write_journal(dir: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let options = JournalOptions { fsync: false, ..JournalOptions::default() };
        let (ledger, _) = Ledger::open(dir, options).unwrap();
        let pending: Vec<_> = (0..SALES).map(|n| ledger.record_sale(sale(n), REVISION, terms)).collect();
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
    group.bench_function("100k sales from entries", |b| {
        b.iter(|| assert_eq!(open(dir.path()).1.entries, SALES + BUYERS))
    });

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
