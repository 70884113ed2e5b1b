//! The chat server as a library, so tests can run it in-process; `main.rs` is a thin shell.
//!
//! - [`config`]: [`Config`], every limit and timeout.
//! - [`listener`]: the accept loop, which spawns one connection task per client.
//! - [`connection`]: login, then the reader loop (socket → broker) and the writer loop
//!   (queue → socket) of one client.
//! - [`broker`]: the one task that knows who is online and routes every line.
//! - [`io`]: a line reader and a batch writer that hold no buffer while a client is idle.
//! - [`shutdown`]: the SIGINT/SIGTERM future.
//!
//! # Shutdown order
//!
//! Channels point one way: readers → broker → writers. Nothing points back, so the
//! system stops by dropping senders from the front, and every line already routed is
//! still delivered:
//!
//! 1. The shutdown future resolves: [`run`] drops the accept loop (the listener and its
//!    `broker_tx` go with it) and cancels the token.
//! 2. Each reader sees the token, stops reading, and drops its `broker_tx` without sending
//!    a leave, so nobody is told `left` about a server that is going away.
//! 3. With every `broker_tx` gone, the broker's `recv()` returns `None`: every line any
//!    reader handed over has been routed into some peer queue. The broker queues
//!    `bye: server shutting down` for each peer and drops the roster, and with it the
//!    only sender of each peer queue.
//! 4. Each writer drains its queue, shuts down its write half (the client reads EOF), and
//!    ends. Its connection then closes the socket once the client has gone too.
//! 5. [`run`] waits for all tasks, but at most `shutdown_timeout`: a client that does not
//!    read cannot keep the process alive.

pub mod broker;
pub mod config;
pub mod connection;
pub mod io;
pub mod listener;
pub mod shutdown;

pub use config::Config;

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How many events readers may hand the broker before they wait for it.
const BROKER_QUEUE_LEN: usize = 1024;

/// Serves clients on `listener` until `shutdown` resolves, then shuts down cleanly.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Cancelled once by `run`; readers and handshakes watch it to stop reading.
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (broker_tx, broker_rx) = mpsc::channel(BROKER_QUEUE_LEN);
    tracker.spawn(broker::broker_loop(broker_rx, config.strict_names));

    let accept = listener::accept_loop(
        listener,
        broker_tx,
        token.clone(),
        tracker.clone(),
        config.clone(),
    );
    tokio::select! {
        // The accept loop only ever returns by being dropped here.
        never = accept => match never {},
        () = shutdown => tracing::info!("shutting down"),
    }
    token.cancel();
    tracker.close();
    if tokio::time::timeout(config.shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?config.shutdown_timeout,
            "some clients did not take their last lines in time; cutting them off"
        );
    }
    Ok(())
}
