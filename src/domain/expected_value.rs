//! The arithmetic of return-aware ranking (API.md section 7, `ranking = "expected_value"`): a buyer's return
//! rate with one seller, a bid's expected value, and the least bid that beats an expected value.
//!
//! Everything here is exact. A rate is a fraction of two counts and an expected value a fraction of cents, so
//! two expected values are compared by cross-multiplying integers, never through a float or a rounded
//! decimal: two bids whose values differ in the tenth decimal are still ordered right. Money is rounded only
//! where it is shown or charged, and then by [`Money`]'s one rule (down to the cent).

use std::cmp::Ordering;

use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::domain::money::Money;

/// Returns added to a buyer's history before any real one: r = (A + 1) / (D + 20), so a buyer with no
/// history counts 1 / 20 = 5%, and one lucky or unlucky lead moves its rate only a little.
const PRIOR_RETURNED: u128 = 1;
const PRIOR_DELIVERED: u128 = 20;

/// A buyer's return rate with one seller: D leads delivered in the window, A of them with an approved
/// return, read as r = (A + 1) / (D + 20).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ReturnRate {
    delivered: u32,
    returned: u32,
}

impl ReturnRate {
    /// A buyer that bought nothing from the seller in the window: r = 1 / 20.
    pub const NO_HISTORY: ReturnRate = ReturnRate { delivered: 0, returned: 0 };

    /// The rate of `delivered` leads of which `returned` came back approved. Counts saturate at `u32::MAX`
    /// (four billion leads of one buyer from one seller in one window), which keeps every product of this
    /// module inside a `u128`; more returns than deliveries cannot happen and count as all returned.
    pub fn new(delivered: u64, returned: u64) -> ReturnRate {
        let delivered = u32::try_from(delivered).unwrap_or(u32::MAX);
        let returned = u32::try_from(returned).unwrap_or(u32::MAX).min(delivered);
        ReturnRate { delivered, returned }
    }

    /// D: leads delivered in the window.
    pub fn delivered(self) -> u64 {
        u64::from(self.delivered)
    }

    /// A: those of them with an approved return.
    pub fn returned(self) -> u64 {
        u64::from(self.returned)
    }

    /// D + 20.
    fn denominator(self) -> u128 {
        u128::from(self.delivered) + PRIOR_DELIVERED
    }

    /// The numerator of 1 − r over [`Self::denominator`]: D + 19 − A, never below 19 since A ≤ D.
    fn kept(self) -> u128 {
        self.denominator() - (u128::from(self.returned) + PRIOR_RETURNED)
    }

    /// r as a decimal (28 significant digits), for display only: ranking compares the exact fractions.
    pub fn as_decimal(self) -> Decimal {
        let returned = Decimal::from(u64::from(self.returned) + 1);
        returned / Decimal::from(u64::from(self.delivered) + 20)
    }
}

/// Shown as a JSON number (the audit's `return_rate`), written from the decimal so no float rounds it first.
impl Serialize for ReturnRate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.as_decimal().normalize().to_string();
        let number: serde_json::Number = serde_json::from_str(&text).map_err(serde::ser::Error::custom)?;
        number.serialize(serializer)
    }
}

/// What the seller can expect to keep of a bid once returns come back: bid × (1 − r), kept as an exact
/// fraction of cents.
#[derive(Debug, Clone, Copy)]
pub struct ExpectedValue {
    /// Cents × (D + 19 − A).
    numerator: u128,
    /// D + 20.
    denominator: u128,
}

impl ExpectedValue {
    /// The expected value of `bid` from a buyer with return rate `rate`.
    pub fn of(bid: Money, rate: ReturnRate) -> ExpectedValue {
        // Bids are never negative; a negative amount here would be a bug upstream, and counts as nothing.
        let cents = u128::try_from(bid.cents()).unwrap_or(0);
        ExpectedValue { numerator: cents * rate.kept(), denominator: rate.denominator() }
    }

    /// Rounded down to the cent, as the audit trail shows it.
    pub fn rounded_down(self) -> Money {
        Money::from_cents_fraction_floor(self.numerator, self.denominator)
    }
}

impl Ord for ExpectedValue {
    fn cmp(&self, other: &Self) -> Ordering {
        // a / b against c / d is a × d against c × b (both denominators positive). Cents stay below 2^57
        // (15 digits), so each product stays below 2^57 × 2^33 × 2^33 = 2^123.
        (self.numerator * other.denominator).cmp(&(other.numerator * self.denominator))
    }
}

impl PartialOrd for ExpectedValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for ExpectedValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for ExpectedValue {}

