//! The seam between the broker, which decides, and a backend, which carries.
//!
//! The broker knows its own connections (the [`Roster`]) and the rules. Everything that
//! is shared with the rest of the chat goes through one [`Backend`]: admission (a name is
//! held once, offline mail handed over), lines for users and room members on other nodes,
//! room ids and order, history, offline mail, accounts, and the cluster-wide answers to
//! `/who`, `/names` and `/rooms`. Two implementations:
//!
//! - [`local::Local`]: this process is the whole chat. It answers at once.
//! - `cluster::Redis` (the `cluster` module depends on this one, not the other way):
//!   one node of a cluster sharing a Redis. It answers later, through the receiver it
//!   hands the broker loop.
//!
//! Either way, what a backend has to say comes back as [`Answer`]s, which the broker
//! handles in one place, so every rule holds alike in both modes. A backend's methods
//! never wait: [`Backend::is_busy`] is how it slows the broker's intake instead
//! (backpressure, exactly like a full broker queue), and [`Backend::wake`] how it asks
//! for the broker's attention.

pub mod local;

use chat_proto::{
    ClientLine, Conv, FromLine, HistoryRange, MessageId, MessageText, RoomName, Scope, UserName,
};
use futures::future::BoxFuture;

use crate::accounts::Account;
use crate::governance::{Change, Members, RoomState};
use crate::history::{ConvKey, Message};
use crate::roster::{ConnId, Roster};
use crate::sendq::{Line, Note, noted};

/// How a login may go on, before any password is checked: what a reader is told.
#[derive(Debug, PartialEq, Eq)]
pub enum Auth {
    /// The name is not registered and no password was given: log in.
    Open,
    /// The name is registered: check the password against this hash.
    Verify(String),
    /// Refused, with the reason for `error:`.
    Refused(String),
}

/// Why `/history` is refused by a server started with `--history off`, in both modes.
pub const HISTORY_OFF: &str = "history is off on this server";

/// Direct messages kept for one offline registered user; past this the sender is told
/// the mailbox is full.
pub const MAX_OFFLINE_PER_RECIPIENT: usize = 100;

