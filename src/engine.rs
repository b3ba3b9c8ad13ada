//! The engine: the running exchange. It owns the config snapshot, the outbound client, the held pings, the
//! audit ring, the metrics and the ledger, and runs the seller's three calls — ping, post and direct post —
//! by composing the parts. The HTTP layer parses and renders around it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use dashmap::DashMap;
use parking_lot::RwLock;
use rand::Rng;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tracing::Instrument;

use crate::auction::cascade::Cascade;
use crate::auction::deadline::Deadline;
use crate::auction::fanout::{collect_bids, Collected, FanOut};
use crate::auction::held::{HeldPing, PingStore, PostMemo, PostResult};
use crate::audit::{AuctionAudit, AuditLog, BuyerOutcome, SaleRecord, DEFAULT_CAPACITY};
use crate::buyers::{BuyerStates, Roster};
use crate::capacity::{Ask, Hold};
use crate::config::{load_file, Campaign, Config, ConfigErrors, Distribution, SellMode, Seller};
use crate::dedupe::{contacts_of, decode_contact, Contact};
use crate::delivery::BuyerClient;
use crate::domain::lead::{Lead, LeadError};
use crate::domain::money::Money;
use crate::domain::ranking::{rank, Bid, Draw, Offer};
use crate::gates::Exclusion;
use crate::ids::new_id;
use crate::ledger::journal::JournalOptions;
use crate::ledger::{Ledger, LedgerError};
use crate::live::{LiveEvent, LiveFeed};
use crate::metrics::Metrics;
use crate::ratelimit::PingRateLimiter;
use crate::shedding::AuctionSlots;

/// A seller's ping, its envelope already checked.
pub struct PingRequest {
    pub seller: Arc<Seller>,
    pub campaign: String,
    pub lead: Map<String, Value>,
    pub deadline_ms: Option<u64>,
    pub test: bool,
    pub source: Option<String>,
    /// When the request's headers arrived: the deadline runs from here.
    pub received: Instant,
}

/// The answer to a ping.
#[derive(Debug, Clone, PartialEq)]
pub struct PingAnswer {
    pub ping_id: String,
    pub quote: Result<Quote, NoBidReason>,
}

/// A bid quoted to the seller.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub payout: Money,
    pub expires_at: chrono::DateTime<Utc>,
    pub buyers_pinged: usize,
    pub bids_received: usize,
}

/// Why a ping got no bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoBidReason {
    NoEligibleBuyers,
    NoBids,
    BelowFloor,
}

impl NoBidReason {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            NoBidReason::NoEligibleBuyers => "no_eligible_buyers",
            NoBidReason::NoBids => "no_bids",
            NoBidReason::BelowFloor => "below_floor",
        }
    }
}

