//! [`ClientLine`]: the lines a client sends once it is logged in.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use zeroize::Zeroize;

use crate::governance::{parse_flag_changes, write_flag_changes};

/// The word that, in place of a topic, clears it: `/topic <#room> -delete`.
pub const CLEAR_TOPIC: &str = "-delete";
use crate::{
    Conv, EVERYONE, HistoryRange, MessageId, MessageText, ParseError, Password, Role, RoomMode,
    RoomName, TopicText, UserName,
};

/// One line from a logged-in client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientLine {
    /// `<dest>[,<dest>...]: <text>`: send `text` to each destination.
    Send {
        /// The destinations in the order written; may repeat (the server delivers once).
        to: Recipients,
        /// The message.
        text: MessageText,
    },
    /// `/who`: ask for the sorted list of everyone online.
    Who,
    /// `/join <#room>`: become a member of a room.
    Join(RoomName),
    /// `/part <#room>`: stop being a member of a room.
    Part(RoomName),
    /// `/names <#room>`: ask for a room's members.
    Names(RoomName),
    /// `/rooms`: ask for every room with members.
    Rooms,
    /// `/history <conv> [n | after <id> | before <id> [n]]`: ask for stored messages.
    History {
        /// The room or direct conversation.
        conv: Conv,
        /// Which messages.
        range: HistoryRange,
    },
    /// `/register <password>`: register the name you are logged in with.
    Register(Password),
    /// `/password <new password>`: change your account's password.
    SetPassword(Password),
    /// `/op`, `/deop`, `/voice`, `/devoice <#room> <name>`: give or take a role.
    SetRole {
        /// The room.
        room: RoomName,
        /// The member.
        name: UserName,
        /// The role.
        role: Role,
        /// Given (`/op`, `/voice`) or taken (`/deop`, `/devoice`).
        on: bool,
    },
    /// `/topic <#room> [text]`: ask for the topic, or set it.
    Topic {
        /// The room.
        room: RoomName,
        /// The new topic; `None` asks.
        text: Option<TopicText>,
    },
    /// `/topic <#room> -delete` (WeeChat's words): clear the topic.
    ClearTopic(RoomName),
    /// `/mode <#room> [±flags]`: ask for the room's modes, or change them.
    Mode {
        /// The room.
        room: RoomName,
        /// The changes in the order written; empty asks.
        changes: Vec<(bool, RoomMode)>,
    },
    /// `/kick <#room> <name> [reason]`: remove a member.
    Kick {
        /// The room.
        room: RoomName,
        /// The member.
        name: UserName,
        /// Why, if given.
        reason: Option<MessageText>,
    },
    /// `/ban` or `/unban <#room> <name>`.
    Ban {
        /// The room.
        room: RoomName,
        /// The name banned or let back.
        name: UserName,
        /// Banned (`/ban`) or let back (`/unban`).
        on: bool,
    },
    /// `/bans <#room>`: ask for the room's bans.
    Bans(RoomName),
    /// `/invite <name> <#room>`: let someone join an invite-only room once.
    Invite {
        /// Who is invited.
        name: UserName,
        /// The room.
        room: RoomName,
    },
    /// `/register-room <#room>`: keep the room, with you as its founder.
    RegisterRoom(RoomName),
    /// `/unregister-room <#room>`: stop keeping the room.
    UnregisterRoom(RoomName),
    /// `/kill <name> [reason]` (server operators): disconnect a user.
    Kill {
        /// The user.
        name: UserName,
        /// Why, if given.
        reason: Option<MessageText>,
    },
    /// `/read <conv> [id]`: move the account's read marker of a conversation forward, or
    /// ask where it is.
    Read {
        /// The conversation.
        conv: Conv,
        /// The newest id read; `None` asks.
        id: Option<MessageId>,
    },
    /// `/away [text]`: mark yourself away with a message, or back.
    Away(Option<MessageText>),
    /// `/whois <name>`: ask how long a user has been idle and on how many devices.
    Whois(UserName),
    /// `/ping [token]`: answered `pong [token]`; a client that pings is expected to keep
    /// doing so (`--idle-timeout`).
    Ping(Option<MessageText>),
    /// `/suspend` or `/unsuspend <name>` (server operators): bar an account from logging
    /// in, or let it back.
    Suspend {
        /// The account.
        name: UserName,
        /// Suspended (`/suspend`) or let back (`/unsuspend`).
        on: bool,
    },
}

