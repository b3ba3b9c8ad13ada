//! The answers hyper makes before any route runs carry the contract's JSON error body too, over a real
//! socket: 431 for a head too large or with too many headers, 400 for a request that is not HTTP.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Sends `request` on a new connection and reads until the server closes it.
async fn exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.server.addr).await.expect("connects");
    stream.write_all(request).await.expect("written");
    let mut answer = Vec::new();
    // A reset after the answer (request bytes left unread) still leaves the answer read.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// The status, the head's lines in lower case, and the JSON body of one answer, checking its length.
fn parse(answer: &str) -> (u16, Vec<String>, Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {answer:?}"));
    let status = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("status: {head}"));
    let lines: Vec<String> = head.lines().skip(1).map(str::to_ascii_lowercase).collect();
    let length: usize = lines
        .iter()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("content-length: {head}"));
    assert_eq!(length, body.len(), "the body is as long as its header says: {answer}");
    let json = serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {answer}"));
    (status, lines, json)
}

fn assert_json_error(answer: &str, status: u16, code: &str) {
    let (got, lines, body) = parse(answer);
    assert_eq!(got, status, "{answer}");
    assert!(lines.contains(&"content-type: application/json".to_owned()), "{answer}");
    assert!(lines.contains(&"connection: close".to_owned()), "{answer}");
    assert_eq!(body["error"]["code"], code, "{answer}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{answer}");
}

#[tokio::test]
async fn an_oversized_head_or_too_many_headers_get_431_with_the_json_error() {
    let app = spawn_app("", vec![TestBuyer::bidding("buyer", "8.00")]).await;
    let big = format!(
        "POST /v1/ping HTTP/1.1\r\nHost: gavel\r\nAuthorization: Bearer {SELLER_KEY}\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let answer = exchange(&app, big.as_bytes()).await;
    assert_json_error(&answer, 431, "headers_too_large");
    assert!(answer.contains("16384 bytes"), "the message names the limit: {answer}");

    let many: String = (0..101).map(|i| format!("X-H-{i}: v\r\n")).collect();
    let crowded = format!("GET /healthz HTTP/1.1\r\nHost: gavel\r\n{many}\r\n");
    assert_json_error(&exchange(&app, crowded.as_bytes()).await, 431, "headers_too_large");
    assert_eq!(app.sim("buyer").ping_count(), 0);
}

#[tokio::test]
async fn a_431_after_a_served_request_on_the_same_connection_follows_its_answer_intact() {
    let app = spawn_app("", vec![]).await;
    // Two pipelined requests: the first is served in full, the second refused with the JSON error.
    let first = "GET /healthz HTTP/1.1\r\nHost: gavel\r\n\r\n".to_owned();
    let second = format!("GET /healthz HTTP/1.1\r\nHost: gavel\r\nX-Filler: {}\r\n\r\n", "b".repeat(20_000));
    let answer = exchange(&app, (first + &second).as_bytes()).await;
    let (ok, rest) = answer.split_once(r#"{"status":"ok"}"#).unwrap_or_else(|| panic!("first answer: {answer}"));
    assert!(ok.starts_with("HTTP/1.1 200"), "{answer}");
    assert_json_error(rest, 431, "headers_too_large");
}

#[tokio::test]
async fn a_request_that_is_not_http_gets_400_with_the_json_error() {
    let app = spawn_app("", vec![]).await;
    let answer = exchange(&app, b"GET /healthz HTTP/1.1\r\nHost gavel\r\n\r\n").await;
    assert_json_error(&answer, 400, "invalid_request");
    // A well-formed request still gets the route's own answer.
    let answer = exchange(&app, b"GET /healthz HTTP/1.1\r\nHost: gavel\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with(r#"{"status":"ok"}"#), "{answer}");
}
