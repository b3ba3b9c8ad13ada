//! How the engine reads a buyer's answer: `classify_ping` (bid / no_bid / error) and `classify_post`
//! (accepted / rejected / failed) on a status, a body and the buyer's response adapter.

use bytes::Bytes;
use gavel::config::ResponseAdapter;
use gavel::delivery::client::{RawAnswer, SendError};
use gavel::delivery::ping::{classify_ping, PingOutcome};
use gavel::delivery::post::{classify_post, PostOutcome};
use gavel::domain::money::Money;
use serde_json::{json, Value};

use crate::request::{cents_of, digits_cmp, exact_cents, money_text};
use crate::Outcome;

/// Statuses a buyer may answer with, the odd ones included.
const STATUSES: [u16; 16] = [200, 204, 201, 299, 300, 302, 399, 400, 404, 409, 500, 503, 599, 100, 0, 999];

/// Campaign `max_bid`s in cents, from none to the twelve-digit limit.
const MAX_BIDS: [i64; 6] = [1, 100, 1250, 50_000, 10_000_000, 99_999_999_999_999];

/// The first three bytes choose the status, the adapter with any transport error, and `max_bid`; the rest
/// is the answer's body. Accepted when the ping answer is a bid.
pub fn run(data: &[u8]) -> Outcome {
    let [status, setup, max_bid, ref body @ ..] = *data else { return Outcome::Skipped };
    let status = STATUSES[usize::from(status) % STATUSES.len()];
    let adapter = adapter(setup % 4);
    let max_bid = Money::from_cents(MAX_BIDS[usize::from(max_bid) % MAX_BIDS.len()]);
    let answer = match setup / 4 % 8 {
        4 => Err(SendError::Timeout),
        5 => Err(SendError::Connect("refused".to_owned())),
        6 => Err(SendError::BodyTooLarge),
        7 => Err(SendError::Other("reset".to_owned())),
        _ => Ok(RawAnswer { status, body: Bytes::copy_from_slice(body) }),
    };
    let ping = classify_ping(answer.clone(), &adapter, max_bid);
    check_ping(&answer, &adapter, max_bid, &ping);
    let post = classify_post(answer.clone(), &adapter);
    check_post(&answer, &adapter, &post);
    Outcome::of(matches!(ping, PingOutcome::Bid { .. }))
}

/// The adapters of the protocol's examples: the default, a renamed and a nested bid, a custom post answer.
fn adapter(choice: u8) -> ResponseAdapter {
    match choice {
        0 => ResponseAdapter::default(),
        1 => ResponseAdapter { bid_path: "/price".to_owned(), ..ResponseAdapter::default() },
        2 => ResponseAdapter { bid_path: "/offer/amount".to_owned(), ..ResponseAdapter::default() },
        _ => ResponseAdapter {
            bid_path: "/data/0/bid".to_owned(),
            accepted_path: "/status".to_owned(),
            accepted_values: vec![json!("ok"), json!("queued"), json!(1)],
            reason_path: "/msg".to_owned(),
        },
    }
}

/// A bid only comes from a 2xx JSON object, is positive, at most `max_bid`, and is exactly the value the
/// buyer wrote rounded down to the cent (never a float's approximation of it); a plain decimal in range
/// is never refused.
fn check_ping(answer: &Result<RawAnswer, SendError>, adapter: &ResponseAdapter, max_bid: Money, ping: &PingOutcome) {
    let Ok(raw) = answer else {
        assert!(!matches!(ping, PingOutcome::Bid { .. }), "a bid without an answer: {ping:?}");
        return;
    };
    let document = serde_json::from_slice::<Value>(&raw.body).ok().filter(Value::is_object);
    let readable = (200..=299).contains(&raw.status) && raw.status != 204 && document.is_some();
    let no_bid = document.as_ref().and_then(|d| d.get("no_bid")) == Some(&Value::Bool(true));
    let sent = document.as_ref().and_then(|d| d.pointer(&adapter.bid_path)).and_then(money_text);
    let expected = sent.as_deref().and_then(exact_cents);
    let max_cents = cents_of(max_bid);
    if (200..=299).contains(&raw.status) && raw.status != 204 {
        let invalid_json = matches!(ping, PingOutcome::Error { kind } if kind == "invalid_json");
        assert_eq!(invalid_json, document.is_none(), "invalid_json exactly when no JSON object came: {ping:?}");
    }
    if readable && no_bid {
        assert_eq!(ping, &PingOutcome::NoBid, "the buyer said no_bid");
    }

    if let PingOutcome::Bid { amount, .. } = ping {
        assert!(readable && !no_bid, "a bid from status {} / {:?}", raw.status, document);
        assert!(!amount.is_negative() && !amount.is_zero(), "bid {amount}");
        assert!(*amount <= max_bid, "bid {amount} over max_bid {max_bid}");
        assert!(amount.to_string().split_once('.').is_some_and(|(_, d)| d.len() == 2), "bid {amount} not in cents");
        match &expected {
            Some(cents) => assert_eq!(&cents_of(*amount), cents, "the buyer sent {sent:?}, read as {amount}"),
            None => panic!("a bid of {amount} from {sent:?}, which is no decimal amount"),
        }
    }
    // Plain decimals (no exponent) in (0, max_bid] must come out as exactly that bid.
    let plain = sent.as_deref().is_some_and(|text| !text.contains(['e', 'E']));
    if let (true, false, true, Some(cents)) = (readable, no_bid, plain, &expected) {
        let in_range = cents != "0" && digits_cmp(cents, &max_cents).is_le();
        if in_range {
            assert!(
                matches!(ping, PingOutcome::Bid { amount, .. } if cents_of(*amount) == *cents),
                "{sent:?} with max_bid {max_bid} read as {ping:?}"
            );
        }
    }
}

/// Accepted only on a 2xx whose flag is one of the adapter's values; a 5xx or a timeout may be retried, and
/// nothing that may have reached the buyer's CRM is retried blindly.
fn check_post(answer: &Result<RawAnswer, SendError>, adapter: &ResponseAdapter, post: &PostOutcome) {
    let raw = match answer {
        Ok(raw) => raw,
        Err(error) => {
            assert_eq!(post, &PostOutcome::Failed { retryable: error.retryable(), detail: error.kind().to_owned() });
            return;
        }
    };
    let document = serde_json::from_slice::<Value>(&raw.body).ok();
    match post {
        PostOutcome::Accepted { .. } => {
            assert!((200..=299).contains(&raw.status), "accepted on status {}", raw.status);
            let flag = document.as_ref().and_then(|d| d.pointer(&adapter.accepted_path));
            assert!(flag.is_some_and(|f| adapter.accepted_values.contains(f)), "accepted on {flag:?}");
        }
        PostOutcome::Failed { retryable: true, .. } => {
            assert!((500..=599).contains(&raw.status), "retryable failure on status {}", raw.status)
        }
        PostOutcome::Failed { retryable: false, .. } => {
            assert!((200..=299).contains(&raw.status) && document.is_none(), "failure on {}", raw.status)
        }
        PostOutcome::Rejected { .. } => {}
    }
}
