//! Buyer health: per-buyer SLA figures over a sliding window, and the circuit breaker that stops pinging a
//! buyer that breaches them.
//!
//! A buyer that times out or fails takes a slot in every auction it is in and gives nothing back, so once its
//! recent record breaches `[buyers.sla]` it is paused for a cooldown (`sla_paused`), then sent only a share of
//! its eligible pings (`probing`) until fresh evidence calls it healthy (`active`) or breaches again
//! (DESIGN.md, part "health").
//!
//! One [`BuyerHealth`] is shared by every concurrent auction of its buyer, so recording is O(1) under a short
//! lock: fixed ring buffers sized by `sla.window` with running counts, no allocation once warm. The caller
//! passes `now` and the random draw, so the breaker is deterministic and tests drive it with plain instants.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, MutexGuard};
use serde::Serialize;
use tokio::time::Instant;

use crate::config::Sla;

/// Where a buyer's circuit breaker stands; `as_str()` is the operator API's `state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Healthy: pinged whenever the other gates allow.
    Active,
    /// Breached a threshold: not pinged until the cooldown ends.
    SlaPaused,
    /// Cooldown over: pinged for a share of its leads until fresh evidence decides.
    Probing,
}

impl BreakerState {
    /// The state as the contract writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Active => "active",
            BreakerState::SlaPaused => "sla_paused",
            BreakerState::Probing => "probing",
        }
    }
}

/// The SLA figure that tripped the breaker; `as_str()` is the operator API's `state_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breach {
    TimeoutRate,
    ErrorRate,
    AcceptanceRate,
}

impl Breach {
    /// The figure as the contract writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Breach::TimeoutRate => "timeout_rate",
            Breach::ErrorRate => "error_rate",
            Breach::AcceptanceRate => "acceptance_rate",
        }
    }
}

/// The breaker's answer for one ping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Ping as usual.
    Pass,
    /// Ping as part of the probing share.
    Probe,
    /// Do not ping; the gate's audit detail is `sla_paused`.
    Excluded,
}

/// The outcome of one ping as health counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PingSample {
    /// A bid or a no-bid, with the time it took.
    Answered { latency: Duration },
    /// Any buyer error (bad body, 5xx, connection refused, …), with the time it took.
    Error { latency: Duration },
    /// No answer in the buyer's time; a timeout has no latency.
    Timeout,
}

impl PingSample {
    fn latency(self) -> Option<Duration> {
        match self {
            PingSample::Answered { latency } | PingSample::Error { latency } => Some(latency),
            PingSample::Timeout => None,
        }
    }
}

/// A buyer's health: the operator API's `health` object, plus the breaker state behind `state`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthView {
    /// Ping samples in the window.
    pub samples: u32,
    /// Share of the window's pings that timed out (0 when empty).
    pub timeout_rate: f64,
    /// Share of the window's pings that failed (0 when empty).
    pub error_rate: f64,
    /// Share of the window's posts that were accepted; `None` when there are none.
    pub acceptance_rate: Option<f64>,
    /// Latency quantiles of answered and failed pings, in ms; `None` when there are none.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// The breaker state (the buyer object's `state`, when no other pause applies).
    #[serde(skip)]
    pub state: BreakerState,
    /// The figure that tripped the breaker (the buyer object's `state_reason`); `None` when active.
    #[serde(skip)]
    pub breach: Option<Breach>,
}

/// One buyer's SLA windows and circuit breaker, shared by all of its concurrent auctions.
#[derive(Debug, Default)]
pub struct BuyerHealth {
    inner: Mutex<Inner>,
    /// Whether the breaker is anything but active, mirrored out of the lock on every unlock: a healthy buyer
    /// is admitted with one atomic load, without queueing behind the auctions recording its answers.
    tripped: AtomicBool,
}

/// The locked state; unlocking mirrors the breaker into `tripped`.
struct Locked<'a> {
    inner: MutexGuard<'a, Inner>,
    tripped: &'a AtomicBool,
}

impl Deref for Locked<'_> {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        self.tripped.store(!matches!(self.inner.breaker, Breaker::Active), Ordering::Release);
    }
}

