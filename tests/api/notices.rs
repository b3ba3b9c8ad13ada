//! Win/loss notices through the real server: who is told what, when, and what a hanging endpoint costs.

use std::time::Duration;

use gavel::sim::{Latency, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::helpers::*;

/// Waits up to 10 s until each named buyer's simulated endpoint has received `count` notices and the engine
/// has counted them.
async fn wait_for_notices(app: &TestApp, buyers: &[&str], count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    // The engine counts a notice once its buyer's answer is back, a moment after the buyer has it (and the
    // server's workers are other threads than this test's).
    let counted = |id: &str| notices_counted(app, id, "sent") + notices_counted(app, id, "failed");
    while buyers.iter().any(|id| app.sim(id).notices().len() < count || counted(id) < count as u64) {
        let got: Vec<(&str, usize)> = buyers.iter().map(|id| (*id, app.sim(id).notices().len())).collect();
        assert!(Instant::now() < deadline, "notices after 10 s: {got:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The notice a buyer received, without the ping id (checked on its own).
fn notice(app: &TestApp, buyer: &str, index: usize, ping_id: &str) -> Value {
    let mut body = app.sim(buyer).notices()[index].body.clone();
    assert_eq!(body["ping_id"], ping_id, "{buyer}");
    body.as_object_mut().unwrap().remove("ping_id");
    body
}

fn notices_counted(app: &TestApp, buyer: &str, outcome: &str) -> u64 {
    app.server.engine.metrics.counter("gavel_notices_total", &[("buyer", buyer), ("outcome", outcome)])
}

#[tokio::test]
async fn every_bidder_is_told_what_its_bid_came_to_and_no_one_else_hears_anything() {
    let passes = SimBuyerSpec { no_bid_share: 1.0, ..SimBuyerSpec::default() };
    let app = spawn_app(
        "floor = \"2.00\"",
        vec![
            TestBuyer::bidding("winner", "10.00").with_notices(),
            TestBuyer::bidding("loser", "8.00").with_notices().with("headers = { Authorization = \"Bearer loser\" }"),
            TestBuyer::new("flat", SimBuyerSpec::default()).with_notices().with("fixed_price = \"7.50\""),
            TestBuyer::bidding("cheap", "1.50").with_notices(),
            // Funded below its bid: it is pinged (its funds cover the floor) but cannot pay 12.00.
            TestBuyer::bidding("broke", "12.00").with_notices().with("billing = \"prepaid\""),
            TestBuyer::bidding("elsewhere", "20.00").with_notices().with("[buyers.filters]\nstates = [\"NV\"]"),
            TestBuyer::new("passes", passes).with_notices(),
            TestBuyer::bidding("quiet", "9.00"),
        ],
    )
    .await;
    app.deposit("broke", "5.00").await;
    let quote = app.ping().await;
    assert_eq!((quote["status"].as_str(), quote["payout"].as_str()), (Some("bid"), Some("9.00")), "{quote}");
    let ping_id = quote["ping_id"].as_str().unwrap();
    assert_eq!(app.outcome_of(ping_id, "broke").await["detail"], "balance");

    let told = ["winner", "loser", "flat", "cheap", "broke"];
    wait_for_notices(&app, &told, 1).await;
    let expected = [
        ("winner", json!({"outcome": "won", "bid": "10.00", "price": "10.00", "min_to_win": null})),
        ("loser", json!({"outcome": "lost", "bid": "8.00", "price": null, "min_to_win": "10.01"})),
        ("flat", json!({"outcome": "lost", "bid": "7.50", "price": null, "min_to_win": "10.01"})),
        ("cheap", json!({"outcome": "below_floor", "bid": "1.50", "price": null, "min_to_win": "10.01"})),
        ("broke", json!({"outcome": "unaffordable", "bid": "12.00", "price": null, "min_to_win": "10.01"})),
    ];
    for (buyer, mut body) in expected {
        body["campaign"] = json!("auto");
        body["test"] = json!(false);
        assert_eq!(notice(&app, buyer, 0, ping_id), body, "{buyer}");
        assert_eq!(notices_counted(&app, buyer, "sent"), 1, "{buyer}");
    }
    let loser = &app.sim("loser").notices()[0];
    let header = |name: &str| loser.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!((header("authorization"), header("content-type")), (Some("Bearer loser"), Some("application/json")));

    // Excluded, silent or without a notice_url: nothing, even a while later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for buyer in ["elsewhere", "passes", "quiet"] {
        assert_eq!(app.sim(buyer).notice_count(), 0, "{buyer}");
    }
    assert_eq!(told.iter().map(|b| app.sim(b).notice_count()).sum::<u64>(), 5, "one notice each");
}

#[tokio::test]
async fn a_test_ping_under_second_price_and_shared_sell_sends_test_notices_with_the_clearing_prices() {
    let app = spawn_app(
        "auction = \"second_price\"\nsell = \"shared\"\nmax_buyers = 2",
        vec![
            TestBuyer::bidding("a", "10.00").with_notices(),
            TestBuyer::bidding("b", "8.00").with_notices(),
            TestBuyer::bidding("c", "5.00").with_notices(),
        ],
    )
    .await;
    let (_, quote) = app.ping_with(ping_lead(), json!({"test": true})).await;
    let ping_id = quote["ping_id"].as_str().unwrap();
    wait_for_notices(&app, &["a", "b", "c"], 1).await;
    let outcomes: Vec<(Value, Value, Value, Value)> = ["a", "b", "c"]
        .iter()
        .map(|buyer| {
            let body = notice(&app, buyer, 0, ping_id);
            (body["outcome"].clone(), body["price"].clone(), body["min_to_win"].clone(), body["test"].clone())
        })
        .collect();
    assert_eq!(
        outcomes,
        [
            (json!("won"), json!("8.01"), Value::Null, json!(true)),
            (json!("won"), json!("5.01"), Value::Null, json!(true)),
            (json!("lost"), Value::Null, json!("8.01"), json!(true)),
        ]
    );
}

#[tokio::test]
async fn a_direct_posts_notices_leave_after_its_whole_answer() {
    let slow_post =
        SimBuyerSpec { post_latency: Latency::Fixed(Duration::from_millis(400)), ..SimBuyerSpec::bidding("10.00") };
    let app = spawn_app(
        "",
        vec![TestBuyer::new("slow", slow_post).with_notices(), TestBuyer::bidding("other", "6.00").with_notices()],
    )
    .await;
    let body = json!({"campaign": "auto", "lead": full_lead()});
    let (status, sold) = app.post_json("/v1/leads", SELLER_KEY, &body).await;
    assert_eq!((status, sold["status"].as_str()), (StatusCode::OK, Some("sold")), "{sold}");
    wait_for_notices(&app, &["slow", "other"], 1).await;
    // The post reached the buyer, which took 400 ms to answer; only then was the seller answered, and only
    // then did the notices leave. Sent when the auction closed, they would have come 400 ms earlier.
    let post_arrived = app.sim("slow").posts()[0].at;
    for buyer in ["slow", "other"] {
        let notice = &app.sim(buyer).notices()[0];
        assert!(notice.at >= post_arrived + Duration::from_millis(400), "{buyer}: notice before the answer");
    }
    assert_eq!(app.sim("slow").notices()[0].body["outcome"], "won");
    assert_eq!(app.sim("other").notices()[0].body["outcome"], "lost");
}

#[tokio::test]
async fn a_notice_endpoint_that_hangs_slows_no_answer_and_costs_the_auction_nothing() {
    let hangs =
        SimBuyerSpec { notice_latency: Latency::Fixed(Duration::from_secs(30)), ..SimBuyerSpec::bidding("10.00") };
    let app = spawn_app(
        "",
        vec![TestBuyer::new("hangs", hangs).with_notices().with("timeout_ms = 2000"), TestBuyer::bidding("b", "4.00")],
    )
    .await;
    for round in 0..5 {
        let started = Instant::now();
        let quote = app.ping().await;
        let took = started.elapsed();
        // Each answer comes long before the notice before it can even time out (2 s).
        assert!(took < Duration::from_secs(1), "round {round}: answered after {took:?}");
        assert_eq!(quote["payout"], "9.00", "round {round}: the hanging buyer still wins");
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while notices_counted(&app, "hangs", "failed") < 5 {
        assert!(Instant::now() < deadline, "five notices fail at the buyer's timeout");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.sim("hangs").notice_count(), 5, "each sent once, never retried");
    let health = &app.buyer("hangs").await["health"];
    assert_eq!((health["samples"].as_u64(), health["timeout_rate"].as_f64()), (Some(5), Some(0.0)), "{health}");
    assert_eq!(app.buyer("hangs").await["state"], "active");
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("gavel_notices_total{buyer=\"hangs\",outcome=\"failed\"} 5"), "{metrics}");
}
