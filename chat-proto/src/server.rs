//! [`ServerLine`]: the lines the server sends.

use std::fmt;
use std::str::FromStr;

use crate::{
    Conv, MessageId, MessageText, ModeChange, ParseError, Recipient, Role, RoomModes, RoomName,
    Setter, Timestamp, TopicText, UserName,
};

/// One line from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `welcome <name>`: the login was accepted; always the first line after login.
    Welcome(UserName),
    /// `from <sender>[ <scope>]: <text>`: a message the reader receives.
    From {
        /// Who sent it.
        sender: UserName,
        /// To whom it was addressed: the reader alone, everyone, or a room.
        scope: Scope,
        /// What they wrote.
        text: MessageText,
    },
    /// `joined <name>`: someone else logged in.
    Joined(UserName),
    /// `left <name>`: someone else went away.
    Left(UserName),
    /// `joined <#room> <name>`: someone, maybe the reader, became a member of a room.
    JoinedRoom {
        /// The room.
        room: RoomName,
        /// The new member.
        name: UserName,
    },
    /// `left <#room> <name>`: someone, maybe the reader, stopped being a member.
    LeftRoom {
        /// The room.
        room: RoomName,
        /// The former member.
        name: UserName,
    },
    /// `users <a>,<b>,...`: everyone online, sorted, the reader included.
    Users(Vec<UserName>),
    /// `names <#room> <a>,<b>,...`: a room's members, sorted bytewise.
    Names {
        /// The room.
        room: RoomName,
        /// Its members.
        names: Vec<UserName>,
    },
    /// `rooms <#a>=<n>,...`: every room with members and how many, sorted bytewise.
    Rooms(Vec<(RoomName, usize)>),
    /// `history <conv> <id> <time> <sender>: <text>`: one stored message.
    History(HistoryEntry),
    /// `history-end <conv> complete|truncated`: the end of a `/history` reply.
    HistoryEnd {
        /// The conversation the reply was about.
        conv: Conv,
        /// Whether some messages that were asked for are no longer stored.
        truncated: bool,
    },
    /// `history-end missed <n>`: the end of the messages stored while you were away.
    Missed(usize),
    /// `stored <name>`: a direct message to an offline registered user was kept for them.
    Stored(UserName),
    /// `registered <name>`: `/register` succeeded.
    Registered(UserName),
    /// `password changed`: `/password` succeeded.
    PasswordChanged,
    /// `error: <reason>`: a line was refused, or the connection is about to close.
    Error(String),
    /// `bye: <reason>`: the server is closing this connection on purpose.
    Bye(String),
    /// `roles <#room> @<op>,+<voiced>,...`: the members with a role, sorted bytewise by
    /// name (`roles <#room>` alone when none).
    Roles {
        /// The room.
        room: RoomName,
        /// Each member with a role.
        members: Vec<(Role, UserName)>,
    },
    /// `topic <#room> <setter> <time>: <text>`, or `topic <#room>` when none is set.
    Topic {
        /// The room.
        room: RoomName,
        /// The topic, if set.
        topic: Option<TopicInfo>,
    },
    /// `mode <#room> +<flags>`: the room's modes, in answer to `/mode <#room>`.
    Modes {
        /// The room.
        room: RoomName,
        /// The set flags.
        modes: RoomModes,
    },
    /// `mode <#room> <setter> <change>`: a flag, role or ban changed.
    Mode {
        /// The room.
        room: RoomName,
        /// Who changed it.
        setter: Setter,
        /// What changed.
        change: ModeChange,
    },
    /// `kicked <#room> <name> <setter>: [reason]`: someone was removed from a room.
    Kicked {
        /// The room.
        room: RoomName,
        /// Who was removed.
        name: UserName,
        /// Who removed them.
        setter: Setter,
        /// Why, if they said.
        reason: Option<MessageText>,
    },
    /// `bans <#room> <a>,<b>,...`: the room's bans, sorted bytewise.
    Bans {
        /// The room.
        room: RoomName,
        /// The banned names.
        names: Vec<UserName>,
    },
    /// `invited <#room> <setter>`: the reader may join an invite-only room, once.
    Invited {
        /// The room.
        room: RoomName,
        /// Who invited them.
        by: UserName,
    },
    /// `invite sent <name> <#room>`: an `/invite` reached its user.
    InviteSent {
        /// Who was invited.
        name: UserName,
        /// The room.
        room: RoomName,
    },
    /// `sent <dest>: <text>`: another session of the reader's account sent this to a
    /// user or to everyone (`*`).
    Sent {
        /// The destination as the sender wrote it: a user or [`Recipient::Everyone`].
        to: Recipient,
        /// The message.
        text: MessageText,
    },
    /// `read <conv> <id>`: the account's read marker of a conversation; `read <conv>`
    /// when none.
    Read {
        /// The conversation.
        conv: Conv,
        /// The newest id read.
        id: Option<MessageId>,
    },
    /// `away <name>: <text>`: a user is away.
    Away {
        /// The user.
        name: UserName,
        /// Their away message.
        text: MessageText,
    },
    /// `whois <name> <idle seconds> <sessions>`.
    Whois {
        /// The user.
        name: UserName,
        /// Seconds since they last sent a line.
        idle: u64,
        /// How many connections they are logged in on.
        sessions: usize,
    },
    /// `pong [token]`: the answer to `/ping`.
    Pong(Option<MessageText>),
    /// `room-registered <#room> <founder>`: the room is kept, with this founder.
    RoomRegistered {
        /// The room.
        room: RoomName,
        /// Its founder.
        founder: UserName,
    },
}

