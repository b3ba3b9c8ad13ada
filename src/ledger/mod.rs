//! The ledger: double-entry accounts in exact decimals (API.md section 6).
//!
//! The auction reaches money only through [`Ledger::record_sale`], whose future resolves once the sale is
//! recorded. Today the books live in memory; the durable journal (group commit, replay) slots in behind the
//! same calls, so the auction does not change when it lands.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
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

    /// The postings of a deposit D into a buyer's wallet: `external:deposits` −D, buyer +D.
    fn deposit(deposit: &Deposit) -> Transaction {
        Transaction {
            id: new_id("t_"),
            at: deposit.at,
            kind: "deposit",
            lead_id: None,
            postings: vec![
                ("external:deposits".to_owned(), -deposit.amount),
                (format!("buyer:{}", deposit.buyer), deposit.amount),
            ],
        }
    }
}

/// Money a buyer paid into its wallet (or against its invoice).
#[derive(Debug, Clone, PartialEq)]
pub struct Deposit {
    pub deposit_id: String,
    pub buyer: String,
    pub amount: Money,
    pub reference: Option<String>,
    pub at: DateTime<Utc>,
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
    /// Every account's balance, written under the books' lock and read without it: the balance gate reads
    /// one per buyer per auction and must not queue behind unrelated sales.
    balances: DashMap<String, Money>,
}

#[derive(Default)]
struct Books {
    transactions: Vec<Transaction>,
    sales: HashMap<String, Sale>,
    deposits: Vec<Deposit>,
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
        self.apply(&mut books, transaction);
        books.sales.insert(sale.lead_id.clone(), sale);
        Ok(id)
    }

    /// Records a deposit into a buyer's account; resolves once it is recorded (durably, once the journal
    /// lands). Returns the buyer's balance after it.
    pub async fn record_deposit(&self, deposit: Deposit) -> Money {
        let mut books = self.books.lock();
        let account = format!("buyer:{}", deposit.buyer);
        self.apply(&mut books, Transaction::deposit(&deposit));
        books.deposits.push(deposit);
        self.balance(&account)
    }

    /// Posts a balanced transaction. Called with the books locked, so transactions apply in one order.
    fn apply(&self, books: &mut Books, transaction: Transaction) {
        debug_assert_eq!(transaction.postings.iter().map(|(_, m)| *m).sum::<Money>(), Money::ZERO);
        for (account, amount) in &transaction.postings {
            *self.balances.entry(account.clone()).or_default() += *amount;
        }
        books.transactions.push(transaction);
    }

    /// An account's balance (zero for an account that never moved).
    pub fn balance(&self, account: &str) -> Money {
        self.balances.get(account).map(|m| *m).unwrap_or_default()
    }

    /// Every account with its balance, sorted by account.
    pub fn balances(&self) -> Vec<(String, Money)> {
        let _books = self.books.lock();
        let mut all: Vec<_> = self.balances.iter().map(|e| (e.key().clone(), *e.value())).collect();
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
    async fn a_deposit_credits_the_buyer_and_keeps_the_sum_at_zero() {
        let ledger = Ledger::in_memory();
        let deposit = |cents| Deposit {
            deposit_id: "d_1".into(),
            buyer: "best".into(),
            amount: Money::from_cents(cents),
            reference: None,
            at: Utc::now(),
        };
        assert_eq!(ledger.record_deposit(deposit(50_000)).await, Money::from_cents(50_000));
        ledger.record_sale(sale("l_1", 1250, 1125)).await.unwrap();
        assert_eq!(ledger.record_deposit(deposit(100)).await, Money::from_cents(48_850));
        assert_eq!(ledger.balance("external:deposits"), Money::from_cents(-50_100));
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
