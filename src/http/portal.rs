//! Money views shared by the portals and the operator: statements, and the seller portal (API.md sections 2
//! and 6). A seller sees its own figures and never a buyer's identity.

use chrono::Utc;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};

use super::admin::period;
use super::body::{bearer, read_object, Envelope};
use super::error::ApiError;
use super::query::Query;
use super::{json_response, HttpResponse};
use crate::config::Seller;
use crate::engine::Engine;
use crate::ids::new_id;
use crate::ledger::statement::statement;
use crate::ledger::{seller_account, LedgerError, Payout};
use crate::time::rfc3339;

/// The statement of one account over the query's `[from, to)`.
pub fn account_statement(engine: &Engine, account: &str, query: &Query) -> Result<HttpResponse, ApiError> {
    let (from, to) = period(query)?;
    let body = engine.ledger.read(|books| statement(books, account, from, to));
    Ok(json_response(StatusCode::OK, &serde_json::to_value(body).expect("statements serialize")))
}

/// The seller whose api key the request carries.
pub fn authenticate_seller(engine: &Engine, request: &Request<Incoming>) -> Result<std::sync::Arc<Seller>, ApiError> {
    let config = engine.config();
    bearer(request.headers()).and_then(|key| config.seller_by_key(key)).cloned().ok_or_else(ApiError::unauthorized)
}

/// `GET /v1/seller/balance`.
pub fn seller_balance(engine: &Engine, seller: &Seller) -> HttpResponse {
    let balance = engine.ledger.balance(&seller_account(&seller.id));
    json_response(StatusCode::OK, &json!({"seller": seller.id, "balance": balance}))
}

/// `GET /v1/seller/returns?since=`: every return filed on this seller's leads, newest first, without the
/// buyer.
pub fn seller_returns(engine: &Engine, seller: &Seller, query: &Query) -> Result<HttpResponse, ApiError> {
    let since = query.time("since")?;
    let returns: Vec<Value> = engine.ledger.read(|books| {
        books
            .returns_newest_first()
            .take_while(|filed| since.is_none_or(|since| filed.created_at >= since))
            .filter_map(|filed| {
                let sale = &books.leads[&filed.lead_id].sale;
                (sale.seller == seller.id).then(|| {
                    json!({
                        "return_id": filed.return_id,
                        "lead_id": filed.lead_id,
                        "ping_id": sale.ping_id,
                        "source": sale.source,
                        "campaign": sale.campaign,
                        "reason": filed.reason,
                        "status": filed.status.label(),
                        "clawback": filed.clawback,
                        "created_at": rfc3339(filed.created_at),
                    })
                })
            })
            .collect()
    });
    Ok(json_response(StatusCode::OK, &json!({ "returns": returns })))
}

/// `POST /admin/sellers/{id}/payouts` `{"amount", "reference"}` → 201 `{"payout_id", "balance"}`, once on disk;
/// more than the seller is owed is 409 `insufficient_balance` and records nothing.
pub async fn payout(engine: &Engine, request: Request<Incoming>, seller_id: &str) -> Result<HttpResponse, ApiError> {
    let config = engine.config();
    let seller = config.seller(seller_id).ok_or_else(|| ApiError::not_found("seller"))?;
    let envelope = Envelope(read_object(request, &config.server).await?);
    let amount = envelope.optional_money("amount")?.ok_or_else(|| ApiError::missing_field("amount"))?;
    if amount.is_zero() {
        return Err(ApiError::invalid_field("amount must be more than 0.00"));
    }
    let reference = envelope.optional_str("reference")?.map(str::to_owned);
    let payout = Payout { payout_id: new_id("po_"), seller: seller.id.clone(), amount, reference, at: Utc::now() };
    let payout_id = payout.payout_id.clone();
    match engine.ledger.record_payout(payout).await {
        Ok(balance) => Ok(json_response(StatusCode::CREATED, &json!({"payout_id": payout_id, "balance": balance}))),
        Err(LedgerError::InsufficientBalance { owed }) => Err(ApiError::insufficient_balance(format!(
            "seller {} is owed {owed}; a payout of {amount} is more than that",
            seller.id
        ))),
        Err(other) => Err(other.into()),
    }
}
