//! Buffers, as in WeeChat and irssi: one for the server, one for `*`, one per room and one
//! per direct conversation. Each keeps its own scrollback (with every entry's height at the
//! current width, so scrolling through 10,000 lines wraps only what is on screen), scroll
//! position, unread count, mention flag and unread marker.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::entry::{Entry, EntryKind};
use crate::layout::{self, Look, Row, Widths};
use crate::room::Room;
use crate::sanitize::SafeText;
use chat_proto::{Conv, MessageId, Recipient, RoomName, UserName};
use chrono::NaiveDateTime;

/// Presence lines this close together fold into one.
const PRESENCE_BURST_SECS: i64 = 30;

/// A join the smart filter hid is shown after all when its author speaks within this long
/// after it (WeeChat's `irc.look.smart_filter_join_unmask`, 30 minutes).
pub const JOIN_UNMASK: Duration = Duration::from_secs(30 * 60);

/// A join the smart filter hid, kept aside in case its author speaks soon.
#[derive(Debug)]
struct HiddenJoin {
    /// When it came, for [`JOIN_UNMASK`].
    at: Instant,
    /// Its time, as it would have been drawn.
    time: NaiveDateTime,
    /// The entry it came after, where it goes if shown; `None` if the buffer was empty.
    after: Option<u64>,
    name: UserName,
    room: Option<RoomName>,
}

/// Which buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufferId {
    /// Notices and errors from the server and the client.
    Server,
    /// Messages to everyone (`*`).
    Everyone,
    /// A room.
    Room(RoomName),
    /// Direct messages with one person.
    Query(UserName),
}

impl BufferId {
    /// The name shown in the buffer bar and the prompt.
    pub fn label(&self) -> String {
        match self {
            Self::Server => "server".to_owned(),
            Self::Everyone => "*".to_owned(),
            Self::Room(room) => room.to_string(),
            Self::Query(name) => name.to_string(),
        }
    }

    /// Where text typed in this buffer goes; the server buffer sends nowhere.
    pub fn recipient(&self) -> Option<Recipient> {
        match self {
            Self::Server => None,
            Self::Everyone => Some(Recipient::Everyone),
            Self::Room(room) => Some(Recipient::Room(room.clone())),
            Self::Query(name) => Some(Recipient::User(name.clone())),
        }
    }

    /// The conversation whose history this buffer shows.
    pub fn conv(&self) -> Option<Conv> {
        match self {
            Self::Room(room) => Some(Conv::Room(room.clone())),
            Self::Query(name) => Some(Conv::Direct(name.clone())),
            Self::Server | Self::Everyone => None,
        }
    }

    /// The buffer a recipient's messages are shown in.
    pub fn of(recipient: &Recipient) -> Self {
        match recipient {
            Recipient::Everyone => Self::Everyone,
            Recipient::Room(room) => Self::Room(room.clone()),
            Recipient::User(name) => Self::Query(name.clone()),
        }
    }

    /// The buffer a conversation is shown in.
    pub fn of_conv(conv: &Conv) -> Self {
        match conv {
            Conv::Room(room) => Self::Room(room.clone()),
            Conv::Direct(name) => Self::Query(name.clone()),
        }
    }

    /// A file name for its log: `server`, `everyone`, `#rust`, `@bob`.
    pub fn log_name(&self) -> String {
        match self {
            Self::Server => "server".to_owned(),
            Self::Everyone => "everyone".to_owned(),
            Self::Room(room) => room.to_string(),
            Self::Query(name) => format!("@{}", name.folded()),
        }
    }

    /// Whether two ids name one buffer: names compare folded, as the server compares them.
    pub fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Query(a), Self::Query(b)) => a.folded() == b.folded(),
            _ => self == other,
        }
    }
}

/// How entries are measured: the look and the widths rows are laid out in.
#[derive(Debug, Clone, Copy)]
pub struct Measure<'a> {
    /// How entries are drawn.
    pub look: &'a Look,
    /// The message pane's width, and the screen's.
    pub width: Widths,
}

