//! Room governance (protocol v3): [`Role`], [`RoomMode`] and [`RoomModes`], a
//! [`ModeChange`] as `mode` lines show it, who made a change ([`Setter`]), and the
//! bounded texts of topics and reasons.

use std::fmt;
use std::str::FromStr;

use crate::{MessageText, ParseError, UserName};

/// Longest topic, in bytes.
pub const MAX_TOPIC_BYTES: usize = 390;

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// An op (`@`): may govern the room.
    Op,
    /// Voiced (`+`): may speak in a moderated room.
    Voiced,
}

impl Role {
    /// The prefix before a name in `roles` lines and user lists: `@` or `+`.
    pub fn prefix(self) -> char {
        match self {
            Self::Op => '@',
            Self::Voiced => '+',
        }
    }

    /// The letter of the role in `mode` lines: `o` or `v`.
    pub fn letter(self) -> char {
        match self {
            Self::Op => 'o',
            Self::Voiced => 'v',
        }
    }

    /// The role a prefix stands for.
    pub fn from_prefix(c: char) -> Option<Self> {
        match c {
            '@' => Some(Self::Op),
            '+' => Some(Self::Voiced),
            _ => None,
        }
    }
}

/// One flag of a room's modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoomMode {
    /// `i`: joining needs an invite or a role.
    InviteOnly,
    /// `m`: only ops and voiced members may send to the room.
    Moderated,
    /// `s`: left out of `/rooms` for non-members.
    Secret,
    /// `t`: only ops set the topic.
    TopicLocked,
}

impl RoomMode {
    /// Every flag, in the order the protocol writes them (`imst`).
    pub const ALL: [Self; 4] = [
        Self::InviteOnly,
        Self::Moderated,
        Self::Secret,
        Self::TopicLocked,
    ];

    /// The flag's letter.
    pub fn letter(self) -> char {
        match self {
            Self::InviteOnly => 'i',
            Self::Moderated => 'm',
            Self::Secret => 's',
            Self::TopicLocked => 't',
        }
    }

    /// The flag a letter stands for.
    pub fn from_letter(c: char) -> Option<Self> {
        Self::ALL.into_iter().find(|mode| mode.letter() == c)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of [`RoomMode`]s, written `+` and the set letters in `imst` order (`+` alone
/// when none is set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct RoomModes(u8);

impl RoomModes {
    /// The modes of a new room: `+t`.
    pub const NEW_ROOM: Self = Self(1 << RoomMode::TopicLocked as u8);

    /// Whether `mode` is set.
    pub fn has(self, mode: RoomMode) -> bool {
        self.0 & mode.bit() != 0
    }

    /// Sets or clears `mode`; whether that changed anything.
    pub fn set(&mut self, mode: RoomMode, on: bool) -> bool {
        let before = *self;
        if on {
            self.0 |= mode.bit();
        } else {
            self.0 &= !mode.bit();
        }
        before != *self
    }

    /// The set flags, in `imst` order.
    pub fn iter(self) -> impl Iterator<Item = RoomMode> {
        RoomMode::ALL
            .into_iter()
            .filter(move |&mode| self.has(mode))
    }
}

impl fmt::Display for RoomModes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("+")?;
        self.iter()
            .try_for_each(|mode| write!(f, "{}", mode.letter()))
    }
}

impl FromStr for RoomModes {
    type Err = ParseError;

    /// Accepts `+` then distinct letters of `imst`, in any order.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseError::InvalidModes(s.to_owned());
        let letters = s.strip_prefix('+').ok_or_else(invalid)?;
        let mut modes = Self::default();
        for c in letters.chars() {
            let mode = RoomMode::from_letter(c).ok_or_else(invalid)?;
            if !modes.set(mode, true) {
                return Err(invalid());
            }
        }
        Ok(modes)
    }
}

/// Flag changes as a client asks for them: `+mi`, `-t`, `+m-i`.
pub fn parse_flag_changes(s: &str) -> Result<Vec<(bool, RoomMode)>, ParseError> {
    let invalid = || ParseError::InvalidModes(s.to_owned());
    let mut on = None;
    let mut changes = Vec::new();
    for c in s.chars() {
        match c {
            '+' => on = Some(true),
            '-' => on = Some(false),
            _ => changes.push((
                on.ok_or_else(invalid)?,
                RoomMode::from_letter(c).ok_or_else(invalid)?,
            )),
        }
    }
    if changes.is_empty() {
        return Err(invalid());
    }
    Ok(changes)
}

/// Writes flag changes as [`parse_flag_changes`] reads them.
pub fn write_flag_changes(f: &mut impl fmt::Write, changes: &[(bool, RoomMode)]) -> fmt::Result {
    let mut sign = None;
    for &(on, mode) in changes {
        if sign != Some(on) {
            f.write_char(if on { '+' } else { '-' })?;
            sign = Some(on);
        }
        f.write_char(mode.letter())?;
    }
    Ok(())
}

/// One change as a `mode` line reports it: `+m`, `-o alice`, `+b eve`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ModeChange {
    /// A room flag set (`+`) or cleared (`-`).
    Flag {
        /// Set or cleared.
        on: bool,
        /// The flag.
        mode: RoomMode,
    },
    /// A role given or taken.
    Role {
        /// Given or taken.
        on: bool,
        /// The role.
        role: Role,
        /// The member.
        name: UserName,
    },
    /// A ban made or lifted.
    Ban {
        /// Made or lifted.
        on: bool,
        /// The name banned.
        name: UserName,
    },
}

