//! The broker: the one task that owns the [`Roster`] and the [`History`], and routes
//! every line.
//!
//! It never awaits a client. Each peer's queue is bounded in bytes and fed without
//! waiting; a full queue means that client is too slow (IRC's "SendQ exceeded"), so it is
//! told why and dropped, and the others never notice. A closed queue means its writer
//! died; that peer is dropped too. Stored messages go to the store writer the same way.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use bytes::BytesMut;
use chat_proto::{
    ClientLine, Conv, FromLine, HistoryLine, HistoryRange, MessageText, Recipient, RoomName, Scope,
    ServerLine, UserName, encode_line,
};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::accounts::{Account, Accounts, Throttle};
use crate::cluster::link::{ClusterCmd, ClusterEvent, ClusterLink, UNAVAILABLE};
use crate::cluster::rooms;
use crate::config::Presence;
use crate::history::{ConvKey, History, IdClock, Message, wall_clock};
use crate::roster::{ConnId, Peer, Roster};
use crate::sendq::{Line, Outbox, Undeliverable};
use crate::store::{StoreWriter, Write};

/// Why `/register` and `/password` are refused by a server without a store.
const NO_ACCOUNTS: &str = "accounts need a server started with --db, so they survive a restart";

/// Direct messages kept for one offline registered user; past this the sender is told
/// the mailbox is full.
pub const MAX_OFFLINE_PER_RECIPIENT: usize = 100;

/// Events routed per turn of the broker before it lets other tasks run.
const BROKER_BATCH: usize = 1024;
/// Most logins whose `joined` lines are announced together.
const MAX_JOIN_BATCH: usize = 1024;
/// How long a `joined` announcement may wait for more logins to share its writes, per
/// peer online: an announcement costs one write per peer, so the wait grows with the
/// roster (0.5 ms for 10 people, 250 ms for 5,000, at most `MAX_JOIN_ANNOUNCE_DELAY`).
/// Any other event announces at once, so nobody sees a message from someone before
/// their `joined`; only the presence line itself waits.
const JOIN_ANNOUNCE_DELAY_PER_PEER: Duration = Duration::from_micros(50);
const MAX_JOIN_ANNOUNCE_DELAY: Duration = Duration::from_millis(250);

/// How a login may go on, as the broker sees it before any password is checked.
#[derive(Debug, PartialEq, Eq)]
pub enum Auth {
    /// The name is not registered and no password was given: log in.
    Open,
    /// The name is registered: check the password against this hash.
    Verify(String),
    /// Refused, with the reason for `error:`.
    Refused(String),
}

/// One line after login, as the reader hands it over.
#[derive(Debug)]
pub enum Request {
    /// A valid line.
    Line(ClientLine),
    /// A line that is not valid, and why (answered with `error:`).
    Invalid(String),
    /// `/register`, its password already hashed (PHC string) by the reader.
    Register(String),
    /// `/password`, likewise.
    SetPassword(String),
}

/// What readers tell the broker.
#[derive(Debug)]
pub enum BrokerEvent {
    /// A client sent its login line: may it log in, and must its password be checked?
    Authenticate {
        /// The name it asks for.
        name: UserName,
        /// Where it connects from, for the throttle.
        addr: IpAddr,
        /// Whether it sent a password.
        with_password: bool,
        /// The answer.
        reply: oneshot::Sender<Auth>,
    },
    /// A password matched: the attempt counted against the throttle when its check began
    /// is taken back.
    LoginPassed {
        /// The name tried.
        name: UserName,
        /// Where from.
        addr: IpAddr,
    },
    /// A client may log in. The broker answers on `accepted`; if the name is taken it has
    /// already queued the `error:` on `outbox` and dropped it.
    Join {
        /// The connection.
        id: ConnId,
        /// The name it asks for.
        name: UserName,
        /// Whether its password was checked; a registered name needs that.
        authenticated: bool,
        /// The client's outgoing queue; the broker becomes its only sender.
        outbox: Outbox,
        /// Whether the login was accepted.
        accepted: oneshot::Sender<bool>,
        /// In cluster mode, the mail taken from Redis for this name, oldest first.
        mail: Vec<Message>,
    },
    /// Lines after login, in order. Several per event when a read brought several.
    Lines {
        /// The connection.
        id: ConnId,
        /// The lines.
        lines: Vec<Request>,
    },
    /// The connection broke the framing rules: send `error: <reason>`, then drop it.
    Fatal {
        /// The connection.
        id: ConnId,
        /// What went wrong.
        reason: String,
    },
    /// The client went away (EOF or a read error).
    Leave {
        /// The connection.
        id: ConnId,
    },
    /// News from the rest of the cluster (cluster mode only).
    Cluster(ClusterEvent),
}

