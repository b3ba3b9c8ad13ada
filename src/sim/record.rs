//! What a simulated buyer remembers: every request when recording is on, and counters always.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::HeaderMap;
use parking_lot::Mutex;
use tokio::time::Instant;

/// One request as a simulated buyer received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// Headers in arrival order, names lowercase; values that are not UTF-8 are decoded lossily.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub body: serde_json::Value,
    /// The body as text (lossy UTF-8).
    pub raw: String,
    /// When the request's body had arrived: tests compare when a post and a notice came.
    pub at: Instant,
}

impl Recorded {
    pub(crate) fn new(headers: &HeaderMap, body: &[u8]) -> Self {
        let headers = headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect();
        Recorded {
            headers,
            body: serde_json::from_slice(body).unwrap_or(serde_json::Value::Null),
            raw: String::from_utf8_lossy(body).into_owned(),
            at: Instant::now(),
        }
    }

    /// The first value of header `name` (case-insensitive), for tests.
    #[cfg(test)]
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// Requests of one kind, in arrival order, with an always-on counter.
#[derive(Debug, Default)]
pub(crate) struct Log {
    count: AtomicU64,
    requests: Mutex<Vec<Recorded>>,
}

impl Log {
    /// Counts one request; the count is what the load test reads, so it never takes the lock.
    pub(crate) fn count(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn push(&self, request: Recorded) {
        self.requests.lock().push(request);
    }

    pub(crate) fn total(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Vec<Recorded> {
        self.requests.lock().clone()
    }
}
