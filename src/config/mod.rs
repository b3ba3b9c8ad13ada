//! Configuration: the TOML file (API.md section 7) as validated, immutable types.
//!
//! [`load`] turns text into a [`Config`] or into the full list of problems, each with its path
//! (`buyers[2].caps.daily: must be > 0`). A loaded `Config` is shared as an `Arc` and never mutated: a reload
//! builds a new one and swaps it in, while in-flight auctions keep the snapshot they started with.

mod keys;
mod load;

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use hyper::header::{HeaderName, HeaderValue};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::domain::money::Money;

use keys::KeyIndex;
pub use load::{is_valid_id, load_file, parse, ConfigErrors};

/// The whole running configuration. Ids index into the vectors through the lookup maps.
#[derive(Debug)]
pub struct Config {
    pub server: ServerConfig,
    /// `[cluster]`: several nodes sharing PostgreSQL and Redis (API.md section 9); `None` for one node.
    pub cluster: Option<ClusterConfig>,
    pub sellers: Vec<Arc<Seller>>,
    pub campaigns: Vec<Arc<Campaign>>,
    pub buyers: Vec<Arc<Buyer>>,
    /// SHA-256 (hex) of the file's bytes as loaded; every sale names it.
    pub revision: String,
    pub loaded_at: DateTime<Utc>,
    /// The file it was read from; a reload re-reads it. `None` for a config parsed from text.
    pub source: Option<PathBuf>,
    seller_by_key: KeyIndex,
    buyer_by_key: KeyIndex,
    campaign_by_id: HashMap<String, usize>,
    buyer_by_id: HashMap<String, usize>,
    seller_by_id: HashMap<String, usize>,
    /// For each campaign (by index), the indices of the buyers that take it, in config order.
    buyers_by_campaign: Vec<Vec<usize>>,
}

impl Config {
    /// Builds the lookup maps. Called by the loader once validation has passed (ids and keys are unique).
    fn new(
        server: ServerConfig,
        cluster: Option<ClusterConfig>,
        sellers: Vec<Seller>,
        campaigns: Vec<Campaign>,
        buyers: Vec<Buyer>,
        revision: String,
    ) -> Config {
        let seller_by_key = KeyIndex::new(sellers.iter().map(|s| &s.api_key));
        let seller_by_id = sellers.iter().enumerate().map(|(i, s)| (s.id.clone(), i)).collect();
        let buyer_by_key = KeyIndex::new(buyers.iter().map(|b| &b.api_key));
        let buyer_by_id = buyers.iter().enumerate().map(|(i, b)| (b.id.clone(), i)).collect();
        let campaign_by_id: HashMap<String, usize> =
            campaigns.iter().enumerate().map(|(i, c)| (c.id.clone(), i)).collect();
        let mut buyers_by_campaign = vec![Vec::new(); campaigns.len()];
        for (buyer_index, buyer) in buyers.iter().enumerate() {
            for campaign in &buyer.campaigns {
                if let Some(&c) = campaign_by_id.get(campaign) {
                    buyers_by_campaign[c].push(buyer_index);
                }
            }
        }
        Config {
            server,
            cluster,
            sellers: sellers.into_iter().map(Arc::new).collect(),
            campaigns: campaigns.into_iter().map(Arc::new).collect(),
            buyers: buyers.into_iter().map(Arc::new).collect(),
            revision,
            loaded_at: Utc::now(),
            source: None,
            seller_by_key,
            buyer_by_key,
            campaign_by_id,
            buyer_by_id,
            seller_by_id,
            buyers_by_campaign,
        }
    }

    /// The seller whose api key this is (found in time that does not depend on the key; see [`keys`]).
    pub fn seller_by_key(&self, key: &str) -> Option<&Arc<Seller>> {
        self.seller_by_key.find(key).map(|i| &self.sellers[i])
    }

