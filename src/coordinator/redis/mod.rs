//! The coordinator in Redis (cluster mode): a multiplexed connection (which pipelines concurrent calls) per
//! thread that calls Redis, and the `gavel` function library (`gavel.lua`), one function per atomic step.
//!
//! ## One connection per thread
//! A multiplexed connection is driven by a task of its own: with one per node, an auction on one core waited
//! for a task woken on another at every call (a cross-thread wake each way). Each thread that calls Redis —
//! an HTTP worker, in practice — gets its own connection, opened lazily on first use on that thread's
//! runtime, so its driver runs where the auction runs. Once a call finds Redis gone, every thread's next call
//! opens a new connection (a Redis that restarted has closed them all).
//!
//! ## Keys
//! Every key starts `gavel:<exchange>:`. A buyer's keys share the hash tag `{b:<id>}`, a held ping's `{p:<id>}`,
//! a seller's `{s:<id>}`, so each function touches one slot and a Redis Cluster works as a single Redis does.
//!
//! ## An empty Redis
//! Redis keeps nothing on disk here: a restart empties it. Every buyer's tally carries the exchange's *epoch*,
//! set when it was last rebuilt from the ledger; a hold that finds no epoch (or another one) answers `empty`,
//! and the `epoch` key itself is watched every 250 ms. Either way the node rebuilds (one node at a time, under
//! a lock; the others wait for the new epoch) before it takes another hold: caps, budgets and the balance
//! mirror from the ledger, the duplicate history from its sales. Holds of unposted bids are lost with Redis;
//! their posts answer 410. Sales converted shortly before the flush are converted again once the new epoch
//! is in place (each node keeps its last minute of conversions), so none is missing from the counts: a sale
//! counted twice is the safe side, a sale missing could exceed a cap.
//!
//! ## Layout
//! - `redis/holds.rs` — holds, claims, conversions, credits, slots, the buyer's tally.
//! - `redis/rebuild.rs` — the exchange's state rebuilt from the ledger after Redis lost it.
//! - `redis/pings.rs` — held pings, the post lock and memo, audit trails, seller ping rates, node heartbeats,
//!   reload broadcasts.

mod gather;
mod holds;
mod pings;
mod rebuild;
mod trails;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, FromRedisValue, IntoConnectionInfo, RedisResult, Value};
use tokio::time::Instant;

use super::Unreachable;
use crate::ledger::postgres::StoreObserver;

use holds::Expiries;
pub use holds::{RemoteHold, RemoteSlot, TallySnapshot};
pub use pings::{NodeBeat, PostLock, PostTurn};
use trails::Trails;

/// The function library, loaded (again) whenever Redis does not know it.
const LIBRARY: &str = include_str!("gavel.lua");

/// Longest any one call may take. Pings have a few hundred milliseconds in all; a store slower than this is as
/// good as down for them.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);

/// Calls timed out in a row before Redis counts as unreachable: one slow answer under load is not an outage
/// (a lost connection is, at once).
const TIMEOUTS_FOR_DOWN: u32 = 3;

/// How long a node keeps the sales it converted, to convert them again into a rebuilt Redis.
const RECENT_CONVERSIONS: Duration = Duration::from_secs(60);

/// The Redis half of cluster mode.
pub struct RedisCoordinator {
    connections: Connections,
    /// `gavel:<exchange>:`.
    prefix: String,
    node: String,
    /// The epoch this node last saw complete; `None` until the first check.
    epoch: RwLock<Option<String>>,
    up: AtomicBool,
    /// Calls timed out in a row.
    timeouts: AtomicU32,
    /// Whether the epoch was checked since Redis last went away: a Redis that comes back may be empty, and
    /// this node takes no hold until it knows.
    confirmed: AtomicBool,
    /// Set while this node waits for (or does) a rebuild: holds answer `Unreachable` meanwhile.
    rebuilding: AtomicBool,
    /// The sales this node converted in the last minute, to convert again after a flush.
    recent: Mutex<Vec<(Instant, holds::Conversion)>>,
    /// Expired holds on their way to being released together.
    expiries: Expiries,
    /// Auction trails waiting to ride along with this node's next hold.
    trails: Trails,
    /// This node's slices of each seller's ping budget.
    leases: pings::Leases,
    /// When this coordinator started: leases keep their times as milliseconds since.
    started: Instant,
    observer: Option<StoreObserver>,
}

