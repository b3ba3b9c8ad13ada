//! Sales committed to PostgreSQL per second, cluster mode's ledger of record: producers that each await their
//! commit before the next sale (as a post waits for `sold`), one node's writer grouping whatever arrived into
//! one transaction. Same entries as the journal bench; money answered only after COMMIT.
//!
//! `cargo bench --bench postgres` (needs PostgreSQL; `GAVEL_BENCH_POSTGRES_URL`, default
//! `postgres://root@127.0.0.1:5432/test`). Not criterion: each case is a fixed wall-clock run of concurrent
//! producers, reported as sales per second, with the batch sizes the writer formed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gavel::domain::money::Money;
use gavel::ledger::postgres::{PgLedger, PgOptions};
use gavel::ledger::Sale;
use rand::Rng;
use serde_json::json;
use tokio::time::Instant;

/// How long each case runs.
const RUN: Duration = Duration::from_secs(8);

fn sale(n: u64, buyer: u64) -> Sale {
    let lead = json!({"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true,
        "phone_sha256": format!("{:064x}", n), "email_sha256": format!("{:064x}", n + 1)});
    Sale {
        lead_id: format!("l_{n:032x}"),
        ping_id: format!("p_{n:032x}"),
        campaign: "auto-insurance".into(),
        seller: "acme-leads".into(),
        buyer: format!("buyer-{buyer}"),
        source: Some("site-a".into()),
        price: Money::from_cents(1250),
        payout: Money::from_cents(1125),
        at: Utc::now(),
        lead: lead.as_object().expect("object").clone(),
        terms_id: 0,
    }
}

async fn case(url: &str, producers: u64) {
    let exchange = format!("bench{:08x}", rand::thread_rng().gen::<u32>());
    let commits = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&commits);
    let options = PgOptions {
        url: url.to_owned(),
        exchange: exchange.clone(),
        node: "bench".into(),
        observer: None,
        on_commit: Some(Arc::new(move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
        })),
    };
    let ledger = Arc::new(PgLedger::open(options).await.expect("PostgreSQL reachable (GAVEL_BENCH_POSTGRES_URL)"));
    let batches_before = batches(url, &exchange).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for producer in 0..producers {
        let ledger = Arc::clone(&ledger);
        tasks.push(tokio::spawn(async move {
            let mut n = producer << 32;
            let mut sold = 0u64;
            while started.elapsed() < RUN {
                let terms = || json!({"caps": {"daily": 200}});
                ledger.record_sale(sale(n, producer % 10), "rev-1", terms).await.expect("recorded");
                n += 1;
                sold += 1;
            }
            sold
        }));
    }
    let mut sold = 0;
    for task in tasks {
        sold += task.await.expect("producer");
    }
    let took = started.elapsed();
    let batches = batches(url, &exchange).await - batches_before;
    println!(
        "{producers:>4} producers: {:>8.0} sales/s committed ({sold} in {:.1} s, {batches} transactions, {:.1} sales each)",
        sold as f64 / took.as_secs_f64(),
        took.as_secs_f64(),
        sold as f64 / batches.max(1) as f64,
    );
    ledger.close().await.expect("closed");
    drop_schema(url, &exchange).await;
}

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

async fn batches(url: &str, exchange: &str) -> u64 {
    let sql = format!("SELECT count(DISTINCT batch) FROM gavel_{exchange}.entries");
    client(url).await.query_one(&sql, &[]).await.map_or(0, |row| row.get::<_, i64>(0) as u64)
}

async fn drop_schema(url: &str, exchange: &str) {
    let _ = client(url).await.batch_execute(&format!("DROP SCHEMA gavel_{exchange} CASCADE")).await;
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing of use: run only when benched.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let url =
        std::env::var("GAVEL_BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://root@127.0.0.1:5432/test".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        for producers in [1, 64, 256, 1024] {
            case(&url, producers).await;
        }
    });
}