    /// The buyer whose api key this is (found in time that does not depend on the key; see [`keys`]).
    pub fn buyer_by_key(&self, key: &str) -> Option<&Arc<Buyer>> {
        self.buyer_by_key.find(key).map(|i| &self.buyers[i])
    }

    /// A seller by id.
    pub fn seller(&self, id: &str) -> Option<&Arc<Seller>> {
        self.seller_by_id.get(id).map(|&i| &self.sellers[i])
    }

    /// A buyer by id.
    pub fn buyer(&self, id: &str) -> Option<&Arc<Buyer>> {
        self.buyer_by_id.get(id).map(|&i| &self.buyers[i])
    }

    /// A buyer's position in `buyers`, by id.
    pub fn buyer_index(&self, id: &str) -> Option<usize> {
        self.buyer_by_id.get(id).copied()
    }

    /// A campaign by id.
    pub fn campaign(&self, id: &str) -> Option<&Arc<Campaign>> {
        self.campaign_by_id.get(id).map(|&i| &self.campaigns[i])
    }

    /// Every buyer that names this campaign, in config order, with its index in `buyers`.
    pub fn buyers_of(&self, campaign_id: &str) -> impl Iterator<Item = (usize, &Arc<Buyer>)> {
        let indices = self.campaign_by_id.get(campaign_id).map(|&c| self.buyers_by_campaign[c].as_slice());
        indices.unwrap_or(&[]).iter().map(|&i| (i, &self.buyers[i]))
    }
}

/// A secret from the file or from `env:VAR`; never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a resolved secret value.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself, for comparison and outbound headers only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// `[server]`.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub admin_token: Secret,
    pub max_body_bytes: usize,
    /// How long a client has to send a request's headers, and again its body (`header_read_timeout_ms`).
    pub header_read_timeout: Duration,
    /// Open client connections at most; past it the server stops accepting until one closes.
    pub max_connections: usize,
    /// Auctions (pings and direct posts) running at once at most; past it new ones are shed with 503
    /// `overloaded`. `None`: derived from the machine's cores (see `shedding`).
    pub max_auctions_in_flight: Option<usize>,
    /// Worker threads serving connections, each with its own runtime and buyer connections. `None`: one per
    /// core (see `http::workers`).
    pub workers: Option<usize>,
}

/// `[cluster]`: the exchange this node belongs to and the stores its nodes share.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// The exchange's name: Redis keys start `gavel:<name>:`, the PostgreSQL schema is `gavel_<name>`.
    pub name: String,
    /// This node's id, unless `gavel serve --node-id` gives one.
    pub node_id: Option<String>,
    pub redis_url: Secret,
    pub postgres_url: Secret,
}

/// `[[sellers]]`.
#[derive(Debug, Clone)]
pub struct Seller {
    pub id: String,
    pub api_key: Secret,
    /// Percent of the clearing price the platform keeps, 0 to 100.
    pub margin_percent: Decimal,
    pub max_pings_per_second: Option<u32>,
}

/// How the price of a sale is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuctionKind {
    FirstPrice,
    SecondPrice,
}

/// Whether a lead goes to one buyer or to several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum SellMode {
    Exclusive,
    /// Up to `max_buyers` (2..=5) top bidders each buy at their own bid.
    Shared {
        max_buyers: u8,
    },
}

impl SellMode {
    /// How many bidders the lead is quoted to: one, or `max_buyers`.
    pub fn places(self) -> usize {
        match self {
            SellMode::Exclusive => 1,
            SellMode::Shared { max_buyers } => usize::from(max_buyers),
        }
    }
}

/// The order in which bidders are offered the lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    Auction,
    Waterfall,
    RoundRobin,
    Weighted,
}

/// How the bids of an `auction` campaign are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ranking {
    /// By the bid alone.
    Bid,
    /// By bid × (1 − the buyer's return rate with the seller): what the seller can expect to keep.
    ExpectedValue,
}

