//! The server's worker threads. Each runs a current-thread tokio runtime of its own, serves the connections
//! handed to it, and has a buyer client of its own (see [`BuyerClient::current`]): an auction — the seller's
//! connection, the auction itself, the buyer connections it pings over and the answer — stays on the one
//! thread that accepted the seller's connection, with no cross-thread wake on its path (on these machines one
//! costs about 55 µs, more than the engine's whole overhead target).
//!
//! Connections reach the workers from one acceptor (the accept loop in [`super::serve`], on the runtime that
//! started the server) that hands each accepted socket to the next worker in turn. Not one `SO_REUSEPORT`
//! listener per worker: the kernel spreads those by a hash of the client's address, so the few keep-alive
//! connections of a load balancer or a load generator can all land on one worker and leave the others idle;
//! handing off in turn balances by count for one cross-thread hop per *connection* (never per request), keeps
//! `server.max_connections` one count for the node, and stops accepting by closing one socket, with no port-0
//! or platform subtleties.
//!
//! Everything else is shared through the engine (the ledger and its writer, the stores' connections, the
//! notices sender, the housekeeping): their tasks stay on the starting runtime, and calls into them from a
//! worker work across runtimes. The web pages also run there (see [`Serving::page`]).
//!
//! At shutdown the acceptor stops, every worker drains its connections (within [`SHUTDOWN_GRACE`], all at
//! once), deliveries whose sellers stopped waiting end (within the grace again), and the threads end. Other
//! tasks a worker spawned that outlive its connections end with its runtime: a held ping's timer that releases
//! its holds at expiry (the process is stopping: single-node holds live in its memory; cluster-mode holds are
//! released in Redis once expired, as a dead node's are).

use std::convert::Infallible;
use std::net::TcpStream as StdTcpStream;
use std::sync::Arc;
use std::thread::JoinHandle;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit};

use super::bare_errors::JsonBareErrors;
use super::{limits, SHUTDOWN_GRACE};
use crate::delivery::BuyerClient;
use crate::engine::Engine;
use crate::notices::AfterAnswer;
use crate::web::page::{error_page, PageError, WebResponse};
use crate::web::Web;

/// How many workers a node runs: `server.workers`; else `TOKIO_WORKER_THREADS`, tokio's own count of a
/// runtime's workers, which these replace (so `gavel-loadtest --engine-threads` sizes this engine and an older
/// one alike); else one per core the process may use.
pub fn count(configured: Option<usize>) -> usize {
    let from_env = || std::env::var("TOKIO_WORKER_THREADS").ok()?.trim().parse::<usize>().ok();
    let cores = || std::thread::available_parallelism().map_or(1, usize::from);
    configured.or_else(from_env).unwrap_or_else(cores).max(1)
}

/// The running workers, and the pages they share.
pub struct Workers {
    workers: Vec<Worker>,
    /// The worker the next connection goes to.
    next: usize,
    engine: Arc<Engine>,
    web: Arc<Web>,
}

/// One worker thread, as its acceptor sees it.
struct Worker {
    /// The worker's index as a metric label.
    label: String,
    /// Accepted connections for it; closing it tells the worker to stop accepting and drain.
    connections: mpsc::UnboundedSender<Handed>,
    /// Resolves once it has drained its connections.
    drained: oneshot::Receiver<()>,
    /// Dropped to let its runtime end, once every worker has drained.
    release: oneshot::Sender<()>,
    /// Resolves once its runtime has ended.
    finished: oneshot::Receiver<()>,
    thread: JoinHandle<()>,
}

/// A connection handed to a worker, with its permit of `server.max_connections`.
struct Handed {
    stream: StdTcpStream,
    slot: OwnedSemaphorePermit,
}

