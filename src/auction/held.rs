//! Held pings: each finished auction's ranked offers, kept until its bids' time to live passes, so the
//! seller's post can be delivered to the winner and down the cascade.

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Notify;
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
}

/// What the expiry task gives back when a ping's bids expire unposted.
trait ExpireHolds {
    fn expire_holds(&self);
}

impl ExpireHolds for Arc<HeldPing> {
    /// Gives back every hold still kept. (In cluster mode a hold that a post on another node claimed
    /// meanwhile has a later expiry, and stays.)
    fn expire_holds(&self) {
        let holds = std::mem::take(&mut *self.holds.lock());
        for hold in holds.into_iter().flatten() {
            hold.expire();
        }
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
    /// Pings whose bids hold something, by the moment the bids expire (see [`release_expired_holds`]).
    expiring: Arc<Expiring<Arc<HeldPing>>>,
    /// Whether the task that releases them runs yet: it starts with the first ping that holds something, on
    /// the runtime that ran its auction.
    expiry_task: AtomicBool,
    /// Every held ping by the moment it may be forgotten, soonest first. A heap rather than a queue, because
    /// campaigns have bid times to live of their own (and a ping adopted from another node has what is left
    /// of its own), so pings do not come due in the order they were kept.
    due: parking_lot::Mutex<BinaryHeap<Due<Arc<HeldPing>>>>,
}

/// How many due pings one new ping forgets: more than one, so the store drains faster than it fills.
const FORGET_PER_INSERT: usize = 4;

/// How many due pings the sweep forgets before it lets go of the queue for a moment.
const FORGET_PER_BATCH: usize = 1024;

/// How late an unposted bid's holds may be given back, so that expiries close together share one wake-up:
/// at 1,000 auctions a second, at most 50 wake-ups instead of 1,000, and no task or timer per auction.
const EXPIRY_GATHER: Duration = Duration::from_millis(20);

/// Room for this many held pings before the map grows: a minute of a busy exchange. The map has many shards,
/// so when it does grow each shard rehashes a few thousand entries at most, briefly.
const PRESIZED_PINGS: usize = 1 << 16;
const SHARDS: usize = 256;

/// Room in the queue of due pings before it grows: a ping stays its time to live and five minutes, so about
/// 3,400 pings a second (10-second bids) fill it. The queue is one array, and its growth would copy all of it
/// under the queue's lock (megabytes, on an auction's path); its pages cost memory only once written.
const PRESIZED_DUE: usize = 1 << 20;

impl Default for PingStore {
    fn default() -> Self {
        PingStore {
            by_id: DashMap::with_capacity_and_shard_amount(PRESIZED_PINGS, SHARDS),
            due: parking_lot::Mutex::new(BinaryHeap::with_capacity(PRESIZED_DUE)),
            expiring: Arc::default(),
            expiry_task: AtomicBool::new(false),
        }
    }
}

/// Something to do and when; ordered soonest first in a (max-)heap.
struct Due<T> {
    at: Instant,
    item: T,
}

impl<T> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
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
        other.at.cmp(&self.at)
    }
}

/// Takes at most `at_most` items due by `now` off the heap, soonest first.
fn pop_due<T>(due: &mut BinaryHeap<Due<T>>, now: Instant, at_most: usize) -> Vec<T> {
    let mut items = Vec::new();
    while items.len() < at_most && due.peek().is_some_and(|next| next.at <= now) {
        items.extend(due.pop().map(|next| next.item));
    }
    items
}

/// Pings waiting for their bids to expire, soonest first.
struct Expiring<T> {
    due: parking_lot::Mutex<BinaryHeap<Due<T>>>,
    /// Told when a ping expires sooner than every other one waiting.
    sooner: Arc<Notify>,
}

impl<T> Default for Expiring<T> {
    fn default() -> Self {
        Expiring { due: parking_lot::Mutex::new(BinaryHeap::new()), sooner: Arc::default() }
    }
}

impl<T> Expiring<T> {
    /// Queues `item` to expire at `at`, and wakes the task if it is now the soonest.
    fn push(&self, at: Instant, item: T) {
        let soonest = {
            let mut due = self.due.lock();
            let soonest = due.peek().is_none_or(|first| at < first.at);
            due.push(Due { at, item });
            soonest
        };
        if soonest {
            self.sooner.notify_one();
        }
    }
}

