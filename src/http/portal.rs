//! Money views shared by the portals and the operator: statements, and the seller portal (API.md sections 2
//! and 6). A seller sees its own figures and never a buyer's identity. The work is in [`crate::ops`].

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::json;

use super::admin::period;
use super::body::{bearer, idempotency_key, read_object, Envelope};
use super::error::ApiError;
use super::query::Query;
use super::{json_response, HttpResponse};
use crate::config::Seller;
use crate::engine::Engine;
use crate::ledger::seller_account;
use crate::ops;

/// The statement of one account over the query's `[from, to)`.
pub fn account_statement(engine: &Engine, account: &str, query: &Query) -> Result<HttpResponse, ApiError> {
    let (from, to) = period(query)?;
    let body = ops::books::statement(engine, account, from, to);
    Ok(json_response(StatusCode::OK, &serde_json::to_value(body).expect("statements serialize")))
}

/// The seller whose api key the request carries.
pub fn authenticate_seller(engine: &Engine, request: &Request<Incoming>) -> Result<std::sync::Arc<Seller>, ApiError> {
    let config = engine.config();
    bearer(request.headers()).and_then(|key| config.seller_by_key(key)).cloned().ok_or_else(ApiError::unauthorized)
}

/// `GET /v1/seller/balance`.
pub fn seller_balance(engine: &Engine, seller: &Seller) -> HttpResponse {
    let balance = ops::books::balance(engine, &seller_account(&seller.id));
    json_response(StatusCode::OK, &json!({"seller": seller.id, "balance": balance}))
}

/// `GET /v1/seller/returns?since=`: every return filed on this seller's leads, newest first, without the
/// buyer.
pub fn seller_returns(engine: &Engine, seller: &Seller, query: &Query) -> Result<HttpResponse, ApiError> {
    let since = query.time("since")?;
    let returns = ops::returns::of_seller(engine, &seller.id, since);
    Ok(json_response(StatusCode::OK, &json!({ "returns": returns })))
}

/// `POST /admin/sellers/{id}/payouts` `{"amount", "reference"}` → 201 `{"payout_id", "balance"}`, once on disk;
/// more than the seller is owed is 409 `insufficient_balance` and records nothing. An `Idempotency-Key` works
/// as on a deposit.
pub async fn payout(engine: &Engine, request: Request<Incoming>, seller_id: &str) -> Result<HttpResponse, ApiError> {
    let config = engine.config();
    config.seller(seller_id).ok_or_else(|| ApiError::not_found("seller"))?;
    let key = idempotency_key(request.headers())?;
    let envelope = Envelope(read_object(request, &config.server).await?);
    let amount = envelope.optional_money("amount")?.ok_or_else(|| ApiError::missing_field("amount"))?;
    let reference = envelope.optional_str("reference")?.map(str::to_owned);
    let moved = ops::books::payout(engine, seller_id, amount, reference, key).await?;
    Ok(super::admin::moved_response("payout_id", &moved))
}
