//! The post cascade: offer the lead to the bidders in ranked order until enough of them take it.
//!
//! An exclusive lead goes to one buyer at a time; a shared lead to as many at once as are still wanted. A
//! bidder whose payout would fall below the seller's `min_payout` is skipped, and so is one for which the real
//! phone or email is a duplicate: its hold must reserve them before the lead is sent. A sale is answered only
//! after the ledger has recorded it; once a buyer accepted the lead, the sale is booked whatever fails after
//! (cluster mode retries an unreachable ledger until it answers).

use chrono::Utc;
use futures_util::future::join_all;
use tokio::time::Instant;

use crate::auction::held::{HeldPing, PostResult, SoldTo, UnsoldReason};
use crate::audit::{round_ms, PostAttemptRecord, SaleRecord};
use crate::capacity::Ask;
use crate::config::SellMode;
use crate::coordinator::{Coordinator, Unclaimed};
use crate::dedupe::{contacts_of, Contact};
use crate::delivery::{post_body, post_lead, BuyerClient, PostOutcome};
use crate::domain::lead::Lead;
use crate::domain::money::Money;
use crate::domain::ranking::Offer;
use crate::engine::SellerError;
use crate::ids::new_id;
use crate::ledger::{Ledger, Sale};
use crate::metrics::Metrics;

/// The parts of the engine a delivery uses.
pub struct Cascade<'a> {
    pub client: &'a BuyerClient,
    pub ledger: &'a Ledger,
    pub metrics: &'a Metrics,
    pub coordinator: &'a Coordinator,
}

/// The lead being delivered, with what the duplicate check needs from it.
struct Posted<'a> {
    lead: &'a Lead,
    /// What the ledger keeps of it.
    kept: serde_json::Map<String, serde_json::Value>,
    /// The real phone and email: what the duplicate check reserves for the buyer that takes it.
    contacts: Vec<Contact>,
}

