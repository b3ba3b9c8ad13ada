//! A posted lead: find its held ping (on this node, or in cluster mode wherever it was made), take the post's
//! turn (one delivery per ping however many posts arrive, on however many nodes), check the lead, deliver it
//! down the offers, and remember the answer for every repeat.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tracing::Instrument;

use super::auction::pinged_at;
use super::{check_postable, Engine, SellerError};
use crate::auction::cascade::Cascade;
use crate::auction::held::{HeldPing, PostMemo, PostResult, KEEP_AFTER_EXPIRY};
use crate::audit::AuctionAudit;
use crate::config::Seller;
use crate::coordinator::redis::{PostTurn, RemoteHold};
use crate::coordinator::{Hold, PingRecord, RedisCoordinator};
use crate::delivery::BuyerClient;
use crate::domain::expected_value::ReturnRate;
use crate::domain::lead::Lead;
use crate::domain::money::Money;
use crate::domain::ranking::{Bid, Offer};

/// The first answer of a ping's post as every node reads it (cluster mode).
#[derive(Serialize, Deserialize)]
struct SharedMemo {
    fingerprint: String,
    result: PostResult,
}

impl Engine {
    /// The held ping `ping_id` of this seller: this node's, else (cluster mode) the one another node stored.
    pub(super) async fn held_ping(&self, seller: &Seller, ping_id: &str) -> Result<Arc<HeldPing>, SellerError> {
        let mine =
            |held: Arc<HeldPing>| if held.seller.id == seller.id { Ok(held) } else { Err(SellerError::PingNotFound) };
        if let Some(held) = self.pings.get(ping_id) {
            return mine(held);
        }
        let Some(redis) = self.coordinator.redis() else { return Err(SellerError::PingNotFound) };
        match redis.load_ping(ping_id).await.map_err(|_| SellerError::Unavailable("Redis"))? {
            Some(record) => {
                let held = self.adopt(record, redis)?;
                self.pings.insert(Arc::clone(&held));
                mine(held)
            }
            // Redis may have lost it (restarted empty): a ping young enough to be held is expired, not unknown.
            None if self.could_be_held(ping_id) => Err(SellerError::PingExpired),
            None => Err(SellerError::PingNotFound),
        }
    }

    /// True when a ping of this id could still be held (or remembered as expired) had Redis kept it.
    fn could_be_held(&self, ping_id: &str) -> bool {
        let Some(at) = pinged_at(ping_id) else { return false };
        let longest = self.config().campaigns.iter().map(|c| c.bid_ttl_s).max().unwrap_or(0);
        let kept = chrono::Duration::seconds(longest as i64)
            + chrono::Duration::from_std(KEEP_AFTER_EXPIRY).unwrap_or_default();
        let now = Utc::now();
        at <= now + chrono::Duration::seconds(5) && now - at <= kept
    }

    /// A ping another node ran, as this node delivers it: its campaign, seller and buyers from this node's
    /// config (same revision, normally), its offers with the holds the auction took.
    fn adopt(&self, record: PingRecord<'static>, redis: &Arc<RedisCoordinator>) -> Result<Arc<HeldPing>, SellerError> {
        let roster = self.roster();
        let config = &roster.config;
        let campaign = config.campaign(&record.campaign).cloned().ok_or(SellerError::PingNotFound)?;
        let seller = config.seller(&record.seller).cloned().ok_or(SellerError::PingNotFound)?;
        let (mut offers, mut holds) = (Vec::new(), Vec::new());
        for recorded in record.offers {
            let Some(index) = config.buyer_index(&recorded.buyer) else { continue };
            let buyer = &config.buyers[index];
            holds.push(
                recorded.hold.map(|id| Hold::Remote(RemoteHold::adopt(redis, buyer, id.into_owned(), recorded.price))),
            );
            offers.push(Offer {
                bid: Bid {
                    buyer: index,
                    amount: recorded.bid,
                    priority: recorded.priority,
                    weight: recorded.weight,
                    answered_after: Duration::from_micros(recorded.answered_after_us),
                    bid_id: recorded.bid_id.map(Cow::into_owned),
                    // The auction's node ranked and priced the bids; delivery reads only the recorded price.
                    return_rate: ReturnRate::NO_HISTORY,
                },
                price: recorded.price,
            });
        }
        let left = chrono::Duration::milliseconds(record.expires_at_ms - Utc::now().timestamp_millis());
        let now = Instant::now();
        let expires_at = match left.to_std() {
            Ok(left) => now + left,
            Err(_) => now.checked_sub(Duration::from_millis(1)).unwrap_or(now),
        };
        let digests = record.digests.into_iter().map(|(key, digest)| (key.into_owned(), digest.0)).collect();
        // This node's trail of the post; the auction's own is in Redis.
        let audit = Arc::new(AuctionAudit::new(
            record.ping_id.to_string(),
            campaign.id.clone(),
            seller.id.clone(),
            Utc::now(),
            0,
            Duration::ZERO,
            record.test,
            Vec::new(),
            None,
        ));
        Ok(Arc::new(HeldPing {
            ping_id: record.ping_id.into_owned(),
            seller,
            campaign,
            roster: Arc::clone(&roster),
            test: record.test,
            source: record.source.map(Cow::into_owned),
            expires_at,
            ping_digests: digests,
            offers,
            holds: parking_lot::Mutex::new(holds),
            audit,
            post: tokio::sync::Mutex::new(None),
        }))
    }

