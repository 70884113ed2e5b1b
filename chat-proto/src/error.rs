//! Error types. The `Display` text of each is the reason the server puts after `error: `.

use thiserror::Error;

/// Why a string is not a valid [`UserName`](crate::UserName).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The name has no characters.
    #[error("name is empty")]
    Empty,
    /// The name has more than [`MAX_NAME_CHARS`](crate::MAX_NAME_CHARS) characters.
    #[error("name is longer than {} characters", crate::MAX_NAME_CHARS)]
    TooLong,
    /// The name contains a character outside letters, digits, `_`, `-` and `.`.
    #[error("name may not contain {0:?}")]
    InvalidChar(char),
}

/// Why a line is not a valid client or server line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// The line is empty or only whitespace.
    #[error("empty line")]
    EmptyLine,
    /// A message line without the `:` that ends its destinations.
    #[error("expected \"<name>[,<name>...]: <text>\" or /who")]
    MissingSeparator,
    /// A message line whose destination list is empty.
    #[error("no destination")]
    NoDestination,
    /// A destination that is neither `*` nor a valid name.
    #[error("invalid destination {0:?}")]
    InvalidDestination(String),
    /// A message whose text is empty after trimming.
    #[error("empty message")]
    EmptyText,
    /// A message whose text contains a control character (C0 but tab, DEL, C1).
    #[error("control characters are not allowed in messages")]
    ControlCharacter,
    /// A line starting with `/` that is not a known command.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// A room name that is not `#` followed by a valid name.
    #[error("invalid room {0:?}")]
    InvalidRoom(String),
    /// A conversation that is neither `#room` nor `@name`.
    #[error("invalid conversation {0:?} (expected #room or @name)")]
    InvalidConv(String),
    /// A message id that is not a decimal integer of at most 19 digits.
    #[error("invalid message id {0:?}")]
    InvalidId(String),
    /// A time that is not RFC 3339 UTC with milliseconds.
    #[error("invalid time {0:?}")]
    InvalidTime(String),
    /// A `/history` count outside 1 to 1000.
    #[error("history count must be 1 to {max}, not {0:?}", max = crate::MAX_HISTORY_LINES)]
    HistoryCount(String),
    /// A login or command with an empty password.
    #[error("empty password")]
    EmptyPassword,
    /// A new password shorter than [`MIN_PASSWORD_BYTES`](crate::MIN_PASSWORD_BYTES).
    #[error("password too weak: use at least {} bytes", crate::MIN_PASSWORD_BYTES)]
    WeakPassword,
    /// A known command with missing or extra arguments; holds the command's synopsis.
    #[error("usage: {0}")]
    Usage(&'static str),
    /// Room modes or mode changes that are not `+`/`-` and letters of `imst`.
    #[error("invalid modes {0:?} (expected + or - and letters of imst)")]
    InvalidModes(String),
    /// A topic longer than [`MAX_TOPIC_BYTES`](crate::MAX_TOPIC_BYTES).
    #[error("topic is longer than {} bytes", crate::MAX_TOPIC_BYTES)]
    TopicTooLong,
    /// A server line of a kind this protocol version does not know.
    #[error("unknown server line")]
    UnknownServerLine,
    /// A name in the line is invalid.
    #[error(transparent)]
    Name(#[from] NameError),
}

/// Why the codec could not read or write a line.
#[derive(Debug, Error)]
pub enum CodecError {
    /// The line is longer than the codec's limit; the stream must be closed.
    #[error("line too long")]
    LineTooLong,
    /// The line is not valid UTF-8; the stream must be closed.
    #[error("invalid UTF-8")]
    InvalidUtf8,
    /// A line to encode contains `\n`, which would split it in two on the wire.
    #[error("line contains a newline")]
    NewlineInLine,
    /// The underlying socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
