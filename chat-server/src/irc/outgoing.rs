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
use std::fmt::Write as _;
use std::sync::Arc;

use bytes::BytesMut;
use chat_proto::{
    Conv, HistoryEntry, MessageId, MessageText, ModeChange, Recipient, Role, RoomName, Scope,
    ServerLine, Setter, Timestamp, TopicInfo, UserName,
};

use super::caps::{Cap, Caps};
use super::message::{escape_tag, push_params};

/// What every connection of one listener says the same way.
#[derive(Debug)]
pub struct Server {
    /// The server's IRC name (`--server-name`): the source of its own messages.
    pub name: String,
    /// The `005` tokens, already split into lines of at most 13.
    pub isupport: Vec<String>,
    /// The version `002` and `004` give.
    pub version: &'static str,
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
    /// `NAMES` of one channel.
    Names(String),
    /// A `TOPIC` query.
    Topic(String),
    /// A `TOPIC` change, `MODE` change, `KICK` or `INVITE` on a channel.
    Channel(String),
    /// A `MODE` query.
    Mode(String),
    /// The ban list (`MODE #c +b`).
    Bans(String),
    /// `WHO <mask>`.
    Who(String),
    /// `WHOIS <nick>`.
    Whois(String),
    /// `LIST`.
    List,
    /// `CHATHISTORY`: where the messages go, and which of the replies to keep.
    History(HistoryAsk),
    /// `MARKREAD <target> <timestamp>`: the marker moved (or not: a marker only moves
    /// forward, and then the native protocol answers nothing).
    MarkRead(String),
    /// `MARKREAD <target>`, also asked after each move: where the marker is now, the
    /// one answer a `MARKREAD` gets.
    MarkReadNow(String),
}

