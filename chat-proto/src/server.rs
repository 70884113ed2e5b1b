//! [`ServerLine`]: the lines the server sends.

use std::fmt;
use std::str::FromStr;

use crate::{MessageText, ParseError, UserName};

/// One line from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerLine {
    /// `welcome <name>`: the login was accepted; always the first line after login.
    Welcome(UserName),
    /// `from <sender>: <text>`: a message addressed to the reader.
    From {
        /// Who sent it.
        sender: UserName,
        /// What they wrote.
        text: MessageText,
    },
    /// `joined <name>`: someone else logged in.
    Joined(UserName),
    /// `left <name>`: someone else went away.
    Left(UserName),
    /// `users <a>,<b>,...`: everyone online, sorted, the reader included.
    Users(Vec<UserName>),
    /// `error: <reason>`: a line was refused, or the connection is about to close.
    Error(String),
    /// `bye: <reason>`: the server is closing this connection on purpose.
    Bye(String),
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
            let (sender, text) = rest.split_once(':').ok_or(ParseError::MissingSeparator)?;
            return Ok(Self::From {
                sender: UserName::parse(sender)?,
                text: MessageText::parse(text)?,
            });
        }
        if line == "users" {
            return Ok(Self::Users(Vec::new()));
        }
        let (kind, arg) = line.split_once(' ').ok_or(ParseError::UnknownServerLine)?;
        match kind {
            "welcome" => Ok(Self::Welcome(UserName::parse(arg)?)),
            "joined" => Ok(Self::Joined(UserName::parse(arg)?)),
            "left" => Ok(Self::Left(UserName::parse(arg)?)),
            "users" => Ok(Self::Users(
                arg.split(',')
                    .filter(|name| !name.is_empty())
                    .map(UserName::parse)
                    .collect::<Result<_, _>>()?,
            )),
            _ => Err(ParseError::UnknownServerLine),
        }
    }
}

/// A `from <sender>: <text>` line that borrows its parts, so a server can format a
/// message without first cloning the sender's name into a [`ServerLine`].
#[derive(Debug, Clone, Copy)]
pub struct FromLine<'a> {
    /// Who sent it.
    pub sender: &'a UserName,
    /// What they wrote.
    pub text: &'a MessageText,
}

impl fmt::Display for FromLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "from {}: {}", self.sender, self.text)
    }
}

fn strip_one_space(s: &str) -> &str {
    s.strip_prefix(' ').unwrap_or(s)
}

impl fmt::Display for ServerLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Welcome(name) => write!(f, "welcome {name}"),
            Self::From { sender, text } => FromLine { sender, text }.fmt(f),
            Self::Joined(name) => write!(f, "joined {name}"),
            Self::Left(name) => write!(f, "left {name}"),
            Self::Users(names) => {
                f.write_str("users ")?;
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{name}")?;
                }
                Ok(())
            }
            Self::Error(reason) => write!(f, "error: {reason}"),
            Self::Bye(reason) => write!(f, "bye: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::tests::{name_strategy, text_strategy};
    use proptest::prelude::*;

    fn name(s: &str) -> UserName {
        UserName::parse(s).unwrap()
    }

    #[test]
    fn parses_every_kind() {
        let cases = [
            ("welcome alice", ServerLine::Welcome(name("alice"))),
            (
                "from 张三: 你好: 世界",
                ServerLine::From {
                    sender: name("张三"),
                    text: MessageText::parse("你好: 世界").unwrap(),
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
        ] {
            assert!(line.parse::<ServerLine>().is_err(), "{line:?}");
        }
    }

    fn reason_strategy() -> impl Strategy<Value = String> {
        "[^\\n]{0,100}"
    }

    fn line_strategy() -> impl Strategy<Value = ServerLine> {
        prop_oneof![
            name_strategy().prop_map(ServerLine::Welcome),
            (name_strategy(), text_strategy())
                .prop_map(|(sender, text)| ServerLine::From { sender, text }),
            name_strategy().prop_map(ServerLine::Joined),
            name_strategy().prop_map(ServerLine::Left),
            prop::collection::vec(name_strategy(), 0..6).prop_map(ServerLine::Users),
            reason_strategy().prop_map(ServerLine::Error),
            reason_strategy().prop_map(ServerLine::Bye),
        ]
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
    }
}
