//! Statements, the seller portal and seller payouts: every figure reconciles with the ledger's balances.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{full_lead, spawn_app, TestApp, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

async fn sell(app: &TestApp, n: usize, source: &str) -> String {
    let mut lead = full_lead();
    lead["phone"] = json!(format!("415867{:04}", 3000 + n));
    lead["email"] = json!(format!("statement{n}@example.com"));
    let (status, sold) =
        app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": lead, "source": source})).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    sold["lead_id"].as_str().unwrap().to_owned()
}

/// Two sales at 20.00 (payout 18.00), the first returned and approved.
async fn app_with_history() -> (TestApp, String) {
    let best = TestBuyer::bidding("best", "20.00").with("[buyers.returns]\nrate_cap_percent = \"100\"");
    let app = spawn_app("", vec![best]).await;
    let returned = sell(&app, 1, "site-a").await;
    sell(&app, 2, "site-b").await;
    let (status, _) =
        app.post_json("/v1/returns", "bk_best", &json!({"lead_id": returned, "reason": "wrong_number"})).await;
    assert_eq!(status, StatusCode::CREATED);
    (app, returned)
}

fn kinds_and_amounts(statement: &Value) -> Vec<(String, String, String)> {
    statement["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().into(),
                l["amount"].as_str().unwrap().into(),
                l["balance"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_buyer_statement_runs_line_by_line_to_the_ledger_balance() {
    let (app, returned) = app_with_history().await;
    let (status, statement) = app.get_json("/v1/buyer/statement", "bk_best").await;
    assert_eq!(status, StatusCode::OK, "{statement}");
    assert_eq!(statement["account"], "buyer:best");
    assert_eq!(statement["opening_balance"], "0.00");
    let expected = [
        ("deposit", "10000.00", "10000.00"),
        ("sale", "-20.00", "9980.00"),
        ("sale", "-20.00", "9960.00"),
        ("return", "20.00", "9980.00"),
    ];
    let expected: Vec<(String, String, String)> =
        expected.iter().map(|(a, b, c)| ((*a).into(), (*b).into(), (*c).into())).collect();
    assert_eq!(kinds_and_amounts(&statement), expected);
    assert_eq!(statement["lines"][3]["lead_id"], returned);
    assert_eq!(statement["lines"][0]["lead_id"], Value::Null);
    assert_eq!(statement["totals"]["sales"], json!({"count": 2, "amount": "-40.00"}));
    assert_eq!(statement["totals"]["returns"], json!({"count": 1, "amount": "20.00"}));
    let balance = app.get_json("/v1/buyer/balance", "bk_best").await.1["balance"].clone();
    assert_eq!(statement["closing_balance"], balance);
    // The operator sees the same statement; a period before everything has no lines and opens at zero.
    let (_, admin) = app.get_json("/admin/buyers/best/statement", ADMIN_TOKEN).await;
    assert_eq!(admin["lines"], statement["lines"]);
    let (_, empty) = app
        .get_json("/admin/buyers/best/statement?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z", ADMIN_TOKEN)
        .await;
    assert_eq!(
        (&empty["opening_balance"], &empty["closing_balance"], &empty["lines"]),
        (&json!("0.00"), &json!("0.00"), &json!([]))
    );
    let (status, body) =
        app.get_json("/v1/buyer/statement?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z", "bk_best").await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_field")));
    assert_eq!(app.get_json("/admin/buyers/nobody/statement", ADMIN_TOKEN).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_seller_sees_its_balance_returns_and_statement_but_never_a_buyer() {
    let (app, returned) = app_with_history().await;
    let (_, balance) = app.get_json("/v1/seller/balance", SELLER_KEY).await;
    assert_eq!(balance, json!({"seller": "acme", "balance": "18.00"}));
    let (_, returns) = app.get_json("/v1/seller/returns", SELLER_KEY).await;
    let filed = &returns["returns"][0];
    assert_eq!(
        (&filed["lead_id"], &filed["source"], &filed["status"], &filed["clawback"]),
        (&json!(returned), &json!("site-a"), &json!("approved"), &json!("18.00"))
    );
    assert!(filed.get("buyer").is_none() && !filed.to_string().contains("best"), "no buyer identity: {filed}");
    let (_, none) = app.get_json("/v1/seller/returns", "sk_other").await;
    assert_eq!(none["returns"], json!([]), "another seller sees none of them");
    let (_, statement) = app.get_json("/v1/seller/statement", SELLER_KEY).await;
    assert_eq!(statement["closing_balance"], "18.00");
    assert_eq!(statement["totals"]["returns"], json!({"count": 1, "amount": "-18.00"}));
}

#[tokio::test]
async fn a_payout_over_the_balance_changes_nothing() {
    let (app, _) = app_with_history().await;
    let (status, body) = app.post_json("/admin/sellers/acme/payouts", ADMIN_TOKEN, &json!({"amount": "18.01"})).await;
    assert_eq!((status, &body["error"]["code"]), (StatusCode::CONFLICT, &json!("insufficient_balance")), "{body}");
    assert_eq!(app.get_json("/v1/seller/balance", SELLER_KEY).await.1["balance"], "18.00");

    let (status, paid) = app
        .post_json("/admin/sellers/acme/payouts", ADMIN_TOKEN, &json!({"amount": "18.00", "reference": "ach 77"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{paid}");
    assert!(paid["payout_id"].as_str().unwrap().starts_with("po_"));
    assert_eq!(paid["balance"], "0.00");
    let (_, statement) = app.get_json("/admin/sellers/acme/statement", ADMIN_TOKEN).await;
    assert_eq!(statement["totals"]["payouts"], json!({"count": 1, "amount": "-18.00"}));
    let (_, accounts) = app.get_json("/admin/ledger/accounts", ADMIN_TOKEN).await;
    assert!(accounts["accounts"].as_array().unwrap().contains(&json!({"id": "external:payouts", "balance": "18.00"})));
    assert_eq!(
        app.post_json("/admin/sellers/nobody/payouts", ADMIN_TOKEN, &json!({"amount": "1"})).await.0,
        StatusCode::NOT_FOUND
    );
}
