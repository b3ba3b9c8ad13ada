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
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use tower_service::Service;

use super::pool::{Origin, Pool};

/// Largest buyer answer read; anything longer is an error for that buyer (API.md section 3).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A pooled keep-alive HTTP/1.1 client (plain HTTP or TLS) for buyer endpoints. Cloning is one reference
/// count and shares the pool; an engine holds one, and each server worker one of its own.
#[derive(Clone)]
pub struct BuyerClient {
    inner: Arc<Inner>,
}

struct Inner {
    connector: HttpsConnector<HttpConnector>,
    pool: Pool,
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
    /// HTTP allowed (simulated and loopback buyers), HTTP/1.1 only, keep-alive pooling (`pool.rs`). hyper
    /// never follows redirects, which is what API.md wants: a redirect is a buyer error.
    pub fn new() -> BuyerClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        // The TLS layer above decides the scheme; the TCP connector must accept https URIs too.
        http.enforce_http(false);
        let connector =
            HttpsConnectorBuilder::new().with_webpki_roots().https_or_http().enable_http1().wrap_connector(http);
        BuyerClient { inner: Arc::new(Inner { connector, pool: Pool::default() }) }
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
        let exchange = self.send_untimed(uri, headers, extra, body);
        tokio::time::timeout(timeout, exchange).await.unwrap_or(Err(SendError::Timeout))
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
        self.exchange(uri, build_request(uri, headers, extra, body)).await
    }

    async fn exchange(&self, uri: &Uri, request: Request<Full<Bytes>>) -> Result<RawAnswer, SendError> {
        let origin = Origin::of(uri).ok_or_else(|| SendError::Connect(format!("not an http(s) URL: {uri}")))?;
        let (mut sender, pooled) = match self.inner.pool.checkout(origin) {
            Some(sender) => (sender, true),
            None => (self.connect(uri).await?, false),
        };
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut failed) => match failed.take_message() {
                // The buyer closed the pooled connection before it took the request: nothing reached it, so
                // the request goes once more, on a fresh connection.
                Some(unsent) if pooled => {
                    sender = self.connect(uri).await?;
                    sender.send_request(unsent).await.map_err(|e| SendError::Other(describe(&e)))?
                }
                _ => return Err(SendError::Other(describe(failed.error()))),
            },
        };
        let status = response.status().as_u16();
        // Read to the end even for error statuses, so the connection can serve the next request.
        let collected =
            Limited::new(response.into_body(), MAX_ANSWER_BYTES).collect().await.map_err(SendError::from_body)?;
        self.inner.pool.put_back(origin, sender);
        Ok(RawAnswer { status, body: collected.to_bytes() })
    }

    /// Opens a connection to `uri`'s origin (TCP, then TLS for `https`) and starts driving it on this thread's
    /// runtime: on a server worker, the worker that runs the auction.
    async fn connect(&self, uri: &Uri) -> Result<SendRequest<Full<Bytes>>, SendError> {
        let io = self
            .inner
            .connector
            .clone()
            .call(uri.clone())
            .await
            .map_err(|e| SendError::Connect(describe(e.as_ref())))?;
        let (sender, connection) = http1::handshake(io).await.map_err(|e| SendError::Connect(describe(&e)))?;
        // Its errors reach the request that was on it; afterwards it has nothing to tell.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
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
    // On a connection of its own origin a request names only its path (origin form), and the origin goes in
    // `Host`.
    *request.uri_mut() = uri.path_and_query().map_or_else(|| Uri::from_static("/"), |path| Uri::from(path.clone()));
    let map = request.headers_mut();
    map.reserve(2 + headers.len() + extra.len());
    if let Some(host) = host_header(uri) {
        map.insert(HOST, host);
    }
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Header names and values are reference-counted bytes: these clones copy no text.
    for (name, value) in headers.iter().chain(extra) {
        map.insert(name.clone(), value.clone());
    }
    request
}

/// `Host` for `uri`: its authority without any user info. A default port written in the URL stays in it,
/// which HTTP/1.1 allows (`example.com:80` names the same host as `example.com`).
fn host_header(uri: &Uri) -> Option<HeaderValue> {
    let authority = uri.authority()?.as_str();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    HeaderValue::from_str(host).ok()
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
        assert_eq!(seen.path, "/in", "origin form: the connection is the origin's own");
        assert_eq!(seen.header("host"), server.uri("/").authority().map(|a| a.as_str()));
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
    async fn a_connection_the_buyer_closes_is_not_reused() {
        let server = spawn_server(|index| match index {
            0 => Reply::Answer { status: 200, headers: vec![("connection", "close")], body: Bytes::from_static(b"{}") },
            _ => Reply::json(200, "{}"),
        })
        .await;
        let client = BuyerClient::new();
        for _ in 0..3 {
            let answer = client.send(&server.uri("/"), &[], &[], Bytes::new(), SECOND).await.unwrap();
            assert_eq!(answer.status, 200);
        }
        assert_eq!(server.connections(), 2, "the closed one replaced once, the new one kept");
        assert_eq!(client.inner.pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn a_request_cut_off_mid_answer_never_puts_its_connection_back() {
        let server = spawn_server(|index| if index == 0 { Reply::Hang } else { Reply::json(200, "{}") }).await;
        let client = BuyerClient::new();
        let cut_off = client.send(&server.uri("/"), &[], &[], Bytes::new(), Duration::from_millis(100)).await;
        assert_eq!(cut_off, Err(SendError::Timeout));
        assert_eq!(client.inner.pool.idle_count(), 0, "a connection with an answer still coming is unusable");
        client.send(&server.uri("/"), &[], &[], Bytes::new(), SECOND).await.unwrap();
        assert_eq!(server.connections(), 2);
        assert_eq!(client.inner.pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn concurrent_requests_each_get_a_connection_and_all_are_kept() {
        let server = spawn_server(|_| Reply::json(200, "{}")).await;
        let client = BuyerClient::new();
        let uri = server.uri("/");
        let sends = (0..5).map(|_| client.send(&uri, &[], &[], Bytes::new(), SECOND));
        for answer in futures_util::future::join_all(sends).await {
            assert_eq!(answer.unwrap().status, 200);
        }
        assert_eq!(server.connections(), 5);
        assert_eq!(client.inner.pool.idle_count(), 5);
        client.send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap();
        assert_eq!(server.connections(), 5, "a kept one served the next request");
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
