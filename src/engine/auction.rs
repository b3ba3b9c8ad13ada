//! One auction, from the parsed ping to the quote: gates and pings (the fan-out), affordability, ranking, the
//! winners' holds, the held ping and the audit trail.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tracing::Instrument;

use super::{consent_message, Engine, NoBidReason, PingAnswer, PingRequest, Quote, SellerError};
use crate::auction::deadline::Deadline;
use crate::auction::fanout::{collect_bids, Collected, FanOut};
use crate::auction::held::{HeldPing, KEEP_AFTER_EXPIRY};
use crate::auction::rates::read_return_rates;
use crate::audit::{AuctionAudit, BuyerOutcome, SaleRecord};
use crate::buyers::Roster;
use crate::capacity::Ask;
use crate::config::{Campaign, Distribution, SellMode, Seller};
use crate::coordinator::{Digest, Hold, PingRecord, Publication, RecordedOffer};
use crate::dedupe::{contacts_of, Contact};
use crate::delivery::BuyerClient;
use crate::domain::lead::Lead;
use crate::domain::money::Money;
use crate::domain::ranking::{rank, Bid, Draw, Offer};
use crate::gates::Exclusion;
use crate::ids::new_ping_id;
use crate::metrics::CounterSeries;
use crate::notices::Outbox;

thread_local! {
    /// This server worker's `gavel_worker_auctions_total` series, looked up by its first auction and kept: a
    /// worker thread serves one engine for its whole life.
    static WORKER_AUCTIONS: OnceCell<CounterSeries> = const { OnceCell::new() };
}

