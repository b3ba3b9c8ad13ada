//! Ledger replay (`Ledger::open`) on whatever the journal hands back: well-formed entries that contradict
//! each other, amounts at the edge of the decimal type, edited bytes, arbitrary payloads and snapshots.
//!
//! Invariants: `open` never panics; it succeeds or fails with `LedgerError::Replay`; when it succeeds every
//! transaction balances, so the accounts sum to exactly zero, and a second open rebuilds the same balances.

use arbitrary::{Arbitrary, Unstructured};
use chrono::{DateTime, Duration, Utc};
use gavel::buyers::PausedBy;
use gavel::domain::money::Money;
use gavel::domain::returns::{DecisionReason, ReturnStatus};
use gavel::ledger::journal::{Journal, JournalOptions};
use gavel::ledger::{Books, Decision, Deposit, Entry, Ledger, LedgerError, Payout, Return, Sale, Terms};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

use crate::{block_on, now, Outcome};

#[derive(Arbitrary, Debug)]
enum Amount {
    Cents(i32),
    /// Any decimal the type holds, up to 28 digits.
    Decimal {
        lo: u32,
        mid: u32,
        hi: u32,
        negative: bool,
        scale: u8,
    },
}

/// One entry; ids are drawn from a few so that sales, returns and decisions meet.
#[derive(Arbitrary, Debug)]
enum EntryInput {
    Sale { lead: u8, buyer: u8, seller: u8, price: Amount, payout: Amount, hours: u8 },
    Deposit { buyer: u8, amount: Amount },
    Payout { seller: u8, amount: Amount },
    Return { return_id: u8, lead: u8, buyer: u8, status: u8, with_transaction: bool, hours: u8 },
    Decision { return_id: u8, approve: bool, with_transaction: bool },
    Standing { buyer: u8, paused_by: Option<u8> },
}