impl RedisCoordinator {
    /// Connects (lazily: a node may start while Redis is down and become ready when it answers) and loads the
    /// function library when Redis answers.
    pub async fn connect(
        url: &str,
        exchange: &str,
        node: &str,
        observer: Option<StoreObserver>,
    ) -> Result<Arc<RedisCoordinator>, String> {
        let client = open_client(url)?;
        let config = AsyncConnectionConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(Duration::from_secs(1)));
        let coordinator = Arc::new(RedisCoordinator {
            connections: Connections::new(client, config),
            prefix: format!("gavel:{exchange}:"),
            node: node.to_owned(),
            epoch: RwLock::new(None),
            up: AtomicBool::new(false),
            timeouts: AtomicU32::new(0),
            confirmed: AtomicBool::new(false),
            rebuilding: AtomicBool::new(false),
            recent: Mutex::new(Vec::new()),
            expiries: Expiries::default(),
            trails: Trails::default(),
            leases: pings::Leases::default(),
            started: Instant::now(),
            observer,
        });
        tokio::spawn(holds::release_expired_holds(Arc::downgrade(&coordinator)));
        tokio::spawn(trails::send_waiting_trails(Arc::downgrade(&coordinator)));
        // Not fatal: the health loop keeps trying.
        let _ = coordinator.load_library().await;
        Ok(coordinator)
    }

    /// Whether the last call reached Redis.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Whether this node can take holds now: Redis answers and holds this node's epoch.
    pub fn is_ready(&self) -> bool {
        self.is_up()
            && self.confirmed.load(Ordering::Acquire)
            && !self.rebuilding.load(Ordering::Acquire)
            && self.epoch.read().is_some()
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        &self.node
    }

    async fn load_library(&self) -> Result<(), Unreachable> {
        let mut load = redis::cmd("FUNCTION");
        load.arg("LOAD").arg("REPLACE").arg(LIBRARY);
        self.call_once::<Value>("load_library", &load).await.map(drop)
    }

    /// One command; reloads the library and retries once when Redis does not know a function (it restarted).
    async fn call<T: FromRedisValue>(&self, op: &'static str, command: &redis::Cmd) -> Result<T, Unreachable> {
        match self.call_raw(op, command).await {
            Err(Failure::NoFunction) => {
                self.load_library().await?;
                self.call_raw(op, command).await.map_err(|_| Unreachable)
            }
            other => other.map_err(|_| Unreachable),
        }
    }

    async fn call_once<T: FromRedisValue>(&self, op: &'static str, command: &redis::Cmd) -> Result<T, Unreachable> {
        self.call_raw(op, command).await.map_err(|_| Unreachable)
    }

    async fn call_raw<T: FromRedisValue>(&self, op: &'static str, command: &redis::Cmd) -> Result<T, Failure> {
        let started = Instant::now();
        let result = match self.connections.this_thread().await {
            Ok(mut connection) => command.query_async::<T>(&mut connection).await,
            Err(error) => Err(error),
        };
        self.finish(op, started, result)
    }

    /// Several commands in one round trip; a pipeline is resent whole after the library was reloaded.
    async fn pipeline(&self, op: &'static str, pipe: &redis::Pipeline) -> Result<Vec<Value>, Unreachable> {
        let send = || async {
            let started = Instant::now();
            let result = match self.connections.this_thread().await {
                Ok(mut connection) => pipe.query_async::<Vec<Value>>(&mut connection).await,
                Err(error) => Err(error),
            };
            self.finish(op, started, result)
        };
        match send().await {
            Err(Failure::NoFunction) => {
                self.load_library().await?;
                send().await.map_err(|_| Unreachable)
            }
            other => other.map_err(|_| Unreachable),
        }
    }

    fn finish<T>(&self, op: &'static str, started: Instant, result: redis::RedisResult<T>) -> Result<T, Failure> {
        if let Some(observer) = &self.observer {
            observer(op, started.elapsed());
        }
        match result {
            Ok(value) => {
                self.timeouts.store(0, Ordering::Release);
                if !self.up.swap(true, Ordering::AcqRel) {
                    tracing::info!("redis reachable");
                }
                Ok(value)
            }
            Err(error) if error.to_string().contains("Function not found") => Err(Failure::NoFunction),
            Err(error)
                if error.is_timeout() && self.timeouts.fetch_add(1, Ordering::AcqRel) + 1 < TIMEOUTS_FOR_DOWN =>
            {
                Err(Failure::Lost)
            }
            Err(error) if error.is_io_error() || error.is_timeout() || error.is_connection_dropped() => {
                // Every thread's next call opens a connection of its own again.
                self.connections.failed();
                // A Redis that comes back may be empty: its epoch is checked before the next hold.
                self.confirmed.store(false, Ordering::Release);
                if self.up.swap(false, Ordering::AcqRel) {
                    tracing::warn!(%error, "redis unreachable");
                }
                Err(Failure::Lost)
            }
            Err(error) => {
                tracing::error!(%error, op, "redis refused a call");
                Err(Failure::Refused)
            }
        }
    }

    /// Checks that Redis answers and still holds this node's epoch (the health loop, every 250 ms). Returns
    /// `Some(true)` when the exchange's state is in place, `Some(false)` when it must be rebuilt, `None` when
    /// Redis cannot be reached.
    pub async fn check_epoch(&self) -> Option<bool> {
        let epoch: Option<String> = self.call("epoch", redis::cmd("GET").arg(self.epoch_key())).await.ok()?;
        let known = self.epoch.read().clone();
        let verdict = match (epoch, known) {
            (Some(now), Some(known)) if now == known => Some(true),
            // A node that starts (or restarts) adopts the epoch it finds: Redis was rebuilt or is intact.
            (Some(now), None) => {
                *self.epoch.write() = Some(now);
                Some(true)
            }
            // Another node rebuilt it: adopt, then convert recent sales again in case they were lost.
            (Some(now), Some(_)) => {
                *self.epoch.write() = Some(now);
                self.rebuilding.store(false, Ordering::Release);
                self.reconvert_recent().await;
                Some(true)
            }
            (None, _) => Some(false),
        };
        self.confirmed.store(verdict == Some(true), Ordering::Release);
        verdict
    }

    fn epoch_key(&self) -> String {
        format!("{}epoch", self.prefix)
    }

    fn known_epoch(&self) -> Option<String> {
        self.epoch.read().clone()
    }
}

