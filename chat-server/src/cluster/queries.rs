//! Reads from Redis that answer a user: `/who`, `/names`, `/rooms` and `/history`.

use bytes::Bytes;
use chat_proto::{Conv, HistoryLine, MessageText, RoomName, Timestamp, UserName, encode_line};
use redis::aio::ConnectionManager;

use super::lease::Owner;
use super::rooms;
use crate::history;

/// Every key matching `pattern`, by `SCAN` (never `KEYS`, which would block Redis).
pub(super) async fn scan(
    redis: &mut ConnectionManager,
    pattern: &str,
) -> redis::RedisResult<Vec<String>> {
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        keys.extend(batch);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

/// Every name holding a lease, sorted bytewise.
pub(super) async fn who(redis: &mut ConnectionManager) -> redis::RedisResult<Vec<UserName>> {
    let keys = scan(redis, "chat:lease:*").await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(redis).await?;
    let mut names: Vec<UserName> = values
        .into_iter()
        .flatten()
        .filter_map(|v| Owner::parse(&v).map(|o| o.name))
        .filter_map(|n| UserName::parse(&n).ok())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// A room's members across the cluster, sorted bytewise.
pub(super) async fn members(
    redis: &mut ConnectionManager,
    room: &RoomName,
) -> redis::RedisResult<Vec<UserName>> {
    let entries: Vec<String> = redis::cmd("SMEMBERS")
        .arg(rooms::members_key(room))
        .query_async(redis)
        .await?;
    let mut names: Vec<UserName> = entries
        .iter()
        .filter_map(|e| e.split_once('/'))
        .filter_map(|(_, name)| UserName::parse(name).ok())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Every room with members across the cluster and its member count, sorted bytewise.
pub(super) async fn all_rooms(
    redis: &mut ConnectionManager,
) -> redis::RedisResult<Vec<(RoomName, usize)>> {
    let keys = scan(redis, "chat:room:*:members").await?;
    let mut rooms = Vec::new();
    for key in keys {
        let Some(room) = key
            .strip_prefix("chat:room:")
            .and_then(|k| k.strip_suffix(":members"))
            .and_then(|r| RoomName::parse(r).ok())
        else {
            continue;
        };
        // An account online on several nodes has an entry for each: count names.
        let entries: Vec<String> = redis::cmd("SMEMBERS").arg(&key).query_async(redis).await?;
        let mut names: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.split_once('/').map(|(_, name)| name))
            .collect();
        names.sort_unstable();
        names.dedup();
        if !names.is_empty() {
            rooms.push((room, names.len()));
        }
    }
    rooms.sort();
    Ok(rooms)
}

/// `history` lines, oldest first, then `history-end`, as one server's history replies
/// ([`history::fit_reply`]), with nothing older than `oldest` (expired).
pub(super) fn history_reply(
    conv: Conv,
    messages: &[rooms::RoomMessage],
    mut truncated: bool,
    latest: bool,
    oldest: Timestamp,
    max_bytes: usize,
) -> Bytes {
    let mut encoded: Vec<Bytes> = Vec::with_capacity(messages.len());
    for message in messages {
        let (Ok(sender), Ok(text)) = (
            UserName::parse(&message.from),
            MessageText::parse(&message.text),
        ) else {
            continue;
        };
        if message.time < oldest {
            truncated = true;
            continue;
        }
        encoded.push(encode_line(HistoryLine {
            conv: &conv,
            id: message.id,
            time: message.time,
            sender: &sender,
            text: &text,
        }));
    }
    history::fit_reply(&conv, &encoded, latest, truncated, max_bytes)
        .lines
        .freeze()
}
