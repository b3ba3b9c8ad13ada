//! The books: every transaction, sold lead, deposit, return and API pause, rebuilt from the journal's entries
//! by the same [`Books::apply`] that records them live.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::entry::{Decision, Deposit, Entry, KeyedMove, Payout, Return, Sale, Terms};
use super::return_rates::ReturnRates;
use crate::buyers::PausedBy;
use crate::domain::money::Money;
use crate::domain::returns::{DecisionReason, ReturnStatus};

/// The system's own accounts (API.md section 6).
pub const REVENUE: &str = "platform:revenue";
pub const DEPOSITS: &str = "external:deposits";
pub const PAYOUTS: &str = "external:payouts";

/// The account of a buyer.
pub fn buyer_account(buyer: &str) -> String {
    format!("buyer:{buyer}")
}

/// The account of a seller.
pub fn seller_account(seller: &str) -> String {
    format!("seller:{seller}")
}

/// A balanced set of postings: the amounts always sum to zero.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    pub id: String,
    pub at: DateTime<Utc>,
    pub kind: TransactionKind,
    pub lead_id: Option<String>,
    pub postings: Vec<(String, Money)>,
}

/// What a transaction records; the labels are the statement's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    Sale,
    Return,
    Deposit,
    Payout,
}

impl TransactionKind {
    pub fn label(self) -> &'static str {
        match self {
            TransactionKind::Sale => "sale",
            TransactionKind::Return => "return",
            TransactionKind::Deposit => "deposit",
            TransactionKind::Payout => "payout",
        }
    }
}

/// A sold lead and its return, if one was filed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoldLead {
    pub sale: Sale,
    pub return_id: Option<String>,
}

/// Why an entry cannot apply: the journal contradicts itself (replay), or a caller skipped a check (a bug).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Inconsistent(String);

/// Everything the ledger knows. Serializable whole: a journal snapshot is these books.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Books {
    pub transactions: Vec<Transaction>,
    pub leads: HashMap<String, SoldLead>,
    /// Each buyer's lead ids in the order they were sold.
    pub leads_by_buyer: HashMap<String, Vec<String>>,
    pub deposits: Vec<Deposit>,
    pub payouts: Vec<Payout>,
    pub returns: HashMap<String, Return>,
    /// Return ids in the order they were filed.
    pub return_order: Vec<String>,
    /// Each buyer's last pause or resume through the API (`None`: resumed).
    pub pauses: HashMap<String, Option<PausedBy>>,
    /// Every set of terms sales were made under; a terms id is its index.
    pub terms: Vec<Terms>,
    /// Account → `Idempotency-Key` → the deposit or payout made under it. Snapshotted (it needs the
    /// transaction ids); a snapshot from before keys existed has none to index.
    #[serde(default)]
    keyed_moves: HashMap<String, HashMap<String, KeyedMove>>,
    /// Config revision → buyer → the id of its terms under that revision: an index of `terms`, rebuilt
    /// rather than snapshotted.
    #[serde(skip)]
    terms_in_force: HashMap<String, HashMap<String, u64>>,
    /// Each buyer's deliveries and approved returns per seller by hour, for return-aware ranking: derived
    /// from the sales and returns, rebuilt rather than snapshotted.
    #[serde(skip)]
    pub return_rates: ReturnRates,
}

impl Books {
    /// Books from a snapshot, checked before anything relies on them.
    pub fn from_snapshot(bytes: &[u8]) -> Result<Books, Inconsistent> {
        let mut books: Books = serde_json::from_slice(bytes).map_err(|e| Inconsistent(e.to_string()))?;
        books.check()?;
        for terms in std::mem::take(&mut books.terms) {
            books.index_terms(&terms);
            books.terms.push(terms);
        }
        books.rebuild_return_rates();
        Ok(books)
    }

    /// The return histories from the sold leads and their approved returns, oldest sale first.
    fn rebuild_return_rates(&mut self) {
        let mut sold: Vec<&SoldLead> = self.leads.values().collect();
        sold.sort_by_key(|lead| lead.sale.at);
        for lead in sold {
            let sale = &lead.sale;
            self.return_rates.delivered(&sale.seller, &sale.buyer, sale.at);
            let approved = lead.return_id.as_ref().and_then(|id| self.returns.get(id));
            if approved.is_some_and(|filed| filed.status == ReturnStatus::Approved) {
                self.return_rates.returned(&sale.seller, &sale.buyer, sale.at);
            }
        }
    }

    fn index_terms(&mut self, terms: &Terms) {
        let by_buyer = self.terms_in_force.entry(terms.config_revision.clone()).or_default();
        by_buyer.insert(terms.buyer.clone(), terms.terms_id);
    }

