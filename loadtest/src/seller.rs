//! The seller side: the requests of the mix (`/v1/ping`, `/v1/ping` then `/v1/post`, `/v1/leads`) sent to
//! the engine, each answer timed and classified.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::HeaderValue;
use serde::Deserialize;
use tokio::time::Instant;

use crate::conn::{ConnPool, ExchangeError};
use crate::load::Recorder;
use crate::scenario::Op;

/// The seller's API key in the generated config.
pub const SELLER_KEY: &str = "sk_loadtest";
/// The campaign of the generated config.
pub const CAMPAIGN: &str = "load";
/// The ping fields of the generated campaign.
pub const PING_FIELDS: &str = r#"["postal_code", "state", "age", "homeowner"]"#;

/// How long past the deadline a ping may take before it counts as an error (late answers are still timed).
const PING_GRACE: Duration = Duration::from_secs(2);
/// Bound on a post or direct post: the cascade may try several buyers, each within its post timeout.
const POST_LIMIT: Duration = Duration::from_secs(30);

/// Sends the scenario's seller requests to one engine.
pub struct Seller {
    pool: ConnPool,
    auth: HeaderValue,
    deadline: Duration,
    ping_body: Bytes,
}

#[derive(Deserialize)]
struct PingReply {
    ping_id: String,
    status: String,
}

#[derive(Deserialize)]
struct PostReply {
    status: String,
}

impl Seller {
    /// A seller of the generated config talking to the engine at `addr`.
    pub fn new(addr: SocketAddr, deadline: Duration) -> Seller {
        let ping_body = format!(
            r#"{{"campaign": "{CAMPAIGN}", "lead": {}, "deadline_ms": {}}}"#,
            ping_lead(),
            deadline.as_millis()
        );
        Seller {
            pool: ConnPool::new(addr),
            auth: HeaderValue::from_str(&format!("Bearer {SELLER_KEY}")).expect("a constant key is a valid header"),
            deadline,
            ping_body: Bytes::from(ping_body),
        }
    }

    /// The body of every ping (the echo fan-out server gets the same bytes).
    pub fn ping_body(&self) -> Bytes {
        self.ping_body.clone()
    }

    /// The engine's connection pool (for `/metrics` and `/healthz`).
    pub fn pool(&self) -> &ConnPool {
        &self.pool
    }

    /// Runs request `n` of kind `op`, due at `due`, and records what came of it.
    pub async fn run(self: Arc<Self>, op: Op, n: u64, due: Instant, recorder: Arc<Recorder>) {
        match op {
            Op::Ping => {
                self.ping(due, &recorder).await;
            }
            Op::PingPost => {
                if let Some(ping_id) = self.ping(due, &recorder).await {
                    let body = format!(r#"{{"ping_id": "{ping_id}", "lead": {}}}"#, full_lead(n));
                    self.post("post", "/v1/post", body, Instant::now(), &recorder).await;
                }
            }
            Op::DirectPost => {
                let body = format!(
                    r#"{{"campaign": "{CAMPAIGN}", "lead": {}, "deadline_ms": {}}}"#,
                    full_lead(n),
                    self.deadline.as_millis()
                );
                self.post("direct", "/v1/leads", body, due, &recorder).await;
            }
        }
    }

    /// One ping; returns its id when it got a bid (so it can be posted).
    pub async fn ping(&self, due: Instant, recorder: &Recorder) -> Option<String> {
        let sent =
            self.pool.post("/v1/ping", &self.headers(), self.ping_body.clone(), self.deadline + PING_GRACE).await;
        let latency = due.elapsed();
        match sent {
            Ok(answer) if answer.status.is_success() => match serde_json::from_slice::<PingReply>(&answer.body) {
                Ok(reply) => {
                    recorder.ok("ping", latency, &reply.status);
                    (reply.status == "bid").then_some(reply.ping_id)
                }
                Err(_) => {
                    recorder.error("ping", "bad_answer");
                    None
                }
            },
            Ok(answer) => {
                recorder.error("ping", &format!("http_{}", answer.status.as_u16()));
                None
            }
            Err(error) => {
                recorder.error("ping", error_kind(&error));
                None
            }
        }
    }

    /// A ping whose answer is only checked for success (the throughput phase).
    pub async fn ping_once(&self) -> bool {
        let sent =
            self.pool.post("/v1/ping", &self.headers(), self.ping_body.clone(), self.deadline + PING_GRACE).await;
        matches!(sent, Ok(answer) if answer.status.is_success())
    }

    async fn post(&self, op: &'static str, path: &'static str, body: String, from: Instant, recorder: &Recorder) {
        let sent = self.pool.post(path, &self.headers(), Bytes::from(body), POST_LIMIT).await;
        let latency = from.elapsed();
        match sent {
            Ok(answer) if answer.status.is_success() => match serde_json::from_slice::<PostReply>(&answer.body) {
                Ok(reply) => recorder.ok(op, latency, &reply.status),
                Err(_) => recorder.error(op, "bad_answer"),
            },
            Ok(answer) => recorder.error(op, &format!("http_{}", answer.status.as_u16())),
            Err(error) => recorder.error(op, error_kind(&error)),
        }
    }

    fn headers(&self) -> [(&'static str, HeaderValue); 1] {
        [("authorization", self.auth.clone())]
    }
}

/// The ping projection every request carries (no PII).
pub fn ping_lead() -> &'static str {
    r#"{"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true}"#
}

/// The full lead of request `n`: the ping fields plus contact details, with a phone and email of its own.
pub fn full_lead(n: u64) -> String {
    // Exchange 200–999 without the N11 codes, line 0000–9999: a valid NANP number for every n.
    let mut exchange = 200 + (n / 10_000) % 800;
    if exchange % 100 == 11 {
        exchange += 1;
    }
    format!(
        r#"{{"postal_code": "94107", "state": "CA", "age": 34, "homeowner": true, "first_name": "Ada", "last_name": "Lovelace", "phone": "(415) {exchange:03}-{line:04}", "email": "lead{n}@example.com"}}"#,
        line = n % 10_000
    )
}

/// A short name for an exchange failure, for the outcome counts.
pub fn error_kind(error: &ExchangeError) -> &'static str {
    match error {
        ExchangeError::Timeout => "timeout",
        ExchangeError::Connect(_) => "connect_error",
        ExchangeError::Http(_) => "http_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_full_lead_is_a_valid_lead_for_the_engine() {
        for n in [0, 1, 9_999, 10_000, 110_000, 7_999_999, u64::MAX] {
            let text = full_lead(n);
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let lead = gavel::domain::lead::Lead::parse(value.as_object().unwrap(), chrono::Utc::now());
            assert!(lead.is_ok(), "{text}: {lead:?}");
        }
    }
}
