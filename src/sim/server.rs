//! A running simulated buyer: the accept loop, one hyper connection task per socket, shutdown on drop.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::record::Recorded;
use super::respond::{handle, Shared};
use super::spec::SimBuyerSpec;

/// Pause after a failed accept (e.g. out of file descriptors under load) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(10);

/// A simulated buyer serving HTTP/1.1 on loopback; it shuts down (listener and connections) when dropped.
#[derive(Debug)]
pub struct SimBuyer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: JoinHandle<()>,
}

impl SimBuyer {
    /// Starts a simulated buyer on 127.0.0.1 with a port the OS picks.
    pub async fn start(spec: SimBuyerSpec) -> std::io::Result<SimBuyer> {
        SimBuyer::start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), spec).await
    }

    /// Starts a simulated buyer on `addr`.
    pub async fn start_on(addr: SocketAddr, spec: SimBuyerSpec) -> std::io::Result<SimBuyer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(spec));
        let accept_task = tokio::spawn(accept_loop(listener, Arc::clone(&shared)));
        Ok(SimBuyer { addr, shared, accept_task })
    }

    /// The address the buyer listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL the engine pings: `http://127.0.0.1:PORT/ping`.
    pub fn ping_url(&self) -> String {
        format!("http://{}/ping", self.addr)
    }

    /// The URL the engine posts to: `http://127.0.0.1:PORT/post`.
    pub fn post_url(&self) -> String {
        format!("http://{}/post", self.addr)
    }

    /// The URL win/loss notices go to: `http://127.0.0.1:PORT/notice`.
    pub fn notice_url(&self) -> String {
        format!("http://{}/notice", self.addr)
    }

    /// Every ping received so far, in order (empty when the spec does not record).
    pub fn pings(&self) -> Vec<Recorded> {
        self.shared.pings.snapshot()
    }

    /// Every post received so far, in order, retries included (empty when the spec does not record).
    pub fn posts(&self) -> Vec<Recorded> {
        self.shared.posts.snapshot()
    }

    /// Every win/loss notice received so far, in order (empty when the spec does not record).
    pub fn notices(&self) -> Vec<Recorded> {
        self.shared.notices.snapshot()
    }

    /// Number of notices received so far; a lock-free counter, kept even when recording is off.
    pub fn notice_count(&self) -> u64 {
        self.shared.notices.total()
    }

    /// Number of pings received so far; a lock-free counter, kept even when recording is off.
    pub fn ping_count(&self) -> u64 {
        self.shared.pings.total()
    }

    /// Number of posts received so far; a lock-free counter, kept even when recording is off.
    pub fn post_count(&self) -> u64 {
        self.shared.posts.total()
    }

    /// Number of posts accepted so far (the leads it bought; a rejected or failed post is not one).
    pub fn accepted_count(&self) -> u64 {
        self.shared.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The most pings this buyer was answering at once so far.
    pub fn most_pings_in_flight(&self) -> u64 {
        self.shared.most_in_flight.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Connections accepted so far: how many the engine's buyer connection pools opened to this buyer.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Changes behaviour while running; requests already in flight finish under the old spec.
    pub fn set_spec(&self, spec: SimBuyerSpec) {
        self.shared.set_spec(spec);
    }

    /// Pings being held open right now by a hang.
    #[cfg(test)]
    pub(crate) fn hanging_now(&self) -> u64 {
        self.shared.hanging.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for SimBuyer {
    /// Aborting the accept task drops the listener and its `JoinSet`, which aborts every connection task.
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Owning the connections here ties their lifetime to this task: when it is aborted, they are too.
    let mut connections = JoinSet::new();
    loop {
        match listener.accept().await {
            Ok((stream, _peer)) => {
                shared.connections.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                connections.spawn(serve_connection(stream, Arc::clone(&shared)));
            }
            Err(error) => {
                tracing::warn!(%error, "simulated buyer failed to accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
        // Reap finished connections so a long load test does not grow the set without bound.
        while connections.try_join_next().is_some() {}
    }
}

async fn serve_connection(stream: TcpStream, shared: Arc<Shared>) {
    // Small JSON answers must not wait for Nagle's algorithm; the engine measures latency in milliseconds.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%error, "simulated buyer could not set TCP_NODELAY");
    }
    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
    let served = http1::Builder::new().keep_alive(true).serve_connection(TokioIo::new(stream), service).await;
    if let Err(error) = served {
        // Clients dropping connections mid-request is normal here (timeouts, hangs); not worth a warning.
        tracing::debug!(%error, "simulated buyer connection ended with an error");
    }
}
