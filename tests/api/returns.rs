//! The buyer portal, returns and their review, the ledger and report endpoints, and what a restart keeps,
//! through the real server with its journal on disk.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{full_lead, spawn_app, TestApp, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

const BEST_KEY: &str = "bk_best";

/// A full lead with its own phone and email.
fn lead_number(n: usize) -> Value {
    let mut lead = full_lead();
    lead["phone"] = json!(format!("415867{:04}", 2000 + n));
    lead["email"] = json!(format!("buyer{n}@example.com"));
    lead
}

/// Sells one lead by direct post; returns the lead id.
async fn sell(app: &TestApp, n: usize) -> String {
    let body = json!({"campaign": "auto", "lead": lead_number(n)});
    let (status, sold) = app.post_json("/v1/leads", SELLER_KEY, &body).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    sold["lead_id"].as_str().unwrap().to_owned()
}

async fn file_return(app: &TestApp, key: &str, lead_id: &str, reason: &str) -> (StatusCode, Value) {
    app.post_json("/v1/returns", key, &json!({"lead_id": lead_id, "reason": reason, "note": "called twice"})).await
}

async fn accounts(app: &TestApp) -> Value {
    let (status, body) = app.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap().to_owned(), a["balance"].clone()))
        .collect()
}

#[tokio::test]
async fn an_approved_return_credits_the_buyer_and_claws_back_the_seller() {
    let best = TestBuyer::bidding("best", "20.00").with("[buyers.returns]\nrate_cap_percent = \"100\"");
    let app = spawn_app("", vec![best, TestBuyer::bidding("other", "5.00")]).await;
    let lead_id = sell(&app, 1).await;
    let before = app.get_json("/v1/buyer/balance", BEST_KEY).await.1;
    assert_eq!(
        before,
        json!({"buyer": "best", "billing": "prepaid", "balance": "9980.00", "held": "0.00", "available": "9980.00"})
    );

    let (status, filed) = file_return(&app, BEST_KEY, &lead_id, "wrong_number").await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    assert!(filed["return_id"].as_str().unwrap().starts_with("r_"));
    assert_eq!(
        (&filed["status"], &filed["decision_reason"], &filed["credit"], &filed["lead_id"]),
        (&json!("approved"), &json!("auto_approved"), &json!("20.00"), &json!(lead_id))
    );
    assert_eq!(app.get_json("/v1/buyer/balance", BEST_KEY).await.1["balance"], "10000.00");
    // The sale's exact reverse: the seller's payout (18.00 at a 10 % margin) and the platform's 2.00 go back.
    let balances = accounts(&app).await;
    assert_eq!(balances["seller:acme"], "0.00");
    assert_eq!(balances["platform:revenue"], "0.00");
    // Every record that promised money waited for its commit, and the commit was timed.
    let metrics = app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    let commits = metrics.lines().find_map(|l| l.strip_prefix("gavel_journal_commit_seconds_count ")).unwrap();
    assert!(commits.parse::<u64>().unwrap() >= 2, "a sale and a return were committed: {metrics}");

    // Rule 1: a second return, another buyer's lead, an unknown lead.
    assert_eq!(file_return(&app, BEST_KEY, &lead_id, "duplicate").await.1["error"]["code"], "already_returned");
    let (status, _) = file_return(&app, "bk_other", &lead_id, "duplicate").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(file_return(&app, BEST_KEY, "l_nope", "duplicate").await.0, StatusCode::NOT_FOUND);
    // A reason nobody knows is a bad request; one outside the policy is a rejected return, kept as data.
    let (status, body) = file_return(&app, BEST_KEY, "l_x", "bored").await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_field")), "{body}");
    let second = sell(&app, 2).await;
    let (status, rejected) = file_return(&app, BEST_KEY, &second, "did_not_convert").await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (&rejected["status"], &rejected["decision_reason"]),
        (&json!("rejected"), &json!("reason_not_returnable"))
    );
    assert_eq!(rejected["credit"], "0.00");

    let returns = app.get_json("/v1/buyer/returns", BEST_KEY).await.1["returns"].clone();
    let ids: Vec<_> = returns.as_array().unwrap().iter().map(|r| r["lead_id"].as_str().unwrap()).collect();
    assert_eq!(ids, [second.as_str(), lead_id.as_str()], "newest first");
    assert_eq!(returns[1]["note"], "called twice");
    let leads = app.get_json("/v1/buyer/leads", BEST_KEY).await.1["leads"].clone();
    assert_eq!(leads[0]["lead_id"], second);
    assert_eq!((&leads[0]["return_status"], &leads[1]["return_status"]), (&json!("rejected"), &json!("approved")));
    assert_eq!(leads[0]["price"], "20.00");
    assert!(leads[0]["returnable_until"].as_str().unwrap() > leads[0]["delivered_at"].as_str().unwrap());
    assert_eq!(app.get_json("/v1/buyer/leads?limit=1", BEST_KEY).await.1["leads"].as_array().unwrap().len(), 1);
    let policy = app.get_json("/v1/buyer/return-policy", BEST_KEY).await.1;
    assert_eq!(
        (&policy["enabled"], &policy["window_days"], &policy["rate_cap_percent"]),
        (&json!(true), &json!(7), &json!("100"))
    );
    // Buyer endpoints need a buyer's key.
    assert_eq!(app.get_json("/v1/buyer/balance", SELLER_KEY).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn returns_disabled_are_refused() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "20.00").with("[buyers.returns]\nenabled = false")]).await;
    let lead_id = sell(&app, 1).await;
    let (status, body) = file_return(&app, BEST_KEY, &lead_id, "wrong_number").await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::FORBIDDEN, &json!("returns_disabled")));
}

