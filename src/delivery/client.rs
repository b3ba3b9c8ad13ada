//! The outbound HTTP client for every buyer ping, post and notice, and which one the code running now uses.
//!
//! Each server worker thread (`http::workers`) has a client of its own, so that the buyer connections an
//! auction uses are registered with, and driven by, the thread that runs the auction: an exchange is read and
//! written by the task that awaits it (`wire.rs`). [`BuyerClient::current`] is the one place that picks the
//! client; code off the workers (the notices sender, tests calling the engine directly) gets the engine's
//! shared client.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use hyper::Uri;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

use super::pool::{Origin, Pool};
use super::wire::{Connection, Request, Stream, WireError};

/// Largest buyer answer read; anything longer is an error for that buyer (API.md section 3).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// A pooled keep-alive HTTP/1.1 client (plain HTTP or TLS) for buyer endpoints. Cloning is one reference
/// count and shares the pool; an engine holds one, and each server worker one of its own.
#[derive(Clone)]
pub struct BuyerClient {
    inner: Arc<Inner>,
}

struct Inner {
    tls: TlsConnector,
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
}

impl From<WireError> for SendError {
    fn from(error: WireError) -> SendError {
        match error {
            WireError::TooLarge => SendError::BodyTooLarge,
            WireError::Io(why) | WireError::Invalid(why) => SendError::Other(why),
        }
    }
}

impl BuyerClient {
    /// Builds the client: TCP_NODELAY (answers are small and latency-bound), webpki roots for TLS, plain
    /// HTTP allowed (simulated and loopback buyers), HTTP/1.1 only, keep-alive pooling (`pool.rs`). Redirects
    /// are never followed, which is what API.md wants: a redirect is a buyer error.
    pub fn new() -> BuyerClient {
        let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports rustls's default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let tls = TlsConnector::from(Arc::new(config));
        BuyerClient { inner: Arc::new(Inner { tls, pool: Pool::default() }) }
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
        let origin = Origin::of(uri).ok_or_else(|| SendError::Connect(format!("not an http(s) URL: {uri}")))?;
        let request = Request {
            target: uri.path_and_query().map_or("/", |path| path.as_str()),
            host: host_of(uri),
            headers,
            extra,
            body: &body,
        };
        let (mut connection, pooled) = match self.inner.pool.checkout(origin) {
            Some(connection) => (connection, true),
            None => (self.connect(uri).await?, false),
        };
        if let Err(error) = connection.send(&request).await {
            if !pooled {
                return Err(SendError::Other(error.to_string()));
            }
            // The buyer closed the pooled connection as the request went out, so it took none of it: the
            // request goes once more, on a fresh connection.
            connection = self.connect(uri).await?;
            connection.send(&request).await.map_err(|e| SendError::Other(e.to_string()))?;
        }
        let answer = connection.receive(MAX_ANSWER_BYTES).await?;
        if answer.reusable {
            self.inner.pool.put_back(origin, connection);
        }
        Ok(RawAnswer { status: answer.status, body: answer.body })
    }

    /// Opens a connection to `uri`'s origin: TCP, then TLS for `https`.
    async fn connect(&self, uri: &Uri) -> Result<Connection, SendError> {
        let tls = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or_else(|| SendError::Connect(format!("no host in {uri}")))?;
        // An IPv6 address is written in brackets in a URL, and without them everywhere else.
        let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = TcpStream::connect((host, port)).await.map_err(|e| SendError::Connect(e.to_string()))?;
        tcp.set_nodelay(true).map_err(|e| SendError::Connect(e.to_string()))?;
        if !tls {
            return Ok(Connection::new(Stream::Plain(tcp)));
        }
        let name = ServerName::try_from(host.to_owned()).map_err(|e| SendError::Connect(e.to_string()))?;
        let stream = self.inner.tls.connect(name, tcp).await.map_err(|e| SendError::Connect(format!("TLS: {e}")))?;
        Ok(Connection::new(Stream::Tls(Box::new(stream))))
    }
}

impl Default for BuyerClient {
    fn default() -> Self {
        BuyerClient::new()
    }
}

