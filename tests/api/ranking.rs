//! Return-aware ranking through the real server: approved returns turn the ranking, the audit trail shows
//! the figures, and the change survives a restart.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// Every return is approved at once (no rate cap), and the same example person may be sold again.
const LENIENT: &str = "dedupe_days = 0\n[buyers.returns]\nrate_cap_percent = \"100\"";

/// The (return_rate, expected_value) of one buyer in an auction's audit trail.
async fn figures(app: &TestApp, ping_id: &str, buyer: &str) -> (f64, Value) {
    let entry = app.outcome_of(ping_id, buyer).await;
    let rate = entry["return_rate"].as_f64().unwrap_or_else(|| panic!("return_rate is a number: {entry}"));
    (rate, entry["expected_value"].clone())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

/// Pings, posts, and has the buyer that bought return the lead (approved at once).
async fn sell_and_return(app: &TestApp, buyer: &str) {
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let (_, sold) = app.post(&ping_id, full_lead(), json!({})).await;
    assert_eq!(sold["status"], "sold", "{sold}");
    assert_eq!(app.audit(&ping_id).await["winner"], buyer);
    let body = json!({"lead_id": sold["lead_id"], "reason": "wrong_number"});
    let (status, filed) = app.post_json("/v1/returns", &format!("bk_{buyer}"), &body).await;
    assert_eq!((status, filed["status"].as_str()), (StatusCode::CREATED, Some("approved")), "{filed}");
}

/// After three of high's leads came back: high at r = 4/23 keeps 8.2608… < low's 8.55, so low wins and pays
/// 8.2608… / 0.95 = 8.695… → 8.70.
async fn assert_low_wins_on_quality(app: &TestApp) {
    let quote = app.ping().await;
    assert_eq!(quote["payout"], "7.83", "8.70 less 10%: {quote}");
    let ping_id = quote["ping_id"].as_str().unwrap().to_owned();
    let audit = app.audit(&ping_id).await;
    assert_eq!((audit["winner"].as_str(), audit["price"].as_str()), (Some("low"), Some("8.70")), "{audit}");
    let (rate, value) = figures(app, &ping_id, "high").await;
    assert!(close(rate, 4.0 / 23.0) && value == "8.26", "{rate} {value}");
    let (rate, value) = figures(app, &ping_id, "low").await;
    assert!(close(rate, 0.05) && value == "8.55", "{rate} {value}");
}

#[tokio::test]
async fn approved_returns_turn_the_ranking_the_audit_shows_why_and_a_restart_keeps_it() {
    let app = spawn_app(
        "ranking = \"expected_value\"\nauction = \"second_price\"",
        vec![TestBuyer::bidding("high", "10.00").with(LENIENT), TestBuyer::bidding("low", "9.00").with(LENIENT)],
    )
    .await;
    // No history: both at r = 1/20. 10.00 keeps 9.50 against 8.55, and pays 8.55 / 0.95 = 9.00 → 9.01.
    let first = app.ping().await;
    assert_eq!(first["payout"], "8.10", "9.01 less the seller's 10%");
    let ping_id = first["ping_id"].as_str().unwrap();
    let (rate, value) = figures(&app, ping_id, "high").await;
    assert!(close(rate, 0.05) && value == "9.50", "{rate} {value}");
    let (rate, value) = figures(&app, ping_id, "low").await;
    assert!(close(rate, 0.05) && value == "8.55", "{rate} {value}");
    assert_eq!(app.audit(ping_id).await["price"], "9.01");

    // Three leads bought and returned: r = (3 + 1) / (3 + 20), and 10.00 keeps 10 × 19/23 = 8.2608… < 8.55.
    // (After two it still kept 10 × 19/22 = 8.636… and won.)
    for _ in 0..3 {
        sell_and_return(&app, "high").await;
    }
    assert_low_wins_on_quality(&app).await;

    // Rates are per seller: another seller's auction knows nothing of these returns.
    let (_, other) =
        app.post_json("/v1/ping", OTHER_SELLER_KEY, &json!({"campaign": "auto", "lead": ping_lead()})).await;
    let other_id = other["ping_id"].as_str().unwrap();
    assert_eq!(app.audit(other_id).await["winner"], "high");
    assert!(close(figures(&app, other_id, "high").await.0, 0.05));

    // The rates are rebuilt from the journal.
    let app = app.restart().await;
    assert_low_wins_on_quality(&app).await;
}

#[tokio::test]
async fn ranking_by_bid_shows_no_rates_in_the_audit() {
    let app = spawn_app("", vec![TestBuyer::bidding("high", "10.00"), TestBuyer::bidding("low", "9.00")]).await;
    let ping_id = app.ping().await["ping_id"].as_str().unwrap().to_owned();
    let entry = app.outcome_of(&ping_id, "high").await;
    assert!(entry.get("return_rate").is_none() && entry.get("expected_value").is_none(), "{entry}");
}
