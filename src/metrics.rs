//! Metrics: counters, gauges and histograms, rendered as Prometheus text for `GET /metrics`.
//!
//! Series are created on first use and live for the life of the process. Counter updates are atomic adds on
//! an existing series; only the first update of a new label set takes the map's write lock. A series is
//! found by its key rendered into a buffer reused by each thread, so an update allocates nothing. The series
//! every auction updates once per buyer, and once for its campaign, are looked up once and kept
//! ([`BuyerSeries`], [`CampaignSeries`]): their updates are an atomic add or a histogram record, with no key
//! rendered and no map searched.
//!
//! Every histogram also keeps an HDR histogram (microseconds, 3 significant digits), rendered after the
//! Prometheus buckets as a summary family named `<base>_hdr_seconds` with the p50, p90, p99 and p99.9
//! quantiles: the fixed buckets alone cannot tell a p99 of 300 µs from one of 900 µs.

use std::cell::RefCell;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use rustc_hash::FxBuildHasher;

/// Upper bounds (seconds) of histogram buckets: fine below a millisecond, where engine overhead lives, and
/// out to five seconds, the longest deadline.
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Quantiles exported from each HDR histogram.
const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

/// Largest value an HDR histogram tracks, in microseconds (one hour); longer observations are clamped to it.
const HDR_MAX_MICROS: u64 = 3_600_000_000;

/// A series key: the metric name followed by its rendered label set (`gavel_x{buyer="acme"}`), one string so
/// that a lookup can borrow it as a `&str` from a reused buffer.
type SeriesKey = Box<str>;

thread_local! {
    /// The buffer each thread renders series keys into.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Calls `f` with the key of the series `name` with `labels`, rendered into this thread's buffer.
fn with_key<R>(name: &str, labels: &[(&str, &str)], f: impl FnOnce(&str) -> R) -> R {
    KEY.with_borrow_mut(|key| {
        key.clear();
        key.push_str(name);
        render_labels(key, labels);
        f(key)
    })
}

/// The label set of `key` if it is a series of `name` (`{…}`, or empty for no labels).
fn labels_of<'k>(key: &'k str, name: &str) -> Option<&'k str> {
    key.strip_prefix(name).filter(|labels| labels.is_empty() || labels.starts_with('{'))
}

/// Every metric of the process.
#[derive(Default)]
pub struct Metrics {
    // FxHash: the keys are the process's own metric names and ids, and a lookup is on every auction's path.
    counters: DashMap<SeriesKey, Arc<AtomicU64>, FxBuildHasher>,
    histograms: DashMap<SeriesKey, Arc<Histogram>, FxBuildHasher>,
    /// Auctions between receipt of the ping and the answer to the seller.
    pub auctions_in_flight: AtomicI64,
    /// HTTP exchanges the engine answered (every request it received), for throughput.
    pub inbound_exchanges: AtomicU64,
    /// HTTP exchanges the engine started with buyers (pings and post attempts), for throughput.
    pub outbound_exchanges: AtomicU64,
}

/// One histogram series. A single short lock per observation covers the buckets, the sum and the HDR
/// histogram together: cheaper than the sixteen atomic adds of cumulative buckets, and a series is only
/// shared by auctions that touch the same buyer or campaign at the same instant.
struct Histogram(Mutex<HistogramData>);

struct HistogramData {
    /// Observations per bucket, not cumulative (summed at render time).
    buckets: [u64; BUCKETS.len()],
    /// Observations above the last bucket.
    overflow: u64,
    sum_nanos: u64,
    /// Microseconds, 3 significant digits.
    hdr: hdrhistogram::Histogram<u64>,
}

impl Default for Histogram {
    fn default() -> Self {
        let hdr = hdrhistogram::Histogram::new_with_bounds(1, HDR_MAX_MICROS, 3)
            .expect("constant bounds 1..HDR_MAX_MICROS with 3 digits are valid");
        Histogram(Mutex::new(HistogramData { buckets: [0; BUCKETS.len()], overflow: 0, sum_nanos: 0, hdr }))
    }
}

impl Histogram {
    fn record(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        // Sub-microsecond observations count as 1 µs: the HDR histogram's lowest value.
        let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX).clamp(1, HDR_MAX_MICROS);
        let bucket = BUCKETS.iter().position(|&bound| seconds <= bound);
        let mut data = self.0.lock();
        match bucket {
            Some(index) => data.buckets[index] += 1,
            None => data.overflow += 1,
        }
        data.sum_nanos = data.sum_nanos.saturating_add(nanos);
        data.hdr.saturating_record(micros);
    }
}

