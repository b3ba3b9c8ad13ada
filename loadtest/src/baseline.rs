//! The same-run baselines (PERF.md): the raw fan-out (the floor: a plain hyper client pinging the same
//! simulated buyers directly, under the same per-buyer time limits the engine gives them) and the echo
//! fan-out server (one request in, the same fan-out out, a fixed answer back: the least any exchange can do,
//! for the throughput ratio).

use std::convert::Infallible;
use std::net::SocketAddr;
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
    /// Starts on `addr` (port 0: one the OS picks), on the caller's runtime. `gavel-loadtest serve-echo` runs
    /// it in a process of its own, with the engine's threads and pinning, so its CPU can be compared.
    pub async fn start(addr: SocketAddr, fan_out: Arc<FanOut>) -> std::io::Result<EchoServer> {
        let listener = TcpListener::bind(addr).await?;
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

/// One scheduled request to the echo fan-out server (the same bytes as a seller's ping), timed from `due`.
pub async fn timed_echo(pool: Arc<ConnPool>, body: Bytes, limit: Duration, due: Instant, recorder: Arc<Recorder>) {
    match pool.post("/echo", &[], body, limit).await {
        Ok(answer) if answer.status.is_success() => recorder.ok("echo", due.elapsed(), "answered"),
        Ok(answer) => recorder.error("echo", &format!("http_{}", answer.status.as_u16())),
        Err(error) => recorder.error("echo", crate::seller::error_kind(&error)),
    }
}

/// Parses a `serve-echo --buyer` value: `ADDR=TIMEOUT_MS`.
pub fn parse_leg(text: &str) -> Result<(SocketAddr, Duration), String> {
    let (addr, timeout) = text.split_once('=').ok_or_else(|| format!("{text:?} is not ADDR=TIMEOUT_MS"))?;
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    let timeout: u64 = timeout.parse().map_err(|e| format!("{timeout:?}: {e}"))?;
    Ok((addr, Duration::from_millis(timeout)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_leg_is_an_address_and_a_timeout() {
        assert_eq!(
            parse_leg("127.0.0.1:18201=200"),
            Ok((SocketAddr::from(([127, 0, 0, 1], 18201)), Duration::from_millis(200)))
        );
        assert!(parse_leg("127.0.0.1:18201").is_err());
        assert!(parse_leg("nowhere=200").is_err());
    }
}
