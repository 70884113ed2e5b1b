//! The chat server as a library, so tests can run it in-process; `main.rs` is a thin shell.
//!
//! - [`config`]: [`Config`], every limit and timeout.
//! - [`listener`]: the accept loop, which spawns one connection task per client.
//! - [`connection`]: login, then one task per client whose loop is both its reader
//!   (socket → broker) and its writer (queue → socket); one task, not two, because an
//!   idle client's cost is mostly its task.
//! - [`io`]: a line reader that holds no buffer while a client is idle.
//! - [`pacer`]: flood control for `--rate-limit`.
//! - [`sendq`]: a client's outgoing queue, bounded in bytes.
//! - [`broker`]: the one task that routes every line; it owns the [`roster`] (who is
//!   online, who is in which room), the [`history`] (stored messages and ids) and the
//!   [`accounts`] (registered names; Argon2id hashing runs beside the readers).
//! - [`store`]: history, accounts and offline mail on disk (`--db`), written by a
//!   thread of its own.
//! - [`cluster`]: cluster mode on Redis (docs/cluster.md).
//! - [`tls`]: the TLS acceptor (`--tls-cert`, `--tls-key`) and plain-or-TLS halves.
//! - [`shutdown`]: the SIGINT/SIGTERM future; [`rlimit`]: the open-file limit.
//!
//! Data flows one way: socket → `io` → `connection` (its reading side) → `broker` →
//! `sendq` → `connection` (its writing side) → socket, with a branch `broker` → `store`
//! → disk. Below, "reader" and "writer" are those two sides of a connection's task.
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
//! 5. The broker hands the store writer every message not yet written and drops it; the
//!    writer commits them and ends.
//! 6. [`run`] waits for all connection tasks, but at most `shutdown_timeout`: a client
//!    that does not read cannot keep the process alive. It then waits for the store
//!    writer, so every accepted message is on disk before the process exits.

pub mod accounts;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod history;
pub mod io;
pub mod listener;
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
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::accounts::Accounts;
use crate::broker::Broker;
use crate::history::{History, IdClock, wall_clock};
use crate::store::Store;
use crate::store::sqlite::SqliteStore;

/// How many events readers may hand the broker before they wait for it.
const BROKER_QUEUE_LEN: usize = 1024;

/// A server whose history is loaded and whose store is open, ready to [`Server::run`].
pub struct Server {
    config: Config,
    history: Option<History>,
    ids: IdClock,
    store: Option<Box<dyn Store>>,
    /// With a store: the registered names and the mail waiting for them.
    accounts: Option<(Accounts, Vec<(String, history::Message)>)>,
    /// With `--tls-cert` and `--tls-key`.
    tls: Option<TlsAcceptor>,
    /// In cluster mode, once [`Server::join_cluster`] has reached Redis.
    redis: Option<redis::aio::ConnectionManager>,
}

impl Server {
    /// Opens the history store (`config.db`) and loads what it kept. Fails, with a
    /// message fit for an operator, on a database that is in use, damaged or not ours.
    pub fn new(config: Config) -> anyhow::Result<Self> {
        let store = match (&config.db, &config.history) {
            (Some(path), Some(_)) => {
                Some(Box::new(SqliteStore::open(path, config.db_max_bytes)?) as Box<dyn Store>)
            }
            _ => None,
        };
        Self::with_store(config, store)
    }

    /// A server whose history is kept in `store` (if any) instead of the one `config.db`
    /// names: the seam where another backend plugs in.
    pub fn with_store(config: Config, mut store: Option<Box<dyn Store>>) -> anyhow::Result<Self> {
        let mut history = config.history.clone().map(History::new);
        let mut ids = IdClock::default();
        let mut accounts = None;
        if let (Some(backend), Some(history)) = (&mut store, &mut history) {
            let now = wall_clock().0;
            let loaded = backend
                .load(&config.history.clone().unwrap_or_default(), now)
                .with_context(|| format!("reading history from {}", backend.location()))?;
            for (conv, through) in loaded.dropped {
                history.mark_dropped(conv, through);
            }
            for message in loaded.messages {
                history.push(message, now);
            }
            ids = IdClock::after(loaded.last_id);
            let mut registered = Accounts::default();
            for account in loaded.accounts {
                registered.put(account);
            }
            accounts = Some((registered, loaded.offline));
        }
        // With `--history off` there is nothing to store.
        let store = store.filter(|_| history.is_some());
        let tls = config.tls.as_ref().map(tls::acceptor).transpose()?;
        Ok(Self {
            config,
            history,
            ids,
            store,
            accounts,
            tls,
            redis: None,
        })
    }

