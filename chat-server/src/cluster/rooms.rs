//! Room messages through Redis: one Lua script gives a message its id, appends it to the
//! room's capped stream and publishes it, atomically, so every node's members see one
//! room's messages in one order with the same ids (Centrifugo's publish script). History
//! is read back from the stream by the same ids.

use chat_proto::{HistoryRange, MessageId, RoomName, Timestamp, UserName};
use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

/// Where a room lives in Redis.
pub fn room_place(room: &RoomName) -> String {
    format!("chat:room:{room}")
}

/// Where the direct messages between two accounts live: their folded names in order, so
/// both name the same place.
pub fn pair_place(a: &UserName, b: &UserName) -> String {
    let (a, b) = (a.folded(), b.folded());
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    format!("chat:pair:{a}|{b}")
}

/// The counter, the stream and the channel of a conversation's place.
fn place_keys(place: &str) -> [String; 3] {
    [
        format!("{place}:seq"),
        format!("{place}:log"),
        place.to_owned(),
    ]
}

/// The keys and channel of one room.
fn keys(room: &RoomName) -> [String; 3] {
    place_keys(&room_place(room))
}

/// The channel a room's messages are published on.
pub fn channel(room: &RoomName) -> String {
    keys(room)[2].clone()
}

/// One stored or published room message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomMessage {
    /// Its id in the room.
    pub id: MessageId,
    /// When a node accepted it, in milliseconds since the epoch.
    pub time: Timestamp,
    /// The sender's name, as typed.
    pub from: String,
    /// The text.
    pub text: String,
}

impl RoomMessage {
    /// Parses a message as published on the room's channel:
    /// `m <node> <conn> <id> <time> <from> <text>`, where node and connection are its
    /// sender's; `n` instead of `m` for an IRC notice (the channel also carries presence,
    /// as `p ...`).
    pub fn parse_published(payload: &str) -> Option<Self> {
        let message = payload
            .strip_prefix("m ")
            .or_else(|| payload.strip_prefix("n "))?;
        Self::parse_row(message.splitn(3, ' ').nth(2)?)
    }

    /// Parses `id time from text`.
    pub(super) fn parse_row(payload: &str) -> Option<Self> {
        let mut parts = payload.splitn(4, ' ');
        let id = MessageId::new(parts.next()?.parse().ok()?)?;
        let time = Timestamp::from_unix_millis(parts.next()?.parse().ok()?)?;
        let from = parts.next()?.to_owned();
        let text = parts.next()?.to_owned();
        Some(Self {
            id,
            time,
            from,
            text,
        })
    }
}

/// The publish script: the id, the stream, retention and the `PUBLISH`, in one step.
/// ARGV: time, from, text, most kept (0: history is off, keep nothing), µs now, the
/// smallest id still young enough to keep (0: no age limit), the sender's node and
/// connection, and how to publish: `m` (a message), `n` (an IRC notice) or `0` (not at
/// all: a pair's messages were delivered as sent).
pub const PUBLISH: &str = r"
    local last = tonumber(redis.call('GET', KEYS[1]) or '0')
    local id = math.max(last + 1, tonumber(ARGV[5]))
    local sid = string.format('%.0f', id)
    redis.call('SET', KEYS[1], sid)
    local keep = tonumber(ARGV[4])
    if keep > 0 then
        redis.call('XADD', KEYS[2], sid .. '-0', 'time', ARGV[1], 'from', ARGV[2], 'text', ARGV[3])
        -- Retention drops the oldest with XDEL, which Redis records as the stream's
        -- max-deleted-entry-id: how history knows whether asked-for messages are gone.
        while redis.call('XLEN', KEYS[2]) > keep do
            local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
            redis.call('XDEL', KEYS[2], oldest[1][1])
        end
        local young = tonumber(ARGV[6])
        if young > 0 then
            local old = redis.call('XRANGE', KEYS[2], '-', '(' .. string.format('%.0f', young), 'COUNT', 100)
            for _, row in ipairs(old) do redis.call('XDEL', KEYS[2], row[1]) end
        end
    end
    if ARGV[9] ~= '0' then
        redis.call('PUBLISH', KEYS[3], ARGV[9] .. ' ' .. ARGV[7] .. ' ' .. ARGV[8] .. ' ' .. sid .. ' ' .. ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. ARGV[3])
    end
    return sid
";

/// The SHA-1 that names [`PUBLISH`], worked out once.
pub fn publish_hash() -> &'static str {
    static HASH: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| Script::new(PUBLISH).get_hash().to_owned());
    &HASH
}