/// One counter series, looked up once and kept: an update is one atomic add.
#[derive(Clone)]
pub struct CounterSeries(Arc<AtomicU64>);

impl CounterSeries {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// One histogram series, looked up once and kept.
#[derive(Clone)]
pub struct HistogramSeries(Arc<Histogram>);

impl HistogramSeries {
    pub fn observe(&self, value: Duration) {
        self.0.record(value);
    }
}

/// The outcomes of a buyer ping that `gavel_buyer_responses_total` counts (an excluded buyer was not pinged).
const PING_OUTCOMES: [&str; 4] = ["bid", "no_bid", "timeout", "error"];

/// The series each auction updates for one buyer it pinged, looked up on the first update and kept with the
/// buyer's running state. A series appears on `/metrics` once it has something to say, as any other does.
pub struct BuyerSeries {
    buyer: Box<str>,
    ping_seconds: OnceLock<HistogramSeries>,
    /// `gavel_buyer_responses_total`, by [`PING_OUTCOMES`].
    responses: [OnceLock<CounterSeries>; PING_OUTCOMES.len()],
}

impl std::fmt::Debug for BuyerSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuyerSeries").field("buyer", &self.buyer).finish_non_exhaustive()
    }
}

impl BuyerSeries {
    pub fn new(buyer: &str) -> BuyerSeries {
        BuyerSeries { buyer: buyer.into(), ping_seconds: OnceLock::new(), responses: Default::default() }
    }

    /// `gavel_buyer_ping_seconds`: one ping's round trip.
    pub fn ping_answered(&self, metrics: &Metrics, latency: Duration) {
        self.ping_seconds
            .get_or_init(|| metrics.histogram_series("gavel_buyer_ping_seconds", &[("buyer", &self.buyer)]))
            .observe(latency);
    }

    /// `gavel_buyer_responses_total`: how one ping ended.
    pub fn responded(&self, metrics: &Metrics, outcome: &str) {
        let labels = [("buyer", &*self.buyer), ("outcome", outcome)];
        match PING_OUTCOMES.iter().position(|known| *known == outcome) {
            Some(index) => self.responses[index]
                .get_or_init(|| metrics.counter_series("gavel_buyer_responses_total", &labels))
                .inc(),
            None => metrics.inc("gavel_buyer_responses_total", &labels),
        }
    }
}

/// The statuses of a ping's answer that `gavel_pings_total` counts.
const PING_STATUSES: [&str; 2] = ["bid", "no_bid"];

/// The series each auction updates for its campaign, looked up on the first update and kept with the
/// campaign's config; a reload's new config finds the same series again.
pub struct CampaignSeries {
    campaign: Box<str>,
    /// `gavel_pings_total`, by [`PING_STATUSES`].
    pings: [OnceLock<CounterSeries>; PING_STATUSES.len()],
    auction_seconds: OnceLock<HistogramSeries>,
    overhead_seconds: OnceLock<HistogramSeries>,
}

impl std::fmt::Debug for CampaignSeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CampaignSeries").field("campaign", &self.campaign).finish_non_exhaustive()
    }
}

impl CampaignSeries {
    pub fn new(campaign: &str) -> CampaignSeries {
        CampaignSeries {
            campaign: campaign.into(),
            pings: Default::default(),
            auction_seconds: OnceLock::new(),
            overhead_seconds: OnceLock::new(),
        }
    }

    /// One ping answered: `gavel_pings_total` (with a bid or without), `gavel_auction_seconds` (`elapsed`)
    /// and `gavel_engine_overhead_seconds` (`overhead`).
    pub fn answered(&self, metrics: &Metrics, bid: bool, elapsed: Duration, overhead: Duration) {
        let campaign = &*self.campaign;
        let index = usize::from(!bid);
        self.pings[index]
            .get_or_init(|| {
                metrics.counter_series("gavel_pings_total", &[("campaign", campaign), ("status", PING_STATUSES[index])])
            })
            .inc();
        self.auction_seconds
            .get_or_init(|| metrics.histogram_series("gavel_auction_seconds", &[("campaign", campaign)]))
            .observe(elapsed);
        self.overhead_seconds
            .get_or_init(|| metrics.histogram_series("gavel_engine_overhead_seconds", &[("campaign", campaign)]))
            .observe(overhead);
    }
}