/// Runs `broker` until every `broker_tx` is dropped, then says `bye` to everyone and
/// hands the store writer its last messages.
pub async fn broker_loop(mut events: mpsc::Receiver<BrokerEvent>, mut broker: Broker) {
    // When the pending `joined` announcements are due; see `Broker::flush_joins`.
    let mut announce_at: Option<Instant> = None;
    loop {
        let store_behind = broker.store.as_ref().is_some_and(StoreWriter::is_behind);
        let event = tokio::select! {
            event = events.recv() => event,
            () = sleep_until_or_never(announce_at) => {
                broker.flush_joins();
                announce_at = None;
                continue;
            }
            () = flush_store(&mut broker.store), if store_behind => continue,
        };
        let Some(event) = event else { break };
        broker.handle(event);
        // Route everything already waiting before yielding: the writers this wakes then
        // find whole batches in their queues and write each with one syscall.
        for _ in 0..BROKER_BATCH {
            let Ok(event) = events.try_recv() else { break };
            broker.handle(event);
        }
        if let Some(store) = &mut broker.store {
            store.flush();
        }
        if broker.pending_joins.is_empty() {
            announce_at = None;
        } else if announce_at.is_none() {
            let peers = u32::try_from(broker.roster.online()).unwrap_or(u32::MAX);
            announce_at = Some(
                Instant::now()
                    + (JOIN_ANNOUNCE_DELAY_PER_PEER * peers).min(MAX_JOIN_ANNOUNCE_DELAY),
            );
        }
    }
    // Every reader has stopped, so everything anyone sent is routed. Queue the farewell
    // behind it; dropping the roster then closes every queue and the writers finish.
    broker.flush_joins();
    if let Some(cluster) = broker.cluster.take() {
        // Only this node stops: the other nodes' users see this node's users leave their
        // rooms and the chat.
        let rooms: Vec<RoomName> = broker.roster.rooms().map(|(r, _)| r.clone()).collect();
        for room in rooms {
            for name in broker.roster.member_names(&room).unwrap_or_default() {
                cluster.send(ClusterCmd::PartRoom {
                    from: None,
                    room: room.clone(),
                    name,
                    last_here: false,
                });
            }
        }
        let mut lines = BytesMut::new();
        if broker.presence == Presence::All {
            for (_, peer) in broker.roster.peers() {
                lines.extend_from_slice(&encode_line(ServerLine::Left(peer.name.clone())));
            }
        }
        if !lines.is_empty() {
            cluster.send(ClusterCmd::All {
                from: None,
                lines: lines.freeze(),
            });
        }
    }
    let bye = encode_line(ServerLine::Bye("server shutting down".to_owned()));
    for (_, peer) in broker.roster.peers() {
        peer.outbox.send_last(&bye);
    }
    drop(broker.roster);
    // Every accepted message goes to the store before the writer is let go.
    if let Some(mut store) = broker.store {
        while store.is_behind() {
            store.flush_when_ready().await;
        }
    }
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn flush_store(store: &mut Option<StoreWriter>) {
    match store {
        Some(store) => store.flush_when_ready().await,
        None => std::future::pending().await,
    }
}

/// The broker's state: who is online, what was said, and where ids come from.
#[derive(Debug)]
pub struct Broker {
    roster: Roster,
    /// Logins not yet announced, in order; see [`Broker::flush_joins`].
    pending_joins: Vec<(ConnId, UserName)>,
    /// `None` with `--history off`.
    history: Option<History>,
    /// `Some` with `--db`: mirrors `history` and `accounts` to disk.
    store: Option<StoreWriter>,
    ids: IdClock,
    /// `None` without a store: accounts that vanished at restart would hand names over.
    accounts: Option<Accounts>,
    throttle: Throttle,
    /// Direct messages for offline registered users, by folded name, oldest first.
    offline: HashMap<String, VecDeque<Message>>,
    /// `Some` in cluster mode: the way to the other nodes.
    cluster: Option<ClusterLink>,
    presence: Presence,
}

impl Broker {
    /// A broker with nobody online, serving `history` (if kept) mirrored to `store`.
    pub fn new(
        strict_names: bool,
        history: Option<History>,
        store: Option<StoreWriter>,
        ids: IdClock,
    ) -> Self {
        Self {
            roster: Roster::new(strict_names),
            pending_joins: Vec::new(),
            history,
            store,
            ids,
            accounts: None,
            throttle: Throttle::default(),
            offline: HashMap::new(),
            cluster: None,
            presence: Presence::All,
        }
    }

    /// Sets who is told of logins and departures (by default, everyone).
    pub fn with_presence(mut self, presence: Presence) -> Self {
        self.presence = presence;
        self
    }

    /// Serves as one node of a cluster reached through `link`.
    pub fn with_cluster(mut self, link: ClusterLink) -> Self {
        self.cluster = Some(link);
        self
    }

    /// Hands `cmd` to the cluster link; if it cannot take it, `from` (if set) is told.
    fn tell_cluster(&mut self, cmd: ClusterCmd) {
        let from = match &cmd {
            ClusterCmd::Account(_) | ClusterCmd::KeepDirect { .. } => None,
            ClusterCmd::All { from, .. } | ClusterCmd::PartRoom { from, .. } => *from,
            ClusterCmd::Direct { from, .. }
            | ClusterCmd::Who { from }
            | ClusterCmd::JoinRoom { from, .. }
            | ClusterCmd::RoomSay { from, .. }
            | ClusterCmd::Names { from, .. }
            | ClusterCmd::Rooms { from }
            | ClusterCmd::History { from, .. } => Some(*from),
        };
        let sent = self.cluster.as_ref().is_some_and(|c| c.send(cmd));
        if let (false, Some(from)) = (sent, from) {
            self.deliver(
                from,
                &encode_line(ServerLine::Error(UNAVAILABLE.to_owned())),
            );
        }
    }

    fn cluster_event(&mut self, event: ClusterEvent) {
        match event {
            ClusterEvent::Remote { to: None, lines } => {
                let mut failed = Vec::new();
                for (id, peer) in self.roster.peers() {
                    offer(id, peer, &lines, &mut failed);
                }
                self.remove(failed);
            }
            ClusterEvent::Remote {
                to: Some(folded),
                lines,
            } => {
                let mut failed = Vec::new();
                if let Some((id, peer)) = self.roster.find_folded(&folded) {
                    offer(id, peer, &lines, &mut failed);
                }
                self.remove(failed);
            }
            ClusterEvent::Reply { to, line } => self.deliver(to, &line),
            ClusterEvent::Account(account) => {
                if let Some(accounts) = &mut self.accounts {
                    accounts.put(account);
                }
            }
            ClusterEvent::RoomLines {
                room,
                except,
                lines,
            } => {
                let mut failed = Vec::new();
                for (id, peer) in self.roster.members(&room).into_iter().flatten() {
                    if except.as_deref() != Some(peer.name.folded().as_str()) {
                        offer(id, peer, &lines, &mut failed);
                    }
                }
                self.remove(failed);
            }
            ClusterEvent::Lost(names) => {
                let bye = encode_line(ServerLine::Bye(
                    "your name is now held on another node of the cluster".to_owned(),
                ));
                let mut gone = Vec::new();
                for folded in names {
                    if let Some((id, peer)) = self.roster.find_folded(&folded) {
                        peer.outbox.send_last(&bye);
                        gone.push(id);
                    }
                }
                self.remove(gone);
            }
        }
    }

    /// Serves `accounts` and the offline `mail` waiting for them (needs a store).
    pub fn with_accounts(mut self, accounts: Accounts, mail: Vec<(String, Message)>) -> Self {
        self.accounts = Some(accounts);
        for (recipient, message) in mail {
            self.offline
                .entry(recipient)
                .or_default()
                .push_back(message);
        }
        self
    }

    fn write(&mut self, write: Write) {
        if let Some(store) = &mut self.store {
            store.push(write);
        }
    }

    fn handle(&mut self, event: BrokerEvent) {
        if !matches!(
            event,
            BrokerEvent::Join { .. }
                | BrokerEvent::Authenticate { .. }
                | BrokerEvent::LoginPassed { .. }
        ) {
            // Anything else may be seen by a peer, so announce earlier logins first. The
            // steps of a login are not: every login of a storm asks `Authenticate` first,
            // and flushing on it would announce each login alone (quadratic again).
            self.flush_joins();
        }
        match event {
            BrokerEvent::Authenticate {
                name,
                addr,
                with_password,
                reply,
            } => {
                let _ = reply.send(self.authenticate(&name, addr, with_password));
            }
            BrokerEvent::LoginPassed { name, addr } => self.throttle.forgive(&name, addr),
            BrokerEvent::Join {
                id,
                name,
                authenticated,
                outbox,
                accepted,
                mail,
            } => self.join(id, name, authenticated, outbox, accepted, mail),
            BrokerEvent::Lines { id, lines } => {
                for line in lines {
                    // The sender may have been dropped by an earlier line's reply.
                    if self.roster.get(id).is_none() {
                        return;
                    }
                    self.line(id, line);
                }
            }
            BrokerEvent::Fatal { id, reason } => {
                if let Some(peer) = self.roster.get(id) {
                    peer.outbox
                        .send_last(&encode_line(ServerLine::Error(reason)));
                    self.remove(vec![id]);
                }
            }
            BrokerEvent::Leave { id } => self.remove(vec![id]),
            BrokerEvent::Cluster(event) => self.cluster_event(event),
        }
    }

    fn line(&mut self, id: ConnId, request: Request) {
        let line = match request {
            Request::Line(line) => Ok(line),
            Request::Invalid(reason) => Err(reason),
            Request::Register(phc) => return self.register(id, phc),
            Request::SetPassword(phc) => return self.set_password(id, phc),
        };
        match line {
            Ok(ClientLine::Register(_) | ClientLine::SetPassword(_)) => {
                // The reader hashes these; a password never reaches the broker.
                let reason = "a password line reached the broker unhashed".to_owned();
                self.deliver(id, &encode_line(ServerLine::Error(reason)));
            }
            Ok(ClientLine::Send { to, text }) => self.route(id, &to, &text),
            Ok(ClientLine::Who) if self.cluster.is_some() => {
                self.tell_cluster(ClusterCmd::Who { from: id });
            }
            Ok(ClientLine::Who) => {
                let names = self.roster.names().into_iter().cloned().collect();
                self.deliver(id, &encode_line(ServerLine::Users(names)));
            }
            Ok(ClientLine::Names(room)) if self.cluster.is_some() => {
                self.tell_cluster(ClusterCmd::Names { from: id, room });
            }
            Ok(ClientLine::Rooms) if self.cluster.is_some() => {
                self.tell_cluster(ClusterCmd::Rooms { from: id });
            }
            Ok(ClientLine::Join(room)) => self.join_room(id, room),
            Ok(ClientLine::Part(room)) => self.part_room(id, room),
            Ok(ClientLine::Names(room)) => {
                let reply = match self.roster.member_names(&room) {
                    Some(names) => ServerLine::Names { room, names },
                    None => ServerLine::Error(format!("no such room: {room}")),
                };
                self.deliver(id, &encode_line(reply));
            }
            Ok(ClientLine::Rooms) => {
                let rooms = self.roster.rooms().map(|(r, n)| (r.clone(), n)).collect();
                self.deliver(id, &encode_line(ServerLine::Rooms(rooms)));
            }
            Ok(ClientLine::History { conv, range }) => self.history(id, conv, range),
            Err(reason) => self.deliver(id, &encode_line(ServerLine::Error(reason))),
        }
    }

    fn authenticate(&mut self, name: &UserName, addr: IpAddr, with_password: bool) -> Auth {
        let account = self.accounts.as_ref().and_then(|a| a.get(name));
        match (account, with_password) {
            (None, false) => Auth::Open,
            (None, true) => Auth::Refused(format!(
                "{name} is not registered; log in with the name alone"
            )),
            (Some(account), false) => Auth::Refused(format!(
                "name is registered; log in with \"{} <password>\"",
                account.name
            )),
            (Some(account), true) => {
                let now = Instant::now();
                match self.throttle.retry_at(name, addr, now) {
                    Some(at) => Auth::Refused(format!(
                        "too many login attempts; retry in {} s",
                        (at - now).as_secs_f64().ceil()
                    )),
                    None => {
                        // Counted as a failure now, not when the check ends: otherwise a
                        // burst of attempts would all start before the first one failed.
                        self.throttle.failed(name, addr, now);
                        Auth::Verify(account.phc.clone())
                    }
                }
            }
        }
    }

    fn register(&mut self, id: ConnId, phc: String) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        let reply = match &mut self.accounts {
            None => ServerLine::Error(NO_ACCOUNTS.to_owned()),
            Some(accounts) if accounts.is_registered(&name) => {
                ServerLine::Error(format!("{name} is already registered"))
            }
            Some(accounts) => {
                let account = Account {
                    name: name.clone(),
                    phc,
                };
                accounts.put(account.clone());
                if let Some(cluster) = &self.cluster {
                    cluster.send(ClusterCmd::Account(account.clone()));
                }
                self.write(Write::Account(account));
                info!(%name, "registered");
                ServerLine::Registered(name)
            }
        };
        self.deliver(id, &encode_line(reply));
    }

    fn set_password(&mut self, id: ConnId, phc: String) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        let reply = match &mut self.accounts {
            None => ServerLine::Error(NO_ACCOUNTS.to_owned()),
            Some(accounts) => match accounts.get(&name).cloned() {
                None => ServerLine::Error(format!("{name} is not registered; /register first")),
                Some(mut account) => {
                    account.phc = phc;
                    accounts.put(account.clone());
                    if let Some(cluster) = &self.cluster {
                        cluster.send(ClusterCmd::Account(account.clone()));
                    }
                    self.write(Write::Account(account));
                    info!(%name, "password changed");
                    ServerLine::PasswordChanged
                }
            },
        };
        self.deliver(id, &encode_line(reply));
    }

    fn join(
        &mut self,
        id: ConnId,
        name: UserName,
        authenticated: bool,
        outbox: Outbox,
        accepted: oneshot::Sender<bool>,
        mail: Vec<Message>,
    ) {
        let registered = self
            .accounts
            .as_ref()
            .is_some_and(|a| a.is_registered(&name));
        let refusal = if registered && !authenticated {
            // Registered between this client's authentication and now.
            Some(format!(
                "name is registered; log in with \"{name} <password>\""
            ))
        } else {
            self.roster.refusal(&name)
        };
        if let Some(reason) = refusal {
            outbox.send_last(&encode_line(ServerLine::Error(reason)));
            let _ = accepted.send(false);
            return;
        }
        // The reader only goes on if it hears yes; if it is gone, nobody has seen this
        // login yet and there is nothing to announce or take back.
        if accepted.send(true).is_err() {
            return;
        }
        // A fresh queue has room: the welcome is always this client's first line.
        let _ = outbox.send(&encode_line(ServerLine::Welcome(name.clone())));
        let mail = match self.cluster {
            Some(_) => mail.into(),
            None => self.offline.remove(&name.folded()).unwrap_or_default(),
        };
        self.deliver_offline(mail, &outbox);
        self.roster.insert(id, name.clone(), outbox);
        if self.presence == Presence::All {
            self.pending_joins.push((id, name));
            if self.pending_joins.len() >= MAX_JOIN_BATCH {
                self.flush_joins();
            }
        }
    }

    /// Right after `welcome`: what was kept for `name` while it was away, then
    /// `history-end missed <n>`; each message once.
    fn deliver_offline(&mut self, mail: VecDeque<Message>, outbox: &Outbox) {
        if mail.is_empty() {
            return;
        }
        let mut lines = BytesMut::new();
        for m in &mail {
            lines.extend_from_slice(&encode_line(HistoryLine {
                conv: &Conv::Direct(m.sender.clone()),
                id: m.id,
                time: m.time,
                sender: &m.sender,
                text: &m.text,
            }));
        }
        lines.extend_from_slice(&encode_line(ServerLine::Missed(mail.len())));
        // Up to 100 lines on a fresh queue: past the limit only on a tiny --sendq.
        outbox.send_last(&lines.freeze());
        self.write(Write::Delivered(mail.iter().map(|m| m.id).collect()));
    }

    /// Keeps `text` for the offline registered user `to`; `false` if their mailbox is full.
    fn keep_offline(&mut self, sender: &UserName, to: &UserName, text: &MessageText) -> bool {
        let recipient = to.folded();
        if self
            .offline
            .get(&recipient)
            .is_some_and(|m| m.len() >= MAX_OFFLINE_PER_RECIPIENT)
        {
            return false;
        }
        let message = self.keep_direct(sender, to, text);
        self.offline
            .entry(recipient.clone())
            .or_default()
            .push_back(message.clone());
        self.write(Write::Offline { recipient, message });
        true
    }

    /// Gives a direct message its id and, between two accounts, keeps it in their
    /// `@` history.
    fn keep_direct(&mut self, sender: &UserName, to: &UserName, text: &MessageText) -> Message {
        let (time, micros) = wall_clock();
        let message = Message {
            conv: ConvKey::pair(sender, to),
            id: self.ids.next(micros),
            time,
            sender: sender.clone(),
            text: text.clone(),
        };
        let both_registered = self
            .accounts
            .as_ref()
            .is_some_and(|a| a.is_registered(sender) && a.is_registered(to));
        if both_registered {
            if self.cluster.is_some() {
                // Kept in Redis, where both ends' nodes read it, under one counter.
                self.tell_cluster(ClusterCmd::KeepDirect {
                    place: rooms::pair_place(sender, to),
                    sender: sender.clone(),
                    text: text.clone(),
                });
            } else {
                self.keep(message.clone(), time);
            }
        }
        message
    }

    /// Adds `message` to the history, and to the store's.
    fn keep(&mut self, message: Message, now: chat_proto::Timestamp) {
        if let Some(history) = &mut self.history {
            if let Some(store) = &mut self.store {
                store.push(Write::Message(message.clone()));
            }
            history.push(message, now);
        }
    }

    /// Announces the pending logins. Sending `joined` to everyone for each login makes a
    /// login storm quadratic; instead the `joined` lines of a run of logins are encoded
    /// into one shared buffer, and each peer's queue gets one reference to it, or for a
    /// peer that is itself in the run, to the part after its own line. Every peer still
    /// reads exactly the lines it would have, in the same order: any other event
    /// flushes the run first, and a quiet broker flushes it when the delay is up.
    fn flush_joins(&mut self) {
        if self.pending_joins.is_empty() {
            return;
        }
        let mut chunk = BytesMut::new();
        let mut ends =
            FxHashMap::with_capacity_and_hasher(self.pending_joins.len(), Default::default());
        for (id, name) in self.pending_joins.drain(..) {
            chunk.extend_from_slice(&encode_line(ServerLine::Joined(name)));
            ends.insert(id, chunk.len());
        }
        let chunk = chunk.freeze();
        let mut failed = Vec::new();
        for (id, peer) in self.roster.peers() {
            let line = match ends.get(&id) {
                None => chunk.clone(),
                Some(&end) if end < chunk.len() => chunk.slice(end..),
                Some(_) => continue,
            };
            offer(id, peer, &line, &mut failed);
        }
        if self.cluster.is_some() {
            self.tell_cluster(ClusterCmd::All {
                from: None,
                lines: chunk,
            });
        }
        self.remove(failed);
    }

    /// Sends `text` from `from` once to each distinct destination: a direct line to each
    /// user named, a `*` line to everyone with `*`, and a room line, with a fresh id, to
    /// each room's other members. Then tells the sender which destinations failed.
    fn route(&mut self, from: ConnId, to: &[Recipient], text: &MessageText) {
        let Some(sender) = self.roster.get(from).map(|p| p.name.clone()) else {
            return;
        };
        let mut failed = Vec::new();
        let everyone = to.contains(&Recipient::Everyone);
        if everyone {
            let line = encode_line(FromLine {
                sender: &sender,
                scope: &Scope::Everyone,
                text,
            });
            for (id, peer) in self.roster.peers() {
                if id != from {
                    offer(id, peer, &line, &mut failed);
                }
            }
            if self.cluster.is_some() {
                self.tell_cluster(ClusterCmd::All {
                    from: Some(from),
                    lines: line,
                });
            }
        }
        // Formatted once, on first use, and shared by every user named.
        let mut direct: Option<Line> = None;
        // Destination lists are short: linear scans dedup without allocating sets, and one
        // destination (the common case) cannot repeat, so it allocates nothing at all.
        let dedup = to.len() > 1;
        let mut served: Vec<ConnId> = Vec::new();
        let mut seen: Vec<&Recipient> = Vec::new();
        let mut unknown: Vec<&str> = Vec::new();
        let mut outside: Vec<&str> = Vec::new();
        let mut stored: Vec<UserName> = Vec::new();
        let mut full: Vec<&str> = Vec::new();
        // Who got a direct line, for the `@` history of two accounts (kept only once
        // someone has registered: a plain server's direct path allocates nothing here).
        let keep_direct = self.accounts.as_ref().is_some_and(|a| !a.is_empty());
        let mut direct_to: Vec<UserName> = Vec::new();
        // Users on other nodes, in cluster mode.
        let mut remote: Vec<(UserName, Line)> = Vec::new();
        for dest in to {
            if dedup {
                if seen.contains(&dest) {
                    continue;
                }
                seen.push(dest);
            }
            match dest {
                Recipient::Everyone => {}
                Recipient::User(name) => match self.roster.find(name) {
                    Some((id, _)) if served.contains(&id) => {}
                    Some((id, peer)) => {
                        if dedup {
                            served.push(id);
                        }
                        // With `*`, every other user has had the line; only the sender has not.
                        if !everyone || id == from {
                            let line = direct.get_or_insert_with(|| {
                                encode_line(FromLine {
                                    sender: &sender,
                                    scope: &Scope::Direct,
                                    text,
                                })
                            });
                            offer(id, peer, line, &mut failed);
                            if keep_direct {
                                direct_to.push(peer.name.clone());
                            }
                        }
                    }
                    // Not on this node: the node holding the name's lease gets it.
                    None if self.cluster.is_some() && !everyone => {
                        let line = direct.get_or_insert_with(|| {
                            encode_line(FromLine {
                                sender: &sender,
                                scope: &Scope::Direct,
                                text,
                            })
                        });
                        remote.push((name.clone(), line.clone()));
                    }
                    None if self.cluster.is_some() => {}
                    None => match self.accounts.as_ref().and_then(|a| a.get(name)) {
                        Some(account) if stored.contains(&account.name) => {}
                        Some(account) => {
                            let owner = account.name.clone();
                            if self.keep_offline(&sender, &owner, text) {
                                stored.push(owner);
                            } else {
                                full.push(name.as_str());
                            }
                        }
                        None => unknown.push(name.as_str()),
                    },
                },
                Recipient::Room(room) if !self.roster.is_member(from, room) => {
                    outside.push(room.as_str());
                }
                Recipient::Room(room) => self.say_in_room(from, &sender, room, text, &mut failed),
            }
        }
        for to in direct_to {
            self.keep_direct(&sender, &to, text);
        }
        for (to, line) in remote {
            // A registered recipient nobody holds gets the message kept for them.
            let account = self
                .accounts
                .as_ref()
                .and_then(|a| a.get(&to))
                .map(|a| a.name.clone());
            let both_registered = account.is_some()
                && self
                    .accounts
                    .as_ref()
                    .is_some_and(|a| a.is_registered(&sender));
            if let (true, Some(owner)) = (both_registered, &account) {
                self.tell_cluster(ClusterCmd::KeepDirect {
                    place: rooms::pair_place(&sender, owner),
                    sender: sender.clone(),
                    text: text.clone(),
                });
            }
            let (to, mail) = match account {
                Some(owner) => {
                    let (time, micros) = wall_clock();
                    let message = Message {
                        conv: ConvKey::pair(&sender, &owner),
                        id: self.ids.next(micros),
                        time,
                        sender: sender.clone(),
                        text: text.clone(),
                    };
                    (owner, Some(message))
                }
                None => (to, None),
            };
            self.tell_cluster(ClusterCmd::Direct {
                from,
                to,
                line,
                mail,
            });
        }
        self.remove(failed);
        for name in stored {
            self.deliver(from, &encode_line(ServerLine::Stored(name)));
        }
        if !full.is_empty() {
            let reason = format!(
                "offline mailbox full ({MAX_OFFLINE_PER_RECIPIENT} messages): {}",
                full.join(",")
            );
            self.deliver(from, &encode_line(ServerLine::Error(reason)));
        }
        if !unknown.is_empty() {
            let reason = format!("no such user: {}", unknown.join(","));
            self.deliver(from, &encode_line(ServerLine::Error(reason)));
        }
        if !outside.is_empty() {
            let reason = format!("not a member of {}", outside.join(","));
            self.deliver(from, &encode_line(ServerLine::Error(reason)));
        }
    }

    /// Gives a room message its id, sends it to the room's other members, and stores it.
    fn say_in_room(
        &mut self,
        from: ConnId,
        sender: &UserName,
        room: &RoomName,
        text: &MessageText,
        failed: &mut Vec<ConnId>,
    ) {
        if self.cluster.is_some() {
            // Ids, order and storage come from Redis; members here hear it back from there.
            self.tell_cluster(ClusterCmd::RoomSay {
                from,
                room: room.clone(),
                sender: sender.clone(),
                text: text.clone(),
            });
            return;
        }
        let (time, micros) = wall_clock();
        let id = self.ids.next(micros);
        let scope = Scope::Room {
            room: room.clone(),
            id,
        };
        let line = encode_line(FromLine {
            sender,
            scope: &scope,
            text,
        });
        for (member, peer) in self.roster.members(room).into_iter().flatten() {
            if member != from {
                offer(member, peer, &line, failed);
            }
        }
        if self.history.is_some() {
            let message = Message {
                conv: ConvKey::Room(room.clone()),
                id,
                time,
                sender: sender.clone(),
                text: text.clone(),
            };
            self.keep(message, time);
        }
    }

    fn join_room(&mut self, id: ConnId, room: RoomName) {
        if !self.roster.join_room(id, &room) {
            let reason = format!("already a member of {room}");
            self.deliver(id, &encode_line(ServerLine::Error(reason)));
            return;
        }
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        if self.cluster.is_some() {
            // Every member on every node hears it through the room's channel.
            self.tell_cluster(ClusterCmd::JoinRoom {
                from: id,
                room,
                name,
            });
            return;
        }
        let joined = encode_line(ServerLine::JoinedRoom {
            room: room.clone(),
            name,
        });
        self.tell_room(&room, &joined);
        if let Some(names) = self.roster.member_names(&room) {
            self.deliver(id, &encode_line(ServerLine::Names { room, names }));
        }
    }

    fn part_room(&mut self, id: ConnId, room: RoomName) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        if !self.roster.is_member(id, &room) {
            let reason = format!("not a member of {room}");
            self.deliver(id, &encode_line(ServerLine::Error(reason)));
            return;
        }
        if self.cluster.is_some() {
            self.roster.part_room(id, &room);
            let last_here = self.roster.members(&room).is_none();
            self.tell_cluster(ClusterCmd::PartRoom {
                from: Some(id),
                room,
                name,
                last_here,
            });
            return;
        }
        let left = encode_line(ServerLine::LeftRoom {
            room: room.clone(),
            name,
        });
        // Told while still a member, so the one parting hears it too.
        self.tell_room(&room, &left);
        self.roster.part_room(id, &room);
    }

    /// Queues `line` for every member of `room`.
    fn tell_room(&mut self, room: &RoomName, line: &Line) {
        let mut failed = Vec::new();
        for (member, peer) in self.roster.members(room).into_iter().flatten() {
            offer(member, peer, line, &mut failed);
        }
        self.remove(failed);
    }

    fn history(&mut self, id: ConnId, conv: Conv, range: HistoryRange) {
        let Some(limit) = self.roster.get(id).map(|p| p.outbox.limit()) else {
            return;
        };
        if self.cluster.is_some() {
            // Rooms and two accounts' direct messages are kept in Redis in cluster mode.
            let place = match &conv {
                Conv::Room(room) => Ok(rooms::room_place(room)),
                Conv::Direct(other) => self.direct_key(id, other).map(|_| {
                    let me = self.roster.get(id).map(|p| p.name.clone());
                    rooms::pair_place(&me.unwrap_or_else(|| other.clone()), other)
                }),
            };
            match place {
                Ok(place) => self.tell_cluster(ClusterCmd::History {
                    from: id,
                    conv,
                    place,
                    range,
                }),
                Err(reason) => self.deliver(id, &encode_line(ServerLine::Error(reason))),
            }
            return;
        }
        let key = match &conv {
            Conv::Room(room) => Ok(ConvKey::Room(room.clone())),
            Conv::Direct(other) => self.direct_key(id, other),
        };
        let reply = match (key, &mut self.history) {
            (Err(reason), _) => Err(reason),
            (Ok(_), None) => Err("history is off on this server".to_owned()),
            (Ok(key), Some(history)) => match self.store.as_ref().and_then(StoreWriter::failure) {
                Some(failure) => Err(format!("history is unavailable: {failure}")),
                // Half the send queue at most, so a reply never cuts its asker off.
                None => Ok(history
                    .reply(&key, &conv, range, wall_clock().0, limit / 2)
                    .lines
                    .freeze()),
            },
        };
        let line = reply.unwrap_or_else(|reason| encode_line(ServerLine::Error(reason)));
        self.deliver(id, &line);
    }

    /// The conversation between `id` and `other`, if both are accounts: only its two
    /// members can name it, since the asker is always one of them.
    fn direct_key(&self, id: ConnId, other: &UserName) -> Result<ConvKey, String> {
        let me = self.roster.get(id).map(|p| &p.name);
        let accounts = self.accounts.as_ref();
        match me.zip(accounts) {
            Some((me, accounts)) if accounts.is_registered(me) && accounts.is_registered(other) => {
                Ok(ConvKey::pair(me, other))
            }
            _ => Err(format!(
                "no history is kept for @{other}: direct messages are kept only between two registered accounts"
            )),
        }
    }

    /// Queues `line` for `id` if online, dropping it if it cannot take it.
    fn deliver(&mut self, id: ConnId, line: &Line) {
        let mut failed = Vec::new();
        if let Some(peer) = self.roster.get(id) {
            offer(id, peer, line, &mut failed);
        }
        self.remove(failed);
    }

    /// Takes `ids` off the roster and tells the others: `left <#room> <name>` to the
    /// members of each room it was in, then `left <name>` to everyone. Dropping a peer
    /// closes its queue: its writer sends what is queued and closes the connection.
    /// Telling others may drop more slow peers; they join the worklist instead of
    /// recursing.
    fn remove(&mut self, mut ids: Vec<ConnId>) {
        if ids.is_empty() {
            return;
        }
        // Nobody may read `left` for a login it has not been told about yet.
        self.flush_joins();
        while let Some(id) = ids.pop() {
            let Some((peer, rooms)) = self.roster.remove(id) else {
                continue;
            };
            info!(name = %peer.name, online = self.roster.online(), "removed from roster");
            for room in rooms {
                if self.cluster.is_some() {
                    let last_here = self.roster.members(&room).is_none();
                    self.tell_cluster(ClusterCmd::PartRoom {
                        from: None,
                        room,
                        name: peer.name.clone(),
                        last_here,
                    });
                    continue;
                }
                let left = encode_line(ServerLine::LeftRoom {
                    room: room.clone(),
                    name: peer.name.clone(),
                });
                for (member, other) in self.roster.members(&room).into_iter().flatten() {
                    if !ids.contains(&member) {
                        offer(member, other, &left, &mut ids);
                    }
                }
            }
            if self.presence == Presence::Rooms {
                continue;
            }
            let left = encode_line(ServerLine::Left(peer.name));
            for (other_id, other) in self.roster.peers() {
                if !ids.contains(&other_id) {
                    offer(other_id, other, &left, &mut ids);
                }
            }
            if let Some(cluster) = &self.cluster {
                cluster.send(ClusterCmd::All {
                    from: None,
                    lines: left,
                });
            }
        }
    }
}

