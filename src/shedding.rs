//! Load shedding: past a limit of auctions in flight, a new ping or direct post is refused at once with 503
//! `overloaded`, before it gets a ping id, reaches a buyer or touches the audit ring or the books.
//!
//! Why auctions in flight: an auction never waits in a queue here (each runs on the task that received it),
//! so overload does not show as a queue; it shows as more auctions running at once than the cores can carry,
//! each one's deadline timer firing late and every seller's answer slipping past its deadline together. By
//! Little's law the number in flight is arrival rate × time per auction, so it rises with either more load
//! than the machine sustains or auctions stretched by a starved runtime — the two ways an answer ends up late.
//! Refusing the excess fast keeps the admitted auctions on time, and the seller can retry elsewhere within
//! its own deadline. Posts are never shed: they deliver leads already won and bids already held.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Auctions a core is expected to carry at once when none is configured: about what one core sustains at 10
/// buyers per auction (roughly 1,500 auctions a second) times the default deadline (300 ms), rounded up.
pub const AUCTIONS_PER_CORE: usize = 512;

/// The count of auctions in flight, and the slots that admit them.
pub struct AuctionSlots {
    in_flight: AtomicUsize,
    /// The limit when `server.max_auctions_in_flight` is not set: [`AUCTIONS_PER_CORE`] per core.
    derived_limit: usize,
}

/// One admitted auction; dropping it frees the slot, however the auction ends.
#[must_use = "the slot is freed when this is dropped"]
pub struct AuctionSlot<'a>(&'a AtomicUsize);

impl Drop for AuctionSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for AuctionSlots {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        AuctionSlots::with_derived_limit(AUCTIONS_PER_CORE * cores)
    }
}

impl AuctionSlots {
    /// Slots whose limit, when none is configured, is `derived_limit`.
    pub fn with_derived_limit(derived_limit: usize) -> AuctionSlots {
        AuctionSlots { in_flight: AtomicUsize::new(0), derived_limit }
    }

    /// The limit in force: `configured` (`server.max_auctions_in_flight`, read per call so a reload applies),
    /// else the derived one.
    pub fn limit(&self, configured: Option<usize>) -> usize {
        configured.unwrap_or(self.derived_limit)
    }

    /// A slot for one more auction, or `None` when `limit` auctions are already in flight.
    pub fn try_take(&self, configured: Option<usize>) -> Option<AuctionSlot<'_>> {
        let limit = self.limit(configured);
        // Counting first and backing out keeps this one atomic add in the common case; a refused caller's
        // brief extra count can only make a concurrent caller refuse too, never admit past the limit.
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(AuctionSlot(&self.in_flight))
    }

    /// Auctions admitted and not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let slots = AuctionSlots::with_derived_limit(2);
        let first = slots.try_take(None).expect("first");
        let second = slots.try_take(None).expect("second");
        assert!(slots.try_take(None).is_none(), "a third is shed");
        assert_eq!(slots.in_flight(), 2, "a refusal leaves no count behind");
        drop(first);
        let third = slots.try_take(None).expect("a freed slot admits again");
        drop((second, third));
        assert_eq!(slots.in_flight(), 0);
    }

    #[test]
    fn a_configured_limit_wins_over_the_derived_one() {
        let slots = AuctionSlots::with_derived_limit(1);
        let held: Vec<_> = (0..3).map(|_| slots.try_take(Some(3)).expect("within the configured 3")).collect();
        assert!(slots.try_take(Some(3)).is_none());
        assert_eq!(slots.limit(None), 1);
        drop(held);
    }

    #[test]
    fn the_default_scales_with_the_cores() {
        assert!(AuctionSlots::default().limit(None) >= AUCTIONS_PER_CORE);
    }

    #[test]
    fn concurrent_takers_never_exceed_the_limit() {
        let slots = AuctionSlots::with_derived_limit(10);
        // Every thread keeps its slots until all have tried, so none is freed and taken twice.
        let all_tried = std::sync::Barrier::new(4);
        let admitted: usize = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    let (slots, all_tried) = (&slots, &all_tried);
                    scope.spawn(move || {
                        let held: Vec<_> = (0..50).filter_map(|_| slots.try_take(None)).collect();
                        all_tried.wait();
                        held.len()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("worker")).sum()
        });
        assert_eq!(admitted, 10, "slots held by every thread at once never pass the limit");
    }
}
