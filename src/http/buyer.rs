//! The buyer portal (API.md section 4): a buyer's balance, leads, return policy and returns.

use std::sync::Arc;

use chrono::Utc;
use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::body::{bearer, read_object, Envelope};
use super::error::ApiError;
use super::query::Query;
use super::render::{buyer_money, return_object};
use super::{json_response, HttpResponse};
use crate::buyers::{BuyerState, PausedBy, PausedByOther, Standing};
use crate::config::{Buyer, KNOWN_RETURN_REASONS};
use crate::domain::returns::returnable_until;
use crate::engine::Engine;
use crate::ledger::ReturnRequest;
use crate::time::rfc3339;

/// Longest `note` on a return.
const MAX_NOTE_CHARS: usize = 1024;

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
    let usage = engine.usage(buyer, state).await?;
    let mut object = buyer_money(engine, buyer, state, &usage);
    object.insert("buyer".into(), json!(buyer.id));
    Ok(json_response(StatusCode::OK, &Value::Object(object)))
}

/// `GET /v1/buyer/leads?since=&limit=`: its leads, newest first.
pub fn leads(engine: &Engine, buyer: &Buyer, query: &Query) -> Result<HttpResponse, ApiError> {
    let since = query.time("since")?;
    let limit = query.limit("limit", 100, 1000)?;
    let leads: Vec<Value> = engine.ledger.read(|books| {
        let Some(ids) = books.leads_by_buyer.get(&buyer.id) else { return Vec::new() };
        ids.iter()
            .rev()
            .map(|id| &books.leads[id])
            .take_while(|lead| since.is_none_or(|since| lead.sale.at >= since))
            .take(limit)
            .map(|lead| {
                let status = lead.return_id.as_ref().map(|id| books.returns[id].status.label());
                json!({
                    "lead_id": lead.sale.lead_id,
                    "campaign": lead.sale.campaign,
                    "price": lead.sale.price,
                    "delivered_at": rfc3339(lead.sale.at),
                    "returnable_until": rfc3339(returnable_until(&buyer.returns, lead.sale.at)),
                    "return_status": status,
                })
            })
            .collect()
    });
    Ok(json_response(StatusCode::OK, &json!({ "leads": leads })))
}

/// `GET /v1/buyer/status`: whether it receives leads and how much of each cap is left.
pub async fn status(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Result<HttpResponse, ApiError> {
    let usage = engine.usage(buyer, state).await?;
    let standing = state.standing(buyer, Instant::now());
    let (caps, budgets) = crate::capacity::view(buyer, Utc::now(), &usage);
    Ok(json_response(
        StatusCode::OK,
        &json!({
            "buyer": buyer.id,
            "state": standing.state(),
            "state_reason": standing.reason(),
            "self_pause": buyer.self_pause,
            "caps": caps,
            "budgets": budgets,
        }),
    ))
}

/// `POST /v1/buyer/pause` and `…/resume` (optional body `{"note"}`): the buyer stops or restarts its own
/// flow of leads. It may lift only a pause it set itself; the change is journaled before the answer.
pub async fn pause_or_resume(
    engine: &Engine,
    request: Request<Incoming>,
    buyer: &Arc<Buyer>,
    state: &Arc<BuyerState>,
    pause: bool,
) -> Result<HttpResponse, ApiError> {
    let envelope = Envelope(read_object(request, &engine.config().server).await?);
    envelope.optional_str("note")?;
    if !buyer.self_pause {
        return Err(ApiError::forbidden(
            "this buyer's contract does not allow pausing or resuming itself (self_pause = false); ask the operator",
        ));
    }
    let (config, standing) = (Arc::clone(buyer), Arc::clone(state));
    // Made in the ledger's order, after every earlier pause or resume (of any node) applied.
    let change = move || {
        if pause {
            standing.pause(&config, PausedBy::Buyer);
        } else if let Err(PausedByOther(by)) = standing.resume_by_buyer(&config, Instant::now()) {
            let who = match by {
                Standing::Paused(PausedBy::Operator) => "the operator",
                Standing::Paused(PausedBy::Config) => "the config file",
                _ => "the SLA breaker (sla_paused or probing); it resumes by itself once the endpoint is healthy",
            };
            return Err(ApiError::forbidden(format!(
                "this buyer was paused by {who}; only a pause it set itself can be resumed here"
            )));
        }
        Ok(standing.api_standing())
    };
    engine.ledger.record_standing(&buyer.id, change).await?;
    status(engine, buyer, state).await
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
    if !KNOWN_RETURN_REASONS.contains(&reason) {
        return Err(ApiError::invalid_field(format!(
            "reason {reason:?} is not a known return reason; use one of {}",
            KNOWN_RETURN_REASONS.join(", ")
        )));
    }
    let note = envelope.optional_str("note")?;
    if note.is_some_and(|note| note.chars().count() > MAX_NOTE_CHARS) {
        return Err(ApiError::invalid_field(format!("note must be at most {MAX_NOTE_CHARS} characters")));
    }
    let request = ReturnRequest { lead_id, reason: reason.to_owned(), note: note.map(str::to_owned) };
    let filed = engine.ledger.file_return(buyer, request, Utc::now()).await?;
    Ok(json_response(StatusCode::CREATED, &return_object(&filed)))
}

/// `GET /v1/buyer/returns`: its returns, newest first.
pub fn returns(engine: &Engine, buyer: &Buyer) -> HttpResponse {
    let returns: Vec<Value> = engine.ledger.read(|books| {
        books.returns_newest_first().filter(|filed| filed.buyer == buyer.id).map(return_object).collect()
    });
    json_response(StatusCode::OK, &json!({ "returns": returns }))
}