/// What a backend tells the broker, at once (pushed onto the broker's list) or later.
#[derive(Debug)]
pub enum Answer {
    /// Lines for one connection of this node.
    Reply {
        /// The connection.
        to: ConnId,
        /// The encoded lines.
        lines: Line,
    },
    /// The answer to a connection's `/whois` of someone not on this node: its lines
    /// held meanwhile go on after it, so that replies keep the order of questions.
    Whois {
        /// The connection.
        to: ConnId,
        /// The encoded lines.
        lines: Line,
    },
    /// Lines for the user with this folded name, if they are on this node.
    ToUser {
        /// The folded name.
        folded: String,
        /// The encoded lines.
        lines: Line,
    },
    /// Lines for every user of this node (`*` messages and presence from other nodes).
    ToAll {
        /// The encoded lines.
        lines: Line,
        /// The folded name of a user whose sessions are left out (the sender of a `*`
        /// message, whose sessions here get `sent *:` instead).
        except: Option<String>,
    },
    /// Lines for the members of a room on this node.
    Room {
        /// The room.
        room: RoomName,
        /// The encoded lines.
        lines: Line,
        /// A member left out (the sender of a message).
        except: Option<ConnId>,
        /// Someone told although no longer a member (who just parted).
        plus: Option<ConnId>,
        /// The message's id, for a room message (not for presence).
        id: Option<MessageId>,
    },
    /// The reply to a `/history` request of `to`, answered in the order asked.
    History {
        /// The connection.
        to: ConnId,
        /// The `history` lines and `history-end`, or an `error:`.
        lines: Line,
    },
    /// The recipients of a direct message who were not online anywhere.
    Direct {
        /// The sender's connection.
        to: ConnId,
        /// Registered recipients the message was kept for.
        stored: Vec<UserName>,
        /// Registered recipients whose mailbox is full.
        full: Vec<UserName>,
        /// Names nobody has.
        unknown: Vec<UserName>,
    },
    /// A login may go on: the name is held for `conn`, and this mail was kept for it.
    Admitted {
        /// The connection.
        conn: ConnId,
        /// Offline messages, oldest first, handed over once.
        mail: Vec<Message>,
        /// The account is online on other nodes already: this is one more session of
        /// it, on this many nodes now, whose rooms are these (no `joined` for it).
        shared: Option<(usize, Vec<RoomName>)>,
    },
    /// Whether a password may be checked now, for the reader waiting on `reply`.
    Attempt {
        /// The reader's answer.
        reply: tokio::sync::oneshot::Sender<Auth>,
        /// `Verify` with the hash, or `Refused` with how long to wait.
        auth: Auth,
    },
    /// A login is refused.
    Refused {
        /// The connection.
        conn: ConnId,
        /// Why, for `error:`.
        reason: String,
    },
    /// Everything sent to this node before [`Backend::drain`] was asked has come.
    Drained,
    /// An account was registered or changed elsewhere.
    Account(Account),
    /// What the chat knows of a room, for the broker to decide `line` of `to` on.
    Fetched {
        /// Who asked.
        to: ConnId,
        /// The room.
        room: RoomName,
        /// What it is fetched for.
        line: Pending,
        /// The room's state and every member, wherever they are; `None` where the
        /// broker's own are the whole chat's (one server). Boxed: every answer is as
        /// large as its largest kind, and this rare one would triple them all.
        found: Option<Box<(Option<RoomState>, Members)>>,
    },
    /// A room could not be fetched for `to`'s line: it is told why, and its next
    /// lines go on.
    FetchFailed {
        /// Who asked.
        to: ConnId,
        /// Why, for `error:`.
        reason: String,
    },
    /// A user elsewhere went away (with this message) or came back (`None`).
    Away {
        /// The user's folded name.
        folded: String,
        /// The away message.
        text: Option<MessageText>,
    },
    /// An account online here joined (`true`) or left a room from a session elsewhere.
    AccountRoom {
        /// The account's folded name.
        folded: String,
        /// The room.
        room: RoomName,
        /// Joined, or left.
        joined: bool,
    },
    /// An account online here is now online on this many nodes.
    AccountNodes {
        /// The account's folded name.
        folded: String,
        /// How many nodes have sessions of it.
        nodes: usize,
    },
    /// Someone elsewhere asks `/whois` of the user with this folded name, who is here.
    WhoisAsked {
        /// Who asks, for [`Backend::reply_remote`].
        from: Remote,
        /// The folded name asked about.
        folded: String,
    },
    /// The user with this folded name, if here, is disconnected with this last line.
    Kill {
        /// The folded name.
        folded: String,
        /// The `error:` line.
        lines: Line,
    },
    /// Changes to a room, in the room's order, for its members here.
    Governed {
        /// The room.
        room: RoomName,
        /// The changes.
        changes: Vec<Change>,
    },
    /// These folded names are now held elsewhere: their users here are told `bye` with
    /// the reason, and must go.
    Lost {
        /// The folded names.
        names: Vec<String>,
        /// Why, for `bye:`.
        reason: String,
    },
}

/// What a room is fetched for ([`Backend::fetch_room`]).
#[derive(Debug)]
pub enum Pending {
    /// A line to decide.
    Line(ClientLine),
    /// A new session of an account in the room: it is told `names`, `roles` and the
    /// topic.
    CatchUp,
}

/// Someone on another node, as the backend names them, to answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote(pub String);

/// The broker's list of answers to handle, oldest first.
pub type Answers = std::collections::VecDeque<Answer>;

