//! The link between a node's broker and Redis. The broker never waits on Redis. It hands
//! [`ClusterCmd`]s to the publisher task through a bounded queue, and hears back through
//! its own event queue ([`ClusterEvent`]). If the queue is full or Redis is gone, the user
//! who asked gets `error: cluster unavailable`. Three tasks:
//!
//! - the publisher runs commands in order, so one sender's lines keep their order; it ends
//!   after the broker, sending the node's last `left` lines;
//! - the subscriber reads `chat:all` and this node's channel, and reconnects (with
//!   backoff) when Redis goes away;
//! - the renewer beats the node's heartbeat, extends its name leases, takes back any that
//!   expired during an outage, and reports the ones now held elsewhere, whose users are
//!   then disconnected. It also sweeps: the users of a node whose heartbeat stopped (a
//!   node killed with SIGKILL) are announced `left` on every node, by whichever survivor
//!   takes that node's cleanup lock first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};
use chat_proto::{
    Conv, FromLine, HistoryLine, HistoryRange, MessageText, RoomName, Scope, ServerLine, UserName,
    encode_line,
};
use futures::StreamExt;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::lease::{self, Owner};
use super::{mail, rooms};
use crate::accounts::Account;
use crate::broker::BrokerEvent;
use crate::config::Presence;
use crate::history::Message;
use crate::history::{Retention, wall_clock};
use crate::roster::ConnId;

/// Commands waiting for the publisher; past this the broker answers "unavailable".
const CMD_QUEUE_LEN: usize = 4096;
/// The channel every node reads: `*` messages and presence.
pub const ALL: &str = "chat:all";
/// What a user is told when something needs Redis and Redis is not there.
pub const UNAVAILABLE: &str = "cluster unavailable (Redis unreachable); try again";

/// The channel node `node` reads: direct lines for its users.
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
fn user_entry(folded: &str, name: &UserName) -> String {
    format!("{folded}/{name}")
}

/// What the broker asks of the cluster.
#[derive(Debug)]
pub enum ClusterCmd {
    /// Lines for every other node's users (`*` messages, `joined`, `left`); `from`, if
    /// set, is told if they could not go out.
    All {
        /// Who sent it, for an error.
        from: Option<ConnId>,
        /// The encoded lines.
        lines: Bytes,
    },
    /// A direct line for a user who is not on this node.
    Direct {
        /// The sender, told if nobody has that name (or that it was stored).
        from: ConnId,
        /// The recipient (as registered, if it is an account).
        to: UserName,
        /// The encoded line.
        line: Bytes,
        /// For a registered recipient: the message to keep if they are offline.
        mail: Option<Message>,
    },
    /// An account was registered or its password changed: store it, tell every node.
    Account(Account),
    /// `/who` across the cluster.
    Who {
        /// Who asked.
        from: ConnId,
    },
    /// A local user joined a room.
    JoinRoom {
        /// The connection, answered with `joined` and `names`.
        from: ConnId,
        /// The room.
        room: RoomName,
        /// Its name.
        name: UserName,
    },
    /// A local user left a room (by `/part`, or by leaving the chat).
    PartRoom {
        /// The connection, answered with `left`, if it parted by `/part`.
        from: Option<ConnId>,
        /// The room.
        room: RoomName,
        /// Its name.
        name: UserName,
        /// Whether no local member is left, so the node stops listening to the room.
        last_here: bool,
    },
    /// A room message from a local member.
    RoomSay {
        /// The connection, told if it could not go out.
        from: ConnId,
        /// The room.
        room: RoomName,
        /// The sender.
        sender: UserName,
        /// The text.
        text: MessageText,
    },
    /// `/names <#room>` across the cluster.
    Names {
        /// Who asked.
        from: ConnId,
        /// The room.
        room: RoomName,
    },
    /// `/rooms` across the cluster.
    Rooms {
        /// Who asked.
        from: ConnId,
    },
    /// `/history <conv> ...` from the conversation's stream.
    History {
        /// Who asked.
        from: ConnId,
        /// The conversation, as the asker named it.
        conv: Conv,
        /// Where it lives ([`rooms::room_place`] or [`rooms::pair_place`]).
        place: String,
        /// Which messages.
        range: HistoryRange,
    },
    /// A direct message between two accounts, for their `@` history.
    KeepDirect {
        /// Where their conversation lives ([`rooms::pair_place`]).
        place: String,
        /// The sender.
        sender: UserName,
        /// The text.
        text: MessageText,
    },
}