/// What a metric is, for the `# HELP` / `# TYPE` lines.
const HELP: &[(&str, &str, &str)] = &[
    ("gavel_pings_total", "counter", "Seller pings answered, by campaign and status."),
    ("gavel_buyer_responses_total", "counter", "Buyer ping outcomes, by buyer and outcome."),
    ("gavel_buyer_exclusions_total", "counter", "Buyers not pinged, by buyer and the gate that excluded them."),
    ("gavel_posts_total", "counter", "Post attempts to buyers, by buyer and outcome."),
    ("gavel_sales_total", "counter", "Leads sold, by campaign."),
    (
        "gavel_notices_total",
        "counter",
        "Win/loss notices, by buyer and outcome: sent (2xx), failed (other answer, error, timeout) or dropped \
         (queue full).",
    ),
    ("gavel_late_answers_total", "counter", "Buyer answers dropped because they arrived after the buyer's time."),
    ("gavel_http_requests_total", "counter", "HTTP requests answered, by route and status."),
    (
        "gavel_requests_refused_total",
        "counter",
        "Seller calls refused before any work: rate_limited (by seller) or overloaded (load shed).",
    ),
    ("gavel_auction_seconds", "histogram", "Time from a ping's arrival to its answer, by campaign."),
    ("gavel_buyer_ping_seconds", "histogram", "Round trip of one buyer ping, by buyer."),
    ("gavel_buyer_post_seconds", "histogram", "Round trip of one buyer post attempt, by buyer."),
    (
        "gavel_engine_overhead_seconds",
        "histogram",
        "Auction time not spent waiting for buyers (auction time less the slowest buyer leg), by campaign.",
    ),
    (
        "gavel_journal_commit_seconds",
        "histogram",
        "Time from a ledger change to its durable commit: the journal's fsync, or PostgreSQL's COMMIT in cluster mode.",
    ),
    (
        "gavel_store_seconds",
        "histogram",
        "Cluster mode: one round trip to a shared store, by store (postgres, redis) and operation.",
    ),
    (
        "gavel_redis_rebuilds_total",
        "counter",
        "Cluster mode: times this node rebuilt Redis's state from the ledger (Redis came back empty).",
    ),
    ("gavel_worker_connections_total", "counter", "Client connections handed to each server worker thread."),
    (
        "gavel_worker_auctions_total",
        "counter",
        "Auctions whose fan-out ran on each server worker thread (with that worker's buyer connections).",
    ),
];

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&str, &str)], n: u64) {
        with_key(name, labels, |key| {
            if let Some(counter) = self.counters.get(key) {
                counter.fetch_add(n, Ordering::Relaxed);
                return;
            }
            self.counters.entry(key.into()).or_default().fetch_add(n, Ordering::Relaxed);
        });
    }

    /// The counter series `name` with `labels`, created (at zero) if new, to be kept and updated directly.
    pub fn counter_series(&self, name: &'static str, labels: &[(&str, &str)]) -> CounterSeries {
        with_key(name, labels, |key| CounterSeries(Arc::clone(&self.counters.entry(key.into()).or_default())))
    }

    /// The histogram series `name` with `labels`, created (empty) if new, to be kept and updated directly.
    pub fn histogram_series(&self, name: &'static str, labels: &[(&str, &str)]) -> HistogramSeries {
        with_key(name, labels, |key| HistogramSeries(Arc::clone(&self.histograms.entry(key.into()).or_default())))
    }

    /// Records one observation of a duration.
    pub fn observe(&self, name: &'static str, labels: &[(&str, &str)], value: Duration) {
        with_key(name, labels, |key| {
            if let Some(histogram) = self.histograms.get(key) {
                histogram.record(value);
                return;
            }
            self.histograms.entry(key.into()).or_default().record(value);
        });
    }

    /// A quantile (0 to 1) of a histogram series from its HDR histogram, to the microsecond; `None` while
    /// the series has no observation.
    pub fn quantile(&self, name: &'static str, labels: &[(&str, &str)], quantile: f64) -> Option<Duration> {
        with_key(name, labels, |key| {
            let histogram = self.histograms.get(key)?;
            let data = histogram.0.lock();
            (!data.hdr.is_empty()).then(|| Duration::from_micros(data.hdr.value_at_quantile(quantile)))
        })
    }

    /// The current value of a counter (for tests and reports).
    pub fn counter(&self, name: &'static str, labels: &[(&str, &str)]) -> u64 {
        with_key(name, labels, |key| self.counters.get(key).map_or(0, |c| c.load(Ordering::Relaxed)))
    }

    /// Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        for &(name, kind, help) in HELP {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if kind == "counter" {
                let mut rows: Vec<(String, u64)> = self
                    .counters
                    .iter()
                    .filter_map(|e| Some((labels_of(e.key(), name)?.to_owned(), e.value().load(Ordering::Relaxed))))
                    .collect();
                rows.sort();
                for (labels, value) in rows {
                    let _ = writeln!(out, "{name}{labels} {value}");
                }
            } else {
                self.render_histograms(&mut out, name);
            }
        }
        let in_flight = self.auctions_in_flight.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP gavel_auctions_in_flight Auctions running now.\n# TYPE gavel_auctions_in_flight gauge\ngavel_auctions_in_flight {in_flight}"
        );
        let (inbound, outbound) =
            (self.inbound_exchanges.load(Ordering::Relaxed), self.outbound_exchanges.load(Ordering::Relaxed));
        let _ = writeln!(
            out,
            "# HELP gavel_exchanges_total HTTP exchanges: requests answered (inbound) and sent to buyers (outbound).\n\
             # TYPE gavel_exchanges_total counter\n\
             gavel_exchanges_total{{direction=\"inbound\"}} {inbound}\n\
             gavel_exchanges_total{{direction=\"outbound\"}} {outbound}"
        );
        out
    }

    /// The Prometheus histogram of every series of `name`, then its HDR quantiles as a summary family.
    fn render_histograms(&self, out: &mut String, name: &str) {
        // Copy each series out under its lock, so rendering never holds a lock an auction may want.
        let mut series: Vec<(String, Snapshot)> = self
            .histograms
            .iter()
            .filter_map(|e| Some((labels_of(e.key(), name)?.to_owned(), Snapshot::of(&e.value().0.lock()))))
            .collect();
        series.sort_by(|a, b| a.0.cmp(&b.0));
        for (labels, snapshot) in &series {
            let mut cumulative = 0;
            for (count, bound) in snapshot.buckets.iter().zip(BUCKETS) {
                cumulative += count;
                let le = format!("le=\"{bound}\"");
                let _ = writeln!(out, "{name}_bucket{} {cumulative}", merge_labels(labels, &le));
            }
            let count = snapshot.count;
            let _ = writeln!(out, "{name}_bucket{} {count}", merge_labels(labels, "le=\"+Inf\""));
            let _ = writeln!(out, "{name}_sum{labels} {}\n{name}_count{labels} {count}", snapshot.sum_seconds);
        }
        let hdr_name = hdr_name(name);
        let _ = writeln!(
            out,
            "# HELP {hdr_name} HDR quantiles of {name} (microsecond resolution).\n# TYPE {hdr_name} summary"
        );
        for (labels, snapshot) in &series {
            for (value, (_, label)) in snapshot.quantiles.iter().zip(QUANTILES) {
                let quantile = format!("quantile=\"{label}\"");
                let _ = writeln!(out, "{hdr_name}{} {value}", merge_labels(labels, &quantile));
            }
            let _ = writeln!(
                out,
                "{hdr_name}_sum{labels} {}\n{hdr_name}_count{labels} {}",
                snapshot.sum_seconds, snapshot.count
            );
        }
    }
}

