//! Cluster mode on Redis (docs/cluster.md): [`Redis`], the backend of one node, which
//! the broker knows only as a [`crate::backend::Backend`].
//!
//! - `backend`: the command queue the broker fills, with its backpressure.
//! - `publisher`: runs the commands against Redis, in order, batched.
//! - `subscriber`: reads the channels and hands the broker what arrives.
//! - `renewer`: heartbeat, name leases and the sweep of dead nodes.
//! - [`lease`], [`rooms`], [`mail`]: the keys, scripts and formats in Redis;
//!   `queries`: the reads that answer `/who`, `/names`, `/rooms`, `/history`.
//! - Here: [`client`], the one place a node's Redis client is made (TLS and its CA, its
//!   name in `CLIENT LIST`), [`connect_node`], the connection check a node makes at
//!   start, and [`redacted`], a Redis URL without its password, for logs and errors.

mod backend;
mod governance;
pub mod lease;
pub mod mail;
mod publisher;
mod queries;
mod renewer;
pub mod rooms;
mod sessions;
mod subscriber;

pub use backend::Redis;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Context;
use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::ClusterConfig;

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

/// The Redis client of node `node` for `url` (`redis://`, or `rediss://` for TLS). Over
/// TLS it trusts the CA in the PEM file `ca_file` alone if given, else the built-in public
/// roots (webpki-roots, as chat-client does). Every connection made from it tells Redis
/// `node` (`lib-name=chat-node:<node>` in `CLIENT LIST`, Redis 7.2 and later).
///
/// Errors name the URL only as [`redacted`] shows it.
pub fn client(url: &str, ca_file: Option<&Path>, node: &str) -> anyhow::Result<redis::Client> {
    build_client(url, ca_file, Some(node))
}

fn build_client(
    url: &str,
    ca_file: Option<&Path>,
    node: Option<&str>,
) -> anyhow::Result<redis::Client> {
    let shown = redacted(url);
    let mut info = url
        .into_connection_info()
        .with_context(|| format!("{shown:?} is not a Redis URL"))?;
    if let Some(node) = node {
        // Sent on every connection, the pub/sub ones and the manager's reconnections too,
        // which `CLIENT SETNAME` is not: redis-rs 1.2 has no setting for a client name.
        let settings = info
            .redis_settings()
            .clone()
            .set_lib_name(connection_name(node), env!("CARGO_PKG_VERSION"));
        info = info.set_redis_settings(settings);
    }
    let Some(ca_file) = ca_file else {
        return redis::Client::open(info).with_context(|| format!("opening {shown}"));
    };
    anyhow::ensure!(
        matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }),
        "a CA file is for a rediss:// URL (TLS), and {shown} is not one"
    );
    let ca = ca_file.display();
    let pem = std::fs::read(ca_file).with_context(|| format!("reading the CA file {ca}"))?;
    // redis-rs would take a file without a certificate as an empty trust store, and every
    // handshake would then fail with a less telling error.
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading the CA file {ca}"))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in the CA file {ca}");
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(info, certificates)
        .with_context(|| format!("using the CA file {ca} for {shown}"))
}

/// `chat-node:<node>`, with what Redis refuses in a client name (anything but printable
/// ASCII; node names may be any Unicode) as `?`.
fn connection_name(node: &str) -> String {
    let node: String = node
        .chars()
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    format!("chat-node:{node}")
}

/// Connects node `cluster.node` to its Redis ([`client`]) and checks it answers, so a
/// node with an unreachable Redis, or the wrong password, stops at once with a clear
/// message instead of half-starting. The connection shows as `name=chat-node:<node>` in
/// `CLIENT LIST`.
pub async fn connect_node(cluster: &ClusterConfig) -> anyhow::Result<ConnectionManager> {
    let client = client(&cluster.url, cluster.ca_file.as_deref(), &cluster.node)?;
    let mut manager = checked(client, &redacted(&cluster.url)).await?;
    let name = connection_name(&cluster.node);
    let named = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg(&name)
        .query_async::<()>(&mut manager)
        .await;
    // A Redis user not allowed `CLIENT SETNAME` can still run the chat.
    if let Err(e) = named {
        tracing::warn!(error = %e, name, "could not name the Redis connection");
    }
    Ok(manager)
}

