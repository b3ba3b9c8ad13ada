//! Driving load: the open-loop schedule (the wrk2 method) and the closed-loop saturation used for
//! throughput, with the HDR histograms every latency goes into.
//!
//! Open loop: request `i` is due at `start + i / rate`, whether or not earlier ones were answered, and its
//! latency runs from that due time. A stalled server therefore shows up as latency in every request that
//! was due during the stall, instead of quietly lowering the rate (coordinated omission).
//!
//! The schedule is kept by a plain thread sleeping to each due time (the OS sleeps to within ~60 µs; tokio's
//! timer wheel only to the millisecond, which would add ~0.5 ms to every figure). It hands each due request
//! to the generator's runtime; how late that hand-off was is recorded too (`send lag`).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::progress::{Counts, Show};

/// Most requests in flight at once; past it, due requests are dropped and counted as errors, so a dead
/// server cannot make the generator grow without bound.
pub const MAX_IN_FLIGHT: usize = 20_000;

/// Largest latency tracked, in microseconds (one hour); larger ones are clamped.
const MAX_MICROS: u64 = 3_600_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("constant bounds are valid")
}

/// Records a duration into a microsecond histogram (sub-microsecond values count as 1 µs).
pub fn record(histogram: &mut Histogram<u64>, value: Duration) {
    let micros = u64::try_from(value.as_micros()).unwrap_or(u64::MAX).clamp(1, MAX_MICROS);
    histogram.saturating_record(micros);
}

/// What one kind of request saw in one phase.
#[derive(Clone)]
pub struct OpStats {
    /// Latencies of the answered requests, from their scheduled send time.
    pub latency: Histogram<u64>,
    /// Requests answered with a 2xx status.
    pub ok: u64,
    /// Requests that failed: refused, timed out, non-2xx, or dropped by the generator.
    pub errors: u64,
    /// Counts by outcome (`bid`, `no_bid`, `sold`, …, or the error's kind).
    pub outcomes: BTreeMap<String, u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats { latency: histogram(), ok: 0, errors: 0, outcomes: BTreeMap::new() }
    }
}

impl OpStats {
    /// Adds another phase's figures (rounds of the same kind are merged for the ratios).
    pub fn merge(&mut self, other: &OpStats) {
        let _ = self.latency.add(&other.latency);
        self.ok += other.ok;
        self.errors += other.errors;
        for (outcome, count) in &other.outcomes {
            *self.outcomes.entry(outcome.clone()).or_default() += count;
        }
    }
}

/// Collects every request's result during one phase. Shared by the request tasks; each record is one short
/// lock, small next to the loopback round trip being measured.
pub struct Recorder {
    inner: Mutex<RecorderData>,
}

struct RecorderData {
    ops: BTreeMap<&'static str, OpStats>,
    send_lag: Histogram<u64>,
    last_done: Option<Instant>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder { inner: Mutex::new(RecorderData { ops: BTreeMap::new(), send_lag: histogram(), last_done: None }) }
    }
}

/// A running phase at a glance, for the progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Glance {
    /// First requests answered (every kind but the post that follows a ping).
    pub answered: u64,
    pub errors: u64,
    /// Quantiles of the kind with the most answers so far.
    pub p50_us: Option<u64>,
    pub p99_us: Option<u64>,
}

/// What a finished phase hands to the report.
pub struct PhaseResult {
    pub ops: BTreeMap<&'static str, OpStats>,
    /// How late the schedule handed requests to the generator.
    pub send_lag: Histogram<u64>,
    /// From the first due time to the last answer.
    pub span: Duration,
    /// Requests scheduled.
    pub scheduled: u64,
}

impl Recorder {
    /// An answered request of kind `op` and its outcome.
    pub fn ok(&self, op: &'static str, latency: Duration, outcome: &str) {
        let mut data = self.inner.lock();
        let stats = data.ops.entry(op).or_default();
        record(&mut stats.latency, latency);
        stats.ok += 1;
        bump(&mut stats.outcomes, outcome);
        data.last_done = Some(Instant::now());
    }

    /// A failed request of kind `op`.
    pub fn error(&self, op: &'static str, kind: &str) {
        let mut data = self.inner.lock();
        let stats = data.ops.entry(op).or_default();
        stats.errors += 1;
        bump(&mut stats.outcomes, kind);
        data.last_done = Some(Instant::now());
    }

    /// Counts an outcome without a latency (e.g. one buyer leg of a fan-out).
    pub fn outcome(&self, op: &'static str, outcome: &str) {
        bump(&mut self.inner.lock().ops.entry(op).or_default().outcomes, outcome);
    }

    /// The phase so far; reads the quantiles under the lock (a scan of the histogram's counts, a few µs).
    pub fn glance(&self) -> Glance {
        let data = self.inner.lock();
        let first = data.ops.iter().filter(|(op, _)| **op != "post");
        let (answered, errors) = first.clone().fold((0, 0), |(ok, err), (_, s)| (ok + s.ok, err + s.errors));
        let busiest = first.map(|(_, s)| s).filter(|s| !s.latency.is_empty()).max_by_key(|s| s.latency.len());
        Glance {
            answered,
            errors,
            p50_us: busiest.map(|s| s.latency.value_at_quantile(0.5)),
            p99_us: busiest.map(|s| s.latency.value_at_quantile(0.99)),
        }
    }

    fn lag(&self, lag: Duration) {
        record(&mut self.inner.lock().send_lag, lag);
    }

