//! The broker: the one task that decides. It owns the [`Roster`] (this node's
//! connections and their rooms) and the [`Accounts`], applies every rule, and hands
//! what must be carried to the [`Backend`]; what the backend has to say comes back as
//! [`Answer`]s, handled in `Broker::answer` whichever backend it is.
//!
//! It never awaits a client. Each peer's queue is bounded in bytes and fed without
//! waiting; a full queue means that client is too slow (IRC's "SendQ exceeded"), so it is
//! told why and dropped, and the others never notice. A closed queue means its writer
//! died; that peer is dropped too.
//!
//! By command: `login` (authentication, admission, accounts), `route` (direct, `*` and
//! room messages), `rooms` (join, part and the listings, history).

mod govern;
mod login;
mod rooms;
mod route;
mod sessions;

use std::collections::{HashSet, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use bytes::BytesMut;
use chat_proto::{ClientLine, MessageId, MessageText, RoomName, ServerLine, UserName, encode_line};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, warn};

use crate::accounts::Accounts;
use crate::backend::{Answer, Answers, Auth, Backend, Departure};
use crate::config::{Config, Presence};
use crate::governance::RoomState;
use crate::metrics::{Kind, METRICS, Tally};
use crate::roster::{ConnId, Peer, Removed, Roster};
use crate::sendq::{Line, Note, Outbox, Undeliverable, noted};

/// Lines a connection may send while one of its room commands waits for the room to be
/// fetched.
const MAX_HELD_LINES: usize = 1024;
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
    /// Bytes for the sender's own writer, queued in order with the replies to its
    /// lines: how a front-end other than the native one (IRC) answers what it handles
    /// itself, or marks where the replies to one of its commands begin and end.
    Mark(Line),
    /// Like [`Request::Mark`], but queued at once: ahead of whatever the lines before it
    /// still wait for (where the replies to the next command begin).
    Begin(Line),
    /// Whether the sender also gets the lines of its own messages (IRC's
    /// `echo-message`): its room lines with their ids, and `sent` for the rest.
    Echo(bool),
    /// An IRC `NOTICE`: a message like `/send`, which IRC clients get as a notice.
    Notice {
        /// Its destinations.
        to: chat_proto::Recipients,
        /// Its text.
        text: MessageText,
    },
    /// An IRC `PART` with a reason, which the IRC clients among the members are told.
    Part {
        /// The room.
        room: RoomName,
        /// Why.
        reason: MessageText,
    },
    /// An IRC `QUIT`'s reason, which the IRC clients who see the user leave are told; the
    /// connection closes next.
    Quit(MessageText),
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
    /// A client may log in. The broker answers on `accepted`; if the login is refused it
    /// has already queued the `error:` on `outbox` and dropped it.
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
    /// The configuration was reloaded (SIGHUP): these accounts are the server operators
    /// from now on.
    Opers(Vec<UserName>),
}

