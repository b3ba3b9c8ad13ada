//! The audit trail: a bounded in-memory ring of recent auctions, each with every buyer's outcome and every
//! post attempt, for `GET /admin/pings/{id}`. It holds no PII and may be lost in a crash; money lives in the
//! ledger.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{json, Value};

use crate::domain::expected_value::ReturnRate;
use crate::domain::money::Money;

mod stored;
pub use stored::trail_json;

/// How many recent auctions the ring keeps by default.
pub const DEFAULT_CAPACITY: usize = 20_000;

/// One buyer's part in one auction.
#[derive(Debug, Clone, Serialize)]
pub struct BuyerOutcome {
    pub buyer: String,
    /// `excluded`, `bid`, `no_bid`, `timeout` or `error`.
    pub outcome: &'static str,
    /// The gate that excluded the buyer, or the kind of error.
    pub detail: Option<String>,
    pub latency_ms: Option<f64>,
    pub bid: Option<Money>,
    /// The buyer's return rate with the seller, on every bid when the campaign ranks by expected value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub return_rate: Option<ReturnRate>,
    /// bid × (1 − return rate), rounded down to the cent, beside `return_rate`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_value: Option<Money>,
}

impl BuyerOutcome {
    /// A buyer's `outcome`, with nothing else known yet.
    pub fn new(buyer: String, outcome: &'static str) -> BuyerOutcome {
        BuyerOutcome {
            buyer,
            outcome,
            detail: None,
            latency_ms: None,
            bid: None,
            return_rate: None,
            expected_value: None,
        }
    }
}

/// One post of the lead to one buyer (a retry is a second attempt).
#[derive(Debug, Clone, Serialize)]
pub struct PostAttemptRecord {
    pub buyer: String,
    pub lead_id: String,
    /// `accepted`, `rejected` or `error`.
    pub outcome: &'static str,
    pub detail: Option<String>,
    pub latency_ms: f64,
}

/// Who bought, at what price (several rows when a shared lead sold to several buyers).
#[derive(Debug, Clone, Serialize)]
pub struct SaleRecord {
    pub buyer: String,
    pub lead_id: String,
    pub price: Money,
    pub payout: Money,
}

/// The record of one auction.
#[derive(Debug)]
pub struct AuctionAudit {
    pub ping_id: String,
    pub campaign: String,
    pub seller: String,
    pub received_at: DateTime<Utc>,
    pub deadline_ms: u64,
    pub elapsed: Duration,
    pub test: bool,
    pub buyers: Vec<BuyerOutcome>,
    /// The buyer the lead is first offered to, with its price and the seller's quoted payout.
    pub quoted: Option<SaleRecord>,
    progress: Mutex<PostProgress>,
}

#[derive(Debug, Default)]
struct PostProgress {
    posts: Vec<PostAttemptRecord>,
    sales: Vec<SaleRecord>,
}

impl AuctionAudit {
    /// A finished auction, before any post.
    #[allow(clippy::too_many_arguments)] // one plain record; a builder would only rename the arguments
    pub fn new(
        ping_id: String,
        campaign: String,
        seller: String,
        received_at: DateTime<Utc>,
        deadline_ms: u64,
        elapsed: Duration,
        test: bool,
        buyers: Vec<BuyerOutcome>,
        quoted: Option<SaleRecord>,
    ) -> AuctionAudit {
        AuctionAudit {
            ping_id,
            campaign,
            seller,
            received_at,
            deadline_ms,
            elapsed,
            test,
            buyers,
            quoted,
            progress: Mutex::default(),
        }
    }

    /// Appends post attempts.
    pub fn record_posts(&self, attempts: impl IntoIterator<Item = PostAttemptRecord>) {
        self.progress.lock().posts.extend(attempts);
    }

    /// Records a sale.
    pub fn record_sale(&self, sale: SaleRecord) {
        self.progress.lock().sales.push(sale);
    }

    /// The first sale of its lead, once sold.
    pub fn first_sale(&self) -> Option<SaleRecord> {
        self.progress.lock().sales.first().cloned()
    }

    /// This auction's post attempts and sales as items another node adds to its trail (cluster mode):
    /// `{"post": …}` or `{"sale": …}`, JSON.
    pub fn progress_items(&self) -> Vec<Vec<u8>> {
        let progress = self.progress.lock();
        let posts = progress.posts.iter().map(|post| json!({ "post": post }));
        let sales = progress.sales.iter().map(|sale| json!({ "sale": sale }));
        posts.chain(sales).map(|item| serde_json::to_vec(&item).expect("items serialize")).collect()
    }

    /// The JSON of `GET /admin/pings/{id}`. Winner, price and payout are the sale's once sold (the first
    /// sale's for a shared lead), else the quote.
    pub fn to_json(&self) -> Value {
        self.trail(|trail| serde_json::to_value(trail)).expect("a trail serializes")
    }

