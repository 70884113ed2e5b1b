//! [`Redis`]: the backend of one node of a cluster. Its methods only queue commands
//! for the [`publisher`](super::publisher); answers come back through the queue the
//! broker loop takes from [`Backend::answers`], fed by the publisher, the subscriber and
//! the renewer.
//!
//! Backpressure: the command queue counts what it holds. Past [`HIGH_WATER`] the
//! backend is busy, so the broker stops taking readers' events and the readers wait on
//! the broker's full queue, exactly as when the broker itself is slow; below
//! [`LOW_WATER`] it takes them again. A burst is slowed down, never cut.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context;
use chat_proto::{Conv, MessageId, MessageText, RoomName, ServerLine, UserName, encode_line};
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::publisher::{Publisher, publisher};
use super::renewer::renewer;
use super::subscriber::{subscribe, subscriber};
use super::{CONNECT_TIMEOUT, Held, mail, sessions};
use crate::accounts::Account;
use crate::backend::{
    Answer, Answers, Attempt, Backend, Departure, Direct, HistoryAsk, Pending, Remote,
};
use crate::config::{ClusterConfig, Config, Presence};
use crate::governance::{Change, RoomState};
use crate::roster::{ConnId, Roster};
use crate::sendq::Line;

/// Commands queued past this make the backend busy.
const HIGH_WATER: usize = 4096;
/// Busy until the queue is down to this.
const LOW_WATER: usize = 1024;
/// Answers waiting for the broker; the broker takes them before anything else.
const ANSWER_QUEUE_LEN: usize = 4096;

/// What the broker asks of Redis, run by the publisher in order.
#[derive(Debug)]
pub(super) enum Cmd {
    Attempt(Attempt),
    Forgive {
        name: UserName,
        addr: IpAddr,
    },
    Admit {
        conn: ConnId,
        name: UserName,
        account: bool,
    },
    JoinQuietly {
        room: RoomName,
        name: UserName,
    },
    AccountRoom {
        name: UserName,
        room: RoomName,
        joined: bool,
    },
    Echo {
        name: UserName,
        lines: Line,
    },
    KillElsewhere {
        name: UserName,
        lines: Line,
    },
    Withdraw {
        conn: ConnId,
        name: UserName,
    },
    Depart {
        departure: Departure,
        /// The rooms of the departure with no member left here, which this node stops
        /// listening to.
        last_here: Vec<RoomName>,
    },
    ToOthers {
        from: ConnId,
        /// The sender's folded name: its sessions on other nodes get `sent *:` instead.
        sender: String,
        lines: Line,
    },
    Direct(Direct),
    Say {
        from: ConnId,
        room: RoomName,
        sender: UserName,
        text: MessageText,
        notice: bool,
    },
    JoinRoom {
        from: ConnId,
        room: RoomName,
        name: UserName,
    },
    PartRoom {
        from: Option<ConnId>,
        room: RoomName,
        name: UserName,
        left: Line,
        last_here: bool,
    },
    Reply {
        to: ConnId,
        lines: Line,
    },
    TellRoom {
        room: RoomName,
        lines: Line,
        except: Option<ConnId>,
    },
    Fetch {
        from: ConnId,
        room: RoomName,
        line: Pending,
    },
    Govern {
        room: RoomName,
        changes: Vec<Change>,
    },
    LeaveQuietly {
        room: RoomName,
        name: UserName,
        last_here: bool,
    },
    SetAway {
        folded: String,
        text: Option<MessageText>,
    },
    Whois {
        from: ConnId,
        name: UserName,
    },
    ReplyRemote {
        to: Remote,
        lines: Line,
    },
    ReadMarker {
        from: ConnId,
        folded: String,
        conv: Conv,
        key: String,
        id: Option<MessageId>,
    },
    Tell {
        from: ConnId,
        name: UserName,
        lines: Line,
        /// For `from` once told; `None`: a kill.
        sent: Option<Line>,
    },
    Who {
        from: ConnId,
        away: Option<String>,
    },
    Rooms {
        from: ConnId,
        hidden: Vec<RoomName>,
        mine: Vec<RoomName>,
    },
    History(HistoryAsk),
    PutAccount(Account),
    Drain,
}