    /// A set of terms by id.
    pub fn terms(&self, terms_id: u64) -> Option<&Terms> {
        self.terms.get(usize::try_from(terms_id).ok()?)
    }

    /// The id of a buyer's terms under a config revision, once a sale was made under them.
    pub fn terms_in_force(&self, config_revision: &str, buyer: &str) -> Option<u64> {
        self.terms_in_force.get(config_revision)?.get(buyer).copied()
    }

    /// The deposit (account `buyer:<id>`) or payout (`seller:<id>`) made under an `Idempotency-Key`.
    pub fn keyed_move(&self, account: &str, key: &str) -> Option<&KeyedMove> {
        self.keyed_moves.get(account)?.get(key)
    }

    fn index_keyed_move(&mut self, account: String, key: Option<&String>, moved: impl FnOnce() -> KeyedMove) {
        if let Some(key) = key {
            self.keyed_moves.entry(account).or_default().insert(key.clone(), moved());
        }
    }

    /// Applies one entry and returns the transaction it posted, if any; the caller moves the balances.
    pub fn apply(&mut self, entry: Entry) -> Result<Option<&Transaction>, Inconsistent> {
        let transaction = match entry {
            Entry::Sale { transaction_id, sale } => {
                if self.leads.contains_key(&sale.lead_id) {
                    return Err(Inconsistent(format!("lead {} is sold twice", sale.lead_id)));
                }
                if self.terms(sale.terms_id).is_none() {
                    return Err(Inconsistent(format!("lead {} names unknown terms {}", sale.lead_id, sale.terms_id)));
                }
                let transaction = Transaction {
                    id: transaction_id,
                    at: sale.at,
                    kind: TransactionKind::Sale,
                    lead_id: Some(sale.lead_id.clone()),
                    postings: sale_postings(&sale),
                };
                self.leads_by_buyer.entry(sale.buyer.clone()).or_default().push(sale.lead_id.clone());
                self.return_rates.delivered(&sale.seller, &sale.buyer, sale.at);
                self.leads.insert(sale.lead_id.clone(), SoldLead { sale, return_id: None });
                Some(transaction)
            }
            Entry::Deposit { transaction_id, deposit } => {
                let transaction = Transaction {
                    id: transaction_id,
                    at: deposit.at,
                    kind: TransactionKind::Deposit,
                    lead_id: None,
                    postings: vec![
                        (DEPOSITS.to_owned(), -deposit.amount),
                        (buyer_account(&deposit.buyer), deposit.amount),
                    ],
                };
                self.index_keyed_move(buyer_account(&deposit.buyer), deposit.idempotency_key.as_ref(), || KeyedMove {
                    id: deposit.deposit_id.clone(),
                    transaction_id: transaction.id.clone(),
                    amount: deposit.amount,
                    reference: deposit.reference.clone(),
                });
                self.deposits.push(deposit);
                Some(transaction)
            }
            Entry::Payout { transaction_id, payout } => {
                let transaction = Transaction {
                    id: transaction_id,
                    at: payout.at,
                    kind: TransactionKind::Payout,
                    lead_id: None,
                    postings: vec![
                        (seller_account(&payout.seller), -payout.amount),
                        (PAYOUTS.to_owned(), payout.amount),
                    ],
                };
                self.index_keyed_move(seller_account(&payout.seller), payout.idempotency_key.as_ref(), || KeyedMove {
                    id: payout.payout_id.clone(),
                    transaction_id: transaction.id.clone(),
                    amount: payout.amount,
                    reference: payout.reference.clone(),
                });
                self.payouts.push(payout);
                Some(transaction)
            }
            Entry::Return { filed } => {
                let lead = self
                    .leads
                    .get_mut(&filed.lead_id)
                    .ok_or_else(|| Inconsistent(format!("return {} is for an unknown lead", filed.return_id)))?;
                if lead.return_id.is_some() {
                    return Err(Inconsistent(format!("lead {} is returned twice", filed.lead_id)));
                }
                lead.return_id = Some(filed.return_id.clone());
                if filed.status == ReturnStatus::Approved {
                    self.return_rates.returned(&lead.sale.seller, &lead.sale.buyer, lead.sale.at);
                }
                let reversal = filed.transaction_id.clone().map(|id| reversal(id, &lead.sale, filed.created_at));
                self.return_order.push(filed.return_id.clone());
                self.returns.insert(filed.return_id.clone(), filed);
                reversal
            }
            Entry::Decision { decision } => self.decide(decision)?,
            Entry::Standing { buyer, paused_by, .. } => {
                self.pauses.insert(buyer, paused_by);
                None
            }
            Entry::Terms { terms } => {
                if terms.terms_id != self.terms.len() as u64 {
                    return Err(Inconsistent(format!("terms {} out of order", terms.terms_id)));
                }
                self.index_terms(&terms);
                self.terms.push(terms);
                None
            }
        };
        Ok(transaction.map(|transaction| {
            self.transactions.push(transaction);
            self.transactions.last().expect("just pushed")
        }))
    }

