//! Held pings, the post lock and its memo, audit trails, seller ping rates, node heartbeats and reload
//! broadcasts in Redis.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use redis::Value;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::{integer, text, RedisCoordinator};
use crate::coordinator::{PingRecord, Publication, Unreachable};
use crate::domain::ranking::Offer;
use crate::ids::new_id;
use crate::ratelimit::RateLimited;

/// How often a post that found another node delivering the same ping looks for its answer.
const POST_WAIT_STEP: Duration = Duration::from_millis(20);

/// What a node says of itself every second (`GET /admin/cluster`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeBeat {
    pub node_id: String,
    pub revision: String,
    /// Milliseconds since the Unix epoch.
    pub last_seen_ms: i64,
    pub auctions_in_flight: u64,
    pub redis: bool,
    pub postgres: bool,
}

/// Whose turn it is to deliver a posted ping.
pub enum PostTurn {
    /// This post delivers; finish the lock with the answer.
    Mine(PostLock),
    /// An earlier post was answered: its memo.
    Answered(Vec<u8>),
}

/// The right to deliver one ping, held in Redis until the answer is memoized (or it expires: a node that dies
/// mid-delivery lets a later post try again).
pub struct PostLock {
    redis: Arc<RedisCoordinator>,
    ping_id: String,
    token: String,
    finished: bool,
}

impl PostLock {
    /// Keeps the lock for as long as the returned guard lives, renewing it to `hold_for` three times per
    /// `hold_for`: a delivery under way keeps its ping's turn however long it takes (a sale waiting for
    /// PostgreSQL to come back is answered only once booked), so a post of the same ping on another node waits
    /// for its answer rather than taking the turn. A node that dies stops renewing, and the lock expires.
    pub fn keep_while_delivering(&self, hold_for: Duration) -> KeptTurn {
        let (redis, key, token) =
            (Arc::clone(&self.redis), self.redis.ping_keys(&self.ping_id).lock(), self.token.clone());
        let renew = async move {
            loop {
                tokio::time::sleep(hold_for / 3).await;
                let mut extend = redis::cmd("FCALL");
                extend.arg("gavel_extend_lock").arg(1).arg(&key).arg(&token).arg(hold_for.as_millis() as u64);
                // Unreachable: tried again next round, while the lock still has two thirds of its time.
                if let Ok(0) = redis.call::<i64>("post_lock_extend", &extend).await {
                    return;
                }
            }
        };
        KeptTurn(tokio::spawn(renew).abort_handle())
    }

    /// Keeps the first answer for `keep` (a repeated post gets it) and lets go of the lock.
    pub async fn finish(mut self, memo: Vec<u8>, keep: Duration) {
        self.finished = true;
        let keys = self.redis.ping_keys(&self.ping_id);
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(keys.memo()).arg(memo).arg("PX").arg(keep.as_millis() as u64).ignore();
        pipe.add_command(self.unlock()).ignore();
        let _ = self.redis.pipeline("post_memo", &pipe).await;
    }

    /// Deletes the lock if it is still this post's (`gavel_unlock`).
    fn unlock(&self) -> redis::Cmd {
        let mut unlock = redis::cmd("FCALL");
        unlock.arg("gavel_unlock").arg(1).arg(self.redis.ping_keys(&self.ping_id).lock()).arg(&self.token);
        unlock
    }
}

/// Renews a post lock until dropped (see [`PostLock::keep_while_delivering`]).
pub struct KeptTurn(tokio::task::AbortHandle);

impl Drop for KeptTurn {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Drop for PostLock {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Refused before delivering (a 4xx, a 503): nothing to remember; the next post may go ahead.
        let (redis, unlock) = (Arc::clone(&self.redis), self.unlock());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = redis.call::<Value>("post_unlock", &unlock).await;
            });
        }
    }
}

/// The keys of one held ping, under its hash tag.
pub(super) struct PingKeys(String);

impl PingKeys {
    fn record(&self) -> String {
        format!("{}ping", self.0)
    }
    fn lock(&self) -> String {
        format!("{}lock", self.0)
    }
    fn memo(&self) -> String {
        format!("{}memo", self.0)
    }
    fn audit(&self) -> String {
        format!("{}audit", self.0)
    }
    fn progress(&self) -> String {
        format!("{}progress", self.0)
    }
}

/// A node's share of one seller's ping budget: taken from Redis a slice at a time, spent locally.
#[derive(Default)]
pub(super) struct Lease {
    tokens: AtomicU32,
    /// Taken at this many milliseconds past the coordinator's start; a slice is spent within a second or lost.
    taken_ms: std::sync::atomic::AtomicU64,
    refilling: AtomicBool,
}

impl RedisCoordinator {
    pub(super) fn ping_keys(&self, ping_id: &str) -> PingKeys {
        PingKeys(format!("{}{{p:{ping_id}}}:", self.prefix))
    }

    /// The command that stores a held ping for `publication.keep`.
    pub(crate) fn ping_record_command(
        &self,
        publication: &Publication<'_>,
        offers: &[Offer],
        hold_ids: &[Option<String>],
    ) -> redis::Cmd {
        let mut command = redis::cmd("SET");
        command
            .arg(self.ping_keys(publication.ping_id).record())
            .arg((publication.build)(offers, hold_ids))
            .arg("PX")
            .arg(publication.keep.as_millis().max(1) as u64);
        command
    }

