//! Exact across nodes: caps, budgets, prepaid balances, `concurrent_pings` and duplicates hold however the
//! load is spread over the nodes (API.md section 9).

use std::time::Duration;

use futures_util::future::join_all;
use gavel::sim::{Latency, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::{spawn_cluster, Cluster};
use crate::helpers::{full_lead, ping_lead, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

/// Concurrent auctions in each test, spread round-robin over the nodes.
const AUCTIONS: usize = 200;

/// `AUCTIONS` direct posts of leads without contacts (so the duplicate check keeps out of the way), all at
/// once, spread over every node; returns the answers.
async fn flood(cluster: &Cluster) -> Vec<Value> {
    let posts = (0..AUCTIONS).map(|i| {
        let node = cluster.node(i % cluster.nodes.len());
        async move {
            let body = json!({"campaign": "auto", "lead": ping_lead()});
            let (status, answer) = node.post_json("/v1/leads", SELLER_KEY, &body).await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        }
    });
    join_all(posts).await
}

fn sold(answers: &[Value]) -> usize {
    let sold = answers.iter().filter(|a| a["status"] == "sold").count();
    if sold == 0 {
        // What the auctions answered instead, to see why.
        let mut outcomes: Vec<String> = answers.iter().map(|a| format!("{}/{}", a["status"], a["reason"])).collect();
        outcomes.sort();
        outcomes.dedup();
        eprintln!("no sale; answers were: {outcomes:?}");
    }
    sold
}

/// A buyer that bids 10.00 and takes a moment to answer, so auctions overlap.
fn slow_bidder(id: &'static str) -> TestBuyer {
    let spec =
        SimBuyerSpec { ping_latency: Latency::Fixed(Duration::from_millis(20)), ..SimBuyerSpec::bidding("10.00") };
    TestBuyer::new(id, spec)
}

#[tokio::test]
async fn a_daily_cap_of_three_delivers_exactly_three_leads_across_three_nodes() {
    let cluster = spawn_cluster(3, "", vec![slow_bidder("capped").with("[buyers.caps]\ndaily = 3")]).await;
    let answers = flood(&cluster).await;
    assert_eq!(sold(&answers), 3);
    assert_eq!(cluster.sim("capped").post_count(), 3);
    for node in &cluster.nodes {
        let view = node.buyer("capped").await;
        assert_eq!(view["caps"]["daily"], json!({"limit": 3, "used": 3, "held": 0, "remaining": 0}), "{}", node.base);
    }
}

#[tokio::test]
async fn a_daily_budget_is_never_exceeded_across_nodes() {
    let budgeted = slow_bidder("budgeted").with("[buyers.caps]\ndaily_budget = \"30.00\"");
    let cluster = spawn_cluster(3, "", vec![budgeted]).await;
    let answers = flood(&cluster).await;
    assert_eq!(sold(&answers), 3, "three sales of 10.00 fill 30.00");
    let view = cluster.node(2).buyer("budgeted").await;
    assert_eq!(view["budgets"]["daily"]["used"], "30.00", "{view}");
}

#[tokio::test]
async fn a_prepaid_balance_is_never_overspent_across_nodes() {
    let prepaid = slow_bidder("prepaid").with("billing = \"prepaid\"");
    let cluster = spawn_cluster(3, "", vec![prepaid]).await;
    cluster.node(1).deposit("prepaid", "30.00").await;
    // Every node's gates see the deposit before the flood (a read catches its books up).
    for node in &cluster.nodes {
        node.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    }
    let answers = flood(&cluster).await;
    assert_eq!(sold(&answers), 3);
    for node in &cluster.nodes {
        let (_, balance) = node.get_json("/v1/buyer/balance", "bk_prepaid").await;
        assert_eq!((balance["balance"].as_str(), balance["held"].as_str()), (Some("0.00"), Some("0.00")), "{balance}");
    }
}

#[tokio::test]
async fn a_deposit_answered_on_one_node_can_be_spent_at_once_on_another() {
    let prepaid = TestBuyer::bidding("prepaid", "10.00").with("billing = \"prepaid\"");
    let cluster = spawn_cluster(3, "", vec![prepaid]).await;
    for round in 0..4 {
        let (depositing, pinging) = (cluster.node(round % 3), cluster.node((round + 1) % 3));
        // Exactly one more bid's worth each round: each ping holds the money the round's deposit brought.
        depositing.deposit("prepaid", "10.00").await;
        // The pinging node's own books caught up (its gates' view); the exact check is Redis's balance mirror,
        // which must have the money by the time the deposit was answered.
        pinging.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
        let ping = pinging.ping().await;
        assert_eq!(ping["status"], "bid", "round {round}: {ping}");
    }
}

/// Money changes made on every node at once are all booked: each node's writer holds the exchange's ledger
/// lock over its whole batch (catch-up, insert, commit), so no batch collides with another node's rows.
#[tokio::test]
async fn deposits_made_on_every_node_at_once_are_all_booked() {
    const DEPOSITS: usize = 60;
    let prepaid = TestBuyer::bidding("prepaid", "10.00").with("billing = \"prepaid\"");
    let cluster = spawn_cluster(3, "", vec![prepaid]).await;
    let deposits = (0..DEPOSITS).map(|i| {
        let node = cluster.node(i % 3);
        async move {
            let deposit = json!({"amount": "1.00", "reference": format!("deposit {i}")});
            node.post_json("/admin/buyers/prepaid/deposits", ADMIN_TOKEN, &deposit).await
        }
    });
    let answers = join_all(deposits).await;
    let refused: Vec<&(StatusCode, Value)> =
        answers.iter().filter(|(status, _)| *status != StatusCode::CREATED).collect();
    assert!(refused.is_empty(), "{} of {DEPOSITS} deposits refused: {refused:?}", refused.len());
    for node in &cluster.nodes {
        let (_, balance) = node.get_json("/v1/buyer/balance", "bk_prepaid").await;
        assert_eq!(balance["balance"], "60.00", "{}: {balance}", node.base);
    }
}

#[tokio::test]
async fn concurrent_pings_count_pings_in_flight_on_every_node() {
    let spec =
        SimBuyerSpec { ping_latency: Latency::Fixed(Duration::from_millis(60)), ..SimBuyerSpec::bidding("10.00") };
    let limited = TestBuyer::new("limited", spec).with("[buyers.caps]\nconcurrent_pings = 2");
    let cluster = spawn_cluster(3, "", vec![limited]).await;
    let pings = (0..60).map(|i| cluster.node(i % 3).ping_with(ping_lead(), json!({})));
    let answers: Vec<(StatusCode, Value)> = join_all(pings).await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK), "{answers:?}");
    let most = cluster.sim("limited").most_pings_in_flight();
    assert!((1..=2).contains(&most), "at most 2 pings in flight across the exchange, saw {most}");
    let excluded = answers.iter().filter(|(_, a)| a["reason"] == "no_eligible_buyers").count();
    assert!(excluded > 0, "some auctions found every slot taken");
}

