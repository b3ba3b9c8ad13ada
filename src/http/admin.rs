//! The operator API (API.md section 5) and the unauthenticated health and metrics endpoints.

use chrono::Utc;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::body::{bearer, read_object, Envelope};
use super::error::ApiError;
use super::{json_response, HttpResponse};
use crate::buyers::{BuyerState, PausedBy};
use crate::config::{Billing, Buyer};
use crate::engine::Engine;
use crate::ids::new_id;
use crate::ledger::Deposit;

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
        Some(token) if token == config.server.admin_token.expose() => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

/// `GET /admin/pings/{ping_id}`: the audit trail of a recent auction.
pub fn ping_audit(engine: &Engine, ping_id: &str) -> Result<HttpResponse, ApiError> {
    let audit = engine.audit.get(ping_id).ok_or_else(|| ApiError::not_found("ping"))?;
    Ok(json_response(StatusCode::OK, &audit.to_json()))
}

/// `GET /admin/buyers`.
pub fn buyers(engine: &Engine) -> HttpResponse {
    let roster = engine.roster();
    let buyers: Vec<Value> = roster
        .config
        .buyers
        .iter()
        .zip(&roster.states)
        .map(|(buyer, state)| buyer_object(engine, buyer, state))
        .collect();
    json_response(StatusCode::OK, &json!({ "buyers": buyers }))
}

/// `GET /admin/buyers/{id}`.
pub fn buyer(engine: &Engine, id: &str) -> Result<HttpResponse, ApiError> {
    let roster = engine.roster();
    let (buyer, state) = roster.buyer(id).ok_or_else(|| ApiError::not_found("buyer"))?;
    Ok(json_response(StatusCode::OK, &buyer_object(engine, buyer, state)))
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
    read_object(request, roster.config.server.max_body_bytes).await?;
    if pause {
        state.pause(buyer, PausedBy::Operator);
    } else {
        state.resume();
    }
    Ok(json_response(StatusCode::OK, &buyer_object(engine, buyer, state)))
}

/// `POST /admin/buyers/{id}/deposits` `{"amount", "reference"}` → 201 `{"deposit_id", "balance"}`.
pub async fn deposit(engine: &Engine, request: Request<Incoming>, id: &str) -> Result<HttpResponse, ApiError> {
    let roster = engine.roster();
    let (buyer, _) = roster.buyer(id).ok_or_else(|| ApiError::not_found("buyer"))?;
    let envelope = Envelope(read_object(request, roster.config.server.max_body_bytes).await?);
    let amount = envelope.optional_money("amount")?.ok_or_else(|| ApiError::missing_field("amount"))?;
    if amount.is_zero() {
        return Err(ApiError::invalid_field("amount must be more than 0.00"));
    }
    let reference = envelope.optional_str("reference")?.map(str::to_owned);
    let deposit = Deposit { deposit_id: new_id("d_"), buyer: buyer.id.clone(), amount, reference, at: Utc::now() };
    let deposit_id = deposit.deposit_id.clone();
    let balance = engine.ledger.record_deposit(deposit).await;
    Ok(json_response(StatusCode::CREATED, &json!({"deposit_id": deposit_id, "balance": balance})))
}

/// The operator's buyer object (API.md section 5): state, money, caps and budgets used and left, health.
fn buyer_object(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Value {
    let standing = state.standing(buyer, Instant::now());
    let now = Utc::now();
    let funds = state.funds(buyer, &engine.ledger);
    let (caps, budgets) = state.capacity.view(buyer, now);
    let mut object = json!({
        "id": buyer.id,
        "state": standing.state(),
        "state_reason": standing.reason(),
        "balance": engine.ledger.balance(&state.account),
        "available": funds - state.capacity.held_money(),
        "held": state.capacity.held_money(),
        "caps": caps,
        "budgets": budgets,
        "health": state.health.view(&buyer.sla, Instant::now()),
    });
    match buyer.billing {
        Billing::Prepaid => object["billing"] = json!("prepaid"),
        Billing::Invoice { credit_limit } => {
            object["billing"] = json!("invoice");
            object["credit_limit"] = json!(credit_limit);
        }
    }
    if let Some(ramp) = &buyer.ramp {
        let today = now.with_timezone(&crate::capacity::timezone(buyer)).date_naive();
        object["ramp"] = json!({
            "start": ramp.start.to_string(),
            "daily_start": ramp.daily_start,
            "daily_step": ramp.daily_step,
            "today_limit": crate::capacity::daily_limit(buyer, today),
        });
    }
    object
}
