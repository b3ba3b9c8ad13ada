//! Posting a sold lead to a buyer, with one retry, and reading its answer into a [`PostOutcome`]
//! (API.md section 3).

use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::time::Instant;

use super::adapter::{at_pointer, json_bytes, text_of, OutboundLead};
use super::client::{BuyerClient, RawAnswer, SendError};
use crate::config::{Buyer, ResponseAdapter};
use crate::domain::money::Money;

/// What one post attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum PostOutcome {
    /// The buyer took the lead; `reference` is its own id for it, if it gave one.
    Accepted { reference: Option<String> },
    /// The buyer refused the lead; the cascade moves on.
    Rejected { reason: Option<String> },
    /// No usable answer; `retryable` when the buyer may not have processed it (timeout, connect, 5xx).
    Failed { retryable: bool, detail: String },
}

impl PostOutcome {
    /// A stable name for audit records and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            PostOutcome::Accepted { .. } => "accepted",
            PostOutcome::Rejected { .. } => "rejected",
            PostOutcome::Failed { .. } => "error",
        }
    }

    /// The text worth recording beside the label: the buyer's reference, its reason, or what failed.
    pub fn detail(&self) -> Option<String> {
        match self {
            PostOutcome::Accepted { reference } => reference.clone(),
            PostOutcome::Rejected { reason } => reason.clone(),
            PostOutcome::Failed { detail, .. } => Some(detail.clone()),
        }
    }

    fn failed(retryable: bool, detail: impl Into<String>) -> PostOutcome {
        PostOutcome::Failed { retryable, detail: detail.into() }
    }
}

/// One post attempt and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct PostAttempt {
    pub outcome: PostOutcome,
    pub latency: Duration,
}

/// The header that lets a buyer recognise a retried post.
fn idempotency_header() -> HeaderName {
    HeaderName::from_static("idempotency-key")
}

#[derive(Serialize)]
struct PostBody<'a> {
    ping_id: &'a str,
    lead_id: &'a str,
    campaign: &'a str,
    price: Money,
    #[serde(skip_serializing_if = "Option::is_none")]
    bid_id: Option<&'a str>,
    lead: OutboundLead<'a>,
    test: bool,
}

/// The post body of API.md section 3 for one buyer. `lead` is the full normalized lead; the buyer's
/// `field_map` and `static_fields` are applied on the way out; `price` is written as `"12.50"`. `bid_id` is
/// left out when the buyer gave none.
#[allow(clippy::too_many_arguments)] // Each argument is one field of the protocol's body.
pub fn post_body(
    ping_id: &str,
    lead_id: &str,
    campaign: &str,
    price: Money,
    bid_id: Option<&str>,
    lead: &Map<String, Value>,
    buyer: &Buyer,
    test: bool,
) -> Bytes {
    let lead = OutboundLead::new(lead, buyer);
    let capacity = 192 + campaign.len() + lead.size_estimate();
    json_bytes(&PostBody { ping_id, lead_id, campaign, price, bid_id, lead, test }, capacity)
}

/// Posts a lead with `Idempotency-Key: <lead_id>`. A retryable failure (timeout, connect error, 5xx) is
/// retried once with the same key; both attempts fit in the buyer's `post_timeout_ms`. Returns every
/// attempt (one or two), in order.
///
/// The first attempt gets half the budget, so that a timed-out first attempt still leaves a real chance
/// for the retry; a fast failure (connect, 5xx) leaves the retry everything that is left.
pub async fn post_lead(client: &BuyerClient, buyer: &Buyer, lead_id: &str, body: Bytes) -> Vec<PostAttempt> {
    let Ok(key) = HeaderValue::from_str(lead_id) else {
        // Lead ids are the engine's own; one that cannot be a header is a bug, not the buyer's fault.
        let outcome = PostOutcome::failed(false, "invalid_lead_id");
        return vec![PostAttempt { outcome, latency: Duration::ZERO }];
    };
    let extra = [(idempotency_header(), key)];
    let budget = Duration::from_millis(buyer.post_timeout_ms);
    let started = Instant::now();

    let first = attempt(client, buyer, &extra, body.clone(), budget / 2).await;
    let retry = matches!(first.outcome, PostOutcome::Failed { retryable: true, .. });
    let mut attempts = Vec::with_capacity(2);
    attempts.push(first);
    let left = budget.saturating_sub(started.elapsed());
    if retry && !left.is_zero() {
        attempts.push(attempt(client, buyer, &extra, body, left).await);
    }
    attempts
}

async fn attempt(
    client: &BuyerClient,
    buyer: &Buyer,
    extra: &[(HeaderName, HeaderValue)],
    body: Bytes,
    timeout: Duration,
) -> PostAttempt {
    let started = Instant::now();
    let answer = client.send(&buyer.post_url, &buyer.headers, extra, body, timeout).await;
    PostAttempt { outcome: classify_post(answer, &buyer.response), latency: started.elapsed() }
}