impl fmt::Display for ModeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = |on: bool| if on { '+' } else { '-' };
        match self {
            Self::Flag { on, mode } => write!(f, "{}{}", sign(*on), mode.letter()),
            Self::Role { on, role, name } => write!(f, "{}{} {name}", sign(*on), role.letter()),
            Self::Ban { on, name } => write!(f, "{}b {name}", sign(*on)),
        }
    }
}

impl FromStr for ModeChange {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseError::InvalidModes(s.to_owned());
        let (change, name) = match s.split_once(' ') {
            Some((change, name)) => (change, Some(UserName::parse(name)?)),
            None => (s, None),
        };
        let mut chars = change.chars();
        let on = match chars.next() {
            Some('+') => true,
            Some('-') => false,
            _ => return Err(invalid()),
        };
        let (Some(letter), None) = (chars.next(), chars.next()) else {
            return Err(invalid());
        };
        match (letter, name) {
            ('o', Some(name)) => Ok(Self::Role {
                on,
                role: Role::Op,
                name,
            }),
            ('v', Some(name)) => Ok(Self::Role {
                on,
                role: Role::Voiced,
                name,
            }),
            ('b', Some(name)) => Ok(Self::Ban { on, name }),
            (letter, None) => RoomMode::from_letter(letter)
                .map(|mode| Self::Flag { on, mode })
                .ok_or_else(invalid),
            _ => Err(invalid()),
        }
    }
}

/// Who made a change: a user, or `*` for the server itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Setter {
    /// `*`: the server (a role granted at join, a ban's kick).
    Server,
    /// A user.
    User(UserName),
}

impl fmt::Display for Setter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server => f.write_str("*"),
            Self::User(name) => name.fmt(f),
        }
    }
}

impl FromStr for Setter {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "*" {
            return Ok(Self::Server);
        }
        Ok(Self::User(UserName::parse(s)?))
    }
}

/// A room's topic: message text of at most [`MAX_TOPIC_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicText(MessageText);

impl TopicText {
    /// Checks `text` as message text no longer than [`MAX_TOPIC_BYTES`] once trimmed.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = MessageText::parse(text)?;
        if text.as_str().len() > MAX_TOPIC_BYTES {
            return Err(ParseError::TopicTooLong);
        }
        Ok(Self(text))
    }

    /// The topic as a string slice.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for TopicText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn modes_are_written_in_imst_order() {
        let mut modes = RoomModes::default();
        assert_eq!(modes.to_string(), "+");
        assert!(modes.set(RoomMode::TopicLocked, true));
        assert!(modes.set(RoomMode::InviteOnly, true));
        assert!(!modes.set(RoomMode::InviteOnly, true));
        assert_eq!(modes.to_string(), "+it");
        assert_eq!(RoomModes::NEW_ROOM.to_string(), "+t");
        assert_eq!("+tsmi".parse::<RoomModes>().unwrap().to_string(), "+imst");
        assert!("+mm".parse::<RoomModes>().is_err());
        assert!("mi".parse::<RoomModes>().is_err());
        assert!("+x".parse::<RoomModes>().is_err());
    }

    #[test]
    fn flag_changes_parse_with_signs() {
        use RoomMode::*;
        assert_eq!(
            parse_flag_changes("+mi").unwrap(),
            [(true, Moderated), (true, InviteOnly)]
        );
        assert_eq!(
            parse_flag_changes("+m-it").unwrap(),
            [(true, Moderated), (false, InviteOnly), (false, TopicLocked)]
        );
        for bad in ["", "+", "mi", "+q", "+o", "-"] {
            assert!(parse_flag_changes(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_topic_is_bounded_in_bytes() {
        assert!(TopicText::parse(&"é".repeat(195)).is_ok());
        assert_eq!(
            TopicText::parse(&"é".repeat(196)),
            Err(ParseError::TopicTooLong)
        );
        assert_eq!(TopicText::parse("  "), Err(ParseError::EmptyText));
        assert_eq!(
            TopicText::parse("a\x1bb"),
            Err(ParseError::ControlCharacter)
        );
    }

    pub(crate) fn mode_strategy() -> impl Strategy<Value = RoomMode> {
        prop::sample::select(RoomMode::ALL.to_vec())
    }

    pub(crate) fn change_strategy() -> impl Strategy<Value = ModeChange> {
        let name = crate::client::tests::name_strategy;
        let role = prop::sample::select(vec![Role::Op, Role::Voiced]);
        prop_oneof![
            (any::<bool>(), mode_strategy()).prop_map(|(on, mode)| ModeChange::Flag { on, mode }),
            (any::<bool>(), role, name()).prop_map(|(on, role, name)| ModeChange::Role {
                on,
                role,
                name
            }),
            (any::<bool>(), name()).prop_map(|(on, name)| ModeChange::Ban { on, name }),
        ]
    }

    proptest! {
        #[test]
        fn changes_round_trip(change in change_strategy()) {
            prop_assert_eq!(change.to_string().parse::<ModeChange>(), Ok(change));
        }

        #[test]
        fn flag_changes_round_trip(changes in prop::collection::vec((any::<bool>(), mode_strategy()), 1..6)) {
            let mut written = String::new();
            write_flag_changes(&mut written, &changes).unwrap();
            prop_assert_eq!(parse_flag_changes(&written), Ok(changes));
        }

        #[test]
        fn parsers_never_panic(s in "(?s).{0,40}") {
            let _ = s.parse::<ModeChange>();
            let _ = s.parse::<RoomModes>();
            let _ = parse_flag_changes(&s);
            let _ = TopicText::parse(&s);
        }
    }
}
