//! The same-run baselines (PERF.md): the raw fan-out (the floor: a plain hyper client pinging the same
//! simulated buyers directly, under the same per-buyer time limits the engine gives them) and the echo
//! fan-out server (one request in, the same fan-out out, a fixed answer back: the least any exchange can do,
//! for the throughput ratio).

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::conn::{ConnPool, ExchangeError};
use crate::load::Recorder;
use crate::seller::{ping_lead, CAMPAIGN};

/// What the engine keeps for itself before the deadline (`gavel::auction::deadline::NETWORK_BUFFER`): the
/// floor gives each buyer the same time the engine would.
const NETWORK_BUFFER: Duration = gavel::auction::deadline::NETWORK_BUFFER;

/// A fan-out of one ping to every simulated buyer, straight over `client::conn`.
pub struct FanOut {
    /// Each buyer's pool and the time its leg may take.
    legs: Vec<(ConnPool, Duration)>,
    body: Bytes,
    deadline_header: HeaderValue,
}

/// How one fan-out ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Legs {
    pub answered: usize,
    pub timed_out: usize,
    pub failed: usize,
}

impl FanOut {
    /// A fan-out to `buyers` (address and `timeout_ms` of each) under an auction deadline of `deadline`.
    pub fn new(buyers: &[(SocketAddr, Duration)], deadline: Duration) -> FanOut {
        let buyer_time = deadline.saturating_sub(NETWORK_BUFFER);
        let body = format!(
            r#"{{"ping_id": "p_floor", "campaign": "{CAMPAIGN}", "lead": {}, "deadline_ms": {}, "test": false}}"#,
            ping_lead(),
            buyer_time.as_millis()
        );
        FanOut {
            legs: buyers.iter().map(|&(addr, timeout)| (ConnPool::new(addr), timeout.min(buyer_time))).collect(),
            body: Bytes::from(body),
            deadline_header: HeaderValue::from_str(&buyer_time.as_millis().to_string())
                .expect("digits are a valid header value"),
        }
    }

    /// Pings every buyer at once and waits for every answer or leg timeout.
    pub async fn run(&self) -> Legs {
        let headers = [("x-gavel-deadline-ms", self.deadline_header.clone())];
        let legs = self.legs.iter().map(|(pool, limit)| pool.post("/ping", &headers, self.body.clone(), *limit));
        let mut outcome = Legs::default();
        for leg in join_all(legs).await {
            match leg {
                Ok(_) => outcome.answered += 1,
                Err(ExchangeError::Timeout) => outcome.timed_out += 1,
                Err(_) => outcome.failed += 1,
            }
        }
        outcome
    }

    /// One scheduled fan-out of the floor phase: its latency from `due`, and its legs' outcomes.
    pub async fn timed(self: Arc<Self>, due: Instant, recorder: Arc<Recorder>) {
        let legs = self.run().await;
        recorder.ok("fanout", due.elapsed(), if legs.timed_out > 0 { "some_legs_timed_out" } else { "all_answered" });
        for _ in 0..legs.failed {
            recorder.outcome("fanout", "leg_failed");
        }
    }
}

/// The echo fan-out server: answers every request, after the same fan-out, with a fixed small JSON body.
/// It stops when dropped.
pub struct EchoServer {
    pub addr: SocketAddr,
    accept: JoinHandle<()>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl EchoServer {
    /// Starts on loopback, on the runtime of the caller (give it the engine's thread count for a fair
    /// comparison).
    pub async fn start(fan_out: Arc<FanOut>) -> std::io::Result<EchoServer> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let addr = listener.local_addr()?;
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let fan_out = Arc::clone(&fan_out);
                let service = service_fn(move |request: Request<hyper::body::Incoming>| {
                    let fan_out = Arc::clone(&fan_out);
                    async move {
                        // Read the request as the engine would, then fan out.
                        let _ = request.into_body().collect().await;
                        fan_out.run().await;
                        let mut answer = Response::new(Full::new(Bytes::from_static(br#"{"status": "bid"}"#)));
                        answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
                        Ok::<_, Infallible>(answer)
                    }
                });
                connections.spawn(async move {
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(EchoServer { addr, accept })
    }
}
