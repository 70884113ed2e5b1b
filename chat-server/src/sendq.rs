//! A client's outgoing queue, bounded in bytes like IRC's SendQ: the broker's [`Outbox`]
//! end refuses a line that would take the queued bytes past the limit, and the
//! connection's [`Inbox`] end gives the bytes back as it takes lines out.
//!
//! Hand-written rather than a tokio channel because of idle memory: tokio's channels
//! allocate their first block of slots up front (about 1 KiB here), for every client,
//! forever. This queue is a `VecDeque` under a lock that the broker and the connection
//! each take once per batch, and it gives its memory back whenever it is emptied.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::task::AtomicWaker;

/// Server lines in wire form, `\n` included: usually one line, or a run of lines sent
/// together. Formatted once and shared (reference counted, never copied) by every
/// recipient's queue.
///
/// A line may start with [`Note`]s: what an IRC client is told and the native form cannot
/// say. Only a queue made by [`channel_with_notes`] keeps them.
pub type Line = Bytes;

/// What IRC says and the native protocol does not: about the native line after it (the
/// line is a notice, the part or quit has a reason, a topic was cleared by someone, some
/// of the names listed are away), or on its own (someone went away). Written as a line of
/// its own that starts with `\0` (no native line can), so the IRC writer reads it in
/// order with the lines; a native queue drops it. The IRC writer's own markers
/// (`irc::outgoing`) start with `\0` too, with other letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note<'a> {
    /// The `from` line after it is an IRC `NOTICE`.
    Notice,
    /// The `left` line after it has this reason.
    Reason(&'a str),
    /// The `topic <#room>` line after it is this user clearing the topic.
    ClearedBy(&'a str),
    /// On its own: this user went away with this message, or came back (`None`).
    Away(&'a str, Option<&'a str>),
    /// The `names` or `users` line after it: those of its names whose folded forms are
    /// listed here (comma-separated) are away.
    AwayAmong(&'a str),
}

impl Note<'_> {
    /// The note's line, `\n` included.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Notice => b"\0N\n".to_vec(),
            Self::Reason(reason) => format!("\0R{reason}\n").into_bytes(),
            Self::ClearedBy(name) => format!("\0T{name}\n").into_bytes(),
            Self::Away(name, None) => format!("\0A{name}\n").into_bytes(),
            Self::Away(name, Some(text)) => format!("\0A{name} {text}\n").into_bytes(),
            Self::AwayAmong(names) => format!("\0W{names}\n").into_bytes(),
        }
    }

    /// The note `line` holds (without its `\0` and `\n`), if it is one this writes.
    pub fn parse(line: &str) -> Option<Note<'_>> {
        let (kind, text) = line.split_at_checked(1)?;
        match kind {
            "N" => Some(Note::Notice),
            "R" => Some(Note::Reason(text)),
            "T" => Some(Note::ClearedBy(text)),
            "W" => Some(Note::AwayAmong(text)),
            "A" => Some(match text.split_once(' ') {
                Some((name, away)) => Note::Away(name, Some(away)),
                None => Note::Away(text, None),
            }),
            _ => None,
        }
    }

    /// Whether `line` (without its `\n`) is a note.
    pub fn is_note(line: &[u8]) -> bool {
        line.first() == Some(&0)
            && std::str::from_utf8(&line[1..]).is_ok_and(|note| Note::parse(note).is_some())
    }

    /// `lines` with this note in front.
    pub fn before(&self, lines: &[u8]) -> Line {
        let mut noted = self.encode();
        noted.extend_from_slice(lines);
        Line::from(noted)
    }
}

/// `line`, with `note` in front if there is one.
pub fn noted(note: Option<Note<'_>>, line: Line) -> Line {
    match note {
        Some(note) => note.before(&line),
        None => line,
    }
}

/// `line` without the notes it starts with (shared, not copied).
fn without_notes(line: &Line) -> Line {
    let mut rest = line.clone();
    while rest.first() == Some(&0) {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |i| i + 1);
        rest = rest.slice(end..);
    }
    rest
}

/// Why a line could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Undeliverable {
    /// It would take the queue past its byte limit: the client is not keeping up.
    Full,
    /// The connection is gone.
    Closed,
}

/// What the connection finds when it looks at its queue.
#[derive(Debug, PartialEq, Eq)]
pub enum Ready {
    /// Lines are waiting.
    Lines,
    /// The broker dropped the [`Outbox`] and every line is taken: nothing more will come.
    Closed,
    /// The broker cut the client off (it fell too far behind): drop the backlog.
    Kicked,
}

/// The broker's end of one client's queue.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
    limit: usize,
}

/// The connection's end of one client's queue.
#[derive(Debug)]
pub struct Inbox {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    /// See [`Outbox::kick`]. Outside the lock: the connection checks it before each
    /// write, so that a cut-off client gets no more of a batch already taken.
    kicked: AtomicBool,
    /// The connection task, woken when the queue stops being empty, is closed or kicked.
    waker: AtomicWaker,
    /// The writer reads [`Note`]s (IRC); a native one gets lines without them.
    notes: bool,
}