    fn decide(&mut self, decision: Decision) -> Result<Option<Transaction>, Inconsistent> {
        let filed = self
            .returns
            .get_mut(&decision.return_id)
            .ok_or_else(|| Inconsistent(format!("decision on unknown return {}", decision.return_id)))?;
        if filed.status != ReturnStatus::PendingReview {
            return Err(Inconsistent(format!("return {} is decided twice", decision.return_id)));
        }
        let sale = &self.leads[&filed.lead_id].sale;
        *filed = decided_return(filed, sale, &decision);
        if filed.status == ReturnStatus::Approved {
            self.return_rates.returned(&sale.seller, &sale.buyer, sale.at);
        }
        Ok(filed.transaction_id.clone().filter(|_| decision.approve).map(|id| reversal(id, sale, decision.at)))
    }

    /// Checks the cross-references that [`Books::apply`] keeps and that readers index by: a snapshot is
    /// whole books read back from disk, so it is checked before anything relies on it (a return whose lead
    /// is missing made replaying a decision panic; found while writing the `ledger` fuzz target).
    fn check(&self) -> Result<(), Inconsistent> {
        let missing = |what: &str, id: &str| Err(Inconsistent(format!("the books disagree about {what} {id}")));
        for (buyer, ids) in &self.leads_by_buyer {
            if let Some(id) = ids.iter().find(|id| self.leads.get(*id).is_none_or(|lead| lead.sale.buyer != *buyer)) {
                return missing("the lead", id);
            }
        }
        if let Some(id) = self.return_order.iter().find(|id| !self.returns.contains_key(*id)) {
            return missing("the return", id);
        }
        for (id, filed) in &self.returns {
            if self.leads.get(&filed.lead_id).is_none_or(|lead| lead.return_id.as_ref() != Some(id)) {
                return missing("the lead", &filed.lead_id);
            }
        }
        for lead in self.leads.values() {
            if let Some(id) = lead.return_id.as_ref().filter(|id| !self.returns.contains_key(*id)) {
                return missing("the return", id);
            }
            if self.terms(lead.sale.terms_id).is_none() {
                return missing("the terms of lead", &lead.sale.lead_id);
            }
        }
        if let Some((index, terms)) = self.terms.iter().enumerate().find(|(index, t)| t.terms_id != *index as u64) {
            return missing("the terms", &format!("{} (at {index})", terms.terms_id));
        }
        Ok(())
    }

    /// The lead sold under this id, if any.
    pub fn lead(&self, lead_id: &str) -> Option<&SoldLead> {
        self.leads.get(lead_id)
    }

    /// Every return, newest filed first.
    pub fn returns_newest_first(&self) -> impl Iterator<Item = &Return> {
        self.return_order.iter().rev().map(|id| &self.returns[id])
    }
}

/// A pending return as the operator's decision leaves it: approved (credited and clawed back, under the
/// decision's transaction) or rejected.
pub fn decided_return(filed: &Return, sale: &Sale, decision: &Decision) -> Return {
    let mut decided = filed.clone();
    decided.decided_at = Some(decision.at);
    decided.decision_note = decision.note.clone();
    match decision.transaction_id.as_ref().filter(|_| decision.approve) {
        Some(id) => {
            decided.status = ReturnStatus::Approved;
            decided.decision_reason = DecisionReason::OperatorApproved;
            decided.credit = sale.price;
            decided.clawback = sale.payout;
            decided.transaction_id = Some(id.clone());
        }
        None => {
            decided.status = ReturnStatus::Rejected;
            decided.decision_reason = DecisionReason::OperatorRejected;
        }
    }
    decided
}

/// The postings of a sale at price P with payout S: buyer −P, seller +S, platform +(P − S).
fn sale_postings(sale: &Sale) -> Vec<(String, Money)> {
    vec![
        (buyer_account(&sale.buyer), -sale.price),
        (seller_account(&sale.seller), sale.payout),
        (REVENUE.to_owned(), sale.price - sale.payout),
    ]
}

/// An approved return: the exact reverse of its sale.
fn reversal(id: String, sale: &Sale, at: DateTime<Utc>) -> Transaction {
    Transaction {
        id,
        at,
        kind: TransactionKind::Return,
        lead_id: Some(sale.lead_id.clone()),
        postings: sale_postings(sale).into_iter().map(|(account, amount)| (account, -amount)).collect(),
    }
}