/// Which stored messages a `CHATHISTORY` keeps of the native replies it asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryAsk {
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
            Cmd::Topic(c) => write!(m, "topic {c}"),
            Cmd::Channel(c) => write!(m, "channel {c}"),
            Cmd::Mode(c) => write!(m, "mode {c}"),
            Cmd::Bans(c) => write!(m, "bans {c}"),
            Cmd::Who(c) => write!(m, "who {c}"),
            Cmd::Whois(c) => write!(m, "whois {c}"),
            Cmd::List => write!(m, "list -"),
            Cmd::MarkRead(c) => write!(m, "markread {c}"),
            Cmd::MarkReadNow(c) => write!(m, "markreadnow {c}"),
            Cmd::History(ask) => {
                let (kind, n, bound) = match ask.select {
                    Select::Last(n) => ("last", n, 0),
                    Select::First(n) => ("first", n, 0),
                    Select::FirstBelow(n, b) => ("firstbelow", n, b),
                    Select::LastBelow(n, b) => ("lastbelow", n, b),
                    Select::Around(n, b) => ("around", n, b),
                };
                write!(m, "history {} {kind} {n} {bound}", ask.target)
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
            "topic" => Cmd::Topic(arg),
            "channel" => Cmd::Channel(arg),
            "mode" => Cmd::Mode(arg),
            "bans" => Cmd::Bans(arg),
            "who" => Cmd::Who(arg),
            "whois" => Cmd::Whois(arg),
            "list" => Cmd::List,
            "markread" => Cmd::MarkRead(arg),
            "markreadnow" => Cmd::MarkReadNow(arg),
            "history" => {
                let mut words = arg.split(' ');
                let target = words.next()?.to_owned();
                let kind = words.next()?;
                let n = words.next()?.parse().ok()?;
                let bound = words.next()?.parse().ok()?;
                let select = match kind {
                    "last" => Select::Last(n),
                    "first" => Select::First(n),
                    "firstbelow" => Select::FirstBelow(n, bound),
                    "lastbelow" => Select::LastBelow(n, bound),
                    "around" => Select::Around(n, bound),
                    _ => return None,
                };
                Cmd::History(HistoryAsk { target, select })
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

/// How many room messages each thread keeps the IRC form of.
const ROOM_LINES_KEPT: usize = 4;

thread_local! {
    /// The IRC form of the room messages this thread translated last. A message to a
    /// channel of 1,000 reaches 1,000 writers, mostly one after another on the same
    /// thread, and its IRC form depends only on the listener and the capabilities: it
    /// is made once, not 1,000 times.
    static ROOM_LINES: RefCell<Vec<(RoomLineKey, String)>> = const { RefCell::new(Vec::new()) };
}

/// A native room message as one kind of IRC client sees it: the server's name is in
/// every source, the capabilities decide the tags.
#[derive(Debug)]
struct RoomLineKey {
    server: String,
    caps: Caps,
    native: Box<[u8]>,
}

/// The IRC form kept for `native`, a room message as a client of `server` with `caps`
/// sees it.
fn cached_room_line(server: &Server, caps: Caps, native: &[u8]) -> Option<String> {
    if !native.starts_with(b"from ") {
        return None;
    }
    ROOM_LINES.with_borrow(|kept| {
        kept.iter()
            .find(|(key, _)| {
                *key.native == *native && key.caps == caps && key.server == server.name
            })
            .map(|(_, irc)| irc.clone())
    })
}

/// Keeps `irc` as the IRC form of `native` for clients of `server` with `caps`.
fn keep_room_line(server: &Server, caps: Caps, native: &[u8], irc: String) {
    let key = RoomLineKey {
        server: server.name.clone(),
        caps,
        native: native.into(),
    };
    ROOM_LINES.with_borrow_mut(|kept| {
        if kept.len() == ROOM_LINES_KEPT {
            kept.remove(0);
        }
        kept.push((key, irc));
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
        }
    }

    /// Translates `native` (whole lines) and appends the IRC lines to `out`.
    pub fn translate(&mut self, native: &[u8], out: &mut BytesMut) {
        self.now = None;
        let mut lines = native
            .split_inclusive(|&b| b == b'\n')
            .map(|line| line.strip_suffix(b"\n").unwrap_or(line))
            .peekable();
        while let Some(line) = lines.next() {
            let next = lines.peek().copied();
            let mut emitted = Vec::new();
            self.one(line, next, &mut emitted);
            for line in emitted {
                self.emit(line, out);
            }
        }
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

    /// One line from the queue: what it becomes goes to `emitted`.
    fn one(&mut self, line: &[u8], next: Option<&[u8]>, emitted: &mut Vec<String>) {
        match line.first() {
            Some(0) => {
                let marker = String::from_utf8_lossy(&line[1..]);
                self.marker(&marker, emitted);
            }
            // Native lines start with a lower-case word; IRC lines with a source, tags or
            // an upper-case command (`ERROR`).
            Some(b':' | b'@' | b'A'..=b'Z') => {
                // Made whole in the reader's task, `\r\n` and all.
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                let mut line = String::from_utf8_lossy(line).into_owned();
                line.push_str("\r\n");
                emitted.push(line);
            }
            _ => {
                if let Some(irc) = cached_room_line(&self.server, self.caps, line) {
                    self.flush_names(emitted);
                    self.named = None;
                    emitted.push(irc);
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
                        self.server_line(parsed, next.as_ref(), emitted);
                        if let (true, Some(irc)) = (room, emitted.last()) {
                            keep_room_line(&self.server, self.caps, line, irc.clone());
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
        let (kind, rest) = marker.split_at(marker.len().min(1));
        if kind == "K" {
            if let Ok(bits) = rest.parse() {
                self.caps = Caps::from_bits(bits);
            }
            return;
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
                self.cmd = Cmd::parse(rest);
            }
            _ => {}
        }
    }

    /// Ends the replies to the current client command, its label's included.
    fn finish(&mut self, emitted: &mut Vec<String>) {
        self.end_command(emitted);
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
            ServerLine::Joined(_) => {}
            ServerLine::Left(name) => {
                let source = self.user_source(name.as_str());
                out.push(format!("{source} QUIT :Quit: left\r\n"));
            }
            ServerLine::JoinedRoom { room, name } => {
                let source = self.user_source(name.as_str());
                out.push(format!("{source} JOIN {room}\r\n"));
            }
            ServerLine::LeftRoom { room, name } => {
                let source = self.user_source(name.as_str());
                out.push(format!("{source} PART {room}\r\n"));
            }
            ServerLine::Users(names) => self.users(&names, out),
            ServerLine::Names { room, names } => {
                self.names = Some(Names {
                    room,
                    names,
                    roles: None,
                });
            }
            ServerLine::Roles { room, members } => self.roles(&room, &members, next, out),
            ServerLine::Topic { room, topic } => self.topic(&room, topic, out),
            ServerLine::Rooms(rooms) => {
                out.push(self.numeric("321", &["Channel", "Users  Name"]));
                for (room, count) in rooms {
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
                let reason = reason.map_or_else(|| name.as_str().to_owned(), |r| r.to_string());
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
            ServerLine::Away { name, text } => {
                out.push(self.numeric("301", &[name.as_str(), text.as_str()]));
            }
            ServerLine::Whois {
                name,
                idle,
                sessions,
            } => self.whois(&name, idle, sessions, out),
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
            Some(
                Cmd::Channel(room)
                | Cmd::Names(room)
                | Cmd::Topic(room)
                | Cmd::Mode(room)
                | Cmd::Bans(room),
            ) => {
                let code = if reason.contains("you need op") {
                    "482"
                } else if reason.contains("not a member of") && reason.contains(room.as_str()) {
                    "442"
                } else if reason.contains("not a member") || reason.contains("not in") {
                    "441"
                } else if reason.contains("no such user") || reason.contains("not online") {
                    "401"
                } else {
                    "403"
                };
                out.push(self.numeric(code, &[&room, reason]));
            }
            Some(Cmd::Whois(nick)) => {
                out.push(self.numeric("401", &[&nick, "No such nick/channel"]));
            }
            Some(Cmd::Who(_) | Cmd::List) => {}
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
                let flags = role_of(members, name)
                    .map_or_else(|| "H".to_owned(), |role| format!("H{}", role.prefix()));
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
        let mut line = String::new();
        for name in &stash.names {
            if line.len() + name.as_str().len() > 400 {
                out.push(self.numeric("353", &["=", room, &line]));
                line.clear();
            }
            if !line.is_empty() {
                line.push(' ');
            }
            if let Some(role) = role_of(&roles, name) {
                line.push(role.prefix());
            }
            line.push_str(name.as_str());
        }
        if !line.is_empty() {
            out.push(self.numeric("353", &["=", room, &line]));
        }
        out.push(self.numeric("366", &[room, "End of /NAMES list"]));
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
        // Right after a channel's names (a join's, from this session or another of the
        // account), or asked for: the numerics. Otherwise someone changed it.
        let answer = stash.is_some()
            || self.named.as_ref() == Some(room)
            || matches!(&self.cmd, Some(Cmd::Topic(r)) if r == room.as_str());
        match (answer, topic) {
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
                let (source, text) = match &topic {
                    Some(topic) => (self.setter_source(&topic.setter), topic.text.as_str()),
                    None => (format!(":{}", self.server.name), ""),
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

    fn users(&mut self, names: &[UserName], out: &mut Vec<String>) {
        for name in names {
            out.push(self.who_line("*", name.as_str(), "H"));
        }
    }

    /// `352`: `<channel> <user> <host> <server> <nick> <flags> :<hops> <realname>`.
    fn who_line(&self, channel: &str, name: &str, flags: &str) -> String {
        let server = self.server.name.as_str();
        let real = format!("0 {name}");
        self.numeric("352", &[channel, name, server, server, name, flags, &real])
    }

    fn whois(&mut self, name: &UserName, idle: u64, sessions: usize, out: &mut Vec<String>) {
        let name = name.as_str();
        if let Some(Cmd::Who(_)) = &self.cmd {
            out.push(self.who_line("*", name, "H"));
            return;
        }
        let server = self.server.name.clone();
        out.push(self.numeric("311", &[name, name, &server, "*", name]));
        out.push(self.numeric("312", &[name, &server, "chat-server"]));
        let sessions = format!("is connected {sessions} time(s)");
        out.push(self.numeric("320", &[name, &sessions]));
        let idle = idle.to_string();
        out.push(self.numeric("317", &[name, &idle, "seconds idle"]));
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

    fn conv_target(&self, conv: &Conv) -> String {
        match conv {
            Conv::Room(room) => room.as_str().to_owned(),
            Conv::Direct(name) => name.as_str().to_owned(),
        }
    }
}

/// A channel's `names`, kept until its `roles` (and topic) come.
#[derive(Debug)]
struct Names {
    room: RoomName,
    names: Vec<UserName>,
    roles: Option<Vec<(Role, UserName)>>,
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

fn now() -> Timestamp {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    Timestamp::from_unix_millis(millis)
        .unwrap_or_else(|| Timestamp::from_unix_millis(0).expect("the epoch is a valid time"))
}
