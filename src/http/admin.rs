//! The operator API (API.md section 5) and the unauthenticated health and metrics endpoints.

use chrono::{DateTime, Datelike, Utc};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::body::{bearer, read_object, Envelope};
use super::error::ApiError;
use super::query::Query;
use super::render::{admin_return_object, buyer_money};
use super::{json_response, HttpResponse};
use crate::buyers::{BuyerState, PausedBy};
use crate::config::Buyer;
use crate::domain::returns::ReturnStatus;
use crate::engine::Engine;
use crate::ids::new_id;
use crate::ledger::Deposit;
use crate::time::rfc3339;

/// `GET /healthz`.
pub fn healthz() -> HttpResponse {
    json_response(StatusCode::OK, &json!({"status": "ok"}))
}

/// `GET /metrics`, Prometheus text.
pub fn metrics(engine: &Engine) -> HttpResponse {
    let mut response = Response::new(engine.metrics.render().into());
    response.headers_mut().insert(CONTENT_TYPE, "text/plain; version=0.0.4".parse().expect("static header value"));
    response
}

/// Refuses a request without the admin token.
pub fn authorize(engine: &Engine, request: &Request<Incoming>) -> Result<(), ApiError> {
    let config = engine.config();
    match bearer(request.headers()) {
        // Compared by digest in constant time, never as text: see `config::keys`.
        Some(token) if config.server.admin_token.matches(token) => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// `GET /admin/pings/{ping_id}`: the audit trail of a recent auction (made on any node, in cluster mode).
pub async fn ping_audit(engine: &Engine, ping_id: &str) -> Result<HttpResponse, ApiError> {
    let trail = engine.audit_trail(ping_id).await?.ok_or_else(|| ApiError::not_found("ping"))?;
    Ok(json_response(StatusCode::OK, &trail))
}

/// `GET /admin/leads/{lead_id}`: the delivery record of a sold lead, from the books, so it outlives the
/// audit ring and restarts; its terms are the ones recorded when the lead was sold.
pub fn delivery_record(engine: &Engine, lead_id: &str) -> Result<HttpResponse, ApiError> {
    let record = engine.ledger.read(|books| {
        let sold = books.lead(lead_id)?;
        let sale = &sold.sale;
        let terms = books.terms(sale.terms_id).expect("the books check that a sale's terms exist");
        let filed = sold.return_id.as_ref().map(|id| admin_return_object(&books.returns[id]));
        Some(json!({
            "lead_id": sale.lead_id,
            "ping_id": sale.ping_id,
            "campaign": sale.campaign,
            "seller": sale.seller,
            "source": sale.source,
            "buyer": sale.buyer,
            "price": sale.price,
            "payout": sale.payout,
            "delivered_at": rfc3339(sale.at),
            "config_revision": terms.config_revision,
            "terms": terms.terms,
            "lead": sale.lead,
            "return": filed,
        }))
    });
    Ok(json_response(StatusCode::OK, &record.ok_or_else(|| ApiError::not_found("lead"))?))
}

/// `GET /admin/config`: which config is in force.
pub fn config(engine: &Engine) -> HttpResponse {
    let config = engine.config();
    json_response(
        StatusCode::OK,
        &json!({
            "revision": config.revision,
            "loaded_at": rfc3339(config.loaded_at),
            "sellers": config.sellers.len(),
            "campaigns": config.campaigns.len(),
            "buyers": config.buyers.len(),
        }),
    )
}

/// `POST /admin/reload` (and `SIGHUP`): the config file swapped in whole, or every problem with the running
/// config left in force.
pub async fn reload(engine: &Engine) -> Result<HttpResponse, ApiError> {
    let config = engine.reload().map_err(|error| ApiError::invalid_config(error.to_string()))?;
    // Cluster mode: every other node re-reads its own file within the next quarter second.
    if let Some(redis) = engine.coordinator.redis() {
        let _ = redis.ensure_buyers(&engine.roster(), &engine.ledger).await;
        if redis.announce_reload().await.is_err() {
            tracing::warn!("reloaded here, but Redis could not tell the other nodes; reload them one by one");
        }
    }
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "status": "reloaded",
            "revision": config.revision,
            "sellers": config.sellers.len(),
            "campaigns": config.campaigns.len(),
            "buyers": config.buyers.len(),
        }),
    ))
}

