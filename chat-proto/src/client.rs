//! [`ClientLine`]: the lines a client sends once it is logged in.

use std::fmt;
use std::str::FromStr;

use crate::{EVERYONE, MessageText, ParseError, UserName};

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
}

/// One destination of a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// `*`: everyone online except the sender.
    Everyone,
    /// One user by name.
    User(UserName),
}

impl FromStr for Recipient {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == EVERYONE {
            return Ok(Self::Everyone);
        }
        UserName::parse(s)
            .map(Self::User)
            .map_err(|_| ParseError::InvalidDestination(s.to_owned()))
    }
}

impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Everyone => f.write_str(EVERYONE),
            Self::User(name) => name.fmt(f),
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

impl FromStr for ClientLine {
    type Err = ParseError;

    fn from_str(line: &str) -> Result<Self, Self::Err> {
        let line = line.trim();
        if line.is_empty() {
            return Err(ParseError::EmptyLine);
        }
        if line.starts_with('/') {
            return match line {
                "/who" => Ok(Self::Who),
                other => {
                    let command = other.split_whitespace().next().unwrap_or(other);
                    Err(ParseError::UnknownCommand(command.to_owned()))
                }
            };
        }
        let (to, text) = line.split_once(':').ok_or(ParseError::MissingSeparator)?;
        Ok(Self::Send {
            to: parse_recipients(to)?,
            text: MessageText::parse(text)?,
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
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(name: &str) -> Recipient {
        Recipient::User(UserName::parse(name).unwrap())
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

    fn line_strategy() -> impl Strategy<Value = ClientLine> {
        let recipient = prop_oneof![
            1 => Just(Recipient::Everyone),
            4 => name_strategy().prop_map(Recipient::User),
        ];
        prop_oneof![
            Just(ClientLine::Who),
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
    }
}
