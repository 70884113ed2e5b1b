//! The shutdown signal: the first SIGINT or SIGTERM.

use std::future::Future;

use tokio::signal::unix::{SignalKind, signal};

/// Installs the SIGINT and SIGTERM handlers now and returns a future that resolves on the
/// first of them. Installing before the server announces its address means a signal sent
/// right after that is a clean shutdown, never the default kill.
pub fn signals() -> std::io::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
        }
    })
}
