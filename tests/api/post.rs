//! `POST /v1/post` and `POST /v1/leads`: delivery, cascade, idempotency, consistency, shared sell, test mode.

use std::time::Duration;

use gavel::sim::{Latency, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn header(recorded: &gavel::sim::Recorded, name: &str) -> Option<String> {
    recorded.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn a_post_sells_to_the_winner_with_the_full_normalized_lead() {
    let app = spawn_app("", vec![TestBuyer::bidding("winner", "12.50"), TestBuyer::bidding("loser", "3.00")]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (status, sold) = app.post(&ping_id, full_lead(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{sold}");
    assert_eq!(sold["status"], "sold");
    assert_eq!(sold["payout"], "11.25");
    assert_eq!(sold["ping_id"], ping_id.as_str());
    let lead_id = sold["lead_id"].as_str().unwrap();
    assert!(lead_id.starts_with("l_"));

    let posts = app.sim("winner").posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(app.sim("loser").post_count(), 0);
    let post = &posts[0];
    assert_eq!(header(post, "idempotency-key").as_deref(), Some(lead_id));
    assert_eq!(post.body["price"], "12.50");
    assert_eq!(post.body["lead_id"], lead_id);
    assert_eq!(post.body["ping_id"], ping_id.as_str());
    assert_eq!(post.body["test"], false);
    assert_eq!(post.body["lead"]["phone"], "4158670100", "buyers get normalized values");
    assert_eq!(post.body["lead"]["email"], "ada@example.com");
    assert!(post.body["bid_id"].is_string(), "the buyer's bid_id is echoed: {}", post.raw);

    let engine = &app.server.engine;
    assert_eq!(engine.ledger.balance("buyer:winner").to_string(), "9987.50");
    assert_eq!(engine.ledger.balance("seller:acme").to_string(), "11.25");
    assert_eq!(engine.ledger.balance("platform:revenue").to_string(), "1.25");
}

#[tokio::test]
async fn a_rejecting_winner_cascades_to_the_next_bid() {
    let rejects = SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::bidding("9.00") };
    let app = spawn_app("", vec![TestBuyer::new("picky", rejects), TestBuyer::bidding("next", "6.00")]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, sold) = app.post(&ping_id, full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold");
    assert_eq!(sold["payout"], "5.40", "paid at the next bidder's price");

    let audit = app.audit(&ping_id).await;
    let posts: Vec<(&str, &str)> = audit["posts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["buyer"].as_str().unwrap(), p["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(posts, [("picky", "rejected"), ("next", "accepted")]);
    assert_eq!(audit["winner"], "next");
    assert_eq!(audit["posts"][0]["detail"], "duplicate");
}

#[tokio::test]
async fn every_buyer_rejecting_leaves_the_lead_unsold() {
    let rejects = |price| SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::bidding(price) };
    let app = spawn_app("", vec![TestBuyer::new("a", rejects("5.00")), TestBuyer::new("b", rejects("4.00"))]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, unsold) = app.post(&ping_id, full_lead(), json!({})).await;
    assert_eq!(unsold, json!({"ping_id": ping_id, "status": "unsold", "reason": "all_buyers_rejected"}));
    assert_eq!(app.server.engine.ledger.sale_count(), 0);
}

#[tokio::test]
async fn min_payout_skips_bidders_that_pay_too_little() {
    let app =
        spawn_app("", vec![TestBuyer::bidding("a", "10.00"), TestBuyer::bidding("b", "20.00").with("priority = 1")])
            .await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, unsold) = app.post(&ping_id, full_lead(), json!({"min_payout": "18.01"})).await;
    assert_eq!(unsold["reason"], "below_min_payout");
    assert_eq!(app.sim("a").post_count() + app.sim("b").post_count(), 0, "nobody is offered a lead below min_payout");

    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, sold) = app.post(&ping_id, full_lead(), json!({"min_payout": 18})).await;
    assert_eq!(sold["payout"], "18.00");
}

#[tokio::test]
async fn below_min_payout_whenever_a_bidder_was_skipped_for_it_even_after_the_others_rejected() {
    let rejects = |price| SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::bidding(price) };
    let app = spawn_app("", vec![TestBuyer::new("picky", rejects("20.00")), TestBuyer::bidding("cheap", "5.00")]).await;
    // picky (payout 18.00) is offered the lead and rejects it; cheap (4.50) was skipped for the minimum.
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, unsold) = app.post(&ping_id, full_lead(), json!({"min_payout": "10.00"})).await;
    assert_eq!(unsold, json!({"ping_id": ping_id, "status": "unsold", "reason": "below_min_payout"}));
    assert_eq!((app.sim("picky").post_count(), app.sim("cheap").post_count()), (1, 0));

    // The same in one call.
    let body = json!({"campaign": "auto", "lead": full_lead(), "min_payout": "10.00"});
    let (_, unsold) = app.post_json("/v1/leads", SELLER_KEY, &body).await;
    assert_eq!((unsold["status"].as_str(), unsold["reason"].as_str()), (Some("unsold"), Some("below_min_payout")));

    // A minimum both bidders clear: nobody skipped, and cheap buys it after picky rejects.
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, sold) = app.post(&ping_id, full_lead(), json!({"min_payout": "4.50"})).await;
    assert_eq!((sold["status"].as_str(), sold["payout"].as_str()), (Some("sold"), Some("4.50")), "{sold}");
}

