//! The in-process servers every test file here starts: the server on `127.0.0.1:0` in the
//! test's runtime, with a oneshot as its shutdown signal.
//!
//! - [`start`], [`try_start`], [`try_start_with_store`]: one server with a given
//!   [`Config`]. [`try_start_with_store`] is the one place that knows the server's entry
//!   point; every server here, single or cluster node, is started through it.
//! - [`Chat`]: one chat in either [`Mode`]: a single server, or a cluster of
//!   [`CLUSTER_NODES`] nodes on a `redis-server` of its own; [`Chat::start_with_accounts`]
//!   for one that keeps accounts in both, and [`Chat::restart`].
//! - [`both_modes!`]: one `async fn body(mode: Mode)` run as two tests, `body::local` and
//!   `body::cluster`.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::net::SocketAddr;

use chat_server::store::Store;
use chat_server::{ClusterConfig, Config};
use chat_tests::{LineClient, RedisServer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it listens for IRC clients.
    pub irc_addr: SocketAddr,
    /// Where it listens for IRC clients over TLS: only with `config.tls`.
    pub irc_tls_addr: Option<SocketAddr>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Starts a server with `config` on a free port.
pub async fn start(config: Config) -> TestServer {
    try_start(config).await.expect("the server starts")
}

/// Like [`start`], but returns the error of a server that refuses to start.
pub async fn try_start(config: Config) -> anyhow::Result<TestServer> {
    try_start_with_store(config, None).await
}

/// Starts a server with `config` whose history is kept in `store` (a test's own, such as
/// a slow disk) instead of the one `config.db` names; `None`: the one `config` says.
///
/// The one function here that knows the server's entry point: every server these tests
/// run, single or cluster node (`config.cluster`), is started by it.
pub async fn try_start_with_store(
    config: Config,
    store: Option<Box<dyn Store>>,
) -> anyhow::Result<TestServer> {
    let backend: Box<dyn chat_server::backend::Backend> = match store {
        Some(store) => Box::new(chat_server::backend::local::Local::with_store(
            &config,
            Some(store),
        )?),
        None => chat_server::open_backend(&config).await?,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let addr = listener.local_addr().expect("an address");
    let irc = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let irc_addr = irc.local_addr().expect("an address");
    let irc_tls = match config.tls {
        Some(_) => Some(TcpListener::bind("127.0.0.1:0").await.expect("binding")),
        None => None,
    };
    let irc_tls_addr = irc_tls
        .as_ref()
        .map(|l| l.local_addr().expect("an address"));
    let listeners = chat_server::Listeners {
        native: listener,
        irc: Some(irc),
        irc_tls,
        metrics: None,
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(chat_server::serve(listeners, config, backend, async {
        let _ = stopped.await;
    }));
    Ok(TestServer {
        addr,
        irc_addr,
        irc_tls_addr,
        stop,
        task,
    })
}

impl TestServer {
    /// Shuts the server down as SIGTERM would and waits until it returns.
    pub async fn shutdown(self) {
        self.stop.send(()).expect("the server is running");
        self.task
            .await
            .expect("the server task")
            .expect("a clean shutdown");
    }

    /// A client logged in as `name`, its `welcome` read.
    pub async fn login(&self, name: &str) -> LineClient {
        login_at(self.addr, name).await
    }

    /// A client logged in as `name` and a member of `room`, every line of its login read.
    pub async fn member(&self, name: &str, room: &str) -> LineClient {
        member_at(self.addr, name, room).await
    }
}

async fn login_at(addr: SocketAddr, name: &str) -> LineClient {
    let mut client = LineClient::connect(addr).await;
    client.send(name).await;
    client.expect(&format!("welcome {name}")).await;
    client
}

async fn member_at(addr: SocketAddr, name: &str, room: &str) -> LineClient {
    let mut client = login_at(addr, name).await;
    join(&mut client, room).await;
    client
}

/// Joins `room` and reads every line up to the `names` reply and the `roles` line
/// after it.
async fn join(client: &mut LineClient, room: &str) {
    client.send(&format!("/join {room}")).await;
    client.skip_until_prefix(&format!("names {room} ")).await;
    client.expect_prefix(&format!("roles {room}")).await;
}

/// The backend a [`Chat`] runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One server, no Redis.
    Local,
    /// [`CLUSTER_NODES`] nodes sharing a `redis-server` started for this chat alone.
    Cluster,
}

/// How many nodes a [`Mode::Cluster`] chat has: two, so that a rule between two users can
/// put them on different nodes.
pub const CLUSTER_NODES: usize = 2;

/// One chat, on a single server or on a cluster; tests address its servers by index.
///
/// In [`Mode::Local`] every index is the one server, so a test that puts two users on
/// nodes 0 and 1 checks the same rule on one server and across two nodes.
pub struct Chat {
    mode: Mode,
    /// What every node was started with, for [`Chat::restart`].
    config: Config,
    /// Declared before `redis`, so that on drop the nodes go before their Redis.
    nodes: Vec<TestServer>,
    /// The cluster's own `redis-server`, killed on drop; `None` in [`Mode::Local`].
    redis: Option<RedisServer>,
    /// The directory of the SQLite file a [`Mode::Local`] chat with accounts keeps them
    /// in (`config.db`), removed on drop, after the server; `None` otherwise.
    _db_dir: Option<tempfile::TempDir>,
}

impl Chat {
    /// Starts a chat in `mode`: one server with `config`, or a fresh `redis-server` and
    /// [`CLUSTER_NODES`] nodes on it, each with `config` and its own node name.
    pub async fn start(mode: Mode, config: Config) -> Self {
        let redis = (mode == Mode::Cluster).then(RedisServer::start);
        let nodes = start_nodes(&config, redis.as_ref()).await;
        Self {
            mode,
            config,
            nodes,
            redis,
            _db_dir: None,
        }
    }

    /// Like [`Chat::start`], for a chat that keeps accounts (and offline mail, and
    /// direct history between accounts): a single server needs a database for them
    /// (`config.db`, here a SQLite file in a temp dir of this chat's own), while a
    /// cluster always keeps them in its Redis and refuses `--db`.
    pub async fn start_with_accounts(mode: Mode, config: Config) -> Self {
        assert!(config.db.is_none(), "the chat chooses its own database");
        match mode {
            Mode::Local => {
                let dir = tempfile::tempdir().expect("a temp dir");
                let config = Config {
                    db: Some(dir.path().join("chat.db")),
                    ..config
                };
                let nodes = start_nodes(&config, None).await;
                Self {
                    mode,
                    config,
                    nodes,
                    redis: None,
                    _db_dir: Some(dir),
                }
            }
            Mode::Cluster => Self::start(mode, config).await,
        }
    }

    /// Shuts every node down, as [`Chat::shutdown`] does, and starts them again with the
    /// same config on what they keep: the same SQLite file (if any), or the same Redis.
    /// Nodes listen on new ports; [`Chat::addr`] tells them.
    pub async fn restart(self) -> Self {
        let Self {
            mode,
            config,
            nodes,
            redis,
            _db_dir,
        } = self;
        futures::future::join_all(nodes.into_iter().map(TestServer::shutdown)).await;
        let nodes = start_nodes(&config, redis.as_ref()).await;
        Self {
            mode,
            config,
            nodes,
            redis,
            _db_dir,
        }
    }

    /// Where node `node` listens; in [`Mode::Local`], the one server whatever `node`.
    pub fn addr(&self, node: usize) -> SocketAddr {
        match self.mode {
            Mode::Local => self.nodes[0].addr,
            Mode::Cluster => {
                assert!(
                    node < CLUSTER_NODES,
                    "a cluster chat has {CLUSTER_NODES} nodes, not node {node}"
                );
                self.nodes[node].addr
            }
        }
    }

    /// Where node `node` listens for IRC clients; in [`Mode::Local`], the one server's.
    pub fn irc_addr(&self, node: usize) -> SocketAddr {
        match self.mode {
            Mode::Local => self.nodes[0].irc_addr,
            Mode::Cluster => self.nodes[node].irc_addr,
        }
    }

    /// A client connected to the first node, not logged in.
    pub async fn connect(&self) -> LineClient {
        self.connect_on(0).await
    }

    /// A client connected to node `node`, not logged in.
    pub async fn connect_on(&self, node: usize) -> LineClient {
        LineClient::connect(self.addr(node)).await
    }

    /// A client logged in as `name` on the first node, its `welcome` and a `/who` reply
    /// read: its login has been announced.
    pub async fn login(&self, name: &str) -> LineClient {
        self.login_on(0, name).await
    }

    /// A client logged in as `name` on node `node`, its `welcome` and a `/who` reply read:
    /// its login has been announced.
    ///
    /// The `/who` reply is the barrier: by then the server has announced the login (it
    /// sends `joined` lines in batches, after `welcome`), and a cluster node has
    /// published it to Redis. Another node may still be about to read it; no line of
    /// the protocol tells when it has.
    pub async fn login_on(&self, node: usize, name: &str) -> LineClient {
        let mut client = login_at(self.addr(node), name).await;
        let (before, _) = client.sync().await;
        assert_eq!(
            before,
            Vec::<String>::new(),
            "{name} was told something before its first /who reply"
        );
        client
    }

    /// A client logged in as `name` on the first node and a member of `room`, every
    /// line up to its `names` read.
    pub async fn member(&self, name: &str, room: &str) -> LineClient {
        self.member_on(0, name, room).await
    }

    /// A client logged in as `name` on node `node` and a member of `room`, every line up
    /// to its `names` read.
    pub async fn member_on(&self, node: usize, name: &str, room: &str) -> LineClient {
        let mut client = self.login_on(node, name).await;
        join(&mut client, room).await;
        client
    }

    /// Shuts every node down at once, as SIGTERM would, waits for them, then stops Redis.
    /// A node waits up to its close linger (2 s) for clients the test still holds.
    pub async fn shutdown(self) {
        futures::future::join_all(self.nodes.into_iter().map(TestServer::shutdown)).await;
        drop(self.redis);
    }
}

/// The servers of a chat with `config`: one, or with `redis` [`CLUSTER_NODES`] nodes on it,
/// each with its own node name.
async fn start_nodes(config: &Config, redis: Option<&RedisServer>) -> Vec<TestServer> {
    let Some(redis) = redis else {
        return vec![start(config.clone()).await];
    };
    let mut nodes = Vec::new();
    for node in ["a", "b"] {
        nodes.push(
            start(Config {
                cluster: Some(ClusterConfig {
                    url: redis.url(),
                    node: node.to_owned(),
                    ca_file: None,
                }),
                ..config.clone()
            })
            .await,
        );
    }
    assert_eq!(nodes.len(), CLUSTER_NODES);
    nodes
}

/// Turns `async fn $body(mode: Mode)` into a module `$body` of two tests, `local` and
/// `cluster`, so `cargo test $body` runs both and `cargo test ::cluster` every cluster
/// variant. Both run on a multi-threaded runtime, as the server does.
///
/// `both_modes!(body, cluster_ignore = "cluster drift: why")` marks only the cluster
/// variant `#[ignore]`, for a rule the cluster does not keep yet; `cargo test --
/// --ignored` still runs it.
#[allow(unused_macros)] // Like the rest of this module, not every test file uses it.
macro_rules! both_modes {
    ($body:ident $(, cluster_ignore = $reason:literal)?) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn local() {
                super::$body(crate::common::Mode::Local).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            $(#[ignore = $reason])?
            async fn cluster() {
                super::$body(crate::common::Mode::Cluster).await;
            }
        }
    };
}
#[allow(unused_imports)]
pub(crate) use both_modes;