/// `[[campaigns]]`.
#[derive(Debug, Clone)]
pub struct Campaign {
    pub id: String,
    /// The only keys that ever leave the engine in a ping.
    pub ping_fields: Vec<String>,
    pub required_fields: Vec<String>,
    pub require_consent: bool,
    pub ping_deadline_ms: u64,
    pub min_buyer_ms: u64,
    pub bid_ttl_s: u64,
    pub floor: Money,
    pub max_bid: Money,
    pub auction: AuctionKind,
    pub sell: SellMode,
    pub distribution: Distribution,
    /// Only with `distribution = "auction"` (the loader refuses anything else).
    pub ranking: Ranking,
    /// The window of the return rates `ranking = "expected_value"` reads, in days of 24 h (1 to 365).
    pub return_rate_days: u32,
    /// Its metric series that every auction updates, looked up once (not configuration: a reload's new
    /// campaign starts with none and finds the same series again).
    pub series: std::sync::Arc<crate::metrics::CampaignSeries>,
}

/// How a buyer pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "billing")]
pub enum Billing {
    Prepaid,
    Invoice { credit_limit: Money },
}

/// `[[buyers]]`.
#[derive(Debug, Clone)]
pub struct Buyer {
    pub id: String,
    pub api_key: Secret,
    pub campaigns: Vec<String>,
    /// `None` only for fixed-price buyers, which are never pinged.
    pub ping_url: Option<hyper::Uri>,
    pub post_url: hyper::Uri,
    /// Where win/loss notices go (API.md section 3); none when absent.
    pub notice_url: Option<hyper::Uri>,
    pub fixed_price: Option<Money>,
    pub timeout_ms: u64,
    pub post_timeout_ms: u64,
    pub priority: i64,
    pub weight: u32,
    pub billing: Billing,
    pub dedupe_days: u32,
    pub paused: bool,
    pub self_pause: bool,
    /// Extra headers on every ping and post (values may be secrets resolved from `env:`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Lead key → the buyer's name for it.
    pub field_map: HashMap<String, String>,
    pub static_fields: serde_json::Map<String, serde_json::Value>,
    pub response: ResponseAdapter,
    pub filters: Filters,
    pub caps: Caps,
    pub ramp: Option<Ramp>,
    pub sla: Sla,
    pub returns: ReturnPolicy,
}

impl Buyer {
    /// The terms a delivery record keeps (API.md section 5): what decides which leads the buyer gets and
    /// what it may return, every default filled in, `null` for a section it does not have. Never its key,
    /// URLs or headers.
    pub fn terms(&self) -> serde_json::Value {
        let caps = &self.caps;
        let has_caps = caps.hourly.is_some()
            || caps.daily.is_some()
            || caps.weekly.is_some()
            || caps.monthly.is_some()
            || caps.daily_budget.is_some()
            || caps.monthly_budget.is_some()
            || caps.concurrent_pings.is_some();
        serde_json::json!({
            "filters": self.filters,
            "caps": has_caps.then_some(caps),
            "ramp": self.ramp,
            "dedupe_days": self.dedupe_days,
            "returns": self.returns,
            "sla": self.sla,
        })
    }

    /// True if the buyer takes this campaign.
    pub fn takes(&self, campaign_id: &str) -> bool {
        self.campaigns.iter().any(|c| c == campaign_id)
    }
}

/// Where to read a buyer's own response shape (JSON Pointers, RFC 6901).
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseAdapter {
    /// Default `/bid`.
    pub bid_path: String,
    /// Default `/accepted`.
    pub accepted_path: String,
    /// Default `[true]`.
    pub accepted_values: Vec<serde_json::Value>,
    /// Default `/reason`.
    pub reason_path: String,
}

