//! The link between a node's broker and Redis. The broker never waits on Redis. It hands
//! [`ClusterCmd`]s to the publisher task through a bounded queue, and hears back through
//! its own event queue ([`ClusterEvent`]). If the queue is full or Redis is gone, the user
//! who asked gets `error: cluster unavailable`. Three tasks:
//!
//! - the publisher runs commands in order, so one sender's lines keep their order; it ends
//!   after the broker, sending the node's last `left` lines;
//! - the subscriber reads `chat:all` and this node's channel, and reconnects (with
//!   backoff) when Redis goes away;
//! - the renewer extends this node's name leases, takes back any that expired during an
//!   outage, and reports the ones now held elsewhere, whose users are then disconnected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_proto::{ServerLine, UserName, encode_line};
use futures::StreamExt;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::lease::{self, Owner};
use crate::broker::BrokerEvent;
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
        /// The sender, told if nobody has that name.
        from: ConnId,
        /// The recipient.
        to: UserName,
        /// The encoded line.
        line: Bytes,
    },
    /// `/who` across the cluster.
    Who {
        /// Who asked.
        from: ConnId,
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
            if let Err(e) = lease::release(&mut redis, &folded, &owner).await {
                // It runs out by itself within the lease time.
                warn!(name = %name, error = %e, "could not release a name lease");
            }
        }
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
) -> anyhow::Result<Started> {
    let first = tokio::time::timeout(super::CONNECT_TIMEOUT, subscribe(&url, &node))
        .await
        .map_err(|_| anyhow::anyhow!("subscribing on Redis at {url} timed out"))?
        .map_err(|e| anyhow::anyhow!("subscribing on Redis at {url}: {e}"))?;
    let (cmd_tx, cmd_rx) = mpsc::channel(CMD_QUEUE_LEN);
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
            broker_tx.downgrade(),
            node.clone(),
        )),
        tokio::spawn(subscriber(
            first,
            url,
            node.clone(),
            broker_tx.clone(),
            token.clone(),
        )),
        tokio::spawn(renewer(leases.clone(), broker_tx, token)),
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
    Ok(pubsub)
}

async fn publisher(
    mut redis: ConnectionManager,
    mut cmds: mpsc::Receiver<ClusterCmd>,
    broker_tx: mpsc::WeakSender<BrokerEvent>,
    node: String,
) {
    // A DM goes to the node holding the recipient's lease, or nowhere: checked and
    // published in one step, so a name cannot change hands in between.
    let direct = Script::new(
        r"
        local owner = redis.call('GET', KEYS[1])
        if not owner then return 0 end
        local node = string.match(owner, '^([^/]*)/')
        redis.call('PUBLISH', 'chat:node:' .. node, ARGV[1])
        return 1
        ",
    );
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
    while let Some(cmd) = cmds.recv().await {
        match cmd {
            ClusterCmd::All { from, lines } => {
                let mut payload = BytesMut::from(format!("{node}\n").as_bytes());
                payload.extend_from_slice(&lines);
                let sent: redis::RedisResult<i64> = redis::cmd("PUBLISH")
                    .arg(ALL)
                    .arg(&payload[..])
                    .query_async(&mut redis)
                    .await;
                if let (Err(e), Some(from)) = (sent, from) {
                    warn!(error = %e, "publishing to the cluster failed");
                    reply(from, unavailable()).await;
                }
            }
            ClusterCmd::Direct { from, to, line } => {
                let folded = to.folded();
                let mut payload = BytesMut::from(format!("{folded}\n").as_bytes());
                payload.extend_from_slice(&line);
                let sent: redis::RedisResult<i64> = direct
                    .key(lease::key(&folded))
                    .arg(&payload[..])
                    .invoke_async(&mut redis)
                    .await;
                match sent {
                    Ok(1) => {}
                    Ok(_) => reply(from, ServerLine::Error(format!("no such user: {to}"))).await,
                    Err(_) => reply(from, unavailable()).await,
                }
            }
            ClusterCmd::Who { from } => match who(&mut redis).await {
                Ok(names) => reply(from, ServerLine::Users(names)).await,
                Err(_) => reply(from, unavailable()).await,
            },
        }
    }
}

/// Every name holding a lease, sorted bytewise.
async fn who(redis: &mut ConnectionManager) -> redis::RedisResult<Vec<UserName>> {
    let mut keys: Vec<String> = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("chat:lease:*")
            .arg("COUNT")
            .arg(1000)
            .query_async(redis)
            .await?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
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

/// Reads `chat:all` and this node's channel, reconnecting with backoff while Redis is
/// away. Messages go to the broker, waiting for room in its queue: a node that cannot keep
/// up falls behind on Redis's side, and Redis's own output-buffer limit cuts it off.
async fn subscriber(
    first: redis::aio::PubSub,
    url: String,
    node: String,
    broker_tx: mpsc::Sender<BrokerEvent>,
    token: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut ready = Some(first);
    loop {
        let session = async {
            let mut pubsub = match ready.take() {
                Some(pubsub) => pubsub,
                None => subscribe(&url, &node).await?,
            };
            info!(%node, "subscribed to the cluster");
            let mut messages = pubsub.on_message();
            while let Some(message) = messages.next().await {
                let payload: Vec<u8> = message.get_payload()?;
                let Some(split) = payload.iter().position(|&b| b == b'\n') else {
                    continue;
                };
                let head = String::from_utf8_lossy(&payload[..split]).into_owned();
                let lines = Bytes::copy_from_slice(&payload[split + 1..]);
                let event = if message.get_channel_name() == ALL {
                    if head == node {
                        continue;
                    }
                    ClusterEvent::Remote { to: None, lines }
                } else {
                    ClusterEvent::Remote {
                        to: Some(head),
                        lines,
                    }
                };
                if broker_tx.send(BrokerEvent::Cluster(event)).await.is_err() {
                    break;
                }
            }
            Ok::<_, redis::RedisError>(())
        };
        tokio::select! {
            () = token.cancelled() => return,
            ended = session => {
                if let Err(e) = ended {
                    warn!(%node, error = %e, "lost the cluster subscription; reconnecting");
                }
            }
        }
        tokio::select! {
            () = token.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// Renews this node's leases every [`lease::RENEW_EVERY`].
async fn renewer(leases: Leases, broker_tx: mpsc::Sender<BrokerEvent>, token: CancellationToken) {
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
