//! Where the books' entries become durable, and in which order changes run: the embedded stores (memory, the
//! local journal) and PostgreSQL (cluster mode). The books, their balances and the entry hook are [`Shared`]
//! with the PostgreSQL writer task, which applies entries itself.

use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use parking_lot::Mutex;

use super::books::Books;
use super::entry::Entry;
use super::journal::{Commit, Journal};
use super::postgres::PgLedger;
use super::LedgerError;
use crate::domain::money::Money;

/// Sees the books change (cluster mode's local views of caps, duplicates and pauses follow every node's
/// entries through it).
pub trait LedgerObserver: Send + Sync {
    /// Called with every entry just before it is applied, under the books' lock: it must be quick and must not
    /// touch the ledger.
    fn entry(&self, entry: &Entry);
    /// The books were replaced whole from the ledger of record; called without the books' lock.
    fn rebuilt(&self) {}
    /// This node's own entries, once the ledger of record committed them; called without the books' lock.
    fn committed(&self, _entries: &[Entry]) {}
}

/// Every account's balance, written under the books' lock and read without it: the balance gate reads one per
/// buyer per auction and must not queue behind unrelated sales.
#[derive(Default)]
pub struct Balances(DashMap<String, Money>);

impl Balances {
    /// An account's balance (zero for an account that never moved).
    pub fn get(&self, account: &str) -> Money {
        self.0.get(account).map(|m| *m).unwrap_or_default()
    }

    pub(super) fn all(&self) -> Vec<(String, Money)> {
        self.0.iter().map(|e| (e.key().clone(), *e.value())).collect()
    }

    fn add(&self, account: &str, amount: Money) {
        match self.0.get_mut(account) {
            Some(mut balance) => *balance += amount,
            None => *self.0.entry(account.to_owned()).or_default() += amount,
        }
    }
}

/// What the ledger and its store share.
#[derive(Default)]
pub struct Shared {
    pub(super) books: Mutex<Books>,
    pub(super) balances: Balances,
    observer: OnceLock<Arc<dyn LedgerObserver>>,
}

impl Shared {
    pub(crate) fn new(books: Books) -> Shared {
        let shared = Shared::default();
        for transaction in &books.transactions {
            for (account, amount) in &transaction.postings {
                shared.balances.add(account, *amount);
            }
        }
        *shared.books.lock() = books;
        shared
    }

    pub(super) fn set_observer(&self, observer: Arc<dyn LedgerObserver>) {
        if self.observer.set(observer).is_err() {
            tracing::error!("the ledger's observer is set once; a second one is ignored");
        }
    }

    /// Applies an entry to the books (locked by the caller) and moves the balances. The entry was checked by
    /// its change (or comes from the ledger of record, where it was), so it applies.
    pub(super) fn apply(&self, books: &mut Books, entry: Entry) {
        if let Some(observer) = self.observer.get() {
            observer.entry(&entry);
        }
        let transaction = books.apply(entry).expect("an entry that was checked applies");
        if let Some(transaction) = transaction {
            debug_assert_eq!(transaction.postings.iter().map(|(_, m)| *m).sum::<Money>(), Money::ZERO);
            for (account, amount) in &transaction.postings {
                self.balances.add(account, *amount);
            }
        }
    }

    /// Tells the observer of this node's entries the ledger of record committed.
    pub(super) fn committed(&self, entries: &[Entry]) {
        if let Some(observer) = self.observer.get() {
            observer.committed(entries);
        }
    }

    /// Replaces the books whole (cluster mode, after the node's copy could not be trusted).
    pub(super) fn replace(&self, books: Books) {
        let rebuilt = Shared::new(books);
        let mut mine = self.books.lock();
        self.balances.0.clear();
        for (account, amount) in rebuilt.balances.all() {
            self.balances.add(&account, amount);
        }
        *mine = std::mem::take(&mut *rebuilt.books.lock());
        drop(mine);
        if let Some(observer) = self.observer.get() {
            observer.rebuilt();
        }
    }
}

/// Where entries go.
pub(super) enum Store {
    /// Nowhere: unit tests and benches.
    Memory,
    /// The local journal under `data_dir` (one node).
    Journal(Journal),
    /// The exchange's ledger in PostgreSQL (cluster mode).
    Postgres(PgLedger),
}

impl Store {
    /// Runs `change` in this store's order; answers once its entries are durable.
    pub(super) async fn change<T, E>(
        &self,
        shared: &Arc<Shared>,
        change: impl FnOnce(&Books, &Balances) -> Result<(Vec<Entry>, T), E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<LedgerError> + Send + 'static,
    {
        let journal = match self {
            Store::Postgres(pg) => return pg.change(change).await,
            Store::Journal(journal) => Some(journal),
            Store::Memory => None,
        };
        let (commit, answer) = {
            let mut books = shared.books.lock();
            let (entries, answer) = change(&books, &shared.balances)?;
            // A change that records nothing may still answer with what it read (a repeated deposit answers the
            // first one): it waits for every record already enqueued, so nobody is told of one before it is
            // durable.
            let mut commit: Option<Commit> = journal.filter(|_| entries.is_empty()).map(Journal::durable);
            for entry in entries {
                // Enqueued under the books' lock: the journal's order is the books' order. Only the last commit
                // is awaited: a record is durable once every later one is.
                let payload = journal.map(|_| serde_json::to_vec(&entry).expect("entries serialize"));
                shared.apply(&mut books, entry);
                commit = journal.zip(payload).map(|(journal, payload)| journal.append(payload));
            }
            (commit, answer)
        };
        if let Some(commit) = commit {
            commit.await.map_err(|error| E::from(LedgerError::from(error)))?;
        }
        Ok(answer)
    }
}