    /// In cluster mode, reaches Redis; fails with a clear message if it cannot, so a node
    /// never half-starts. Without `--cluster`, does nothing.
    pub async fn join_cluster(mut self) -> anyhow::Result<Self> {
        if let Some(cluster) = &self.config.cluster {
            let mut redis = cluster::connect(&cluster.url).await?;
            // Accounts live in Redis, so any node can log anyone in.
            let mut accounts = Accounts::default();
            for account in cluster::mail::load_accounts(&mut redis)
                .await
                .with_context(|| format!("loading accounts from Redis at {}", cluster.url))?
            {
                accounts.put(account);
            }
            self.accounts = Some((accounts, Vec::new()));
            self.redis = Some(redis);
            tracing::info!(node = %cluster.node, url = %cluster.url, "joined the cluster");
        }
        Ok(self)
    }

    /// Serves clients on `listener` until `shutdown` resolves, then shuts down cleanly.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Self {
            config,
            history,
            ids,
            store,
            accounts,
            tls,
            redis,
        } = self;
        let retention = config.history.clone().unwrap_or_default();
        let (store, store_thread) = match store {
            Some(store) => {
                let (writer, thread) = store::spawn(store, retention);
                (Some(writer), Some(thread))
            }
            None => (None, None),
        };
        let mut broker =
            Broker::new(config.strict_names, history, store, ids).with_presence(config.presence);
        if let Some((accounts, mail)) = accounts {
            broker = broker.with_accounts(accounts, mail);
        }
        let cluster = match (&config.cluster, redis) {
            (Some(cluster), Some(redis)) => Some((cluster.clone(), redis)),
            (Some(_), None) => anyhow::bail!("cluster mode needs Server::join_cluster first"),
            (None, _) => None,
        };
        let result = serve(listener, tls, config, broker, cluster, shutdown).await;
        if let Some(thread) = store_thread {
            thread.await.context("the history store writer panicked")?;
        }
        result
    }
}

/// Serves clients on `listener` until `shutdown` resolves, then shuts down cleanly:
/// [`Server::new`] then [`Server::run`].
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    Server::new(config)?
        .join_cluster()
        .await?
        .run(listener, shutdown)
        .await
}

async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    config: Config,
    mut broker: Broker,
    cluster: Option<(ClusterConfig, redis::aio::ConnectionManager)>,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Cancelled once by `run`; readers and handshakes watch it to stop reading.
    let token = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (broker_tx, broker_rx) = mpsc::channel(BROKER_QUEUE_LEN);
    // In cluster mode the link's tasks start first: the broker holds the link, so the
    // publisher outlives it and sends the last `left` lines; the others stop with `token`.
    let mut leases = None;
    let mut link_tasks = Vec::new();
    if let Some((cluster, redis)) = cluster {
        let started = cluster::link::start(
            cluster.node,
            cluster.url,
            redis,
            broker_tx.clone(),
            token.clone(),
            config.presence,
        )
        .await?;
        broker = broker.with_cluster(started.link);
        leases = Some(started.leases);
        link_tasks = started.tasks;
    }
    tracker.spawn(broker::broker_loop(broker_rx, broker));

    let accept = listener::accept_loop(
        listener,
        tls,
        broker_tx,
        leases,
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
    // The publisher ends once the broker (and its link) is gone: its last `left` lines
    // are out. The subscriber and renewer stopped with the token.
    for task in link_tasks {
        let _ = tokio::time::timeout(config.shutdown_timeout, task).await;
    }
    Ok(())
}
