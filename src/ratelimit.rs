//! Each seller's ping rate, `max_pings_per_second` (API.md section 7): a ping over it is refused with 429
//! `rate_limited` and a `Retry-After` before anything else happens.
//!
//! The rule is GCRA (the generic cell rate algorithm: a token bucket kept as one timestamp). A seller with a
//! limit of R pings per second may send a burst of up to R at once, then R per second evenly; refused pings
//! take no budget, so a seller that backs off as told is admitted again. Each seller's whole state is one
//! atomic "time its next ping is due", updated by compare-and-swap: no lock on the ping path, and one seller's
//! flood never touches another seller's state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::time::Instant;

use crate::config::Seller;

const NANOS_PER_SECOND: u64 = 1_000_000_000;

/// The ping rates of every seller.
pub struct PingRateLimiter {
    /// Times are kept as nanoseconds since this instant, so each seller's state fits one atomic.
    epoch: Instant,
    /// Per seller id, the theoretical arrival time of its next ping (GCRA's TAT), in nanoseconds since `epoch`.
    next_due: DashMap<String, AtomicU64>,
}

/// A ping refused for its seller's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimited {
    /// The seller's limit.
    pub per_second: u32,
    /// How long until a ping would be admitted.
    pub retry_after: Duration,
}

impl RateLimited {
    /// `retry_after` in whole seconds for a `Retry-After` header: rounded up, at least 1.
    pub fn retry_after_seconds(&self) -> u64 {
        self.retry_after.as_nanos().div_ceil(u128::from(NANOS_PER_SECOND)).max(1).try_into().unwrap_or(u64::MAX)
    }
}

impl Default for PingRateLimiter {
    fn default() -> Self {
        PingRateLimiter::new()
    }
}

impl PingRateLimiter {
    /// A limiter with no history: every seller starts with a full second's burst.
    pub fn new() -> PingRateLimiter {
        PingRateLimiter { epoch: Instant::now(), next_due: DashMap::new() }
    }

    /// Admits one ping of `seller` at `now`, or says how long until one would be admitted. Sellers without a
    /// `max_pings_per_second` are always admitted. The limit is read from the seller's config each time, so a
    /// reloaded limit applies at once.
    pub fn admit(&self, seller: &Seller, now: Instant) -> Result<(), RateLimited> {
        let Some(per_second) = seller.max_pings_per_second else { return Ok(()) };
        let interval = NANOS_PER_SECOND / u64::from(per_second);
        // How far ahead of now the next due time may run: a second's worth of pings, less the one being sent.
        let burst = NANOS_PER_SECOND - interval;
        let now = u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        let admitted = |due: &AtomicU64| loop {
            let current = due.load(Ordering::Acquire);
            let start = current.max(now);
            if start - now > burst {
                return Err(Duration::from_nanos(start - now - burst));
            }
            let next = start.saturating_add(interval);
            if due.compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire).is_ok() {
                return Ok(());
            }
        };
        let verdict = match self.next_due.get(&seller.id) {
            Some(due) => admitted(&due),
            None => admitted(&self.next_due.entry(seller.id.clone()).or_default()),
        };
        verdict.map_err(|retry_after| RateLimited { per_second, retry_after })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn seller(id: &str, per_second: Option<u32>) -> Seller {
        Seller {
            id: id.to_owned(),
            api_key: Secret::new(format!("sk_{id}")),
            margin_percent: rust_decimal::Decimal::ZERO,
            max_pings_per_second: per_second,
        }
    }

    fn at(limiter: &PingRateLimiter, millis: u64) -> Instant {
        limiter.epoch + Duration::from_millis(millis)
    }

    #[test]
    fn a_burst_of_one_seconds_worth_then_one_per_interval() {
        let limiter = PingRateLimiter::new();
        let acme = seller("acme", Some(5));
        for n in 0..5 {
            assert_eq!(limiter.admit(&acme, at(&limiter, 0)), Ok(()), "ping {n} of the burst");
        }
        let refused = limiter.admit(&acme, at(&limiter, 0)).unwrap_err();
        assert_eq!(refused, RateLimited { per_second: 5, retry_after: Duration::from_millis(200) });
        assert_eq!(refused.retry_after_seconds(), 1);
        // Refused pings take nothing: after one interval exactly one more is admitted.
        assert!(limiter.admit(&acme, at(&limiter, 100)).is_err());
        assert_eq!(limiter.admit(&acme, at(&limiter, 200)), Ok(()));
        assert!(limiter.admit(&acme, at(&limiter, 200)).is_err());
        // After a quiet second the full burst is back, and no more.
        let later = 5_000;
        for _ in 0..5 {
            assert_eq!(limiter.admit(&acme, at(&limiter, later)), Ok(()));
        }
        assert!(limiter.admit(&acme, at(&limiter, later)).is_err());
    }

    #[test]
    fn a_steady_rate_at_the_limit_is_always_admitted() {
        let limiter = PingRateLimiter::new();
        let acme = seller("acme", Some(10));
        for n in 0..100 {
            assert_eq!(limiter.admit(&acme, at(&limiter, n * 100)), Ok(()), "ping {n}");
        }
    }

    #[test]
    fn sellers_are_limited_separately_and_unlimited_sellers_never() {
        let limiter = PingRateLimiter::new();
        let (acme, other, free) = (seller("acme", Some(1)), seller("other", Some(1)), seller("free", None));
        assert_eq!(limiter.admit(&acme, at(&limiter, 0)), Ok(()));
        let refused = limiter.admit(&acme, at(&limiter, 0)).unwrap_err();
        assert_eq!((refused.retry_after, refused.retry_after_seconds()), (Duration::from_secs(1), 1));
        assert_eq!(limiter.admit(&other, at(&limiter, 0)), Ok(()), "another seller's flood costs nothing");
        for _ in 0..10_000 {
            assert_eq!(limiter.admit(&free, at(&limiter, 0)), Ok(()));
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        let limited = |millis| RateLimited { per_second: 1, retry_after: Duration::from_millis(millis) };
        assert_eq!(limited(1).retry_after_seconds(), 1);
        assert_eq!(limited(1000).retry_after_seconds(), 1);
        assert_eq!(limited(1001).retry_after_seconds(), 2);
    }

    #[test]
    fn concurrent_pings_never_exceed_the_burst() {
        let limiter = std::sync::Arc::new(PingRateLimiter::new());
        let now = at(&limiter, 0);
        let admitted: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let limiter = &limiter;
                    scope.spawn(move || {
                        let acme = seller("acme", Some(50));
                        (0..100).filter(|_| limiter.admit(&acme, now).is_ok()).count()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("worker")).sum()
        });
        assert_eq!(admitted, 50);
    }
}
