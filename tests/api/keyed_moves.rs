//! Deposits and seller payouts sent again under an `Idempotency-Key`: an operator (or its billing system)
//! that lost an answer sends the same request again and money moves once.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{full_lead, spawn_app, TestApp, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

const DEPOSITS: &str = "/admin/buyers/best/deposits";

/// The amounts of an account's deposit or payout transactions, in time order.
async fn moves_of(app: &TestApp, account: &str, kind: &str) -> Vec<String> {
    let (status, body) = app.get_json(&format!("/admin/ledger/transactions?account={account}"), ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["transactions"].as_array().unwrap().iter().filter(|t| t["kind"] == kind).map(|t| t.to_string()).collect()
}

async fn balance(app: &TestApp, buyer: &str) -> Value {
    app.buyer(buyer).await["balance"].clone()
}

#[tokio::test]
async fn a_deposit_sent_again_under_its_key_is_booked_once_and_answered_with_the_first() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00"), TestBuyer::bidding("other", "9.00")]).await;
    let wire = json!({"amount": "500.00", "reference": "wire 123"});

    let (status, first, replayed) = app.post_keyed(DEPOSITS, ADMIN_TOKEN, "wire-123", &wire).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{first}");
    assert_eq!(first["balance"], "10500.00", "{first}");
    let (status, again, replayed) = app.post_keyed(DEPOSITS, ADMIN_TOKEN, "wire-123", &wire).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, first, "the repeat is answered with the first deposit and the balance now");
    assert_eq!(moves_of(&app, "buyer:best", "deposit").await.len(), 2, "the helper's 10,000.00 and one 500.00");

    // Keys belong to an account: the same key on another buyer is another deposit.
    let (status, other, replayed) =
        app.post_keyed("/admin/buyers/other/deposits", ADMIN_TOKEN, "wire-123", &wire).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, false), "{other}");
    assert_ne!(other["deposit_id"], first["deposit_id"]);

    // The key outlives the process: after a restart the ledger still knows it.
    let app = app.restart().await;
    let (status, after_restart, replayed) = app.post_keyed(DEPOSITS, ADMIN_TOKEN, "wire-123", &wire).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{after_restart}");
    assert_eq!(after_restart["deposit_id"], first["deposit_id"]);

    // The same key for a different deposit is refused, naming what the key was used for; nothing moves.
    let other_amount = json!({"amount": "501.00", "reference": "wire 123"});
    let (status, refused, _) = app.post_keyed(DEPOSITS, ADMIN_TOKEN, "wire-123", &other_amount).await;
    assert_eq!(
        (status, &refused["error"]["code"]),
        (StatusCode::UNPROCESSABLE_ENTITY, &json!("idempotency_key_reused")),
        "{refused}"
    );
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("500.00") && message.contains("new key"), "{message}");
    let other_reference = json!({"amount": "500.00", "reference": "wire 124"});
    assert_eq!(
        app.post_keyed(DEPOSITS, ADMIN_TOKEN, "wire-123", &other_reference).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(balance(&app, "best").await, "10500.00");
    assert_eq!(moves_of(&app, "buyer:best", "deposit").await.len(), 2);
}

/// Twenty copies of one keyed deposit sent at once: one deposit, twenty answers naming it.
#[tokio::test]
async fn racing_copies_of_a_keyed_deposit_book_it_once() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00")]).await;
    let wire = json!({"amount": "25.00", "reference": "wire 9"});
    let copies = (0..20).map(|_| app.post_keyed(DEPOSITS, ADMIN_TOKEN, "race-9", &wire));
    let answers = futures_util::future::join_all(copies).await;
    let first = &answers[0].1;
    for (status, answer, _) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{answer}");
        assert_eq!(answer["deposit_id"], first["deposit_id"], "{answer}");
    }
    assert_eq!(answers.iter().filter(|(_, _, replayed)| !replayed).count(), 1, "one answer made it");
    assert_eq!(balance(&app, "best").await, "10025.00");
    assert_eq!(moves_of(&app, "buyer:best", "deposit").await.len(), 2);
}

/// A repeated payout is answered with the first even though the seller is now owed nothing (a second payout
/// would be refused as more than the balance).
#[tokio::test]
async fn a_payout_sent_again_under_its_key_pays_once() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "20.00")]).await;
    let (status, sold) =
        app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": full_lead()})).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    let ach = json!({"amount": "18.00", "reference": "ach 77"});

    let (status, first, replayed) = app.post_keyed("/admin/sellers/acme/payouts", ADMIN_TOKEN, "ach-77", &ach).await;
    assert_eq!((status, replayed, &first["balance"]), (StatusCode::CREATED, false, &json!("0.00")), "{first}");
    let (status, again, replayed) = app.post_keyed("/admin/sellers/acme/payouts", ADMIN_TOKEN, "ach-77", &ach).await;
    assert_eq!((status, replayed), (StatusCode::CREATED, true), "{again}");
    assert_eq!(again, first);
    assert_eq!(moves_of(&app, "seller:acme", "payout").await.len(), 1);
    assert_eq!(app.get_json("/v1/seller/balance", SELLER_KEY).await.1["balance"], "0.00");
    let less = json!({"amount": "1.00", "reference": "ach 77"});
    let (status, refused, _) = app.post_keyed("/admin/sellers/acme/payouts", ADMIN_TOKEN, "ach-77", &less).await;
    assert_eq!(refused["error"]["code"], "idempotency_key_reused", "{status} {refused}");
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_and_moves_nothing() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00")]).await;
    let wire = json!({"amount": "5.00"});
    for key in ["", "two words", &"k".repeat(256)] {
        let (status, refused, _) = app.post_keyed(DEPOSITS, ADMIN_TOKEN, key, &wire).await;
        assert_eq!(
            (status, &refused["error"]["code"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_field")),
            "key {key:?}: {refused}"
        );
        assert!(refused["error"]["message"].as_str().unwrap().contains("Idempotency-Key"), "{refused}");
    }
    let longest = "k".repeat(255);
    assert_eq!(app.post_keyed(DEPOSITS, ADMIN_TOKEN, &longest, &wire).await.0, StatusCode::CREATED);
    assert_eq!(balance(&app, "best").await, "10005.00");
}