/// A direct message for users the broker does not hold, and the conversations it joins.
#[derive(Debug)]
pub struct Direct {
    /// The sender's connection, answered with [`Answer::Direct`] if anything failed.
    pub from: ConnId,
    /// The sender.
    pub sender: UserName,
    /// The text.
    pub text: MessageText,
    /// The encoded `from <sender>: <text>` line.
    pub line: Line,
    /// Recipients not on this node.
    pub away: Vec<Recipient>,
    /// Accounts on this node that got the line, whose `@` history with the sender (also
    /// an account) it joins.
    pub kept: Vec<UserName>,
    /// The line also went to `*`: a recipient online elsewhere has it already, so only
    /// the offline ones are handled.
    pub covered: bool,
}

/// A recipient of a direct message who is not on this node.
#[derive(Debug)]
pub struct Recipient {
    /// The name as the sender wrote it, or as registered if it is an account.
    pub name: UserName,
    /// The name folded, as names are compared.
    pub folded: String,
    /// Whether it is an account, so the message is kept for it while offline.
    pub registered: bool,
    /// Whether the message joins the `@` history of two accounts.
    pub pair: bool,
}

/// Someone who left the chat, for [`Backend::depart`].
#[derive(Debug)]
pub struct Departure {
    /// The connection that logged the name in, for which the backend holds it (of an
    /// account's several sessions, the first).
    pub conn: ConnId,
    /// Their name.
    pub name: UserName,
    /// The rooms they were in.
    pub rooms: Vec<RoomName>,
    /// Why, for IRC clients (an IRC `QUIT`'s reason).
    pub reason: Option<MessageText>,
    /// `left <name>` for everyone, if presence says so.
    pub farewell: Option<Line>,
    /// Their queue, if the broker still had it: the connection closes once the last
    /// sender is dropped, which the backend does once the name is free everywhere, so a
    /// client that saw its connection end can log in again at once.
    pub queue: Option<crate::sendq::Outbox>,
}

/// A login whose password is to be checked, if the throttle lets it.
#[derive(Debug)]
pub struct Attempt {
    /// The name tried.
    pub name: UserName,
    /// Where from.
    pub addr: std::net::IpAddr,
    /// The account's hash, handed to the reader if it may check.
    pub phc: String,
    /// The reader's answer.
    pub reply: tokio::sync::oneshot::Sender<Auth>,
}

/// A `/history` request the broker has checked.
#[derive(Debug)]
pub struct HistoryAsk {
    /// Who asked.
    pub from: ConnId,
    /// The conversation as the asker named it.
    pub conv: Conv,
    /// The conversation as stored.
    pub key: ConvKey,
    /// Which messages.
    pub range: HistoryRange,
    /// Most bytes of `history` lines: half the asker's send queue, so a reply never cuts
    /// its asker off.
    pub max_bytes: usize,
}

/// `from <sender> ...: <text>`, noted as an IRC notice if it is one.
pub fn from_line(sender: &UserName, scope: &Scope, text: &MessageText, notice: bool) -> Line {
    let line = FromLine {
        sender,
        scope,
        text,
    }
    .encode();
    noted(notice.then_some(Note::Notice), line)
}

/// `left <#room> <name>`, with `reason` noted for IRC clients.
pub fn left_room_line(room: &RoomName, name: &UserName, reason: Option<&MessageText>) -> Line {
    let left = chat_proto::encode_line(chat_proto::ServerLine::LeftRoom {
        room: room.clone(),
        name: name.clone(),
    });
    noted(reason.map(|reason| Note::Reason(reason.as_str())), left)
}

/// `users <names>`, after a note of who among them is away (`away`: their folded names,
/// comma-separated), for IRC's `WHO <mask>`.
pub fn users_line(names: Vec<UserName>, away: Option<&str>) -> Line {
    let users = chat_proto::encode_line(chat_proto::ServerLine::Users(names));
    noted(away.map(Note::AwayAmong), users)
}

/// What carries the broker's decisions: see the module docs. Every method returns at
/// once; answers go onto `out` (now) or come back through the receiver of
/// [`Backend::answers`] (later).
pub trait Backend: Send + std::fmt::Debug {
    /// Where later answers come from; taken once by the broker loop. `None`: every answer
    /// comes at once.
    fn answers(&mut self) -> Option<tokio::sync::mpsc::Receiver<Answer>>;
    /// The registered accounts, taken once at start; `None` where accounts cannot be
    /// kept (no `--db`): names that vanished at a restart would be handed to others.
    fn accounts(&mut self) -> Option<Vec<Account>>;

