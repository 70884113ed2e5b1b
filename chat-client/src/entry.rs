//! [`Entry`]: one line of a buffer as the client keeps it, before layout. Both
//! `layout` (which draws and measures entries) and `buffers` (which keeps
//! them) read it, so it sits below both and neither needs the other's internals.

use chat_proto::{MessageId, RoomName, UserName};
use chrono::NaiveDateTime;

use crate::sanitize::SafeText;

/// One entry of a buffer. All its text is [`SafeText`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Unique within the client; the unread marker and search refer to entries by it.
    pub seq: u64,
    /// When it arrived, was sent, or (from history) was accepted by the server; local.
    pub time: NaiveDateTime,
    /// Its date is not that of the entry before it: a day-change line is drawn above it,
    /// as in WeeChat, so that `23:10`, `00:10` across midnight (or across days of
    /// history) say which day they are on.
    pub day_change: bool,
    /// What it is.
    pub kind: EntryKind,
}

/// The kinds of entry, each drawn in its own style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A message someone sent.
    Message {
        /// The sender.
        from: UserName,
        /// The text.
        text: SafeText,
        /// The server's id, for room and stored messages.
        id: Option<MessageId>,
        /// Whether it names us.
        mention: bool,
    },
    /// A message we sent.
    Own {
        /// The text.
        text: SafeText,
        /// The server's id, once history told us.
        id: Option<MessageId>,
        /// Typed while disconnected; waits in the outbox.
        pending: bool,
    },
    /// A server reply or a note from the client.
    Notice {
        /// The text.
        text: SafeText,
        /// Whether it reports a problem.
        error: bool,
    },
    /// People joined or left, folded into one line per burst.
    Presence {
        /// Joined, or left.
        joined: bool,
        /// Who, in order.
        names: Vec<UserName>,
        /// The room, for room presence.
        room: Option<RoomName>,
    },
    /// A divider, such as where replayed history starts.
    Marker(SafeText),
}

impl EntryKind {
    /// The server's id of the message shown, once known.
    pub(crate) fn id(&self) -> Option<MessageId> {
        match self {
            Self::Message { id, .. } | Self::Own { id, .. } => *id,
            _ => None,
        }
    }

    /// Whether `other` (from history) is the message this entry shows: ours with the same
    /// text, or someone's with the same sender and text.
    pub(crate) fn same_message(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Own { text: a, .. }, Self::Own { text: b, .. }) => a == b,
            (
                Self::Message {
                    from: a, text: t, ..
                },
                Self::Message {
                    from: b, text: u, ..
                },
            ) => a.folded() == b.folded() && t == u,
            _ => false,
        }
    }

    /// Records the server's id, learnt from history, of the message shown.
    pub(crate) fn set_id(&mut self, new: MessageId) {
        if let Self::Message { id, .. } | Self::Own { id, .. } = self {
            *id = Some(new);
        }
    }

    /// The text a search looks in.
    pub fn text(&self) -> Option<&str> {
        match self {
            Self::Message { text, .. } | Self::Own { text, .. } | Self::Notice { text, .. } => {
                Some(text.as_str())
            }
            _ => None,
        }
    }
}