/// A histogram series copied out for rendering.
struct Snapshot {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
    /// Seconds, in the order of [`QUANTILES`].
    quantiles: [f64; QUANTILES.len()],
}

impl Snapshot {
    fn of(data: &HistogramData) -> Snapshot {
        let quantiles = QUANTILES.map(|(q, _)| data.hdr.value_at_quantile(q) as f64 / 1e6);
        let count = data.buckets.iter().sum::<u64>() + data.overflow;
        Snapshot { buckets: data.buckets, count, sum_seconds: data.sum_nanos as f64 / 1e9, quantiles }
    }
}

/// `gavel_auction_seconds` → `gavel_auction_hdr_seconds`: the summary family of a histogram's quantiles.
fn hdr_name(name: &str) -> String {
    match name.strip_suffix("_seconds") {
        Some(base) => format!("{base}_hdr_seconds"),
        None => format!("{name}_hdr"),
    }
}

/// Appends `{a="x",b="y"}` to `out`, with values escaped as the exposition format requires; nothing for no
/// labels.
fn render_labels(out: &mut String, labels: &[(&str, &str)]) {
    if labels.is_empty() {
        return;
    }
    out.push('{');
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(key);
        out.push_str("=\"");
        // Label values are ids and outcome names: almost never anything to escape, so copied whole.
        if value.bytes().any(|b| matches!(b, b'\\' | b'"' | b'\n')) {
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
        } else {
            out.push_str(value);
        }
        out.push('"');
    }
    out.push('}');
}

