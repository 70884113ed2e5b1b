//! Cluster mode on Redis (issue 11), being built in steps; `docs/cluster.md` has the
//! design and says which parts exist. So far: the connection check a node makes at start,
//! [`lease`], the per-name leases that keep names unique across nodes, and [`rooms`], the
//! script that orders and stores a room's messages.

pub mod lease;
pub mod link;
pub mod mail;
pub mod rooms;

use std::time::Duration;

use anyhow::Context;
use redis::aio::ConnectionManager;

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
