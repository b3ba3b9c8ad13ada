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
/// Most digits before the point of an amount read back from the journal. Amounts from outside have at most
/// twelve; this leaves room for what arithmetic makes of them, while keeping every sum of up to billions of
/// them exact: an amount near the decimal type's 28 digits made the ledger's sums round (found by the
/// `ledger` fuzz target), so its accounts no longer summed to zero.
const MAX_STORED_INTEGER_DIGITS: u32 = 15;
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

    /// The amount in whole cents (money always has at most two decimals and fifteen digits before the point,
    /// so it fits), for stores that count in integers (Redis in cluster mode) and exact integer arithmetic
    /// (expected values).
    pub fn cents(self) -> i64 {
        let mut scaled = self.0;
        scaled.rescale(2);
        i64::try_from(scaled.mantissa()).unwrap_or(if scaled.is_sign_negative() { i64::MIN } else { i64::MAX })
    }

    /// `numerator / denominator` cents, rounded down to the cent: how a fraction of an amount (an expected
    /// value, a price weighted by return rates) becomes money. A zero denominator, or a quotient beyond any
    /// amount an `i64` of cents holds (92 trillion), saturates at that maximum: no bid reaches it.
    pub fn from_cents_fraction_floor(numerator: u128, denominator: u128) -> Money {
        let cents = numerator.checked_div(denominator).unwrap_or(u128::MAX);
        Money::from_cents(i64::try_from(cents).unwrap_or(i64::MAX))
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
        parse_plain(body)
    }

    /// Parses a JSON money value: a string or a number (kept as its text, never as a float).
    pub fn parse_json(value: &serde_json::Value) -> Result<Money, MoneyError> {
        match value {
            serde_json::Value::String(s) => Money::parse_text(s),
            // With `arbitrary_precision` a number is kept as its text: read it as such.
            serde_json::Value::Number(n) => Money::parse_text(n.as_str()),
            _ => Err(MoneyError::NotANumber),
        }
    }
}

/// Unsigned decimal text without an exponent (`"12.5"`, `".5"`, `"5."`), rounded down to the cent.
fn parse_plain(body: &str) -> Result<Money, MoneyError> {
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if (int_part.is_empty() && frac_part.is_empty()) || !all_digits(int_part) || !all_digits(frac_part) {
        return Err(MoneyError::NotANumber);
    }
    let int_digits = int_part.trim_start_matches('0');
    if int_digits.len() > MAX_INTEGER_DIGITS {
        return Err(MoneyError::TooLarge);
    }
    // Whole cents from the digits: the integer part (at most twelve digits, so no overflow) and the first two
    // decimals. Dropping the rest is the exact round-down, whatever their number.
    let digit = |d: Option<&u8>| d.map_or(0, |d| i64::from(d - b'0'));
    let whole = int_digits.bytes().fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    let decimals = frac_part.as_bytes();
    Ok(Money::from_cents(whole * 100 + digit(decimals.first()) * 10 + digit(decimals.get(1))))
}

/// Unsigned text with an exponent (`"1.239E1"`), read by moving the decimal point in the text and then as
/// plain text. `Decimal::from_scientific` is not used: it reads `_` between digits, so `"4__e4"` was a bid of
/// 40000.00 (found by the `buyer_answer` fuzz target), and it rounds a mantissa of more than 28 digits to
/// nearest, so 99.999… written with an exponent was 100.00.
fn parse_scientific(body: &str) -> Result<Money, MoneyError> {
    let (mantissa, exponent) = body.split_once(['e', 'E']).ok_or(MoneyError::NotANumber)?;
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let exponent_digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
    let shape_ok = !(int_part.is_empty() && frac_part.is_empty())
        && all_digits(int_part)
        && all_digits(frac_part)
        && !exponent_digits.is_empty()
        && all_digits(exponent_digits);
    if !shape_ok {
        return Err(MoneyError::NotANumber);
    }
    // The value is 0.<significant> × 10^point.
    let digits = format!("{int_part}{frac_part}");
    let significant = digits.trim_start_matches('0');
    if significant.is_empty() {
        return Ok(Money::ZERO);
    }
    // An exponent too long for an i64 is far beyond either bound below.
    let exponent: i64 = exponent.parse().unwrap_or(if exponent.starts_with('-') { i64::MIN } else { i64::MAX });
    let leading_zeros = (digits.len() - significant.len()) as i64;
    let point = (int_part.len() as i64 - leading_zeros).saturating_add(exponent);
    if point > 10 {
        // At least 10^10, over the bound below.
        return Err(MoneyError::TooLarge);
    }
    if point < -1 {
        // Under a cent.
        return Ok(Money::ZERO);
    }
    let plain = match usize::try_from(point) {
        Ok(point) if point >= significant.len() => format!("{significant}{}", "0".repeat(point - significant.len())),
        Ok(point) => format!("{}.{}", &significant[..point], &significant[point..]),
        Err(_) => format!("0.0{significant}"),
    };
    let value = parse_plain(&plain)?;
    if value.0 > Decimal::from(MAX_EXPONENT_VALUE) {
        return Err(MoneyError::TooLarge);
    }
    Ok(value)
}