impl Engine {
    pub(super) async fn auction(
        &self,
        request: PingRequest,
        lead: &Lead,
        notices: &mut Outbox,
    ) -> Result<(Arc<HeldPing>, PingAnswer), SellerError> {
        let roster = self.roster();
        let config = &roster.config;
        let campaign =
            config.campaign(&request.campaign).cloned().ok_or(SellerError::UnknownCampaign(request.campaign))?;
        if campaign.require_consent && !lead.has_consent() {
            return Err(SellerError::InvalidLead(consent_message(&campaign)));
        }
        let budget = request.deadline_ms.unwrap_or(campaign.ping_deadline_ms).min(campaign.ping_deadline_ms);
        let deadline = Deadline::new(request.received, Duration::from_millis(budget));
        let received_at = Utc::now() - chrono::Duration::from_std(request.received.elapsed()).unwrap_or_default();
        let ping_id = new_ping_id(received_at);
        let contacts = contacts_of(lead);

        self.metrics.auctions_in_flight.fetch_add(1, Ordering::Relaxed);
        let fan_out = FanOut {
            roster: &roster,
            campaign: &campaign,
            lead,
            ping_id: &ping_id,
            deadline,
            test: request.test,
            contacts: &contacts,
            ledger: &self.ledger,
            draw: rand::thread_rng().gen(),
            coordinator: &self.coordinator,
        };
        // Every line logged for this auction carries its ping id: the request id an operator greps for.
        let span =
            tracing::debug_span!("auction", ping_id = %ping_id, campaign = %campaign.id, seller = %request.seller.id);
        // This thread's worker's client when the auction runs on a server worker, so its buyer connections
        // are driven by the thread that runs it (see `http::workers`).
        let client = BuyerClient::current(&self.client);
        let collected = collect_bids(&client, &self.metrics, fan_out).instrument(span.clone()).await;
        // Counted on the thread the fan-out ended on, so the count shows where auctions run.
        BuyerClient::on_worker(|worker| {
            WORKER_AUCTIONS.with(|series| {
                series
                    .get_or_init(|| self.metrics.counter_series("gavel_worker_auctions_total", &[("worker", worker)]))
                    .inc();
            });
        });
        self.metrics.auctions_in_flight.fetch_sub(1, Ordering::Relaxed);
        let Collected { mut outcomes, mut bids, eligible, pinged, slowest_leg } =
            collected.map_err(|_| SellerError::Unavailable("Redis"))?;

        let bids_received = bids.len();
        let now = Utc::now();
        read_return_rates(&self.ledger, config, &campaign, &request.seller.id, &mut bids, &mut outcomes, now);
        let bids = self.affordable(&roster, bids, &contacts, &mut outcomes, now);
        // Bids their buyers cannot pay for are as good as none: the seller is told `no_bids`, not `below_floor`.
        let payable_bids = bids.len();
        let mut offers =
            rank(bids, campaign.distribution, campaign.ranking, campaign.auction, campaign.floor, self.draw(&campaign));
        let ping_digests: Vec<(String, [u8; 32])> =
            lead.fields().keys().filter_map(|k| Some((k.clone(), lead.digest_of(k)?))).collect();
        let ttl = Duration::from_secs(campaign.bid_ttl_s);
        let expires_at = received_at + chrono::Duration::seconds(campaign.bid_ttl_s as i64);

        // Cluster mode: the held ping goes to Redis with the holds, so a post may land on any node.
        let build_record = |offers: &[Offer], holds: &[Option<String>]| {
            let record = PingRecord {
                ping_id: Cow::Borrowed(&ping_id),
                seller: Cow::Borrowed(&request.seller.id),
                campaign: Cow::Borrowed(&campaign.id),
                revision: Cow::Borrowed(&config.revision),
                test: request.test,
                source: request.source.as_deref().map(Cow::Borrowed),
                expires_at_ms: expires_at.timestamp_millis(),
                digests: ping_digests
                    .iter()
                    .map(|(key, digest)| (Cow::Borrowed(key.as_str()), Digest(*digest)))
                    .collect(),
                offers: recorded_offers(&roster, offers, holds),
                node: Cow::Borrowed(&self.node_id),
            };
            record.to_bytes()
        };
        let publication = self.coordinator.is_clustered().then_some(Publication {
            ping_id: &ping_id,
            keep: ttl + KEEP_AFTER_EXPIRY,
            build: &build_record,
        });
        let offered = offers.len();
        // A test auction uses no cap and no wallet: it holds nothing.
        let holds = if request.test {
            if let (Some(redis), Some(publication)) = (self.coordinator.redis(), &publication) {
                redis.publish_ping(publication, &offers).await.map_err(|_| SellerError::Unavailable("Redis"))?;
            }
            Vec::new()
        } else {
            // Held until the bids expire, counted from the ping's arrival as this node's expiry timer is.
            let held_for = ttl.saturating_sub(request.received.elapsed());
            self.hold_winners(&roster, &campaign, &contacts, &mut offers, &mut outcomes, held_for, publication).await?
        };
        notices.auction_closed(config, &campaign, &ping_id, request.test, &outcomes, &offers);
        let payout = quoted_payout(&campaign, &request.seller, &offers);
        // A bid whose hold was refused (its buyer's room went to another auction) was not payable after all.
        let payable_bids = payable_bids - (offered - offers.len());
        let quote = match (eligible, payable_bids, payout) {
            (0, _, _) => Err(NoBidReason::NoEligibleBuyers),
            (_, 0, _) => Err(NoBidReason::NoBids),
            (_, _, None) => Err(NoBidReason::BelowFloor),
            (_, _, Some(payout)) => Ok(Quote { payout, expires_at, buyers_pinged: pinged, bids_received }),
        };

        let quoted_sale = offers.first().zip(payout).map(|(first, payout)| SaleRecord {
            buyer: config.buyers[first.bid.buyer].id.clone(),
            lead_id: String::new(),
            price: first.price,
            payout,
        });
        let audit = Arc::new(AuctionAudit::new(
            ping_id.clone(),
            campaign.id.clone(),
            request.seller.id.clone(),
            received_at,
            budget,
            deadline.elapsed(),
            request.test,
            outcomes,
            quoted_sale,
        ));
        self.audit.insert(Arc::clone(&audit));
        self.live.publish(crate::live::LiveEvent::Auction(Arc::clone(&audit)));
        self.share_audit(&audit, ttl);
        let held = Arc::new(HeldPing {
            ping_id: ping_id.clone(),
            seller: Arc::clone(&request.seller),
            campaign: Arc::clone(&campaign),
            roster: Arc::clone(&roster),
            test: request.test,
            source: request.source,
            expires_at: request.received + ttl,
            ping_digests,
            offers,
            holds: parking_lot::Mutex::new(holds),
            audit,
            post: tokio::sync::Mutex::new(None),
        });
        self.pings.insert(Arc::clone(&held));
        self.pings.release_holds_at_expiry(&held);

        let status = if quote.is_ok() { "bid" } else { "no_bid" };
        let elapsed = deadline.elapsed();
        span.in_scope(|| {
            let elapsed_us = elapsed.as_micros() as u64;
            tracing::debug!(status, eligible, pinged, bids = bids_received, elapsed_us, "auction answered");
        });
        let overhead = elapsed.saturating_sub(slowest_leg);
        campaign.series.answered(&self.metrics, quote.is_ok(), elapsed, overhead);
        Ok((held, PingAnswer { ping_id, quote }))
    }

