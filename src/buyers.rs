//! Each buyer's running state — capacity, health and who paused it — kept by buyer id, so it carries over a
//! config reload for every id that remains, while each config snapshot reaches it by index with no lookup.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::capacity::BuyerCapacity;
use crate::config::{Billing, Buyer, Config};
use crate::domain::money::Money;
use crate::health::{Breach, BreakerState, BuyerHealth};
use crate::ledger::Ledger;
use crate::metrics::BuyerSeries;

/// Who paused a buyer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PausedBy {
    /// `paused = true` in the config file.
    Config,
    Operator,
    /// The buyer itself, from its portal.
    Buyer,
}

impl PausedBy {
    /// The contract's `state_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            PausedBy::Config => "config",
            PausedBy::Operator => "operator",
            PausedBy::Buyer => "buyer",
        }
    }
}

/// Whether a buyer receives leads, as the contract shows it (`state` and `state_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Active,
    Paused(PausedBy),
    SlaPaused(Option<Breach>),
    Probing(Option<Breach>),
}

impl Standing {
    /// `state`.
    pub fn state(self) -> &'static str {
        match self {
            Standing::Active => "active",
            Standing::Paused(_) => "paused",
            Standing::SlaPaused(_) => "sla_paused",
            Standing::Probing(_) => "probing",
        }
    }

    /// `state_reason`: who paused it, or the figure that breached; `None` when active.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Standing::Active => None,
            Standing::Paused(by) => Some(by.as_str()),
            Standing::SlaPaused(breach) | Standing::Probing(breach) => breach.map(Breach::as_str),
        }
    }
}

/// A pause or resume made through the API; it outlives reloads, and without one the config's `paused` rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApiPause {
    FollowConfig,
    Paused(PausedBy),
    Resumed,
}

impl ApiPause {
    /// Packed in one byte, so the paused gate reads it with one atomic load.
    fn encode(self) -> u8 {
        match self {
            ApiPause::FollowConfig => 0,
            ApiPause::Resumed => 1,
            ApiPause::Paused(PausedBy::Config) => 2,
            ApiPause::Paused(PausedBy::Operator) => 3,
            ApiPause::Paused(PausedBy::Buyer) => 4,
        }
    }

    fn decode(byte: u8) -> ApiPause {
        match byte {
            1 => ApiPause::Resumed,
            2 => ApiPause::Paused(PausedBy::Config),
            3 => ApiPause::Paused(PausedBy::Operator),
            4 => ApiPause::Paused(PausedBy::Buyer),
            _ => ApiPause::FollowConfig,
        }
    }
}

/// Why a buyer may not resume itself: who paused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PausedByOther(pub Standing);

/// One buyer's running state.
#[derive(Debug)]
pub struct BuyerState {
    /// Its ledger account, `buyer:<id>`.
    pub account: String,
    pub capacity: Arc<BuyerCapacity>,
    pub health: BuyerHealth,
    /// Its metric series that every auction updates, looked up once.
    pub series: BuyerSeries,
    api_pause: AtomicU8,
}

impl BuyerState {
    /// A buyer never seen before: nothing used, healthy, following its config's `paused`.
    pub fn new(id: &str) -> BuyerState {
        BuyerState {
            account: format!("buyer:{id}"),
            capacity: Arc::default(),
            health: BuyerHealth::default(),
            series: BuyerSeries::new(id),
            api_pause: AtomicU8::new(ApiPause::FollowConfig.encode()),
        }
    }

    /// Who has paused the buyer, if anyone (the SLA breaker aside).
    pub fn paused_by(&self, buyer: &Buyer) -> Option<PausedBy> {
        match self.api_pause() {
            ApiPause::Paused(by) => Some(by),
            ApiPause::Resumed => None,
            ApiPause::FollowConfig => buyer.paused.then_some(PausedBy::Config),
        }
    }

    /// Whether it receives leads now: a pause first, then the SLA breaker.
    pub fn standing(&self, buyer: &Buyer, now: Instant) -> Standing {
        if let Some(by) = self.paused_by(buyer) {
            return Standing::Paused(by);
        }
        match self.health.state(&buyer.sla, now) {
            (BreakerState::Active, _) => Standing::Active,
            (BreakerState::SlaPaused, breach) => Standing::SlaPaused(breach),
            (BreakerState::Probing, breach) => Standing::Probing(breach),
        }
    }