fn merge_labels(labels: &str, extra: &str) -> String {
    match labels.strip_suffix('}') {
        Some(open) => format!("{open},{extra}}}"),
        None => format!("{{{extra}}}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_render_in_exposition_format() {
        let m = Metrics::default();
        m.inc("gavel_buyer_responses_total", &[("buyer", "acme"), ("outcome", "bid")]);
        m.add("gavel_buyer_responses_total", &[("buyer", "acme"), ("outcome", "bid")], 2);
        m.inc("gavel_pings_total", &[("campaign", "a\"b"), ("status", "bid")]);
        m.observe("gavel_auction_seconds", &[("campaign", "auto")], Duration::from_millis(3));
        let text = m.render();
        assert!(text.contains("gavel_buyer_responses_total{buyer=\"acme\",outcome=\"bid\"} 3"), "{text}");
        assert!(text.contains("gavel_pings_total{campaign=\"a\\\"b\",status=\"bid\"} 1"), "{text}");
        assert!(text.contains("gavel_auction_seconds_bucket{campaign=\"auto\",le=\"0.0025\"} 0"), "{text}");
        assert!(text.contains("gavel_auction_seconds_bucket{campaign=\"auto\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("gavel_auction_seconds_count{campaign=\"auto\"} 1"), "{text}");
        assert!(text.contains("# TYPE gavel_auctions_in_flight gauge"));
        assert_eq!(m.counter("gavel_buyer_responses_total", &[("buyer", "acme"), ("outcome", "bid")]), 3);
    }

    #[test]
    fn a_buyers_kept_series_are_the_ones_looked_up_by_name() {
        let m = Metrics::default();
        let series = BuyerSeries::new("ac\"me");
        assert!(!m.render().contains("buyer=\"ac"), "nothing appears before the first update");
        series.responded(&m, "bid");
        series.responded(&m, "bid");
        m.inc("gavel_buyer_responses_total", &[("buyer", "ac\"me"), ("outcome", "bid")]);
        series.responded(&m, "timeout");
        series.responded(&m, "something_new");
        for latency in [3, 7] {
            series.ping_answered(&m, Duration::from_millis(latency));
        }
        m.observe("gavel_buyer_ping_seconds", &[("buyer", "ac\"me")], Duration::from_millis(2));
        let counter = |outcome| m.counter("gavel_buyer_responses_total", &[("buyer", "ac\"me"), ("outcome", outcome)]);
        assert_eq!((counter("bid"), counter("timeout"), counter("something_new"), counter("error")), (3, 1, 1, 0));
        let text = m.render();
        assert!(text.contains("gavel_buyer_ping_seconds_count{buyer=\"ac\\\"me\"} 3"), "{text}");
        assert!(!text.contains("outcome=\"error\""), "a series appears once it has something to say: {text}");
    }

    #[test]
    fn a_campaigns_kept_series_survive_a_reload_and_are_the_ones_looked_up_by_name() {
        let m = Metrics::default();
        let (before_reload, after_reload) = (CampaignSeries::new("auto"), CampaignSeries::new("auto"));
        assert!(!m.render().contains("campaign=\"auto\""), "nothing appears before the first answer");
        before_reload.answered(&m, true, Duration::from_millis(3), Duration::from_micros(40));
        after_reload.answered(&m, true, Duration::from_millis(4), Duration::from_micros(60));
        after_reload.answered(&m, false, Duration::from_millis(1), Duration::from_micros(50));
        m.inc("gavel_pings_total", &[("campaign", "auto"), ("status", "bid")]);
        let pings = |status| m.counter("gavel_pings_total", &[("campaign", "auto"), ("status", status)]);
        assert_eq!((pings("bid"), pings("no_bid")), (3, 1));
        let text = m.render();
        assert!(text.contains("gavel_auction_seconds_count{campaign=\"auto\"} 3"), "{text}");
        assert!(text.contains("gavel_engine_overhead_seconds_count{campaign=\"auto\"} 3"), "{text}");
        assert!(text.contains("gavel_auction_seconds_bucket{campaign=\"auto\",le=\"0.001\"} 1"), "{text}");
    }

    #[test]
    fn histograms_export_hdr_quantiles_as_a_summary() {
        let m = Metrics::default();
        // 1..=1000 µs: p50 is 500 µs, p99 990 µs, and the largest value is exact at 3 significant digits.
        for micros in 1..=1000 {
            m.observe("gavel_buyer_ping_seconds", &[("buyer", "acme")], Duration::from_micros(micros));
        }
        let p = |q| m.quantile("gavel_buyer_ping_seconds", &[("buyer", "acme")], q).unwrap().as_micros();
        assert_eq!((p(0.5), p(0.9), p(0.99), p(0.999), p(1.0)), (500, 900, 990, 999, 1000));
        assert_eq!(m.quantile("gavel_buyer_ping_seconds", &[("buyer", "other")], 0.5), None);

        let text = m.render();
        assert!(text.contains("# TYPE gavel_buyer_ping_hdr_seconds summary"), "{text}");
        assert!(text.contains("gavel_buyer_ping_hdr_seconds{buyer=\"acme\",quantile=\"0.5\"} 0.0005\n"), "{text}");
        assert!(text.contains("gavel_buyer_ping_hdr_seconds{buyer=\"acme\",quantile=\"0.99\"} 0.00099\n"), "{text}");
        assert!(text.contains("gavel_buyer_ping_hdr_seconds_count{buyer=\"acme\"} 1000"), "{text}");
        // The Prometheus buckets stay cumulative: 100 observations at or below 100 µs, all at or below 1 ms.
        assert!(text.contains("gavel_buyer_ping_seconds_bucket{buyer=\"acme\",le=\"0.0001\"} 100\n"), "{text}");
        assert!(text.contains("gavel_buyer_ping_seconds_bucket{buyer=\"acme\",le=\"0.001\"} 1000\n"), "{text}");
        assert!(text.contains("gavel_buyer_ping_seconds_bucket{buyer=\"acme\",le=\"+Inf\"} 1000\n"), "{text}");
    }

    #[test]
    fn families_without_series_still_declare_themselves() {
        let text = Metrics::default().render();
        for family in [
            "# TYPE gavel_journal_commit_seconds histogram",
            "# TYPE gavel_journal_commit_hdr_seconds summary",
            "# TYPE gavel_engine_overhead_seconds histogram",
            "# TYPE gavel_auction_hdr_seconds summary",
            "gavel_exchanges_total{direction=\"inbound\"} 0",
        ] {
            assert!(text.contains(family), "{family} missing from\n{text}");
        }
    }

    #[test]
    fn a_series_without_labels_renders_under_its_own_name_only() {
        let m = Metrics::default();
        m.inc("gavel_redis_rebuilds_total", &[]);
        m.inc("gavel_sales_total", &[("campaign", "auto")]);
        assert_eq!(m.counter("gavel_redis_rebuilds_total", &[]), 1);
        let text = m.render();
        assert!(text.contains("\ngavel_redis_rebuilds_total 1\n"), "{text}");
        assert!(text.contains("\ngavel_sales_total{campaign=\"auto\"} 1\n"), "{text}");
        assert_eq!(text.matches(" 1\n").count(), 2, "{text}");
    }

    #[test]
    fn observations_past_the_last_bucket_count_only_in_inf() {
        let m = Metrics::default();
        m.observe("gavel_auction_seconds", &[], Duration::from_secs(20));
        let text = m.render();
        assert!(text.contains("gavel_auction_seconds_bucket{le=\"10\"} 0\n"), "{text}");
        assert!(text.contains("gavel_auction_seconds_bucket{le=\"+Inf\"} 1\n"), "{text}");
        assert!(text.contains("gavel_auction_seconds_count 1\n"), "{text}");
    }
}