#[tokio::test]
async fn one_consumer_sent_to_every_node_at_once_is_sold_once_to_each_buyer() {
    let slow_post = |price| SimBuyerSpec {
        post_latency: Latency::Fixed(Duration::from_millis(30)),
        ..SimBuyerSpec::bidding(price)
    };
    let cluster = spawn_cluster(
        3,
        "",
        vec![TestBuyer::new("best", slow_post("10.00")), TestBuyer::new("next", slow_post("5.00"))],
    )
    .await;
    let copies = (0..6).map(|i| {
        let node = cluster.node(i % 3);
        async move {
            let body = json!({"campaign": "auto", "lead": full_lead()});
            node.post_json("/v1/leads", SELLER_KEY, &body).await.1
        }
    });
    let answers = join_all(copies).await;
    let at = |payout: &str| answers.iter().filter(|a| a["status"] == "sold" && a["payout"] == payout).count();
    assert_eq!((at("9.00"), at("4.50")), (1, 1), "{answers:?}");
    assert_eq!((cluster.sim("best").post_count(), cluster.sim("next").post_count()), (1, 1));
    // And later, on any node, the same consumer is a duplicate for both.
    let body = json!({"campaign": "auto", "lead": full_lead()});
    let (_, later) = cluster.node(2).post_json("/v1/leads", SELLER_KEY, &body).await;
    assert_eq!(later["status"], "unsold", "{later}");
}

