//! Pinging one buyer for a price, and reading its answer into a [`PingOutcome`] (API.md section 3).

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::{Map, Value};

use super::adapter::{json_bytes, text_of, OutboundLead};
use super::bid_answer::BidAnswer;
use super::client::{BuyerClient, RawAnswer, SendError};
use crate::config::{Buyer, ResponseAdapter};
use crate::domain::money::{Money, MoneyError};

/// What one buyer's ping came to.
#[derive(Debug, Clone, PartialEq)]
pub enum PingOutcome {
    /// A valid price, at most the campaign's `max_bid`; `bid_id` is echoed on the post.
    Bid {
        amount: Money,
        bid_id: Option<String>,
    },
    NoBid,
    /// No complete answer within the buyer's deadline.
    Timeout,
    /// Anything else; `kind` is a stable snake_case name (`http_500`, `invalid_json`, `bid_above_max`, …).
    Error {
        kind: String,
    },
}

impl PingOutcome {
    /// A stable name for audit records and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PingOutcome::Bid { .. } => "bid",
            PingOutcome::NoBid => "no_bid",
            PingOutcome::Timeout => "timeout",
            PingOutcome::Error { .. } => "error",
        }
    }

    fn error(kind: &str) -> PingOutcome {
        PingOutcome::Error { kind: kind.to_owned() }
    }
}

/// The header that tells a buyer how many milliseconds it has.
fn deadline_header() -> HeaderName {
    HeaderName::from_static("x-gavel-deadline-ms")
}

#[derive(Serialize)]
struct PingBody<'a> {
    ping_id: &'a str,
    campaign: &'a str,
    lead: OutboundLead<'a>,
    deadline_ms: u64,
    test: bool,
}

/// The ping body of API.md section 3 for one buyer. `lead` is already the campaign's ping projection; the
/// buyer's `field_map` and `static_fields` are applied on the way out.
pub fn ping_body(
    ping_id: &str,
    campaign: &str,
    lead: &Map<String, Value>,
    buyer: &Buyer,
    deadline_ms: u64,
    test: bool,
) -> Bytes {
    let lead = OutboundLead::new(lead, buyer);
    let capacity = 128 + campaign.len() + lead.size_estimate();
    json_bytes(&PingBody { ping_id, campaign, lead, deadline_ms, test }, capacity)
}

/// The ping bodies of one auction. Buyers without an adapter that get the same time are sent the same bytes,
/// so their body is written once and shared (a reference count per buyer, not a copy); a buyer with a
/// `field_map` or `static_fields`, or another time, gets its own.
pub struct PingBodies<'a> {
    ping_id: &'a str,
    campaign: &'a str,
    lead: &'a Map<String, Value>,
    test: bool,
    /// The last body written for a buyer without an adapter, with its `deadline_ms`.
    plain: Option<(u64, Bytes)>,
}

impl<'a> PingBodies<'a> {
    pub fn new(ping_id: &'a str, campaign: &'a str, lead: &'a Map<String, Value>, test: bool) -> PingBodies<'a> {
        PingBodies { ping_id, campaign, lead, test, plain: None }
    }

    /// The body for `buyer`, given `deadline_ms`: [`ping_body`]'s bytes.
    pub fn for_buyer(&mut self, buyer: &Buyer, deadline_ms: u64) -> Bytes {
        if !OutboundLead::new(self.lead, buyer).is_plain() {
            return ping_body(self.ping_id, self.campaign, self.lead, buyer, deadline_ms, self.test);
        }
        match &self.plain {
            Some((written_for, body)) if *written_for == deadline_ms => body.clone(),
            _ => {
                let body = ping_body(self.ping_id, self.campaign, self.lead, buyer, deadline_ms, self.test);
                self.plain = Some((deadline_ms, body.clone()));
                body
            }
        }
    }
}

/// Sends a ping with `X-Gavel-Deadline-Ms: <deadline in ms>`, gives up at `deadline`, and classifies the
/// answer against the campaign's `max_bid`.
pub async fn ping_buyer(
    client: &BuyerClient,
    buyer: &Buyer,
    ping_url: &hyper::Uri,
    body: Bytes,
    deadline: Duration,
    max_bid: Money,
) -> PingOutcome {
    tokio::time::timeout(deadline, ping_buyer_untimed(client, buyer, ping_url, body, deadline, max_bid))
        .await
        .unwrap_or(PingOutcome::Timeout)
}

/// [`ping_buyer`] without its timer: the caller drops the future when `deadline` passes (the fan-out keeps
/// one timer for all of an auction's pings).
pub async fn ping_buyer_untimed(
    client: &BuyerClient,
    buyer: &Buyer,
    ping_url: &hyper::Uri,
    body: Bytes,
    deadline: Duration,
    max_bid: Money,
) -> PingOutcome {
    let millis = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX);
    let extra = [(deadline_header(), HeaderValue::from(millis))];
    let answer = client.send_untimed(ping_url, &buyer.headers, &extra, body).await;
    classify_ping(answer, &buyer.response, max_bid)
}