/// What the cluster tells the broker.
#[derive(Debug)]
pub enum ClusterEvent {
    /// Lines from another node: for one local user (by folded name), or for everyone.
    Remote {
        /// The folded name, or `None` for every local user.
        to: Option<String>,
        /// The encoded lines.
        lines: Bytes,
    },
    /// An answer for one local connection (`users`, or an `error:`).
    Reply {
        /// The connection.
        to: ConnId,
        /// The encoded line.
        line: Bytes,
    },
    /// Lines for a room's members on this node, but the one with this folded name (who
    /// sent it, or was answered directly).
    RoomLines {
        /// The room.
        room: RoomName,
        /// The folded name left out.
        except: Option<String>,
        /// The encoded lines.
        lines: Bytes,
    },
    /// An account registered or changed on some node.
    Account(Account),
    /// These folded names are now held by another node: disconnect their users.
    Lost(Vec<String>),
}

/// What the broker holds: where to send commands, and this node's name.
#[derive(Debug, Clone)]
pub struct ClusterLink {
    /// This node.
    pub node: String,
    cmd_tx: mpsc::Sender<ClusterCmd>,
}

impl ClusterLink {
    /// Queues `cmd` for the publisher; `false` if the queue is full or closed.
    pub fn send(&self, cmd: ClusterCmd) -> bool {
        self.cmd_tx.try_send(cmd).is_ok()
    }
}

/// What connections hold: the leases of this node's names.
#[derive(Debug, Clone)]
pub struct Leases {
    node: String,
    redis: ConnectionManager,
    /// Folded name → owner, for the renewer.
    held: Arc<Mutex<HashMap<String, Owner>>>,
}

impl Leases {
    /// Takes `name` for connection `conn`. `Ok(false)`: someone holds it.
    pub async fn acquire(&self, name: &UserName, conn: ConnId) -> redis::RedisResult<bool> {
        let owner = Owner {
            node: self.node.clone(),
            conn,
            name: name.to_string(),
        };
        let folded = name.folded();
        let mut redis = self.redis.clone();
        let won = lease::acquire(&mut redis, &folded, &owner).await?;
        if won {
            redis::cmd("SADD")
                .arg(users_key(&self.node))
                .arg(user_entry(&folded, name))
                .query_async::<i64>(&mut redis)
                .await?;
            self.held().insert(folded, owner);
        }
        Ok(won)
    }

    /// Gives `name` back, if connection `conn` holds it.
    pub async fn release(&self, name: &UserName, conn: ConnId) {
        let folded = name.folded();
        let owner = {
            let mut held = self.held();
            match held.get(&folded) {
                Some(owner) if owner.conn == conn => held.remove(&folded),
                _ => None,
            }
        };
        if let Some(owner) = owner {
            let mut redis = self.redis.clone();
            let released = async {
                lease::release(&mut redis, &folded, &owner).await?;
                redis::cmd("SREM")
                    .arg(users_key(&self.node))
                    .arg(user_entry(&folded, name))
                    .query_async::<i64>(&mut redis)
                    .await
            };
            if let Err(e) = released.await {
                // It runs out by itself within the lease time.
                warn!(name = %name, error = %e, "could not release a name lease");
            }
        }
    }

    /// Takes the mail kept for `name` (whose lease this node now holds).
    pub async fn take_mail(&self, name: &UserName) -> redis::RedisResult<Vec<Message>> {
        let mut redis = self.redis.clone();
        mail::take(&mut redis, name).await
    }

