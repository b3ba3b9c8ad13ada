//! Reading the TOML file into [`Config`](super::Config).
//!
//! The text is parsed into a plain `toml::Table` and walked by hand instead of deserialized with serde: a derive
//! stops at the first mistake, while an operator fixing a file wants every problem at once, each with its path
//! (`buyers[2].caps.daily: must be > 0`). A [`Section`] is one table being read: it hands out [`Field`]s that
//! know their path and remembers which keys were asked for, so whatever is left over is an unknown key. Each
//! `read_*` function reads every key of its table before it gives up, so one bad value never hides another.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::env::VarError;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{NaiveDate, NaiveTime, Weekday};
use hyper::header::{self, HeaderName, HeaderValue};
use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use toml::{Table, Value};

use super::{
    AuctionKind, Billing, Buyer, Campaign, Caps, Config, Distribution, Filters, PostalCodes, Ramp, ResponseAdapter,
    ReturnPolicy, Rule, RuleOp, Schedule, Secret, SellMode, Seller, ServerConfig, Sla, KNOWN_RETURN_REASONS,
};
use crate::domain::lead::US_STATES;
use crate::domain::money::Money;

/// Every problem found in a configuration file, each with its path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ConfigErrors {}

/// Parses and validates configuration text, resolving `env:` secrets. `revision` is derived from the bytes.
pub fn parse(text: &str) -> Result<Config, ConfigErrors> {
    let table = text.parse::<Table>().map_err(|e| ConfigErrors(vec![syntax_problem(text, &e)]))?;
    let mut problems = Problems::default();
    let parts = read_root(&table, &mut problems);
    match parts {
        Some(parts) if problems.0.is_empty() => {
            Ok(Config::new(parts.server, parts.sellers, parts.campaigns, parts.buyers, revision_of(text)))
        }
        // A reader only gives up after recording why, so an empty list here would be a bug in this file.
        _ if problems.0.is_empty() => Err(ConfigErrors(vec!["configuration could not be read".to_owned()])),
        _ => Err(ConfigErrors(problems.0)),
    }
}

/// An id of the config file (seller, campaign, buyer) or a node: 1 to 64 characters of `[a-z0-9_-]`.
pub fn is_valid_id(text: &str) -> bool {
    (1..=64).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Reads and parses a configuration file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors(vec![format!("{}: {e}", path.display())]))?;
    let mut config = parse(&text)?;
    config.source = Some(path.to_path_buf());
    Ok(config)
}

/// The revision every sale names: lowercase hex SHA-256 of the exact bytes loaded.
fn revision_of(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// One line for a TOML syntax error; toml's own rendering spans several lines with a source excerpt.
fn syntax_problem(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', "; ");
    match error.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: invalid TOML: {message}")
        }
        None => format!("invalid TOML: {message}"),
    }
}

// === Reading tables and values ===

/// The problems found so far, each `"<path>: <what is wrong>"`.
#[derive(Default)]
struct Problems(Vec<String>);

impl Problems {
    fn add(&mut self, path: &str, what: impl fmt::Display) {
        self.0.push(format!("{path}: {what}"));
    }
}

/// Integer keys without a natural upper bound are stored as `u32`; larger values are mistakes, not limits.
const U32_MAX: u64 = u32::MAX as u64;

/// One TOML table being read. Every key asked for is remembered; [`Section::finish`] reports the rest.
struct Section<'t> {
    path: String,
    table: &'t Table,
    asked: Vec<&'static str>,
}

impl<'t> Section<'t> {
    fn new(path: String, table: &'t Table) -> Self {
        Section { path, table, asked: Vec::new() }
    }

