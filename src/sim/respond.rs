//! One request in, one answer out: routing, the drawn outcome, the wait, and the buyer-protocol bodies.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use parking_lot::RwLock;
use serde_json::{json, Value};

use super::record::{Log, Recorded};
use super::spec::{Behaviour, PingOutcome, PostOutcome, RawReply, SimBuyerSpec, MAX_WAIT};
use crate::domain::money::Money;

/// The response type every answer has.
pub(crate) type Answer = Response<Full<Bytes>>;

/// State shared by every connection of one simulated buyer.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Swapped whole by `set_spec`; requests already in flight finish under the spec they started with.
    behaviour: RwLock<Arc<Behaviour>>,
    pub(crate) pings: Log,
    pub(crate) posts: Log,
    pub(crate) notices: Log,
    no_bids: AtomicU64,
    bids: AtomicU64,
    pub(crate) accepted: AtomicU64,
    /// Pings being held open right now; lets tests prove a hang ends when its connection does.
    pub(crate) hanging: AtomicU64,
    /// Pings being answered right now, and the most there ever were at once (`concurrent_pings` tests).
    in_flight: AtomicU64,
    pub(crate) most_in_flight: AtomicU64,
    /// Connections accepted so far (how many the engine's pools opened to this buyer).
    pub(crate) connections: AtomicU64,
}

/// One ping being answered, counted while it lives.
struct InFlight<'a>(&'a Shared);

impl<'a> InFlight<'a> {
    fn new(shared: &'a Shared) -> Self {
        let now = shared.in_flight.fetch_add(1, Ordering::AcqRel) + 1;
        shared.most_in_flight.fetch_max(now, Ordering::AcqRel);
        InFlight(shared)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[derive(Debug, Clone, Copy)]
enum Route {
    Ping,
    Post,
    Notice,
}

impl Shared {
    pub(crate) fn new(spec: SimBuyerSpec) -> Self {
        Shared {
            behaviour: RwLock::new(Arc::new(Behaviour::new(spec))),
            pings: Log::default(),
            posts: Log::default(),
            notices: Log::default(),
            no_bids: AtomicU64::new(0),
            bids: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            hanging: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            most_in_flight: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        }
    }

    pub(crate) fn set_spec(&self, spec: SimBuyerSpec) {
        *self.behaviour.write() = Arc::new(Behaviour::new(spec));
    }

    fn behaviour(&self) -> Arc<Behaviour> {
        Arc::clone(&self.behaviour.read())
    }

    fn log(&self, route: Route) -> &Log {
        match route {
            Route::Ping => &self.pings,
            Route::Post => &self.posts,
            Route::Notice => &self.notices,
        }
    }
}

/// The hyper service: answers `POST /ping`, `POST /post` and `POST /notice`, and 404 to anything else.
pub(crate) async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> Result<Answer, Infallible> {
    let route = match (request.method(), request.uri().path()) {
        (&Method::POST, "/ping") => Route::Ping,
        (&Method::POST, "/post") => Route::Post,
        (&Method::POST, "/notice") => Route::Notice,
        _ => {
            return Ok(error(
                StatusCode::NOT_FOUND,
                "not_found",
                "the simulated buyer serves POST /ping, POST /post and POST /notice",
            ))
        }
    };
    // Taken on arrival, so a request is answered wholly under one spec even if `set_spec` runs meanwhile.
    let behaviour = shared.behaviour();
    let _in_flight = matches!(route, Route::Ping).then(|| InFlight::new(&shared));
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Ok(error(StatusCode::BAD_REQUEST, "bad_body", "the request body could not be read")),
    };
    let log = shared.log(route);
    log.count();
    if behaviour.spec.record {
        log.push(Recorded::new(&parts.headers, &body));
    }
    Ok(match route {
        Route::Ping => answer_ping(&shared, &behaviour).await,
        Route::Post => answer_post(&shared, &behaviour).await,
        Route::Notice => answer_notice(&behaviour).await,
    })
}

/// A notice needs no answer but a 2xx; the spec may make it slow, hang or fail.
async fn answer_notice(behaviour: &Behaviour) -> Answer {
    wait(behaviour.draw_latency(&behaviour.spec.notice_latency)).await;
    match &behaviour.spec.notice_reply {
        Some(reply) => raw(reply),
        None => with_status(StatusCode::NO_CONTENT, Full::default()),
    }
}

async fn answer_ping(shared: &Shared, behaviour: &Behaviour) -> Answer {
    if let Some(reply) = &behaviour.spec.ping_reply {
        wait(behaviour.draw_latency(&behaviour.spec.ping_latency)).await;
        return raw(reply);
    }
    let (outcome, latency) = behaviour.draw_ping();
    if outcome == PingOutcome::Hang {
        return hang(shared).await;
    }
    wait(latency).await;
    match outcome {
        PingOutcome::Bid(price) => bid(shared, price),
        PingOutcome::NoBid => no_bid(shared),
        PingOutcome::Garbage => garbage(),
        PingOutcome::Error | PingOutcome::Hang => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "sim_error", "simulated buyer failure")
        }
    }
}

