//! Operations shared by the JSON APIs (`http`) and the web pages (`web`): every change an operator, buyer or
//! seller can make and every view of the books and buyers they are shown. A rule lives here once; both faces
//! only parse their input (JSON or a form) and render the answer (JSON, HTML or CSV).
//!
//! Reads of the books assume the caller ran [`current`] first, once per request: in cluster mode it brings
//! this node's books up to date with the ledger of record, so that a read reflects every write answered
//! anywhere before it began (API.md section 9). The JSON dispatcher and the pages' both do, before every read.
//!
//! - [`buyers`] — buyer views, operator and self pause / resume, deposits.
//! - [`returns`] — filing and deciding returns; the buyer's leads and returns, the seller's returns.
//! - [`books`] — statements, the report, the ledger, delivery records, payouts, the config.

pub mod books;
pub mod buyers;
pub mod returns;

use chrono::{DateTime, Datelike, Utc};

use crate::domain::money::Money;
use crate::engine::{Engine, SellerError};
use crate::ledger::{Books, LedgerError, ReturnError};

/// Why an operation was refused. `http::error` maps each to the contract's status and code; the web pages
/// show its message.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// An unknown id, or one that belongs to another party (never reveal which).
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    InvalidField(String),
    #[error("{0}")]
    Forbidden(String),
    /// A reload found problems; the message lists every one.
    #[error("{0}")]
    InvalidConfig(String),
    /// A seller payout larger than what the seller is owed.
    #[error("{0}")]
    InsufficientBalance(String),
    /// An `Idempotency-Key` already used for another deposit or payout of the same account.
    #[error("{0}")]
    KeyReused(String),
    #[error(transparent)]
    Return(#[from] ReturnError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A shared store this call needs cannot be reached (cluster mode), among the engine's refusals.
    #[error(transparent)]
    Engine(#[from] SellerError),
}

/// The longest `Idempotency-Key` kept (it is kept in the ledger for good).
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// What every deposit and payout must be: more than 0.00, and sent under an `Idempotency-Key` of 1 to 255
/// visible ASCII characters, if under one.
fn check_money_move(amount: Money, idempotency_key: Option<&str>) -> Result<(), OpError> {
    if amount.is_zero() {
        return Err(OpError::InvalidField("amount must be more than 0.00".into()));
    }
    let Some(key) = idempotency_key else { return Ok(()) };
    let problem = if key.is_empty() {
        "is empty".to_owned()
    } else if key.chars().count() > MAX_IDEMPOTENCY_KEY {
        format!("is {} characters long", key.chars().count())
    } else if !key.bytes().all(|b| b.is_ascii_graphic()) {
        "holds a space or a character that is not visible ASCII".to_owned()
    } else {
        return Ok(());
    };
    Err(OpError::InvalidField(format!(
        "Idempotency-Key {problem}: it must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters without spaces, \
         such as a UUID"
    )))
}

/// The refusal of a deposit or payout (`what`) whose `Idempotency-Key` made another one; other errors as they
/// are.
fn refuse_reused_key(what: &str, error: LedgerError) -> OpError {
    match error {
        LedgerError::KeyReused { key, amount, reference } => {
            let reference = reference.map(|r| format!(" with reference {r:?}")).unwrap_or_default();
            OpError::KeyReused(format!(
                "Idempotency-Key {key:?} was already used for a {what} of {amount}{reference} to this account; \
                 send that same request to read its answer, or use a new key for a different {what}"
            ))
        }
        other => other.into(),
    }
}

/// Brings this node's books up to date before a read: a no-op for embedded books, in cluster mode a catch-up
/// with PostgreSQL (503 `unavailable` when it cannot be reached).
pub async fn current(engine: &Engine) -> Result<(), OpError> {
    Ok(engine.ledger.sync().await?)
}

/// Reads the books. Keep `read` short: sales wait for the books' lock.
fn read<R>(engine: &Engine, read: impl FnOnce(&Books) -> R) -> R {
    engine.ledger.read(read)
}

/// A `[from, to)` period with the defaults of API.md section 6: `to` now, `from` the first day of the
/// current month (UTC); `from` after `to` is refused.
pub fn period(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), OpError> {
    let to = to.unwrap_or_else(Utc::now);
    let from = match from {
        Some(from) => from,
        None => {
            let first = Utc::now().date_naive().with_day(1).expect("every month has a first day");
            first.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()
        }
    };
    if from > to {
        return Err(OpError::InvalidField("from must not be after to".into()));
    }
    Ok((from, to))
}
