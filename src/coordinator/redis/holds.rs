//! Holds, claims, conversions, credits, slots and each buyer's tally in Redis, and the rebuild of all of them
//! from the ledger after Redis lost them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use redis::Value;
use tokio::time::Instant;

use super::{integer, verdict, RedisCoordinator, RECENT_CONVERSIONS};
use crate::buyers::{BuyerState, Roster};
use crate::capacity::{period_terms, Ask, Period, Shortfall};
use crate::config::{Billing, Buyer};
use crate::coordinator::{claim_window, Hold, Publication, Slot, Unclaimed, Unreachable};
use crate::dedupe::Contact;
use crate::domain::money::Money;
use crate::domain::ranking::Offer;
use crate::ids::new_id;

/// How long a concurrency slot is leased: a ping never runs longer (deadlines are at most 5 s), and a dead
/// node's slots come back within this (API.md section 9: within 10 s).
const SLOT_LEASE: Duration = Duration::from_secs(8);

/// The keys of one buyer, all under its hash tag.
pub(super) struct BuyerKeys(String);

impl BuyerKeys {
    pub(super) fn tally(&self) -> String {
        format!("{}tally", self.0)
    }
    pub(super) fn holds(&self) -> String {
        format!("{}holds", self.0)
    }
    /// What each hold took (hold id → its cents and contacts).
    pub(super) fn held(&self) -> String {
        format!("{}held", self.0)
    }
    pub(super) fn contact_prefix(&self) -> String {
        format!("{}c:", self.0)
    }
    pub(super) fn contact(&self, contact: &Contact) -> String {
        format!("{}c:{}", self.0, hex::encode(contact))
    }
    pub(super) fn conversion(&self, lead_id: &str) -> String {
        format!("{}conv:{lead_id}", self.0)
    }
    pub(super) fn credit(&self, transaction_id: &str) -> String {
        format!("{}cred:{transaction_id}", self.0)
    }
    pub(super) fn slots(&self) -> String {
        format!("{}slots", self.0)
    }
}

/// A buyer's credit on top of its balance: an invoice buyer's limit, nothing for a prepaid one.
fn credit_cents(buyer: &Buyer) -> i64 {
    match buyer.billing {
        Billing::Invoice { credit_limit } => credit_limit.cents(),
        Billing::Prepaid => 0,
    }
}

/// The duplicate window in milliseconds (0: off).
fn dedupe_ms(buyer: &Buyer) -> u64 {
    u64::from(buyer.dedupe_days) * 86_400_000
}

/// A sale converted into Redis, kept a minute to be converted again after a flush.
#[derive(Clone)]
pub(super) struct Conversion {
    buyer: Arc<Buyer>,
    hold_id: String,
    lead_id: String,
    amount: Money,
    at: DateTime<Utc>,
    contacts: Vec<Contact>,
}

/// A hold in Redis. Dropping one this node took releases it (in the background; the hold's expiry in Redis is
/// the backstop); dropping one adopted from another node's ping leaves it be.
pub struct RemoteHold {
    redis: Arc<RedisCoordinator>,
    buyer: Arc<Buyer>,
    id: String,
    amount: Money,
    contacts: Vec<Contact>,
    /// Taken by this node (released when dropped), not adopted with a ping another node made.
    owned: bool,
    /// This node's local view of the hold (see `BuyerCapacity::shadow`); it goes when the hold does.
    shadow: Option<crate::capacity::Hold>,
    settled: bool,
}

impl RemoteHold {
    /// A hold another node took for a ping this node now posts.
    pub fn adopt(redis: &Arc<RedisCoordinator>, buyer: &Arc<Buyer>, id: String, amount: Money) -> RemoteHold {
        RemoteHold {
            redis: Arc::clone(redis),
            buyer: Arc::clone(buyer),
            id,
            amount,
            contacts: Vec::new(),
            owned: false,
            shadow: None,
            settled: false,
        }
    }

    pub fn amount(&self) -> Money {
        self.amount
    }

    /// Releases it now, whoever took it.
    pub fn release(mut self) {
        self.settled = true;
        self.shadow = None;
        self.spawn_release();
    }