/// Why a seller's call was refused. Each maps to one status and code of the contract in `http::error`.
#[derive(Debug, thiserror::Error)]
pub enum SellerError {
    #[error("campaign {0:?} does not exist; check the campaign id")]
    UnknownCampaign(String),
    #[error("{0}")]
    InvalidLead(String),
    #[error("lead.{0} differs from the value sent in the ping; post the same normalized value")]
    LeadMismatch(String),
    #[error("no ping with this ping_id")]
    PingNotFound,
    #[error("the bids of this ping expired; ping again")]
    PingExpired,
    #[error("this ping was already posted with a different lead")]
    AlreadyPosted,
    #[error("the sale could not be recorded: {0}")]
    Ledger(#[from] LedgerError),
}

impl From<LeadError> for SellerError {
    fn from(error: LeadError) -> Self {
        SellerError::InvalidLead(error.message)
    }
}

/// Why a reload left the running config in force.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("this server's config was not read from a file, so there is nothing to re-read")]
    NoFile,
    /// Every problem, one per line, as `check-config` prints them.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// The server settings fixed at start, as `(key, value)`.
fn fixed_settings(config: &Config) -> [(&'static str, String); 4] {
    let server = &config.server;
    [
        ("server.listen", server.listen.to_string()),
        ("server.data_dir", server.data_dir.display().to_string()),
        ("server.header_read_timeout_ms", server.header_read_timeout.as_millis().to_string()),
        ("server.max_connections", server.max_connections.to_string()),
    ]
}

/// The running exchange.
pub struct Engine {
    /// The config in force with its buyers' running state.
    roster: RwLock<Arc<Roster>>,
    pub buyers: BuyerStates,
    pub client: BuyerClient,
    pub pings: PingStore,
    pub audit: AuditLog,
    /// Shared with the journal's writer thread, which times every commit.
    pub metrics: Arc<Metrics>,
    pub ledger: Ledger,
    /// Per campaign, the round-robin turn.
    rotations: DashMap<String, AtomicU64>,
    /// Each seller's ping rate (`max_pings_per_second`), checked by the HTTP layer before a ping is read.
    pub ping_rates: PingRateLimiter,
    /// Auctions in flight; past the limit the HTTP layer sheds new ones before they reach the engine.
    pub auction_slots: AuctionSlots,
    /// Auction answers and sales as they happen, for live views; publishing never waits.
    pub live: LiveFeed,
}

impl Engine {
    /// An engine on this config with these books.
    pub fn new(config: Config, ledger: Ledger) -> Engine {
        Engine::with_metrics(config, ledger, Arc::default())
    }

    fn with_metrics(config: Config, ledger: Ledger, metrics: Arc<Metrics>) -> Engine {
        let buyers = BuyerStates::default();
        let engine = Engine {
            roster: RwLock::new(Arc::new(buyers.roster(Arc::new(config)))),
            buyers,
            client: BuyerClient::new(),
            pings: PingStore::default(),
            audit: AuditLog::new(DEFAULT_CAPACITY),
            metrics,
            ledger,
            rotations: DashMap::new(),
            ping_rates: PingRateLimiter::new(),
            auction_slots: AuctionSlots::default(),
            live: LiveFeed::default(),
        };
        engine.restore_from_books();
        engine
    }

    /// An engine on this config whose books are the journal under `server.data_dir`, replayed.
    pub async fn open(config: Config) -> Result<Engine, LedgerError> {
        let metrics = Arc::<Metrics>::default();
        let observer = Arc::clone(&metrics);
        let options = JournalOptions {
            on_commit: Some(Arc::new(move |took| observer.observe("gavel_journal_commit_seconds", &[], took))),
            ..JournalOptions::default()
        };
        let (ledger, recovery) = Ledger::open(&config.server.data_dir, options)?;
        for warning in &recovery.warnings {
            tracing::warn!(%warning, "journal");
        }
        tracing::info!(
            entries = recovery.entries,
            from_snapshot = recovery.from_snapshot,
            took_ms = recovery.took.as_millis() as u64,
            "journal replayed"
        );
        ledger.snapshot_if_long(&recovery).await?;
        Ok(Engine::with_metrics(config, ledger, metrics))
    }

    /// Rebuilds what the books imply for the buyers: cap and budget counts of the current periods, the
    /// duplicate check's history, and pauses made through the API.
    fn restore_from_books(&self) {
        let roster = self.roster();
        let now = Utc::now();
        // The longest period a count or the duplicate check looks back over.
        let longest_dedupe = roster.config.buyers.iter().map(|b| b.dedupe_days).max().unwrap_or(0);
        let since = now - chrono::Duration::days(i64::from(longest_dedupe.max(32)));
        let (mut sales, pauses) = self.ledger.read(|books| {
            let sales: Vec<_> = books
                .leads
                .values()
                .filter(|lead| lead.sale.at >= since)
                .map(|lead| {
                    let contacts: Vec<Contact> = lead.sale.contact_digests().filter_map(decode_contact).collect();
                    (lead.sale.at, lead.sale.buyer.clone(), lead.sale.price, contacts)
                })
                .collect();
            (sales, books.pauses.clone())
        });
        // Counts follow time: a period's count starts over when a later period's sale arrives.
        sales.sort_by_key(|(at, ..)| *at);
        for (at, buyer_id, price, contacts) in sales {
            if let Some((buyer, state)) = roster.buyer(&buyer_id) {
                state.capacity.record_sale(buyer, price, at, &contacts);
            }
        }
        for (buyer_id, paused_by) in pauses {
            if let Some((_, state)) = roster.buyer(&buyer_id) {
                state.restore_api_standing(paused_by);
            }
        }
    }

    /// Re-reads the config file and swaps it in whole (API.md section 5). Auctions and posts under way finish
    /// on the snapshot they started with; the buyers' running state is kept by id, so money, caps used, holds,
    /// health and API pauses carry over for every buyer that stays. A file with any problem changes nothing.
    pub fn reload(&self) -> Result<Arc<Config>, ReloadError> {
        let reloaded = self.swap_config();
        match &reloaded {
            Ok(config) => tracing::info!(revision = %config.revision, "config reloaded"),
            // For SIGHUP the log is the only answer, so it carries every problem (they never quote secrets).
            Err(error) => tracing::warn!(%error, "config reload refused; the running config stays in force"),
        }
        reloaded
    }

    fn swap_config(&self) -> Result<Arc<Config>, ReloadError> {
        let running = self.config();
        let path = running.source.as_deref().ok_or(ReloadError::NoFile)?;
        let config = load_file(path).map_err(ReloadError::Invalid)?;
        // The listener, its connection settings and the journal were set up at start; pretending to change
        // them would be a lie, so such a file is refused and names the restart it needs.
        let mut problems = Vec::new();
        for ((name, now), (_, wanted)) in fixed_settings(&running).into_iter().zip(fixed_settings(&config)) {
            if now != wanted {
                problems.push(format!("{name}: cannot change while running (still {now}); restart to apply {wanted}"));
            }
        }
        if !problems.is_empty() {
            return Err(ReloadError::Invalid(ConfigErrors(problems)));
        }
        let config = Arc::new(config);
        *self.roster.write() = Arc::new(self.buyers.roster(Arc::clone(&config)));
        Ok(config)
    }

    /// The config snapshot in force now. Work that starts keeps this snapshot to its end.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.roster.read().config)
    }

    /// The config snapshot in force now with the running state of each of its buyers.
    pub fn roster(&self) -> Arc<Roster> {
        Arc::clone(&self.roster.read())
    }

    /// Runs an auction for a seller's ping.
    pub async fn ping(&self, request: PingRequest) -> Result<PingAnswer, SellerError> {
        let lead = Lead::parse(&request.lead, Utc::now())?;
        let (_, answer) = self.auction(request, &lead).await?;
        Ok(answer)
    }

    /// Delivers a posted lead for an earlier ping of this seller.
    pub async fn post(
        &self,
        seller: &Seller,
        ping_id: &str,
        lead: &Map<String, Value>,
        min_payout: Option<Money>,
    ) -> Result<Arc<PostResult>, SellerError> {
        let held = self.pings.get(ping_id).filter(|h| h.seller.id == seller.id).ok_or(SellerError::PingNotFound)?;
        let lead = Lead::parse(lead, Utc::now())?;
        self.deliver(&held, &lead, min_payout).await
    }

    /// Pings with the ping projection of a full lead, then posts it, in one call.
    pub async fn direct_post(
        &self,
        request: PingRequest,
        min_payout: Option<Money>,
    ) -> Result<(String, Arc<PostResult>), SellerError> {
        let lead = Lead::parse(&request.lead, Utc::now())?;
        let campaign = self.config().campaign(&request.campaign).cloned();
        // The full lead is all there is: refuse it before any buyer is pinged if it could never be posted.
        if let Some(campaign) = campaign {
            check_postable(&campaign, &lead)?;
        }
        let (held, _) = self.auction(request, &lead).await?;
        let result = self.deliver(&held, &lead, min_payout).await?;
        Ok((held.ping_id.clone(), result))
    }

    /// Forgets pings long expired. Called periodically.
    pub fn sweep(&self) {
        self.pings.sweep();
    }

    async fn auction(&self, request: PingRequest, lead: &Lead) -> Result<(Arc<HeldPing>, PingAnswer), SellerError> {
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
        let ping_id = new_id("p_");
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
        };
        // Every line logged for this auction carries its ping id: the request id an operator greps for.
        let span =
            tracing::debug_span!("auction", ping_id = %ping_id, campaign = %campaign.id, seller = %request.seller.id);
        let collected = collect_bids(&self.client, &self.metrics, fan_out).instrument(span.clone()).await;
        self.metrics.auctions_in_flight.fetch_sub(1, Ordering::Relaxed);

        let Collected { mut outcomes, bids, eligible, pinged, slowest_leg } = collected;
        let bids_received = bids.len();
        let now = Utc::now();
        let bids = self.affordable(&roster, bids, &contacts, &mut outcomes, now);
        // Bids their buyers cannot pay for are as good as none: the seller is told `no_bids`, not `below_floor`.
        let payable_bids = bids.len();
        let mut offers = rank(bids, campaign.distribution, campaign.auction, campaign.floor, self.draw(&campaign));
        // A test auction uses no cap and no wallet: it holds nothing.
        let holds = if request.test {
            Vec::new()
        } else {
            self.hold_winners(&roster, &campaign, &contacts, &mut offers, &mut outcomes, now)
        };
        let payout = quoted_payout(&campaign, &request.seller, &offers);
        let expires_at = received_at + chrono::Duration::seconds(campaign.bid_ttl_s as i64);
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
        self.live.publish(LiveEvent::Auction(Arc::clone(&audit)));
        let held = Arc::new(HeldPing {
            ping_id: ping_id.clone(),
            seller: Arc::clone(&request.seller),
            campaign: Arc::clone(&campaign),
            roster: Arc::clone(&roster),
            test: request.test,
            source: request.source,
            expires_at: request.received + Duration::from_secs(campaign.bid_ttl_s),
            ping_digests: lead.fields().keys().filter_map(|k| Some((k.clone(), lead.digest_of(k)?))).collect(),
            offers,
            holds: parking_lot::Mutex::new(holds),
            audit,
            post: tokio::sync::Mutex::new(None),
        });
        self.pings.insert(Arc::clone(&held));
        held.release_holds_at_expiry();

        let status = if quote.is_ok() { "bid" } else { "no_bid" };
        self.metrics.inc("gavel_pings_total", &[("campaign", &campaign.id), ("status", status)]);
        let elapsed = deadline.elapsed();
        span.in_scope(|| {
            let elapsed_us = elapsed.as_micros() as u64;
            tracing::debug!(status, eligible, pinged, bids = bids_received, elapsed_us, "auction answered");
        });
        self.metrics.observe("gavel_auction_seconds", &[("campaign", &campaign.id)], elapsed);
        let overhead = elapsed.saturating_sub(slowest_leg);
        self.metrics.observe("gavel_engine_overhead_seconds", &[("campaign", &campaign.id)], overhead);
        Ok((held, PingAnswer { ping_id, quote }))
    }

