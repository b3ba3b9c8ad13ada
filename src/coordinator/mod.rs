//! The coordinator: what must be exact across the nodes of an exchange at auction speed (DESIGN.md, "Cluster
//! mode") — holds on caps, budgets, funds and the lead's contacts; concurrency slots; held pings so a post can
//! land on any node; the post lock; seller ping rates; the audit trail another node may be asked for.
//!
//! Two implementations behind one enum, chosen once at start: [`Coordinator::Local`] is one node's in-memory
//! structures (each buyer's [`BuyerCapacity`](crate::capacity::BuyerCapacity), the ping store and its post
//! memos, the rate limiter) and costs nothing more than before; [`Coordinator::Redis`] keeps the same things in
//! Redis, one server-side function per atomic step, so every node sees one truth. The engine, the gates, the
//! auction and the HTTP layer ask the coordinator and never learn which one they have.
//!
//! Gates still run on each node's local view (which in cluster mode lags by the ledger's tail); the hold at
//! the end of the auction is the exact check, so a stale view can cost a ping, never an over-delivery.

mod record;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::buyers::Roster;
use crate::capacity::{self, Ask, Shortfall};
use crate::dedupe::Contact;
use crate::domain::money::Money;
use crate::domain::ranking::Offer;
use crate::ledger::{Ledger, LedgerError};

pub use record::{Digest, PingRecord, RecordedOffer};
pub use redis::RedisCoordinator;

/// A shared store the call needs cannot be reached (cluster mode): nothing was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Redis cannot be reached")]
pub struct Unreachable;

/// Where the exact state lives.
pub enum Coordinator {
    /// One node: in memory.
    Local,
    /// Cluster mode: Redis.
    Redis(Arc<RedisCoordinator>),
}

/// A winning bid's reservation (see [`crate::capacity`]): dropping it releases what it holds.
pub enum Hold {
    Local(capacity::Hold),
    Remote(redis::RemoteHold),
}

/// A ping in flight to a buyer with `concurrent_pings`: dropping it frees the slot.
pub enum Slot {
    Local(capacity::Slot),
    Remote(redis::RemoteSlot),
}

/// Why a post could not take a held bid for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unclaimed {
    /// The real phone or email is a duplicate for the buyer.
    Duplicate,
    /// The hold is gone (it expired, or Redis lost it): the bid cannot be delivered under it.
    Gone,
    /// Redis cannot be reached.
    Unreachable,
}

impl Hold {
    /// The price held.
    pub fn amount(&self) -> Money {
        match self {
            Hold::Local(hold) => hold.amount(),
            Hold::Remote(hold) => hold.amount(),
        }
    }

    /// Takes the held bid for delivery: reserves the real contacts too (a duplicate refuses), and in cluster
    /// mode moves the hold's expiry out by the time the post may take.
    pub async fn claim(&mut self, contacts: &[Contact], now: DateTime<Utc>) -> Result<(), Unclaimed> {
        match self {
            Hold::Local(hold) => hold.reserve_contacts(contacts, now).map_err(|_| Unclaimed::Duplicate),
            Hold::Remote(hold) => hold.claim(contacts).await,
        }
    }

    /// Gives back what the hold holds, now (the ping is done, or the bid cannot take the lead).
    pub fn release(self) {
        match self {
            Hold::Local(hold) => drop(hold),
            Hold::Remote(hold) => hold.release(),
        }
    }

    /// The bid's time to live passed unposted: gives back what the hold holds, unless (cluster mode) a post on
    /// another node claimed it meanwhile.
    pub fn expire(self) {
        match self {
            Hold::Local(hold) => drop(hold),
            Hold::Remote(hold) => hold.expire(),
        }
    }

    /// Books the sale the hold was for: the ledger records it (`record`) and the hold becomes a counted sale,
    /// in the order that keeps funds and caps exact for this coordinator. Embedded: the ledger first (funds
    /// read the balance, which then drops before the hold lets go of its money). Redis: the hold first (Redis
    /// counts the sale and lowers its balance mirror in one step), then the ledger — a node dying in between
    /// leaves a sale counted that was never booked, the safe side.
    pub async fn book<T>(
        self,
        lead_id: &str,
        at: DateTime<Utc>,
        record: impl std::future::Future<Output = Result<T, LedgerError>>,
    ) -> Result<T, LedgerError> {
        match self {
            Hold::Local(hold) => {
                let booked = record.await?;
                hold.commit(at);
                Ok(booked)
            }
            Hold::Remote(hold) => {
                hold.convert(lead_id, at).await;
                record.await
            }
        }
    }
}

