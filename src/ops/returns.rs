//! Returns: filing one under the buyer's policy, the operator's decision, and the lists of leads and returns
//! each party may see (a buyer its own, a seller those on its leads without the buyer, the operator all).

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{read, OpError};
use crate::config::{Buyer, KNOWN_RETURN_REASONS};
use crate::domain::money::Money;
use crate::domain::returns::{returnable_until, within_window, ReturnStatus};
use crate::engine::Engine;
use crate::ledger::{Books, Return, ReturnRequest, SoldLead};
use crate::time::rfc3339;

/// Longest `note` on a return.
pub const MAX_NOTE_CHARS: usize = 1024;

/// One of a buyer's leads as `GET /v1/buyer/leads` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct BuyerLead {
    pub lead_id: String,
    pub campaign: String,
    pub price: Money,
    pub delivered_at: String,
    pub returnable_until: String,
    pub return_status: Option<&'static str>,
    /// Whether a return may be filed now: none filed yet and inside the window. Not in the JSON (a buyer
    /// reads it from the two fields above); the portal shows the return button by it.
    #[serde(skip)]
    pub returnable: bool,
}

/// A return on one of a seller's leads, as `GET /v1/seller/returns` shows it: never the buyer.
#[derive(Debug, Clone, Serialize)]
pub struct SellerReturn {
    pub return_id: String,
    pub lead_id: String,
    pub ping_id: String,
    pub source: Option<String>,
    pub campaign: String,
    pub reason: String,
    pub status: &'static str,
    pub clawback: Money,
    pub created_at: String,
}

/// A buyer files a return (API.md section 4): the reason must be a known one and the note short; the policy
/// then decides it, and an approved return is credited at once. Durable before the answer.
pub async fn file(
    engine: &Engine,
    buyer: &Buyer,
    lead_id: String,
    reason: &str,
    note: Option<&str>,
) -> Result<Return, OpError> {
    if !KNOWN_RETURN_REASONS.contains(&reason) {
        return Err(OpError::InvalidField(format!(
            "reason {reason:?} is not a known return reason; use one of {}",
            KNOWN_RETURN_REASONS.join(", ")
        )));
    }
    if note.is_some_and(|note| note.chars().count() > MAX_NOTE_CHARS) {
        return Err(OpError::InvalidField(format!("note must be at most {MAX_NOTE_CHARS} characters")));
    }
    let request = ReturnRequest { lead_id, reason: reason.to_owned(), note: note.map(str::to_owned) };
    Ok(engine.ledger.file_return(buyer, request, Utc::now()).await?)
}

/// The operator approves or rejects a return pending review, with an optional note; durable before the
/// answer.
pub async fn decide(engine: &Engine, return_id: &str, approve: bool, note: Option<String>) -> Result<Return, OpError> {
    let decided = engine.ledger.decide_return(return_id, approve, note, Utc::now()).await?;
    // Cluster mode: the credit reaches the balance mirror in Redis before the answer (see `buyers::deposit`).
    if let (Some(redis), Some(transaction_id)) = (engine.coordinator.redis(), &decided.transaction_id) {
        if decided.status == ReturnStatus::Approved {
            redis.credit(&decided.buyer, transaction_id, decided.credit).await;
        }
    }
    Ok(decided)
}

/// A return's status from its contract name.
pub fn parse_status(wanted: &str) -> Result<ReturnStatus, OpError> {
    [ReturnStatus::Approved, ReturnStatus::PendingReview, ReturnStatus::Rejected]
        .into_iter()
        .find(|status| status.label() == wanted)
        .ok_or_else(|| OpError::InvalidField("status must be approved, pending_review or rejected".into()))
}

/// Every return (of one status), newest first: the operator's list.
pub fn all(engine: &Engine, status: Option<ReturnStatus>) -> Vec<Return> {
    read(engine, |books| {
        books
            .returns_newest_first()
            .filter(|filed| status.is_none_or(|status| filed.status == status))
            .cloned()
            .collect()
    })
}

/// A buyer's returns, newest first.
pub fn of_buyer(engine: &Engine, buyer: &str) -> Vec<Return> {
    read(engine, |books| books.returns_newest_first().filter(|filed| filed.buyer == buyer).cloned().collect())
}