    async fn deliver(
        &self,
        held: &HeldPing,
        lead: &Lead,
        min_payout: Option<Money>,
    ) -> Result<Arc<PostResult>, SellerError> {
        let fingerprint = lead.fingerprint();
        // Held for the whole delivery: a concurrent identical post waits here and then reads the memo.
        let mut memo = held.post.lock().await;
        if let Some(first) = memo.as_ref() {
            return if first.lead_fingerprint == fingerprint {
                Ok(Arc::clone(&first.result))
            } else {
                Err(SellerError::AlreadyPosted)
            };
        }
        if held.expired() {
            return Err(SellerError::PingExpired);
        }
        if let Some((key, _)) = held.ping_digests.iter().find(|(key, digest)| lead.digest_of(key) != Some(*digest)) {
            return Err(SellerError::LeadMismatch(key.clone()));
        }
        check_postable(&held.campaign, lead)?;
        let cascade = Cascade { client: &self.client, ledger: &self.ledger, metrics: &self.metrics };
        let span = tracing::debug_span!("post", ping_id = %held.ping_id, campaign = %held.campaign.id);
        let delivered = cascade.deliver(held, lead, min_payout).instrument(span.clone()).await;
        // Sold or not, the ping is done: what its other bids held goes back.
        held.release_holds();
        let result = Arc::new(delivered?);
        span.in_scope(|| match &*result {
            PostResult::Sold { sales } => {
                for sale in sales {
                    tracing::debug!(lead_id = %sale.lead_id, buyer = %sale.buyer, price = %sale.price, "lead sold");
                }
            }
            PostResult::Unsold { reason } => tracing::debug!(reason = ?reason, "lead unsold"),
        });
        if let (PostResult::Sold { sales }, false) = (&*result, held.test) {
            let at = Utc::now();
            for sale in sales {
                let (lead_id, price, payout) = (sale.lead_id.clone(), sale.price, sale.payout);
                self.live.publish(LiveEvent::Sale { lead_id, at, price, payout });
            }
        }
        *memo = Some(PostMemo { lead_fingerprint: fingerprint, result: Arc::clone(&result) });
        Ok(result)
    }