impl Cmd {
    /// Whether it can share a pipeline with the commands next to it.
    pub(super) fn batches(&self) -> bool {
        matches!(
            self,
            Self::ToOthers { .. } | Self::Direct(_) | Self::Say { .. }
        )
    }

    /// Who is told `error:` if it fails.
    pub(super) fn asker(&self) -> Option<ConnId> {
        match self {
            Self::PartRoom { from, .. } => *from,
            Self::Direct(direct) => Some(direct.from),
            Self::ToOthers { from, .. }
            | Self::Say { from, .. }
            | Self::JoinRoom { from, .. }
            | Self::Reply { to: from, .. }
            | Self::Fetch { from, .. }
            | Self::Tell { from, .. }
            | Self::ReadMarker { from, .. }
            | Self::Whois { from, .. }
            | Self::Who { from, .. }
            | Self::Rooms { from, .. } => Some(*from),
            Self::History(ask) => Some(ask.from),
            Self::Attempt(_)
            | Self::Forgive { .. }
            | Self::Admit { .. }
            | Self::JoinQuietly { .. }
            | Self::AccountRoom { .. }
            | Self::Echo { .. }
            | Self::KillElsewhere { .. }
            | Self::Withdraw { .. }
            | Self::Depart { .. }
            | Self::PutAccount(_)
            | Self::Govern { .. }
            | Self::SetAway { .. }
            | Self::TellRoom { .. }
            | Self::ReplyRemote { .. }
            | Self::LeaveQuietly { .. }
            | Self::Drain => None,
        }
    }
}

/// How many commands wait for the publisher, and a wake-up when they fall low again.
#[derive(Debug, Default)]
pub(super) struct Queue {
    len: AtomicUsize,
    drained: Notify,
}

impl Queue {
    /// The publisher is done with `n` commands.
    pub(super) fn done(&self, n: usize) {
        let before = self.len.fetch_sub(n, Ordering::AcqRel);
        if before >= LOW_WATER && before - n < LOW_WATER {
            self.drained.notify_waiters();
        }
    }
}

/// History retention in Redis, the same options as one server's.
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// Most messages kept per conversation; 0 with `--history off`.
    pub(super) keep: usize,
    /// `--history-age`.
    pub(super) max_age: Duration,
    /// Whether logins are announced to everyone (`--presence`).
    pub(super) presence: Presence,
}

impl Settings {
    /// The smallest id young enough to keep, given µs now (ids are about µs since the
    /// epoch).
    pub(super) fn young(&self, now_micros: u64) -> u64 {
        let age = u64::try_from(self.max_age.as_micros()).unwrap_or(u64::MAX);
        now_micros.saturating_sub(age)
    }

    /// Messages sent before this are too old to show.
    pub(super) fn oldest(&self) -> chat_proto::Timestamp {
        let now = crate::history::wall_clock().0;
        let age = i64::try_from(self.max_age.as_millis()).unwrap_or(i64::MAX);
        chat_proto::Timestamp::from_unix_millis(now.unix_millis().saturating_sub(age))
            .unwrap_or(now)
    }
}

/// One node of a cluster on Redis.
#[derive(Debug)]
pub struct Redis {
    /// To the publisher; it ends once this is dropped, after running what is queued.
    cmds: mpsc::UnboundedSender<Cmd>,
    /// What `cmds` holds, shared with the publisher, which counts commands done.
    queue: Arc<Queue>,
    /// Until the broker loop takes it: the answers of the publisher, the subscriber and
    /// the renewer. The broker drops it when it ends, so their sends fail at once.
    answers: Option<mpsc::Receiver<Answer>>,
    /// Loaded at start, taken by the broker.
    accounts: Option<Vec<Account>>,
    presence: Presence,
    /// Cancelled by `finish`: stops the subscriber and the renewer.
    token: CancellationToken,
    /// Awaited by `finish` (at most `shutdown_timeout`), then aborted.
    publisher: JoinHandle<()>,
    /// The subscriber and the renewer, awaited by `finish` once `token` is cancelled.
    others: Vec<JoinHandle<()>>,
    /// How long `finish` gives the publisher: half of `--shutdown-timeout`.
    shutdown_timeout: Duration,
}

