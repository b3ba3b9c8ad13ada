//! The statement of one account over `[from, to)` (API.md section 6): opening balance, every line with its
//! running balance, totals by kind, closing balance. A view over the ledger's postings, so it reconciles
//! with the balances by construction.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::books::{Books, TransactionKind};
use crate::domain::money::Money;
use crate::time::rfc3339;

#[derive(Debug, Serialize)]
pub struct Statement {
    pub account: String,
    pub from: String,
    pub to: String,
    pub opening_balance: Money,
    pub closing_balance: Money,
    pub totals: Totals,
    pub lines: Vec<Line>,
}

/// Count and signed sum of the lines of each kind.
#[derive(Debug, Default, Serialize)]
pub struct Totals {
    pub sales: Total,
    pub returns: Total,
    pub deposits: Total,
    pub payouts: Total,
}

#[derive(Debug, Default, Serialize)]
pub struct Total {
    pub count: u64,
    pub amount: Money,
}

#[derive(Debug, Serialize)]
pub struct Line {
    pub at: String,
    pub kind: &'static str,
    pub transaction_id: String,
    pub lead_id: Option<String>,
    /// Signed as it moved this account.
    pub amount: Money,
    /// The account's balance after this line.
    pub balance: Money,
}

/// The statement of `account` over `[from, to)`.
pub fn statement(books: &Books, account: &str, from: DateTime<Utc>, to: DateTime<Utc>) -> Statement {
    let mut opening_balance = Money::ZERO;
    let mut totals = Totals::default();
    let mut lines = Vec::new();
    // Transactions are kept in the order they were booked: time order, to the microsecond.
    for transaction in books.transactions.iter().filter(|t| t.at < to) {
        let amount: Money = transaction.postings.iter().filter(|(a, _)| a == account).map(|(_, m)| *m).sum();
        if !transaction.postings.iter().any(|(a, _)| a == account) {
            continue;
        }
        if transaction.at < from {
            opening_balance += amount;
            continue;
        }
        let total = match transaction.kind {
            TransactionKind::Sale => &mut totals.sales,
            TransactionKind::Return => &mut totals.returns,
            TransactionKind::Deposit => &mut totals.deposits,
            TransactionKind::Payout => &mut totals.payouts,
        };
        total.count += 1;
        total.amount += amount;
        let balance = lines.last().map_or(opening_balance, |line: &Line| line.balance) + amount;
        lines.push(Line {
            at: rfc3339(transaction.at),
            kind: transaction.kind.label(),
            transaction_id: transaction.id.clone(),
            lead_id: transaction.lead_id.clone(),
            amount,
            balance,
        });
    }
    let closing_balance = lines.last().map_or(opening_balance, |line| line.balance);
    Statement {
        account: account.to_owned(),
        from: rfc3339(from),
        to: rfc3339(to),
        opening_balance,
        closing_balance,
        totals,
        lines,
    }
}
