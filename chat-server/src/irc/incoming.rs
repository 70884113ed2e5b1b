//! A registered IRC client's commands, translated to the broker's requests.
//!
//! Each command becomes the native lines that do the same, between the markers that let
//! the writer ([`super::outgoing`]) tell its replies apart; what the broker has no line
//! for (`PING`, `CAP`, a wrong parameter count) is answered here, through the broker
//! too, so that every reply keeps its place in the order.

use std::sync::Arc;

use bytes::Bytes;
use chat_proto::{
    ClientLine, Conv, HistoryRange, MessageId, MessageText, Recipient, Role, RoomMode, RoomName,
    TopicText, UserName,
};

use super::caps::{Cap, Caps};
use super::message::{Message, push_params};
use super::outgoing::{
    Cmd, HistoryAsk, Select, Server, caps_marker, end_marker, label_marker, monitor_marker,
};

/// What a probe asks the broker about a channel before a command.
#[derive(Debug, Clone, Copy)]
enum Ask {
    /// Its modes (`/mode`): whether it is secret, for `353`.
    Modes,
    /// Its members (`/names`): whether it exists, and whether the client is in it.
    Members,
}

/// The most nicks one client may `MONITOR` (`MONITOR=` in `005`).
pub const MONITOR_LIMIT: usize = 100;
/// Nicks per `732` line.
const MONITOR_PER_LINE: usize = 10;

/// `HELP`'s subjects: the commands this listener takes, with their syntax.
const HELP: &[(&str, &str)] = &[
    (
        "AWAY",
        "AWAY [message]: mark yourself away, or back without a message",
    ),
    (
        "CHATHISTORY",
        "CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN <target> ...",
    ),
    ("HELP", "HELP [command]: this help"),
    (
        "INVITE",
        "INVITE <nick> <channel>: invite someone to a channel",
    ),
    ("JOIN", "JOIN <channel>[,<channel>...]: join channels"),
    (
        "KICK",
        "KICK <channel> <nick> [reason]: remove someone from a channel (ops)",
    ),
    ("LIST", "LIST: the channels and their member counts"),
    ("LUSERS", "LUSERS: how many users are online"),
    (
        "MARKREAD",
        "MARKREAD <target> [timestamp=<time>]: your read marker",
    ),
    (
        "MODE",
        "MODE <channel> [+|-imstovb [args]]: channel modes, ops, voice, bans",
    ),
    (
        "MONITOR",
        "MONITOR +|-|C|L|S [nicks]: be told when nicks log in or leave",
    ),
    (
        "NAMES",
        "NAMES <channel>[,<channel>...]: a channel's members",
    ),
    (
        "NOTICE",
        "NOTICE <target> <text>: like PRIVMSG, never answered automatically",
    ),
    (
        "OPER",
        "OPER <account> <password>: confirm you are a server operator",
    ),
    ("PART", "PART <channel>[,<channel>...]: leave channels"),
    ("PING", "PING <token>: the server answers PONG <token>"),
    (
        "PRIVMSG",
        "PRIVMSG <nick|channel>[,...] <text>: send a message",
    ),
    ("QUIT", "QUIT [reason]: disconnect"),
    ("TIME", "TIME: the server's time"),
    (
        "TOPIC",
        "TOPIC <channel> [topic]: ask for or set a channel's topic",
    ),
    ("USERHOST", "USERHOST <nick>...: who is online, and away"),
    ("WHO", "WHO <channel|nick|mask>: users and their flags"),
    ("WHOIS", "WHOIS <nick>: about one user"),
    (
        "WHOWAS",
        "WHOWAS <nick> [count]: IRC users of this server who left",
    ),
];
use crate::broker::Request;

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on reading.
    Go,
    /// `QUIT`: close, saying this.
    Quit(String),
    /// `OPER <name> <password>`: the connection checks the password.
    Oper(String, String),
}

/// One registered client's reading side.
#[derive(Debug)]
pub struct Incoming {
    server: Arc<Server>,
    nick: String,
    caps: Caps,
    /// Commands read so far: the number of the markers around the current one.
    seq: u64,
    /// The nicks `MONITOR` watches: folded, and as the client gave them.
    monitor: Vec<(String, String)>,
    /// Logged in to a registered account: read markers are the account's (native
    /// `/read`); otherwise the writer keeps this connection's own.
    registered: bool,
}

impl Incoming {
    /// The reading side of a client registered as `nick` with `caps`.
    pub fn new(server: Arc<Server>, nick: &str, caps: Caps) -> Self {
        Self {
            server,
            nick: nick.to_owned(),
            caps,
            seq: 0,
            monitor: Vec::new(),
            registered: false,
        }
    }

    /// Says whether the client logged in to a registered account.
    pub fn registered(mut self, registered: bool) -> Self {
        self.registered = registered;
        self
    }

    /// The requests for `message`, appended to `out`.
    pub fn requests(&mut self, message: Message, out: &mut Vec<Request>) -> Flow {
        let label = message
            .label
            .as_ref()
            .filter(|_| self.caps.has(Cap::LabeledResponse));
        self.seq += 1;
        if let Some(label) = label {
            out.push(Request::Begin(Bytes::from(label_marker(self.seq, label))));
        }
        let flow = self.command(&message, out);
        out.push(Request::Mark(Bytes::from(end_marker(self.seq))));
        flow
    }

