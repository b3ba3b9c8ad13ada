//! Buyer terms enforced before a ping leaves, through the real server: caps, budgets and balance under
//! concurrency, holds that expire, duplicates, pauses, concurrency slots, lead age and the SLA breaker.

use std::time::Duration;

use futures_util::future::join_all;
use gavel::sim::SimBuyerSpec;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{full_lead, ping_lead, spawn_app, TestApp, TestBuyer, ADMIN_TOKEN};

/// A full lead with its own phone and email, so the duplicate check does not tell leads apart.
fn lead_number(n: usize) -> Value {
    let mut lead = full_lead();
    lead["phone"] = json!(format!("415867{:04}", 1000 + n));
    lead["email"] = json!(format!("lead{n}@example.com"));
    lead
}

/// Pings and posts `count` leads at once; returns how many were sold.
async fn sell_concurrently(app: &TestApp, count: usize) -> usize {
    let sales = (0..count).map(|n| async move {
        let (status, ping) = app.ping_with(ping_lead(), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{ping}");
        if ping["status"] != "bid" {
            return false;
        }
        let (status, post) = app.post(ping["ping_id"].as_str().unwrap(), lead_number(n), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{post}");
        post["status"] == "sold"
    });
    join_all(sales).await.into_iter().filter(|sold| *sold).count()
}

/// Polls the buyer's view until `ready` holds, for at most 10 s.
async fn wait_for_buyer(app: &TestApp, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let buyer = app.buyer(id).await;
        if ready(&buyer) {
            return buyer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("buyer {id} never reached the expected state: {}", app.buyer(id).await);
}

#[tokio::test]
async fn a_daily_cap_of_three_sells_exactly_three_leads_of_two_hundred_concurrent_auctions() {
    let buyer = TestBuyer::bidding("capped", "10.00").with("[buyers.caps]\ndaily = 3");
    let app = spawn_app("ping_deadline_ms = 2000", vec![buyer]).await;

    assert_eq!(sell_concurrently(&app, 200).await, 3);
    assert_eq!(app.sim("capped").post_count(), 3, "the buyer received exactly its cap");
    let daily = &app.buyer("capped").await["caps"]["daily"];
    assert_eq!(daily, &json!({"limit": 3, "used": 3, "held": 0, "remaining": 0}));
}

#[tokio::test]
async fn a_ramp_is_the_daily_cap_and_never_over_delivers_under_concurrency() {
    // Started two days ago in the buyer's timezone at 2 a day plus 1 a day: today's limit is 4, below the cap.
    let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let local = chrono::Utc::now().with_timezone(&tz);
    let start = local.date_naive() - chrono::Days::new(2);
    // Open from three hours ago to three hours from now (past midnight where it must be): a fixed day-long
    // window such as 00:00–23:59 would leave a minute a day when this test cannot sell.
    let hhmm = |at: chrono::DateTime<chrono_tz::Tz>| at.format("%H:%M").to_string();
    let (open, close) = (hhmm(local - chrono::Duration::hours(3)), hhmm(local + chrono::Duration::hours(3)));
    let ramp = format!(
        "[buyers.filters]\nschedule = {{ timezone = \"America/New_York\", days = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"], open = \"{open}\", close = \"{close}\" }}\n\
         [buyers.caps]\ndaily = 100\n[buyers.ramp]\nstart = \"{start}\"\ndaily_start = 2\ndaily_step = 1"
    );
    let app = spawn_app("ping_deadline_ms = 2000", vec![TestBuyer::bidding("ramped", "10.00").with(&ramp)]).await;
    let before = app.buyer("ramped").await;
    assert_eq!(before["ramp"]["today_limit"], 4, "{before}");
    assert_eq!(before["caps"]["daily"]["limit"], 4, "{before}");

    assert_eq!(sell_concurrently(&app, 100).await, 4);
    assert_eq!(app.sim("ramped").post_count(), 4, "the buyer received exactly today's ramp");
    let daily = &app.buyer("ramped").await["caps"]["daily"];
    assert_eq!(daily, &json!({"limit": 4, "used": 4, "held": 0, "remaining": 0}));
    let answer = app.ping().await;
    assert_eq!(app.outcome_of(answer["ping_id"].as_str().unwrap(), "ramped").await["detail"], "cap:daily");
}

#[tokio::test]
async fn a_daily_budget_is_never_overspent_under_concurrency() {
    let buyer = TestBuyer::bidding("budgeted", "10.00").with("[buyers.caps]\ndaily_budget = \"30.00\"");
    let app = spawn_app("ping_deadline_ms = 2000", vec![buyer]).await;

    assert_eq!(sell_concurrently(&app, 200).await, 3);
    assert_eq!(app.sim("budgeted").post_count(), 3);
    let daily = &app.buyer("budgeted").await["budgets"]["daily"];
    assert_eq!(daily, &json!({"limit": "30.00", "used": "30.00", "held": "0.00", "remaining": "0.00"}));
}

#[tokio::test]
async fn a_prepaid_wallet_is_never_overdrawn_under_concurrency() {
    let buyer = TestBuyer::bidding("wallet", "10.00").with("billing = \"prepaid\"");
    let app = spawn_app("ping_deadline_ms = 2000", vec![buyer]).await;
    app.deposit("wallet", "30.00").await;

    assert_eq!(sell_concurrently(&app, 200).await, 3);
    assert_eq!(app.sim("wallet").post_count(), 3);
    let view = app.buyer("wallet").await;
    assert_eq!((&view["balance"], &view["available"]), (&json!("0.00"), &json!("0.00")));
}

#[tokio::test]
async fn a_prepaid_buyer_without_funds_is_not_pinged_and_a_bid_above_its_wallet_cannot_win() {
    let poor = TestBuyer::bidding("poor", "10.00").with("billing = \"prepaid\"");
    let rich = TestBuyer::bidding("rich", "5.00");
    let app = spawn_app("", vec![poor, rich]).await;

    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    assert_eq!(app.outcome_of(&ping_id, "poor").await["detail"], "balance");
    assert_eq!(app.sim("poor").ping_count(), 0);

    // 6.00 covers the floor, so it is pinged, but not its 10.00 bid: the 5.00 bid wins.
    app.deposit("poor", "6.00").await;
    let ping = app.ping().await;
    let ping_id = ping["ping_id"].as_str().unwrap();
    let poor = app.outcome_of(ping_id, "poor").await;
    assert_eq!((&poor["outcome"], &poor["detail"]), (&json!("bid"), &json!("balance")));
    assert_eq!(app.audit(ping_id).await["winner"], "rich");
    assert_eq!(ping["payout"], "4.50");
}

#[tokio::test]
async fn an_invoice_buyer_is_limited_by_its_credit() {
    let buyer = TestBuyer::bidding("invoiced", "10.00").with("billing = \"invoice\"\ncredit_limit = \"15.00\"");
    let app = spawn_app("", vec![buyer]).await;

    assert_eq!(sell_concurrently(&app, 3).await, 1, "15.00 of credit covers one 10.00 lead");
    let view = app.buyer("invoiced").await;
    assert_eq!(
        (&view["balance"], &view["available"], &view["credit_limit"]),
        (&json!("-10.00"), &json!("5.00"), &json!("15.00"))
    );
    assert_eq!(view["billing"], "invoice");
}

#[tokio::test]
async fn a_hold_is_released_when_its_ping_expires_unposted() {
    let buyer = TestBuyer::bidding("capped", "10.00").with("[buyers.caps]\ndaily = 1");
    let app = spawn_app("bid_ttl_s = 1", vec![buyer]).await;

    let first = app.ping().await;
    assert_eq!(first["status"], "bid");
    let held = app.buyer("capped").await;
    assert_eq!(held["caps"]["daily"], json!({"limit": 1, "used": 0, "held": 1, "remaining": 0}));
    assert_eq!(held["held"], "10.00");
    let second = app.ping().await;
    assert_eq!(second["reason"], "no_eligible_buyers", "the cap unit is held by the first bid");
    assert_eq!(app.outcome_of(second["ping_id"].as_str().unwrap(), "capped").await["detail"], "cap:daily");

    wait_for_buyer(&app, "capped", |b| b["caps"]["daily"]["held"] == 0).await;
    assert_eq!(app.ping().await["status"], "bid", "the expired hold gave its unit back");
    let (status, late) = app.post(first["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!((status, &late["error"]["code"]), (StatusCode::GONE, &json!("ping_expired")));
}

#[tokio::test]
async fn a_rejected_lead_gives_its_hold_back() {
    let spec = SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::bidding("10.00") };
    let buyer = TestBuyer::new("picky", spec).with("[buyers.caps]\ndaily = 1");
    let app = spawn_app("", vec![buyer]).await;

    let ping = app.ping().await;
    let (_, post) = app.post(ping["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(post["status"], "unsold");
    let view = app.buyer("picky").await;
    assert_eq!(view["caps"]["daily"], json!({"limit": 1, "used": 0, "held": 0, "remaining": 1}));
    assert_eq!(app.ping().await["status"], "bid");
}

#[tokio::test]
async fn a_buyer_is_never_sold_the_same_phone_twice_within_its_dedupe_days() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00")]).await;
    let ping = app.ping().await;
    let (_, sold) = app.post(ping["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold");

    // At ping time, from the digest the seller sends.
    let phone_sha256 = gavel::domain::lead::sha256_hex("4158670100");
    let mut hashed = ping_lead();
    hashed["phone_sha256"] = json!(phone_sha256);
    let (_, again) = app.ping_with(hashed, json!({})).await;
    assert_eq!(again["reason"], "no_eligible_buyers");
    assert_eq!(app.outcome_of(again["ping_id"].as_str().unwrap(), "best").await["detail"], "duplicate");

    // At post time, from the real phone, when the ping carried no digest.
    let ping = app.ping().await;
    let (_, post) = app.post(ping["ping_id"].as_str().unwrap(), full_lead(), json!({})).await;
    assert_eq!(post["status"], "unsold");
    assert_eq!(app.sim("best").post_count(), 1, "the duplicate never reached the buyer");
}

#[tokio::test]
async fn operators_pause_and_resume_buyers_and_every_pause_is_explained() {
    let active = TestBuyer::bidding("active", "10.00");
    let configured = TestBuyer::bidding("configured", "12.00").with("paused = true");
    let app = spawn_app("", vec![active, configured]).await;

    let configured_view = app.buyer("configured").await;
    assert_eq!((&configured_view["state"], &configured_view["state_reason"]), (&json!("paused"), &json!("config")));
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    assert_eq!(app.outcome_of(&ping_id, "configured").await["detail"], "paused");

    let (status, paused) = app.post_json("/admin/buyers/active/pause", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((&paused["state"], &paused["state_reason"]), (&json!("paused"), &json!("operator")));
    assert_eq!(app.ping().await["reason"], "no_eligible_buyers");

    // Resume clears any pause, the config file's included.
    for id in ["active", "configured"] {
        let (status, resumed) = app.post_json(&format!("/admin/buyers/{id}/resume"), ADMIN_TOKEN, &json!({})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!((&resumed["state"], &resumed["state_reason"]), (&json!("active"), &Value::Null));
    }
    assert_eq!(app.ping().await["payout"], "10.80", "the 12.00 bidder is back");

    let (_, all) = app.get_json("/admin/buyers", ADMIN_TOKEN).await;
    let ids: Vec<&str> = all["buyers"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["active", "configured"]);
    let (status, _) = app.post_json("/admin/buyers/nobody/pause", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app.get_json("/admin/buyers", crate::helpers::SELLER_KEY).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn deposits_refuse_bad_amounts_and_change_nothing() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00").with("billing = \"prepaid\"")]).await;
    let cases = [
        (json!({}), "missing_field"),
        (json!({"amount": "-5.00"}), "invalid_field"),
        (json!({"amount": "0.00"}), "invalid_field"),
        (json!({"amount": "ten"}), "invalid_field"),
    ];
    for (body, code) in cases {
        let (status, answer) = app.post_json("/admin/buyers/best/deposits", ADMIN_TOKEN, &body).await;
        assert_eq!((status, &answer["error"]["code"]), (StatusCode::BAD_REQUEST, &json!(code)), "{body}");
    }
    assert_eq!(app.buyer("best").await["balance"], "0.00");
    let deposit = app.deposit("best", "12.345").await;
    assert!(deposit["deposit_id"].as_str().unwrap().starts_with("d_"));
    assert_eq!(deposit["balance"], "12.34", "rounded down to the cent");
}

#[tokio::test]
async fn concurrent_pings_are_capped_per_buyer() {
    let spec = SimBuyerSpec {
        ping_latency: gavel::sim::Latency::Fixed(Duration::from_millis(300)),
        ..SimBuyerSpec::bidding("10.00")
    };
    let buyer = TestBuyer::new("narrow", spec).with("timeout_ms = 1500\n[buyers.caps]\nconcurrent_pings = 1");
    let app = spawn_app("ping_deadline_ms = 2000", vec![buyer]).await;

    let (first, second) = tokio::join!(app.ping_with(ping_lead(), json!({})), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.ping_with(ping_lead(), json!({})).await
    });
    assert_eq!(first.1["status"], "bid");
    assert_eq!(app.outcome_of(second.1["ping_id"].as_str().unwrap(), "narrow").await["detail"], "concurrency");
    assert_eq!(app.ping().await["status"], "bid", "the slot is free once the first ping is answered");
}

#[tokio::test]
async fn stale_leads_are_kept_from_buyers_with_a_lead_age_limit() {
    let buyer = TestBuyer::bidding("fresh-only", "10.00").with("[buyers.filters]\nmax_lead_age_s = 600");
    let app = spawn_app("", vec![buyer]).await;
    let mut stale = ping_lead();
    stale["captured_at"] = json!((chrono::Utc::now() - chrono::Duration::minutes(11)).to_rfc3339());
    let (_, ping) = app.ping_with(stale, json!({})).await;
    assert_eq!(app.outcome_of(ping["ping_id"].as_str().unwrap(), "fresh-only").await["detail"], "lead_age");
    let mut fresh = ping_lead();
    fresh["captured_at"] = json!((chrono::Utc::now() - chrono::Duration::minutes(9)).to_rfc3339());
    assert_eq!(app.ping_with(fresh, json!({})).await.1["status"], "bid");
    assert_eq!(app.ping().await["status"], "bid", "no captured_at: captured when the ping arrived");
}

#[tokio::test]
async fn a_hanging_buyer_is_sla_paused_probed_after_cooldown_and_restored_when_it_answers() {
    let sla = "[buyers.sla]\nwindow = 4\nmin_samples = 4\nmax_timeout_rate = 0.5\ncooldown_s = 1\nprobe_share = 1";
    let flaky = TestBuyer::new("flaky", SimBuyerSpec::hanging()).with(sla);
    let app = spawn_app("ping_deadline_ms = 100", vec![flaky]).await;

    for _ in 0..4 {
        assert_eq!(app.ping().await["reason"], "no_bids");
    }
    let paused = app.buyer("flaky").await;
    assert_eq!((&paused["state"], &paused["state_reason"]), (&json!("sla_paused"), &json!("timeout_rate")));
    assert_eq!(paused["health"]["timeout_rate"], 1.0);
    let excluded = app.ping().await;
    assert_eq!(app.outcome_of(excluded["ping_id"].as_str().unwrap(), "flaky").await["detail"], "sla_paused");
    assert_eq!(app.sim("flaky").ping_count(), 4, "a paused buyer is not pinged");

    app.sim("flaky").set_spec(SimBuyerSpec::bidding("10.00"));
    let probing = wait_for_buyer(&app, "flaky", |b| b["state"] == "probing").await;
    assert_eq!(probing["state_reason"], "timeout_rate");
    for _ in 0..4 {
        assert_eq!(app.ping().await["status"], "bid", "probe_share = 1: every eligible ping probes");
    }
    let restored = app.buyer("flaky").await;
    assert_eq!((&restored["state"], &restored["state_reason"]), (&json!("active"), &Value::Null));
    assert_eq!(restored["health"]["timeout_rate"], 0.0);
}