#[derive(Debug, Default)]
struct State {
    lines: VecDeque<Line>,
    /// The bytes in `lines`: the bound is on this, not on the count.
    bytes: usize,
    /// The [`Outbox`] was dropped.
    closed: bool,
    /// The [`Inbox`] was dropped.
    gone: bool,
}

/// A queue holding at most `limit` bytes of lines (one last line may go past it), for a
/// native client: [`Note`]s are dropped.
pub fn channel(limit: usize) -> (Outbox, Inbox) {
    queue(limit, false)
}

/// Like [`channel`], for a writer that reads [`Note`]s (an IRC client's).
pub fn channel_with_notes(limit: usize) -> (Outbox, Inbox) {
    queue(limit, true)
}

fn queue(limit: usize, notes: bool) -> (Outbox, Inbox) {
    let shared = Arc::new(Shared {
        notes,
        ..Shared::default()
    });
    let outbox = Outbox {
        shared: shared.clone(),
        limit,
    };
    (outbox, Inbox { shared })
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock; if something did, the queue's data is
        // still whole (every change is a single push, pop or flag).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Outbox {
    /// Queues `line` unless that would pass the byte limit.
    pub fn send(&self, line: &Line) -> Result<(), Undeliverable> {
        self.push(line, false)
    }

    /// Queues the last line this client will get (`error:` or `bye:`), past the limit
    /// if need be: a full queue can still say why it is closing.
    pub fn send_last(&self, line: &Line) {
        let _ = self.push(line, true);
    }

    fn push(&self, line: &Line, past_limit: bool) -> Result<(), Undeliverable> {
        // One byte to look at on the way of every line; notes are rare.
        let plain;
        let line = if line.first() == Some(&0) && !self.shared.notes {
            plain = without_notes(line);
            if plain.is_empty() {
                return Ok(());
            }
            &plain
        } else {
            line
        };
        let was_empty = {
            let mut state = self.shared.state();
            if state.gone {
                return Err(Undeliverable::Closed);
            }
            if !past_limit && state.bytes + line.len() > self.limit {
                return Err(Undeliverable::Full);
            }
            state.bytes += line.len();
            state.lines.push_back(line.clone());
            state.lines.len() == 1
        };
        // The connection only waits on an empty queue; a longer one it will drain anyway.
        if was_empty {
            self.shared.waker.wake();
        }
        Ok(())
    }

    /// Tells the connection to give up on what is queued: it finishes the line in
    /// flight, sends only the last line queued (the `error:` saying why), and closes.
    pub fn kick(&self) {
        self.shared.kicked.store(true, Ordering::Release);
        self.shared.waker.wake();
    }

    /// Whether [`Outbox::kick`] was called.
    pub fn is_kicked(&self) -> bool {
        self.shared.kicked.load(Ordering::Acquire)
    }

    /// The byte limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.shared.state().closed = true;
        self.shared.waker.wake();
    }
}