    fn command(&mut self, m: &Message, out: &mut Vec<Request>) -> Flow {
        let command = m.command.as_str();
        match command {
            "PRIVMSG" | "NOTICE" => self.message(m, command == "NOTICE", out),
            "JOIN" => self.each_channel(m, out, |room| {
                (
                    Cmd::Join(room.to_string()),
                    Request::Line(ClientLine::Join(room)),
                )
            }),
            "PART" => {
                // A reason the native protocol cannot carry goes to IRC members; one
                // that is not valid text (only formatting) is no reason.
                let reason = m
                    .param(1)
                    .filter(|r| !r.is_empty())
                    .and_then(|r| native_text(r).ok());
                self.each_channel(m, out, |room| {
                    let cmd = Cmd::Part(room.to_string());
                    match &reason {
                        Some(reason) => (
                            cmd,
                            Request::Part {
                                room,
                                reason: reason.clone(),
                            },
                        ),
                        None => (cmd, Request::Line(ClientLine::Part(room))),
                    }
                })
            }
            "NAMES" => match m.param(0) {
                Some(channels) => self.names(channels, out),
                None => self.reply(out, "366", &["*", "End of /NAMES list"]),
            },
            "TOPIC" => self.topic(m, out),
            "MODE" => self.mode(m, out),
            "KICK" => self.kick(m, out),
            "INVITE" => self.invite(m, out),
            "WHO" => self.who(m, out),
            "WHOIS" => self.whois(m, out),
            "LIST" => {
                let filters = m.param(0).unwrap_or_default().replace(' ', "");
                self.ask(out, Cmd::List(filters), ClientLine::Rooms);
            }
            "LUSERS" => self.ask(out, Cmd::Lusers, ClientLine::Who),
            "MONITOR" => self.monitor(m, out),
            "HELP" | "HELPOP" => self.help(m.param(0), out),
            // The nodes of a cluster are one server to IRC clients: no links to show.
            "LINKS" => self.reply(out, "365", &["*", "End of /LINKS list"]),
            "USERHOST" if m.params.is_empty() => {
                self.reply(out, "461", &["USERHOST", "Not enough parameters"]);
            }
            // RFC 2812: up to five nicks; the broker's `whois` says who is on and away.
            "USERHOST" => {
                out.push(Request::Begin(Bytes::from(Cmd::Userhost.marker(self.seq))));
                for nick in m.params.iter().take(5) {
                    if let Ok(name) = UserName::parse(nick) {
                        out.push(Request::Line(ClientLine::Whois(name)));
                    }
                }
            }
            "AWAY" => self.away(m, out),
            "PING" => match m.param(0) {
                Some(token) => {
                    let mut line = format!(":{0} PONG {0}", self.server.name);
                    push_params(&mut line, &[token], true);
                    line.push_str("\r\n");
                    out.push(Request::Mark(Bytes::from(line)));
                }
                None => self.reply(out, "409", &["No origin specified"]),
            },
            "PONG" | "TAGMSG" => {}
            "CAP" => self.cap(m, out),
            "CHATHISTORY" => self.chathistory(m, out),
            "MARKREAD" => self.markread(m, out),
            "QUIT" => {
                let reason = m.param(0).filter(|r| !r.is_empty());
                if let Some(reason) = reason.and_then(|r| native_text(r).ok()) {
                    out.push(Request::Quit(reason));
                }
                return Flow::Quit(reason.unwrap_or("Client quit").to_owned());
            }
            "OPER" => match (m.param(0), m.param(1)) {
                (Some(name), Some(password)) => {
                    return Flow::Oper(name.to_owned(), password.to_owned());
                }
                _ => self.reply(out, "461", &["OPER", "Not enough parameters"]),
            },
            "USER" | "PASS" => self.reply(out, "462", &["You may not reregister"]),
            // SASL after registration would change who the client is, and a name is an
            // identity here: refused as a re-registration (IRCv3 sasl-3.2 lets a server
            // say so with 462).
            "AUTHENTICATE" => self.reply(out, "462", &["You may not reregister"]),
            "NICK" => match m.param(0) {
                None => self.reply(out, "431", &["No nickname given"]),
                Some(nick) if nick == self.nick => {}
                Some(nick) => self.reply(
                    out,
                    "447",
                    &[&format!(
                        "Cannot change nickname to {nick} while connected: reconnect with it"
                    )],
                ),
            },
            "TIME" => {
                let now = super::outgoing::now().to_string();
                let server = self.server.name.clone();
                self.reply(out, "391", &[&server, &now]);
            }
            "WHOWAS" => match m.param(0).filter(|n| !n.is_empty()) {
                None => self.reply(out, "431", &["No nickname given"]),
                Some(nicks) => self.whowas(nicks, m.param(1), out),
            },
            _ => self.reply(out, "421", &[command, "Unknown command"]),
        }
        Flow::Go
    }

