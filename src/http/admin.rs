//! The operator API (API.md section 5) and the unauthenticated health and metrics endpoints. The work is in
//! [`crate::ops`], shared with the console's pages; this parses and renders.

use chrono::{DateTime, Utc};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};

use super::body::{bearer, idempotency_key, read_object, Envelope};
use super::error::ApiError;
use super::query::Query;
use super::{json_response, HttpResponse};
use crate::engine::Engine;
use crate::ledger::Moved;
use crate::ops;
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
    Ok(json_response(StatusCode::OK, &ops::books::auction(engine, ping_id).await?))
}

/// `GET /admin/leads/{lead_id}`: the delivery record of a sold lead.
pub fn delivery_record(engine: &Engine, lead_id: &str) -> Result<HttpResponse, ApiError> {
    Ok(json_response(StatusCode::OK, &ops::books::delivery_record(engine, lead_id)?))
}

/// `GET /admin/config`: which config is in force.
pub fn config(engine: &Engine) -> HttpResponse {
    json_response(StatusCode::OK, &ops::books::config(engine))
}

/// `POST /admin/reload` (and `SIGHUP`): the config file swapped in whole, or every problem with the running
/// config left in force.
pub async fn reload(engine: &Engine) -> Result<HttpResponse, ApiError> {
    Ok(json_response(StatusCode::OK, &ops::books::reload(engine).await?))
}

/// `GET /admin/buyers`.
pub async fn buyers(engine: &Engine) -> Result<HttpResponse, ApiError> {
    Ok(json_response(StatusCode::OK, &json!({ "buyers": ops::buyers::all(engine).await? })))
}

/// `GET /admin/buyers/{id}`.
pub async fn buyer(engine: &Engine, id: &str) -> Result<HttpResponse, ApiError> {
    Ok(json_response(StatusCode::OK, &ops::buyers::one(engine, id).await?))
}

/// `POST /admin/buyers/{id}/pause` and `…/resume`. The body may be empty or `{}`.
pub async fn pause_or_resume(
    engine: &Engine,
    request: Request<Incoming>,
    id: &str,
    pause: bool,
) -> Result<HttpResponse, ApiError> {
    ops::buyers::find(engine, id)?;
    read_object(request, &engine.config().server).await?;
    Ok(json_response(StatusCode::OK, &ops::buyers::operator_pause(engine, id, pause).await?))
}

/// `POST /admin/buyers/{id}/deposits` `{"amount", "reference"}` → 201 `{"deposit_id", "balance"}`; with an
/// `Idempotency-Key`, a repeat is answered with the first deposit (see [`moved_response`]).
pub async fn deposit(engine: &Engine, request: Request<Incoming>, id: &str) -> Result<HttpResponse, ApiError> {
    ops::buyers::find(engine, id)?;
    let key = idempotency_key(request.headers())?;
    let envelope = Envelope(read_object(request, &engine.config().server).await?);
    let amount = envelope.optional_money("amount")?.ok_or_else(|| ApiError::missing_field("amount"))?;
    let reference = envelope.optional_str("reference")?.map(str::to_owned);
    let moved = ops::buyers::deposit(engine, id, amount, reference, key).await?;
    Ok(moved_response("deposit_id", &moved))
}

/// 201 with a deposit's or payout's id (under `id_field`) and the balance. A repeat of a keyed request gets
/// the first one's id, the balance now and `Idempotent-Replayed: true`, so a client can tell nothing moved.
pub fn moved_response(id_field: &str, moved: &Moved) -> HttpResponse {
    let mut response = json_response(StatusCode::CREATED, &json!({id_field: moved.id, "balance": moved.balance}));
    if moved.replayed {
        response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    response
}

/// `GET /admin/returns?status=`: every return (of one status), newest first, with its buyer.
pub fn returns(engine: &Engine, query: &Query) -> Result<HttpResponse, ApiError> {
    let status = query.get("status").map(ops::returns::parse_status).transpose()?;
    let returns: Vec<Value> = ops::returns::all(engine, status).iter().map(ops::returns::operator_json).collect();
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
    let decided = ops::returns::decide(engine, return_id, approve, note).await?;
    Ok(json_response(StatusCode::OK, &ops::returns::operator_json(&decided)))
}

/// `GET /admin/ledger/accounts`.
pub fn accounts(engine: &Engine) -> HttpResponse {
    let accounts: Vec<Value> =
        ops::books::accounts(engine).into_iter().map(|(id, balance)| json!({"id": id, "balance": balance})).collect();
    json_response(StatusCode::OK, &json!({ "accounts": accounts }))
}

/// `GET /admin/ledger/transactions?account=`: every transaction (touching one account), in time order.
pub fn transactions(engine: &Engine, query: &Query) -> HttpResponse {
    let transactions = ops::books::transactions(engine, query.get("account"));
    json_response(StatusCode::OK, &json!({ "transactions": transactions }))
}

/// `GET /admin/report?from=&to=`: `to` defaults to now, `from` to the first day of the current month (UTC).
pub fn report(engine: &Engine, query: &Query) -> Result<HttpResponse, ApiError> {
    let (from, to) = period(query)?;
    let report = ops::books::report(engine, from, to);
    let mut body = serde_json::to_value(&report).expect("reports serialize");
    body["from"] = json!(rfc3339(from));
    body["to"] = json!(rfc3339(to));
    Ok(json_response(StatusCode::OK, &body))
}

/// A `[from, to)` period from the query, with the defaults of API.md section 6.
pub fn period(query: &Query) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let to = query.time("to")?;
    Ok(ops::period(query.time("from")?, to)?)
}
