//! [`ClientLine`]: the lines a client sends once it is logged in.

use std::fmt;
use std::str::FromStr;

use zeroize::Zeroize;

use crate::{
    Conv, EVERYONE, HistoryRange, MessageId, MessageText, ParseError, Password, RoomName, UserName,
};

/// One line from a logged-in client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientLine {
    /// `<dest>[,<dest>...]: <text>`: send `text` to each destination.
    Send {
        /// The destinations in the order written; may repeat (the server delivers once).
        to: Vec<Recipient>,
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
    /// `/history <conv> [n | after <id>]`: ask for stored messages.
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
}

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
pub fn parse_recipients(list: &str) -> Result<Vec<Recipient>, ParseError> {
    let to = list
        .split(',')
        .map(str::trim)
        .filter(|dest| !dest.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<_>, _>>()?;
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
        _ => Err(ParseError::UnknownCommand(command.to_owned())),
    }
}

fn parse_history(args: &[&str]) -> Result<ClientLine, ParseError> {
    const USAGE: &str = "/history <#room|@name> [<n> | after <id>]";
    let (conv, range) = match *args {
        [conv] => (conv, HistoryRange::default()),
        [conv, n] => {
            let count = || ParseError::HistoryCount(n.to_owned());
            let n = n.parse::<u16>().map_err(|_| count())?;
            (conv, HistoryRange::latest(n).ok_or_else(count)?)
        }
        [conv, "after", id] => (conv, HistoryRange::After(id.parse::<MessageId>()?)),
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
            },
            Self::Register(password) => write!(f, "/register {password}"),
            Self::SetPassword(password) => write!(f, "/password {password}"),
        }
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
            to,
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
            ("/whois bob", ParseError::UnknownCommand("/whois".into())),
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
                ParseError::Usage("/history <#room|@name> [<n> | after <id>]"),
            ),
            ("/history rust", ParseError::InvalidConv("rust".into())),
            ("/history #rust 0", ParseError::HistoryCount("0".into())),
            (
                "/history #rust 1001",
                ParseError::HistoryCount("1001".into()),
            ),
            ("/history #rust -1", ParseError::HistoryCount("-1".into())),
            ("/history #rust after x", ParseError::InvalidId("x".into())),
            (
                "/history #rust before 3",
                ParseError::Usage("/history <#room|@name> [<n> | after <id>]"),
            ),
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
            (prop::collection::vec(recipient, 1..5), text_strategy())
                .prop_map(|(to, text)| ClientLine::Send { to, text }),
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
