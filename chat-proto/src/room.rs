//! [`RoomName`] and [`Conv`]: where a message is said, in a room or between two people.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::{ParseError, UserName};

/// A room: `#` followed by a valid user name (`#rust`, `#中文`). Rooms compare bytewise
/// and case-sensitively: `#Rust` and `#rust` are two rooms. Cloning is cheap.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RoomName(Arc<str>);

impl RoomName {
    /// Checks `name` is `#` plus a valid user name and wraps it.
    pub fn parse(name: &str) -> Result<Self, ParseError> {
        let invalid = || ParseError::InvalidRoom(name.to_owned());
        let rest = name.strip_prefix('#').ok_or_else(invalid)?;
        UserName::parse(rest).map_err(|_| invalid())?;
        Ok(Self(name.into()))
    }

    /// The room's name, `#` included.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoomName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for RoomName {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for RoomName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A conversation whose history can be asked for: a room, or `@name` for the direct
/// messages between the asker and `name`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Conv {
    /// `#room`.
    Room(RoomName),
    /// `@name`.
    Direct(UserName),
}

impl FromStr for Conv {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(name) = s.strip_prefix('@') {
            return UserName::parse(name)
                .map(Self::Direct)
                .map_err(|_| ParseError::InvalidConv(s.to_owned()));
        }
        if s.starts_with('#') {
            return RoomName::parse(s).map(Self::Room);
        }
        Err(ParseError::InvalidConv(s.to_owned()))
    }
}

impl fmt::Display for Conv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Room(room) => room.fmt(f),
            Self::Direct(name) => write!(f, "@{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_are_a_hash_and_a_valid_name() {
        for ok in ["#rust", "#中文", "#a", &format!("#{}", "r".repeat(32))] {
            assert_eq!(
                RoomName::parse(ok).map(|r| r.to_string()),
                Ok(ok.to_owned())
            );
        }
        for bad in [
            "rust",
            "#",
            "##rust",
            "#ru st",
            "#a,b",
            &format!("#{}", "r".repeat(33)),
        ] {
            assert_eq!(
                RoomName::parse(bad),
                Err(ParseError::InvalidRoom(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn rooms_compare_bytewise() {
        assert_ne!(RoomName::parse("#Rust"), RoomName::parse("#rust"));
        assert!(RoomName::parse("#B").unwrap() < RoomName::parse("#a").unwrap());
    }

    #[test]
    fn conversations_are_rooms_or_at_names() {
        assert_eq!(
            "#rust".parse::<Conv>(),
            Ok(Conv::Room(RoomName::parse("#rust").unwrap()))
        );
        assert_eq!(
            "@bob".parse::<Conv>(),
            Ok(Conv::Direct(UserName::parse("bob").unwrap()))
        );
        for bad in ["bob", "@", "@b b", "*"] {
            assert_eq!(
                bad.parse::<Conv>(),
                Err(ParseError::InvalidConv(bad.to_owned()))
            );
        }
        assert_eq!(
            "#".parse::<Conv>(),
            Err(ParseError::InvalidRoom("#".to_owned()))
        );
    }
}
