//! Money: an exact decimal amount at cent precision. A float never becomes `Money`.
//!
//! Every rounding rule of the product lives here: input is rounded **down** to the cent, a seller's payout
//! is the price less its margin rounded down to the cent, and output always shows exactly two decimals.

use std::fmt;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact amount of money in cents precision (scale 2). Signed, because ledger postings are signed;
/// values that arrive from outside are never negative (see [`Money::parse_text`]).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(Decimal);

/// Why a money value from outside was refused; the message is shown to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("must be a decimal amount such as \"12.50\"")]
    NotANumber,
    #[error("must not be negative")]
    Negative,
    #[error("is too large (at most 12 digits before the decimal point)")]
    TooLarge,
}

/// Largest amount accepted from outside: twelve digits before the point.
const MAX_INTEGER_DIGITS: usize = 12;
/// Numbers written with an exponent must stay at or below this magnitude.
const MAX_EXPONENT_VALUE: i64 = 1_000_000_000;

impl Money {
    /// Zero.
    pub const ZERO: Money = Money(Decimal::ZERO);
    /// One cent, the smallest step of any price (second-price clearing adds it).
    pub const CENT: Money = Money(Decimal::from_parts(1, 0, 0, false, 2));

    /// Builds money from a decimal, rounding down (toward negative infinity) to the cent.
    pub fn from_decimal_floor(value: Decimal) -> Money {
        let mut rounded = value.round_dp_with_strategy(2, RoundingStrategy::ToNegativeInfinity);
        rounded.rescale(2);
        Money(rounded)
    }

    /// Amount from whole cents, for tests and arithmetic on counts.
    pub fn from_cents(cents: i64) -> Money {
        Money(Decimal::new(cents, 2))
    }

    /// The underlying exact decimal.
    pub fn as_decimal(self) -> Decimal {
        self.0
    }

    /// True for amounts below zero.
    pub fn is_negative(self) -> bool {
        self.0.is_sign_negative() && !self.0.is_zero()
    }

    /// True for exactly zero.
    pub fn is_zero(self) -> bool {
        self.0.is_zero()
    }

    /// The share of this amount a seller keeps when the platform takes `margin_percent` percent:
    /// `price × (100 − margin) / 100`, rounded down to the cent. The one place payouts are computed.
    pub fn less_margin(self, margin_percent: Decimal) -> Money {
        let kept = Decimal::ONE_HUNDRED - margin_percent;
        let payout = self.0 * kept / Decimal::ONE_HUNDRED;
        Money::from_decimal_floor(payout)
    }

    /// Parses an amount written as text by a seller, buyer or operator (`"12.5"`, `"12.50"`, `"1e2"`),
    /// exactly and rounded down to the cent.
    pub fn parse_text(text: &str) -> Result<Money, MoneyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MoneyError::NotANumber);
        }
        if let Some(rest) = text.strip_prefix('-') {
            // "-0" is still zero, but anything written negative is refused: no amount from outside is signed.
            return match Money::parse_text(rest) {
                Ok(_) => Err(MoneyError::Negative),
                Err(e) => Err(e),
            };
        }
        let body = text.strip_prefix('+').unwrap_or(text);
        if body.contains(['e', 'E']) {
            return parse_scientific(body);
        }
        let (int_part, frac_part) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty()) || !all_digits(int_part) || !all_digits(frac_part) {
            return Err(MoneyError::NotANumber);
        }
        if int_part.trim_start_matches('0').len() > MAX_INTEGER_DIGITS {
            return Err(MoneyError::TooLarge);
        }
        // Truncating the text to two decimals is the exact round-down, and keeps any number of input
        // decimals from overflowing the decimal type.
        let cents_text = format!(
            "{}.{:0<2}",
            if int_part.is_empty() { "0" } else { int_part },
            &frac_part[..frac_part.len().min(2)]
        );
        Decimal::from_str(&cents_text).map(Money::from_decimal_floor).map_err(|_| MoneyError::NotANumber)
    }

    /// Parses a JSON money value: a string or a number (kept as its text, never as a float).
    pub fn parse_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            serde_json::Value::String(s) => Money::parse_text(s),
            serde_json::Value::Number(n) => Money::parse_text(&n.to_string()),
            _ => Err(MoneyError::NotANumber),
        }
    }
}

