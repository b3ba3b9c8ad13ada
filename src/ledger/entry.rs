//! What the journal keeps: one entry per change of the books, in the order the books applied them.
//!
//! Entries carry every id and time they need, so applying one is deterministic: the live path and replay run
//! the same [`Books::apply`](super::books::Books::apply) and cannot disagree. No entry holds PII: a sale keeps
//! its lead as the campaign's ping fields plus the SHA-256 of phone and email.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::buyers::PausedBy;
use crate::domain::money::Money;
use crate::domain::returns::{DecisionReason, ReturnStatus};

/// One change of the books.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "entry", rename_all = "snake_case")]
pub enum Entry {
    Sale {
        transaction_id: String,
        sale: Sale,
    },
    Deposit {
        transaction_id: String,
        deposit: Deposit,
    },
    Payout {
        transaction_id: String,
        payout: Payout,
    },
    /// A return as filed, with the policy's decision; an approved one carries its reversal's transaction id.
    Return {
        filed: Return,
    },
    /// The operator's decision on a return pending review.
    Decision {
        decision: Decision,
    },
    /// A buyer's terms under one config revision, written just before the first sale made under them: sales
    /// name it by id, so the journal grows by a buyer's terms once per config, not once per sale.
    Terms {
        terms: Terms,
    },
    /// A pause (`paused_by` set) or resume (`None`) made through the API.
    Standing {
        buyer: String,
        paused_by: Option<PausedBy>,
        at: DateTime<Utc>,
    },
}

/// A lead sold to one buyer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// The lead as the journal may keep it: ping fields, `phone_sha256`, `email_sha256`.
    pub lead: Map<String, Value>,
    /// The [`Terms`] the buyer bought it under; [`Ledger::record_sale`](super::Ledger::record_sale) sets it.
    pub terms_id: u64,
}

impl Sale {
    /// The phone and email digests the duplicate check needs, from the kept lead.
    pub fn contact_digests(&self) -> impl Iterator<Item = &str> {
        ["phone_sha256", "email_sha256"].into_iter().filter_map(|key| self.lead.get(key).and_then(Value::as_str))
    }
}

/// What a buyer had agreed to under one config revision: its filters, caps, ramp, duplicate window, return
/// policy and SLA as the config filled them in, without keys, URLs or headers. Ids count up from 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    pub terms_id: u64,
    pub buyer: String,
    pub config_revision: String,
    pub terms: Value,
}

/// Money a buyer paid into its wallet (or against its invoice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deposit {
    pub deposit_id: String,
    pub buyer: String,
    pub amount: Money,
    pub reference: Option<String>,
    pub at: DateTime<Utc>,
    /// The operator's `Idempotency-Key`, when the request carried one: the same key for the same buyer is
    /// answered with this deposit instead of making another (see [`KeyedMove`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// Money paid out to a seller.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payout {
    pub payout_id: String,
    pub seller: String,
    pub amount: Money,
    pub reference: Option<String>,
    pub at: DateTime<Utc>,
    /// As on [`Deposit`], for the same seller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

/// A deposit or payout made under an `Idempotency-Key`, as the books index it by account and key: what a
/// repeat of the request is answered with, and what it must match to be the same request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyedMove {
    /// The deposit's or payout's id.
    pub id: String,
    pub transaction_id: String,
    pub amount: Money,
    pub reference: Option<String>,
}

impl KeyedMove {
    /// Whether a request with this amount and reference is the one that made this move.
    pub fn is_same_request(&self, amount: Money, reference: &Option<String>) -> bool {
        self.amount == amount && &self.reference == reference
    }
}

/// A buyer's return of a lead and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Return {
    pub return_id: String,
    pub lead_id: String,
    pub buyer: String,
    pub reason: String,
    pub note: Option<String>,
    pub status: ReturnStatus,
    pub decision_reason: DecisionReason,
    pub created_at: DateTime<Utc>,
    /// When it was approved or rejected; `None` while pending review.
    pub decided_at: Option<DateTime<Utc>>,
    /// The operator's note on its decision.
    pub decision_note: Option<String>,
    /// The price credited back: the sale's price once approved, else zero.
    pub credit: Money,
    /// The seller's payout taken back: the sale's payout once approved, else zero.
    pub clawback: Money,
    /// The reversal's transaction, once approved.
    pub transaction_id: Option<String>,
}

/// The operator's decision on a pending return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub return_id: String,
    pub approve: bool,
    pub note: Option<String>,
    pub at: DateTime<Utc>,
    /// The reversal's transaction when approved.
    pub transaction_id: Option<String>,
}
