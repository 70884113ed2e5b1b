//! Name leases: a name is used on one node at a time across the cluster. Each logged-in
//! name holds a Redis key `chat:lease:<folded name>` set with `SET NX PX`; its value names
//! the owner (node and connection). The owning node renews all its leases well before they
//! expire, and only the owner can release one (a Lua script compares and deletes in one
//! step), so a node that stalled and lost a lease can never delete its new owner's. A node
//! that dies stops renewing: its names are free again when the leases run out.

use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

/// How long a lease lasts without renewal: a dead node's names are free after this.
pub const LEASE_TTL: Duration = Duration::from_secs(10);
/// How often the owning node renews: three renewals can fail before a lease is lost.
pub const RENEW_EVERY: Duration = Duration::from_millis(3_000);

/// The Redis key for a folded name.
pub fn key(folded: &str) -> String {
    format!("chat:lease:{folded}")
}

/// The nodes with sessions of a name: a hash, node → that node's owner value. One node
/// for an unregistered name; an account's sessions may be on several.
pub fn sessions_key(folded: &str) -> String {
    format!("chat:sessions:{folded}")
}

/// Who holds a lease: written as the key's value, `node/connection/name`. Neither a node
/// name nor a user name can hold a `/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The node's name (`--node-name`).
    pub node: String,
    /// The connection on that node.
    pub conn: u64,
    /// The name as its user typed it, for `/who`.
    pub name: String,
}

impl Owner {
    /// The lease's value: `node/connection/name`.
    pub fn value(&self) -> String {
        format!("{}/{}/{}", self.node, self.conn, self.name)
    }

    /// Reads a lease's value back.
    pub fn parse(value: &str) -> Option<Self> {
        let mut parts = value.splitn(3, '/');
        Some(Self {
            node: parts.next()?.to_owned(),
            conn: parts.next()?.parse().ok()?,
            name: parts.next()?.to_owned(),
        })
    }
}

/// Takes the lease on `folded` for `owner` if nobody holds it. `true` if it is now ours.
/// Two nodes asking at the same instant: Redis runs one `SET NX` after the other, so
/// exactly one wins.
pub async fn acquire(
    redis: &mut impl ConnectionLike,
    folded: &str,
    owner: &Owner,
) -> RedisResult<bool> {
    let set: Option<String> = redis::cmd("SET")
        .arg(key(folded))
        .arg(owner.value())
        .arg("NX")
        .arg("PX")
        .arg(LEASE_TTL.as_millis() as u64)
        .query_async(redis)
        .await?;
    Ok(set.is_some())
}

/// Extends each lease in `held` (folded name and owner) that its owner still holds, and
/// takes back any that expired meanwhile (an outage longer than [`LEASE_TTL`]). Returns
/// the names now held by someone else.
pub async fn renew(
    redis: &mut impl ConnectionLike,
    held: &[(&str, &Owner)],
) -> RedisResult<Vec<String>> {
    if held.is_empty() {
        return Ok(Vec::new());
    }
    // One round trip for all of a node's names. An account online on several nodes
    // shares its lease: any node with a session of it keeps it alive. The holder also
    // writes its sessions entry again, for a Redis that lost it (restarted empty).
    let script = Script::new(
        r"
        local ttl = ARGV[#ARGV]
        local lost = {}
        for i = 1, #KEYS / 2 do
            local key, sessions = KEYS[2 * i - 1], KEYS[2 * i]
            local holder = redis.call('GET', key)
            if holder == ARGV[2 * i - 1] then
                redis.call('PEXPIRE', key, ttl)
                redis.call('HSET', sessions, ARGV[2 * i], ARGV[2 * i - 1])
            elseif not holder then
                redis.call('SET', key, ARGV[2 * i - 1], 'PX', ttl)
                redis.call('HSET', sessions, ARGV[2 * i], ARGV[2 * i - 1])
            elseif redis.call('HEXISTS', sessions, ARGV[2 * i]) == 1 then
                redis.call('PEXPIRE', key, ttl)
            else
                table.insert(lost, i)
            end
        end
        return lost
        ",
    );
    let mut invocation = script.prepare_invoke();
    for (name, owner) in held {
        invocation
            .key(key(name))
            .key(sessions_key(name))
            .arg(owner.value())
            .arg(&owner.node);
    }
    let lost: Vec<usize> = invocation
        .arg(LEASE_TTL.as_millis() as u64)
        .invoke_async(redis)
        .await?;
    Ok(lost
        .into_iter()
        .filter_map(|i| held.get(i.checked_sub(1)?).map(|(n, _)| (*n).to_owned()))
        .collect())
}

/// Gives the lease on `folded` back if `owner` still holds it; `true` if it did.
pub async fn release(
    redis: &mut impl ConnectionLike,
    folded: &str,
    owner: &Owner,
) -> RedisResult<bool> {
    let script = Script::new(
        r"
        if redis.call('GET', KEYS[1]) == ARGV[1] then
            return redis.call('DEL', KEYS[1])
        end
        return 0
        ",
    );
    let deleted: i64 = script
        .key(key(folded))
        .arg(owner.value())
        .invoke_async(redis)
        .await?;
    Ok(deleted == 1)
}