fn parse_scientific(body: &str) -> Result<Money, MoneyError> {
    let value = Decimal::from_scientific(body).map_err(|_| MoneyError::NotANumber)?;
    if value > Decimal::from(MAX_EXPONENT_VALUE) {
        return Err(MoneyError::TooLarge);
    }
    if value.is_sign_negative() && !value.is_zero() {
        return Err(MoneyError::Negative);
    }
    Ok(Money::from_decimal_floor(value))
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0;
        shown.rescale(2);
        write!(f, "{shown}")
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Reads back what [`Serialize`] wrote (the journal's records): a signed decimal string with two decimals.
/// Unlike [`Money::parse_text`] it accepts negative amounts, because ledger postings are signed.
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Decimal::from_str(&text).map(Money::from_decimal_floor).map_err(serde::de::Error::custom)
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        self.0 -= rhs.0;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl std::iter::Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Result<String, MoneyError> {
        Money::parse_text(s).map(|m| m.to_string())
    }

    #[test]
    fn text_input_is_exact_and_rounded_down_to_the_cent() {
        let cases = [
            ("12.5", "12.50"),
            ("12.50", "12.50"),
            ("12.509", "12.50"),
            ("0.999", "0.99"),
            ("7", "7.00"),
            (".5", "0.50"),
            ("5.", "5.00"),
            ("0", "0.00"),
            ("+3.10", "3.10"),
            ("1e2", "100.00"),
            ("1.239E1", "12.39"),
            ("123456789012.99", "123456789012.99"),
            ("0.1234567890123456789012345678901234", "0.12"),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input).as_deref(), Ok(expected), "input {input:?}");
        }
    }

    #[test]
    fn invalid_text_is_refused_with_a_reason() {
        let cases = [
            ("-1", MoneyError::Negative),
            ("-0.01", MoneyError::Negative),
            ("NaN", MoneyError::NotANumber),
            ("inf", MoneyError::NotANumber),
            ("", MoneyError::NotANumber),
            (".", MoneyError::NotANumber),
            ("1.2.3", MoneyError::NotANumber),
            ("12,50", MoneyError::NotANumber),
            ("1e10", MoneyError::TooLarge),
            ("1234567890123", MoneyError::TooLarge),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn json_numbers_convert_exactly() {
        let value: serde_json::Value = serde_json::from_str(r#"[12.5, 0.29, 1.005, "3.333", true]"#).unwrap();
        let parsed: Vec<_> = value.as_array().unwrap().iter().map(Money::parse_json).collect();
        assert_eq!(parsed[0], Ok(Money::from_cents(1250)));
        // 0.29 is 0.28999… as a binary float; exact conversion keeps it 0.29.
        assert_eq!(parsed[1], Ok(Money::from_cents(29)));
        assert_eq!(parsed[2], Ok(Money::from_cents(100)));
        assert_eq!(parsed[3], Ok(Money::from_cents(333)));
        assert_eq!(parsed[4], Err(MoneyError::NotANumber));
    }

    #[test]
    fn payout_is_price_less_margin_rounded_down() {
        let cases = [
            ("12.50", "10", "11.25"),
            ("10.00", "0", "10.00"),
            ("9.99", "15", "8.49"), // 8.4915
            ("0.01", "10", "0.00"),
            ("33.33", "33.3", "22.23"), // 22.23111
        ];
        for (price, margin, payout) in cases {
            let price = Money::parse_text(price).unwrap();
            let margin = Decimal::from_str(margin).unwrap();
            assert_eq!(price.less_margin(margin).to_string(), payout, "{price} at {margin}%");
        }
    }

    #[test]
    fn output_always_has_two_decimals() {
        assert_eq!(Money::from_cents(5).to_string(), "0.05");
        assert_eq!((Money::from_cents(100) - Money::from_cents(250)).to_string(), "-1.50");
        assert_eq!(serde_json::to_string(&Money::from_cents(1200)).unwrap(), "\"12.00\"");
    }
}
