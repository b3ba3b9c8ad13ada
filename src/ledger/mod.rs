//! The ledger: double-entry accounts in exact decimals, returns, and the journal that makes them durable
//! (API.md sections 4 and 6).
//!
//! Every change is an [`Entry`] produced by a *change*: a function that reads the books, checks what it must
//! (a lead sold once, a payout the seller is owed…) and returns the entries to record with its answer. The
//! [`Store`](store) decides the order changes run in and makes their entries durable:
//! - embedded (the default): under the books' lock the change runs, its entries are applied and handed to the
//!   local journal, so the journal's order is the books' order; the caller waits for the group commit;
//! - cluster mode: each node's writer runs the changes that arrived together inside one PostgreSQL
//!   transaction holding the exchange's ledger lock, after catching its books up with every other node's
//!   entries, so every node applies every entry in one order (see [`postgres`]).
//!
//! A reader sees a change a little before it is durable; nobody is *told* of it before it is. In cluster mode
//! [`Ledger::sync`] catches a node's books up before a read, so a read reflects every write answered anywhere
//! before it began.

mod books;
mod entry;
pub mod journal;
pub mod postgres;
pub mod report;
pub mod return_rates;
pub mod statement;
mod store;
pub mod unbooked;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use tokio::time::Instant;

use chrono::{DateTime, Utc};
use serde_json::Value;

pub use books::{
    buyer_account, seller_account, Books, SoldLead, Transaction, TransactionKind, DEPOSITS, PAYOUTS, REVENUE,
};
pub use entry::{Decision, Deposit, Entry, KeyedMove, Payout, Return, Sale, Terms};
use journal::{Journal, JournalError, JournalOptions};
pub use store::LedgerObserver;
use store::{Balances, Shared, Store};
use unbooked::{Unbooked, UnbookedSales};

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
    /// The ledger of record (PostgreSQL, in cluster mode) cannot be reached: nothing was recorded.
    #[error("the ledger store is unavailable: {0}")]
    Unavailable(String),
    /// The ledger of record went away while a change was being committed and could not be asked afterwards:
    /// the change may or may not have been recorded (the node's books are rebuilt from the log, so reads
    /// show which once it answers).
    #[error("the ledger store went away while committing; the outcome is unknown: {0}")]
    OutcomeUnknown(String),
    /// An `Idempotency-Key` already used on this account for a different amount or reference.
    #[error("Idempotency-Key {key} was already used on this account for {amount} (reference {reference:?})")]
    KeyReused { key: String, amount: Money, reference: Option<String> },
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

/// The books, their balances and the store that makes them durable.
pub struct Ledger {
    shared: Arc<Shared>,
    store: Store,
    /// Cluster mode: accepted sales PostgreSQL could not book yet, kept in the node's directory.
    unbooked: Option<UnbookedSales>,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::in_memory()
    }
}

impl Ledger {
    /// Books kept in memory only (unit tests and benches).
    pub fn in_memory() -> Ledger {
        Ledger { shared: Arc::default(), store: Store::Memory, unbooked: None }
    }

    /// Books that are a replica of the exchange's ledger in PostgreSQL (cluster mode), already loaded.
    pub(crate) fn replica(shared: Arc<Shared>, store: postgres::PgLedger) -> Ledger {
        Ledger { shared, store: Store::Postgres(store), unbooked: None }
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
        let recovery = Recovery {
            entries: replay.records.len(),
            from_snapshot: replay.snapshot.is_some(),
            warnings: replay.warnings,
            took: started.elapsed(),
        };
        let ledger = Ledger { shared: Arc::new(Shared::new(books)), store: Store::Journal(journal), unbooked: None };
        Ok((ledger, recovery))
    }

    /// Shows `observer` every entry applied from now on (see [`LedgerObserver`]). Cluster mode uses it to keep
    /// each node's local view of caps, duplicates and pauses current with what every node records.
    pub fn set_observer(&self, observer: Arc<dyn LedgerObserver>) {
        self.shared.set_observer(observer);
    }

    /// The PostgreSQL store, in cluster mode.
    pub fn postgres(&self) -> Option<&postgres::PgLedger> {
        match &self.store {
            Store::Postgres(pg) => Some(pg),
            Store::Memory | Store::Journal(_) => None,
        }
    }

    /// Catches the books up with every entry recorded anywhere before this call (cluster mode; embedded books
    /// are always current). Call it before a read that must reflect every write already answered.
    pub async fn sync(&self) -> Result<(), LedgerError> {
        match &self.store {
            Store::Postgres(pg) => pg.sync(&self.shared).await,
            Store::Memory | Store::Journal(_) => Ok(()),
        }
    }

