//! The publisher: runs the broker's commands against Redis, in order, so one sender's
//! lines keep their order. Messages ready together go as one pipeline (consecutive
//! direct messages as one script call), one round trip for the batch.
//!
//! When Redis does not answer (an error, or nothing within [`REDIS_TIMEOUT`]) the
//! publisher counts it as down: that command and every one after it is answered with
//! `error: cluster unavailable` at once, without waiting on Redis, until a `PING`
//! (tried every [`PROBE_EVERY`]) answers again. So every cluster operation fails within
//! about a second of the loss, queued ones included, and nothing is dropped unsaid.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use bytes::BytesMut;
use chat_proto::{Conv, HistoryRange, MessageId, RoomName, ServerLine, UserName, encode_line};
use redis::aio::ConnectionManager;
use redis::{Pipeline, Script};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use super::backend::{Cmd, Queue, Settings};
use super::lease::{self, Owner};
use super::subscriber::{Mode, SubCmd, node_record, presence_payload};
use super::{
    ALL, Held, UNAVAILABLE, governance, lock, mail, node_channel, queries, rooms, sessions,
    users_key,
};
use crate::accounts::{
    MAX_FAILURES_PER_ADDR, MAX_FAILURES_PER_NAME, THROTTLE_WINDOW, too_many_attempts,
};
use crate::backend::{
    Answer, Attempt, Auth, Departure, Direct, HISTORY_OFF, HistoryAsk, MAX_OFFLINE_PER_RECIPIENT,
};
use crate::backend::{Pending, left_room_line, users_line};
use crate::config::Presence;
use crate::governance::{Change, RoomState};
use crate::history::{ConvKey, wall_clock};
use crate::metrics::METRICS;
use crate::roster::ConnId;
use crate::sendq::Line;

/// Longest wait for one answer from Redis before it counts as down.
pub(super) const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// How often a Redis that is down is asked whether it is back.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// Most commands sent to Redis as one pipeline.
const MAX_PIPELINE: usize = 512;