/// One of a buyer's returns; another buyer's is not found.
pub fn one_of_buyer(engine: &Engine, buyer: &str, return_id: &str) -> Result<Return, OpError> {
    read(engine, |books| books.returns.get(return_id).filter(|filed| filed.buyer == buyer).cloned())
        .ok_or(OpError::NotFound("return"))
}

/// A buyer's leads delivered since `since`, newest first, at most `limit`.
pub fn leads_of_buyer(engine: &Engine, buyer: &Buyer, since: Option<DateTime<Utc>>, limit: usize) -> Vec<BuyerLead> {
    let now = Utc::now();
    read(engine, |books| {
        let Some(ids) = books.leads_by_buyer.get(&buyer.id) else { return Vec::new() };
        ids.iter()
            .rev()
            .map(|id| &books.leads[id])
            .take_while(|lead| since.is_none_or(|since| lead.sale.at >= since))
            .take(limit)
            .map(|lead| buyer_lead(books, buyer, lead, now))
            .collect()
    })
}

/// One of a buyer's leads; another buyer's is not found.
pub fn lead_of_buyer(engine: &Engine, buyer: &Buyer, lead_id: &str) -> Result<BuyerLead, OpError> {
    let now = Utc::now();
    read(engine, |books| {
        let lead = books.lead(lead_id).filter(|lead| lead.sale.buyer == buyer.id)?;
        Some(buyer_lead(books, buyer, lead, now))
    })
    .ok_or(OpError::NotFound("lead"))
}

fn buyer_lead(books: &Books, buyer: &Buyer, lead: &SoldLead, now: DateTime<Utc>) -> BuyerLead {
    let status = lead.return_id.as_ref().map(|id| books.returns[id].status.label());
    let until = returnable_until(&buyer.returns, lead.sale.at);
    BuyerLead {
        lead_id: lead.sale.lead_id.clone(),
        campaign: lead.sale.campaign.clone(),
        price: lead.sale.price,
        delivered_at: rfc3339(lead.sale.at),
        returnable_until: rfc3339(until),
        return_status: status,
        returnable: buyer.returns.enabled && status.is_none() && within_window(&buyer.returns, lead.sale.at, now),
    }
}

/// Every return filed on a seller's leads since `since` (by filing time), newest first, without the buyer.
pub fn of_seller(engine: &Engine, seller: &str, since: Option<DateTime<Utc>>) -> Vec<SellerReturn> {
    read(engine, |books| {
        books
            .returns_newest_first()
            .take_while(|filed| since.is_none_or(|since| filed.created_at >= since))
            .filter_map(|filed| {
                let sale = &books.leads[&filed.lead_id].sale;
                (sale.seller == seller).then(|| SellerReturn {
                    return_id: filed.return_id.clone(),
                    lead_id: filed.lead_id.clone(),
                    ping_id: sale.ping_id.clone(),
                    source: sale.source.clone(),
                    campaign: sale.campaign.clone(),
                    reason: filed.reason.clone(),
                    status: filed.status.label(),
                    clawback: filed.clawback,
                    created_at: rfc3339(filed.created_at),
                })
            })
            .collect()
    })
}

/// A return as its buyer sees it (API.md section 4), `decision_note` included: "returns in every list also
/// carry `decision_note`", the buyer's list too, so the buyer reads why an operator decided as it did.
pub fn buyer_json(filed: &Return) -> Value {
    json!({
        "return_id": filed.return_id,
        "lead_id": filed.lead_id,
        "status": filed.status.label(),
        "decision_reason": filed.decision_reason.label(),
        "credit": filed.credit,
        "reason": filed.reason,
        "note": filed.note,
        "decision_note": filed.decision_note,
        "created_at": rfc3339(filed.created_at),
        "decided_at": filed.decided_at.map(rfc3339),
    })
}

/// A return as the operator sees it: the buyer's view plus whose it is and the payout taken back.
pub fn operator_json(filed: &Return) -> Value {
    let mut object = buyer_json(filed);
    object["buyer"] = json!(filed.buyer);
    object["clawback"] = json!(filed.clawback);
    object
}
