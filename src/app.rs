//! Startup: builds the engine from a config, binds the listener, starts the worker threads that serve
//! connections (`http::workers`), and runs the server and its housekeeping until asked to stop.
//!
//! The runtime that calls [`start_node`] keeps the accept loop, the web pages, the housekeeping, and the
//! tasks of the stores' connections and the notices sender; auctions run on the workers. `gavel serve` runs
//! it on [`runtime`], one thread: that work is light, and the cores are the workers'.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::{Engine, NodeSettings};
use crate::http::workers::{self, Workers};
use crate::ledger::LedgerError;
use crate::readiness::Readiness;

/// How often expired pings are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A server running in this process.
pub struct RunningServer {
    /// The address it listens on (useful when it was started on port 0).
    pub addr: SocketAddr,
    pub engine: Arc<Engine>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<()>,
    sweeper: JoinHandle<()>,
    /// Cluster mode's tail and watch (nothing in single mode).
    housekeeping: crate::cluster::Housekeeping,
    /// Sends win/loss notices; notices still queued at shutdown are not sent.
    notices: Option<JoinHandle<()>>,
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the ledger: {0}")]
    Journal(#[from] LedgerError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
    #[error("cannot start the worker threads: {0}")]
    Workers(std::io::Error),
}

/// The runtime `gavel serve` starts a node on (see the module's doc): one thread, the calling one.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// Turns transparent huge pages off for this process and every process it starts (the setting is
/// inherited). The allocator asks the kernel for huge pages, and the first write to each new 2 MiB page then
/// had the kernel clear all of it inside the page fault of the thread that wrote: an auction's worker, for
/// milliseconds (`perf record -g` of the worker's longest runs: a quarter of their samples in
/// `clear_page_erms` under `do_huge_pmd_anonymous_page`; BENCHMARKS.md "Issue 19, fifth sitting"). With small
/// pages the same memory is cleared 4 KiB at a time. Call it first thing, before the heap grows.
pub fn without_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

/// What the command line may set for one node over its config file (API.md section 8).
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// Listen here instead of `server.listen`.
    pub listen: Option<SocketAddr>,
    /// This node's id (`--node-id`); `[cluster].node_id`, or [`crate::engine::SINGLE_NODE_ID`], when `None`.
    pub node_id: Option<String>,
    /// This node's data directory (`--data-dir`) instead of `server.data_dir`.
    pub data_dir: Option<std::path::PathBuf>,
}

/// Replays the journal, then starts the server on `listen`, or on the config's `server.listen` when `None`.
pub async fn start(config: Config, listen: Option<SocketAddr>) -> Result<RunningServer, StartError> {
    start_node(config, NodeOptions { listen, ..NodeOptions::default() }).await
}

/// [`start`] with every option of `gavel serve`.
pub async fn start_node(config: Config, options: NodeOptions) -> Result<RunningServer, StartError> {
    let settings = NodeSettings { node_id: options.node_id, data_dir: options.data_dir };
    let engine = Engine::open_node(config, settings).await?;
    let listener = TcpListener::bind(options.listen.unwrap_or(engine.config().server.listen)).await?;
    let addr = listener.local_addr()?;
    let engine = Arc::new(engine);
    engine.attach_replica();
    // Before the tasks that run beside the server, so that none is left running should this fail.
    let web = crate::http::web_pages(&engine);
    let workers = match Workers::start(workers::count(engine.config().server.workers), &engine, &web) {
        Ok(workers) => workers,
        Err(error) => {
            web.shutdown();
            return Err(StartError::Workers(error));
        }
    };
    let housekeeping = crate::cluster::start(&engine);
    let notices = engine.notices.start(engine.client.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(Arc::clone(&engine), listener, workers, async move {
        let _ = stopped.await;
    }));
    let sweeper = tokio::spawn({
        let engine = Arc::clone(&engine);
        async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            loop {
                every.tick().await;
                engine.sweep();
            }
        }
    });
    // The journal is replayed and the listener bound: from here on this node can sell.
    engine.readiness.set(Readiness::Ready);
    Ok(RunningServer { addr, engine, stop, server, sweeper, housekeeping, notices })
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests on every worker, and returns once the server and its
    /// worker threads have stopped.
    pub async fn shutdown(self) {
        // First, so that a load balancer probing `/readyz` on a connection still open sends nothing new here.
        self.engine.readiness.set(Readiness::Stopping);
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.sweeper.abort();
        drop(self.housekeeping);
        if let Some(notices) = self.notices {
            notices.abort();
        }
        // Everything answered is already on disk; this flushes what was not yet answered and stops the writer.
        if let Err(error) = self.engine.ledger.close().await {
            tracing::error!(%error, "journal close failed");
        }
    }
}