    /// `:<server> <code> <nick> <params...>`, through the broker.
    fn reply(&self, out: &mut Vec<Request>, code: &str, params: &[&str]) {
        out.push(Request::Mark(Bytes::from(self.numeric(code, params))));
    }

    fn numeric(&self, code: &str, params: &[&str]) -> String {
        let mut line = format!(":{} {code} {}", self.server.name, self.nick);
        push_params(&mut line, params, false);
        line.push_str("\r\n");
        line
    }

    /// A native line whose replies `cmd` explains.
    fn ask(&self, out: &mut Vec<Request>, cmd: Cmd, line: ClientLine) {
        self.request(out, cmd, Request::Line(line));
    }

    /// A request whose replies `cmd` explains.
    fn request(&self, out: &mut Vec<Request>, cmd: Cmd, request: Request) {
        out.push(Request::Begin(Bytes::from(cmd.marker(self.seq))));
        out.push(request);
    }

    fn message(&mut self, m: &Message, notice: bool, out: &mut Vec<Request>) {
        let command = if notice { "NOTICE" } else { "PRIVMSG" };
        let Some(targets) = m.param(0).filter(|t| !t.is_empty()) else {
            return self.reply(out, "411", &[&format!("No recipient given ({command})")]);
        };
        let Some(text) = m.param(1).filter(|t| !t.is_empty()) else {
            return self.reply(out, "412", &["No text to send"]);
        };
        let text = match native_text(text) {
            Ok(text) => text,
            // A NOTICE is never answered (RFC 2812 3.3.2).
            Err(_) if notice => return,
            Err(reason) => return self.reply(out, "400", &[command, &reason]),
        };
        let mut to = chat_proto::Recipients::new();
        for target in targets.split(',') {
            match recipient(target) {
                Some(recipient) => to.push(recipient),
                None if notice => {}
                None if target.starts_with('#') => {
                    self.reply(out, "403", &[target, "No such channel"]);
                }
                None => self.reply(out, "401", &[target, "No such nick/channel"]),
            }
        }
        if !to.is_empty() {
            let request = match notice {
                true => Request::Notice { to, text },
                false => Request::Line(ClientLine::Send { to, text }),
            };
            self.request(out, Cmd::Message { notice }, request);
        }
    }

    /// `NAMES <channel>[,<channel>...]`: `353` for each that exists, then one `366`
    /// naming the list as given; nothing else, whatever the names are (Modern IRC).
    fn names(&mut self, channels: &str, out: &mut Vec<Request>) {
        out.push(Request::Begin(Bytes::from(
            Cmd::Names(channels.to_owned()).marker(self.seq),
        )));
        for channel in channels.split(',') {
            if let Ok(room) = RoomName::parse(channel) {
                self.probe(&room, Ask::Modes, out);
                out.push(Request::Begin(Bytes::from(
                    Cmd::Names(channels.to_owned()).marker(self.seq),
                )));
                out.push(Request::Line(ClientLine::Names(room)));
            }
        }
    }

    /// Asks what the writer must know of `room` before the command that follows: its
    /// modes (`=` or `@` in `353`) or its members (`403` for a `TOPIC` query, a
    /// `CHATHISTORY` of a channel the client is not in).
    fn probe(&self, room: &RoomName, ask: Ask, out: &mut Vec<Request>) {
        out.push(Request::Begin(Bytes::from(
            Cmd::Probe(room.to_string()).marker(self.seq),
        )));
        // One question each: in a cluster, each is a round trip to Redis.
        out.push(Request::Line(match ask {
            Ask::Modes => ClientLine::Mode {
                room: room.clone(),
                changes: Vec::new(),
            },
            Ask::Members => ClientLine::Names(room.clone()),
        }));
    }

    /// A command on a comma-separated list of channels, each asked for on its own.
    fn each_channel(
        &mut self,
        m: &Message,
        out: &mut Vec<Request>,
        request: impl Fn(RoomName) -> (Cmd, Request),
    ) {
        let Some(channels) = m.param(0) else {
            return self.reply(out, "461", &[&m.command, "Not enough parameters"]);
        };
        for channel in channels.split(',').filter(|c| !c.is_empty()) {
            match RoomName::parse(channel) {
                Ok(room) => {
                    let join = m.command == "JOIN";
                    if join {
                        self.probe(&room, Ask::Modes, out);
                    }
                    // draft/read-marker: the account's marker, which the writer says
                    // before the join's `366`.
                    let read =
                        (join && self.registered && self.caps.has(Cap::ReadMarker)).then(|| {
                            ClientLine::Read {
                                conv: Conv::Room(room.clone()),
                                id: None,
                            }
                        });
                    let (cmd, request) = request(room);
                    self.request(out, cmd, request);
                    if let Some(read) = read {
                        out.push(Request::Line(read));
                    }
                }
                Err(_) => self.reply(out, "403", &[channel, "No such channel"]),
            }
        }
    }

