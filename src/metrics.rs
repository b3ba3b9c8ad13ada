//! Metrics: counters, gauges and histograms, rendered as Prometheus text for `GET /metrics`.
//!
//! Series are created on first use and live for the life of the process. Updates are atomic adds on an
//! existing series; only the first update of a new label set takes the map's write lock.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

/// Upper bounds (seconds) of histogram buckets: fine below a millisecond, where engine overhead lives, and
/// out to five seconds, the longest deadline.
const BUCKETS: [f64; 16] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// A series key: metric name and its rendered label set (`{buyer="acme"}`).
type SeriesKey = (&'static str, String);

/// Every metric of the process.
#[derive(Default)]
pub struct Metrics {
    counters: DashMap<SeriesKey, AtomicU64>,
    histograms: DashMap<SeriesKey, Histogram>,
    /// Auctions between receipt of the ping and the answer to the seller.
    pub auctions_in_flight: AtomicI64,
}

#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

/// What a metric is, for the `# HELP` / `# TYPE` lines.
const HELP: &[(&str, &str, &str)] = &[
    ("gavel_pings_total", "counter", "Seller pings answered, by campaign and status."),
    ("gavel_buyer_responses_total", "counter", "Buyer ping outcomes, by buyer and outcome."),
    ("gavel_buyer_exclusions_total", "counter", "Buyers not pinged, by buyer and the gate that excluded them."),
    ("gavel_posts_total", "counter", "Post attempts to buyers, by buyer and outcome."),
    ("gavel_sales_total", "counter", "Leads sold, by campaign."),
    ("gavel_late_answers_total", "counter", "Buyer answers dropped because they arrived after the buyer's time."),
    ("gavel_http_requests_total", "counter", "HTTP requests answered, by route and status."),
    ("gavel_auction_seconds", "histogram", "Time from a ping's arrival to its answer, by campaign."),
    ("gavel_buyer_ping_seconds", "histogram", "Round trip of one buyer ping, by buyer."),
    ("gavel_buyer_post_seconds", "histogram", "Round trip of one buyer post attempt, by buyer."),
];

impl Metrics {
    /// Adds one to a counter.
    pub fn inc(&self, name: &'static str, labels: &[(&str, &str)]) {
        self.add(name, labels, 1);
    }

    /// Adds `n` to a counter.
    pub fn add(&self, name: &'static str, labels: &[(&str, &str)], n: u64) {
        let key = (name, render_labels(labels));
        if let Some(counter) = self.counters.get(&key) {
            counter.fetch_add(n, Ordering::Relaxed);
            return;
        }
        self.counters.entry(key).or_default().fetch_add(n, Ordering::Relaxed);
    }

    /// Records one observation of a duration.
    pub fn observe(&self, name: &'static str, labels: &[(&str, &str)], value: Duration) {
        let key = (name, render_labels(labels));
        let record = |h: &Histogram| {
            let seconds = value.as_secs_f64();
            for (bucket, bound) in h.buckets.iter().zip(BUCKETS) {
                if seconds <= bound {
                    bucket.fetch_add(1, Ordering::Relaxed);
                }
            }
            h.count.fetch_add(1, Ordering::Relaxed);
            h.sum_nanos.fetch_add(u64::try_from(value.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
        };
        if let Some(histogram) = self.histograms.get(&key) {
            record(&histogram);
            return;
        }
        record(&self.histograms.entry(key).or_default());
    }

    /// The current value of a counter (for tests and reports).
    pub fn counter(&self, name: &'static str, labels: &[(&str, &str)]) -> u64 {
        self.counters.get(&(name, render_labels(labels))).map_or(0, |c| c.load(Ordering::Relaxed))
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
                    .filter(|e| e.key().0 == name)
                    .map(|e| (e.key().1.clone(), e.value().load(Ordering::Relaxed)))
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
        out
    }

    fn render_histograms(&self, out: &mut String, name: &str) {
        let mut series: Vec<_> = self.histograms.iter().filter(|e| e.key().0 == name).collect();
        series.sort_by(|a, b| a.key().1.cmp(&b.key().1));
        for entry in series {
            let labels = &entry.key().1;
            let h = entry.value();
            for (bucket, bound) in h.buckets.iter().zip(BUCKETS) {
                let le = format!("le=\"{bound}\"");
                let _ = writeln!(out, "{name}_bucket{} {}", merge_labels(labels, &le), bucket.load(Ordering::Relaxed));
            }
            let count = h.count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{} {count}", merge_labels(labels, "le=\"+Inf\""));
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{labels} {sum}\n{name}_count{labels} {count}");
        }
    }
}

/// `{a="x",b="y"}`, with values escaped as the exposition format requires; empty for no labels.
fn render_labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (key, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{key}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
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
}