impl Measure<'_> {
    fn height(&self, entry: &Entry) -> usize {
        layout::height(entry, self.look, self.width)
    }
}

/// What a batch of history brought that the buffer did not show.
#[derive(Debug, Default)]
pub struct Merged {
    /// How many entries.
    pub new: usize,
    /// Who sent the newest of them that names us.
    pub mention_from: Option<UserName>,
    /// Who sent the newest of them from someone else.
    pub message_from: Option<UserName>,
    /// The new messages, oldest first, for `--log-dir`.
    pub messages: Vec<Entry>,
}

/// One buffer.
#[derive(Debug)]
pub struct Buffer {
    /// Which one.
    pub id: BufferId,
    entries: VecDeque<Entry>,
    /// Rows each entry takes at the measured width, in step with `entries`.
    heights: VecDeque<usize>,
    /// Entries before this index were measured at an older width. A resize only marks
    /// them so; they are measured again when something needs them, newest first, so
    /// dragging a window's edge does not wrap 10,000 entries per step.
    stale: usize,
    ids: HashSet<MessageId>,
    /// Messages that arrived while another buffer was shown.
    pub unread: usize,
    /// Whether one of those names us.
    pub mentioned: bool,
    /// The last entry seen before leaving; the `── new ──` line goes after it.
    pub marker: Option<u64>,
    /// Rows scrolled up from the bottom; 0 follows new entries.
    pub scroll: usize,
    /// Entries that arrived while scrolled up.
    pub unseen: usize,
    /// For a room: its members, their roles, its topic and modes, as far as we know.
    pub room: Room,
    /// Whether we are a member of this room now.
    pub member: bool,
    /// Whether we want to be: rejoined after a reconnect.
    pub wanted: bool,
    /// The newest message id the user has had on screen here.
    pub seen: Option<MessageId>,
    /// The account's read marker here as far as we know: the last one the server told
    /// us of, or the last one we sent.
    pub read: Option<MessageId>,
    /// When we last sent one: at most one `/read` a second per buffer.
    pub read_sent_at: Option<Instant>,
    /// The server has nothing older than what is here: asking for it brought nothing.
    pub at_start: bool,
    /// The first of our lines sent from the outbox at the last login. The server routed
    /// them after everything the catch-up answering that login holds, so the catch-up
    /// goes above them rather than under lines others never saw first.
    pub flushed_from: Option<u64>,
    last_id: Option<MessageId>,
    /// Joins the smart filter hid in the last [`JOIN_UNMASK`], oldest first.
    hidden_joins: VecDeque<HiddenJoin>,
}

