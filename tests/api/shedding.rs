//! Rate limits and load shedding: a seller over its `max_pings_per_second` gets 429 `rate_limited` with
//! `Retry-After` while other sellers go on; past the limit of auctions in flight a ping or direct post gets
//! 503 `overloaded` at once and leaves no trace.

use std::time::Duration;

use futures_util::future::join_all;
use gavel::sim::SimBuyerSpec;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::helpers::*;

/// A ping with its status, `Retry-After` header and body.
async fn ping_as(app: &TestApp, key: &str, path: &str, lead: Value) -> (StatusCode, Option<u64>, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.base))
        .bearer_auth(key)
        .json(&json!({"campaign": "auto", "lead": lead}))
        .send()
        .await
        .expect("request sent");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
    (status, retry_after, response.json().await.unwrap_or(Value::Null))
}

async fn metrics(app: &TestApp) -> String {
    app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap()
}

#[tokio::test]
async fn a_flooding_seller_gets_429_while_another_seller_s_pings_succeed() {
    let tuning = Tuning { acme: "max_pings_per_second = 5", ..Tuning::default() };
    let app = spawn_tuned_app(tuning, "", vec![TestBuyer::bidding("buyer", "8.00")]).await;

    let started = Instant::now();
    let flood = join_all((0..40).map(|_| ping_as(&app, SELLER_KEY, "/v1/ping", ping_lead()))).await;
    let took = started.elapsed();
    let admitted = flood.iter().filter(|(status, ..)| *status == StatusCode::OK).count();
    let limited: Vec<_> = flood.iter().filter(|(status, ..)| *status == StatusCode::TOO_MANY_REQUESTS).collect();
    assert_eq!(admitted + limited.len(), 40, "every ping is either answered or rate limited");
    // A burst of 5, then 5 a second for as long as the flood lasted.
    let allowed = 5 + 5 * (took.as_secs() as usize + 1);
    assert!((1..=allowed).contains(&admitted), "{admitted} admitted in {took:?}");
    assert!(!limited.is_empty());
    for (_, retry_after, body) in &limited {
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains('5'), "the message names the limit: {body}");
        assert!(matches!(retry_after, Some(1..=2)), "Retry-After: {retry_after:?}");
    }

    // Meanwhile another seller, with no limit, is served every time.
    let others = join_all((0..10).map(|_| ping_as(&app, OTHER_SELLER_KEY, "/v1/ping", ping_lead()))).await;
    for (status, _, body) in &others {
        assert_eq!((*status, body["status"].as_str()), (StatusCode::OK, Some("bid")), "{body}");
    }
    // A direct post runs an auction too, so it counts against the same rate.
    let posts = join_all((0..10).map(|_| ping_as(&app, SELLER_KEY, "/v1/leads", full_lead()))).await;
    assert!(posts.iter().any(|(status, ..)| *status == StatusCode::TOO_MANY_REQUESTS));

    // Rate-limited calls reached no buyer; after Retry-After the seller is admitted again.
    let direct_sold = posts.iter().filter(|(status, ..)| *status == StatusCode::OK).count();
    assert_eq!(app.sim("buyer").ping_count() as usize, admitted + 10 + direct_sold);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, _, body) = ping_as(&app, SELLER_KEY, "/v1/ping", ping_lead()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(metrics(&app).await.contains(r#"gavel_requests_refused_total{seller="acme",reason="rate_limited"}"#));
}

#[tokio::test]
async fn past_the_auctions_in_flight_limit_new_auctions_get_503_at_once_and_leave_no_trace() {
    let tuning = Tuning { server: "max_auctions_in_flight = 2", ..Tuning::default() };
    let slow = TestBuyer::new("slow", SimBuyerSpec::hanging());
    let app = spawn_tuned_app(tuning, "ping_deadline_ms = 3000", vec![slow]).await;
    let transactions_before = app.get_json("/admin/ledger/transactions", ADMIN_TOKEN).await.1;

    // Two auctions fill the limit; each waits out its 3 s deadline on a buyer that never answers.
    let running: Vec<_> = (0..2)
        .map(|_| {
            let (http, base) = (app.http.clone(), app.base.clone());
            tokio::spawn(async move {
                let body = json!({"campaign": "auto", "lead": ping_lead()});
                http.post(format!("{base}/v1/ping")).bearer_auth(SELLER_KEY).json(&body).send().await
            })
        })
        .collect();
    let waited = Instant::now();
    while app.sim("slow").ping_count() < 2 {
        assert!(waited.elapsed() < Duration::from_secs(20), "the two auctions never reached the buyer");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // A third ping and a direct post are refused at once, well before the running auctions end.
    for path in ["/v1/ping", "/v1/leads"] {
        let sent = Instant::now();
        let (status, retry_after, body) = ping_as(&app, OTHER_SELLER_KEY, path, full_lead()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("overloaded")));
        assert!(sent.elapsed() < Duration::from_millis(1500), "{path} shed after {:?}", sent.elapsed());
        assert_eq!(retry_after, Some(1));
        assert!(body.get("ping_id").is_none(), "{body}");
    }
    assert!(running.iter().all(|r| !r.is_finished()), "the admitted auctions were still running");

    for auction in running {
        let response = auction.await.expect("task").expect("answered");
        assert_eq!(response.status(), StatusCode::OK);
    }
    // Nothing of the shed calls was recorded: no auction (no buyer ping, no count, no audit), no money.
    assert_eq!(app.sim("slow").ping_count(), 2);
    let text = metrics(&app).await;
    assert!(text.contains(r#"gavel_pings_total{campaign="auto",status="no_bid"} 2"#), "{text}");
    assert!(text.contains(r#"gavel_auction_seconds_count{campaign="auto"} 2"#), "{text}");
    assert!(text.contains(r#"gavel_requests_refused_total{seller="other",reason="overloaded"} 2"#), "{text}");
    assert_eq!(app.get_json("/admin/ledger/transactions", ADMIN_TOKEN).await.1, transactions_before);
    assert_eq!(app.server.engine.ledger.sale_count(), 0);
    assert_eq!(app.server.engine.auction_slots.in_flight(), 0, "every slot came back");

    // Once the load is gone, auctions are admitted again.
    app.sim("slow").set_spec(SimBuyerSpec::bidding("4.00"));
    let (status, _, body) = ping_as(&app, SELLER_KEY, "/v1/ping", ping_lead()).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("bid")), "{body}");
}
