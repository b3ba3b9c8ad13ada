//! Delivery records (`GET /admin/leads/{id}`) and `GET /admin/config`: every sale keeps the config revision
//! and the buyer's terms in force when it was sold, through reloads and restarts, without PII or secrets.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::{full_lead, spawn_app, TestApp, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

/// A full lead with its own phone and email, sent with a `source`.
async fn sell(app: &TestApp, n: usize) -> String {
    let mut lead = full_lead();
    lead["phone"] = json!(format!("(212) 867-{:04}", 3000 + n));
    lead["email"] = json!(format!("Grace{n}@Example.com"));
    let body = json!({"campaign": "auto", "source": "site-a", "lead": lead});
    let (status, sold) = app.post_json("/v1/leads", SELLER_KEY, &body).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    sold["lead_id"].as_str().unwrap().to_owned()
}

async fn record(app: &TestApp, lead_id: &str) -> Value {
    let (status, record) = app.get_json(&format!("/admin/leads/{lead_id}"), ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK, "{record}");
    record
}

async fn reload(app: &TestApp) -> (StatusCode, Value) {
    app.post_json("/admin/reload", ADMIN_TOKEN, &json!({})).await
}

/// What must never be written where a delivery record or the journal could show it.
fn secrets_and_pii(n: usize) -> Vec<String> {
    vec![
        "Ada".into(),
        "Lovelace".into(),
        format!("212867{:04}", 3000 + n),
        "example.com".into(),
        "bk_best".into(),
        "sk_acme".into(),
        ADMIN_TOKEN.into(),
        "127.0.0.1".into(),
    ]
}

#[tokio::test]
async fn a_delivery_record_keeps_the_terms_it_was_sold_under_through_reload_and_restart() {
    let best = TestBuyer::bidding("best", "20.00")
        .with("[buyers.caps]\ndaily = 50\n[buyers.returns]\nrate_cap_percent = \"100\"");
    let app = spawn_app("", vec![best]).await;
    let (status, config) = app.get_json("/admin/config", ADMIN_TOKEN).await;
    assert_eq!(status, StatusCode::OK);
    let first_revision = hex::encode(Sha256::digest(app.config_text().as_bytes()));
    assert_eq!(
        (&config["revision"], &config["sellers"], &config["campaigns"], &config["buyers"]),
        (&json!(first_revision), &json!(2), &json!(1), &json!(1))
    );
    assert!(config["loaded_at"].as_str().unwrap().ends_with('Z'));

    let first = sell(&app, 1).await;
    let sold = record(&app, &first).await;
    assert_eq!(
        (&sold["buyer"], &sold["seller"], &sold["campaign"], &sold["source"], &sold["price"], &sold["payout"]),
        (&json!("best"), &json!("acme"), &json!("auto"), &json!("site-a"), &json!("20.00"), &json!("18.00"))
    );
    assert!(sold["ping_id"].as_str().unwrap().starts_with("p_"));
    assert_eq!(sold["config_revision"], json!(first_revision));
    assert_eq!(sold["return"], Value::Null);
    // The terms with every default filled in, `null` for what the buyer does not have.
    let terms = &sold["terms"];
    assert_eq!(terms["caps"]["daily"], 50);
    assert_eq!(terms["caps"]["hourly"], Value::Null);
    assert_eq!(terms["ramp"], Value::Null);
    assert_eq!(terms["dedupe_days"], 30);
    assert_eq!((&terms["returns"]["window_days"], &terms["returns"]["enabled"]), (&json!(7), &json!(true)));
    assert_eq!((&terms["sla"]["window"], &terms["sla"]["enabled"]), (&json!(200), &json!(true)));
    assert_eq!(terms["filters"]["states"], json!([]));
    // The lead as the journal keeps it: ping fields and contact hashes.
    let phone_sha256 = hex::encode(Sha256::digest(b"2128673001"));
    assert_eq!(sold["lead"]["phone_sha256"], json!(phone_sha256));
    assert_eq!(sold["lead"]["state"], "CA");
    assert!(sold["lead"].get("phone").is_none() && sold["lead"].get("first_name").is_none());
    let text = sold.to_string();
    for secret in secrets_and_pii(1) {
        assert!(!text.contains(&secret), "{secret} in the delivery record: {text}");
    }

    // A reload changes the buyer's terms: the new sale names them, the old record keeps its own.
    app.write_config(&app.config_text().replace("daily = 50", "daily = 60"));
    let (status, reloaded) = reload(&app).await;
    assert_eq!((status, &reloaded["status"]), (StatusCode::OK, &json!("reloaded")), "{reloaded}");
    let second_revision = reloaded["revision"].as_str().unwrap().to_owned();
    assert_ne!(second_revision, first_revision);
    assert_eq!(app.get_json("/admin/config", ADMIN_TOKEN).await.1["revision"], json!(second_revision));
    let second = sell(&app, 2).await;
    let resold = record(&app, &second).await;
    assert_eq!((&resold["config_revision"], &resold["terms"]["caps"]["daily"]), (&json!(second_revision), &json!(60)));
    assert_eq!(record(&app, &first).await, sold, "the first record is unchanged by the reload");

    // A return shows in the record.
    let (status, filed) =
        app.post_json("/v1/returns", "bk_best", &json!({"lead_id": first, "reason": "wrong_number"})).await;
    assert_eq!(status, StatusCode::CREATED, "{filed}");
    let returned = record(&app, &first).await;
    assert_eq!(
        (&returned["return"]["return_id"], &returned["return"]["status"]),
        (&filed["return_id"], &json!("approved"))
    );

    // A restart replays the same records from the journal.
    let app = app.restart().await;
    assert_eq!(record(&app, &first).await, returned);
    assert_eq!(record(&app, &second).await, resold);
    let (status, missing) = app.get_json("/admin/leads/l_nope", ADMIN_TOKEN).await;
    assert_eq!((status, &missing["error"]["code"]), (StatusCode::NOT_FOUND, &json!("not_found")));
    assert_eq!(app.get_json(&format!("/admin/leads/{first}"), "bk_best").await.0, StatusCode::UNAUTHORIZED);

    // Nothing in the journal a breach could leak: no contact details, names or secrets.
    let journal = crate::helpers::ledger_text(&app).await;
    for n in [1, 2] {
        for secret in secrets_and_pii(n) {
            assert!(!journal.contains(&secret), "{secret} is in the journal");
        }
    }
    // Two sales under two revisions: each set of terms is written once, not once per sale.
    assert_eq!(journal.matches("\"dedupe_days\"").count(), 2);
}

#[tokio::test]
async fn terms_are_journaled_once_per_buyer_and_revision_however_many_sales() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "20.00")]).await;
    for n in 0..5 {
        sell(&app, n).await;
    }
    let journal = crate::helpers::ledger_text(&app).await;
    assert_eq!(journal.matches("\"dedupe_days\"").count(), 1);
}
