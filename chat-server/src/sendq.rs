//! A client's outgoing queue, bounded in bytes like IRC's SendQ: the broker's [`Outbox`]
//! end refuses a line that would take the queued bytes past the limit, and the writer's
//! [`Inbox`] end gives the bytes back as it takes lines out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Server lines in wire form, `\n` included: usually one line, or a run of lines sent
/// together. Formatted once and shared (reference counted, never copied) by every
/// recipient's queue.
pub type Line = Bytes;

/// Why a line could not be queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Undeliverable {
    /// It would take the queue past its byte limit: the client is not keeping up.
    Full,
    /// The writer is gone.
    Closed,
}

/// The broker's end of one client's queue.
#[derive(Debug)]
pub struct Outbox {
    /// The channel itself is unbounded: `queued` is the bound, counted in bytes.
    tx: mpsc::UnboundedSender<Line>,
    queued: Arc<AtomicUsize>,
    limit: usize,
    /// Cancelled by the broker when the client is cut off: the writer then drops what is
    /// queued instead of waiting on a client that does not read.
    kick: CancellationToken,
}

/// The writer's end of one client's queue.
#[derive(Debug)]
pub struct Inbox {
    rx: mpsc::UnboundedReceiver<Line>,
    queued: Arc<AtomicUsize>,
    /// See [`Outbox::kick`].
    pub kick: CancellationToken,
}

/// A queue holding at most `limit` bytes of lines (one last line may go past it).
pub fn channel(limit: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let kick = CancellationToken::new();
    let outbox = Outbox {
        tx,
        queued: queued.clone(),
        limit,
        kick: kick.clone(),
    };
    (outbox, Inbox { rx, queued, kick })
}

impl Outbox {
    /// Queues `line` unless that would pass the byte limit.
    pub fn send(&self, line: &Line) -> Result<(), Undeliverable> {
        let before = self.queued.fetch_add(line.len(), Ordering::Relaxed);
        if before + line.len() > self.limit {
            self.queued.fetch_sub(line.len(), Ordering::Relaxed);
            return Err(Undeliverable::Full);
        }
        self.push(line)
    }

    /// Queues the last line this client will get (`error:` or `bye:`), past the limit
    /// if need be: a full queue can still say why it is closing.
    pub fn send_last(&self, line: &Line) {
        self.queued.fetch_add(line.len(), Ordering::Relaxed);
        let _ = self.push(line);
    }

    fn push(&self, line: &Line) -> Result<(), Undeliverable> {
        self.tx.send(line.clone()).map_err(|_| {
            self.queued.fetch_sub(line.len(), Ordering::Relaxed);
            Undeliverable::Closed
        })
    }

    /// Tells the writer to give up on what is queued; see [`Inbox::kick`].
    pub fn kick(&self) {
        self.kick.cancel();
    }

    /// Whether [`Outbox::kick`] was called.
    pub fn is_kicked(&self) -> bool {
        self.kick.is_cancelled()
    }

    /// The byte limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Inbox {
    /// The next line, or `None` once the broker dropped the [`Outbox`] and all is taken.
    pub async fn recv(&mut self) -> Option<Line> {
        let line = self.rx.recv().await?;
        self.taken(&line);
        Some(line)
    }

    /// The next line if one is queued: never waits.
    pub fn try_recv(&mut self) -> Option<Line> {
        let line = self.rx.try_recv().ok()?;
        self.taken(&line);
        Some(line)
    }

    /// How many lines are queued.
    pub fn queued_lines(&self) -> usize {
        self.rx.len()
    }

    fn taken(&self, line: &Line) {
        self.queued.fetch_sub(line.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_counts_bytes_and_frees_them_as_the_writer_takes_lines() {
        let (outbox, mut inbox) = channel(10);
        let four = Line::from_static(b"abc\n");
        assert_eq!(outbox.send(&four), Ok(()));
        assert_eq!(outbox.send(&four), Ok(()));
        assert_eq!(outbox.send(&four), Err(Undeliverable::Full), "12 > 10");
        assert_eq!(inbox.try_recv(), Some(four.clone()));
        assert_eq!(outbox.send(&four), Ok(()), "4 bytes freed");
        outbox.send_last(&Line::from_static(b"error: full\n"));
        assert_eq!(inbox.queued_lines(), 3, "the last line passes the limit");
        let (outbox, inbox) = channel(10);
        drop(inbox);
        assert_eq!(outbox.send(&four), Err(Undeliverable::Closed));
    }
}
