//! The worker threads (`http::workers`): an auction runs on the thread that accepted its seller's connection,
//! pinging the buyers over that worker's own connections.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;

/// A client that keeps to one connection: its requests, one after another, reuse it.
fn one_connection() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client")
}

/// The series of a per-worker counter in `/metrics`, by worker.
async fn per_worker(metrics: &reqwest::Client, app: &TestApp, name: &str) -> BTreeMap<String, u64> {
    let text = metrics.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let prefix = format!("{name}{{worker=\"");
    text.lines()
        .filter_map(|line| {
            let (worker, value) = line.strip_prefix(&prefix)?.split_once("\"} ")?;
            Some((worker.to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// What changed between two readings, by worker (workers that did not change left out).
fn grown(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(worker, n)| (worker.clone(), n - before.get(worker).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

async fn pings(client: &reqwest::Client, app: &TestApp, count: usize) {
    for _ in 0..count {
        let response = client
            .post(format!("{}/v1/ping", app.base))
            .bearer_auth(SELLER_KEY)
            .json(&json!({"campaign": "auto", "lead": ping_lead()}))
            .send()
            .await
            .expect("ping sent");
        assert_eq!(response.status(), StatusCode::OK);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["status"], "bid", "{body}");
    }
}

/// Each seller connection goes to one worker, and its auctions run on that worker's thread (they are counted
/// on the thread their fan-out ends on) with that worker's buyer connections: the second seller connection,
/// handed to the other worker, makes the buyer see a second connection although the first worker's stays
/// open and idle. An auction moved to another thread, or pinging through one shared client, fails this.
#[tokio::test]
async fn an_auction_runs_on_the_worker_that_accepted_its_connection_with_that_worker_s_buyer_connections() {
    let tuning = Tuning { server: "workers = 2", ..Tuning::default() };
    let app = spawn_tuned_app(tuning, "", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let buyer = app.sim("buyer");
    assert_eq!(buyer.connections(), 0);
    // Its own connection, opened here and kept, so the counts below move only with the sellers' connections.
    let metrics = one_connection();
    let connections_before = per_worker(&metrics, &app, "gavel_worker_connections_total").await;
    let auctions_before = per_worker(&metrics, &app, "gavel_worker_auctions_total").await;

    let first = one_connection();
    pings(&first, &app, 4).await;
    let connections = per_worker(&metrics, &app, "gavel_worker_connections_total").await;
    let auctions = per_worker(&metrics, &app, "gavel_worker_auctions_total").await;
    let handed = grown(&connections_before, &connections);
    assert_eq!(handed.len(), 1, "one new connection, to one worker: {handed:?}");
    let first_worker = handed.keys().next().unwrap().clone();
    assert_eq!(grown(&auctions_before, &auctions), BTreeMap::from([(first_worker.clone(), 4)]));
    assert_eq!(buyer.connections(), 1, "one worker's pool: one buyer connection, reused");

    let second = one_connection();
    pings(&second, &app, 4).await;
    pings(&first, &app, 2).await;
    let connections_after = per_worker(&metrics, &app, "gavel_worker_connections_total").await;
    let auctions_after = per_worker(&metrics, &app, "gavel_worker_auctions_total").await;
    let handed = grown(&connections, &connections_after);
    assert_eq!(handed.len(), 1, "{handed:?}");
    let second_worker = handed.keys().next().unwrap().clone();
    assert_ne!(second_worker, first_worker, "connections are handed to the workers in turn");
    assert_eq!(
        grown(&auctions, &auctions_after),
        BTreeMap::from([(first_worker, 2), (second_worker, 4)]),
        "every auction on the worker of its seller's connection"
    );
    assert_eq!(buyer.connections(), 2, "each worker pings over connections of its own");
    assert_eq!(buyer.ping_count(), 10);
}
