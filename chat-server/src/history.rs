//! [`History`]: the stored messages every `/history` reply is read from, bounded by
//! [`Retention`], and [`IdClock`], which gives each message its id.
//!
//! The broker owns both, so a reply is a consistent snapshot taken in line with routing:
//! every message routed before the `/history` line is in it, every later one arrives
//! live after it, and none does both. A persistent store (`crate::store`) only mirrors
//! this window to disk and fills it again at startup; nothing reads the disk on the way.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use std::cell::OnceCell;
use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use chat_proto::{
    Conv, HistoryLine, HistoryRange, MAX_HISTORY_LINES, MessageId, MessageText, RoomName,
    ServerLine, Timestamp, UserName, encode_line,
};

/// How much history is kept.
#[derive(Debug, Clone)]
pub struct Retention {
    /// Most messages kept per conversation.
    pub per_conv: usize,
    /// Messages older than this are dropped.
    pub max_age: Duration,
    /// Most bytes of messages kept in all, so many busy rooms cannot exhaust memory.
    pub max_bytes: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            per_conv: 2048,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 256 << 20,
        }
    }
}

/// Where a stored message belongs: a room, or the direct messages between two
/// registered users (their folded names, sorted), which each of them reads as
/// `@<the other>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConvKey {
    /// A room's messages.
    Room(RoomName),
    /// The direct messages between two accounts.
    Pair(String, String),
}

impl ConvKey {
    /// The conversation between `a` and `b`, the same whichever is which.
    pub fn pair(a: &UserName, b: &UserName) -> Self {
        Self::pair_folded(a.folded(), b.folded())
    }

    /// [`ConvKey::pair`] of two names already folded.
    pub fn pair_folded(a: String, b: String) -> Self {
        if a <= b {
            Self::Pair(a, b)
        } else {
            Self::Pair(b, a)
        }
    }
}

/// The form a store keeps: `#room`, or `@a @b`.
impl fmt::Display for ConvKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Room(room) => room.fmt(f),
            Self::Pair(a, b) => write!(f, "@{a} @{b}"),
        }
    }
}

impl FromStr for ConvKey {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        if let Some((a, b)) = s.split_once(' ') {
            let a = a.strip_prefix('@').ok_or(())?;
            let b = b.strip_prefix('@').ok_or(())?;
            return Ok(Self::Pair(a.to_owned(), b.to_owned()));
        }
        s.parse().map(Self::Room).map_err(|_| ())
    }
}

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Where it was said.
    pub conv: ConvKey,
    /// Its id.
    pub id: MessageId,
    /// When the server accepted it.
    pub time: Timestamp,
    /// Who said it.
    pub sender: UserName,
    /// What was said.
    pub text: MessageText,
}

/// A stored message and, once a reply needed it, its `history` line: formatted once
/// however many replies carry it.
#[derive(Debug)]
struct Stored {
    message: Message,
    line: OnceCell<Bytes>,
}

impl Stored {
    /// What keeping it costs, roughly: its text, the text again in the cached line, and
    /// the bookkeeping around them.
    fn cost(&self) -> usize {
        2 * self.message.text.as_str().len() + 160
    }

    /// Its `history` line as `view` names the conversation. A room's reads the same for
    /// everyone and is cached; a direct conversation reads differently for each side.
    fn line(&self, view: &Conv) -> Bytes {
        let encode = || {
            let m = &self.message;
            encode_line(HistoryLine {
                conv: view,
                id: m.id,
                time: m.time,
                sender: &m.sender,
                text: &m.text,
            })
        };
        match self.message.conv {
            ConvKey::Room(_) => self.line.get_or_init(encode).clone(),
            ConvKey::Pair(..) => encode(),
        }
    }
}

/// The wall clock: the time for a message, and the microseconds its id starts from.
pub fn wall_clock() -> (Timestamp, u64) {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = u64::try_from(since_epoch.as_micros()).unwrap_or(u64::MAX);
    let millis = i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX);
    let epoch = || Timestamp::from_unix_millis(0).expect("the epoch is a valid timestamp");
    (
        Timestamp::from_unix_millis(millis).unwrap_or_else(epoch),
        micros,
    )
}

/// Gives out message ids: strictly increasing, and larger than any given before a
/// restart without needing a disk. An id is the larger of the last one plus one and
/// the microseconds since the Unix epoch, so after a restart the clock has moved past
/// every earlier id unless the server sustained more than a million messages a second.
#[derive(Debug, Default)]
pub struct IdClock {
    last: u64,
}

