//! The reading machinery: a [`Section`] is one TOML table being read, a [`Field`] one value with its path,
//! and [`Problems`] every mistake found so far. The `read_*` functions of the other files are written with these.

use std::env::VarError;
use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, Weekday};
use rust_decimal::Decimal;
use toml::{Table, Value};

use super::{Secret, KNOWN_RETURN_REASONS};
use crate::domain::lead::US_STATES;
use crate::domain::money::Money;

/// The problems found so far, each `"<path>: <what is wrong>"`.
#[derive(Default)]
pub(super) struct Problems(pub(super) Vec<String>);

impl Problems {
    pub(super) fn add(&mut self, path: &str, what: impl fmt::Display) {
        self.0.push(format!("{path}: {what}"));
    }
}

/// Integer keys without a natural upper bound are stored as `u32`; larger values are mistakes, not limits.
pub(super) const U32_MAX: u64 = u32::MAX as u64;

/// One TOML table being read. Every key asked for is remembered; [`Section::finish`] reports the rest.
pub(super) struct Section<'t> {
    pub(super) path: String,
    table: &'t Table,
    asked: Vec<&'static str>,
}

impl<'t> Section<'t> {
    pub(super) fn new(path: String, table: &'t Table) -> Self {
        Section { path, table, asked: Vec::new() }
    }