    fn held(&self) -> MutexGuard<'_, HashMap<String, Owner>> {
        // A poisoned map is still a map: the data is plain.
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The link's tasks and the handles to them.
pub struct Started {
    /// For the broker.
    pub link: ClusterLink,
    /// For the connections.
    pub leases: Leases,
    /// The publisher, subscriber and renewer.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Subscribes `node` to its channels on Redis at `url`, then starts the link's tasks. The
/// subscription is in place before this returns, so the node misses nothing published
/// once it accepts clients. The publisher ends when every [`ClusterLink`] is dropped; the
/// others when `token` is cancelled.
pub async fn start(
    node: String,
    url: String,
    redis: ConnectionManager,
    broker_tx: mpsc::Sender<BrokerEvent>,
    token: CancellationToken,
    presence: Presence,
) -> anyhow::Result<Started> {
    let first = tokio::time::timeout(super::CONNECT_TIMEOUT, subscribe(&url, &node))
        .await
        .map_err(|_| anyhow::anyhow!("subscribing on Redis at {url} timed out"))?
        .map_err(|e| anyhow::anyhow!("subscribing on Redis at {url}: {e}"))?;
    let (cmd_tx, cmd_rx) = mpsc::channel(CMD_QUEUE_LEN);
    let (sub_tx, sub_rx) = mpsc::channel(CMD_QUEUE_LEN);
    let leases = Leases {
        node: node.clone(),
        redis: redis.clone(),
        held: Arc::default(),
    };
    // The broker holds the publisher's queue, so the publisher must not hold the broker's
    // open (a cycle neither could leave): it answers through a weak sender.
    let tasks = vec![
        tokio::spawn(publisher(
            redis,
            cmd_rx,
            sub_tx,
            broker_tx.downgrade(),
            node.clone(),
        )),
        tokio::spawn(subscriber(
            first,
            url,
            node.clone(),
            broker_tx.clone(),
            sub_rx,
            token.clone(),
        )),
        tokio::spawn(renewer(leases.clone(), broker_tx, token, presence)),
    ];
    Ok(Started {
        link: ClusterLink { node, cmd_tx },
        leases,
        tasks,
    })
}

/// A pub/sub connection subscribed to `chat:all` and `node`'s channel.
async fn subscribe(url: &str, node: &str) -> redis::RedisResult<redis::aio::PubSub> {
    let client = redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(ALL).await?;
    pubsub.subscribe(node_channel(node)).await?;
    pubsub.subscribe(mail::ACCOUNTS_CHANNEL).await?;
    Ok(pubsub)
}

async fn publisher(
    mut redis: ConnectionManager,
    mut cmds: mpsc::Receiver<ClusterCmd>,
    subscriber: mpsc::Sender<SubCmd>,
    broker_tx: mpsc::WeakSender<BrokerEvent>,
    node: String,
) {
    let reply = |to: ConnId, line: ServerLine| {
        let event = BrokerEvent::Cluster(ClusterEvent::Reply {
            to,
            line: encode_line(line),
        });
        let tx = broker_tx.upgrade();
        async move {
            if let Some(tx) = tx {
                let _ = tx.send(event).await;
            }
        }
    };
    let unavailable = || ServerLine::Error(UNAVAILABLE.to_owned());
    // A command of another kind, met while gathering a batch.
    let mut held_back: Option<ClusterCmd> = None;
    loop {
        let cmd = match held_back.take() {
            Some(cmd) => cmd,
            None => match cmds.recv().await {
                Some(cmd) => cmd,
                None => break,
            },
        };
        match cmd {
            fast @ (ClusterCmd::All { .. }
            | ClusterCmd::Direct { .. }
            | ClusterCmd::RoomSay { .. }
            | ClusterCmd::KeepDirect { .. }) => {
                let mut batch = vec![fast];
                while batch.len() < MAX_PIPELINE {
                    match cmds.try_recv() {
                        Ok(
                            next @ (ClusterCmd::All { .. }
                            | ClusterCmd::Direct { .. }
                            | ClusterCmd::RoomSay { .. }
                            | ClusterCmd::KeepDirect { .. }),
                        ) => batch.push(next),
                        Ok(other) => {
                            held_back = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                pipeline(&mut redis, batch, &node, &broker_tx).await;
            }
            ClusterCmd::Account(account) => {
                if let Err(e) = mail::put_account(&mut redis, &account).await {
                    warn!(name = %account.name, error = %e, "could not store an account in Redis");
                }
            }
            ClusterCmd::Who { from } => match who(&mut redis).await {
                Ok(names) => reply(from, ServerLine::Users(names)).await,
                Err(_) => reply(from, unavailable()).await,
            },
            ClusterCmd::JoinRoom { from, room, name } => {
                let (done_tx, done) = oneshot::channel();
                let subscribed = subscriber
                    .send(SubCmd::Room(room.clone(), done_tx))
                    .await
                    .is_ok()
                    && done.await.unwrap_or(false);
                let joined = encode_line(ServerLine::JoinedRoom {
                    room: room.clone(),
                    name: name.clone(),
                });
                let result = async {
                    if !subscribed {
                        return Err(redis::RedisError::from((
                            redis::ErrorKind::Io,
                            "not subscribed",
                        )));
                    }
                    redis::cmd("SADD")
                        .arg(members_key(&room))
                        .arg(member_entry(&node, &name))
                        .query_async::<i64>(&mut redis)
                        .await?;
                    publish_presence(&mut redis, &room, Some(&name), &joined).await?;
                    members(&mut redis, &room).await
                }
                .await;
                let line = match result {
                    // The joiner hears its `joined`, then the names, in that order.
                    Ok(names) => {
                        let mut lines = BytesMut::from(&joined[..]);
                        lines.extend_from_slice(&encode_line(ServerLine::Names { room, names }));
                        lines.freeze()
                    }
                    Err(_) => encode_line(unavailable()),
                };
                send_reply(&broker_tx, from, line).await;
            }
            ClusterCmd::PartRoom {
                from,
                room,
                name,
                last_here,
            } => {
                let left = encode_line(ServerLine::LeftRoom {
                    room: room.clone(),
                    name: name.clone(),
                });
                let result = async {
                    redis::cmd("SREM")
                        .arg(members_key(&room))
                        .arg(member_entry(&node, &name))
                        .query_async::<i64>(&mut redis)
                        .await?;
                    publish_presence(&mut redis, &room, Some(&name), &left).await
                }
                .await;
                if last_here {
                    let _ = subscriber.send(SubCmd::Leave(room)).await;
                }
                if let Some(from) = from {
                    let line = if result.is_ok() {
                        left
                    } else {
                        encode_line(unavailable())
                    };
                    send_reply(&broker_tx, from, line).await;
                }
            }
            ClusterCmd::Names { from, room } => match members(&mut redis, &room).await {
                Ok(names) if names.is_empty() => {
                    reply(from, ServerLine::Error(format!("no such room: {room}"))).await;
                }
                Ok(names) => reply(from, ServerLine::Names { room, names }).await,
                Err(_) => reply(from, unavailable()).await,
            },
            ClusterCmd::Rooms { from } => match all_rooms(&mut redis).await {
                Ok(list) => reply(from, ServerLine::Rooms(list)).await,
                Err(_) => reply(from, unavailable()).await,
            },
            ClusterCmd::History {
                from,
                conv,
                place,
                range,
            } => {
                let line = match rooms::read(&mut redis, &place, range).await {
                    Ok((messages, truncated)) => history_reply(conv, &messages, truncated),
                    Err(_) => encode_line(unavailable()),
                };
                send_reply(&broker_tx, from, line).await;
            }
        }
    }
}

async fn send_reply(broker_tx: &mpsc::WeakSender<BrokerEvent>, to: ConnId, line: Bytes) {
    if let Some(tx) = broker_tx.upgrade() {
        let _ = tx
            .send(BrokerEvent::Cluster(ClusterEvent::Reply { to, line }))
            .await;
    }
}

/// The set of a room's members across the cluster: `node/name`.
fn members_key(room: &RoomName) -> String {
    format!("chat:room:{room}:members")
}

fn member_entry(node: &str, name: &UserName) -> String {
    format!("{node}/{name}")
}

/// Presence on a room's channel: `p <folded name left out>\n<lines>`.
async fn publish_presence(
    redis: &mut ConnectionManager,
    room: &RoomName,
    except: Option<&UserName>,
    lines: &[u8],
) -> redis::RedisResult<()> {
    let mut payload = BytesMut::from(
        format!("p {}\n", except.map(UserName::folded).unwrap_or_default()).as_bytes(),
    );
    payload.extend_from_slice(lines);
    redis::cmd("PUBLISH")
        .arg(rooms::channel(room))
        .arg(&payload[..])
        .query_async::<i64>(redis)
        .await?;
    Ok(())
}

/// A room's members across the cluster, sorted bytewise.
async fn members(
    redis: &mut ConnectionManager,
    room: &RoomName,
) -> redis::RedisResult<Vec<UserName>> {
    let entries: Vec<String> = redis::cmd("SMEMBERS")
        .arg(members_key(room))
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
async fn all_rooms(redis: &mut ConnectionManager) -> redis::RedisResult<Vec<(RoomName, usize)>> {
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
        let count: usize = redis::cmd("SCARD").arg(&key).query_async(redis).await?;
        if count > 0 {
            rooms.push((room, count));
        }
    }
    rooms.sort();
    Ok(rooms)
}

/// `history` lines, oldest first, then `history-end`.
fn history_reply(conv: Conv, messages: &[rooms::RoomMessage], truncated: bool) -> Bytes {
    let mut lines = BytesMut::new();
    for message in messages {
        let (Ok(sender), Ok(text)) = (
            UserName::parse(&message.from),
            MessageText::parse(&message.text),
        ) else {
            continue;
        };
        lines.extend_from_slice(&encode_line(HistoryLine {
            conv: &conv,
            id: message.id,
            time: message.time,
            sender: &sender,
            text: &text,
        }));
    }
    lines.extend_from_slice(&encode_line(ServerLine::HistoryEnd { conv, truncated }));
    lines.freeze()
}

/// A DM goes to the node holding the recipient's lease, or nowhere: checked and
/// published in one step, so a name cannot change hands in between. For a registered
/// recipient nobody holds, the message is kept instead (2), unless their mailbox is full
/// (3); nobody by that name is 0.
const DIRECT: &str = r"
    local owner = redis.call('GET', KEYS[1])
    if owner then
        local node = string.match(owner, '^([^/]*)/')
        redis.call('PUBLISH', 'chat:node:' .. node, ARGV[1])
        return 1
    end
    if ARGV[2] == '' then return 0 end
    if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[3]) then return 3 end
    redis.call('RPUSH', KEYS[2], ARGV[2])
    return 2
";

/// Most commands sent to Redis as one pipeline.
const MAX_PIPELINE: usize = 512;

/// Messages ready together go to Redis as one pipeline: one round trip for the batch,
/// in order (one connection, answered in order), so one sender's lines keep their order.
async fn pipeline(
    redis: &mut ConnectionManager,
    batch: Vec<ClusterCmd>,
    node: &str,
    broker_tx: &mpsc::WeakSender<BrokerEvent>,
) {
    let mut pipe = redis::pipe();
    // The scripts first, in the same pipeline: a Redis that restarted (and lost them) has
    // them again before the commands that name them by hash, and nothing is sent twice.
    // Two loads per batch cost far less than sending a script with every message.
    for script in [DIRECT, rooms::PUBLISH] {
        pipe.cmd("SCRIPT").arg("LOAD").arg(script).ignore();
    }
    for cmd in &batch {
        match cmd {
            ClusterCmd::All { lines, .. } => {
                let mut payload = BytesMut::from(format!("{node}\n").as_bytes());
                payload.extend_from_slice(lines);
                pipe.cmd("PUBLISH").arg(ALL).arg(&payload[..]);
            }
            ClusterCmd::Direct { to, line, mail, .. } => {
                let folded = to.folded();
                let mut payload = BytesMut::from(format!("{folded}\n").as_bytes());
                payload.extend_from_slice(line);
                let kept = mail.as_ref().map(mail::encode_mail).unwrap_or_default();
                pipe.cmd("EVALSHA")
                    .arg(Script::new(DIRECT).get_hash())
                    .arg(2)
                    .arg(lease::key(&folded))
                    .arg(mail::mail_key(&folded))
                    .arg(&payload[..])
                    .arg(kept)
                    .arg(mail::MAX_MAIL);
            }
            ClusterCmd::RoomSay {
                room, sender, text, ..
            } => {
                let (time, micros) = wall_clock();
                let keep = Retention::default().per_conv;
                pipe.add_command(rooms::append_cmd(
                    &rooms::room_place(room),
                    sender.as_str(),
                    text.as_str(),
                    time,
                    micros,
                    keep,
                ));
            }
            ClusterCmd::KeepDirect {
                place,
                sender,
                text,
            } => {
                let (time, micros) = wall_clock();
                let keep = Retention::default().per_conv;
                pipe.add_command(rooms::append_cmd(
                    place,
                    sender.as_str(),
                    text.as_str(),
                    time,
                    micros,
                    keep,
                ));
            }
            _ => {}
        }
    }
    let answers: redis::RedisResult<Vec<redis::Value>> = pipe.query_async(redis).await;
    let answers = match answers {
        Ok(answers) => answers,
        Err(e) => {
            warn!(error = %e, messages = batch.len(), "the cluster did not take a batch");
            Vec::new()
        }
    };
    let unavailable = || encode_line(ServerLine::Error(UNAVAILABLE.to_owned()));
    for (i, cmd) in batch.into_iter().enumerate() {
        let answer = answers.get(i);
        let (from, line) = match cmd {
            ClusterCmd::All {
                from: Some(from), ..
            }
            | ClusterCmd::RoomSay { from, .. }
                if answer.is_none() =>
            {
                (from, unavailable())
            }
            ClusterCmd::Direct { from, to, .. } => match answer {
                None => (from, unavailable()),
                Some(redis::Value::Int(1)) => continue,
                Some(redis::Value::Int(2)) => (from, encode_line(ServerLine::Stored(to))),
                Some(redis::Value::Int(3)) => {
                    let reason =
                        format!("offline mailbox full ({} messages): {to}", mail::MAX_MAIL);
                    (from, encode_line(ServerLine::Error(reason)))
                }
                Some(_) => {
                    let reason = format!("no such user: {to}");
                    (from, encode_line(ServerLine::Error(reason)))
                }
            },
            _ => continue,
        };
        send_reply(broker_tx, from, line).await;
    }
}

/// Every key matching `pattern`, by `SCAN` (never `KEYS`, which would block Redis).
async fn scan(redis: &mut ConnectionManager, pattern: &str) -> redis::RedisResult<Vec<String>> {
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
async fn who(redis: &mut ConnectionManager) -> redis::RedisResult<Vec<UserName>> {
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

/// What the publisher asks of the subscriber.
#[derive(Debug)]
enum SubCmd {
    /// Subscribe to a room's channel (a local user joined it); answers once subscribed, so
    /// the node hears everything published after.
    Room(RoomName, oneshot::Sender<bool>),
    /// Unsubscribe from a room's channel (its last local member left).
    Leave(RoomName),
}

/// Reads `chat:all`, this node's channel and the channels of rooms with a local member,
/// reconnecting with backoff (and subscribing to everything again) while Redis is away.
/// Messages go to the broker, waiting for room in its queue: a node that cannot keep up
/// falls behind on Redis's side, and Redis's own output-buffer limit cuts it off.
async fn subscriber(
    first: redis::aio::PubSub,
    url: String,
    node: String,
    broker_tx: mpsc::Sender<BrokerEvent>,
    mut cmds: mpsc::Receiver<SubCmd>,
    token: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut ready = Some(first);
    let mut rooms: HashSet<RoomName> = HashSet::new();
    loop {
        let session = async {
            let pubsub = match ready.take() {
                Some(pubsub) => pubsub,
                None => subscribe(&url, &node).await?,
            };
            let (mut sink, mut stream) = pubsub.split();
            for room in &rooms {
                sink.subscribe(rooms::channel(room)).await?;
            }
            info!(%node, rooms = rooms.len(), "subscribed to the cluster");
            backoff = Duration::from_millis(100);
            loop {
                tokio::select! {
                    message = stream.next() => {
                        let Some(message) = message else { return Ok::<_, redis::RedisError>(()) };
                        let Some(event) = decode(&message, &node) else { continue };
                        if broker_tx.send(BrokerEvent::Cluster(event)).await.is_err() {
                            return Ok(());
                        }
                    }
                    cmd = cmds.recv() => match cmd {
                        None => return Ok(()),
                        Some(SubCmd::Room(room, done)) => {
                            let subscribed = sink.subscribe(rooms::channel(&room)).await;
                            rooms.insert(room);
                            let _ = done.send(subscribed.is_ok());
                            subscribed?;
                        }
                        Some(SubCmd::Leave(room)) => {
                            rooms.remove(&room);
                            sink.unsubscribe(rooms::channel(&room)).await?;
                        }
                    },
                }
            }
        };
        tokio::select! {
            () = token.cancelled() => return,
            ended = session => {
                if let Err(e) = ended {
                    warn!(%node, error = %e, "lost the cluster subscription; reconnecting");
                }
            }
        }
        // While away, room commands are answered at once: not subscribed, but remembered
        // (or forgotten) for the next session.
        let pause = tokio::time::sleep(backoff);
        tokio::pin!(pause);
        loop {
            tokio::select! {
                () = token.cancelled() => return,
                () = &mut pause => break,
                cmd = cmds.recv() => match cmd {
                    None => return,
                    Some(SubCmd::Room(room, done)) => {
                        rooms.insert(room);
                        let _ = done.send(false);
                    }
                    Some(SubCmd::Leave(room)) => {
                        rooms.remove(&room);
                    }
                },
            }
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// A published message as the broker's event, or `None` for our own or a malformed one.
fn decode(message: &redis::Msg, node: &str) -> Option<ClusterEvent> {
    let payload = message.get_payload_bytes();
    let channel = message.get_channel_name();
    if channel == mail::ACCOUNTS_CHANNEL {
        let account = mail::decode_account(std::str::from_utf8(payload).ok()?)?;
        return Some(ClusterEvent::Account(account));
    }
    if let Some(room) = channel.strip_prefix("chat:room:") {
        let room = RoomName::parse(room).ok()?;
        let payload = std::str::from_utf8(payload).ok()?;
        if let Some(presence) = payload.strip_prefix("p ") {
            let (except, lines) = presence.split_once('\n')?;
            return Some(ClusterEvent::RoomLines {
                room,
                except: (!except.is_empty()).then(|| except.to_owned()),
                lines: Bytes::copy_from_slice(lines.as_bytes()),
            });
        }
        let message = rooms::RoomMessage::parse_published(payload)?;
        let sender = UserName::parse(&message.from).ok()?;
        let text = MessageText::parse(&message.text).ok()?;
        let line = encode_line(FromLine {
            sender: &sender,
            scope: &Scope::Room {
                room: room.clone(),
                id: message.id,
            },
            text: &text,
        });
        return Some(ClusterEvent::RoomLines {
            room,
            except: Some(sender.folded()),
            lines: line,
        });
    }
    let split = payload.iter().position(|&b| b == b'\n')?;
    let head = String::from_utf8_lossy(&payload[..split]).into_owned();
    let lines = Bytes::copy_from_slice(&payload[split + 1..]);
    if channel == ALL {
        return (head != node).then_some(ClusterEvent::Remote { to: None, lines });
    }
    Some(ClusterEvent::Remote {
        to: Some(head),
        lines,
    })
}

/// Every [`lease::RENEW_EVERY`]: beats this node's heartbeat, renews its leases, and
/// looks for nodes whose heartbeat stopped (killed, or cut off for longer than a lease).
async fn renewer(
    leases: Leases,
    broker_tx: mpsc::Sender<BrokerEvent>,
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
        let held: Vec<(String, Owner)> = leases
            .held()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut redis = leases.redis.clone();
        if let Err(e) = beat(&mut redis, &leases.node).await {
            warn!(node = %leases.node, error = %e, "no heartbeat: Redis unreachable");
            continue;
        }
        if let Err(e) = sweep(&mut redis, &leases.node, presence).await {
            warn!(node = %leases.node, error = %e, "could not check on the other nodes");
        }
        let pairs: Vec<(&str, &Owner)> = held.iter().map(|(k, v)| (k.as_str(), v)).collect();
        // Redis away: try again next tick; a lease lasts three ticks, and one that ran
        // out meanwhile is taken back if nobody else took it.
        let Ok(lost) = lease::renew(&mut redis, &pairs).await else {
            continue;
        };
        if !lost.is_empty() {
            {
                let mut map = leases.held();
                for name in &lost {
                    map.remove(name);
                }
            }
            let _ = broker_tx
                .send(BrokerEvent::Cluster(ClusterEvent::Lost(lost)))
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
        local names = {}
        for _, entry in ipairs(users) do
            local folded, name = string.match(entry, '^([^/]*)/(.*)$')
            local lease = 'chat:lease:' .. folded
            local holder = redis.call('GET', lease)
            -- Free the dead node's names now, not when their leases run out.
            if holder and string.sub(holder, 1, #ARGV[2] + 1) == ARGV[2] .. '/' then
                redis.call('DEL', lease)
            end
            table.insert(names, name)
        end
        redis.call('DEL', KEYS[4])
        redis.call('SREM', KEYS[1], ARGV[2])
        return names
        ",
    );
    let nodes: Vec<String> = redis::cmd("SMEMBERS").arg(NODES).query_async(redis).await?;
    for node in nodes.iter().filter(|n| n.as_str() != me) {
        let gone: Vec<String> = script
            .key(NODES)
            .key(heartbeat_key(node))
            .key(format!("chat:node:{node}:cleanup"))
            .key(users_key(node))
            .arg(me)
            .arg(node)
            .invoke_async(redis)
            .await?;
        if gone.is_empty() {
            continue;
        }
        warn!(node = %node, users = gone.len(), "a node stopped without leaving; its users are gone");
        // No origin: every node, the sweeper's own included, tells its users.
        let mut lines = BytesMut::from(&b"\n"[..]);
        for name in gone.iter().filter_map(|n| UserName::parse(n).ok()) {
            lines.extend_from_slice(&encode_line(ServerLine::Left(name)));
        }
        // Its users leave their rooms first, as a disconnect would have them.
        for (room, names) in remove_from_rooms(redis, node).await? {
            for name in names {
                let left = encode_line(ServerLine::LeftRoom {
                    room: room.clone(),
                    name,
                });
                publish_presence(redis, &room, None, &left).await?;
            }
        }
        if presence == Presence::All {
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
    for (room, _) in all_rooms(redis).await? {
        let gone: Vec<String> = script
            .key(members_key(&room))
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
