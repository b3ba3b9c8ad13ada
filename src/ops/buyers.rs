//! Buyers: the operator's and the buyer's views of one (with caps and holds as the coordinator counts them:
//! every node's in cluster mode), pauses and resumes (made in the ledger's order, durable before the
//! answer), and deposits.

use std::sync::Arc;

use chrono::Utc;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::OpError;
use crate::buyers::{BuyerState, PausedBy, PausedByOther, Standing};
use crate::capacity::Usage;
use crate::config::{Billing, Buyer};
use crate::domain::money::Money;
use crate::engine::Engine;
use crate::ids::new_id;
use crate::ledger::{Deposit, Moved};

/// A buyer of the config in force with its running state, by id.
pub fn find(engine: &Engine, id: &str) -> Result<(Arc<Buyer>, Arc<BuyerState>), OpError> {
    let roster = engine.roster();
    let (buyer, state) = roster.buyer(id).ok_or(OpError::NotFound("buyer"))?;
    Ok((Arc::clone(buyer), Arc::clone(state)))
}

/// Every buyer's operator object (API.md section 5), in config order.
pub async fn all(engine: &Engine) -> Result<Vec<Value>, OpError> {
    let roster = engine.roster();
    let mut buyers = Vec::with_capacity(roster.config.buyers.len());
    for (buyer, state) in roster.config.buyers.iter().zip(&roster.states) {
        buyers.push(view(engine, buyer, state).await?);
    }
    Ok(buyers)
}

/// One buyer's operator object.
pub async fn one(engine: &Engine, id: &str) -> Result<Value, OpError> {
    let (buyer, state) = find(engine, id)?;
    view(engine, &buyer, &state).await
}

/// The operator's buyer object: state, money, caps and budgets used and left, health, ramp.
async fn view(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Result<Value, OpError> {
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
    object.as_object_mut().expect("an object").extend(money_of(engine, buyer, state, &usage));
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

/// A buyer's money: `billing`, `balance`, `held`, `available` and, for invoice buyers, `credit_limit`.
pub async fn money(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Result<Map<String, Value>, OpError> {
    let usage = engine.usage(buyer, state).await?;
    Ok(money_of(engine, buyer, state, &usage))
}

fn money_of(engine: &Engine, buyer: &Buyer, state: &BuyerState, usage: &Usage) -> Map<String, Value> {
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

/// What a buyer is shown of itself (`GET /v1/buyer/status`): whether it receives leads and how much of each
/// cap is left.
pub async fn status(engine: &Engine, buyer: &Buyer, state: &BuyerState) -> Result<Value, OpError> {
    let usage = engine.usage(buyer, state).await?;
    let standing = state.standing(buyer, Instant::now());
    let (caps, budgets) = crate::capacity::view(buyer, Utc::now(), &usage);
    Ok(json!({
        "buyer": buyer.id,
        "state": standing.state(),
        "state_reason": standing.reason(),
        "self_pause": buyer.self_pause,
        "caps": caps,
        "budgets": budgets,
    }))
}

/// The operator pauses a buyer or resumes it (a resume clears every pause, the SLA breaker's too), in the
/// ledger's order after every earlier pause or resume of any node; durable before the answer. Returns the
/// buyer's operator object.
pub async fn operator_pause(engine: &Engine, id: &str, pause: bool) -> Result<Value, OpError> {
    let (buyer, state) = find(engine, id)?;
    let (config, standing) = (Arc::clone(&buyer), Arc::clone(&state));
    let change = move || {
        if pause {
            standing.pause(&config, PausedBy::Operator);
        } else {
            standing.resume();
        }
        Ok::<_, OpError>(standing.api_standing())
    };
    engine.ledger.record_standing(&buyer.id, change).await?;
    view(engine, &buyer, &state).await
}

/// A buyer stops or restarts its own flow of leads (API.md section 4). It may lift only a pause it set
/// itself; made in the ledger's order and durable before the answer. Returns its status object.
pub async fn self_pause(
    engine: &Engine,
    buyer: &Arc<Buyer>,
    state: &Arc<BuyerState>,
    pause: bool,
) -> Result<Value, OpError> {
    if !buyer.self_pause {
        return Err(OpError::Forbidden(
            "this buyer's contract does not allow pausing or resuming itself (self_pause = false); ask the operator"
                .into(),
        ));
    }
    let (config, standing) = (Arc::clone(buyer), Arc::clone(state));
    let change = move || {
        if pause {
            standing.pause(&config, PausedBy::Buyer);
        } else if let Err(PausedByOther(by)) = standing.resume_by_buyer(&config, Instant::now()) {
            let who = match by {
                Standing::Paused(PausedBy::Operator) => "the operator",
                Standing::Paused(PausedBy::Config) => "the config file",
                _ => "the SLA breaker (sla_paused or probing); it resumes by itself once the endpoint is healthy",
            };
            return Err(OpError::Forbidden(format!(
                "this buyer was paused by {who}; only a pause it set itself can be resumed here"
            )));
        }
        Ok(standing.api_standing())
    };
    engine.ledger.record_standing(&buyer.id, change).await?;
    status(engine, buyer, state).await
}

/// A deposit into a buyer's wallet (or against its invoice), durable before the answer: the deposit's id and
/// the balance after it. A repeat under its `idempotency_key` is answered with the first deposit (see
/// [`Moved`]).
pub async fn deposit(
    engine: &Engine,
    id: &str,
    amount: Money,
    reference: Option<String>,
    idempotency_key: Option<String>,
) -> Result<Moved, OpError> {
    let (buyer, _) = find(engine, id)?;
    super::check_money_move(amount, idempotency_key.as_deref())?;
    let deposit = Deposit {
        deposit_id: new_id("d_"),
        buyer: buyer.id.clone(),
        amount,
        reference,
        at: Utc::now(),
        idempotency_key,
    };
    let moved = engine.ledger.record_deposit(deposit).await.map_err(|e| super::refuse_reused_key("deposit", e))?;
    // Cluster mode: the balance mirror in Redis takes the money before the answer, so a ping sent once the
    // deposit is answered can spend it on any node. (The credit is once per transaction: the same credit sent
    // again — by a repeated request, or when the node follows its own entry — changes nothing.)
    if let Some(redis) = engine.coordinator.redis() {
        redis.credit(&buyer.id, &moved.transaction_id, amount).await;
    }
    Ok(moved)
}
