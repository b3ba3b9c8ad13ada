//! A scenario file (`loadtest/scenarios/*.toml`): the buyers, the seller's request mix, the rate and the
//! bounds of every phase. Read once, validated, then immutable.

use std::path::Path;
use std::time::Duration;

use gavel::domain::money::Money;
use gavel::sim::{BidSpec, Latency, SimBuyerSpec};
use serde::Deserialize;

/// Hard ceiling on any phase's length, whatever a scenario says: a run must always end.
pub const MAX_PHASE: Duration = Duration::from_secs(300);
/// Hard ceiling on requests in any phase.
pub const MAX_PHASE_REQUESTS: u64 = 2_000_000;

/// A validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file's `name`, or its stem.
    pub name: String,
    /// What the scenario shows, for the report.
    pub description: String,
    /// Seller requests per second, sent on a fixed schedule.
    pub rate: f64,
    /// Length of each measured phase.
    pub duration: Duration,
    /// Most requests in each measured phase; the phase ends at whichever bound comes first.
    pub max_requests: u64,
    /// Unmeasured load before each phase, so connections are open and caches warm.
    pub warmup: Duration,
    /// How many times the floor and engine phases alternate.
    pub rounds: u32,
    /// The auction deadline: the campaign's `ping_deadline_ms` and every ping's `deadline_ms`.
    pub deadline: Duration,
    /// Shares of the seller's requests, normalized to sum to 1.
    pub mix: Mix,
    /// The campaign's selling terms.
    pub campaign: CampaignTerms,
    /// Every simulated buyer, in config order.
    pub buyers: Vec<BuyerPlan>,
    /// The saturating throughput phases.
    pub throughput: Throughput,
    /// The `max-rate` search.
    pub max_rate: MaxRate,
    /// First port of the simulated buyers when targeting a running engine (`--target`).
    pub buyer_port_base: u16,
}

/// Shares of the seller's requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    /// `POST /v1/ping` alone.
    pub ping: f64,
    /// `POST /v1/ping`, then `POST /v1/post` of the full lead when it got a bid.
    pub ping_post: f64,
    /// `POST /v1/leads`.
    pub direct_post: f64,
}

/// Which seller request the n-th scheduled one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ping,
    PingPost,
    DirectPost,
}

impl Mix {
    /// A deterministic interleaving: request `n` gets the op whose cumulative share first exceeds the
    /// fractional part of `n × φ` (a low-discrepancy sequence), so every window of the run has the mix.
    pub fn op(&self, n: u64) -> Op {
        let x = (n as f64 * 0.618_033_988_749_895).fract();
        if x < self.ping {
            Op::Ping
        } else if x < self.ping + self.ping_post {
            Op::PingPost
        } else {
            Op::DirectPost
        }
    }
}

/// The campaign's selling terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignTerms {
    /// `exclusive` or `shared`.
    pub sell: String,
    /// With `sell = "shared"`: how many buyers one lead goes to.
    pub max_buyers: Option<u8>,
    /// `first_price` or `second_price`.
    pub auction: String,
}

/// One simulated buyer and its config terms.
#[derive(Debug, Clone)]
pub struct BuyerPlan {
    /// What the simulated endpoint does.
    pub spec: SimBuyerSpec,
    /// The buyer's `timeout_ms`.
    pub timeout: Duration,
    /// The buyer's `post_timeout_ms`.
    pub post_timeout: Duration,
    /// Whether the engine's SLA breaker watches it (off keeps hanging buyers pinged, to measure adherence).
    pub sla: bool,
}

/// The throughput phases: closed loop at a fixed concurrency, buyers answering at once.
#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    pub duration: Duration,
    pub concurrency: usize,
}

/// The `max-rate` search bounds.
#[derive(Debug, Clone, Copy)]
pub struct MaxRate {
    /// Length of each step, at the least.
    pub step: Duration,
    /// Requests each step measures, at the least: a step at a low rate runs longer, so that its p99 rests on
    /// as many requests above it as a fast step's (2,000 leave twenty above the p99; 3 s at 200/s left six,
    /// so one descheduling of six requests decided it).
    pub min_samples: u64,
    /// Highest rate tried.
    pub ceiling: f64,
    /// Most steps.
    pub steps: u32,
}

