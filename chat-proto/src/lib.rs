//! The chat line protocol, version 3 (`docs/protocol.md`): pure types, no sockets, no tasks.
//!
//! - [`name`]: [`UserName`], a login name validated on construction.
//! - [`account`]: [`LoginLine`] (`name` or `name password`) and [`Password`].
//! - [`room`]: [`RoomName`] (`#rust`) and [`Conv`], a room or a direct conversation.
//! - [`history`]: [`MessageId`], [`Timestamp`] and [`HistoryRange`].
//! - [`text`]: [`MessageText`], message text free of control characters.
//! - [`governance`]: [`Role`], [`RoomModes`], [`ModeChange`], [`Setter`] and
//!   [`TopicText`], for rooms people govern (version 3).
//! - [`client`]: [`ClientLine`], what a client sends after login (`bob,carol: hi`, `/who`).
//! - [`server`]: [`ServerLine`], what the server sends (`welcome`, `from`, `joined`, ...).
//!   [`FromLine`] and [`HistoryLine`] format the two hot lines from borrowed parts.
//! - [`codec`]: [`LineCodec`], a bounded tokio-util codec for `\n`-terminated UTF-8 lines.
//! - [`error`]: the error types; each one's `Display` is the reason sent on the wire.
//!
//! Every line type implements `Display` (its wire form, without the newline) and `FromStr`,
//! and `line.to_string().parse()` gives back the same line.
#![warn(missing_docs)]

pub mod account;
pub mod client;
pub mod codec;
pub mod error;
pub mod governance;
pub mod history;
pub mod name;
pub mod room;
pub mod server;
pub mod text;

pub use account::{LoginLine, MIN_PASSWORD_BYTES, Password};
pub use client::{CLEAR_TOPIC, ClientLine, Recipient, Recipients};
pub use codec::{LineCodec, encode_line};
pub use error::{CodecError, NameError, ParseError};
pub use governance::{MAX_TOPIC_BYTES, ModeChange, Role, RoomMode, RoomModes, Setter, TopicText};
pub use history::{DEFAULT_HISTORY_LINES, HistoryRange, MAX_HISTORY_LINES, MessageId, Timestamp};
pub use name::UserName;
pub use room::{Conv, RoomName};
pub use server::{FromLine, HistoryEntry, HistoryLine, Scope, ServerLine, TopicInfo};
pub use text::MessageText;

/// Default longest line in bytes, not counting the `\n` or `\r\n` that ends it.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4096;

/// Longest user name, in characters (Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 32;

/// The name that addresses everyone online except the sender.
pub const EVERYONE: &str = "*";
