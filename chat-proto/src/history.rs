//! Message ids, timestamps and history requests: [`MessageId`], [`Timestamp`],
//! [`HistoryRange`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::ParseError;

/// Most messages one `/history` reply carries.
pub const MAX_HISTORY_LINES: u16 = 1000;

/// How many messages `/history <conv>` without a count asks for.
pub const DEFAULT_HISTORY_LINES: u16 = 50;

/// Most digits in a message id on the wire.
pub const MAX_ID_DIGITS: usize = 19;

/// A message id: a decimal integer of at most 19 digits, strictly increasing within a
/// conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MessageId(u64);

impl MessageId {
    /// The largest id: 19 nines would not fit SQLite's signed 64-bit integers, so ids
    /// stop at `i64::MAX`, itself 19 digits.
    pub const MAX: Self = Self(i64::MAX as u64);

    /// Wraps `id` if it is at most [`MessageId::MAX`].
    pub fn new(id: u64) -> Option<Self> {
        (id <= Self::MAX.0).then_some(Self(id))
    }

    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for MessageId {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || ParseError::InvalidId(s.to_owned());
        if s.is_empty() || s.len() > MAX_ID_DIGITS || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        s.parse().ok().and_then(Self::new).ok_or_else(invalid)
    }
}

/// A moment in UTC with millisecond precision, on the wire in RFC 3339:
/// `2026-11-28T18:00:00.123Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The last millisecond of year 9999: later times would need more than four digits.
    const MAX_MILLIS: i64 = 253_402_300_799_999;

    /// The moment `millis` milliseconds after the Unix epoch, if in years 1970 to 9999.
    pub fn from_unix_millis(millis: i64) -> Option<Self> {
        (0..=Self::MAX_MILLIS)
            .contains(&millis)
            .then_some(Self(millis))
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_millis(self) -> i64 {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = DateTime::<Utc>::from_timestamp_millis(self.0).ok_or(fmt::Error)?;
        f.write_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl FromStr for Timestamp {
    type Err = ParseError;

    /// Accepts exactly the form `Display` writes, so every time has one spelling.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| Self::from_unix_millis(t.timestamp_millis()))
            .filter(|t| t.to_string() == s)
            .ok_or_else(|| ParseError::InvalidTime(s.to_owned()))
    }
}

/// Which stored messages a `/history` request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryRange {
    /// The latest `n` (1 to [`MAX_HISTORY_LINES`]).
    Latest(u16),
    /// Every message with a larger id, oldest first, at most [`MAX_HISTORY_LINES`].
    After(MessageId),
    /// The latest `n` (1 to [`MAX_HISTORY_LINES`]) with a smaller id: how a client
    /// scrolls back past what it has.
    Before(MessageId, u16),
}

impl HistoryRange {
    /// `Latest(n)` if `n` is 1 to [`MAX_HISTORY_LINES`].
    pub fn latest(n: u16) -> Option<Self> {
        (1..=MAX_HISTORY_LINES)
            .contains(&n)
            .then_some(Self::Latest(n))
    }
}

impl HistoryRange {
    /// `Before(id, n)`, with `n` over [`MAX_HISTORY_LINES`] taken as that many; `None`
    /// for `n` of 0.
    pub fn before(id: MessageId, n: u64) -> Option<Self> {
        let n = u16::try_from(n.min(u64::from(MAX_HISTORY_LINES))).ok()?;
        (n > 0).then_some(Self::Before(id, n))
    }
}

impl Default for HistoryRange {
    fn default() -> Self {
        Self::Latest(DEFAULT_HISTORY_LINES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_are_up_to_19_digits() {
        assert_eq!("42".parse::<MessageId>().map(MessageId::get), Ok(42));
        assert_eq!(
            "9223372036854775807".parse::<MessageId>(),
            Ok(MessageId::MAX)
        );
        for bad in [
            "",
            "-1",
            "+1",
            "1.5",
            "x",
            "9223372036854775808",
            "12345678901234567890",
        ] {
            assert_eq!(
                bad.parse::<MessageId>(),
                Err(ParseError::InvalidId(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let t = Timestamp::from_unix_millis(1_795_888_800_123).unwrap();
        assert_eq!(t.to_string(), "2026-11-28T18:00:00.123Z");
        assert_eq!("2026-11-28T18:00:00.123Z".parse(), Ok(t));
        assert_eq!(
            Timestamp::from_unix_millis(0).unwrap().to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        for bad in [
            "2026-11-28T18:00:00Z",
            "2026-11-28T18:00:00.123+00:00",
            "2026-11-28T18:00:00.1234Z",
            "2026-11-28 18:00:00.123Z",
            "yesterday",
        ] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn any_time_round_trips(ms in 0..=Timestamp::MAX_MILLIS) {
            let t = Timestamp::from_unix_millis(ms).unwrap();
            prop_assert_eq!(t.to_string().parse::<Timestamp>(), Ok(t));
        }

        #[test]
        fn any_id_round_trips(id in 0..=MessageId::MAX.get()) {
            let id = MessageId::new(id).unwrap();
            prop_assert_eq!(id.to_string().parse::<MessageId>(), Ok(id));
        }
    }
}