/// A message's destinations: the usual one is held inline, so parsing it allocates no list.
pub type Recipients = smallvec::SmallVec<[Recipient; 1]>;

/// One destination of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// `*`: everyone online except the sender.
    Everyone,
    /// One user by name.
    User(UserName),
    /// Every other member of a room.
    Room(RoomName),
}

impl FromStr for Recipient {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseError::InvalidDestination(s.to_owned());
        if s == EVERYONE {
            return Ok(Self::Everyone);
        }
        if s.starts_with('#') {
            return RoomName::parse(s).map(Self::Room).map_err(|_| invalid());
        }
        UserName::parse(s).map(Self::User).map_err(|_| invalid())
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Everyone => f.write_str(EVERYONE),
            Self::User(name) => name.fmt(f),
            Self::Room(room) => room.fmt(f),
        }
    }
}

/// Parses a `,`-separated destination list, trimming each entry and skipping empty ones.
pub fn parse_recipients(list: &str) -> Result<Recipients, ParseError> {
    let mut to = Recipients::new();
    for dest in list.split(',').map(str::trim) {
        if !dest.is_empty() {
            to.push(dest.parse()?);
        }
    }
    if to.is_empty() {
        return Err(ParseError::NoDestination);
    }
    Ok(to)
}

/// Writes `to` as the protocol does: entries joined by `,`.
pub fn write_recipients(f: &mut impl fmt::Write, to: &[Recipient]) -> fmt::Result {
    for (i, dest) in to.iter().enumerate() {
        if i > 0 {
            f.write_char(',')?;
        }
        write!(f, "{dest}")?;
    }
    Ok(())
}

/// Parses a `/command` line: the command word, then its arguments split on whitespace.
fn parse_command(line: &str) -> Result<ClientLine, ParseError> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or(line);
    let args: Vec<&str> = words.collect();
    let room = |usage| match args[..] {
        [room] => RoomName::parse(room),
        _ => Err(ParseError::Usage(usage)),
    };
    match command {
        "/who" if args.is_empty() => Ok(ClientLine::Who),
        "/rooms" if args.is_empty() => Ok(ClientLine::Rooms),
        "/rooms" => Err(ParseError::Usage("/rooms")),
        "/join" => room("/join <#room>").map(ClientLine::Join),
        "/part" => room("/part <#room>").map(ClientLine::Part),
        "/names" => room("/names <#room>").map(ClientLine::Names),
        "/history" => parse_history(&args),
        "/bans" => room("/bans <#room>").map(ClientLine::Bans),
        "/whois" => match args[..] {
            [name] => Ok(ClientLine::Whois(UserName::parse(name)?)),
            _ => Err(ParseError::Usage("/whois <name>")),
        },
        "/read" => match args[..] {
            [conv] => Ok(ClientLine::Read {
                conv: conv.parse()?,
                id: None,
            }),
            [conv, id] => Ok(ClientLine::Read {
                conv: conv.parse()?,
                id: Some(id.parse()?),
            }),
            _ => Err(ParseError::Usage("/read <#room|@name> [id]")),
        },
        "/away" => reason(rest_after(line, 1)).map(ClientLine::Away),
        "/ping" => reason(rest_after(line, 1)).map(ClientLine::Ping),
        "/register-room" => room("/register-room <#room>").map(ClientLine::RegisterRoom),
        "/unregister-room" => room("/unregister-room <#room>").map(ClientLine::UnregisterRoom),
        "/op" | "/deop" | "/voice" | "/devoice" => {
            let usage = match command {
                "/op" => "/op <#room> <name>",
                "/deop" => "/deop <#room> <name>",
                "/voice" => "/voice <#room> <name>",
                _ => "/devoice <#room> <name>",
            };
            let [room, name] = args[..] else {
                return Err(ParseError::Usage(usage));
            };
            Ok(ClientLine::SetRole {
                room: RoomName::parse(room)?,
                name: UserName::parse(name)?,
                role: if command.ends_with("op") {
                    Role::Op
                } else {
                    Role::Voiced
                },
                on: !command.starts_with("/de"),
            })
        }
        "/ban" | "/unban" => {
            let usage = if command == "/ban" {
                "/ban <#room> <name>"
            } else {
                "/unban <#room> <name>"
            };
            let [room, name] = args[..] else {
                return Err(ParseError::Usage(usage));
            };
            Ok(ClientLine::Ban {
                room: RoomName::parse(room)?,
                name: UserName::parse(name)?,
                on: command == "/ban",
            })
        }
        "/suspend" | "/unsuspend" => {
            let usage = if command == "/suspend" {
                "/suspend <name>"
            } else {
                "/unsuspend <name>"
            };
            let [name] = args[..] else {
                return Err(ParseError::Usage(usage));
            };
            Ok(ClientLine::Suspend {
                name: UserName::parse(name)?,
                on: command == "/suspend",
            })
        }
        "/invite" => {
            let [name, room] = args[..] else {
                return Err(ParseError::Usage("/invite <name> <#room>"));
            };
            Ok(ClientLine::Invite {
                name: UserName::parse(name)?,
                room: RoomName::parse(room)?,
            })
        }
        "/mode" => match args[..] {
            [room] => Ok(ClientLine::Mode {
                room: RoomName::parse(room)?,
                changes: Vec::new(),
            }),
            [room, changes] => Ok(ClientLine::Mode {
                room: RoomName::parse(room)?,
                changes: parse_flag_changes(changes)?,
            }),
            _ => Err(ParseError::Usage("/mode <#room> [+|-imst]")),
        },
        "/topic" => {
            let Some(room) = args.first() else {
                return Err(ParseError::Usage("/topic <#room> [text]"));
            };
            let room = RoomName::parse(room)?;
            let text = match rest_after(line, 2) {
                "" => None,
                CLEAR_TOPIC => return Ok(ClientLine::ClearTopic(room)),
                text => Some(TopicText::parse(text)?),
            };
            Ok(ClientLine::Topic { room, text })
        }
        "/kick" => {
            let (Some(room), Some(name)) = (args.first(), args.get(1)) else {
                return Err(ParseError::Usage("/kick <#room> <name> [reason]"));
            };
            Ok(ClientLine::Kick {
                room: RoomName::parse(room)?,
                name: UserName::parse(name)?,
                reason: reason(rest_after(line, 3))?,
            })
        }
        "/kill" => {
            let Some(name) = args.first() else {
                return Err(ParseError::Usage("/kill <name> [reason]"));
            };
            Ok(ClientLine::Kill {
                name: UserName::parse(name)?,
                reason: reason(rest_after(line, 2))?,
            })
        }
        _ => Err(ParseError::UnknownCommand(command.to_owned())),
    }
}