/// Runs `broker` until every `broker_tx` is dropped, then delivers what was already on
/// its way from elsewhere (for at most `drain_within`), says `bye` to everyone and lets
/// the backend finish what it was handed.
pub async fn broker_loop(
    mut events: mpsc::Receiver<BrokerEvent>,
    mut broker: Broker,
    drain_within: Duration,
) {
    // Answers that come later, from a backend that answers later; taken first in every
    // turn, since they never wait on the broker's intake and the backend's room depends
    // on them being read.
    let mut later = broker.backend.answers();
    // When the pending `joined` announcements are due; see `Broker::flush_joins`.
    let mut announce_at: Option<Instant> = None;
    loop {
        let accepting = !broker.backend.is_busy();
        tokio::select! {
            biased;
            Some(answer) = recv_or_never(&mut later) => {
                broker.flush_joins();
                broker.answers.push_back(answer);
                broker.settle();
                while let Some(answer) = later.as_mut().and_then(|rx| rx.try_recv().ok()) {
                    broker.answers.push_back(answer);
                    broker.settle();
                }
            }
            event = events.recv(), if accepting => {
                let Some(event) = event else { break };
                broker.now = Instant::now();
                broker.handle(event);
                // Route everything already waiting before yielding: the writers this wakes
                // then find whole batches in their queues and write each with one syscall.
                for _ in 0..BROKER_BATCH {
                    if broker.backend.is_busy() {
                        break;
                    }
                    let Ok(event) = events.try_recv() else { break };
                    broker.handle(event);
                }
            }
            () = sleep_until_or_never(announce_at) => {
                broker.flush_joins();
                broker.settle();
            }
            () = sleep_until_or_never(broker.whois_deadline()) => {
                broker.whois_timed_out();
                broker.settle();
            }
            () = broker.backend.wake() => {}
        }
        broker.backend.flush();
        broker.tally.publish();
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
    stop(broker, later, drain_within).await;
}

/// The broker's end, once every reader has stopped: see [`broker_loop`].
async fn stop(
    mut broker: Broker,
    mut later: Option<mpsc::Receiver<Answer>>,
    drain_within: Duration,
) {
    broker.tally.publish();
    // Every reader has stopped, so everything anyone here sent is routed; what others
    // sent this node's users before now is still delivered. Queue the farewell behind
    // it; dropping the roster then closes every queue and the writers finish.
    broker.flush_joins();
    broker.settle();
    broker.stopping = true;
    broker.backend.drain(&mut broker.answers);
    broker.settle();
    if let Some(later) = later.as_mut() {
        let drained = async {
            while !broker.drained {
                let Some(answer) = later.recv().await else {
                    return;
                };
                broker.answers.push_back(answer);
                broker.settle();
            }
        };
        if tokio::time::timeout(drain_within, drained).await.is_err() {
            warn!(timeout = ?drain_within, "lines still on their way to this node were not all delivered");
        }
    }
    broker.backend.node_stopping(&broker.roster);
    let bye = encode_line(ServerLine::Bye("server shutting down".to_owned()));
    for (_, peer) in broker.roster.peers() {
        peer.outbox.send_last(&bye);
    }
    drop(broker.roster);
    drop(later);
    broker.backend.finish().await;
}

async fn recv_or_never<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// A login waiting for the backend's [`Answer::Admitted`] or [`Answer::Refused`].
#[derive(Debug)]
struct Admitting {
    name: UserName,
    outbox: Outbox,
    accepted: oneshot::Sender<bool>,
    /// Its password was checked: it may be one more session of its account.
    authenticated: bool,
}

/// A `/history` request not answered yet. Asked by a member of the room, live messages
/// may reach it before the reply (from a backend that answers later); the first one's
/// id marks where the reply stops, so nothing comes twice.
#[derive(Debug)]
struct Awaiting {
    conn: ConnId,
    room: Option<RoomName>,
    first_live: Option<MessageId>,
}

/// The broker's state: who is online here, who is registered, and the way to the rest.
#[derive(Debug)]
pub struct Broker {
    roster: Roster,
    /// Logins not yet announced, in order; see [`Broker::flush_joins`].
    pending_joins: Vec<(ConnId, UserName)>,
    /// Logins the backend has not answered yet.
    admitting: FxHashMap<ConnId, Admitting>,
    /// History requests not answered yet, oldest first.
    awaiting: Vec<Awaiting>,
    /// `None` where accounts cannot be kept: names that vanished at a restart would be
    /// handed over.
    accounts: Option<Accounts>,
    presence: Presence,
    backend: Box<dyn Backend>,
    /// Answers not yet handled, oldest first; see [`Broker::settle`].
    answers: Answers,
    /// Peers that could not take a line, to remove once nothing iterates the roster.
    failed: Vec<ConnId>,
    /// Shutting down: presence from elsewhere is no longer told (nobody is sent `left`
    /// at shutdown).
    stopping: bool,
    /// Shutting down, and everything sent here before has come.
    drained: bool,
    /// The governance of each room with members here, and of every registered room
    /// this node has heard of.
    rooms: FxHashMap<RoomName, RoomState>,
    /// Server operators' folded names (`--oper`).
    opers: HashSet<String>,
    /// Messages and deliveries counted this turn, for [`METRICS`].
    tally: Tally,
    /// Most connections of one account (`--max-sessions`).
    max_sessions: usize,
    /// When the broker's current turn began: a message's time for `/whois` idle, read
    /// once per turn rather than once per message.
    now: Instant,
    /// Away messages of users elsewhere, by folded name.
    remote_away: std::collections::HashMap<String, MessageText>,
    /// When each sender was last told that a recipient is away, by their folded names.
    away_told: std::collections::HashMap<(String, String), Instant>,
    /// Lines of connections waiting for a room to be fetched, in order: a client's
    /// lines are decided in the order it sent them.
    held: FxHashMap<ConnId, VecDeque<Request>>,
    /// Connections waiting for a `/whois` answered elsewhere, of whom, and until when:
    /// a node that died meanwhile never answers.
    whois_waiting: Vec<(ConnId, UserName, Instant)>,
    /// The reasons of IRC clients that said `QUIT`, until their connections close.
    quit_reasons: FxHashMap<ConnId, MessageText>,
}

impl Broker {
    /// A broker with nobody online, under `config`'s rules, carried by `backend`.
    pub fn new(config: &Config, mut backend: Box<dyn Backend>) -> Self {
        let accounts = backend.accounts().map(|loaded| {
            let mut accounts = Accounts::default();
            for account in loaded {
                accounts.put(account);
            }
            accounts
        });
        let rooms = backend.registered_rooms().into_iter().collect();
        Self {
            roster: Roster::new(config.strict_names),
            pending_joins: Vec::new(),
            admitting: FxHashMap::default(),
            awaiting: Vec::new(),
            accounts,
            presence: config.presence,
            backend,
            answers: Answers::new(),
            failed: Vec::new(),
            stopping: false,
            drained: false,
            rooms,
            opers: config.opers.iter().map(UserName::folded).collect(),
            tally: Tally::default(),
            max_sessions: config.max_sessions,
            held: FxHashMap::default(),
            quit_reasons: FxHashMap::default(),
            whois_waiting: Vec::new(),
            away_told: std::collections::HashMap::new(),
            remote_away: std::collections::HashMap::new(),
            now: Instant::now(),
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
            } => self.authenticate(name, addr, with_password, reply),
            BrokerEvent::LoginPassed { name, addr } => self.backend.forgive(&name, addr),
            BrokerEvent::Join {
                id,
                name,
                authenticated,
                outbox,
                accepted,
            } => self.join(id, name, authenticated, outbox, accepted),
            BrokerEvent::Lines { id, lines } => {
                for line in lines {
                    // The sender may have been dropped by an earlier line's reply.
                    if self.roster.get(id).is_none() {
                        return;
                    }
                    if self.hold(id, line) {
                        continue;
                    }
                    self.settle();
                }
            }
            BrokerEvent::Fatal { id, reason } => {
                if let Some(peer) = self.roster.get(id) {
                    peer.outbox
                        .send_last(&encode_line(ServerLine::Error(reason)));
                    self.failed.push(id);
                }
            }
            BrokerEvent::Leave { id } => self.failed.push(id),
            BrokerEvent::Opers(opers) => {
                self.opers = opers.iter().map(UserName::folded).collect();
            }
        }
        self.settle();
    }

    fn line(&mut self, id: ConnId, request: Request) {
        let line = match request {
            Request::Line(line) => line,
            Request::Invalid(reason) => return self.error(id, reason),
            Request::Register(phc) => return self.register(id, phc),
            Request::SetPassword(phc) => return self.set_password(id, phc),
            Request::Mark(line) => {
                return self.backend.reply_after(id, line, &mut self.answers);
            }
            Request::Begin(line) => return self.deliver(id, &line),
            Request::Echo(on) => return self.roster.set_echo(id, on),
            Request::Notice { to, text } => {
                self.roster.touch(id, self.now);
                return self.route(id, &to, &text, true);
            }
            Request::Part { room, reason } => return self.part_room(id, room, Some(&reason)),
            Request::Quit(reason) => {
                // Taken back when the connection is: only for one that is online.
                if self.roster.get(id).is_some() {
                    self.quit_reasons.insert(id, reason);
                }
                return;
            }
        };
        match line {
            ClientLine::Register(_) | ClientLine::SetPassword(_) => {
                // The reader hashes these; a password never reaches the broker.
                self.error(id, "a password line reached the broker unhashed".to_owned());
            }
            ClientLine::Send { to, text } => {
                // Idle, as `/whois` tells it, is since the last message, as on IRC:
                // a client's own `/ping` and `/read` do not count.
                self.roster.touch(id, self.now);
                self.route(id, &to, &text, false);
            }
            ClientLine::Who => {
                let away = self.away_names();
                self.backend.who(id, away, &self.roster, &mut self.answers);
            }
            ClientLine::Rooms => {
                let hidden = self.secret_rooms(id);
                self.backend
                    .rooms(id, &hidden, &self.roster, &mut self.answers);
            }
            ClientLine::Join(room) => self.join_room(id, room),
            ClientLine::Part(room) => self.part_room(id, room, None),
            ClientLine::History { conv, range } => self.history(id, conv, range),
            ClientLine::Ping(token) => {
                let pong = encode_line(ServerLine::Pong(token));
                self.backend.reply_after(id, pong, &mut self.answers);
            }
            ClientLine::Away(text) => self.set_away(id, text),
            ClientLine::Whois(name) => self.whois(id, &name),
            ClientLine::Read { conv, id: read } => self.read_marker(id, conv, read),
            line @ (ClientLine::Names(_)
            | ClientLine::SetRole { .. }
            | ClientLine::Topic { .. }
            | ClientLine::ClearTopic(_)
            | ClientLine::Mode { .. }
            | ClientLine::Kick { .. }
            | ClientLine::Ban { .. }
            | ClientLine::Bans(_)
            | ClientLine::Invite { .. }
            | ClientLine::RegisterRoom(_)
            | ClientLine::UnregisterRoom(_)
            | ClientLine::Kill { .. }
            | ClientLine::Suspend { .. }) => self.govern(id, line),
        }
    }

    /// Handles `request` of `id`, or keeps it behind a fetch `id` waits for; `true` if
    /// kept. A client that goes on sending while waiting (a fetch takes a round trip
    /// to Redis at most) is cut off past [`MAX_HELD_LINES`].
    fn hold(&mut self, id: ConnId, request: Request) -> bool {
        // Nobody waits, the common case: no lookup per line.
        let waiting = (!self.held.is_empty())
            .then(|| self.held.get_mut(&id))
            .flatten();
        let Some(held) = waiting else {
            self.line(id, request);
            return false;
        };
        if held.len() >= MAX_HELD_LINES {
            let reason = "too many lines while a room command was under way".to_owned();
            self.disconnect(id, reason);
        } else {
            held.push_back(request);
        }
        true
    }

    /// When the first `/whois` still waiting for another node gives up.
    fn whois_deadline(&self) -> Option<Instant> {
        self.whois_waiting.iter().map(|(.., until)| *until).min()
    }

    /// Every `/whois` whose answer did not come in time: the asker is told, and goes on.
    fn whois_timed_out(&mut self) {
        let now = Instant::now();
        let (late, waiting) = std::mem::take(&mut self.whois_waiting)
            .into_iter()
            .partition(|(.., until)| *until <= now);
        self.whois_waiting = waiting;
        for (id, name, _) in late {
            self.error(id, format!("no answer about {name} in time"));
            self.release(id);
        }
    }

    /// `id` waits for a room to be fetched: its next lines wait too.
    fn wait_for_fetch(&mut self, id: ConnId) {
        self.held.entry(id).or_default();
    }

    /// The fetch `id` waited for came: its lines held meanwhile go on, until one waits
    /// again.
    fn release(&mut self, id: ConnId) {
        let Some(mut held) = self.held.remove(&id) else {
            return;
        };
        while let Some(request) = held.pop_front() {
            if self.roster.get(id).is_none() {
                return;
            }
            self.line(id, request);
            if let Some(again) = self.held.get_mut(&id) {
                again.extend(held);
                return;
            }
        }
    }

    /// Handles every answer waiting, and removes every peer that failed meanwhile; each
    /// may bring more of the other, so this is a worklist rather than recursion.
    fn settle(&mut self) {
        loop {
            if let Some(answer) = self.answers.pop_front() {
                self.answer(answer);
            } else if let Some(id) = self.failed.pop() {
                self.remove(id);
            } else {
                return;
            }
        }
    }

    /// Acts on what the backend said: the one place where both modes' deliveries land.
    fn answer(&mut self, answer: Answer) {
        if self.stopping && is_presence(&answer) {
            return;
        }
        match answer {
            Answer::Reply { to, lines } => self.deliver(to, &lines),
            Answer::Whois { to, lines } => {
                // Too late, the asker was told so and went on: dropped.
                if let Some(at) = self.whois_waiting.iter().position(|(id, ..)| *id == to) {
                    self.whois_waiting.swap_remove(at);
                    self.deliver(to, &lines);
                    self.release(to);
                }
            }
            Answer::ToUser { folded, lines } => {
                let sessions = self.sessions_of(&folded);
                if is_message(&lines) {
                    self.tally.delivered(
                        Kind::Direct,
                        u64::try_from(sessions.len()).unwrap_or(u64::MAX),
                    );
                }
                for id in sessions {
                    self.deliver(id, &lines);
                }
            }
            Answer::ToAll { lines, except } => {
                let skip = except.map(|folded| self.sessions_of(&folded));
                let mut delivered = 0;
                for (id, peer) in self.roster.peers() {
                    if !skip.as_ref().is_some_and(|skip| skip.contains(&id)) {
                        offer(id, peer, &lines, &mut self.failed);
                        delivered += 1;
                    }
                }
                if is_message(&lines) {
                    self.tally.delivered(Kind::Everyone, delivered);
                }
            }
            Answer::Room {
                room,
                lines,
                except,
                plus,
                id,
            } => {
                if let (Some(id), false) = (id, self.awaiting.is_empty()) {
                    self.seen_live(&room, id, except);
                }
                let mut delivered = 0;
                for (id, peer) in self.roster.members(&room).into_iter().flatten() {
                    if Some(id) != except || peer.echo {
                        offer(id, peer, &lines, &mut self.failed);
                        delivered += 1;
                    }
                }
                if id.is_some() {
                    self.tally.delivered(Kind::Room, delivered);
                }
                if let Some(plus) = plus {
                    self.deliver(plus, &lines);
                }
            }
            Answer::History { to, lines } => self.history_answered(to, &lines),
            Answer::Direct {
                to,
                stored,
                full,
                unknown,
            } => self.direct_failed(to, stored, full, unknown),
            Answer::Drained => self.drained = true,
            Answer::Attempt { reply, auth } => {
                let _ = reply.send(auth);
            }
            Answer::Admitted { conn, mail, shared } => self.admitted(conn, &mail, shared),
            Answer::AccountRoom {
                folded,
                room,
                joined,
            } => self.account_room(&folded, room, joined),
            Answer::AccountNodes { folded, nodes } => {
                if let Some(user) = self.roster.find_folded_mut(&folded) {
                    user.nodes = nodes;
                }
            }
            Answer::Refused { conn, reason } => self.refused(conn, reason),
            Answer::Account(account) => {
                if account.suspended {
                    self.suspended(&account, "a server operator");
                }
                if let Some(accounts) = &mut self.accounts {
                    accounts.put(account);
                }
            }
            Answer::Governed { room, changes } => self.governed(&room, &changes),
            Answer::Fetched {
                to,
                room,
                line,
                found,
            } => {
                self.fetched(to, room, line, found.map(|found| *found));
                self.release(to);
            }
            Answer::Away { folded, text } => {
                // Away is the account's, also for its sessions here.
                if let Some(user) = self.roster.find_folded_mut(&folded) {
                    user.away = text.clone().map(Box::new);
                }
                match text {
                    Some(text) => self.remote_away.insert(folded, text),
                    None => self.remote_away.remove(&folded),
                };
            }
            Answer::WhoisAsked { from, folded } => {
                let lines = match self.roster.find_folded(&folded) {
                    Some(user) => self.whois_lines(user),
                    None => encode_line(ServerLine::Error("not online".to_owned())),
                };
                self.backend.reply_remote(from, lines);
            }
            Answer::FetchFailed { to, reason } => {
                self.error(to, reason);
                self.release(to);
            }
            Answer::Kill { folded, lines } => {
                for id in self.sessions_of(&folded) {
                    self.disconnect_with(id, &lines);
                }
            }
            Answer::Lost { names, reason } => {
                let bye = encode_line(ServerLine::Bye(reason));
                for folded in names {
                    for id in self.sessions_of(&folded) {
                        self.disconnect_with(id, &bye);
                    }
                }
            }
        }
    }

    /// The sessions here of the user whose folded name is `folded`.
    pub(super) fn sessions_of(&self, folded: &str) -> crate::roster::Sessions {
        self.roster
            .find_folded(folded)
            .map(|user| user.sessions.clone())
            .unwrap_or_default()
    }

    /// Queues `error: <reason>` for `id`.
    fn error(&mut self, id: ConnId, reason: String) {
        self.deliver(id, &encode_line(ServerLine::Error(reason)));
    }

    /// Queues `line` for `id` if online; one that cannot take it is removed later.
    fn deliver(&mut self, id: ConnId, line: &Line) {
        if let Some(peer) = self.roster.get(id) {
            offer(id, peer, line, &mut self.failed);
        }
    }

    /// Announces the pending logins to the users here (elsewhere, the backend announced
    /// each as it admitted it). Sending `joined` to everyone for each login makes a
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
        for (id, peer) in self.roster.peers() {
            let line = match ends.get(&id) {
                None => chunk.clone(),
                Some(&end) if end < chunk.len() => chunk.slice(end..),
                Some(_) => continue,
            };
            offer(id, peer, &line, &mut self.failed);
        }
    }

    /// Takes `id` off the roster and tells the others: `left <#room> <name>` to the
    /// members of each room it was in, then `left <name>` to everyone. Dropping a peer
    /// closes its queue: its writer sends what is queued and closes the connection.
    fn remove(&mut self, id: ConnId) {
        // Nobody may read `left` for a login it has not been told about yet.
        self.flush_joins();
        // An away message ends with the account's last session.
        let away_ends = self
            .roster
            .user_of(id)
            .is_some_and(|user| user.sessions.len() == 1 && user.away.is_some());
        let Some(Removed { peer, last, holder }) = self.roster.remove(id) else {
            return;
        };
        self.awaiting.retain(|a| a.conn != id);
        self.held.remove(&id);
        let reason = self.quit_reasons.remove(&id);
        // Another session of the same account is still online: nobody else notices.
        let Some(rooms) = last else {
            return;
        };
        if away_ends {
            self.backend.set_away(&peer.name, None);
        }
        for room in &rooms {
            self.left_room(room, &peer.name);
        }
        info!(name = %peer.name, online = self.roster.online(), "removed from roster");
        let farewell = (self.presence == Presence::All).then(|| {
            let left = encode_line(ServerLine::Left(peer.name.clone()));
            noted(reason.as_ref().map(|r| Note::Reason(r.as_str())), left)
        });
        let departure = Departure {
            conn: holder,
            name: peer.name,
            rooms,
            reason,
            farewell,
            queue: Some(peer.outbox),
        };
        self.backend
            .depart(departure, &self.roster, &mut self.answers);
    }
}

