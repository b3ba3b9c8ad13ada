//! The ledger: double-entry accounts in exact decimals (API.md section 6).
//!
//! The auction reaches money only through [`Ledger::record_sale`], whose future resolves once the sale is
//! recorded. Today the books live in memory; the durable journal (group commit, replay) slots in behind the
//! same calls, so the auction does not change when it lands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use parking_lot::Mutex;

use crate::domain::money::Money;
use crate::ids::new_id;

/// A lead sold to one buyer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sale {
    pub lead_id: String,
    pub ping_id: String,
    pub campaign: String,
    pub seller: String,
    pub buyer: String,
    pub source: Option<String>,
    pub price: Money,
    pub payout: Money,
    pub at: DateTime<Utc>,
}

/// A balanced set of postings: the amounts always sum to zero.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    pub id: String,
    pub at: DateTime<Utc>,
    pub kind: &'static str,
    pub lead_id: Option<String>,
    pub postings: Vec<(String, Money)>,
}

impl Transaction {
    /// The postings of a sale at price P with payout S: buyer −P, seller +S, platform +(P − S).
    fn sale(sale: &Sale) -> Transaction {
        Transaction {
            id: new_id("t_"),
            at: sale.at,
            kind: "sale",
            lead_id: Some(sale.lead_id.clone()),
            postings: vec![
                (format!("buyer:{}", sale.buyer), -sale.price),
                (format!("seller:{}", sale.seller), sale.payout),
                ("platform:revenue".to_owned(), sale.price - sale.payout),
            ],
        }
    }
}

/// Why the ledger could not record something.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("lead {0} is already sold to this buyer")]
    DuplicateSale(String),
}

/// The books.
#[derive(Default)]
pub struct Ledger {
    books: Mutex<Books>,
}

#[derive(Default)]
struct Books {
    balances: HashMap<String, Money>,
    transactions: Vec<Transaction>,
    sales: HashMap<String, Sale>,
}

impl Books {
    fn apply(&mut self, transaction: Transaction) {
        debug_assert_eq!(transaction.postings.iter().map(|(_, m)| *m).sum::<Money>(), Money::ZERO);
        for (account, amount) in &transaction.postings {
            *self.balances.entry(account.clone()).or_default() += *amount;
        }
        self.transactions.push(transaction);
    }
}

impl Ledger {
    /// Books kept in memory only.
    pub fn in_memory() -> Ledger {
        Ledger::default()
    }

    /// Records a sale; resolves once it is recorded (durably, once the journal lands). Returns the
    /// transaction id.
    pub async fn record_sale(&self, sale: Sale) -> Result<String, LedgerError> {
        let mut books = self.books.lock();
        if books.sales.contains_key(&sale.lead_id) {
            return Err(LedgerError::DuplicateSale(sale.lead_id));
        }
        let transaction = Transaction::sale(&sale);
        let id = transaction.id.clone();
        books.apply(transaction);
        books.sales.insert(sale.lead_id.clone(), sale);
        Ok(id)
    }

    /// An account's balance (zero for an account that never moved).
    pub fn balance(&self, account: &str) -> Money {
        self.books.lock().balances.get(account).copied().unwrap_or_default()
    }

    /// Every account with its balance, sorted by account.
    pub fn balances(&self) -> Vec<(String, Money)> {
        let mut all: Vec<_> = self.books.lock().balances.iter().map(|(a, m)| (a.clone(), *m)).collect();
        all.sort();
        all
    }

    /// How many leads were sold.
    pub fn sale_count(&self) -> usize {
        self.books.lock().sales.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sale(lead_id: &str, price: i64, payout: i64) -> Sale {
        Sale {
            lead_id: lead_id.into(),
            ping_id: "p_1".into(),
            campaign: "auto".into(),
            seller: "acme".into(),
            buyer: "best".into(),
            source: None,
            price: Money::from_cents(price),
            payout: Money::from_cents(payout),
            at: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_sale_moves_money_between_three_accounts_and_sums_to_zero() {
        let ledger = Ledger::in_memory();
        ledger.record_sale(sale("l_1", 1250, 1125)).await.unwrap();
        ledger.record_sale(sale("l_2", 999, 849)).await.unwrap();
        assert_eq!(ledger.balance("buyer:best"), Money::from_cents(-2249));
        assert_eq!(ledger.balance("seller:acme"), Money::from_cents(1974));
        assert_eq!(ledger.balance("platform:revenue"), Money::from_cents(275));
        assert_eq!(ledger.balances().iter().map(|(_, m)| *m).sum::<Money>(), Money::ZERO);
    }

    #[tokio::test]
    async fn a_lead_is_never_booked_twice() {
        let ledger = Ledger::in_memory();
        ledger.record_sale(sale("l_1", 100, 90)).await.unwrap();
        assert!(ledger.record_sale(sale("l_1", 100, 90)).await.is_err());
        assert_eq!(ledger.sale_count(), 1);
    }
}