    /// The trail as cluster mode shares it through Redis (see [`stored`]); [`trail_json`] shows it.
    pub fn to_bytes(&self) -> Vec<u8> {
        let progress = self.progress.lock();
        stored::to_bytes(self, &progress.sales, &progress.posts)
    }

    fn trail<T>(&self, write: impl FnOnce(&Trail<'_>) -> T) -> T {
        let progress = self.progress.lock();
        let headline = progress.sales.first().or(self.quoted.as_ref());
        write(&Trail {
            ping_id: &self.ping_id,
            campaign: &self.campaign,
            seller: &self.seller,
            received_at: crate::time::rfc3339(self.received_at),
            deadline_ms: self.deadline_ms,
            elapsed_ms: round_ms(self.elapsed),
            test: self.test,
            buyers: &self.buyers,
            winner: headline.map(|s| s.buyer.as_str()),
            price: headline.map(|s| s.price),
            payout: headline.map(|s| s.payout),
            sales: &progress.sales,
            posts: &progress.posts,
        })
    }
}

/// An auction's trail as it is shown.
#[derive(Serialize)]
struct Trail<'a> {
    ping_id: &'a str,
    campaign: &'a str,
    seller: &'a str,
    received_at: String,
    deadline_ms: u64,
    elapsed_ms: f64,
    test: bool,
    buyers: &'a [BuyerOutcome],
    winner: Option<&'a str>,
    price: Option<Money>,
    payout: Option<Money>,
    sales: &'a [SaleRecord],
    posts: &'a [PostAttemptRecord],
}

/// A trail (as [`AuctionAudit::to_json`] wrote it) with progress items from every node added: the posts and
/// sales, and the winner, price and payout of the first sale once there is one.
pub fn with_progress(mut trail: Value, items: &[Vec<u8>]) -> Value {
    for item in items.iter().filter_map(|bytes| serde_json::from_slice::<Value>(bytes).ok()) {
        for (kind, list) in [("post", "posts"), ("sale", "sales")] {
            if let (Some(entry), Some(Value::Array(entries))) = (item.get(kind), trail.get_mut(list)) {
                entries.push(entry.clone());
            }
        }
    }
    if let Some(first) = trail["sales"].get(0).cloned() {
        trail["winner"] = first["buyer"].clone();
        trail["price"] = first["price"].clone();
        trail["payout"] = first["payout"].clone();
    }
    trail
}

/// Milliseconds with three decimals, for audit display.
pub fn round_ms(duration: Duration) -> f64 {
    (duration.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// The ring of recent auctions.
pub struct AuditLog {
    by_id: DashMap<String, Arc<AuctionAudit>>,
    order: Mutex<VecDeque<String>>,
    capacity: usize,
}

impl AuditLog {
    /// A ring that keeps the last `capacity` auctions. Both halves are sized for it up front, so a busy
    /// exchange never waits on them growing (the order holds one more than `capacity` for a moment).
    pub fn new(capacity: usize) -> AuditLog {
        AuditLog {
            by_id: DashMap::with_capacity_and_shard_amount(capacity, 64),
            order: Mutex::new(VecDeque::with_capacity(capacity + 1)),
            capacity,
        }
    }

    /// Adds an auction, evicting the oldest when full.
    pub fn insert(&self, audit: Arc<AuctionAudit>) {
        let evicted = {
            let mut order = self.order.lock();
            order.push_back(audit.ping_id.clone());
            if order.len() > self.capacity {
                order.pop_front()
            } else {
                None
            }
        };
        self.by_id.insert(audit.ping_id.clone(), audit);
        if let Some(old) = evicted {
            self.by_id.remove(&old);
        }
    }

    /// A recent auction by ping id.
    pub fn get(&self, ping_id: &str) -> Option<Arc<AuctionAudit>> {
        self.by_id.get(ping_id).map(|a| Arc::clone(&a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audit(id: &str) -> Arc<AuctionAudit> {
        Arc::new(AuctionAudit::new(
            id.into(),
            "c".into(),
            "s".into(),
            Utc::now(),
            250,
            Duration::from_micros(1500),
            false,
            vec![],
            None,
        ))
    }

    #[test]
    fn ring_evicts_the_oldest() {
        let log = AuditLog::new(2);
        for id in ["p_1", "p_2", "p_3"] {
            log.insert(audit(id));
        }
        assert!(log.get("p_1").is_none());
        assert!(log.get("p_2").is_some() && log.get("p_3").is_some());
    }

    #[test]
    fn sale_replaces_the_quote_in_the_headline() {
        let a = audit("p_1");
        a.record_sale(SaleRecord {
            buyer: "b".into(),
            lead_id: "l_1".into(),
            price: Money::from_cents(900),
            payout: Money::from_cents(810),
        });
        let json = a.to_json();
        assert_eq!(json["winner"], "b");
        assert_eq!(json["price"], "9.00");
        assert_eq!(json["elapsed_ms"], 1.5);
    }
}
