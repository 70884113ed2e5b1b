//! Cluster mode on Redis (docs/cluster.md): [`Redis`], the backend of one node, which
//! the broker knows only as a [`crate::backend::Backend`].
//!
//! - [`backend`]: the command queue the broker fills, with its backpressure.
//! - [`publisher`]: runs the commands against Redis, in order, batched.
//! - [`subscriber`]: reads the channels and hands the broker what arrives.
//! - [`renewer`]: heartbeat, name leases and the sweep of dead nodes.
//! - [`lease`], [`rooms`], [`mail`]: the keys, scripts and formats in Redis;
//!   [`queries`]: the reads that answer `/who`, `/names`, `/rooms`, `/history`.

mod backend;
pub mod lease;
pub mod mail;
mod publisher;
mod queries;
mod renewer;
pub mod rooms;
mod subscriber;

pub use backend::Redis;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use std::time::Duration;

use anyhow::Context;
use redis::aio::ConnectionManager;

/// The channel every node reads: `*` messages and presence, as `<origin node>\n<lines>`.
pub const ALL: &str = "chat:all";
/// What a user is told when something needs Redis and Redis is not there.
pub const UNAVAILABLE: &str = "cluster unavailable (Redis unreachable); try again";

/// The channel node `node` reads: lines for its users and replies to them.
pub fn node_channel(node: &str) -> String {
    format!("chat:node:{node}")
}

/// Every node that has run, so the survivors can check on each other.
const NODES: &str = "chat:nodes";

/// Node `node`'s heartbeat: set every renewal with the lease time, gone once it stops.
fn heartbeat_key(node: &str) -> String {
    format!("chat:node:{node}:alive")
}

/// The names logged in on node `node`, for announcing them gone if it dies.
fn users_key(node: &str) -> String {
    format!("chat:node:{node}:users")
}

/// A member of a node's users set: `folded/name` (neither holds a `/`).
fn user_entry(folded: &str, name: &chat_proto::UserName) -> String {
    format!("{folded}/{name}")
}

/// The names this node holds (folded name → owner), shared by the publisher, which
/// takes and gives them back, and the renewer, which keeps them.
type Held = Arc<Mutex<HashMap<String, lease::Owner>>>;

fn lock(held: &Held) -> MutexGuard<'_, HashMap<String, lease::Owner>> {
    // A poisoned map is still a map: the data is plain.
    held.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// How long the start-up check waits for Redis before the node gives up.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to Redis at `url` (`redis://HOST:PORT`) and checks it answers, so a node with
/// an unreachable Redis stops at once with a clear message instead of half-starting.
pub async fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).with_context(|| format!("{url:?} is not a Redis URL"))?;
    // One plain connection first: the manager would retry a refused one quietly.
    let check = async {
        let mut probe = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut probe).await?;
        ConnectionManager::new(client).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, check)
        .await
        .map_err(|_| {
            anyhow::anyhow!("cannot reach Redis at {url}: no answer within {CONNECT_TIMEOUT:?}")
        })?
        .with_context(|| format!("cannot reach Redis at {url}"))
}
