//! The broker's lines, translated to IRC for one connection.
//!
//! The broker speaks the native protocol to every connection; an IRC connection's
//! writer parses each native line it is sent (with `chat_proto`, the one parser) and
//! writes what IRC says for it. Three kinds of line reach the writer:
//!
//! - native lines, translated here;
//! - IRC lines the reader made itself (they start with `:`, `@` or an upper-case
//!   command), written as they are;
//! - markers (they start with `\0`), which the reader puts around the requests of one
//!   IRC command, so that the replies can be told apart: `\0L<n> <label>` starts a
//!   labeled response, `\0C<n> <command>` says which command the next replies answer (an
//!   `error:` means 404 after `PRIVMSG`, 474 after `JOIN`), `\0E<n>` ends the command,
//!   `\0K<caps>` sets the capabilities the writer formats for. `<n>` numbers the
//!   client's commands: `L` and `C` are queued at once, `E` behind the replies the
//!   backend may still be fetching (from Redis, in a cluster), so the next command can
//!   start before the end of the last one arrives; that command is then ended early and
//!   its late end ignored.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use chat_proto::{
    Conv, HistoryEntry, MessageId, MessageText, ModeChange, Recipient, Role, RoomName, Scope,
    ServerLine, Setter, Timestamp, TopicInfo, UserName,
};
use rustc_hash::FxHashMap;

use super::caps::{Cap, Caps};
use super::message::{escape_tag, push_params};
use crate::sendq::{Line, Note};

/// What every connection of one listener says the same way.
#[derive(Debug)]
pub struct Server {
    /// The server's IRC name (`--server-name`): the source of its own messages.
    pub name: String,
    /// The `005` tokens, already split into lines of at most 13.
    pub isupport: Vec<String>,
    /// The version `002` and `004` give.
    pub version: &'static str,
    /// The username and real name each IRC user of this server registered with, by
    /// folded name, for `WHO` and `WHOIS`; the broker knows neither (native users and
    /// users of other nodes show their name as both).
    pub idents: Mutex<HashMap<String, Ident>>,
    /// The last IRC users of this server who left, newest last, for `WHOWAS`: folded
    /// name, name, username, real name.
    pub whowas: Mutex<VecDeque<(String, String, String, String)>>,
}

/// How many departed users `WHOWAS` remembers.
const WHOWAS_KEPT: usize = 256;

/// What `USER` said, and which connection said it.
#[derive(Debug, Clone)]
pub struct Ident {
    /// The connection.
    pub conn: u64,
    /// The username.
    pub user: String,
    /// The real name.
    pub real: String,
}

impl Server {
    /// Records `USER`'s words for `name`, logged in on connection `conn`.
    pub fn set_ident(&self, name: &UserName, ident: Ident) {
        if let Ok(mut idents) = self.idents.lock() {
            idents.insert(name.folded().to_string(), ident);
        }
    }

    /// Forgets `name`'s words if connection `conn` said them, and keeps them for
    /// `WHOWAS`.
    pub fn drop_ident(&self, name: &UserName, conn: u64) {
        let folded = name.folded().to_string();
        let gone = match self.idents.lock() {
            Ok(mut idents) if idents.get(&folded).is_some_and(|ident| ident.conn == conn) => {
                idents.remove(&folded)
            }
            _ => None,
        };
        if let (Some(ident), Ok(mut whowas)) = (gone, self.whowas.lock()) {
            if whowas.len() == WHOWAS_KEPT {
                whowas.pop_front();
            }
            whowas.push_back((folded, name.as_str().to_owned(), ident.user, ident.real));
        }
    }

    /// Who left as `name`, newest first: its name as it was, username and real name.
    pub fn was(&self, name: &str) -> Vec<(String, String, String)> {
        let Ok(name) = UserName::parse(name) else {
            return Vec::new();
        };
        let folded = name.folded();
        let Ok(whowas) = self.whowas.lock() else {
            return Vec::new();
        };
        whowas
            .iter()
            .rev()
            .filter(|(f, ..)| *f == folded)
            .map(|(_, n, u, r)| (n.clone(), u.clone(), r.clone()))
            .collect()
    }

    /// The username and real name `name` registered with, or its name for both.
    fn ident(&self, name: &str) -> (String, String) {
        let found = UserName::parse(name).ok().and_then(|parsed| {
            let idents = self.idents.lock().ok()?;
            idents.get(&parsed.folded().to_string()).cloned()
        });
        match found {
            Some(ident) => (ident.user, ident.real),
            None => (name.to_owned(), name.to_owned()),
        }
    }
}

/// The replies to one IRC command (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// Nothing in particular: errors become `400`.
    Other(String),
    /// `PRIVMSG` or `NOTICE` (whose failures IRC never answers).
    Message { notice: bool },
    /// `JOIN` of one channel.
    Join(String),
    /// `PART` of one channel.
    Part(String),
    /// `NAMES` of channels (the list as the client gave it).
    Names(String),
    /// What the next command needs to know of a channel: its modes and whether it
    /// exists (answers nothing).
    Probe(String),
    /// A `TOPIC` query.
    Topic(String),
    /// A `TOPIC` change or `INVITE` on a channel.
    Channel(String),
    /// An op command on a channel: a `MODE` change or `KICK`.
    Op(String),
    /// A `MODE` query.
    Mode(String),
    /// The ban list (`MODE #c +b`).
    Bans(String),
    /// `WHO <mask>`.
    Who(String),
    /// `WHOIS <nick>`.
    Whois(String),
    /// `LIST [filters]`: the filters as given (masks, `!mask`, `<n`, `>n`).
    List(String),
    /// `LUSERS`.
    Lusers,
    /// `USERHOST`: the `whois` replies make one `302`.
    Userhost,
    /// `MONITOR +` or `S`: the nicks asked about (comma-separated, as given); the
    /// `whois` replies say which are online.
    Monitor(String),
    /// `CHATHISTORY`: where the messages go, and which of the replies to keep.
    History(HistoryAsk),
    /// `MARKREAD <target> <timestamp>`: the marker moved (or not: a marker only moves
    /// forward, and then the native protocol answers nothing).
    MarkRead(String),
    /// `MARKREAD <target>`, also asked after each move: where the marker is now, the
    /// one answer a `MARKREAD` gets.
    MarkReadNow(String),
    /// `MARKREAD` of a client not logged in to an account: `<ms or -> <target>`, kept
    /// and answered by the writer.
    LocalRead(String),
}

/// Which stored messages a `CHATHISTORY` keeps of the native replies it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAsk {
    /// The subcommand (`LATEST` ...), for a `FAIL`.
    pub sub: String,
    /// The target as the client wrote it.
    pub target: String,
    /// Which to keep.
    pub select: Select,
}

/// A selection of messages, by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// The latest `n`.
    Last(usize),
    /// The first `n`.
    First(usize),
    /// The first `n` with an id below the bound.
    FirstBelow(usize, u64),
    /// The latest `n` with an id below the bound.
    LastBelow(usize, u64),
    /// `n` around the id: those before it (asked for as at most half), then those from it.
    Around(usize, u64),
}

impl Cmd {
    /// The marker line that makes the writer expect this command's replies.
    pub fn marker(&self, seq: u64) -> String {
        let mut m = format!("\0C{seq} ");
        let _ = match self {
            Cmd::Other(c) => write!(m, "other {c}"),
            Cmd::Message { notice } => write!(m, "message {notice}"),
            Cmd::Join(c) => write!(m, "join {c}"),
            Cmd::Part(c) => write!(m, "part {c}"),
            Cmd::Names(c) => write!(m, "names {c}"),
            Cmd::Probe(c) => write!(m, "probe {c}"),
            Cmd::Topic(c) => write!(m, "topic {c}"),
            Cmd::Channel(c) => write!(m, "channel {c}"),
            Cmd::Op(c) => write!(m, "op {c}"),
            Cmd::Mode(c) => write!(m, "mode {c}"),
            Cmd::Bans(c) => write!(m, "bans {c}"),
            Cmd::Who(c) => write!(m, "who {c}"),
            Cmd::Whois(c) => write!(m, "whois {c}"),
            Cmd::List(filters) => write!(m, "list {filters}"),
            Cmd::Lusers => write!(m, "lusers -"),
            Cmd::Userhost => write!(m, "userhost -"),
            Cmd::Monitor(c) => write!(m, "monitor {c}"),
            Cmd::MarkRead(c) => write!(m, "markread {c}"),
            Cmd::MarkReadNow(c) => write!(m, "markreadnow {c}"),
            Cmd::LocalRead(c) => write!(m, "localread {c}"),
            Cmd::History(ask) => {
                let (kind, n, bound) = match ask.select {
                    Select::Last(n) => ("last", n, 0),
                    Select::First(n) => ("first", n, 0),
                    Select::FirstBelow(n, b) => ("firstbelow", n, b),
                    Select::LastBelow(n, b) => ("lastbelow", n, b),
                    Select::Around(n, b) => ("around", n, b),
                };
                write!(m, "history {} {kind} {n} {bound} {}", ask.target, ask.sub)
            }
        };
        m.push('\n');
        m
    }