impl BuyerHealth {
    /// A buyer with no history, active.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Locked<'_> {
        Locked { inner: self.inner.lock(), tripped: &self.tripped }
    }

    /// Whether this buyer may be pinged now. `draw` is a uniform random number in [0, 1) supplied by the
    /// caller (keeps this deterministic in tests): while probing, the ping goes through when draw < probe_share.
    pub fn admit(&self, sla: &Sla, now: Instant, draw: f64) -> Admission {
        if !sla.enabled || !self.tripped.load(Ordering::Acquire) {
            return Admission::Pass;
        }
        let mut inner = self.lock();
        inner.catch_up(sla, now);
        match inner.breaker {
            Breaker::Active => Admission::Pass,
            Breaker::SlaPaused { .. } => Admission::Excluded,
            Breaker::Probing { .. } if draw < sla.probe_share => Admission::Probe,
            Breaker::Probing { .. } => Admission::Excluded,
        }
    }

    /// Counts one ping's outcome, and moves the breaker if the window now says so.
    pub fn record_ping(&self, sla: &Sla, sample: PingSample, now: Instant) {
        self.record(sla, now, |inner| inner.pings.push(sample));
    }

    /// Counts one post's outcome (`accepted` or not), and moves the breaker if the window now says so.
    pub fn record_post(&self, sla: &Sla, accepted: bool, now: Instant) {
        self.record(sla, now, |inner| inner.posts.push(accepted));
    }

    /// The breaker state at `now` (an elapsed cooldown reads as Probing) and the breach that caused it.
    pub fn state(&self, sla: &Sla, now: Instant) -> (BreakerState, Option<Breach>) {
        let mut inner = self.lock();
        inner.catch_up(sla, now);
        inner.breaker.public()
    }

    /// The figures of the window and the breaker state at `now`, for the operator API.
    pub fn view(&self, sla: &Sla, now: Instant) -> HealthView {
        let (mut view, mut latencies) = {
            let mut inner = self.lock();
            inner.catch_up(sla, now);
            let (state, breach) = inner.breaker.public();
            let view = HealthView {
                samples: inner.pings.len(),
                timeout_rate: share(inner.pings.timeouts, inner.pings.len()),
                error_rate: share(inner.pings.errors, inner.pings.len()),
                acceptance_rate: inner.posts.acceptance_rate(),
                p50_ms: None,
                p95_ms: None,
                p99_ms: None,
                state,
                breach,
            };
            (view, inner.pings.latencies_us())
        };
        // Sorted outside the lock: recording auctions need not wait for an operator's page.
        latencies.sort_unstable();
        view.p50_ms = nearest_rank_ms(&latencies, 50);
        view.p95_ms = nearest_rank_ms(&latencies, 95);
        view.p99_ms = nearest_rank_ms(&latencies, 99);
        view
    }

    /// Clears an SLA pause or probe (the operator's resume): the buyer is active again with empty windows, so
    /// the evidence that tripped the breaker does not trip it again at the next sample. An active buyer keeps
    /// its windows.
    pub fn resume(&self) {
        let mut inner = self.lock();
        if !matches!(inner.breaker, Breaker::Active) {
            inner.breaker = Breaker::Active;
            inner.clear_windows();
        }
    }

    fn record(&self, sla: &Sla, now: Instant, push: impl FnOnce(&mut Inner)) {
        let mut inner = self.lock();
        inner.catch_up(sla, now);
        // Answers to pings sent before the trip arrive while paused: they are not evidence of recovery, and
        // entering probing clears the windows anyway.
        if matches!(inner.breaker, Breaker::SlaPaused { .. }) {
            return;
        }
        push(&mut inner);
        if sla.enabled {
            inner.judge(sla, now);
        }
    }
}

// === The breaker ===

#[derive(Debug, Default)]
struct Inner {
    pings: PingWindow,
    posts: PostWindow,
    breaker: Breaker,
}

#[derive(Debug, Clone, Copy, Default)]
enum Breaker {
    #[default]
    Active,
    SlaPaused {
        until: Instant,
        breach: Breach,
    },
    Probing {
        breach: Breach,
    },
}

impl Breaker {
    fn public(self) -> (BreakerState, Option<Breach>) {
        match self {
            Breaker::Active => (BreakerState::Active, None),
            Breaker::SlaPaused { breach, .. } => (BreakerState::SlaPaused, Some(breach)),
            Breaker::Probing { breach } => (BreakerState::Probing, Some(breach)),
        }
    }
}

