//! Reading the TOML file into [`Config`](super::Config).
//!
//! The text is parsed into a plain `toml::Table` and walked by hand instead of deserialized with serde: a derive
//! stops at the first mistake, while an operator fixing a file wants every problem at once, each with its path
//! (`buyers[2].caps.daily: must be > 0`). A [`Section`] is one table being read: it hands out [`Field`]s that
//! know their path and remembers which keys were asked for, so whatever is left over is an unknown key. Each
//! `read_*` function reads every key of its table before it gives up, so one bad value never hides another.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use rust_decimal::Decimal;
use sha2::{Digest, Sha256};
use toml::Table;

use super::{
    AuctionKind, Billing, Buyer, Campaign, Caps, ClusterConfig, Config, Distribution, Filters, PostalCodes, Ramp,
    Ranking, ResponseAdapter, ReturnPolicy, Rule, RuleOp, Schedule, Secret, SellMode, Seller, ServerConfig, Sla,
    KNOWN_RETURN_REASONS,
};

mod buyer;
mod campaign;
mod reader;

use buyer::read_buyer;
use campaign::read_campaign;
use reader::*;

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
        Some(parts) if problems.0.is_empty() => Ok(Config::new(
            parts.server,
            parts.cluster,
            parts.sellers,
            parts.campaigns,
            parts.buyers,
            revision_of(text),
        )),
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
    cluster: Option<ClusterConfig>,
    sellers: Vec<Seller>,
    campaigns: Vec<Campaign>,
    buyers: Vec<Buyer>,
}

fn read_root(table: &Table, p: &mut Problems) -> Option<Parts> {
    let mut root = Section::new(String::new(), table);
    let mut registry = Registry::default();
    let server = root.need("server", p).and_then(|f| f.table(p)).and_then(|s| read_server(s, p));
    registry.admin_token = server.as_ref().map(|s| s.admin_token.clone());
    let cluster = root.optional("cluster", |f| f.table(p).and_then(|s| read_cluster(s, p)));
    let sellers = read_each(&mut root, "sellers", p, |s, p| read_seller(s, &mut registry, p));
    // Campaigns before buyers, whatever the order in the file: buyers refer to them.
    let campaigns = read_each(&mut root, "campaigns", p, |s, p| read_campaign(s, &mut registry, p));
    let buyers = read_each(&mut root, "buyers", p, |s, p| read_buyer(s, &mut registry, p));
    root.finish(p);
    Some(Parts { server: server?, cluster: cluster?, sellers: sellers?, campaigns: campaigns?, buyers: buyers? })
}

/// `[cluster]`: its name names the Redis keys and the PostgreSQL schema, so it is kept to what both accept
/// unquoted.
fn read_cluster(mut s: Section, p: &mut Problems) -> Option<ClusterConfig> {
    let name = s.need("name", p).and_then(|f| {
        let name = f.str(p)?;
        let mut chars = name.chars();
        let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if first_ok && rest_ok && name.len() <= 31 {
            Some(name.to_owned())
        } else {
            f.fail("must be a lower-case letter then up to 30 of a-z, 0-9 and '_'", p)
        }
    });
    let node_id = s.optional("node_id", |f| f.id(p));
    let redis_url = s.need("redis_url", p).and_then(|f| f.secret(p));
    let postgres_url = s.need("postgres_url", p).and_then(|f| f.secret(p));
    s.finish(p);
    Some(ClusterConfig { name: name?, node_id: node_id?, redis_url: redis_url?, postgres_url: postgres_url? })
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
    let workers = s.optional("workers", |f| f.uint(1, 1024, p));
    s.finish(p);
    Some(ServerConfig {
        listen: listen?,
        data_dir: data_dir?,
        admin_token: admin_token?,
        max_body_bytes: usize::try_from(max_body_bytes?).ok()?,
        header_read_timeout: std::time::Duration::from_millis(header_read_timeout_ms?),
        max_connections: usize::try_from(max_connections?).ok()?,
        max_auctions_in_flight: max_auctions_in_flight?.map(usize::try_from).transpose().ok()?,
        workers: workers?.map(usize::try_from).transpose().ok()?,
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

#[cfg(test)]
mod tests;
