//! Win/loss notices (API.md section 3): after an auction closes, every buyer with a `notice_url` that bid in
//! it is told what its bid came to — `won`, `lost`, `below_floor` or `unaffordable` — with its price or the
//! least bid that would have won ([`domain::outcomes`](crate::domain::outcomes) decides both).
//!
//! ## Layout
//! - here: [`Outbox`], the notices of one seller call, and [`Notices`], the bounded queue they go into.
//! - `answer` — how an outbox is held until the seller's answer is written: [`after_answer`].
//! - `send` — the drainer: sends each queued notice once, a bounded number at a time.
//!
//! ## Why after the answer, and how
//! A notice must never delay the seller. The engine only *collects* an auction's notices into the
//! [`Outbox`] the HTTP handler gave it; the handler attaches the outbox to its response (whatever the
//! response is, errors included), and the server moves it into the response body. hyper drops a body once
//! its last byte is in the connection's write buffer, and flushes that buffer in the same poll, before the
//! connection's task yields; dropping the outbox is what queues its notices. So a notice is queued only once
//! the whole answer — for a direct post, the post's answer, after the auction and the delivery — has been
//! handed to the socket, and the drainer, another task, can only start sending it after that.
//!
//! Queuing never waits: the queue holds [`QUEUE_CAPACITY`] notices, and a notice that finds it full is
//! dropped and counted. The drainer sends at most [`MAX_IN_FLIGHT`] at once, each bounded by its buyer's
//! `timeout_ms`, on the engine's pooled client (a hung notice holds one connection of the pool's own, never a
//! ping's); a notice is sent once, never retried, and never touches the buyer's health. Every notice ends in
//! `gavel_notices_total{buyer,outcome}` as `sent`, `failed` or `dropped`.

mod answer;
mod send;

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audit::BuyerOutcome;
use crate::config::{Buyer, Campaign, Config};
use crate::delivery::BuyerClient;
use crate::domain::expected_value::ReturnRate;
use crate::domain::outcomes::{fates, Bidder, Fate, Rules};
use crate::domain::ranking::Offer;
use crate::metrics::Metrics;

pub use answer::{after_answer, AfterAnswer};

/// Notices waiting to be sent at most; past it a notice is dropped. About a second of auctions at 1,000 a
/// second with 10 bidders each.
pub const QUEUE_CAPACITY: usize = 10_000;
/// Notices being sent at once at most, so that endpoints that hang hold a bounded number of connections.
pub const MAX_IN_FLIGHT: usize = 256;

/// One notice to one buyer.
#[derive(Debug)]
pub struct Notice {
    /// The buyer as the auction's config snapshot had it: its `notice_url`, headers and `timeout_ms`.
    pub buyer: Arc<Buyer>,
    pub auction: Arc<ClosedAuction>,
    pub fate: Fate,
}

/// What every notice of one auction shares.
#[derive(Debug)]
pub struct ClosedAuction {
    pub ping_id: String,
    pub campaign: String,
    pub test: bool,
}

/// The notice queue, shared by every seller call of the engine.
pub struct Notices {
    queue: mpsc::Sender<Notice>,
    /// Taken by [`Notices::start`], which hands it to the drainer.
    waiting: Mutex<Option<mpsc::Receiver<Notice>>>,
    metrics: Arc<Metrics>,
}

impl Notices {
    /// An empty queue; nothing is sent until [`Notices::start`].
    pub fn new(metrics: Arc<Metrics>) -> Notices {
        let (queue, waiting) = mpsc::channel(QUEUE_CAPACITY);
        Notices { queue, waiting: Mutex::new(Some(waiting)), metrics }
    }

    /// Starts the task that sends queued notices on `client`; `None` if it was already started.
    pub fn start(&self, client: BuyerClient) -> Option<JoinHandle<()>> {
        let waiting = self.waiting.lock().take()?;
        Some(tokio::spawn(send::drain(waiting, client, Arc::clone(&self.metrics))))
    }

    /// An empty outbox for one seller call.
    pub fn outbox(&self) -> Outbox {
        Outbox { notices: Vec::new(), queue: self.queue.clone(), metrics: Arc::clone(&self.metrics) }
    }
}

/// The notices of one seller call: filled by the engine when an auction closes, queued when dropped — which
/// the HTTP layer arranges to happen once the answer is written (see [`Outbox::hold_until_sent`]).
pub struct Outbox {
    notices: Vec<Notice>,
    queue: mpsc::Sender<Notice>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// Adds a notice for every bidder with a `notice_url` in an auction that closed with `offers` (ranked,
    /// priced, without the bids that could not be held). `outcomes` are the auction's audit entries: every
    /// buyer that bid has its bid there, and its return rate when the campaign ranks by expected value.
    pub fn auction_closed(
        &mut self,
        config: &Config,
        campaign: &Campaign,
        ping_id: &str,
        test: bool,
        outcomes: &[BuyerOutcome],
        offers: &[Offer],
    ) {
        let bidders: Vec<Bidder> = outcomes
            .iter()
            .filter_map(|outcome| {
                let amount = outcome.bid?;
                let buyer = config.buyer_index(&outcome.buyer)?;
                config.buyers[buyer].notice_url.as_ref()?;
                let return_rate = outcome.return_rate.unwrap_or(ReturnRate::NO_HISTORY);
                Some(Bidder { buyer, amount, return_rate })
            })
            .collect();
        if bidders.is_empty() {
            return;
        }
        let rules = Rules {
            distribution: campaign.distribution,
            ranking: campaign.ranking,
            floor: campaign.floor,
            places: campaign.sell.places(),
        };
        let auction = Arc::new(ClosedAuction { ping_id: ping_id.to_owned(), campaign: campaign.id.clone(), test });
        self.notices.extend(fates(&rules, &bidders, offers).into_iter().map(|fate| Notice {
            buyer: Arc::clone(&config.buyers[fate.buyer]),
            auction: Arc::clone(&auction),
            fate,
        }));
    }

    /// The notices collected so far.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    /// Attaches this outbox to `response`, so that its notices are queued only once the response has been
    /// written (the server's [`after_answer`] moves it into the body). An empty outbox attaches nothing.
    pub fn hold_until_sent(self, mut response: crate::http::HttpResponse) -> crate::http::HttpResponse {
        if !self.notices.is_empty() {
            response.extensions_mut().insert(answer::Held::new(self));
        }
        response
    }
}

impl Drop for Outbox {
    /// Queues every notice without waiting: one that finds the queue full (or the drainer gone) is dropped.
    fn drop(&mut self) {
        for notice in self.notices.drain(..) {
            if let Err(refused) = self.queue.try_send(notice) {
                let notice = match refused {
                    mpsc::error::TrySendError::Full(notice) | mpsc::error::TrySendError::Closed(notice) => notice,
                };
                self.metrics.inc("gavel_notices_total", &[("buyer", &notice.buyer.id), ("outcome", "dropped")]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