impl Inner {
    /// Brings the windows up to the current settings and the breaker up to `now`. Transitions happen here,
    /// lazily, so no timer task is needed per buyer.
    fn catch_up(&mut self, sla: &Sla, now: Instant) {
        let window = sla.window as usize;
        self.pings.resize(window);
        self.posts.resize(window);
        if !sla.enabled {
            self.breaker = Breaker::Active;
            return;
        }
        if let Breaker::SlaPaused { until, breach } = self.breaker {
            if now >= until {
                // Probing judges fresh evidence only: the window that tripped would trip it again at once.
                self.breaker = Breaker::Probing { breach };
                self.clear_windows();
            }
        }
    }

    /// After a sample: an active or probing buyer that breaches is paused; a probing buyer with enough fresh
    /// evidence and no breach is active again.
    fn judge(&mut self, sla: &Sla, now: Instant) {
        self.breaker = match (self.breaker, self.breach(sla)) {
            (Breaker::SlaPaused { .. }, _) => return,
            (_, Some(breach)) => Breaker::SlaPaused { until: cooldown_end(sla, now), breach },
            (Breaker::Probing { breach }, None) if self.probe_settled(sla, breach) => Breaker::Active,
            (unchanged, None) => unchanged,
        };
    }

    /// The first threshold the windows breach, if any. Each figure is judged only on at least `min_samples`
    /// of its own samples; a rate equal to its limit is healthy.
    fn breach(&self, sla: &Sla) -> Option<Breach> {
        let pings = self.pings.len();
        if pings >= sla.min_samples {
            if share(self.pings.timeouts, pings) > sla.max_timeout_rate {
                return Some(Breach::TimeoutRate);
            }
            if share(self.pings.errors, pings) > sla.max_error_rate {
                return Some(Breach::ErrorRate);
            }
        }
        let acceptance = self.posts.acceptance_rate()?;
        let judged = sla.min_acceptance_rate > 0.0 && self.posts.len() >= sla.min_samples;
        (judged && acceptance < sla.min_acceptance_rate).then_some(Breach::AcceptanceRate)
    }

    /// Whether probing has gathered `min_samples` of fresh evidence on the figure that tripped the breaker:
    /// posts for acceptance (a buyer paused for rejecting posts is not healthy just because it answers pings,
    /// and a fixed-price buyer has no pings), pings otherwise.
    fn probe_settled(&self, sla: &Sla, breach: Breach) -> bool {
        let evidence = match breach {
            Breach::AcceptanceRate => self.posts.len(),
            Breach::TimeoutRate | Breach::ErrorRate => self.pings.len(),
        };
        evidence >= sla.min_samples
    }

    fn clear_windows(&mut self) {
        self.pings.clear();
        self.posts.clear();
    }
}

fn cooldown_end(sla: &Sla, now: Instant) -> Instant {
    // Config bounds cooldown_s to u32::MAX seconds, which an Instant always holds; the cap keeps a hand-built
    // `Sla` from overflowing it.
    now + Duration::from_secs(sla.cooldown_s.min(u64::from(u32::MAX)))
}

// === Windows ===

/// The last `window` pings with running counts of timeouts and errors.
#[derive(Debug, Default)]
struct PingWindow {
    ring: Ring<PingSample>,
    timeouts: u32,
    errors: u32,
}

impl PingWindow {
    fn push(&mut self, sample: PingSample) {
        if let Some(count) = self.counter(sample) {
            *count += 1;
        }
        if let Some(evicted) = self.ring.push(sample) {
            if let Some(count) = self.counter(evicted) {
                *count -= 1;
            }
        }
    }

    /// The running count a sample belongs to; answers are the rest of the window and need none.
    fn counter(&mut self, sample: PingSample) -> Option<&mut u32> {
        match sample {
            PingSample::Timeout => Some(&mut self.timeouts),
            PingSample::Error { .. } => Some(&mut self.errors),
            PingSample::Answered { .. } => None,
        }
    }

    fn len(&self) -> u32 {
        self.ring.len()
    }

    fn resize(&mut self, window: usize) {
        if self.ring.resize(window) {
            let count = |kind: fn(&PingSample) -> bool| self.ring.iter().filter(kind).count() as u32;
            self.timeouts = count(|s| matches!(s, PingSample::Timeout));
            self.errors = count(|s| matches!(s, PingSample::Error { .. }));
        }
    }

