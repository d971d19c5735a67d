//! The signals that stop the daemon gracefully.

use std::future::Future;
use tokio::signal::unix::{signal, SignalKind};

/// Resolves on the first SIGTERM (systemd stop) or SIGINT (Ctrl-C). The handlers are installed
/// before this returns, so a signal arriving during startup is not lost.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}