/// Gives back the holds of unposted bids as they expire, for as long as the store lives: it wakes at the
/// soonest expiry but never sooner than [`EXPIRY_GATHER`] after its last round, and gives back everything
/// due then, a batch at a time.
async fn release_expired_holds<T: ExpireHolds>(expiring: Weak<Expiring<T>>, sooner: Arc<Notify>) {
    let mut last_round: Option<Instant> = None;
    loop {
        let Some(store) = expiring.upgrade() else { return };
        let soonest = store.due.lock().peek().map(|first| first.at);
        drop(store);
        let Some(soonest) = soonest else {
            sooner.notified().await;
            continue;
        };
        let wake = last_round.map_or(soonest, |last| soonest.max(last + EXPIRY_GATHER));
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            () = sooner.notified() => continue,
        }
        let now = Instant::now();
        last_round = Some(now);
        loop {
            let Some(store) = expiring.upgrade() else { return };
            let expired = pop_due(&mut store.due.lock(), now, FORGET_PER_BATCH);
            let done = expired.len() < FORGET_PER_BATCH;
            for held in expired {
                held.expire_holds();
            }
            if done {
                break;
            }
        }
    }
}

impl PingStore {
    /// Keeps a finished auction, and forgets a few long-expired ones.
    pub fn insert(&self, held: Arc<HeldPing>) {
        let forget_at = held.expires_at + KEEP_AFTER_EXPIRY;
        self.by_id.insert(held.ping_id.clone(), Arc::clone(&held));
        let mut due = self.due.lock();
        due.push(Due { at: forget_at, item: held });
        let forgotten = pop_due(&mut due, Instant::now(), FORGET_PER_INSERT);
        drop(due);
        self.forget(forgotten);
    }

    /// Gives back `held`'s holds when its bids expire unposted, at most [`EXPIRY_GATHER`] late.
    pub fn release_holds_at_expiry(&self, held: &Arc<HeldPing>) {
        if held.holds.lock().iter().all(Option::is_none) {
            return;
        }
        if !self.expiry_task.swap(true, Ordering::Relaxed) {
            tokio::spawn(release_expired_holds(Arc::downgrade(&self.expiring), Arc::clone(&self.expiring.sooner)));
        }
        self.expiring.push(held.expires_at, Arc::clone(held));
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
        entries.iter().map(|&(s, item)| Due { at: start + Duration::from_secs(s), item }).collect()
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

    /// A ping whose expiry is recorded: the moment its holds were given back.
    struct Recorded(Arc<parking_lot::Mutex<Vec<(u32, Instant)>>>, u32);

    impl ExpireHolds for Recorded {
        fn expire_holds(&self) {
            self.0.lock().push((self.1, Instant::now()));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn expiries_close_together_share_a_round_and_none_waits_past_the_gather() {
        let start = Instant::now();
        let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let expiring = Arc::new(Expiring::default());
        let push = |id: u32, after_ms: u64| {
            expiring.push(start + Duration::from_millis(after_ms), Recorded(Arc::clone(&seen), id))
        };
        tokio::spawn(release_expired_holds(Arc::downgrade(&expiring), Arc::clone(&expiring.sooner)));
        // One a millisecond from 100 ms on, as a busy campaign's pings would.
        for id in 0..30 {
            push(id, 100 + u64::from(id));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A campaign with a shorter time to live: sooner than everything queued, pushed later.
        push(99, 60);
        tokio::time::sleep(Duration::from_millis(200)).await;

        let seen = seen.lock().clone();
        assert_eq!(seen.len(), 31, "every ping expired once");
        for &(id, at) in &seen {
            let due = start + Duration::from_millis(if id == 99 { 60 } else { 100 + u64::from(id) });
            assert!(at >= due, "ping {id} given back before its bids expired");
            assert!(at <= due + EXPIRY_GATHER, "ping {id} given back {:?} late", at - due);
        }
        let mut rounds: Vec<Instant> = seen.iter().map(|&(_, at)| at).collect();
        rounds.dedup();
        // The early one, then rounds at least EXPIRY_GATHER apart over the 30 ms of the rest: 100, 120, 140 ms.
        assert_eq!(rounds.len(), 4, "31 expiries in {} rounds", rounds.len());
        assert_eq!(seen[0], (99, start + Duration::from_millis(60)), "the sooner one was not kept waiting");
    }
}