/// What follows the first `words` words of `line`, trimmed.
fn rest_after(line: &str, words: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..words {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = rest[end..].trim_start();
    }
    rest.trim_end()
}

/// An optional reason: none when empty.
fn reason(text: &str) -> Result<Option<MessageText>, ParseError> {
    if text.is_empty() {
        return Ok(None);
    }
    MessageText::parse(text).map(Some)
}

fn parse_history(args: &[&str]) -> Result<ClientLine, ParseError> {
    const USAGE: &str = "/history <#room|@name> [<n> | after <id> | before <id> [n]]";
    let (conv, range) = match *args {
        [conv] => (conv, HistoryRange::default()),
        [conv, n] => {
            let count = || ParseError::HistoryCount(n.to_owned());
            let n = n.parse::<u16>().map_err(|_| count())?;
            (conv, HistoryRange::latest(n).ok_or_else(count)?)
        }
        [conv, "after", id] => (conv, HistoryRange::After(id.parse::<MessageId>()?)),
        [conv, "before", id, ref n @ ..] if n.len() <= 1 => {
            let id = id.parse::<MessageId>()?;
            let n = match n {
                [n] => {
                    let count = || ParseError::HistoryCount((*n).to_owned());
                    n.parse::<u64>().map_err(|_| count())?
                }
                _ => u64::from(crate::DEFAULT_HISTORY_LINES),
            };
            let range = HistoryRange::before(id, n)
                .ok_or_else(|| ParseError::HistoryCount(n.to_string()))?;
            (conv, range)
        }
        _ => return Err(ParseError::Usage(USAGE)),
    };
    Ok(ClientLine::History {
        conv: conv.parse()?,
        range,
    })
}