    /// Stores a held ping that needs no hold (a test ping, or one without winners); waiting trails ride along.
    pub async fn publish_ping(&self, publication: &Publication<'_>, offers: &[Offer]) -> Result<(), Unreachable> {
        let holds = vec![None; offers.len()];
        let mut pipe = redis::pipe();
        pipe.add_command(self.ping_record_command(publication, offers, &holds));
        super::trails::ride_along(&self.trails, &mut pipe);
        self.pipeline("publish_ping", &pipe).await.map(drop)
    }

    /// A held ping by id, as any node stored it.
    pub async fn load_ping(&self, ping_id: &str) -> Result<Option<PingRecord<'static>>, Unreachable> {
        let bytes: Option<Vec<u8>> =
            self.call("load_ping", redis::cmd("GET").arg(self.ping_keys(ping_id).record())).await?;
        Ok(bytes.as_deref().and_then(PingRecord::from_bytes))
    }

    /// Waits for this post's turn to deliver `ping_id`, or for the first post's answer. `hold_for` bounds how
    /// long a delivery may keep the lock; `wait_up_to` how long this post waits for another node's.
    pub async fn take_post_turn(
        self: &Arc<Self>,
        ping_id: &str,
        hold_for: Duration,
        wait_up_to: Duration,
    ) -> Result<PostTurn, Unreachable> {
        let keys = self.ping_keys(ping_id);
        let token = format!("{}:{}", self.node, new_id("k_"));
        let give_up = Instant::now() + wait_up_to;
        loop {
            let mut pipe = redis::pipe();
            pipe.cmd("GET").arg(keys.memo());
            pipe.cmd("SET").arg(keys.lock()).arg(&token).arg("NX").arg("PX").arg(hold_for.as_millis() as u64);
            let answers = self.pipeline("post_turn", &pipe).await?;
            let locked = answers.get(1).and_then(text).is_some();
            let lock = || PostLock {
                redis: Arc::clone(self),
                ping_id: ping_id.to_owned(),
                token: token.clone(),
                finished: false,
            };
            if let Some(Value::BulkString(memo)) = answers.first() {
                // Answered already: a lock just taken is let go at once.
                if locked {
                    drop(lock());
                }
                return Ok(PostTurn::Answered(memo.clone()));
            }
            if locked {
                return Ok(PostTurn::Mine(lock()));
            }
            if Instant::now() >= give_up {
                return Err(Unreachable);
            }
            tokio::time::sleep(POST_WAIT_STEP).await;
        }
    }

    /// Stores an auction's trail (without its posts) for `keep`: with this node's next pipeline, or on its
    /// own within 20 ms (`trails.rs`).
    pub fn publish_audit(&self, ping_id: &str, trail: Vec<u8>, keep: Duration) {
        let mut command = redis::cmd("SET");
        command.arg(self.ping_keys(ping_id).audit()).arg(trail).arg("PX").arg(keep.as_millis() as u64);
        self.trails.push(command);
    }

    /// Adds a post attempt or a sale (`item`) to an auction's trail, whichever node runs the post.
    pub async fn append_progress(&self, ping_id: &str, items: Vec<Vec<u8>>, keep: Duration) {
        if items.is_empty() {
            return;
        }
        let key = self.ping_keys(ping_id).progress();
        let mut pipe = redis::pipe();
        pipe.cmd("RPUSH").arg(&key).arg(items).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(keep.as_millis() as u64).ignore();
        let _ = self.pipeline("append_progress", &pipe).await;
    }

    /// An auction's trail and its progress items, as every node wrote them.
    pub async fn load_audit(&self, ping_id: &str) -> Result<Option<(Vec<u8>, Vec<Vec<u8>>)>, Unreachable> {
        let keys = self.ping_keys(ping_id);
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(keys.audit());
        pipe.cmd("LRANGE").arg(keys.progress()).arg(0).arg(-1);
        let answers = self.pipeline("load_audit", &pipe).await?;
        let Some(Value::BulkString(trail)) = answers.first() else { return Ok(None) };
        let progress = match answers.get(1) {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| match item {
                    Value::BulkString(bytes) => Some(bytes.clone()),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        };
        Ok(Some((trail.clone(), progress)))
    }

    /// Admits one ping of a seller limited to `per_second` for the whole exchange. The node takes the seller's
    /// budget from Redis a slice (2% of a second's worth, at least one) at a time and spends it locally,
    /// fetching the next slice in the background once half is spent, so a steady seller costs no round trip
    /// on its pings. A slice unspent within a second is dropped: the exchange admits at most the limit.
    pub async fn admit(self: &Arc<Self>, seller: &str, per_second: u32) -> Result<(), RateLimited> {
        let slice = (per_second / 50).max(1);
        let lease = self.leases.entry(seller.to_owned()).or_default();
        let now_ms = self.started.elapsed().as_millis() as u64;
        let fresh = now_ms.saturating_sub(lease.taken_ms.load(Ordering::Acquire)) < 1000;
        if fresh {
            let taken = lease.tokens.fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| t.checked_sub(1));
            if let Ok(before) = taken {
                if before - 1 <= slice / 2 && !lease.refilling.swap(true, Ordering::AcqRel) {
                    let (redis, seller) = (Arc::clone(self), seller.to_owned());
                    tokio::spawn(async move { redis.refill(&seller, per_second, slice).await });
                }
                return Ok(());
            }
        }
        drop(lease);
        match self.take_slice(seller, per_second, slice).await {
            Ok((granted, _)) if granted > 0 => {
                let lease = self.leases.entry(seller.to_owned()).or_default();
                lease.tokens.store(granted - 1, Ordering::Release);
                lease.taken_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Release);
                Ok(())
            }
            Ok((_, retry_after)) => Err(RateLimited { per_second, retry_after }),
            // Redis down: the ping would fail at its hold anyway; let it through to say so (503).
            Err(Unreachable) => Ok(()),
        }
    }

    async fn refill(&self, seller: &str, per_second: u32, slice: u32) {
        if let Ok((granted, _)) = self.take_slice(seller, per_second, slice).await {
            if let Some(lease) = self.leases.get(seller) {
                if granted > 0 {
                    lease.tokens.fetch_add(granted, Ordering::AcqRel);
                    lease.taken_ms.store(self.started.elapsed().as_millis() as u64, Ordering::Release);
                }
                lease.refilling.store(false, Ordering::Release);
            }
        } else if let Some(lease) = self.leases.get(seller) {
            lease.refilling.store(false, Ordering::Release);
        }
    }

    async fn take_slice(&self, seller: &str, per_second: u32, slice: u32) -> Result<(u32, Duration), Unreachable> {
        let key = format!("{}{{s:{seller}}}:rate", self.prefix);
        let mut command = redis::cmd("FCALL");
        command.arg("gavel_rate").arg(1).arg(key).arg(per_second).arg(slice);
        let answer: Value = self.call("rate", &command).await?;
        let Value::Array(items) = answer else { return Err(Unreachable) };
        let granted = items.first().and_then(integer).unwrap_or(0).max(0) as u32;
        let retry_ms = items.get(1).and_then(integer).unwrap_or(1000).max(1) as u64;
        Ok((granted, Duration::from_millis(retry_ms)))
    }

    /// Says this node is alive (every second); a node not heard from for 10 s is off the list.
    pub async fn beat(&self, beat: &NodeBeat) {
        let bytes = serde_json::to_vec(beat).expect("a beat serializes");
        let mut command = redis::cmd("HSET");
        command.arg(format!("{}nodes", self.prefix)).arg(&beat.node_id).arg(bytes);
        let _ = self.call::<Value>("beat", &command).await;
    }

    /// Every node's last beat.
    pub async fn nodes(&self) -> Result<Vec<NodeBeat>, Unreachable> {
        let all: Vec<(String, Vec<u8>)> =
            self.call("nodes", redis::cmd("HGETALL").arg(format!("{}nodes", self.prefix))).await?;
        Ok(all.into_iter().filter_map(|(_, bytes)| serde_json::from_slice(&bytes).ok()).collect())
    }

    /// Tells every node to re-read its config file.
    pub async fn announce_reload(&self) -> Result<i64, Unreachable> {
        self.call("announce_reload", redis::cmd("INCR").arg(format!("{}reload", self.prefix))).await
    }

    /// The reload generation now (0 when none was announced).
    pub async fn reload_generation(&self) -> Result<i64, Unreachable> {
        let value: Option<i64> =
            self.call("reload_generation", redis::cmd("GET").arg(format!("{}reload", self.prefix))).await?;
        Ok(value.unwrap_or(0))
    }
}