#[tokio::test]
async fn over_the_rate_cap_returns_wait_for_the_operator() {
    // One return of two sales is a 50 % rate: above a 40 % cap.
    let best = TestBuyer::bidding("best", "20.00").with("[buyers.returns]\nrate_cap_percent = \"40\"");
    let app = spawn_app("", vec![best]).await;
    let (first, second) = (sell(&app, 1).await, sell(&app, 2).await);
    let pending = file_return(&app, BEST_KEY, &first, "fake_info").await.1;
    assert_eq!(
        (&pending["status"], &pending["decision_reason"]),
        (&json!("pending_review"), &json!("rate_cap_exceeded"))
    );
    let other_pending = file_return(&app, BEST_KEY, &second, "fake_info").await.1;
    assert_eq!(other_pending["status"], "pending_review");
    let balance = app.get_json("/v1/buyer/balance", BEST_KEY).await.1["balance"].clone();
    assert_eq!(balance, "9960.00", "nothing credited while pending");

    let (status, queue) = app.get_json("/admin/returns?status=pending_review", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue["returns"].as_array().unwrap().len(), 2);
    assert_eq!(queue["returns"][0]["buyer"], "best");

    let id = pending["return_id"].as_str().unwrap();
    let (status, approved) =
        app.post_json(&format!("/admin/returns/{id}/approve"), ADMIN_TOKEN, &json!({"note": "ok"})).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(
        (&approved["status"], &approved["decision_reason"], &approved["credit"]),
        (&json!("approved"), &json!("operator_approved"), &json!("20.00"))
    );
    assert!(approved["decided_at"].is_string());
    assert_eq!(app.get_json("/v1/buyer/balance", BEST_KEY).await.1["balance"], "9980.00");
    let (status, again) = app.post_json(&format!("/admin/returns/{id}/reject"), ADMIN_TOKEN, &json!({})).await;
    assert_eq!((status, &again["error"]["code"]), (StatusCode::CONFLICT, &json!("already_decided")));

    let id = other_pending["return_id"].as_str().unwrap();
    let (_, rejected) = app.post_json(&format!("/admin/returns/{id}/reject"), ADMIN_TOKEN, &json!({})).await;
    assert_eq!((&rejected["status"], &rejected["decision_reason"]), (&json!("rejected"), &json!("operator_rejected")));
    assert_eq!(app.get_json("/admin/returns?status=pending_review", ADMIN_TOKEN).await.1["returns"], json!([]));
    assert_eq!(app.post_json("/admin/returns/r_nope/approve", ADMIN_TOKEN, &json!({})).await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.get_json("/admin/returns?status=lost", ADMIN_TOKEN).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_report_and_the_transactions_agree_with_the_accounts() {
    let best = TestBuyer::bidding("best", "20.00").with("[buyers.returns]\nrate_cap_percent = \"100\"");
    let app = spawn_app("", vec![best]).await;
    let sold: Vec<String> = futures_util::future::join_all((0..3).map(|n| sell(&app, n))).await;
    file_return(&app, BEST_KEY, &sold[0], "disconnected").await;

    let (status, report) = app.get_json("/admin/report", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let buyer = &report["buyers"][0];
    assert_eq!(
        (&buyer["id"], &buyer["sold"], &buyer["gross"], &buyer["payouts"], &buyer["margin"]),
        (&json!("best"), &json!(3), &json!("60.00"), &json!("54.00"), &json!("6.00"))
    );
    assert_eq!(
        buyer["returns"],
        json!({"count": 1, "amount": "20.00", "clawback": "18.00", "by_reason": {"disconnected": 1}})
    );
    assert_eq!(buyer["net"], "40.00");
    let seller = &report["sellers"][0];
    assert_eq!(seller["return_rate"].as_f64().unwrap(), 1.0 / 3.0);
    assert_eq!(seller["sources"][0]["id"], Value::Null);
    // To the cent: the seller's net payouts and the campaign's net margin are the ledger's balances.
    let balances = accounts(&app).await;
    assert_eq!(seller["net_payouts"], balances["seller:acme"]);
    assert_eq!(report["campaigns"][0]["net_margin"], balances["platform:revenue"]);

    let (_, transactions) = app.get_json("/admin/ledger/transactions?account=seller:acme", ADMIN_TOKEN).await;
    let kinds: Vec<_> = transactions["transactions"].as_array().unwrap().iter().map(|t| t["kind"].clone()).collect();
    assert_eq!(kinds, [json!("sale"), json!("sale"), json!("sale"), json!("return")]);
    for transaction in transactions["transactions"].as_array().unwrap() {
        let sum: rust_decimal::Decimal = transaction["postings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["amount"].as_str().unwrap().parse::<rust_decimal::Decimal>().unwrap())
            .sum();
        assert!(sum.is_zero(), "{transaction}");
    }
    let (status, body) =
        app.get_json("/admin/report?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", ADMIN_TOKEN).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_field")));
}

#[tokio::test]
async fn a_restart_keeps_money_returns_caps_duplicates_and_pauses() {
    let best = TestBuyer::bidding("best", "20.00")
        .with("[buyers.caps]\ndaily = 2\n[buyers.returns]\nrate_cap_percent = \"100\"");
    let app = spawn_app("", vec![best, TestBuyer::bidding("paused", "5.00")]).await;
    let first = sell(&app, 1).await;
    file_return(&app, BEST_KEY, &first, "wrong_number").await;
    let (status, _) = app.post_json("/admin/buyers/paused/pause", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let balances = accounts(&app).await;

    let app = app.restart().await;
    assert_eq!(accounts(&app).await, balances);
    let returns = app.get_json("/v1/buyer/returns", BEST_KEY).await.1;
    assert_eq!(returns["returns"][0]["lead_id"], first);
    assert_eq!(app.buyer("paused").await["state_reason"], "operator");
    assert_eq!(app.buyer("best").await["caps"]["daily"]["used"], 1, "the day's count survives");
    // The same phone again: the duplicate history survived, so `best` may not buy it; nobody else is active.
    let (_, unsold) =
        app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": lead_number(1)})).await;
    assert_ne!(unsold["status"], "sold", "{unsold}");
    // New sales still work, up to the cap that counts the sale from before the restart.
    sell(&app, 2).await;
    let (_, capped) =
        app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": lead_number(3)})).await;
    assert_ne!(capped["status"], "sold", "{capped}");
    assert_eq!(app.buyer("best").await["caps"]["daily"]["used"], 2);
}
