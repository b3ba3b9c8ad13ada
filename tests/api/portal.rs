//! The buyer's own pause and resume (API.md section 4): who may lift which pause, and that pauses made
//! through the API survive a restart.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{spawn_app, TestApp, TestBuyer, ADMIN_TOKEN};

const KEY: &str = "bk_best";

async fn buyer_call(app: &TestApp, action: &str) -> (StatusCode, serde_json::Value) {
    app.post_json(&format!("/v1/buyer/{action}"), KEY, &json!({"note": "end of quarter"})).await
}

#[tokio::test]
async fn a_buyer_pauses_and_resumes_itself_but_not_the_operator() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00").with("[buyers.caps]\ndaily = 5")]).await;
    let (status, body) = app.get_json("/v1/buyer/status", KEY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (&body["buyer"], &body["state"], &body["state_reason"], &body["self_pause"]),
        (&json!("best"), &json!("active"), &json!(null), &json!(true))
    );
    assert_eq!(body["caps"]["daily"]["remaining"], 5);

    let (status, paused) = buyer_call(&app, "pause").await;
    assert_eq!(
        (status, &paused["state"], &paused["state_reason"]),
        (StatusCode::OK, &json!("paused"), &json!("buyer"))
    );
    assert_eq!(app.ping().await["status"], "no_bid", "a paused buyer is not pinged");
    // Pausing again changes nothing; the operator's pause does not take over the buyer's.
    assert_eq!(buyer_call(&app, "pause").await.1["state_reason"], "buyer");
    let (status, resumed) = buyer_call(&app, "resume").await;
    assert_eq!((status, &resumed["state"]), (StatusCode::OK, &json!("active")));
    assert_eq!(buyer_call(&app, "resume").await.0, StatusCode::OK, "resuming an active buyer is a no-op");

    app.post_json("/admin/buyers/best/pause", ADMIN_TOKEN, &json!({})).await;
    let (status, refused) = buyer_call(&app, "resume").await;
    assert_eq!((status, &refused["error"]["code"]), (StatusCode::FORBIDDEN, &json!("forbidden")));
    assert!(refused["error"]["message"].as_str().unwrap().contains("operator"), "{refused}");
    assert_eq!(app.buyer("best").await["state_reason"], "operator");
}

#[tokio::test]
async fn without_self_pause_both_calls_are_forbidden() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00").with("self_pause = false")]).await;
    assert_eq!(buyer_call(&app, "pause").await.0, StatusCode::FORBIDDEN);
    assert_eq!(buyer_call(&app, "resume").await.0, StatusCode::FORBIDDEN);
    assert_eq!(app.buyer("best").await["state"], "active");
}

#[tokio::test]
async fn a_config_pause_lifted_through_the_api_stays_lifted_after_a_restart() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "10.00").with("paused = true")]).await;
    assert_eq!(buyer_call(&app, "resume").await.0, StatusCode::FORBIDDEN, "the config paused it, not the buyer");
    app.post_json("/admin/buyers/best/resume", ADMIN_TOKEN, &json!({})).await;
    buyer_call(&app, "pause").await;
    let app = app.restart().await;
    assert_eq!(app.buyer("best").await["state_reason"], "buyer", "the last API change is in force, not the file");
    buyer_call(&app, "resume").await;
    let app = app.restart().await;
    assert_eq!(app.buyer("best").await["state"], "active");
}