    /// Releases it if its expiry passed (a post may have claimed it and moved its expiry out). Every unposted
    /// winning bid ends this way, so the release waits a little to travel with others (see [`Expiries`]).
    pub fn expire(mut self) {
        self.settled = true;
        self.shadow = None;
        self.redis.expiries.push((self.buyer.id.clone(), std::mem::take(&mut self.id)));
    }

    fn spawn_release(&self) {
        let (redis, buyer, id) = (Arc::clone(&self.redis), self.buyer.id.clone(), self.id.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { redis.release(&buyer, &id, true).await });
        }
    }

    /// See [`Hold::claim`].
    pub async fn claim(&mut self, contacts: &[Contact]) -> Result<(), Unclaimed> {
        let keys = self.redis.buyer_keys(&self.buyer.id);
        let mut command = redis::cmd("FCALL");
        command.arg("gavel_claim").arg(3 + contacts.len()).arg(keys.tally()).arg(keys.holds()).arg(keys.held());
        for contact in contacts {
            command.arg(keys.contact(contact));
        }
        let dedupe = if self.buyer.dedupe_days > 0 { "1" } else { "0" };
        command.arg(&self.id).arg(claim_window(&self.buyer).as_millis() as u64).arg(dedupe);
        for contact in contacts {
            command.arg(hex::encode(contact));
        }
        let answer: Value = self.redis.call("claim", &command).await.map_err(|_| Unclaimed::Unreachable)?;
        match verdict(&answer).as_deref() {
            Some("ok") => {
                for contact in contacts {
                    if !self.contacts.contains(contact) {
                        self.contacts.push(*contact);
                    }
                }
                Ok(())
            }
            Some("duplicate") => Err(Unclaimed::Duplicate),
            _ => Err(Unclaimed::Gone),
        }
    }

    /// The buyer took the lead at `at` (`lead_id`): the hold becomes a counted sale. Tried at once; if Redis
    /// does not answer, retried in the background until it does (the ledger books the sale either way).
    pub async fn convert(mut self, lead_id: &str, at: DateTime<Utc>) {
        self.settled = true;
        // The sale reaches this node's view through the ledger's tail.
        self.shadow = None;
        let conversion = Conversion {
            buyer: Arc::clone(&self.buyer),
            hold_id: self.id.clone(),
            lead_id: lead_id.to_owned(),
            amount: self.amount,
            at,
            contacts: std::mem::take(&mut self.contacts),
        };
        let redis = Arc::clone(&self.redis);
        redis.remember(conversion.clone());
        if redis.convert(&conversion).await.is_err() {
            tokio::spawn(async move {
                let mut wait = Duration::from_millis(100);
                let give_up = Instant::now() + Duration::from_secs(600);
                while redis.convert(&conversion).await.is_err() && Instant::now() < give_up {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
            });
        }
    }
}

impl Drop for RemoteHold {
    fn drop(&mut self) {
        if !self.settled && self.owned {
            self.spawn_release();
        }
    }
}

/// How long an expired hold waits for others before their releases go to Redis together. An expiry frees
/// room that the next hold would find anyway (a hold refused for want of room first purges every expired
/// hold, and so does a read of the tally), so the wait costs nothing exact; at 1,000 unposted bids a second
/// it turns 1,000 round trips into 10.
const EXPIRY_GATHER: Duration = Duration::from_millis(100);

/// Expired holds waiting to be released, as (buyer id, hold id).
pub(super) type Expiries = super::gather::Gathering<(String, String)>;

/// Releases expired holds for as long as `redis` lives: on the first expiry after a quiet spell it waits
/// [`EXPIRY_GATHER`] for more, then sends them all in one round trip.
pub(super) async fn release_expired_holds(redis: std::sync::Weak<RedisCoordinator>) {
    let release = |redis: Arc<RedisCoordinator>, batch| async move { redis.release_expired(batch).await };
    super::gather::send_in_rounds(redis, |redis| &redis.expiries, EXPIRY_GATHER, release).await;
}

/// A leased concurrency slot in Redis.
pub struct RemoteSlot {
    redis: Arc<RedisCoordinator>,
    buyer: String,
    id: String,
}

impl Drop for RemoteSlot {
    fn drop(&mut self) {
        let (redis, buyer, id) =
            (Arc::clone(&self.redis), std::mem::take(&mut self.buyer), std::mem::take(&mut self.id));
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let mut command = redis::cmd("ZREM");
                command.arg(redis.buyer_keys(&buyer).slots()).arg(id);
                let _ = redis.call::<Value>("slot_release", &command).await;
            });
        }
    }
}

