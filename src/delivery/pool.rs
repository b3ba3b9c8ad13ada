//! Idle keep-alive connections to buyer endpoints, by origin: what [`super::BuyerClient`] reuses.
//!
//! Each server worker has a pool of its own (see `client.rs`), so a lookup takes an uncontended lock and
//! scans the few connections of one origin. hyper-util's general-purpose pool did the same job with two
//! SipHash lookups, a case-insensitive compare of the authority and a checkout future per request (~30k
//! instructions of an auction's ten pings, BENCHMARKS.md); this one hashes the origin's bytes once with
//! FxHash and hands back the most recently used connection. Nothing drives an idle connection: one the buyer
//! closed is found out when it is next taken, before a request is written on it.

use std::collections::VecDeque;
use std::time::Duration;

use hyper::Uri;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::time::Instant;

use super::wire::Connection;

/// Idle connections kept per origin: enough that a burst of concurrent auctions never has to open fresh
/// connections once warm.
pub const MAX_IDLE_PER_ORIGIN: usize = 1024;
/// How long an idle connection is kept before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Where a connection goes: plain or TLS, and the authority as the URL spells it (a buyer's URLs are written
/// once in the config, so the same origin is always spelled the same way). Borrowed from the URL: looking a
/// connection up allocates nothing.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Origin<'a> {
    tls: bool,
    authority: &'a str,
}

impl Origin<'_> {
    /// The origin of an absolute `http` or `https` URI; `None` for anything else.
    pub fn of(uri: &Uri) -> Option<Origin<'_>> {
        let tls = match uri.scheme_str()? {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        Some(Origin { tls, authority: uri.authority()?.as_str() })
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
}

impl Idle {
    fn is_fresh(&self, now: Instant) -> bool {
        now.duration_since(self.since) < IDLE_TIMEOUT
    }
}

/// The idle connections by authority, plain ones at index 0 and TLS ones at 1, newest at the back of each
/// origin's queue.
#[derive(Default)]
pub struct Pool {
    idle: Mutex<[FxHashMap<Box<str>, VecDeque<Idle>>; 2]>,
}

impl Pool {
    /// The most recently used connection to `origin` that the buyer has not closed, if any. Closed and
    /// expired ones met on the way are dropped.
    pub fn checkout(&self, origin: Origin<'_>) -> Option<Connection> {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        let queue = idle[usize::from(origin.tls)].get_mut(origin.authority)?;
        while let Some(mut idle) = queue.pop_back() {
            if idle.is_fresh(now) && idle.connection.is_open_and_quiet() {
                return Some(idle.connection);
            }
        }
        None
    }

    /// Puts a connection whose last answer was read to the end back for the next request. The oldest
    /// connections of the origin, if expired, go now (a connection only ever used from the top of the queue
    /// would otherwise sit at its bottom until the pool is dropped).
    pub fn put_back(&self, origin: Origin<'_>, connection: Connection) {
        let now = Instant::now();
        let mut idle = self.idle.lock();
        let by_authority = &mut idle[usize::from(origin.tls)];
        // The key is copied once, the first time its origin is seen.
        if !by_authority.contains_key(origin.authority) {
            by_authority.insert(origin.authority.into(), VecDeque::new());
        }
        let Some(queue) = by_authority.get_mut(origin.authority) else { return };
        while queue.front().is_some_and(|oldest| !oldest.is_fresh(now)) {
            queue.pop_front();
        }
        if queue.len() < MAX_IDLE_PER_ORIGIN {
            queue.push_back(Idle { connection, since: now });
        }
    }

    /// Idle connections kept now, over every origin.
    #[cfg(test)]
    pub fn idle_count(&self) -> usize {
        self.idle.lock().iter().flat_map(|by_authority| by_authority.values()).map(VecDeque::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_is_its_scheme_and_authority() {
        let of = |uri: &str| {
            let uri = uri.parse::<Uri>().unwrap();
            Origin::of(&uri).map(|origin| (origin.tls, origin.authority.to_owned()))
        };
        assert!(of("http://b.example:8080/ping") == of("http://b.example:8080/post?x=1"));
        assert!(of("http://b.example:8080/ping") != of("https://b.example:8080/ping"));
        assert!(of("http://b.example/ping") != of("http://b.example:8080/ping"));
        assert!(of("/ping").is_none(), "a relative URI has no origin");
        assert!(of("ftp://b.example/ping").is_none(), "only http and https");
    }
}