#[derive(Arbitrary, Debug)]
enum Payload {
    Entry(EntryInput),
    /// An entry's JSON with one byte overwritten.
    Edited {
        entry: EntryInput,
        at: u16,
        byte: u8,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Snapshot {
    /// Books built by applying entries (those that apply), optionally with their sold leads forgotten, so
    /// that returns point at leads the books do not have.
    Books {
        entries: Vec<EntryInput>,
        forget_leads: bool,
    },
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct LedgerInput {
    snapshot: Option<Snapshot>,
    records: Vec<Payload>,
}

/// Writes the input as a journal and opens a ledger on it (see the module doc); accepted when it replayed.
pub fn run(data: &[u8]) -> Outcome {
    let Ok(input) = LedgerInput::arbitrary_take_rest(Unstructured::new(data)) else { return Outcome::Skipped };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let options = JournalOptions { fsync: false, ..JournalOptions::default() };
    let (journal, _) = Journal::open(dir.path(), options.clone()).expect("a new journal");
    let mut commits = Vec::new();
    match input.snapshot {
        Some(snapshot) => commits.push(journal.snapshot(snapshot.bytes())),
        // Sales name the terms they were made under: a journal starts with the terms its first sale names.
        None => commits.push(journal.append(to_json(&terms_entry()))),
    }
    for payload in input.records.into_iter().take(64) {
        commits.push(journal.append(payload.bytes()));
    }
    block_on(async {
        for commit in commits {
            commit.await.expect("a commit to a healthy journal");
        }
        journal.close().await.expect("close");
    });

    let balances = match Ledger::open(dir.path(), options.clone()) {
        Ok((ledger, _)) => {
            let balances = ledger.balances();
            block_on(ledger.close()).expect("close the ledger");
            balances
        }
        Err(LedgerError::Replay { .. }) => return Outcome::Refused,
        Err(other) => panic!("replay failed with something other than an inconsistent journal: {other}"),
    };
    let total: Money = balances.iter().map(|(_, amount)| *amount).sum();
    assert_eq!(total, Money::ZERO, "the accounts do not sum to zero: {balances:?}");
    let (ledger, _) = Ledger::open(dir.path(), options).expect("a ledger that opened opens again");
    assert_eq!(ledger.balances(), balances, "a second replay rebuilds other balances");
    block_on(ledger.close()).expect("close the ledger");
    Outcome::Accepted
}

impl Amount {
    fn money(&self) -> Money {
        match *self {
            Amount::Cents(cents) => Money::from_cents(i64::from(cents)),
            Amount::Decimal { lo, mid, hi, negative, scale } => {
                Money::from_decimal_floor(Decimal::from_parts(lo, mid, hi, negative, u32::from(scale % 29)))
            }
        }
    }
}

/// The terms every generated sale is made under (id 0).
fn terms_entry() -> Entry {
    let terms = Terms { terms_id: 0, buyer: "b_0".to_owned(), config_revision: "rev".to_owned(), terms: Value::Null };
    Entry::Terms { terms }
}

fn id(prefix: &str, n: u8) -> String {
    format!("{prefix}{}", n % 4)
}

fn at(hours: u8) -> DateTime<Utc> {
    now() - Duration::hours(i64::from(hours))
}

impl EntryInput {
    fn is_bounded(&self) -> bool {
        let bounded = |amount: &Amount| matches!(amount, Amount::Cents(_));
        match self {
            EntryInput::Sale { price, payout, .. } => bounded(price) && bounded(payout),
            EntryInput::Deposit { amount, .. } | EntryInput::Payout { amount, .. } => bounded(amount),
            _ => true,
        }
    }

    fn entry(&self) -> Entry {
        match self {
            EntryInput::Sale { lead, buyer, seller, price, payout, hours } => Entry::Sale {
                transaction_id: id("t_s", *lead),
                sale: Sale {
                    lead_id: id("l_", *lead),
                    ping_id: id("p_", *lead),
                    campaign: "auto".to_owned(),
                    seller: id("s_", *seller),
                    buyer: id("b_", *buyer),
                    source: None,
                    price: price.money(),
                    payout: payout.money(),
                    at: at(*hours),
                    lead: Map::new(),
                    terms_id: 0,
                },
            },
            EntryInput::Deposit { buyer, amount } => Entry::Deposit {
                transaction_id: "t_d".to_owned(),
                deposit: Deposit {
                    deposit_id: "d_1".to_owned(),
                    buyer: id("b_", *buyer),
                    amount: amount.money(),
                    reference: None,
                    at: now(),
                    idempotency_key: None,
                },
            },
            EntryInput::Payout { seller, amount } => Entry::Payout {
                transaction_id: "t_p".to_owned(),
                payout: Payout {
                    payout_id: "po_1".to_owned(),
                    seller: id("s_", *seller),
                    amount: amount.money(),
                    reference: None,
                    at: now(),
                    idempotency_key: None,
                },
            },
            EntryInput::Return { return_id, lead, buyer, status, with_transaction, hours } => {
                let (status, decision_reason) = match status % 3 {
                    0 => (ReturnStatus::Approved, DecisionReason::AutoApproved),
                    1 => (ReturnStatus::PendingReview, DecisionReason::AutoApproved),
                    _ => (ReturnStatus::Rejected, DecisionReason::OutsideWindow),
                };
                Entry::Return {
                    filed: Return {
                        return_id: id("r_", *return_id),
                        lead_id: id("l_", *lead),
                        buyer: id("b_", *buyer),
                        reason: "disconnected".to_owned(),
                        note: None,
                        status,
                        decision_reason,
                        created_at: at(*hours),
                        decided_at: None,
                        decision_note: None,
                        credit: Money::ZERO,
                        clawback: Money::ZERO,
                        transaction_id: with_transaction.then(|| id("t_r", *return_id)),
                    },
                }
            }
            EntryInput::Decision { return_id, approve, with_transaction } => Entry::Decision {
                decision: Decision {
                    return_id: id("r_", *return_id),
                    approve: *approve,
                    note: None,
                    at: now(),
                    transaction_id: with_transaction.then(|| id("t_x", *return_id)),
                },
            },
            EntryInput::Standing { buyer, paused_by } => Entry::Standing {
                buyer: id("b_", *buyer),
                paused_by: paused_by.map(|p| match p % 3 {
                    0 => PausedBy::Config,
                    1 => PausedBy::Operator,
                    _ => PausedBy::Buyer,
                }),
                at: now(),
            },
        }
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("ledger types serialize")
}

impl Payload {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Payload::Entry(entry) => to_json(&entry.entry()),
            Payload::Edited { entry, at, byte } => {
                let mut bytes = to_json(&entry.entry());
                let at = usize::from(*at) % bytes.len();
                bytes[at] = *byte;
                bytes
            }
            Payload::Raw(bytes) => bytes.clone(),
        }
    }
}

impl Snapshot {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Snapshot::Books { entries, forget_leads } => {
                let mut books = Books::default();
                books.apply(terms_entry()).expect("the first terms apply to empty books");
                // Only amounts the live path can produce: the books are built here, in this process.
                for entry in entries.iter().filter(|entry| entry.is_bounded()).take(32) {
                    let _ = books.apply(entry.entry());
                }
                if *forget_leads {
                    books.leads.clear();
                }
                to_json(&books)
            }
            Snapshot::Raw(bytes) => bytes.clone(),
        }
    }
}