/// A room's topic as `topic` lines show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Who set it.
    pub setter: Setter,
    /// When.
    pub time: Timestamp,
    /// The topic.
    pub text: TopicText,
}

/// To whom a message was addressed, as its `from` line tells the recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `from <sender>: <text>`: to the reader by name.
    Direct,
    /// `from <sender> *: <text>`: to everyone online.
    Everyone,
    /// `from <sender> <#room> <id>: <text>`: to a room, with the message's id.
    Room {
        /// The room.
        room: RoomName,
        /// The message's id in the room.
        id: MessageId,
    },
}

/// One stored message in a `/history` reply (or an offline message after login).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The conversation it belongs to.
    pub conv: Conv,
    /// Its id within the conversation.
    pub id: MessageId,
    /// When the server accepted it.
    pub time: Timestamp,
    /// Who sent it.
    pub sender: UserName,
    /// What they wrote.
    pub text: MessageText,
}

impl FromStr for ServerLine {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        if let Some(reason) = line.strip_prefix("error:") {
            return Ok(Self::Error(strip_one_space(reason).to_owned()));
        }
        if let Some(reason) = line.strip_prefix("bye:") {
            return Ok(Self::Bye(strip_one_space(reason).to_owned()));
        }
        if let Some(rest) = line.strip_prefix("from ") {
            return parse_from(rest);
        }
        if let Some(rest) = line.strip_prefix("history ") {
            return parse_history(rest).map(Self::History);
        }
        if line == "users" {
            return Ok(Self::Users(Vec::new()));
        }
        if line == "rooms" {
            return Ok(Self::Rooms(Vec::new()));
        }
        if line == "password changed" {
            return Ok(Self::PasswordChanged);
        }
        if let Some(n) = line.strip_prefix("history-end missed ") {
            return n
                .parse()
                .map(Self::Missed)
                .map_err(|_| ParseError::UnknownServerLine);
        }
        if line == "pong" {
            return Ok(Self::Pong(None));
        }
        if let Some(rest) = line.strip_prefix("sent ") {
            let (to, text) = rest.split_once(':').ok_or(ParseError::MissingSeparator)?;
            return Ok(Self::Sent {
                to: to.parse()?,
                text: MessageText::parse(text)?,
            });
        }
        if let Some(rest) = line.strip_prefix("away ") {
            let (name, text) = rest.split_once(':').ok_or(ParseError::MissingSeparator)?;
            return Ok(Self::Away {
                name: UserName::parse(name)?,
                text: MessageText::parse(text)?,
            });
        }
        if let Some(rest) = line.strip_prefix("invite sent ") {
            let (name, room) = rest.split_once(' ').ok_or(ParseError::UnknownServerLine)?;
            return Ok(Self::InviteSent {
                name: UserName::parse(name)?,
                room: RoomName::parse(room)?,
            });
        }
        let (kind, arg) = line.split_once(' ').ok_or(ParseError::UnknownServerLine)?;
        match kind {
            "roles" | "topic" | "mode" | "kicked" | "bans" | "invited" | "room-registered" => {
                parse_governance(kind, arg)
            }
            "pong" => Ok(Self::Pong(Some(MessageText::parse(arg)?))),
            "read" => {
                let (conv, id) = match arg.split_once(' ') {
                    Some((conv, id)) => (conv, Some(id.parse()?)),
                    None => (arg, None),
                };
                Ok(Self::Read {
                    conv: conv.parse()?,
                    id,
                })
            }
            "whois" => {
                let mut parts = arg.split(' ');
                let bad = || ParseError::UnknownServerLine;
                let (Some(name), Some(idle), Some(sessions), None) =
                    (parts.next(), parts.next(), parts.next(), parts.next())
                else {
                    return Err(bad());
                };
                Ok(Self::Whois {
                    name: UserName::parse(name)?,
                    idle: idle.parse().map_err(|_| bad())?,
                    sessions: sessions.parse().map_err(|_| bad())?,
                })
            }
            "welcome" => Ok(Self::Welcome(UserName::parse(arg)?)),
            "stored" => Ok(Self::Stored(UserName::parse(arg)?)),
            "registered" => Ok(Self::Registered(UserName::parse(arg)?)),
            "joined" | "left" => {
                let line = match arg.split_once(' ') {
                    None if kind == "joined" => Self::Joined(UserName::parse(arg)?),
                    None => Self::Left(UserName::parse(arg)?),
                    Some((room, name)) => {
                        let (room, name) = (RoomName::parse(room)?, UserName::parse(name)?);
                        if kind == "joined" {
                            Self::JoinedRoom { room, name }
                        } else {
                            Self::LeftRoom { room, name }
                        }
                    }
                };
                Ok(line)
            }
            "users" => Ok(Self::Users(parse_names(arg)?)),
            "names" => {
                let (room, names) = arg.split_once(' ').unwrap_or((arg, ""));
                Ok(Self::Names {
                    room: RoomName::parse(room)?,
                    names: parse_names(names)?,
                })
            }
            "rooms" => Ok(Self::Rooms(
                arg.split(',')
                    .map(|entry| {
                        let (room, count) =
                            entry.split_once('=').ok_or(ParseError::UnknownServerLine)?;
                        let count = count.parse().map_err(|_| ParseError::UnknownServerLine)?;
                        Ok((RoomName::parse(room)?, count))
                    })
                    .collect::<Result<_, ParseError>>()?,
            )),
            "history-end" => {
                let (conv, status) = arg.split_once(' ').ok_or(ParseError::UnknownServerLine)?;
                let truncated = match status {
                    "complete" => false,
                    "truncated" => true,
                    _ => return Err(ParseError::UnknownServerLine),
                };
                Ok(Self::HistoryEnd {
                    conv: conv.parse()?,
                    truncated,
                })
            }
            _ => Err(ParseError::UnknownServerLine),
        }
    }
}