    fn finish(self, start: Instant, scheduled: u64) -> PhaseResult {
        let data = self.inner.into_inner();
        let span = data.last_done.map_or(Duration::ZERO, |done| done.saturating_duration_since(start));
        PhaseResult { ops: data.ops, send_lag: data.send_lag, span, scheduled }
    }
}

fn bump(outcomes: &mut BTreeMap<String, u64>, outcome: &str) {
    match outcomes.get_mut(outcome) {
        Some(count) => *count += 1,
        None => {
            outcomes.insert(outcome.to_owned(), 1);
        }
    }
}

/// Sends `requests` requests at `rate` per second on a fixed schedule. `make(i, due, recorder)` is request
/// `i`; it records its own result. Returns once every request has finished (each bounds its own time).
/// The phase is on show in the progress display while it runs.
pub async fn open_loop<F, Fut>(rate: f64, requests: u64, show: Show<'_>, make: F) -> PhaseResult
where
    F: Fn(u64, Instant, Arc<Recorder>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let recorder = Arc::new(Recorder::default());
    let (due_tx, mut due_rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    // A little head start so the schedule does not begin behind.
    let start = Instant::now() + Duration::from_millis(2);
    let interval_nanos = 1e9 / rate;
    show.open(Duration::from_secs_f64(requests as f64 / rate), &recorder);
    let ticker = std::thread::Builder::new()
        .name("loadtest-schedule".into())
        .spawn(move || {
            for i in 0..requests {
                let due = start + Duration::from_nanos((i as f64 * interval_nanos) as u64);
                let now = Instant::now();
                if due > now {
                    std::thread::sleep(due - now);
                }
                if due_tx.send((i, due)).is_err() {
                    break;
                }
            }
        })
        .expect("the schedule thread starts");
    let mut tasks = JoinSet::new();
    while let Some((i, due)) = due_rx.recv().await {
        recorder.lag(due.elapsed());
        while tasks.try_join_next().is_some() {}
        if tasks.len() >= MAX_IN_FLIGHT {
            recorder.error("dropped", "generator_overload");
            continue;
        }
        tasks.spawn(make(i, due, Arc::clone(&recorder)));
    }
    while tasks.join_next().await.is_some() {}
    let _ = ticker.join();
    show.end();
    let recorder = Arc::try_unwrap(recorder).unwrap_or_else(|_| unreachable!("every request task has ended"));
    recorder.finish(start, requests)
}

/// What a closed-loop run achieved.
#[derive(Debug, Clone, Copy)]
pub struct Saturation {
    /// Requests answered with success.
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
}

/// Keeps `concurrency` requests in flight for `duration`: the most the server can answer, for throughput.
/// `make()` sends one request and says whether it succeeded.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, show: Show<'_>, make: F) -> Saturation
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let make = Arc::new(make);
    let counts = Arc::new(Counts::default());
    let start = Instant::now();
    let end = start + duration;
    show.closed(duration, &counts);
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let (make, counts) = (Arc::clone(&make), Arc::clone(&counts));
        workers.spawn(async move {
            while Instant::now() < end {
                let counter = if make().await { &counts.ok } else { &counts.errors };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    while workers.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    show.end();
    Saturation { ok: counts.ok.load(Ordering::Relaxed), errors: counts.errors.load(Ordering::Relaxed), elapsed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::Progress;

    #[tokio::test]
    async fn the_open_loop_sends_every_request_and_times_it_from_its_due_time() {
        let progress = Progress::off();
        let result = open_loop(500.0, 50, progress.phase("t"), |i, due, recorder| async move {
            // A server that stalls on one request must not delay the ones due after it.
            if i == 10 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            recorder.ok("op", due.elapsed(), "fine");
        })
        .await;
        let stats = &result.ops["op"];
        assert_eq!((stats.ok, stats.errors, result.scheduled), (50, 0, 50));
        assert_eq!(stats.outcomes["fine"], 50);
        assert!(stats.latency.max() >= 50_000, "the stalled request shows its stall");
        // 50 requests 2 ms apart take ~100 ms even though one took 50 ms: nobody waited for it.
        assert!(result.span >= Duration::from_millis(95), "{:?}", result.span);
        assert!(stats.latency.value_at_quantile(0.5) < stats.latency.max());
    }

    #[tokio::test]
    async fn the_closed_loop_keeps_its_concurrency_for_its_duration() {
        let progress = Progress::off();
        let saturation = closed_loop(4, Duration::from_millis(50), progress.phase("t"), || async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            true
        })
        .await;
        assert_eq!(saturation.errors, 0);
        // Each worker sends at least once and at most once per 5 ms sleep: a count check, not a speed figure.
        assert!((4..=44).contains(&saturation.ok), "{saturation:?}");
        assert!(saturation.elapsed >= Duration::from_millis(50));
    }

    #[test]
    fn merged_stats_add_up() {
        let mut a = OpStats::default();
        let mut b = OpStats::default();
        record(&mut a.latency, Duration::from_micros(100));
        a.ok = 1;
        record(&mut b.latency, Duration::from_micros(300));
        b.ok = 1;
        b.errors = 2;
        b.outcomes.insert("timeout".into(), 2);
        a.merge(&b);
        assert_eq!((a.ok, a.errors, a.latency.len(), a.outcomes["timeout"]), (2, 2, 2, 2));
        assert_eq!(a.latency.max(), 300);
    }
}
