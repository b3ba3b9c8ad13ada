//! Each test starts a real simulated buyer on loopback and talks to it over HTTP.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::spec::{Behaviour, PingOutcome, MAX_WAIT};
use super::*;
use crate::domain::money::Money;

/// Generous bound for things that should happen "soon" on a loaded CI machine.
const SOON: Duration = Duration::from_secs(5);

type TestClient = Client<HttpConnector, Full<Bytes>>;

struct Answer {
    status: StatusCode,
    content_type: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

async fn request(client: &TestClient, method: Method, url: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let mut builder = Request::builder().method(method).uri(url).header("content-type", "application/json");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Answer { status, content_type, body: String::from_utf8(body.to_vec()).unwrap() }
}

async fn post(client: &TestClient, url: &str, body: &str) -> Answer {
    request(client, Method::POST, url, &[], body).await
}

async fn ping(sim: &SimBuyer) -> Answer {
    post(&client(), &sim.ping_url(), r#"{"ping_id": "p_1"}"#).await
}

async fn post_lead(sim: &SimBuyer) -> Answer {
    post(&client(), &sim.post_url(), r#"{"lead_id": "l_1"}"#).await
}

async fn start(spec: SimBuyerSpec) -> SimBuyer {
    SimBuyer::start(spec).await.unwrap()
}

/// Polls `condition` until it holds or `SOON` passes.
async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + SOON;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

// === pings ===

#[tokio::test]
async fn fixed_bid_has_the_protocol_shape() {
    let sim = start(SimBuyerSpec::bidding("12.5")).await;
    let answer = ping(&sim).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.content_type.as_deref(), Some("application/json"));
    let body = answer.json();
    assert_eq!(body["bid"], json!("12.50"));
    assert!(body["bid_id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    assert!(sim.ping_url().starts_with("http://127.0.0.1:") && sim.ping_url().ends_with("/ping"));
    assert_eq!(sim.post_url(), format!("http://{}/post", sim.addr()));
}

#[tokio::test]
async fn uniform_bids_are_whole_cents_in_range_and_reproducible() {
    let spec = SimBuyerSpec {
        bid: BidSpec::Uniform { min: Money::from_cents(500), max: Money::from_cents(700) },
        seed: 42,
        ..SimBuyerSpec::default()
    };
    let (first, second) = (start(spec.clone()).await, start(spec).await);
    for _ in 0..5 {
        let (a, b) = (ping(&first).await.json(), ping(&second).await.json());
        assert_eq!(a["bid"], b["bid"], "same seed, same bids");
        let bid = Money::parse_text(a["bid"].as_str().unwrap()).unwrap();
        assert!((Money::from_cents(500)..=Money::from_cents(700)).contains(&bid), "{bid}");
    }
}

#[tokio::test]
async fn no_bid_alternates_between_204_and_null() {
    let sim = start(SimBuyerSpec { no_bid_share: 1.0, ..SimBuyerSpec::default() }).await;
    let (first, second) = (ping(&sim).await, ping(&sim).await);
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    assert_eq!(first.body, "");
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json(), json!({"bid": null}));
}

#[tokio::test]
async fn error_share_answers_500_with_a_json_error() {
    let sim = start(SimBuyerSpec { error_share: 1.0, ..SimBuyerSpec::default() }).await;
    let answer = ping(&sim).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer.json()["error"]["code"].is_string());
}

#[tokio::test]
async fn garbage_share_answers_200_with_non_json() {
    let sim = start(SimBuyerSpec { garbage_share: 1.0, ..SimBuyerSpec::default() }).await;
    let answer = ping(&sim).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&answer.body).is_err(), "{:?}", answer.body);
}

