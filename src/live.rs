//! The live feed: a bounded broadcast of every auction answer and every sale, for live views (the operator's
//! dashboard). The engine publishes without waiting: a send writes into a ring the channel allocated up
//! front, and a subscriber that falls behind loses the oldest events, so no reader can slow an auction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use crate::audit::AuctionAudit;
use crate::domain::money::Money;

/// Events the feed keeps for a subscriber that is behind; past that it skips ahead (and is told how many it
/// missed). At 20,000 auctions a second this is a fifth of a second of slack for the one dashboard task.
pub const CAPACITY: usize = 4096;

/// One thing that happened on the exchange.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    /// An auction was answered; its audit record (shared with the ring, not copied) says how.
    Auction(Arc<AuctionAudit>),
    /// A lead was sold and booked (never a test ping's).
    Sale { lead_id: String, at: DateTime<Utc>, price: Money, payout: Money },
}

/// The sending side, held by the engine.
pub struct LiveFeed(broadcast::Sender<LiveEvent>);

impl Default for LiveFeed {
    fn default() -> Self {
        LiveFeed(broadcast::channel(CAPACITY).0)
    }
}

impl LiveFeed {
    /// Publishes an event. Never waits; with nobody listening it is dropped.
    pub fn publish(&self, event: LiveEvent) {
        let _nobody_listening = self.0.send(event);
    }

    /// A new subscriber, seeing events published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<LiveEvent> {
        self.0.subscribe()
    }
}