    /// The channel a command names first, or the numeric saying why not.
    fn channel(&self, m: &Message, out: &mut Vec<Request>, needs: usize) -> Option<RoomName> {
        if m.params.len() < needs {
            self.reply(out, "461", &[&m.command, "Not enough parameters"]);
            return None;
        }
        let channel = m.param(0).unwrap_or_default();
        let room = RoomName::parse(channel).ok();
        if room.is_none() {
            self.reply(out, "403", &[channel, "No such channel"]);
        }
        room
    }

    fn topic(&mut self, m: &Message, out: &mut Vec<Request>) {
        let Some(room) = self.channel(m, out, 1) else {
            return;
        };
        match m.param(1) {
            None => {
                self.probe(&room, Ask::Members, out);
                self.ask(
                    out,
                    Cmd::Topic(room.to_string()),
                    ClientLine::Topic { room, text: None },
                );
            }
            // `TOPIC #a :` clears it (RFC 2812 3.2.4).
            Some("") => self.ask(
                out,
                Cmd::Channel(room.to_string()),
                ClientLine::ClearTopic(room),
            ),
            Some(text) => match native_text(text)
                .and_then(|t| TopicText::parse(t.as_str()).map_err(|e| e.to_string()))
            {
                Ok(text) => self.ask(
                    out,
                    Cmd::Channel(room.to_string()),
                    ClientLine::Topic {
                        room,
                        text: Some(text),
                    },
                ),
                Err(reason) => self.reply(out, "400", &["TOPIC", &reason]),
            },
        }
    }

    fn mode(&mut self, m: &Message, out: &mut Vec<Request>) {
        let Some(target) = m.param(0) else {
            return self.reply(out, "461", &["MODE", "Not enough parameters"]);
        };
        if !target.starts_with('#') {
            if !target.eq_ignore_ascii_case(&self.nick) {
                return self.reply(out, "502", &["Can't change mode for other users"]);
            }
            return match m.param(1) {
                None => self.reply(out, "221", &["+"]),
                Some(modes) if modes.chars().all(|c| matches!(c, '+' | '-' | 'i' | 'w')) => {}
                Some(_) => self.reply(out, "501", &["Unknown MODE flag"]),
            };
        }
        let Some(room) = self.channel(m, out, 1) else {
            return;
        };
        let Some(modes) = m.param(1) else {
            return self.ask(
                out,
                Cmd::Mode(room.to_string()),
                ClientLine::Mode {
                    room,
                    changes: Vec::new(),
                },
            );
        };
        let mut args = m.params.iter().skip(2).map(String::as_str);
        let mut on = true;
        let mut flags = Vec::new();
        let channel = Cmd::Op(room.to_string());
        for letter in modes.chars() {
            match letter {
                '+' => on = true,
                '-' => on = false,
                'o' | 'v' | 'b' => {
                    let Some(arg) = args.next() else {
                        if letter == 'b' {
                            self.ask(
                                out,
                                Cmd::Bans(room.to_string()),
                                ClientLine::Bans(room.clone()),
                            );
                        } else {
                            self.reply(out, "461", &["MODE", "Not enough parameters"]);
                        }
                        continue;
                    };
                    // A ban mask names a user by its nick: `bob!*@*` is `bob`.
                    let nick = arg.split('!').next().unwrap_or(arg);
                    let Ok(name) = UserName::parse(nick) else {
                        self.reply(out, "401", &[nick, "No such nick/channel"]);
                        continue;
                    };
                    let line = match letter {
                        'b' => ClientLine::Ban {
                            room: room.clone(),
                            name,
                            on,
                        },
                        _ => ClientLine::SetRole {
                            room: room.clone(),
                            name,
                            role: if letter == 'o' {
                                Role::Op
                            } else {
                                Role::Voiced
                            },
                            on,
                        },
                    };
                    self.ask(out, channel.clone(), line);
                }
                letter => match RoomMode::from_letter(letter) {
                    Some(mode) => flags.push((on, mode)),
                    None => {
                        let unknown = letter.to_string();
                        self.reply(out, "472", &[&unknown, "is an unknown mode char to me"]);
                    }
                },
            }
        }
        if !flags.is_empty() {
            self.ask(
                out,
                channel,
                ClientLine::Mode {
                    room,
                    changes: flags,
                },
            );
        }
    }

    /// `KICK <channel> <nick>[,<nick>...] [comment]`, or `KICK <c1>,<c2> <n1>,<n2>`: one
    /// channel for every nick, or the channels and nicks paired (RFC 2812 3.2.8).
    fn kick(&mut self, m: &Message, out: &mut Vec<Request>) {
        let (Some(channels), Some(nicks)) = (m.param(0), m.param(1)) else {
            return self.reply(out, "461", &["KICK", "Not enough parameters"]);
        };
        let channels: Vec<&str> = channels.split(',').collect();
        let nicks: Vec<&str> = nicks.split(',').collect();
        if channels.len() > 1 && channels.len() != nicks.len() {
            return self.reply(out, "461", &["KICK", "Not enough parameters"]);
        }
        let reason = m.param(2).and_then(|r| MessageText::parse(r).ok());
        for (i, nick) in nicks.into_iter().enumerate() {
            let channel = channels.get(i).unwrap_or(&channels[0]);
            let Ok(room) = RoomName::parse(channel) else {
                self.reply(out, "403", &[channel, "No such channel"]);
                continue;
            };
            let Ok(name) = UserName::parse(nick) else {
                self.reply(out, "401", &[nick, "No such nick/channel"]);
                continue;
            };
            let line = ClientLine::Kick {
                room: room.clone(),
                name,
                reason: reason.clone(),
            };
            self.ask(out, Cmd::Op(room.to_string()), line);
        }
    }

