//! Cluster mode's housekeeping (API.md section 9): what keeps a node in step with the exchange while it runs.
//!
//! - **Tail** (every 200 ms): catches this node's books up with every node's ledger entries, so its local view
//!   — caps, duplicates, pauses — lags by at most that, and a pause on one node applies on all within 1 s.
//! - **Watch** (every 250 ms): asks Redis for the exchange's epoch (a node notices an emptied Redis within a
//!   quarter second and rebuilds it from the ledger before it takes another hold), for the reload generation
//!   (`POST /admin/reload` on one node makes every node re-read its own file), probes PostgreSQL, and once a
//!   second says in Redis that this node is alive (`GET /admin/cluster`).
//!
//! Readiness follows the stores: `/readyz` answers 503 while Redis or PostgreSQL cannot be reached or Redis is
//! being rebuilt, and 200 again once they answer; nothing needs a restart.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::task::JoinHandle;

use crate::coordinator::redis::NodeBeat;
use crate::engine::Engine;

const TAIL_EVERY: Duration = Duration::from_millis(200);
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// How long a node may go unheard before `GET /admin/cluster` drops it.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a clustered node cannot sell now, if it cannot.
pub fn unready_reason(engine: &Engine) -> Option<&'static str> {
    let redis = engine.coordinator.redis()?;
    if !redis.is_up() {
        Some("redis unreachable")
    } else if !engine.ledger.is_available() {
        Some("postgres unreachable")
    } else if !redis.is_ready() {
        Some("redis being rebuilt from the ledger")
    } else {
        None
    }
}

/// The stores' health as `GET /admin/cluster` shows it.
pub fn stores(engine: &Engine) -> serde_json::Value {
    match engine.coordinator.redis() {
        None => serde_json::json!({}),
        Some(redis) => serde_json::json!({
            "redis": if redis.is_up() { "ok" } else { "down" },
            "postgres": if engine.ledger.is_available() { "ok" } else { "down" },
        }),
    }
}

/// Every node heard from within [`NODE_TIMEOUT`], this one first.
pub async fn live_nodes(engine: &Engine) -> Vec<NodeBeat> {
    let mut nodes = match engine.coordinator.redis() {
        Some(redis) => redis.nodes().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let oldest = Utc::now().timestamp_millis() - NODE_TIMEOUT.as_millis() as i64;
    nodes.retain(|node| node.last_seen_ms >= oldest && node.node_id != engine.node_id());
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    nodes.insert(0, beat(engine));
    nodes
}

fn beat(engine: &Engine) -> NodeBeat {
    NodeBeat {
        node_id: engine.node_id().to_owned(),
        revision: engine.config().revision.clone(),
        last_seen_ms: Utc::now().timestamp_millis(),
        auctions_in_flight: engine.auction_slots.in_flight() as u64,
        redis: engine.coordinator.redis().is_some_and(|r| r.is_up()),
        postgres: engine.ledger.is_available(),
    }
}

/// The housekeeping tasks of a clustered node; they stop when dropped.
pub struct Housekeeping {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Housekeeping {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts the tail and the watch (nothing in single mode).
pub fn start(engine: &Arc<Engine>) -> Housekeeping {
    let Some(redis) = engine.coordinator.redis().cloned() else { return Housekeeping { tasks: Vec::new() } };
    let tail = tokio::spawn({
        let engine = Arc::clone(engine);
        async move {
            let mut every = tokio::time::interval(TAIL_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                every.tick().await;
                let _ = engine.ledger.sync().await;
            }
        }
    });
    let watch = tokio::spawn({
        let engine = Arc::clone(engine);
        async move {
            let mut every = tokio::time::interval(WATCH_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut reload_seen = redis.reload_generation().await.ok();
            for tick in 0u64.. {
                every.tick().await;
                keep_redis(&engine, &redis).await;
                if let Ok(generation) = redis.reload_generation().await {
                    if reload_seen.is_some_and(|seen| seen != generation) {
                        // Another node's reload: re-read this node's own file.
                        if engine.reload().is_ok() {
                            let _ = redis.ensure_buyers(&engine.roster(), &engine.ledger).await;
                        }
                    }
                    reload_seen = Some(generation);
                }
                if tick % 4 == 0 {
                    if let Some(pg) = engine.ledger.postgres() {
                        pg.probe().await;
                    }
                    redis.beat(&beat(&engine)).await;
                }
            }
        }
    });
    Housekeeping { tasks: vec![tail, watch] }
}

/// Keeps Redis holding the exchange's state: rebuilds it from the ledger when it was emptied, or adds a
/// buyer it does not know yet.
async fn keep_redis(engine: &Engine, redis: &crate::coordinator::RedisCoordinator) {
    match redis.check_epoch().await {
        // Unreachable: nothing to do until it answers.
        None => {}
        Some(false) => {
            if let Ok(true) = redis.rebuild(&engine.roster(), &engine.ledger).await {
                engine.metrics.inc("gavel_redis_rebuilds_total", &[]);
            }
        }
        // The epoch is there, so a hold found one buyer missing (new to Redis): add it.
        Some(true) if redis.rebuild_wanted() => match redis.ensure_buyers(&engine.roster(), &engine.ledger).await {
            Ok(()) => redis.rebuilt(),
            Err(_) => tracing::debug!("buyers not yet added to redis; retrying"),
        },
        Some(true) => {}
    }
}
