//! Held pings: each finished auction's ranked offers, kept until its bids' time to live passes, so the
//! seller's post can be delivered to the winner and down the cascade.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

use crate::audit::AuctionAudit;
use crate::buyers::Roster;
use crate::config::{Campaign, Seller};
use crate::coordinator::Hold;
use crate::domain::money::Money;
use crate::domain::ranking::Offer;

/// How long an expired ping is still remembered, so a late post is told `ping_expired` (410) rather than
/// `not_found`, and a repeated post still gets its first answer.
pub const KEEP_AFTER_EXPIRY: Duration = Duration::from_secs(300);

/// A finished auction waiting for its post.
pub struct HeldPing {
    pub ping_id: String,
    pub seller: Arc<Seller>,
    pub campaign: Arc<Campaign>,
    /// The config the auction ran on, with its buyers' state: the post is delivered under the same terms.
    pub roster: Arc<Roster>,
    pub test: bool,
    pub source: Option<String>,
    pub expires_at: Instant,
    /// Digest of each key the ping carried, to check that the post carries the same normalized values
    /// without keeping the values themselves.
    pub ping_digests: Vec<(String, [u8; 32])>,
    /// Bidders in the order the lead is offered, with their prices.
    pub offers: Vec<Offer>,
    /// What each offer holds, aligned with `offers`: the winners' holds from the auction until the post, the
    /// ping's expiry, or a cascade that took them.
    pub holds: parking_lot::Mutex<Vec<Option<Hold>>>,
    pub audit: Arc<AuctionAudit>,
    /// The first post's answer. The lock is held for the whole delivery, so concurrent identical posts wait
    /// for it and then all get the same answer: a lead is delivered once.
    pub post: tokio::sync::Mutex<Option<PostMemo>>,
}

/// The remembered answer of the first post of a ping.
pub struct PostMemo {
    pub lead_fingerprint: [u8; 32],
    pub result: Arc<PostResult>,
}

/// The outcome of delivering a posted lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostResult {
    Sold { sales: Vec<SoldTo> },
    Unsold { reason: UnsoldReason },
}

/// One buyer that took the lead.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SoldTo {
    pub lead_id: String,
    pub buyer: String,
    pub price: Money,
    pub payout: Money,
}

/// Why a post sold nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnsoldReason {
    /// Every buyer offered the lead rejected it, failed, or there was no bid to offer it to, and no bidder
    /// was skipped for `min_payout`.
    AllBuyersRejected,
    /// At least one bidder was skipped because its payout was below the seller's `min_payout`.
    BelowMinPayout,
}

impl UnsoldReason {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            UnsoldReason::AllBuyersRejected => "all_buyers_rejected",
            UnsoldReason::BelowMinPayout => "below_min_payout",
        }
    }
}

impl HeldPing {
    /// True once the bids' time to live has passed.
    pub fn expired(&self) -> bool {
        Instant::now() >= self.expires_at
    }

    /// Takes the hold of one offer, if it still has one.
    pub fn take_hold(&self, offer: usize) -> Option<Hold> {
        self.holds.lock().get_mut(offer).and_then(Option::take)
    }

    /// Puts a hold back (a post was refused after taking it: the bid stays held for the next try).
    pub fn return_hold(&self, offer: usize, hold: Hold) {
        if let Some(slot) = self.holds.lock().get_mut(offer) {
            *slot = Some(hold);
        }
    }

    /// Releases every hold still kept: the ping is done (outside this ping's lock).
    pub fn release_holds(&self) {
        let holds = std::mem::take(&mut *self.holds.lock());
        for hold in holds.into_iter().flatten() {
            hold.release();
        }
    }

    /// Releases the holds when the bids expire unposted, to the moment. (In cluster mode a hold that a post on
    /// another node claimed meanwhile has a later expiry, and stays.)
    pub fn release_holds_at_expiry(self: &Arc<Self>) {
        if self.holds.lock().iter().all(Option::is_none) {
            return;
        }
        let held = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(held.expires_at).await;
            let holds = std::mem::take(&mut *held.holds.lock());
            for hold in holds.into_iter().flatten() {
                hold.expire();
            }
        });
    }
}

/// Every held ping by id.
#[derive(Default)]
pub struct PingStore {
    by_id: DashMap<String, Arc<HeldPing>>,
}

impl PingStore {
    /// Keeps a finished auction.
    pub fn insert(&self, held: Arc<HeldPing>) {
        self.by_id.insert(held.ping_id.clone(), held);
    }

    /// A held ping by id.
    pub fn get(&self, ping_id: &str) -> Option<Arc<HeldPing>> {
        self.by_id.get(ping_id).map(|h| Arc::clone(&h))
    }

    /// Forgets pings that expired more than [`KEEP_AFTER_EXPIRY`] ago.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.by_id.retain(|_, held| held.expires_at + KEEP_AFTER_EXPIRY > now);
    }
}