/// How long a bid taken for delivery stays held: its post's time (both attempts share the buyer's
/// `post_timeout_ms`) and a margin. A node that dies mid-delivery keeps the bid's room this long, no longer.
pub fn claim_window(buyer: &crate::config::Buyer) -> Duration {
    Duration::from_millis(buyer.post_timeout_ms) + Duration::from_secs(5)
}

/// Builds a held ping's record from the offers as they stand and each one's hold id.
pub type BuildRecord<'a> = dyn Fn(&[Offer], &[Option<String>]) -> Vec<u8> + Sync + 'a;

/// What [`Coordinator::hold_winners`] publishes with the holds in cluster mode: the held ping, so that a post
/// on any node finds it.
pub struct Publication<'a> {
    pub ping_id: &'a str,
    /// How long the record is kept (the bids' time to live, then as long as a late post is told 410).
    pub keep: Duration,
    /// The record, from the offers as they stand and each one's hold id.
    pub build: &'a BuildRecord<'a>,
}

impl Coordinator {
    /// Takes a concurrency slot for each `(buyer index, limit)`, in one round trip in cluster mode. `None` for
    /// a buyer whose slots are all taken.
    pub async fn take_slots(&self, roster: &Roster, wanted: &[(usize, u32)]) -> Result<Vec<Option<Slot>>, Unreachable> {
        match self {
            Coordinator::Local => Ok(wanted
                .iter()
                .map(|&(buyer, limit)| {
                    roster.states[buyer].capacity.try_slot(Some(limit)).ok().flatten().map(Slot::Local)
                })
                .collect()),
            Coordinator::Redis(redis) => redis.take_slots(roster, wanted).await,
        }
    }

    /// Holds the offers that would sell, in offer order, until `wanted` are held: a bid whose buyer has no room
    /// (taken by a concurrent auction since the gates ran, or holding the same consumer for another auction)
    /// leaves the offers, `refused` is told why, and the next bid moves up. Returns the holds aligned with
    /// `offers` (`None` past the winners: the cascade holds a runner-up when it reaches it). In cluster mode the
    /// holds of one pass and the held ping (`publish`) travel in one round trip.
    #[allow(clippy::too_many_arguments)] // the auction's one hand-off to the coordinator
    pub async fn hold_winners(
        &self,
        roster: &Roster,
        ledger: &Ledger,
        wanted: usize,
        contacts: &[Contact],
        offers: &mut Vec<Offer>,
        ttl: Duration,
        now: DateTime<Utc>,
        refused: &mut (dyn FnMut(usize, Shortfall) + Send),
        publish: Option<Publication<'_>>,
    ) -> Result<Vec<Option<Hold>>, Unreachable> {
        let mut holds = Vec::new();
        match self {
            Coordinator::Local => {
                while holds.len() < wanted && holds.len() < offers.len() {
                    let offer = &offers[holds.len()];
                    let ask = Ask { amount: offer.price, contacts };
                    match hold_locally(roster, ledger, offer.bid.buyer, ask, now) {
                        Ok(hold) => holds.push(Some(hold)),
                        Err(shortfall) => refused(offers.remove(holds.len()).bid.buyer, shortfall),
                    }
                }
            }
            Coordinator::Redis(redis) => {
                redis.hold_winners(roster, wanted, contacts, offers, ttl, &mut holds, refused, publish).await?;
            }
        }
        holds.resize_with(offers.len(), || None);
        Ok(holds)
    }

    /// Holds one bid (a runner-up the cascade reached) for `ttl`.
    pub async fn hold(
        &self,
        roster: &Roster,
        ledger: &Ledger,
        buyer: usize,
        ask: Ask<'_>,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Result<Hold, Shortfall>, Unreachable> {
        match self {
            Coordinator::Local => Ok(hold_locally(roster, ledger, buyer, ask, now)),
            Coordinator::Redis(redis) => redis.hold(roster, buyer, ask, ttl).await,
        }
    }

    /// True in cluster mode.
    pub fn is_clustered(&self) -> bool {
        matches!(self, Coordinator::Redis(_))
    }

    /// The Redis coordinator, in cluster mode.
    pub fn redis(&self) -> Option<&Arc<RedisCoordinator>> {
        match self {
            Coordinator::Redis(redis) => Some(redis),
            Coordinator::Local => None,
        }
    }
}

fn hold_locally(
    roster: &Roster,
    ledger: &Ledger,
    buyer: usize,
    ask: Ask<'_>,
    now: DateTime<Utc>,
) -> Result<Hold, Shortfall> {
    let (config, state) = (&roster.config.buyers[buyer], &roster.states[buyer]);
    // The ledger is read for funds under the buyer's lock (see `capacity`).
    state.capacity.try_hold(config, now, ask, || state.funds(config, ledger)).map(Hold::Local)
}