/// One message for [`append_cmd`].
#[derive(Debug, Clone, Copy)]
pub struct Append<'a> {
    /// Where it goes ([`room_place`] or [`pair_place`]).
    pub place: &'a str,
    /// The sender's name.
    pub from: &'a str,
    /// The text.
    pub text: &'a str,
    /// When the node accepted it.
    pub time: Timestamp,
    /// The node's clock in µs since the epoch, which ids never fall behind.
    pub now_micros: u64,
    /// Most messages kept; 0 keeps none (`--history off`).
    pub keep: usize,
    /// Messages with a smaller id are too old to keep (0: no age limit); ids are about µs
    /// since the epoch.
    pub young: u64,
    /// The sender's node and connection, so its node leaves it out; `None`: not
    /// published (a pair's messages were delivered as they were sent).
    pub origin: Option<(&'a str, u64)>,
    /// An IRC `NOTICE`: published as one.
    pub notice: bool,
}

/// The command that appends a message to a conversation's place and publishes it on the
/// place's channel; it answers the id. It names the script by its hash (`EVALSHA`), so
/// it can go in a pipeline without sending the script each time; the caller loads the
/// script first ([`PUBLISH`]). Ids are `max(last + 1, µs since the epoch at the node)`,
/// as in a single server, so they keep growing even if Redis lost the counter.
pub fn append_cmd(message: &Append<'_>) -> redis::Cmd {
    let [seq, log, channel] = place_keys(message.place);
    let (node, conn) = message.origin.unwrap_or(("-", 0));
    let mut cmd = redis::cmd("EVALSHA");
    cmd.arg(publish_hash())
        .arg(3)
        .arg(seq)
        .arg(log)
        .arg(channel)
        .arg(message.time.unix_millis())
        .arg(message.from)
        .arg(message.text)
        .arg(message.keep)
        .arg(message.now_micros)
        .arg(message.young)
        .arg(node)
        .arg(conn)
        .arg(match (message.origin, message.notice) {
            (None, _) => "0",
            (Some(_), false) => "m",
            (Some(_), true) => "n",
        });
    cmd
}

/// The set of a room's members across the cluster: `node/name`.
pub fn members_key(room: &RoomName) -> String {
    format!("chat:room:{room}:members")
}

/// A member's entry in [`members_key`].
pub fn member_entry(node: &str, name: &UserName) -> String {
    format!("{node}/{name}")
}

/// A conversation's history for `range`, oldest first, and whether messages that were
/// asked for are gone (trimmed from the stream, or past the 1000 cap).
pub async fn read(
    redis: &mut impl ConnectionLike,
    place: &str,
    range: HistoryRange,
) -> RedisResult<(Vec<RoomMessage>, bool)> {
    let script = Script::new(
        r"
        local trimmed = '0-0'
        local ok, info = pcall(redis.call, 'XINFO', 'STREAM', KEYS[1])
        if ok then
            for i = 1, #info, 2 do
                if info[i] == 'max-deleted-entry-id' then trimmed = info[i + 1] end
            end
        end
        local trimmed_id = tonumber(string.match(trimmed, '^(%d+)')) or 0
        local rows
        local truncated = 0
        if ARGV[1] == 'latest' then
            rows = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', ARGV[2])
            if #rows < tonumber(ARGV[2]) and trimmed_id > 0 then truncated = 1 end
        elseif ARGV[1] == 'before' then
            rows = redis.call('XREVRANGE', KEYS[1], '(' .. ARGV[2] .. '-0', '-', 'COUNT', ARGV[3])
            if #rows < tonumber(ARGV[3]) and trimmed_id > 0 then truncated = 1 end
        else
            rows = redis.call('XRANGE', KEYS[1], '(' .. ARGV[2] .. '-0', '+', 'COUNT', ARGV[3] + 1)
            if trimmed_id > tonumber(ARGV[2]) then truncated = 1 end
            if #rows > tonumber(ARGV[3]) then
                truncated = 1
                table.remove(rows)
            end
        end
        local out = {truncated}
        for _, row in ipairs(rows) do
            local fields = {}
            for j = 1, #row[2], 2 do fields[row[2][j]] = row[2][j + 1] end
            table.insert(out, string.match(row[1], '^(%d+)') .. ' ' .. fields['time'] .. ' ' .. fields['from'] .. ' ' .. fields['text'])
        end
        return out
        ",
    );
    let [_, log, _] = place_keys(place);
    let mut invocation = script.prepare_invoke();
    invocation.key(log);
    let latest = matches!(range, HistoryRange::Latest(_) | HistoryRange::Before(..));
    match range {
        HistoryRange::Latest(n) => invocation.arg("latest").arg(n),
        HistoryRange::Before(id, n) => invocation.arg("before").arg(id.get()).arg(n),
        HistoryRange::After(id) => invocation
            .arg("after")
            .arg(id.get())
            .arg(chat_proto::MAX_HISTORY_LINES),
    };
    let reply: Vec<redis::Value> = invocation.invoke_async(redis).await?;
    let mut reply = reply.into_iter();
    let truncated = matches!(reply.next(), Some(redis::Value::Int(1)));
    let mut messages: Vec<RoomMessage> = reply
        .filter_map(|v| match v {
            redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
            _ => None,
        })
        .filter_map(|row| RoomMessage::parse_row(&row))
        .collect();
    if latest {
        messages.reverse();
    }
    Ok((messages, truncated))
}