    /// The registered rooms kept from earlier runs, taken once at start.
    fn registered_rooms(&mut self) -> Vec<(RoomName, RoomState)>;

    /// Holds `name` for `conn` across the chat and takes the mail kept for it:
    /// [`Answer::Admitted`] or [`Answer::Refused`]. The broker has checked its own roster.
    fn admit(&mut self, conn: ConnId, name: &UserName, account: bool, out: &mut Answers);
    /// Counts a password attempt for `name` from `addr` against the throttle, across
    /// the chat: [`Answer::Attempt`] with `Verify(phc)` if it may be checked now.
    fn attempt(&mut self, attempt: Attempt, out: &mut Answers);
    /// A password matched: the attempt counted for it is taken back.
    fn forgive(&mut self, name: &UserName, addr: std::net::IpAddr);
    /// An admission the broker did not complete (the client went, or the name was taken
    /// here meanwhile): gives the name back, and takes back what admitting announced.
    fn withdraw(&mut self, conn: ConnId, name: &UserName);
    /// `name` (on `conn`, already off the roster) left the chat: its name is free, and
    /// at once every member of `rooms` gets `left <#room> <name>`, then everyone
    /// `farewell` (`left <name>`, unless presence is by rooms only).
    fn depart(&mut self, departure: Departure, here: &Roster, out: &mut Answers);

    /// A `*` line from `from` for every user elsewhere; `from` is told if it cannot go
    /// out.
    fn send_elsewhere(&mut self, from: ConnId, sender: &UserName, lines: Line, out: &mut Answers);
    /// Delivers or keeps a direct message; see [`Direct`].
    fn direct(&mut self, direct: Direct, out: &mut Answers);
    /// Gives a room message its id, keeps it, and has every member but the sender get it;
    /// IRC clients get a `notice` as one ([`crate::sendq::Note::Notice`]).
    fn say(
        &mut self,
        from: ConnId,
        room: &RoomName,
        sender: &UserName,
        text: &MessageText,
        notice: bool,
        out: &mut Answers,
    );

    /// `name` (on `from`, already a member here) joined `room`: every member, the joiner
    /// included, gets `joined`, then the joiner `names`.
    fn join_room(
        &mut self,
        from: ConnId,
        room: &RoomName,
        name: &UserName,
        here: &Roster,
        out: &mut Answers,
    );
    /// `name` (no longer a member here) left `room`: every member gets `left` (the
    /// `left <#room> <name>` line, with a reason for IRC clients if one was given), and
    /// so does `from` if it parted by `/part`.
    fn part_room(
        &mut self,
        from: Option<ConnId>,
        room: &RoomName,
        name: &UserName,
        left: Line,
        here: &Roster,
        out: &mut Answers,
    );

