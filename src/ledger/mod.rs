//! The ledger: double-entry accounts in exact decimals, returns, and the journal that makes them durable
//! (API.md sections 4 and 6).
//!
//! Every change is an [`Entry`]: under the books' lock it is applied and handed to the journal, so the journal's
//! order is the books' order; the lock is released and the caller waits for the group commit before it
//! answers. A reader sees a change a few hundred microseconds before it is on disk; nobody is *told* of it
//! before it is.

mod books;
mod entry;
pub mod journal;
pub mod report;
pub mod return_rates;
pub mod statement;

use std::path::Path;
use std::time::Duration as StdDuration;

use tokio::time::Instant;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use parking_lot::Mutex;
use serde_json::Value;

pub use books::{
    buyer_account, seller_account, Books, SoldLead, Transaction, TransactionKind, DEPOSITS, PAYOUTS, REVENUE,
};
pub use entry::{Decision, Deposit, Entry, Payout, Return, Sale, Terms};
use journal::{Commit, Journal, JournalError, JournalOptions};

use crate::buyers::PausedBy;
use crate::config::Buyer;
use crate::domain::money::Money;
use crate::domain::returns::{decide, RecentReturns, ReturnStatus, RATE_CAP_PERIOD};
use crate::ids::new_id;

/// Replaying more entries than this at start-up writes a snapshot, so the next start reads the snapshot
/// instead of the entries.
const SNAPSHOT_AFTER_ENTRIES: usize = 50_000;

/// Why the ledger could not record something.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("lead {0} is already sold")]
    DuplicateSale(String),
    #[error("the seller is owed {owed}: a payout cannot be more")]
    InsufficientBalance { owed: Money },
    #[error("the journal could not record it: {0}")]
    Journal(#[from] JournalError),
    #[error("the journal under {dir} is inconsistent at entry {index}: {problem}")]
    Replay { dir: String, index: usize, problem: String },
}

/// Why a return or a decision on one was refused (API.md section 4, rule 1, and section 5).
#[derive(Debug, thiserror::Error)]
pub enum ReturnError {
    #[error("returns are disabled for this buyer")]
    Disabled,
    #[error("no such lead")]
    UnknownLead,
    #[error("no such return")]
    UnknownReturn,
    #[error("this lead already has a return")]
    AlreadyReturned,
    #[error("this return was already decided")]
    AlreadyDecided,
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// A buyer's request to return a lead.
#[derive(Debug, Clone)]
pub struct ReturnRequest {
    pub lead_id: String,
    pub reason: String,
    pub note: Option<String>,
}

/// What start-up found in the journal.
#[derive(Debug, Default)]
pub struct Recovery {
    pub entries: usize,
    pub from_snapshot: bool,
    pub warnings: Vec<String>,
    pub took: StdDuration,
}

/// The books, their balances and their journal.
#[derive(Default)]
pub struct Ledger {
    books: Mutex<Books>,
    /// Every account's balance, written under the books' lock and read without it: the balance gate reads
    /// one per buyer per auction and must not queue behind unrelated sales.
    balances: DashMap<String, Money>,
    journal: Option<Journal>,
}

impl Ledger {
    /// Books kept in memory only (unit tests and benches).
    pub fn in_memory() -> Ledger {
        Ledger::default()
    }

    /// Opens the journal under `dir` and rebuilds the books from it.
    pub fn open(dir: &Path, options: JournalOptions) -> Result<(Ledger, Recovery), LedgerError> {
        let started = Instant::now();
        let (journal, replay) = Journal::open(dir, options)?;
        let inconsistent =
            |index: usize, problem: String| LedgerError::Replay { dir: dir.display().to_string(), index, problem };
        let mut books = match &replay.snapshot {
            Some(bytes) => Books::from_snapshot(bytes).map_err(|e| inconsistent(0, format!("snapshot: {e}")))?,
            None => Books::default(),
        };
        for (index, bytes) in replay.records.iter().enumerate() {
            let entry: Entry = serde_json::from_slice(bytes).map_err(|e| inconsistent(index + 1, e.to_string()))?;
            books.apply(entry).map_err(|e| inconsistent(index + 1, e.to_string()))?;
        }
        let balances = DashMap::new();
        for transaction in &books.transactions {
            for (account, amount) in &transaction.postings {
                *balances.entry(account.clone()).or_insert(Money::ZERO) += *amount;
            }
        }
        let recovery = Recovery {
            entries: replay.records.len(),
            from_snapshot: replay.snapshot.is_some(),
            warnings: replay.warnings,
            took: started.elapsed(),
        };
        let ledger = Ledger { books: Mutex::new(books), balances, journal: Some(journal) };
        Ok((ledger, recovery))
    }