async fn answer_post(shared: &Shared, behaviour: &Behaviour) -> Answer {
    if let Some(reply) = &behaviour.spec.post_reply {
        wait(behaviour.draw_latency(&behaviour.spec.post_latency)).await;
        return raw(reply);
    }
    let (outcome, latency) = behaviour.draw_post();
    wait(latency).await;
    match outcome {
        PostOutcome::Accept => {
            let number = shared.accepted.fetch_add(1, Ordering::Relaxed) + 1;
            json(StatusCode::OK, &json!({"accepted": true, "reference": format!("sim-{number}")}))
        }
        PostOutcome::Reject => json(StatusCode::OK, &json!({"accepted": false, "reason": "duplicate"})),
        PostOutcome::Unavailable => {
            error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "simulated buyer is briefly unavailable")
        }
    }
}

/// Sleeps only when there is something to wait for, so instant buyers answer without a timer.
async fn wait(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

/// Holds the request open. hyper drops this future when the client closes the connection, which ends the
/// hang; the 60 s cap ends it for clients that never do.
async fn hang(shared: &Shared) -> Answer {
    let _held = HangGuard::enter(&shared.hanging);
    tokio::time::sleep(MAX_WAIT).await;
    error(StatusCode::GATEWAY_TIMEOUT, "sim_hang", "simulated buyer held the request for 60 s")
}

/// Counts a hang for as long as its future lives, however it ends.
struct HangGuard<'a>(&'a AtomicU64);

impl<'a> HangGuard<'a> {
    fn enter(gauge: &'a AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        HangGuard(gauge)
    }
}

impl Drop for HangGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn bid(shared: &Shared, price: Money) -> Answer {
    let number = shared.bids.fetch_add(1, Ordering::Relaxed) + 1;
    json(StatusCode::OK, &json!({"bid": price.to_string(), "bid_id": format!("b{number}")}))
}

/// Alternates the two no-bid forms so the engine's parser sees both.
fn no_bid(shared: &Shared) -> Answer {
    if shared.no_bids.fetch_add(1, Ordering::Relaxed).is_multiple_of(2) {
        with_status(StatusCode::NO_CONTENT, Full::default())
    } else {
        json(StatusCode::OK, &json!({"bid": null}))
    }
}

fn garbage() -> Answer {
    let mut answer = with_status(StatusCode::OK, Full::new(Bytes::from_static(b"<html><body>oops</body></html>")));
    answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/html"));
    answer
}

fn raw(reply: &RawReply) -> Answer {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    with_json_type(with_status(status, Full::new(Bytes::from(reply.body.clone()))))
}

/// An error in the contract's shape: `{"error": {"code": …, "message": …}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    json(status, &json!({"error": {"code": code, "message": message}}))
}

fn json(status: StatusCode, body: &Value) -> Answer {
    with_json_type(with_status(status, Full::new(Bytes::from(body.to_string()))))
}

fn with_status(status: StatusCode, body: Full<Bytes>) -> Answer {
    let mut answer = Response::new(body);
    *answer.status_mut() = status;
    answer
}

fn with_json_type(mut answer: Answer) -> Answer {
    answer.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    answer
}