/// `GET /admin/buyers`.
pub async fn buyers(engine: &Engine) -> Result<HttpResponse, ApiError> {
    let roster = engine.roster();
    let mut buyers = Vec::with_capacity(roster.config.buyers.len());
    for (buyer, state) in roster.config.buyers.iter().zip(&roster.states) {
        buyers.push(buyer_object(engine, buyer, state).await?);
    }
    Ok(json_response(StatusCode::OK, &json!({ "buyers": buyers })))
}

/// `GET /admin/buyers/{id}`.
pub async fn buyer(engine: &Engine, id: &str) -> Result<HttpResponse, ApiError> {
    let roster = engine.roster();
    let (buyer, state) = roster.buyer(id).ok_or_else(|| ApiError::not_found("buyer"))?;
    Ok(json_response(StatusCode::OK, &buyer_object(engine, buyer, state).await?))
}

/// `POST /admin/buyers/{id}/pause` and `…/resume`. The body may be empty or `{}`.
pub async fn pause_or_resume(
    engine: &Engine,
    request: Request<Incoming>,
    id: &str,
    pause: bool,
) -> Result<HttpResponse, ApiError> {
    let roster = engine.roster();
    let (buyer, state) = roster.buyer(id).ok_or_else(|| ApiError::not_found("buyer"))?;
    read_object(request, &roster.config.server).await?;
    let (config, standing) = (std::sync::Arc::clone(buyer), std::sync::Arc::clone(state));
    // Made in the ledger's order, after every earlier pause or resume (of any node) applied.
    let change = move || {
        if pause {
            standing.pause(&config, PausedBy::Operator);
        } else {
            standing.resume();
        }
        Ok::<_, ApiError>(standing.api_standing())
    };
    engine.ledger.record_standing(&buyer.id, change).await?;
    Ok(json_response(StatusCode::OK, &buyer_object(engine, buyer, state).await?))
}

/// `POST /admin/buyers/{id}/deposits` `{"amount", "reference"}` → 201 `{"deposit_id", "balance"}`.
pub async fn deposit(engine: &Engine, request: Request<Incoming>, id: &str) -> Result<HttpResponse, ApiError> {
    let roster = engine.roster();
    let (buyer, _) = roster.buyer(id).ok_or_else(|| ApiError::not_found("buyer"))?;
    let envelope = Envelope(read_object(request, &roster.config.server).await?);
    let amount = envelope.optional_money("amount")?.ok_or_else(|| ApiError::missing_field("amount"))?;
    if amount.is_zero() {
        return Err(ApiError::invalid_field("amount must be more than 0.00"));
    }
    let reference = envelope.optional_str("reference")?.map(str::to_owned);
    let deposit = Deposit { deposit_id: new_id("d_"), buyer: buyer.id.clone(), amount, reference, at: Utc::now() };
    let deposit_id = deposit.deposit_id.clone();
    let balance = engine.ledger.record_deposit(deposit).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"deposit_id": deposit_id, "balance": balance})))
}