/// The v3 room lines, after their first word.
fn parse_governance(kind: &str, arg: &str) -> Result<ServerLine, ParseError> {
    let (room, rest) = arg.split_once(' ').unwrap_or((arg, ""));
    let room = RoomName::parse(room)?;
    match kind {
        "roles" => Ok(ServerLine::Roles {
            room,
            members: rest
                .split(',')
                .filter(|entry| !entry.is_empty())
                .map(|entry| {
                    let mut chars = entry.chars();
                    let role = chars
                        .next()
                        .and_then(Role::from_prefix)
                        .ok_or(ParseError::UnknownServerLine)?;
                    Ok((role, UserName::parse(chars.as_str())?))
                })
                .collect::<Result<_, ParseError>>()?,
        }),
        "topic" if rest.is_empty() => Ok(ServerLine::Topic { room, topic: None }),
        "topic" => {
            let (setter, rest) = rest.split_once(' ').ok_or(ParseError::UnknownServerLine)?;
            let (time, text) = rest.split_once(' ').ok_or(ParseError::UnknownServerLine)?;
            let time = time.strip_suffix(':').ok_or(ParseError::MissingSeparator)?;
            Ok(ServerLine::Topic {
                room,
                topic: Some(TopicInfo {
                    setter: setter.parse()?,
                    time: time.parse()?,
                    text: TopicText::parse(text)?,
                }),
            })
        }
        "mode" => match rest.split_once(' ') {
            None => Ok(ServerLine::Modes {
                room,
                modes: rest.parse()?,
            }),
            Some((setter, change)) => Ok(ServerLine::Mode {
                room,
                setter: setter.parse()?,
                change: change.parse()?,
            }),
        },
        "kicked" => {
            let (head, reason) = rest.split_once(':').ok_or(ParseError::MissingSeparator)?;
            let (name, setter) = head.split_once(' ').ok_or(ParseError::UnknownServerLine)?;
            let reason = match reason.trim() {
                "" => None,
                reason => Some(MessageText::parse(reason)?),
            };
            Ok(ServerLine::Kicked {
                room,
                name: UserName::parse(name)?,
                setter: setter.parse()?,
                reason,
            })
        }
        "bans" => Ok(ServerLine::Bans {
            room,
            names: parse_names(rest)?,
        }),
        "invited" => Ok(ServerLine::Invited {
            room,
            by: UserName::parse(rest)?,
        }),
        _ => Ok(ServerLine::RoomRegistered {
            room,
            founder: UserName::parse(rest)?,
        }),
    }
}