    /// The bids their buyers can take now: a bid above what a buyer's budgets or funds have room for, or for a
    /// lead the buyer has come to hold meanwhile, cannot win, and its audit entry names the gate
    /// (`budget:daily`, `balance`, `duplicate`). Read from this node's view; the holds are the exact check.
    fn affordable(
        &self,
        roster: &Roster,
        bids: Vec<Bid>,
        contacts: &[Contact],
        outcomes: &mut [BuyerOutcome],
        now: chrono::DateTime<Utc>,
    ) -> Vec<Bid> {
        bids.into_iter()
            .filter(|bid| {
                let (buyer, state) = (&roster.config.buyers[bid.buyer], &roster.states[bid.buyer]);
                let local = crate::capacity::local(crate::capacity::timezone(buyer), now);
                let ask = Ask { amount: bid.amount, contacts };
                match state.capacity.room(buyer, now, local, ask, state.funds(buyer, &self.ledger)).all() {
                    Ok(()) => true,
                    Err(shortfall) => {
                        self.note_shortfall(outcomes, &buyer.id, shortfall.into());
                        false
                    }
                }
            })
            .collect()
    }

    /// Holds the lead's contacts, the cap units, budget and funds of the bids that would sell (see
    /// [`crate::coordinator::Coordinator::hold_winners`]); a refused bid's audit entry names the gate.
    #[allow(clippy::too_many_arguments)] // the auction's state, handed over once
    async fn hold_winners(
        &self,
        roster: &Roster,
        campaign: &Campaign,
        contacts: &[Contact],
        offers: &mut Vec<Offer>,
        outcomes: &mut [BuyerOutcome],
        ttl: Duration,
        publication: Option<Publication<'_>>,
    ) -> Result<Vec<Option<Hold>>, SellerError> {
        let wanted = match campaign.sell {
            SellMode::Exclusive => 1,
            SellMode::Shared { max_buyers } => usize::from(max_buyers),
        };
        let mut refused = |buyer: usize, shortfall: crate::capacity::Shortfall| {
            self.note_shortfall(outcomes, &roster.config.buyers[buyer].id, shortfall.into());
        };
        let now = Utc::now();
        self.coordinator
            .hold_winners(roster, &self.ledger, wanted, contacts, offers, ttl, now, &mut refused, publication)
            .await
            .map_err(|_| SellerError::Unavailable("Redis"))
    }

    /// Records in a bidder's audit entry why its bid could not win.
    fn note_shortfall(&self, outcomes: &mut [BuyerOutcome], buyer: &str, exclusion: Exclusion) {
        let detail = exclusion.detail();
        self.metrics.inc("gavel_buyer_exclusions_total", &[("buyer", buyer), ("reason", &detail)]);
        if let Some(outcome) = outcomes.iter_mut().find(|o| o.buyer == buyer) {
            outcome.detail = Some(detail.into_owned());
        }
    }

    fn draw(&self, campaign: &Campaign) -> Draw {
        let rotation = match campaign.distribution {
            Distribution::RoundRobin => match self.rotations.get(&campaign.id) {
                Some(turn) => turn.fetch_add(1, Ordering::Relaxed),
                None => self.rotations.entry(campaign.id.clone()).or_default().fetch_add(1, Ordering::Relaxed),
            },
            _ => 0,
        };
        let random = if campaign.distribution == Distribution::Weighted { rand::thread_rng().gen() } else { 0 };
        Draw { rotation, random }
    }
}

/// The offers as another node reads them: buyers by id, since node configs index them each their own way.
fn recorded_offers<'a>(roster: &'a Roster, offers: &'a [Offer], holds: &'a [Option<String>]) -> Vec<RecordedOffer<'a>> {
    offers
        .iter()
        .enumerate()
        .map(|(i, offer)| RecordedOffer {
            buyer: Cow::Borrowed(&roster.config.buyers[offer.bid.buyer].id),
            bid: offer.bid.amount,
            price: offer.price,
            priority: offer.bid.priority,
            weight: offer.bid.weight,
            answered_after_us: offer.bid.answered_after.as_micros() as u64,
            bid_id: offer.bid.bid_id.as_deref().map(Cow::Borrowed),
            hold: holds.get(i).and_then(Option::as_deref).map(Cow::Borrowed),
        })
        .collect()
}

/// What the seller is quoted: the first offer's payout, or for a shared lead the sum over the buyers it
/// would sell to. `None` when no bid cleared the floor.
fn quoted_payout(campaign: &Campaign, seller: &Seller, offers: &[Offer]) -> Option<Money> {
    let buyers = match campaign.sell {
        SellMode::Exclusive => 1,
        SellMode::Shared { max_buyers } => usize::from(max_buyers),
    };
    if offers.is_empty() {
        return None;
    }
    Some(offers.iter().take(buyers).map(|o| o.price.less_margin(seller.margin_percent)).sum())
}

/// When a ping id says its ping was made: ids carry their second (see [`new_ping_id`]).
pub(super) fn pinged_at(ping_id: &str) -> Option<chrono::DateTime<Utc>> {
    let seconds = i64::from_str_radix(ping_id.strip_prefix("p_")?.get(..8)?, 16).ok()?;
    chrono::DateTime::from_timestamp(seconds, 0)
}
