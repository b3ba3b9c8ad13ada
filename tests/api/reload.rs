//! Hot reload (`POST /admin/reload`): validated, atomic, in-flight work finishes on its old snapshot, and the
//! buyers that stay keep their running state.

use std::time::Duration;

use gavel::sim::{Latency, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{full_lead, ping_lead, spawn_app, TestApp, TestBuyer, ADMIN_TOKEN, SELLER_KEY};

async fn reload(app: &TestApp) -> (StatusCode, Value) {
    app.post_json("/admin/reload", ADMIN_TOKEN, &json!({})).await
}

/// The config text without the `[[buyers]]` table of `id`.
fn without_buyer(text: &str, id: &str) -> String {
    let mut tables = text.split("[[buyers]]");
    let head = tables.next().unwrap().to_owned();
    tables.filter(|table| !table.contains(&format!("id = \"{id}\""))).fold(head, |text, t| text + "[[buyers]]" + t)
}

#[tokio::test]
async fn a_broken_file_is_refused_with_every_problem_and_the_running_config_stays() {
    let app = spawn_app("", vec![TestBuyer::bidding("best", "20.00")]).await;
    let before = app.get_json("/admin/config", ADMIN_TOKEN).await.1;
    let good = app.config_text();
    let broken = good
        .replace("margin_percent = \"10\"", "margin_percent = \"ten\"")
        .replace("max_bid = \"100.00\"", "max_bid = \"100.00\"\ncolour = \"blue\"");
    app.write_config(&broken);

    let (status, refused) = reload(&app).await;
    assert_eq!((status, &refused["error"]["code"]), (StatusCode::BAD_REQUEST, &json!("invalid_config")));
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("sellers[0].margin_percent"), "{message}");
    assert!(message.contains("campaigns[0].colour"), "{message}");
    assert_eq!(app.get_json("/admin/config", ADMIN_TOKEN).await.1, before);
    assert_eq!(app.ping().await["status"], "bid", "the old config still runs auctions");

    // A file that moves the journal cannot be applied live either.
    app.write_config(&good.replace("/data\"", "/elsewhere\""));
    let (status, refused) = reload(&app).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(refused["error"]["message"].as_str().unwrap().contains("server.data_dir"), "{refused}");
    assert_eq!(app.get_json("/admin/config", ADMIN_TOKEN).await.1, before);
    assert_eq!(app.post_json("/admin/reload", "sk_acme", &json!({})).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn removing_a_buyer_stops_its_pings_without_dropping_the_auction_in_flight() {
    let slow =
        SimBuyerSpec { ping_latency: Latency::Fixed(Duration::from_millis(800)), ..SimBuyerSpec::bidding("30.00") };
    let app = spawn_app(
        "ping_deadline_ms = 3000",
        vec![TestBuyer::new("slow", slow).with("timeout_ms = 2500"), TestBuyer::bidding("fast", "10.00")],
    )
    .await;
    let in_flight = {
        let (http, base) = (app.http.clone(), app.base.clone());
        tokio::spawn(async move {
            let body = json!({"campaign": "auto", "lead": ping_lead()});
            let answer = http.post(format!("{base}/v1/ping")).bearer_auth(SELLER_KEY).json(&body).send().await;
            answer.unwrap().json::<Value>().await.unwrap()
        })
    };
    // Reload once the slow buyer holds the ping.
    for _ in 0..200 {
        if app.sim("slow").ping_count() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(app.sim("slow").ping_count(), 1);
    app.write_config(&without_buyer(&app.config_text(), "slow"));
    let (status, reloaded) = reload(&app).await;
    assert_eq!((status, &reloaded["buyers"]), (StatusCode::OK, &json!(1)), "{reloaded}");

    // The auction that started before the reload ends on its own snapshot: the slow buyer's bid wins.
    let answer = in_flight.await.unwrap();
    assert_eq!((&answer["status"], &answer["payout"]), (&json!("bid"), &json!("27.00")), "{answer}");
    let ping_id = answer["ping_id"].as_str().unwrap();
    let (status, sold) = app.post(ping_id, full_lead(), json!({})).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    assert_eq!(app.sim("slow").post_count(), 1);

    // Auctions after it never ping the removed buyer.
    let answer = app.ping().await;
    assert_eq!(answer["payout"], "9.00");
    assert_eq!(app.sim("slow").ping_count(), 1);
    let audit = app.audit(answer["ping_id"].as_str().unwrap()).await;
    let buyers: Vec<_> = audit["buyers"].as_array().unwrap().iter().map(|b| b["buyer"].clone()).collect();
    assert_eq!(buyers, [json!("fast")]);
}

#[tokio::test]
async fn buyers_that_stay_keep_caps_used_and_api_pauses() {
    let app = spawn_app(
        "",
        vec![
            TestBuyer::bidding("capped", "20.00").with("[buyers.caps]\ndaily = 1"),
            TestBuyer::bidding("paused", "15.00"),
            TestBuyer::bidding("backup", "5.00"),
        ],
    )
    .await;
    let (status, sold) =
        app.post_json("/v1/leads", SELLER_KEY, &json!({"campaign": "auto", "lead": full_lead()})).await;
    assert_eq!((status, &sold["status"]), (StatusCode::OK, &json!("sold")), "{sold}");
    let (status, _) = app.post_json("/admin/buyers/paused/pause", ADMIN_TOKEN, &json!({})).await;
    assert_eq!(status, StatusCode::OK);

    app.write_config(&format!("{}\n# a change of nothing but the revision\n", app.config_text()));
    assert_eq!(reload(&app).await.0, StatusCode::OK);

    let capped = app.buyer("capped").await;
    assert_eq!(capped["caps"]["daily"]["used"], 1, "{capped}");
    let paused = app.buyer("paused").await;
    assert_eq!((&paused["state"], &paused["state_reason"]), (&json!("paused"), &json!("operator")));
    let answer = app.ping().await;
    let ping_id = answer["ping_id"].as_str().unwrap();
    assert_eq!(app.outcome_of(ping_id, "capped").await["detail"], "cap:daily");
    assert_eq!(app.outcome_of(ping_id, "paused").await["detail"], "paused");
    assert_eq!(app.audit(ping_id).await["winner"], "backup");
}
