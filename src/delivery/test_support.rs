//! Test helpers: a tiny scripted buyer server on loopback and a `Buyer` built by hand.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, Uri};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::net::TcpListener;

use crate::config::Buyer;

/// What the scripted server does with one request.
pub(crate) enum Reply {
    Answer {
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: Bytes,
    },
    /// Never answers.
    Hang,
}

impl Reply {
    pub(crate) fn json(status: u16, body: &str) -> Reply {
        Reply::Answer {
            status,
            headers: vec![("content-type", "application/json")],
            body: Bytes::from(body.to_owned()),
        }
    }

    pub(crate) fn status(status: u16) -> Reply {
        Reply::Answer { status, headers: Vec::new(), body: Bytes::new() }
    }
}

/// One request as the server received it.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

type Script = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

/// A running scripted server; it lives as long as the test's runtime.
pub(crate) struct TestServer {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
}

impl TestServer {
    pub(crate) fn uri(&self, path: &str) -> Uri {
        format!("http://{}{}", self.addr, path).parse().expect("test uri")
    }

    pub(crate) fn request(&self, index: usize) -> Recorded {
        self.requests.lock()[index].clone()
    }

    pub(crate) fn request_count(&self) -> usize {
        self.requests.lock().len()
    }

    pub(crate) fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Starts a server on 127.0.0.1:0 that answers request number `n` (from 0, across connections) with
/// `script(n)`.
pub(crate) async fn spawn_server(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind test server");
    let addr = listener.local_addr().expect("test server address");
    let server = TestServer { addr, requests: Arc::default(), connections: Arc::default() };
    let (requests, connections) = (server.requests.clone(), server.connections.clone());
    let script: Script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            connections.fetch_add(1, Ordering::SeqCst);
            let (script, requests) = (script.clone(), requests.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| handle(request, script.clone(), requests.clone()));
                let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    server
}

async fn handle(
    request: Request<Incoming>,
    script: Script,
    requests: Arc<Mutex<Vec<Recorded>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
    let index = {
        let mut requests = requests.lock();
        // The request target as sent: origin form (`/path?query`) unless a client sent the absolute form.
        requests.push(Recorded { path: parts.uri.to_string(), headers: parts.headers, body });
        requests.len() - 1
    };
    match script(index) {
        Reply::Hang => std::future::pending().await,
        Reply::Answer { status, headers, body } => {
            let mut response = Response::new(Full::new(body));
            *response.status_mut() = hyper::StatusCode::from_u16(status).expect("test status");
            for (name, value) in headers {
                response.headers_mut().insert(HeaderName::from_static(name), HeaderValue::from_static(value));
            }
            Ok(response)
        }
    }
}

/// A loopback URI where nothing listens.
pub(crate) async fn closed_port_uri() -> Uri {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{addr}/").parse().expect("uri")
}

/// A buyer with the config defaults and the given endpoints.
pub(crate) fn test_buyer(ping_url: Uri, post_url: Uri) -> Buyer {
    let mut buyer = crate::config::test_support::buyer("test-buyer", &["auto"]);
    buyer.ping_url = Some(ping_url);
    buyer.post_url = post_url;
    buyer
}

/// A buyer whose URLs are never contacted, for body and classification tests.
pub(crate) fn offline_buyer() -> Buyer {
    let uri = Uri::from_static("http://buyer.invalid/");
    test_buyer(uri.clone(), uri)
}
