//! What the user typed: text for the current buffer, or a `/command`. One table lists the
//! commands for the parser, the F1 help and `docs/client.md`. Command names are
//! case-insensitive (`/QUIT` quits); `//text` sends `/text` as text. A room command may
//! leave its room out, as in WeeChat: the app then uses the buffer shown, if it is a room.

use chat_proto::{
    ClientLine, MAX_HISTORY_LINES, MessageText, Password, Recipient, Role, RoomMode, RoomName,
    TopicText, UserName, governance,
};

/// A typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Text for the current buffer.
    Text(String),
    /// A command.
    Command(UserCommand),
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Show the help.
    Help,
    /// Leave, with the message typed after `/quit`, if any. The protocol has no quit
    /// reason, so the message goes nowhere but our own log.
    Quit(Option<String>),
    /// Join a room and switch to its buffer.
    Join(RoomName),
    /// Leave a room (the current one without an argument).
    Part(Option<RoomName>),
    /// Open a conversation with one person and switch to it; with text, send it there.
    Query(UserName, Option<String>),
    /// Close the current buffer (leaving its room).
    Close,
    /// Send one message elsewhere without switching.
    Msg(Recipient, String),
    /// Send an action (`/me waves`) to the current buffer.
    Me(String),
    /// List the rooms.
    Rooms,
    /// List a room's members (the current room without an argument).
    Names(Option<RoomName>),
    /// Refresh who is online.
    Who,
    /// Fetch the current buffer's history: the latest n (50 without an argument).
    History(Option<u16>),
    /// Switch to a buffer by number or name.
    Buffer(String),
    /// Search the current buffer; without text, the next older match.
    Search(Option<String>),
    /// Clear the current buffer.
    Clear,
    /// Register our name.
    Register(Password),
    /// Change our password.
    SetPassword(Password),
    /// Log in again with this password, after a login was refused for want of one.
    Login(Password),
    /// Drop the connection and connect again now.
    Reconnect,
    /// Toggle mouse wheel scrolling.
    Mouse,
    /// Govern a room: the one named, or without one the current buffer's.
    Room(Option<RoomName>, RoomAction),
    /// Disconnect a user, with a reason if given (server operators).
    Kill(UserName, Option<MessageText>),
    /// Bar an account from logging in (`true`), or let it back (server operators).
    Suspend(UserName, bool),
    /// Mark ourselves away with a message, or back without one.
    Away(Option<MessageText>),
    /// Ask how long someone has been idle, on how many devices, and if they are away.
    Whois(UserName),
}

/// What a room command does, once its room is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoomAction {
    /// `/op`, `/deop`, `/voice`, `/devoice`.
    SetRole {
        /// The member.
        name: UserName,
        /// The role.
        role: Role,
        /// Given or taken.
        on: bool,
    },
    /// Ask for the topic, or set it.
    Topic(Option<TopicText>),
    /// `/topic -delete`: clear the topic.
    ClearTopic,
    /// Ask for the modes (no changes), or change them.
    Mode(Vec<(bool, RoomMode)>),
    /// Remove a member.
    Kick {
        /// The member.
        name: UserName,
        /// Why, if given.
        reason: Option<MessageText>,
    },
    /// `/ban` (`true`) or `/unban`.
    Ban {
        /// The name.
        name: UserName,
        /// Banned or let back.
        on: bool,
    },
    /// List the bans.
    Bans,
    /// Let someone join, once.
    Invite(UserName),
    /// Keep the room, with us as its founder.
    Register,
    /// Stop keeping the room.
    Unregister,
}