/// The operator's buyer object (API.md section 5): state, money, caps and budgets used and left, health.
async fn buyer_object(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Result<Value, ApiError> {
    let usage = engine.usage(buyer, state).await?;
    let standing = state.standing(buyer, Instant::now());
    let now = Utc::now();
    let (caps, budgets) = crate::capacity::view(buyer, now, &usage);
    let mut object = json!({
        "id": buyer.id,
        "state": standing.state(),
        "state_reason": standing.reason(),
        "caps": caps,
        "budgets": budgets,
        "health": state.health.view(&buyer.sla, Instant::now()),
    });
    object.as_object_mut().expect("an object").extend(buyer_money(engine, buyer, state, &usage));
    if let Some(ramp) = &buyer.ramp {
        let today = now.with_timezone(&crate::capacity::timezone(buyer)).date_naive();
        object["ramp"] = json!({
            "start": ramp.start.to_string(),
            "daily_start": ramp.daily_start,
            "daily_step": ramp.daily_step,
            "today_limit": crate::capacity::daily_limit(buyer, today),
        });
    }
    Ok(object)
}

/// `GET /admin/returns?status=`: every return (of one status), newest first, with its buyer.
pub fn returns(engine: &Engine, query: &Query) -> Result<HttpResponse, ApiError> {
    let status = match query.get("status") {
        None => None,
        Some(wanted) => Some(
            [ReturnStatus::Approved, ReturnStatus::PendingReview, ReturnStatus::Rejected]
                .into_iter()
                .find(|status| status.label() == wanted)
                .ok_or_else(|| ApiError::invalid_field("status must be approved, pending_review or rejected"))?,
        ),
    };
    let returns: Vec<Value> = engine.ledger.read(|books| {
        books
            .returns_newest_first()
            .filter(|filed| status.is_none_or(|status| filed.status == status))
            .map(admin_return_object)
            .collect()
    });
    Ok(json_response(StatusCode::OK, &json!({ "returns": returns })))
}

/// `POST /admin/returns/{id}/approve` and `…/reject` `{"note"}` → 200 with the return, once on disk.
pub async fn decide_return(
    engine: &Engine,
    request: Request<Incoming>,
    return_id: &str,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let envelope = Envelope(read_object(request, &engine.config().server).await?);
    let note = envelope.optional_str("note")?.map(str::to_owned);
    let decided = engine.ledger.decide_return(return_id, approve, note, Utc::now()).await?;
    Ok(json_response(StatusCode::OK, &admin_return_object(&decided)))
}

/// `GET /admin/ledger/accounts`.
pub fn accounts(engine: &Engine) -> HttpResponse {
    let accounts: Vec<Value> =
        engine.ledger.balances().into_iter().map(|(id, balance)| json!({"id": id, "balance": balance})).collect();
    json_response(StatusCode::OK, &json!({ "accounts": accounts }))
}

/// `GET /admin/ledger/transactions?account=`: every transaction (touching one account), in time order.
pub fn transactions(engine: &Engine, query: &Query) -> HttpResponse {
    let account = query.get("account");
    let transactions: Vec<Value> = engine.ledger.read(|books| {
        books
            .transactions
            .iter()
            .filter(|t| account.is_none_or(|account| t.postings.iter().any(|(a, _)| a == account)))
            .map(|t| {
                let postings: Vec<Value> =
                    t.postings.iter().map(|(account, amount)| json!({"account": account, "amount": amount})).collect();
                json!({
                    "transaction_id": t.id,
                    "at": rfc3339(t.at),
                    "kind": t.kind.label(),
                    "lead_id": t.lead_id,
                    "postings": postings,
                })
            })
            .collect()
    });
    json_response(StatusCode::OK, &json!({ "transactions": transactions }))
}

/// `GET /admin/report?from=&to=`: `to` defaults to now, `from` to the first day of the current month (UTC).
pub fn report(engine: &Engine, query: &Query) -> Result<HttpResponse, ApiError> {
    let (from, to) = period(query)?;
    let report = engine.ledger.read(|books| crate::ledger::report::report(books, from, to));
    let mut body = serde_json::to_value(&report).expect("reports serialize");
    body["from"] = json!(rfc3339(from));
    body["to"] = json!(rfc3339(to));
    Ok(json_response(StatusCode::OK, &body))
}

/// A `[from, to)` period from the query, with the defaults of API.md section 6.
pub fn period(query: &Query) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = query.time("to")?.unwrap_or_else(Utc::now);
    let from = match query.time("from")? {
        Some(from) => from,
        None => {
            let first = Utc::now().date_naive().with_day(1).expect("every month has a first day");
            first.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
        }
    };
    if from > to {
        return Err(ApiError::invalid_field("from must not be after to"));
    }
    Ok((from, to))
}