    /// Writes the whole books as a snapshot when start-up had many entries to replay, so the next start-up
    /// reads one snapshot instead; the journal then drops the segments it covers.
    pub async fn snapshot_if_long(&self, recovery: &Recovery) -> Result<(), LedgerError> {
        let Some(journal) = &self.journal else { return Ok(()) };
        if recovery.entries < SNAPSHOT_AFTER_ENTRIES {
            return Ok(());
        }
        let commit = {
            let books = self.books.lock();
            journal.snapshot(serde_json::to_vec(&*books).expect("books serialize"))
        };
        Ok(commit.await?)
    }

    /// Flushes the journal and stops its writer; later changes fail.
    pub async fn close(&self) -> Result<(), LedgerError> {
        match &self.journal {
            Some(journal) => Ok(journal.close().await?),
            None => Ok(()),
        }
    }

    /// Records a sale made under the buyer's terms of `config_revision`; resolves once it is on disk. Returns
    /// the transaction id. `terms` renders the buyer's terms; it runs only for the first sale to that buyer
    /// under a revision, which records them once for every later sale to name.
    pub async fn record_sale(
        &self,
        mut sale: Sale,
        config_revision: &str,
        terms: impl FnOnce() -> Value,
    ) -> Result<String, LedgerError> {
        let transaction_id = new_id("t_");
        let commit = {
            let mut books = self.books.lock();
            if books.leads.contains_key(&sale.lead_id) {
                return Err(LedgerError::DuplicateSale(sale.lead_id));
            }
            sale.terms_id = match books.terms_in_force(config_revision, &sale.buyer) {
                Some(terms_id) => terms_id,
                None => {
                    let terms_id = books.terms.len() as u64;
                    let buyer = sale.buyer.clone();
                    let terms = Terms { terms_id, buyer, config_revision: config_revision.to_owned(), terms: terms() };
                    // Not awaited on its own: the sale's commit below comes after it, so it covers both.
                    drop(self.record(&mut books, Entry::Terms { terms }));
                    terms_id
                }
            };
            self.record(&mut books, Entry::Sale { transaction_id: transaction_id.clone(), sale })
        };
        wait(commit).await?;
        Ok(transaction_id)
    }

    /// Records a deposit into a buyer's account; resolves once it is on disk, with the balance after it.
    pub async fn record_deposit(&self, deposit: Deposit) -> Result<Money, LedgerError> {
        let account = buyer_account(&deposit.buyer);
        let (commit, balance) = {
            let mut books = self.books.lock();
            let commit = self.record(&mut books, Entry::Deposit { transaction_id: new_id("t_"), deposit });
            (commit, self.balance(&account))
        };
        wait(commit).await?;
        Ok(balance)
    }

    /// Records a payout to a seller, unless it is more than the seller's account holds; resolves once it is
    /// on disk, with the seller's balance after it.
    pub async fn record_payout(&self, payout: Payout) -> Result<Money, LedgerError> {
        let account = seller_account(&payout.seller);
        let (commit, balance) = {
            let mut books = self.books.lock();
            let owed = self.balance(&account);
            if payout.amount > owed {
                return Err(LedgerError::InsufficientBalance { owed });
            }
            let commit = self.record(&mut books, Entry::Payout { transaction_id: new_id("t_"), payout });
            (commit, self.balance(&account))
        };
        wait(commit).await?;
        Ok(balance)
    }

    /// Records a buyer's pause (`Some`) or resume (`None`) made through the API; resolves once it is on
    /// disk. `standing` is read under the books' lock, so of two racing changes the journal ends with the
    /// one in force; `None` from it (the buyer follows its config) records nothing.
    pub async fn record_standing(
        &self,
        buyer: &str,
        standing: impl FnOnce() -> Option<Option<PausedBy>>,
    ) -> Result<(), LedgerError> {
        let commit = {
            let mut books = self.books.lock();
            let Some(paused_by) = standing() else { return Ok(()) };
            self.record(&mut books, Entry::Standing { buyer: buyer.to_owned(), paused_by, at: Utc::now() })
        };
        Ok(wait(commit).await?)
    }