impl FromStr for ClientLine {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let line = line.trim();
        if line.is_empty() {
            return Err(ParseError::EmptyLine);
        }
        // A password is everything after the command and one space, spaces included.
        for (command, usage) in [
            ("/register", "/register <password>"),
            ("/password", "/password <new password>"),
        ] {
            if let Some(rest) = line.strip_prefix(command) {
                let password = match rest.strip_prefix(' ') {
                    Some(password) => Password::parse_new(password.trim_start())?,
                    None if rest.is_empty() => return Err(ParseError::Usage(usage)),
                    None => break,
                };
                return Ok(if command == "/register" {
                    Self::Register(password)
                } else {
                    Self::SetPassword(password)
                });
            }
        }
        if line.starts_with('/') {
            return parse_command(line);
        }
        let (to, text) = line.split_once(':').ok_or(ParseError::MissingSeparator)?;
        Ok(Self::Send {
            to: parse_recipients(to)?,
            text: MessageText::parse(text)?,
        })
    }
}

impl ClientLine {
    /// Parses `line` as `str::parse` does, but a message's text keeps `line`'s own buffer:
    /// one allocation and one copy fewer for each message a server routes. Any other
    /// line's buffer is wiped before it is dropped, since it may hold a password.
    pub fn parse_owned(mut line: String) -> Result<Self, ParseError> {
        let trimmed = line.trim();
        let Some(colon) = trimmed.find(':').filter(|_| !trimmed.starts_with('/')) else {
            let parsed = trimmed.parse();
            line.zeroize();
            return parsed;
        };
        let to = parse_recipients(&trimmed[..colon])?;
        let start = line.len() - line.trim_start().len();
        let text = start + colon + 1..start + trimmed.len();
        Ok(Self::Send {
            to,
            text: MessageText::parse_in(line, text)?,
        })
    }
}

impl fmt::Display for ClientLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Send { to, text } => {
                write_recipients(f, to)?;
                write!(f, ": {text}")
            }
            Self::Who => f.write_str("/who"),
            Self::Join(room) => write!(f, "/join {room}"),
            Self::Part(room) => write!(f, "/part {room}"),
            Self::Names(room) => write!(f, "/names {room}"),
            Self::Rooms => f.write_str("/rooms"),
            Self::History { conv, range } => match range {
                HistoryRange::Latest(n) => write!(f, "/history {conv} {n}"),
                HistoryRange::After(id) => write!(f, "/history {conv} after {id}"),
                HistoryRange::Before(id, n) => write!(f, "/history {conv} before {id} {n}"),
            },
            Self::Register(password) => write!(f, "/register {password}"),
            Self::SetPassword(password) => write!(f, "/password {password}"),
            Self::SetRole {
                room,
                name,
                role,
                on,
            } => {
                let command = match (role, on) {
                    (Role::Op, true) => "/op",
                    (Role::Op, false) => "/deop",
                    (Role::Voiced, true) => "/voice",
                    (Role::Voiced, false) => "/devoice",
                };
                write!(f, "{command} {room} {name}")
            }
            Self::Topic { room, text: None } => write!(f, "/topic {room}"),
            Self::Topic {
                room,
                text: Some(text),
            } => write!(f, "/topic {room} {text}"),
            Self::ClearTopic(room) => write!(f, "/topic {room} {CLEAR_TOPIC}"),
            Self::Mode { room, changes } => {
                write!(f, "/mode {room}")?;
                if !changes.is_empty() {
                    f.write_char(' ')?;
                    write_flag_changes(f, changes)?;
                }
                Ok(())
            }
            Self::Kick { room, name, reason } => {
                write!(f, "/kick {room} {name}")?;
                write_reason(f, reason.as_ref())
            }
            Self::Ban { room, name, on } => {
                let command = if *on { "/ban" } else { "/unban" };
                write!(f, "{command} {room} {name}")
            }
            Self::Bans(room) => write!(f, "/bans {room}"),
            Self::Invite { name, room } => write!(f, "/invite {name} {room}"),
            Self::RegisterRoom(room) => write!(f, "/register-room {room}"),
            Self::UnregisterRoom(room) => write!(f, "/unregister-room {room}"),
            Self::Kill { name, reason } => {
                write!(f, "/kill {name}")?;
                write_reason(f, reason.as_ref())
            }
            Self::Suspend { name, on } => {
                let command = if *on { "/suspend" } else { "/unsuspend" };
                write!(f, "{command} {name}")
            }
            Self::Read { conv, id: None } => write!(f, "/read {conv}"),
            Self::Read { conv, id: Some(id) } => write!(f, "/read {conv} {id}"),
            Self::Away(text) => {
                f.write_str("/away")?;
                write_reason(f, text.as_ref())
            }
            Self::Whois(name) => write!(f, "/whois {name}"),
            Self::Ping(token) => {
                f.write_str("/ping")?;
                write_reason(f, token.as_ref())
            }
        }
    }
}

