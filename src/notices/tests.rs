//! The queue, the hold until the answer is written, and the drainer against real simulated buyers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Response;

use super::*;
use crate::domain::money::Money;
use crate::domain::outcomes::BidOutcome;
use crate::sim::{Latency, RawReply, SimBuyer, SimBuyerSpec};

fn buyer(id: &str, notice_url: Option<String>, timeout_ms: u64) -> Arc<Buyer> {
    let mut buyer = crate::config::test_support::buyer(id, &["auto"]);
    buyer.notice_url = notice_url.map(|url| url.parse().expect("valid url"));
    buyer.timeout_ms = timeout_ms;
    Arc::new(buyer)
}

fn notice(buyer: &Arc<Buyer>) -> Notice {
    let auction = Arc::new(ClosedAuction { ping_id: "p_1".into(), campaign: "auto".into(), test: false });
    let fate = Fate {
        buyer: 0,
        outcome: BidOutcome::Lost,
        bid: Money::from_cents(800),
        price: None,
        min_to_win: Some(Money::from_cents(1001)),
    };
    Notice { buyer: Arc::clone(buyer), auction, fate }
}

fn outbox_of(notices: &Notices, buyer: &Arc<Buyer>, count: usize) -> Outbox {
    let mut outbox = notices.outbox();
    outbox.notices.extend((0..count).map(|_| notice(buyer)));
    outbox
}

fn queued(notices: &Notices) -> usize {
    notices.waiting.lock().as_ref().map_or(0, |waiting| waiting.len())
}

fn counted(notices: &Notices, buyer: &str, outcome: &str) -> u64 {
    notices.metrics.counter("gavel_notices_total", &[("buyer", buyer), ("outcome", outcome)])
}

#[test]
fn the_queue_takes_ten_thousand_and_drops_the_rest_without_waiting() {
    let notices = Notices::new(Arc::default());
    let buyer = buyer("b", Some("http://127.0.0.1:9/notice".into()), 200);
    drop(outbox_of(&notices, &buyer, QUEUE_CAPACITY));
    assert_eq!((queued(&notices), counted(&notices, "b", "dropped")), (10_000, 0));
    drop(outbox_of(&notices, &buyer, 3));
    assert_eq!((queued(&notices), counted(&notices, "b", "dropped")), (10_000, 3));
}

#[tokio::test]
async fn notices_held_by_an_answer_are_queued_only_once_its_body_is_done() {
    let notices = Notices::new(Arc::default());
    let buyer = buyer("b", Some("http://127.0.0.1:9/notice".into()), 200);
    let held = outbox_of(&notices, &buyer, 2).hold_until_sent(Response::new(Full::new(Bytes::from("{}"))));
    assert_eq!(queued(&notices), 0, "attached to the response");
    let response = after_answer(held);
    assert_eq!(queued(&notices), 0, "moved into the body");
    let body = response.into_body();
    assert_eq!(queued(&notices), 0, "while the body is alive");
    assert_eq!(body.collect().await.map(|b| b.to_bytes()).ok(), Some(Bytes::from("{}")));
    assert_eq!(queued(&notices), 2, "the body was read to its end and dropped");

    // An answer that carries no notices is left as it was.
    let plain = notices.outbox().hold_until_sent(Response::new(Full::new(Bytes::new())));
    assert!(plain.extensions().is_empty());
}

#[tokio::test]
async fn each_notice_is_sent_once_with_the_buyers_headers_and_counted() {
    let ok = SimBuyer::start(SimBuyerSpec::default()).await.unwrap();
    let refusing =
        SimBuyerSpec { notice_reply: Some(RawReply { status: 500, body: "{}".into() }), ..Default::default() };
    let refusing = SimBuyer::start(refusing).await.unwrap();
    let metrics = Arc::<Metrics>::default();
    let notices = Notices::new(Arc::clone(&metrics));
    let drainer = notices.start(BuyerClient::new()).expect("started once");
    assert!(notices.start(BuyerClient::new()).is_none());

    let mut with_header = crate::config::test_support::buyer("ok", &["auto"]);
    with_header.notice_url = Some(ok.notice_url().parse().unwrap());
    let token = hyper::header::HeaderValue::from_static("Bearer n");
    with_header.headers = vec![(hyper::header::AUTHORIZATION, token)];
    let with_header = Arc::new(with_header);
    let refused = buyer("refusing", Some(refusing.notice_url()), 200);
    let mut outbox = outbox_of(&notices, &with_header, 1);
    outbox.notices.push(notice(&refused));
    drop(outbox);

    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while counted(&notices, "ok", "sent") + counted(&notices, "refusing", "failed") < 2 {
        assert!(tokio::time::Instant::now() < deadline, "both notices counted within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = ok.notices();
    assert_eq!(received.len(), 1);
    let expected = serde_json::json!({"ping_id": "p_1", "campaign": "auto", "outcome": "lost", "bid": "8.00",
                                      "price": null, "min_to_win": "10.01", "test": false});
    assert_eq!(received[0].body, expected);
    assert_eq!(received[0].header("authorization"), Some("Bearer n"));
    assert_eq!(received[0].header("content-type"), Some("application/json"));
    assert_eq!(refusing.notice_count(), 1, "a refused notice is not retried");
    drainer.abort();
}

#[tokio::test(start_paused = true)]
async fn a_notice_to_an_endpoint_that_hangs_fails_at_the_buyers_timeout() {
    let hangs = SimBuyerSpec { notice_latency: Latency::Fixed(Duration::from_secs(50)), ..Default::default() };
    let hangs = SimBuyer::start(hangs).await.unwrap();
    let notices = Notices::new(Arc::default());
    let drainer = notices.start(BuyerClient::new()).expect("started");
    let slow = buyer("slow", Some(hangs.notice_url()), 1_500);
    let started = tokio::time::Instant::now();
    drop(outbox_of(&notices, &slow, 1));
    while counted(&notices, "slow", "failed") == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1_500) && took < Duration::from_secs(3), "failed after {took:?}");
    assert_eq!(counted(&notices, "slow", "sent"), 0);
    drainer.abort();
}