impl Redis {
    /// Reaches Redis, loads the accounts, and subscribes before it returns, so the node
    /// misses nothing published once it accepts clients. Fails with a clear message if
    /// Redis cannot be reached, so a node never half-starts.
    pub async fn start(cluster: &ClusterConfig, config: &Config) -> anyhow::Result<Self> {
        let node = cluster.node.clone();
        let shown = super::redacted(&cluster.url);
        let mut redis = super::connect_node(cluster).await?;
        let accounts = mail::load_accounts(&mut redis)
            .await
            .with_context(|| format!("loading accounts from Redis at {shown}"))?;
        let aways = sessions::load_aways(&mut redis)
            .await
            .with_context(|| format!("loading away messages from Redis at {shown}"))?;
        let client = super::client(&cluster.url, cluster.ca_file.as_deref(), &node)?;
        let first = tokio::time::timeout(CONNECT_TIMEOUT, subscribe(&client, &node))
            .await
            .map_err(|_| anyhow::anyhow!("subscribing on Redis at {shown} timed out"))?
            .with_context(|| format!("subscribing on Redis at {shown}"))?;
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let (answers_tx, answers) = mpsc::channel(ANSWER_QUEUE_LEN);
        let (sub_tx, sub_rx) = mpsc::channel(64);
        let queue = Arc::new(Queue::default());
        let held = Held::default();
        let token = CancellationToken::new();
        let settings = Settings {
            keep: config.history.as_ref().map_or(0, |r| r.per_conv),
            max_age: config.history.as_ref().map_or(Duration::MAX, |r| r.max_age),
            presence: config.presence,
        };
        let publisher = tokio::spawn(publisher(
            Publisher {
                node: node.clone(),
                redis: redis.clone(),
                settings,
                held: held.clone(),
                queue: queue.clone(),
                answers: answers_tx.clone(),
                subscriber: sub_tx,
                down: None,
                probe_at: Instant::now(),
                scripts_loaded: false,
            },
            cmd_rx,
        ));
        let told = answers_tx.clone();
        let others = vec![
            tokio::spawn(subscriber(
                first,
                client,
                node.clone(),
                answers_tx.clone(),
                sub_rx,
                token.clone(),
            )),
            tokio::spawn(renewer(
                node.clone(),
                redis,
                held,
                answers_tx,
                token.clone(),
                config.presence,
            )),
        ];
        // Handed to the broker once it reads: who was away before this node started.
        tokio::spawn(async move {
            for (folded, text) in aways {
                let away = Answer::Away {
                    folded,
                    text: Some(text),
                };
                if told.send(away).await.is_err() {
                    return;
                }
            }
        });
        info!(%node, url = %shown, "joined the cluster");
        Ok(Self {
            cmds,
            queue,
            answers: Some(answers),
            accounts: Some(accounts),
            presence: config.presence,
            token,
            publisher,
            others,
            // The other half of the shutdown time goes to draining what comes in.
            shutdown_timeout: config.shutdown_timeout / 2,
        })
    }

    fn send(&self, cmd: Cmd) {
        self.queue.len.fetch_add(1, Ordering::AcqRel);
        if self.cmds.send(cmd).is_err() {
            self.queue.done(1);
        }
    }
}

impl Backend for Redis {
    fn answers(&mut self) -> Option<mpsc::Receiver<Answer>> {
        self.answers.take()
    }

    fn accounts(&mut self) -> Option<Vec<Account>> {
        self.accounts.take()
    }

    fn registered_rooms(&mut self) -> Vec<(RoomName, RoomState)> {
        Vec::new()
    }

    fn govern(
        &mut self,
        room: &RoomName,
        changes: Vec<Change>,
        _after: &RoomState,
        _out: &mut Answers,
    ) {
        self.send(Cmd::Govern {
            room: room.clone(),
            changes,
        });
    }

