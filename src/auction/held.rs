//! Held pings: each finished auction's ranked offers, kept until its bids' time to live passes, so the
//! seller's post can be delivered to the winner and down the cascade.

use std::collections::BinaryHeap;
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

/// Every held ping by id, and the order in which they are to be forgotten.
///
/// Forgetting is bounded work, never a pass over the whole store (at 1,000 auctions a second it holds about
/// 300,000 pings, and a `retain` over them stalled a worker thread and every shard for milliseconds): each
/// new ping forgets at most [`FORGET_PER_INSERT`] of the oldest ones that are due, and the periodic sweep
/// forgets the rest in batches of [`FORGET_PER_BATCH`], letting go of the queue's lock between batches.
pub struct PingStore {
    by_id: DashMap<String, Arc<HeldPing>>,
    /// Every held ping by the moment it may be forgotten, soonest first. A heap rather than a queue, because
    /// campaigns have bid times to live of their own (and a ping adopted from another node has what is left
    /// of its own), so pings do not come due in the order they were kept.
    due: parking_lot::Mutex<BinaryHeap<Due<Arc<HeldPing>>>>,
}

/// How many due pings one new ping forgets: more than one, so the store drains faster than it fills.
const FORGET_PER_INSERT: usize = 4;

/// How many due pings the sweep forgets before it lets go of the queue for a moment.
const FORGET_PER_BATCH: usize = 1024;

/// Room for this many held pings before the map or the queue grows: a few seconds of a busy exchange. The
/// map has many shards, so when it does grow each shard rehashes a few thousand entries at most, briefly.
const PRESIZED_PINGS: usize = 1 << 16;
const SHARDS: usize = 256;

impl Default for PingStore {
    fn default() -> Self {
        PingStore {
            by_id: DashMap::with_capacity_and_shard_amount(PRESIZED_PINGS, SHARDS),
            due: parking_lot::Mutex::new(BinaryHeap::with_capacity(PRESIZED_PINGS)),
        }
    }
}

/// Something to forget and when; ordered soonest first in a (max-)heap.
struct Due<T> {
    forget_at: Instant,
    item: T,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        self.forget_at == other.forget_at
    }
}
impl<T> Eq for Due<T> {}
impl<T> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Due<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.forget_at.cmp(&self.forget_at)
    }
}

/// Takes at most `at_most` items due by `now` off the heap, soonest first.
fn pop_due<T>(due: &mut BinaryHeap<Due<T>>, now: Instant, at_most: usize) -> Vec<T> {
    let mut items = Vec::new();
    while items.len() < at_most && due.peek().is_some_and(|next| next.forget_at <= now) {
        items.extend(due.pop().map(|next| next.item));
    }
    items
}

impl PingStore {
    /// Keeps a finished auction, and forgets a few long-expired ones.
    pub fn insert(&self, held: Arc<HeldPing>) {
        let forget_at = held.expires_at + KEEP_AFTER_EXPIRY;
        self.by_id.insert(held.ping_id.clone(), Arc::clone(&held));
        let mut due = self.due.lock();
        due.push(Due { forget_at, item: held });
        let forgotten = pop_due(&mut due, Instant::now(), FORGET_PER_INSERT);
        drop(due);
        self.forget(forgotten);
    }

    /// A held ping by id.
    pub fn get(&self, ping_id: &str) -> Option<Arc<HeldPing>> {
        self.by_id.get(ping_id).map(|h| Arc::clone(&h))
    }

    /// Forgets every ping that expired more than [`KEEP_AFTER_EXPIRY`] ago, a batch at a time.
    pub fn sweep(&self) {
        let now = Instant::now();
        loop {
            let forgotten = pop_due(&mut self.due.lock(), now, FORGET_PER_BATCH);
            let done = forgotten.len() < FORGET_PER_BATCH;
            self.forget(forgotten);
            if done {
                return;
            }
        }
    }

    /// Removes pings from the map, outside the queue's lock. Only the very ping that came due is removed: an
    /// id kept again since (a ping adopted from another node) has an entry of its own in the queue.
    fn forget(&self, forgotten: Vec<Arc<HeldPing>>) {
        for held in forgotten {
            self.by_id.remove_if(&held.ping_id, |_, kept| Arc::ptr_eq(kept, &held));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap(entries: &[(u64, u32)]) -> BinaryHeap<Due<u32>> {
        let start = Instant::now();
        entries.iter().map(|&(s, item)| Due { forget_at: start + Duration::from_secs(s), item }).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn due_items_come_off_soonest_first_whatever_order_they_were_kept_in() {
        // Campaigns with different bid times to live: kept in one order, due in another.
        let mut due = heap(&[(30, 1), (10, 2), (20, 3), (10, 4), (40, 5)]);
        assert!(pop_due(&mut due, Instant::now(), 10).is_empty(), "nothing is due yet");
        tokio::time::advance(Duration::from_secs(25)).await;
        let mut first = pop_due(&mut due, Instant::now(), 10);
        first.sort_unstable();
        assert_eq!(first, vec![2, 3, 4]);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(pop_due(&mut due, Instant::now(), 10), vec![1]);
        assert_eq!(due.len(), 1, "the ping due at 40 s stays");
    }

    #[tokio::test(start_paused = true)]
    async fn each_pass_forgets_a_bounded_number() {
        let entries: Vec<(u64, u32)> = (0..10).map(|i| (1, i)).collect();
        let mut due = heap(&entries);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(pop_due(&mut due, Instant::now(), FORGET_PER_INSERT).len(), FORGET_PER_INSERT);
        assert_eq!(pop_due(&mut due, Instant::now(), FORGET_PER_INSERT).len(), FORGET_PER_INSERT);
        assert_eq!(pop_due(&mut due, Instant::now(), FORGET_PER_INSERT).len(), 2);
        assert!(due.is_empty());
    }
}