/// The least bid, in whole cents, whose expected value at `rate` is strictly above `target`:
/// target / (1 − r), rounded down to the cent, plus 0.01. Both the quality-weighted second price and a
/// losing bidder's `min_to_win` are this.
pub fn least_bid_beating(target: ExpectedValue, rate: ReturnRate) -> Money {
    // target / (kept / den) = target.numerator × den / (target.denominator × kept).
    let numerator = target.numerator * rate.denominator();
    let denominator = target.denominator * rate.kept();
    Money::from_cents_fraction_floor(numerator, denominator) + Money::CENT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(text: &str) -> Money {
        Money::parse_text(text).unwrap()
    }

    #[test]
    fn the_rate_counts_a_prior_of_one_return_in_twenty() {
        let cases = [
            // (delivered, returned, r)
            (0, 0, "0.05"),
            (20, 0, "0.025"),
            (20, 19, "0.5"),
            (80, 4, "0.05"),
            (1, 1, "0.0952380952380952380952380952"), // 2 / 21
            (5, 9, "0.24"),                           // more returns than deliveries: all returned, 6 / 25
        ];
        for (delivered, returned, rate) in cases {
            let got = ReturnRate::new(delivered, returned).as_decimal().normalize().to_string();
            assert_eq!(got, rate, "D {delivered}, A {returned}");
        }
        assert_eq!(ReturnRate::new(u64::MAX, 3).delivered(), u64::from(u32::MAX));
    }

    #[test]
    fn the_rate_is_a_json_number() {
        let json = serde_json::to_string(&ReturnRate::new(1, 1)).unwrap();
        assert_eq!(json, "0.0952380952380952380952380952");
        assert_eq!(serde_json::to_string(&ReturnRate::NO_HISTORY).unwrap(), "0.05");
    }

    #[test]
    fn expected_values_round_down_only_for_display() {
        let cases = [
            // (bid, delivered, returned, expected value rounded down)
            ("10.00", 0, 0, "9.50"),   // 10 × 19/20
            ("10.00", 1, 1, "9.04"),   // r = 2/21: 10 × 19/21 = 9.047…
            ("10.00", 8, 3, "8.57"),   // r = 4/28 = 1/7: 10 × 6/7 = 8.5714…
            ("12.00", 10, 5, "9.60"),  // r = 6/30: 12 × 24/30
            ("0.01", 0, 0, "0.00"),    // 0.0095
            ("9.99", 380, 19, "9.49"), // r = 20/400 = 5%: 9.4905
        ];
        for (bid, delivered, returned, expected) in cases {
            let value = ExpectedValue::of(m(bid), ReturnRate::new(delivered, returned));
            assert_eq!(value.rounded_down(), m(expected), "{bid} at D {delivered} A {returned}");
        }
    }

    #[test]
    fn expected_values_compare_exactly_not_by_their_rounded_cents() {
        // 10.00 × 6/7 = 8.5714… and 9.03 × 19/20 = 8.5785: both show as 8.57, yet the second is more.
        let ten_at_a_seventh = ExpectedValue::of(m("10.00"), ReturnRate::new(8, 3));
        let nine_03_clean = ExpectedValue::of(m("9.03"), ReturnRate::NO_HISTORY);
        assert_eq!(ten_at_a_seventh.rounded_down(), nine_03_clean.rounded_down());
        assert!(nine_03_clean > ten_at_a_seventh);
        // Equal fractions written differently are equal: 10 × 19/20 = 9.50 = 10 × 38/40.
        let (plain, scaled) = (ReturnRate::new(0, 0), ReturnRate::new(20, 1));
        assert_eq!(ExpectedValue::of(m("10.00"), plain), ExpectedValue::of(m("10.00"), scaled));
    }

    #[test]
    fn the_least_bid_beating_a_value_is_its_weighted_price_plus_a_cent() {
        let cases = [
            // (target bid, target D, target A, own D, own A, least bid)
            // 10.00 at r = 1/7 keeps 8.5714…; / 0.95 = 9.0225… → 9.02 + 0.01
            ("10.00", 8, 3, 0, 0, "9.03"),
            // 9.50 / (19/21) = 10.50 exactly → 10.50 + 0.01: a bid of 10.50 only ties
            ("10.00", 0, 0, 1, 1, "10.51"),
            // same rate: the other bid plus a cent
            ("7.00", 0, 0, 0, 0, "7.01"),
            // 0.00 beaten by a cent
            ("0.00", 0, 0, 50, 40, "0.01"),
        ];
        for (bid, target_d, target_a, own_d, own_a, least) in cases {
            let target = ExpectedValue::of(m(bid), ReturnRate::new(target_d, target_a));
            let own = ReturnRate::new(own_d, own_a);
            let got = least_bid_beating(target, own);
            assert_eq!(got, m(least), "beating {bid} (D {target_d} A {target_a}) at D {own_d} A {own_a}");
            assert!(ExpectedValue::of(got, own) > target, "the least bid beats the target");
            assert!(ExpectedValue::of(got - Money::CENT, own) <= target, "a cent less does not");
        }
    }
}
