//! The buyer portal (API.md section 4): a buyer's balance, leads, return policy and returns. The work is in
//! [`crate::ops`], shared with the portal's pages; this parses and renders.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::body::{bearer, read_object, Envelope};
use super::error::ApiError;
use super::query::Query;
use super::{json_response, HttpResponse};
use crate::buyers::BuyerState;
use crate::config::Buyer;
use crate::engine::Engine;
use crate::ops;

/// The buyer whose api key the request carries, with its running state.
pub fn authenticate(engine: &Engine, request: &Request<Incoming>) -> Result<(Arc<Buyer>, Arc<BuyerState>), ApiError> {
    let roster = engine.roster();
    let buyer =
        bearer(request.headers()).and_then(|key| roster.config.buyer_by_key(key)).ok_or_else(ApiError::unauthorized)?;
    let (buyer, state) = roster.buyer(&buyer.id).expect("a config's buyer is in its roster");
    Ok((Arc::clone(buyer), Arc::clone(state)))
}

/// `GET /v1/buyer/balance`.
pub async fn balance(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Result<HttpResponse, ApiError> {
    let mut object = ops::buyers::money(engine, buyer, state).await?;
    object.insert("buyer".into(), json!(buyer.id));
    Ok(json_response(StatusCode::OK, &Value::Object(object)))
}

/// `GET /v1/buyer/leads?since=&limit=`: its leads, newest first.
pub fn leads(engine: &Engine, buyer: &Buyer, query: &Query) -> Result<HttpResponse, ApiError> {
    let since = query.time("since")?;
    let limit = query.limit("limit", 100, 1000)?;
    let leads = ops::returns::leads_of_buyer(engine, buyer, since, limit);
    Ok(json_response(StatusCode::OK, &json!({ "leads": leads })))
}

/// `GET /v1/buyer/status`: whether it receives leads and how much of each cap is left.
pub async fn status(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Result<HttpResponse, ApiError> {
    Ok(json_response(StatusCode::OK, &ops::buyers::status(engine, buyer, state).await?))
}

/// `POST /v1/buyer/pause` and `…/resume` (optional body `{"note"}`): the buyer stops or restarts its own
/// flow of leads.
pub async fn pause_or_resume(
    engine: &Engine,
    request: Request<Incoming>,
    buyer: &Arc<Buyer>,
    state: &Arc<BuyerState>,
    pause: bool,
) -> Result<HttpResponse, ApiError> {
    let envelope = Envelope(read_object(request, &engine.config().server).await?);
    envelope.optional_str("note")?;
    Ok(json_response(StatusCode::OK, &ops::buyers::self_pause(engine, buyer, state, pause).await?))
}

/// `GET /v1/buyer/return-policy`.
pub fn return_policy(buyer: &Buyer) -> HttpResponse {
    let policy = &buyer.returns;
    json_response(
        StatusCode::OK,
        &json!({
            "enabled": policy.enabled,
            "window_days": policy.window_days,
            "reasons": policy.reasons,
            "rate_cap_percent": policy.rate_cap_percent.to_string(),
            "policy_note": policy.policy_note,
        }),
    )
}

/// `POST /v1/returns` `{"lead_id", "reason", "note"}` → 201 with the return.
pub async fn file_return(engine: &Engine, request: Request<Incoming>, buyer: &Buyer) -> Result<HttpResponse, ApiError> {
    let envelope = Envelope(read_object(request, &engine.config().server).await?);
    let lead_id = envelope.required_str("lead_id")?.to_owned();
    let reason = envelope.required_str("reason")?;
    let note = envelope.optional_str("note")?;
    let filed = ops::returns::file(engine, buyer, lead_id, reason, note).await?;
    Ok(json_response(StatusCode::CREATED, &ops::returns::buyer_json(&filed)))
}

/// `GET /v1/buyer/returns`: its returns, newest first.
pub fn returns(engine: &Engine, buyer: &Buyer) -> HttpResponse {
    let returns: Vec<Value> = ops::returns::of_buyer(engine, &buyer.id).iter().map(ops::returns::buyer_json).collect();
    json_response(StatusCode::OK, &json!({ "returns": returns }))
}