impl RoomAction {
    /// The command's name, for messages about it.
    pub fn command(&self) -> &'static str {
        match self {
            Self::SetRole { role, on, .. } => match (role, on) {
                (Role::Op, true) => "op",
                (Role::Op, false) => "deop",
                (Role::Voiced, true) => "voice",
                (Role::Voiced, false) => "devoice",
            },
            Self::Topic(_) | Self::ClearTopic => "topic",
            Self::Mode(_) => "mode",
            Self::Kick { .. } => "kick",
            Self::Ban { on: true, .. } => "ban",
            Self::Ban { on: false, .. } => "unban",
            Self::Bans => "bans",
            Self::Invite(_) => "invite",
            Self::Register => "register-room",
            Self::Unregister => "unregister-room",
        }
    }

    /// The line that does this in `room`.
    pub fn line(self, room: RoomName) -> ClientLine {
        match self {
            Self::SetRole { name, role, on } => ClientLine::SetRole {
                room,
                name,
                role,
                on,
            },
            Self::Topic(text) => ClientLine::Topic { room, text },
            Self::ClearTopic => ClientLine::ClearTopic(room),
            Self::Mode(changes) => ClientLine::Mode { room, changes },
            Self::Kick { name, reason } => ClientLine::Kick { room, name, reason },
            Self::Ban { name, on } => ClientLine::Ban { room, name, on },
            Self::Bans => ClientLine::Bans(room),
            Self::Invite(name) => ClientLine::Invite { name, room },
            Self::Register => ClientLine::RegisterRoom(room),
            Self::Unregister => ClientLine::UnregisterRoom(room),
        }
    }
}

/// A row of the command table.
#[derive(Debug)]
pub struct CommandInfo {
    /// The name, without the slash.
    pub name: &'static str,
    /// Other names for it.
    pub aliases: &'static [&'static str],
    /// Its arguments, as the help shows them.
    pub args: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Every command, in the order the help lists them.
#[rustfmt::skip]
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo { name: "join", aliases: &["j"], args: "#room", help: "join a room and open its buffer (with its recent history); the # may be left out" },
    CommandInfo { name: "part", aliases: &[], args: "[#room]", help: "leave a room (the current one)" },
    CommandInfo { name: "query", aliases: &["to", "q"], args: "name [text]", help: "open a conversation with name (and send text)" },
    CommandInfo { name: "close", aliases: &[], args: "", help: "close the current buffer (leaving its room)" },
    CommandInfo { name: "msg", aliases: &[], args: "name|#room|* text", help: "send one message elsewhere" },
    CommandInfo { name: "me", aliases: &[], args: "text", help: "an action: * alice waves" },
    CommandInfo { name: "buffer", aliases: &[], args: "n|name", help: "switch to a buffer" },
    CommandInfo { name: "names", aliases: &[], args: "[#room]", help: "who is in a room (the current one)" },
    CommandInfo { name: "rooms", aliases: &[], args: "", help: "every room and its member count" },
    CommandInfo { name: "who", aliases: &[], args: "", help: "who is online" },
    CommandInfo { name: "whois", aliases: &[], args: "name", help: "how long name has been idle, on how many devices, if away" },
    CommandInfo { name: "away", aliases: &[], args: "[text]", help: "mark yourself away with text; without, back again" },
    CommandInfo { name: "topic", aliases: &[], args: "[#room] [text|-delete]", help: "show the room's topic, set it, or clear it" },
    CommandInfo { name: "mode", aliases: &[], args: "[#room] [±imst]", help: "show or change the room's modes" },
    CommandInfo { name: "op", aliases: &[], args: "[#room] name", help: "make name an op of the room (@)" },
    CommandInfo { name: "deop", aliases: &[], args: "[#room] name", help: "take op from name" },
    CommandInfo { name: "voice", aliases: &[], args: "[#room] name", help: "let name speak in a moderated room (+)" },
    CommandInfo { name: "devoice", aliases: &[], args: "[#room] name", help: "take voice from name" },
    CommandInfo { name: "kick", aliases: &[], args: "[#room] name [reason]", help: "remove name from the room" },
    CommandInfo { name: "ban", aliases: &[], args: "[#room] name", help: "keep name out of the room (kicks them)" },
    CommandInfo { name: "unban", aliases: &[], args: "[#room] name", help: "lift a ban" },
    CommandInfo { name: "bans", aliases: &[], args: "[#room]", help: "the room's bans" },
    CommandInfo { name: "invite", aliases: &[], args: "name [#room]", help: "let name join the room, once" },
    CommandInfo { name: "register-room", aliases: &[], args: "[#room]", help: "keep the room, with you as founder" },
    CommandInfo { name: "unregister-room", aliases: &[], args: "[#room]", help: "stop keeping the room (founder)" },
    CommandInfo { name: "kill", aliases: &[], args: "name [reason]", help: "disconnect name (server operators)" },
    CommandInfo { name: "suspend", aliases: &[], args: "name", help: "bar an account from logging in (operators)" },
    CommandInfo { name: "unsuspend", aliases: &[], args: "name", help: "let a suspended account back (operators)" },
    CommandInfo { name: "history", aliases: &[], args: "[n]", help: "the latest n messages of this buffer (50)" },
    CommandInfo { name: "search", aliases: &[], args: "text", help: "find text in this buffer; F3 and F4 move, Esc ends" },
    CommandInfo { name: "clear", aliases: &[], args: "", help: "clear this buffer" },
    CommandInfo { name: "register", aliases: &[], args: "password", help: "register your name (shown masked)" },
    CommandInfo { name: "password", aliases: &[], args: "new-password", help: "change your password (shown masked)" },
    CommandInfo { name: "login", aliases: &[], args: "password", help: "log in with your password (masked)" },
    CommandInfo { name: "reconnect", aliases: &[], args: "", help: "connect again now" },
    CommandInfo { name: "mouse", aliases: &[], args: "", help: "mouse wheel scrolling on/off (F2)" },
    CommandInfo { name: "help", aliases: &[], args: "", help: "this help (F1)" },
    CommandInfo { name: "quit", aliases: &["exit"], args: "[message]", help: "leave; the message is not sent (the protocol has no quit reason)" },
];

