//! What a simulated buyer does, and the seeded random draws that decide each answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

use crate::domain::money::Money;

/// Longest a simulated buyer ever waits: caps every latency and ends every hang, so nothing leaks.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(60);

/// How a simulated buyer behaves. Failure shares are drawn per ping from one uniform number, in the order
/// hang, error, garbage, no bid; whatever share is left over bids.
#[derive(Debug, Clone)]
pub struct SimBuyerSpec {
    /// How long before answering a ping.
    pub ping_latency: Latency,
    /// How long before answering a post.
    pub post_latency: Latency,
    /// What a bid is.
    pub bid: BidSpec,
    /// Share of pings answered with no bid, alternating HTTP 204 and `{"bid": null}`.
    pub no_bid_share: f64,
    /// Share of pings answered 500 with a small JSON error body.
    pub error_share: f64,
    /// Share of pings answered 200 with a body that is not JSON.
    pub garbage_share: f64,
    /// Share of pings never answered: held open until the client closes the connection or 60 s pass.
    pub hang_share: f64,
    /// Share of posts answered `{"accepted": false, "reason": "duplicate"}`.
    pub reject_share: f64,
    /// The first N posts after this spec takes effect are answered 503 (exercises the engine's one retry).
    pub post_error_first: u32,
    /// When set, every ping gets exactly this status and body, after `ping_latency`.
    pub ping_reply: Option<RawReply>,
    /// When set, every post gets exactly this status and body, after `post_latency`.
    pub post_reply: Option<RawReply>,
    /// How long before answering a win/loss notice (a long wait is an endpoint that hangs).
    pub notice_latency: Latency,
    /// When set, every notice gets exactly this status and body; otherwise 204 No Content.
    pub notice_reply: Option<RawReply>,
    /// Seed of the buyer's RNG, so runs are reproducible.
    pub seed: u64,
    /// Keep every request (headers and body); when false only the counters are kept, for load tests.
    pub record: bool,
}

/// A fixed answer: exactly this status and body (sent as `application/json`, whatever the body holds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReply {
    /// HTTP status code; one hyper cannot send becomes 500.
    pub status: u16,
    /// Response body, sent verbatim.
    pub body: String,
}

/// How long a simulated buyer waits before answering; every draw is capped at 60 s.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// Answer at once.
    Zero,
    /// Always this long.
    Fixed(Duration),
    /// Uniformly between `min` and `max`, inclusive.
    Uniform {
        /// Shortest wait.
        min: Duration,
        /// Longest wait.
        max: Duration,
    },
    /// `median × exp(sigma × z)` with `z` standard normal: the long right tail real buyers show.
    LogNormal {
        /// Median wait.
        median: Duration,
        /// Spread of the underlying normal; 0 means always the median.
        sigma: f64,
    },
}

/// What a simulated buyer bids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BidSpec {
    /// Always this price.
    Fixed(Money),
    /// Whole cents drawn uniformly between `min` and `max`, inclusive.
    Uniform {
        /// Lowest bid.
        min: Money,
        /// Highest bid.
        max: Money,
    },
}

impl Default for SimBuyerSpec {
    /// Instant answers, bids "10.00", no failures, notices taken with 204, seed 1, recording on.
    fn default() -> Self {
        SimBuyerSpec {
            ping_latency: Latency::Zero,
            post_latency: Latency::Zero,
            bid: BidSpec::Fixed(Money::from_cents(1000)),
            no_bid_share: 0.0,
            error_share: 0.0,
            garbage_share: 0.0,
            hang_share: 0.0,
            reject_share: 0.0,
            post_error_first: 0,
            ping_reply: None,
            post_reply: None,
            notice_latency: Latency::Zero,
            notice_reply: None,
            seed: 1,
            record: true,
        }
    }
}

impl SimBuyerSpec {
    /// A healthy buyer that always bids `price` (e.g. "12.50").
    ///
    /// # Panics
    /// When `price` is not a valid amount: callers pass literals, so this is a bug in the caller.
    pub fn bidding(price: &str) -> Self {
        let price = Money::parse_text(price).unwrap_or_else(|e| panic!("SimBuyerSpec::bidding({price:?}): {e}"));
        SimBuyerSpec { bid: BidSpec::Fixed(price), ..SimBuyerSpec::default() }
    }

    /// A buyer that never answers a ping.
    pub fn hanging() -> Self {
        SimBuyerSpec { hang_share: 1.0, ..SimBuyerSpec::default() }
    }
}

// === impl Behaviour ===