    fn parse(marker: &str) -> Option<Cmd> {
        let (kind, arg) = marker.split_once(' ')?;
        let arg = arg.to_owned();
        Some(match kind {
            "other" => Cmd::Other(arg),
            "message" => Cmd::Message {
                notice: arg == "true",
            },
            "join" => Cmd::Join(arg),
            "part" => Cmd::Part(arg),
            "names" => Cmd::Names(arg),
            "probe" => Cmd::Probe(arg),
            "topic" => Cmd::Topic(arg),
            "channel" => Cmd::Channel(arg),
            "op" => Cmd::Op(arg),
            "mode" => Cmd::Mode(arg),
            "bans" => Cmd::Bans(arg),
            "who" => Cmd::Who(arg),
            "whois" => Cmd::Whois(arg),
            "list" => Cmd::List(arg),
            "lusers" => Cmd::Lusers,
            "userhost" => Cmd::Userhost,
            "monitor" => Cmd::Monitor(arg),
            "markread" => Cmd::MarkRead(arg),
            "markreadnow" => Cmd::MarkReadNow(arg),
            "localread" => Cmd::LocalRead(arg),
            "history" => {
                let mut words = arg.split(' ');
                let target = words.next()?.to_owned();
                let kind = words.next()?;
                let n = words.next()?.parse().ok()?;
                let bound = words.next()?.parse().ok()?;
                let sub = words.next().unwrap_or("LATEST").to_owned();
                let select = match kind {
                    "last" => Select::Last(n),
                    "first" => Select::First(n),
                    "firstbelow" => Select::FirstBelow(n, bound),
                    "lastbelow" => Select::LastBelow(n, bound),
                    "around" => Select::Around(n, bound),
                    _ => return None,
                };
                Cmd::History(HistoryAsk {
                    sub,
                    target,
                    select,
                })
            }
            _ => return None,
        })
    }
}

/// The marker that starts the labeled response to command `seq`.
pub fn label_marker(seq: u64, label: &str) -> String {
    format!("\0L{seq} {label}\n")
}

/// The marker that ends the replies to command `seq`.
pub fn end_marker(seq: u64) -> String {
    format!("\0E{seq}\n")
}

/// The marker that gives the writer the nicks `MONITOR` watches (folded).
pub fn monitor_marker(folded: &[&str]) -> String {
    format!("\0M{}\n", folded.join(","))
}

/// The marker that sets the writer's capabilities.
pub fn caps_marker(caps: Caps) -> String {
    format!("\0K{}\n", caps.bits())
}

/// A labeled response being collected: sent once its command ends, as one tagged line,
/// a batch, or an `ACK`.
#[derive(Debug)]
struct Labeled {
    label: String,
    lines: Vec<String>,
}

/// A `CHATHISTORY` reply being collected.
#[derive(Debug, Default)]
struct Collected {
    entries: Vec<HistoryEntry>,
}

/// The answer of a `MARKREAD` being made.
#[derive(Debug, Default)]
enum MarkReadAnswer {
    /// Nothing yet.
    #[default]
    None,
    /// The latest `MARKREAD` line for it.
    Line(String),
    /// The move failed and said so: the question after it says nothing more.
    Failed,
}

/// The native lines whose translation looks at the line after them; for any other the
/// next line is not looked for (parsing it for every line would parse each line twice).
const LOOKS_AHEAD: [&[u8]; 3] = [b"left ", b"roles ", b"whois "];

/// The first native line (not a note: a note in between is about that line) in `rest`
/// of the current chunk, or else in the chunks queued after it.
fn next_native<'a>(rest: &'a [u8], later: &'a [Line]) -> Option<&'a [u8]> {
    std::iter::once(rest)
        .chain(later.iter().map(|chunk| &chunk[..]))
        .flat_map(|chunk| chunk.split(|&b| b == b'\n'))
        .find(|line| !line.is_empty() && !Note::is_note(line))
}

/// How many room messages each thread keeps the IRC form of: more than a busy
/// channel has on its way to its readers at once, so that each is translated once.
const ROOM_LINES_KEPT: usize = 4096;

thread_local! {
    /// The IRC form of the room messages this thread translated lately. A message to a
    /// channel of 1,000 is one [`Line`] queued 1,000 times (the same bytes, shared), and
    /// its IRC form depends only on the listener and the capabilities: it is made once
    /// per thread, not 1,000 times.
    static ROOM_LINES: RefCell<RoomLines> = RefCell::new(RoomLines::default());
}

/// A room message as one kind of IRC client sees it: the queued line (by identity),
/// the listener (its name is in every source), the capabilities (they decide the tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct RoomLineKey {
    native: (usize, usize),
    server: usize,
    caps: Caps,
}

/// The kept translations, oldest first out.
#[derive(Debug, Default)]
struct RoomLines {
    /// Each with the native line and the listener it was made for, held so that their
    /// addresses, which the keys are, cannot be reused while kept.
    kept: FxHashMap<RoomLineKey, (Line, Arc<Server>, Bytes)>,
    order: VecDeque<RoomLineKey>,
}

impl RoomLineKey {
    fn new(server: &Arc<Server>, caps: Caps, native: &Line) -> Self {
        Self {
            native: (native.as_ptr() as usize, native.len()),
            server: Arc::as_ptr(server) as usize,
            caps,
        }
    }
}

/// The IRC form kept for `native`, a queued room message, for a client of `server`
/// with `caps`.
fn cached_room_line(server: &Arc<Server>, caps: Caps, native: &Line) -> Option<Bytes> {
    let key = RoomLineKey::new(server, caps, native);
    ROOM_LINES.with_borrow(|lines| lines.kept.get(&key).map(|(_, _, irc)| irc.clone()))
}

/// Appends the IRC form kept for `native` to `out`; `false` if none is kept.
fn append_room_line(server: &Arc<Server>, caps: Caps, native: &Line, out: &mut BytesMut) -> bool {
    let key = RoomLineKey::new(server, caps, native);
    ROOM_LINES.with_borrow(|lines| {
        lines
            .kept
            .get(&key)
            .map(|(_, _, irc)| out.extend_from_slice(irc))
            .is_some()
    })
}

/// Keeps `irc` as the IRC form of `native` for clients of `server` with `caps`.
fn keep_room_line(server: &Arc<Server>, caps: Caps, native: &Line, irc: &str) {
    let key = RoomLineKey::new(server, caps, native);
    ROOM_LINES.with_borrow_mut(|lines| {
        if lines.order.len() == ROOM_LINES_KEPT
            && let Some(oldest) = lines.order.pop_front()
        {
            lines.kept.remove(&oldest);
        }
        let kept = (
            native.clone(),
            server.clone(),
            Bytes::copy_from_slice(irc.as_bytes()),
        );
        if lines.kept.insert(key, kept).is_none() {
            lines.order.push_back(key);
        }
    });
}