fn all_digits(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.0;
        shown.rescale(2);
        match i64::try_from(shown.mantissa()) {
            Ok(cents) => f.write_str(Cents::new(cents, shown.is_sign_negative()).as_str()),
            // Beyond any amount the ledger holds (see MAX_STORED_INTEGER_DIGITS): the decimal's own text.
            Err(_) => write!(f, "{shown}"),
        }
    }
}

/// An amount in whole cents written with exactly two decimals, on the stack: every price in an auction's
/// audit trail, held ping and ledger entry is written this way, and the decimal type's general formatting
/// cost several times as much (BENCHMARKS.md, issue 19).
struct Cents {
    text: [u8; 24],
    start: usize,
}

impl Cents {
    /// `negative` is the decimal's sign, which a zero may carry too ("-0.00", as the decimal writes it).
    fn new(cents: i64, negative: bool) -> Cents {
        let mut text = [0u8; 24];
        let mut start = text.len();
        let mut push = |byte: u8| {
            start -= 1;
            text[start] = byte;
        };
        let mut rest = cents.unsigned_abs();
        for _ in 0..2 {
            push(b'0' + (rest % 10) as u8);
            rest /= 10;
        }
        push(b'.');
        loop {
            push(b'0' + (rest % 10) as u8);
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        if negative {
            push(b'-');
        }
        Cents { text, start }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, a point and a sign were written.
        std::str::from_utf8(&self.text[self.start..]).expect("cents are ASCII")
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
/// Unlike [`Money::parse_text`] it accepts negative amounts, because ledger postings are signed; like it, it
/// bounds them (see [`MAX_STORED_INTEGER_DIGITS`]).
impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        let value = Decimal::from_str(&text).map_err(serde::de::Error::custom)?;
        if value.abs() >= Decimal::from(10_i64.pow(MAX_STORED_INTEGER_DIGITS)) {
            return Err(serde::de::Error::custom(format!(
                "amount {text} has more than {MAX_STORED_INTEGER_DIGITS} digits before the decimal point"
            )));
        }
        Ok(Money::from_decimal_floor(value))
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

    #[test]
    fn shows_what_the_decimal_shows_at_two_places() {
        let reference = |money: Money| {
            let mut shown = money.0;
            shown.rescale(2);
            shown.to_string()
        };
        let mut amounts = vec![
            Money::ZERO,
            -Money::ZERO,
            Money::from_cents(0),
            -Money::from_cents(0),
            Money(Decimal::new(5, 0)),
            Money(Decimal::new(-7, 1)),
            Money(Decimal::new(123_456, 4)),
            Money::from_cents(i64::MAX),
            Money::from_cents(i64::MIN + 1),
            Money(Decimal::from_i128_with_scale(i128::from(i64::MAX) * 1000, 2)),
        ];
        for cents in [1, 9, 10, 99, 100, 101, 999, 1_000, 1_250, 99_999_999_999_999_999, 100_000_000_000_000_000] {
            amounts.extend([Money::from_cents(cents), Money::from_cents(-cents)]);
        }
        let mut cents: i64 = 1;
        while let Some(next) = cents.checked_mul(7) {
            amounts.extend([Money::from_cents(next + 3), Money::from_cents(-(next + 3))]);
            cents = next;
        }
        for money in amounts {
            assert_eq!(money.to_string(), reference(money), "{:?}", money.0);
            assert_eq!(serde_json::to_string(&money).unwrap(), format!("\"{}\"", reference(money)));
        }
    }

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
            // Separators and half-written exponents are no numbers (found by the buyer_answer fuzz target).
            ("4__e4", MoneyError::NotANumber),
            ("1_0e1", MoneyError::NotANumber),
            ("1e1_0", MoneyError::NotANumber),
            ("1e", MoneyError::NotANumber),
            ("e5", MoneyError::NotANumber),
            (".e5", MoneyError::NotANumber),
            ("1e-+2", MoneyError::NotANumber),
            ("1e99999999999999999999", MoneyError::TooLarge),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input), Err(expected), "input {input:?}");
        }
    }

    #[test]
    fn exponents_move_the_point_exactly_however_long_the_mantissa() {
        let cases = [
            // 32 nines: a 28-digit decimal would round this up to 100.00.
            ("0.99999999999999999999999999999999e2", "99.99"),
            ("9.9999999999999999999999999999999E1", "99.99"),
            ("1e+2", "100.00"),
            ("1e-2", "0.01"),
            ("0.0012e1", "0.01"),
            ("00012e-1", "1.20"),
            ("5e-3", "0.00"),
            ("0e999", "0.00"),
            ("1e-99999999999999999999", "0.00"),
            ("1e9", "1000000000.00"),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input).as_deref(), Ok(expected), "input {input:?}");
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
    fn fractions_of_cents_round_down_and_cents_are_exact() {
        let cases = [
            // (numerator cents, denominator, money)
            (1000 * 19, 20, "9.50"), // 10.00 × 19/20
            (1000 * 18, 21, "8.57"), // 8.5714…
            (857 * 20, 19, "9.02"),  // 9.0210…
            (1, 3, "0.00"),          // a third of a cent
            (0, 7, "0.00"),
            (u128::MAX, 1, "92233720368547758.07"), // saturates instead of wrapping
            (5, 0, "92233720368547758.07"),
        ];
        for (numerator, denominator, money) in cases {
            let got = Money::from_cents_fraction_floor(numerator, denominator);
            assert_eq!(got.to_string(), money, "{numerator} / {denominator}");
        }
        assert_eq!(Money::parse_text("12.5").unwrap().cents(), 1250);
        assert_eq!(Money::from_cents(-7).cents(), -7);
        assert_eq!(Money::parse_text("0").unwrap().cents(), 0);
    }

    #[test]
    fn stored_amounts_read_back_within_their_bound() {
        let read = |text: &str| serde_json::from_str::<Money>(&format!("\"{text}\""));
        assert_eq!(read("-12.50").unwrap(), Money::from_cents(-1250));
        assert_eq!(read("999999999999999.99").unwrap().to_string(), "999999999999999.99");
        for huge in ["1000000000000000.00", "-1000000000000000", "1770860613586546005142666807.1"] {
            assert!(read(huge).unwrap_err().to_string().contains("more than 15 digits"), "{huge}");
        }
    }

    #[test]
    fn output_always_has_two_decimals() {
        assert_eq!(Money::from_cents(5).to_string(), "0.05");
        assert_eq!((Money::from_cents(100) - Money::from_cents(250)).to_string(), "-1.50");
        assert_eq!(serde_json::to_string(&Money::from_cents(1200)).unwrap(), "\"12.00\"");
    }

    /// What plain text read as before it was read digit by digit: through a decimal (the reference).
    fn through_a_decimal(text: &str) -> Result<Money, MoneyError> {
        let (int_part, frac_part) = text.split_once('.').unwrap_or((text, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(MoneyError::NotANumber);
        }
        if int_part.trim_start_matches('0').len() > MAX_INTEGER_DIGITS {
            return Err(MoneyError::TooLarge);
        }
        let int_part = if int_part.is_empty() { "0" } else { int_part };
        let cents_text = format!("{int_part}.{:0<2}", &frac_part[..frac_part.len().min(2)]);
        Ok(Money::from_decimal_floor(Decimal::from_str(&cents_text).unwrap()))
    }

    proptest::proptest! {
        #[test]
        fn plain_text_reads_as_its_decimal_rounded_down(
            int_part in "0{0,3}[0-9]{0,14}",
            frac_part in "[0-9]{0,30}",
            point in proptest::bool::ANY,
        ) {
            let text = if point { format!("{int_part}.{frac_part}") } else { int_part };
            proptest::prop_assert_eq!(Money::parse_text(&text), through_a_decimal(&text), "{}", text);
        }
    }
}