impl IdClock {
    /// A clock whose next id is larger than `last` (the largest id stored, if any).
    pub fn after(last: Option<MessageId>) -> Self {
        Self {
            last: last.map_or(0, MessageId::get),
        }
    }

    /// The next id, given the time now in microseconds since the epoch.
    pub fn next(&mut self, now_micros: u64) -> MessageId {
        self.last = (self.last + 1).max(now_micros);
        MessageId::new(self.last).unwrap_or(MessageId::MAX)
    }
}

/// One conversation's stored messages, oldest first.
#[derive(Debug, Default)]
struct Log {
    messages: VecDeque<Stored>,
    /// The largest id ever dropped by retention: asking for anything up to it is asking
    /// for messages that are gone.
    dropped_through: Option<MessageId>,
}

/// A `/history` reply, encoded.
#[derive(Debug)]
pub struct Reply {
    /// The `history` lines then the `history-end` line, in wire form.
    pub lines: BytesMut,
    /// Whether `history-end` says `truncated`.
    pub truncated: bool,
}

/// Every conversation's stored messages within [`Retention`].
#[derive(Debug)]
pub struct History {
    logs: HashMap<ConvKey, Log>,
    /// Every stored message by id, to find the oldest across conversations.
    order: BTreeMap<MessageId, ConvKey>,
    bytes: usize,
    retention: Retention,
}

impl History {
    /// An empty history kept within `retention`.
    pub fn new(retention: Retention) -> Self {
        Self {
            logs: HashMap::new(),
            order: BTreeMap::new(),
            bytes: 0,
            retention,
        }
    }

    /// Records that messages of `conv` up to `id` were dropped (by an earlier run).
    pub fn mark_dropped(&mut self, conv: ConvKey, id: MessageId) {
        let log = self.logs.entry(conv).or_default();
        log.dropped_through = log.dropped_through.max(Some(id));
    }

    /// Stores `message`, whose id is larger than any stored, then applies retention.
    pub fn push(&mut self, message: Message, now: Timestamp) {
        let stored = Stored {
            message,
            line: OnceCell::new(),
        };
        self.bytes += stored.cost();
        let conv = stored.message.conv.clone();
        self.order.insert(stored.message.id, conv.clone());
        let log = self.logs.entry(conv.clone()).or_default();
        log.messages.push_back(stored);
        if log.messages.len() > self.retention.per_conv {
            self.drop_oldest(&conv);
        }
        self.expire(now);
        while self.bytes > self.retention.max_bytes {
            let Some((_, conv)) = self.order.first_key_value() else {
                break;
            };
            let conv = conv.clone();
            self.drop_oldest(&conv);
        }
    }

