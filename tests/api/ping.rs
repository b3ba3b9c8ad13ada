//! `POST /v1/ping`: gates, fan-out under the deadline, answer classification, ranking and clearing.

use std::time::Duration;

use tokio::time::Instant;

use gavel::sim::{Latency, RawReply, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test]
async fn the_highest_bid_wins_and_the_seller_is_quoted_the_price_less_margin() {
    let app = spawn_app(
        "",
        vec![TestBuyer::bidding("low", "5.00"), TestBuyer::bidding("high", "9.00"), TestBuyer::bidding("mid", "7.00")],
    )
    .await;
    let answer = app.ping().await;
    assert_eq!(answer["status"], "bid");
    assert_eq!(answer["payout"], "8.10", "9.00 less the seller's 10% margin");
    assert_eq!(answer["buyers_pinged"], 3);
    assert_eq!(answer["bids_received"], 3);
    assert!(answer["ping_id"].as_str().unwrap().starts_with("p_"));
    assert!(answer["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(answer.get("winner").is_none() && answer.get("price").is_none(), "sellers never see the buyer or gross");

    let audit = app.audit(answer["ping_id"].as_str().unwrap()).await;
    assert_eq!(audit["winner"], "high");
    assert_eq!(audit["price"], "9.00");
    assert_eq!(audit["payout"], "8.10");
    assert_eq!(audit["seller"], "acme");
    assert_eq!(audit["buyers"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn a_hanging_buyer_does_not_delay_the_answer_past_the_deadline() {
    let app = spawn_app(
        "ping_deadline_ms = 300",
        vec![TestBuyer::new("hangs", SimBuyerSpec::hanging()), TestBuyer::bidding("answers", "4.00")],
    )
    .await;
    let started = Instant::now();
    let (status, answer) = app.ping_with(ping_lead(), json!({"deadline_ms": 150})).await;
    let elapsed = started.elapsed();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "bid");
    // Generous: the point is that the answer does not wait for the hanging buyer (which never answers).
    assert!(elapsed < Duration::from_millis(150 + 500), "answered after {elapsed:?}");

    let ping_id = answer["ping_id"].as_str().unwrap();
    let hung = app.outcome_of(ping_id, "hangs").await;
    assert_eq!(hung["outcome"], "timeout");
    let audit = app.audit(ping_id).await;
    assert_eq!(audit["deadline_ms"], 150, "deadline_ms is clamped to at most the campaign's");
    assert_eq!(audit["winner"], "answers");
}

#[tokio::test]
async fn garbage_server_errors_negative_and_over_max_bids_are_errors_never_bids() {
    let reply = |status, body: &str| SimBuyerSpec {
        ping_reply: Some(RawReply { status, body: body.into() }),
        ..SimBuyerSpec::default()
    };
    let app = spawn_app(
        "",
        vec![
            TestBuyer::new("garbage", reply(200, "<html>oops</html>")),
            TestBuyer::new("crashes", reply(500, "{}")),
            TestBuyer::new("negative", reply(200, r#"{"bid": "-3.00"}"#)),
            TestBuyer::new("greedy", reply(200, r#"{"bid": 5000}"#)),
            TestBuyer::new("redirects", reply(302, "")),
            TestBuyer::bidding("honest", "2.00"),
        ],
    )
    .await;
    let answer = app.ping().await;
    let ping_id = answer["ping_id"].as_str().unwrap();
    let expected = [
        ("garbage", "invalid_json"),
        ("crashes", "http_500"),
        ("negative", "negative_bid"),
        ("greedy", "bid_above_max"),
        ("redirects", "redirect"),
    ];
    for (buyer, detail) in expected {
        let outcome = app.outcome_of(ping_id, buyer).await;
        assert_eq!(outcome["outcome"], "error", "{buyer}: {outcome}");
        assert_eq!(outcome["detail"], detail, "{buyer}: {outcome}");
        assert_eq!(outcome["bid"], Value::Null);
    }
    assert_eq!(answer["bids_received"], 1);
    assert_eq!(app.audit(ping_id).await["winner"], "honest");

    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"gavel_buyer_responses_total{buyer="crashes",outcome="error"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"gavel_buyer_responses_total{buyer="honest",outcome="bid"} 1"#));
    assert!(metrics.contains(r#"gavel_pings_total{campaign="auto",status="bid"} 1"#));
    assert!(metrics.contains("gavel_auction_seconds_count{campaign=\"auto\"} 1"));
}

#[tokio::test]
async fn no_bid_answers_in_every_accepted_form_and_the_three_reasons() {
    let no_bid = |body: &str| SimBuyerSpec {
        ping_reply: Some(RawReply { status: 200, body: body.into() }),
        ..SimBuyerSpec::default()
    };
    let app = spawn_app(
        "",
        vec![
            TestBuyer::new("null", no_bid(r#"{"bid": null}"#)),
            TestBuyer::new("zero", no_bid(r#"{"bid": 0}"#)),
            TestBuyer::new("flag", no_bid(r#"{"no_bid": true}"#)),
            TestBuyer::new(
                "empty",
                SimBuyerSpec {
                    ping_reply: Some(RawReply { status: 204, body: String::new() }),
                    ..SimBuyerSpec::default()
                },
            ),
        ],
    )
    .await;
    let answer = app.ping().await;
    assert_eq!(answer, json!({"ping_id": answer["ping_id"], "status": "no_bid", "reason": "no_bids"}));
    let audit = app.audit(answer["ping_id"].as_str().unwrap()).await;
    assert!(audit["buyers"].as_array().unwrap().iter().all(|b| b["outcome"] == "no_bid"), "{audit}");

    let below = spawn_app("floor = \"5.00\"", vec![TestBuyer::bidding("cheap", "4.99")]).await;
    assert_eq!(below.ping().await["reason"], "below_floor");

    let paused = spawn_app("", vec![TestBuyer::bidding("resting", "9.00").with("paused = true")]).await;
    let answer = paused.ping().await;
    assert_eq!(answer["reason"], "no_eligible_buyers");
    let outcome = paused.outcome_of(answer["ping_id"].as_str().unwrap(), "resting").await;
    assert_eq!((outcome["outcome"].as_str(), outcome["detail"].as_str()), (Some("excluded"), Some("paused")));
    assert_eq!(paused.sim("resting").ping_count(), 0, "an excluded buyer is never pinged");
}

#[tokio::test]
async fn gates_for_fields_consent_and_time_left_exclude_before_any_ping() {
    let app = spawn_app(
        "min_buyer_ms = 50",
        vec![
            TestBuyer::bidding("needs-income", "9.00").with("[buyers.filters]\nrequired_fields = [\"income\"]"),
            TestBuyer::bidding("needs-consent", "9.00").with("[buyers.filters]\nrequire_consent = true"),
            TestBuyer::bidding("slow", "9.00").with("timeout_ms = 40"),
            TestBuyer::bidding("fine", "3.00"),
        ],
    )
    .await;
    let answer = app.ping().await;
    let ping_id = answer["ping_id"].as_str().unwrap();
    for (buyer, detail) in
        [("needs-income", "missing_field:income"), ("needs-consent", "consent"), ("slow", "insufficient_time")]
    {
        let outcome = app.outcome_of(ping_id, buyer).await;
        assert_eq!(outcome["outcome"], "excluded", "{buyer}");
        assert_eq!(outcome["detail"], detail, "{buyer}");
        assert_eq!(app.sim(buyer).ping_count(), 0, "{buyer} was not pinged");
    }
    assert_eq!(answer["buyers_pinged"], 1);

    let consent = json!({"postal_code": "94107", "state": "CA", "age": 34, "income": 90000,
        "jornaya_leadid": "123E4567-E89B-12D3-A456-426614174000"});
    let (_, answer) = app.ping_with(consent, json!({})).await;
    assert_eq!(answer["buyers_pinged"], 3, "both gates pass once the lead carries income and consent");
}

#[tokio::test]
async fn pings_carry_only_ping_fields_the_real_deadline_and_the_buyers_adapters() {
    let app = spawn_app(
        "ping_deadline_ms = 400",
        vec![TestBuyer::bidding("mapped", "6.00").with(
            "timeout_ms = 250\nheaders = { Authorization = \"Bearer buyer-token\" }\nfield_map = { postal_code = \"zip\" }\nstatic_fields = { vendor = \"gavel\" }",
        )],
    )
    .await;
    // A direct post carries the whole lead, PII included: none of it may reach a ping.
    let body = json!({"campaign": "auto", "lead": full_lead(), "test": true});
    let (status, _) = app.post_json("/v1/leads", SELLER_KEY, &body).await;
    assert_eq!(status, StatusCode::OK);

    let pings = app.sim("mapped").pings();
    assert_eq!(pings.len(), 1);
    let ping = &pings[0];
    for pii in ["8670100", "Ada", "Lovelace", "example.com", "Example.com"] {
        assert!(!ping.raw.contains(pii), "ping body leaks {pii:?}: {}", ping.raw);
    }
    let lead = ping.body["lead"].as_object().unwrap();
    let keys: Vec<&str> = lead.keys().map(String::as_str).collect();
    assert_eq!(keys, ["age", "email_sha256", "homeowner", "phone_sha256", "state", "vendor", "zip"]);
    assert_eq!(lead["zip"], "94107");
    assert_eq!(ping.body["campaign"], "auto");
    assert_eq!(ping.body["test"], true);
    let deadline_ms = ping.body["deadline_ms"].as_u64().unwrap();
    assert!((200..=250).contains(&deadline_ms), "capped by timeout_ms 250, got {deadline_ms}");
    let header = |name: &str| ping.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    assert_eq!(header("x-gavel-deadline-ms"), Some(deadline_ms.to_string()));
    assert_eq!(header("authorization").as_deref(), Some("Bearer buyer-token"));
}

#[tokio::test]
async fn fixed_price_buyers_bid_without_being_pinged() {
    let app = spawn_app(
        "",
        vec![TestBuyer::bidding("flat", "0").with("fixed_price = \"7.50\""), TestBuyer::bidding("pinged", "6.00")],
    )
    .await;
    let answer = app.ping().await;
    assert_eq!(answer["payout"], "6.75");
    assert_eq!(answer["buyers_pinged"], 1);
    assert_eq!(answer["bids_received"], 2);
    assert_eq!(app.sim("flat").ping_count(), 0);
    assert_eq!(app.audit(answer["ping_id"].as_str().unwrap()).await["winner"], "flat");
}

#[tokio::test]
async fn second_price_pays_the_runner_up_plus_a_cent() {
    let app = spawn_app(
        "auction = \"second_price\"",
        vec![TestBuyer::bidding("top", "10.00"), TestBuyer::bidding("runner-up", "7.00")],
    )
    .await;
    let answer = app.ping().await;
    // 7.01 less 10% is 6.309, rounded down to the cent.
    assert_eq!(answer["payout"], "6.30");
    let audit = app.audit(answer["ping_id"].as_str().unwrap()).await;
    assert_eq!((audit["winner"].as_str(), audit["price"].as_str()), (Some("top"), Some("7.01")));
}

#[tokio::test]
async fn distribution_strategies_decide_who_is_offered_the_lead_first() {
    let waterfall = spawn_app(
        "distribution = \"waterfall\"",
        vec![
            TestBuyer::bidding("rich", "9.00").with("priority = 2"),
            TestBuyer::bidding("partner", "3.00").with("priority = 1"),
        ],
    )
    .await;
    let answer = waterfall.ping().await;
    assert_eq!(waterfall.audit(answer["ping_id"].as_str().unwrap()).await["winner"], "partner");

    let round_robin = spawn_app(
        "distribution = \"round_robin\"",
        vec![TestBuyer::bidding("a", "9.00"), TestBuyer::bidding("b", "3.00"), TestBuyer::bidding("c", "5.00")],
    )
    .await;
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let answer = round_robin.ping().await;
        firsts
            .push(round_robin.audit(answer["ping_id"].as_str().unwrap()).await["winner"].as_str().unwrap().to_owned());
    }
    firsts.sort();
    assert_eq!(firsts, ["a", "b", "c"], "each bidder goes first once in three leads");

    let weighted = spawn_app(
        "distribution = \"weighted\"",
        vec![
            TestBuyer::bidding("heavy", "2.00").with("weight = 1000"),
            TestBuyer::bidding("light", "9.00").with("weight = 1"),
        ],
    )
    .await;
    let mut heavy_first = 0;
    for _ in 0..10 {
        let answer = weighted.ping().await;
        if weighted.audit(answer["ping_id"].as_str().unwrap()).await["winner"] == "heavy" {
            heavy_first += 1;
        }
    }
    assert!(heavy_first >= 8, "a 1000:1 weight puts heavy first almost always, got {heavy_first}/10");
}

#[tokio::test]
async fn coverage_gates_exclude_buyers_outside_their_states_and_postal_codes() {
    let app = spawn_app(
        "",
        vec![
            TestBuyer::bidding("nevada", "9.00").with("[buyers.filters]\nstates = [\"NV\"]"),
            TestBuyer::bidding("bay-area", "8.00")
                .with("[buyers.filters]\npostal_codes = [\"941\"]\nexclude_postal_codes = [\"94107\"]"),
            TestBuyer::bidding("california", "3.00")
                .with("[buyers.filters]\nstates = [\"CA\"]\npostal_codes = [\"94107\", \"900\"]"),
        ],
    )
    .await;
    let answer = app.ping().await;
    let ping_id = answer["ping_id"].as_str().unwrap();
    for (buyer, detail) in [("nevada", "state"), ("bay-area", "postal_code")] {
        let outcome = app.outcome_of(ping_id, buyer).await;
        assert_eq!(
            (outcome["outcome"].as_str(), outcome["detail"].as_str()),
            (Some("excluded"), Some(detail)),
            "{buyer}"
        );
        assert_eq!(app.sim(buyer).ping_count(), 0, "{buyer} was not pinged");
    }
    assert_eq!(app.audit(ping_id).await["winner"], "california");
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"gavel_buyer_exclusions_total{buyer="nevada",reason="state"} 1"#), "{metrics}");
}

#[tokio::test]
async fn each_buyer_is_cut_off_at_its_own_time_and_the_others_still_count() {
    let slow =
        SimBuyerSpec { ping_latency: Latency::Fixed(Duration::from_millis(400)), ..SimBuyerSpec::bidding("4.00") };
    let app = spawn_app(
        "ping_deadline_ms = 3000",
        vec![
            TestBuyer::new("hangs-short", SimBuyerSpec::hanging()).with("timeout_ms = 200"),
            TestBuyer::new("hangs-longer", SimBuyerSpec::hanging()).with("timeout_ms = 700"),
            TestBuyer::new("slow", slow).with("timeout_ms = 1500"),
            TestBuyer::bidding("quick", "5.00"),
        ],
    )
    .await;
    let started = Instant::now();
    let answer = app.ping().await;
    let took = started.elapsed();
    // Over when the longer hanging buyer's 700 ms run out, well before the auction's 3 s deadline.
    assert!(took >= Duration::from_millis(650), "answered before every buyer answered or ran out: {took:?}");
    assert!(took < Duration::from_millis(2500), "waited for the auction's deadline, not the buyers' own: {took:?}");
    assert_eq!(answer["buyers_pinged"], 4, "{answer}");
    assert_eq!(answer["bids_received"], 2, "the slow buyer answered after the first cut-off: {answer}");
    let ping_id = answer["ping_id"].as_str().unwrap();
    for (buyer, limit_ms) in [("hangs-short", 200.0), ("hangs-longer", 700.0)] {
        let outcome = app.outcome_of(ping_id, buyer).await;
        assert_eq!(outcome["outcome"], "timeout", "{buyer}: {outcome}");
        let latency = outcome["latency_ms"].as_f64().unwrap_or(0.0);
        assert!(latency >= limit_ms - 10.0 && latency < limit_ms + 1000.0, "{buyer} cut off after {latency} ms");
    }
    assert_eq!(app.outcome_of(ping_id, "slow").await["outcome"], "bid");
}