/// Direct messages in one step per batch: for each recipient, every node with a session
/// of it gets the line (grouped into one `PUBLISH` per node), or the message is kept as
/// mail for an account (unless its mailbox is full), or nobody has that name. Messages
/// between two accounts join their `@` history, under the pair's one id sequence, which
/// also numbers the mail. ARGV starts with the time (ms), µs now, most kept, the
/// youngest id kept and the mailbox size; then per recipient (see [`direct_records`])
/// flags (`d` deliver or `k` keep only, then covered, registered, pair, each `0` or
/// `1`) and the node-channel record to deliver (`u <length> <folded>\n<line>`), and for
/// an account its sender and text. KEYS per recipient: its sessions hash, and for an
/// account its
/// mail, and the pair's counter and stream. Answers one status per recipient: 1
/// delivered (or kept), 2 stored, 3 mailbox full, 0 no such user.
const DIRECT: &str = r"
    local time, now = ARGV[1], tonumber(ARGV[2])
    local keep, young, maxmail = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
    local out, nodes, status = {}, {}, {}
    local function id_for(seq, log, sender, text, pair)
        local last = tonumber(redis.call('GET', seq) or '0')
        local sid = string.format('%.0f', math.max(last + 1, now))
        redis.call('SET', seq, sid)
        if pair and keep > 0 then
            redis.call('XADD', log, sid .. '-0', 'time', time, 'from', sender, 'text', text)
            while redis.call('XLEN', log) > keep do
                local oldest = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
                redis.call('XDEL', log, oldest[1][1])
            end
            if young > 0 then
                local old = redis.call('XRANGE', log, '-', '(' .. string.format('%.0f', young), 'COUNT', 100)
                for _, row in ipairs(old) do redis.call('XDEL', log, row[1]) end
            end
        end
        return sid
    end
    local a, k, r = 6, 1, 0
    while a <= #ARGV do
        r = r + 1
        local flags, record = ARGV[a], ARGV[a + 1]
        a = a + 2
        local sessions = KEYS[k]
        k = k + 1
        local registered = string.byte(flags, 3) == 49
        local sender, text, mail, seq, log
        if registered then
            sender, text = ARGV[a], ARGV[a + 1]
            mail, seq, log = KEYS[k], KEYS[k + 1], KEYS[k + 2]
            a, k = a + 2, k + 3
        end
        local pair = string.byte(flags, 4) == 49
        local online = nil
        local keep_only = string.byte(flags, 1) == 107
        if not keep_only then
            online = redis.call('HKEYS', sessions)
            if #online == 0 then online = nil end
        end
        if keep_only or online then
            if online and string.byte(flags, 2) == 48 then
                for _, node in ipairs(online) do
                    local batch = out[node]
                    if not batch then
                        batch = {}
                        out[node] = batch
                        nodes[#nodes + 1] = node
                    end
                    batch[#batch + 1] = record
                end
            end
            if pair then id_for(seq, log, sender, text, true) end
            status[r] = 1
        elseif not registered then
            status[r] = 0
        elseif redis.call('LLEN', mail) >= maxmail then
            status[r] = 3
        else
            local sid = id_for(seq, log, sender, text, pair)
            redis.call('RPUSH', mail, sid .. ' ' .. time .. ' ' .. sender .. ' ' .. text)
            status[r] = 2
        end
    end
    for _, node in ipairs(nodes) do
        redis.call('PUBLISH', 'chat:node:' .. node, table.concat(out[node]))
    end
    return status
";

/// Failed logins per name and per address within the window, as lists of times (ms)
/// with the window as their expiry: answers 0 and counts the attempt if it may be made,
/// otherwise how many ms until it may.
const THROTTLE: &str = r"
    local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
    local wait = 0
    for i = 1, 2 do
        local key, most = KEYS[i], tonumber(ARGV[2 + i])
        while true do
            local first = redis.call('LINDEX', key, 0)
            if not first or tonumber(first) + window > now then break end
            redis.call('LPOP', key)
        end
        if redis.call('LLEN', key) >= most then
            wait = math.max(wait, tonumber(redis.call('LINDEX', key, 0)) + window - now)
        end
    end
    if wait > 0 then return wait end
    for i = 1, 2 do
        redis.call('RPUSH', KEYS[i], ARGV[1])
        redis.call('LTRIM', KEYS[i], -tonumber(ARGV[2 + i]), -1)
        redis.call('PEXPIRE', KEYS[i], window)
    end
    return 0
";

/// The throttle's keys for a name and an address.
fn throttle_keys(name: &UserName, addr: std::net::IpAddr) -> [String; 2] {
    [
        format!("chat:throttle:name:{}", name.folded()),
        format!("chat:throttle:addr:{addr}"),
    ]
}

/// A login's last step, in one piece: the name joins this node's users, its mail is
/// taken (read and deleted), everyone elsewhere hears `joined` (unless presence is by
/// rooms only), and the admission goes to this node's own channel as the record
/// `a <length> <conn>\n<name>\n<mail>...`, so it reaches the broker behind every line
/// published before it: a user who logs in after another's admission never hears that
/// one's `joined`, as on one server. This node becomes the only one with sessions of
/// the name (`chat:sessions:<folded>`, KEYS[5]; ARGV[5] and ARGV[6] are the node and its
/// owner value).
const ADMIT: &str = r"
    -- The lease was free, so no node has sessions of the name: entries left there by a
    -- node that lost the lease are stale.
    redis.call('DEL', KEYS[5])
    redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
    redis.call('SADD', KEYS[1], ARGV[1])
    local mail = redis.call('LRANGE', KEYS[2], 0, -1)
    redis.call('DEL', KEYS[2])
    if ARGV[2] ~= '' then redis.call('PUBLISH', KEYS[3], ARGV[2]) end
    local body = ARGV[4] .. '\n'
    for _, m in ipairs(mail) do body = body .. m .. '\n' end
    redis.call('PUBLISH', KEYS[4], 'a ' .. #body .. ' ' .. ARGV[3] .. '\n' .. body)
    return 1
";

/// A departure in one step: the lease is given back (if this owner still holds it),
/// the name leaves this node's users and its rooms, and at that same instant every
/// member of those rooms gets `left <#room> <name>` and everyone the farewell. Nobody can
/// take the name and then hear its old holder leave. KEYS: lease, users set, `chat:all`,
/// the sessions hash, the account's rooms, `chat:tell`, then each room's member set and
/// channel; ARGV: the owner, the users-set entry, the farewell payload (`''`: none), the
/// member entry, this node, the folded name, then each room's presence payload. When
/// other nodes still have sessions of the account, it only hands the lease to one of
/// them, leaves this node's member entries and tells how many nodes are left (`c` on
/// `chat:tell`), and answers that number; else 0.
const DEPART: &str = r"
    redis.call('HDEL', KEYS[4], ARGV[5])
    redis.call('SREM', KEYS[2], ARGV[2])
    local rooms = (#KEYS - 6) / 2
    local others = redis.call('HLEN', KEYS[4])
    if others > 0 then
        -- The lease passes to a node that still has sessions: it always names one.
        if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
            redis.call('SET', KEYS[1], redis.call('HVALS', KEYS[4])[1], 'KEEPTTL')
        end
        for r = 1, rooms do redis.call('SREM', KEYS[5 + 2 * r], ARGV[4]) end
        redis.call('PUBLISH', KEYS[6], 'c ' .. ARGV[6] .. '\n' .. others)
        return others
    end
    if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) == ARGV[1] then
        redis.call('DEL', KEYS[1])
    end
    redis.call('DEL', KEYS[5])
    for r = 1, rooms do
        redis.call('SREM', KEYS[5 + 2 * r], ARGV[4])
        redis.call('PUBLISH', KEYS[6 + 2 * r], ARGV[6 + r])
    end
    if ARGV[3] ~= '' then redis.call('PUBLISH', KEYS[3], ARGV[3]) end
    return 0
";

/// One more session of an account online on another node: this node is added to the
/// account's sessions, and every node with the account learns how many nodes have it
/// now (`c` on `chat:tell`). KEYS: the sessions hash, this node's users set, the
/// account's rooms, `chat:tell`; ARGV: the node, its owner value, the users-set entry,
/// the folded name. Answers the number of nodes, then the account's rooms; nothing if
/// the account is not online after all (its last session just left).
const GUEST: &str = r"
    if redis.call('HLEN', KEYS[1]) == 0 then return {} end
    redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
    redis.call('SADD', KEYS[2], ARGV[3])
    local nodes = redis.call('HLEN', KEYS[1])
    redis.call('PUBLISH', KEYS[4], 'c ' .. ARGV[4] .. '\n' .. nodes)
    local out = {tostring(nodes)}
    for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do out[#out + 1] = room end
    return out
";

/// What the publisher works with.
pub(super) struct Publisher {
    pub(super) node: String,
    pub(super) redis: ConnectionManager,
    pub(super) settings: Settings,
    /// The names this node holds, shared with the renewer.
    pub(super) held: Held,
    /// Told how many commands are done, so the broker takes requests again.
    pub(super) queue: Arc<Queue>,
    /// To the broker loop; a send fails once the broker has ended.
    pub(super) answers: mpsc::Sender<Answer>,
    /// Room subscriptions for the subscriber; dropped with the publisher, which ends
    /// the subscriber's reading too.
    pub(super) subscriber: mpsc::Sender<SubCmd>,
    /// When Redis stopped answering, while it is down.
    pub(super) down: Option<Instant>,
    /// When to ask a Redis that is down again.
    pub(super) probe_at: Instant,
    /// Whether Redis has the scripts the pipeline names by hash, as far as we know.
    pub(super) scripts_loaded: bool,
}

/// Moves a read marker (`HSET` of `KEYS[1]`, field `ARGV[1]`) forward to `ARGV[2]` and
/// publishes `ARGV[3]` on `KEYS[2]`, only if it moves. Ids are compared as canonical
/// decimal strings: by length, then bytewise.
const READ_MARKER: &str = r"
    local old = redis.call('HGET', KEYS[1], ARGV[1])
    local new = ARGV[2]
    if old and (#old > #new or (#old == #new and old >= new)) then return 0 end
    redis.call('HSET', KEYS[1], ARGV[1], new)
    redis.call('PUBLISH', KEYS[2], ARGV[3])
    return 1
";

/// Runs commands until every sender is gone (the backend finished).
pub(super) async fn publisher(mut p: Publisher, mut cmds: mpsc::UnboundedReceiver<Cmd>) {
    // A command of another kind, met while gathering a batch.
    let mut held_back: Option<Cmd> = None;
    loop {
        let cmd = match held_back.take() {
            Some(cmd) => cmd,
            None => match cmds.recv().await {
                Some(cmd) => cmd,
                None => break,
            },
        };
        if !p.available().await {
            p.fail(cmd).await;
            p.queue.done(1);
            continue;
        }
        if !cmd.batches() {
            p.run(cmd).await;
            p.queue.done(1);
            continue;
        }
        let mut batch = vec![cmd];
        while batch.len() < MAX_PIPELINE {
            match cmds.try_recv() {
                Ok(next) if next.batches() => batch.push(next),
                Ok(other) => {
                    held_back = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let n = batch.len();
        p.pipeline(batch).await;
        p.queue.done(n);
    }
}

impl Publisher {
    /// Whether to try Redis: it is up, or it is time to ask whether it is back.
    async fn available(&mut self) -> bool {
        let Some(since) = self.down else {
            return true;
        };
        if Instant::now() < self.probe_at {
            return false;
        }
        self.probe_at = Instant::now() + PROBE_EVERY;
        let ping = redis::cmd("PING");
        let answered =
            tokio::time::timeout(REDIS_TIMEOUT, ping.query_async::<String>(&mut self.redis));
        if matches!(answered.await, Ok(Ok(_))) {
            info!(node = %self.node, down_for = ?since.elapsed(), "Redis answers again");
            METRICS.set_redis_up(true);
            self.down = None;
            return true;
        }
        false
    }

    fn lost(&mut self, error: &str) {
        METRICS.redis_errors.inc();
        METRICS.set_redis_up(false);
        // The connection may be new when Redis answers again, and Redis may have
        // restarted without the scripts.
        self.scripts_loaded = false;
        if self.down.is_none() {
            warn!(node = %self.node, %error, "Redis does not answer; failing cluster operations until it does");
            self.down = Some(Instant::now());
            self.probe_at = Instant::now() + PROBE_EVERY;
        }
    }

    /// Runs `query` against Redis, at most [`REDIS_TIMEOUT`]; a failure marks Redis down.
    async fn ask<T>(
        &mut self,
        query: impl AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    ) -> Option<T> {
        let mut redis = self.redis.clone();
        METRICS.redis_round_trips.inc();
        match tokio::time::timeout(REDIS_TIMEOUT, query(&mut redis)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(e)) => {
                self.lost(&e.to_string());
                None
            }
            Err(_) => {
                self.lost("no answer in time");
                None
            }
        }
    }

    async fn answer(&self, answer: Answer) {
        let _ = self.answers.send(answer).await;
    }

    async fn unavailable(&self, to: ConnId) {
        let lines = encode_line(ServerLine::Error(UNAVAILABLE.to_owned()));
        self.answer(Answer::Reply { to, lines }).await;
    }

    /// Tells `from` that its `/whois` cannot be answered while Redis is away.
    async fn whois_unavailable(&self, to: ConnId) {
        let lines = encode_line(ServerLine::Error(UNAVAILABLE.to_owned()));
        self.answer(Answer::Whois { to, lines }).await;
    }

    /// Answers `cmd` as failed, without asking Redis.
    async fn fail(&mut self, cmd: Cmd) {
        match cmd.asker() {
            Some(to) => match cmd {
                // Lines the broker made: only their order needed Redis.
                Cmd::Reply { to, lines } => self.answer(Answer::Reply { to, lines }).await,
                Cmd::History(ask) => {
                    let lines = encode_line(ServerLine::Error(UNAVAILABLE.to_owned()));
                    let to = ask.from;
                    self.answer(Answer::History { to, lines }).await;
                }
                Cmd::Whois { from, .. } => self.whois_unavailable(from).await,
                Cmd::Fetch { from: to, .. } => {
                    let reason = UNAVAILABLE.to_owned();
                    self.answer(Answer::FetchFailed { to, reason }).await;
                }
                _ => self.unavailable(to).await,
            },
            None => match cmd {
                Cmd::Attempt(attempt) => {
                    let auth = Auth::Refused(UNAVAILABLE.to_owned());
                    let reply = attempt.reply;
                    self.answer(Answer::Attempt { reply, auth }).await;
                }
                Cmd::Admit { conn, .. } => {
                    let reason = UNAVAILABLE.to_owned();
                    self.answer(Answer::Refused { conn, reason }).await;
                }
                Cmd::Withdraw { name, conn }
                | Cmd::Depart {
                    departure: Departure { name, conn, .. },
                    ..
                } => {
                    // Its lease runs out by itself.
                    self.forget(&name, conn);
                }
                Cmd::PutAccount(account) => {
                    warn!(name = %account.name, "Redis is down: an account change was not stored");
                }
                Cmd::Drain => self.answer(Answer::Drained).await,
                _ => {}
            },
        }
    }

    /// Publishes `lines` to this node's own channel for connection `to`: it arrives
    /// behind everything Redis handled before (see the subscriber's docs).
    async fn reply(&mut self, to: ConnId, lines: &[u8]) {
        self.reply_as('r', to, lines).await;
    }

    /// [`Publisher::reply`] as a record of `kind` (`r`, `h` for a history reply, `i`
    /// for the answer to a `/whois`).
    async fn reply_as(&mut self, kind: char, to: ConnId, lines: &[u8]) {
        if self.publish_record(kind, &to.to_string(), lines).await {
            return;
        }
        let lines = encode_line(ServerLine::Error(UNAVAILABLE.to_owned()));
        let answer = match kind {
            'h' => Answer::History { to, lines },
            'i' => Answer::Whois { to, lines },
            _ => Answer::Reply { to, lines },
        };
        self.answer(answer).await;
    }

    /// Publishes one record ([`node_record`]) on this node's own channel, where it
    /// arrives behind everything Redis handled before. `false`: Redis did not take it.
    async fn publish_record(&mut self, kind: char, target: &str, lines: &[u8]) -> bool {
        let node = self.node.clone();
        self.publish_record_to(&node, kind, target, lines).await
    }

    /// Publishes one record ([`node_record`]) on `node`'s channel.
    async fn publish_record_to(
        &mut self,
        node: &str,
        kind: char,
        target: &str,
        lines: &[u8],
    ) -> bool {
        let mut payload = BytesMut::new();
        node_record(&mut payload, kind, target, lines);
        self.publish(&node_channel(node), &payload).await
    }

    /// `PUBLISH` of `payload` on `channel`; `false`: Redis did not take it.
    async fn publish(&mut self, channel: &str, payload: &[u8]) -> bool {
        self.ask(async |redis| {
            redis::cmd("PUBLISH")
                .arg(channel)
                .arg(payload)
                .query_async::<i64>(redis)
                .await
        })
        .await
        .is_some()
    }

    fn forget(&self, name: &UserName, conn: ConnId) -> Option<Owner> {
        let folded = name.folded();
        let mut held = lock(&self.held);
        match held.get(&folded) {
            Some(owner) if owner.conn == conn => held.remove(&folded),
            _ => None,
        }
    }

    /// One command that is not batched.
    async fn run(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Attempt(attempt) => self.attempt(attempt).await,
            Cmd::Forgive { name, addr } => self.forgive(name, addr).await,
            Cmd::Admit {
                conn,
                name,
                account,
            } => self.admit(conn, name, account).await,
            Cmd::JoinQuietly { room, name } => self.join_quietly(room, &name).await,
            Cmd::AccountRoom { name, room, joined } => {
                self.account_room(&name, &room, joined).await;
            }
            Cmd::Echo { name, lines } => {
                let mut payload = format!("e {}/{}\n", self.node, name.folded()).into_bytes();
                payload.extend_from_slice(&lines);
                self.publish_tell(payload).await;
            }
            Cmd::KillElsewhere { name, lines } => {
                let mut payload = format!("k {}\n", name.folded()).into_bytes();
                payload.extend_from_slice(&lines);
                self.publish_tell(payload).await;
            }
            Cmd::Withdraw { conn, name } => self.withdraw(conn, name).await,
            Cmd::Depart {
                departure,
                last_here,
            } => {
                // Every node hears the farewell from Redis, this one too, behind the
                // room lines.
                let farewell = departure.farewell.as_ref().map(|lines| {
                    let mut payload = BytesMut::from(&b"\n"[..]);
                    payload.extend_from_slice(lines);
                    payload.freeze()
                });
                self.depart(departure, farewell).await;
                for room in last_here {
                    let _ = self.subscriber.send(SubCmd::Leave(room)).await;
                }
            }
            Cmd::JoinRoom { from, room, name } => self.join_room(from, room, name).await,
            Cmd::PartRoom {
                from,
                room,
                name,
                left,
                last_here,
            } => self.part_room(from, room, name, &left, last_here).await,
            Cmd::Reply { to, lines } => self.reply(to, &lines).await,
            Cmd::TellRoom {
                room,
                lines,
                except,
            } => self.tell_room(&room, &lines, except).await,
            Cmd::Fetch { from, room, line } => self.fetch(from, room, line).await,
            Cmd::Govern { room, changes } => self.govern(room, &changes).await,
            Cmd::LeaveQuietly {
                room,
                name,
                last_here,
            } => {
                self.quiet_membership("SREM", &room, &name).await;
                if last_here {
                    let _ = self.subscriber.send(SubCmd::Leave(room)).await;
                }
            }
            Cmd::Tell {
                from,
                name,
                lines,
                sent,
            } => self.tell(from, name, lines, sent).await,
            Cmd::ReadMarker {
                from,
                folded,
                conv,
                key,
                id,
            } => self.read_marker(from, &folded, conv, &key, id).await,
            Cmd::SetAway { folded, text } => {
                let payload = sessions::encode_away(&folded, text.as_ref());
                let stored = self
                    .ask(async |redis| {
                        let mut pipe = redis::pipe();
                        match &text {
                            Some(text) => pipe.hset(sessions::AWAY, &folded, text.as_str()),
                            None => pipe.hdel(sessions::AWAY, &folded),
                        };
                        pipe.ignore()
                            .publish(sessions::AWAY, &payload)
                            .ignore()
                            .query_async::<()>(redis)
                            .await
                    })
                    .await;
                if stored.is_none() {
                    warn!(%folded, "could not tell the cluster of an away message");
                }
            }
            Cmd::Whois { from, name } => self.whois(from, &name).await,
            Cmd::ReplyRemote { to, lines } => {
                if let Some((node, conn, _)) = sessions::parse_whois_target(&to.0) {
                    // If Redis drops it, the asker's node gives up on its own: nothing
                    // here can tell it otherwise.
                    self.publish_record_to(&node, 'i', &conn.to_string(), &lines)
                        .await;
                }
            }
            Cmd::Drain => self.drain().await,
            query @ (Cmd::Who { .. } | Cmd::Rooms { .. }) => {
                self.query(query).await;
            }
            Cmd::History(ask) => self.history(ask).await,
            Cmd::PutAccount(account) => {
                let stored = self
                    .ask(async |redis| mail::put_account(redis, &account).await)
                    .await;
                if stored.is_none() {
                    warn!(name = %account.name, "could not store an account in Redis");
                }
            }
            batched @ (Cmd::ToOthers { .. } | Cmd::Direct(_) | Cmd::Say { .. }) => {
                self.pipeline(vec![batched]).await;
            }
        }
    }

    /// Takes back the attempt counted for a password that matched.
    async fn forgive(&mut self, name: UserName, addr: std::net::IpAddr) {
        let [by_name, by_addr] = throttle_keys(&name, addr);
        self.ask(async |redis| {
            redis::pipe()
                .cmd("RPOP")
                .arg(&by_name)
                .ignore()
                .cmd("RPOP")
                .arg(&by_addr)
                .ignore()
                .query_async::<()>(redis)
                .await
        })
        .await;
    }

    /// Publishes the marker behind which everything sent to this node has come.
    async fn drain(&mut self) {
        // Behind everything Redis sent this node before it; if it cannot go out,
        // nothing more will come in either.
        if !self.publish_record('d', "0", b"").await {
            self.answer(Answer::Drained).await;
        }
    }

    /// `/who`, `/names` and `/rooms`, answered on this node's channel.
    async fn query(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Who { from, away } => {
                match self.ask(async |redis| queries::who(redis).await).await {
                    Some(names) => {
                        self.reply(from, &users_line(names, away.as_deref())).await;
                    }
                    None => self.unavailable(from).await,
                }
            }
            Cmd::Rooms { from, hidden, mine } => {
                match self
                    .ask(async |redis| {
                        let list = queries::all_rooms(redis).await?;
                        let secret = governance::secret(redis, &list).await?;
                        Ok((list, secret))
                    })
                    .await
                {
                    Some((mut list, secret)) => {
                        list.retain(|(room, _)| {
                            !hidden.contains(room)
                                && (mine.contains(room) || !secret.contains(room))
                        });
                        self.reply(from, &encode_line(ServerLine::Rooms(list)))
                            .await;
                    }
                    None => self.unavailable(from).await,
                }
            }
            _ => {}
        }
    }

    /// The throttle of one server, kept in Redis so that it spans the cluster.
    async fn attempt(&mut self, attempt: Attempt) {
        let Attempt {
            name,
            addr,
            phc,
            reply,
        } = attempt;
        let [by_name, by_addr] = throttle_keys(&name, addr);
        let now = wall_clock().0.unix_millis();
        let window = u64::try_from(THROTTLE_WINDOW.as_millis()).unwrap_or(u64::MAX);
        let wait: Option<u64> = self
            .ask(async |redis| {
                Script::new(THROTTLE)
                    .key(&by_name)
                    .key(&by_addr)
                    .arg(now)
                    .arg(window)
                    .arg(MAX_FAILURES_PER_NAME)
                    .arg(MAX_FAILURES_PER_ADDR)
                    .invoke_async(redis)
                    .await
            })
            .await;
        let auth = match wait {
            None => Auth::Refused(UNAVAILABLE.to_owned()),
            Some(0) => Auth::Verify(phc),
            Some(ms) => Auth::Refused(too_many_attempts(Duration::from_millis(ms))),
        };
        self.answer(Answer::Attempt { reply, auth }).await;
    }

    async fn admit(&mut self, conn: ConnId, name: UserName, account: bool) {
        let owner = Owner {
            node: self.node.clone(),
            conn,
            name: name.to_string(),
        };
        let folded = name.folded();
        let users = users_key(&self.node);
        let entry = super::user_entry(&folded, &name);
        let mail_key = mail::mail_key(&folded);
        let won = self
            .ask(async |redis| lease::acquire(redis, &folded, &owner).await)
            .await;
        let answer = match won {
            None => Answer::Refused {
                conn,
                reason: UNAVAILABLE.to_owned(),
            },
            Some(false) if account => return self.guest(conn, owner).await,
            Some(false) => Answer::Refused {
                conn,
                reason: format!("name already in use: {name}"),
            },
            Some(true) => {
                lock(&self.held).insert(folded.clone(), owner.clone());
                let sessions = lease::sessions_key(&folded);
                let (node, value) = (self.node.clone(), owner.value());
                let joined = match self.settings.presence {
                    Presence::All => {
                        let mut payload = BytesMut::from(format!("{}\n", self.node).as_bytes());
                        payload.extend_from_slice(&encode_line(ServerLine::Joined(name.clone())));
                        payload.freeze()
                    }
                    Presence::Rooms => bytes::Bytes::new(),
                };
                let channel = node_channel(&self.node);
                let admitted = self
                    .ask(async |redis| {
                        Script::new(ADMIT)
                            .key(&users)
                            .key(&mail_key)
                            .key(ALL)
                            .key(&channel)
                            .key(&sessions)
                            .arg(&entry)
                            .arg(&joined[..])
                            .arg(conn)
                            .arg(name.as_str())
                            .arg(&node)
                            .arg(&value)
                            .invoke_async::<i64>(redis)
                            .await
                    })
                    .await;
                if admitted.is_some() {
                    // The subscriber hands the broker the admission, behind every line
                    // published before it.
                    return;
                }
                self.forget(&name, conn);
                Answer::Refused {
                    conn,
                    reason: UNAVAILABLE.to_owned(),
                }
            }
        };
        self.answer(answer).await;
    }

    /// One more session of an account that is online on another node: it shares the
    /// account's lease (this node renews it too) and rooms; no `joined` for it.
    async fn guest(&mut self, conn: ConnId, owner: Owner) {
        let Ok(name) = UserName::parse(&owner.name) else {
            return;
        };
        let folded = name.folded();
        let guest = Script::new(GUEST);
        let mut script = guest.prepare_invoke();
        script
            .key(lease::sessions_key(&folded))
            .key(users_key(&self.node))
            .key(sessions::account_rooms_key(&folded))
            .key(governance::TELL_CHANNEL)
            .arg(&self.node)
            .arg(owner.value())
            .arg(super::user_entry(&folded, &name))
            .arg(&folded);
        let added = self
            .ask(async |redis| script.invoke_async::<Vec<String>>(redis).await)
            .await;
        let answer = match added {
            None => Answer::Refused {
                conn,
                reason: UNAVAILABLE.to_owned(),
            },
            Some(added) => match added.split_first() {
                Some((nodes, rooms)) => {
                    lock(&self.held).insert(folded, owner);
                    let nodes = nodes.parse().unwrap_or(2);
                    let rooms = rooms
                        .iter()
                        .filter_map(|r| RoomName::parse(r).ok())
                        .collect();
                    Answer::Admitted {
                        conn,
                        mail: Vec::new(),
                        shared: Some((nodes, rooms)),
                    }
                }
                None => Answer::Refused {
                    conn,
                    reason: format!("{name} left the chat meanwhile; log in again"),
                },
            },
        };
        self.answer(answer).await;
    }

    /// This node carries `room`'s lines for `name`, already a member: subscribed, and in
    /// the room's member set, telling nobody.
    async fn join_quietly(&mut self, room: RoomName, name: &UserName) {
        let (done_tx, done) = oneshot::channel();
        let subscribed = self
            .subscriber
            .send(SubCmd::Room(room.clone(), done_tx))
            .await
            .is_ok()
            && done.await.unwrap_or(false);
        if subscribed {
            self.quiet_membership("SADD", &room, name).await;
        }
    }

    /// Adds (`SADD`) or removes (`SREM`) this node's member entry of `name` in `room`,
    /// telling nobody. Removed, the room also leaves the account's rooms (a kick).
    async fn quiet_membership(&mut self, change: &str, room: &RoomName, name: &UserName) {
        let entry = rooms::member_entry(&self.node, name);
        let mut pipe = redis::pipe();
        pipe.cmd(change)
            .arg(rooms::members_key(room))
            .arg(&entry)
            .ignore();
        if change == "SREM" {
            pipe.srem(sessions::account_rooms_key(&name.folded()), room.as_str())
                .ignore();
        }
        self.ask(async |redis| pipe.query_async::<()>(redis).await)
            .await;
    }

    /// The account `name` joined or left `room`: kept in its rooms, and its sessions on
    /// other nodes told (`J` or `P` on `chat:tell`).
    async fn account_room(&mut self, name: &UserName, room: &RoomName, joined: bool) {
        let folded = name.folded();
        let (change, kind) = if joined { ("SADD", 'J') } else { ("SREM", 'P') };
        let payload = format!("{kind} {folded}\n{room}");
        self.ask(async |redis| {
            redis::pipe()
                .cmd(change)
                .arg(sessions::account_rooms_key(&folded))
                .arg(room.as_str())
                .ignore()
                .publish(governance::TELL_CHANNEL, &payload)
                .ignore()
                .query_async::<()>(redis)
                .await
        })
        .await;
    }

    /// Publishes a record on `chat:tell`, for every node.
    async fn publish_tell(&mut self, payload: Vec<u8>) -> bool {
        self.publish(governance::TELL_CHANNEL, &payload).await
    }

    /// An admission the broker did not complete: the name is free again, and what
    /// admitting announced elsewhere is taken back (nobody here heard it).
    async fn withdraw(&mut self, conn: ConnId, name: UserName) {
        let farewell = (self.settings.presence == Presence::All).then(|| {
            let mut payload = BytesMut::from(format!("{}\n", self.node).as_bytes());
            payload.extend_from_slice(&encode_line(ServerLine::Left(name.clone())));
            payload.freeze()
        });
        let departure = Departure {
            conn,
            name,
            rooms: Vec::new(),
            reason: None,
            farewell: None,
            queue: None,
        };
        self.depart(departure, farewell).await;
    }

    /// Runs [`DEPART`]: the name is free, and the room lines and the farewell (a
    /// `chat:all` payload) go out at that same instant.
    async fn depart(&mut self, departure: Departure, farewell: Option<bytes::Bytes>) {
        // `queue` is dropped when this returns: the connection closes once the name is free.
        let Departure {
            conn,
            name,
            rooms,
            reason,
            queue: _queue,
            ..
        } = departure;
        let owner = self.forget(&name, conn);
        let folded = name.folded();
        let depart = Script::new(DEPART);
        let mut script = depart.prepare_invoke();
        script
            .key(lease::key(&folded))
            .key(users_key(&self.node))
            .key(ALL)
            .key(lease::sessions_key(&folded))
            .key(sessions::account_rooms_key(&folded))
            .key(governance::TELL_CHANNEL)
            .arg(owner.as_ref().map(Owner::value).unwrap_or_default())
            .arg(super::user_entry(&folded, &name))
            .arg(farewell.as_deref().unwrap_or_default())
            .arg(rooms::member_entry(&self.node, &name))
            .arg(&self.node)
            .arg(&folded);
        for room in &rooms {
            let left = left_room_line(room, &name, reason.as_ref());
            script
                .key(rooms::members_key(room))
                .key(rooms::channel(room))
                .arg(&presence_payload(None, Mode::All, &left)[..]);
        }
        self.ask(async |redis| script.invoke_async::<i64>(redis).await)
            .await;
    }

    async fn join_room(&mut self, from: ConnId, room: RoomName, name: UserName) {
        let (done_tx, done) = oneshot::channel();
        let subscribed = self
            .subscriber
            .send(SubCmd::Room(room.clone(), done_tx))
            .await
            .is_ok()
            && done.await.unwrap_or(false);
        if !subscribed {
            return self.unavailable(from).await;
        }
        let joined = encode_line(ServerLine::JoinedRoom {
            room: room.clone(),
            name: name.clone(),
        });
        let payload = presence_payload(Some((&self.node, from)), Mode::Except, &joined);
        let entry = rooms::member_entry(&self.node, &name);
        let names = self
            .ask(async |redis| {
                membership(redis, "SADD", &room, &entry, &payload).await?;
                queries::members(redis, &room).await
            })
            .await;
        match names {
            // The joiner's `joined` and `names` go together, as from one server.
            Some(names) => {
                let mut lines = BytesMut::from(&joined[..]);
                lines.extend_from_slice(&encode_line(ServerLine::Names { room, names }));
                self.reply(from, &lines).await;
            }
            None => self.unavailable(from).await,
        }
    }

    /// What Redis knows of `room` for the broker to decide `line` on.
    async fn fetch(&mut self, from: ConnId, room: RoomName, line: Pending) {
        let found = self
            .ask(async |redis| {
                let state: Option<String> = redis::cmd("GET")
                    .arg(governance::state_key(&room))
                    .query_async(redis)
                    .await?;
                let members = queries::members(redis, &room).await?;
                Ok((state, members))
            })
            .await;
        let Some((state, members)) = found else {
            let reason = UNAVAILABLE.to_owned();
            return self.answer(Answer::FetchFailed { to: from, reason }).await;
        };
        let state = state.as_deref().map(governance::decode_state);
        let members = members
            .into_iter()
            .map(|name| (name.folded(), name))
            .collect();
        self.answer(Answer::Fetched {
            to: from,
            room,
            line,
            found: Some(Box::new((state, members))),
        })
        .await;
    }

    /// Keeps `room`'s state and publishes `changes` on its channel, for every node.
    /// The kept state is Redis's own with the changes applied, not this node's view of
    /// it, so changes made on two nodes at once both stay (a room's state is read,
    /// changed and written back within this node's turn; two nodes would have to
    /// change one room within the same round trip to overwrite each other).
    async fn govern(&mut self, room: RoomName, changes: &[Change]) {
        let payload = format!("g {}\n{}", self.node, governance::encode_changes(changes));
        // A new room's creator starts it afresh, whatever an emptied room left behind.
        let fresh = changes.iter().any(|change| {
            matches!(
                change,
                Change::Joined {
                    role: Some(chat_proto::Role::Op),
                    announced: false,
                    ..
                }
            )
        });
        let stored = self
            .ask(async |redis| {
                let kept: Option<String> = if fresh {
                    None
                } else {
                    redis::cmd("GET")
                        .arg(governance::state_key(&room))
                        .query_async(redis)
                        .await?
                };
                let mut state = kept
                    .as_deref()
                    .map_or_else(RoomState::new_room, governance::decode_state);
                for change in changes {
                    state.apply(change);
                }
                let state = governance::encode_state(&state);
                redis::pipe()
                    .cmd("SET")
                    .arg(governance::state_key(&room))
                    .arg(&state)
                    .ignore()
                    .cmd("PUBLISH")
                    .arg(rooms::channel(&room))
                    .arg(&payload)
                    .ignore()
                    .query_async::<()>(redis)
                    .await
            })
            .await;
        if stored.is_none() {
            warn!(%room, "could not carry a room's change to Redis");
        }
    }

    /// Asks the node holding `name` for its `/whois`; it answers `from` on this node's
    /// channel. `from` is told if nobody holds the name.
    async fn whois(&mut self, from: ConnId, name: &UserName) {
        let folded = name.folded();
        let target = sessions::whois_target(&self.node, from, &folded);
        match self.online_nodes(&folded).await.as_deref() {
            None => self.whois_unavailable(from).await,
            Some([]) => self.not_online('i', from, name).await,
            Some([node, ..]) => {
                let node = node.clone();
                self.publish_record_to(&node, 'w', &target, b"").await;
            }
        }
    }

    /// The nodes with sessions of the folded name; `None`: Redis did not answer.
    async fn online_nodes(&mut self, folded: &str) -> Option<Vec<String>> {
        let key = lease::sessions_key(folded);
        self.ask(async |redis| redis::cmd("HKEYS").arg(&key).query_async(redis).await)
            .await
    }

    /// Tells `from` that nobody holds `name`; `kind` is the record it goes as (`r`, or
    /// `i` in answer to a `/whois`).
    async fn not_online(&mut self, kind: char, from: ConnId, name: &UserName) {
        let line = encode_line(ServerLine::Error(format!("{name} is not online")));
        self.reply_as(kind, from, &line).await;
    }

    /// Moves a read marker forward in Redis (ids compare as decimal strings: Lua's
    /// numbers would round ids past 2^53) and tells every session of the account, on
    /// every node; or tells `from` where it is.
    async fn read_marker(
        &mut self,
        from: ConnId,
        folded: &str,
        conv: Conv,
        key: &str,
        id: Option<MessageId>,
    ) {
        let place = format!("chat:read:{folded}");
        let Some(id) = id else {
            let read = self
                .ask(async |redis| {
                    redis::cmd("HGET")
                        .arg(&place)
                        .arg(key)
                        .query_async::<Option<String>>(redis)
                        .await
                })
                .await;
            let Some(read) = read else {
                return self.unavailable(from).await;
            };
            let id = read.and_then(|id| id.parse().ok());
            return self
                .reply(from, &encode_line(ServerLine::Read { conv, id }))
                .await;
        };
        let line = encode_line(ServerLine::Read { conv, id: Some(id) });
        let mut payload = format!("t {folded}\n").into_bytes();
        payload.extend_from_slice(&line);
        let moved = Script::new(READ_MARKER);
        let mut script = moved.prepare_invoke();
        script
            .key(&place)
            .key(governance::TELL_CHANNEL)
            .arg(key)
            .arg(id.to_string())
            .arg(payload);
        if self
            .ask(async |redis| script.invoke_async::<i64>(redis).await)
            .await
            .is_none()
        {
            self.unavailable(from).await;
        }
    }

    /// `lines` for the user `name` wherever it is (`sent` then goes to `from`), or a
    /// kill (`sent` is `None`); `from` is told if nobody holds the name.
    async fn tell(&mut self, from: ConnId, name: UserName, lines: Line, sent: Option<Line>) {
        let folded = name.folded();
        let kind = if sent.is_some() { 't' } else { 'k' };
        let mut payload = format!("{kind} {folded}\n").into_bytes();
        payload.extend_from_slice(&lines);
        let told = match self.online_nodes(&folded).await {
            Some(nodes) if !nodes.is_empty() => self.publish_tell(payload).await.then_some(true),
            online => online.map(|_| false),
        };
        match (told, sent) {
            (None, _) => self.unavailable(from).await,
            (Some(false), _) => self.not_online('r', from, &name).await,
            (Some(true), Some(sent)) => self.reply(from, &sent).await,
            (Some(true), None) => {}
        }
    }

    async fn part_room(
        &mut self,
        from: Option<ConnId>,
        room: RoomName,
        name: UserName,
        left: &Line,
        last_here: bool,
    ) {
        let origin = from.map(|from| (self.node.as_str(), from));
        let payload = presence_payload(origin, Mode::Plus, left);
        let entry = rooms::member_entry(&self.node, &name);
        let parted = self
            .ask(async |redis| membership(redis, "SREM", &room, &entry, &payload).await)
            .await;
        if last_here {
            let _ = self.subscriber.send(SubCmd::Leave(room)).await;
        }
        if let (None, Some(from)) = (parted, from) {
            self.unavailable(from).await;
        }
    }

    /// Lines for every member of `room` on every node but `except`, published as
    /// presence is: best effort, nobody waits for an answer.
    async fn tell_room(&mut self, room: &RoomName, lines: &Line, except: Option<ConnId>) {
        let origin = except.map(|conn| (self.node.as_str(), conn));
        let mode = if except.is_some() {
            Mode::Except
        } else {
            Mode::All
        };
        let payload = presence_payload(origin, mode, lines);
        self.ask(async |redis| {
            redis::cmd("PUBLISH")
                .arg(rooms::channel(room))
                .arg(&payload[..])
                .query_async::<i64>(redis)
                .await
        })
        .await;
    }

    async fn history(&mut self, ask: HistoryAsk) {
        let HistoryAsk {
            from,
            conv,
            key,
            range,
            max_bytes,
        } = ask;
        if self.settings.keep == 0 {
            let line = encode_line(ServerLine::Error(HISTORY_OFF.to_owned()));
            return self.reply_as('h', from, &line).await;
        }
        let place = place(&key);
        let read = self
            .ask(async |redis| rooms::read(redis, &place, range).await)
            .await;
        match read {
            Some((messages, truncated)) => {
                let latest = matches!(range, HistoryRange::Latest(_) | HistoryRange::Before(..));
                let oldest = self.settings.oldest();
                let lines =
                    queries::history_reply(conv, &messages, truncated, latest, oldest, max_bytes);
                self.reply_as('h', from, &lines).await;
            }
            None => {
                let lines = encode_line(ServerLine::Error(UNAVAILABLE.to_owned()));
                self.answer(Answer::History { to: from, lines }).await;
            }
        }
    }

    /// Runs a batch of messages as one pipeline, in order; each sender whose message did
    /// not go out is told.
    async fn pipeline(&mut self, batch: Vec<Cmd>) {
        let mut pipe = redis::pipe();
        // The scripts first, in the same pipeline, on a fresh connection: a Redis that
        // restarted (and lost them) broke the connection, so it has them again before the
        // commands that name them by hash, and nothing is sent twice.
        if !self.scripts_loaded {
            for script in [DIRECT, rooms::PUBLISH] {
                pipe.cmd("SCRIPT").arg("LOAD").arg(script).ignore();
            }
        }
        let (time, now_micros) = wall_clock();
        let young = self.settings.young(now_micros);
        // Which answer belongs to which command: runs of direct messages share one.
        let mut slots: Vec<Slot> = Vec::with_capacity(batch.len());
        let mut run: Vec<&Direct> = Vec::new();
        for cmd in &batch {
            if let Cmd::Direct(direct) = cmd {
                run.push(direct);
                slots.push(Slot::Direct);
                continue;
            }
            self.flush_directs(&mut pipe, &mut run, time, now_micros, young);
            match cmd {
                Cmd::ToOthers { lines, sender, .. } => {
                    let head = format!("{} {sender}\n", self.node);
                    let mut payload = BytesMut::from(head.as_bytes());
                    payload.extend_from_slice(lines);
                    pipe.cmd("PUBLISH").arg(ALL).arg(&payload[..]);
                }
                Cmd::Say {
                    from,
                    room,
                    sender,
                    text,
                    notice,
                } => {
                    pipe.add_command(rooms::append_cmd(&rooms::Append {
                        place: &rooms::room_place(room),
                        from: sender.as_str(),
                        text: text.as_str(),
                        time,
                        now_micros,
                        keep: self.settings.keep,
                        young,
                        origin: Some((&self.node, *from)),
                        notice: *notice,
                    }));
                }
                _ => {}
            }
            slots.push(Slot::Own);
        }
        self.flush_directs(&mut pipe, &mut run, time, now_micros, young);
        let answers: Option<Vec<redis::Value>> =
            self.ask(async |redis| pipe.query_async(redis).await).await;
        // A failure marked Redis down, and with it the scripts as unloaded.
        self.scripts_loaded |= answers.is_some();
        self.report(batch, &slots, answers).await;
    }

    /// Adds the run of direct messages in `run` to `pipe` as one script call.
    fn flush_directs(
        &self,
        pipe: &mut Pipeline,
        run: &mut Vec<&Direct>,
        time: chat_proto::Timestamp,
        now_micros: u64,
        young: u64,
    ) {
        if run.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("EVALSHA");
        static DIRECT_HASH: LazyLock<String> =
            LazyLock::new(|| Script::new(DIRECT).get_hash().to_owned());
        cmd.arg(DIRECT_HASH.as_str());
        let records: Vec<Record<'_>> = run.drain(..).flat_map(direct_records).collect();
        let accounts = records.iter().filter(|r| r.registered).count();
        cmd.arg(records.len() + 3 * accounts);
        for record in &records {
            cmd.arg(lease::sessions_key(&record.folded));
            if record.registered {
                // Folding costs more than anything else here: only for accounts.
                let place = rooms::pair_place(&record.direct.sender, record.to);
                cmd.arg(mail::mail_key(&record.folded))
                    .arg(format!("{place}:seq"))
                    .arg(format!("{place}:log"));
            }
        }
        cmd.arg(time.unix_millis())
            .arg(now_micros)
            .arg(self.settings.keep)
            .arg(young)
            .arg(MAX_OFFLINE_PER_RECIPIENT);
        for record in &records {
            let direct = record.direct;
            let flags = [
                if record.keep_only { b'k' } else { b'd' },
                if direct.covered { b'1' } else { b'0' },
                if record.registered { b'1' } else { b'0' },
                if record.pair { b'1' } else { b'0' },
            ];
            let mut delivery = BytesMut::new();
            node_record(&mut delivery, 'u', &record.folded, &direct.line);
            cmd.arg(&flags[..]).arg(&delivery[..]);
            if record.registered {
                cmd.arg(direct.sender.as_str()).arg(direct.text.as_str());
            }
        }
        pipe.add_command(cmd);
    }

    /// Tells each sender what became of its messages.
    async fn report(
        &mut self,
        batch: Vec<Cmd>,
        slots: &[Slot],
        answers: Option<Vec<redis::Value>>,
    ) {
        let Some(answers) = answers else {
            for cmd in batch {
                if let Some(to) = cmd.asker() {
                    self.unavailable(to).await;
                }
            }
            return;
        };
        let mut answers = answers.into_iter();
        let mut statuses: std::vec::IntoIter<i64> = Vec::new().into_iter();
        let mut in_run = false;
        for (cmd, slot) in batch.into_iter().zip(slots) {
            match slot {
                Slot::Own => {
                    answers.next();
                    in_run = false;
                }
                Slot::Direct if !in_run => {
                    in_run = true;
                    statuses = match answers.next() {
                        Some(redis::Value::Array(values)) => values
                            .into_iter()
                            .map(|v| match v {
                                redis::Value::Int(i) => i,
                                _ => 0,
                            })
                            .collect::<Vec<_>>()
                            .into_iter(),
                        _ => Vec::new().into_iter(),
                    };
                }
                Slot::Direct => {}
            }
            if let Cmd::Direct(direct) = cmd {
                self.report_direct(direct, &mut statuses).await;
            }
        }
    }

    async fn report_direct(&mut self, direct: Direct, statuses: &mut impl Iterator<Item = i64>) {
        let (mut stored, mut full, mut unknown) = (Vec::new(), Vec::new(), Vec::new());
        for _ in &direct.kept {
            statuses.next();
        }
        for to in direct.away {
            match statuses.next() {
                Some(1) => {}
                Some(2) => stored.push(to.name),
                Some(3) => full.push(to.name),
                _ => unknown.push(to.name),
            }
        }
        if !(stored.is_empty() && full.is_empty() && unknown.is_empty()) {
            let to = direct.from;
            self.answer(Answer::Direct {
                to,
                stored,
                full,
                unknown,
            })
            .await;
        }
    }
}

/// Adds (`SADD`) or removes (`SREM`) `name` of this node to or from `room`'s members,
/// then publishes `payload` (its presence line) on the room's channel.
async fn membership(
    redis: &mut ConnectionManager,
    change: &str,
    room: &RoomName,
    entry: &str,
    payload: &[u8],
) -> redis::RedisResult<()> {
    redis::cmd(change)
        .arg(rooms::members_key(room))
        .arg(entry)
        .query_async::<i64>(redis)
        .await?;
    redis::cmd("PUBLISH")
        .arg(rooms::channel(room))
        .arg(payload)
        .query_async::<i64>(redis)
        .await?;
    Ok(())
}

/// Where each command's answer is: its own, or its share of a run's script call.
enum Slot {
    Own,
    Direct,
}

/// One recipient of a direct message, as the [`DIRECT`] script takes it.
struct Record<'a> {
    direct: &'a Direct,
    to: &'a UserName,
    folded: std::borrow::Cow<'a, str>,
    /// An account on the sender's node: only its `@` history is written.
    keep_only: bool,
    registered: bool,
    pair: bool,
}

/// The records of `direct`: its recipients here (kept), then elsewhere, in order.
fn direct_records(direct: &Direct) -> Vec<Record<'_>> {
    let kept = direct.kept.iter().map(|to| Record {
        direct,
        to,
        folded: to.folded().into(),
        keep_only: true,
        registered: true,
        pair: true,
    });
    let away = direct.away.iter().map(|to| Record {
        direct,
        to: &to.name,
        folded: to.folded.as_str().into(),
        keep_only: false,
        registered: to.registered,
        pair: to.pair,
    });
    kept.chain(away).collect()
}

/// Where a conversation lives in Redis.
fn place(key: &ConvKey) -> String {
    match key {
        ConvKey::Room(room) => rooms::room_place(room),
        ConvKey::Pair(a, b) => format!("chat:pair:{a}|{b}"),
    }
}