    fn invite(&mut self, m: &Message, out: &mut Vec<Request>) {
        let (Some(nick), Some(channel)) = (m.param(0), m.param(1)) else {
            return self.reply(out, "461", &["INVITE", "Not enough parameters"]);
        };
        let Ok(name) = UserName::parse(nick) else {
            return self.reply(out, "401", &[nick, "No such nick/channel"]);
        };
        let Ok(room) = RoomName::parse(channel) else {
            return self.reply(out, "403", &[channel, "No such channel"]);
        };
        self.ask(
            out,
            Cmd::Channel(room.to_string()),
            ClientLine::Invite { name, room },
        );
    }

    fn who(&mut self, m: &Message, out: &mut Vec<Request>) {
        let mask = m.param(0).unwrap_or("*");
        let cmd = Cmd::Who(mask.to_owned());
        if let Ok(room) = RoomName::parse(mask) {
            self.ask(out, cmd, ClientLine::Names(room));
        } else if let Ok(name) = UserName::parse(mask) {
            self.ask(out, cmd, ClientLine::Whois(name));
        } else {
            self.ask(out, cmd, ClientLine::Who);
        }
    }

    fn whois(&mut self, m: &Message, out: &mut Vec<Request>) {
        // `WHOIS [server] nick`: the nick is the last parameter.
        let Some(nick) = m.params.last() else {
            return self.reply(out, "431", &["No nickname given"]);
        };
        let nick = nick.split(',').next().unwrap_or_default();
        match UserName::parse(nick) {
            Ok(name) => self.ask(out, Cmd::Whois(nick.to_owned()), ClientLine::Whois(name)),
            Err(_) => {
                self.reply(out, "401", &[nick, "No such nick/channel"]);
                self.reply(out, "318", &[nick, "End of WHOIS list"]);
            }
        }
    }

    /// IRCv3 `MONITOR`: `+`, `-`, `C`, `L`, `S`. The list is kept here; the writer gets
    /// a copy (a marker) to say `730`/`731` when a watched nick logs in or leaves, and
    /// the broker's `whois` tells who is online now.
    fn monitor(&mut self, m: &Message, out: &mut Vec<Request>) {
        let sub = m.param(0).unwrap_or_default().to_ascii_uppercase();
        let targets = m.param(1).unwrap_or_default();
        match sub.as_str() {
            "+" => {
                let mut added = Vec::new();
                for target in targets.split(',').filter(|t| !t.is_empty()) {
                    let Ok(name) = UserName::parse(target) else {
                        self.reply(out, "432", &[target, "Erroneous nickname"]);
                        continue;
                    };
                    let folded = name.folded();
                    if self.monitor.iter().any(|(f, _)| *f == folded) {
                        added.push(target.to_owned());
                        continue;
                    }
                    if self.monitor.len() >= MONITOR_LIMIT {
                        let limit = MONITOR_LIMIT.to_string();
                        self.reply(out, "734", &[&limit, targets, "Monitor list is full"]);
                        break;
                    }
                    self.monitor.push((folded, target.to_owned()));
                    added.push(target.to_owned());
                }
                self.monitor_marker(out);
                self.monitor_status(&added, out);
            }
            "-" => {
                for target in targets.split(',') {
                    if let Ok(name) = UserName::parse(target) {
                        let folded = name.folded();
                        self.monitor.retain(|(f, _)| *f != folded);
                    }
                }
                self.monitor_marker(out);
            }
            "C" => {
                self.monitor.clear();
                self.monitor_marker(out);
            }
            "L" => {
                let names: Vec<String> = self.monitor.iter().map(|(_, n)| n.clone()).collect();
                for chunk in names.chunks(MONITOR_PER_LINE) {
                    self.reply(out, "732", &[&chunk.join(",")]);
                }
                self.reply(out, "733", &["End of MONITOR list"]);
            }
            "S" => {
                let names: Vec<String> = self.monitor.iter().map(|(_, n)| n.clone()).collect();
                self.monitor_status(&names, out);
            }
            _ => self.reply(out, "461", &["MONITOR", "Not enough parameters"]),
        }
    }