    /// Files a buyer's return and decides it by its policy (API.md section 4, rules in order); an approved
    /// return credits the price back and claws the seller's payout back at once. Resolves once on disk.
    pub async fn file_return(
        &self,
        buyer: &Buyer,
        request: ReturnRequest,
        now: DateTime<Utc>,
    ) -> Result<Return, ReturnError> {
        if !buyer.returns.enabled {
            return Err(ReturnError::Disabled);
        }
        let (filed, commit) = {
            let mut books = self.books.lock();
            let lead = books.lead(&request.lead_id).filter(|lead| lead.sale.buyer == buyer.id);
            let sale = &lead.ok_or(ReturnError::UnknownLead)?.sale;
            if lead.is_some_and(|lead| lead.return_id.is_some()) {
                return Err(ReturnError::AlreadyReturned);
            }
            let since = now - RATE_CAP_PERIOD;
            let recent = recent_returns(&books, &buyer.id, since);
            let (status, decision_reason) =
                decide(&buyer.returns, sale.at, now, &request.reason, recent, sale.at >= since);
            let approved = status == ReturnStatus::Approved;
            let filed = Return {
                return_id: new_id("r_"),
                lead_id: request.lead_id,
                buyer: buyer.id.clone(),
                reason: request.reason,
                note: request.note,
                status,
                decision_reason,
                created_at: now,
                decided_at: (status != ReturnStatus::PendingReview).then_some(now),
                decision_note: None,
                credit: if approved { sale.price } else { Money::ZERO },
                clawback: if approved { sale.payout } else { Money::ZERO },
                transaction_id: approved.then(|| new_id("t_")),
            };
            let commit = self.record(&mut books, Entry::Return { filed: filed.clone() });
            (filed, commit)
        };
        wait(commit).await.map_err(LedgerError::from)?;
        Ok(filed)
    }

    /// The operator's decision on a return pending review; approving credits it as an approved return does.
    pub async fn decide_return(
        &self,
        return_id: &str,
        approve: bool,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Return, ReturnError> {
        let (decided, commit) = {
            let mut books = self.books.lock();
            let filed = books.returns.get(return_id).ok_or(ReturnError::UnknownReturn)?;
            if filed.status != ReturnStatus::PendingReview {
                return Err(ReturnError::AlreadyDecided);
            }
            let decision = Decision {
                return_id: return_id.to_owned(),
                approve,
                note,
                at: now,
                transaction_id: approve.then(|| new_id("t_")),
            };
            let commit = self.record(&mut books, Entry::Decision { decision });
            (books.returns[return_id].clone(), commit)
        };
        wait(commit).await.map_err(LedgerError::from)?;
        Ok(decided)
    }

    /// Applies an entry to the books and the balances and hands it to the journal. Called with the books
    /// locked, after the caller checked that the entry applies, so entries apply in one order everywhere.
    fn record(&self, books: &mut Books, entry: Entry) -> Option<Commit> {
        let payload = self.journal.as_ref().map(|_| serde_json::to_vec(&entry).expect("entries serialize"));
        let transaction = books.apply(entry).expect("the caller checked that the entry applies");
        if let Some(transaction) = transaction {
            debug_assert_eq!(transaction.postings.iter().map(|(_, m)| *m).sum::<Money>(), Money::ZERO);
            for (account, amount) in &transaction.postings {
                *self.balances.entry(account.clone()).or_default() += *amount;
            }
        }
        self.journal.as_ref().zip(payload).map(|(journal, payload)| journal.append(payload))
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

    /// Reads the books under their lock. Keep `read` short: sales wait for it.
    pub fn read<R>(&self, read: impl FnOnce(&Books) -> R) -> R {
        read(&self.books.lock())
    }

    /// How many leads were sold.
    pub fn sale_count(&self) -> usize {
        self.books.lock().leads.len()
    }
}

/// Waits for a journal commit, if there is a journal.
async fn wait(commit: Option<Commit>) -> Result<(), JournalError> {
    match commit {
        Some(commit) => commit.await,
        None => Ok(()),
    }
}

/// The buyer's leads and counted returns since `since`, for the rate cap.
fn recent_returns(books: &Books, buyer: &str, since: DateTime<Utc>) -> RecentReturns {
    let delivered = books
        .leads_by_buyer
        .get(buyer)
        .map(|ids| ids.iter().rev().take_while(|id| books.leads[*id].sale.at >= since).count())
        .unwrap_or(0);
    let counted = books
        .returns_newest_first()
        .take_while(|filed| filed.created_at >= since)
        .filter(|filed| filed.buyer == buyer && filed.status != ReturnStatus::Rejected)
        .count();
    RecentReturns { delivered: delivered as u64, counted: counted as u64 }
}

#[cfg(test)]
mod tests;
