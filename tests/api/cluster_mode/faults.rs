//! Faults (API.md section 9): a store that goes away makes the calls that need it answer 503 `unavailable`,
//! records nothing and delivers nothing, and the node recovers by itself; Redis coming back empty is rebuilt
//! from the ledger with no cap exceeded; a node killed mid-load loses nothing it answered. Every test that
//! stops, kills or empties a store runs its own instance of it (`stores.rs`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::future::join_all;
use gavel::sim::{Latency, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::proxy::CommitCutter;
use super::stores::{free_port, PrivatePostgres, PrivateRedis};
use super::{
    cluster_table, exchange_name, postgres_url, redis_url, require_stores, spawn_cluster_on, Cluster, Exchange,
};
use crate::helpers::{
    full_lead, http_client, ping_lead, prepare, Api, TestBuyer, Tuning, ADMIN_TOKEN, GAVEL, SELLER_KEY,
};

/// Polls `/readyz` until it answers `status`, at most `within`.
async fn wait_for_readiness(node: &Api, status: u16, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let answer = node.http.get(format!("{}/readyz", node.base)).send().await.map(|r| r.status().as_u16());
        if answer.as_ref().is_ok_and(|s| *s == status) {
            return;
        }
        assert!(Instant::now() < deadline, "{} /readyz is {answer:?}, not {status}, after {within:?}", node.base);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A connection of the test's own to PostgreSQL, to lock what a node needs.
async fn connect_to(postgres: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(postgres, tokio_postgres::NoTls).await.expect("PostgreSQL");
    tokio::spawn(connection);
    client
}

fn unavailable(answer: &(StatusCode, Value)) -> bool {
    answer.0 == StatusCode::SERVICE_UNAVAILABLE && answer.1["error"]["code"] == "unavailable"
}

#[tokio::test]
async fn postgres_going_away_refuses_with_503_delivers_nothing_and_recovers_without_a_restart() {
    let mut postgres = PrivatePostgres::start().await;
    let redis = PrivateRedis::start().await;
    let buyers = vec![TestBuyer::bidding("best", "10.00")];
    let cluster = spawn_cluster_on(2, Tuning::default(), "", buyers, &postgres.url(), &redis.url()).await;
    let ping = cluster.node(0).ping().await;
    let ping_id = ping["ping_id"].as_str().unwrap().to_owned();

    postgres.stop();
    for node in &cluster.nodes {
        wait_for_readiness(node, 503, Duration::from_secs(5)).await;
    }
    let refused = cluster.node(1).post(&ping_id, full_lead(), json!({})).await;
    assert!(unavailable(&refused), "{refused:?}");
    let retry_after = cluster
        .node(1)
        .http
        .post(format!("{}/v1/ping", cluster.node(1).base))
        .bearer_auth(SELLER_KEY)
        .json(&json!({"campaign": "auto", "lead": ping_lead()}))
        .send()
        .await
        .unwrap();
    assert_eq!(retry_after.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(retry_after.headers().contains_key("retry-after"));
    let (status, _) =
        cluster.node(0).post_json("/admin/buyers/best/deposits", ADMIN_TOKEN, &json!({"amount": "5.00"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "a deposit is not answered while it cannot be recorded");
    assert_eq!(cluster.sim("best").post_count(), 0, "no lead delivered that could not be booked");
    let (status, view) = cluster.node(0).get_json("/admin/cluster", ADMIN_TOKEN).await;
    assert_eq!((status, &view["stores"]["postgres"]), (StatusCode::OK, &json!("down")), "{view}");

    postgres.resume().await;
    for node in &cluster.nodes {
        wait_for_readiness(node, 200, Duration::from_secs(10)).await;
    }
    // The 503 left the bids held: the same post sells now.
    let (status, sold) = cluster.node(1).post(&ping_id, full_lead(), json!({})).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    let (_, balance) = cluster.node(0).get_json("/v1/buyer/balance", "bk_best").await;
    assert_eq!(balance["balance"], "9990.00", "{balance}");
}

/// A change whose commit the node could not confirm in time is answered "nothing was recorded" only once that
/// is final: PostgreSQL's process still running it is ended before the log is asked, so it cannot commit after
/// the answer (a deposit answered 503 and booked anyway would be booked twice by the operator's retry).
#[tokio::test]
async fn a_deposit_answered_unavailable_is_never_booked_afterwards() {
    let postgres = postgres_url();
    let cluster =
        spawn_cluster_on(1, Tuning::default(), "", vec![TestBuyer::bidding("best", "10.00")], &postgres, &redis_url())
            .await;
    let store = connect_to(&postgres).await;
    let deposits = format!("SELECT count(*) FROM gavel_{}.entries WHERE kind = 'deposit'", cluster.name);
    let before: i64 = store.query_one(&deposits, &[]).await.expect("count").get(0);

    // Reads go on, inserts wait: the node's INSERT (its COMMIT queued behind it) outlasts its 5 s timeout.
    let lock = format!("BEGIN; LOCK TABLE gavel_{}.entries IN SHARE MODE", cluster.name);
    store.batch_execute(&lock).await.expect("lock");
    let deposit = json!({"amount": "5.00", "reference": "wire 1"});
    let answer = cluster.node(0).post_json("/admin/buyers/best/deposits", ADMIN_TOKEN, &deposit).await;
    assert!(unavailable(&answer), "{answer:?}");
    store.batch_execute("COMMIT").await.expect("unlock");

    // Had the node's INSERT outlived the answer, it would commit now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: i64 = store.query_one(&deposits, &[]).await.expect("count").get(0);
    assert_eq!(after, before, "the deposit answered 503 was not booked");
    // The node goes on: the operator's retry is booked once.
    let (status, booked) = cluster.node(0).post_json("/admin/buyers/best/deposits", ADMIN_TOKEN, &deposit).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
    let after: i64 = store.query_one(&deposits, &[]).await.expect("count").get(0);
    assert_eq!(after, before + 1);
}

/// One node whose PostgreSQL is reached through `proxy`, and its exchange again, to be dropped straight on the
/// stores (`postgres`) rather than through the proxy: a test that fails while the proxy refuses would
/// otherwise leave its schema behind.
async fn one_node_behind(proxy: &CommitCutter, postgres: &str) -> (Cluster, Exchange) {
    let buyers = vec![TestBuyer::bidding("best", "10.00")];
    let cluster = spawn_cluster_on(1, Tuning::default(), "", buyers, &proxy.url(), &redis_url()).await;
    let exchange = Exchange { name: cluster.name.clone(), postgres: postgres.to_owned(), redis: redis_url() };
    (cluster, exchange)
}

/// A change whose COMMIT reached PostgreSQL but whose answer was lost with the connection, PostgreSQL then
/// unreachable for two seconds: the node asks the log again until it answers, so a deposit that was booked is
/// answered as booked — not 503 "nothing was recorded", which an operator would retry and book twice.
#[tokio::test]
async fn a_deposit_whose_commit_answer_was_lost_is_answered_as_booked() {
    let postgres = postgres_url();
    let proxy = CommitCutter::start(&postgres, Duration::from_secs(2));
    let (cluster, _dropped_past_the_proxy) = one_node_behind(&proxy, &postgres).await;
    let store = connect_to(&postgres).await;
    let deposits = format!("SELECT count(*) FROM gavel_{}.entries WHERE kind = 'deposit'", cluster.name);
    let before: i64 = store.query_one(&deposits, &[]).await.expect("count").get(0);

    proxy.arm();
    let deposit = json!({"amount": "5.00", "reference": "wire 7"});
    let (status, booked) = cluster.node(0).post_json("/admin/buyers/best/deposits", ADMIN_TOKEN, &deposit).await;
    assert_eq!(proxy.cuts(), 1, "the COMMIT's answer went missing");
    let after: i64 = store.query_one(&deposits, &[]).await.expect("count").get(0);
    assert_eq!(after, before + 1, "PostgreSQL committed the deposit");
    assert_eq!(status, StatusCode::CREATED, "a deposit that was booked is answered as booked: {booked}");
    assert_eq!(booked["balance"], "10005.00", "{booked}");
    // The node's books were rebuilt from the log: its reads agree.
    let (status, buyer) = cluster.node(0).get_json("/admin/buyers/best", ADMIN_TOKEN).await;
    assert_eq!((status, &buyer["balance"]), (StatusCode::OK, &json!("10005.00")), "{buyer}");
}

/// The same with PostgreSQL out of reach for longer than the node asks (ten seconds): the deposit, booked, is
/// answered 503 saying its outcome is unknown — never "nothing was recorded" — and once PostgreSQL answers
/// again the node's reads show it booked, once; sent again under its `Idempotency-Key`, it is answered as
/// booked and not booked again.
#[tokio::test]
async fn a_deposit_of_unknown_outcome_is_answered_so_and_reads_show_the_truth_later() {
    let postgres = postgres_url();
    let proxy = CommitCutter::start(&postgres, Duration::from_secs(14));
    let (cluster, _dropped_past_the_proxy) = one_node_behind(&proxy, &postgres).await;

    proxy.arm();
    let deposit = json!({"amount": "5.00", "reference": "wire 8"});
    let path = "/admin/buyers/best/deposits";
    let (status, body, _) = cluster.node(0).post_keyed(path, ADMIN_TOKEN, "wire-8", &deposit).await;
    let answer = (status, body);
    assert_eq!(proxy.cuts(), 1, "the COMMIT's answer went missing");
    assert!(unavailable(&answer), "{answer:?}");
    let message = answer.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("not known"), "the answer does not claim nothing was recorded: {message}");
    assert!(!message.contains("nothing was recorded"), "{message}");
    assert!(message.contains("same Idempotency-Key"), "the answer says how to find out safely: {message}");

    wait_for_readiness(cluster.node(0), 200, Duration::from_secs(20)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, buyer) = cluster.node(0).get_json("/admin/buyers/best", ADMIN_TOKEN).await;
        if status == StatusCode::OK {
            assert_eq!(buyer["balance"], "10005.00", "the deposit is booked once: {buyer}");
            break;
        }
        assert!(Instant::now() < deadline, "the node's books never came back: {status} {buyer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, again, replayed) = cluster.node(0).post_keyed(path, ADMIN_TOKEN, "wire-8", &deposit).await;
    assert_eq!((status, replayed, &again["balance"]), (StatusCode::CREATED, true, &json!("10005.00")), "{again}");
}

/// A writer whose transaction cannot start within its timeout (the ledger's table locked away) answers 503 at
/// the timeout and goes on with the next change, instead of waiting behind the lock for as long as it lasts.
#[tokio::test]
async fn a_change_stuck_behind_a_lock_answers_503_at_its_timeout() {
    let postgres = postgres_url();
    let buyers = vec![TestBuyer::bidding("best", "10.00")];
    let cluster = spawn_cluster_on(1, Tuning::default(), "", buyers, &postgres, &redis_url()).await;
    let store = connect_to(&postgres).await;
    let lock = format!("BEGIN; LOCK TABLE gavel_{}.entries IN ACCESS EXCLUSIVE MODE", cluster.name);
    store.batch_execute(&lock).await.expect("lock");
    // Held for 20 s: the node's round trip gives up after 5.
    let unlock = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(20)).await;
        store.batch_execute("COMMIT").await.expect("unlock");
    });

    let started = Instant::now();
    let deposit = json!({"amount": "5.00", "reference": "wire 1"});
    let answer = cluster.node(0).post_json("/admin/buyers/best/deposits", ADMIN_TOKEN, &deposit).await;
    assert!(unavailable(&answer), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(15), "answered after {:?}, once the lock went", started.elapsed());
    unlock.await.expect("unlocked");
    let (status, booked) = cluster.node(0).post_json("/admin/buyers/best/deposits", ADMIN_TOKEN, &deposit).await;
    assert_eq!(status, StatusCode::CREATED, "{booked}");
}

#[tokio::test]
async fn redis_going_away_refuses_with_503_and_an_empty_redis_is_rebuilt() {
    let mut redis = PrivateRedis::start().await;
    let buyers = vec![TestBuyer::bidding("best", "10.00").with("[buyers.caps]\ndaily = 5")];
    let cluster = spawn_cluster_on(2, Tuning::default(), "", buyers, &postgres_url(), &redis.url()).await;
    let ping = cluster.node(0).ping().await;
    let (_, sold) = cluster.node(1).post(ping["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold", "{sold}");
    let held = cluster.node(0).ping().await;
    assert_eq!(held["status"], "bid");

    redis.kill();
    for node in &cluster.nodes {
        wait_for_readiness(node, 503, Duration::from_secs(5)).await;
    }
    let refused = cluster.node(0).ping_with(ping_lead(), json!({})).await;
    assert!(unavailable(&refused), "{refused:?}");

    // Back, but empty: the nodes rebuild it from the ledger before they take another hold.
    redis.restart_empty().await;
    for node in &cluster.nodes {
        wait_for_readiness(node, 200, Duration::from_secs(10)).await;
    }
    let view = cluster.node(1).buyer("best").await;
    assert_eq!(view["caps"]["daily"]["used"], 1, "the day's sale was counted again: {view}");
    // The hold of the unposted bid went with Redis: its post is told the bid expired.
    let (status, expired) = cluster.node(1).post(held["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!((status, &expired["error"]["code"]), (StatusCode::GONE, &json!("ping_expired")), "{expired}");
    let (status, after) = cluster.node(0).ping_with(ping_lead(), json!({})).await;
    let ready = cluster.node(0).http.get(format!("{}/readyz", cluster.node(0).base)).send().await.unwrap().text().await;
    assert_eq!((status, &after["status"]), (StatusCode::OK, &json!("bid")), "{after} {ready:?}");
}

#[tokio::test]
async fn redis_emptied_mid_load_never_lets_a_cap_be_exceeded() {
    let redis = PrivateRedis::start().await;
    let spec =
        SimBuyerSpec { post_latency: Latency::Fixed(Duration::from_millis(20)), ..SimBuyerSpec::bidding("10.00") };
    let buyers = vec![TestBuyer::new("capped", spec).with("[buyers.caps]\ndaily = 12")];
    let cluster = spawn_cluster_on(3, Tuning::default(), "", buyers, &postgres_url(), &redis.url()).await;
    let wave = |size: usize| {
        let posts = (0..size).map(|i| {
            let node = cluster.node(i % 3);
            async move {
                let body = json!({"campaign": "auto", "lead": ping_lead()});
                node.post_json("/v1/leads", SELLER_KEY, &body).await
            }
        });
        join_all(posts)
    };
    let first: Vec<(StatusCode, Value)> = wave(8).await;
    let (flushed, during) = tokio::join!(
        async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            redis.flush().await;
            Instant::now()
        },
        wave(30)
    );
    // Every node notices the empty Redis and one rebuilds it within a second or so.
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    loop {
        let epoch: Option<String> =
            redis::cmd("GET").arg(format!("gavel:{}:epoch", cluster.name)).query_async(&mut connection).await.unwrap();
        if epoch.is_some() {
            break;
        }
        assert!(flushed.elapsed() < Duration::from_secs(3), "no node rebuilt Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after: Vec<(StatusCode, Value)> = wave(40).await;
    let sold =
        first.iter().chain(&during).chain(&after).filter(|(_, answer)| answer["status"] == "sold").count() as u64;
    assert!(sold <= 12, "sold {sold} against a daily cap of 12");
    assert_eq!(cluster.sim("capped").post_count(), sold, "every delivery was booked and answered");
    let (_, accounts) = cluster.node(1).get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    let buyer = accounts["accounts"].as_array().unwrap().iter().find(|a| a["id"] == "buyer:capped").unwrap().clone();
    let expected = format!("{}.00", 10_000 - 10 * sold);
    assert_eq!(buyer["balance"], json!(expected), "{accounts}");
}

/// A node run as its own process, so that it can be killed.
struct Process {
    child: Child,
    node: Api,
}

/// POSTs JSON to a node that may die meanwhile: `Err` when it did.
async fn post_lenient(node: &Api, path: &str, body: &Value) -> Result<Value, reqwest::Error> {
    let response = node.http.post(format!("{}{path}", node.base)).bearer_auth(SELLER_KEY).json(body).send().await?;
    response.json().await
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count` nodes of one config as processes of their own (so one can be killed with `kill -9`), ready.
async fn spawn_processes(count: usize, config_path: &std::path::Path, root: &std::path::Path) -> Vec<Process> {
    let mut processes = Vec::new();
    for index in 0..count {
        let port = free_port();
        let child = Command::new(GAVEL)
            .args(["serve", "--config"])
            .arg(config_path)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--node-id", &format!("node-{index}"), "--data-dir"])
            .arg(root.join(format!("data-{index}")))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("gavel starts");
        let node = Api { base: format!("http://127.0.0.1:{port}"), http: http_client() };
        processes.push(Process { child, node });
    }
    for process in &processes {
        super::wait_until_ready(&process.node).await;
    }
    processes
}

#[tokio::test]
async fn a_node_killed_mid_load_loses_nothing_it_answered_and_its_holds_and_slots_come_back() {
    let (postgres, redis) = (postgres_url(), redis_url());
    require_stores(&postgres, &redis).await;
    let name = exchange_name();
    // Dropped at the end, however the test ends.
    let _exchange = super::Exchange { name: name.clone(), postgres: postgres.clone(), redis: redis.clone() };
    let spec =
        SimBuyerSpec { ping_latency: Latency::Fixed(Duration::from_millis(30)), ..SimBuyerSpec::bidding("10.00") };
    let hanging =
        TestBuyer::new("slow", SimBuyerSpec::hanging()).with("timeout_ms = 2000\n[buyers.caps]\nconcurrent_pings = 1");
    let prepared = prepare(
        Tuning::default(),
        "bid_ttl_s = 2\nping_deadline_ms = 2500",
        vec![TestBuyer::new("best", spec), hanging],
    )
    .await;
    let config = format!("{}{}", prepared.config_text, cluster_table(&name, &postgres, &redis));
    std::fs::write(&prepared.config_path, &config).unwrap();
    // Kept alive to the end: dropping them stops the simulated buyers.
    let _sims = prepared.sims;
    let root = std::sync::Arc::new(prepared.root);
    let mut processes = spawn_processes(3, &prepared.config_path, root.path()).await;
    processes[0].node.deposit("best", "10000.00").await;
    processes[0].node.deposit("slow", "10000.00").await;
    for process in &processes {
        process.node.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    }

    // The victim takes the slow buyer's only concurrency slot, then dies with it.
    let victim_ping = {
        let node = processes[2].node.clone();
        tokio::spawn(
            async move { post_lenient(&node, "/v1/ping", &json!({"campaign": "auto", "lead": ping_lead()})).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Load on every node; the victim is killed in the middle of it.
    let posts = (0..45).map(|i| {
        let node = processes[i % 3].node.clone();
        async move {
            let body = json!({"campaign": "auto", "lead": ping_lead(), "deadline_ms": 300});
            post_lenient(&node, "/v1/leads", &body).await
        }
    });
    let load = tokio::spawn(join_all(posts));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let killed_at = Instant::now();
    let _ = processes[2].child.kill();
    let _ = processes[2].child.wait();
    let answers = load.await.unwrap();
    drop(victim_ping);

    let sold: Vec<String> = answers
        .iter()
        .filter_map(|answer| answer.as_ref().ok())
        .filter(|answer| answer["status"] == "sold")
        .map(|answer| answer["lead_id"].as_str().unwrap().to_owned())
        .collect();
    assert!(!sold.is_empty(), "the survivors kept selling: {:?}", &answers[..3]);
    for survivor in &processes[..2] {
        for lead_id in &sold {
            let (status, record) = survivor.node.get_json(&format!("/admin/leads/{lead_id}"), ADMIN_TOKEN).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{lead_id} answered sold but {} has no record: {record}",
                survivor.node.base
            );
        }
        let (_, accounts) = survivor.node.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
        let balances = accounts["accounts"].as_array().unwrap();
        let total: rust_decimal::Decimal =
            balances.iter().map(|a| a["balance"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap()).sum();
        assert!(total.is_zero(), "{accounts}");
        let best = balances.iter().find(|a| a["id"] == "buyer:best").unwrap();
        let (_, transactions) =
            survivor.node.get_json("/admin/ledger/transactions?account=buyer:best", ADMIN_TOKEN).await;
        let sales = transactions["transactions"].as_array().unwrap().iter().filter(|t| t["kind"] == "sale").count();
        assert!(sales >= sold.len(), "every answered sale is booked once ({sales} sales, {} answered)", sold.len());
        assert_eq!(best["balance"], json!(format!("{}.00", 10_000 - 10 * sales)), "{accounts}");
    }

    // What its bids held comes back: unposted ones when their TTL (2 s) passes, those it was delivering when
    // their post's time (3 s, the default `post_timeout_ms`, plus 5 s) passes.
    loop {
        let (_, view) = processes[0].node.get_json("/admin/buyers/best", ADMIN_TOKEN).await;
        if view["held"] == "0.00" {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(12), "the dead node's holds were not returned: {view}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The dead node's concurrency slot comes back within 10 s: the slow buyer is pinged again.
    loop {
        let (_, answer) = processes[0].node.ping_with(ping_lead(), json!({"deadline_ms": 100})).await;
        let trail = processes[0].node.audit(answer["ping_id"].as_str().unwrap()).await;
        let slow = trail["buyers"].as_array().unwrap().iter().find(|b| b["buyer"] == "slow").unwrap().clone();
        if slow["detail"] != "concurrency" {
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(10), "the dead node's slot was not returned: {slow}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // And it drops off the cluster's list once unheard for 10 s.
    loop {
        let (_, view) = processes[1].node.get_json("/admin/cluster", ADMIN_TOKEN).await;
        let nodes: Vec<&str> =
            view["nodes"].as_array().unwrap().iter().map(|n| n["node_id"].as_str().unwrap()).collect();
        if !nodes.contains(&"node-2") {
            assert!(nodes.contains(&"node-0") && nodes.contains(&"node-1"), "{view}");
            break;
        }
        assert!(killed_at.elapsed() < Duration::from_secs(15), "node-2 still listed: {view}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    drop(processes);
}

/// Holds left by a dead node are no node's to release: Redis purges those whose time passed before it would
/// refuse a hold because of them, so they block a cap no longer than their TTL.
#[tokio::test]
async fn a_dead_nodes_expired_holds_block_a_cap_no_longer_than_their_ttl() {
    let (postgres, redis) = (postgres_url(), redis_url());
    require_stores(&postgres, &redis).await;
    let name = exchange_name();
    let _exchange = super::Exchange { name: name.clone(), postgres: postgres.clone(), redis: redis.clone() };
    let capped = TestBuyer::bidding("capped", "10.00").with("[buyers.caps]\ndaily = 2");
    let prepared = prepare(Tuning::default(), "bid_ttl_s = 2", vec![capped]).await;
    let config = format!("{}{}", prepared.config_text, cluster_table(&name, &postgres, &redis));
    std::fs::write(&prepared.config_path, &config).unwrap();
    let _sims = prepared.sims;
    let mut processes = spawn_processes(2, &prepared.config_path, prepared.root.path()).await;
    processes[0].node.deposit("capped", "1000.00").await;
    for process in &processes {
        // A read of the ledger catches the node up with the deposit.
        process.node.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    }

    // The victim's two bids hold the whole cap; it dies before any is posted or released.
    for _ in 0..2 {
        let (_, ping) = processes[1].node.ping_with(ping_lead(), json!({})).await;
        assert_eq!(ping["status"], "bid", "{ping}");
    }
    let killed_at = Instant::now();
    let _ = processes[1].child.kill();
    let _ = processes[1].child.wait();

    // While they live, the cap is full on the survivor too.
    let (_, ping) = processes[0].node.ping_with(ping_lead(), json!({})).await;
    assert_eq!(ping["status"], "no_bid", "the dead node's live holds must count: {ping}");
    assert!(killed_at.elapsed() < Duration::from_secs(2), "too slow to see the live holds count");
    // Once their TTL (2 s) passed, the survivor's next hold finds the room again (nothing read the tally first).
    tokio::time::sleep(Duration::from_millis(2500).saturating_sub(killed_at.elapsed())).await;
    let (_, ping) = processes[0].node.ping_with(ping_lead(), json!({})).await;
    assert_eq!(ping["status"], "bid", "expired holds of a dead node still block the cap: {ping}");
    let (_, sold) = processes[0].node.post(ping["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold", "{sold}");
}

/// A lead a buyer accepted while PostgreSQL went away is booked even though its node dies before PostgreSQL
/// comes back: the node writes the sale to its own directory before it retries, and books it when it starts
/// again. (Posts are refused while PostgreSQL is known to be down; this is the delivery already under way when
/// it went.)
#[tokio::test]
async fn a_sale_accepted_while_postgres_is_away_is_booked_after_its_node_is_killed_and_restarted() {
    let mut postgres = PrivatePostgres::start().await;
    let redis = PrivateRedis::start().await;
    let name = exchange_name();
    let slow =
        SimBuyerSpec { post_latency: Latency::Fixed(Duration::from_millis(1500)), ..SimBuyerSpec::bidding("12.50") };
    // Its first post attempt has half the timeout: room for the buyer's 1.5 s, however busy the host.
    let prepared =
        prepare(Tuning::default(), "", vec![TestBuyer::new("slow", slow).with("post_timeout_ms = 6000")]).await;
    let config = format!("{}{}", prepared.config_text, cluster_table(&name, &postgres.url(), &redis.url()));
    std::fs::write(&prepared.config_path, &config).unwrap();
    let sims = prepared.sims;
    let root = prepared.root;
    let mut processes = spawn_processes(1, &prepared.config_path, root.path()).await;
    let node = processes[0].node.clone();
    node.deposit("slow", "10000.00").await;
    let ping = node.ping().await;
    let body = json!({"ping_id": ping["ping_id"], "lead": full_lead()});
    let post = {
        let node = node.clone();
        tokio::spawn(async move { post_lenient(&node, "/v1/post", &body).await })
    };

    // The lead is with the buyer when PostgreSQL goes; the buyer takes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    postgres.stop();
    let slow = &sims.iter().find(|(id, _)| *id == "slow").unwrap().1;
    let unbooked = root.path().join("data-0").join(gavel::ledger::unbooked::FILE_NAME);
    let deadline = Instant::now() + Duration::from_secs(10);
    while slow.accepted_count() == 0 || std::fs::metadata(&unbooked).map_or(0, |m| m.len()) == 0 {
        assert!(Instant::now() < deadline, "the buyer never took the lead, or the node never wrote it down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = processes[0].child.kill();
    let _ = processes[0].child.wait();
    assert!(post.await.unwrap().is_err(), "the post had no answer: its node died");

    postgres.resume().await;
    let restarted = spawn_processes(1, &prepared.config_path, root.path()).await;
    let (_, balance) = restarted[0].node.get_json("/v1/buyer/balance", "bk_slow").await;
    assert_eq!(balance["balance"], "9987.50", "the sale is booked, once: {balance}");
    let (_, accounts) = restarted[0].node.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    let seller = accounts["accounts"].as_array().unwrap().iter().find(|a| a["id"] == "seller:acme").cloned();
    assert_eq!(seller.map(|s| s["balance"].clone()), Some(json!("11.25")), "{accounts}");
    assert_eq!(slow.post_count(), 1, "delivered once");
    assert_eq!(std::fs::read_to_string(&unbooked).unwrap(), "", "nothing left to book");
}

/// A delivery waiting for PostgreSQL to book its sale keeps its ping's post lock past the lock's own time to
/// live (the longest the buyers' posts could take, and 10 s): the same post sent to another node meanwhile
/// waits for that delivery's answer instead of taking the turn (and being refused 503, or later 410), and gets
/// the sale once PostgreSQL is back.
#[tokio::test]
async fn a_delivery_waiting_for_postgres_keeps_its_turn_and_a_post_on_another_node_gets_its_sale() {
    let mut postgres = PrivatePostgres::start().await;
    let redis = PrivateRedis::start().await;
    let slow =
        SimBuyerSpec { post_latency: Latency::Fixed(Duration::from_millis(1500)), ..SimBuyerSpec::bidding("12.50") };
    // The post lock lives 6 s + 10 s; the first post attempt has 3 s, room for the buyer's 1.5 s.
    let buyers = vec![TestBuyer::new("slow", slow).with("post_timeout_ms = 6000")];
    let cluster =
        spawn_cluster_on(2, Tuning::default(), "bid_ttl_s = 120", buyers, &postgres.url(), &redis.url()).await;
    let ping = cluster.node(0).ping().await;
    let body = json!({"ping_id": ping["ping_id"], "lead": full_lead()});
    // The first post waits ~22 s for its answer: a client more patient than the tests' 30 s, for slow hosts.
    let patient = reqwest::Client::builder().timeout(Duration::from_secs(90)).build().expect("client");
    let post_on = |index: usize| {
        let node = Api { base: cluster.node(index).base.clone(), http: patient.clone() };
        let body = body.clone();
        tokio::spawn(async move { node.post_json("/v1/post", SELLER_KEY, &body).await })
    };
    let first = post_on(0);

    // PostgreSQL goes while the buyer decides; the buyer takes the lead, and its booking waits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    postgres.stop();
    tokio::time::sleep(Duration::from_secs(18).saturating_sub(started.elapsed())).await;
    assert_eq!(cluster.sim("slow").accepted_count(), 1);
    let second = post_on(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!first.is_finished() && !second.is_finished(), "both wait for the booking");

    postgres.resume().await;
    let (first, second) = (first.await.unwrap(), second.await.unwrap());
    assert_eq!((first.0, &first.1["status"]), (StatusCode::OK, &json!("sold")), "{first:?}");
    assert_eq!(second, first, "the other node answers with the same sale");
    assert_eq!(cluster.sim("slow").post_count(), 1, "delivered once");
    let (_, balance) = cluster.node(1).get_json("/v1/buyer/balance", "bk_slow").await;
    assert_eq!(balance["balance"], "9987.50", "{balance}");
}