impl Buffer {
    fn new(id: BufferId) -> Self {
        Self {
            id,
            entries: VecDeque::new(),
            heights: VecDeque::new(),
            stale: 0,
            ids: HashSet::new(),
            unread: 0,
            mentioned: false,
            marker: None,
            scroll: 0,
            unseen: 0,
            room: Room::default(),
            member: false,
            wanted: false,
            seen: None,
            read: None,
            read_sent_at: None,
            at_start: false,
            flushed_from: None,
            last_id: None,
            hidden_joins: VecDeque::new(),
        }
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    /// The largest message id seen here: where a catch-up starts.
    pub fn last_id(&self) -> Option<MessageId> {
        self.last_id
    }

    /// The oldest message id here: where scrolling back past the top goes on from.
    pub fn first_id(&self) -> Option<MessageId> {
        // History is merged in id order, so the first entry with an id has the smallest.
        self.entries.iter().find_map(|e| e.kind.id())
    }

    /// Whether the entry with this id is here already.
    pub fn has_id(&self, id: MessageId) -> bool {
        self.ids.contains(&id)
    }

    /// Another session read this buffer up to message `id`: the `── new ──` line moves
    /// forward to there, and what is left unread is counted again (never up). A message
    /// without an id (a direct message as it arrived) counts as read once `id` reaches
    /// every id here: there is no telling where it falls otherwise.
    pub fn read_up_to(&mut self, id: MessageId) {
        let unread_from = if self.last_id.is_none_or(|last| id >= last) {
            self.entries.len()
        } else {
            self.entries
                .iter()
                .position(|e| matches!(e.kind, EntryKind::Message { id: Some(m), .. } if m > id))
                .unwrap_or(self.entries.len())
        };
        let (mut count, mut mention) = (0, false);
        for entry in self.entries.range(unread_from..) {
            if let EntryKind::Message { mention: m, .. } = entry.kind {
                count += 1;
                mention |= m;
            }
        }
        self.unread = self.unread.min(count);
        self.mentioned &= mention;
        let marker_at = self.marker.and_then(|seq| self.index_of(seq));
        if unread_from > 0 && marker_at.is_none_or(|at| at + 1 < unread_from) {
            self.marker = Some(self.entries[unread_from - 1].seq);
        }
    }

    /// Where the unread marker goes: after this index, if entries follow it.
    fn marker_index(&self) -> Option<usize> {
        let seq = self.marker?;
        let index = self.index_of(seq)?;
        (index + 1 < self.entries.len()).then_some(index)
    }

    fn index_of(&self, seq: u64) -> Option<usize> {
        // Seqs grow along the deque except for inserted history; search from the back.
        self.entries.iter().rposition(|e| e.seq == seq)
    }

    /// Measures stale entries, newest first, until the newest `rows` rows are known.
    pub fn measure_rows(&mut self, measure: &Measure, rows: usize) {
        let mut known: usize = self.heights.iter().skip(self.stale).sum();
        while self.stale > 0 && known < rows {
            self.stale -= 1;
            let height = measure.height(&self.entries[self.stale]);
            self.heights[self.stale] = height;
            known += height;
        }
    }

    /// Rows of the entries from `index` on, counted (newest first) until they pass
    /// `limit`; stale heights are measured without being stored.
    fn rows_from(&self, index: usize, measure: &Measure, limit: usize) -> usize {
        let mut rows = 0;
        for at in (index..self.entries.len()).rev() {
            rows += if at < self.stale {
                measure.height(&self.entries[at])
            } else {
                self.heights[at]
            };
            if rows > limit {
                break;
            }
        }
        rows
    }

    /// Every row, the marker included.
    pub fn total_rows(&mut self, measure: &Measure) -> usize {
        self.measure_rows(measure, usize::MAX);
        self.heights.iter().sum::<usize>() + usize::from(self.marker_index().is_some())
    }

    /// Rows below the bottom of entry `seq` (the marker included): how far to scroll up
    /// to bring it to the bottom of the pane.
    pub fn rows_below(&mut self, seq: u64, measure: &Measure) -> Option<usize> {
        self.measure_rows(measure, usize::MAX);
        let index = self.index_of(seq)?;
        let below: usize = self.heights.iter().skip(index + 1).sum();
        let marker = self.marker_index().is_some_and(|m| m >= index);
        Some(below + usize::from(marker))
    }

    /// The rows from `skip` rows above the bottom up to `rows` of them, top first. Only
    /// the entries on screen are wrapped; the rest are counted by their stored heights
    /// (measured here, without storing, if a resize left them stale).
    pub fn visible_rows(
        &self,
        look: &Look,
        width: Widths,
        skip: usize,
        rows: usize,
        highlight: Option<&str>,
    ) -> Vec<Row> {
        let marker = self.marker_index();
        let mut out: Vec<Row> = Vec::with_capacity(rows);
        let mut below = 0;
        for (index, entry) in self.entries.iter().enumerate().rev() {
            if out.len() >= rows {
                break;
            }
            let height = if index < self.stale {
                layout::height(entry, look, width)
            } else {
                self.heights[index]
            };
            if below + height > skip {
                let mut lines = layout::rows(entry, look, width, highlight);
                lines.reverse();
                let from = skip.saturating_sub(below);
                out.extend(lines.into_iter().skip(from).take(rows - out.len()));
            }
            below += height;
            if marker == Some(index.wrapping_sub(1)) && index > 0 {
                if below >= skip && out.len() < rows {
                    out.push(layout::marker_row(width.pane));
                }
                below += 1;
            }
        }
        out.reverse();
        out
    }

    fn push(&mut self, entry: Entry, height: usize, capacity: usize) {
        if let Some(id) = entry.kind.id() {
            self.ids.insert(id);
            self.last_id = self.last_id.max(Some(id));
        }
        if self.scroll > 0 {
            // Keep the rows being read where they are.
            self.scroll += height;
            self.unseen += 1;
        }
        self.entries.push_back(entry);
        self.heights.push_back(height);
        while self.entries.len() > capacity {
            self.pop_front();
        }
    }

    fn pop_front(&mut self) {
        if let Some(old) = self.entries.pop_front() {
            self.heights.pop_front();
            self.stale = self.stale.saturating_sub(1);
            if let Some(id) = old.kind.id() {
                self.ids.remove(&id);
            }
        }
        let known: usize = self.heights.iter().sum();
        self.scroll = self.scroll.min(known);
    }

    /// Inserts `entries` at `at`, each with a day-change line if its date is not that of
    /// the entry before it (and the entry after them decided again). Scrolled up, the view
    /// stays on the rows being read: lines inserted below its bottom push those rows up, so
    /// the scroll grows with them; lines inserted higher up leave it where it is.
    fn insert_run(&mut self, at: usize, entries: Vec<Entry>, measure: &Measure) {
        let view_moves = self.scroll > 0 && self.rows_from(at, measure, self.scroll) <= self.scroll;
        let count = entries.len();
        let mut inserted_rows = 0;
        for (offset, mut entry) in entries.into_iter().enumerate() {
            let at = at + offset;
            entry.day_change = at
                .checked_sub(1)
                .is_some_and(|before| self.entries[before].time.date() != entry.time.date());
            let height = measure.height(&entry);
            inserted_rows += height;
            if let Some(id) = entry.kind.id() {
                self.ids.insert(id);
                self.last_id = self.last_id.max(Some(id));
            }
            if at < self.stale {
                self.stale += 1;
            }
            self.entries.insert(at, entry);
            self.heights.insert(at, height);
        }
        inserted_rows += self.recheck_day_change(at + count, measure);
        if view_moves {
            self.scroll += inserted_rows;
        }
    }

    /// Whether entry `index` starts a new day is decided again, now that another entry
    /// comes before it; returns the rows it gained (its day-change line), or 0.
    fn recheck_day_change(&mut self, index: usize, measure: &Measure) -> usize {
        let Some(before) = index.checked_sub(1).map(|i| self.entries[i].time.date()) else {
            return 0;
        };
        let Some(entry) = self.entries.get_mut(index) else {
            return 0;
        };
        let day_change = entry.time.date() != before;
        if day_change == entry.day_change {
            return 0;
        }
        entry.day_change = day_change;
        let new = measure.height(entry);
        let gained = new.saturating_sub(self.heights[index]);
        self.heights[index] = new;
        gained
    }

    /// Changes the last entry in place, keeping its height (and the scroll) right.
    fn amend_last(&mut self, measure: &Measure, change: impl FnOnce(&mut EntryKind)) {
        let (Some(entry), Some(height)) = (self.entries.back_mut(), self.heights.back_mut()) else {
            return;
        };
        change(&mut entry.kind);
        let new = measure.height(entry);
        if self.scroll > 0 {
            self.scroll = (self.scroll + new).saturating_sub(*height);
        }
        *height = new;
    }

    /// Marks our pending message `seq` as sent.
    pub fn mark_sent(&mut self, seq: u64, measure: &Measure) {
        if let Some(index) = self.index_of(seq) {
            if let EntryKind::Own { pending, .. } = &mut self.entries[index].kind {
                *pending = false;
            }
            self.heights[index] = measure.height(&self.entries[index]);
        }
    }

    /// Marks our message `seq` as waiting in the outbox again.
    pub fn mark_pending(&mut self, seq: u64, measure: &Measure) {
        if let Some(index) = self.index_of(seq) {
            if let EntryKind::Own { pending, .. } = &mut self.entries[index].kind {
                *pending = true;
            }
            self.heights[index] = measure.height(&self.entries[index]);
        }
    }

    fn forget_join(&mut self, name: &UserName) {
        self.hidden_joins
            .retain(|h| h.name.folded() != name.folded());
    }

    /// Empties the buffer.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.heights.clear();
        self.stale = 0;
        self.ids.clear();
        self.scroll = 0;
        self.unseen = 0;
        self.marker = None;
        self.hidden_joins.clear();
    }