fn parse_names(list: &str) -> Result<Vec<UserName>, ParseError> {
    list.split(',')
        .filter(|name| !name.is_empty())
        .map(|name| UserName::parse(name).map_err(ParseError::from))
        .collect()
}

/// `<sender>[ *| <#room> <id>]: <text>`, after `from `.
fn parse_from(rest: &str) -> Result<ServerLine, ParseError> {
    let (head, text) = rest.split_once(':').ok_or(ParseError::MissingSeparator)?;
    let mut words = head.split(' ');
    let sender = UserName::parse(words.next().unwrap_or(head))?;
    let scope = match (words.next(), words.next(), words.next()) {
        (None, ..) => Scope::Direct,
        (Some("*"), None, _) => Scope::Everyone,
        (Some(room), Some(id), None) => Scope::Room {
            room: RoomName::parse(room)?,
            id: id.parse()?,
        },
        _ => return Err(ParseError::UnknownServerLine),
    };
    Ok(ServerLine::From {
        sender,
        scope,
        text: MessageText::parse(text)?,
    })
}

/// `<conv> <id> <time> <sender>: <text>`, after `history `. The time holds colons, so
/// the fixed fields are split on spaces first.
fn parse_history(rest: &str) -> Result<HistoryEntry, ParseError> {
    let mut fields = rest.splitn(4, ' ');
    let mut next = || fields.next().ok_or(ParseError::UnknownServerLine);
    let (conv, id, time, message) = (next()?, next()?, next()?, next()?);
    let (sender, text) = message
        .split_once(':')
        .ok_or(ParseError::MissingSeparator)?;
    Ok(HistoryEntry {
        conv: conv.parse()?,
        id: id.parse()?,
        time: time.parse()?,
        sender: UserName::parse(sender)?,
        text: MessageText::parse(text)?,
    })
}

/// A `from` line that borrows its parts, so a server can format a message without
/// first cloning the sender's name and text into a [`ServerLine`].
#[derive(Debug, Clone, Copy)]
pub struct FromLine<'a> {
    /// Who sent it.
    pub sender: &'a UserName,
    /// To whom it was addressed.
    pub scope: &'a Scope,
    /// What they wrote.
    pub text: &'a MessageText,
}

impl fmt::Display for FromLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            sender,
            scope,
            text,
        } = self;
        match scope {
            Scope::Direct => write!(f, "from {sender}: {text}"),
            Scope::Everyone => write!(f, "from {sender} *: {text}"),
            Scope::Room { room, id } => write!(f, "from {sender} {room} {id}: {text}"),
        }
    }
}

impl FromLine<'_> {
    /// The wire form, `\n` included, copied from its parts into a buffer of the exact size:
    /// the hot path of every message, where `fmt` machinery and a growing buffer cost more.
    pub fn encode(&self) -> bytes::Bytes {
        let mut digits = itoa::Buffer::new();
        let scope = match self.scope {
            Scope::Direct => ["", "", "", ""],
            Scope::Everyone => [" *", "", "", ""],
            Scope::Room { room, id } => [" ", room.as_str(), " ", digits.format(id.get())],
        };
        let [s0, s1, s2, s3] = scope;
        let parts = [
            "from ",
            self.sender.as_str(),
            s0,
            s1,
            s2,
            s3,
            ": ",
            self.text.as_str(),
            "\n",
        ];
        let mut line = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
        for part in parts {
            line.extend_from_slice(part.as_bytes());
        }
        line.into()
    }
}

/// A `history` line that borrows its parts, for formatting stored messages in place.
#[derive(Debug, Clone, Copy)]
pub struct HistoryLine<'a> {
    /// The conversation.
    pub conv: &'a Conv,
    /// The message's id.
    pub id: MessageId,
    /// When it was accepted.
    pub time: Timestamp,
    /// Who sent it.
    pub sender: &'a UserName,
    /// What they wrote.
    pub text: &'a MessageText,
}

impl fmt::Display for HistoryLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            conv,
            id,
            time,
            sender,
            text,
        } = self;
        write!(f, "history {conv} {id} {time} {sender}: {text}")
    }
}

fn strip_one_space(s: &str) -> &str {
    s.strip_prefix(' ').unwrap_or(s)
}

/// Writes `items` joined by `,`.
fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(",")?;
        }
        item.fmt(f)?;
    }
    Ok(())
}