/// What a buyer has used and holds, as Redis counts it for the whole exchange.
#[derive(Debug, Clone, PartialEq)]
pub struct TallySnapshot {
    pub held_units: u32,
    pub held: Money,
    pub balance: Money,
    /// Hourly to monthly: sales and spend of the current period.
    pub periods: [(u32, Money); 4],
}

impl RedisCoordinator {
    pub(super) fn buyer_keys(&self, buyer: &str) -> BuyerKeys {
        BuyerKeys(format!("{}{{b:{buyer}}}:", self.prefix))
    }

    /// The `gavel_hold` call for one bid.
    fn hold_command(&self, buyer: &Buyer, ask: Ask<'_>, id: &str, ttl: Duration, epoch: &str) -> redis::Cmd {
        let keys = self.buyer_keys(&buyer.id);
        let dedupe = buyer.dedupe_days > 0;
        let contacts: &[Contact] = if dedupe { ask.contacts } else { &[] };
        let mut command = redis::cmd("FCALL");
        command.arg("gavel_hold").arg(3 + contacts.len()).arg(keys.tally()).arg(keys.holds()).arg(keys.held());
        for contact in contacts {
            command.arg(keys.contact(contact));
        }
        command
            .arg(epoch)
            .arg(id)
            .arg(ttl.as_millis().max(1) as u64)
            .arg(ask.amount.cents())
            .arg(credit_cents(buyer))
            .arg(if dedupe { "1" } else { "0" })
            .arg(keys.contact_prefix());
        for (key, cap, budget) in period_terms(buyer, Utc::now()) {
            command.arg(key).arg(cap.map_or(-1, i64::from)).arg(budget.map_or(-1, Money::cents));
        }
        for contact in contacts {
            command.arg(hex::encode(contact));
        }
        command
    }

    /// Reads a hold's answer: the hold, why it was refused, or `Err` when Redis must be rebuilt first.
    fn read_hold(
        self: &Arc<Self>,
        answer: &Value,
        (buyer, state): (&Arc<Buyer>, &Arc<BuyerState>),
        id: String,
        ask: Ask<'_>,
    ) -> Result<Result<Hold, Shortfall>, Unreachable> {
        let period = |answer: &Value| match answer {
            Value::Array(items) => {
                items.get(1).and_then(integer).and_then(|p| Period::ALL.get(p as usize - 1).copied())
            }
            _ => None,
        };
        match verdict(answer).as_deref() {
            Some("ok") => Ok(Ok(Hold::Remote(RemoteHold {
                redis: Arc::clone(self),
                buyer: Arc::clone(buyer),
                id,
                amount: ask.amount,
                contacts: if buyer.dedupe_days > 0 { ask.contacts.to_vec() } else { Vec::new() },
                owned: true,
                shadow: Some(state.capacity.shadow(buyer, ask)),
                settled: false,
            }))),
            Some("duplicate") => Ok(Err(Shortfall::Duplicate)),
            Some("cap") => Ok(Err(Shortfall::Cap(period(answer).unwrap_or(Period::Daily)))),
            Some("budget") => Ok(Err(Shortfall::Budget(period(answer).unwrap_or(Period::Daily)))),
            Some("balance") => Ok(Err(Shortfall::Balance)),
            _ => {
                // `empty`: this buyer's state is not in Redis (flushed, or a new buyer): rebuild first.
                self.needs_rebuild();
                Err(Unreachable)
            }
        }
    }

