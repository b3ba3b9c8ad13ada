//! JSON shapes shared by the buyer portal and the operator API.

use serde_json::{json, Map, Value};

use crate::buyers::BuyerState;
use crate::capacity::Usage;
use crate::config::{Billing, Buyer};
use crate::engine::Engine;
use crate::ledger::Return;
use crate::time::rfc3339;

/// A buyer's money: `billing`, `balance`, `held`, `available` and, for invoice buyers, `credit_limit`.
pub fn buyer_money(engine: &Engine, buyer: &Buyer, state: &BuyerState, usage: &Usage) -> Map<String, Value> {
    let held = usage.held_money;
    let mut money = Map::new();
    money.insert("balance".into(), json!(engine.ledger.balance(&state.account)));
    money.insert("held".into(), json!(held));
    money.insert("available".into(), json!(state.funds(buyer, &engine.ledger) - held));
    match buyer.billing {
        Billing::Prepaid => {
            money.insert("billing".into(), json!("prepaid"));
        }
        Billing::Invoice { credit_limit } => {
            money.insert("billing".into(), json!("invoice"));
            money.insert("credit_limit".into(), json!(credit_limit));
        }
    }
    money
}

/// A return as its buyer sees it (API.md section 4), `decision_note` included: "returns in every list also
/// carry `decision_note`", the buyer's list too, so the buyer reads why an operator decided as it did.
pub fn return_object(filed: &Return) -> Value {
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
pub fn admin_return_object(filed: &Return) -> Value {
    let mut object = return_object(filed);
    object["buyer"] = json!(filed.buyer);
    object["clawback"] = json!(filed.clawback);
    object
}