    /// `WHOWAS <nick>[,<nick>...] [count]`: the IRC users of this server who left under
    /// that name, newest first (`314`, `312`), or `406`; then `369`. Users of native
    /// connections and of other nodes are not remembered.
    fn whowas(&self, nicks: &str, count: Option<&str>, out: &mut Vec<Request>) {
        let count = count
            .and_then(|c| c.parse::<i64>().ok())
            .filter(|c| *c > 0)
            .map_or(usize::MAX, |c| usize::try_from(c).unwrap_or(usize::MAX));
        let server = self.server.name.clone();
        for nick in nicks.split(',') {
            let was = self.server.was(nick);
            if was.is_empty() {
                self.reply(out, "406", &[nick, "There was no such nickname"]);
            }
            for (name, user, real) in was.into_iter().take(count) {
                self.reply(out, "314", &[&name, &user, &server, "*", &real]);
                self.reply(out, "312", &[&name, &server, "chat-server"]);
            }
        }
        self.reply(out, "369", &[nicks, "End of WHOWAS"]);
    }

    /// `HELP [subject]`: `704`, `705`..., `706` (Modern IRC), or `524` for a subject
    /// with no help.
    fn help(&self, subject: Option<&str>, out: &mut Vec<Request>) {
        let Some(subject) = subject.filter(|s| !s.is_empty()) else {
            self.reply(out, "704", &["*", "Commands (HELP <command> for one):"]);
            for chunk in HELP.chunks(8) {
                let names: Vec<&str> = chunk.iter().map(|(name, _)| *name).collect();
                self.reply(out, "705", &["*", &names.join(" ")]);
            }
            return self.reply(out, "706", &["*", "End of /HELP"]);
        };
        let upper = subject.to_ascii_uppercase();
        match HELP.iter().find(|(name, _)| *name == upper) {
            Some((name, text)) => {
                self.reply(out, "704", &[subject, &format!("** {name} **")]);
                self.reply(out, "705", &[subject, text]);
                self.reply(out, "706", &[subject, "End of /HELP"]);
            }
            None => self.reply(out, "524", &[subject, "No help available on this topic"]),
        }
    }

    /// The watched list for the writer.
    fn monitor_marker(&self, out: &mut Vec<Request>) {
        let folded: Vec<&str> = self.monitor.iter().map(|(f, _)| f.as_str()).collect();
        out.push(Request::Begin(Bytes::from(monitor_marker(&folded))));
    }

    /// `730` for those of `names` online, `731` for the others.
    fn monitor_status(&self, names: &[String], out: &mut Vec<Request>) {
        if names.is_empty() {
            return;
        }
        out.push(Request::Begin(Bytes::from(
            Cmd::Monitor(names.join(",")).marker(self.seq),
        )));
        for name in names {
            if let Ok(name) = UserName::parse(name) {
                out.push(Request::Line(ClientLine::Whois(name)));
            }
        }
    }

    fn away(&mut self, m: &Message, out: &mut Vec<Request>) {
        match m.param(0).filter(|t| !t.is_empty()).map(native_text) {
            None => {
                out.push(Request::Line(ClientLine::Away(None)));
                self.reply(out, "305", &["You are no longer marked as being away"]);
            }
            Some(Ok(text)) => {
                out.push(Request::Line(ClientLine::Away(Some(text))));
                self.reply(out, "306", &["You have been marked as being away"]);
            }
            Some(Err(reason)) => self.reply(out, "400", &["AWAY", &reason]),
        }
    }

    fn cap(&mut self, m: &Message, out: &mut Vec<Request>) {
        let sub = m.param(0).unwrap_or_default().to_ascii_uppercase();
        let lines = cap_reply(
            &self.server.name,
            &self.nick,
            &sub,
            m.param(1),
            &mut self.caps,
        );
        let echo = self.caps.has(Cap::EchoMessage);
        for line in lines {
            out.push(Request::Mark(Bytes::from(line)));
        }
        if sub == "REQ" {
            out.push(Request::Begin(Bytes::from(caps_marker(self.caps))));
            out.push(Request::Echo(echo));
        }
    }

