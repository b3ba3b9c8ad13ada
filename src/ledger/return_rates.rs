//! Each buyer's return history with each seller, for `ranking = "expected_value"` (API.md section 7): how many
//! of the buyer's leads from the seller were delivered in a window, and how many of those have an approved
//! return.
//!
//! Kept current by [`Books::apply`](super::Books::apply) as sales and approved returns are booked, so replay
//! rebuilds it and every node that replays the ledger has it; an auction reads it and never scans the books.
//!
//! Per (seller, buyer) pair the deliveries are counted by the hour they were made in, and each hour holds the
//! running totals *through* it (deliveries, and approved returns of those deliveries). Any window is then two
//! lookups: the totals through the newest hour less the totals before the window's first hour, found by
//! binary search. Only hours that had a delivery exist, so memory grows with the hours a pair traded in, up
//! to the 365 days the longest window reads; older hours are dropped as new deliveries arrive. A return adds
//! one to its delivery's hour and every later one: a few days' worth of hours, since returns come soon.
//!
//! The window is whole hours: a lead counts from its delivery until `return_rate_days` × 24 h after the end
//! of the hour it was delivered in, so up to one hour longer than the exact rolling window.

use std::collections::{HashMap, VecDeque};

use chrono::{DateTime, Utc};

use crate::domain::expected_value::ReturnRate;

const SECONDS_PER_HOUR: i64 = 3600;
/// The longest window (365 days) plus the hour its start falls in: older hours can never be read.
const KEPT_HOURS: i64 = 365 * 24 + 1;

/// Return histories by seller, then buyer.
#[derive(Debug, Default, Clone)]
pub struct ReturnRates {
    by_seller: HashMap<String, HashMap<String, History>>,
}

/// One seller's histories, for reading several buyers' rates with one lookup of the seller.
#[derive(Clone, Copy)]
pub struct SellerRates<'a>(Option<&'a HashMap<String, History>>);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    delivered: u64,
    returned: u64,
}

/// One pair's deliveries by hour, oldest first.
#[derive(Debug, Default, Clone)]
struct History {
    /// Totals through the hours already dropped.
    dropped: Counts,
    hours: VecDeque<Hour>,
}

#[derive(Debug, Clone, Copy)]
struct Hour {
    /// Hours since the Unix epoch.
    hour: i64,
    /// Totals through the end of this hour.
    through: Counts,
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(SECONDS_PER_HOUR)
}

impl ReturnRates {
    /// A lead sold by `seller` to `buyer` at `at`.
    pub fn delivered(&mut self, seller: &str, buyer: &str, at: DateTime<Utc>) {
        let history = match self.by_seller.get_mut(seller) {
            Some(buyers) => buyers.entry(buyer.to_owned()).or_default(),
            None => self.by_seller.entry(seller.to_owned()).or_default().entry(buyer.to_owned()).or_default(),
        };
        history.add(hour_of(at), Counts { delivered: 1, returned: 0 });
    }

    /// An approved return of a lead that `seller` sold to `buyer` at `delivered_at`.
    pub fn returned(&mut self, seller: &str, buyer: &str, delivered_at: DateTime<Utc>) {
        if let Some(history) = self.by_seller.get_mut(seller).and_then(|buyers| buyers.get_mut(buyer)) {
            history.add_return(hour_of(delivered_at));
        }
    }

    /// The histories of one seller's buyers.
    pub fn seller(&self, seller: &str) -> SellerRates<'_> {
        SellerRates(self.by_seller.get(seller))
    }
}

impl SellerRates<'_> {
    /// The buyer's return rate with this seller over the `days` × 24 h up to `now`.
    pub fn rate(&self, buyer: &str, days: u32, now: DateTime<Utc>) -> ReturnRate {
        let Some(history) = self.0.and_then(|buyers| buyers.get(buyer)) else {
            return ReturnRate::NO_HISTORY;
        };
        let start = now.timestamp() - i64::from(days) * 24 * SECONDS_PER_HOUR;
        let counts = history.since(start.div_euclid(SECONDS_PER_HOUR));
        ReturnRate::new(counts.delivered, counts.returned)
    }
}

impl History {
    fn latest(&self) -> Counts {
        self.hours.back().map_or(self.dropped, |h| h.through)
    }

    /// The totals of the hours from `first` on.
    fn since(&self, first: i64) -> Counts {
        let index = self.hours.partition_point(|h| h.hour < first);
        let before = if index == 0 { self.dropped } else { self.hours[index - 1].through };
        let latest = self.latest();
        Counts { delivered: latest.delivered - before.delivered, returned: latest.returned - before.returned }
    }

    fn add(&mut self, hour: i64, counts: Counts) {
        match self.hours.back_mut() {
            Some(last) if last.hour == hour => last.through = plus(last.through, counts),
            Some(last) if last.hour > hour => self.add_late(hour, counts),
            _ => {
                let through = plus(self.latest(), counts);
                self.hours.push_back(Hour { hour, through });
                while self.hours.front().is_some_and(|h| h.hour <= hour - KEPT_HOURS) {
                    if let Some(dropped) = self.hours.pop_front() {
                        self.dropped = dropped.through;
                    }
                }
            }
        }
    }