impl Inbox {
    /// Ready once lines are queued, the queue is closed and empty, or the client is
    /// kicked. Takes nothing out.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Ready> {
        // Registered before looking, so a push after the look still wakes us.
        self.shared.waker.register(cx.waker());
        if self.is_kicked() {
            return Poll::Ready(Ready::Kicked);
        }
        let mut state = self.shared.state();
        if !state.lines.is_empty() {
            Poll::Ready(Ready::Lines)
        } else if state.closed {
            Poll::Ready(Ready::Closed)
        } else {
            // About to wait, maybe for hours: an idle client holds no queue memory.
            state.lines = VecDeque::new();
            Poll::Pending
        }
    }

    /// Appends queued lines to `out` while it holds less than `max` bytes, at least one
    /// line if any is queued.
    pub fn take_into(&mut self, out: &mut BytesMut, max: usize) {
        let mut state = self.shared.state();
        while out.is_empty() || out.len() < max {
            let Some(line) = state.lines.pop_front() else {
                break;
            };
            state.bytes -= line.len();
            out.extend_from_slice(&line);
        }
    }

    /// Moves queued lines to `out`, as they were queued (shared, not copied), while
    /// they hold less than `max` bytes, at least one line if any is queued: for a
    /// writer that translates them and may know a line it has seen.
    pub fn take_lines(&mut self, out: &mut Vec<Line>, max: usize) {
        let mut state = self.shared.state();
        let mut taken = 0;
        while out.is_empty() || taken < max {
            let Some(line) = state.lines.pop_front() else {
                break;
            };
            state.bytes -= line.len();
            taken += line.len();
            out.push(line);
        }
    }

    /// Waits until the broker has dropped the [`Outbox`], then returns the last line
    /// queued and drops the rest: a kicked client's farewell.
    pub async fn last_line(&mut self) -> Option<Line> {
        poll_fn(|cx| {
            self.shared.waker.register(cx.waker());
            let mut state = self.shared.state();
            if !state.closed {
                return Poll::Pending;
            }
            state.bytes = 0;
            let last = state.lines.pop_back();
            state.lines = VecDeque::new();
            Poll::Ready(last)
        })
        .await
    }

    /// Whether the broker cut the client off ([`Outbox::kick`]).
    pub fn is_kicked(&self) -> bool {
        self.shared.kicked.load(Ordering::Acquire)
    }

    /// How many lines are queued.
    pub fn queued_lines(&self) -> usize {
        self.shared.state().lines.len()
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut state = self.shared.state();
        state.gone = true;
        state.lines = VecDeque::new();
        state.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ready(inbox: &mut Inbox) -> Ready {
        poll_fn(|cx| inbox.poll_ready(cx)).await
    }

    fn taken(inbox: &mut Inbox) -> BytesMut {
        let mut out = BytesMut::new();
        inbox.take_into(&mut out, usize::MAX);
        out
    }

    #[test]
    fn the_limit_counts_bytes_and_frees_them_as_the_connection_takes_lines() {
        let (outbox, mut inbox) = channel(10);
        let four = Line::from_static(b"abc\n");
        assert_eq!(outbox.send(&four), Ok(()));
        assert_eq!(outbox.send(&four), Ok(()));
        assert_eq!(outbox.send(&four), Err(Undeliverable::Full), "12 > 10");
        let mut out = BytesMut::new();
        inbox.take_into(&mut out, 1);
        assert_eq!(&out[..], b"abc\n", "at least one line, even past max");
        assert_eq!(outbox.send(&four), Ok(()), "4 bytes freed");
        outbox.send_last(&Line::from_static(b"error: full\n"));
        assert_eq!(inbox.queued_lines(), 3, "the last line passes the limit");
        assert_eq!(&taken(&mut inbox)[..], b"abc\nabc\nerror: full\n");
        let (outbox, inbox) = channel(10);
        drop(inbox);
        assert_eq!(outbox.send(&four), Err(Undeliverable::Closed));
    }

    #[tokio::test]
    async fn ready_reports_lines_then_the_close_once_they_are_taken() {
        let (outbox, mut inbox) = channel(100);
        outbox.send(&Line::from_static(b"a\n")).unwrap();
        drop(outbox);
        assert_eq!(
            ready(&mut inbox).await,
            Ready::Lines,
            "lines before the close"
        );
        assert_eq!(&taken(&mut inbox)[..], b"a\n");
        assert_eq!(ready(&mut inbox).await, Ready::Closed);
    }

    #[tokio::test]
    async fn a_waiting_connection_is_woken_by_a_line() {
        let (outbox, mut inbox) = channel(100);
        let waiting = tokio::spawn(async move {
            let ready = ready(&mut inbox).await;
            (ready, taken(&mut inbox))
        });
        tokio::task::yield_now().await;
        outbox.send(&Line::from_static(b"hi\n")).unwrap();
        let (ready, out) = waiting.await.unwrap();
        assert_eq!((ready, &out[..]), (Ready::Lines, &b"hi\n"[..]));
    }

    #[test]
    fn a_native_queue_drops_notes_and_an_irc_queue_keeps_them() {
        let noted = Note::Reason("lunch").before(&Note::Notice.before(b"left #a bob\n"));
        assert_eq!(&noted[..], b"\0Rlunch\n\0N\nleft #a bob\n");
        let (native, mut inbox) = channel(100);
        native.send(&noted).unwrap();
        native.send(&Line::from(Note::Notice.encode())).unwrap();
        assert_eq!(
            inbox.queued_lines(),
            1,
            "a line of notes alone is nothing to send"
        );
        assert_eq!(&taken(&mut inbox)[..], b"left #a bob\n");
        let (irc, mut inbox) = channel_with_notes(100);
        irc.send(&noted).unwrap();
        assert_eq!(&taken(&mut inbox)[..], &noted[..]);
        for note in [
            Note::Notice,
            Note::Reason("a b"),
            Note::ClearedBy("Bob"),
            Note::Away("Bob", Some("gone for a bit")),
            Note::Away("Bob", None),
            Note::AwayAmong("Bob,carol"),
        ] {
            let line = note.encode();
            let text = std::str::from_utf8(&line[1..line.len() - 1]).unwrap();
            assert_eq!(Note::parse(text), Some(note));
        }
    }

    #[tokio::test]
    async fn a_kicked_client_gets_only_the_last_line() {
        let (outbox, mut inbox) = channel(100);
        for line in ["backlog 1\n", "backlog 2\n", "error: too slow\n"] {
            outbox.send(&Line::from(line)).unwrap();
        }
        outbox.kick();
        assert!(outbox.is_kicked());
        assert_eq!(ready(&mut inbox).await, Ready::Kicked);
        drop(outbox);
        assert_eq!(
            inbox.last_line().await,
            Some(Line::from_static(b"error: too slow\n"))
        );
        assert_eq!(inbox.queued_lines(), 0);
    }
}
