//! Return rates for one auction's bids, when its campaign ranks by expected value (API.md section 7): read
//! from the ledger's running aggregate in one short look at the books, set on each bid for ranking, and
//! shown beside each bid in the audit trail.

use chrono::{DateTime, Utc};

use crate::audit::BuyerOutcome;
use crate::config::{Campaign, Config, Ranking};
use crate::domain::ranking::Bid;
use crate::ledger::Ledger;

/// Sets every bid's return rate with `seller` over the campaign's window, and records the rate and the
/// expected value in the bidder's audit entry. Does nothing for a campaign ranked by bid.
pub fn read_return_rates(
    ledger: &Ledger,
    config: &Config,
    campaign: &Campaign,
    seller: &str,
    bids: &mut [Bid],
    outcomes: &mut [BuyerOutcome],
    now: DateTime<Utc>,
) {
    if campaign.ranking != Ranking::ExpectedValue || bids.is_empty() {
        return;
    }
    // One lock for every bidder: a few hash lookups and binary searches, nothing that scans the books.
    ledger.read(|books| {
        let rates = books.return_rates.seller(seller);
        for bid in bids.iter_mut() {
            bid.return_rate = rates.rate(&config.buyers[bid.buyer].id, campaign.return_rate_days, now);
        }
    });
    for bid in bids.iter() {
        let buyer = &config.buyers[bid.buyer].id;
        if let Some(outcome) = outcomes.iter_mut().find(|o| o.buyer == *buyer) {
            outcome.return_rate = Some(bid.return_rate);
            outcome.expected_value = Some(bid.expected_value().rounded_down());
        }
    }
}