impl MaxRate {
    /// How long a step at `rate` runs: `step`, or as long as `min_samples` take at that rate.
    pub fn step_at(&self, rate: f64) -> Duration {
        let for_samples = Duration::from_secs_f64(self.min_samples as f64 / rate.max(1.0));
        self.step.max(for_samples).min(MAX_PHASE)
    }
}

/// Why a scenario file was refused.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read {0}: {1}")]
    Read(String, std::io::Error),
    #[error("{0}: {1}")]
    Parse(String, toml::de::Error),
    #[error("{0}: {1}")]
    Invalid(String, String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    name: Option<String>,
    #[serde(default)]
    description: String,
    rate: f64,
    duration_s: f64,
    max_requests: u64,
    #[serde(default = "default_warmup")]
    warmup_s: f64,
    #[serde(default = "default_rounds")]
    rounds: u32,
    #[serde(default = "default_deadline")]
    deadline_ms: u64,
    #[serde(default)]
    mix: MixFile,
    #[serde(default)]
    campaign: CampaignFile,
    buyers: Vec<BuyerFile>,
    #[serde(default)]
    throughput: ThroughputFile,
    #[serde(default)]
    max_rate: MaxRateFile,
    #[serde(default = "default_port_base")]
    buyer_port_base: u16,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MixFile {
    #[serde(default)]
    ping: f64,
    #[serde(default)]
    ping_post: f64,
    #[serde(default)]
    direct_post: f64,
}

impl Default for MixFile {
    fn default() -> Self {
        MixFile { ping: 1.0, ping_post: 0.0, direct_post: 0.0 }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CampaignFile {
    #[serde(default = "default_sell")]
    sell: String,
    max_buyers: Option<u8>,
    #[serde(default = "default_auction")]
    auction: String,
}

impl Default for CampaignFile {
    fn default() -> Self {
        CampaignFile { sell: default_sell(), max_buyers: None, auction: default_auction() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BuyerFile {
    #[serde(default = "one")]
    count: u32,
    #[serde(default)]
    latency: LatencyFile,
    #[serde(default)]
    post_latency: LatencyFile,
    /// Fixed bid, e.g. "10.00".
    bid: Option<String>,
    bid_min: Option<String>,
    bid_max: Option<String>,
    #[serde(default)]
    no_bid: f64,
    #[serde(default)]
    error: f64,
    #[serde(default)]
    hang: f64,
    #[serde(default)]
    reject: f64,
    #[serde(default = "default_timeout")]
    timeout_ms: u64,
    #[serde(default = "default_post_timeout")]
    post_timeout_ms: u64,
    #[serde(default)]
    sla: bool,
}

/// One of: nothing (instant), `fixed_ms`, `min_ms` + `max_ms` (uniform), `median_ms` [+ `sigma`] (log-normal).
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LatencyFile {
    fixed_ms: Option<f64>,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
    median_ms: Option<f64>,
    sigma: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThroughputFile {
    #[serde(default = "default_throughput_s")]
    duration_s: f64,
    #[serde(default = "default_concurrency")]
    concurrency: usize,
}

impl Default for ThroughputFile {
    fn default() -> Self {
        ThroughputFile { duration_s: default_throughput_s(), concurrency: default_concurrency() }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MaxRateFile {
    #[serde(default = "default_step_s")]
    step_s: f64,
    #[serde(default = "default_min_samples")]
    min_samples: u64,
    #[serde(default = "default_ceiling")]
    ceiling: f64,
    #[serde(default = "default_steps")]
    steps: u32,
}

impl Default for MaxRateFile {
    fn default() -> Self {
        MaxRateFile {
            step_s: default_step_s(),
            min_samples: default_min_samples(),
            ceiling: default_ceiling(),
            steps: default_steps(),
        }
    }
}

fn default_warmup() -> f64 {
    1.0
}
fn default_rounds() -> u32 {
    2
}
fn default_deadline() -> u64 {
    300
}
fn default_port_base() -> u16 {
    18201
}
fn default_sell() -> String {
    "exclusive".into()
}
fn default_auction() -> String {
    "first_price".into()
}
fn one() -> u32 {
    1
}
fn default_timeout() -> u64 {
    200
}
fn default_post_timeout() -> u64 {
    3000
}
fn default_throughput_s() -> f64 {
    3.0
}
fn default_concurrency() -> usize {
    32
}
fn default_step_s() -> f64 {
    3.0
}
fn default_min_samples() -> u64 {
    2_000
}
fn default_ceiling() -> f64 {
    20_000.0
}
fn default_steps() -> u32 {
    10
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::Read(shown.clone(), e))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Scenario::parse(&text, &stem).map_err(|e| match e {
            ScenarioError::Parse(_, why) => ScenarioError::Parse(shown.clone(), why),
            ScenarioError::Invalid(_, why) => ScenarioError::Invalid(shown.clone(), why),
            other => other,
        })
    }

    /// Parses scenario text; `stem` names it when the text does not.
    pub fn parse(text: &str, stem: &str) -> Result<Scenario, ScenarioError> {
        let file: File = toml::from_str(text).map_err(|e| ScenarioError::Parse(stem.into(), e))?;
        let invalid = |why: String| ScenarioError::Invalid(stem.into(), why);
        let positive = |key: &str, value: f64| {
            if value.is_finite() && value > 0.0 {
                Ok(value)
            } else {
                Err(invalid(format!("{key} must be > 0")))
            }
        };
        let rate = positive("rate", file.rate)?;
        let duration = seconds(positive("duration_s", file.duration_s)?).min(MAX_PHASE);
        if file.max_requests == 0 {
            return Err(invalid("max_requests must be > 0".into()));
        }
        let mix =
            normalize_mix(&file.mix).ok_or_else(|| invalid("mix shares must be >= 0 with a positive sum".into()))?;
        if !(1..=5000).contains(&file.deadline_ms) {
            return Err(invalid("deadline_ms must be 1 to 5000".into()));
        }
        let campaign = campaign_terms(file.campaign).map_err(invalid)?;
        let mut buyers = Vec::new();
        for (index, group) in file.buyers.iter().enumerate() {
            let plans =
                buyer_plans(group, buyers.len() as u64).map_err(|why| invalid(format!("buyers[{index}]: {why}")))?;
            buyers.extend(plans);
        }
        if buyers.is_empty() || buyers.len() > 1000 {
            return Err(invalid("buyers must add up to 1 to 1000 buyers".into()));
        }
        Ok(Scenario {
            name: file.name.unwrap_or_else(|| stem.to_owned()),
            description: file.description,
            rate,
            duration,
            max_requests: file.max_requests.min(MAX_PHASE_REQUESTS),
            warmup: seconds(file.warmup_s.max(0.0)).min(MAX_PHASE),
            rounds: file.rounds.clamp(1, 10),
            deadline: Duration::from_millis(file.deadline_ms),
            mix,
            campaign,
            buyers,
            throughput: Throughput {
                duration: seconds(positive("throughput.duration_s", file.throughput.duration_s)?).min(MAX_PHASE),
                concurrency: file.throughput.concurrency.clamp(1, 4096),
            },
            max_rate: MaxRate {
                step: seconds(positive("max_rate.step_s", file.max_rate.step_s)?).min(MAX_PHASE),
                min_samples: file.max_rate.min_samples.min(MAX_PHASE_REQUESTS),
                ceiling: positive("max_rate.ceiling", file.max_rate.ceiling)?,
                steps: file.max_rate.steps.clamp(1, 30),
            },
            buyer_port_base: file.buyer_port_base,
        })
    }

    /// Requests in one measured phase at `rate`: the duration's worth, never above the cap.
    pub fn requests_at(&self, rate: f64, duration: Duration) -> u64 {
        ((rate * duration.as_secs_f64()).ceil() as u64).clamp(1, self.max_requests)
    }
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(MAX_PHASE)
}

fn normalize_mix(mix: &MixFile) -> Option<Mix> {
    let shares = [mix.ping, mix.ping_post, mix.direct_post];
    if shares.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return None;
    }
    let sum: f64 = shares.iter().sum();
    (sum > 0.0).then(|| Mix {
        ping: mix.ping / sum,
        ping_post: mix.ping_post / sum,
        direct_post: mix.direct_post / sum,
    })
}

fn campaign_terms(file: CampaignFile) -> Result<CampaignTerms, String> {
    match (file.sell.as_str(), file.max_buyers) {
        ("exclusive", None) => {}
        ("shared", Some(2..=5)) => {}
        ("shared", _) => return Err("campaign.max_buyers must be 2 to 5 with sell = \"shared\"".into()),
        ("exclusive", Some(_)) => return Err("campaign.max_buyers only applies with sell = \"shared\"".into()),
        (other, _) => return Err(format!("campaign.sell must be \"exclusive\" or \"shared\", not {other:?}")),
    }
    if !matches!(file.auction.as_str(), "first_price" | "second_price") {
        return Err(format!("campaign.auction must be \"first_price\" or \"second_price\", not {:?}", file.auction));
    }
    Ok(CampaignTerms { sell: file.sell, max_buyers: file.max_buyers, auction: file.auction })
}

/// `count` buyers alike, each with its own seed so their draws differ.
fn buyer_plans(group: &BuyerFile, first_seed: u64) -> Result<Vec<BuyerPlan>, String> {
    for (key, share) in
        [("no_bid", group.no_bid), ("error", group.error), ("hang", group.hang), ("reject", group.reject)]
    {
        if !(0.0..=1.0).contains(&share) {
            return Err(format!("{key} must be a share from 0 to 1"));
        }
    }
    if group.no_bid + group.error + group.hang > 1.0 {
        return Err("no_bid + error + hang must be at most 1".into());
    }
    if !(1..=60_000).contains(&group.timeout_ms) || !(1..=120_000).contains(&group.post_timeout_ms) {
        return Err("timeout_ms must be 1 to 60000 and post_timeout_ms 1 to 120000".into());
    }
    let bid = bid_spec(group)?;
    let ping_latency = latency(&group.latency).map_err(|why| format!("latency: {why}"))?;
    let post_latency = latency(&group.post_latency).map_err(|why| format!("post_latency: {why}"))?;
    Ok((0..u64::from(group.count))
        .map(|i| BuyerPlan {
            spec: SimBuyerSpec {
                ping_latency: ping_latency.clone(),
                post_latency: post_latency.clone(),
                bid: bid.clone(),
                no_bid_share: group.no_bid,
                error_share: group.error,
                hang_share: group.hang,
                reject_share: group.reject,
                seed: first_seed + i + 1,
                record: false,
                ..SimBuyerSpec::default()
            },
            timeout: Duration::from_millis(group.timeout_ms),
            post_timeout: Duration::from_millis(group.post_timeout_ms),
            sla: group.sla,
        })
        .collect())
}

fn bid_spec(group: &BuyerFile) -> Result<BidSpec, String> {
    let money = |key: &str, text: &str| Money::parse_text(text).map_err(|e| format!("{key}: {e}"));
    match (&group.bid, &group.bid_min, &group.bid_max) {
        (Some(bid), None, None) => Ok(BidSpec::Fixed(money("bid", bid)?)),
        (None, Some(min), Some(max)) => {
            Ok(BidSpec::Uniform { min: money("bid_min", min)?, max: money("bid_max", max)? })
        }
        (None, None, None) => Ok(BidSpec::Uniform { min: Money::from_cents(500), max: Money::from_cents(1500) }),
        _ => Err("give either bid, or bid_min and bid_max".into()),
    }
}

fn latency(file: &LatencyFile) -> Result<Latency, String> {
    let ms = |value: f64| {
        if value.is_finite() && value >= 0.0 {
            Ok(Duration::from_secs_f64(value / 1000.0))
        } else {
            Err(format!("{value} is not a duration in milliseconds"))
        }
    };
    match (file.fixed_ms, file.min_ms, file.max_ms, file.median_ms) {
        (None, None, None, None) if file.sigma.is_none() => Ok(Latency::Zero),
        (Some(fixed), None, None, None) if file.sigma.is_none() => Ok(Latency::Fixed(ms(fixed)?)),
        (None, Some(min), Some(max), None) if file.sigma.is_none() && min <= max => {
            Ok(Latency::Uniform { min: ms(min)?, max: ms(max)? })
        }
        (None, None, None, Some(median)) => {
            let sigma = file.sigma.unwrap_or(0.5);
            if !(0.0..=3.0).contains(&sigma) {
                return Err("sigma must be 0 to 3".into());
            }
            Ok(Latency::LogNormal { median: ms(median)?, sigma })
        }
        _ => Err("give nothing (instant), fixed_ms, min_ms <= max_ms, or median_ms with an optional sigma".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "rate = 100\nduration_s = 2\nmax_requests = 150\n[[buyers]]\ncount = 3\n";

    #[test]
    fn a_minimal_scenario_gets_the_defaults() {
        let scenario = Scenario::parse(MINIMAL, "mini").unwrap();
        assert_eq!(scenario.name, "mini");
        assert_eq!(scenario.buyers.len(), 3);
        assert_eq!(scenario.deadline, Duration::from_millis(300));
        assert_eq!(scenario.mix, Mix { ping: 1.0, ping_post: 0.0, direct_post: 0.0 });
        assert_eq!(scenario.buyers[0].spec.ping_latency, Latency::Zero);
        // Each buyer draws from its own seed.
        let seeds: Vec<u64> = scenario.buyers.iter().map(|b| b.spec.seed).collect();
        assert_eq!(seeds, [1, 2, 3]);
        // The request cap bounds a phase before its duration does.
        assert_eq!(scenario.requests_at(100.0, Duration::from_secs(2)), 150);
        assert_eq!(scenario.requests_at(10.0, Duration::from_secs(2)), 20);
    }

    #[test]
    fn a_search_step_at_a_low_rate_runs_until_it_has_its_samples() {
        let scenario = Scenario::parse(MINIMAL, "mini").unwrap();
        let bounds = scenario.max_rate;
        assert_eq!((bounds.step, bounds.min_samples), (Duration::from_secs(3), 2_000));
        assert_eq!(bounds.step_at(200.0), Duration::from_secs(10));
        assert_eq!(bounds.step_at(400.0), Duration::from_secs(5));
        assert_eq!(bounds.step_at(1_600.0), Duration::from_secs(3), "fast steps keep their length");
        assert_eq!(bounds.step_at(0.001), MAX_PHASE, "never past a phase's bound");
        let none = Scenario::parse(&format!("{MINIMAL}[max_rate]\nmin_samples = 0\n"), "x").unwrap();
        assert_eq!(none.max_rate.step_at(200.0), Duration::from_secs(3));
    }

    #[test]
    fn latencies_and_mix_are_read() {
        let text = format!(
            "{MINIMAL}latency = {{ median_ms = 40, sigma = 0.4 }}\npost_latency = {{ min_ms = 1, max_ms = 3 }}\n\
             [mix]\nping = 2\nping_post = 1\ndirect_post = 1\n"
        );
        let scenario = Scenario::parse(&text, "x").unwrap();
        let spec = &scenario.buyers[0].spec;
        assert_eq!(spec.ping_latency, Latency::LogNormal { median: Duration::from_millis(40), sigma: 0.4 });
        assert_eq!(
            spec.post_latency,
            Latency::Uniform { min: Duration::from_millis(1), max: Duration::from_millis(3) }
        );
        assert_eq!(scenario.mix, Mix { ping: 0.5, ping_post: 0.25, direct_post: 0.25 });
        let ops: Vec<Op> = (0..1000).map(|n| scenario.mix.op(n)).collect();
        let pings = ops.iter().filter(|op| **op == Op::Ping).count();
        assert!((450..=550).contains(&pings), "{pings} pings of 1000 for a share of 0.5");
    }

    #[test]
    fn bad_values_are_refused_with_their_key() {
        let cases = [
            ("rate = 0\nduration_s = 1\nmax_requests = 1\n[[buyers]]\n", "rate must be > 0"),
            (&format!("{MINIMAL}hang = 1.5\n"), "buyers[0]: hang must be a share"),
            (&format!("{MINIMAL}latency = {{ fixed_ms = 1, median_ms = 2 }}\n"), "buyers[0]: latency:"),
            (&format!("{MINIMAL}[campaign]\nsell = \"shared\"\n"), "max_buyers must be 2 to 5"),
            (&format!("{MINIMAL}bogus = 1\n"), "unknown field"),
        ];
        for (text, expected) in cases {
            let error = Scenario::parse(text, "bad").unwrap_err().to_string();
            assert!(error.contains(expected), "{error:?} should contain {expected:?}");
        }
    }

    #[test]
    fn every_shipped_scenario_is_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
                names.push(scenario.name);
            }
        }
        names.sort();
        assert_eq!(
            names,
            ["baseline-10", "baseline-10-long", "cascade", "cluster-3", "hanging", "realistic", "shared", "smoke"]
        );
    }
}