    /// The bids their buyers can take now: a bid above what a buyer's budgets or funds have room for, or for a
    /// lead the buyer has come to hold meanwhile, cannot win, and its audit entry names the gate
    /// (`budget:daily`, `balance`, `duplicate`).
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

    /// Holds the lead's contacts, the cap units, budget and funds of the bids that would sell, in offer order.
    /// A bid whose buyer's room was taken by a concurrent auction since the gates ran — or that now holds the
    /// same consumer for another auction — cannot win: it leaves the offers and the next bid moves up. Returns
    /// the holds aligned with `offers` (`None` past the winners: the cascade holds a runner-up when it reaches
    /// it).
    fn hold_winners(
        &self,
        roster: &Roster,
        campaign: &Campaign,
        contacts: &[Contact],
        offers: &mut Vec<Offer>,
        outcomes: &mut [BuyerOutcome],
        now: chrono::DateTime<Utc>,
    ) -> Vec<Option<Hold>> {
        let wanted = match campaign.sell {
            SellMode::Exclusive => 1,
            SellMode::Shared { max_buyers } => usize::from(max_buyers),
        };
        let mut holds = Vec::new();
        while holds.len() < wanted && holds.len() < offers.len() {
            let offer = &offers[holds.len()];
            let (buyer, state) = (&roster.config.buyers[offer.bid.buyer], &roster.states[offer.bid.buyer]);
            let ask = Ask { amount: offer.price, contacts };
            match state.capacity.try_hold(buyer, now, ask, || state.funds(buyer, &self.ledger)) {
                Ok(hold) => holds.push(Some(hold)),
                Err(shortfall) => {
                    self.note_shortfall(outcomes, &buyer.id, shortfall.into());
                    offers.remove(holds.len());
                }
            }
        }
        holds.resize_with(offers.len(), || None);
        holds
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

/// A lead that may be posted: the campaign's required fields are present and consent is there if required.
fn check_postable(campaign: &Campaign, lead: &Lead) -> Result<(), SellerError> {
    if let Some(missing) = campaign.required_fields.iter().find(|key| !lead.contains(key)) {
        return Err(SellerError::InvalidLead(format!(
            "lead.{missing} is required by campaign {:?}; add it to the lead",
            campaign.id
        )));
    }
    if campaign.require_consent && !lead.has_consent() {
        return Err(SellerError::InvalidLead(consent_message(campaign)));
    }
    Ok(())
}

fn consent_message(campaign: &Campaign) -> String {
    format!("campaign {:?} requires consent: add lead.trustedform_cert_url or lead.jornaya_leadid", campaign.id)
}