    /// A delivery older than the newest hour (sales booked a moment out of order, or a replayed snapshot):
    /// into its own hour, and into the totals of every hour after it.
    fn add_late(&mut self, hour: i64, counts: Counts) {
        let index = self.hours.partition_point(|h| h.hour < hour);
        if self.hours.get(index).is_none_or(|h| h.hour != hour) {
            let before = if index == 0 { self.dropped } else { self.hours[index - 1].through };
            self.hours.insert(index, Hour { hour, through: before });
        }
        for later in self.hours.range_mut(index..) {
            later.through = plus(later.through, counts);
        }
    }

    fn add_return(&mut self, hour: i64) {
        let index = self.hours.partition_point(|h| h.hour < hour);
        // A return of a lead from an hour already dropped falls outside every window: nothing to count.
        if self.hours.get(index).is_some_and(|h| h.hour == hour) {
            for later in self.hours.range_mut(index..) {
                later.through.returned += 1;
            }
        }
    }
}

fn plus(a: Counts, b: Counts) -> Counts {
    Counts { delivered: a.delivered + b.delivered, returned: a.returned + b.returned }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn at(day: i64, hour: i64, minute: i64) -> DateTime<Utc> {
        let start = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().expect("valid date");
        start + Duration::days(day) + Duration::hours(hour) + Duration::minutes(minute)
    }

    fn rate(rates: &ReturnRates, buyer: &str, days: u32, now: DateTime<Utc>) -> (u64, u64) {
        let rate = rates.seller("s").rate(buyer, days, now);
        (rate.delivered(), rate.returned())
    }

    #[test]
    fn counts_deliveries_and_their_approved_returns_in_the_window() {
        let mut rates = ReturnRates::default();
        for (day, hour) in [(0, 1), (0, 1), (2, 5), (9, 0), (9, 23)] {
            rates.delivered("s", "b", at(day, hour, 30));
        }
        rates.returned("s", "b", at(0, 1, 30));
        rates.returned("s", "b", at(9, 23, 30));
        let now = at(10, 0, 10);
        let cases = [
            // (window days, delivered, returned)
            (30, 5, 2),
            (10, 5, 2),
            // Day 0 01:30 falls out once 10 × 24 h have passed since 02:00 on day 0.
            (9, 3, 1),
            (1, 2, 1),
        ];
        for (days, delivered, returned) in cases {
            assert_eq!(rate(&rates, "b", days, now), (delivered, returned), "{days} days");
        }
        // The hour boundary: the window's start hour counts whole.
        assert_eq!(rate(&rates, "b", 10, at(10, 1, 59)), (5, 2));
        assert_eq!(rate(&rates, "b", 10, at(10, 2, 0)), (3, 1));
    }

    #[test]
    fn pairs_are_separate_and_strangers_have_no_history() {
        let mut rates = ReturnRates::default();
        rates.delivered("s", "b", at(0, 0, 0));
        rates.returned("s", "b", at(0, 0, 0));
        rates.delivered("other", "b", at(0, 0, 0));
        let now = at(1, 0, 0);
        assert_eq!(rate(&rates, "b", 30, now), (1, 1));
        assert_eq!(rates.seller("other").rate("b", 30, now), ReturnRate::new(1, 0));
        assert_eq!(rates.seller("s").rate("c", 30, now), ReturnRate::NO_HISTORY);
        assert_eq!(rates.seller("nobody").rate("b", 30, now), ReturnRate::NO_HISTORY);
    }

    #[test]
    fn late_deliveries_and_returns_land_in_their_own_hour() {
        let mut rates = ReturnRates::default();
        rates.delivered("s", "b", at(5, 0, 0));
        rates.delivered("s", "b", at(1, 0, 0)); // booked out of order: before every hour kept
        rates.delivered("s", "b", at(3, 0, 0)); // between two kept hours
        rates.delivered("s", "b", at(3, 0, 30)); // into an existing older hour
        rates.returned("s", "b", at(1, 0, 0));
        rates.returned("s", "b", at(3, 0, 30));
        let now = at(5, 0, 1);
        assert_eq!(rate(&rates, "b", 30, now), (4, 2));
        assert_eq!(rate(&rates, "b", 3, now), (3, 1));
        assert_eq!(rate(&rates, "b", 1, now), (1, 0));
    }

    #[test]
    fn hours_older_than_the_longest_window_are_dropped_without_changing_any_rate() {
        let mut rates = ReturnRates::default();
        rates.delivered("s", "b", at(0, 0, 0));
        rates.returned("s", "b", at(0, 0, 0));
        rates.delivered("s", "b", at(200, 0, 0));
        rates.delivered("s", "b", at(400, 0, 0));
        let history = &rates.by_seller["s"]["b"];
        assert_eq!(history.hours.len(), 2, "day 0 is past 365 days and dropped");
        assert_eq!(history.dropped, Counts { delivered: 1, returned: 1 });
        let now = at(400, 1, 0);
        assert_eq!(rate(&rates, "b", 365, now), (2, 0));
        assert_eq!(rate(&rates, "b", 30, now), (1, 0));
        // A return of a dropped lead counts in no window.
        rates.returned("s", "b", at(0, 0, 0));
        assert_eq!(rate(&rates, "b", 365, now), (2, 0));
    }
}