#[tokio::test]
async fn raw_replies_are_sent_exactly() {
    let spec = SimBuyerSpec {
        ping_reply: Some(RawReply { status: 418, body: r#"{"bid": -5}"#.into() }),
        post_reply: Some(RawReply { status: 202, body: "odd".into() }),
        ..SimBuyerSpec::default()
    };
    let sim = start(spec).await;
    let pinged = ping(&sim).await;
    assert_eq!((pinged.status.as_u16(), pinged.body.as_str()), (418, r#"{"bid": -5}"#));
    let posted = post_lead(&sim).await;
    assert_eq!((posted.status.as_u16(), posted.body.as_str()), (202, "odd"));
}

#[tokio::test]
async fn ping_latency_delays_the_answer() {
    let wait = Duration::from_millis(100);
    let sim = start(SimBuyerSpec { ping_latency: Latency::Fixed(wait), ..SimBuyerSpec::default() }).await;
    let started = tokio::time::Instant::now();
    assert_eq!(ping(&sim).await.status, StatusCode::OK);
    assert!(started.elapsed() >= wait);
}

#[tokio::test]
async fn other_paths_and_methods_are_404() {
    let sim = start(SimBuyerSpec::default()).await;
    let client = client();
    let elsewhere = format!("http://{}/bid", sim.addr());
    assert_eq!(post(&client, &elsewhere, "{}").await.status, StatusCode::NOT_FOUND);
    let get = request(&client, Method::GET, &sim.ping_url(), &[], "").await;
    assert_eq!(get.status, StatusCode::NOT_FOUND);
    assert_eq!(sim.ping_count(), 0);
}

// === posts ===

#[tokio::test]
async fn posts_are_accepted_with_a_reference() {
    let sim = start(SimBuyerSpec::default()).await;
    assert_eq!(post_lead(&sim).await.json(), json!({"accepted": true, "reference": "sim-1"}));
    assert_eq!(post_lead(&sim).await.json(), json!({"accepted": true, "reference": "sim-2"}));
}

#[tokio::test]
async fn reject_share_rejects_posts_as_duplicates() {
    let sim = start(SimBuyerSpec { reject_share: 1.0, ..SimBuyerSpec::default() }).await;
    let answer = post_lead(&sim).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"accepted": false, "reason": "duplicate"}));
    assert_eq!((sim.post_count(), sim.accepted_count()), (1, 0), "received, not bought");
}

#[tokio::test]
async fn first_posts_fail_with_503_then_succeed() {
    let sim = start(SimBuyerSpec { post_error_first: 1, ..SimBuyerSpec::default() }).await;
    assert_eq!(post_lead(&sim).await.status, StatusCode::SERVICE_UNAVAILABLE);
    let retried = post_lead(&sim).await;
    assert_eq!(retried.status, StatusCode::OK);
    assert_eq!(retried.json()["accepted"], json!(true));
    assert_eq!(sim.post_count(), 2);
    assert_eq!(sim.accepted_count(), 1, "only the retry bought the lead");
    assert_eq!(sim.posts().len(), 2, "retries are recorded too");
}

// === recording ===

#[tokio::test]
async fn requests_are_recorded_with_headers_and_bodies() {
    let sim = start(SimBuyerSpec::default()).await;
    let client = client();
    let ping_body = r#"{"ping_id": "p_9", "deadline_ms": 180}"#;
    request(&client, Method::POST, &sim.ping_url(), &[("x-gavel-deadline-ms", "180")], ping_body).await;
    request(&client, Method::POST, &sim.post_url(), &[("Idempotency-Key", "l_9")], "not json").await;

    let pings = sim.pings();
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].header("X-Gavel-Deadline-Ms"), Some("180"));
    assert_eq!(pings[0].body, json!({"ping_id": "p_9", "deadline_ms": 180}));
    assert_eq!(pings[0].raw, ping_body);

    let posts = sim.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].header("idempotency-key"), Some("l_9"));
    assert_eq!((&posts[0].body, posts[0].raw.as_str()), (&Value::Null, "not json"));
    assert_eq!((sim.ping_count(), sim.post_count()), (1, 1));
}

#[tokio::test]
async fn without_recording_only_counters_are_kept() {
    let sim = start(SimBuyerSpec { record: false, ..SimBuyerSpec::default() }).await;
    ping(&sim).await;
    post_lead(&sim).await;
    assert_eq!((sim.ping_count(), sim.post_count()), (1, 1));
    assert!(sim.pings().is_empty() && sim.posts().is_empty());
}

// === hangs, set_spec, shutdown ===

