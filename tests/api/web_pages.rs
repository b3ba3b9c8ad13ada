//! What the pages show and download, checked against the JSON APIs they share their operations with: CSV
//! downloads, the console's forms, and the live dashboard's event stream and its end at shutdown.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{ADMIN_TOKEN, SELLER_KEY};
use crate::web::{sell, two_buyers, Browser};

#[tokio::test]
async fn downloads_hold_what_the_json_apis_answer_with_the_same_filters() {
    let app = two_buyers().await;
    let first = sell(&app, 1).await;
    let second = sell(&app, 2).await;
    app.post_json("/v1/returns", "bk_best", &json!({"lead_id": first, "reason": "wrong_number", "note": "=1+1"})).await;
    let mut buyer = Browser::new(&app);
    buyer.sign_in("bk_best", "/portal").await;

    let (_, json) = app.get_json("/v1/buyer/leads?limit=1", "bk_best").await;
    let csv = buyer.get("/portal/leads.csv?limit=1").await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers["content-disposition"].to_str().unwrap().starts_with("attachment; filename="));
    let lines: Vec<&str> = csv.body.split("\r\n").collect();
    assert_eq!(lines[0], "lead_id,campaign,price,delivered_at,returnable_until,return_status");
    let lead = &json["leads"][0];
    assert_eq!(lead["lead_id"], second.as_str(), "newest first, one of two");
    let expected = format!(
        "{},auto,{},{},{},",
        second,
        lead["price"].as_str().unwrap(),
        lead["delivered_at"].as_str().unwrap(),
        lead["returnable_until"].as_str().unwrap()
    );
    assert_eq!(&lines[1..], &[expected.as_str(), ""], "exactly the JSON's one lead");
    let all = buyer.get("/portal/leads.csv").await.body;
    assert!(all.contains(&format!("{first},auto,10.00,")) && all.contains(",pending_review\r\n"));

    let returns = buyer.get("/portal/returns.csv").await.body;
    assert!(
        returns.starts_with("return_id,lead_id,status,decision_reason,credit,reason,note,created_at,decided_at\r\n")
    );
    assert!(returns.contains(",pending_review,rate_cap_exceeded,0.00,wrong_number,\"'=1+1\","), "{returns}");

    let (_, statement) = app.get_json("/v1/buyer/statement", "bk_best").await;
    let csv = buyer.get("/portal/statement.csv").await.body;
    let rows: Vec<&str> = csv.trim_end().split("\r\n").collect();
    assert_eq!(rows[0], "at,kind,transaction_id,lead_id,amount,balance");
    assert!(rows[1].ends_with(&format!(",opening_balance,,,,{}", statement["opening_balance"].as_str().unwrap())));
    assert_eq!(rows.len(), statement["lines"].as_array().unwrap().len() + 3);
    assert!(rows
        .last()
        .unwrap()
        .ends_with(&format!(",closing_balance,,,,{}", statement["closing_balance"].as_str().unwrap())));

    let mut operator = Browser::new(&app);
    operator.sign_in(ADMIN_TOKEN, "/console").await;
    let (_, report) = app.get_json("/admin/report", ADMIN_TOKEN).await;
    let csv = operator.get("/console/report.csv").await.body;
    let campaign = &report["campaigns"][0];
    let row = format!(
        "campaign,auto,,{},{},{},{},",
        campaign["sold"],
        campaign["gross"].as_str().unwrap(),
        campaign["payouts"].as_str().unwrap(),
        campaign["margin"].as_str().unwrap()
    );
    assert!(csv.starts_with("section,id,seller,sold,gross,payouts,margin,returns_count,"), "{csv}");
    assert!(csv.contains(&row), "{row} in {csv}");
    assert!(
        csv.contains("\r\nseller,acme,,2,")
            && csv.contains("\r\nsource,,acme,2,")
            && csv.contains("\r\nbuyer,best,,2,")
    );
    let refused = operator.get("/console/report.csv?from=2026-12-01T00:00:00Z&to=2026-11-01T00:00:00Z").await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "the API's period rule");
}