/// How one ping is answered, decided before any waiting.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PingOutcome {
    Hang,
    Error,
    Garbage,
    NoBid,
    Bid(Money),
}

/// How one post is answered, decided before any waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PostOutcome {
    Unavailable,
    Reject,
    Accept,
}

/// A spec in effect, with the state its draws need. Replaced as a whole by `set_spec`, so a new spec
/// starts from its own seed and its own `post_error_first` count.
#[derive(Debug)]
pub(crate) struct Behaviour {
    pub(crate) spec: SimBuyerSpec,
    /// One RNG per buyer; a short lock per request is cheap next to a loopback round trip.
    rng: Mutex<SmallRng>,
    posts_seen: AtomicU64,
}

impl Behaviour {
    pub(crate) fn new(spec: SimBuyerSpec) -> Self {
        let rng = Mutex::new(SmallRng::seed_from_u64(spec.seed));
        Behaviour { spec, rng, posts_seen: AtomicU64::new(0) }
    }

    /// Draws how to answer a ping and how long to wait first.
    pub(crate) fn draw_ping(&self) -> (PingOutcome, Duration) {
        let spec = &self.spec;
        let mut rng = self.rng.lock();
        let roll: f64 = rng.gen();
        let mut bound = spec.hang_share;
        let outcome = if roll < bound {
            PingOutcome::Hang
        } else if roll < next_bound(&mut bound, spec.error_share) {
            PingOutcome::Error
        } else if roll < next_bound(&mut bound, spec.garbage_share) {
            PingOutcome::Garbage
        } else if roll < next_bound(&mut bound, spec.no_bid_share) {
            PingOutcome::NoBid
        } else {
            PingOutcome::Bid(draw_bid(&spec.bid, &mut rng))
        };
        (outcome, draw_latency(&spec.ping_latency, &mut rng))
    }

    /// Draws how to answer a post and how long to wait first.
    pub(crate) fn draw_post(&self) -> (PostOutcome, Duration) {
        let seen = self.posts_seen.fetch_add(1, Ordering::Relaxed);
        let mut rng = self.rng.lock();
        let outcome = if seen < u64::from(self.spec.post_error_first) {
            PostOutcome::Unavailable
        } else if rng.gen::<f64>() < self.spec.reject_share {
            PostOutcome::Reject
        } else {
            PostOutcome::Accept
        };
        (outcome, draw_latency(&self.spec.post_latency, &mut rng))
    }

    /// Draws only a wait, for answers fixed by `ping_reply` / `post_reply`.
    pub(crate) fn draw_latency(&self, latency: &Latency) -> Duration {
        draw_latency(latency, &mut self.rng.lock())
    }
}

/// Moves the cumulative bound past one more share; negative or NaN shares count as zero.
fn next_bound(bound: &mut f64, share: f64) -> f64 {
    *bound += share.max(0.0);
    *bound
}

fn draw_latency(latency: &Latency, rng: &mut SmallRng) -> Duration {
    let drawn = match latency {
        Latency::Zero => Duration::ZERO,
        Latency::Fixed(wait) => *wait,
        Latency::Uniform { min, max } if min < max => rng.gen_range(*min..=*max),
        Latency::Uniform { min, .. } => *min,
        Latency::LogNormal { median, sigma } => {
            let seconds = median.as_secs_f64() * (sigma * standard_normal(rng)).exp();
            // A huge sigma can overflow to infinity (or NaN for sigma = ∞ and z = 0); both mean "very long".
            if seconds.is_finite() {
                Duration::from_secs_f64(seconds.clamp(0.0, MAX_WAIT.as_secs_f64()))
            } else {
                MAX_WAIT
            }
        }
    };
    drawn.min(MAX_WAIT)
}

/// Box–Muller on the seeded RNG, so log-normal waits are reproducible without another crate.
fn standard_normal(rng: &mut SmallRng) -> f64 {
    // `gen` is in [0, 1); 1 − u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.gen::<f64>();
    let u2: f64 = rng.gen();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn draw_bid(bid: &BidSpec, rng: &mut SmallRng) -> Money {
    match bid {
        BidSpec::Fixed(price) => *price,
        BidSpec::Uniform { min, max } => {
            let (low, high) = (cents(*min), cents(*max));
            Money::from_cents(rng.gen_range(low.min(high)..=low.max(high)))
        }
    }
}

/// Whole cents of an amount; `Money` is always at cent precision, and twelve digits fit an `i64`.
fn cents(amount: Money) -> i64 {
    (amount.as_decimal() * Decimal::ONE_HUNDRED).trunc().to_i64().unwrap_or(0)
}