impl fmt::Display for ServerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Welcome(name) => write!(f, "welcome {name}"),
            Self::From {
                sender,
                scope,
                text,
            } => FromLine {
                sender,
                scope,
                text,
            }
            .fmt(f),
            Self::Joined(name) => write!(f, "joined {name}"),
            Self::Left(name) => write!(f, "left {name}"),
            Self::JoinedRoom { room, name } => write!(f, "joined {room} {name}"),
            Self::LeftRoom { room, name } => write!(f, "left {room} {name}"),
            Self::Users(names) => {
                f.write_str("users ")?;
                write_list(f, names)
            }
            Self::Names { room, names } => {
                write!(f, "names {room} ")?;
                write_list(f, names)
            }
            Self::Rooms(rooms) => {
                f.write_str("rooms")?;
                for (i, (room, count)) in rooms.iter().enumerate() {
                    f.write_str(if i == 0 { " " } else { "," })?;
                    write!(f, "{room}={count}")?;
                }
                Ok(())
            }
            Self::History(entry) => HistoryLine {
                conv: &entry.conv,
                id: entry.id,
                time: entry.time,
                sender: &entry.sender,
                text: &entry.text,
            }
            .fmt(f),
            Self::HistoryEnd { conv, truncated } => {
                let status = if *truncated { "truncated" } else { "complete" };
                write!(f, "history-end {conv} {status}")
            }
            Self::Missed(n) => write!(f, "history-end missed {n}"),
            Self::Stored(name) => write!(f, "stored {name}"),
            Self::Registered(name) => write!(f, "registered {name}"),
            Self::PasswordChanged => f.write_str("password changed"),
            Self::Error(reason) => write!(f, "error: {reason}"),
            Self::Bye(reason) => write!(f, "bye: {reason}"),
            Self::Roles { room, members } => {
                write!(f, "roles {room}")?;
                for (i, (role, name)) in members.iter().enumerate() {
                    let sep = if i == 0 { ' ' } else { ',' };
                    write!(f, "{sep}{}{name}", role.prefix())?;
                }
                Ok(())
            }
            Self::Topic { room, topic: None } => write!(f, "topic {room}"),
            Self::Topic {
                room,
                topic: Some(TopicInfo { setter, time, text }),
            } => write!(f, "topic {room} {setter} {time}: {text}"),
            Self::Modes { room, modes } => write!(f, "mode {room} {modes}"),
            Self::Mode {
                room,
                setter,
                change,
            } => write!(f, "mode {room} {setter} {change}"),
            Self::Kicked {
                room,
                name,
                setter,
                reason,
            } => {
                write!(f, "kicked {room} {name} {setter}:")?;
                match reason {
                    Some(reason) => write!(f, " {reason}"),
                    None => Ok(()),
                }
            }
            Self::Bans { room, names } => {
                write!(f, "bans {room}")?;
                if !names.is_empty() {
                    f.write_str(" ")?;
                }
                write_list(f, names)
            }
            Self::Invited { room, by } => write!(f, "invited {room} {by}"),
            Self::Sent { to, text } => write!(f, "sent {to}: {text}"),
            Self::Read { conv, id: None } => write!(f, "read {conv}"),
            Self::Read { conv, id: Some(id) } => write!(f, "read {conv} {id}"),
            Self::Away { name, text } => write!(f, "away {name}: {text}"),
            Self::Whois {
                name,
                idle,
                sessions,
            } => write!(f, "whois {name} {idle} {sessions}"),
            Self::Pong(None) => f.write_str("pong"),
            Self::Pong(Some(token)) => write!(f, "pong {token}"),
            Self::InviteSent { name, room } => write!(f, "invite sent {name} {room}"),
            Self::RoomRegistered { room, founder } => {
                write!(f, "room-registered {room} {founder}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::{
        conv_strategy, id_strategy, name_strategy, room_strategy, text_strategy,
    };
    use proptest::prelude::*;

    fn name(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).unwrap()
    }

    fn text(s: &str) -> MessageText {
        MessageText::parse(s).unwrap()
    }

    #[test]
    fn parses_every_kind() {
        let cases = [
            ("welcome alice", ServerLine::Welcome(name("alice"))),
            (
                "from 张三: 你好: 世界",
                ServerLine::From {
                    sender: name("张三"),
                    scope: Scope::Direct,
                    text: text("你好: 世界"),
                },
            ),
            (
                "from alice *: hello all",
                ServerLine::From {
                    sender: name("alice"),
                    scope: Scope::Everyone,
                    text: text("hello all"),
                },
            ),
            (
                "from alice #rust 42: hi: there",
                ServerLine::From {
                    sender: name("alice"),
                    scope: Scope::Room {
                        room: room("#rust"),
                        id: "42".parse().unwrap(),
                    },
                    text: text("hi: there"),
                },
            ),
            (
                "joined #rust bob",
                ServerLine::JoinedRoom {
                    room: room("#rust"),
                    name: name("bob"),
                },
            ),
            (
                "left #rust bob",
                ServerLine::LeftRoom {
                    room: room("#rust"),
                    name: name("bob"),
                },
            ),
            (
                "names #rust alice,bob",
                ServerLine::Names {
                    room: room("#rust"),
                    names: vec![name("alice"), name("bob")],
                },
            ),
            ("rooms", ServerLine::Rooms(vec![])),
            (
                "rooms #go=1,#rust=12",
                ServerLine::Rooms(vec![(room("#go"), 1), (room("#rust"), 12)]),
            ),
            (
                "history #rust 7 2026-11-28T18:00:00.123Z bob: at 18:00: tea",
                ServerLine::History(HistoryEntry {
                    conv: Conv::Room(room("#rust")),
                    id: "7".parse().unwrap(),
                    time: "2026-11-28T18:00:00.123Z".parse().unwrap(),
                    sender: name("bob"),
                    text: text("at 18:00: tea"),
                }),
            ),
            (
                "history-end #rust complete",
                ServerLine::HistoryEnd {
                    conv: Conv::Room(room("#rust")),
                    truncated: false,
                },
            ),
            (
                "history-end @bob truncated",
                ServerLine::HistoryEnd {
                    conv: Conv::Direct(name("bob")),
                    truncated: true,
                },
            ),
            ("joined bob", ServerLine::Joined(name("bob"))),
            ("left bob", ServerLine::Left(name("bob"))),
            (
                "users alice,bob",
                ServerLine::Users(vec![name("alice"), name("bob")]),
            ),
            ("users ", ServerLine::Users(vec![])),
            ("users", ServerLine::Users(vec![])),
            (
                "error: no such user: eve",
                ServerLine::Error("no such user: eve".into()),
            ),
            ("error:", ServerLine::Error(String::new())),
            ("history-end missed 3", ServerLine::Missed(3)),
            ("stored bob", ServerLine::Stored(name("bob"))),
            ("registered bob", ServerLine::Registered(name("bob"))),
            ("password changed", ServerLine::PasswordChanged),
            (
                "bye: server shutting down",
                ServerLine::Bye("server shutting down".into()),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.parse::<ServerLine>(), Ok(want), "{line:?}");
        }
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for line in [
            "",
            "hello",
            "welcome",
            "welcome al ice",
            "from bob hi",
            "from bob: \x1b[2J",
            "from bob  *: x",
            "from bob * x: y",
            "from bob #r: x",
            "from bob #r x: y",
            "joined #r",
            "joined r bob",
            "rooms #a",
            "rooms #a=x",
            "history #r 1 2026-11-28T18:00:00Z bob: x",
            "history #r 1 2026-11-28T18:00:00.000Z",
            "history-end #r done",
            "history-end #r",
        ] {
            assert!(line.parse::<ServerLine>().is_err(), "{line:?}");
        }
    }

    fn reason_strategy() -> impl Strategy<Value = String> {
        "[^\\n]{0,100}"
    }

    fn scope_strategy() -> impl Strategy<Value = Scope> {
        prop_oneof![
            Just(Scope::Direct),
            Just(Scope::Everyone),
            (room_strategy(), id_strategy()).prop_map(|(room, id)| Scope::Room { room, id }),
        ]
    }

    fn line_strategy() -> impl Strategy<Value = ServerLine> {
        prop_oneof![
            name_strategy().prop_map(ServerLine::Welcome),
            (name_strategy(), scope_strategy(), text_strategy()).prop_map(
                |(sender, scope, text)| ServerLine::From {
                    sender,
                    scope,
                    text
                }
            ),
            name_strategy().prop_map(ServerLine::Joined),
            name_strategy().prop_map(ServerLine::Left),
            (room_strategy(), name_strategy())
                .prop_map(|(room, name)| ServerLine::JoinedRoom { room, name }),
            (room_strategy(), name_strategy())
                .prop_map(|(room, name)| ServerLine::LeftRoom { room, name }),
            prop::collection::vec(name_strategy(), 0..6).prop_map(ServerLine::Users),
            (
                room_strategy(),
                prop::collection::vec(name_strategy(), 1..6)
            )
                .prop_map(|(room, names)| ServerLine::Names { room, names }),
            prop::collection::vec((room_strategy(), 1..100_000usize), 0..6)
                .prop_map(ServerLine::Rooms),
            (
                conv_strategy(),
                id_strategy(),
                0..=253_402_300_799_999i64,
                name_strategy(),
                text_strategy()
            )
                .prop_map(|(conv, id, ms, sender, text)| {
                    let time = Timestamp::from_unix_millis(ms).unwrap();
                    ServerLine::History(HistoryEntry {
                        conv,
                        id,
                        time,
                        sender,
                        text,
                    })
                }),
            (conv_strategy(), any::<bool>())
                .prop_map(|(conv, truncated)| ServerLine::HistoryEnd { conv, truncated }),
            (1..100_000usize).prop_map(ServerLine::Missed),
            name_strategy().prop_map(ServerLine::Stored),
            name_strategy().prop_map(ServerLine::Registered),
            Just(ServerLine::PasswordChanged),
            reason_strategy().prop_map(ServerLine::Error),
            reason_strategy().prop_map(ServerLine::Bye),
            governance_strategy(),
            sessions_strategy(),
        ]
    }

    fn sessions_strategy() -> impl Strategy<Value = ServerLine> {
        let to = prop_oneof![
            Just(Recipient::Everyone),
            name_strategy().prop_map(Recipient::User),
        ];
        prop_oneof![
            (to, text_strategy()).prop_map(|(to, text)| ServerLine::Sent { to, text }),
            (conv_strategy(), prop::option::of(id_strategy()))
                .prop_map(|(conv, id)| ServerLine::Read { conv, id }),
            (name_strategy(), text_strategy())
                .prop_map(|(name, text)| ServerLine::Away { name, text }),
            (name_strategy(), any::<u64>(), 1..100usize).prop_map(|(name, idle, sessions)| {
                ServerLine::Whois {
                    name,
                    idle,
                    sessions,
                }
            }),
            prop::option::of(text_strategy()).prop_map(ServerLine::Pong),
        ]
    }

    fn governance_strategy() -> impl Strategy<Value = ServerLine> {
        let role = prop::sample::select(vec![Role::Op, Role::Voiced]);
        let setter = prop_oneof![Just(Setter::Server), name_strategy().prop_map(Setter::User)];
        let topic = "\\PC{1,100}".prop_filter_map("not a topic", |s| TopicText::parse(&s).ok());
        let time =
            (0..=253_402_300_799_999i64).prop_map(|ms| Timestamp::from_unix_millis(ms).unwrap());
        let info = (setter.clone(), time, topic).prop_map(|(setter, time, text)| TopicInfo {
            setter,
            time,
            text,
        });
        let modes = prop::collection::vec(crate::governance::tests::mode_strategy(), 0..4)
            .prop_map(|set| {
                let mut modes = RoomModes::default();
                set.into_iter().for_each(|mode| {
                    modes.set(mode, true);
                });
                modes
            });
        prop_oneof![
            (
                room_strategy(),
                prop::collection::vec((role, name_strategy()), 0..5)
            )
                .prop_map(|(room, members)| ServerLine::Roles { room, members }),
            (room_strategy(), prop::option::of(info))
                .prop_map(|(room, topic)| ServerLine::Topic { room, topic }),
            (room_strategy(), modes).prop_map(|(room, modes)| ServerLine::Modes { room, modes }),
            (
                room_strategy(),
                setter.clone(),
                crate::governance::tests::change_strategy()
            )
                .prop_map(|(room, setter, change)| ServerLine::Mode {
                    room,
                    setter,
                    change
                }),
            (
                room_strategy(),
                name_strategy(),
                setter,
                prop::option::of(text_strategy())
            )
                .prop_map(|(room, name, setter, reason)| ServerLine::Kicked {
                    room,
                    name,
                    setter,
                    reason
                }),
            (
                room_strategy(),
                prop::collection::vec(name_strategy(), 0..5)
            )
                .prop_map(|(room, names)| ServerLine::Bans { room, names }),
            (room_strategy(), name_strategy())
                .prop_map(|(room, by)| ServerLine::Invited { room, by }),
            (name_strategy(), room_strategy())
                .prop_map(|(name, room)| ServerLine::InviteSent { name, room }),
            (room_strategy(), name_strategy())
                .prop_map(|(room, founder)| ServerLine::RoomRegistered { room, founder }),
        ]
    }

    #[test]
    fn writes_session_lines_byte_for_byte() {
        let cases = [
            (
                ServerLine::Sent {
                    to: Recipient::User(name("Bob")),
                    text: text("hi: there"),
                },
                "sent Bob: hi: there",
            ),
            (
                ServerLine::Sent {
                    to: Recipient::Everyone,
                    text: text("all"),
                },
                "sent *: all",
            ),
            (
                ServerLine::Read {
                    conv: Conv::Room(room("#rust")),
                    id: MessageId::new(42),
                },
                "read #rust 42",
            ),
            (
                ServerLine::Read {
                    conv: Conv::Direct(name("bob")),
                    id: None,
                },
                "read @bob",
            ),
            (
                ServerLine::Away {
                    name: name("bob"),
                    text: text("at lunch"),
                },
                "away bob: at lunch",
            ),
            (
                ServerLine::Whois {
                    name: name("bob"),
                    idle: 12,
                    sessions: 2,
                },
                "whois bob 12 2",
            ),
            (ServerLine::Pong(None), "pong"),
            (ServerLine::Pong(Some(text("t1"))), "pong t1"),
        ];
        for (line, want) in cases {
            assert_eq!(line.to_string(), want);
            assert_eq!(want.parse::<ServerLine>(), Ok(line), "{want:?}");
        }
    }

    #[test]
    fn writes_governance_lines_byte_for_byte() {
        use crate::RoomMode;
        let time: Timestamp = "2026-12-07T10:00:00.000Z".parse().unwrap();
        let cases = [
            (
                ServerLine::Roles {
                    room: room("#rust"),
                    members: vec![(Role::Op, name("alice")), (Role::Voiced, name("bob"))],
                },
                "roles #rust @alice,+bob",
            ),
            (
                ServerLine::Roles {
                    room: room("#rust"),
                    members: vec![],
                },
                "roles #rust",
            ),
            (
                ServerLine::Topic {
                    room: room("#rust"),
                    topic: Some(TopicInfo {
                        setter: Setter::User(name("alice")),
                        time,
                        text: TopicText::parse("Rust: fast").unwrap(),
                    }),
                },
                "topic #rust alice 2026-12-07T10:00:00.000Z: Rust: fast",
            ),
            (
                ServerLine::Topic {
                    room: room("#rust"),
                    topic: None,
                },
                "topic #rust",
            ),
            (
                ServerLine::Modes {
                    room: room("#rust"),
                    modes: "+tm".parse().unwrap(),
                },
                "mode #rust +mt",
            ),
            (
                ServerLine::Modes {
                    room: room("#rust"),
                    modes: RoomModes::default(),
                },
                "mode #rust +",
            ),
            (
                ServerLine::Mode {
                    room: room("#rust"),
                    setter: Setter::User(name("alice")),
                    change: ModeChange::Flag {
                        on: false,
                        mode: RoomMode::TopicLocked,
                    },
                },
                "mode #rust alice -t",
            ),
            (
                ServerLine::Mode {
                    room: room("#rust"),
                    setter: Setter::Server,
                    change: ModeChange::Role {
                        on: true,
                        role: Role::Op,
                        name: name("bob"),
                    },
                },
                "mode #rust * +o bob",
            ),
            (
                ServerLine::Mode {
                    room: room("#rust"),
                    setter: Setter::User(name("alice")),
                    change: ModeChange::Ban {
                        on: true,
                        name: name("eve"),
                    },
                },
                "mode #rust alice +b eve",
            ),
            (
                ServerLine::Kicked {
                    room: room("#rust"),
                    name: name("eve"),
                    setter: Setter::Server,
                    reason: Some(text("banned")),
                },
                "kicked #rust eve *: banned",
            ),
            (
                ServerLine::Kicked {
                    room: room("#rust"),
                    name: name("eve"),
                    setter: Setter::User(name("alice")),
                    reason: None,
                },
                "kicked #rust eve alice:",
            ),
            (
                ServerLine::Bans {
                    room: room("#rust"),
                    names: vec![name("a"), name("b")],
                },
                "bans #rust a,b",
            ),
            (
                ServerLine::Bans {
                    room: room("#rust"),
                    names: vec![],
                },
                "bans #rust",
            ),
            (
                ServerLine::Invited {
                    room: room("#rust"),
                    by: name("alice"),
                },
                "invited #rust alice",
            ),
            (
                ServerLine::InviteSent {
                    name: name("bob"),
                    room: room("#rust"),
                },
                "invite sent bob #rust",
            ),
            (
                ServerLine::RoomRegistered {
                    room: room("#rust"),
                    founder: name("alice"),
                },
                "room-registered #rust alice",
            ),
        ];
        for (line, want) in cases {
            assert_eq!(line.to_string(), want);
            assert_eq!(want.parse::<ServerLine>(), Ok(line), "{want:?}");
        }
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(line in line_strategy()) {
            prop_assert_eq!(line.to_string().parse::<ServerLine>(), Ok(line));
        }

        #[test]
        fn parse_never_panics(s in "(?s).{0,300}") {
            let _ = s.parse::<ServerLine>();
        }

        #[test]
        fn encode_is_the_displayed_line(
            sender in name_strategy(),
            scope in scope_strategy(),
            text in text_strategy(),
        ) {
            let line = FromLine { sender: &sender, scope: &scope, text: &text };
            prop_assert_eq!(line.encode(), crate::encode_line(line));
        }
    }
}
