//! Duplicates under concurrency: one consumer (phone, email or both) sent several times at once is sold at most
//! once to each buyer with a duplicate window, because a held bid reserves the lead's contacts for its buyer.

use std::time::Duration;

use futures_util::future::join_all;
use gavel::sim::{Latency, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{full_lead, ping_lead, spawn_app, TestApp, TestBuyer, SELLER_KEY};

/// How many copies of one lead a test sends at once.
const COPIES: usize = 6;

/// The buyer everyone wants first: it bids 10.00 and takes 30 ms to answer a post, so copies overlap.
fn best() -> TestBuyer {
    let slow_post = Latency::Fixed(Duration::from_millis(30));
    TestBuyer::new("best", SimBuyerSpec { post_latency: slow_post, ..SimBuyerSpec::bidding("10.00") })
}

fn next() -> TestBuyer {
    TestBuyer::bidding("next", "5.00")
}

/// The full lead with only the contacts asked for.
fn lead_with(phone: bool, email: bool) -> Value {
    let mut lead = full_lead();
    let fields = lead.as_object_mut().unwrap();
    if !phone {
        fields.remove("phone");
    }
    if !email {
        fields.remove("email");
    }
    lead
}

async fn direct_post(app: &TestApp, lead: Value) -> Value {
    let (status, body) = app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": lead})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// How many answers sold at each payout: 9.00 is `best` (10.00 less the 10% margin), 4.50 is `next`.
fn sold_at(answers: &[Value], payout: &str) -> usize {
    answers.iter().filter(|a| a["status"] == "sold" && a["payout"] == payout).count()
}

#[tokio::test]
async fn concurrent_direct_posts_of_one_consumer_sell_once_to_each_buyer() {
    for (name, phone, email) in [("phone only", true, false), ("email only", false, true), ("both", true, true)] {
        let app = spawn_app("", vec![best(), next()]).await;
        let copies = (0..COPIES).map(|_| direct_post(&app, lead_with(phone, email)));
        let answers = join_all(copies).await;

        assert_eq!(sold_at(&answers, "9.00"), 1, "{name}: best bought it once: {answers:?}");
        assert_eq!(sold_at(&answers, "4.50"), 1, "{name}: next bought it once: {answers:?}");
        let unsold = answers.iter().filter(|a| a["status"] == "unsold").count();
        assert_eq!(unsold, COPIES - 2, "{name}: {answers:?}");
        assert_eq!(app.sim("best").post_count(), 1, "{name}: the duplicates never reached best");
        assert_eq!(app.sim("next").post_count(), 1, "{name}");
        assert_eq!(app.server.engine.ledger.sale_count(), 2, "{name}");
        // Every hold was released or became a sale.
        assert_eq!(app.buyer("best").await["balance"], "9990.00", "{name}");
        assert_eq!(app.buyer("best").await["available"], "9990.00", "{name}");
    }
}

/// `lead` with the digest of its phone added (a ping carries it; its post must carry it too).
fn hashed(mut lead: Value) -> Value {
    lead["phone_sha256"] = json!(gavel::domain::lead::sha256_hex("4158670100"));
    lead
}

/// Pings then posts one lead, `COPIES` times at once; the ping carries the phone's digest when `with_digest`.
async fn ping_and_post_copies(app: &TestApp, with_digest: bool) -> Vec<Value> {
    let copy = || async {
        let (ping_lead, full_lead) =
            if with_digest { (hashed(ping_lead()), hashed(full_lead())) } else { (ping_lead(), full_lead()) };
        let (status, ping) = app.ping_with(ping_lead, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{ping}");
        if ping["status"] != "bid" {
            return ping;
        }
        let (status, post) = app.post(ping["ping_id"].as_str().unwrap(), full_lead, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{post}");
        post
    };
    join_all((0..COPIES).map(|_| copy())).await
}

#[tokio::test]
async fn concurrent_ping_and_post_pairs_sell_once_to_each_buyer() {
    // With the digest in the ping, the hold reserves it when the auction ends; without, the post reserves the
    // real phone before the lead is sent.
    for with_digest in [true, false] {
        let app = spawn_app("", vec![best(), next()]).await;
        let answers = ping_and_post_copies(&app, with_digest).await;
        assert_eq!(sold_at(&answers, "9.00"), 1, "digest {with_digest}: {answers:?}");
        assert_eq!(sold_at(&answers, "4.50"), 1, "digest {with_digest}: {answers:?}");
        assert_eq!(app.sim("best").post_count(), 1, "digest {with_digest}");
        assert_eq!(app.sim("next").post_count(), 1, "digest {with_digest}");
        assert_eq!(app.server.engine.ledger.sale_count(), 2, "digest {with_digest}");
    }
}

#[tokio::test]
async fn a_rejected_lead_may_be_sold_to_the_same_buyer_later() {
    let rejecting = SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::bidding("10.00") };
    let app = spawn_app("", vec![TestBuyer::new("best", rejecting)]).await;
    let first = direct_post(&app, full_lead()).await;
    assert_eq!(first["status"], "unsold", "{first}");

    app.sim("best").set_spec(SimBuyerSpec::bidding("10.00"));
    let second = direct_post(&app, full_lead()).await;
    assert_eq!(second["status"], "sold", "the rejection released the reservation: {second}");
    let third = direct_post(&app, full_lead()).await;
    assert_eq!(third["status"], "unsold", "now it is a sale within the window: {third}");
}

#[tokio::test]
async fn an_expired_bid_releases_the_consumer() {
    let app = spawn_app("bid_ttl_s = 1", vec![TestBuyer::bidding("best", "10.00")]).await;
    let (_, held) = app.ping_with(hashed(ping_lead()), json!({})).await;
    assert_eq!(held["status"], "bid", "{held}");
    let (_, while_held) = app.ping_with(hashed(ping_lead()), json!({})).await;
    assert_eq!(while_held["reason"], "no_eligible_buyers", "{while_held}");
    let ping_id = while_held["ping_id"].as_str().unwrap();
    assert_eq!(app.outcome_of(ping_id, "best").await["detail"], "duplicate");

    // The first bid's TTL passes unposted: its hold, and the reservation with it, are released.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (_, after) = app.ping_with(hashed(ping_lead()), json!({})).await;
    assert_eq!(after["status"], "bid", "{after}");
    let (_, sold) = app.post(after["ping_id"].as_str().unwrap(), hashed(full_lead()), json!({})).await;
    assert_eq!(sold["status"], "sold", "{sold}");
}

#[tokio::test]
async fn without_a_duplicate_window_every_copy_sells() {
    let app = spawn_app("", vec![best().with("dedupe_days = 0")]).await;
    let answers = join_all((0..COPIES).map(|_| direct_post(&app, full_lead()))).await;
    assert_eq!(sold_at(&answers, "9.00"), COPIES, "{answers:?}");
    assert_eq!(app.sim("best").post_count(), COPIES as u64);
}