#[tokio::test]
async fn a_sellers_ping_rate_holds_for_the_whole_exchange() {
    let tuning = crate::helpers::Tuning { acme: "max_pings_per_second = 20", ..crate::helpers::Tuning::default() };
    let cluster = super::spawn_cluster_on(
        3,
        tuning,
        "",
        vec![TestBuyer::bidding("best", "10.00")],
        &super::postgres_url(),
        &super::redis_url(),
    )
    .await;
    // A burst: at most one second's worth (20) is admitted, however the pings are spread over the nodes, and
    // what the limit lets in while the burst lasts (20/s: one ping per 50 ms of a slow machine's burst).
    let burst_started = tokio::time::Instant::now();
    let burst = (0..60).map(|i| cluster.node(i % 3).ping_with(ping_lead(), json!({})));
    let answers: Vec<(StatusCode, Value)> = join_all(burst).await;
    let refilled = (20.0 * burst_started.elapsed().as_secs_f64()).ceil() as usize;
    let admitted = answers.iter().filter(|(status, _)| *status == StatusCode::OK).count();
    let limited = answers
        .iter()
        .filter(|(status, a)| *status == StatusCode::TOO_MANY_REQUESTS && a["error"]["code"] == "rate_limited");
    assert_eq!(admitted + limited.count(), 60, "{answers:?}");
    let most = (20 + refilled) * 11 / 10;
    assert!(
        (1..=most).contains(&admitted),
        "a burst of at most a second's worth and {refilled} more for its duration (+10%): admitted {admitted}"
    );
    // Then at twice the limit for three seconds, spread over the nodes: the exchange admits the limit, within
    // 10% (the burst is spent; a node's unspent slice of the budget is what may go missing).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let started = tokio::time::Instant::now();
    let steady = (0..120u64).map(|i| {
        let node = cluster.node((i % 3) as usize);
        async move {
            tokio::time::sleep_until(started + Duration::from_millis(25 * i)).await;
            node.ping_with(ping_lead(), json!({})).await.0
        }
    });
    let statuses: Vec<StatusCode> = join_all(steady).await;
    let admitted = statuses.iter().filter(|status| **status == StatusCode::OK).count();
    // 3 s at 20/s after a full bucket: 20 (the bucket) + 60, give or take the 10%.
    assert!((72..=88).contains(&admitted), "admitted {admitted} of 120 at 40/s against a limit of 20/s");
}

/// The count of a node's Redis round trips for `op` (`gavel_store_seconds_count`).
async fn redis_round_trips(node: &crate::helpers::TestApp, op: &str) -> u64 {
    let metrics = node.http.get(format!("{}/metrics", node.base)).send().await.unwrap().text().await.unwrap();
    let series = format!("gavel_store_seconds_count{{store=\"redis\",op=\"{op}\"}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&series)).map_or(0, |count| count.parse().unwrap())
}

#[tokio::test]
async fn unposted_bids_are_released_at_their_expiry_several_in_one_round_trip() {
    let cluster = spawn_cluster(1, "bid_ttl_s = 1", vec![slow_bidder("capped").with("[buyers.caps]\ndaily = 4")]).await;
    let node = cluster.node(0);
    let pings = join_all((0..4).map(|_| node.ping())).await;
    assert!(pings.iter().all(|ping| ping["status"] == "bid"), "{pings:?}");
    let view = node.buyer("capped").await;
    assert_eq!(view["caps"]["daily"], json!({"limit": 4, "used": 0, "held": 4, "remaining": 0}), "{view}");

    // Nobody posts: two seconds after the bids expire this node has released all four, read straight from
    // Redis (a hold refused for want of room, or a read of the tally, would purge expired holds itself).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let client = redis::Client::open(super::redis_url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let holds: u64 = redis::cmd("ZCARD")
        .arg(format!("gavel:{}:{{b:capped}}:holds", cluster.name))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(holds, 0, "expired holds left in Redis");
    let round_trips = redis_round_trips(node, "expire").await;
    assert!((1..4).contains(&round_trips), "four expiries took {round_trips} round trips to release");
    let view = node.buyer("capped").await;
    assert_eq!(view["caps"]["daily"], json!({"limit": 4, "used": 0, "held": 0, "remaining": 4}), "{view}");
    let ping = node.ping().await;
    assert_eq!(ping["status"], "bid", "{ping}");
}
