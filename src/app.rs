//! Startup: builds the engine from a config, binds the listener, and runs the server and its housekeeping
//! until asked to stop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::engine::Engine;
use crate::ledger::LedgerError;

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
}

/// Why the server did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the journal: {0}")]
    Journal(#[from] LedgerError),
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// Replays the journal, then starts the server on `listen`, or on the config's `server.listen` when `None`.
pub async fn start(config: Config, listen: Option<SocketAddr>) -> Result<RunningServer, StartError> {
    let engine = Engine::open(config).await?;
    let listener = TcpListener::bind(listen.unwrap_or(engine.config().server.listen)).await?;
    let addr = listener.local_addr()?;
    let engine = Arc::new(engine);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::http::serve(Arc::clone(&engine), listener, async move {
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
    Ok(RunningServer { addr, engine, stop, server, sweeper })
}

impl RunningServer {
    /// Stops accepting, finishes in-flight requests, and returns once the server has stopped.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        let _ = self.server.await;
        self.sweeper.abort();
        // Everything answered is already on disk; this flushes what was not yet answered and stops the writer.
        if let Err(error) = self.engine.ledger.close().await {
            tracing::error!(%error, "journal close failed");
        }
    }
}