    fn leave_quietly(&mut self, room: &RoomName, name: &UserName, here: &Roster) {
        self.send(Cmd::LeaveQuietly {
            room: room.clone(),
            name: name.clone(),
            last_here: here.members(room).is_none(),
        });
    }

    fn fetch_room(&mut self, from: ConnId, room: &RoomName, line: Pending, _out: &mut Answers) {
        self.send(Cmd::Fetch {
            from,
            room: room.clone(),
            line,
        });
    }

    fn join_quietly(&mut self, room: &RoomName, name: &UserName) {
        self.send(Cmd::JoinQuietly {
            room: room.clone(),
            name: name.clone(),
        });
    }

    fn account_room(&mut self, name: &UserName, room: &RoomName, joined: bool) {
        self.send(Cmd::AccountRoom {
            name: name.clone(),
            room: room.clone(),
            joined,
        });
    }

    fn echo(&mut self, name: &UserName, lines: Line) {
        self.send(Cmd::Echo {
            name: name.clone(),
            lines,
        });
    }

    fn kill_elsewhere(&mut self, name: &UserName, lines: Line) {
        self.send(Cmd::KillElsewhere {
            name: name.clone(),
            lines,
        });
    }

    fn set_away(&mut self, name: &UserName, text: Option<&MessageText>) {
        self.send(Cmd::SetAway {
            folded: name.folded(),
            text: text.cloned(),
        });
    }

    fn whois(&mut self, from: ConnId, name: &UserName, _out: &mut Answers) {
        self.send(Cmd::Whois {
            from,
            name: name.clone(),
        });
    }

    fn reply_remote(&mut self, to: Remote, lines: Line) {
        self.send(Cmd::ReplyRemote { to, lines });
    }

    fn read_marker(
        &mut self,
        from: ConnId,
        account: &UserName,
        conv: Conv,
        key: String,
        id: Option<MessageId>,
        _out: &mut Answers,
    ) {
        self.send(Cmd::ReadMarker {
            from,
            folded: account.folded(),
            conv,
            key,
            id,
        });
    }

    fn tell(&mut self, from: ConnId, name: &UserName, lines: Line, sent: Line, _out: &mut Answers) {
        self.send(Cmd::Tell {
            from,
            name: name.clone(),
            lines,
            sent: Some(sent),
        });
    }

    fn kill(&mut self, from: ConnId, name: &UserName, lines: Line, _out: &mut Answers) {
        self.send(Cmd::Tell {
            from,
            name: name.clone(),
            lines,
            sent: None,
        });
    }

    fn admit(&mut self, conn: ConnId, name: &UserName, account: bool, _out: &mut Answers) {
        self.send(Cmd::Admit {
            account,
            conn,
            name: name.clone(),
        });
    }

    fn attempt(&mut self, attempt: Attempt, _out: &mut Answers) {
        self.send(Cmd::Attempt(attempt));
    }

    fn forgive(&mut self, name: &UserName, addr: IpAddr) {
        self.send(Cmd::Forgive {
            name: name.clone(),
            addr,
        });
    }

    fn withdraw(&mut self, conn: ConnId, name: &UserName) {
        self.send(Cmd::Withdraw {
            conn,
            name: name.clone(),
        });
    }

    fn depart(&mut self, departure: Departure, here: &Roster, _out: &mut Answers) {
        let last_here = departure
            .rooms
            .iter()
            .filter(|room| here.members(room).is_none())
            .cloned()
            .collect();
        self.send(Cmd::Depart {
            departure,
            last_here,
        });
    }

    fn send_elsewhere(&mut self, from: ConnId, sender: &UserName, lines: Line, _out: &mut Answers) {
        self.send(Cmd::ToOthers {
            from,
            sender: sender.folded(),
            lines,
        });
    }

    fn direct(&mut self, direct: Direct, _out: &mut Answers) {
        self.send(Cmd::Direct(direct));
    }

    fn say(
        &mut self,
        from: ConnId,
        room: &RoomName,
        sender: &UserName,
        text: &MessageText,
        notice: bool,
        _out: &mut Answers,
    ) {
        self.send(Cmd::Say {
            from,
            room: room.clone(),
            sender: sender.clone(),
            text: text.clone(),
            notice,
        });
    }

