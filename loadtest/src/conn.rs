//! The raw client: hyper's `client::conn` HTTP/1.1 connections to one loopback address, kept in a plain
//! idle list. Nothing else sits between a request and the socket, which is what makes it the baseline (and
//! the generator's own client, so the generator costs the same in every phase).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::task::AbortHandle;

/// Longest answer body read; larger ones are an error.
const MAX_BODY: usize = 1 << 20;

/// Keep-alive connections to one address. Connections are opened on demand (open-loop load may need many at
/// once) and go back to the idle list only after a complete exchange.
pub struct ConnPool {
    addr: SocketAddr,
    host: HeaderValue,
    idle: Mutex<Vec<Conn>>,
}

/// One connection: the request half, and the task driving the socket, aborted when the connection is
/// dropped so a request abandoned at its timeout closes its socket (a hanging buyer then stops hanging).
struct Conn {
    sender: SendRequest<Full<Bytes>>,
    driver: AbortHandle,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExchangeError {
    #[error("timed out")]
    Timeout,
    #[error("connect: {0}")]
    Connect(String),
    #[error("http: {0}")]
    Http(String),
}

/// A complete answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl ConnPool {
    /// A pool for `addr`; no connection is opened yet.
    pub fn new(addr: SocketAddr) -> ConnPool {
        let host = HeaderValue::from_str(&addr.to_string()).expect("a socket address is a valid header value");
        ConnPool { addr, host, idle: Mutex::new(Vec::new()) }
    }

    /// The address this pool connects to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// POSTs a JSON body to `path` with extra headers; the whole exchange is bounded by `timeout`.
    pub async fn post(
        &self,
        path: &'static str,
        headers: &[(&'static str, HeaderValue)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = hyper::Uri::from_static(path);
        let map = request.headers_mut();
        map.insert(HOST, self.host.clone());
        map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in headers {
            map.insert(*name, value.clone());
        }
        self.send(request, timeout).await
    }

    /// GETs `path` (for `/healthz` and `/metrics`).
    pub async fn get(&self, path: &'static str, timeout: Duration) -> Result<Answer, ExchangeError> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() = hyper::Uri::from_static(path);
        request.headers_mut().insert(HOST, self.host.clone());
        self.send(request, timeout).await
    }

    /// GETs `path` with extra headers (an operator's view, with its token).
    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&'static str, HeaderValue)],
        timeout: Duration,
    ) -> Result<Answer, ExchangeError> {
        let mut request = Request::new(Full::new(Bytes::new()));
        *request.uri_mut() =
            path.parse().map_err(|e: hyper::http::uri::InvalidUri| ExchangeError::Http(e.to_string()))?;
        let map = request.headers_mut();
        map.insert(HOST, self.host.clone());
        for (name, value) in headers {
            map.insert(*name, value.clone());
        }
        self.send(request, timeout).await
    }

    async fn send(&self, request: Request<Full<Bytes>>, timeout: Duration) -> Result<Answer, ExchangeError> {
        match tokio::time::timeout(timeout, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(ExchangeError::Timeout),
        }
    }

    async fn exchange(&self, request: Request<Full<Bytes>>) -> Result<Answer, ExchangeError> {
        let mut conn = match self.take_idle() {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        conn.sender.ready().await.map_err(|e| ExchangeError::Http(e.to_string()))?;
        let response = conn.sender.send_request(request).await.map_err(|e| ExchangeError::Http(e.to_string()))?;
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ExchangeError::Http(e.to_string()))?
            .to_bytes();
        // Only a connection that finished its exchange cleanly is reused.
        self.idle.lock().push(conn);
        Ok(Answer { status, body })
    }

    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock();
        while let Some(conn) = idle.pop() {
            if conn.sender.is_ready() {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(&self) -> Result<Conn, ExchangeError> {
        let stream = TcpStream::connect(self.addr).await.map_err(|e| ExchangeError::Connect(e.to_string()))?;
        // Small JSON exchanges: never wait to coalesce.
        stream.set_nodelay(true).map_err(|e| ExchangeError::Connect(e.to_string()))?;
        let (sender, connection) =
            http1::handshake(TokioIo::new(stream)).await.map_err(|e| ExchangeError::Connect(e.to_string()))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        })
        .abort_handle();
        Ok(Conn { sender, driver })
    }
}