    pub(super) fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The key's value if present.
    pub(super) fn field(&mut self, key: &'static str) -> Option<Field<'t>> {
        self.asked.push(key);
        self.table.get(key).map(|value| Field { path: self.child(key), value })
    }

    /// A key that must be present.
    pub(super) fn need(&mut self, key: &'static str, p: &mut Problems) -> Option<Field<'t>> {
        let field = self.field(key);
        if field.is_none() {
            p.add(&self.child(key), "is required");
        }
        field
    }

    /// A key with a default: `None` only when it is present and wrong.
    pub(super) fn with_default<T>(
        &mut self,
        key: &'static str,
        default: T,
        read: impl FnOnce(&Field<'t>) -> Option<T>,
    ) -> Option<T> {
        match self.field(key) {
            Some(field) => read(&field),
            None => Some(default),
        }
    }

    /// A key without a default: `Some(None)` when absent, `None` when present and wrong.
    pub(super) fn optional<T>(
        &mut self,
        key: &'static str,
        read: impl FnOnce(&Field<'t>) -> Option<T>,
    ) -> Option<Option<T>> {
        match self.field(key) {
            Some(field) => read(&field).map(Some),
            None => Some(None),
        }
    }

    /// Reports every key nobody asked for: most often a typo that would otherwise silently fall back to a default.
    pub(super) fn finish(self, p: &mut Problems) {
        for key in self.table.keys() {
            if !self.asked.contains(&key.as_str()) {
                p.add(&self.child(key), "unknown key");
            }
        }
    }
}

/// One value and where it sits in the file.
pub(super) struct Field<'t> {
    pub(super) path: String,
    pub(super) value: &'t Value,
}

impl<'t> Field<'t> {
    pub(super) fn fail<T>(&self, what: impl fmt::Display, p: &mut Problems) -> Option<T> {
        p.add(&self.path, what);
        None
    }

    pub(super) fn wrong_type<T>(&self, expected: &str, p: &mut Problems) -> Option<T> {
        let found = match self.value {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date/time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        };
        self.fail(format!("must be {expected}, found {found}"), p)
    }

    pub(super) fn str(&self, p: &mut Problems) -> Option<&'t str> {
        match self.value {
            Value::String(s) => Some(s),
            _ => self.wrong_type("a string", p),
        }
    }

    pub(super) fn non_empty_str(&self, p: &mut Problems) -> Option<String> {
        match self.str(p)? {
            "" => self.fail("must not be empty", p),
            s => Some(s.to_owned()),
        }
    }

    pub(super) fn bool(&self, p: &mut Problems) -> Option<bool> {
        match self.value {
            Value::Boolean(b) => Some(*b),
            _ => self.wrong_type("true or false", p),
        }
    }

    pub(super) fn int(&self, p: &mut Problems) -> Option<i64> {
        match self.value {
            Value::Integer(n) => Some(*n),
            _ => self.wrong_type("an integer", p),
        }
    }

    /// An integer in `min..=max`.
    pub(super) fn uint(&self, min: u64, max: u64, p: &mut Problems) -> Option<u64> {
        let n = self.int(p)?;
        match u64::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => self.fail(range_rule(n, min, max), p),
        }
    }

    /// An integer from `min` up to `u32::MAX`.
    pub(super) fn u32_from(&self, min: u32, p: &mut Problems) -> Option<u32> {
        self.uint(min.into(), U32_MAX, p).and_then(|n| u32::try_from(n).ok())
    }

    /// A share from 0 to 1 (`allow_zero`) or from just above 0 to 1.
    pub(super) fn share(&self, allow_zero: bool, p: &mut Problems) -> Option<f64> {
        let n = match self.value {
            Value::Float(f) => *f,
            // Precision is no concern for 0 and 1, the only integers in range.
            Value::Integer(i) => *i as f64,
            _ => return self.wrong_type("a number", p),
        };
        let in_range = if allow_zero { (0.0..=1.0).contains(&n) } else { n > 0.0 && n <= 1.0 };
        match (in_range, allow_zero) {
            (true, _) => Some(n),
            (false, true) => self.fail("must be from 0 to 1", p),
            (false, false) => self.fail("must be > 0 and at most 1", p),
        }
    }

    /// A number as exact decimal text: a string as written, an integer, or a float by its shortest round-trip
    /// text, so `12.5` reads as exactly 12.5 rather than the nearest binary fraction.
    pub(super) fn decimal_text(&self, expected: &str, p: &mut Problems) -> Option<String> {
        match self.value {
            Value::String(s) => Some(s.trim().to_owned()),
            Value::Integer(n) => Some(n.to_string()),
            Value::Float(f) => Some(f.to_string()),
            _ => self.wrong_type(expected, p),
        }
    }

    /// A percentage from 0 to 100.
    pub(super) fn percent(&self, p: &mut Problems) -> Option<Decimal> {
        let text = self.decimal_text("a percentage such as \"10\"", p)?;
        match Decimal::from_str(&text) {
            Ok(d) if d >= Decimal::ZERO && d <= Decimal::ONE_HUNDRED => Some(d),
            Ok(_) => self.fail("must be from 0 to 100", p),
            Err(_) => self.fail("must be a percentage such as \"10\" or \"2.5\"", p),
        }
    }

    pub(super) fn money(&self, p: &mut Problems) -> Option<Money> {
        let text = self.decimal_text("an amount such as \"12.50\"", p)?;
        match Money::parse_text(&text) {
            Ok(money) => Some(money),
            Err(e) => self.fail(e, p),
        }
    }

    pub(super) fn positive_money(&self, p: &mut Problems) -> Option<Money> {
        match self.money(p)? {
            money if money > Money::ZERO => Some(money),
            _ => self.fail("must be > 0", p),
        }
    }

    /// A string that names one of `options`.
    pub(super) fn choice<T: Copy>(&self, options: &[(&str, T)], p: &mut Problems) -> Option<T> {
        let text = self.str(p)?;
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<String> = options.iter().map(|(name, _)| format!("\"{name}\"")).collect();
        self.fail(format!("must be one of {} (found \"{text}\")", names.join(", ")), p)
    }

    pub(super) fn secret(&self, p: &mut Problems) -> Option<Secret> {
        match resolve_secret(self.str(p)?) {
            Ok(secret) => Some(Secret::new(secret)),
            Err(why) => self.fail(why, p),
        }
    }

    pub(super) fn table(&self, p: &mut Problems) -> Option<Section<'t>> {
        match self.value {
            Value::Table(table) => Some(Section::new(self.path.clone(), table)),
            _ => self.wrong_type("a table", p),
        }
    }