    fn clear(&mut self) {
        self.ring.clear();
        self.timeouts = 0;
        self.errors = 0;
    }

    /// Latencies in whole microseconds: exact enough for ms with three decimals, and integers sort fast.
    fn latencies_us(&self) -> Vec<u64> {
        let micros = |latency: Duration| u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.ring.iter().filter_map(PingSample::latency).map(micros).collect()
    }
}

/// The last `window` posts with a running count of accepted ones.
#[derive(Debug, Default)]
struct PostWindow {
    ring: Ring<bool>,
    accepted: u32,
}

impl PostWindow {
    fn push(&mut self, accepted: bool) {
        self.accepted += u32::from(accepted);
        if let Some(evicted) = self.ring.push(accepted) {
            self.accepted -= u32::from(evicted);
        }
    }

    fn len(&self) -> u32 {
        self.ring.len()
    }

    fn acceptance_rate(&self) -> Option<f64> {
        (self.len() > 0).then(|| share(self.accepted, self.len()))
    }

    fn resize(&mut self, window: usize) {
        if self.ring.resize(window) {
            self.accepted = self.ring.iter().map(u32::from).sum();
        }
    }

    fn clear(&mut self) {
        self.ring.clear();
        self.accepted = 0;
    }
}

/// The most recent samples, up to a fixed capacity; a push past it evicts the oldest.
#[derive(Debug)]
struct Ring<T> {
    slots: Vec<T>,
    /// Where the oldest sample is once full (the next slot to overwrite); 0 while filling.
    next: usize,
    capacity: usize,
}

// Written out because the derive would demand `T: Default`, which a sample has no sensible value for.
impl<T> Default for Ring<T> {
    fn default() -> Self {
        Ring { slots: Vec::new(), next: 0, capacity: 0 }
    }
}

impl<T: Copy> Ring<T> {
    /// Adds a sample, returning the one it evicted. Never allocates: `slots` is reserved at `capacity`.
    fn push(&mut self, sample: T) -> Option<T> {
        if self.slots.len() < self.capacity {
            self.slots.push(sample);
            return None;
        }
        let Some(slot) = self.slots.get_mut(self.next) else { return Some(sample) };
        let evicted = std::mem::replace(slot, sample);
        self.next = (self.next + 1) % self.capacity;
        Some(evicted)
    }

    fn len(&self) -> u32 {
        // At most `capacity`, which came from a u32 window setting.
        self.slots.len() as u32
    }

    /// Oldest first.
    fn iter(&self) -> impl Iterator<Item = T> + '_ {
        let (newer, older) = self.slots.split_at(self.next);
        older.iter().chain(newer).copied()
    }

    /// Keeps the newest `capacity` samples, in order; returns whether anything changed. Allocates, so it runs
    /// only when the window setting changes (and once, on the first use).
    fn resize(&mut self, capacity: usize) -> bool {
        if capacity == self.capacity {
            return false;
        }
        let skip = self.slots.len().saturating_sub(capacity);
        let mut slots = Vec::with_capacity(capacity);
        slots.extend(self.iter().skip(skip));
        *self = Ring { slots, next: 0, capacity };
        true
    }

    fn clear(&mut self) {
        self.slots.clear();
        self.next = 0;
    }
}

/// `part / whole` as a share from 0 to 1; 0 for an empty window.
fn share(part: u32, whole: u32) -> f64 {
    if whole == 0 {
        0.0
    } else {
        f64::from(part) / f64::from(whole)
    }
}