/// The leases of every seller this node has pinged for.
pub(super) type Leases = DashMap<String, Lease>;

impl RedisCoordinator {
    fn session_key(&self, key: &str) -> String {
        format!("{}session:{key}", self.prefix)
    }

    /// Stores a web session (`key`: the hex SHA-256 of its cookie's token) for `idle`.
    pub async fn session_put(&self, key: &str, session: Vec<u8>, idle: Duration) -> Result<(), Unreachable> {
        let mut command = redis::cmd("SET");
        command.arg(self.session_key(key)).arg(session).arg("EX").arg(idle.as_secs().max(1));
        self.call::<Value>("session_put", &command).await.map(drop)
    }

    /// A web session, its idle time started again (`GETEX … EX`: one step); `None` when it expired or never was.
    pub async fn session_touch(&self, key: &str, idle: Duration) -> Result<Option<Vec<u8>>, Unreachable> {
        let mut command = redis::cmd("GETEX");
        command.arg(self.session_key(key)).arg("EX").arg(idle.as_secs().max(1));
        self.call("session_touch", &command).await
    }

    /// Ends a web session.
    pub async fn session_remove(&self, key: &str) -> Result<(), Unreachable> {
        self.call::<Value>("session_remove", redis::cmd("DEL").arg(self.session_key(key))).await.map(drop)
    }
}