    /// The entries of a table whose keys are free-form (headers, field maps).
    pub(super) fn entries(&self, p: &mut Problems) -> Option<Vec<(&'t str, Field<'t>)>> {
        match self.value {
            Value::Table(table) => Some(
                table
                    .iter()
                    .map(|(k, value)| (k.as_str(), Field { path: format!("{}.{k}", self.path), value }))
                    .collect(),
            ),
            _ => self.wrong_type("a table", p),
        }
    }

    /// An array, each item read by `read`. Every item is read even after one fails, to report them all.
    pub(super) fn list<T>(
        &self,
        p: &mut Problems,
        mut read: impl FnMut(&Field<'t>, &mut Problems) -> Option<T>,
    ) -> Option<Vec<T>> {
        let Value::Array(items) = self.value else {
            return self.wrong_type("an array", p);
        };
        let read: Vec<Option<T>> = items
            .iter()
            .enumerate()
            .map(|(i, value)| read(&Field { path: format!("{}[{i}]", self.path), value }, p))
            .collect();
        read.into_iter().collect()
    }

    pub(super) fn non_empty<T>(&self, items: Vec<T>, p: &mut Problems) -> Option<Vec<T>> {
        if items.is_empty() {
            self.fail("must not be empty", p)
        } else {
            Some(items)
        }
    }

    pub(super) fn id(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if super::is_valid_id(text) {
            Some(text.to_owned())
        } else {
            self.fail("must be 1 to 64 characters of a-z, 0-9, '_' and '-'", p)
        }
    }

    /// A lead key, as in API.md section 1.
    pub(super) fn lead_key(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if is_lead_key(text) {
            Some(text.to_owned())
        } else {
            self.fail(format!("\"{text}\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')"), p)
        }
    }

    pub(super) fn socket_addr(&self, p: &mut Problems) -> Option<SocketAddr> {
        match self.str(p)?.parse() {
            Ok(addr) => Some(addr),
            Err(_) => self.fail("must be an address and port such as \"127.0.0.1:8080\"", p),
        }
    }

    /// An absolute http(s) URL. The text is not echoed back: it may carry credentials.
    pub(super) fn url(&self, p: &mut Problems) -> Option<hyper::Uri> {
        match self.str(p)?.parse::<hyper::Uri>() {
            Ok(uri)
                if matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some_and(|h| !h.is_empty()) =>
            {
                Some(uri)
            }
            _ => self.fail("must be an http:// or https:// URL with a host, such as \"https://buyer.example/ping\"", p),
        }
    }

    /// A JSON Pointer (RFC 6901) into a buyer's response.
    pub(super) fn pointer(&self, p: &mut Problems) -> Option<String> {
        match self.str(p)? {
            text if text.is_empty() || text.starts_with('/') => Some(text.to_owned()),
            _ => self.fail("must be a JSON Pointer: \"\" or a path starting with \"/\" such as \"/bid\"", p),
        }
    }

    /// A string, number or boolean, as the JSON value it is compared with or sent as.
    pub(super) fn scalar(&self, p: &mut Problems) -> Option<serde_json::Value> {
        match (self.value, json_scalar(self.value)) {
            (_, Some(json)) => Some(json),
            (Value::Float(_), None) => self.fail("must be a finite number", p),
            _ => self.wrong_type("a string, number or boolean", p),
        }
    }

    pub(super) fn date(&self, p: &mut Problems) -> Option<NaiveDate> {
        let date = match self.value {
            Value::Datetime(dt) if dt.time.is_none() => {
                dt.date.and_then(|d| NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into()))
            }
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
            _ => None,
        };
        date.or_else(|| self.fail("must be a date such as 2026-11-23", p))
    }

    pub(super) fn hhmm(&self, p: &mut Problems) -> Option<NaiveTime> {
        let text = self.str(p)?;
        // chrono accepts "8:00"; the file format is strictly two digits each, as written in the docs.
        let shaped = text.len() == 5 && text.as_bytes().get(2) == Some(&b':');
        match NaiveTime::parse_from_str(text, "%H:%M") {
            Ok(time) if shaped => Some(time),
            _ => self.fail("must be a time of day \"HH:MM\" such as \"08:00\"", p),
        }
    }