    /// Whether the ledger of record answers (always, for embedded books).
    pub fn is_available(&self) -> bool {
        match &self.store {
            Store::Postgres(pg) => pg.is_available(),
            Store::Memory | Store::Journal(_) => true,
        }
    }

    /// Runs a change in the store's order and answers once its entries are durable (see the module doc).
    async fn change<T, E>(
        &self,
        change: impl FnOnce(&Books, &Balances) -> Result<(Vec<Entry>, T), E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
    {
        self.store.change(&self.shared, change).await
    }

    /// Writes the whole books as a snapshot when start-up had many entries to replay, so the next start-up
    /// reads one snapshot instead; the journal then drops the segments it covers.
    pub async fn snapshot_if_long(&self, recovery: &Recovery) -> Result<(), LedgerError> {
        let Store::Journal(journal) = &self.store else { return Ok(()) };
        if recovery.entries < SNAPSHOT_AFTER_ENTRIES {
            return Ok(());
        }
        let commit = {
            let books = self.shared.books.lock();
            journal.snapshot(serde_json::to_vec(&*books).expect("books serialize"))
        };
        Ok(commit.await?)
    }

    /// Flushes the journal (or the PostgreSQL writer) and stops it; later changes fail.
    pub async fn close(&self) -> Result<(), LedgerError> {
        match &self.store {
            Store::Journal(journal) => Ok(journal.close().await?),
            Store::Postgres(pg) => {
                pg.close().await;
                Ok(())
            }
            Store::Memory => Ok(()),
        }
    }

    /// Records a sale made under the buyer's terms of `config_revision`; resolves once it is on disk. Returns
    /// the transaction id. `terms` renders the buyer's terms; it runs only for the first sale to that buyer
    /// under a revision, which records them once for every later sale to name.
    pub async fn record_sale(
        &self,
        mut sale: Sale,
        config_revision: &str,
        terms: impl FnOnce() -> Value + Send + 'static,
    ) -> Result<String, LedgerError> {
        let transaction_id = new_id("t_");
        let config_revision = config_revision.to_owned();
        let answer = transaction_id.clone();
        self.change(move |books, _| {
            if books.leads.contains_key(&sale.lead_id) {
                return Err(LedgerError::DuplicateSale(sale.lead_id));
            }
            let mut entries = Vec::with_capacity(2);
            sale.terms_id = match books.terms_in_force(&config_revision, &sale.buyer) {
                Some(terms_id) => terms_id,
                None => {
                    // Recorded just before the sale, which names it; one commit covers both.
                    let terms_id = books.terms.len() as u64;
                    let buyer = sale.buyer.clone();
                    entries.push(Entry::Terms { terms: Terms { terms_id, buyer, config_revision, terms: terms() } });
                    terms_id
                }
            };
            entries.push(Entry::Sale { transaction_id, sale });
            Ok((entries, answer))
        })
        .await
    }

    /// Records a sale a buyer has accepted: the lead is delivered, so the sale is booked whatever fails now.
    /// When the ledger of record (cluster mode) cannot take it, it is written to the node's directory (see
    /// [`unbooked`]) and retried, with backoff, until it is booked: the answer waits for that, and a node that
    /// stops or dies first books it when it starts again ([`Ledger::book_unbooked_sales_in`]).
    pub async fn record_accepted_sale(
        &self,
        sale: Sale,
        config_revision: &str,
        buyer: &Arc<Buyer>,
    ) -> Result<String, LedgerError> {
        let terms_of = Arc::clone(buyer);
        let why = match self.record_sale(sale.clone(), config_revision, move || terms_of.terms()).await {
            Err(LedgerError::Unavailable(why) | LedgerError::OutcomeUnknown(why)) => why,
            other => return other,
        };
        let lead_id = sale.lead_id.clone();
        tracing::warn!(%lead_id, reason = %why, "sale not yet booked; kept in the node's directory and retried");
        let unbooked = Unbooked { sale, revision: config_revision.to_owned(), terms: buyer.terms() };
        if let Some(file) = &self.unbooked {
            if let Err(error) = file.keep(&unbooked).await {
                tracing::error!(%lead_id, %error, "the unbooked sale could not be written down; retried from memory");
            }
        }
        let booked = self.book_until_booked(&unbooked).await;
        if let (Ok(_), Some(file)) = (&booked, &self.unbooked) {
            if let Err(error) = file.booked(&lead_id).await {
                // Harmless: the next start finds the sale in the ledger and counts it as booked.
                tracing::warn!(%lead_id, %error, "a booked sale could not be noted as booked in the file");
            }
        }
        booked
    }

    /// Cluster mode, at start: books the sales an earlier run of this node kept in `dir` unbooked (retrying
    /// until PostgreSQL takes them), then keeps the sales it cannot book from now on there. Answers how many it
    /// booked.
    pub async fn book_unbooked_sales_in(&mut self, dir: &Path) -> Result<usize, LedgerError> {
        let file_error =
            |e: std::io::Error| LedgerError::Unavailable(format!("{}: {e}", dir.join(unbooked::FILE_NAME).display()));
        let (file, kept) = UnbookedSales::open(dir).map_err(file_error)?;
        let (mut booked, mut left) = (0, Vec::new());
        for unbooked in kept {
            let lead_id = unbooked.sale.lead_id.clone();
            match self.book_until_booked(&unbooked).await {
                Ok(_) => {
                    booked += 1;
                    tracing::info!(%lead_id, "a sale kept while PostgreSQL was away is booked");
                }
                Err(error) => {
                    tracing::error!(%lead_id, %error, "a kept sale cannot be booked; it stays in the file");
                    left.push(unbooked);
                }
            }
        }
        file.rewrite(&left).map_err(file_error)?;
        self.unbooked = Some(file);
        Ok(booked)
    }

    /// Books a delivered sale whose earlier attempt failed or may have committed, retrying while the ledger of
    /// record is away (backoff to 2 s) however long that takes. Finding the lead sold means that attempt did
    /// commit: the sale is booked (its transaction id is not known here, so the answer is empty).
    async fn book_until_booked(&self, unbooked: &Unbooked) -> Result<String, LedgerError> {
        let mut wait = StdDuration::from_millis(50);
        loop {
            let terms = unbooked.terms.clone();
            match self.record_sale(unbooked.sale.clone(), &unbooked.revision, move || terms).await {
                Err(LedgerError::Unavailable(_) | LedgerError::OutcomeUnknown(_)) => {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(StdDuration::from_secs(2));
                }
                Err(LedgerError::DuplicateSale(_)) => return Ok(String::new()),
                other => return other,
            }
        }
    }

    /// Records a deposit into a buyer's account; resolves once it is on disk. A deposit whose
    /// `idempotency_key` already made one for this buyer records nothing and answers that one (the same
    /// amount and reference), or [`LedgerError::KeyReused`] (another).
    pub async fn record_deposit(&self, deposit: Deposit) -> Result<Moved, LedgerError> {
        self.change(move |books, balances| {
            let account = buyer_account(&deposit.buyer);
            if let Some(first) =
                keyed_repeat(books, &account, &deposit.idempotency_key, deposit.amount, &deposit.reference)?
            {
                return Ok((Vec::new(), Moved::replayed(first, balances.get(&account))));
            }
            let transaction_id = new_id("t_");
            let moved = Moved {
                id: deposit.deposit_id.clone(),
                transaction_id: transaction_id.clone(),
                balance: balances.get(&account) + deposit.amount,
                replayed: false,
            };
            Ok((vec![Entry::Deposit { transaction_id, deposit }], moved))
        })
        .await
    }

    /// Records a payout to a seller, unless it is more than the seller's account holds; resolves once it is
    /// on disk. A repeat under its `idempotency_key` is answered as a deposit's is.
    pub async fn record_payout(&self, payout: Payout) -> Result<Moved, LedgerError> {
        self.change(move |books, balances| {
            let account = seller_account(&payout.seller);
            let owed = balances.get(&account);
            if let Some(first) =
                keyed_repeat(books, &account, &payout.idempotency_key, payout.amount, &payout.reference)?
            {
                return Ok((Vec::new(), Moved::replayed(first, owed)));
            }
            if payout.amount > owed {
                return Err(LedgerError::InsufficientBalance { owed });
            }
            let transaction_id = new_id("t_");
            let moved = Moved {
                id: payout.payout_id.clone(),
                transaction_id: transaction_id.clone(),
                balance: owed - payout.amount,
                replayed: false,
            };
            Ok((vec![Entry::Payout { transaction_id, payout }], moved))
        })
        .await
    }

    /// Pauses or resumes a buyer through the API and records it; resolves once it is durable. `change` makes
    /// the change (or refuses it) and returns the standing it leaves: it runs in the ledger's order, after
    /// every earlier pause or resume of any node has applied, so of two racing changes the ledger ends with
    /// the one in force; a standing of `None` (the buyer follows its config) records nothing.
    pub async fn record_standing<E>(
        &self,
        buyer: &str,
        change: impl FnOnce() -> Result<Option<Option<PausedBy>>, E> + Send + 'static,
    ) -> Result<(), E>
    where
        E: From<LedgerError> + Send + 'static,
    {
        let buyer = buyer.to_owned();
        self.change(move |_, _| {
            let entries = match change()? {
                Some(paused_by) => vec![Entry::Standing { buyer, paused_by, at: Utc::now() }],
                None => Vec::new(),
            };
            Ok((entries, ()))
        })
        .await
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
        let (buyer_id, policy) = (buyer.id.clone(), buyer.returns.clone());
        self.change(move |books, _| {
            let lead = books.lead(&request.lead_id).filter(|lead| lead.sale.buyer == buyer_id);
            let sale = &lead.ok_or(ReturnError::UnknownLead)?.sale;
            if lead.is_some_and(|lead| lead.return_id.is_some()) {
                return Err(ReturnError::AlreadyReturned);
            }
            let since = now - RATE_CAP_PERIOD;
            let recent = recent_returns(books, &buyer_id, since);
            let (status, decision_reason) = decide(&policy, sale.at, now, &request.reason, recent, sale.at >= since);
            let approved = status == ReturnStatus::Approved;
            let filed = Return {
                return_id: new_id("r_"),
                lead_id: request.lead_id,
                buyer: buyer_id,
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
            Ok((vec![Entry::Return { filed: filed.clone() }], filed))
        })
        .await
    }

    /// The operator's decision on a return pending review; approving credits it as an approved return does.
    pub async fn decide_return(
        &self,
        return_id: &str,
        approve: bool,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Return, ReturnError> {
        let return_id = return_id.to_owned();
        self.change(move |books, _| {
            let filed = books.returns.get(&return_id).ok_or(ReturnError::UnknownReturn)?;
            if filed.status != ReturnStatus::PendingReview {
                return Err(ReturnError::AlreadyDecided);
            }
            let decision =
                Decision { return_id, approve, note, at: now, transaction_id: approve.then(|| new_id("t_")) };
            // The answer is the return as the decision will leave it, by the rule `Books::apply` uses.
            let decided = books::decided_return(filed, &books.leads[&filed.lead_id].sale, &decision);
            Ok((vec![Entry::Decision { decision }], decided))
        })
        .await
    }

    /// An account's balance (zero for an account that never moved).
    pub fn balance(&self, account: &str) -> Money {
        self.shared.balances.get(account)
    }

    /// Every account with its balance, sorted by account.
    pub fn balances(&self) -> Vec<(String, Money)> {
        let _books = self.shared.books.lock();
        let mut all = self.shared.balances.all();
        all.sort();
        all
    }

    /// Reads the books under their lock. Keep `read` short: sales wait for it.
    pub fn read<R>(&self, read: impl FnOnce(&Books) -> R) -> R {
        read(&self.shared.books.lock())
    }

    /// How many leads were sold.
    pub fn sale_count(&self) -> usize {
        self.shared.books.lock().leads.len()
    }
}

/// What a deposit or payout answers: its id, its transaction and the account's balance after it — or, for a
/// repeat of a keyed request, the first one's id and transaction with the balance now.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    pub id: String,
    pub transaction_id: String,
    pub balance: Money,
    /// A repeat of a request already recorded under its `Idempotency-Key`: nothing was recorded now.
    pub replayed: bool,
}

impl Moved {
    fn replayed(first: &KeyedMove, balance: Money) -> Moved {
        Moved { id: first.id.clone(), transaction_id: first.transaction_id.clone(), balance, replayed: true }
    }
}

/// The move already made under `key` on `account`, if this request repeats it; another request under the
/// same key is refused.
fn keyed_repeat<'b>(
    books: &'b Books,
    account: &str,
    key: &Option<String>,
    amount: Money,
    reference: &Option<String>,
) -> Result<Option<&'b KeyedMove>, LedgerError> {
    let Some(first) = key.as_deref().and_then(|key| books.keyed_move(account, key)) else { return Ok(None) };
    if !first.is_same_request(amount, reference) {
        return Err(LedgerError::KeyReused {
            key: key.clone().unwrap_or_default(),
            amount: first.amount,
            reference: first.reference.clone(),
        });
    }
    Ok(Some(first))
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
