//! The outbound HTTP client for every buyer ping, post and notice, and which one the code running now uses.
//!
//! Each server worker thread (`http::workers`) has a client of its own, so that the buyer connections an
//! auction uses are driven by the thread that runs the auction: its pool's connection tasks are spawned on
//! that worker's current-thread runtime. [`BuyerClient::current`] is the one place that picks it; code off
//! the workers (the notices sender, tests calling the engine directly) gets the engine's shared client.

use std::cell::RefCell;
use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// Largest buyer answer read; anything longer is an error for that buyer (API.md section 3).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Idle keep-alive connections kept per buyer host: enough that a burst of concurrent auctions never has to
/// open fresh connections once warm.
const POOL_MAX_IDLE_PER_HOST: usize = 1024;
/// How long an idle pooled connection is kept before it is closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A pooled keep-alive HTTP/1.1 client (plain HTTP or TLS) for buyer endpoints. Cloning is one reference
/// count and shares the pool; an engine holds one, and each server worker one of its own.
#[derive(Clone)]
pub struct BuyerClient {
    inner: Arc<Client<HttpsConnector<HttpConnector>, Full<Bytes>>>,
}

/// The server worker a thread is: its index and the client its auctions use.
struct ThisWorker {
    /// The worker's index as a metric label, rendered once.
    label: Box<str>,
    client: BuyerClient,
}

thread_local! {
    /// Set on a server worker's thread for its whole life (see [`BuyerClient::install_for_worker`]).
    static THIS_WORKER: RefCell<Option<ThisWorker>> = const { RefCell::new(None) };
}

/// What a buyer answered, before classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawAnswer {
    pub status: u16,
    pub body: Bytes,
}

/// Why no answer came back from a buyer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The whole exchange did not finish within its time.
    #[error("timed out")]
    Timeout,
    /// No connection could be made (refused, unreachable, DNS, TLS handshake).
    #[error("connect error: {0}")]
    Connect(String),
    /// The answer's body was longer than [`MAX_ANSWER_BYTES`].
    #[error("answer body over {MAX_ANSWER_BYTES} bytes")]
    BodyTooLarge,
    /// Anything else: the connection broke, the answer was not valid HTTP.
    #[error("{0}")]
    Other(String),
}

impl SendError {
    /// A stable snake_case name for audit records and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            SendError::Timeout => "timeout",
            SendError::Connect(_) => "connect",
            SendError::BodyTooLarge => "body_too_large",
            SendError::Other(_) => "io",
        }
    }

    /// True if sending again may succeed: the buyer may never have seen the request, or was only slow.
    pub fn retryable(&self) -> bool {
        matches!(self, SendError::Timeout | SendError::Connect(_))
    }

    fn from_client(err: hyper_util::client::legacy::Error) -> SendError {
        if err.is_connect() {
            SendError::Connect(describe(&err))
        } else {
            SendError::Other(describe(&err))
        }
    }

    fn from_body(err: Box<dyn StdError + Send + Sync>) -> SendError {
        if err.downcast_ref::<LengthLimitError>().is_some() {
            SendError::BodyTooLarge
        } else {
            SendError::Other(describe(err.as_ref()))
        }
    }
}

impl BuyerClient {
    /// Builds the client: TCP_NODELAY (answers are small and latency-bound), webpki roots for TLS, plain
    /// HTTP allowed (simulated and loopback buyers), HTTP/1.1 only, keep-alive pooling. hyper never follows
    /// redirects, which is what API.md wants: a redirect is a buyer error.
    pub fn new() -> BuyerClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The TLS layer above decides the scheme; the TCP connector must accept https URIs too.
        http.enforce_http(false);
        let https =
            HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().wrap_connector(http);
        let inner = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(POOL_MAX_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            // Without a timer the idle timeout above is never enforced.
            .pool_timer(TokioTimer::new())
            .build(https);
        BuyerClient { inner: Arc::new(inner) }
    }

    /// Makes this thread server worker `index`, with `client` the one [`BuyerClient::current`] returns here.
    /// Called once by each worker thread before it serves.
    pub fn install_for_worker(index: usize, client: BuyerClient) {
        let worker = ThisWorker { label: index.to_string().into_boxed_str(), client };
        THIS_WORKER.with_borrow_mut(|slot| *slot = Some(worker));
    }

    /// The client for an exchange started now: on a server worker's thread that worker's own, whose
    /// connections this thread drives; elsewhere `shared` (the engine's).
    pub fn current(shared: &BuyerClient) -> BuyerClient {
        THIS_WORKER.with_borrow(|worker| worker.as_ref().map_or_else(|| shared.clone(), |w| w.client.clone()))
    }

    /// Calls `f` with the index (as text) of the server worker this thread is, if it is one.
    pub fn on_worker(f: impl FnOnce(&str)) {
        THIS_WORKER.with_borrow(|worker| {
            if let Some(worker) = worker {
                f(&worker.label);
            }
        });
    }