/// Whether `answer` only tells who came or went: `joined` and `left`, for everyone or
/// for a room.
fn is_presence(answer: &Answer) -> bool {
    match answer {
        Answer::Room { id, .. } => id.is_none(),
        Answer::ToAll { lines, .. } => lines.starts_with(b"left ") || lines.starts_with(b"joined "),
        _ => false,
    }
}

/// Whether `lines` are a message (`from ...`), as opposed to presence or replies.
fn is_message(lines: &Line) -> bool {
    lines.starts_with(b"from ")
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
            METRICS.sendq_cutoffs.inc();
            failed.push(id);
        }
        Err(Undeliverable::Closed) => failed.push(id),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use chat_proto::UserName;

    use super::*;
    use crate::accounts::Account;
    use crate::backend::local::Local;
    use crate::sendq::{self, Inbox};

    fn broker(strict_names: bool) -> Broker {
        let config = Config {
            strict_names,
            ..Config::default()
        };
        let local = Local::with_store(&config, None).expect("no store to open");
        Broker::new(&config, Box::new(local))
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

    /// What the broker answers a login line of `name` with a password from `addr`.
    fn attempt(broker: &mut Broker, name: &UserName, addr: IpAddr) -> Auth {
        let (reply, mut answer) = oneshot::channel();
        broker.handle(BrokerEvent::Authenticate {
            name: name.clone(),
            addr,
            with_password: true,
            reply,
        });
        answer.try_recv().expect("answered at once")
    }

    #[test]
    fn a_fourth_attempt_within_the_minute_is_refused_before_any_hashing() {
        let mut broker = broker(false);
        let bob = UserName::parse("bob").expect("a valid name");
        let mut accounts = Accounts::default();
        accounts.put(Account {
            name: bob.clone(),
            phc: "$argon2id$stored".to_owned(),
            suspended: false,
        });
        broker.accounts = Some(accounts);
        let addr: IpAddr = "192.0.2.7".parse().expect("an address");
        // A right password gives its attempt back.
        assert!(matches!(attempt(&mut broker, &bob, addr), Auth::Verify(_)));
        broker.handle(BrokerEvent::LoginPassed {
            name: bob.clone(),
            addr,
        });
        // Three checks under way at once are all the name gets.
        for _ in 0..3 {
            assert_eq!(
                attempt(&mut broker, &bob, addr),
                Auth::Verify("$argon2id$stored".to_owned())
            );
        }
        assert_eq!(
            attempt(&mut broker, &bob, addr),
            Auth::Refused("too many login attempts; retry in 60 s".to_owned()),
            "no hash handed out, so nothing is hashed"
        );
    }
}