#[tokio::test]
async fn hanging_buyer_does_not_answer_and_frees_the_request_when_the_client_gives_up() {
    let sim = start(SimBuyerSpec::hanging()).await;
    let client = client();
    let url = sim.ping_url();
    let pinged = post(&client, &url, "{}");
    assert!(tokio::time::timeout(Duration::from_millis(200), pinged).await.is_err(), "answered while hanging");
    assert_eq!(sim.ping_count(), 1);
    // The timeout dropped the request; the client closes that connection, and the hang must end with it.
    assert!(eventually(|| sim.hanging_now() == 0).await, "hang outlived its connection");
}

#[tokio::test]
async fn hang_ends_when_a_raw_connection_closes() {
    let sim = start(SimBuyerSpec::hanging()).await;
    let mut stream = TcpStream::connect(sim.addr()).await.unwrap();
    stream.write_all(b"POST /ping HTTP/1.1\r\nhost: sim\r\ncontent-length: 2\r\n\r\n{}").await.unwrap();
    assert!(eventually(|| sim.hanging_now() == 1).await, "request never reached the hang");
    drop(stream);
    assert!(eventually(|| sim.hanging_now() == 0).await, "hang outlived its connection");
}

#[tokio::test]
async fn set_spec_turns_a_hanging_buyer_healthy() {
    let sim = start(SimBuyerSpec::hanging()).await;
    let client = client();
    let url = sim.ping_url();
    let pinged = post(&client, &url, "{}");
    assert!(tokio::time::timeout(Duration::from_millis(200), pinged).await.is_err());
    sim.set_spec(SimBuyerSpec::bidding("3.00"));
    assert_eq!(post(&client, &url, "{}").await.json()["bid"], json!("3.00"));
}

#[tokio::test]
async fn dropping_the_buyer_stops_its_server() {
    let sim = start(SimBuyerSpec::default()).await;
    let addr = sim.addr();
    assert_eq!(ping(&sim).await.status, StatusCode::OK);
    drop(sim);
    let refused = eventually(|| {
        // A blocking connect to loopback answers at once: refused once the listener is gone.
        std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err()
    })
    .await;
    assert!(refused, "server still accepting after drop");
}

// === draws ===

#[test]
fn shares_are_drawn_in_order_and_fill_up_to_one() {
    let spec = SimBuyerSpec { error_share: 0.5, garbage_share: 0.5, no_bid_share: 1.0, ..SimBuyerSpec::default() };
    let behaviour = Behaviour::new(spec);
    for _ in 0..200 {
        let (outcome, _) = behaviour.draw_ping();
        assert!(matches!(outcome, PingOutcome::Error | PingOutcome::Garbage), "{outcome:?}");
    }
}

#[test]
fn latencies_stay_in_bounds_and_are_capped() {
    let (min, max) = (Duration::from_millis(5), Duration::from_millis(9));
    let huge_tail = Latency::LogNormal { median: Duration::from_secs(30), sigma: 1e6 };
    let no_spread = Latency::LogNormal { median: Duration::from_millis(40), sigma: 0.0 };
    let behaviour = Behaviour::new(SimBuyerSpec::default());
    for _ in 0..200 {
        assert!((min..=max).contains(&behaviour.draw_latency(&Latency::Uniform { min, max })));
        assert!(behaviour.draw_latency(&huge_tail) <= MAX_WAIT);
        let steady = behaviour.draw_latency(&no_spread).as_secs_f64();
        assert!((steady - 0.040).abs() < 1e-6, "{steady}");
    }
    assert_eq!(behaviour.draw_latency(&Latency::Fixed(Duration::from_secs(3600))), MAX_WAIT);
}

#[test]
fn log_normal_median_is_near_the_configured_median() {
    let median = Duration::from_millis(50);
    let behaviour = Behaviour::new(SimBuyerSpec::default());
    let mut draws: Vec<Duration> =
        (0..2001).map(|_| behaviour.draw_latency(&Latency::LogNormal { median, sigma: 0.5 })).collect();
    draws.sort();
    let middle = draws[1000].as_secs_f64();
    assert!((0.04..0.06).contains(&middle), "median {middle}");
}
