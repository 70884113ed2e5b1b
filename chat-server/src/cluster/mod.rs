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
    let shown = redacted(url);
    let client =
        redis::Client::open(url).with_context(|| format!("{shown:?} is not a Redis URL"))?;
    // One plain connection first: the manager would retry a refused one quietly.
    let check = async {
        let mut probe = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut probe).await?;
        ConnectionManager::new(client).await
    };
    tokio::time::timeout(CONNECT_TIMEOUT, check)
        .await
        .map_err(|_| {
            anyhow::anyhow!("cannot reach Redis at {shown}: no answer within {CONNECT_TIMEOUT:?}")
        })?
        .map_err(|e| refused(e, &shown))
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