/// `Host` for `uri`: its authority without any user info. A default port written in the URL stays in it,
/// which HTTP/1.1 allows (`example.com:80` names the same host as `example.com`).
fn host_of(uri: &Uri) -> &str {
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
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

    /// A buyer written byte by byte: each request read (its head and `Content-Length` body) is answered with
    /// the next of `answers`, in the pieces given (written apart, so a reader gets them apart); after an
    /// answer marked `close` the buyer closes the connection. Counts the connections it accepted.
    async fn raw_buyer(answers: Vec<(Vec<&'static str>, bool)>) -> (Uri, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let uri = format!("http://{}/ping", listener.local_addr().unwrap()).parse().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let answers = Arc::new(parking_lot::Mutex::new(answers.into_iter()));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let answers = Arc::clone(&answers);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    loop {
                        let mut buf = [0u8; 4096];
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => seen.extend_from_slice(&buf[..n]),
                        }
                        let text = String::from_utf8_lossy(&seen).into_owned();
                        let Some(head_end) = text.find("\r\n\r\n") else { continue };
                        let length = text[..head_end]
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length: "))
                            .map_or(0, |n| n.parse::<usize>().unwrap());
                        if seen.len() < head_end + 4 + length {
                            continue;
                        }
                        seen.clear();
                        let Some((pieces, close)) = answers.lock().next() else { return };
                        for piece in pieces {
                            socket.write_all(piece.as_bytes()).await.unwrap();
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if close {
                            return;
                        }
                    }
                });
            }
        });
        (uri, accepted)
    }

    #[tokio::test]
    async fn a_chunked_answer_in_pieces_is_joined_and_keeps_its_connection() {
        let chunked = vec![
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n{\"bid\":",
            "\r\n4\r\n12.5\r\n1\r\n}\r\n0\r\n\r\n",
        ];
        let (uri, accepted) = raw_buyer(vec![(chunked.clone(), false), (chunked, false)]).await;
        let client = BuyerClient::new();
        for _ in 0..2 {
            let answer = client.send(&uri, &[], &[], Bytes::from_static(b"{}"), SECOND).await.unwrap();
            assert_eq!(answer, RawAnswer { status: 200, body: Bytes::from_static(br#"{"bid":12.5}"#) });
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_answer_without_a_length_is_read_to_the_end_and_its_connection_is_not_kept() {
        let (uri, accepted) = raw_buyer(vec![
            (vec!["HTTP/1.1 200 OK\r\n\r\n{\"bid\"", ":1}"], true),
            (vec!["HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"], false),
            (vec!["HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 204 No Content\r\n\r\n"], false),
        ])
        .await;
        let client = BuyerClient::new();
        let to_the_end = client.send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap();
        assert_eq!(to_the_end.body, Bytes::from_static(br#"{"bid":1}"#));
        assert_eq!(client.inner.pool.idle_count(), 0);
        let http_1_0 = client.send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap();
        assert_eq!(http_1_0.body, Bytes::from_static(b"{}"));
        assert_eq!(client.inner.pool.idle_count(), 0, "HTTP/1.0 closes after each answer");
        let after_continue = client.send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap();
        assert_eq!(after_continue.status, 204, "an interim 100 is not the answer");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_idle_connection_the_buyer_closed_is_not_written_to() {
        // The first answer says nothing of closing, then the buyer closes the connection while it is idle.
        let (uri, accepted) = raw_buyer(vec![
            (vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"], true),
            (vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"], false),
        ])
        .await;
        let client = BuyerClient::new();
        client.send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap();
        assert_eq!(client.inner.pool.idle_count(), 1);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let answer = client.send(&uri, &[], &[], Bytes::new(), SECOND).await;
        assert_eq!(answer.map(|a| a.status), Ok(200), "sent on a fresh connection, not the closed one");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn garbage_or_a_connection_closed_mid_answer_is_an_error_for_that_buyer_only() {
        let (uri, _) = raw_buyer(vec![
            (vec!["SSH-2.0-OpenSSH_9.2\r\n\r\n"], true),
            (vec!["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}"], true),
            (vec!["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"], false),
        ])
        .await;
        let client = BuyerClient::new();
        for _ in 0..2 {
            let error = client.send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap_err();
            assert_eq!(error.kind(), "io", "{error}");
        }
        assert_eq!(client.send(&uri, &[], &[], Bytes::new(), SECOND).await.map(|a| a.status), Ok(200));
    }

    #[tokio::test]
    async fn an_https_url_speaks_tls_and_a_plain_server_fails_its_handshake() {
        let server = spawn_server(|_| Reply::json(200, "{}")).await;
        let plain = server.uri("/");
        let https: Uri = format!("https://{}/", plain.authority().unwrap()).parse().unwrap();
        let error = BuyerClient::new().send(&https, &[], &[], Bytes::new(), SECOND).await.unwrap_err();
        assert!(matches!(&error, SendError::Connect(why) if why.starts_with("TLS")), "{error}");
        assert_eq!(server.request_count(), 0, "no plain request went out");
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connect_error() {
        let uri = crate::delivery::test_support::closed_port_uri().await;
        let error = BuyerClient::new().send(&uri, &[], &[], Bytes::new(), SECOND).await.unwrap_err();
        assert_eq!(error.kind(), "connect", "{error}");
    }
}