    fn join_room(
        &mut self,
        from: ConnId,
        room: &RoomName,
        name: &UserName,
        _here: &Roster,
        _out: &mut Answers,
    ) {
        self.send(Cmd::JoinRoom {
            from,
            room: room.clone(),
            name: name.clone(),
        });
    }

    fn part_room(
        &mut self,
        from: Option<ConnId>,
        room: &RoomName,
        name: &UserName,
        left: Line,
        here: &Roster,
        _out: &mut Answers,
    ) {
        self.send(Cmd::PartRoom {
            from,
            room: room.clone(),
            name: name.clone(),
            left,
            // With no member here, the node stops listening to the room.
            last_here: here.members(room).is_none(),
        });
    }

    fn tell_room(
        &mut self,
        room: &RoomName,
        lines: Line,
        except: Option<ConnId>,
        _out: &mut Answers,
    ) {
        self.send(Cmd::TellRoom {
            room: room.clone(),
            lines,
            except,
        });
    }

    fn reply_after(&mut self, to: ConnId, lines: Line, _out: &mut Answers) {
        self.send(Cmd::Reply { to, lines });
    }

    fn who(&mut self, from: ConnId, away: Option<String>, _here: &Roster, _out: &mut Answers) {
        self.send(Cmd::Who { from, away });
    }

    fn rooms(&mut self, from: ConnId, hidden: &[RoomName], here: &Roster, _out: &mut Answers) {
        self.send(Cmd::Rooms {
            from,
            hidden: hidden.to_vec(),
            mine: here.rooms_of(from),
        });
    }

    fn history(&mut self, ask: HistoryAsk, _out: &mut Answers) {
        self.send(Cmd::History(ask));
    }

    fn put_account(&mut self, account: Account) {
        self.send(Cmd::PutAccount(account));
    }

    fn is_busy(&self) -> bool {
        self.queue.len.load(Ordering::Acquire) >= HIGH_WATER
    }

    fn wake(&mut self) -> BoxFuture<'_, ()> {
        let queue = self.queue.clone();
        let busy = self.is_busy();
        async move {
            if !busy {
                return std::future::pending().await;
            }
            loop {
                let drained = queue.drained.notified();
                tokio::pin!(drained);
                drained.as_mut().enable();
                if queue.len.load(Ordering::Acquire) < LOW_WATER {
                    return;
                }
                drained.await;
            }
        }
        .boxed()
    }

    fn flush(&mut self) {}

    fn drain(&mut self, _out: &mut Answers) {
        self.send(Cmd::Drain);
    }

    fn node_stopping(&mut self, here: &Roster) {
        // Only this node stops: the other nodes' users see this node's users leave
        // their rooms and the chat, and their names are free at once. (This node's own
        // users hear nothing more but `bye`.)
        for user in here.users() {
            let farewell = (self.presence == Presence::All)
                .then(|| encode_line(ServerLine::Left(user.name.clone())));
            let departure = Departure {
                conn: user.holder,
                name: user.name.clone(),
                rooms: user.rooms().cloned().collect(),
                reason: None,
                farewell,
                queue: None,
            };
            self.send(Cmd::Depart {
                departure,
                last_here: Vec::new(),
            });
        }
    }

    fn finish(self: Box<Self>) -> BoxFuture<'static, ()> {
        let Self {
            cmds,
            token,
            mut publisher,
            others,
            shutdown_timeout,
            ..
        } = *self;
        async move {
            // The publisher runs what is queued, then ends; with Redis down it answers
            // each at once, so this takes long only with a Redis that is slow but there.
            drop(cmds);
            if tokio::time::timeout(shutdown_timeout, &mut publisher)
                .await
                .is_err()
            {
                warn!(timeout = ?shutdown_timeout, "Redis did not take this node's last lines in time");
                publisher.abort();
            }
            token.cancel();
            for task in others {
                let _ = task.await;
            }
        }
        .boxed()
    }
}