#[tokio::test]
async fn all_buyers_rejected_only_when_nobody_was_skipped_for_min_payout() {
    let rejects = |price| SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::bidding(price) };
    let app = spawn_app("", vec![TestBuyer::new("a", rejects("20.00")), TestBuyer::new("b", rejects("5.00"))]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, unsold) = app.post(&ping_id, full_lead(), json!({"min_payout": "1.00"})).await;
    assert_eq!(unsold["reason"], "all_buyers_rejected", "both were offered the lead: {unsold}");
    assert_eq!((app.sim("a").post_count(), app.sim("b").post_count()), (1, 1));
}

#[tokio::test]
async fn eight_concurrent_identical_posts_deliver_once_and_get_the_same_answer() {
    let slow_post = SimBuyerSpec {
        post_latency: gavel::sim::Latency::Fixed(Duration::from_millis(100)),
        ..SimBuyerSpec::bidding("8.00")
    };
    let app = spawn_app("", vec![TestBuyer::new("only", slow_post)]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let posts = (0..8).map(|_| app.post(&ping_id, full_lead(), json!({})));
    let answers: Vec<(StatusCode, Value)> = futures_util::future::join_all(posts).await;
    for (status, answer) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert_eq!(answer, &answers[0].1, "every repeat gets the first answer");
    }
    assert_eq!(answers[0].1["status"], "sold");
    assert_eq!(app.sim("only").post_count(), 1, "delivered once");
    assert_eq!(app.server.engine.ledger.sale_count(), 1, "booked once");

    let mut other = full_lead();
    other["first_name"] = json!("Grace");
    let (status, conflict) = app.post(&ping_id, other, json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(conflict["error"]["code"], "already_posted");
}

#[tokio::test]
async fn a_post_must_match_its_ping_and_a_refused_post_changes_nothing() {
    let app = spawn_app("required_fields = [\"phone\", \"email\"]", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();

    let mut moved = full_lead();
    moved["state"] = json!("NV");
    let (status, error) = app.post(&ping_id, moved, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["code"], "lead_mismatch");
    assert!(error["error"]["message"].as_str().unwrap().contains("state"), "{error}");

    let mut missing = full_lead();
    missing.as_object_mut().unwrap().remove("email");
    let (status, error) = app.post(&ping_id, missing, json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["error"]["code"], "invalid_lead");
    assert!(error["error"]["message"].as_str().unwrap().contains("email"), "{error}");

    // Same values in another form normalize equal: "ca" is "CA".
    let mut lower = full_lead();
    lower["state"] = json!("ca");
    let (status, sold) = app.post(&ping_id, lower, json!({})).await;
    assert_eq!((status, sold["status"].as_str()), (StatusCode::OK, Some("sold")), "{sold}");
    assert_eq!(app.sim("buyer").post_count(), 1);
}

#[tokio::test]
async fn a_failed_post_is_retried_once_with_the_same_idempotency_key() {
    let flaky = SimBuyerSpec { post_error_first: 1, ..SimBuyerSpec::bidding("8.00") };
    let app = spawn_app("", vec![TestBuyer::new("flaky", flaky)]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, sold) = app.post(&ping_id, full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold");
    let posts = app.sim("flaky").posts();
    assert_eq!(posts.len(), 2);
    assert_eq!(header(&posts[0], "idempotency-key"), header(&posts[1], "idempotency-key"));
    let outcomes: Vec<Value> =
        app.audit(&ping_id).await["posts"].as_array().unwrap().iter().map(|p| p["outcome"].clone()).collect();
    assert_eq!(outcomes, [json!("error"), json!("accepted")]);
}

#[tokio::test]
async fn unknown_foreign_and_expired_pings() {
    let app = spawn_app("bid_ttl_s = 1", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();

    let (status, error) = app.post("p_00000000000000000000000000000000", full_lead(), json!({})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("not_found")));
    let body = json!({"ping_id": ping_id, "lead": full_lead()});
    let (status, _) = app.post_json("/v1/post", OTHER_SELLER_KEY, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another seller's ping is not found");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, error) = app.post(&ping_id, full_lead(), json!({})).await;
    assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::GONE, Some("ping_expired")));
    assert_eq!(app.sim("buyer").post_count(), 0);
}

#[tokio::test]
async fn shared_sell_sells_to_the_top_bidders_each_at_its_bid() {
    let app = spawn_app(
        "sell = \"shared\"\nmax_buyers = 2",
        vec![TestBuyer::bidding("a", "10.00"), TestBuyer::bidding("b", "8.00"), TestBuyer::bidding("c", "5.00")],
    )
    .await;
    let quote = app.ping().await;
    assert_eq!(quote["payout"], "16.20", "9.00 + 7.20: the sum over the buyers it would sell to");
    let (_, sold) = app.post(quote["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold");
    assert_eq!(sold["payout"], "16.20");
    let sales = sold["sales"].as_array().unwrap();
    assert_eq!(sales.len(), 2);
    assert_ne!(sales[0]["lead_id"], sales[1]["lead_id"]);
    assert_eq!((app.sim("a").post_count(), app.sim("b").post_count(), app.sim("c").post_count()), (1, 1, 0));
    assert_eq!(app.server.engine.ledger.balance("buyer:b").to_string(), "9992.00");
}

#[tokio::test]
async fn shared_sell_fills_a_rejected_place_from_the_next_bidder() {
    let rejects = SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::bidding("10.00") };
    let app = spawn_app(
        "sell = \"shared\"\nmax_buyers = 2",
        vec![TestBuyer::new("a", rejects), TestBuyer::bidding("b", "8.00"), TestBuyer::bidding("c", "5.00")],
    )
    .await;
    let quote = app.ping().await;
    let (_, sold) = app.post(quote["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(sold["payout"], "11.70", "7.20 + 4.50");
    assert_eq!(app.sim("c").post_count(), 1);
}

#[tokio::test]
async fn a_direct_post_pings_and_posts_in_one_call() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let body = json!({"campaign": "auto", "lead": full_lead(), "min_payout": "1.00"});
    let (status, sold) = app.post_json("/v1/leads", SELLER_KEY, &body).await;
    assert_eq!(status, StatusCode::OK, "{sold}");
    assert_eq!(sold["status"], "sold");
    assert_eq!(sold["payout"], "7.20");
    assert!(sold["ping_id"].as_str().unwrap().starts_with("p_"));
    assert_eq!(app.audit(sold["ping_id"].as_str().unwrap()).await["posts"][0]["outcome"], "accepted");
}

#[tokio::test]
async fn test_mode_runs_the_auction_but_books_nothing() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let (_, quote) = app.ping_with(ping_lead(), json!({"test": true})).await;
    assert_eq!(quote["status"], "bid");
    let (_, sold) = app.post(quote["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold");
    assert_eq!(app.sim("buyer").pings()[0].body["test"], true);
    assert_eq!(app.sim("buyer").posts()[0].body["test"], true);
    assert_eq!(app.server.engine.ledger.sale_count(), 0);
    assert_eq!(app.server.engine.ledger.balance("buyer:buyer").to_string(), "10000.00", "the wallet is untouched");
}

/// POSTs `body` to `path` with a client that stops waiting after `patience`: the seller's side of a timeout.
async fn post_and_give_up(app: &TestApp, path: &str, body: &Value, patience: Duration) {
    let impatient = reqwest::Client::builder().timeout(patience).build().expect("client");
    let sent = impatient.post(format!("{}{path}", app.base)).bearer_auth(SELLER_KEY).json(body).send().await;
    assert!(sent.as_ref().is_err_and(reqwest::Error::is_timeout), "the seller was meant to give up: {sent:?}");
}

/// Waits (up to 10 s) until the ledger holds `sales` sales.
async fn until_sales(app: &TestApp, sales: usize) {
    for _ in 0..200 {
        app.server.engine.ledger.sync().await.expect("ledger reachable");
        if app.server.engine.ledger.sale_count() == sales {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the ledger never held {sales} sale(s): {}", app.server.engine.ledger.sale_count());
}

/// A seller's client that times out while the lead is with the buyer does not undo the delivery: hyper drops
/// a request's handler when its client goes away, so a delivery that ran in it stopped between the buyer's
/// acceptance and the booking (a lead delivered and never charged), and its bids went back to be delivered
/// again on the retry. The buyer that took the lead is charged once, and the retry gets that same sale.
#[tokio::test]
async fn a_post_whose_seller_stops_waiting_is_booked_once_and_its_retry_gets_that_sale() {
    let slow =
        SimBuyerSpec { post_latency: Latency::Fixed(Duration::from_millis(600)), ..SimBuyerSpec::bidding("12.50") };
    let app = spawn_app("", vec![TestBuyer::new("slow", slow), TestBuyer::bidding("next", "3.00")]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let body = json!({"ping_id": ping_id, "lead": full_lead()});
    post_and_give_up(&app, "/v1/post", &body, Duration::from_millis(150)).await;

    until_sales(&app, 1).await;
    assert_eq!(app.server.engine.ledger.balance("buyer:slow").to_string(), "9987.50");
    let (status, sold) = app.post(&ping_id, full_lead(), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{sold}");
    assert_eq!(sold["status"], "sold");
    assert_eq!(sold["payout"], "11.25");
    assert_eq!(app.sim("slow").post_count(), 1, "delivered once");
    assert_eq!(app.sim("next").post_count(), 0);
    assert_eq!(app.server.engine.ledger.sale_count(), 1);
    assert_eq!(app.server.engine.ledger.balance("buyer:slow").to_string(), "9987.50", "charged once");
}

/// The same for a direct post (`POST /v1/leads`), whose auction and delivery run in one call.
#[tokio::test]
async fn a_direct_post_whose_seller_stops_waiting_is_still_booked() {
    let slow =
        SimBuyerSpec { post_latency: Latency::Fixed(Duration::from_millis(600)), ..SimBuyerSpec::bidding("12.50") };
    let app = spawn_app("", vec![TestBuyer::new("slow", slow)]).await;
    let body = json!({"campaign": "auto", "lead": full_lead()});
    post_and_give_up(&app, "/v1/leads", &body, Duration::from_millis(150)).await;

    until_sales(&app, 1).await;
    assert_eq!(app.server.engine.ledger.balance("buyer:slow").to_string(), "9987.50");
    assert_eq!(app.sim("slow").post_count(), 1);
}

/// A node told to stop while a delivery runs whose seller has already gone finishes that delivery first: no
/// connection is left to drain for it, and its worker's runtime must outlive it.
#[tokio::test]
async fn shutdown_finishes_a_delivery_whose_seller_stopped_waiting() {
    let slow =
        SimBuyerSpec { post_latency: Latency::Fixed(Duration::from_millis(600)), ..SimBuyerSpec::bidding("12.50") };
    let app = spawn_app("", vec![TestBuyer::new("slow", slow)]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let body = json!({"ping_id": ping_id, "lead": full_lead()});
    post_and_give_up(&app, "/v1/post", &body, Duration::from_millis(150)).await;
    assert_eq!(app.server.engine.ledger.sale_count(), 0, "the buyer is still deciding");

    let engine = app.stop().await;
    assert_eq!(engine.ledger.sale_count(), 1, "booked before the node stopped");
    assert_eq!(engine.ledger.balance("buyer:slow").to_string(), "9987.50");
}
