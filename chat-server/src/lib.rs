//! The chat server as a library, so tests can run it in-process; `main.rs` is a thin shell.
//!
//! - [`config`]: [`Config`], every limit and timeout.
//! - [`listener`]: the accept loop, which spawns one connection task per client.
//! - [`connection`]: login, then one task per client whose loop is both its reader
//!   (socket → broker) and its writer (queue → socket); one task, not two, because an
//!   idle client's cost is mostly its task.
//! - [`io`]: a line reader that holds no buffer while a client is idle.
//! - [`irc`]: the IRC listener, a second kind of connection on the same broker.
//! - [`pacer`]: flood control for `--rate-limit`.
//! - [`metrics`]: counters for Prometheus, served with `--metrics-addr`.
//! - [`sendq`]: a client's outgoing queue, bounded in bytes.
//! - [`broker`]: the one task that decides; it owns the [`roster`] (who is online here,
//!   who is in which room) and the [`accounts`] (registered names; Argon2id hashing
//!   runs beside the readers).
//! - [`governance`]: who may do what in a room, and the changes that makes.
//! - [`backend`]: what carries the broker's decisions, behind one seam: [`backend::local`]
//!   when this process is the whole chat, with the [`history`] (stored messages and ids)
//!   and the [`store`] (history, accounts and offline mail on disk with `--db`, written by
//!   a thread of its own); or [`cluster`], one node of a cluster on Redis
//!   (docs/cluster.md).
//! - [`tls`]: the TLS acceptor (`--tls-cert`, `--tls-key`) and plain-or-TLS halves.
//! - [`shutdown`]: the SIGINT/SIGTERM future; [`rlimit`]: the open-file limit.
//!
//! Data flows one way: socket → `io` → `connection` (its reading side) → `broker` →
//! `sendq` → `connection` (its writing side) → socket, with a branch `broker` →
//! `backend` (→ `store` → disk, or → Redis), whose answers come back to the broker on
//! a queue of their own. Below, "reader" and "writer" are those two sides of a
//! connection's task.
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
//!    a leave, so nobody is told `left` about a server that is going away. Its task
//!    goes on writing.
//! 3. With every `broker_tx` gone, the broker's `recv()` returns `None`: every line any
//!    reader handed over has been routed into some peer queue. The broker queues
//!    `bye: server shutting down` for each peer and drops the roster, and with it the
//!    only sender of each peer queue.
//! 4. Each writer drains its queue, shuts down its write half (the client reads EOF), and
//!    ends. Its connection then closes the socket once the client has gone too.
//! 5. The broker lets the backend finish: the store writer commits every message not yet
//!    written; in cluster mode the node's users leave every room and the chat elsewhere,
//!    and everything handed to Redis is sent (or given up when Redis is unreachable).
//! 6. [`run`] waits for all connection tasks, but at most `shutdown_timeout`: a client
//!    that does not read cannot keep the process alive. It then waits for the broker to
//!    finish, so every accepted message is on disk before the process exits; a cluster
//!    node gives up on an unreachable Redis within `shutdown_timeout` by itself.

/// The commit this server was built from (`-modified` when the tree had changes), for
/// `--version` and the `chat_build_info` metric.
pub const COMMIT: &str = git_version::git_version!(
    args = [
        "--always",
        "--dirty=-modified",
        "--abbrev=12",
        "--exclude=*"
    ],
    fallback = "unknown"
);

pub mod accounts;
pub mod backend;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod governance;
#[cfg(feature = "heap-stats")]
pub mod heap;
pub mod history;
pub mod io;
pub mod irc;
pub mod listener;
pub mod metrics;
pub mod pacer;
pub mod rlimit;
pub mod roster;
pub mod sendq;
pub mod shutdown;
pub mod store;
pub mod tls;

pub use config::{ClusterConfig, Config, Presence};

use std::future::Future;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::backend::Backend;
use crate::backend::local::Local;
use crate::broker::Broker;

/// How many events readers may hand the broker before they wait for it.
const BROKER_QUEUE_LEN: usize = 1024;