/// The nearest-rank `percent` quantile of sorted microseconds, in ms. Integer ranks, so 95 % of 20 samples is
/// exactly the 19th and no float rounding moves it.
fn nearest_rank_ms(sorted_us: &[u64], percent: usize) -> Option<f64> {
    let n = sorted_us.len();
    let rank = (percent * n).div_ceil(100).clamp(1, n.max(1));
    sorted_us.get(rank - 1).map(|&us| us as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small SLA, so windows wrap and the breaker trips within a few samples.
    fn sla() -> Sla {
        Sla {
            enabled: true,
            window: 10,
            min_samples: 4,
            max_timeout_rate: 0.5,
            max_error_rate: 0.5,
            min_acceptance_rate: 0.0,
            cooldown_s: 30,
            probe_share: 0.25,
        }
    }

    /// An SLA that never trips, for tests of the figures alone.
    fn lenient() -> Sla {
        Sla { max_timeout_rate: 1.0, max_error_rate: 1.0, ..sla() }
    }

    fn ok(ms: u64) -> PingSample {
        PingSample::Answered { latency: Duration::from_millis(ms) }
    }

    fn err(ms: u64) -> PingSample {
        PingSample::Error { latency: Duration::from_millis(ms) }
    }

    const TIMEOUT: PingSample = PingSample::Timeout;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn pings(health: &BuyerHealth, sla: &Sla, samples: &[PingSample], now: Instant) {
        for &sample in samples {
            health.record_ping(sla, sample, now);
        }
    }

    fn posts(health: &BuyerHealth, sla: &Sla, accepted: &[bool], now: Instant) {
        for &a in accepted {
            health.record_post(sla, a, now);
        }
    }

    /// A buyer tripped on timeouts at `t0`, so paused until `t0 + 30 s`.
    fn tripped(sla: &Sla, t0: Instant) -> BuyerHealth {
        let health = BuyerHealth::new();
        pings(&health, sla, &[TIMEOUT; 4], t0);
        assert_eq!(health.state(sla, t0), (BreakerState::SlaPaused, Some(Breach::TimeoutRate)));
        health
    }

    #[test]
    fn names_are_the_contracts() {
        let states = [BreakerState::Active, BreakerState::SlaPaused, BreakerState::Probing].map(BreakerState::as_str);
        assert_eq!(states, ["active", "sla_paused", "probing"]);
        let breaches = [Breach::TimeoutRate, Breach::ErrorRate, Breach::AcceptanceRate].map(Breach::as_str);
        assert_eq!(breaches, ["timeout_rate", "error_rate", "acceptance_rate"]);
    }

    #[test]
    fn a_new_buyer_has_empty_figures_and_is_active() {
        let (sla, t0) = (sla(), Instant::now());
        let view = BuyerHealth::new().view(&sla, t0);
        let empty = HealthView {
            samples: 0,
            timeout_rate: 0.0,
            error_rate: 0.0,
            acceptance_rate: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            state: BreakerState::Active,
            breach: None,
        };
        assert_eq!(view, empty);
        let json = serde_json::to_value(&view).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"samples": 0, "timeout_rate": 0.0, "error_rate": 0.0, "acceptance_rate": null,
                "p50_ms": null, "p95_ms": null, "p99_ms": null})
        );
    }

    #[test]
    fn figures_cover_only_the_last_window_once_it_wraps() {
        let (sla, t0) = (lenient(), Instant::now());
        let health = BuyerHealth::new();
        // Five timeouts and three acceptances that the window of 10 evicts again.
        pings(&health, &sla, &[TIMEOUT; 5], t0);
        posts(&health, &sla, &[true; 3], t0);
        let sub_ms = PingSample::Answered { latency: Duration::from_micros(12_345) };
        let window = [ok(3), ok(1), sub_ms, ok(7), ok(2), ok(5), err(8), err(9), TIMEOUT, ok(4)];
        pings(&health, &sla, &window, t0);
        posts(&health, &sla, &[true, true, false, true, true, true, false, true, false, true], t0);

        let view = health.view(&sla, t0);
        assert_eq!(view.samples, 10);
        assert_eq!(view.timeout_rate, 0.1);
        assert_eq!(view.error_rate, 0.2);
        assert_eq!(view.acceptance_rate, Some(0.7));
        // The nine answered and failed pings, sorted: 1 2 3 4 5 7 8 9 12.345.
        assert_eq!((view.p50_ms, view.p95_ms, view.p99_ms), (Some(5.0), Some(12.345), Some(12.345)));

        pings(&health, &sla, &[TIMEOUT, TIMEOUT], t0); // evicts ok(3) and ok(1)
        let view = health.view(&sla, t0);
        assert_eq!((view.samples, view.timeout_rate, view.error_rate), (10, 0.3, 0.2));
        // Now 2 4 5 7 8 9 12.345.
        assert_eq!((view.p50_ms, view.p95_ms), (Some(7.0), Some(12.345)));
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let (sla, t0) = (Sla { window: 100, ..lenient() }, Instant::now());
        let health = BuyerHealth::new();
        // 1..=100 ms in a scrambled order; 37 is coprime with 100, so every value appears once.
        let samples: Vec<PingSample> = (0..100).map(|i| ok((i * 37) % 100 + 1)).collect();
        pings(&health, &sla, &samples, t0);
        let view = health.view(&sla, t0);
        assert_eq!((view.p50_ms, view.p95_ms, view.p99_ms), (Some(50.0), Some(95.0), Some(99.0)));

        let only_timeouts = BuyerHealth::new();
        pings(&only_timeouts, &sla, &[TIMEOUT; 3], t0);
        let view = only_timeouts.view(&sla, t0);
        assert_eq!((view.samples, view.p50_ms, view.p99_ms), (3, None, None));
        assert_eq!(nearest_rank_ms(&[7_000], 1), Some(7.0));
    }

    #[test]
    fn a_buyer_that_always_times_out_trips_at_min_samples_not_before() {
        let (sla, t0) = (sla(), Instant::now());
        let health = BuyerHealth::new();
        pings(&health, &sla, &[TIMEOUT; 3], t0);
        assert_eq!(health.state(&sla, t0), (BreakerState::Active, None));
        assert_eq!(health.admit(&sla, t0, 0.0), Admission::Pass);
        health.record_ping(&sla, TIMEOUT, t0);
        assert_eq!(health.state(&sla, t0), (BreakerState::SlaPaused, Some(Breach::TimeoutRate)));
        assert_eq!(health.admit(&sla, t0, 0.0), Admission::Excluded);
        let view = health.view(&sla, t0);
        assert_eq!((view.state, view.breach), (BreakerState::SlaPaused, Some(Breach::TimeoutRate)));
    }

    /// (name, change to `sla()`, pings, posts, expected state and breach)
    type Case = (&'static str, fn(&mut Sla), Vec<PingSample>, Vec<bool>, (BreakerState, Option<Breach>));

    #[test]
    fn the_breaker_trips_on_the_first_figure_strictly_past_its_limit() {
        let active = (BreakerState::Active, None);
        let paused = |breach| (BreakerState::SlaPaused, Some(breach));
        let acceptance_half = |s: &mut Sla| s.min_acceptance_rate = 0.5;
        let cases: Vec<Case> = vec![
            ("timeouts at the limit are healthy", |_| {}, vec![TIMEOUT, ok(1), TIMEOUT, ok(1)], vec![], active),
            (
                "timeouts past the limit",
                |_| {},
                vec![TIMEOUT, ok(1), TIMEOUT, TIMEOUT],
                vec![],
                paused(Breach::TimeoutRate),
            ),
            ("errors at the limit are healthy", |_| {}, vec![err(1), ok(1), err(1), ok(1)], vec![], active),
            ("errors past the limit", |_| {}, vec![err(1), err(1), ok(1), err(1)], vec![], paused(Breach::ErrorRate)),
            (
                "timeouts are judged before errors",
                |s| (s.max_timeout_rate, s.max_error_rate) = (0.2, 0.2),
                vec![err(1), TIMEOUT, err(1), TIMEOUT],
                vec![],
                paused(Breach::TimeoutRate),
            ),
            ("rejections are not judged while the check is off", |_| {}, vec![], vec![false; 6], active),
            ("rejections short of min_samples", acceptance_half, vec![], vec![false; 3], active),
            (
                "acceptance past the limit",
                acceptance_half,
                vec![],
                vec![false, true, false, false],
                paused(Breach::AcceptanceRate),
            ),
            ("acceptance at the limit is healthy", acceptance_half, vec![], vec![true, false, false, true], active),
        ];
        let t0 = Instant::now();
        for (name, change, ping_samples, post_samples, expected) in cases {
            let mut sla = sla();
            change(&mut sla);
            let health = BuyerHealth::new();
            pings(&health, &sla, &ping_samples, t0);
            posts(&health, &sla, &post_samples, t0);
            assert_eq!(health.state(&sla, t0), expected, "{name}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_cooldown_ends_in_probing_exactly_at_its_end_with_fresh_windows() {
        let sla = sla();
        let health = tripped(&sla, Instant::now());
        tokio::time::advance(secs(30.0) - Duration::from_millis(1)).await;
        assert_eq!(health.state(&sla, Instant::now()), (BreakerState::SlaPaused, Some(Breach::TimeoutRate)));
        assert_eq!(health.admit(&sla, Instant::now(), 0.0), Admission::Excluded);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(health.state(&sla, Instant::now()), (BreakerState::Probing, Some(Breach::TimeoutRate)));
        let view = health.view(&sla, Instant::now());
        assert_eq!((view.samples, view.timeout_rate), (0, 0.0));
    }

    #[test]
    fn probing_admits_a_ping_when_the_draw_is_under_probe_share() {
        let (sla, t0) = (sla(), Instant::now());
        let health = tripped(&sla, t0);
        assert_eq!(health.admit(&sla, t0, 0.0), Admission::Excluded, "paused ignores the draw");
        let probing = t0 + secs(30.0);
        let cases = [
            (0.0, Admission::Probe),
            (0.2499, Admission::Probe),
            (0.25, Admission::Excluded),
            (0.9, Admission::Excluded),
        ];
        for (draw, expected) in cases {
            assert_eq!(health.admit(&sla, probing, draw), expected, "draw {draw}");
        }
        assert_eq!(BuyerHealth::new().admit(&sla, t0, 0.99), Admission::Pass, "active ignores the draw");
    }

    #[test]
    fn probing_returns_to_active_once_min_samples_are_healthy() {
        let (sla, t0) = (sla(), Instant::now());
        let health = tripped(&sla, t0);
        let probing = t0 + secs(30.0);
        pings(&health, &sla, &[ok(5), TIMEOUT, ok(5)], probing);
        assert_eq!(health.state(&sla, probing), (BreakerState::Probing, Some(Breach::TimeoutRate)));
        health.record_ping(&sla, ok(5), probing);
        assert_eq!(health.state(&sla, probing), (BreakerState::Active, None));
        assert_eq!(health.admit(&sla, probing, 0.99), Admission::Pass);
    }

    #[test]
    fn probing_that_still_fails_pauses_again_for_a_new_cooldown() {
        let (sla, t0) = (sla(), Instant::now());
        let health = tripped(&sla, t0);
        let failed_at = t0 + secs(35.0);
        pings(&health, &sla, &[err(5), err(5), ok(5)], failed_at);
        assert_eq!(health.state(&sla, failed_at).0, BreakerState::Probing);
        health.record_ping(&sla, err(5), failed_at);
        assert_eq!(health.state(&sla, failed_at), (BreakerState::SlaPaused, Some(Breach::ErrorRate)));
        let just_before = failed_at + secs(30.0) - Duration::from_millis(1);
        assert_eq!(health.state(&sla, just_before), (BreakerState::SlaPaused, Some(Breach::ErrorRate)));
        assert_eq!(health.state(&sla, failed_at + secs(30.0)), (BreakerState::Probing, Some(Breach::ErrorRate)));
    }

    #[test]
    fn probing_an_acceptance_breach_waits_for_fresh_posts() {
        let (sla, t0) = (Sla { min_acceptance_rate: 0.5, ..sla() }, Instant::now());
        let health = BuyerHealth::new();
        posts(&health, &sla, &[false; 4], t0);
        let probing = t0 + secs(30.0);
        pings(&health, &sla, &[ok(5); 6], probing);
        assert_eq!(health.state(&sla, probing), (BreakerState::Probing, Some(Breach::AcceptanceRate)));
        posts(&health, &sla, &[true, false, true], probing);
        assert_eq!(health.state(&sla, probing).0, BreakerState::Probing);
        health.record_post(&sla, true, probing);
        assert_eq!(health.state(&sla, probing), (BreakerState::Active, None));
    }

    #[test]
    fn stragglers_while_paused_are_ignored() {
        let (sla, t0) = (sla(), Instant::now());
        let health = tripped(&sla, t0);
        let later = t0 + secs(1.0);
        pings(&health, &sla, &[ok(5); 10], later);
        posts(&health, &sla, &[true; 3], later);
        let view = health.view(&sla, later);
        assert_eq!((view.samples, view.timeout_rate, view.acceptance_rate), (4, 1.0, None));
        assert_eq!(view.state, BreakerState::SlaPaused);
    }

    #[test]
    fn a_disabled_sla_never_trips_but_keeps_its_figures() {
        let (enabled, t0) = (Sla { min_acceptance_rate: 0.9, ..sla() }, Instant::now());
        let disabled = Sla { enabled: false, ..enabled.clone() };
        let health = BuyerHealth::new();
        pings(&health, &disabled, &[TIMEOUT; 20], t0);
        posts(&health, &disabled, &[false; 10], t0);
        assert_eq!(health.state(&disabled, t0), (BreakerState::Active, None));
        assert_eq!(health.admit(&disabled, t0, 0.99), Admission::Pass);
        let view = health.view(&disabled, t0);
        assert_eq!((view.samples, view.timeout_rate, view.acceptance_rate), (10, 1.0, Some(0.0)));
        // Enabled again, the kept window is judged at the next sample.
        health.record_ping(&enabled, TIMEOUT, t0);
        assert_eq!(health.state(&enabled, t0), (BreakerState::SlaPaused, Some(Breach::TimeoutRate)));
        // Disabling clears a pause.
        assert_eq!(health.state(&disabled, t0), (BreakerState::Active, None));
    }

    #[test]
    fn a_changed_window_keeps_the_newest_samples_and_counts() {
        let t0 = Instant::now();
        let wide = lenient();
        let narrow = Sla { window: 4, min_samples: 4, ..lenient() };
        let health = BuyerHealth::new();
        pings(&health, &wide, &[TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT, TIMEOUT, ok(1), ok(2), ok(3), ok(4), ok(5)], t0);
        assert_eq!(health.view(&wide, t0).timeout_rate, 0.5);
        let view = health.view(&narrow, t0);
        assert_eq!((view.samples, view.timeout_rate, view.p50_ms), (4, 0.0, Some(3.0)));
        health.record_ping(&narrow, TIMEOUT, t0);
        assert_eq!((health.view(&narrow, t0).samples, health.view(&narrow, t0).timeout_rate), (4, 0.25));
        pings(&health, &narrow, &[TIMEOUT; 3], t0);
        assert_eq!(health.view(&narrow, t0).timeout_rate, 1.0);
        let six = Sla { window: 6, ..lenient() };
        pings(&health, &six, &[ok(1), ok(1)], t0);
        assert_eq!((health.view(&six, t0).samples, health.view(&six, t0).timeout_rate), (6, 4.0 / 6.0));
        health.record_ping(&six, ok(1), t0); // the window is full again: the oldest timeout goes
        assert_eq!((health.view(&six, t0).samples, health.view(&six, t0).timeout_rate), (6, 0.5));
    }

    #[test]
    fn a_shrunk_window_trips_on_what_it_still_holds() {
        let t0 = Instant::now();
        let (wide, narrow) = (sla(), Sla { window: 4, ..sla() });
        let health = BuyerHealth::new();
        pings(&health, &wide, &[ok(1), ok(1), ok(1), ok(1), ok(1), TIMEOUT, TIMEOUT, TIMEOUT], t0);
        assert_eq!(health.state(&wide, t0), (BreakerState::Active, None));
        health.record_ping(&narrow, ok(1), t0); // holds [T, T, T, ok]
        assert_eq!(health.state(&narrow, t0), (BreakerState::SlaPaused, Some(Breach::TimeoutRate)));
    }

    #[test]
    fn resume_clears_an_sla_pause_and_its_evidence() {
        let (sla, t0) = (sla(), Instant::now());
        let health = tripped(&sla, t0);
        health.resume();
        assert_eq!(health.state(&sla, t0), (BreakerState::Active, None));
        assert_eq!(health.view(&sla, t0).samples, 0);
        health.record_ping(&sla, TIMEOUT, t0);
        assert_eq!(health.state(&sla, t0).0, BreakerState::Active, "one timeout is not min_samples");

        let active = BuyerHealth::new();
        pings(&active, &sla, &[ok(1); 3], t0);
        active.resume();
        assert_eq!(active.view(&sla, t0).samples, 3, "an active buyer keeps its window");
    }

    #[test]
    fn health_can_be_shared_by_concurrent_auctions() {
        fn shareable<T: Send + Sync>() {}
        shareable::<BuyerHealth>();
    }
}