impl Workers {
    /// Starts `count` workers serving `engine` and `web`. Call it on the runtime that is to run the pages.
    pub fn start(count: usize, engine: &Arc<Engine>, web: &Arc<Web>) -> std::io::Result<Workers> {
        let home = Handle::current();
        let workers = (0..count.max(1))
            .map(|index| {
                let serving = Serving { engine: Arc::clone(engine), web: Arc::clone(web), home: home.clone() };
                Worker::start(index, serving)
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Workers { workers, next: 0, engine: Arc::clone(engine), web: Arc::clone(web) })
    }

    /// Hands an accepted connection to the next worker.
    pub fn hand(&mut self, stream: TcpStream, slot: OwnedSemaphorePermit) {
        let worker = &self.workers[self.next];
        self.next = (self.next + 1) % self.workers.len();
        // Out of this runtime's reactor, to be registered with the worker's.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot hand a connection to a worker");
                return;
            }
        };
        self.engine.metrics.inc("gavel_worker_connections_total", &[("worker", &worker.label)]);
        if worker.connections.send(Handed { stream, slot }).is_err() {
            tracing::error!(worker = %worker.label, "a worker thread has stopped; connection dropped");
        }
    }

    /// Ends the pages' event streams, lets every worker drain its connections (within [`SHUTDOWN_GRACE`],
    /// all at once), and returns once their threads have ended.
    pub async fn stop(self) {
        // Open event streams never end by themselves, and graceful shutdown waits for them (hyperium/hyper#2787).
        self.web.shutdown();
        let mut releases = Vec::with_capacity(self.workers.len());
        let mut ends = Vec::with_capacity(self.workers.len());
        let mut draining = Vec::with_capacity(self.workers.len());
        for Worker { label, connections, drained, release, finished, thread } in self.workers {
            drop(connections);
            draining.push(drained);
            releases.push(release);
            ends.push((label, finished, thread));
        }
        for drained in draining {
            let _ = drained.await;
        }
        // A delivery whose seller stopped waiting has no connection left to drain; it runs on its worker's
        // runtime, which must outlive it.
        self.engine.finish_deliveries(SHUTDOWN_GRACE).await;
        // Only now may a worker's runtime end: a store connection that reconnected from one of them has its
        // task there, and another worker may have been using it until it drained.
        drop(releases);
        for (label, finished, thread) in ends {
            let _ = finished.await;
            // Its runtime is gone: what is left of the thread is returning, so this join does not wait.
            if thread.join().is_err() {
                tracing::error!(worker = %label, "a worker thread panicked");
            }
        }
    }
}

impl Worker {
    fn start(index: usize, serving: Serving) -> std::io::Result<Worker> {
        // Built here so that a failure to build it is the caller's error, not a dead thread.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (connections, incoming) = mpsc::unbounded_channel();
        let (drained_tx, drained) = oneshot::channel();
        let (release, released) = oneshot::channel::<()>();
        let (finished_tx, finished) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name(format!("gavel-worker-{index}")).spawn(move || {
            BuyerClient::install_for_worker(index, BuyerClient::new());
            runtime.block_on(async {
                serving.serve(incoming).await;
                let _ = drained_tx.send(());
                let _ = released.await;
            });
            drop(runtime);
            drop(finished_tx);
        })?;
        Ok(Worker { label: index.to_string(), connections, drained, release, finished, thread })
    }
}

/// What a worker serves with. One per worker, so the reference counts its requests take stay on its core.
struct Serving {
    engine: Arc<Engine>,
    web: Arc<Web>,
    /// The runtime that started the server: the pages run there.
    home: Handle,
}

impl Serving {
    /// Serves the connections handed to this worker until the acceptor stops, then drains them.
    async fn serve(self, mut incoming: mpsc::UnboundedReceiver<Handed>) {
        let serving = Arc::new(self);
        let graceful = GracefulShutdown::new();
        let mut builder = http1::Builder::new();
        limits::configure(&mut builder, &serving.engine.config().server);
        while let Some(Handed { stream, slot }) = incoming.recv().await {
            let stream = match TcpStream::from_std(stream) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "a worker cannot take a connection");
                    continue;
                }
            };
            let service = {
                let serving = Arc::clone(&serving);
                service_fn(move |request: Request<Incoming>| {
                    let serving = Arc::clone(&serving);
                    async move { Ok::<_, Infallible>(serving.answer(request).await) }
                })
            };
            let connection =
                graceful.watch(builder.serve_connection(TokioIo::new(JsonBareErrors::new(stream)), service));
            tokio::spawn(async move {
                let _ = connection.await;
                drop(slot);
            });
        }
        if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
            tracing::warn!("shutdown grace period ended with requests still in flight");
        }
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Either<AfterAnswer, crate::web::page::Body>> {
        // The pages (API.md section 10) answer only their own paths; the JSON APIs never see a cookie.
        if crate::web::claims(request.method(), request.uri().path()) {
            return self.page(request).await.map(Either::Right);
        }
        // Notices held by the answer ride in its body until hyper has written it (see `notices`).
        crate::notices::after_answer(super::handle(&self.engine, request).await).map(Either::Left)
    }

    /// A page, rendered on the runtime that started the server, beside the dashboard's task and the stores'
    /// connections: pages are few and some are large, so they keep off the auctions' threads, and their
    /// sessions' idle clock is that runtime's (which tests move).
    async fn page(&self, request: Request<Incoming>) -> WebResponse {
        let uri = request.uri().clone();
        let web = Arc::clone(&self.web);
        match self.home.spawn(async move { web.handle(request).await }).await {
            Ok(response) => response,
            Err(_) => crate::web::page::secure(error_page(
                &PageError::new(StatusCode::SERVICE_UNAVAILABLE, "The server is stopping."),
                None,
                uri.path(),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_count_wins_and_there_is_always_one() {
        assert_eq!(count(Some(3)), 3);
        assert_eq!(count(Some(0)), 1);
        assert!(count(None) >= 1);
    }
}