    /// Drops every message older than the retention age.
    pub fn expire(&mut self, now: Timestamp) {
        let age = i64::try_from(self.retention.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now.unix_millis().saturating_sub(age);
        while let Some((_, conv)) = self.order.first_key_value() {
            let oldest = &self.logs[conv].messages[0];
            if oldest.message.time.unix_millis() >= cutoff {
                break;
            }
            let conv = conv.clone();
            self.drop_oldest(&conv);
        }
    }

    fn drop_oldest(&mut self, conv: &ConvKey) {
        let Some(log) = self.logs.get_mut(conv) else {
            return;
        };
        let Some(stored) = log.messages.pop_front() else {
            return;
        };
        self.bytes -= stored.cost();
        self.order.remove(&stored.message.id);
        log.dropped_through = Some(stored.message.id);
    }

    /// The reply to `/history <view> <range>` for the conversation `key`, at most
    /// `max_bytes` of `history` lines (a reply must fit the asker's send queue); whatever
    /// does not fit is `truncated`.
    pub fn reply(
        &mut self,
        key: &ConvKey,
        view: &Conv,
        range: HistoryRange,
        now: Timestamp,
        max_bytes: usize,
    ) -> Reply {
        self.expire(now);
        let empty = Log::default();
        let log = self.logs.get(key).unwrap_or(&empty);
        let stored = &log.messages;
        let (picked, truncated) = match range {
            HistoryRange::Latest(n) => {
                let n = usize::from(n);
                let start = stored.len().saturating_sub(n);
                let gone = stored.len() < n && log.dropped_through.is_some();
                (stored.range(start..), gone)
            }
            HistoryRange::After(after) => {
                let start = stored.partition_point(|s| s.message.id <= after);
                let end = stored.len().min(start + usize::from(MAX_HISTORY_LINES));
                let gone = log.dropped_through.is_some_and(|d| d > after);
                (stored.range(start..end), gone || end < stored.len())
            }
            HistoryRange::Before(before, n) => {
                let n = usize::from(n);
                let end = stored.partition_point(|s| s.message.id < before);
                let start = end.saturating_sub(n);
                let gone = end - start < n && log.dropped_through.is_some();
                (stored.range(start..end), gone)
            }
        };
        let encoded: Vec<Bytes> = picked.map(|stored| stored.line(view)).collect();
        // Scrolling back keeps, like the latest, the newer end of what it asked for.
        let latest = matches!(range, HistoryRange::Latest(_) | HistoryRange::Before(..));
        fit_reply(view, &encoded, latest, truncated, max_bytes)
    }
}

/// A `/history` reply from `encoded` lines (oldest first): at most `max_bytes` of them,
/// then `history-end`. What does not fit goes from the end that matters least: the old
/// end of the latest n (`latest`), the new end of "after" (the asker continues from the
/// last id); whatever is left out is `truncated`. Both backends' replies are made here.
pub fn fit_reply(
    view: &Conv,
    encoded: &[Bytes],
    latest: bool,
    mut truncated: bool,
    max_bytes: usize,
) -> Reply {
    let fitting = |lines: &mut dyn Iterator<Item = &Bytes>| {
        let mut bytes = 0;
        lines
            .take_while(|line| {
                bytes += line.len();
                bytes <= max_bytes
            })
            .count()
    };
    let kept = if latest {
        let n = fitting(&mut encoded.iter().rev());
        &encoded[encoded.len() - n..]
    } else {
        &encoded[..fitting(&mut encoded.iter())]
    };
    truncated |= kept.len() < encoded.len();
    let mut lines = BytesMut::with_capacity(kept.iter().map(|l| l.len()).sum::<usize>() + 64);
    for line in kept {
        lines.extend_from_slice(line);
    }
    let end = ServerLine::HistoryEnd {
        conv: view.clone(),
        truncated,
    };
    lines.extend_from_slice(&encode_line(end));
    Reply { lines, truncated }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(millis).expect("a valid time")
    }

    fn message(room: &str, id: u64, millis: i64) -> Message {
        Message {
            conv: ConvKey::Room(room.parse().expect("a room")),
            id: MessageId::new(id).expect("an id"),
            time: at(millis),
            sender: UserName::parse("alice").expect("a name"),
            text: MessageText::parse(&format!("message {id}")).expect("a text"),
        }
    }

    fn ids(history: &mut History, room: &str, now: i64) -> (Vec<u64>, bool) {
        let conv: Conv = room.parse().expect("a room");
        let key = ConvKey::Room(room.parse().expect("a room"));
        let reply = history.reply(&key, &conv, HistoryRange::Latest(1000), at(now), usize::MAX);
        let text = String::from_utf8(reply.lines.to_vec()).expect("UTF-8");
        let ids = text
            .lines()
            .filter_map(|l| {
                l.strip_prefix(&format!("history {room} "))?
                    .split(' ')
                    .next()?
                    .parse()
                    .ok()
            })
            .collect();
        (ids, reply.truncated)
    }

    #[test]
    fn the_byte_cap_drops_the_oldest_across_rooms() {
        let mut history = History::new(Retention {
            // Three messages of 9 bytes of text each: 2 × 9 + 160 bytes apiece.
            max_bytes: 3 * 178,
            ..Retention::default()
        });
        history.push(message("#a", 1, 0), at(0));
        history.push(message("#b", 2, 0), at(0));
        history.push(message("#a", 3, 0), at(0));
        history.push(message("#b", 4, 0), at(0));
        assert_eq!(ids(&mut history, "#a", 0), (vec![3], true));
        assert_eq!(ids(&mut history, "#b", 0), (vec![2, 4], false));
    }

    #[test]
    fn messages_past_the_age_are_dropped_even_without_new_ones() {
        let mut history = History::new(Retention {
            max_age: Duration::from_secs(60),
            ..Retention::default()
        });
        history.push(message("#a", 1, 0), at(0));
        history.push(message("#a", 2, 30_000), at(30_000));
        assert_eq!(ids(&mut history, "#a", 59_000), (vec![1, 2], false));
        assert_eq!(ids(&mut history, "#a", 61_000), (vec![2], true));
    }

    #[test]
    fn ids_increase_even_when_the_clock_goes_back() {
        let mut ids = IdClock::after(MessageId::new(500));
        assert_eq!(ids.next(100).get(), 501, "past the stored id");
        assert_eq!(ids.next(1_000).get(), 1_000, "the clock leads when ahead");
        assert_eq!(ids.next(900).get(), 1_001, "never back");
    }
}
