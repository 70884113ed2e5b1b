//! The renewer: every [`lease::RENEW_EVERY`] it beats this node's heartbeat, renews its
//! name leases, takes back any that expired during an outage, and reports the ones now
//! held elsewhere, whose users are then disconnected. It also sweeps: the users of a
//! node whose heartbeat stopped (a node killed with SIGKILL) are announced `left` on
//! every node, by whichever survivor takes that node's cleanup lock first.

use bytes::BytesMut;
use chat_proto::{RoomName, ServerLine, UserName, encode_line};
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::lease::{self, Owner};
use super::subscriber::{Mode, presence_payload};
use super::{ALL, Held, NODES, heartbeat_key, lock, queries, rooms, users_key};
use crate::backend::Answer;
use crate::config::Presence;
use crate::metrics::METRICS;

/// Every [`lease::RENEW_EVERY`]: beats this node's heartbeat, renews its leases, and
/// looks for nodes whose heartbeat stopped (killed, or cut off for longer than a lease).
pub(super) async fn renewer(
    node: String,
    mut redis: ConnectionManager,
    held: Held,
    answers: mpsc::Sender<Answer>,
    token: CancellationToken,
    presence: Presence,
) {
    let mut tick = tokio::time::interval(lease::RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = token.cancelled() => return,
            _ = tick.tick() => {}
        }
        let names: Vec<(String, Owner)> = lock(&held)
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        METRICS.redis_round_trips.inc();
        if let Err(e) = beat(&mut redis, &node).await {
            warn!(%node, error = %e, "no heartbeat: Redis unreachable");
            METRICS.redis_errors.inc();
            METRICS.set_redis_up(false);
            continue;
        }
        METRICS.set_redis_up(true);
        if let Err(e) = sweep(&mut redis, &node, presence).await {
            warn!(%node, error = %e, "could not check on the other nodes");
        }
        let pairs: Vec<(&str, &Owner)> = names.iter().map(|(k, v)| (k.as_str(), v)).collect();
        // Redis away: try again next tick; a lease lasts three ticks, and one that ran
        // out meanwhile is taken back if nobody else took it.
        let Ok(lost) = lease::renew(&mut redis, &pairs).await else {
            continue;
        };
        if !lost.is_empty() {
            {
                let mut map = lock(&held);
                for name in &lost {
                    map.remove(name);
                }
            }
            let reason = "your name is now held on another node of the cluster".to_owned();
            let _ = answers
                .send(Answer::Lost {
                    names: lost,
                    reason,
                })
                .await;
        }
    }
}

async fn beat(redis: &mut ConnectionManager, node: &str) -> redis::RedisResult<()> {
    redis::pipe()
        .cmd("SADD")
        .arg(NODES)
        .arg(node)
        .ignore()
        .cmd("SET")
        .arg(heartbeat_key(node))
        .arg(1)
        .arg("PX")
        .arg(lease::LEASE_TTL.as_millis() as u64)
        .ignore()
        .query_async(redis)
        .await
}

/// For each node whose heartbeat is gone, one survivor (whoever takes the cleanup lock
/// first) tells every node's users that its users left, and forgets it. Their names'
/// leases ran out with the heartbeat, so the names are free too.
async fn sweep(
    redis: &mut ConnectionManager,
    me: &str,
    presence: Presence,
) -> redis::RedisResult<()> {
    let script = Script::new(
        r"
        if redis.call('EXISTS', KEYS[2]) == 1 then return {} end
        if not redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', 30000) then return {} end
        local users = redis.call('SMEMBERS', KEYS[4])
        -- First a mark that the node was swept, then the names gone with it.
        local names = {'*'}
        for _, entry in ipairs(users) do
            local folded, name = string.match(entry, '^([^/]*)/(.*)$')
            local lease = 'chat:lease:' .. folded
            local sessions = 'chat:sessions:' .. folded
            redis.call('HDEL', sessions, ARGV[2])
            local holder = redis.call('GET', lease)
            local held_there = holder and string.sub(holder, 1, #ARGV[2] + 1) == ARGV[2] .. '/'
            local others = redis.call('HLEN', sessions)
            if others > 0 then
                -- An account still online elsewhere: it stays, and keeps its lease.
                if held_there then
                    redis.call('SET', lease, redis.call('HVALS', sessions)[1], 'KEEPTTL')
                end
                redis.call('PUBLISH', 'chat:tell', 'c ' .. folded .. '\n' .. others)
            else
                -- Free the dead node's names now, not when their leases run out.
                if held_there then redis.call('DEL', lease) end
                table.insert(names, name)
            end
        end
        redis.call('DEL', KEYS[4])
        redis.call('SREM', KEYS[1], ARGV[2])
        return names
        ",
    );
    let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(NODES).query_async(redis).await?;
    for node in nodes.iter().filter(|n| n.as_str() != me) {
        let swept: Vec<String> = script
            .key(NODES)
            .key(heartbeat_key(node))
            .key(format!("chat:node:{node}:cleanup"))
            .key(users_key(node))
            .arg(me)
            .arg(node)
            .invoke_async(redis)
            .await?;
        let Some((_, gone)) = swept.split_first() else {
            continue;
        };
        warn!(node = %node, users = gone.len(), "a node stopped without leaving; its users are gone");
        // No origin: every node, the sweeper's own included, tells its users.
        let mut lines = BytesMut::from(&b"\n"[..]);
        for name in gone.iter().filter_map(|n| UserName::parse(n).ok()) {
            lines.extend_from_slice(&encode_line(ServerLine::Left(name)));
        }
        // Its users leave their rooms first, as a disconnect would have them (an
        // account still online elsewhere stays in them).
        for (room, names) in remove_from_rooms(redis, node).await? {
            for name in names
                .into_iter()
                .filter(|n| gone.iter().any(|g| g == n.as_str()))
            {
                let left = encode_line(ServerLine::LeftRoom {
                    room: room.clone(),
                    name,
                });
                redis::cmd("PUBLISH")
                    .arg(rooms::channel(&room))
                    .arg(&presence_payload(None, Mode::All, &left)[..])
                    .query_async::<i64>(redis)
                    .await?;
            }
        }
        if presence == Presence::All && !gone.is_empty() {
            redis::cmd("PUBLISH")
                .arg(ALL)
                .arg(&lines[..])
                .query_async::<i64>(redis)
                .await?;
        }
    }
    Ok(())
}

/// Takes node `node`'s users out of every room's member set; returns who left what.
async fn remove_from_rooms(
    redis: &mut ConnectionManager,
    node: &str,
) -> redis::RedisResult<Vec<(RoomName, Vec<UserName>)>> {
    let script = Script::new(
        r"
        local gone = {}
        for _, entry in ipairs(redis.call('SMEMBERS', KEYS[1])) do
            if string.sub(entry, 1, #ARGV[1] + 1) == ARGV[1] .. '/' then
                redis.call('SREM', KEYS[1], entry)
                table.insert(gone, string.sub(entry, #ARGV[1] + 2))
            end
        end
        return gone
        ",
    );
    let mut out = Vec::new();
    for (room, _) in queries::all_rooms(redis).await? {
        let gone: Vec<String> = script
            .key(rooms::members_key(&room))
            .arg(node)
            .invoke_async(redis)
            .await?;
        let names: Vec<UserName> = gone
            .iter()
            .filter_map(|n| UserName::parse(n).ok())
            .collect();
        if !names.is_empty() {
            out.push((room, names));
        }
    }
    Ok(out)
}