    /// Delivers a posted lead (see [`Engine::deliver`]) in a task of its own, which runs to its end whether or
    /// not the caller still waits. hyper drops a request's handler when its client goes away (hyperium/hyper#2728),
    /// and a seller whose client times out mid-delivery would otherwise cut the delivery wherever it stood:
    /// after the buyer took the lead and before the sale was booked (a lead given away, and its bids released
    /// to be delivered again on the seller's retry). The task runs on this thread's runtime, so the delivery
    /// stays on the worker that took the post (see `http::workers`); shutdown waits for it
    /// ([`Engine::finish_deliveries`]). The seller's retry waits for it on the ping's post lock and gets its
    /// answer.
    pub(super) async fn deliver_to_the_end(
        self: &Arc<Self>,
        held: Arc<HeldPing>,
        lead: Lead,
        min_payout: Option<Money>,
    ) -> Result<Arc<PostResult>, SellerError> {
        let engine = Arc::clone(self);
        let delivery = self.deliveries.spawn(async move { engine.deliver(&held, &lead, min_payout).await });
        match delivery.await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            // Cancelled: only when this worker's runtime ends, past the grace shutdown gives deliveries, and the
            // caller ends with it: nobody reads this answer.
            Err(_) => Err(SellerError::Unavailable("this node")),
        }
    }

    /// Waits (at most `grace`) for every delivery under way to end; new ones may still start meanwhile.
    pub async fn finish_deliveries(&self, grace: Duration) {
        self.deliveries.close();
        if tokio::time::timeout(grace, self.deliveries.wait()).await.is_err() {
            tracing::warn!(left = self.deliveries.len(), "stopping with deliveries still under way");
        }
    }

    /// Delivers a posted lead once per ping; every repeat gets the first answer.
    async fn deliver(
        &self,
        held: &HeldPing,
        lead: &Lead,
        min_payout: Option<Money>,
    ) -> Result<Arc<PostResult>, SellerError> {
        let fingerprint = lead.fingerprint();
        // Held for the whole delivery: a concurrent identical post on this node waits here and then reads the memo.
        let mut memo = held.post.lock().await;
        if let Some(first) = memo.as_ref() {
            return answer_repeat(first, fingerprint);
        }
        // Cluster mode: the same turn across nodes, in Redis, kept while this delivery lasts.
        let bound = delivery_bound(held);
        let lock = match self.coordinator.redis() {
            None => None,
            Some(redis) => match redis.take_post_turn(&held.ping_id, bound, bound).await {
                Err(_) => return Err(SellerError::Unavailable("Redis")),
                Ok(PostTurn::Mine(lock)) => Some(lock),
                Ok(PostTurn::Answered(bytes)) => {
                    let shared: SharedMemo =
                        serde_json::from_slice(&bytes).map_err(|_| SellerError::Unavailable("Redis"))?;
                    let mut first_fingerprint = [0u8; 32];
                    hex::decode_to_slice(&shared.fingerprint, &mut first_fingerprint)
                        .map_err(|_| SellerError::Unavailable("Redis"))?;
                    let first = PostMemo { lead_fingerprint: first_fingerprint, result: Arc::new(shared.result) };
                    let answer = answer_repeat(&first, fingerprint);
                    *memo = Some(first);
                    return answer;
                }
            },
        };
        let _kept_turn = lock.as_ref().map(|lock| lock.keep_while_delivering(bound));
        if held.expired() {
            return Err(SellerError::PingExpired);
        }
        if let Some((key, _)) = held.ping_digests.iter().find(|(key, digest)| lead.digest_of(key) != Some(*digest)) {
            return Err(SellerError::LeadMismatch(key.clone()));
        }
        check_postable(&held.campaign, lead)?;
        // Never deliver a lead that could not be booked.
        if !self.ledger.is_available() {
            return Err(SellerError::Unavailable("PostgreSQL"));
        }
        let client = BuyerClient::current(&self.client);
        let cascade =
            Cascade { client: &client, ledger: &self.ledger, metrics: &self.metrics, coordinator: &self.coordinator };
        let span = tracing::debug_span!("post", ping_id = %held.ping_id, campaign = %held.campaign.id);
        let delivered = cascade.deliver(held, lead, min_payout).instrument(span.clone()).await;
        self.share_progress(held);
        // Refused (a store went away before anything sold): the bids stay held for a retry.
        let result = Arc::new(delivered?);
        // Sold or not, the ping is done: what its other bids held goes back.
        held.release_holds();
        span.in_scope(|| match &*result {
            PostResult::Sold { sales } => {
                for sale in sales {
                    tracing::debug!(lead_id = %sale.lead_id, buyer = %sale.buyer, price = %sale.price, "lead sold");
                }
            }
            PostResult::Unsold { reason } => tracing::debug!(reason = ?reason, "lead unsold"),
        });
        if let (PostResult::Sold { sales }, false) = (&*result, held.test) {
            let at = chrono::Utc::now();
            for sale in sales {
                let (lead_id, price, payout) = (sale.lead_id.clone(), sale.price, sale.payout);
                self.live.publish(crate::live::LiveEvent::Sale { lead_id, at, price, payout });
            }
        }
        if let Some(lock) = lock {
            let shared = SharedMemo { fingerprint: hex::encode(fingerprint), result: (*result).clone() };
            let keep = Duration::from_secs(held.campaign.bid_ttl_s) + KEEP_AFTER_EXPIRY;
            lock.finish(serde_json::to_vec(&shared).expect("a memo serializes"), keep).await;
        }
        *memo = Some(PostMemo { lead_fingerprint: fingerprint, result: Arc::clone(&result) });
        Ok(result)
    }

    /// Cluster mode: the auction's trail goes to Redis (after the answer, off the auction's path), so
    /// `/admin/pings/{id}` answers on every node.
    pub(super) fn share_audit(&self, audit: &Arc<AuctionAudit>, ttl: Duration) {
        let Some(redis) = self.coordinator.redis() else { return };
        let (redis, audit) = (Arc::clone(redis), Arc::clone(audit));
        // Written after the answer has gone (the spawned task runs once this one yields).
        tokio::spawn(async move {
            let trail = audit.to_bytes();
            redis.publish_audit(&audit.ping_id, trail, ttl + AUDIT_KEPT);
        });
    }

    /// Cluster mode: this node's post attempts and sales of a ping join its trail in Redis.
    fn share_progress(&self, held: &HeldPing) {
        let Some(redis) = self.coordinator.redis() else { return };
        let items = held.audit.progress_items();
        let (redis, ping_id) = (Arc::clone(redis), held.ping_id.clone());
        let keep = Duration::from_secs(held.campaign.bid_ttl_s) + AUDIT_KEPT;
        tokio::spawn(async move { redis.append_progress(&ping_id, items, keep).await });
    }

    /// The audit trail of a recent auction: this node's ring, or in cluster mode the one every node shares.
    /// The node that ran the auction writes its trail just after its answer; a read that finds the held ping
    /// but not yet its trail waits for it a little (up to 100 ms), so a trail read right after its answer on
    /// another node is found.
    pub async fn audit_trail(&self, ping_id: &str) -> Result<Option<serde_json::Value>, SellerError> {
        let Some(redis) = self.coordinator.redis() else {
            return Ok(self.audit.get(ping_id).map(|audit| audit.to_json()));
        };
        let unavailable = |_| SellerError::Unavailable("Redis");
        for attempt in 0..10 {
            if let Some((trail, progress)) = redis.load_audit(ping_id).await.map_err(unavailable)? {
                let trail = crate::audit::trail_json(&trail).ok_or(SellerError::Unavailable("Redis"))?;
                return Ok(Some(crate::audit::with_progress(trail, &progress)));
            }
            let in_flight = attempt == 0 && redis.load_ping(ping_id).await.map_err(unavailable)?.is_some();
            if attempt == 0 && !in_flight {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(self.audit.get(ping_id).map(|audit| audit.to_json()))
    }
}

/// How long after the bids' time to live a trail is still kept in Redis (cluster mode); the embedded ring
/// keeps the last 20,000 auctions instead.
const AUDIT_KEPT: Duration = Duration::from_secs(900);

fn answer_repeat(first: &PostMemo, fingerprint: [u8; 32]) -> Result<Arc<PostResult>, SellerError> {
    if first.lead_fingerprint == fingerprint {
        Ok(Arc::clone(&first.result))
    } else {
        Err(SellerError::AlreadyPosted)
    }
}

/// The longest one delivery of this ping may take: every offer's two post attempts, and a margin. A node that
/// dies mid-delivery holds the post's lock no longer than this.
fn delivery_bound(held: &HeldPing) -> Duration {
    let posts: u64 = held.offers.iter().map(|o| held.roster.config.buyers[o.bid.buyer].post_timeout_ms).sum();
    (Duration::from_millis(posts) + Duration::from_secs(10)).min(Duration::from_secs(600))
}