/// A client for `url` whose connections send each command at once (`TCP_NODELAY`, as every other connection
/// of a node has; the redis crate leaves Nagle's algorithm on): with it on, a command written while an
/// earlier one on the same multiplexed connection awaits its reply — another auction's hold on the same
/// worker — waits in the kernel for that reply's acknowledgement.
fn open_client(url: &str) -> Result<redis::Client, String> {
    let info = url.into_connection_info().map_err(|e| format!("redis_url: {e}"))?;
    let tcp = info.tcp_settings().clone().set_nodelay(true);
    redis::Client::open(info.set_tcp_settings(tcp)).map_err(|e| format!("redis_url: {e}"))
}

/// This node's connections to Redis, one per calling thread (see the module's notes).
struct Connections {
    client: redis::Client,
    config: AsyncConnectionConfig,
    by_thread: DashMap<std::thread::ThreadId, (u64, MultiplexedConnection)>,
    /// Counts the calls that found Redis gone. A connection opened before the latest such call is not used
    /// again: Redis may have restarted since, and every thread's connection to the old one is dead (a thread
    /// would otherwise learn so only by failing a call of its own, after Redis is back).
    failures: AtomicU64,
}

impl Connections {
    fn new(client: redis::Client, config: AsyncConnectionConfig) -> Connections {
        Connections { client, config, by_thread: DashMap::new(), failures: AtomicU64::new(0) }
    }

    /// This thread's connection, opened now if it has none since the last failure (its driver task starts
    /// on this thread's runtime). Two calls racing to open one each get one; the second replaces the first,
    /// which closes once its calls are answered.
    async fn this_thread(&self) -> RedisResult<MultiplexedConnection> {
        let thread = std::thread::current().id();
        let failures = self.failures.load(Ordering::Acquire);
        if let Some(entry) = self.by_thread.get(&thread) {
            let (opened_after, connection) = &*entry;
            if *opened_after == failures {
                return Ok(connection.clone());
            }
        }
        let connection = self.client.get_multiplexed_async_connection_with_config(&self.config).await?;
        self.by_thread.insert(thread, (failures, connection.clone()));
        Ok(connection)
    }

    /// A call found Redis gone: every connection opened until now is let go.
    fn failed(&self) {
        self.failures.fetch_add(1, Ordering::AcqRel);
    }
}

/// How a call failed.
enum Failure {
    /// Redis does not know the function library (it restarted): load it and retry.
    NoFunction,
    /// No answer: Redis is down or too slow.
    Lost,
    /// Redis answered with an error.
    Refused,
}

/// A script's first element: its verdict.
fn verdict(value: &Value) -> Option<String> {
    match value {
        Value::Array(items) => items.first().and_then(text),
        other => text(other),
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::open_client;

    #[test]
    fn connections_send_each_command_at_once() {
        let client = open_client("redis://127.0.0.1:6379/0").expect("a redis url");
        assert!(client.get_connection_info().tcp_settings().nodelay());
    }

    #[test]
    fn a_url_that_names_no_redis_is_refused_naming_the_key() {
        let error = open_client("http://127.0.0.1:6379").expect_err("not a redis url");
        assert!(error.starts_with("redis_url: "), "{error}");
    }
}