impl Default for ResponseAdapter {
    fn default() -> Self {
        ResponseAdapter {
            bid_path: "/bid".to_owned(),
            accepted_path: "/accepted".to_owned(),
            accepted_values: vec![serde_json::Value::Bool(true)],
            reason_path: "/reason".to_owned(),
        }
    }
}

/// `[buyers.filters]`: which leads a buyer takes. Empty lists mean "no restriction".
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filters {
    /// Upper-case two-letter codes.
    pub states: Vec<String>,
    /// Five digits (exact) or three digits (prefix).
    pub postal_codes: PostalCodes,
    pub exclude_postal_codes: PostalCodes,
    pub schedule: Option<Schedule>,
    pub rules: Vec<Rule>,
    pub required_fields: Vec<String>,
    pub require_consent: bool,
    pub max_lead_age_s: Option<u64>,
}

/// A list of ZIP codes (five digits, exact) and ZIP prefixes (three digits), looked up in constant time
/// however long the list: a buyer may cover thousands of codes, and every lead is checked against it. Both are
/// bitsets indexed by the code's number: one bit test per lead, no hashing, no string comparison.
#[derive(Debug, Clone, Default)]
pub struct PostalCodes {
    listed: Vec<String>,
    /// 100,000 bits, one per five-digit code; absent when no exact code is listed.
    exact: Option<Box<[u64]>>,
    /// 1,000 bits, one per three-digit prefix.
    prefixes: [u64; 16],
}

impl PostalCodes {
    /// From validated codes (each five or three digits).
    pub fn new(listed: Vec<String>) -> PostalCodes {
        let mut codes = PostalCodes { listed, exact: None, prefixes: [0; 16] };
        for code in &codes.listed {
            let Ok(number) = code.parse::<usize>() else { continue };
            match code.len() {
                5 => set_bit(codes.exact.get_or_insert_with(|| vec![0; 100_000usize.div_ceil(64)].into()), number),
                3 => set_bit(&mut codes.prefixes, number),
                _ => {}
            }
        }
        codes
    }

    /// True when the list names no code.
    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }

    /// True if a normalized five-digit ZIP is listed, exactly or by its prefix.
    pub fn matches(&self, zip: &str) -> bool {
        let Some(number) = five_digits(zip) else { return false };
        self.exact.as_deref().is_some_and(|exact| bit(exact, number)) || bit(&self.prefixes, number / 100)
    }

    /// The codes as written in the config.
    pub fn as_slice(&self) -> &[String] {
        &self.listed
    }
}

fn five_digits(zip: &str) -> Option<usize> {
    let bytes = zip.as_bytes();
    if bytes.len() != 5 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(bytes.iter().fold(0, |n, digit| n * 10 + usize::from(digit - b'0')))
}

fn set_bit(bits: &mut [u64], index: usize) {
    bits[index / 64] |= 1 << (index % 64);
}

fn bit(bits: &[u64], index: usize) -> bool {
    bits.get(index / 64).is_some_and(|word| word & (1 << (index % 64)) != 0)
}

impl Serialize for PostalCodes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.listed.serialize(s)
    }
}

/// When a buyer takes leads, in its own timezone. `close` at or before `open` means it closes after
/// midnight.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    #[serde(serialize_with = "serialize_display")]
    pub timezone: chrono_tz::Tz,
    #[serde(serialize_with = "serialize_weekdays")]
    pub days: Vec<Weekday>,
    #[serde(serialize_with = "serialize_hhmm")]
    pub open: NaiveTime,
    #[serde(serialize_with = "serialize_hhmm")]
    pub close: NaiveTime,
}

/// A comparison a lead field must pass.
#[derive(Debug, Clone, Serialize)]
pub struct Rule {
    pub field: String,
    pub op: RuleOp,
    /// Absent only for `exists`; an array for `in` / `not_in`.
    pub value: Option<serde_json::Value>,
    /// `value` as an exact decimal when it is a number or numeric text, parsed once here rather than for
    /// every lead.
    #[serde(skip)]
    pub number: Option<Decimal>,
}