    fn child(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn has(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// The key's value if present.
    fn field(&mut self, key: &'static str) -> Option<Field<'t>> {
        self.asked.push(key);
        self.table.get(key).map(|value| Field { path: self.child(key), value })
    }

    /// A key that must be present.
    fn need(&mut self, key: &'static str, p: &mut Problems) -> Option<Field<'t>> {
        let field = self.field(key);
        if field.is_none() {
            p.add(&self.child(key), "is required");
        }
        field
    }

    /// A key with a default: `None` only when it is present and wrong.
    fn with_default<T>(
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
    fn optional<T>(&mut self, key: &'static str, read: impl FnOnce(&Field<'t>) -> Option<T>) -> Option<Option<T>> {
        match self.field(key) {
            Some(field) => read(&field).map(Some),
            None => Some(None),
        }
    }

    /// Reports every key nobody asked for: most often a typo that would otherwise silently fall back to a default.
    fn finish(self, p: &mut Problems) {
        for key in self.table.keys() {
            if !self.asked.contains(&key.as_str()) {
                p.add(&self.child(key), "unknown key");
            }
        }
    }
}

/// One value and where it sits in the file.
struct Field<'t> {
    path: String,
    value: &'t Value,
}

impl<'t> Field<'t> {
    fn fail<T>(&self, what: impl fmt::Display, p: &mut Problems) -> Option<T> {
        p.add(&self.path, what);
        None
    }

    fn wrong_type<T>(&self, expected: &str, p: &mut Problems) -> Option<T> {
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

    fn str(&self, p: &mut Problems) -> Option<&'t str> {
        match self.value {
            Value::String(s) => Some(s),
            _ => self.wrong_type("a string", p),
        }
    }

    fn non_empty_str(&self, p: &mut Problems) -> Option<String> {
        match self.str(p)? {
            "" => self.fail("must not be empty", p),
            s => Some(s.to_owned()),
        }
    }

    fn bool(&self, p: &mut Problems) -> Option<bool> {
        match self.value {
            Value::Boolean(b) => Some(*b),
            _ => self.wrong_type("true or false", p),
        }
    }

    fn int(&self, p: &mut Problems) -> Option<i64> {
        match self.value {
            Value::Integer(n) => Some(*n),
            _ => self.wrong_type("an integer", p),
        }
    }

    /// An integer in `min..=max`.
    fn uint(&self, min: u64, max: u64, p: &mut Problems) -> Option<u64> {
        let n = self.int(p)?;
        match u64::try_from(n) {
            Ok(n) if (min..=max).contains(&n) => Some(n),
            _ => self.fail(range_rule(n, min, max), p),
        }
    }

    /// An integer from `min` up to `u32::MAX`.
    fn u32_from(&self, min: u32, p: &mut Problems) -> Option<u32> {
        self.uint(min.into(), U32_MAX, p).and_then(|n| u32::try_from(n).ok())
    }

    /// A share from 0 to 1 (`allow_zero`) or from just above 0 to 1.
    fn share(&self, allow_zero: bool, p: &mut Problems) -> Option<f64> {
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
    fn decimal_text(&self, expected: &str, p: &mut Problems) -> Option<String> {
        match self.value {
            Value::String(s) => Some(s.trim().to_owned()),
            Value::Integer(n) => Some(n.to_string()),
            Value::Float(f) => Some(f.to_string()),
            _ => self.wrong_type(expected, p),
        }
    }

    /// A percentage from 0 to 100.
    fn percent(&self, p: &mut Problems) -> Option<Decimal> {
        let text = self.decimal_text("a percentage such as \"10\"", p)?;
        match Decimal::from_str(&text) {
            Ok(d) if d >= Decimal::ZERO && d <= Decimal::ONE_HUNDRED => Some(d),
            Ok(_) => self.fail("must be from 0 to 100", p),
            Err(_) => self.fail("must be a percentage such as \"10\" or \"2.5\"", p),
        }
    }

    fn money(&self, p: &mut Problems) -> Option<Money> {
        let text = self.decimal_text("an amount such as \"12.50\"", p)?;
        match Money::parse_text(&text) {
            Ok(money) => Some(money),
            Err(e) => self.fail(e, p),
        }
    }

    fn positive_money(&self, p: &mut Problems) -> Option<Money> {
        match self.money(p)? {
            money if money > Money::ZERO => Some(money),
            _ => self.fail("must be > 0", p),
        }
    }

    /// A string that names one of `options`.
    fn choice<T: Copy>(&self, options: &[(&str, T)], p: &mut Problems) -> Option<T> {
        let text = self.str(p)?;
        if let Some((_, value)) = options.iter().find(|(name, _)| *name == text) {
            return Some(*value);
        }
        let names: Vec<String> = options.iter().map(|(name, _)| format!("\"{name}\"")).collect();
        self.fail(format!("must be one of {} (found \"{text}\")", names.join(", ")), p)
    }

    fn secret(&self, p: &mut Problems) -> Option<Secret> {
        match resolve_secret(self.str(p)?) {
            Ok(secret) => Some(Secret::new(secret)),
            Err(why) => self.fail(why, p),
        }
    }

    fn table(&self, p: &mut Problems) -> Option<Section<'t>> {
        match self.value {
            Value::Table(table) => Some(Section::new(self.path.clone(), table)),
            _ => self.wrong_type("a table", p),
        }
    }

    /// The entries of a table whose keys are free-form (headers, field maps).
    fn entries(&self, p: &mut Problems) -> Option<Vec<(&'t str, Field<'t>)>> {
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
    fn list<T>(
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

    fn non_empty<T>(&self, items: Vec<T>, p: &mut Problems) -> Option<Vec<T>> {
        if items.is_empty() {
            self.fail("must not be empty", p)
        } else {
            Some(items)
        }
    }

    fn id(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if is_valid_id(text) {
            Some(text.to_owned())
        } else {
            self.fail("must be 1 to 64 characters of a-z, 0-9, '_' and '-'", p)
        }
    }

    /// A lead key, as in API.md section 1.
    fn lead_key(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if is_lead_key(text) {
            Some(text.to_owned())
        } else {
            self.fail(format!("\"{text}\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')"), p)
        }
    }

    fn socket_addr(&self, p: &mut Problems) -> Option<SocketAddr> {
        match self.str(p)?.parse() {
            Ok(addr) => Some(addr),
            Err(_) => self.fail("must be an address and port such as \"127.0.0.1:8080\"", p),
        }
    }

    /// An absolute http(s) URL. The text is not echoed back: it may carry credentials.
    fn url(&self, p: &mut Problems) -> Option<hyper::Uri> {
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
    fn pointer(&self, p: &mut Problems) -> Option<String> {
        match self.str(p)? {
            text if text.is_empty() || text.starts_with('/') => Some(text.to_owned()),
            _ => self.fail("must be a JSON Pointer: \"\" or a path starting with \"/\" such as \"/bid\"", p),
        }
    }

    /// A string, number or boolean, as the JSON value it is compared with or sent as.
    fn scalar(&self, p: &mut Problems) -> Option<serde_json::Value> {
        match (self.value, json_scalar(self.value)) {
            (_, Some(json)) => Some(json),
            (Value::Float(_), None) => self.fail("must be a finite number", p),
            _ => self.wrong_type("a string, number or boolean", p),
        }
    }

    fn date(&self, p: &mut Problems) -> Option<NaiveDate> {
        let date = match self.value {
            Value::Datetime(dt) if dt.time.is_none() => {
                dt.date.and_then(|d| NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into()))
            }
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d").ok(),
            _ => None,
        };
        date.or_else(|| self.fail("must be a date such as 2026-11-23", p))
    }

    fn hhmm(&self, p: &mut Problems) -> Option<NaiveTime> {
        let text = self.str(p)?;
        // chrono accepts "8:00"; the file format is strictly two digits each, as written in the docs.
        let shaped = text.len() == 5 && text.as_bytes().get(2) == Some(&b':');
        match NaiveTime::parse_from_str(text, "%H:%M") {
            Ok(time) if shaped => Some(time),
            _ => self.fail("must be a time of day \"HH:MM\" such as \"08:00\"", p),
        }
    }

    fn timezone(&self, p: &mut Problems) -> Option<chrono_tz::Tz> {
        let text = self.str(p)?;
        match chrono_tz::Tz::from_str(text) {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.fail(format!("unknown timezone \"{text}\" (use an IANA name such as \"America/New_York\")"), p)
            }
        }
    }

    fn weekday(&self, p: &mut Problems) -> Option<Weekday> {
        self.choice(&WEEKDAYS, p)
    }

    /// A US state or DC, normalized to upper case.
    fn state(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        let upper = text.to_ascii_uppercase();
        if US_STATES.contains(&upper.as_str()) {
            Some(upper)
        } else {
            self.fail(format!("\"{text}\" is not a US state or DC (two letters such as \"CA\")"), p)
        }
    }

    /// Five digits (one ZIP code) or three (a ZIP prefix).
    fn postal_code(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if matches!(text.len(), 3 | 5) && text.bytes().all(|b| b.is_ascii_digit()) {
            Some(text.to_owned())
        } else {
            self.fail(format!("\"{text}\" must be 5 digits (a ZIP code) or 3 digits (a ZIP prefix)"), p)
        }
    }

    fn return_reason(&self, p: &mut Problems) -> Option<String> {
        let text = self.str(p)?;
        if KNOWN_RETURN_REASONS.contains(&text) {
            Some(text.to_owned())
        } else {
            self.fail(format!("\"{text}\" is not a return reason (one of {})", KNOWN_RETURN_REASONS.join(", ")), p)
        }
    }
}

/// The message for an integer out of `min..=max`; an upper bound of `u32::MAX` is a storage limit, not a rule.
fn range_rule(n: i64, min: u64, max: u64) -> String {
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
fn resolve_secret(raw: &str) -> Result<String, String> {
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

fn is_lead_key(text: &str) -> bool {
    (1..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// TOML scalars as JSON. Floats go through their text because serde_json keeps numbers as text
/// (`arbitrary_precision`); `None` for tables, arrays, dates and non-finite floats.
fn json_scalar(value: &Value) -> Option<serde_json::Value> {
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

// === Cross-references: ids and api keys ===

/// Ids and api keys seen so far, so a duplicate names the table that used it first.
#[derive(Default)]
struct Registry {
    admin_token: Option<Secret>,
    /// (kind, id) → the table that has it, e.g. `("sellers", "acme") → "sellers[0]"`.
    ids: HashMap<(&'static str, String), String>,
    /// api key → the table that has it. Keys are compared here and never written into a message.
    api_keys: HashMap<String, String>,
}

impl Registry {
    /// Records a table's id and api key, whichever were read successfully.
    fn claim(&mut self, kind: &'static str, owner: &str, id: Option<&str>, key: Option<&Secret>, p: &mut Problems) {
        if let Some(id) = id {
            self.claim_id(kind, owner, id, p);
        }
        if let Some(key) = key {
            self.claim_api_key(owner, key, p);
        }
    }

    fn claim_id(&mut self, kind: &'static str, owner: &str, id: &str, p: &mut Problems) {
        match self.ids.entry((kind, id.to_owned())) {
            Entry::Occupied(first) => {
                p.add(&format!("{owner}.id"), format!("\"{id}\" is already the id of {}", first.get()))
            }
            Entry::Vacant(slot) => {
                slot.insert(owner.to_owned());
            }
        }
    }

    /// Api keys identify the caller, so one key must mean one seller or buyer, and never the operator.
    fn claim_api_key(&mut self, owner: &str, key: &Secret, p: &mut Problems) {
        let path = format!("{owner}.api_key");
        if self.admin_token.as_ref() == Some(key) {
            p.add(&path, "must not equal server.admin_token");
        }
        match self.api_keys.entry(key.expose().to_owned()) {
            Entry::Occupied(first) => {
                p.add(&path, format!("is the same key as {}.api_key (every api key must be unique)", first.get()))
            }
            Entry::Vacant(slot) => {
                slot.insert(owner.to_owned());
            }
        }
    }

    fn has_campaign(&self, id: &str) -> bool {
        self.ids.contains_key(&("campaigns", id.to_owned()))
    }
}

// === The file, table by table ===

struct Parts {
    server: ServerConfig,
    sellers: Vec<Seller>,
    campaigns: Vec<Campaign>,
    buyers: Vec<Buyer>,
}

fn read_root(table: &Table, p: &mut Problems) -> Option<Parts> {
    let mut root = Section::new(String::new(), table);
    let mut registry = Registry::default();
    let server = root.need("server", p).and_then(|f| f.table(p)).and_then(|s| read_server(s, p));
    registry.admin_token = server.as_ref().map(|s| s.admin_token.clone());
    let sellers = read_each(&mut root, "sellers", p, |s, p| read_seller(s, &mut registry, p));
    // Campaigns before buyers, whatever the order in the file: buyers refer to them.
    let campaigns = read_each(&mut root, "campaigns", p, |s, p| read_campaign(s, &mut registry, p));
    let buyers = read_each(&mut root, "buyers", p, |s, p| read_buyer(s, &mut registry, p));
    root.finish(p);
    Some(Parts { server: server?, sellers: sellers?, campaigns: campaigns?, buyers: buyers? })
}

/// An array of tables such as `[[sellers]]`; absent means none.
fn read_each<'t, T>(
    root: &mut Section<'t>,
    key: &'static str,
    p: &mut Problems,
    mut read: impl FnMut(Section<'t>, &mut Problems) -> Option<T>,
) -> Option<Vec<T>> {
    match root.field(key) {
        Some(field) => field.list(p, |item, p| item.table(p).and_then(|s| read(s, p))),
        None => Some(Vec::new()),
    }
}

fn read_server(mut s: Section, p: &mut Problems) -> Option<ServerConfig> {
    let listen = s.need("listen", p).and_then(|f| f.socket_addr(p));
    let data_dir = s.need("data_dir", p).and_then(|f| f.non_empty_str(p)).map(PathBuf::from);
    let admin_token = s.need("admin_token", p).and_then(|f| f.secret(p));
    let max_body_bytes = s.with_default("max_body_bytes", 65_536, |f| f.uint(1024, U32_MAX, p));
    let header_read_timeout_ms = s.with_default("header_read_timeout_ms", 10_000, |f| f.uint(100, 600_000, p));
    let max_connections = s.with_default("max_connections", 4096, |f| f.uint(1, 1_000_000, p));
    let max_auctions_in_flight = s.optional("max_auctions_in_flight", |f| f.uint(1, 1_000_000, p));
    s.finish(p);
    Some(ServerConfig {
        listen: listen?,
        data_dir: data_dir?,
        admin_token: admin_token?,
        max_body_bytes: usize::try_from(max_body_bytes?).ok()?,
        header_read_timeout: std::time::Duration::from_millis(header_read_timeout_ms?),
        max_connections: usize::try_from(max_connections?).ok()?,
        max_auctions_in_flight: max_auctions_in_flight?.map(usize::try_from).transpose().ok()?,
    })
}

fn read_seller(mut s: Section, registry: &mut Registry, p: &mut Problems) -> Option<Seller> {
    let owner = s.path.clone();
    let id = s.need("id", p).and_then(|f| f.id(p));
    let api_key = s.need("api_key", p).and_then(|f| f.secret(p));
    let margin_percent = s.with_default("margin_percent", Decimal::ZERO, |f| f.percent(p));
    let max_pings_per_second = s.optional("max_pings_per_second", |f| f.u32_from(1, p));
    s.finish(p);
    registry.claim("sellers", &owner, id.as_deref(), api_key.as_ref(), p);
    Some(Seller {
        id: id?,
        api_key: api_key?,
        margin_percent: margin_percent?,
        max_pings_per_second: max_pings_per_second?,
    })
}

const AUCTION_KINDS: [(&str, AuctionKind); 2] =
    [("first_price", AuctionKind::FirstPrice), ("second_price", AuctionKind::SecondPrice)];

const DISTRIBUTIONS: [(&str, Distribution); 4] = [
    ("auction", Distribution::Auction),
    ("waterfall", Distribution::Waterfall),
    ("round_robin", Distribution::RoundRobin),
    ("weighted", Distribution::Weighted),
];

fn read_campaign(mut s: Section, registry: &mut Registry, p: &mut Problems) -> Option<Campaign> {
    let owner = s.path.clone();
    let id = s.need("id", p).and_then(|f| f.id(p));
    let ping_fields = s.need("ping_fields", p).and_then(|f| read_ping_fields(&f, p));
    let required_fields = s.with_default("required_fields", Vec::new(), |f| f.list(p, Field::lead_key));
    let require_consent = s.with_default("require_consent", false, |f| f.bool(p));
    let ping_deadline_ms = s.with_default("ping_deadline_ms", 300, |f| f.uint(1, 5000, p));
    let min_buyer_ms = s.with_default("min_buyer_ms", 20, |f| f.uint(1, U32_MAX, p));
    let bid_ttl_s = s.with_default("bid_ttl_s", 60, |f| f.uint(1, U32_MAX, p));
    let floor = s.need("floor", p).and_then(|f| f.money(p));
    let max_bid = s.with_default("max_bid", Money::from_cents(100_000), |f| f.money(p));
    let auction = s.with_default("auction", AuctionKind::FirstPrice, |f| f.choice(&AUCTION_KINDS, p));
    let sell = read_sell(&mut s, p);
    let distribution = s.with_default("distribution", Distribution::Auction, |f| f.choice(&DISTRIBUTIONS, p));
    if let (Some(min), Some(deadline)) = (min_buyer_ms, ping_deadline_ms) {
        if min >= deadline {
            p.add(&s.child("min_buyer_ms"), format!("must be less than ping_deadline_ms ({deadline})"));
        }
    }
    if let (Some(floor), Some(max_bid)) = (floor, max_bid) {
        if floor > max_bid {
            p.add(&s.child("floor"), format!("must not exceed max_bid ({max_bid})"));
        }
    }
    s.finish(p);
    registry.claim("campaigns", &owner, id.as_deref(), None, p);
    Some(Campaign {
        id: id?,
        ping_fields: ping_fields?,
        required_fields: required_fields?,
        require_consent: require_consent?,
        ping_deadline_ms: ping_deadline_ms?,
        min_buyer_ms: min_buyer_ms?,
        bid_ttl_s: bid_ttl_s?,
        floor: floor?,
        max_bid: max_bid?,
        auction: auction?,
        sell: sell?,
        distribution: distribution?,
    })
}

/// Ping fields are kept in the journal and sent to every bidder, so personal data may not be among them.
fn read_ping_fields(f: &Field, p: &mut Problems) -> Option<Vec<String>> {
    let keys = f.list(p, Field::lead_key)?;
    let mut clean = true;
    for key in &keys {
        let instead = match key.as_str() {
            "phone" => "send phone_sha256 instead",
            "email" => "send email_sha256 instead",
            "first_name" | "last_name" | "address" => {
                "personal data goes only in the post; send phone_sha256 / email_sha256 to match leads"
            }
            _ => continue,
        };
        p.add(&f.path, format!("must not name \"{key}\" ({instead})"));
        clean = false;
    }
    clean.then_some(keys)
}

fn read_sell(s: &mut Section, p: &mut Problems) -> Option<SellMode> {
    let shared = s.with_default("sell", false, |f| f.choice(&[("exclusive", false), ("shared", true)], p));
    let max_buyers = s.field("max_buyers");
    match (shared?, max_buyers) {
        (true, Some(f)) => {
            f.uint(2, 5, p).and_then(|n| u8::try_from(n).ok()).map(|max_buyers| SellMode::Shared { max_buyers })
        }
        (true, None) => {
            p.add(&s.child("max_buyers"), "is required with sell = \"shared\" (2 to 5)");
            None
        }
        (false, Some(f)) => f.fail("only applies with sell = \"shared\"; remove it", p),
        (false, None) => Some(SellMode::Exclusive),
    }
}

fn read_buyer(mut s: Section, registry: &mut Registry, p: &mut Problems) -> Option<Buyer> {
    let owner = s.path.clone();
    let id = s.need("id", p).and_then(|f| f.id(p));
    let api_key = s.need("api_key", p).and_then(|f| f.secret(p));
    let campaigns = s.need("campaigns", p).and_then(|f| read_buyer_campaigns(&f, registry, p));
    let ping_url = read_ping_url(&mut s, p);
    let post_url = s.need("post_url", p).and_then(|f| f.url(p));
    let fixed_price = s.optional("fixed_price", |f| f.positive_money(p));
    let timeout_ms = s.with_default("timeout_ms", 200, |f| f.uint(1, 60_000, p));
    let post_timeout_ms = s.with_default("post_timeout_ms", 3000, |f| f.uint(1, 120_000, p));
    let priority = s.with_default("priority", 0, |f| f.int(p));
    let weight = s.with_default("weight", 1, |f| f.u32_from(1, p));
    let billing = read_billing(&mut s, p);
    let dedupe_days = s.with_default("dedupe_days", 30, |f| f.u32_from(0, p));
    let paused = s.with_default("paused", false, |f| f.bool(p));
    let self_pause = s.with_default("self_pause", true, |f| f.bool(p));
    let headers = s.with_default("headers", Vec::new(), |f| read_headers(f, p));
    let field_map = s.with_default("field_map", HashMap::new(), |f| read_field_map(f, p));
    let static_fields = s.with_default("static_fields", serde_json::Map::new(), |f| read_static_fields(f, p));
    let response = s.with_default("response", ResponseAdapter::default(), |f| read_response(f.table(p)?, p));
    let filters = s.with_default("filters", Filters::default(), |f| read_filters(f.table(p)?, p));
    let caps = s.with_default("caps", Caps::default(), |f| read_caps(f.table(p)?, p));
    let ramp = s.optional("ramp", |f| read_ramp(f.table(p)?, p));
    let sla = s.with_default("sla", Sla::default(), |f| read_sla(f.table(p)?, p));
    let returns = s.with_default("returns", ReturnPolicy::default(), |f| read_returns(f.table(p)?, p));
    s.finish(p);
    registry.claim("buyers", &owner, id.as_deref(), api_key.as_ref(), p);
    Some(Buyer {
        id: id?,
        api_key: api_key?,
        campaigns: campaigns?,
        ping_url: ping_url?,
        post_url: post_url?,
        fixed_price: fixed_price?,
        timeout_ms: timeout_ms?,
        post_timeout_ms: post_timeout_ms?,
        priority: priority?,
        weight: weight?,
        billing: billing?,
        dedupe_days: dedupe_days?,
        paused: paused?,
        self_pause: self_pause?,
        headers: headers?,
        field_map: field_map?,
        static_fields: static_fields?,
        response: response?,
        filters: filters?,
        caps: caps?,
        ramp: ramp?,
        sla: sla?,
        returns: returns?,
    })
}

fn read_buyer_campaigns(f: &Field, registry: &Registry, p: &mut Problems) -> Option<Vec<String>> {
    let mut seen = HashSet::new();
    let ids = f.list(p, |item, p| match item.str(p)? {
        id if !registry.has_campaign(id) => item.fail(format!("no campaign has id \"{id}\""), p),
        // Named twice, the buyer would be offered each lead twice.
        id if !seen.insert(id) => item.fail(format!("\"{id}\" is listed twice"), p),
        id => Some(id.to_owned()),
    })?;
    f.non_empty(ids, p)
}

/// Fixed-price buyers bid without being pinged, so they have no ping URL; every other buyer needs one.
fn read_ping_url(s: &mut Section, p: &mut Problems) -> Option<Option<hyper::Uri>> {
    let fixed_price = s.has("fixed_price");
    match (s.field("ping_url"), fixed_price) {
        (Some(f), false) => f.url(p).map(Some),
        (Some(f), true) => f.fail("remove it or fixed_price: a fixed-price buyer is never pinged", p),
        (None, false) => {
            p.add(&s.child("ping_url"), "is required (unless the buyer has a fixed_price)");
            None
        }
        (None, true) => Some(None),
    }
}

fn read_billing(s: &mut Section, p: &mut Problems) -> Option<Billing> {
    let invoice = s.with_default("billing", false, |f| f.choice(&[("prepaid", false), ("invoice", true)], p));
    let credit_limit = s.field("credit_limit");
    match (invoice?, credit_limit) {
        (true, Some(f)) => f.money(p).map(|credit_limit| Billing::Invoice { credit_limit }),
        (true, None) => {
            p.add(&s.child("credit_limit"), "is required with billing = \"invoice\"");
            None
        }
        (false, Some(f)) => f.fail("only applies with billing = \"invoice\"; remove it", p),
        (false, None) => Some(Billing::Prepaid),
    }
}

/// Headers the HTTP client must own: a wrong one would corrupt the request rather than configure it.
fn is_reserved_header(name: &HeaderName) -> bool {
    [header::HOST, header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION].contains(name)
}

fn read_headers(f: &Field, p: &mut Problems) -> Option<Vec<(HeaderName, HeaderValue)>> {
    let read: Vec<Option<_>> = f.entries(p)?.iter().map(|(name, value)| read_header(name, value, p)).collect();
    read.into_iter().collect()
}

fn read_header(name: &str, value: &Field, p: &mut Problems) -> Option<(HeaderName, HeaderValue)> {
    let name = match HeaderName::from_bytes(name.as_bytes()) {
        Ok(name) if is_reserved_header(&name) => return value.fail("is set by the engine itself; remove it", p),
        Ok(name) => name,
        Err(_) => return value.fail("is not a valid header name", p),
    };
    let text = match resolve_secret(value.str(p)?) {
        Ok(text) => text,
        Err(why) => return value.fail(why, p),
    };
    match HeaderValue::from_str(&text) {
        Ok(mut header_value) => {
            // Header values are often credentials; sensitive values print as "Sensitive" in Debug output.
            header_value.set_sensitive(true);
            Some((name, header_value))
        }
        Err(_) => value.fail("is not a valid header value (visible ASCII, no line breaks)", p),
    }
}

fn read_field_map(f: &Field, p: &mut Problems) -> Option<HashMap<String, String>> {
    let read: Vec<Option<(String, String)>> = f
        .entries(p)?
        .iter()
        .map(|(key, value)| {
            let target = value.non_empty_str(p);
            if !is_lead_key(key) {
                return value.fail("is not a lead key (1 to 64 characters of a-z, 0-9 and '_')", p);
            }
            Some(((*key).to_owned(), target?))
        })
        .collect();
    read.into_iter().collect()
}

fn read_static_fields(f: &Field, p: &mut Problems) -> Option<serde_json::Map<String, serde_json::Value>> {
    let read: Vec<Option<(String, serde_json::Value)>> =
        f.entries(p)?.iter().map(|(key, value)| Some(((*key).to_owned(), value.scalar(p)?))).collect();
    read.into_iter().collect()
}

fn read_response(mut s: Section, p: &mut Problems) -> Option<ResponseAdapter> {
    let default = ResponseAdapter::default();
    let bid_path = s.with_default("bid_path", default.bid_path, |f| f.pointer(p));
    let accepted_path = s.with_default("accepted_path", default.accepted_path, |f| f.pointer(p));
    let accepted_values = s.with_default("accepted_values", default.accepted_values, |f| {
        f.list(p, Field::scalar).and_then(|values| f.non_empty(values, p))
    });
    let reason_path = s.with_default("reason_path", default.reason_path, |f| f.pointer(p));
    s.finish(p);
    Some(ResponseAdapter {
        bid_path: bid_path?,
        accepted_path: accepted_path?,
        accepted_values: accepted_values?,
        reason_path: reason_path?,
    })
}

fn read_filters(mut s: Section, p: &mut Problems) -> Option<Filters> {
    let states = s.with_default("states", Vec::new(), |f| f.list(p, Field::state));
    let postal_codes = s.with_default("postal_codes", Vec::new(), |f| f.list(p, Field::postal_code));
    let exclude_postal_codes = s.with_default("exclude_postal_codes", Vec::new(), |f| f.list(p, Field::postal_code));
    let schedule = s.optional("schedule", |f| read_schedule(f.table(p)?, p));
    let rules = s.with_default("rules", Vec::new(), |f| f.list(p, |item, p| read_rule(item.table(p)?, p)));
    let required_fields = s.with_default("required_fields", Vec::new(), |f| f.list(p, Field::lead_key));
    let require_consent = s.with_default("require_consent", false, |f| f.bool(p));
    let max_lead_age_s = s.optional("max_lead_age_s", |f| f.uint(1, U32_MAX, p));
    s.finish(p);
    Some(Filters {
        states: states?,
        postal_codes: PostalCodes::new(postal_codes?),
        exclude_postal_codes: PostalCodes::new(exclude_postal_codes?),
        schedule: schedule?,
        rules: rules?,
        required_fields: required_fields?,
        require_consent: require_consent?,
        max_lead_age_s: max_lead_age_s?,
    })
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn read_schedule(mut s: Section, p: &mut Problems) -> Option<Schedule> {
    let timezone = s.with_default("timezone", chrono_tz::Tz::UTC, |f| f.timezone(p));
    let all_days = WEEKDAYS.map(|(_, day)| day).to_vec();
    let days = s.with_default("days", all_days, |f| f.list(p, Field::weekday).and_then(|days| f.non_empty(days, p)));
    let open = s.need("open", p).and_then(|f| f.hhmm(p));
    let close = s.need("close", p).and_then(|f| f.hhmm(p));
    if open.is_some() && open == close {
        p.add(&s.child("close"), "must differ from open (a close before open runs past midnight)");
    }
    s.finish(p);
    let mut unique_days = Vec::new();
    for day in days? {
        if !unique_days.contains(&day) {
            unique_days.push(day);
        }
    }
    Some(Schedule { timezone: timezone?, days: unique_days, open: open?, close: close? })
}

const RULE_OPS: [(&str, RuleOp); 9] = [
    ("eq", RuleOp::Eq),
    ("ne", RuleOp::Ne),
    ("gt", RuleOp::Gt),
    ("gte", RuleOp::Gte),
    ("lt", RuleOp::Lt),
    ("lte", RuleOp::Lte),
    ("in", RuleOp::In),
    ("not_in", RuleOp::NotIn),
    ("exists", RuleOp::Exists),
];

fn read_rule(mut s: Section, p: &mut Problems) -> Option<Rule> {
    let field = s.need("field", p).and_then(|f| f.lead_key(p));
    let op = s.need("op", p).and_then(|f| f.choice(&RULE_OPS, p));
    let value = s.field("value");
    // Without a valid op there is no telling what the value should be.
    let value = op.and_then(|op| read_rule_value(&s, op, value, p));
    s.finish(p);
    Some(Rule::new(field?, op?, value?))
}

/// A rule's value is typed by its op: numbers to order, arrays for membership, nothing for `exists`.
fn read_rule_value(
    s: &Section,
    op: RuleOp,
    value: Option<Field>,
    p: &mut Problems,
) -> Option<Option<serde_json::Value>> {
    let name = RULE_OPS.iter().find(|(_, o)| *o == op).map_or("?", |(name, _)| *name);
    let Some(f) = value else {
        if op == RuleOp::Exists {
            return Some(None);
        }
        p.add(&s.child("value"), format!("is required with op = \"{name}\""));
        return None;
    };
    match op {
        RuleOp::Exists => f.fail("must be left out with op = \"exists\"", p),
        RuleOp::Gt | RuleOp::Gte | RuleOp::Lt | RuleOp::Lte => match f.value {
            Value::Integer(_) | Value::Float(_) => f.scalar(p).map(Some),
            _ => f.wrong_type(&format!("a number with op = \"{name}\""), p),
        },
        RuleOp::In | RuleOp::NotIn => match f.value {
            Value::Array(_) => {
                let values = f.list(p, Field::scalar).and_then(|values| f.non_empty(values, p));
                values.map(|values| Some(serde_json::Value::Array(values)))
            }
            _ => f.wrong_type(&format!("an array with op = \"{name}\""), p),
        },
        RuleOp::Eq | RuleOp::Ne => f.scalar(p).map(Some),
    }
}

fn read_caps(mut s: Section, p: &mut Problems) -> Option<Caps> {
    let hourly = s.optional("hourly", |f| f.u32_from(1, p));
    let daily = s.optional("daily", |f| f.u32_from(1, p));
    let weekly = s.optional("weekly", |f| f.u32_from(1, p));
    let monthly = s.optional("monthly", |f| f.u32_from(1, p));
    let daily_budget = s.optional("daily_budget", |f| f.positive_money(p));
    let monthly_budget = s.optional("monthly_budget", |f| f.positive_money(p));
    let concurrent_pings = s.optional("concurrent_pings", |f| f.u32_from(1, p));
    s.finish(p);
    Some(Caps {
        hourly: hourly?,
        daily: daily?,
        weekly: weekly?,
        monthly: monthly?,
        daily_budget: daily_budget?,
        monthly_budget: monthly_budget?,
        concurrent_pings: concurrent_pings?,
    })
}

fn read_ramp(mut s: Section, p: &mut Problems) -> Option<Ramp> {
    let start = s.need("start", p).and_then(|f| f.date(p));
    let daily_start = s.need("daily_start", p).and_then(|f| f.u32_from(0, p));
    let daily_step = s.need("daily_step", p).and_then(|f| f.u32_from(0, p));
    s.finish(p);
    Some(Ramp { start: start?, daily_start: daily_start?, daily_step: daily_step? })
}

fn read_sla(mut s: Section, p: &mut Problems) -> Option<Sla> {
    let d = Sla::default();
    let enabled = s.with_default("enabled", d.enabled, |f| f.bool(p));
    let window = s.with_default("window", d.window, |f| f.u32_from(1, p));
    let min_samples = s.with_default("min_samples", d.min_samples, |f| f.u32_from(1, p));
    let max_timeout_rate = s.with_default("max_timeout_rate", d.max_timeout_rate, |f| f.share(true, p));
    let max_error_rate = s.with_default("max_error_rate", d.max_error_rate, |f| f.share(true, p));
    let min_acceptance_rate = s.with_default("min_acceptance_rate", d.min_acceptance_rate, |f| f.share(true, p));
    let cooldown_s = s.with_default("cooldown_s", d.cooldown_s, |f| f.uint(1, U32_MAX, p));
    let probe_share = s.with_default("probe_share", d.probe_share, |f| f.share(false, p));
    if let (Some(min_samples), Some(window)) = (min_samples, window) {
        if min_samples > window {
            p.add(&s.child("min_samples"), format!("must not exceed window ({window})"));
        }
    }
    s.finish(p);
    Some(Sla {
        enabled: enabled?,
        window: window?,
        min_samples: min_samples?,
        max_timeout_rate: max_timeout_rate?,
        max_error_rate: max_error_rate?,
        min_acceptance_rate: min_acceptance_rate?,
        cooldown_s: cooldown_s?,
        probe_share: probe_share?,
    })
}

fn read_returns(mut s: Section, p: &mut Problems) -> Option<ReturnPolicy> {
    let d = ReturnPolicy::default();
    let enabled = s.with_default("enabled", d.enabled, |f| f.bool(p));
    let window_days = s.with_default("window_days", d.window_days, |f| f.u32_from(1, p));
    let reasons = s.with_default("reasons", d.reasons, |f| f.list(p, Field::return_reason));
    let rate_cap_percent = s.with_default("rate_cap_percent", d.rate_cap_percent, |f| f.percent(p));
    let policy_note = s.optional("policy_note", |f| f.str(p).map(str::to_owned));
    if enabled == Some(true) && reasons.as_ref().is_some_and(Vec::is_empty) {
        p.add(&s.child("reasons"), "must name at least one reason (or set enabled = false)");
    }
    s.finish(p);
    Some(ReturnPolicy {
        enabled: enabled?,
        window_days: window_days?,
        reasons: reasons?,
        rate_cap_percent: rate_cap_percent?,
        policy_note: policy_note?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid file with only the required keys; each `extra` lands at the end of its table. The buyer's extra
    /// comes last in the file, so it may also open sub-tables or add more `[[sellers]]`, `[[buyers]]`…
    fn config_with(server: &str, seller: &str, campaign: &str, buyer: &str) -> String {
        format!(
            r#"[server]
listen = "127.0.0.1:8080"
data_dir = "data"
admin_token = "admin-secret"
{server}

[[sellers]]
id = "acme"
api_key = "sk_1"
{seller}

[[campaigns]]
id = "auto"
ping_fields = ["state", "age"]
floor = "1.00"
{campaign}

[[buyers]]
id = "best"
api_key = "bk_1"
campaigns = ["auto"]
ping_url = "https://buyer.example/ping"
post_url = "https://buyer.example/post"
{buyer}
"#
        )
    }

    fn minimal() -> String {
        config_with("", "", "", "")
    }

    fn server_with(extra: &str) -> String {
        config_with(extra, "", "", "")
    }

    fn seller_with(extra: &str) -> String {
        config_with("", extra, "", "")
    }

    fn campaign_with(extra: &str) -> String {
        config_with("", "", extra, "")
    }

    fn buyer_with(extra: &str) -> String {
        config_with("", "", "", extra)
    }

    /// The minimal file with one line of it replaced.
    fn replacing(line: &str, with: &str) -> String {
        let text = minimal();
        assert!(text.contains(line), "the minimal config has no line {line:?}");
        text.replace(line, with)
    }

    fn loaded(text: &str) -> Config {
        parse(text).unwrap_or_else(|e| panic!("expected the config to load, got:\n{e}"))
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Ok(_) => panic!("expected problems in:\n{text}"),
            Err(e) => e.0,
        }
    }

    /// Each case must produce exactly its one problem, so nothing spurious is reported alongside.
    fn assert_single_problems(cases: &[(String, &str)]) {
        for (text, expected) in cases {
            assert_eq!(problems(text), vec![(*expected).to_owned()], "for config:\n{text}");
        }
    }

    #[test]
    fn minimal_config_gets_every_default() {
        let config = loaded(&minimal());
        assert_eq!(config.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(config.server.data_dir, PathBuf::from("data"));
        assert_eq!(config.server.admin_token.expose(), "admin-secret");
        assert_eq!(config.server.max_body_bytes, 65_536);
        assert_eq!(config.server.header_read_timeout, std::time::Duration::from_secs(10));
        assert_eq!((config.server.max_connections, config.server.max_auctions_in_flight), (4096, None));

        let seller = &config.sellers[0];
        assert_eq!((seller.id.as_str(), seller.api_key.expose()), ("acme", "sk_1"));
        assert_eq!(seller.margin_percent, Decimal::ZERO);
        assert_eq!(seller.max_pings_per_second, None);

        let campaign = &config.campaigns[0];
        assert_eq!(campaign.ping_fields, ["state", "age"]);
        assert!(campaign.required_fields.is_empty());
        assert!(!campaign.require_consent);
        assert_eq!((campaign.ping_deadline_ms, campaign.min_buyer_ms, campaign.bid_ttl_s), (300, 20, 60));
        assert_eq!((campaign.floor, campaign.max_bid), (Money::from_cents(100), Money::from_cents(100_000)));
        assert_eq!(campaign.auction, AuctionKind::FirstPrice);
        assert_eq!(campaign.sell, SellMode::Exclusive);
        assert_eq!(campaign.distribution, Distribution::Auction);

        let buyer = &config.buyers[0];
        assert_eq!(buyer.campaigns, ["auto"]);
        assert_eq!(buyer.ping_url.as_ref().map(ToString::to_string).as_deref(), Some("https://buyer.example/ping"));
        assert_eq!(buyer.post_url.to_string(), "https://buyer.example/post");
        assert_eq!(buyer.fixed_price, None);
        assert_eq!((buyer.timeout_ms, buyer.post_timeout_ms, buyer.priority, buyer.weight), (200, 3000, 0, 1));
        assert_eq!(buyer.billing, Billing::Prepaid);
        assert_eq!(buyer.dedupe_days, 30);
        assert!(!buyer.paused && buyer.self_pause);
        assert!(buyer.headers.is_empty() && buyer.field_map.is_empty() && buyer.static_fields.is_empty());
        assert_eq!(buyer.response, ResponseAdapter::default());
        assert_eq!(buyer.response.bid_path, "/bid");
        assert_eq!(buyer.response.accepted_path, "/accepted");
        assert_eq!(buyer.response.accepted_values, [serde_json::Value::Bool(true)]);
        assert_eq!(buyer.response.reason_path, "/reason");

        let filters = &buyer.filters;
        assert!(
            filters.states.is_empty() && filters.postal_codes.is_empty() && filters.exclude_postal_codes.is_empty()
        );
        assert!(filters.schedule.is_none() && filters.rules.is_empty() && filters.required_fields.is_empty());
        assert!(!filters.require_consent && filters.max_lead_age_s.is_none());
        let caps = &buyer.caps;
        assert!(caps.hourly.is_none() && caps.daily.is_none() && caps.weekly.is_none() && caps.monthly.is_none());
        assert!(caps.daily_budget.is_none() && caps.monthly_budget.is_none() && caps.concurrent_pings.is_none());
        assert!(buyer.ramp.is_none());

        let sla = &buyer.sla;
        assert!(sla.enabled);
        assert_eq!((sla.window, sla.min_samples, sla.cooldown_s), (200, 20, 60));
        assert_eq!((sla.max_timeout_rate, sla.max_error_rate, sla.min_acceptance_rate), (0.5, 0.5, 0.0));
        assert_eq!(sla.probe_share, 0.1);

        let returns = &buyer.returns;
        assert!(returns.enabled);
        assert_eq!(returns.window_days, 7);
        assert_eq!(returns.reasons, super::super::DEFECT_REASONS);
        assert_eq!(returns.rate_cap_percent, Decimal::TEN);
        assert_eq!(returns.policy_note, None);

        let ids: Vec<&str> = config.buyers_of("auto").map(|(_, b)| b.id.as_str()).collect();
        assert_eq!(ids, ["best"]);
        assert!(config.seller_by_key("sk_1").is_some() && config.buyer_by_key("bk_1").is_some());
    }

    #[test]
    fn many_mistakes_are_all_reported_with_their_paths() {
        let text = r#"
[server]
listen = "localhost"
data_dir = "data"
admin_token = "tok"
max_body_bytes = 100

[[sellers]]
id = "Acme"
api_key = "k1"
margin_percent = "150"

[[campaigns]]
id = "auto"
ping_fields = ["state", "phone"]
floor = "9.00"
max_bid = "5.00"
auction = "third_price"
ping_deadline_ms = 9000

[[buyers]]
id = "best"
api_key = "k2"
campaigns = ["auto", "nope"]
ping_url = "ftp://buyer.example/ping"
post_url = "https://buyer.example/post"
timeout_ms = "fast"
colour = "red"

[[buyers]]
id = "incomplete"

[[buyers]]
id = "capped"
api_key = "k3"
campaigns = ["auto"]
ping_url = "https://capped.example/ping"
post_url = "https://capped.example/post"

[buyers.caps]
daily = 0
"#;
        let expected = [
            r#"server.listen: must be an address and port such as "127.0.0.1:8080""#,
            "server.max_body_bytes: must be >= 1024",
            "sellers[0].id: must be 1 to 64 characters of a-z, 0-9, '_' and '-'",
            "sellers[0].margin_percent: must be from 0 to 100",
            r#"campaigns[0].ping_fields: must not name "phone" (send phone_sha256 instead)"#,
            r#"campaigns[0].ping_deadline_ms: must be between 1 and 5000"#,
            r#"campaigns[0].auction: must be one of "first_price", "second_price" (found "third_price")"#,
            "campaigns[0].floor: must not exceed max_bid (5.00)",
            r#"buyers[0].campaigns[1]: no campaign has id "nope""#,
            "buyers[0].ping_url: must be an http:// or https:// URL with a host, \
             such as \"https://buyer.example/ping\"",
            "buyers[0].timeout_ms: must be an integer, found a string",
            "buyers[0].colour: unknown key",
            "buyers[1].api_key: is required",
            "buyers[1].campaigns: is required",
            "buyers[1].ping_url: is required (unless the buyer has a fixed_price)",
            "buyers[1].post_url: is required",
            "buyers[2].caps.daily: must be > 0",
        ];
        assert_eq!(problems(text), expected);
    }

    #[test]
    fn display_puts_one_problem_per_line() {
        let errors = ConfigErrors(vec!["a: x".to_owned(), "b: y".to_owned()]);
        assert_eq!(errors.to_string(), "a: x\nb: y");
    }

    #[test]
    fn syntax_error_is_one_problem_with_line_and_column() {
        let found = problems("[server]\nlisten = \"127.0.0.1:8080\nport = 1\n");
        // The string runs to the end of line 2 (24 characters) without its closing quote.
        assert_eq!(found, ["line 2, column 25: invalid TOML: invalid basic string"]);
    }

    #[test]
    fn unknown_keys_are_reported_at_every_depth() {
        assert_single_problems(&[
            (format!("colour = 1\n{}", minimal()), "colour: unknown key"),
            (server_with("port = 80"), "server.port: unknown key"),
            (seller_with("margin = 5"), "sellers[0].margin: unknown key"),
            (campaign_with("flor = \"1\""), "campaigns[0].flor: unknown key"),
            (buyer_with("colour = \"red\""), "buyers[0].colour: unknown key"),
            (buyer_with("response = { bid = \"/x\" }"), "buyers[0].response.bid: unknown key"),
            (buyer_with("[buyers.caps]\ndaly = 5"), "buyers[0].caps.daly: unknown key"),
            (buyer_with("[buyers.filters]\nstate = [\"CA\"]"), "buyers[0].filters.state: unknown key"),
            (
                buyer_with("[buyers.filters]\nschedule = { open = \"08:00\", close = \"20:00\", tz = \"UTC\" }"),
                "buyers[0].filters.schedule.tz: unknown key",
            ),
            (
                buyer_with("[buyers.filters]\nrules = [{ field = \"age\", op = \"exists\", valeu = 1 }]"),
                "buyers[0].filters.rules[0].valeu: unknown key",
            ),
            (
                buyer_with("[buyers.ramp]\nstart = 2026-11-23\ndaily_start = 1\ndaily_step = 1\nspeed = 2"),
                "buyers[0].ramp.speed: unknown key",
            ),
            (buyer_with("[buyers.sla]\nwindows = 5"), "buyers[0].sla.windows: unknown key"),
            (buyer_with("[buyers.returns]\nnote = \"x\""), "buyers[0].returns.note: unknown key"),
        ]);
    }

    #[test]
    fn wrong_types_name_the_expected_type() {
        assert_single_problems(&[
            (server_with("max_body_bytes = \"64k\""), "server.max_body_bytes: must be an integer, found a string"),
            (
                server_with("header_read_timeout_ms = 50"),
                "server.header_read_timeout_ms: must be between 100 and 600000",
            ),
            (server_with("max_connections = 0"), "server.max_connections: must be between 1 and 1000000"),
            (server_with("max_auctions_in_flight = 0"), "server.max_auctions_in_flight: must be between 1 and 1000000"),
            (
                replacing("admin_token = \"admin-secret\"", "admin_token = 5"),
                "server.admin_token: must be a string, found an integer",
            ),
            (
                format!("sellers = 5\n{}", minimal().replace("[[sellers]]\nid = \"acme\"\napi_key = \"sk_1\"", "")),
                "sellers: must be an array, found an integer",
            ),
            (buyer_with("paused = \"no\""), "buyers[0].paused: must be true or false, found a string"),
            (buyer_with("headers = \"x\""), "buyers[0].headers: must be a table, found a string"),
            (buyer_with("[buyers.caps]\ndaily = 1.5"), "buyers[0].caps.daily: must be an integer, found a float"),
            (buyer_with("filters = []"), "buyers[0].filters: must be a table, found an array"),
            (
                buyer_with("[buyers.sla]\nmax_error_rate = \"0.5\""),
                "buyers[0].sla.max_error_rate: must be a number, found a string",
            ),
            (
                campaign_with("max_bid = true"),
                "campaigns[0].max_bid: must be an amount such as \"12.50\", found a boolean",
            ),
        ]);
    }

    #[test]
    fn single_value_rules() {
        assert_single_problems(&[
            (seller_with("max_pings_per_second = 0"), "sellers[0].max_pings_per_second: must be > 0"),
            (
                seller_with("margin_percent = \"ten\""),
                "sellers[0].margin_percent: must be a percentage such as \"10\" or \"2.5\"",
            ),
            (
                replacing("id = \"acme\"", "id = \"\""),
                "sellers[0].id: must be 1 to 64 characters of a-z, 0-9, '_' and '-'",
            ),
            (
                replacing("id = \"acme\"", &format!("id = \"{}\"", "a".repeat(65))),
                "sellers[0].id: must be 1 to 64 characters of a-z, 0-9, '_' and '-'",
            ),
            (
                campaign_with("min_buyer_ms = 300"),
                "campaigns[0].min_buyer_ms: must be less than ping_deadline_ms (300)",
            ),
            (campaign_with("bid_ttl_s = 0"), "campaigns[0].bid_ttl_s: must be > 0"),
            (
                campaign_with("distribution = \"random\""),
                "campaigns[0].distribution: must be one of \"auction\", \"waterfall\", \"round_robin\", \
                 \"weighted\" (found \"random\")",
            ),
            (campaign_with("max_bid = \"-5\""), "campaigns[0].max_bid: must not be negative"),
            (
                campaign_with("required_fields = [\"Phone\"]"),
                "campaigns[0].required_fields[0]: \"Phone\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')",
            ),
            (buyer_with("timeout_ms = 0"), "buyers[0].timeout_ms: must be between 1 and 60000"),
            (buyer_with("post_timeout_ms = 200000"), "buyers[0].post_timeout_ms: must be between 1 and 120000"),
            (buyer_with("weight = 0"), "buyers[0].weight: must be > 0"),
            (buyer_with("dedupe_days = -1"), "buyers[0].dedupe_days: must not be negative"),
            (replacing("campaigns = [\"auto\"]", "campaigns = []"), "buyers[0].campaigns: must not be empty"),
            (
                replacing("campaigns = [\"auto\"]", "campaigns = [\"auto\", \"auto\"]"),
                "buyers[0].campaigns[1]: \"auto\" is listed twice",
            ),
            (
                buyer_with("headers = { Host = \"x\" }"),
                "buyers[0].headers.Host: is set by the engine itself; remove it",
            ),
            (
                buyer_with("headers = { \"Bad Name\" = \"x\" }"),
                "buyers[0].headers.Bad Name: is not a valid header name",
            ),
            (
                buyer_with("headers = { X-Note = \"a\\nb\" }"),
                "buyers[0].headers.X-Note: is not a valid header value (visible ASCII, no line breaks)",
            ),
            (buyer_with("field_map = { postal_code = \"\" }"), "buyers[0].field_map.postal_code: must not be empty"),
            (
                buyer_with("field_map = { Zip = \"zip\" }"),
                "buyers[0].field_map.Zip: is not a lead key (1 to 64 characters of a-z, 0-9 and '_')",
            ),
            (
                buyer_with("static_fields = { tags = [1] }"),
                "buyers[0].static_fields.tags: must be a string, number or boolean, found an array",
            ),
            (buyer_with("static_fields = { big = inf }"), "buyers[0].static_fields.big: must be a finite number"),
            (
                buyer_with("response = { bid_path = \"bid\" }"),
                "buyers[0].response.bid_path: must be a JSON Pointer: \"\" or a path starting with \"/\" \
                 such as \"/bid\"",
            ),
            (
                buyer_with("response = { accepted_values = [] }"),
                "buyers[0].response.accepted_values: must not be empty",
            ),
            (
                buyer_with("[buyers.filters]\nstates = [\"XX\"]"),
                "buyers[0].filters.states[0]: \"XX\" is not a US state or DC (two letters such as \"CA\")",
            ),
            (
                buyer_with("[buyers.filters]\npostal_codes = [\"9410\"]"),
                "buyers[0].filters.postal_codes[0]: \"9410\" must be 5 digits (a ZIP code) or 3 digits (a ZIP prefix)",
            ),
            (
                buyer_with("[buyers.filters]\nexclude_postal_codes = [\"abcde\"]"),
                "buyers[0].filters.exclude_postal_codes[0]: \"abcde\" must be 5 digits (a ZIP code) \
                 or 3 digits (a ZIP prefix)",
            ),
            (buyer_with("[buyers.filters]\nmax_lead_age_s = 0"), "buyers[0].filters.max_lead_age_s: must be > 0"),
            (buyer_with("[buyers.caps]\ndaily_budget = \"0\""), "buyers[0].caps.daily_budget: must be > 0"),
            (buyer_with("[buyers.caps]\nconcurrent_pings = -1"), "buyers[0].caps.concurrent_pings: must be > 0"),
            (buyer_with("[buyers.caps]\nhourly = 5000000000"), "buyers[0].caps.hourly: must be at most 4294967295"),
            (
                buyer_with("[buyers.ramp]\nstart = 2026-11-23\ndaily_start = 10"),
                "buyers[0].ramp.daily_step: is required",
            ),
            (
                buyer_with("[buyers.ramp]\nstart = \"23/11/2026\"\ndaily_start = 10\ndaily_step = 5"),
                "buyers[0].ramp.start: must be a date such as 2026-11-23",
            ),
            (
                buyer_with("[buyers.ramp]\nstart = 2026-11-23T10:00:00\ndaily_start = 10\ndaily_step = 5"),
                "buyers[0].ramp.start: must be a date such as 2026-11-23",
            ),
            (
                buyer_with("[buyers.ramp]\nstart = 2026-11-23\ndaily_start = -1\ndaily_step = 5"),
                "buyers[0].ramp.daily_start: must not be negative",
            ),
            (buyer_with("[buyers.sla]\nmax_error_rate = 1.5"), "buyers[0].sla.max_error_rate: must be from 0 to 1"),
            (buyer_with("[buyers.sla]\nprobe_share = 0"), "buyers[0].sla.probe_share: must be > 0 and at most 1"),
            (buyer_with("[buyers.sla]\nwindow = 0"), "buyers[0].sla.window: must be > 0"),
            (buyer_with("[buyers.sla]\nmin_samples = 300"), "buyers[0].sla.min_samples: must not exceed window (200)"),
            (buyer_with("[buyers.sla]\ncooldown_s = 0"), "buyers[0].sla.cooldown_s: must be > 0"),
            (buyer_with("[buyers.returns]\nwindow_days = 0"), "buyers[0].returns.window_days: must be > 0"),
            (
                buyer_with("[buyers.returns]\nrate_cap_percent = \"-1\""),
                "buyers[0].returns.rate_cap_percent: must be from 0 to 100",
            ),
            (
                buyer_with("[buyers.returns]\nreasons = []"),
                "buyers[0].returns.reasons: must name at least one reason (or set enabled = false)",
            ),
        ]);
        let unknown_reason = problems(&buyer_with("[buyers.returns]\nreasons = [\"bogus\"]"));
        assert_eq!(unknown_reason.len(), 1);
        assert!(unknown_reason[0]
            .starts_with("buyers[0].returns.reasons[0]: \"bogus\" is not a return reason (one of wrong_number, "));
    }

    #[test]
    fn env_secrets_are_resolved() {
        std::env::set_var("GAVEL_TEST_LOAD_PRESENT_ADMIN", "admin-from-env");
        std::env::set_var("GAVEL_TEST_LOAD_PRESENT_KEY", "bk_from_env");
        std::env::set_var("GAVEL_TEST_LOAD_PRESENT_AUTH", "Bearer from-env");
        let text = replacing("admin_token = \"admin-secret\"", "admin_token = \"env:GAVEL_TEST_LOAD_PRESENT_ADMIN\"")
            .replace("api_key = \"bk_1\"", "api_key = \"env:GAVEL_TEST_LOAD_PRESENT_KEY\"")
            + "headers = { Authorization = \"env:GAVEL_TEST_LOAD_PRESENT_AUTH\", X-Source = \"gavel\" }\n";
        let config = loaded(&text);
        assert_eq!(config.server.admin_token.expose(), "admin-from-env");
        assert_eq!(config.buyers[0].api_key.expose(), "bk_from_env");
        assert!(config.buyer_by_key("bk_from_env").is_some());
        let headers = &config.buyers[0].headers;
        assert_eq!(headers.len(), 2);
        assert_eq!(headers[0].0, header::AUTHORIZATION);
        assert_eq!(headers[0].1, "Bearer from-env");
        assert!(headers[0].1.is_sensitive());
        assert_eq!((headers[1].0.as_str(), headers[1].1.to_str().ok()), ("x-source", Some("gavel")));
        // Secrets never reach Debug output.
        assert!(!format!("{config:?}").contains("from-env"));
    }

    #[test]
    fn missing_env_secrets_name_the_variable() {
        let text = replacing("admin_token = \"admin-secret\"", "admin_token = \"env:GAVEL_TEST_LOAD_MISSING_ADMIN\"")
            .replace("api_key = \"sk_1\"", "api_key = \"env:\"")
            + "headers = { Authorization = \"env:GAVEL_TEST_LOAD_MISSING_AUTH\" }\n";
        assert_eq!(
            problems(&text),
            [
                "server.admin_token: environment variable GAVEL_TEST_LOAD_MISSING_ADMIN is not set",
                "sellers[0].api_key: names no environment variable (write \"env:VAR_NAME\")",
                "buyers[0].headers.Authorization: environment variable GAVEL_TEST_LOAD_MISSING_AUTH is not set",
            ]
        );
        std::env::set_var("GAVEL_TEST_LOAD_EMPTY_ADMIN", "");
        let empty = replacing("admin_token = \"admin-secret\"", "admin_token = \"env:GAVEL_TEST_LOAD_EMPTY_ADMIN\"");
        assert_eq!(problems(&empty), ["server.admin_token: environment variable GAVEL_TEST_LOAD_EMPTY_ADMIN is empty"]);
    }

    #[test]
    fn duplicate_ids_are_reported_per_kind() {
        let text = buyer_with(
            r#"
[[sellers]]
id = "acme"
api_key = "sk_2"

[[campaigns]]
id = "auto"
ping_fields = []
floor = 1

[[buyers]]
id = "best"
api_key = "bk_2"
campaigns = ["auto"]
ping_url = "https://other.example/ping"
post_url = "https://other.example/post"
"#,
        );
        assert_eq!(
            problems(&text),
            [
                r#"sellers[1].id: "acme" is already the id of sellers[0]"#,
                r#"campaigns[1].id: "auto" is already the id of campaigns[0]"#,
                r#"buyers[1].id: "best" is already the id of buyers[0]"#,
            ]
        );
        // The same id in different kinds is fine.
        loaded(&replacing("id = \"best\"", "id = \"acme\""));
    }

    #[test]
    fn api_keys_are_unique_across_sellers_and_buyers_and_never_the_admin_token() {
        let text = buyer_with(
            r#"
[[sellers]]
id = "second"
api_key = "admin-secret"

[[buyers]]
id = "other"
api_key = "sk_1"
campaigns = ["auto"]
ping_url = "https://other.example/ping"
post_url = "https://other.example/post"
"#,
        );
        let found = problems(&text);
        assert_eq!(
            found,
            [
                "sellers[1].api_key: must not equal server.admin_token",
                "buyers[1].api_key: is the same key as sellers[0].api_key (every api key must be unique)",
            ]
        );
        assert!(found.iter().all(|p| !p.contains("admin-secret") && !p.contains("sk_1")));
    }

    #[test]
    fn sell_mode_needs_max_buyers_only_when_shared() {
        assert_single_problems(&[
            (
                campaign_with("sell = \"shared\""),
                "campaigns[0].max_buyers: is required with sell = \"shared\" (2 to 5)",
            ),
            (campaign_with("sell = \"shared\"\nmax_buyers = 6"), "campaigns[0].max_buyers: must be between 2 and 5"),
            (
                campaign_with("max_buyers = 3"),
                "campaigns[0].max_buyers: only applies with sell = \"shared\"; remove it",
            ),
            (
                campaign_with("sell = \"split\""),
                "campaigns[0].sell: must be one of \"exclusive\", \"shared\" (found \"split\")",
            ),
        ]);
        let config = loaded(&campaign_with("sell = \"shared\"\nmax_buyers = 3\nauction = \"second_price\""));
        assert_eq!(config.campaigns[0].sell, SellMode::Shared { max_buyers: 3 });
        assert_eq!(config.campaigns[0].auction, AuctionKind::SecondPrice);
    }

    #[test]
    fn floor_must_not_exceed_max_bid() {
        assert_single_problems(&[(
            campaign_with("max_bid = \"0.50\""),
            "campaigns[0].floor: must not exceed max_bid (0.50)",
        )]);
        let equal = loaded(&campaign_with("max_bid = 1"));
        assert_eq!(equal.campaigns[0].max_bid, equal.campaigns[0].floor);
    }

    #[test]
    fn ping_fields_must_not_carry_personal_data() {
        let line = "ping_fields = [\"state\", \"age\"]";
        let with = |fields: &str| replacing(line, &format!("ping_fields = {fields}"));
        assert_single_problems(&[
            (
                with("[\"state\", \"phone\"]"),
                "campaigns[0].ping_fields: must not name \"phone\" (send phone_sha256 instead)",
            ),
            (with("[\"email\"]"), "campaigns[0].ping_fields: must not name \"email\" (send email_sha256 instead)"),
            (
                with("[\"first_name\"]"),
                "campaigns[0].ping_fields: must not name \"first_name\" (personal data goes only in the post; \
                 send phone_sha256 / email_sha256 to match leads)",
            ),
            (
                with("[\"zip code\"]"),
                "campaigns[0].ping_fields[0]: \"zip code\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')",
            ),
            (replacing(line, ""), "campaigns[0].ping_fields: is required"),
        ]);
        assert_eq!(problems(&with("[\"phone\", \"address\"]")).len(), 2);
        loaded(&with("[\"phone_sha256\", \"email_sha256\"]"));
    }

    #[test]
    fn urls_must_be_absolute_http() {
        let line = "ping_url = \"https://buyer.example/ping\"";
        let expected = "buyers[0].ping_url: must be an http:// or https:// URL with a host, \
                        such as \"https://buyer.example/ping\"";
        let bad = ["ftp://buyer.example/ping", "buyer.example/ping", "/ping", "https://", "", "http://exa mple.com/"];
        let cases: Vec<(String, &str)> =
            bad.iter().map(|url| (replacing(line, &format!("ping_url = \"{url}\"")), expected)).collect();
        assert_single_problems(&cases);
        assert_single_problems(&[(
            replacing("post_url = \"https://buyer.example/post\"", "post_url = 5"),
            "buyers[0].post_url: must be a string, found an integer",
        )]);
        loaded(&replacing(line, "ping_url = \"http://10.0.0.5:9000/ping?src=gavel\""));
    }

    #[test]
    fn fixed_price_buyers_have_no_ping_url() {
        let line = "ping_url = \"https://buyer.example/ping\"";
        let config = loaded(&replacing(line, "fixed_price = \"15.00\""));
        assert_eq!(config.buyers[0].ping_url, None);
        assert_eq!(config.buyers[0].fixed_price, Some(Money::from_cents(1500)));
        assert_single_problems(&[
            (
                buyer_with("fixed_price = 15"),
                "buyers[0].ping_url: remove it or fixed_price: a fixed-price buyer is never pinged",
            ),
            (replacing(line, ""), "buyers[0].ping_url: is required (unless the buyer has a fixed_price)"),
            (replacing(line, "fixed_price = 0"), "buyers[0].fixed_price: must be > 0"),
        ]);
    }

    #[test]
    fn invoice_billing_needs_a_credit_limit() {
        let config = loaded(&buyer_with("billing = \"invoice\"\ncredit_limit = \"5000\""));
        assert_eq!(config.buyers[0].billing, Billing::Invoice { credit_limit: Money::from_cents(500_000) });
        assert_single_problems(&[
            (buyer_with("billing = \"invoice\""), "buyers[0].credit_limit: is required with billing = \"invoice\""),
            (
                buyer_with("credit_limit = \"10\""),
                "buyers[0].credit_limit: only applies with billing = \"invoice\"; remove it",
            ),
        ]);
    }

    #[test]
    fn numbers_are_read_exactly() {
        let config = loaded(&config_with(
            "",
            "margin_percent = 12.5",
            "max_bid = 99.999",
            "static_fields = { rate = 1.1, n = 2, ok = true, s = \"x\" }\nresponse = { accepted_values = [\"ok\", 1] }",
        ));
        assert_eq!(config.sellers[0].margin_percent, Decimal::new(125, 1));
        assert_eq!(config.campaigns[0].max_bid, Money::from_cents(9999));
        let statics = serde_json::to_string(&config.buyers[0].static_fields).unwrap();
        assert_eq!(statics, r#"{"n":2,"ok":true,"rate":1.1,"s":"x"}"#);
        assert_eq!(config.buyers[0].response.accepted_values, [serde_json::json!("ok"), serde_json::json!(1)]);
    }

    #[test]
    fn filters_are_normalized() {
        let config = loaded(&buyer_with(
            r#"field_map = { postal_code = "zip" }
[buyers.filters]
states = ["ca", "Dc"]
postal_codes = ["94107", "941"]
required_fields = ["age"]
require_consent = true
max_lead_age_s = 600"#,
        ));
        let buyer = &config.buyers[0];
        assert_eq!(buyer.field_map.get("postal_code").map(String::as_str), Some("zip"));
        assert_eq!(buyer.filters.states, ["CA", "DC"]);
        assert_eq!(buyer.filters.postal_codes.as_slice(), ["94107", "941"]);
        assert_eq!(buyer.filters.required_fields, ["age"]);
        assert!(buyer.filters.require_consent);
        assert_eq!(buyer.filters.max_lead_age_s, Some(600));
        assert_eq!(US_STATES.len(), 51);
    }

    fn schedule_config(schedule: &str) -> String {
        buyer_with(&format!("[buyers.filters]\nschedule = {{ {schedule} }}"))
    }

    #[test]
    fn schedules_parse_with_defaults() {
        let config = loaded(&schedule_config(
            r#"timezone = "America/Los_Angeles", days = ["mon", "fri", "mon"], open = "08:00", close = "20:30""#,
        ));
        let schedule = config.buyers[0].filters.schedule.as_ref().unwrap();
        assert_eq!(schedule.timezone, chrono_tz::America::Los_Angeles);
        assert_eq!(schedule.days, [Weekday::Mon, Weekday::Fri]);
        assert_eq!(
            (schedule.open, schedule.close),
            (NaiveTime::from_hms_opt(8, 0, 0).unwrap(), NaiveTime::from_hms_opt(20, 30, 0).unwrap())
        );

        let overnight = loaded(&schedule_config(r#"open = "22:00", close = "06:00""#));
        let schedule = overnight.buyers[0].filters.schedule.as_ref().unwrap();
        assert_eq!(schedule.timezone, chrono_tz::Tz::UTC);
        assert_eq!(schedule.days.len(), 7);
    }

    #[test]
    fn schedule_mistakes() {
        let path = "buyers[0].filters.schedule";
        let time_rule = "must be a time of day \"HH:MM\" such as \"08:00\"";
        assert_single_problems(&[
            (
                schedule_config(r#"timezone = "America/Los_Angles", open = "08:00", close = "20:00""#),
                &format!(
                    "{path}.timezone: unknown timezone \"America/Los_Angles\" \
                     (use an IANA name such as \"America/New_York\")"
                ),
            ),
            (schedule_config(r#"open = "8:00", close = "20:00""#), &format!("{path}.open: {time_rule}")),
            (schedule_config(r#"open = "08:00", close = "24:00""#), &format!("{path}.close: {time_rule}")),
            (
                schedule_config(r#"open = "08:00", close = "08:00""#),
                &format!("{path}.close: must differ from open (a close before open runs past midnight)"),
            ),
            (schedule_config(r#"open = "08:00""#), &format!("{path}.close: is required")),
            (
                schedule_config(r#"days = ["monday"], open = "08:00", close = "20:00""#),
                &format!(
                    "{path}.days[0]: must be one of \"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\" \
                     (found \"monday\")"
                ),
            ),
            (
                schedule_config(r#"days = [], open = "08:00", close = "20:00""#),
                &format!("{path}.days: must not be empty"),
            ),
        ]);
    }

    fn rule_config(rule: &str) -> String {
        buyer_with(&format!("[buyers.filters]\nrules = [{{ {rule} }}]"))
    }

    #[test]
    fn rule_values_are_typed_by_their_op() {
        let path = "buyers[0].filters.rules[0]";
        assert_single_problems(&[
            (
                rule_config(r#"field = "age", op = "gt", value = "21""#),
                &format!("{path}.value: must be a number with op = \"gt\", found a string"),
            ),
            (
                rule_config(r#"field = "state", op = "in", value = "CA""#),
                &format!("{path}.value: must be an array with op = \"in\", found a string"),
            ),
            (rule_config(r#"field = "state", op = "not_in", value = []"#), &format!("{path}.value: must not be empty")),
            (
                rule_config(r#"field = "state", op = "in", value = [["CA"]]"#),
                &format!("{path}.value[0]: must be a string, number or boolean, found an array"),
            ),
            (
                rule_config(r#"field = "age", op = "exists", value = 1"#),
                &format!("{path}.value: must be left out with op = \"exists\""),
            ),
            (rule_config(r#"field = "age", op = "eq""#), &format!("{path}.value: is required with op = \"eq\"")),
            (
                rule_config(r#"field = "age", op = "ne", value = [1]"#),
                &format!("{path}.value: must be a string, number or boolean, found an array"),
            ),
            (
                rule_config(r#"field = "age", op = "like", value = 1"#),
                &format!(
                    "{path}.op: must be one of \"eq\", \"ne\", \"gt\", \"gte\", \"lt\", \"lte\", \"in\", \"not_in\", \
                     \"exists\" (found \"like\")"
                ),
            ),
            (
                rule_config(r#"field = "Age", op = "exists""#),
                &format!("{path}.field: \"Age\" is not a lead key (1 to 64 characters of a-z, 0-9 and '_')"),
            ),
            (rule_config(r#"op = "exists""#), &format!("{path}.field: is required")),
        ]);
        let config = loaded(&buyer_with(
            r#"[buyers.filters]
rules = [
    { field = "age", op = "lte", value = 2.5 },
    { field = "state", op = "in", value = ["CA", 1] },
    { field = "x", op = "exists" },
    { field = "ok", op = "eq", value = true },
]"#,
        ));
        let rules = &config.buyers[0].filters.rules;
        assert_eq!((rules[0].op, rules[0].value.clone()), (RuleOp::Lte, Some(serde_json::json!(2.5))));
        assert_eq!((rules[1].op, rules[1].value.clone()), (RuleOp::In, Some(serde_json::json!(["CA", 1]))));
        assert_eq!((rules[2].op, rules[2].value.clone()), (RuleOp::Exists, None));
        assert_eq!((rules[3].op, rules[3].value.clone()), (RuleOp::Eq, Some(serde_json::json!(true))));
    }

    #[test]
    fn ramp_takes_a_date_or_a_date_string() {
        for start in ["2026-11-23", "\"2026-11-23\""] {
            let config =
                loaded(&buyer_with(&format!("[buyers.ramp]\nstart = {start}\ndaily_start = 10\ndaily_step = 0")));
            let ramp = config.buyers[0].ramp.as_ref().unwrap();
            assert_eq!(ramp.start, NaiveDate::from_ymd_opt(2026, 11, 23).unwrap());
            assert_eq!((ramp.daily_start, ramp.daily_step), (10, 0));
        }
    }

    #[test]
    fn revision_is_the_sha256_of_the_bytes() {
        assert_eq!(revision_of("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let text = minimal();
        let config = loaded(&text);
        assert_eq!(config.revision, hex::encode(Sha256::digest(text.as_bytes())));
        assert_eq!(loaded(&text).revision, config.revision);
        let one_byte_changed = text.replacen("\"data\"", "\"datb\"", 1);
        assert_ne!(loaded(&one_byte_changed).revision, config.revision);
        assert_ne!(loaded(&format!("{text} ")).revision, config.revision);
    }

    #[test]
    fn load_file_reports_an_unreadable_path() {
        let found = load_file(Path::new("/nonexistent/gavel.toml")).unwrap_err().0;
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("/nonexistent/gavel.toml: "));
    }

    #[test]
    fn example_config_loads() {
        for (var, value) in [
            ("GAVEL_ADMIN_TOKEN", "example-admin"),
            ("GAVEL_SELLER_ACME_KEY", "example-sk-acme"),
            ("GAVEL_SELLER_NORTHWIND_KEY", "example-sk-northwind"),
            ("GAVEL_BUYER_BEST_KEY", "example-bk-best"),
            ("GAVEL_BUYER_BEST_AUTH", "Bearer example"),
            ("GAVEL_BUYER_SOLAR_KEY", "example-bk-solar"),
            ("GAVEL_BUYER_SOLAR_AUTH", "example-solar-auth"),
            ("GAVEL_BUYER_QUOTEHUB_KEY", "example-bk-quotehub"),
        ] {
            std::env::set_var(var, value);
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
        let config = load_file(&path).unwrap_or_else(|e| panic!("config/example.toml:\n{e}"));
        assert_eq!((config.sellers.len(), config.campaigns.len(), config.buyers.len()), (2, 2, 3));
        assert_eq!(config.sellers[0].margin_percent, Decimal::new(125, 1));
        assert_eq!(config.campaigns[1].sell, SellMode::Shared { max_buyers: 3 });
        let best = config.buyer("best-insurance").unwrap();
        assert_eq!(best.filters.states, ["CA", "NV", "OR"]);
        assert_eq!(best.filters.rules.len(), 4);
        assert!(best.ramp.is_some());
        let solar = config.buyer("solar-direct").unwrap();
        assert!(solar.ping_url.is_none() && solar.fixed_price.is_some());
        assert!(matches!(solar.billing, Billing::Invoice { .. }));
        assert!(!solar.returns.enabled);
        let solar_buyers: Vec<&str> = config.buyers_of("home-solar").map(|(_, b)| b.id.as_str()).collect();
        assert_eq!(solar_buyers, ["solar-direct", "quote-hub"]);
        assert!(config.buyer("quote-hub").unwrap().paused);
    }
}