    fn chathistory(&mut self, m: &Message, out: &mut Vec<Request>) {
        let fail = |out: &mut Vec<Request>, code: &str, context: &str, text: &str| {
            let mut line = format!(":{} FAIL CHATHISTORY {code}", self.server.name);
            push_params(&mut line, &[context, text], true);
            line.push_str("\r\n");
            out.push(Request::Mark(Bytes::from(line)));
        };
        let sub = m.param(0).unwrap_or_default().to_ascii_uppercase();
        let (Some(target), Some(limit)) = (m.param(1), m.params.last()) else {
            return fail(out, "NEED_MORE_PARAMS", &sub, "Missing parameters");
        };
        if sub == "TARGETS" {
            return fail(out, "INVALID_PARAMS", &sub, "TARGETS is not supported");
        }
        let Some(conv) = conversation(target) else {
            return fail(
                out,
                "INVALID_TARGET",
                &sub,
                &format!("{target} is not a channel or nick"),
            );
        };
        let n = limit
            .parse::<usize>()
            .unwrap_or(0)
            .min(usize::from(chat_proto::MAX_HISTORY_LINES));
        let refs: Vec<Option<(u64, u64)>> = m
            .params
            .iter()
            .skip(2)
            .take(m.params.len().saturating_sub(3))
            .map(|r| reference(r))
            .collect();
        let n_u16 = u16::try_from(n.max(1)).unwrap_or(chat_proto::MAX_HISTORY_LINES);
        let mut asks: Vec<HistoryRange> = Vec::new();
        let select = match (sub.as_str(), refs.as_slice()) {
            ("LATEST", [_]) if m.param(2) == Some("*") => {
                asks.push(HistoryRange::Latest(n_u16));
                Select::Last(n)
            }
            // Bounds are exclusive: after a reference is past its last id, before it
            // is below its first (a timestamp is a whole millisecond of ids).
            ("LATEST", [Some((_, after))]) => {
                asks.extend(after_id(*after));
                Select::Last(n)
            }
            ("BEFORE", [Some((before, _))]) => {
                asks.extend(before_id(*before, n));
                Select::Last(n)
            }
            ("AFTER", [Some((_, after))]) => {
                asks.extend(after_id(*after));
                Select::First(n)
            }
            ("AROUND", [Some((pivot, _))]) => {
                asks.extend(before_id(*pivot, n / 2));
                asks.extend(after_id(pivot.saturating_sub(1)));
                Select::Around(n, *pivot)
            }
            ("BETWEEN", [Some(a), Some(b)]) if a <= b => {
                asks.extend(after_id(a.1));
                Select::FirstBelow(n, b.0)
            }
            ("BETWEEN", [Some(a), Some(b)]) => {
                asks.extend(after_id(b.1));
                Select::LastBelow(n, a.0)
            }
            _ => return fail(out, "INVALID_PARAMS", &sub, "Invalid parameters"),
        };
        // Only a member may read a channel's history (draft/chathistory: INVALID_TARGET
        // otherwise), though the native `/history` answers anyone: the writer checks.
        if let Conv::Room(room) = &conv {
            self.probe(room, Ask::Members, out);
        }
        let ask = HistoryAsk {
            sub: sub.clone(),
            target: target.to_owned(),
            select,
        };
        out.push(Request::Begin(Bytes::from(
            Cmd::History(ask).marker(self.seq),
        )));
        for range in asks {
            out.push(Request::Line(ClientLine::History {
                conv: conv.clone(),
                range,
            }));
        }
    }

    fn markread(&mut self, m: &Message, out: &mut Vec<Request>) {
        let Some(target) = m.param(0) else {
            let mut line = format!(":{} FAIL MARKREAD NEED_MORE_PARAMS", self.server.name);
            push_params(&mut line, &["Missing parameters"], true);
            line.push_str("\r\n");
            return out.push(Request::Mark(Bytes::from(line)));
        };
        let Some(conv) = conversation(target) else {
            let mut line = format!(
                ":{} FAIL MARKREAD INVALID_PARAMS {target}",
                self.server.name
            );
            push_params(&mut line, &["Invalid target"], true);
            line.push_str("\r\n");
            return out.push(Request::Mark(Bytes::from(line)));
        };
        // A timestamp has milliseconds, ids microseconds: the marker covers every
        // message of the millisecond the client names, the one it read last included.
        let id = match m.param(1) {
            None => None,
            Some(stamp) => match stamp
                .strip_prefix("timestamp=")
                .and_then(millis)
                .and_then(|ms| MessageId::new(ms * 1000 + 999))
            {
                Some(id) => Some(id),
                None => {
                    let mut line = format!(
                        ":{} FAIL MARKREAD INVALID_PARAMS {target}",
                        self.server.name
                    );
                    push_params(&mut line, &[stamp, "Invalid timestamp"], true);
                    line.push_str("\r\n");
                    return out.push(Request::Mark(Bytes::from(line)));
                }
            },
        };
        if !self.registered {
            // The native protocol keeps markers for accounts only: this connection's
            // own, kept by the writer, for as long as it lasts.
            let ms = id.map_or_else(|| "-".to_owned(), |id| (id.get() / 1000).to_string());
            let marker = Cmd::LocalRead(format!("{ms} {target}")).marker(self.seq);
            return out.push(Request::Begin(Bytes::from(marker)));
        }
        if id.is_some() {
            let set = ClientLine::Read {
                conv: conv.clone(),
                id,
            };
            self.ask(out, Cmd::MarkRead(target.to_owned()), set);
        }
        let now = ClientLine::Read { conv, id: None };
        self.ask(out, Cmd::MarkReadNow(target.to_owned()), now);
    }
}

/// The replies to `CAP <sub> [arg]` (before or after registration), updating `caps` for
/// `REQ`. `nick` is `*` before registration.
pub fn cap_reply(
    server: &str,
    nick: &str,
    sub: &str,
    arg: Option<&str>,
    caps: &mut Caps,
) -> Vec<String> {
    let line = |sub: &str, text: &str| {
        let mut line = format!(":{server} CAP {nick} {sub}");
        push_params(&mut line, &[text], true);
        line.push_str("\r\n");
        line
    };
    match sub {
        "LS" => vec![line(
            "LS",
            &super::caps::list(arg.is_some_and(|v| v.parse::<u32>().unwrap_or(0) >= 302)),
        )],
        "LIST" => vec![line("LIST", &caps.names())],
        "REQ" => {
            let asked = arg.unwrap_or_default();
            let mut changed = *caps;
            let all_known = asked.split(' ').filter(|c| !c.is_empty()).all(|name| {
                let (on, name) = match name.strip_prefix('-') {
                    Some(name) => (false, name),
                    None => (true, name),
                };
                super::caps::Cap::from_name(name)
                    .map(|cap| changed.set(cap, on))
                    .is_some()
            });
            if all_known {
                *caps = changed;
                vec![line("ACK", asked)]
            } else {
                vec![line("NAK", asked)]
            }
        }
        "END" => Vec::new(),
        _ => {
            let mut text = format!(":{server} 410 {nick} {sub}");
            push_params(&mut text, &["Invalid CAP command"], true);
            text.push_str("\r\n");
            vec![text]
        }
    }
}

