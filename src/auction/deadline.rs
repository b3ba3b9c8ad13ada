//! The auction's deadline as a type: every wait in an auction asks it how long is left.

use std::time::Duration;

use tokio::time::Instant;

/// Time the engine keeps for itself between the end of the buyers' time and the answer to the seller:
/// ranking, rendering and the write back. Buyers are told the time they really have, which excludes it.
pub const NETWORK_BUFFER: Duration = Duration::from_millis(5);

/// An auction's start and time budget.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    budget: Duration,
}

impl Deadline {
    /// A deadline `budget` after `start` (the moment the seller's request headers arrived).
    pub fn new(start: Instant, budget: Duration) -> Deadline {
        Deadline { start, budget }
    }

    /// When the seller must have its answer.
    pub fn at(&self) -> Instant {
        self.start + self.budget
    }

    /// When the auction started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The whole budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }

    /// Time left until the deadline, zero once past.
    pub fn remaining(&self) -> Duration {
        self.at().saturating_duration_since(Instant::now())
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The time a buyer really has: what is left less the engine's buffer, capped by the buyer's timeout.
    pub fn for_buyer(&self, buyer_timeout: Duration) -> Duration {
        self.remaining().saturating_sub(NETWORK_BUFFER).min(buyer_timeout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn buyer_time_is_what_is_left_less_the_buffer_capped_by_its_timeout() {
        let deadline = Deadline::new(Instant::now(), Duration::from_millis(250));
        assert_eq!(deadline.for_buyer(Duration::from_millis(200)), Duration::from_millis(200));
        assert_eq!(deadline.for_buyer(Duration::from_millis(900)), Duration::from_millis(245));
        tokio::time::advance(Duration::from_millis(240)).await;
        assert_eq!(deadline.remaining(), Duration::from_millis(10));
        assert_eq!(deadline.for_buyer(Duration::from_millis(200)), Duration::from_millis(5));
        tokio::time::advance(Duration::from_millis(20)).await;
        assert_eq!(deadline.remaining(), Duration::ZERO);
        assert_eq!(deadline.for_buyer(Duration::from_millis(200)), Duration::ZERO);
    }
}