    /// Fetches what the chat knows of `room` (its state, its members everywhere) for
    /// `line` from `from`: [`Answer::Fetched`].
    fn fetch_room(&mut self, from: ConnId, room: &RoomName, line: Pending, out: &mut Answers);
    /// `/kill` of `name`, who is not here: it gets `lines` and is disconnected wherever
    /// it is; `from` is told if nobody has the name.
    fn kill(&mut self, from: ConnId, name: &UserName, lines: Line, out: &mut Answers);
    /// `/kill` of `name`, whose sessions here are gone: its sessions elsewhere get
    /// `lines` and are disconnected too.
    fn kill_elsewhere(&mut self, name: &UserName, lines: Line);
    /// `/read`: moves `account`'s marker of `conv` (kept as `key`) forward to `id`, and
    /// then every session of the account is told `read <conv> <id>`; a marker that does
    /// not move tells nobody. Without `id`, `from` is told where the marker is.
    fn read_marker(
        &mut self,
        from: ConnId,
        account: &UserName,
        conv: Conv,
        key: String,
        id: Option<MessageId>,
        out: &mut Answers,
    );
    /// `name` (here) went away with `text`, or came back (`None`): the other nodes are
    /// told, for the `away` replies to what their users send it.
    fn set_away(&mut self, name: &UserName, text: Option<&MessageText>);
    /// `/whois` of `name`, who is not here: asked of wherever it is, which answers
    /// `from` through [`Backend::reply_remote`]; or `from` is told it is not online.
    fn whois(&mut self, from: ConnId, name: &UserName, out: &mut Answers);
    /// Lines for someone elsewhere who asked ([`Answer::WhoisAsked`]).
    fn reply_remote(&mut self, to: Remote, lines: Line);
    /// `lines` for the user `name`, who is not here, and then `sent` for `from`; or
    /// `from` is told `name` is not online.
    fn tell(&mut self, from: ConnId, name: &UserName, lines: Line, sent: Line, out: &mut Answers);
    /// Carries changes to `room` the broker decided: every member, here and elsewhere,
    /// gets [`Answer::Governed`] in the room's order. `after` is the room's state once
    /// they are made, kept if the room is registered.
    fn govern(
        &mut self,
        room: &RoomName,
        changes: Vec<Change>,
        after: &RoomState,
        out: &mut Answers,
    );
    /// `lines` for every member of `room`, here and elsewhere, but `except` (lines only
    /// IRC clients read, such as an away change for `away-notify`).
    fn tell_room(
        &mut self,
        room: &RoomName,
        lines: Line,
        except: Option<ConnId>,
        out: &mut Answers,
    );
    /// `name` (no longer a member here) was removed from `room` by a kick: it is no
    /// longer a member anywhere, and nobody is told `left`.
    fn leave_quietly(&mut self, room: &RoomName, name: &UserName, here: &Roster);
    /// The account `name`, a member of `room` already (from a session elsewhere), has a
    /// session here: this node carries the room's lines for it, telling nobody.
    fn join_quietly(&mut self, room: &RoomName, name: &UserName);
    /// The account `name` joined (`true`) or left `room` from a session here: its
    /// sessions elsewhere follow.
    fn account_room(&mut self, name: &UserName, room: &RoomName, joined: bool);
    /// `lines` for the sessions elsewhere of the account `name`, which is online on
    /// several nodes (a copy of what a session here sent).
    fn echo(&mut self, name: &UserName, lines: Line);

    /// Lines for `to` that must come after everything this backend is carrying for it.
    fn reply_after(&mut self, to: ConnId, lines: Line, out: &mut Answers);

    /// `/who`: everyone online ([`users_line`], with `away`).
    fn who(&mut self, from: ConnId, away: Option<String>, here: &Roster, out: &mut Answers);
    /// `/rooms`, without `hidden` (secret rooms the asker is not in).
    fn rooms(&mut self, from: ConnId, hidden: &[RoomName], here: &Roster, out: &mut Answers);
    /// `/history`.
    fn history(&mut self, ask: HistoryAsk, out: &mut Answers);

    /// An account was registered or its password changed: keep it, and tell elsewhere.
    fn put_account(&mut self, account: Account);

    /// Whether the broker should stop taking new requests until [`Backend::wake`].
    fn is_busy(&self) -> bool;
    /// Resolves when the broker should take a turn: room again after being busy, or
    /// writes to hand on. Cancel safe.
    fn wake(&mut self) -> BoxFuture<'_, ()>;
    /// Hands on what the turn buffered; called after each turn of the broker.
    fn flush(&mut self);

    /// This node is stopping: everything already sent to it from elsewhere is to be
    /// delivered, then [`Answer::Drained`].
    fn drain(&mut self, out: &mut Answers);
    /// This node stops while `here` are online: tell the others they left (nothing to
    /// do when this process is the whole chat).
    fn node_stopping(&mut self, here: &Roster);
    /// Everything handed over is carried (or given up after the shutdown timeout).
    fn finish(self: Box<Self>) -> BoxFuture<'static, ()>;
}