/// One connection's translation state.
#[derive(Debug)]
pub struct Outgoing {
    server: Arc<Server>,
    /// The client's nick: its name once the broker welcomed it.
    nick: String,
    caps: Caps,
    label: Option<Labeled>,
    /// The number of the client command whose replies come now.
    seq: u64,
    cmd: Option<Cmd>,
    /// A channel's `names`, waiting for its `roles` (and topic) to make `353`.
    names: Option<Names>,
    /// The channel whose names were just said: a topic line now is the join's.
    named: Option<RoomName>,
    history: Collected,
    markread: MarkReadAnswer,
    /// The echoes of the direct messages of the current command, with the folded name
    /// each went to.
    echoes: Vec<(String, String)>,
    /// Batches opened so far, for their references.
    batches: u64,
    /// The time now, as a `server-time` tag gives it, for lines that carry none.
    now: Option<Timestamp>,
    /// What a [`Cmd::Probe`] found out for the command after it.
    probed: Option<Probed>,
    /// The `366` a `NAMES` ends with, once all its channels are said.
    names_end: Option<String>,
    /// The users a `USERHOST` found so far, and whether each is away.
    userhost: Vec<(String, bool)>,
    /// Logged in to a registered account: read markers are the account's.
    registered: bool,
    /// A join's `366`, held until the account's read marker for the channel comes.
    join_end: Option<(String, String)>,
    /// Read markers of a client not logged in to an account: milliseconds by target
    /// (lower-cased).
    local_reads: HashMap<String, u64>,
    /// The nicks `MONITOR` watches, folded.
    monitored: HashSet<String>,
    /// The users online a `MONITOR` found so far.
    monitor_online: Vec<String>,
    /// `PART` lines of a user who is leaving several channels: `QUIT` instead if a
    /// `left <name>` follows (a disconnect), else said as they are.
    leaving: Vec<String>,
    /// The [`Note`] on the native line being translated (without its `\0`).
    note: Option<String>,
    /// The last `away-notify` note said: the same change comes once per shared channel.
    last_away: Option<String>,
    /// The username and real name this client gave in `USER`: its own `WHOIS` shows
    /// them (others' show their nick, as the broker knows no more).
    own: Option<(String, String)>,
}

impl Outgoing {
    /// A connection's writer, for a client that registered as `nick` with `caps`.
    pub fn new(server: Arc<Server>, nick: &str, caps: Caps) -> Self {
        Self {
            server,
            nick: nick.to_owned(),
            caps,
            label: None,
            seq: 0,
            cmd: None,
            names: None,
            named: None,
            history: Collected::default(),
            markread: MarkReadAnswer::None,
            echoes: Vec::new(),
            batches: 0,
            now: None,
            probed: None,
            names_end: None,
            userhost: Vec::new(),
            leaving: Vec::new(),
            note: None,
            last_away: None,
            monitored: HashSet::new(),
            local_reads: HashMap::new(),
            registered: false,
            join_end: None,
            monitor_online: Vec::new(),
            own: None,
        }
    }

    /// Says whether the client logged in to a registered account.
    pub fn registered(mut self, registered: bool) -> Self {
        self.registered = registered;
        self
    }

    /// This client's `USER` username and real name, for its own `WHOIS`.
    pub fn identity(mut self, user: String, real: String) -> Self {
        self.own = Some((user, real));
        self
    }