/// The node's command connection, once Redis answered `PING`.
async fn checked(client: redis::Client, shown: &str) -> anyhow::Result<ConnectionManager> {
    // One plain connection first: the manager would retry a refused one quietly.
    let check = async {
        let mut probe = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut probe).await?;
        ConnectionManager::new_with_config(client, manager_config()).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, check)
        .await
        .map_err(|_| {
            anyhow::anyhow!("cannot reach Redis at {shown}: no answer within {CONNECT_TIMEOUT:?}")
        })?
        .map_err(|e| refused(e, shown))
}

/// How the command connection meets an outage. Issue 17 wants errors within 2 s of
/// losing Redis, so users get `error: cluster unavailable` rather than a wait, and the
/// node's own loops notice. redis-rs's defaults retry a reconnection 6 times, 0.1 s
/// doubling to 3.2 s apart: a call made meanwhile waited over 6 s, 13 s when connection
/// attempts hang (a host that is gone drops packets rather than refusing them). Here a
/// call fails after 1 s without an answer (a paused or cut-off Redis; 1 s rather than the
/// default 0.5 s, so that a long script on a busy Redis is not taken for an outage), and a
/// reconnection is 2 attempts of at most 0.8 s, 0.1 to 0.2 s apart: at most 1.8 s. One
/// retry only: the next call starts a new reconnection anyway, so more would only keep
/// callers waiting.
fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs(1)))
        .set_connection_timeout(Some(Duration::from_millis(800)))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_millis(200))
}

/// The start-up error for `e`: a password problem said as one, anything else as
/// unreachable.
fn refused(e: redis::RedisError, shown: &str) -> anyhow::Error {
    let context = if e.code() == Some("NOAUTH") {
        format!("Redis at {shown} needs a password: redis://:PASSWORD@HOST:PORT")
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS") {
        format!("Redis at {shown} refused the user name or password")
    } else {
        format!("cannot reach Redis at {shown}")
    };
    anyhow::Error::new(e).context(context)
}

/// `url` as it may be written to a log or an error: its password, if any, becomes `***`
/// (`redis://:***@host`, `redis://user:***@host`, and `?pass=***` in a socket URL). A URL
/// that does not parse loses everything from the `//` after its scheme up to its last `@`,
/// because where a password in it ends cannot be known.
pub fn redacted(url: &str) -> String {
    let Some(mut parsed) = redis::parse_redis_url(url) else {
        return without_userinfo(url);
    };
    if parsed.password().is_some() && parsed.set_password(Some("***")).is_err() {
        return without_userinfo(url);
    }
    // Socket URLs (`redis+unix:///run/redis.sock?pass=...`) carry the password as a query
    // parameter; redis-rs reads it from `pass`.
    let secret = |key: &str| matches!(key, "pass" | "password");
    if parsed.query_pairs().any(|(key, _)| secret(&key)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if secret(&key) { "***".into() } else { value };
                (key.into_owned(), value.into_owned())
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.into()
}

/// `url` without what lies between `//` (or its start) and its last `@`.
fn without_userinfo(url: &str) -> String {
    let (scheme, rest) = url.find("//").map_or(("", url), |at| url.split_at(at + 2));
    match rest.rfind('@') {
        Some(at) => format!("{scheme}{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted;

    #[test]
    fn passwords_never_show() {
        for (url, shown) in [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://:hunter2@127.0.0.1:6379",
                "redis://:***@127.0.0.1:6379",
            ),
            (
                "redis://chat:hunter2@10.0.0.5:6379/2",
                "redis://chat:***@10.0.0.5:6379/2",
            ),
            (
                "rediss://chat:hun%40ter2@redis.example",
                "rediss://chat:***@redis.example",
            ),
            // A bare `@` in a password: the URL parser takes the last one as the end.
            ("redis://:hun@ter2@host", "redis://:***@host"),
            ("redis://chat@host", "redis://chat@host"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=hunter2",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            // Do not parse: a `/` in the password, a port that is not a number, no scheme.
            ("redis://:hun/ter2@host:6379", "redis://host:6379"),
            ("redis://:hunter2@host:port", "redis://host:port"),
            ("http://chat:hunter2@host", "http://host"),
            ("chat:hunter2@host", "host"),
            ("not a url", "not a url"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
    }
}