fn write_reason(f: &mut impl fmt::Write, reason: Option<&MessageText>) -> fmt::Result {
    match reason {
        Some(reason) => write!(f, " {reason}"),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::MAX_HISTORY_LINES;
    use proptest::prelude::*;

    fn user(name: &str) -> Recipient {
        Recipient::User(UserName::parse(name).unwrap())
    }

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn send(to: Vec<Recipient>, text: &str) -> ClientLine {
        ClientLine::Send {
            to: to.into(),
            text: MessageText::parse(text).unwrap(),
        }
    }

    #[test]
    fn parses_valid_lines() {
        let cases = [
            ("bob: hi", send(vec![user("bob")], "hi")),
            (
                "bob,carol: hi",
                send(vec![user("bob"), user("carol")], "hi"),
            ),
            (
                " bob , carol :  hi there ",
                send(vec![user("bob"), user("carol")], "hi there"),
            ),
            ("bob,,carol: x", send(vec![user("bob"), user("carol")], "x")),
            ("bob,bob: x", send(vec![user("bob"), user("bob")], "x")),
            ("*: hello all", send(vec![Recipient::Everyone], "hello all")),
            (
                "*,bob: x",
                send(vec![Recipient::Everyone, user("bob")], "x"),
            ),
            ("bob: a: b", send(vec![user("bob")], "a: b")),
            ("张三: 你好", send(vec![user("张三")], "你好")),
            ("bob:no space", send(vec![user("bob")], "no space")),
            ("/who", ClientLine::Who),
            ("  /who  ", ClientLine::Who),
            (
                "#rust: hi",
                send(vec![Recipient::Room(room("#rust"))], "hi"),
            ),
            (
                "bob,#rust,#go: hi",
                send(
                    vec![
                        user("bob"),
                        Recipient::Room(room("#rust")),
                        Recipient::Room(room("#go")),
                    ],
                    "hi",
                ),
            ),
            ("bob: /me waves", send(vec![user("bob")], "/me waves")),
            (
                "/register correct horse",
                ClientLine::Register(Password::parse("correct horse").unwrap()),
            ),
            (
                "/password  new one here",
                ClientLine::SetPassword(Password::parse("new one here").unwrap()),
            ),
            ("/join #rust", ClientLine::Join(room("#rust"))),
            ("/join   #中文 ", ClientLine::Join(room("#中文"))),
            ("/part #rust", ClientLine::Part(room("#rust"))),
            ("/names #rust", ClientLine::Names(room("#rust"))),
            ("/rooms", ClientLine::Rooms),
            (
                "/history #rust",
                ClientLine::History {
                    conv: Conv::Room(room("#rust")),
                    range: HistoryRange::Latest(50),
                },
            ),
            (
                "/history @bob 1000",
                ClientLine::History {
                    conv: Conv::Direct(UserName::parse("bob").unwrap()),
                    range: HistoryRange::Latest(1000),
                },
            ),
            (
                "/history #rust after 9223372036854775807",
                ClientLine::History {
                    conv: Conv::Room(room("#rust")),
                    range: HistoryRange::After(MessageId::MAX),
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.parse::<ClientLine>(), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn parses_sessions_away_and_liveness_lines() {
        let cases = [
            (
                "/history #rust before 42",
                ClientLine::History {
                    conv: Conv::Room(room("#rust")),
                    range: HistoryRange::Before(MessageId::new(42).unwrap(), 50),
                },
            ),
            (
                "/history @bob before 42 5000",
                ClientLine::History {
                    conv: Conv::Direct(UserName::parse("bob").unwrap()),
                    range: HistoryRange::Before(MessageId::new(42).unwrap(), 1000),
                },
            ),
            (
                "/read #rust 7",
                ClientLine::Read {
                    conv: Conv::Room(room("#rust")),
                    id: MessageId::new(7),
                },
            ),
            (
                "/read @Bob",
                ClientLine::Read {
                    conv: Conv::Direct(UserName::parse("Bob").unwrap()),
                    id: None,
                },
            ),
            ("/away", ClientLine::Away(None)),
            (
                "/away  out for lunch ",
                ClientLine::Away(Some(MessageText::parse("out for lunch").unwrap())),
            ),
            (
                "/whois bob",
                ClientLine::Whois(UserName::parse("bob").unwrap()),
            ),
            ("/ping", ClientLine::Ping(None)),
            (
                "/ping abc 123",
                ClientLine::Ping(Some(MessageText::parse("abc 123").unwrap())),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.parse::<ClientLine>(), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn parses_governance_lines() {
        let name = |s| UserName::parse(s).unwrap();
        let cases = [
            (
                "/deop #rust bob",
                ClientLine::SetRole {
                    room: room("#rust"),
                    name: name("bob"),
                    role: Role::Op,
                    on: false,
                },
            ),
            (
                "/voice #rust bob",
                ClientLine::SetRole {
                    room: room("#rust"),
                    name: name("bob"),
                    role: Role::Voiced,
                    on: true,
                },
            ),
            (
                "/topic #rust",
                ClientLine::Topic {
                    room: room("#rust"),
                    text: None,
                },
            ),
            (
                "/topic #rust  -delete ",
                ClientLine::ClearTopic(room("#rust")),
            ),
            (
                "/topic  #rust   Rust:  the  language ",
                ClientLine::Topic {
                    room: room("#rust"),
                    text: Some(TopicText::parse("Rust:  the  language").unwrap()),
                },
            ),
            (
                "/mode #rust +mi",
                ClientLine::Mode {
                    room: room("#rust"),
                    changes: vec![(true, RoomMode::Moderated), (true, RoomMode::InviteOnly)],
                },
            ),
            (
                "/mode #rust",
                ClientLine::Mode {
                    room: room("#rust"),
                    changes: vec![],
                },
            ),
            (
                "/kick #rust eve",
                ClientLine::Kick {
                    room: room("#rust"),
                    name: name("eve"),
                    reason: None,
                },
            ),
            (
                "/kick #rust eve  spam: again ",
                ClientLine::Kick {
                    room: room("#rust"),
                    name: name("eve"),
                    reason: Some(MessageText::parse("spam: again").unwrap()),
                },
            ),
            (
                "/unban #rust eve",
                ClientLine::Ban {
                    room: room("#rust"),
                    name: name("eve"),
                    on: false,
                },
            ),
            ("/bans #rust", ClientLine::Bans(room("#rust"))),
            (
                "/invite bob #rust",
                ClientLine::Invite {
                    name: name("bob"),
                    room: room("#rust"),
                },
            ),
            (
                "/register-room #rust",
                ClientLine::RegisterRoom(room("#rust")),
            ),
            (
                "/unregister-room #rust",
                ClientLine::UnregisterRoom(room("#rust")),
            ),
            (
                "/kill eve flooding",
                ClientLine::Kill {
                    name: name("eve"),
                    reason: Some(MessageText::parse("flooding").unwrap()),
                },
            ),
            (
                "/suspend eve",
                ClientLine::Suspend {
                    name: name("eve"),
                    on: true,
                },
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.parse::<ClientLine>(), Ok(want), "{line:?}");
        }
        let refused = [
            ("/op #rust", ParseError::Usage("/op <#room> <name>")),
            (
                "/kick #rust",
                ParseError::Usage("/kick <#room> <name> [reason]"),
            ),
            ("/mode #rust +q", ParseError::InvalidModes("+q".into())),
            ("/mode #rust mi", ParseError::InvalidModes("mi".into())),
            (
                "/invite #rust bob",
                ParseError::Name(crate::NameError::InvalidChar('#')),
            ),
            ("/topic", ParseError::Usage("/topic <#room> [text]")),
            ("/topic rust x", ParseError::InvalidRoom("rust".into())),
            ("/kick #rust eve a\x1bb", ParseError::ControlCharacter),
        ];
        for (line, want) in refused {
            assert_eq!(line.parse::<ClientLine>(), Err(want), "{line:?}");
        }
        let long = format!("/topic #rust {}", "x".repeat(391));
        assert_eq!(long.parse::<ClientLine>(), Err(ParseError::TopicTooLong));
    }

    #[test]
    fn refuses_invalid_lines_with_a_reason() {
        let cases = [
            ("", ParseError::EmptyLine),
            ("   ", ParseError::EmptyLine),
            ("hello there", ParseError::MissingSeparator),
            (": hi", ParseError::NoDestination),
            (" , : hi", ParseError::NoDestination),
            ("bob:", ParseError::EmptyText),
            ("bob:   ", ParseError::EmptyText),
            (
                "bob smith: hi",
                ParseError::InvalidDestination("bob smith".into()),
            ),
            ("bob: \x1b[2J", ParseError::ControlCharacter),
            ("bob: a\rfrom eve: b", ParseError::ControlCharacter),
            ("/whois", ParseError::Usage("/whois <name>")),
            ("/who extra", ParseError::UnknownCommand("/who".into())),
            ("/quit", ParseError::UnknownCommand("/quit".into())),
            ("/JOIN #rust", ParseError::UnknownCommand("/JOIN".into())),
            ("/register", ParseError::Usage("/register <password>")),
            ("/register short", ParseError::WeakPassword),
            ("/password", ParseError::Usage("/password <new password>")),
            (
                "/passwords x",
                ParseError::UnknownCommand("/passwords".into()),
            ),
            ("#a b: hi", ParseError::InvalidDestination("#a b".into())),
            ("#: hi", ParseError::InvalidDestination("#".into())),
            ("/join", ParseError::Usage("/join <#room>")),
            ("/join #a #b", ParseError::Usage("/join <#room>")),
            ("/join rust", ParseError::InvalidRoom("rust".into())),
            ("/part", ParseError::Usage("/part <#room>")),
            ("/names", ParseError::Usage("/names <#room>")),
            ("/rooms #a", ParseError::Usage("/rooms")),
            (
                "/history",
                ParseError::Usage("/history <#room|@name> [<n> | after <id> | before <id> [n]]"),
            ),
            ("/history rust", ParseError::InvalidConv("rust".into())),
            ("/history #rust 0", ParseError::HistoryCount("0".into())),
            (
                "/history #rust 1001",
                ParseError::HistoryCount("1001".into()),
            ),
            ("/history #rust -1", ParseError::HistoryCount("-1".into())),
            ("/history #rust after x", ParseError::InvalidId("x".into())),
            ("/history #rust before x", ParseError::InvalidId("x".into())),
            (
                "/history #rust before 3 0",
                ParseError::HistoryCount("0".into()),
            ),
            ("/read rust", ParseError::InvalidConv("rust".into())),
            ("/read #rust x", ParseError::InvalidId("x".into())),
            ("/away \x1b", ParseError::ControlCharacter),
        ];
        for (line, want) in cases {
            assert_eq!(line.parse::<ClientLine>(), Err(want), "{line:?}");
        }
    }

    #[test]
    fn reasons_escape_what_the_user_typed() {
        let err = "b\x1bob: x".parse::<ClientLine>().unwrap_err();
        assert_eq!(err.to_string(), "invalid destination \"b\\u{1b}ob\"");
    }

    #[test]
    fn displays_the_wire_form() {
        assert_eq!(
            send(vec![user("bob"), Recipient::Everyone], "hi").to_string(),
            "bob,*: hi"
        );
        assert_eq!(ClientLine::Who.to_string(), "/who");
    }

    pub(crate) fn name_strategy() -> impl Strategy<Value = UserName> {
        "[\\p{L}\\p{N}_.-]{1,32}".prop_filter_map("not a valid name", |s| UserName::parse(&s).ok())
    }

    pub(crate) fn text_strategy() -> impl Strategy<Value = MessageText> {
        "\\PC{1,200}".prop_filter_map("empty once trimmed", |s| MessageText::parse(&s).ok())
    }

    pub(crate) fn room_strategy() -> impl Strategy<Value = RoomName> {
        name_strategy().prop_map(|name| RoomName::parse(&format!("#{name}")).unwrap())
    }

    pub(crate) fn conv_strategy() -> impl Strategy<Value = Conv> {
        prop_oneof![
            room_strategy().prop_map(Conv::Room),
            name_strategy().prop_map(Conv::Direct),
        ]
    }

    pub(crate) fn id_strategy() -> impl Strategy<Value = MessageId> {
        (0..=MessageId::MAX.get()).prop_map(|id| MessageId::new(id).unwrap())
    }

    fn line_strategy() -> impl Strategy<Value = ClientLine> {
        let recipient = prop_oneof![
            1 => Just(Recipient::Everyone),
            4 => name_strategy().prop_map(Recipient::User),
            2 => room_strategy().prop_map(Recipient::Room),
        ];
        let range = prop_oneof![
            (1..=MAX_HISTORY_LINES).prop_map(HistoryRange::Latest),
            id_strategy().prop_map(HistoryRange::After),
            (id_strategy(), 1..=MAX_HISTORY_LINES).prop_map(|(id, n)| HistoryRange::Before(id, n)),
        ];
        prop_oneof![
            Just(ClientLine::Who),
            Just(ClientLine::Rooms),
            room_strategy().prop_map(ClientLine::Join),
            room_strategy().prop_map(ClientLine::Part),
            room_strategy().prop_map(ClientLine::Names),
            "[!-~][ -~]{6,30}[!-~]"
                .prop_map(|p| ClientLine::Register(Password::parse(&p).unwrap())),
            "[!-~][ -~]{6,30}[!-~]"
                .prop_map(|p| ClientLine::SetPassword(Password::parse(&p).unwrap())),
            (conv_strategy(), range).prop_map(|(conv, range)| ClientLine::History { conv, range }),
            (prop::collection::vec(recipient, 1..5), text_strategy()).prop_map(|(to, text)| {
                ClientLine::Send {
                    to: to.into(),
                    text,
                }
            }),
            governance_strategy(),
        ]
    }

    fn governance_strategy() -> impl Strategy<Value = ClientLine> {
        let role = prop::sample::select(vec![Role::Op, Role::Voiced]);
        let topic = "\\PC{1,100}".prop_filter_map("not a topic", |s| {
            TopicText::parse(&s)
                .ok()
                .filter(|t| t.as_str() != CLEAR_TOPIC)
        });
        let mode = crate::governance::tests::mode_strategy;
        prop_oneof![
            (room_strategy(), name_strategy(), role, any::<bool>()).prop_map(
                |(room, name, role, on)| ClientLine::SetRole {
                    room,
                    name,
                    role,
                    on
                }
            ),
            (room_strategy(), prop::option::of(topic))
                .prop_map(|(room, text)| ClientLine::Topic { room, text }),
            room_strategy().prop_map(ClientLine::ClearTopic),
            (
                room_strategy(),
                prop::collection::vec((any::<bool>(), mode()), 0..5)
            )
                .prop_map(|(room, changes)| ClientLine::Mode { room, changes }),
            (
                room_strategy(),
                name_strategy(),
                prop::option::of(text_strategy())
            )
                .prop_map(|(room, name, reason)| ClientLine::Kick {
                    room,
                    name,
                    reason
                }),
            (room_strategy(), name_strategy(), any::<bool>())
                .prop_map(|(room, name, on)| ClientLine::Ban { room, name, on }),
            room_strategy().prop_map(ClientLine::Bans),
            (name_strategy(), room_strategy())
                .prop_map(|(name, room)| ClientLine::Invite { name, room }),
            room_strategy().prop_map(ClientLine::RegisterRoom),
            room_strategy().prop_map(ClientLine::UnregisterRoom),
            (name_strategy(), prop::option::of(text_strategy()))
                .prop_map(|(name, reason)| ClientLine::Kill { name, reason }),
            (name_strategy(), any::<bool>())
                .prop_map(|(name, on)| ClientLine::Suspend { name, on }),
            (conv_strategy(), prop::option::of(id_strategy()))
                .prop_map(|(conv, id)| ClientLine::Read { conv, id }),
            prop::option::of(text_strategy()).prop_map(ClientLine::Away),
            name_strategy().prop_map(ClientLine::Whois),
            prop::option::of(text_strategy()).prop_map(ClientLine::Ping),
        ]
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(line in line_strategy()) {
            prop_assert_eq!(line.to_string().parse::<ClientLine>(), Ok(line));
        }

        #[test]
        fn parse_never_panics(s in "(?s).{0,300}") {
            let _ = s.parse::<ClientLine>();
        }

        #[test]
        fn parse_owned_agrees_with_parse(s in "(?s)[ a-z,*#:/\t\u{0}-\u{1f}\u{7f}-\u{a0}é中]{0,40}") {
            prop_assert_eq!(ClientLine::parse_owned(s.clone()), s.parse::<ClientLine>());
        }

        #[test]
        fn parse_owned_agrees_on_valid_lines(line in line_strategy()) {
            let text = format!("  {line} \t");
            prop_assert_eq!(ClientLine::parse_owned(text.clone()), text.parse::<ClientLine>());
        }
    }
}