/// IRC text as native text: an ACTION becomes `/me`, formatting codes go (the native
/// protocol has no control characters).
pub fn native_text(text: &str) -> Result<MessageText, String> {
    let text = match text.strip_prefix("\u{1}ACTION ") {
        Some(action) => format!("/me {}", action.strip_suffix('\u{1}').unwrap_or(action)),
        None => strip_formatting(text),
    };
    MessageText::parse(&text).map_err(|e| e.to_string())
}

/// `text` without mIRC formatting: bold, italics, underline, reverse, reset, monospace,
/// strike-through, and colours with their numbers.
fn strip_formatting(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{2}' | '\u{1d}' | '\u{1f}' | '\u{16}' | '\u{f}' | '\u{11}' | '\u{1e}' => {}
            '\u{3}' => {
                for _ in 0..2 {
                    if chars.next_if(char::is_ascii_digit).is_none() {
                        break;
                    }
                }
                if chars.peek() == Some(&',') {
                    let mut ahead = chars.clone();
                    ahead.next();
                    if ahead.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                        for _ in 0..2 {
                            if chars.next_if(char::is_ascii_digit).is_none() {
                                break;
                            }
                        }
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// A message target: `#room`, `$*` (everyone), or a nick.
fn recipient(target: &str) -> Option<Recipient> {
    if target == "$*" {
        return Some(Recipient::Everyone);
    }
    if target.starts_with('#') {
        return RoomName::parse(target).ok().map(Recipient::Room);
    }
    UserName::parse(target).ok().map(Recipient::User)
}

/// The native conversation a `CHATHISTORY` or `MARKREAD` target names.
fn conversation(target: &str) -> Option<Conv> {
    if target.starts_with('#') {
        return RoomName::parse(target).ok().map(Conv::Room);
    }
    UserName::parse(target).ok().map(Conv::Direct)
}

/// A message reference, as the first and last ids it stands for: `msgid=<id>` that id,
/// `timestamp=<time>` every id of its millisecond (ids are microseconds since the
/// epoch); `*` and anything else are `None`.
fn reference(reference: &str) -> Option<(u64, u64)> {
    if let Some(id) = reference.strip_prefix("msgid=") {
        return id.parse().ok().map(|id| (id, id));
    }
    reference
        .strip_prefix("timestamp=")
        .and_then(millis)
        .map(|ms| (ms * 1000, ms * 1000 + 999))
}

fn millis(stamp: &str) -> Option<u64> {
    let time: chat_proto::Timestamp = stamp.parse().ok()?;
    u64::try_from(time.unix_millis()).ok()
}

fn after_id(id: u64) -> Option<HistoryRange> {
    Some(HistoryRange::After(MessageId::new(id.max(1))?))
}

fn before_id(id: u64, n: usize) -> Option<HistoryRange> {
    HistoryRange::before(MessageId::new(id)?, u64::try_from(n).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_goes_and_actions_become_me() {
        assert_eq!(
            native_text("\u{2}bold\u{2} \u{3}4,12red\u{3} x")
                .unwrap()
                .as_str(),
            "bold red x"
        );
        assert_eq!(
            native_text("\u{1}ACTION waves\u{1}").unwrap().as_str(),
            "/me waves"
        );
        assert_eq!(native_text("\u{3}5,x").unwrap().as_str(), ",x");
    }

    #[test]
    fn references_are_ids() {
        assert_eq!(reference("msgid=42"), Some((42, 42)));
        assert_eq!(
            reference("timestamp=2026-01-01T00:00:00.001Z"),
            Some((1_767_225_600_001_000, 1_767_225_600_001_999))
        );
        assert_eq!(reference("*"), None);
    }

    #[test]
    fn cap_req_is_all_or_nothing() {
        let mut caps = Caps::default();
        let ack = cap_reply("s", "*", "REQ", Some("sasl server-time"), &mut caps);
        assert_eq!(ack, [":s CAP * ACK :sasl server-time\r\n"]);
        assert!(caps.has(Cap::Sasl) && caps.has(Cap::ServerTime));
        let nak = cap_reply("s", "*", "REQ", Some("batch foo"), &mut caps);
        assert_eq!(nak, [":s CAP * NAK :batch foo\r\n"]);
        assert!(!caps.has(Cap::Batch));
        cap_reply("s", "*", "REQ", Some("-sasl"), &mut caps);
        assert!(!caps.has(Cap::Sasl));
    }
}