    /// Translates the queued lines (each one or more whole native lines) and appends the
    /// IRC lines to `out`.
    pub fn translate(&mut self, queued: &[Line], out: &mut BytesMut) {
        self.now = None;
        for (i, chunk) in queued.iter().enumerate() {
            // A room message queued alone and translated already, for another reader:
            // only one line is ever kept, so its bytes need no looking through.
            if self.names.is_none()
                && chunk.starts_with(b"from ")
                && !self.is_own(chunk)
                && append_room_line(&self.server, self.caps, chunk, out)
            {
                self.named = None;
                continue;
            }
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let (line, after) = match memchr::memchr(b'\n', rest) {
                    Some(end) => (&rest[..end], &rest[end + 1..]),
                    None => (rest, &rest[rest.len()..]),
                };
                rest = after;
                let whole =
                    (chunk.len() == line.len() + 1 && line.starts_with(b"from ")).then_some(chunk);
                let next = LOOKS_AHEAD
                    .iter()
                    .any(|word| line.starts_with(word))
                    .then(|| next_native(after, &queued[i + 1..]))
                    .flatten();
                let mut emitted = Vec::new();
                let mut delivered = Vec::new();
                self.one(line, whole, next, &mut emitted, &mut delivered);
                // A note is on the one line after it.
                if line.first() != Some(&0) {
                    self.note = None;
                }
                for line in emitted {
                    self.emit(line, out);
                }
                // Someone's message is no reply to a command: never part of a labeled one.
                for line in delivered {
                    out.extend_from_slice(line.as_bytes());
                }
            }
        }
    }

    /// Whether `line` (`from <sender> ...`) is this client's own message.
    fn is_own(&self, line: &[u8]) -> bool {
        line.get(5..)
            .and_then(|rest| rest.split(|&b| b == b' ').next())
            .is_some_and(|sender| sender == self.nick.as_bytes())
    }

    /// A native line the broker gave as a connection's last (why it was cut off).
    pub fn last_words(&mut self, native: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(native);
        let reason = text
            .trim_end()
            .strip_prefix("error: ")
            .unwrap_or(text.trim_end());
        format!("ERROR :{reason}\r\n").into_bytes()
    }

    fn emit(&mut self, line: String, out: &mut BytesMut) {
        match &mut self.label {
            Some(labeled) => labeled.lines.push(line),
            None => out.extend_from_slice(line.as_bytes()),
        }
    }

    /// One line from the queue: what it becomes goes to `emitted`, or to `delivered` for
    /// a message delivered to this client (which answers no command of its own).
    fn one(
        &mut self,
        line: &[u8],
        whole: Option<&Line>,
        next: Option<&[u8]>,
        emitted: &mut Vec<String>,
        delivered: &mut Vec<String>,
    ) {
        match line.first() {
            Some(0) => {
                let marker = String::from_utf8_lossy(&line[1..]);
                match Note::parse(&marker) {
                    Some(Note::Away(name, text)) => {
                        if let Some(away) = self.away_notify(name, text, &marker) {
                            delivered.push(away);
                        }
                    }
                    _ => self.marker(&marker, emitted),
                }
            }
            // Native lines start with a lower-case word; IRC lines with a source, tags or
            // an upper-case command (`ERROR`).
            Some(b':' | b'@' | b'A'..=b'Z') => {
                // The reader built it with its `\r\n`; the queue split it at the `\n`.
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let mut line = String::from_utf8_lossy(line).into_owned();
                line.push_str("\r\n");
                emitted.push(line);
            }
            _ => {
                if let Some(irc) = whole.and_then(|w| cached_room_line(&self.server, self.caps, w))
                {
                    self.flush_names(emitted);
                    self.named = None;
                    let irc = String::from_utf8_lossy(&irc).into_owned();
                    // The sender's own is the echo of its PRIVMSG (a NOTICE comes noted,
                    // so never from here).
                    if self.is_own(line) {
                        emitted.push(irc);
                    } else {
                        delivered.push(irc);
                    }
                    return;
                }
                let Ok(text) = std::str::from_utf8(line) else {
                    return;
                };
                match text.parse::<ServerLine>() {
                    Ok(parsed) => {
                        let room = matches!(
                            parsed,
                            ServerLine::From {
                                scope: Scope::Room { .. },
                                ..
                            }
                        );
                        let next = next
                            .and_then(|n| std::str::from_utf8(n).ok())
                            .and_then(|n| n.parse::<ServerLine>().ok());
                        // The sender's own room message (echo-message) answers its
                        // PRIVMSG; any other message is a delivery.
                        let delivery = match &parsed {
                            ServerLine::From { sender, scope, .. } => {
                                !(sender.as_str() == self.nick
                                    && matches!(scope, Scope::Room { .. }))
                            }
                            _ => false,
                        };
                        let out = if delivery {
                            self.flush_names(emitted);
                            &mut *delivered
                        } else {
                            &mut *emitted
                        };
                        self.server_line(parsed, next.as_ref(), out);
                        if let (true, Some(irc), Some(whole)) = (room, out.last(), whole) {
                            keep_room_line(&self.server, self.caps, whole, irc);
                        }
                    }
                    // Every line the broker sends parses; were one not to, the client
                    // still sees it rather than nothing.
                    Err(_) => emitted.push(self.notice(&self.nick.clone(), text)),
                }
            }
        }
    }

    fn marker(&mut self, marker: &str, emitted: &mut Vec<String>) {
        if Note::parse(marker).is_some() {
            self.note = Some(marker.to_owned());
            return;
        }
        let (kind, rest) = marker.split_at(marker.len().min(1));
        match kind {
            "K" => {
                if let Ok(bits) = rest.parse() {
                    self.caps = Caps::from_bits(bits);
                }
                return;
            }
            "M" => {
                self.monitored = rest
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect();
                return;
            }
            _ => {}
        }
        let (seq, rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let Ok(seq) = seq.parse::<u64>() else {
            return;
        };
        if kind == "E" {
            if seq == self.seq {
                self.finish(emitted);
            }
            return;
        }
        if seq != self.seq {
            self.finish(emitted);
            self.seq = seq;
        }
        match kind {
            "L" => {
                self.label = Some(Labeled {
                    label: rest.to_owned(),
                    lines: Vec::new(),
                });
            }
            "C" => {
                self.end_command(emitted);
                self.named = None;
                self.cmd = Cmd::parse(rest);
                match &self.cmd {
                    Some(Cmd::Probe(room)) => {
                        self.probed = Some(Probed {
                            room: room.clone(),
                            exists: true,
                            secret: false,
                            member: false,
                        });
                    }
                    Some(Cmd::Names(list)) => self.names_end = Some(list.clone()),
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// Ends the replies to the current client command, its label's included.
    fn finish(&mut self, emitted: &mut Vec<String>) {
        self.end_command(emitted);
        if let Some(list) = self.names_end.take() {
            emitted.push(self.numeric("366", &[&list, "End of /NAMES list"]));
        }
        self.probed = None;
        // A command's replies are over: a topic line now is someone's change, not the
        // topic of the channel just joined.
        self.named = None;
        if let Some(labeled) = self.label.take() {
            let mut lines = labeled.lines;
            lines.append(emitted);
            *emitted = self.labeled(&labeled.label, lines);
        }
    }

    /// Closes what the command left open: the end numerics of `WHO` and `WHOIS`, a
    /// `NAMES` that had no reply.
    fn end_command(&mut self, emitted: &mut Vec<String>) {
        self.flush_names(emitted);
        // The account's marker did not come in time (a cluster may answer later): the
        // join's end without it.
        if let Some((_, end)) = self.join_end.take() {
            emitted.push(end);
        }
        match self.cmd.take() {
            Some(Cmd::Who(mask)) => {
                emitted.push(self.numeric("315", &[&mask, "End of WHO list"]));
            }
            Some(Cmd::Whois(nick)) => {
                emitted.push(self.numeric("318", &[&nick, "End of WHOIS list"]));
            }
            Some(Cmd::History(ask)) => self.history_batch(&ask, emitted),
            Some(Cmd::MarkReadNow(_)) => {
                if let MarkReadAnswer::Line(line) = std::mem::take(&mut self.markread) {
                    emitted.push(line);
                }
            }
            Some(Cmd::Message { .. }) => emitted.extend(self.echoes.drain(..).map(|(_, l)| l)),
            Some(Cmd::Monitor(asked)) => {
                // IRCv3 monitor: `730` with the masks of those online, `731` with the
                // others, as asked.
                let online = std::mem::take(&mut self.monitor_online);
                let folded: HashSet<String> = online
                    .iter()
                    .filter_map(|n| UserName::parse(n).ok())
                    .map(|n| n.folded())
                    .collect();
                let masks: Vec<String> = online
                    .iter()
                    .map(|n| format!("{n}!{n}@{}", self.server.name))
                    .collect();
                let offline: Vec<&str> = asked
                    .split(',')
                    .filter(|n| {
                        UserName::parse(n).is_ok_and(|name| !folded.contains(&name.folded()))
                    })
                    .collect();
                if !masks.is_empty() {
                    emitted.push(self.numeric("730", &[&masks.join(",")]));
                }
                if !offline.is_empty() {
                    emitted.push(self.numeric("731", &[&offline.join(",")]));
                }
            }
            Some(Cmd::LocalRead(ask)) => {
                let (ms, target) = ask.split_once(' ').unwrap_or(("-", &ask));
                let key = target.to_lowercase();
                let stored = self.local_reads.entry(key).or_insert(0);
                // A marker only moves forward.
                if let Ok(ms) = ms.parse::<u64>() {
                    *stored = (*stored).max(ms);
                }
                let stored = *stored;
                emitted.push(self.markread_line(target, stored));
            }
            Some(Cmd::Userhost) => {
                // `nick=+user@host`, `-` when away (RFC 2812 `302`).
                let found = std::mem::take(&mut self.userhost);
                let replies: Vec<String> = found
                    .iter()
                    .map(|(name, away)| {
                        let sign = if *away { '-' } else { '+' };
                        format!("{name}={sign}{name}@{}", self.server.name)
                    })
                    .collect();
                emitted.push(self.numeric("302", &[&replies.join(" ")]));
            }
            _ => {}
        }
    }

    /// The replies to a labeled command, as labeled-response says: an `ACK` for none,
    /// the line itself for one, a batch for more.
    fn labeled(&mut self, label: &str, lines: Vec<String>) -> Vec<String> {
        let mut tag = String::from("label=");
        escape_tag(label, &mut tag);
        match lines.len() {
            0 => vec![format!("@{tag} :{} ACK\r\n", self.server.name)],
            1 => lines
                .into_iter()
                .map(|line| with_tag(&line, &tag))
                .collect(),
            _ if !self.caps.has(Cap::Batch) => lines,
            _ => {
                let reference = self.batch_ref();
                let mut out = vec![format!(
                    "@{tag} :{} BATCH +{reference} labeled-response\r\n",
                    self.server.name
                )];
                let inner = format!("batch={reference}");
                for line in lines {
                    // Lines of a batch inside (history) already name theirs.
                    if line.starts_with("@batch=") || line.contains(";batch=") {
                        out.push(line);
                    } else {
                        out.push(with_tag(&line, &inner));
                    }
                }
                out.push(format!(":{} BATCH -{reference}\r\n", self.server.name));
                out
            }
        }
    }

    fn batch_ref(&mut self) -> String {
        self.batches += 1;
        format!("b{}", self.batches)
    }

    fn server_line(&mut self, line: ServerLine, next: Option<&ServerLine>, out: &mut Vec<String>) {
        if !matches!(line, ServerLine::Roles { .. } | ServerLine::Topic { .. }) {
            self.flush_names(out);
            self.named = None;
        }
        if let (Some(Cmd::Probe(_)), Some(probed)) = (&self.cmd, self.probed.as_mut()) {
            // The probe's own replies; anything else (someone's message) goes on as usual.
            match &line {
                ServerLine::Modes { room, modes } if room.as_str() == probed.room => {
                    probed.secret = modes.has(chat_proto::RoomMode::Secret);
                    return;
                }
                ServerLine::Names { room, names } if room.as_str() == probed.room => {
                    probed.member = names.iter().any(|name| name.as_str() == self.nick);
                    return;
                }
                ServerLine::Roles { room, .. } if room.as_str() == probed.room => return,
                ServerLine::Error(_) => {
                    probed.exists = false;
                    return;
                }
                _ => {}
            }
        }
        match line {
            ServerLine::Welcome(name) => {
                self.nick = name.as_str().to_owned();
                self.welcome(out);
            }
            ServerLine::From {
                sender,
                scope,
                text,
            } => self.message(&sender, scope, &text, out),
            ServerLine::Sent { to, text } => {
                let (target, folded) = match &to {
                    Recipient::Everyone => ("$*".to_owned(), "$*".to_owned()),
                    Recipient::User(name) => (name.as_str().to_owned(), name.folded()),
                    Recipient::Room(room) => (room.as_str().to_owned(), room.to_string()),
                };
                let tags = self.tags(None, None);
                let source = self.user_source(&self.nick.clone());
                match self.cmd {
                    // This connection's own echo: held until the command ends, so that a
                    // nick that turns out not to exist gets its 401 and no echo.
                    Some(Cmd::Message { notice }) => {
                        let line = if notice {
                            format!("{tags}{source} NOTICE {target} :{text}\r\n")
                        } else {
                            privmsg(&tags, &source, &target, text.as_str())
                        };
                        self.echoes.push((folded, line));
                    }
                    _ => out.push(privmsg(&tags, &source, &target, text.as_str())),
                }
            }
            ServerLine::Joined(name) => {
                if self.monitored.contains(&name.folded()) {
                    let mask = format!("{name}!{name}@{}", self.server.name);
                    out.push(self.numeric("730", &[&mask]));
                }
            }
            // The end of a disconnect (after its `left <#room> <name>` lines): `QUIT`
            // for a user who shared a channel with this client, else nothing (IRC tells
            // only those).
            ServerLine::Left(name) => {
                if self.monitored.contains(&name.folded()) {
                    out.push(self.numeric("731", &[name.as_str()]));
                }
                if !std::mem::take(&mut self.leaving).is_empty() {
                    let source = self.user_source(name.as_str());
                    let reason = match self.noted() {
                        Some(Note::Reason(reason)) => reason,
                        _ => "left",
                    };
                    out.push(format!("{source} QUIT :Quit: {reason}\r\n"));
                }
            }
            ServerLine::JoinedRoom { room, name } => {
                let source = self.user_source(name.as_str());
                out.push(format!("{source} JOIN {room}\r\n"));
            }
            ServerLine::LeftRoom { room, name } => {
                let source = self.user_source(name.as_str());
                let mut part = format!("{source} PART {room}");
                if let Some(Note::Reason(reason)) = self.noted() {
                    push_params(&mut part, &[reason], true);
                }
                part.push_str("\r\n");
                // Followed by more of the same user's: maybe a disconnect, known at its
                // `left <name>`; kept until then.
                let more = match next {
                    Some(ServerLine::LeftRoom { name: n, .. } | ServerLine::Left(n)) => *n == name,
                    _ => false,
                };
                if more && name.as_str() != self.nick {
                    self.leaving.push(part);
                } else {
                    out.append(&mut self.leaving);
                    out.push(part);
                }
            }
            ServerLine::Users(names) if self.cmd == Some(Cmd::Lusers) => {
                self.lusers(names.len(), out);
            }
            ServerLine::Users(names) => {
                let away = self.noted_away();
                self.users(&names, &away, out);
            }
            ServerLine::Names { room, names } => {
                let away = self.noted_away();
                self.names = Some(Names {
                    room,
                    names,
                    roles: None,
                    away,
                });
            }
            ServerLine::Roles { room, members } => self.roles(&room, &members, next, out),
            ServerLine::Topic { room, topic } => self.topic(&room, topic, out),
            ServerLine::Rooms(rooms) => {
                let filters = match &self.cmd {
                    Some(Cmd::List(filters)) => filters.clone(),
                    _ => String::new(),
                };
                out.push(self.numeric("321", &["Channel", "Users  Name"]));
                for (room, count) in rooms {
                    if !listed(&filters, room.as_str(), count) {
                        continue;
                    }
                    let count = count.to_string();
                    out.push(self.numeric("322", &[room.as_str(), &count, ""]));
                }
                out.push(self.numeric("323", &["End of /LIST"]));
            }
            ServerLine::History(entry) => self.history_entry(entry, out),
            ServerLine::HistoryEnd { .. } => {}
            ServerLine::Missed(n) if n > 0 => {
                let nick = self.nick.clone();
                let text = match n {
                    1 => "1 message arrived while you were away".to_owned(),
                    n => format!("{n} messages arrived while you were away"),
                };
                out.push(self.notice(&nick, &text));
            }
            ServerLine::Missed(_) | ServerLine::Pong(_) => {}
            ServerLine::Stored(name) => {
                let nick = self.nick.clone();
                let text = format!("{name} is offline: your message is kept for them");
                out.push(self.notice(&nick, &text));
            }
            ServerLine::Registered(name) => {
                let nick = self.nick.clone();
                out.push(self.notice(&nick, &format!("{name} is now registered")));
            }
            ServerLine::PasswordChanged => {
                let nick = self.nick.clone();
                out.push(self.notice(&nick, "password changed"));
            }
            ServerLine::Error(reason) => self.error(&reason, out),
            ServerLine::Bye(reason) => out.push(format!("ERROR :{reason}\r\n")),
            ServerLine::Modes { room, modes } => {
                let flags = format!("+{}", modes_letters(modes));
                out.push(self.numeric("324", &[room.as_str(), &flags]));
            }
            ServerLine::Mode {
                room,
                setter,
                change,
            } => {
                let source = self.setter_source(&setter);
                let (sign, letter, arg) = match &change {
                    ModeChange::Flag { on, mode } => (*on, mode.letter(), None),
                    ModeChange::Role { on, role, name } => (*on, role.letter(), Some(name)),
                    ModeChange::Ban { on, name } => (*on, 'b', Some(name)),
                };
                let sign = if sign { '+' } else { '-' };
                let mut line = format!("{source} MODE {room} {sign}{letter}");
                if let Some(name) = arg {
                    let _ = write!(line, " {name}");
                    if letter == 'b' {
                        line.push_str("!*@*");
                    }
                }
                line.push_str("\r\n");
                out.push(line);
            }
            ServerLine::Kicked {
                room,
                name,
                setter,
                reason,
            } => {
                let source = self.setter_source(&setter);
                // RFC 2812: without a comment, the kicker's nick is the comment.
                let reason = reason.map_or_else(
                    || match &setter {
                        Setter::User(by) => by.as_str().to_owned(),
                        Setter::Server => self.server.name.clone(),
                    },
                    |r| r.to_string(),
                );
                let mut line = format!("{source} KICK {room} {name}");
                push_params(&mut line, &[&reason], true);
                line.push_str("\r\n");
                out.push(line);
            }
            ServerLine::Bans { room, names } => {
                for name in names {
                    let mask = format!("{name}!*@*");
                    out.push(self.numeric("367", &[room.as_str(), &mask]));
                }
                out.push(self.numeric("368", &[room.as_str(), "End of channel ban list"]));
            }
            ServerLine::Invited { room, by } => {
                let source = self.user_source(by.as_str());
                out.push(format!("{source} INVITE {} {room}\r\n", self.nick));
            }
            ServerLine::InviteSent { name, room } => {
                out.push(self.numeric("341", &[name.as_str(), room.as_str()]));
            }
            ServerLine::Read {
                conv: Conv::Room(room),
                id,
            } if self
                .join_end
                .as_ref()
                .is_some_and(|(r, _)| r == room.as_str()) =>
            {
                let ms = id.map_or(0, |id| id.get() / 1000);
                out.push(self.markread_line(room.as_str(), ms));
                if let Some((_, end)) = self.join_end.take() {
                    out.push(end);
                }
            }
            ServerLine::Read { conv, id } => {
                let target = self.conv_target(&conv);
                let stamp = id.map_or_else(
                    || "*".to_owned(),
                    |id| format!("timestamp={}", id_time(id.get())),
                );
                let line = format!(":{} MARKREAD {target} {stamp}\r\n", self.server.name);
                // The asker's own move comes back as a push; it hears one answer, at the
                // end of its `MARKREAD`.
                match &self.cmd {
                    Some(Cmd::MarkRead(_) | Cmd::MarkReadNow(_)) => {
                        self.markread = MarkReadAnswer::Line(line);
                    }
                    _ => out.push(line),
                }
            }
            ServerLine::Away { name, .. } if self.cmd == Some(Cmd::Userhost) => {
                if let Some(found) = self.userhost.iter_mut().find(|(n, _)| *n == name.as_str()) {
                    found.1 = true;
                }
            }
            // `WHO <nick>`: said as the `G` of its `352`; nothing for `MONITOR`.
            ServerLine::Away { .. } if matches!(self.cmd, Some(Cmd::Who(_) | Cmd::Monitor(_))) => {}
            ServerLine::Whois { name, .. } if matches!(self.cmd, Some(Cmd::Monitor(_))) => {
                self.monitor_online.push(name.as_str().to_owned());
            }
            ServerLine::Away { name, text } => {
                out.push(self.numeric("301", &[name.as_str(), text.as_str()]));
            }
            ServerLine::Whois { name, .. } if self.cmd == Some(Cmd::Userhost) => {
                self.userhost.push((name.as_str().to_owned(), false));
            }
            ServerLine::Whois {
                name,
                idle,
                sessions,
            } => {
                let away = matches!(next, Some(ServerLine::Away { name: n, .. }) if *n == name);
                self.whois(&name, idle, sessions, away, out);
            }
            ServerLine::RoomRegistered { room, founder } => {
                let text = format!("{room} is now registered to {founder}");
                out.push(self.notice(room.as_str(), &text));
            }
        }
    }

    /// `001` to `005`, then `422` (no message of the day).
    fn welcome(&mut self, out: &mut Vec<String>) {
        let server = self.server.clone();
        let nick = self.nick.clone();
        out.push(self.numeric("001", &[&format!("Welcome to the chat, {nick}")]));
        out.push(self.numeric(
            "002",
            &[&format!(
                "Your host is {}, running chat-server {}",
                server.name, server.version
            )],
        ));
        out.push(self.numeric("003", &["This server has no creation date to tell"]));
        out.push(self.numeric(
            "004",
            &[&server.name, server.version, "i", "bimostv", "bov"],
        ));
        for tokens in &server.isupport {
            let mut line = format!(":{} 005 {nick} {tokens}", server.name);
            push_params(&mut line, &["are supported by this server"], true);
            line.push_str("\r\n");
            out.push(line);
        }
        out.push(self.numeric("422", &["MOTD File is missing"]));
    }

    fn message(
        &mut self,
        sender: &UserName,
        scope: Scope,
        text: &MessageText,
        out: &mut Vec<String>,
    ) {
        let source = self.user_source(sender.as_str());
        match scope {
            Scope::Direct => {
                let tags = self.tags(None, None);
                let nick = self.nick.clone();
                out.push(privmsg(&tags, &source, &nick, text.as_str()));
            }
            Scope::Everyone => {
                let tags = self.tags(None, None);
                let nick = self.nick.clone();
                let text = format!("[to everyone] {text}");
                out.push(privmsg(&tags, &source, &nick, &text));
            }
            Scope::Room { room, id } => {
                let tags = self.tags(Some(id_time(id.get())), Some(id));
                out.push(privmsg(&tags, &source, room.as_str(), text.as_str()));
            }
        }
        if self.noted() == Some(Note::Notice)
            && let Some(line) = out.last_mut()
        {
            *line = line.replacen(" PRIVMSG ", " NOTICE ", 1);
        }
    }

    /// `away-notify`: `:<name>!... AWAY [:text]`, unless the client did not ask for it,
    /// it is its own, or it was just said (`note` is the note's text).
    fn away_notify(&mut self, name: &str, text: Option<&str>, note: &str) -> Option<String> {
        if !self.caps.has(Cap::AwayNotify)
            || name == self.nick
            || self.last_away.as_deref() == Some(note)
        {
            return None;
        }
        self.last_away = Some(note.to_owned());
        let mut line = format!("{} AWAY", self.user_source(name));
        if let Some(text) = text {
            push_params(&mut line, &[text], true);
        }
        line.push_str("\r\n");
        Some(line)
    }

    /// The folded names the note on the `names` or `users` line being translated says are
    /// away.
    fn noted_away(&self) -> Vec<String> {
        match self.noted() {
            Some(Note::AwayAmong(away)) => away.split(',').map(str::to_owned).collect(),
            _ => Vec::new(),
        }
    }

    /// The note on the line being translated.
    fn noted(&self) -> Option<Note<'_>> {
        self.note.as_deref().and_then(Note::parse)
    }

    /// `@time=...;msgid=... ` for the tags the client asked for, or nothing.
    fn tags(&mut self, time: Option<Timestamp>, msgid: Option<MessageId>) -> String {
        let mut tags = String::new();
        if self.caps.has(Cap::ServerTime) {
            let time = time.unwrap_or_else(|| *self.now.get_or_insert_with(now));
            let _ = write!(tags, "time={time}");
        }
        if let (Some(id), true) = (msgid, self.caps.has(Cap::MessageTags)) {
            if !tags.is_empty() {
                tags.push(';');
            }
            let _ = write!(tags, "msgid={id}");
        }
        if tags.is_empty() {
            tags
        } else {
            format!("@{tags} ")
        }
    }

    /// `:<name>!<name>@<server>`: every user's host is the server's.
    fn user_source(&self, name: &str) -> String {
        format!(":{name}!{name}@{}", self.server.name)
    }

    fn setter_source(&self, setter: &Setter) -> String {
        match setter {
            Setter::Server => format!(":{}", self.server.name),
            Setter::User(name) => self.user_source(name.as_str()),
        }
    }

    /// `:<server> <code> <nick> <params...>`.
    fn numeric(&self, code: &str, params: &[&str]) -> String {
        let mut line = format!(":{} {code} {}", self.server.name, self.nick);
        push_params(&mut line, params, false);
        line.push_str("\r\n");
        line
    }

    fn notice(&self, target: &str, text: &str) -> String {
        let mut line = format!(":{} NOTICE {target}", self.server.name);
        push_params(&mut line, &[text], true);
        line.push_str("\r\n");
        line
    }

    /// A native `error:`, as the command it answers makes it.
    fn error(&mut self, reason: &str, out: &mut Vec<String>) {
        let cmd = self.cmd.clone();
        if let (Some(Cmd::Message { .. }), Some(names)) =
            (&cmd, reason.strip_prefix("no such user: "))
        {
            for name in names.split(',') {
                let folded = UserName::parse(name).map_or_else(|_| name.to_owned(), |n| n.folded());
                self.echoes.retain(|(to, _)| *to != folded);
            }
        }
        match cmd {
            Some(Cmd::Message { notice: true }) => {}
            Some(Cmd::Message { notice: false }) => {
                if let Some(names) = reason.strip_prefix("no such user: ") {
                    for name in names.split(',') {
                        out.push(self.numeric("401", &[name, "No such nick/channel"]));
                    }
                } else if let Some(rooms) = reason.strip_prefix("not a member of ") {
                    for room in rooms.split(',') {
                        out.push(
                            self.numeric(
                                "404",
                                &[room, "Cannot send to channel (you are not in it)"],
                            ),
                        );
                    }
                } else if let Some((room, why)) =
                    reason.split_once(": ").filter(|(r, _)| r.starts_with('#'))
                {
                    out.push(self.numeric("404", &[room, why]));
                } else {
                    out.push(self.numeric("400", &["PRIVMSG", reason]));
                }
            }
            Some(Cmd::Join(room)) => {
                let code = if reason.contains("banned") {
                    "474"
                } else if reason.contains("invite") {
                    "473"
                } else {
                    "403"
                };
                out.push(self.numeric(code, &[&room, reason]));
            }
            Some(Cmd::Part(room)) => {
                let code = if reason.contains("not a member") {
                    "442"
                } else {
                    "403"
                };
                out.push(self.numeric(code, &[&room, reason]));
            }
            Some(Cmd::Op(room)) if reason.starts_with("you are not in ") => {
                // An op command's answer for a room that does not exist (a member of an
                // existing one hears that it needs op).
                out.push(self.numeric("403", &[&room, "No such channel"]));
            }
            Some(
                Cmd::Channel(room)
                | Cmd::Op(room)
                | Cmd::Topic(room)
                | Cmd::Mode(room)
                | Cmd::Bans(room),
            ) => {
                // Numerics about another user name it first (Modern IRC).
                let about = |sep: &str| reason.split_once(sep).map(|(name, _)| name);
                if reason.contains("you need op") {
                    out.push(self.numeric("482", &[&room, reason]));
                } else if reason.starts_with("you are not in ")
                    || (reason.contains("not a member of") && reason.contains(room.as_str()))
                {
                    out.push(self.numeric("442", &[&room, reason]));
                } else if let Some(name) = about(" is already in ") {
                    // `INVITE` of a member.
                    out.push(self.numeric("443", &[name, &room, reason]));
                } else if let Some(name) = about(" is not in ") {
                    out.push(self.numeric("441", &[name, &room, reason]));
                } else if let Some(name) = about(" is not online") {
                    out.push(self.numeric("401", &[name, reason]));
                } else if let Some(names) = reason.strip_prefix("no such user: ") {
                    for name in names.split(',') {
                        out.push(self.numeric("401", &[name, "No such nick/channel"]));
                    }
                } else {
                    out.push(self.numeric("403", &[&room, reason]));
                }
            }
            Some(Cmd::Whois(nick)) => {
                out.push(self.numeric("401", &[&nick, "No such nick/channel"]));
            }
            // `NAMES` of a channel that does not exist: only the `366`.
            Some(
                Cmd::Who(_)
                | Cmd::List(_)
                | Cmd::Lusers
                | Cmd::Userhost
                | Cmd::LocalRead(_)
                | Cmd::Monitor(_)
                | Cmd::Names(_)
                | Cmd::Probe(_),
            ) => {}
            Some(Cmd::History(ask)) => {
                self.history = Collected::default();
                self.cmd = None;
                out.push(format!(
                    ":{} FAIL CHATHISTORY MESSAGE_ERROR {} :{reason}\r\n",
                    self.server.name, ask.target
                ));
            }
            Some(Cmd::MarkReadNow(_)) if matches!(self.markread, MarkReadAnswer::Failed) => {
                self.markread = MarkReadAnswer::None;
            }
            Some(Cmd::MarkRead(target) | Cmd::MarkReadNow(target)) => {
                if matches!(self.cmd, Some(Cmd::MarkRead(_))) {
                    self.markread = MarkReadAnswer::Failed;
                }
                out.push(format!(
                    ":{} FAIL MARKREAD INTERNAL_ERROR {target} :{reason}\r\n",
                    self.server.name
                ));
            }
            Some(Cmd::Other(command)) => out.push(self.numeric("400", &[&command, reason])),
            // Outside any command: the broker is about to close the connection.
            None => out.push(format!("ERROR :{reason}\r\n")),
        }
    }

    /// `roles` completes the `names` before it: `353` and `366`, after the topic if a
    /// topic line comes next (RFC 2812 3.2.1 puts the topic first). For `WHO #channel`,
    /// one `352` per member instead.
    fn roles(
        &mut self,
        room: &RoomName,
        members: &[(Role, UserName)],
        next: Option<&ServerLine>,
        out: &mut Vec<String>,
    ) {
        let Some(stash) = self.names.take_if(|stash| &stash.room == room) else {
            return;
        };
        if let Some(Cmd::Who(_)) = &self.cmd {
            for name in &stash.names {
                let here = if stash.away.contains(&name.folded()) {
                    'G'
                } else {
                    'H'
                };
                let mut flags = String::from(here);
                if let Some(role) = role_of(members, name) {
                    flags.push(role.prefix());
                }
                out.push(self.who_line(room.as_str(), name.as_str(), &flags));
            }
            return;
        }
        let topic_next =
            matches!(next, Some(ServerLine::Topic { room: r, topic: Some(_) }) if r == room);
        let stash = Names {
            roles: Some(members.to_vec()),
            ..stash
        };
        if topic_next {
            self.names = Some(stash);
        } else {
            self.names_reply(stash, out);
        }
    }

    /// `353` (with each member's prefix) and `366`.
    fn names_reply(&mut self, stash: Names, out: &mut Vec<String>) {
        let roles = stash.roles.unwrap_or_default();
        let room = stash.room.as_str();
        // RFC 2812: `@` for a secret channel, `=` for a public one.
        let secret = self
            .probed
            .as_ref()
            .is_some_and(|p| p.secret && p.room == room);
        let symbol = if secret { "@" } else { "=" };
        // What fits after `:<server> 353 <nick> = <room> :` in 510 bytes.
        let room_len = room.len();
        let budget = 510 - (self.server.name.len() + self.nick.len() + room_len + 12).min(300);
        let mut line = String::new();
        let mut entry = String::new();
        for name in &stash.names {
            entry.clear();
            if let Some(role) = role_of(&roles, name) {
                entry.push(role.prefix());
            }
            entry.push_str(name.as_str());
            if self.caps.has(Cap::UserhostInNames) {
                let _ = write!(entry, "!{name}@{}", self.server.name);
            }
            if !line.is_empty() && line.len() + 1 + entry.len() > budget {
                out.push(self.numeric("353", &[symbol, room, &line]));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&entry);
        }
        if !line.is_empty() {
            out.push(self.numeric("353", &[symbol, room, &line]));
        }
        // draft/read-marker: a joiner hears its marker before `366`: this connection's
        // own, or the account's, asked after the join (the `366` waits for it).
        if self.caps.has(Cap::ReadMarker)
            && matches!(&self.cmd, Some(Cmd::Join(joined)) if joined == room)
        {
            if self.registered {
                let end = self.numeric("366", &[room, "End of /NAMES list"]);
                self.join_end = Some((room.to_owned(), end));
                self.named = Some(stash.room);
                return;
            }
            let ms = self
                .local_reads
                .get(&room.to_lowercase())
                .copied()
                .unwrap_or(0);
            out.push(self.markread_line(room, ms));
        }
        // A `NAMES` says its one `366` at its end.
        if self.names_end.is_none() {
            out.push(self.numeric("366", &[room, "End of /NAMES list"]));
        }
        self.named = Some(stash.room);
    }

    /// Names waiting for a line that is not their `roles` or topic: said as they are.
    fn flush_names(&mut self, out: &mut Vec<String>) {
        if let Some(stash) = self.names.take() {
            self.names_reply(stash, out);
        }
    }

    fn topic(&mut self, room: &RoomName, topic: Option<TopicInfo>, out: &mut Vec<String>) {
        let stash = self
            .names
            .take_if(|stash| &stash.room == room && stash.roles.is_some());
        let cleared_by = match self.noted() {
            Some(Note::ClearedBy(name)) => Some(name.to_owned()),
            _ => None,
        };
        // Right after a channel's names (a join's, from this session or another of the
        // account), or asked for: the numerics. Otherwise someone changed it.
        let answer = cleared_by.is_none()
            && (stash.is_some()
                || self.named.as_ref() == Some(room)
                || matches!(&self.cmd, Some(Cmd::Topic(r)) if r == room.as_str()));
        let missing = matches!(&self.cmd, Some(Cmd::Topic(r)) if r == room.as_str())
            && self.probed.as_ref().is_some_and(|p| !p.exists);
        match (answer, topic) {
            (true, _) if missing => {
                out.push(self.numeric("403", &[room.as_str(), "No such channel"]));
            }
            (true, Some(topic)) => {
                out.push(self.numeric("332", &[room.as_str(), topic.text.as_str()]));
                let who = match &topic.setter {
                    Setter::Server => self.server.name.clone(),
                    Setter::User(name) => name.as_str().to_owned(),
                };
                let secs = (topic.time.unix_millis() / 1000).to_string();
                out.push(self.numeric("333", &[room.as_str(), &who, &secs]));
            }
            (true, None) => out.push(self.numeric("331", &[room.as_str(), "No topic is set"])),
            (false, topic) => {
                let (source, text) = match (&topic, &cleared_by) {
                    (Some(topic), _) => (self.setter_source(&topic.setter), topic.text.as_str()),
                    (None, Some(name)) => (self.user_source(name), ""),
                    (None, None) => (format!(":{}", self.server.name), ""),
                };
                let mut line = format!("{source} TOPIC {room}");
                push_params(&mut line, &[text], true);
                line.push_str("\r\n");
                out.push(line);
            }
        }
        if let Some(stash) = stash {
            self.names_reply(stash, out);
        }
        self.named = None;
    }

    /// `251`, `255`, `265` and `266` for `users` online (every user is visible, and
    /// this server is the only one a client sees).
    fn lusers(&mut self, users: usize, out: &mut Vec<String>) {
        let text = format!("There are {users} users and 0 invisible on 1 servers");
        out.push(self.numeric("251", &[&text]));
        let text = format!("I have {users} clients and 0 servers");
        out.push(self.numeric("255", &[&text]));
        let text = format!("Current local users: {users}");
        out.push(self.numeric("265", &[&text]));
        let text = format!("Current global users: {users}");
        out.push(self.numeric("266", &[&text]));
    }

    /// `WHO <mask>`: a `352` for each user online whose name matches.
    /// `352` for each of `names` that `WHO`'s mask matches; `G` for those whose folded
    /// names are in `away`.
    fn users(&mut self, names: &[UserName], away: &[String], out: &mut Vec<String>) {
        let mask = match &self.cmd {
            Some(Cmd::Who(mask)) => mask.clone(),
            _ => "*".to_owned(),
        };
        for name in names {
            if glob(&mask, name.as_str()) {
                let flags = if away.contains(&name.folded()) {
                    "G"
                } else {
                    "H"
                };
                out.push(self.who_line("*", name.as_str(), flags));
            }
        }
    }

    /// `352`: `<channel> <user> <host> <server> <nick> <flags> :<hops> <realname>`.
    fn who_line(&self, channel: &str, name: &str, flags: &str) -> String {
        let server = self.server.name.as_str();
        let (user, real) = self.server.ident(name);
        let real = format!("0 {real}");
        self.numeric("352", &[channel, &user, server, server, name, flags, &real])
    }

    fn whois(
        &mut self,
        name: &UserName,
        idle: u64,
        sessions: usize,
        away: bool,
        out: &mut Vec<String>,
    ) {
        let name = name.as_str();
        if let Some(Cmd::Who(_)) = &self.cmd {
            let flags = if away { "G" } else { "H" };
            out.push(self.who_line("*", name, flags));
            return;
        }
        let server = self.server.name.clone();
        let (user, real) = match &self.own {
            Some((user, real)) if name == self.nick => (user.clone(), real.clone()),
            _ => self.server.ident(name),
        };
        out.push(self.numeric("311", &[name, &user, &server, "*", &real]));
        // The broker knows no sign-on time, which `317` needs, and `320` is for what
        // the operators configure: the idle time and the sessions go in `312`'s text.
        let info = format!("chat-server: idle {idle} s, connected {sessions} time(s)");
        out.push(self.numeric("312", &[name, &server, &info]));
    }

    fn history_entry(&mut self, entry: HistoryEntry, out: &mut Vec<String>) {
        if let Some(Cmd::History(_)) = &self.cmd {
            self.history.entries.push(entry);
            return;
        }
        // Outside CHATHISTORY: the offline messages a login brings.
        let tags = self.tags(Some(entry.time), Some(entry.id));
        let source = self.user_source(entry.sender.as_str());
        let target = self.entry_target(&entry);
        out.push(privmsg(&tags, &source, &target, entry.text.as_str()));
    }

    /// Where a stored message goes as IRC shows it: the channel, or for a conversation
    /// between two users, the other one's nick for what this user sent, else this user.
    fn entry_target(&self, entry: &HistoryEntry) -> String {
        match &entry.conv {
            Conv::Room(room) => room.as_str().to_owned(),
            Conv::Direct(other) if entry.sender.as_str() == self.nick => other.as_str().to_owned(),
            Conv::Direct(_) => self.nick.clone(),
        }
    }

    /// A `CHATHISTORY` reply: the kept messages in a `chathistory` batch.
    fn history_batch(&mut self, ask: &HistoryAsk, out: &mut Vec<String>) {
        let mut entries = std::mem::take(&mut self.history).entries;
        let outsider = self
            .probed
            .as_ref()
            .is_some_and(|p| p.room == ask.target && !p.member);
        if outsider {
            let mut line = format!(
                ":{} FAIL CHATHISTORY INVALID_TARGET {} {}",
                self.server.name, ask.sub, ask.target
            );
            push_params(&mut line, &["You are not in that channel"], true);
            line.push_str("\r\n");
            out.push(line);
            return;
        }
        entries.sort_by_key(|entry| entry.id);
        entries.dedup_by_key(|entry| entry.id);
        let entries = select(entries, ask.select);
        let reference = self.batch_ref();
        let batch = self.caps.has(Cap::Batch);
        if batch {
            out.push(format!(
                ":{} BATCH +{reference} chathistory {}\r\n",
                self.server.name, ask.target
            ));
        }
        for entry in entries {
            let mut tags = self.tags(Some(entry.time), Some(entry.id));
            if batch {
                tags = with_tag(&tags, &format!("batch={reference}"));
                if tags.ends_with("  ") {
                    tags.pop();
                }
            }
            let source = self.user_source(entry.sender.as_str());
            let target = self.entry_target(&entry);
            out.push(privmsg(&tags, &source, &target, entry.text.as_str()));
        }
        if batch {
            out.push(format!(":{} BATCH -{reference}\r\n", self.server.name));
        }
    }

    /// `MARKREAD <target> timestamp=<time>`, or `*` for none (0).
    fn markread_line(&self, target: &str, ms: u64) -> String {
        let stamp = if ms == 0 {
            "*".to_owned()
        } else {
            format!("timestamp={}", id_time(ms * 1000))
        };
        format!(":{} MARKREAD {target} {stamp}\r\n", self.server.name)
    }

    fn conv_target(&self, conv: &Conv) -> String {
        match conv {
            Conv::Room(room) => room.as_str().to_owned(),
            Conv::Direct(name) => name.as_str().to_owned(),
        }
    }
}

/// What a [`Cmd::Probe`] found out about a channel.
#[derive(Debug)]
struct Probed {
    room: String,
    exists: bool,
    secret: bool,
    /// Whether this client is among its members.
    member: bool,
}

/// A channel's `names`, kept until its `roles` (and topic) come.
#[derive(Debug)]
struct Names {
    room: RoomName,
    names: Vec<UserName>,
    roles: Option<Vec<(Role, UserName)>>,
    /// Those of `names` who are away, as the broker noted.
    away: Vec<String>,
}

fn role_of(roles: &[(Role, UserName)], name: &UserName) -> Option<Role> {
    roles
        .iter()
        .find(|(_, member)| member == name)
        .map(|(role, _)| *role)
}

/// The messages `select` keeps of `entries` (sorted by id).
fn select(entries: Vec<HistoryEntry>, select: Select) -> Vec<HistoryEntry> {
    let below = |bound: u64| move |entry: &HistoryEntry| entry.id.get() < bound;
    let last = |entries: Vec<HistoryEntry>, n: usize| {
        let skip = entries.len().saturating_sub(n);
        entries.into_iter().skip(skip).collect()
    };
    match select {
        Select::Last(n) => last(entries, n),
        Select::First(n) => entries.into_iter().take(n).collect(),
        Select::FirstBelow(n, bound) => entries.into_iter().filter(below(bound)).take(n).collect(),
        Select::LastBelow(n, bound) => last(entries.into_iter().filter(below(bound)).collect(), n),
        Select::Around(n, pivot) => {
            let (before, after): (Vec<_>, Vec<_>) = entries.into_iter().partition(below(pivot));
            let before = last(before, n / 2);
            let rest = n - before.len();
            before
                .into_iter()
                .chain(after.into_iter().take(rest))
                .collect()
        }
    }
}

/// Whether `LIST`'s `filters` (comma-separated, ELIST `MNU`) keep a channel with `users`
/// members: every `<n`/`>n` holds, no `!mask` matches, and one mask matches if any is
/// given.
fn listed(filters: &str, room: &str, users: impl TryInto<u64>) -> bool {
    let users: u64 = users.try_into().unwrap_or(u64::MAX);
    let mut masks = 0;
    let mut matched = false;
    for filter in filters.split(',').filter(|f| !f.is_empty()) {
        if let Some(n) = filter.strip_prefix('<') {
            if !n.parse::<u64>().is_ok_and(|n| users < n) {
                return false;
            }
        } else if let Some(n) = filter.strip_prefix('>') {
            if !n.parse::<u64>().is_ok_and(|n| users > n) {
                return false;
            }
        } else if let Some(mask) = filter.strip_prefix('!') {
            if glob(mask, room) {
                return false;
            }
        } else {
            masks += 1;
            matched |= glob(filter, room);
        }
    }
    masks == 0 || matched
}

/// Whether `text` matches `mask`, where `*` is any run of characters and `?` any one,
/// ignoring ASCII case (a `WHO` mask). `0` is everyone, as `*` (RFC 2812).
fn glob(mask: &str, text: &str) -> bool {
    if mask == "0" {
        return true;
    }
    let mask: Vec<char> = mask.chars().map(|c| c.to_ascii_lowercase()).collect();
    let text: Vec<char> = text.chars().map(|c| c.to_ascii_lowercase()).collect();
    // Iterative wildcard matching with one backtrack point.
    let (mut m, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if m < mask.len() && (mask[m] == '?' || mask[m] == text[t]) {
            m += 1;
            t += 1;
        } else if m < mask.len() && mask[m] == '*' {
            star = Some((m, t));
            m += 1;
        } else if let Some((sm, st)) = star {
            m = sm + 1;
            t = st + 1;
            star = Some((sm, st + 1));
        } else {
            return false;
        }
    }
    mask[m..].iter().all(|&c| c == '*')
}

fn with_tag(line: &str, tag: &str) -> String {
    match line.strip_prefix('@') {
        Some(rest) => format!("@{tag};{rest}"),
        None => format!("@{tag} {line}"),
    }
}

fn privmsg(tags: &str, source: &str, target: &str, text: &str) -> String {
    let body = match text.strip_prefix("/me ") {
        Some(action) => format!("\u{1}ACTION {action}\u{1}"),
        None => text.to_owned(),
    };
    format!("{tags}{source} PRIVMSG {target} :{body}\r\n")
}

fn modes_letters(modes: chat_proto::RoomModes) -> String {
    chat_proto::RoomMode::ALL
        .into_iter()
        .filter(|mode| modes.has(*mode))
        .map(chat_proto::RoomMode::letter)
        .collect()
}

/// The time a message id stands for: ids are microseconds since the epoch.
pub fn id_time(id: u64) -> Timestamp {
    i64::try_from(id / 1000)
        .ok()
        .and_then(Timestamp::from_unix_millis)
        .unwrap_or_else(now)
}

/// The time now.
pub fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis)
        .unwrap_or_else(|| Timestamp::from_unix_millis(0).expect("the epoch is a valid time"))
}
