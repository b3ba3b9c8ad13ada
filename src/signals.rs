//! Process signals: SIGINT and SIGTERM ask the server to stop gracefully; SIGHUP reloads the config.

/// Resolves on the first SIGINT or SIGTERM.
pub async fn wait_for_stop() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Reloads the engine's config on every SIGHUP, as `POST /admin/reload` does; runs until the process ends.
/// The outcome is logged by the reload itself.
pub async fn reload_on_hangup(engine: std::sync::Arc<crate::engine::Engine>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let Ok(mut hangups) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot listen for SIGHUP; reload through POST /admin/reload");
            return;
        };
        while hangups.recv().await.is_some() {
            let _ = engine.reload();
        }
    }
    #[cfg(not(unix))]
    {
        let _ = engine;
        std::future::pending::<()>().await;
    }
}