/// Reads a buyer's answer to a ping into an outcome. Pure: every rule of API.md section 3 for pings is here.
pub fn classify_ping(answer: Result<RawAnswer, SendError>, adapter: &ResponseAdapter, max_bid: Money) -> PingOutcome {
    let answer = match answer {
        Ok(answer) => answer,
        Err(SendError::Timeout) => return PingOutcome::Timeout,
        Err(error) => return PingOutcome::error(error.kind()),
    };
    match answer.status {
        204 => return PingOutcome::NoBid,
        200..=299 => {}
        300..=399 => return PingOutcome::error("redirect"),
        status => return PingOutcome::Error { kind: format!("http_{status}") },
    }
    let Some(answer) = BidAnswer::read(&answer.body, &adapter.bid_path) else {
        return PingOutcome::error("invalid_json");
    };
    if answer.no_bid == Some(Value::Bool(true)) {
        return PingOutcome::NoBid;
    }
    match read_bid(answer.bid.as_ref(), max_bid) {
        Ok(Some(amount)) => PingOutcome::Bid { amount, bid_id: text_of(answer.bid_id.as_ref()) },
        Ok(None) => PingOutcome::NoBid,
        Err(kind) => PingOutcome::error(kind),
    }
}

/// The bid at the adapter's path: `Ok(None)` for an explicit no-bid (null or zero), `Err(kind)` for an
/// invalid one.
fn read_bid(value: Option<&Value>, max_bid: Money) -> Result<Option<Money>, &'static str> {
    let value = match value {
        None => return Err("missing_bid"),
        Some(Value::Null) => return Ok(None),
        Some(value @ (Value::Number(_) | Value::String(_))) => value,
        Some(_) => return Err("invalid_bid"),
    };
    let amount = match Money::parse_json(value) {
        Ok(amount) => amount,
        Err(MoneyError::Negative) => return Err("negative_bid"),
        // Over twelve digits is certainly over any campaign's max_bid.
        Err(MoneyError::TooLarge) => return Err("bid_above_max"),
        Err(MoneyError::NotANumber) => return Err("invalid_bid"),
    };
    if amount.is_zero() {
        Ok(None)
    } else if amount > max_bid {
        Err("bid_above_max")
    } else {
        Ok(Some(amount))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tokio::time::Instant;

    use super::*;
    use crate::delivery::test_support::{offline_buyer, spawn_server, test_buyer, Reply, TestServer};

    /// Pings the test server's `/ping` once, with a second to answer and a max bid of 10.00.
    async fn ping_once(server: &TestServer) -> PingOutcome {
        let buyer = test_buyer(server.uri("/ping"), server.uri("/post"));
        let body = Bytes::from_static(b"{}");
        ping_buyer(
            &BuyerClient::new(),
            &buyer,
            &server.uri("/ping"),
            body,
            Duration::from_secs(1),
            Money::from_cents(1000),
        )
        .await
    }

    fn ok(status: u16, body: &str) -> Result<RawAnswer, SendError> {
        Ok(RawAnswer { status, body: Bytes::from(body.to_owned()) })
    }

    fn bid(cents: i64, bid_id: Option<&str>) -> PingOutcome {
        PingOutcome::Bid { amount: Money::from_cents(cents), bid_id: bid_id.map(str::to_owned) }
    }

    fn error(kind: &str) -> PingOutcome {
        PingOutcome::error(kind)
    }

    #[test]
    fn classifies_every_default_answer() {
        let max_bid = Money::from_cents(50_000);
        let cases: Vec<(Result<RawAnswer, SendError>, PingOutcome)> = vec![
            // Transport.
            (Err(SendError::Timeout), PingOutcome::Timeout),
            (Err(SendError::Connect("refused".into())), error("connect")),
            (Err(SendError::BodyTooLarge), error("body_too_large")),
            (Err(SendError::Other("reset".into())), error("io")),
            // Status.
            (ok(204, ""), PingOutcome::NoBid),
            (ok(302, ""), error("redirect")),
            (ok(301, r#"{"bid": "5"}"#), error("redirect")),
            (ok(404, ""), error("http_404")),
            (ok(500, r#"{"bid": "5"}"#), error("http_500")),
            (ok(503, ""), error("http_503")),
            // Body shape.
            (ok(200, ""), error("invalid_json")),
            (ok(200, "bid=5"), error("invalid_json")),
            (ok(200, "[1]"), error("invalid_json")),
            (ok(200, "12.50"), error("invalid_json")),
            (ok(200, r#"{"no_bid": true}"#), PingOutcome::NoBid),
            (ok(200, r#"{"no_bid": false, "bid": "3"}"#), bid(300, None)),
            (ok(200, "{}"), error("missing_bid")),
            (ok(200, r#"{"price": "5"}"#), error("missing_bid")),
            // Bid values.
            (ok(200, r#"{"bid": "12.50"}"#), bid(1250, None)),
            (ok(200, r#"{"bid": 12.5}"#), bid(1250, None)),
            (ok(201, r#"{"bid": 12.509}"#), bid(1250, None)),
            (ok(200, r#"{"bid": 0.29}"#), bid(29, None)),
            (ok(200, r#"{"bid": null}"#), PingOutcome::NoBid),
            (ok(200, r#"{"bid": 0}"#), PingOutcome::NoBid),
            (ok(200, r#"{"bid": "0.00"}"#), PingOutcome::NoBid),
            (ok(200, r#"{"bid": 0.001}"#), PingOutcome::NoBid),
            (ok(200, r#"{"bid": -1}"#), error("negative_bid")),
            (ok(200, r#"{"bid": "-0.50"}"#), error("negative_bid")),
            (ok(200, r#"{"bid": "abc"}"#), error("invalid_bid")),
            (ok(200, r#"{"bid": "NaN"}"#), error("invalid_bid")),
            (ok(200, r#"{"bid": true}"#), error("invalid_bid")),
            (ok(200, r#"{"bid": [5]}"#), error("invalid_bid")),
            (ok(200, r#"{"bid": {"amount": 5}}"#), error("invalid_bid")),
            (ok(200, r#"{"bid": "500.00"}"#), bid(50_000, None)),
            (ok(200, r#"{"bid": "500.01"}"#), error("bid_above_max")),
            (ok(200, r#"{"bid": 1e10}"#), error("bid_above_max")),
            (ok(200, r#"{"bid": "9999999999999"}"#), error("bid_above_max")),
            // Were read as 40000.00 (found by the buyer_answer fuzz target) and as 100.00 (rounded up).
            (ok(200, r#"{"bid": "4__e4"}"#), error("invalid_bid")),
            (ok(200, r#"{"bid": 9.9999999999999999999999999999999e1}"#), bid(9999, None)),
            // bid_id.
            (ok(200, r#"{"bid": "7", "bid_id": "b-1"}"#), bid(700, Some("b-1"))),
            (ok(200, r#"{"bid": "7", "bid_id": 123}"#), bid(700, Some("123"))),
            (ok(200, r#"{"bid": "7", "bid_id": null}"#), bid(700, None)),
            (ok(200, r#"{"bid": "7", "bid_id": {"x": 1}}"#), bid(700, None)),
            (ok(200, r#"{"bid": "7", "reason": "ok"}"#), bid(700, None)),
        ];
        let adapter = ResponseAdapter::default();
        for (answer, expected) in cases {
            let shown = format!("{answer:?}");
            assert_eq!(classify_ping(answer, &adapter, max_bid), expected, "answer {shown}");
        }
    }

    #[test]
    fn reads_the_bid_at_a_custom_path() {
        let adapter = ResponseAdapter { bid_path: "/price".to_owned(), ..ResponseAdapter::default() };
        let nested = ResponseAdapter { bid_path: "/offer/amount".to_owned(), ..ResponseAdapter::default() };
        let max_bid = Money::from_cents(10_000);
        let cases = [
            (&adapter, r#"{"price": "8.25", "bid_id": "q"}"#, bid(825, Some("q"))),
            (&adapter, r#"{"price": null}"#, PingOutcome::NoBid),
            (&adapter, r#"{"bid": "8.25"}"#, error("missing_bid")),
            (&adapter, r#"{"price": 100.01}"#, error("bid_above_max")),
            (&nested, r#"{"offer": {"amount": 3}}"#, bid(300, None)),
            (&nested, r#"{"offer": 3}"#, error("missing_bid")),
            // no_bid is honoured whatever the adapter says.
            (&nested, r#"{"no_bid": true}"#, PingOutcome::NoBid),
        ];
        for (adapter, body, expected) in cases {
            assert_eq!(classify_ping(ok(200, body), adapter, max_bid), expected, "{} {body}", adapter.bid_path);
        }
    }

    #[test]
    fn labels() {
        assert_eq!(bid(1, None).label(), "bid");
        assert_eq!(PingOutcome::NoBid.label(), "no_bid");
        assert_eq!(PingOutcome::Timeout.label(), "timeout");
        assert_eq!(error("http_500").label(), "error");
    }

    #[test]
    fn body_has_the_protocol_shape() {
        let lead = json!({"postal_code": "94107", "age": 30, "homeowner": true});
        let lead = lead.as_object().unwrap();
        let mut buyer = offline_buyer();
        let plain = ping_body("p_1", "auto", lead, &buyer, 180, false);
        let plain: Value = serde_json::from_slice(&plain).unwrap();
        assert_eq!(
            plain,
            json!({"ping_id": "p_1", "campaign": "auto", "lead": {"postal_code": "94107", "age": 30, "homeowner": true},
                   "deadline_ms": 180, "test": false})
        );

        buyer.field_map.insert("postal_code".to_owned(), "zip".to_owned());
        buyer.static_fields.insert("source".to_owned(), json!("gavel"));
        let adapted = ping_body("p_2", "auto", lead, &buyer, 95, true);
        let adapted: Value = serde_json::from_slice(&adapted).unwrap();
        assert_eq!(
            adapted,
            json!({"ping_id": "p_2", "campaign": "auto",
                   "lead": {"zip": "94107", "age": 30, "homeowner": true, "source": "gavel"},
                   "deadline_ms": 95, "test": true})
        );
    }

    #[test]
    fn buyers_without_an_adapter_share_one_body_per_time() {
        let lead = json!({"postal_code": "94107", "age": 30});
        let lead = lead.as_object().unwrap();
        let plain = offline_buyer();
        let mut adapted = offline_buyer();
        adapted.static_fields.insert("source".to_owned(), json!("gavel"));
        let mut bodies = PingBodies::new("p_1", "auto", lead, false);
        let first = bodies.for_buyer(&plain, 180);
        let shared = bodies.for_buyer(&plain, 180);
        assert_eq!(first.as_ptr(), shared.as_ptr(), "the same bytes, not a copy");
        assert_eq!(first, ping_body("p_1", "auto", lead, &plain, 180, false));
        let own = bodies.for_buyer(&adapted, 180);
        assert_eq!(own, ping_body("p_1", "auto", lead, &adapted, 180, false));
        assert_ne!(own, first);
        let other_time = bodies.for_buyer(&plain, 95);
        assert_eq!(other_time, ping_body("p_1", "auto", lead, &plain, 95, false));
        assert_ne!(other_time.as_ptr(), first.as_ptr());
    }

    #[tokio::test]
    async fn sends_deadline_and_buyer_headers_and_reads_the_bid() {
        let server = spawn_server(|_| Reply::json(200, r#"{"bid": "12.50", "bid_id": "abc"}"#)).await;
        let mut buyer = test_buyer(server.uri("/ping"), server.uri("/post"));
        buyer.headers.push((HeaderName::from_static("authorization"), HeaderValue::from_static("Bearer t")));
        let body = ping_body("p_1", "auto", &Map::new(), &buyer, 150, false);
        let ping_url = buyer.ping_url.clone().unwrap();
        let outcome = ping_buyer(
            &BuyerClient::new(),
            &buyer,
            &ping_url,
            body.clone(),
            Duration::from_millis(150),
            Money::from_cents(100_000),
        )
        .await;
        assert_eq!(outcome, bid(1250, Some("abc")));
        let seen = server.request(0);
        assert_eq!(seen.path, "/ping");
        assert_eq!(seen.header("x-gavel-deadline-ms"), Some("150"));
        assert_eq!(seen.header("authorization"), Some("Bearer t"));
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.body, body);
    }

    #[tokio::test]
    async fn a_buyer_that_never_answers_times_out_at_the_deadline() {
        let server = spawn_server(|_| Reply::Hang).await;
        let buyer = test_buyer(server.uri("/ping"), server.uri("/post"));
        let started = Instant::now();
        let outcome = ping_buyer(
            &BuyerClient::new(),
            &buyer,
            &server.uri("/ping"),
            Bytes::from_static(b"{}"),
            Duration::from_millis(100),
            Money::from_cents(100),
        )
        .await;
        assert_eq!(outcome, PingOutcome::Timeout);
        // A generous bound: this checks that the deadline is enforced at all, not how precisely.
        assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
        assert_eq!(server.request_count(), 1);
    }

    #[tokio::test]
    async fn a_redirect_is_an_error_and_is_not_followed() {
        let server = spawn_server(|index| match index {
            0 => Reply::Answer { status: 302, headers: vec![("location", "/elsewhere")], body: Bytes::new() },
            _ => Reply::json(200, r#"{"bid": "5"}"#),
        })
        .await;
        let outcome = ping_once(&server).await;
        assert_eq!(outcome, error("redirect"));
        assert_eq!(server.request_count(), 1);
    }

    #[tokio::test]
    async fn an_oversized_answer_is_an_error() {
        let big = format!(r#"{{"bid": "5", "pad": "{}"}}"#, "x".repeat(super::super::MAX_ANSWER_BYTES));
        let server = spawn_server(move |_| Reply::json(200, &big)).await;
        let outcome = ping_once(&server).await;
        assert_eq!(outcome, error("body_too_large"));
    }
}