/// The backend `config` asks for: a node of the cluster on Redis with `--cluster`,
/// otherwise this process alone, with its store if `--db` names one. Fails, with a
/// message fit for an operator, on a database that is in use, damaged or not ours, or a
/// Redis that cannot be reached, so a server never half-starts.
pub async fn open_backend(config: &Config) -> anyhow::Result<Box<dyn Backend>> {
    match &config.cluster {
        Some(cluster) => {
            if config.db.is_some() {
                anyhow::bail!(
                    "--db cannot go with --cluster: a cluster keeps its history, accounts and mail in Redis"
                );
            }
            Ok(Box::new(cluster::Redis::start(cluster, config).await?))
        }
        None => Ok(Box::new(Local::open(config)?)),
    }
}

/// The sockets a server listens on.
#[derive(Debug)]
pub struct Listeners {
    /// The native protocol (TLS with `--tls-cert`).
    pub native: TcpListener,
    /// IRC in plain text (`--irc-addr`).
    pub irc: Option<TcpListener>,
    /// IRC over TLS (`--irc-tls-addr`), with the native listener's certificate.
    pub irc_tls: Option<TcpListener>,
    /// `/metrics` and `/healthz` over HTTP (`--metrics-addr`).
    pub metrics: Option<TcpListener>,
}

/// Serves clients on `listener` until `shutdown` resolves, then shuts down cleanly.
pub async fn run(
    listener: TcpListener,
    config: Config,
    backend: Box<dyn Backend>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let listeners = Listeners {
        native: listener,
        irc: None,
        irc_tls: None,
        metrics: None,
    };
    serve(listeners, config, backend, shutdown).await
}

/// [`serve_reloading`] without reloads.
pub async fn serve(
    listeners: Listeners,
    config: Config,
    backend: Box<dyn Backend>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let (_keep, reloads) = mpsc::channel(1);
    serve_reloading(listeners, config, backend, shutdown, reloads).await
}

/// Serves clients on every one of `listeners` until `shutdown` resolves, then shuts
/// down cleanly. Each configuration from `reloads` (SIGHUP) changes what can change
/// while the server runs: see [`listener`].
pub async fn serve_reloading(
    listeners: Listeners,
    config: Config,
    backend: Box<dyn Backend>,
    shutdown: impl Future<Output = ()>,
    reloads: mpsc::Receiver<Config>,
) -> anyhow::Result<()> {
    let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
    let irc_server = irc::server(&config.server_name, config.presence == Presence::All);
    let mut listening = vec![listener::Listening {
        listener: listeners.native,
        tls: tls.clone(),
        irc: None,
    }];
    if let Some(listener) = listeners.irc {
        listening.push(listener::Listening {
            listener,
            tls: None,
            irc: Some(irc_server.clone()),
        });
    }
    if let Some(listener) = listeners.irc_tls {
        let tls = tls
            .clone()
            .context("--irc-tls-addr needs --tls-cert and --tls-key")?;
        listening.push(listener::Listening {
            listener,
            tls: Some(tls),
            irc: Some(irc_server),
        });
    }
    // Cancelled once, below; readers and handshakes watch it to stop reading.
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (broker_tx, broker_rx) = mpsc::channel(BROKER_QUEUE_LEN);
    let broker = Broker::new(&config, backend);
    // Not on the tracker: the broker's end is awaited without the clients' timeout, since
    // it waits only for the store (every accepted message reaches the disk) and for
    // Redis, which the cluster backend gives up on by itself.
    // Half the shutdown time at most for lines on their way from other nodes, half for
    // what this node hands Redis last.
    let drain_within = config.shutdown_timeout / 2;
    let broker = tokio::spawn(broker::broker_loop(broker_rx, broker, drain_within));

    if let Some(listener) = listeners.metrics {
        tokio::spawn(metrics::serve(
            listener,
            broker_tx.downgrade(),
            token.clone(),
        ));
    }
    let shutdown_timeout = config.shutdown_timeout;
    let accept = listener::accept_loop(
        listening,
        broker_tx,
        token.clone(),
        tracker.clone(),
        config,
        reloads,
    );
    tokio::select! {
        // The accept loop only ever returns by being dropped here.
        never = accept => match never {},
        () = shutdown => tracing::info!("shutting down"),
    }
    token.cancel();
    tracker.close();
    if tokio::time::timeout(shutdown_timeout, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = ?shutdown_timeout,
            "some clients did not take their last lines in time; cutting them off"
        );
    }
    broker.await.context("the broker panicked")
}