    /// After a resize: every height is stale; the newest `rows` are measured now.
    fn remeasure(&mut self, measure: &Measure, rows: usize) {
        self.stale = self.entries.len();
        self.measure_rows(measure, rows);
    }
}

/// Every buffer and which one is shown.
#[derive(Debug)]
pub struct Buffers {
    list: Vec<Buffer>,
    current: usize,
    next_seq: u64,
    capacity: usize,
}

impl Buffers {
    /// The server and `*` buffers, each keeping at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            list: vec![
                Buffer::new(BufferId::Server),
                Buffer::new(BufferId::Everyone),
            ],
            current: 1,
            next_seq: 0,
            capacity: capacity.max(1),
        }
    }

    /// All buffers, in bar order.
    pub fn all(&self) -> &[Buffer] {
        &self.list
    }

    /// All buffers, to change.
    pub fn all_mut(&mut self) -> &mut [Buffer] {
        &mut self.list
    }

    /// The index of the shown buffer.
    pub fn current_index(&self) -> usize {
        self.current
    }

    /// The shown buffer.
    pub fn current(&self) -> &Buffer {
        &self.list[self.current]
    }

    /// The shown buffer, to change.
    pub fn current_mut(&mut self) -> &mut Buffer {
        &mut self.list[self.current]
    }

    /// The buffer at `index`.
    pub fn get_mut(&mut self, index: usize) -> &mut Buffer {
        &mut self.list[index]
    }

    /// The index of buffer `id`, if open.
    pub fn find(&self, id: &BufferId) -> Option<usize> {
        self.list.iter().position(|b| b.id.same(id))
    }

    /// The index of buffer `id`, opening it at the end of the bar if needed.
    pub fn open(&mut self, id: BufferId) -> usize {
        match self.find(&id) {
            Some(index) => index,
            None => {
                self.list.push(Buffer::new(id));
                self.list.len() - 1
            }
        }
    }

    /// The index of the buffer named `name` (as in the bar) or numbered `name` (from 1).
    pub fn by_name(&self, name: &str) -> Option<usize> {
        if let Ok(n) = name.parse::<usize>() {
            return (1..=self.list.len()).contains(&n).then(|| n - 1);
        }
        let folded = chat_proto::name::fold(name);
        self.list
            .iter()
            .position(|b| b.id.label() == name)
            .or_else(|| {
                self.list
                    .iter()
                    .position(|b| chat_proto::name::fold(&b.id.label()) == folded)
            })
    }

    /// Shows buffer `index`: the one left keeps a marker where it was read up to, the one
    /// shown is read.
    pub fn switch(&mut self, index: usize) {
        if index >= self.list.len() || index == self.current {
            return;
        }
        let left = &mut self.list[self.current];
        left.marker = left.entries.back().map(|e| e.seq);
        self.current = index;
        let shown = &mut self.list[index];
        shown.unread = 0;
        shown.mentioned = false;
    }

    /// Closes buffer `index` (never the server or `*` buffer) and shows its left neighbour.
    pub fn close(&mut self, index: usize) {
        if index < 2 || index >= self.list.len() {
            return;
        }
        self.list.remove(index);
        if self.current >= index {
            self.current -= 1;
        }
        let shown = &mut self.list[self.current];
        shown.unread = 0;
        shown.mentioned = false;
    }

    /// Adds an entry to buffer `index`, counting it as unread there if it is a message and
    /// the buffer is not shown. Returns its seq.
    pub fn push(
        &mut self,
        index: usize,
        time: NaiveDateTime,
        kind: EntryKind,
        measure: &Measure,
    ) -> u64 {
        let seq = self.seq();
        let buffer = &mut self.list[index];
        let day_change = buffer
            .entries
            .back()
            .is_some_and(|last| last.time.date() != time.date());
        let entry = Entry {
            seq,
            time,
            day_change,
            kind,
        };
        let height = measure.height(&entry);
        if index != self.current {
            if let EntryKind::Message { mention, .. } = &entry.kind {
                buffer.unread += 1;
                buffer.mentioned |= *mention;
            }
        }
        buffer.push(entry, height, self.capacity);
        seq
    }

    /// Adds a presence line, folded into the previous one if that is the same kind of
    /// presence from the same burst.
    pub fn presence(
        &mut self,
        index: usize,
        time: NaiveDateTime,
        joined: bool,
        name: UserName,
        room: Option<RoomName>,
        measure: &Measure,
    ) {
        let buffer = &mut self.list[index];
        let folds = buffer.entries.back().is_some_and(|last| {
            (time - last.time).num_seconds().abs() <= PRESENCE_BURST_SECS
                && matches!(&last.kind, EntryKind::Presence { joined: j, room: r, .. } if *j == joined && *r == room)
        });
        if folds {
            buffer.amend_last(measure, |kind| {
                if let EntryKind::Presence { names, .. } = kind {
                    names.push(name);
                }
            });
        } else {
            let kind = EntryKind::Presence {
                joined,
                names: vec![name],
                room,
            };
            self.push(index, time, kind, measure);
        }
    }

    /// The smart filter hides `name`'s join from buffer `index`: it is kept aside for
    /// [`JOIN_UNMASK`] in case they speak, with where it would have gone.
    pub fn hide_join(
        &mut self,
        index: usize,
        now: Instant,
        time: NaiveDateTime,
        name: UserName,
        room: Option<RoomName>,
    ) {
        let buffer = &mut self.list[index];
        while buffer
            .hidden_joins
            .front()
            .is_some_and(|h| now.saturating_duration_since(h.at) >= JOIN_UNMASK)
        {
            buffer.hidden_joins.pop_front();
        }
        buffer.forget_join(&name);
        let after = buffer.entries.back().map(|e| e.seq);
        buffer.hidden_joins.push_back(HiddenJoin {
            at: now,
            time,
            after,
            name,
            room,
        });
    }

    /// `name` left buffer `index`: a join of theirs kept aside will not be shown.
    pub fn forget_join(&mut self, index: usize, name: &UserName) {
        self.list[index].forget_join(name);
    }

    /// `name` speaks in buffer `index`: their join hidden less than [`JOIN_UNMASK`] ago is
    /// shown after all, where it came, as WeeChat's smart filter unmasks it.
    pub fn unmask_join(&mut self, index: usize, name: &UserName, now: Instant, measure: &Measure) {
        let buffer = &mut self.list[index];
        let Some(found) = buffer
            .hidden_joins
            .iter()
            .rposition(|h| h.name.folded() == name.folded())
        else {
            return;
        };
        let Some(hidden) = buffer.hidden_joins.remove(found) else {
            return;
        };
        if now.saturating_duration_since(hidden.at) >= JOIN_UNMASK {
            return;
        }
        let at = match hidden.after {
            None => 0,
            Some(seq) => match buffer.index_of(seq) {
                Some(index) => index + 1,
                // What it came after has left the scrollback, and so would it have.
                None => return,
            },
        };
        let entry = Entry {
            seq: self.seq(),
            time: hidden.time,
            day_change: false,
            kind: EntryKind::Presence {
                joined: true,
                names: vec![hidden.name],
                room: hidden.room,
            },
        };
        self.list[index].insert_run(at, vec![entry], measure);
    }

    /// Merges a batch of history into buffer `index`, in id order and without the
    /// messages it already shows (those shown without an id, ours or a direct message as
    /// it arrived, are matched by sender and text and given their id), under a marker
    /// saying how many are new. Only `news` (messages that came after what the user saw)
    /// counts as unread in a buffer not shown. Returns what was new.
    pub fn merge_history(
        &mut self,
        index: usize,
        label: &str,
        batch: Vec<(NaiveDateTime, EntryKind)>,
        news: bool,
        measure: &Measure,
    ) -> Merged {
        let buffer = &mut self.list[index];
        let mut fresh = Vec::new();
        for (time, kind) in batch {
            let Some(id) = kind.id() else { continue };
            if buffer.ids.contains(&id) {
                continue;
            }
            let shown = buffer
                .entries
                .iter_mut()
                .find(|e| e.kind.id().is_none() && e.kind.same_message(&kind));
            if let Some(entry) = shown {
                entry.kind.set_id(id);
                buffer.ids.insert(id);
                buffer.last_id = buffer.last_id.max(Some(id));
                continue;
            }
            fresh.push((time, kind));
        }
        let mut merged = Merged::default();
        for (_, kind) in &fresh {
            if let EntryKind::Message { from, mention, .. } = kind {
                merged.message_from = Some(from.clone());
                if *mention {
                    merged.mention_from = Some(from.clone());
                }
            }
        }
        if fresh.is_empty() {
            return merged;
        }
        let newest = fresh.iter().filter_map(|(_, k)| k.id()).max();
        // Before the first message shown that is newer than the whole batch, and above the
        // marker heading it, if any: a marker belongs to the messages under it.
        let mut at = buffer
            .entries
            .iter()
            .position(|e| e.kind.id().is_some_and(|id| Some(id) > newest))
            .unwrap_or(buffer.entries.len());
        if news {
            let flushed = buffer
                .flushed_from
                .take()
                .and_then(|seq| buffer.index_of(seq));
            if let Some(flushed) = flushed {
                at = at.min(flushed);
            }
        }
        while at > 0 && matches!(buffer.entries[at - 1].kind, EntryKind::Marker(_)) {
            at -= 1;
        }
        let count = fresh.len();
        let marker_time = fresh[0].0;
        let label = SafeText::new(&format!("{label}: {count}"));
        let mut added = vec![(marker_time, EntryKind::Marker(label))];
        added.extend(fresh);
        let added: Vec<Entry> = added
            .into_iter()
            .map(|(time, kind)| Entry {
                seq: self.seq(),
                time,
                day_change: false,
                kind,
            })
            .collect();
        let buffer = &mut self.list[index];
        buffer.insert_run(at, added, measure);
        merged.messages = buffer
            .entries
            .range(at + 1..at + 1 + count)
            .cloned()
            .collect();
        if news && index != self.current {
            buffer.unread += count;
        }
        while buffer.entries.len() > self.capacity {
            buffer.pop_front();
        }
        merged.new = count;
        merged
    }

    /// Puts a marker line (`── beginning of history ──`) at the very top of buffer
    /// `index`, once: the server has nothing older. The view stays on the rows it shows.
    pub fn mark_start(&mut self, index: usize, label: &str, measure: &Measure) {
        let buffer = &self.list[index];
        let Some(time) = buffer.entries.front().map(|e| e.time) else {
            return;
        };
        let label = SafeText::new(label);
        if buffer
            .entries
            .front()
            .is_some_and(|e| e.kind == EntryKind::Marker(label.clone()))
        {
            return;
        }
        let seq = self.seq();
        let entry = Entry {
            seq,
            time,
            day_change: false,
            kind: EntryKind::Marker(label),
        };
        let height = measure.height(&entry);
        let buffer = &mut self.list[index];
        buffer.entries.push_front(entry);
        buffer.heights.push_front(height);
        if buffer.stale > 0 {
            buffer.stale += 1;
        }
    }

    /// After a resize: each buffer's newest `rows` (past its scroll position) are
    /// measured again now, the rest when needed.
    pub fn remeasure(&mut self, measure: &Measure, rows: usize) {
        for buffer in &mut self.list {
            let rows = rows.saturating_add(buffer.scroll);
            buffer.remeasure(measure, rows);
        }
    }

    fn seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }
}