#[tokio::test]
async fn console_forms_apply_the_apis_rules() {
    let app = two_buyers().await;
    let mut operator = Browser::new(&app);
    operator.sign_in(ADMIN_TOKEN, "/console").await;
    let token = operator.csrf("/console/buyers/best").await;
    let before = app.buyer("best").await["balance"].as_str().unwrap().to_owned();
    for amount in ["", "abc", "0", "0.001", "-5", "1e3x"] {
        let page = operator.post("/console/buyers/best/deposits", &[("csrf", &token), ("amount", amount)]).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{amount:?}");
    }
    assert_eq!(app.buyer("best").await["balance"], before.as_str(), "no refused deposit was recorded");
    let page = operator
        .post("/console/buyers/best/deposits", &[("csrf", &token), ("amount", "250.129"), ("reference", "wire 9")])
        .await;
    assert_eq!(page.location(), Some("/console/buyers/best?done=deposited"));
    assert_eq!(app.buyer("best").await["balance"], "10250.12", "rounded down to the cent, as the API does");
    let shown = operator.get("/console/buyers/best?done=deposited").await;
    assert!(shown.body.contains("The deposit is recorded.") && shown.body.contains("10250.12"));
    // The same form sent twice (a double click, a resubmission) deposits once; the same form's key with
    // another amount is refused; the page rendered again has a new key.
    let key = shown.hidden("idempotency_key");
    let form = |amount| {
        [("csrf", token.as_str()), ("amount", amount), ("reference", "wire 10"), ("idempotency_key", key.as_str())]
    };
    for _ in 0..2 {
        let page = operator.post("/console/buyers/best/deposits", &form("5.00")).await;
        assert_eq!(page.location(), Some("/console/buyers/best?done=deposited"));
    }
    assert_eq!(app.buyer("best").await["balance"], "10255.12", "deposited once");
    let refused = operator.post("/console/buyers/best/deposits", &form("6.00")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(refused.body.contains("already recorded a deposit"), "{}", refused.body);
    assert_ne!(operator.get("/console/buyers/best").await.hidden("idempotency_key"), key);
    assert_eq!(operator.post("/console/buyers/nobody/pause", &[("csrf", &token)]).await.status, StatusCode::NOT_FOUND);

    // The buyer's own pause, and the operator's pause it may not lift.
    let mut buyer = Browser::new(&app);
    buyer.sign_in("bk_best", "/portal").await;
    let mine = buyer.csrf("/portal").await;
    assert_eq!(buyer.post("/portal/pause", &[("csrf", &mine)]).await.location(), Some("/portal?done=paused"));
    assert_eq!(app.buyer("best").await["state_reason"], "buyer");
    assert_eq!(buyer.post("/portal/resume", &[("csrf", &mine)]).await.location(), Some("/portal?done=resumed"));
    operator.post("/console/buyers/best/pause", &[("csrf", &token)]).await;
    let refused = buyer.post("/portal/resume", &[("csrf", &mine)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("paused by the operator"), "{}", refused.body);

    // A return pending review, decided from the queue with a note.
    operator.post("/console/buyers/best/resume", &[("csrf", &token)]).await;
    let lead_id = sell(&app, 5).await;
    let (_, filed) = app.post_json("/v1/returns", "bk_best", &json!({"lead_id": lead_id, "reason": "duplicate"})).await;
    let return_id = filed["return_id"].as_str().unwrap();
    let queue = operator.get("/console/returns").await.body;
    assert!(queue.contains(&format!("Approve return {return_id}")));
    let path = format!("/console/returns/{return_id}/reject");
    let page = operator.post(&path, &[("csrf", &token), ("note", "duplicate of an older lead? no")]).await;
    assert_eq!(page.location(), Some("/console/returns?done=rejected"));
    let again = operator.post(&path, &[("csrf", &token)]).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "already decided, as the API says");
    let (_, returns) = app.get_json("/admin/returns?status=rejected", ADMIN_TOKEN).await;
    assert_eq!(returns["returns"][0]["decision_note"], "duplicate of an older lead? no");
}

/// Reads the event stream until `wanted` has been seen, or fails after 10 s.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    wanted: &str,
) -> String {
    let mut seen = String::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(chunk) = stream.next().await {
            seen.push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
            if seen.contains(wanted) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{wanted} not in {seen}");
    seen
}

#[tokio::test]
async fn the_dashboard_streams_auctions_and_its_streams_end_at_shutdown() {
    let app = two_buyers().await;
    let mut operator = Browser::new(&app);
    operator.sign_in(ADMIN_TOKEN, "/console").await;
    let cookie = format!("gavel_session={}", operator.cookie.clone().unwrap());
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let response = http.get(format!("{}/console/events", app.base)).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        streams.push(response.bytes_stream());
    }
    let first = read_until(&mut streams[0], "event: auctions\n").await;
    assert!(first.contains("event: figures\n") && first.contains("event: chart\n") && first.contains("data: <svg"));

    let (_, ping) =
        app.post_json("/v1/ping", SELLER_KEY, &json!({"campaign": "auto", "lead": crate::helpers::ping_lead()})).await;
    let ping_id = ping["ping_id"].as_str().unwrap();
    read_until(&mut streams[1], ping_id).await;
    let lead_id = sell(&app, 9).await;
    let sold = read_until(&mut streams[2], "id=\"fig-sales\">1<").await;
    assert!(sold.contains("id=\"fig-gross\">10.00<"), "today's gross counts the sale");
    assert!(!lead_id.is_empty());

    // Open streams would hold graceful shutdown for ever (hyperium/hyper#2787); the server ends them.
    let stopped = tokio::time::timeout(Duration::from_secs(10), app.server.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown finished with three event streams open");
    for mut stream in streams {
        let rest = tokio::time::timeout(Duration::from_secs(5), async { while stream.next().await.is_some() {} }).await;
        assert!(rest.is_ok(), "each stream ended");
    }
}
