//! Connection-level limits, so that no client can hold the server's resources for long: how long a client
//! may take to send its headers, how large they may be, and how many connections may be open at once. What
//! a request may carry (body size and read time, lead keys and values) is checked where it is read (`body`,
//! `domain::lead`).

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::ServerConfig;

/// Largest request head (request line and headers together). A seller's or buyer's API call needs a few
/// hundred bytes; 16 KiB leaves room for proxies' forwarding and tracing headers. Over it hyper answers 431
/// (with the contract's JSON body: see `bare_errors`) and closes the connection.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Most headers in one request: hyper's own default, which it parses on the stack (setting any other count
/// costs a heap allocation per request). Past it hyper answers 431 like an oversized head.
pub const MAX_HEADERS: usize = 100;

/// Applies the connection limits to hyper's HTTP/1 builder.
///
/// - `server.header_read_timeout` bounds the time from the start of a request (or of an idle keep-alive
///   connection's wait for the next one) to its last header byte, however slowly they trickle in: a client
///   that dribbles its headers (slowloris) is cut off when it runs out, and never holds a connection longer.
/// - [`MAX_HEADER_BYTES`] bounds the head's size. The header count keeps hyper's default of at most 100
///   (431 past it), which hyper parses on the stack; a lower count would cost a heap allocation per request.
pub fn configure(builder: &mut http1::Builder, server: &ServerConfig) {
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(server.header_read_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
}

/// Permits for open client connections, at most `server.max_connections`.
///
/// At the cap the accept loop waits for a permit, so new connections wait in the kernel's listen backlog
/// rather than being accepted and left unserved; each open connection is bounded in time by the header
/// timeout when idle and by its request's own limits when busy, so permits come back. File descriptors,
/// buffers and tasks thus stay bounded however many clients connect.
pub struct ConnectionSlots(Arc<Semaphore>);

impl ConnectionSlots {
    /// Up to `max` connections at once.
    pub fn new(max: usize) -> ConnectionSlots {
        ConnectionSlots(Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))))
    }

    /// Waits until a connection may be accepted; the permit is given back when dropped.
    pub async fn acquire(&self) -> OwnedSemaphorePermit {
        Arc::clone(&self.0).acquire_owned().await.expect("the semaphore is never closed")
    }
}
