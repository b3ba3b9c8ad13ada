//! Sessions of the web pages: server-side, behind the [`SessionStore`] interface so that every node of a
//! cluster can read them (API.md section 10). The cookie holds only a random token; stores are keyed by its
//! SHA-256, so a store's contents never include a usable cookie, and a session holds its role, its CSRF
//! token and a fingerprint of the key it signed in with — never the key.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use parking_lot::Mutex;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::time::Instant;

/// A session ends after this long without use.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(12 * 60 * 60);

/// Sessions the in-memory store keeps at most; past it the least recently used one is dropped.
pub const MEMORY_CAPACITY: usize = 100_000;

/// Expired sessions the in-memory store drops per call at most, so no call pays for a backlog.
const EXPIRE_PER_CALL: usize = 8;

/// Who a session is signed in as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", content = "id", rename_all = "snake_case")]
pub enum Role {
    Operator,
    Buyer(String),
    Seller(String),
}

/// One signed-in browser.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub role: Role,
    /// Submitted with every change (a form's hidden `csrf` field) and compared in constant time.
    pub csrf: String,
    /// [`fingerprint`] of the key it signed in with: a session ends once its key is no longer in the config
    /// (rotated or removed), without the key being stored anywhere.
    pub key_fingerprint: String,
}

impl Session {
    /// A new session for `role`, signed in with `key`, with a fresh CSRF token.
    pub fn new(role: Role, key: &str) -> Session {
        Session { role, csrf: random_token(), key_fingerprint: fingerprint(key) }
    }

    /// True if `presented` is this session's CSRF token, in time that depends on neither.
    pub fn csrf_matches(&self, presented: &str) -> bool {
        digest(&self.csrf).ct_eq(&digest(presented)).into()
    }

    /// True if the key this session signed in with is `key`.
    pub fn signed_in_with(&self, key: &str) -> bool {
        fingerprint(key).as_bytes().ct_eq(self.key_fingerprint.as_bytes()).into()
    }
}

/// A cookie's token: 256 random bits from the thread's cryptographically secure generator, in hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What a store keys a session by: the SHA-256 of the cookie's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// The key of a cookie's token.
    pub fn of(token: &str) -> SessionKey {
        SessionKey(digest(token))
    }

    /// In hex, for stores that key by text (a Redis key).
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A domain-separated digest of a key, distinct from the digest the config indexes keys by.
fn fingerprint(key: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"gavel web session key\0");
    hasher.update(key.as_bytes());
    hex::encode(hasher.finalize())
}

/// Why a store could not answer (a shared store that is down); the page answers 503 and nothing changed.
#[derive(Debug, thiserror::Error)]
#[error("the session store is unavailable: {0}")]
pub struct StoreError(pub String);

/// What a store's calls return: boxed, so the interface is object safe and a store may do network I/O.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where sessions live. Each call is one atomic step; [`IDLE_TIMEOUT`] is the store's business (the
/// in-memory one below, or a shared store's expiry such as Redis's `EX` on set and `GETEX … EX` on use).
pub trait SessionStore: Send + Sync {
    /// Stores a new session, good for [`IDLE_TIMEOUT`] from now.
    fn insert(&self, key: SessionKey, session: Session) -> StoreFuture<'_, ()>;
    /// The session if it was used within [`IDLE_TIMEOUT`]; using it starts the timeout again.
    fn touch(&self, key: SessionKey) -> StoreFuture<'_, Option<Session>>;
    /// Ends a session (logout); ending one that is gone is not an error.
    fn remove(&self, key: SessionKey) -> StoreFuture<'_, ()>;
}

/// Sessions in Redis (cluster mode): a session signed in on one node works on every node. Each session is one
/// key, `gavel:<exchange>:session:<hex of the SHA-256 of the cookie's token>`, holding the session as JSON with
/// Redis's own expiry, set on sign-in and started again on every use.
pub struct RedisSessionStore {
    redis: std::sync::Arc<crate::coordinator::RedisCoordinator>,
}

impl RedisSessionStore {
    pub fn new(redis: std::sync::Arc<crate::coordinator::RedisCoordinator>) -> RedisSessionStore {
        RedisSessionStore { redis }
    }
}

fn unreachable(_: crate::coordinator::Unreachable) -> StoreError {
    StoreError("Redis cannot be reached".into())
}

impl SessionStore for RedisSessionStore {
    fn insert(&self, key: SessionKey, session: Session) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let json = serde_json::to_vec(&session).map_err(|e| StoreError(e.to_string()))?;
            self.redis.session_put(&key.to_hex(), json, IDLE_TIMEOUT).await.map_err(unreachable)
        })
    }

    fn touch(&self, key: SessionKey) -> StoreFuture<'_, Option<Session>> {
        Box::pin(async move {
            let found = self.redis.session_touch(&key.to_hex(), IDLE_TIMEOUT).await.map_err(unreachable)?;
            // A session that does not read (written by another version) is as good as none: sign in again.
            Ok(found.and_then(|json| serde_json::from_slice(&json).ok()))
        })
    }

    fn remove(&self, key: SessionKey) -> StoreFuture<'_, ()> {
        Box::pin(async move { self.redis.session_remove(&key.to_hex()).await.map_err(unreachable) })
    }
}

/// Sessions in this process's memory: one node's, lost on restart. Bounded to [`MEMORY_CAPACITY`]; each call
/// drops at most a few expired sessions, oldest first, so expiry never walks the whole store.
pub struct MemorySessionStore {
    inner: Mutex<Memory>,
    capacity: usize,
}