/// Queues `line` for `peer`. A peer that cannot take it is added to `failed`, for the
/// caller to remove once it is done iterating the roster; a slow one is first told why
/// and kicked, so its writer drops its backlog.
fn offer(id: ConnId, peer: &Peer, line: &Line, failed: &mut Vec<ConnId>) {
    match peer.outbox.send(line) {
        Ok(()) => {}
        Err(Undeliverable::Full) => {
            if peer.outbox.is_kicked() {
                return;
            }
            warn!(name = %peer.name, "send queue full; disconnecting");
            let reason = format!(
                "send queue exceeded ({} bytes); you are not reading fast enough",
                peer.outbox.limit()
            );
            peer.outbox
                .send_last(&encode_line(ServerLine::Error(reason)));
            peer.outbox.kick();
            failed.push(id);
        }
        Err(Undeliverable::Closed) => failed.push(id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Retention;
    use crate::sendq::{self, Inbox};

    fn broker(strict_names: bool) -> Broker {
        let history = Some(History::new(Retention::default()));
        Broker::new(strict_names, history, None, IdClock::default())
    }

    fn join(broker: &mut Broker, id: ConnId, name: &str) -> Inbox {
        let (outbox, inbox) = sendq::channel(1 << 20);
        let (accepted, _answer) = oneshot::channel();
        let name = UserName::parse(name).expect("a valid name");
        broker.handle(BrokerEvent::Join {
            id,
            name,
            authenticated: false,
            outbox,
            accepted,
            mail: Vec::new(),
        });
        inbox
    }

    fn say(broker: &mut Broker, id: ConnId, line: &str) {
        let request = match line.parse() {
            Ok(line) => Request::Line(line),
            Err(e) => Request::Invalid(e.to_string()),
        };
        broker.handle(BrokerEvent::Lines {
            id,
            lines: vec![request],
        });
    }

    /// Everything queued for a peer, as text.
    fn read(inbox: &mut Inbox) -> String {
        let mut out = BytesMut::new();
        inbox.take_into(&mut out, usize::MAX);
        String::from_utf8(out.to_vec()).expect("UTF-8")
    }

    #[test]
    fn strict_names_refuse_look_alikes_of_names_online() {
        let mut broker = broker(true);
        let _alice = join(&mut broker, 1, "alice");
        let mut fake = join(&mut broker, 2, "\u{430}lice");
        assert_eq!(
            read(&mut fake),
            "error: name too similar to alice, who is online\n"
        );
        broker.handle(BrokerEvent::Leave { id: 1 });
        let mut later = join(&mut broker, 3, "\u{430}lice");
        assert_eq!(
            read(&mut later),
            "welcome \u{430}lice\n",
            "free once the original left"
        );
    }

    #[test]
    fn a_run_of_logins_is_announced_as_if_one_by_one() {
        let mut broker = broker(false);
        let mut old = join(&mut broker, 1, "old");
        broker.flush_joins();
        assert_eq!(read(&mut old), "welcome old\n");
        let mut a = join(&mut broker, 2, "a");
        let mut b = join(&mut broker, 3, "b");
        let mut c = join(&mut broker, 4, "c");
        assert_eq!(read(&mut old), "", "announcements wait for the run to end");
        broker.flush_joins();
        assert_eq!(read(&mut old), "joined a\njoined b\njoined c\n");
        assert_eq!(read(&mut a), "welcome a\njoined b\njoined c\n");
        assert_eq!(read(&mut b), "welcome b\njoined c\n");
        assert_eq!(read(&mut c), "welcome c\n");
    }

    #[test]
    fn the_login_checks_between_joins_do_not_end_a_run() {
        let mut broker = broker(false);
        let mut old = join(&mut broker, 1, "old");
        broker.flush_joins();
        read(&mut old);
        let mut inboxes = Vec::new();
        for (id, name) in [(2, "a"), (3, "b")] {
            let (reply, _answer) = oneshot::channel();
            let name = UserName::parse(name).expect("a valid name");
            broker.handle(BrokerEvent::Authenticate {
                name: name.clone(),
                addr: IpAddr::from([127, 0, 0, 1]),
                with_password: false,
                reply,
            });
            inboxes.push(join(&mut broker, id, name.as_str()));
        }
        broker.flush_joins();
        assert_eq!(old.queued_lines(), 1, "one shared buffer for the whole run");
        assert_eq!(read(&mut old), "joined a\njoined b\n");
    }

    #[test]
    fn any_other_event_announces_pending_logins_first() {
        let mut broker = broker(false);
        let mut old = join(&mut broker, 1, "old");
        broker.flush_joins();
        read(&mut old);
        let _new = join(&mut broker, 2, "new");
        say(&mut broker, 2, "old: hi");
        assert_eq!(read(&mut old), "joined new\nfrom new: hi\n");
        let _gone = join(&mut broker, 3, "gone");
        broker.handle(BrokerEvent::Leave { id: 3 });
        assert_eq!(read(&mut old), "joined gone\nleft gone\n");
    }

    #[test]
    fn a_room_member_who_disconnects_is_left_in_the_room_then_everywhere() {
        let mut broker = broker(false);
        let mut alice = join(&mut broker, 1, "alice");
        let _bob = join(&mut broker, 2, "bob");
        say(&mut broker, 1, "/join #rust");
        say(&mut broker, 2, "/join #rust");
        read(&mut alice);
        broker.handle(BrokerEvent::Leave { id: 2 });
        assert_eq!(read(&mut alice), "left #rust bob\nleft bob\n");
    }

    #[test]
    fn a_slow_peer_is_told_the_limit_and_dropped_and_others_go_on() {
        let mut broker = broker(false);
        let (outbox, mut slow) = sendq::channel(100);
        let (accepted, _answer) = oneshot::channel();
        broker.handle(BrokerEvent::Join {
            id: 1,
            name: UserName::parse("slow").expect("a valid name"),
            authenticated: false,
            outbox,
            accepted,
            mail: Vec::new(),
        });
        let mut fast = join(&mut broker, 2, "fast");
        for i in 0..10 {
            say(&mut broker, 2, &format!("slow: message number {i}"));
        }
        say(&mut broker, 2, "/who");
        let text = read(&mut slow);
        assert!(
            text.ends_with(
                "error: send queue exceeded (100 bytes); you are not reading fast enough\n"
            ),
            "{text:?}"
        );
        assert_eq!(
            futures::FutureExt::now_or_never(std::future::poll_fn(|cx| slow.poll_ready(cx))),
            Some(sendq::Ready::Kicked)
        );
        let text = read(&mut fast);
        assert!(text.starts_with("welcome fast\nleft slow\n"), "{text:?}");
        assert!(
            text.ends_with("error: no such user: slow\nusers fast\n"),
            "{text:?}"
        );
    }

    #[test]
    fn a_fourth_attempt_within_the_minute_is_refused_before_any_hashing() {
        let mut broker = broker(false).with_accounts(Accounts::default(), Vec::new());
        let bob = UserName::parse("bob").expect("a valid name");
        if let Some(accounts) = &mut broker.accounts {
            accounts.put(Account {
                name: bob.clone(),
                phc: "$argon2id$stored".to_owned(),
            });
        }
        let addr: IpAddr = "192.0.2.7".parse().expect("an address");
        // A right password gives its attempt back.
        assert!(matches!(
            broker.authenticate(&bob, addr, true),
            Auth::Verify(_)
        ));
        broker.handle(BrokerEvent::LoginPassed {
            name: bob.clone(),
            addr,
        });
        // Three checks under way at once are all the name gets.
        for _ in 0..3 {
            assert_eq!(
                broker.authenticate(&bob, addr, true),
                Auth::Verify("$argon2id$stored".to_owned())
            );
        }
        assert_eq!(
            broker.authenticate(&bob, addr, true),
            Auth::Refused("too many login attempts; retry in 60 s".to_owned()),
            "no hash handed out, so nothing is hashed"
        );
    }
}