    /// See [`crate::coordinator::Coordinator::hold_winners`].
    #[allow(clippy::too_many_arguments)] // the same hand-off as `Coordinator::hold_winners`
    pub(crate) async fn hold_winners(
        self: &Arc<Self>,
        roster: &Roster,
        wanted: usize,
        contacts: &[Contact],
        offers: &mut Vec<Offer>,
        ttl: Duration,
        holds: &mut Vec<Option<Hold>>,
        refused: &mut (dyn FnMut(usize, Shortfall) + Send),
        publish: Option<Publication<'_>>,
    ) -> Result<(), Unreachable> {
        let epoch = self.ready_epoch()?;
        loop {
            let start = holds.len();
            let batch: Vec<usize> = (start..offers.len().min(wanted)).collect();
            let ids: Vec<String> = batch.iter().map(|_| new_id("h_")).collect();
            let mut pipe = redis::pipe();
            for (&index, id) in batch.iter().zip(&ids) {
                let buyer = &roster.config.buyers[offers[index].bid.buyer];
                pipe.add_command(self.hold_command(
                    buyer,
                    Ask { amount: offers[index].price, contacts },
                    id,
                    ttl,
                    &epoch,
                ));
            }
            if let Some(publication) = &publish {
                // Written assuming every hold of this pass is taken; corrected by the next pass if one is not.
                let mut hold_ids: Vec<Option<String>> = holds.iter().map(|h| h.as_ref().and_then(hold_id)).collect();
                hold_ids.extend(ids.iter().cloned().map(Some));
                hold_ids.resize(offers.len(), None);
                pipe.add_command(self.ping_record_command(publication, offers, &hold_ids));
            }
            if batch.is_empty() && publish.is_none() {
                return Ok(());
            }
            // Earlier auctions' trails ride along (their replies ignored, so `answers` stays the holds' and
            // the record's); on a second pass there are none left, or only newer ones.
            super::trails::ride_along(&self.trails, &mut pipe);
            let answers = self.pipeline("hold", &pipe).await?;
            let mut any_refused = false;
            for (id, answer) in ids.into_iter().zip(&answers) {
                let index = holds.len();
                let buyer = offers[index].bid.buyer;
                let taker = (&roster.config.buyers[buyer], &roster.states[buyer]);
                match self.read_hold(answer, taker, id, Ask { amount: offers[index].price, contacts })? {
                    Ok(hold) => holds.push(Some(hold)),
                    Err(shortfall) => {
                        refused(offers.remove(index).bid.buyer, shortfall);
                        any_refused = true;
                    }
                }
            }
            // Done when the record written matches the offers as they now stand.
            if !any_refused {
                return Ok(());
            }
        }
    }

    /// See [`crate::coordinator::Coordinator::hold`].
    pub(crate) async fn hold(
        self: &Arc<Self>,
        roster: &Roster,
        buyer: usize,
        ask: Ask<'_>,
        ttl: Duration,
    ) -> Result<Result<Hold, Shortfall>, Unreachable> {
        let epoch = self.ready_epoch()?;
        let taker = (&roster.config.buyers[buyer], &roster.states[buyer]);
        let id = new_id("h_");
        let answer: Value = self.call("hold", &self.hold_command(taker.0, ask, &id, ttl, &epoch)).await?;
        self.read_hold(&answer, taker, id, ask)
    }

