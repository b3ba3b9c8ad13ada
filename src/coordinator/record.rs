//! A held ping as another node reads it (cluster mode): everything a post needs to be delivered anywhere —
//! who pinged, under which campaign and config revision, until when, the digests the post must match, and the
//! offers in order with each winner's hold — and nothing personal.

use serde::{Deserialize, Serialize};

use crate::domain::money::Money;

/// One held ping.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PingRecord {
    pub ping_id: String,
    pub seller: String,
    pub campaign: String,
    /// The config revision the auction ran on.
    pub revision: String,
    pub test: bool,
    pub source: Option<String>,
    /// When the bids expire, in milliseconds since the Unix epoch.
    pub expires_at_ms: i64,
    /// Each ping key with the hex digest of its normalized value.
    pub digests: Vec<(String, String)>,
    pub offers: Vec<RecordedOffer>,
    /// The node that ran the auction.
    pub node: String,
}

/// One offer, in the order the lead is offered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedOffer {
    pub buyer: String,
    pub bid: Money,
    pub price: Money,
    pub priority: i64,
    pub weight: u32,
    pub answered_after_us: u64,
    pub bid_id: Option<String>,
    /// The hold taken for it when the auction ended (winners only).
    pub hold: Option<String>,
}
