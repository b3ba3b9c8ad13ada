//! Money views and the operator's other reads and changes: statements, the report, the ledger's accounts and
//! transactions, delivery records, seller payouts, recent auctions and the config.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{json, Value};

use super::{read, OpError};
use crate::domain::money::Money;
use crate::engine::Engine;
use crate::ids::new_id;
use crate::ledger::report::{report as build_report, Report};
use crate::ledger::statement::{statement as build_statement, Statement};
use crate::ledger::{seller_account, LedgerError, Moved, Payout, Sale, TransactionKind};
use crate::time::rfc3339;

/// The statement of one account over `[from, to)` (API.md section 6).
pub fn statement(engine: &Engine, account: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Statement {
    read(engine, |books| build_statement(books, account, from, to))
}

/// The P&L of `[from, to)` by campaign, seller (and source) and buyer (API.md section 5).
pub fn report(engine: &Engine, from: DateTime<Utc>, to: DateTime<Utc>) -> Report {
    read(engine, |books| build_report(books, from, to))
}

/// How far before `from` a scan back through the transactions goes on: a sale's time is taken just before it
/// is booked, so neighbours in the books can be a few milliseconds out of time order.
const OUT_OF_ORDER_SLACK: chrono::Duration = chrono::Duration::seconds(60);

/// Calls `each` with every sale booked at or after `from`, newest first. Reads back from the end of the books,
/// so its cost is the sales since `from`, not the whole history.
pub fn for_each_sale_since(engine: &Engine, from: DateTime<Utc>, mut each: impl FnMut(&Sale)) {
    read(engine, |books| {
        let recent = books.transactions.iter().rev().take_while(|t| t.at >= from - OUT_OF_ORDER_SLACK);
        for transaction in recent.filter(|t| t.kind == TransactionKind::Sale && t.at >= from) {
            if let Some(sold) = transaction.lead_id.as_deref().and_then(|id| books.lead(id)) {
                each(&sold.sale);
            }
        }
    })
}

/// Every account with its balance, sorted by account.
pub fn accounts(engine: &Engine) -> Vec<(String, Money)> {
    engine.ledger.balances()
}

/// One account's balance (zero for an account that never moved).
pub fn balance(engine: &Engine, account: &str) -> Money {
    engine.ledger.balance(account)
}

/// Every transaction (touching one account), in time order, as `GET /admin/ledger/transactions` shows it.
pub fn transactions(engine: &Engine, account: Option<&str>) -> Vec<Value> {
    read(engine, |books| {
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
    })
}

/// The delivery record of a sold lead (API.md section 5), from the books, so it outlives the audit ring and
/// restarts; its terms are the ones recorded when the lead was sold.
pub fn delivery_record(engine: &Engine, lead_id: &str) -> Result<Value, OpError> {
    read(engine, |books| {
        let sold = books.lead(lead_id)?;
        let sale = &sold.sale;
        let terms = books.terms(sale.terms_id).expect("the books check that a sale's terms exist");
        let filed = sold.return_id.as_ref().map(|id| super::returns::operator_json(&books.returns[id]));
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
    })
    .ok_or(OpError::NotFound("lead"))
}

/// Money paid out to a seller, durable before the answer: the payout's id and the seller's balance after it.
/// More than the seller is owed records nothing. A repeat under its `idempotency_key` is answered with the
/// first payout (see [`Moved`]).
pub async fn payout(
    engine: &Engine,
    seller_id: &str,
    amount: Money,
    reference: Option<String>,
    idempotency_key: Option<String>,
) -> Result<Moved, OpError> {
    let config = engine.config();
    let seller = config.seller(seller_id).ok_or(OpError::NotFound("seller"))?;
    super::check_money_move(amount, idempotency_key.as_deref())?;
    let payout = Payout {
        payout_id: new_id("po_"),
        seller: seller.id.clone(),
        amount,
        reference,
        at: Utc::now(),
        idempotency_key,
    };
    match engine.ledger.record_payout(payout).await {
        Ok(moved) => Ok(moved),
        Err(LedgerError::InsufficientBalance { owed }) => Err(OpError::InsufficientBalance(format!(
            "seller {} is owed {owed}; a payout of {amount} is more than that",
            seller.id
        ))),
        Err(other) => Err(super::refuse_reused_key("payout", other)),
    }
}

/// One payout made to a seller.
#[derive(Debug, Clone, Serialize)]
pub struct PayoutLine {
    pub transaction_id: String,
    pub at: String,
    pub amount: Money,
}

/// Every payout made to a seller, newest first.
pub fn payouts_of_seller(engine: &Engine, seller: &str) -> Vec<PayoutLine> {
    let account = seller_account(seller);
    read(engine, |books| {
        books
            .transactions
            .iter()
            .rev()
            .filter(|t| t.kind == TransactionKind::Payout)
            .filter_map(|t| {
                let (_, amount) = t.postings.iter().find(|(a, _)| *a == account)?;
                Some(PayoutLine { transaction_id: t.id.clone(), at: rfc3339(t.at), amount: -*amount })
            })
            .collect()
    })
}

/// A recent auction's audit trail (`GET /admin/pings/{id}`): this node's ring, or in cluster mode the trail
/// every node shares.
pub async fn auction(engine: &Engine, ping_id: &str) -> Result<Value, OpError> {
    engine.audit_trail(ping_id).await?.ok_or(OpError::NotFound("ping"))
}

/// Which config is in force (`GET /admin/config`).
pub fn config(engine: &Engine) -> Value {
    let config = engine.config();
    json!({
        "revision": config.revision,
        "loaded_at": rfc3339(config.loaded_at),
        "sellers": config.sellers.len(),
        "campaigns": config.campaigns.len(),
        "buyers": config.buyers.len(),
    })
}

/// Re-reads the config file and swaps it in whole, or refuses it with every problem listed while the
/// running config stays in force. In cluster mode every other node re-reads its own file next.
pub async fn reload(engine: &Engine) -> Result<Value, OpError> {
    let config = engine.reload().map_err(|error| OpError::InvalidConfig(error.to_string()))?;
    if let Some(redis) = engine.coordinator.redis() {
        let _ = redis.ensure_buyers(&engine.roster(), &engine.ledger).await;
        if redis.announce_reload().await.is_err() {
            tracing::warn!("reloaded here, but Redis could not tell the other nodes; reload them one by one");
        }
    }
    Ok(json!({
        "status": "reloaded",
        "revision": config.revision,
        "sellers": config.sellers.len(),
        "campaigns": config.campaigns.len(),
        "buyers": config.buyers.len(),
    }))
}