    /// POSTs `body` as `application/json` to `uri` with the buyer's `headers`, then `extra` (which win over a
    /// buyer header of the same name). The whole exchange — connect, send, read the body — is bounded by
    /// `timeout`; the body is read up to [`MAX_ANSWER_BYTES`].
    pub async fn send(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        extra: &[(HeaderName, HeaderValue)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<RawAnswer, SendError> {
        let request = build_request(uri, headers, extra, body);
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(answer) => answer,
            Err(_elapsed) => Err(SendError::Timeout),
        }
    }

    /// [`BuyerClient::send`] without a time limit: for a caller that bounds the exchange itself, by dropping
    /// the future (which drops the connection if the answer was still coming).
    pub async fn send_untimed(
        &self,
        uri: &Uri,
        headers: &[(HeaderName, HeaderValue)],
        extra: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<RawAnswer, SendError> {
        self.exchange(build_request(uri, headers, extra, body)).await
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<RawAnswer, SendError> {
        let response = self.inner.request(request).await.map_err(SendError::from_client)?;
        let status = response.status().as_u16();
        // Read to the end even for error statuses, so the connection goes back to the pool.
        let collected =
            Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await.map_err(SendError::from_body)?;
        Ok(RawAnswer { status, body: collected.to_bytes() })
    }
}

impl Default for BuyerClient {
    fn default() -> Self {
        BuyerClient::new()
    }
}

fn build_request(
    uri: &Uri,
    headers: &[(HeaderName, HeaderValue)],
    extra: &[(HeaderName, HeaderValue)],
    body: Bytes,
) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(body));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = uri.clone();
    let map = request.headers_mut();
    map.reserve(1 + headers.len() + extra.len());
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Header names and values are reference-counted bytes: these clones copy no text.
    for (name, value) in headers.iter().chain(extra) {
        map.insert(name.clone(), value.clone());
    }
    request
}

/// An error and its causes on one line: the outer hyper errors alone ("client error (Connect)") say little.
fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::test_support::{spawn_server, Reply};

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn error_kinds_and_retryability() {
        let cases = [
            (SendError::Timeout, "timeout", true),
            (SendError::Connect("refused".into()), "connect", true),
            (SendError::BodyTooLarge, "body_too_large", false),
            (SendError::Other("reset".into()), "io", false),
        ];
        for (error, kind, retryable) in cases {
            assert_eq!(error.kind(), kind);
            assert_eq!(error.retryable(), retryable, "{error:?}");
        }
    }

    #[tokio::test]
    async fn sends_json_with_buyer_and_extra_headers() {
        let server = spawn_server(|_| Reply::json(200, r#"{"ok":true}"#)).await;
        let client = BuyerClient::new();
        let buyer_headers = [
            (HeaderName::from_static("authorization"), HeaderValue::from_static("Bearer secret")),
            (HeaderName::from_static("x-extra"), HeaderValue::from_static("buyer")),
        ];
        let extra = [(HeaderName::from_static("x-extra"), HeaderValue::from_static("engine"))];
        let answer = client
            .send(&server.uri("/in"), &buyer_headers, &extra, Bytes::from_static(b"{\"a\":1}"), SECOND)
            .await
            .unwrap();
        assert_eq!(answer, RawAnswer { status: 200, body: Bytes::from_static(br#"{"ok":true}"#) });
        let seen = server.request(0);
        assert_eq!(seen.path, "/in");
        assert_eq!(seen.body, Bytes::from_static(b"{\"a\":1}"));
        assert_eq!(seen.header("content-type"), Some("application/json"));
        assert_eq!(seen.header("authorization"), Some("Bearer secret"));
        assert_eq!(seen.header("x-extra"), Some("engine"));
    }

    #[tokio::test]
    async fn keeps_the_connection_alive() {
        let server = spawn_server(|_| Reply::json(200, "{}")).await;
        let client = BuyerClient::new();
        for _ in 0..3 {
            client.send(&server.uri("/"), &[], &[], Bytes::new(), SECOND).await.unwrap();
        }
        assert_eq!(server.connections(), 1);
    }

    #[tokio::test]
    async fn body_over_the_limit_is_an_error_and_at_the_limit_is_not() {
        let server = spawn_server(|index| {
            let len = if index == 0 { MAX_ANSWER_BYTES } else { MAX_ANSWER_BYTES + 1 };
            Reply::json(200, &" ".repeat(len))
        })
        .await;
        let client = BuyerClient::new();
        let at_limit = client.send(&server.uri("/"), &[], &[], Bytes::new(), SECOND).await.unwrap();
        assert_eq!(at_limit.body.len(), MAX_ANSWER_BYTES);
        let over = client.send(&server.uri("/"), &[], &[], Bytes::new(), SECOND).await;
        assert_eq!(over, Err(SendError::BodyTooLarge));
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let uri = crate::delivery::test_support::closed_port_uri().await;
        let error = BuyerClient::new().send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap_err();
        assert_eq!(error.kind(), "connect", "{error}");
    }
}