    pub(super) fn timezone(&self, p: &mut Problems) -> Option<chrono_tz::Tz> {
        let text = self.str(p)?;
        match chrono_tz::Tz::from_str(text) {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.fail(format!("unknown timezone \"{text}\" (use an IANA name such as \"America/New_York\")"), p)
            }
        }
    }

    pub(super) fn weekday(&self, p: &mut Problems) -> Option<Weekday> {
        self.choice(&WEEKDAYS, p)
    }

    /// A US state or DC, normalized to upper case.
    pub(super) fn state(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        let upper = text.to_ascii_uppercase();
        if US_STATES.contains(&upper.as_str()) {
            Some(upper)
        } else {
            self.fail(format!("\"{text}\" is not a US state or DC (two letters such as \"CA\")"), p)
        }
    }

    /// Five digits (one ZIP code) or three (a ZIP prefix).
    pub(super) fn postal_code(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if matches!(text.len(), 3 | 5) && text.bytes().all(|b| b.is_ascii_digit()) {
            Some(text.to_owned())
        } else {
            self.fail(format!("\"{text}\" must be 5 digits (a ZIP code) or 3 digits (a ZIP prefix)"), p)
        }
    }

    pub(super) fn return_reason(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if KNOWN_RETURN_REASONS.contains(&text) {
            Some(text.to_owned())
        } else {
            self.fail(format!("\"{text}\" is not a return reason (one of {})", KNOWN_RETURN_REASONS.join(", ")), p)
        }
    }
}

/// The message for an integer out of `min..=max`; an upper bound of `u32::MAX` is a storage limit, not a rule.
pub(super) fn range_rule(n: i64, min: u64, max: u64) -> String {
    if max < U32_MAX {
        return format!("must be between {min} and {max}");
    }
    if i128::from(n) > i128::from(max) {
        return format!("must be at most {max}");
    }
    match min {
        0 => "must not be negative".to_owned(),
        1 => "must be > 0".to_owned(),
        _ => format!("must be >= {min}"),
    }
}

/// `"env:VAR"` is read from the environment; anything else is the secret itself. Messages name the variable,
/// never the value.
pub(super) fn resolve_secret(raw: &str) -> Result<String, String> {
    let Some(var) = raw.strip_prefix("env:") else {
        return if raw.is_empty() { Err("must not be empty".to_owned()) } else { Ok(raw.to_owned()) };
    };
    if var.is_empty() {
        return Err("names no environment variable (write \"env:VAR_NAME\")".to_owned());
    }
    match std::env::var(var) {
        Ok(value) if value.is_empty() => Err(format!("environment variable {var} is empty")),
        Ok(value) => Ok(value),
        Err(VarError::NotPresent) => Err(format!("environment variable {var} is not set")),
        Err(VarError::NotUnicode(_)) => Err(format!("environment variable {var} is not valid UTF-8")),
    }
}

pub(super) fn is_lead_key(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// TOML scalars as JSON. Floats go through their text because serde_json keeps numbers as text
/// (`arbitrary_precision`); `None` for tables, arrays, dates and non-finite floats.
pub(super) fn json_scalar(value: &Value) -> Option<serde_json::Value> {
    match value {
        Value::String(s) => Some(serde_json::Value::String(s.clone())),
        Value::Integer(n) => Some(serde_json::Value::Number((*n).into())),
        Value::Float(f) => {
            serde_json::from_str::<serde_json::Number>(&f.to_string()).ok().map(serde_json::Value::Number)
        }
        Value::Boolean(b) => Some(serde_json::Value::Bool(*b)),
        Value::Datetime(_) | Value::Array(_) | Value::Table(_) => None,
    }
}

/// Weekdays as the config writes them.
pub(super) const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];
