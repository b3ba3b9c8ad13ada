//! The engine: the running exchange. It owns the config snapshot, the outbound client, the held pings, the
//! audit ring, the metrics, the ledger and the coordinator, and runs the seller's three calls — ping, post and
//! direct post — by composing the parts. The HTTP layer parses and renders around it.
//!
//! ## Layout
//! - `engine/auction.rs` — one auction: fan-out, affordability, ranking, holds, the held ping and its trail.
//! - `engine/post.rs` — a post: the held ping wherever it was made, the post's turn, delivery, the memo.
//! - `engine/replica.rs` — cluster mode: this node's view of every node's sales and pauses.

mod auction;
mod post;
mod replica;

use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use chrono::Utc;
use dashmap::DashMap;
use parking_lot::RwLock;
use serde_json::{Map, Value};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::auction::held::{PingStore, PostResult};
use crate::audit::{AuditLog, DEFAULT_CAPACITY};
use crate::buyers::{BuyerStates, Roster};
use crate::capacity::Usage;
use crate::config::{load_file, Campaign, Config, ConfigErrors, Seller};
use crate::coordinator::{Coordinator, RedisCoordinator};
use crate::dedupe::{decode_contact, Contact};
use crate::delivery::BuyerClient;
use crate::domain::lead::{Lead, LeadError};
use crate::domain::money::Money;
use crate::ledger::journal::JournalOptions;
use crate::ledger::postgres::{PgLedger, PgOptions, StoreObserver};
use crate::ledger::{Ledger, LedgerError};
use crate::live::LiveFeed;
use crate::metrics::Metrics;
use crate::notices::{Notices, Outbox};
use crate::ratelimit::PingRateLimiter;
use crate::readiness::ReadinessFlag;
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
    /// Cluster mode: a shared store the call needs cannot be reached (its name); nothing was recorded.
    #[error("{0} cannot be reached")]
    Unavailable(&'static str),
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
fn fixed_settings(config: &Config) -> [(&'static str, String); 5] {
    let server = &config.server;
    [
        ("server.listen", server.listen.to_string()),
        ("server.data_dir", server.data_dir.display().to_string()),
        ("server.header_read_timeout_ms", server.header_read_timeout.as_millis().to_string()),
        ("server.max_connections", server.max_connections.to_string()),
        ("server.workers", server.workers.map_or_else(|| "one per core".to_owned(), |n| n.to_string())),
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
    /// Win/loss notices waiting to be sent; each seller call collects its own in an [`Outbox`].
    pub notices: Notices,
    /// Whether this node can sell (`GET /readyz`); `app` sets it at start and shutdown.
    pub readiness: ReadinessFlag,
    /// Where the exact shared state lives: this process, or Redis (cluster mode).
    pub coordinator: Coordinator,
    /// Auction answers and sales as they happen, for live views (this node's); publishing never waits.
    pub live: LiveFeed,
    /// Deliveries of posted leads, each in a task of its own that outlives a seller who stops waiting
    /// (see [`Engine::deliver_to_the_end`]); shutdown waits for them.
    deliveries: TaskTracker,
    /// This node's id (`--node-id`), [`SINGLE_NODE_ID`] when none was given.
    node_id: String,
    /// Cluster mode: the lock on this node's data directory, held while it runs.
    dir_lock: Option<std::fs::File>,
}

/// What `gavel serve` says of this node beyond its config file (the flags win over the file).
#[derive(Debug, Clone, Default)]
pub struct NodeSettings {
    /// `--node-id`, else `[cluster].node_id`, else [`SINGLE_NODE_ID`] on one node.
    pub node_id: Option<String>,
    /// `--data-dir`, else `server.data_dir`.
    pub data_dir: Option<PathBuf>,
}

/// The node id of a server started without `--node-id` (API.md section 5, `GET /admin/cluster`).
pub const SINGLE_NODE_ID: &str = "single";

impl Engine {
    /// An engine on this config with these books.
    pub fn new(config: Config, ledger: Ledger) -> Engine {
        Engine::with_metrics(config, ledger, Arc::default(), Coordinator::Local)
    }

    fn with_metrics(config: Config, ledger: Ledger, metrics: Arc<Metrics>, coordinator: Coordinator) -> Engine {
        let buyers = BuyerStates::default();
        let notices = Notices::new(Arc::clone(&metrics));
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
            notices,
            readiness: ReadinessFlag::default(),
            coordinator,
            deliveries: TaskTracker::new(),
            node_id: SINGLE_NODE_ID.to_owned(),
            dir_lock: None,
        };
        engine.restore_from_books();
        engine
    }

    /// An engine on this config whose books are the journal under `server.data_dir`, replayed.
    pub async fn open(config: Config) -> Result<Engine, LedgerError> {
        Engine::open_node(config, NodeSettings::default()).await
    }

    /// An engine for one node: with `[cluster]`, its books are a replica of the exchange's ledger in PostgreSQL
    /// and its coordinator is Redis; without, the journal under the data directory and this process.
    pub async fn open_node(config: Config, settings: NodeSettings) -> Result<Engine, LedgerError> {
        let Some(cluster) = config.cluster.clone() else {
            let mut engine = Engine::open_journal(config, settings.data_dir).await?;
            if let Some(node_id) = settings.node_id {
                engine.node_id = node_id;
            }
            return Ok(engine);
        };
        let node_id = settings.node_id.or(cluster.node_id.clone()).ok_or_else(|| {
            LedgerError::Unavailable("cluster mode needs a node id: set [cluster].node_id or pass --node-id".into())
        })?;
        // The node's own directory: the ledger lives in PostgreSQL, but sales it could not book yet wait here
        // (`ledger::unbooked`), and the lock keeps two nodes on one host from sharing it by mistake.
        let dir = settings.data_dir.clone().unwrap_or_else(|| config.server.data_dir.clone());
        std::fs::create_dir_all(&dir).map_err(|e| LedgerError::Unavailable(format!("{}: {e}", dir.display())))?;
        let dir_lock = crate::ledger::journal::lock_dir(&dir)?;
        let metrics = Arc::<Metrics>::default();
        let observed = |store: &'static str| -> StoreObserver {
            let metrics = Arc::clone(&metrics);
            Arc::new(move |op, took| metrics.observe("gavel_store_seconds", &[("store", store), ("op", op)], took))
        };
        let options = PgOptions {
            url: cluster.postgres_url.expose().to_owned(),
            exchange: cluster.name.clone(),
            node: node_id.clone(),
            observer: Some(observed("postgres")),
            on_commit: Some({
                let metrics = Arc::clone(&metrics);
                Arc::new(move |took| metrics.observe("gavel_journal_commit_seconds", &[], took))
            }),
        };
        let mut ledger = PgLedger::open(options).await?;
        let booked = ledger.book_unbooked_sales_in(&dir).await?;
        if booked > 0 {
            tracing::info!(booked, "sales kept unbooked by an earlier run are booked");
        }
        let redis =
            RedisCoordinator::connect(cluster.redis_url.expose(), &cluster.name, &node_id, Some(observed("redis")))
                .await
                .map_err(LedgerError::Unavailable)?;
        let mut engine = Engine::with_metrics(config, ledger, metrics, Coordinator::Redis(redis));
        engine.node_id = node_id;
        engine.dir_lock = Some(dir_lock);
        Ok(engine)
    }

    async fn open_journal(config: Config, data_dir: Option<PathBuf>) -> Result<Engine, LedgerError> {
        let data_dir = data_dir.unwrap_or_else(|| config.server.data_dir.clone());
        let metrics = Arc::<Metrics>::default();
        let observer = Arc::clone(&metrics);
        let options = JournalOptions {
            on_commit: Some(Arc::new(move |took| observer.observe("gavel_journal_commit_seconds", &[], took))),
            ..JournalOptions::default()
        };
        let (ledger, recovery) = Ledger::open(&data_dir, options)?;
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
        Ok(Engine::with_metrics(config, ledger, metrics, Coordinator::Local))
    }

    /// The same engine under another node id (`gavel serve --node-id`).
    pub fn with_node_id(mut self, node_id: String) -> Engine {
        self.node_id = node_id;
        self
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Rebuilds what the books imply for the buyers: cap and budget counts of the current periods, the
    /// duplicate check's history, and pauses made through the API. (In cluster mode these are this node's
    /// local view, which the gates read; the exact counts are in Redis.)
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
        if running.cluster != config.cluster {
            problems.push("cluster: cannot change while running; restart every node to apply a new [cluster]".into());
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

    /// Runs an auction for a seller's ping; its win/loss notices go into `notices`.
    pub async fn ping(&self, request: PingRequest, notices: &mut Outbox) -> Result<PingAnswer, SellerError> {
        let lead = Lead::parse(&request.lead, Utc::now())?;
        let (_, answer) = self.auction(request, &lead, notices).await?;
        Ok(answer)
    }

    /// Delivers a posted lead for an earlier ping of this seller.
    pub async fn post(
        self: &Arc<Self>,
        seller: &Seller,
        ping_id: &str,
        lead: &Map<String, Value>,
        min_payout: Option<Money>,
    ) -> Result<Arc<PostResult>, SellerError> {
        let held = self.held_ping(seller, ping_id).await?;
        let lead = Lead::parse(lead, Utc::now())?;
        self.deliver_to_the_end(held, lead, min_payout).await
    }

    /// Pings with the ping projection of a full lead, then posts it, in one call; the auction's win/loss
    /// notices go into `notices`.
    pub async fn direct_post(
        self: &Arc<Self>,
        request: PingRequest,
        min_payout: Option<Money>,
        notices: &mut Outbox,
    ) -> Result<(String, Arc<PostResult>), SellerError> {
        let lead = Lead::parse(&request.lead, Utc::now())?;
        let campaign = self.config().campaign(&request.campaign).cloned();
        // The full lead is all there is: refuse it before any buyer is pinged if it could never be posted.
        if let Some(campaign) = campaign {
            check_postable(&campaign, &lead)?;
        }
        let (held, _) = self.auction(request, &lead, notices).await?;
        let ping_id = held.ping_id.clone();
        let result = self.deliver_to_the_end(held, lead, min_payout).await?;
        Ok((ping_id, result))
    }

    /// What a buyer has used and holds now: in cluster mode as Redis counts it for every node (a read that
    /// reflects every sale and hold answered anywhere), else this node's own count.
    pub async fn usage(
        &self,
        buyer: &crate::config::Buyer,
        state: &crate::buyers::BuyerState,
    ) -> Result<Usage, SellerError> {
        let now = Utc::now();
        let Some(redis) = self.coordinator.redis() else { return Ok(state.capacity.usage(buyer, now)) };
        match redis.tally(buyer).await.map_err(|_| SellerError::Unavailable("Redis"))? {
            Some(tally) => Ok(Usage { periods: tally.periods, held_units: tally.held_units, held_money: tally.held }),
            // Not in Redis yet (a rebuild is under way): this node's view of the ledger.
            None => Ok(state.capacity.usage(buyer, now)),
        }
    }

    /// Forgets pings long expired. Called periodically.
    pub fn sweep(&self) {
        self.pings.sweep();
    }
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