/// Reads a buyer's answer to a post into an outcome. Pure: every rule of API.md section 3 for posts is here.
pub fn classify_post(answer: Result<RawAnswer, SendError>, adapter: &ResponseAdapter) -> PostOutcome {
    let answer = match answer {
        Ok(answer) => answer,
        Err(error) => return PostOutcome::failed(error.retryable(), error.kind()),
    };
    match answer.status {
        200..=299 => {}
        status @ 500..=599 => return PostOutcome::failed(true, format!("http_{status}")),
        status => return PostOutcome::Rejected { reason: Some(format!("http_{status}")) },
    }
    let Ok(document) = serde_json::from_slice::<Value>(&answer.body) else {
        // The buyer answered but unreadably: it may well have taken the lead, so a retry could double it.
        return PostOutcome::failed(false, "invalid_json");
    };
    let accepted =
        at_pointer(&document, &adapter.accepted_path).is_some_and(|value| adapter.accepted_values.contains(value));
    if accepted {
        PostOutcome::Accepted { reference: text_of(at_pointer(&document, "/reference")) }
    } else {
        PostOutcome::Rejected { reason: text_of(at_pointer(&document, &adapter.reason_path)) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::delivery::test_support::{closed_port_uri, offline_buyer, spawn_server, test_buyer, Reply};

    fn ok(status: u16, body: &str) -> Result<RawAnswer, SendError> {
        Ok(RawAnswer { status, body: Bytes::from(body.to_owned()) })
    }

    fn accepted(reference: Option<&str>) -> PostOutcome {
        PostOutcome::Accepted { reference: reference.map(str::to_owned) }
    }

    fn rejected(reason: Option<&str>) -> PostOutcome {
        PostOutcome::Rejected { reason: reason.map(str::to_owned) }
    }

    #[test]
    fn classifies_every_default_answer() {
        let cases: Vec<(Result<RawAnswer, SendError>, PostOutcome)> = vec![
            // Transport.
            (Err(SendError::Timeout), PostOutcome::failed(true, "timeout")),
            (Err(SendError::Connect("refused".into())), PostOutcome::failed(true, "connect")),
            (Err(SendError::BodyTooLarge), PostOutcome::failed(false, "body_too_large")),
            (Err(SendError::Other("reset".into())), PostOutcome::failed(false, "io")),
            // Status.
            (ok(500, ""), PostOutcome::failed(true, "http_500")),
            (ok(503, r#"{"accepted": true}"#), PostOutcome::failed(true, "http_503")),
            (ok(400, r#"{"accepted": false, "reason": "bad"}"#), rejected(Some("http_400"))),
            (ok(409, ""), rejected(Some("http_409"))),
            (ok(302, ""), rejected(Some("http_302"))),
            // 2xx bodies.
            (ok(200, r#"{"accepted": true, "reference": "crm-123"}"#), accepted(Some("crm-123"))),
            (ok(201, r#"{"accepted": true, "reference": 987}"#), accepted(Some("987"))),
            (ok(200, r#"{"accepted": true}"#), accepted(None)),
            (ok(200, r#"{"accepted": false, "reason": "duplicate"}"#), rejected(Some("duplicate"))),
            (ok(200, r#"{"accepted": false}"#), rejected(None)),
            (ok(200, r#"{"accepted": "true", "reason": "x"}"#), rejected(Some("x"))),
            (ok(200, r#"{"reason": "no flag"}"#), rejected(Some("no flag"))),
            (ok(200, "[true]"), rejected(None)),
            (ok(200, ""), PostOutcome::failed(false, "invalid_json")),
            (ok(204, ""), PostOutcome::failed(false, "invalid_json")),
            (ok(200, "OK"), PostOutcome::failed(false, "invalid_json")),
        ];
        let adapter = ResponseAdapter::default();
        for (answer, expected) in cases {
            let shown = format!("{answer:?}");
            assert_eq!(classify_post(answer, &adapter), expected, "answer {shown}");
        }
    }

    #[test]
    fn reads_a_custom_response_shape() {
        let adapter = ResponseAdapter {
            accepted_path: "/status".to_owned(),
            accepted_values: vec![json!("ok"), json!("queued")],
            reason_path: "/msg".to_owned(),
            ..ResponseAdapter::default()
        };
        let cases = [
            (r#"{"status": "ok", "reference": "r1"}"#, accepted(Some("r1"))),
            (r#"{"status": "queued"}"#, accepted(None)),
            (r#"{"status": "fail", "msg": "out of area"}"#, rejected(Some("out of area"))),
            (r#"{"status": "OK"}"#, rejected(None)),
            (r#"{"accepted": true, "reason": "ignored"}"#, rejected(None)),
        ];
        for (body, expected) in cases {
            assert_eq!(classify_post(ok(200, body), &adapter), expected, "{body}");
        }
    }

    #[test]
    fn labels_and_details() {
        assert_eq!(accepted(Some("r")).label(), "accepted");
        assert_eq!(accepted(Some("r")).detail().as_deref(), Some("r"));
        assert_eq!(rejected(Some("dup")).label(), "rejected");
        assert_eq!(rejected(None).detail(), None);
        assert_eq!(PostOutcome::failed(true, "timeout").label(), "error");
        assert_eq!(PostOutcome::failed(true, "timeout").detail().as_deref(), Some("timeout"));
    }

    #[test]
    fn body_has_the_protocol_shape() {
        let lead = json!({"postal_code": "94107", "phone": "4155550123", "first_name": "Ada"});
        let lead = lead.as_object().unwrap();
        let mut buyer = offline_buyer();
        let price = Money::from_cents(1250);
        let plain = post_body("p_1", "l_1", "auto", price, Some("b-9"), lead, &buyer, false);
        assert_eq!(
            serde_json::from_slice::<Value>(&plain).unwrap(),
            json!({"ping_id": "p_1", "lead_id": "l_1", "campaign": "auto", "price": "12.50", "bid_id": "b-9",
                   "lead": {"postal_code": "94107", "phone": "4155550123", "first_name": "Ada"}, "test": false})
        );

        buyer.field_map.insert("first_name".to_owned(), "fname".to_owned());
        buyer.static_fields.insert("vendor".to_owned(), json!(7));
        let adapted = post_body("p_1", "l_1", "auto", Money::from_cents(500), None, lead, &buyer, true);
        assert_eq!(
            serde_json::from_slice::<Value>(&adapted).unwrap(),
            json!({"ping_id": "p_1", "lead_id": "l_1", "campaign": "auto", "price": "5.00",
                   "lead": {"postal_code": "94107", "phone": "4155550123", "fname": "Ada", "vendor": 7},
                   "test": true})
        );
    }

    #[tokio::test]
    async fn a_5xx_is_retried_once_with_the_same_key() {
        let server = spawn_server(|index| match index {
            0 => Reply::status(503),
            _ => Reply::json(200, r#"{"accepted": true, "reference": "crm-1"}"#),
        })
        .await;
        let buyer = test_buyer(server.uri("/ping"), server.uri("/post"));
        let attempts = post_lead(&BuyerClient::new(), &buyer, "l_abc", Bytes::from_static(b"{}")).await;
        let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.clone()).collect();
        assert_eq!(outcomes, vec![PostOutcome::failed(true, "http_503"), accepted(Some("crm-1"))]);
        assert_eq!(server.request_count(), 2);
        for index in 0..2 {
            let seen = server.request(index);
            assert_eq!(seen.path, "/post");
            assert_eq!(seen.header("idempotency-key"), Some("l_abc"));
        }
    }

    #[tokio::test]
    async fn a_timed_out_first_attempt_is_retried_within_the_budget() {
        let server = spawn_server(|index| match index {
            0 => Reply::Hang,
            _ => Reply::json(200, r#"{"accepted": true}"#),
        })
        .await;
        let mut buyer = test_buyer(server.uri("/ping"), server.uri("/post"));
        buyer.post_timeout_ms = 400;
        let attempts = post_lead(&BuyerClient::new(), &buyer, "l_t", Bytes::from_static(b"{}")).await;
        let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.clone()).collect();
        assert_eq!(outcomes, vec![PostOutcome::failed(true, "timeout"), accepted(None)]);
        assert!(attempts[0].latency >= Duration::from_millis(200), "{:?}", attempts[0].latency);
    }

    #[tokio::test]
    async fn a_rejection_is_not_retried() {
        let server = spawn_server(|_| Reply::json(200, r#"{"accepted": false, "reason": "duplicate"}"#)).await;
        let buyer = test_buyer(server.uri("/ping"), server.uri("/post"));
        let attempts = post_lead(&BuyerClient::new(), &buyer, "l_r", Bytes::from_static(b"{}")).await;
        assert_eq!(attempts.len(), 1);
        assert_eq!(attempts[0].outcome, rejected(Some("duplicate")));
    }

    #[tokio::test]
    async fn two_connect_failures_give_two_failed_attempts() {
        let uri = closed_port_uri().await;
        let buyer = test_buyer(uri.clone(), uri);
        let attempts = post_lead(&BuyerClient::new(), &buyer, "l_c", Bytes::from_static(b"{}")).await;
        let outcomes: Vec<_> = attempts.iter().map(|a| a.outcome.clone()).collect();
        assert_eq!(outcomes, vec![PostOutcome::failed(true, "connect"), PostOutcome::failed(true, "connect")]);
    }
}