    /// The last pause or resume through the API (`Some(None)`: resumed), for the journal; `None` when the
    /// buyer follows its config.
    pub fn api_standing(&self) -> Option<Option<PausedBy>> {
        match self.api_pause() {
            ApiPause::FollowConfig => None,
            ApiPause::Resumed => Some(None),
            ApiPause::Paused(by) => Some(Some(by)),
        }
    }

    /// Puts back a pause or resume replayed from the journal.
    pub fn restore_api_standing(&self, paused_by: Option<PausedBy>) {
        self.set_api_pause(paused_by.map_or(ApiPause::Resumed, ApiPause::Paused));
    }

    fn api_pause(&self) -> ApiPause {
        ApiPause::decode(self.api_pause.load(Ordering::Acquire))
    }

    fn set_api_pause(&self, pause: ApiPause) {
        self.api_pause.store(pause.encode(), Ordering::Release);
    }

    /// Pauses the buyer. A buyer already paused stays paused by whoever paused it first.
    pub fn pause(&self, buyer: &Buyer, by: PausedBy) {
        let paused = ApiPause::Paused(by).encode();
        // One step, so two concurrent pauses cannot overwrite each other's `by`.
        let _ = self.api_pause.fetch_update(Ordering::AcqRel, Ordering::Acquire, |current| {
            let already = match ApiPause::decode(current) {
                ApiPause::Paused(_) => true,
                ApiPause::Resumed => false,
                ApiPause::FollowConfig => buyer.paused,
            };
            (!already).then_some(paused)
        });
    }

    /// The operator's resume: clears any pause — the operator's, the buyer's, the config file's — and the SLA
    /// breaker.
    pub fn resume(&self) {
        self.set_api_pause(ApiPause::Resumed);
        self.health.resume();
    }

    /// The buyer's own resume: it may lift only a pause it set itself. Resuming an active buyer changes nothing.
    pub fn resume_by_buyer(&self, buyer: &Buyer, now: Instant) -> Result<(), PausedByOther> {
        match self.standing(buyer, now) {
            Standing::Paused(PausedBy::Buyer) => {
                self.set_api_pause(ApiPause::Resumed);
                Ok(())
            }
            Standing::Active => Ok(()),
            other => Err(PausedByOther(other)),
        }
    }

    /// What the buyer can spend before holds: a prepaid wallet's balance, or an invoice buyer's credit limit
    /// less what it owes (its balance is negative while it owes).
    pub fn funds(&self, buyer: &Buyer, ledger: &Ledger) -> Money {
        let balance = ledger.balance(&self.account);
        match buyer.billing {
            Billing::Prepaid => balance,
            Billing::Invoice { credit_limit } => credit_limit + balance,
        }
    }
}

/// Every buyer's state by id, for as long as the process runs.
#[derive(Default)]
pub struct BuyerStates {
    by_id: DashMap<String, Arc<BuyerState>>,
}

impl BuyerStates {
    /// The state of every buyer of a config, in its order (new ids start fresh; known ids carry over).
    pub fn roster(&self, config: Arc<Config>) -> Roster {
        let states = config
            .buyers
            .iter()
            .map(|buyer| {
                Arc::clone(&self.by_id.entry(buyer.id.clone()).or_insert_with(|| Arc::new(BuyerState::new(&buyer.id))))
            })
            .collect();
        Roster { config, states }
    }
}

/// A config snapshot with the running state of each of its buyers: `states[i]` belongs to `config.buyers[i]`.
pub struct Roster {
    pub config: Arc<Config>,
    pub states: Vec<Arc<BuyerState>>,
}

impl Roster {
    /// A buyer and its state by id.
    pub fn buyer(&self, id: &str) -> Option<(&Arc<Buyer>, &Arc<BuyerState>)> {
        let index = self.config.buyer_index(id)?;
        Some((&self.config.buyers[index], &self.states[index]))
    }
}
