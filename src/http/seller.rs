//! The seller API (API.md section 2): `POST /v1/ping`, `POST /v1/post`, `POST /v1/leads`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::body::{bearer, read_object, Envelope};
use super::error::ApiError;
use super::{json_response, HttpResponse};
use crate::auction::held::PostResult;
use crate::config::Seller;
use crate::engine::{Engine, PingAnswer, PingRequest};
use crate::shedding::AuctionSlot;
use crate::time::rfc3339;

/// `POST /v1/ping`.
pub async fn ping(engine: &Engine, request: Request<Incoming>, received: Instant) -> Result<HttpResponse, ApiError> {
    let (seller, mut envelope) = authenticated_envelope(engine, request, Pinging::Yes).await?;
    let ping = ping_request(seller, &mut envelope, received)?;
    let _slot = auction_slot(engine, &ping.seller)?;
    let mut notices = engine.notices.outbox();
    let answer = engine.ping(ping, &mut notices).await?;
    // The notices leave once this answer is written, never before.
    Ok(notices.hold_until_sent(json_response(StatusCode::OK, &render_ping(&answer))))
}

/// `POST /v1/post`.
pub async fn post(engine: &Arc<Engine>, request: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let (seller, mut envelope) = authenticated_envelope(engine, request, Pinging::No).await?;
    let ping_id = envelope.required_str("ping_id")?.to_owned();
    let lead = envelope.take_object("lead")?;
    let min_payout = envelope.optional_money("min_payout")?;
    let result = engine.post(&seller, &ping_id, &lead, min_payout).await?;
    Ok(json_response(StatusCode::OK, &render_post(&ping_id, &result)))
}

/// `POST /v1/leads`: ping and post in one call.
pub async fn direct_post(
    engine: &Arc<Engine>,
    request: Request<Incoming>,
    received: Instant,
) -> Result<HttpResponse, ApiError> {
    let (seller, mut envelope) = authenticated_envelope(engine, request, Pinging::Yes).await?;
    let min_payout = envelope.optional_money("min_payout")?;
    let ping = ping_request(seller, &mut envelope, received)?;
    let _slot = auction_slot(engine, &ping.seller)?;
    let mut notices = engine.notices.outbox();
    // The notices leave once the whole answer is written, an error's included: the auction ran either way.
    let answer = match engine.direct_post(ping, min_payout, &mut notices).await {
        Ok((ping_id, result)) => json_response(StatusCode::OK, &render_post(&ping_id, &result)),
        Err(error) => ApiError::from(error).into_response(),
    };
    Ok(notices.hold_until_sent(answer))
}

/// Whether a call runs an auction, and so counts against the seller's `max_pings_per_second`.
#[derive(PartialEq, Eq)]
enum Pinging {
    Yes,
    No,
}

async fn authenticated_envelope(
    engine: &Engine,
    request: Request<Incoming>,
    pinging: Pinging,
) -> Result<(Arc<Seller>, Envelope), ApiError> {
    let config = engine.config();
    let seller = bearer(request.headers()).and_then(|key| config.seller_by_key(key)).cloned();
    let seller = seller.ok_or_else(ApiError::unauthorized)?;
    // Before the body is read: a seller over its rate costs as little as possible.
    if pinging == Pinging::Yes {
        admit_ping(engine, &seller).await?;
    }
    let body = read_object(request, &config.server).await?;
    Ok((seller, Envelope(body)))
}

/// Refuses a ping over its seller's `max_pings_per_second` with 429 `rate_limited` and `Retry-After`. In
/// cluster mode the limit holds for the whole exchange (the coordinator shares each seller's budget).
async fn admit_ping(engine: &Engine, seller: &Seller) -> Result<(), ApiError> {
    let admitted = match (engine.coordinator.redis(), seller.max_pings_per_second) {
        (Some(redis), Some(per_second)) => redis.admit(&seller.id, per_second).await,
        _ => engine.ping_rates.admit(seller, Instant::now()),
    };
    admitted.map_err(|limited| {
        engine.metrics.inc("gavel_requests_refused_total", &[("seller", &seller.id), ("reason", "rate_limited")]);
        ApiError::rate_limited(limited.per_second, limited.retry_after_seconds())
    })
}

/// A slot for one auction, or 503 `overloaded` when the engine already runs as many as it may, or 503
/// `unavailable` when (cluster mode) a store the sale will need cannot be reached: the request is refused
/// before it gets a ping id, so nothing of it is recorded.
fn auction_slot<'e>(engine: &'e Engine, seller: &Seller) -> Result<AuctionSlot<'e>, ApiError> {
    if let Some(reason) = crate::cluster::unready_reason(engine) {
        engine.metrics.inc("gavel_requests_refused_total", &[("seller", &seller.id), ("reason", "unavailable")]);
        return Err(ApiError::unavailable(if reason.starts_with("postgres") { "PostgreSQL" } else { "Redis" }));
    }
    engine.auction_slots.try_take(engine.config().server.max_auctions_in_flight).ok_or_else(|| {
        engine.metrics.inc("gavel_requests_refused_total", &[("seller", &seller.id), ("reason", "overloaded")]);
        ApiError::overloaded()
    })
}

fn ping_request(seller: Arc<Seller>, envelope: &mut Envelope, received: Instant) -> Result<PingRequest, ApiError> {
    let campaign = envelope.required_str("campaign")?.to_owned();
    let deadline_ms = envelope.optional_positive_int("deadline_ms")?;
    let test = envelope.flag("test")?;
    let source = envelope.optional_str("source")?.map(valid_source).transpose()?;
    let lead = envelope.take_object("lead")?;
    Ok(PingRequest { seller, campaign, lead, deadline_ms, test, source, received })
}

fn valid_source(source: &str) -> Result<String, ApiError> {
    let valid = (1..=64).contains(&source.len())
        && source.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if valid {
        Ok(source.to_owned())
    } else {
        Err(ApiError::invalid_field("source must be 1 to 64 characters of A-Z, a-z, 0-9, _, . and -"))
    }
}

fn render_ping(answer: &PingAnswer) -> Value {
    match &answer.quote {
        Ok(quote) => json!({
            "ping_id": answer.ping_id,
            "status": "bid",
            "payout": quote.payout,
            "expires_at": rfc3339(quote.expires_at),
            "buyers_pinged": quote.buyers_pinged,
            "bids_received": quote.bids_received,
        }),
        Err(reason) => json!({"ping_id": answer.ping_id, "status": "no_bid", "reason": reason.as_str()}),
    }
}

fn render_post(ping_id: &str, result: &PostResult) -> Value {
    match result {
        PostResult::Sold { sales } => {
            let mut body = json!({
                "ping_id": ping_id,
                "status": "sold",
                "lead_id": sales[0].lead_id,
                "payout": sales.iter().map(|s| s.payout).sum::<crate::domain::money::Money>(),
            });
            if sales.len() > 1 {
                body["sales"] = sales.iter().map(|s| json!({"lead_id": s.lead_id, "payout": s.payout})).collect();
            }
            body
        }
        PostResult::Unsold { reason } => json!({"ping_id": ping_id, "status": "unsold", "reason": reason.as_str()}),
    }
}