    /// See [`crate::coordinator::Coordinator::take_slots`].
    pub(crate) async fn take_slots(
        self: &Arc<Self>,
        roster: &Roster,
        wanted: &[(usize, u32)],
    ) -> Result<Vec<Option<Slot>>, Unreachable> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        let mut ids = Vec::with_capacity(wanted.len());
        for &(buyer, limit) in wanted {
            let id = new_id("s_");
            let keys = self.buyer_keys(&roster.config.buyers[buyer].id);
            pipe.cmd("FCALL")
                .arg("gavel_slot")
                .arg(1)
                .arg(keys.slots())
                .arg(&id)
                .arg(limit)
                .arg(SLOT_LEASE.as_millis() as u64);
            ids.push(id);
        }
        let answers = self.pipeline("slots", &pipe).await?;
        Ok(wanted
            .iter()
            .zip(ids)
            .zip(&answers)
            .map(|((&(buyer, _), id), answer)| {
                (verdict(answer).as_deref() == Some("ok")).then(|| {
                    Slot::Remote(RemoteSlot {
                        redis: Arc::clone(self),
                        buyer: roster.config.buyers[buyer].id.clone(),
                        id,
                    })
                })
            })
            .collect())
    }

    async fn release(&self, buyer: &str, id: &str, force: bool) {
        let _ = self.call::<Value>("release", &self.release_command(buyer, id, force)).await;
    }

    fn release_command(&self, buyer: &str, id: &str, force: bool) -> redis::Cmd {
        let keys = self.buyer_keys(buyer);
        let mut command = redis::cmd("FCALL");
        command
            .arg("gavel_release")
            .arg(3)
            .arg(keys.tally())
            .arg(keys.holds())
            .arg(keys.held())
            .arg(id)
            .arg(keys.contact_prefix())
            .arg(if force { "1" } else { "0" });
        command
    }

    /// Sends the expired holds gathered since the last call, in one round trip (a failed one is left to the
    /// holds' own expiry in Redis: the next refusal purges them).
    async fn release_expired(&self, batch: Vec<(String, String)>) {
        let mut pipe = redis::pipe();
        for (buyer, id) in &batch {
            pipe.add_command(self.release_command(buyer, id, false)).ignore();
        }
        let _ = self.pipeline("expire", &pipe).await;
    }

    pub(super) async fn convert(&self, conversion: &Conversion) -> Result<(), Unreachable> {
        let buyer = &conversion.buyer;
        let keys = self.buyer_keys(&buyer.id);
        let mut command = redis::cmd("FCALL");
        command
            .arg("gavel_convert")
            .arg(4 + conversion.contacts.len())
            .arg(keys.tally())
            .arg(keys.holds())
            .arg(keys.held())
            .arg(keys.conversion(&conversion.lead_id));
        for contact in &conversion.contacts {
            command.arg(keys.contact(contact));
        }
        command.arg(&conversion.hold_id).arg(conversion.amount.cents());
        for (key, _, _) in period_terms(buyer, conversion.at) {
            command.arg(key);
        }
        command.arg(dedupe_ms(buyer));
        self.call::<Value>("convert", &command).await.map(drop)
    }

    fn remember(&self, conversion: Conversion) {
        let now = Instant::now();
        let mut recent = self.recent.lock();
        // Oldest first: the expired ones are at the front, a few at a time.
        while recent.first().is_some_and(|(at, _)| now - *at > RECENT_CONVERSIONS) {
            recent.remove(0);
        }
        recent.push((now, conversion));
    }

    /// Money into a buyer's balance mirror after the ledger committed it (a deposit, an approved return).
    pub async fn credit(&self, buyer: &str, transaction_id: &str, amount: Money) {
        let Some(epoch) = self.known_epoch() else { return };
        let keys = self.buyer_keys(buyer);
        let mut command = redis::cmd("FCALL");
        command
            .arg("gavel_credit")
            .arg(2)
            .arg(keys.tally())
            .arg(keys.credit(transaction_id))
            .arg(epoch)
            .arg(amount.cents());
        let _ = self.call::<Value>("credit", &command).await;
    }

    /// What a buyer has used and holds now, for the whole exchange; `None` when its state is not in Redis.
    pub async fn tally(&self, buyer: &Buyer) -> Result<Option<TallySnapshot>, Unreachable> {
        let epoch = self.ready_epoch()?;
        let keys = self.buyer_keys(&buyer.id);
        let mut command = redis::cmd("FCALL");
        command
            .arg("gavel_tally")
            .arg(3)
            .arg(keys.tally())
            .arg(keys.holds())
            .arg(keys.held())
            .arg(epoch)
            .arg(keys.contact_prefix());
        for (key, _, _) in period_terms(buyer, Utc::now()) {
            command.arg(key);
        }
        let answer: Value = self.call("tally", &command).await?;
        let Value::Array(items) = answer else { return Ok(None) };
        if verdict(&Value::Array(items.clone())).as_deref() != Some("ok") {
            self.needs_rebuild();
            return Ok(None);
        }
        let n = |i: usize| items.get(i).and_then(integer).unwrap_or(0);
        let periods = [0, 1, 2, 3].map(|p| (n(4 + 2 * p) as u32, Money::from_cents(n(5 + 2 * p))));
        Ok(Some(TallySnapshot {
            held_units: n(1) as u32,
            held: Money::from_cents(n(2)),
            balance: Money::from_cents(n(3)),
            periods,
        }))
    }

    /// The epoch to pass, if this node may take holds now.
    pub(super) fn ready_epoch(&self) -> Result<String, Unreachable> {
        if !self.is_ready() {
            return Err(Unreachable);
        }
        self.known_epoch().ok_or(Unreachable)
    }
}

/// The Redis id of a hold, if it is one.
fn hold_id(hold: &Hold) -> Option<String> {
    match hold {
        Hold::Remote(remote) => Some(remote.id.clone()),
        Hold::Local(_) => None,
    }
}
