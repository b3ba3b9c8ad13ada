//! A seller's request body, as raw bytes, through what `POST /v1/ping`, `/v1/post` and `/v1/leads` read
//! before the engine: the JSON object, the envelope fields and the lead.

use gavel::domain::money::Money;
use gavel::http::body::{object_from_body, Envelope};
use serde_json::Value;

use crate::lead::check_lead;
use crate::Outcome;

/// The whole input is the body of a request sent as `application/json`; accepted when its lead parses.
pub fn run(data: &[u8]) -> Outcome {
    let Ok(object) = object_from_body(data, Some("application/json")) else { return Outcome::Refused };
    let mut envelope = Envelope(object);
    // The envelope fields the seller handlers read (src/http/seller.rs); each is a value or a clean error.
    let _ = envelope.required_str("campaign");
    let _ = envelope.required_str("ping_id");
    let _ = envelope.optional_str("source");
    let _ = envelope.optional_positive_int("deadline_ms");
    let _ = envelope.flag("test");
    if let Ok(Some(min_payout)) = envelope.optional_money("min_payout") {
        check_money_from_outside(min_payout, envelope.0.get("min_payout"));
    }
    match envelope.take_object("lead") {
        Ok(lead) => check_lead(&lead),
        Err(_) => Outcome::Refused,
    }
}

/// Money that came from outside is never negative, has exactly two decimals, and is the exact value sent,
/// rounded down to the cent (see [`exact_cents`]).
pub fn check_money_from_outside(money: Money, sent: Option<&Value>) {
    assert!(!money.is_negative(), "money from outside is negative: {money}");
    let shown = money.to_string();
    let decimals = shown.split_once('.').map(|(_, d)| d.len());
    assert_eq!(decimals, Some(2), "money is shown with two decimals: {shown}");
    if let Some(expected) = sent.and_then(money_text).and_then(|text| exact_cents(&text)) {
        assert_eq!(cents_of(money), expected, "{sent:?} read as {money}");
    }
}

/// The text of a JSON money value: a string, or a number as written (serde_json keeps its text).
pub fn money_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// The whole cents of a non-negative amount, as decimal digits without leading zeros ("0" for zero).
pub fn cents_of(money: Money) -> String {
    let digits: String = money.to_string().chars().filter(char::is_ascii_digit).collect();
    strip_zeros(&digits)
}

/// An oracle for money that shares no code with `Money`: the exact value of a decimal text
/// (`[+-]digits[.digits][e[+-]digits]`), rounded down to whole cents, as digits. Works on the digits as text,
/// so no float and no fixed-size integer is involved. `None` for other text, a negative non-zero value, or an
/// exponent too far out to matter.
pub fn exact_cents(text: &str) -> Option<String> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.strip_prefix('+').unwrap_or(e).parse::<i64>().ok()?),
        None => (body, 0),
    };
    let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty()) || !all_digits(int_part) || !all_digits(frac_part) {
        return None;
    }
    if !(-64..=64).contains(&exponent) {
        return None;
    }
    // value = digits × 10^(exponent − |frac|); in cents, shift two more places.
    let digits = format!("{int_part}{frac_part}");
    let shift = exponent - frac_part.len() as i64 + 2;
    let cents = if shift >= 0 {
        format!("{digits}{}", "0".repeat(shift as usize))
    } else {
        let keep = digits.len().saturating_sub(shift.unsigned_abs() as usize);
        digits[..keep].to_owned()
    };
    let cents = strip_zeros(&cents);
    let any_value = digits.bytes().any(|b| b != b'0');
    if negative && any_value {
        return None;
    }
    Some(cents)
}

fn strip_zeros(digits: &str) -> String {
    let stripped = digits.trim_start_matches('0');
    if stripped.is_empty() {
        "0".to_owned()
    } else {
        stripped.to_owned()
    }
}

/// Compares two non-negative amounts given as digit strings without leading zeros.
pub fn digits_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oracle_is_exact() {
        let cases = [
            ("12.5", Some("1250")),
            ("0.29", Some("29")),
            ("0.299", Some("29")),
            ("1e2", Some("10000")),
            ("1.239E1", Some("1239")),
            ("5e-3", Some("0")),
            ("-0", Some("0")),
            ("-0.50", None),
            ("+3.10", Some("310")),
            (".5", Some("50")),
            ("5.", Some("500")),
            (".", None),
            ("1.2.3", None),
            ("NaN", None),
        ];
        for (text, expected) in cases {
            assert_eq!(exact_cents(text).as_deref(), expected, "{text}");
        }
    }
}