#[derive(Default)]
struct Memory {
    sessions: HashMap<SessionKey, (Session, Instant)>,
    /// Every session by its last use, oldest first.
    by_use: BTreeMap<(Instant, SessionKey), ()>,
}

impl Default for MemorySessionStore {
    fn default() -> Self {
        MemorySessionStore::with_capacity(MEMORY_CAPACITY)
    }
}

impl MemorySessionStore {
    /// A store that keeps at most `capacity` sessions.
    pub fn with_capacity(capacity: usize) -> MemorySessionStore {
        MemorySessionStore { inner: Mutex::default(), capacity: capacity.max(1) }
    }

    /// How many sessions it holds (expired ones not yet dropped included).
    pub fn len(&self) -> usize {
        self.inner.lock().sessions.len()
    }

    /// True if it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Memory {
    fn expire_some(&mut self, now: Instant) {
        for _ in 0..EXPIRE_PER_CALL {
            match self.by_use.first_key_value() {
                Some((&(used, key), ())) if now.duration_since(used) >= IDLE_TIMEOUT => {
                    self.by_use.remove(&(used, key));
                    self.sessions.remove(&key);
                }
                _ => break,
            }
        }
    }

    fn remove(&mut self, key: SessionKey) -> Option<Session> {
        let (session, used) = self.sessions.remove(&key)?;
        self.by_use.remove(&(used, key));
        Some(session)
    }
}

impl SessionStore for MemorySessionStore {
    fn insert(&self, key: SessionKey, session: Session) -> StoreFuture<'_, ()> {
        let now = Instant::now();
        let mut memory = self.inner.lock();
        memory.expire_some(now);
        memory.remove(key);
        if memory.sessions.len() >= self.capacity {
            if let Some((&(_, oldest), ())) = memory.by_use.first_key_value() {
                memory.remove(oldest);
            }
        }
        memory.sessions.insert(key, (session, now));
        memory.by_use.insert((now, key), ());
        Box::pin(std::future::ready(Ok(())))
    }

    fn touch(&self, key: SessionKey) -> StoreFuture<'_, Option<Session>> {
        let now = Instant::now();
        let mut memory = self.inner.lock();
        memory.expire_some(now);
        let found = match memory.sessions.get(&key) {
            Some((_, used)) if now.duration_since(*used) >= IDLE_TIMEOUT => {
                memory.remove(key);
                None
            }
            Some(_) => {
                let session = memory.remove(key).expect("just found");
                memory.sessions.insert(key, (session.clone(), now));
                memory.by_use.insert((now, key), ());
                Some(session)
            }
            None => None,
        };
        Box::pin(std::future::ready(Ok(found)))
    }

    fn remove(&self, key: SessionKey) -> StoreFuture<'_, ()> {
        self.inner.lock().remove(key);
        Box::pin(std::future::ready(Ok(())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> Session {
        Session::new(Role::Buyer(id.into()), "bk_key")
    }

    #[tokio::test(start_paused = true)]
    async fn a_session_lives_while_used_and_ends_twelve_idle_hours_later() {
        let store = MemorySessionStore::default();
        let key = SessionKey::of("token");
        store.insert(key, session("a")).await.unwrap();
        tokio::time::advance(IDLE_TIMEOUT - Duration::from_secs(1)).await;
        assert!(store.touch(key).await.unwrap().is_some(), "used within the timeout");
        tokio::time::advance(IDLE_TIMEOUT - Duration::from_secs(1)).await;
        assert!(store.touch(key).await.unwrap().is_some(), "each use starts the timeout again");
        tokio::time::advance(IDLE_TIMEOUT).await;
        assert_eq!(store.touch(key).await.unwrap(), None);
        assert!(store.is_empty(), "an expired session found on use is dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn expired_sessions_go_a_few_at_a_time_and_the_store_stays_bounded() {
        let store = MemorySessionStore::with_capacity(20);
        for n in 0..20 {
            store.insert(SessionKey::of(&n.to_string()), session("a")).await.unwrap();
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // Full: a new session pushes out the least recently used one (session 0), not a recent one.
        store.touch(SessionKey::of("1")).await.unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        store.insert(SessionKey::of("new"), session("b")).await.unwrap();
        assert_eq!(store.len(), 20);
        assert_eq!(store.touch(SessionKey::of("0")).await.unwrap(), None);
        assert!(store.touch(SessionKey::of("1")).await.unwrap().is_some());

        tokio::time::advance(IDLE_TIMEOUT).await;
        store.touch(SessionKey::of("absent")).await.unwrap();
        assert_eq!(store.len(), 20 - EXPIRE_PER_CALL, "one call drops a bounded number");
        store.remove(SessionKey::of("absent")).await.unwrap();
        store.touch(SessionKey::of("absent")).await.unwrap();
        store.touch(SessionKey::of("absent")).await.unwrap();
        assert!(store.is_empty());
    }

    #[test]
    fn a_session_keeps_no_key_and_checks_its_csrf_token() {
        let s = Session::new(Role::Operator, "admin-secret");
        let stored = serde_json::to_string(&s).unwrap();
        assert!(!stored.contains("admin-secret"), "{stored}");
        assert!(s.signed_in_with("admin-secret") && !s.signed_in_with("admin-secreT"));
        assert!(s.csrf_matches(&s.csrf.clone()) && !s.csrf_matches("") && !s.csrf_matches(&s.csrf[1..]));
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(Session::new(Role::Operator, "k").csrf, Session::new(Role::Operator, "k").csrf);
    }
}