impl Rule {
    /// A rule; a numeric `value` is parsed once.
    pub fn new(field: String, op: RuleOp, value: Option<serde_json::Value>) -> Rule {
        let number = value.as_ref().and_then(decimal_of);
        Rule { field, op, value, number }
    }
}

/// A JSON number or numeric text as an exact decimal (never through a float).
pub fn decimal_of(value: &serde_json::Value) -> Option<Decimal> {
    // Numbers keep their JSON text (serde_json's arbitrary_precision), so nothing is allocated here.
    let text = match value {
        serde_json::Value::Number(n) => n.as_str(),
        serde_json::Value::String(s) => s.trim(),
        _ => return None,
    };
    text.parse::<Decimal>().ok().or_else(|| Decimal::from_scientific(text).ok())
}

/// The operators of a [`Rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    In,
    NotIn,
    Exists,
}

/// `[buyers.caps]`: counts of sales and money per period; `None` means no limit.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Caps {
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub daily_budget: Option<Money>,
    pub monthly_budget: Option<Money>,
    pub concurrent_pings: Option<u32>,
}

/// `[buyers.ramp]`: a new buyer's daily limit grows day by day.
#[derive(Debug, Clone, Serialize)]
pub struct Ramp {
    pub start: NaiveDate,
    pub daily_start: u32,
    pub daily_step: u32,
}

/// `[buyers.sla]`: health thresholds and the circuit breaker. Rates are shares from 0 to 1, not money.
#[derive(Debug, Clone, Serialize)]
pub struct Sla {
    pub enabled: bool,
    pub window: u32,
    pub min_samples: u32,
    pub max_timeout_rate: f64,
    pub max_error_rate: f64,
    pub min_acceptance_rate: f64,
    pub cooldown_s: u64,
    pub probe_share: f64,
}

impl Default for Sla {
    fn default() -> Self {
        Sla {
            enabled: true,
            window: 200,
            min_samples: 20,
            max_timeout_rate: 0.5,
            max_error_rate: 0.5,
            min_acceptance_rate: 0.0,
            cooldown_s: 60,
            probe_share: 0.1,
        }
    }
}

/// `[buyers.returns]`: the buyer's return policy.
#[derive(Debug, Clone, Serialize)]
pub struct ReturnPolicy {
    pub enabled: bool,
    pub window_days: u32,
    pub reasons: Vec<String>,
    pub rate_cap_percent: Decimal,
    pub policy_note: Option<String>,
}

/// The defect reasons a buyer may return a lead for by default.
pub const DEFECT_REASONS: [&str; 7] =
    ["wrong_number", "disconnected", "duplicate", "out_of_area", "missing_fields", "fake_info", "no_consent"];

/// Every return reason the product knows: the defects, the outcomes (never returnable by default) and `other`.
pub const KNOWN_RETURN_REASONS: [&str; 12] = [
    "wrong_number",
    "disconnected",
    "duplicate",
    "out_of_area",
    "missing_fields",
    "fake_info",
    "no_consent",
    "no_answer",
    "did_not_convert",
    "changed_mind",
    "contacted_too_late",
    "other",
];

impl Default for ReturnPolicy {
    fn default() -> Self {
        ReturnPolicy {
            enabled: true,
            window_days: 7,
            reasons: DEFECT_REASONS.iter().map(|r| (*r).to_owned()).collect(),
            rate_cap_percent: Decimal::TEN,
            policy_note: None,
        }
    }
}

fn serialize_display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn serialize_hhmm<S: serde::Serializer>(time: &NaiveTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&time.format("%H:%M"))
}

fn serialize_weekdays<S: serde::Serializer>(days: &[Weekday], s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(days.len()))?;
    for day in days {
        seq.serialize_element(&day.to_string().to_lowercase())?;
    }
    seq.end()
}

#[cfg(test)]
pub mod test_support;
