//! Input limits over real TCP: header size and count, slow headers (slowloris) and slow bodies, the cap on
//! open connections, lead key and value limits, and oversized buyer answers. Time bounds are generous: the
//! point of each is what happens, not how fast on a loaded machine.

use std::time::Duration;

use gavel::sim::{RawReply, SimBuyerSpec};
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::helpers::*;

/// Writes `request` at once and reads what comes back until the server closes (or `within` passes).
async fn exchange_raw(app: &TestApp, request: &[u8], within: Duration) -> String {
    let mut stream = TcpStream::connect(app.server.addr).await.expect("connects");
    stream.write_all(request).await.expect("request written");
    let mut answer = Vec::new();
    // A reset after the answer (the server closing with request bytes unread) still leaves the answer read.
    let _ = tokio::time::timeout(within, stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn ping_head(extra_headers: &str, content_length: usize) -> String {
    format!(
        "POST /v1/ping HTTP/1.1\r\nHost: gavel\r\nAuthorization: Bearer {SELLER_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: {content_length}\r\nConnection: close\r\n{extra_headers}\r\n"
    )
}

#[tokio::test]
async fn oversized_heads_and_too_many_headers_get_431() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let within = Duration::from_secs(10);
    let huge = ping_head(&format!("X-Filler: {}\r\n", "a".repeat(20_000)), 2) + "{}";
    assert!(exchange_raw(&app, huge.as_bytes(), within).await.starts_with("HTTP/1.1 431"));
    let many: String = (0..101).map(|i| format!("X-Header-{i}: v\r\n")).collect();
    let crowded = ping_head(&many, 2) + "{}";
    assert!(exchange_raw(&app, crowded.as_bytes(), within).await.starts_with("HTTP/1.1 431"));
    // Within both limits a request is served.
    let some: String = (0..80).map(|i| format!("X-Header-{i}: {}\r\n", "v".repeat(100))).collect();
    let fine = format!("GET /healthz HTTP/1.1\r\nHost: gavel\r\nConnection: close\r\n{some}\r\n");
    let answer = exchange_raw(&app, fine.as_bytes(), within).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(app.sim("buyer").ping_count(), 0);
}

#[tokio::test]
async fn a_dribbling_client_does_not_delay_other_pings_and_is_cut_off_at_the_header_timeout() {
    let timeout = Duration::from_secs(4);
    let tuning = Tuning { server: "header_read_timeout_ms = 4000", ..Tuning::default() };
    let app = spawn_tuned_app(tuning, "", vec![TestBuyer::bidding("buyer", "8.00")]).await;

    let started = Instant::now();
    let (mut reader, mut writer) = TcpStream::connect(app.server.addr).await.expect("connects").into_split();
    let head = ping_head("", 2) + "{}";
    // One byte a second: the whole head would take minutes.
    let dribbler = tokio::spawn(async move {
        for byte in head.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let cut_off = tokio::spawn(async move {
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut answer)).await;
        (started.elapsed(), String::from_utf8_lossy(&answer).into_owned())
    });

    // Other sellers' pings meanwhile are answered as if the dribbler were not there.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for n in 0..5 {
        let sent = Instant::now();
        let (status, answer) = app.ping_with(ping_lead(), json!({})).await;
        assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("bid")), "ping {n}: {answer}");
        assert!(sent.elapsed() < Duration::from_secs(2), "ping {n} took {:?}", sent.elapsed());
    }
    assert!(!cut_off.is_finished(), "the pings did not wait for the dribbler to be cut off");

    let (lasted, answer) = cut_off.await.expect("reader");
    dribbler.abort();
    assert!(lasted >= timeout - Duration::from_millis(100), "cut off early, after {lasted:?}");
    assert!(lasted < timeout + Duration::from_secs(20), "held on for {lasted:?}");
    assert!(!answer.contains("200 OK"), "the dribbled request was never served: {answer}");
    assert_eq!(app.sim("buyer").ping_count(), 5, "the dribbled ping reached no buyer");
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_408_and_reaches_no_buyer() {
    let tuning = Tuning { server: "header_read_timeout_ms = 1000", ..Tuning::default() };
    let app = spawn_tuned_app(tuning, "", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let body = json!({"campaign": "auto", "lead": ping_lead()}).to_string();
    let mut stream = TcpStream::connect(app.server.addr).await.expect("connects");
    stream.write_all(ping_head("", body.len()).as_bytes()).await.expect("head written");
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    let dribbler = tokio::spawn(async move {
        for byte in body.bytes() {
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    dribbler.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(20), "answered after {:?}", started.elapsed());
    assert_eq!(app.sim("buyer").ping_count(), 0);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let tuning = Tuning { server: "header_read_timeout_ms = 1000", ..Tuning::default() };
    let app = spawn_tuned_app(tuning, "", vec![]).await;
    let mut stream = TcpStream::connect(app.server.addr).await.expect("connects");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: gavel\r\n\r\n").await.expect("request written");
    let mut answer = Vec::new();
    while !String::from_utf8_lossy(&answer).ends_with(r#"{"status":"ok"}"#) {
        let mut chunk = [0u8; 1024];
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut chunk)).await;
        let n = read.expect("answered").expect("read");
        assert_ne!(n, 0, "closed before answering: {}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&chunk[..n]);
    }
    // Kept alive for a next request, but not for ever: an idle connection holds no slot past the timeout.
    let idle = Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "still open after {:?}", idle.elapsed());
    assert!(idle.elapsed() >= Duration::from_millis(900), "closed at once, not after the timeout");
}

#[tokio::test]
async fn at_the_connection_cap_a_new_client_waits_until_one_closes() {
    let tuning = Tuning { server: "max_connections = 2\nheader_read_timeout_ms = 60000", ..Tuning::default() };
    // No buyers: nothing else (such as a deposit) opens a connection to the server before the test's own.
    let app = spawn_tuned_app(tuning, "", vec![]).await;
    let idle_one = TcpStream::connect(app.server.addr).await.expect("connects");
    let _idle_two = TcpStream::connect(app.server.addr).await.expect("connects");

    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("client");
    let healthz = format!("{}/healthz", app.base);
    let waiting = tokio::spawn(async move { client.get(healthz).send().await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "a third connection is not served while two are open");

    drop(idle_one);
    let served = tokio::time::timeout(Duration::from_secs(20), waiting).await;
    let status = served.expect("served once a connection closed").expect("task").expect("request");
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn lead_key_and_value_limits_are_422_naming_the_key() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let long_key = "k".repeat(65);
    let lead_with = |key: &str, value: Value| {
        let mut lead = ping_lead();
        lead[key] = value;
        lead
    };
    let cases = [
        (lead_with(&long_key, json!(1)), long_key.clone()),
        (lead_with("Notes", json!(1)), "Notes".to_owned()),
        (lead_with("notes", json!("x".repeat(1025))), "notes".to_owned()),
    ];
    for (lead, named) in cases {
        let (status, error) = app.ping_with(lead, json!({})).await;
        assert_eq!((status, error["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_lead")));
        assert!(error["error"]["message"].as_str().unwrap().contains(&named), "{error}");
    }
    let crowded: Map<String, Value> = (0..101).map(|i| (format!("k{i}"), json!(i))).collect();
    let (status, error) = app.ping_with(Value::Object(crowded), json!({})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(error["error"]["message"].as_str().unwrap().contains("100"), "{error}");
    assert_eq!(app.sim("buyer").ping_count(), 0);

    // At every limit at once, the lead is fine.
    let mut full = ping_lead().as_object().unwrap().clone();
    full.insert("k".repeat(64), json!("x".repeat(1024)));
    for i in full.len()..100 {
        full.insert(format!("k{i}"), json!(i));
    }
    assert_eq!(full.len(), 100);
    let (status, answer) = app.ping_with(Value::Object(full), json!({})).await;
    assert_eq!((status, answer["status"].as_str()), (StatusCode::OK, Some("bid")), "{answer}");
}

#[tokio::test]
async fn a_buyer_answer_over_64_kib_is_an_error_never_a_bid() {
    let padded = format!(r#"{{"bid": "50.00", "pad": "{}"}}"#, "x".repeat(70 * 1024));
    let huge = SimBuyerSpec { ping_reply: Some(RawReply { status: 200, body: padded }), ..SimBuyerSpec::default() };
    let app = spawn_app("", vec![TestBuyer::new("huge", huge), TestBuyer::bidding("honest", "3.00")]).await;
    let answer = app.ping().await;
    let ping_id = answer["ping_id"].as_str().unwrap();
    let outcome = app.outcome_of(ping_id, "huge").await;
    assert_eq!((outcome["outcome"].as_str(), outcome["detail"].as_str()), (Some("error"), Some("body_too_large")));
    assert_eq!(app.audit(ping_id).await["winner"], "honest");
}