impl Cascade<'_> {
    /// Delivers `lead` (normalized, full) for a held ping. `Err` only when nothing was sold: a store could not
    /// be reached (503), or a ping's holds were lost with Redis (410).
    pub async fn deliver(
        &self,
        held: &HeldPing,
        lead: &Lead,
        min_payout: Option<Money>,
    ) -> Result<PostResult, SellerError> {
        // The real phone and email are known now: the duplicate check runs again on them.
        let posted =
            Posted { lead, kept: lead.record_projection(&held.campaign.ping_fields), contacts: contacts_of(lead) };
        let wanted = match held.campaign.sell {
            SellMode::Exclusive => 1,
            SellMode::Shared { max_buyers } => usize::from(max_buyers),
        };
        let margin = held.seller.margin_percent;
        let priced = held.offers.iter().enumerate().map(|(i, offer)| ((i, offer), offer.price.less_margin(margin)));
        let (candidates, skipped): (Vec<_>, Vec<_>) =
            priced.partition(|(_, payout)| min_payout.is_none_or(|least| *payout >= least));
        // Unsold with a bidder skipped for min_payout: a lower minimum could have sold it (API.md section 2),
        // also when the bidders above it rejected.
        let skipped_for_min_payout = !skipped.is_empty();

        let mut sales = Vec::new();
        let mut candidates = candidates.into_iter();
        while sales.len() < wanted {
            let round: Vec<_> = candidates.by_ref().take(wanted - sales.len()).collect();
            if round.is_empty() {
                break;
            }
            let offered = round.into_iter().map(|((i, offer), payout)| self.offer(held, &posted, i, offer, payout));
            let mut stopped = None;
            for sold in join_all(offered).await {
                match sold {
                    Ok(sold) => sales.extend(sold),
                    Err(error) => stopped = Some(error),
                }
            }
            // A store went away mid-cascade: what sold stays sold; with nothing sold, the post is refused.
            if let Some(error) = stopped {
                if sales.is_empty() {
                    return Err(error);
                }
                break;
            }
        }
        if !sales.is_empty() {
            return Ok(PostResult::Sold { sales });
        }
        let reason =
            if skipped_for_min_payout { UnsoldReason::BelowMinPayout } else { UnsoldReason::AllBuyersRejected };
        Ok(PostResult::Unsold { reason })
    }

    /// Offers the lead to one bidder: hold its room (a runner-up holds only now), reserve the real phone and
    /// email for it unless it bought or holds them, post (with its one retry), then book the sale if it took
    /// the lead.
    async fn offer(
        &self,
        held: &HeldPing,
        posted: &Posted<'_>,
        index: usize,
        offer: &Offer,
        payout: Money,
    ) -> Result<Option<SoldTo>, SellerError> {
        let (buyer, state) = (&held.roster.config.buyers[offer.bid.buyer], &held.roster.states[offer.bid.buyer]);
        let now = Utc::now();
        let hold = match held.take_hold(index) {
            Some(mut hold) => match hold.claim(&posted.contacts, now).await {
                Ok(()) => Some(hold),
                Err(Unclaimed::Duplicate) => {
                    hold.release();
                    return Ok(None);
                }
                // Redis lost the ping's holds (it restarted empty): the bids are gone with them.
                Err(Unclaimed::Gone) => return Err(SellerError::PingExpired),
                Err(Unclaimed::Unreachable) => {
                    held.return_hold(index, hold);
                    return Err(SellerError::Unavailable("Redis"));
                }
            },
            // A test post holds nothing, but still never sends a buyer a lead it bought.
            None if held.test => {
                if state.capacity.is_duplicate(buyer, &posted.contacts, now) {
                    return Ok(None);
                }
                None
            }
            None => {
                let ask = Ask { amount: offer.price, contacts: &posted.contacts };
                let held_for = crate::coordinator::claim_window(buyer);
                match self.coordinator.hold(&held.roster, self.ledger, offer.bid.buyer, ask, held_for, now).await {
                    Ok(Ok(hold)) => Some(hold),
                    // Its room went to other sales since the auction, or the lead is a duplicate for it.
                    Ok(Err(_)) => return Ok(None),
                    Err(_) => return Err(SellerError::Unavailable("Redis")),
                }
            }
        };
        let lead_id = new_id("l_");
        let body = post_body(
            &held.ping_id,
            &lead_id,
            &held.campaign.id,
            offer.price,
            offer.bid.bid_id.as_deref(),
            posted.lead.fields(),
            buyer,
            held.test,
        );
        let attempts = post_lead(self.client, buyer, &lead_id, body).await;
        self.metrics.outbound_exchanges.fetch_add(attempts.len() as u64, std::sync::atomic::Ordering::Relaxed);
        for attempt in &attempts {
            let outcome = attempt.outcome.label();
            self.metrics.inc("gavel_posts_total", &[("buyer", &buyer.id), ("outcome", outcome)]);
            self.metrics.observe("gavel_buyer_post_seconds", &[("buyer", &buyer.id)], attempt.latency);
            // Not the buyer's reason text: a buyer may echo the lead back in it.
            let latency_ms = round_ms(attempt.latency);
            tracing::debug!(buyer = %buyer.id, %lead_id, outcome, latency_ms, "post attempt");
        }
        held.audit.record_posts(attempts.iter().map(|attempt| PostAttemptRecord {
            buyer: buyer.id.clone(),
            lead_id: lead_id.clone(),
            outcome: attempt.outcome.label(),
            detail: attempt.outcome.detail(),
            latency_ms: round_ms(attempt.latency),
        }));
        let accepted = matches!(attempts.last(), Some(a) if matches!(a.outcome, PostOutcome::Accepted { .. }));
        state.health.record_post(&buyer.sla, accepted, Instant::now());
        if !accepted {
            return Ok(None);
        }
        if let Some(hold) = hold {
            let at = Utc::now();
            let sale = Sale {
                lead_id: lead_id.clone(),
                ping_id: held.ping_id.clone(),
                campaign: held.campaign.id.clone(),
                seller: held.seller.id.clone(),
                buyer: buyer.id.clone(),
                source: held.source.clone(),
                price: offer.price,
                payout,
                at,
                lead: posted.kept.clone(),
                terms_id: 0,
            };
            let record = self.ledger.record_accepted_sale(sale, &held.roster.config.revision, buyer);
            // The hold keeps the unit and the contacts until the sale is counted, in the order its store needs.
            hold.book(&lead_id, at, record).await?;
            self.metrics.inc("gavel_sales_total", &[("campaign", &held.campaign.id)]);
        }
        held.audit.record_sale(SaleRecord {
            buyer: buyer.id.clone(),
            lead_id: lead_id.clone(),
            price: offer.price,
            payout,
        });
        Ok(Some(SoldTo { lead_id, buyer: buyer.id.clone(), price: offer.price, payout }))
    }
}