/// Commands whose name argument is a member of their room: Tab offers that room's
/// members rather than everyone online.
pub const MEMBER_COMMANDS: [&str; 5] = ["op", "deop", "voice", "devoice", "kick"];

/// Commands whose argument is a password: masked on screen, never in the input history.
pub const SECRET_COMMANDS: [&str; 3] = ["register", "password", "login"];

/// Understands a typed line. `Err` is the message to show.
pub fn parse(typed: &str) -> Result<Typed, String> {
    let Some(rest) = typed.strip_prefix('/') else {
        return Ok(Typed::Text(typed.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Typed::Text(rest.to_owned()));
    }
    let (name, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let lower = name.to_lowercase();
    let Some(info) = lookup(&lower) else {
        return Err(format!(
            "unknown command /{name}; F1 or /help lists them (// sends a line starting with /)"
        ));
    };
    let arg = if SECRET_COMMANDS.contains(&info.name) {
        arg
    } else {
        arg.trim()
    };
    let usage = || usage_of(info);
    let command = match info.name {
        "help" => UserCommand::Help,
        "quit" => UserCommand::Quit((!arg.is_empty()).then(|| arg.to_owned())),
        "join" if arg.is_empty() => return Err(usage()),
        "join" => {
            // WeeChat's habit: `/join rust` means `#rust`.
            let room = if arg.starts_with('#') {
                arg.to_owned()
            } else {
                format!("#{arg}")
            };
            UserCommand::Join(RoomName::parse(&room).map_err(|e| format!("/{}: {e}", info.name))?)
        }
        "part" => UserCommand::Part(optional_room(info, arg)?),
        "query" if arg.is_empty() => return Err(usage()),
        "query" => {
            let (name, text) = match arg.split_once(char::is_whitespace) {
                Some((name, text)) if !text.trim().is_empty() => {
                    (name, Some(text.trim().to_owned()))
                }
                _ => (arg, None),
            };
            let name = UserName::parse(name).map_err(|e| format!("/{}: {e}", info.name))?;
            UserCommand::Query(name, text)
        }
        "close" => UserCommand::Close,
        "msg" => {
            let (to, text) = arg.split_once(char::is_whitespace).ok_or_else(usage)?;
            let to = to.parse::<Recipient>().map_err(|e| format!("/msg: {e}"))?;
            UserCommand::Msg(to, text.trim().to_owned())
        }
        "me" if arg.is_empty() => return Err(usage()),
        "me" => UserCommand::Me(arg.to_owned()),
        "buffer" if arg.is_empty() => return Err(usage()),
        "buffer" => UserCommand::Buffer(arg.to_owned()),
        "names" => UserCommand::Names(optional_room(info, arg)?),
        "rooms" => UserCommand::Rooms,
        "who" => UserCommand::Who,
        "whois" => UserCommand::Whois(only_name(info, arg)?),
        "away" => UserCommand::Away(
            (!arg.is_empty())
                .then(|| MessageText::parse(arg).map_err(|e| format!("/away: {e}")))
                .transpose()?,
        ),
        "history" if arg.is_empty() => UserCommand::History(None),
        "history" => match arg.parse::<u16>() {
            Ok(n) if (1..=MAX_HISTORY_LINES).contains(&n) => UserCommand::History(Some(n)),
            _ => {
                return Err(format!(
                    "/history: give a count from 1 to {MAX_HISTORY_LINES}"
                ));
            }
        },
        "search" => UserCommand::Search((!arg.is_empty()).then(|| arg.to_owned())),
        "clear" => UserCommand::Clear,
        "register" => {
            UserCommand::Register(Password::parse_new(arg).map_err(|e| format!("/register: {e}"))?)
        }
        "password" => UserCommand::SetPassword(
            Password::parse_new(arg).map_err(|e| format!("/password: {e}"))?,
        ),
        "login" => UserCommand::Login(Password::parse(arg).map_err(|e| format!("/login: {e}"))?),
        "reconnect" => UserCommand::Reconnect,
        "mouse" => UserCommand::Mouse,
        "kill" => {
            let (name, reason) = name_and_reason(info, arg)?;
            UserCommand::Kill(name, reason)
        }
        "suspend" | "unsuspend" => {
            UserCommand::Suspend(only_name(info, arg)?, info.name == "suspend")
        }
        _ => {
            let (room, action) = room_command(info, arg)?;
            UserCommand::Room(room, action)
        }
    };
    Ok(Typed::Command(command))
}

/// A room command: its room if named, and what it does.
fn room_command(info: &CommandInfo, arg: &str) -> Result<(Option<RoomName>, RoomAction), String> {
    let error = |e: chat_proto::ParseError| format!("/{}: {e}", info.name);
    if info.name == "invite" {
        // The one whose room comes last, as in IRC.
        let (name, room) = split_word(arg);
        return Ok((
            optional_room(info, room)?,
            RoomAction::Invite(only_name(info, name)?),
        ));
    }
    let (room, rest) = if arg.starts_with('#') {
        let (room, rest) = split_word(arg);
        (Some(RoomName::parse(room).map_err(error)?), rest)
    } else {
        (None, arg)
    };
    let role = |role, on| -> Result<RoomAction, String> {
        Ok(RoomAction::SetRole {
            name: only_name(info, rest)?,
            role,
            on,
        })
    };
    let action = match info.name {
        "op" => role(Role::Op, true)?,
        "deop" => role(Role::Op, false)?,
        "voice" => role(Role::Voiced, true)?,
        "devoice" => role(Role::Voiced, false)?,
        "topic" if rest.is_empty() => RoomAction::Topic(None),
        "topic" if rest == chat_proto::CLEAR_TOPIC => RoomAction::ClearTopic,
        "topic" => RoomAction::Topic(Some(TopicText::parse(rest).map_err(error)?)),
        "mode" if rest.is_empty() => RoomAction::Mode(Vec::new()),
        "mode" => RoomAction::Mode(governance::parse_flag_changes(rest).map_err(error)?),
        "kick" => {
            let (name, reason) = name_and_reason(info, rest)?;
            RoomAction::Kick { name, reason }
        }
        "ban" | "unban" => RoomAction::Ban {
            name: only_name(info, rest)?,
            on: info.name == "ban",
        },
        "bans" | "register-room" | "unregister-room" if !rest.is_empty() => {
            return Err(usage_of(info));
        }
        "bans" => RoomAction::Bans,
        "register-room" => RoomAction::Register,
        "unregister-room" => RoomAction::Unregister,
        _ => unreachable!("every command in the table is handled"),
    };
    Ok((room, action))
}

/// The first word of `arg` and the rest, trimmed.
fn split_word(arg: &str) -> (&str, &str) {
    arg.split_once(char::is_whitespace)
        .map_or((arg, ""), |(word, rest)| (word, rest.trim_start()))
}

fn usage_of(info: &CommandInfo) -> String {
    format!("usage: /{} {}", info.name, info.args)
}

/// `arg` as a room, or none when empty.
fn optional_room(info: &CommandInfo, arg: &str) -> Result<Option<RoomName>, String> {
    (!arg.is_empty())
        .then(|| RoomName::parse(arg).map_err(|e| format!("/{}: {e}", info.name)))
        .transpose()
}

/// `arg` as exactly one name.
fn only_name(info: &CommandInfo, arg: &str) -> Result<UserName, String> {
    match split_word(arg) {
        ("", _) => Err(usage_of(info)),
        (name, "") => UserName::parse(name).map_err(|e| format!("/{}: {e}", info.name)),
        _ => Err(usage_of(info)),
    }
}

/// A name, then a reason if any.
fn name_and_reason(
    info: &CommandInfo,
    arg: &str,
) -> Result<(UserName, Option<MessageText>), String> {
    let (name, reason) = split_word(arg);
    let name = only_name(info, name)?;
    let reason = (!reason.is_empty())
        .then(|| MessageText::parse(reason).map_err(|e| format!("/{}: {e}", info.name)))
        .transpose()?;
    Ok((name, reason))
}

/// The table row for a lower-case command name or alias.
pub fn lookup(name: &str) -> Option<&'static CommandInfo> {
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
}

/// Whether `typed` is a command whose argument is a secret; if so, the byte offset where
/// the secret starts.
pub fn secret_start(typed: &str) -> Option<usize> {
    let rest = typed.strip_prefix('/')?;
    let (name, _) = rest.split_once(' ')?;
    SECRET_COMMANDS
        .contains(&name.to_lowercase().as_str())
        .then_some(name.len() + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(typed: &str) -> UserCommand {
        match parse(typed) {
            Ok(Typed::Command(c)) => c,
            other => panic!("{typed:?} gave {other:?}"),
        }
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(command("/QUIT"), UserCommand::Quit(None));
        assert_eq!(command("/Exit"), UserCommand::Quit(None));
        assert_eq!(
            command("/JOIN #Rust"),
            UserCommand::Join(RoomName::parse("#Rust").unwrap())
        );
        assert_eq!(
            command("/to bob"),
            UserCommand::Query(UserName::parse("bob").unwrap(), None)
        );
    }

    /// Issue 21, features: WeeChat's habits.
    #[test]
    fn weechat_habits_are_understood() {
        let rust = UserCommand::Join(RoomName::parse("#rust").unwrap());
        assert_eq!(command("/j #rust"), rust);
        assert_eq!(command("/join rust"), rust);
        assert_eq!(command("/j rust"), rust);
        assert_eq!(
            command("/q bob see you at 10:30"),
            UserCommand::Query(
                UserName::parse("bob").unwrap(),
                Some("see you at 10:30".to_owned())
            )
        );
        assert_eq!(
            command("/query bob "),
            UserCommand::Query(UserName::parse("bob").unwrap(), None)
        );
        assert_eq!(
            command("/quit  gone fishing "),
            UserCommand::Quit(Some("gone fishing".to_owned()))
        );
        assert_eq!(
            command("/exit bye"),
            UserCommand::Quit(Some("bye".to_owned()))
        );
    }

    #[test]
    fn text_is_text_whatever_colons_it_has() {
        for text in [
            "http://example.com is cool",
            "10:30 works for me",
            "bob: hi",
        ] {
            assert_eq!(parse(text), Ok(Typed::Text(text.to_owned())));
        }
        assert_eq!(parse("//etc/passwd"), Ok(Typed::Text("/etc/passwd".into())));
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert_eq!(parse("/join"), Err("usage: /join #room".into()));
        assert_eq!(parse("/join #"), Err("/join: invalid room \"#\"".into()));
        assert!(
            parse("/frob")
                .unwrap_err()
                .starts_with("unknown command /frob")
        );
        assert!(parse("/history 0").is_err());
        assert!(parse("/password short").unwrap_err().contains("too weak"));
        assert_eq!(
            command("/msg #rust  hello there "),
            UserCommand::Msg(
                Recipient::Room(RoomName::parse("#rust").unwrap()),
                "hello there".into()
            )
        );
    }

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).unwrap()
    }

    fn name(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    #[test]
    fn room_commands_take_their_room_or_leave_it_out() {
        let role = |room: Option<&str>, n: &str, role, on| {
            UserCommand::Room(
                room.map(self::room),
                RoomAction::SetRole {
                    name: name(n),
                    role,
                    on,
                },
            )
        };
        let in_room = |r: Option<&str>, action| UserCommand::Room(r.map(room), action);
        let cases = [
            ("/op #rust bob", role(Some("#rust"), "bob", Role::Op, true)),
            ("/op bob", role(None, "bob", Role::Op, true)),
            ("/DEOP  bob ", role(None, "bob", Role::Op, false)),
            (
                "/voice #rust 张三",
                role(Some("#rust"), "张三", Role::Voiced, true),
            ),
            ("/devoice bob", role(None, "bob", Role::Voiced, false)),
            ("/topic", in_room(None, RoomAction::Topic(None))),
            ("/topic -delete", in_room(None, RoomAction::ClearTopic)),
            (
                "/topic #rust -delete",
                in_room(Some("#rust"), RoomAction::ClearTopic),
            ),
            (
                "/topic #rust",
                in_room(Some("#rust"), RoomAction::Topic(None)),
            ),
            (
                "/topic Rust: the  language",
                in_room(
                    None,
                    RoomAction::Topic(Some(TopicText::parse("Rust: the  language").unwrap())),
                ),
            ),
            (
                "/topic #rust hello",
                in_room(
                    Some("#rust"),
                    RoomAction::Topic(Some(TopicText::parse("hello").unwrap())),
                ),
            ),
            ("/mode", in_room(None, RoomAction::Mode(Vec::new()))),
            (
                "/mode #rust +m-i",
                in_room(
                    Some("#rust"),
                    RoomAction::Mode(vec![
                        (true, RoomMode::Moderated),
                        (false, RoomMode::InviteOnly),
                    ]),
                ),
            ),
            (
                "/kick eve",
                in_room(
                    None,
                    RoomAction::Kick {
                        name: name("eve"),
                        reason: None,
                    },
                ),
            ),
            (
                "/kick #rust eve  too  loud ",
                in_room(
                    Some("#rust"),
                    RoomAction::Kick {
                        name: name("eve"),
                        reason: Some(MessageText::parse("too  loud").unwrap()),
                    },
                ),
            ),
            (
                "/ban eve",
                in_room(
                    None,
                    RoomAction::Ban {
                        name: name("eve"),
                        on: true,
                    },
                ),
            ),
            (
                "/unban #rust eve",
                in_room(
                    Some("#rust"),
                    RoomAction::Ban {
                        name: name("eve"),
                        on: false,
                    },
                ),
            ),
            ("/bans", in_room(None, RoomAction::Bans)),
            ("/bans #rust", in_room(Some("#rust"), RoomAction::Bans)),
            (
                "/invite bob",
                in_room(None, RoomAction::Invite(name("bob"))),
            ),
            (
                "/invite bob #rust",
                in_room(Some("#rust"), RoomAction::Invite(name("bob"))),
            ),
            ("/register-room", in_room(None, RoomAction::Register)),
            (
                "/Register-Room #rust",
                in_room(Some("#rust"), RoomAction::Register),
            ),
            ("/unregister-room", in_room(None, RoomAction::Unregister)),
            (
                "/unregister-room #rust",
                in_room(Some("#rust"), RoomAction::Unregister),
            ),
        ];
        for (typed, want) in cases {
            assert_eq!(command(typed), want, "{typed}");
        }
    }

    #[test]
    fn operator_commands_name_a_user() {
        assert_eq!(command("/kill eve"), UserCommand::Kill(name("eve"), None));
        assert_eq!(
            command("/kill eve spam, lots"),
            UserCommand::Kill(name("eve"), Some(MessageText::parse("spam, lots").unwrap()))
        );
        assert_eq!(
            command("/suspend eve"),
            UserCommand::Suspend(name("eve"), true)
        );
        assert_eq!(
            command("/unsuspend eve"),
            UserCommand::Suspend(name("eve"), false)
        );
    }

    #[test]
    fn away_takes_a_message_or_none_and_whois_one_name() {
        assert_eq!(command("/away"), UserCommand::Away(None));
        assert_eq!(command("/AWAY  "), UserCommand::Away(None));
        assert_eq!(
            command("/away  out for lunch, back at 2 "),
            UserCommand::Away(Some(
                MessageText::parse("out for lunch, back at 2").unwrap()
            ))
        );
        assert_eq!(command("/whois 张三"), UserCommand::Whois(name("张三")));
        assert_eq!(parse("/whois"), Err("usage: /whois name".into()));
        assert_eq!(parse("/whois bob carol"), Err("usage: /whois name".into()));
        assert!(
            parse("/away \u{1b}[2J")
                .unwrap_err()
                .starts_with("/away: control")
        );
    }

    #[test]
    fn room_commands_say_what_is_wrong() {
        for (typed, want) in [
            ("/op", "usage: /op [#room] name"),
            ("/op #rust", "usage: /op [#room] name"),
            ("/op bob carol", "usage: /op [#room] name"),
            ("/kick", "usage: /kick [#room] name [reason]"),
            ("/ban #rust", "usage: /ban [#room] name"),
            ("/invite", "usage: /invite name [#room]"),
            ("/bans #rust now", "usage: /bans [#room]"),
            ("/suspend", "usage: /suspend name"),
            ("/kill", "usage: /kill name [reason]"),
            ("/op #", "/op: invalid room \"#\""),
            ("/invite bob rust", "/invite: invalid room \"rust\""),
            (
                "/mode +q",
                "/mode: invalid modes \"+q\" (expected + or - and letters of imst)",
            ),
            (
                "/mode mi",
                "/mode: invalid modes \"mi\" (expected + or - and letters of imst)",
            ),
        ] {
            assert_eq!(parse(typed), Err(want.to_owned()), "{typed}");
        }
        let long = format!("/topic {}", "x".repeat(391));
        assert_eq!(
            parse(&long),
            Err("/topic: topic is longer than 390 bytes".into())
        );
        assert!(
            parse("/kick eve \u{1b}[2J")
                .unwrap_err()
                .starts_with("/kick: control")
        );
    }

    #[test]
    fn room_actions_become_their_lines() {
        let line = |typed: &str| match command(typed) {
            UserCommand::Room(room, action) => action
                .line(room.unwrap_or_else(|| self::room("#here")))
                .to_string(),
            other => panic!("{other:?}"),
        };
        for (typed, want) in [
            ("/op bob", "/op #here bob"),
            ("/devoice #rust bob", "/devoice #rust bob"),
            ("/topic", "/topic #here"),
            ("/topic new one", "/topic #here new one"),
            ("/mode", "/mode #here"),
            ("/mode -t+mi", "/mode #here -t+mi"),
            ("/kick eve", "/kick #here eve"),
            ("/kick eve bye now", "/kick #here eve bye now"),
            ("/unban eve", "/unban #here eve"),
            ("/bans", "/bans #here"),
            ("/invite bob", "/invite bob #here"),
            ("/register-room", "/register-room #here"),
            ("/unregister-room #rust", "/unregister-room #rust"),
        ] {
            assert_eq!(line(typed), want, "{typed}");
        }
        for typed in [
            "/op x",
            "/mode +s",
            "/kick x",
            "/ban x",
            "/unban x",
            "/bans",
            "/invite x",
        ] {
            let UserCommand::Room(_, action) = command(typed) else {
                panic!("{typed}")
            };
            assert_eq!(
                Some(action.command()),
                typed[1..].split(' ').next(),
                "{typed}"
            );
        }
    }

    #[test]
    fn secrets_are_found_in_any_case() {
        assert_eq!(secret_start("/register hunter22"), Some(10));
        assert_eq!(secret_start("/PASSWORD x"), Some(10));
        assert_eq!(secret_start("/Login x"), Some(7));
        assert_eq!(secret_start("/who x"), None);
        assert_eq!(secret_start("bob: /register x"), None);
    }
}
