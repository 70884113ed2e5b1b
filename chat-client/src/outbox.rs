//! [`Outbox`]: lines typed while disconnected, shown as pending and sent in order, once,
//! after the next login.

use std::collections::VecDeque;

use chat_proto::ClientLine;

use crate::buffers::BufferId;

/// A line waiting for a connection, and the pending entry that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The line to send.
    pub line: ClientLine,
    /// The buffer showing it.
    pub buffer: BufferId,
    /// The entry showing it.
    pub seq: u64,
    /// Whether it went to `--log-dir` already: a line is logged when it is first sent,
    /// not while pending, and not again if the connection gives it back.
    pub logged: bool,
}

/// Lines handed to the connection that it may still give back unsent.
const IN_FLIGHT: usize = 256;

/// Lines waiting for a connection, oldest first, and the last lines handed to one.
#[derive(Debug, Default)]
pub struct Outbox {
    waiting: VecDeque<Pending>,
    /// The connection's own queue holds at most this many; older ones were written.
    in_flight: VecDeque<Pending>,
}

impl Outbox {
    /// Queues a line behind the others.
    pub fn push(&mut self, pending: Pending) {
        self.waiting.push_back(pending);
    }

    /// Takes every waiting line, oldest first.
    pub fn drain(&mut self) -> Vec<Pending> {
        self.waiting.drain(..).collect()
    }

    /// A line was handed to the connection.
    pub fn sent(&mut self, pending: Pending) {
        self.in_flight.push_back(pending);
        if self.in_flight.len() > IN_FLIGHT {
            self.in_flight.pop_front();
        }
    }

    /// The connection gave `lines` back unsent: the ones that were ours wait again, at the
    /// front and in order. Returns them, so their entries can show as pending.
    pub fn returned(&mut self, lines: &[ClientLine]) -> Vec<Pending> {
        let mut back = Vec::new();
        for line in lines {
            if let Some(at) = self.in_flight.iter().position(|p| &p.line == line) {
                back.extend(self.in_flight.remove(at));
            }
        }
        for pending in back.iter().rev() {
            self.waiting.push_front(pending.clone());
        }
        back
    }

    /// How many lines wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Whether none wait.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(text: &str, seq: u64) -> Pending {
        Pending {
            line: format!("*: {text}").parse().expect("a client line"),
            buffer: BufferId::Everyone,
            seq,
            logged: false,
        }
    }

    #[test]
    fn lines_given_back_wait_again_in_order_before_newer_ones() {
        let mut outbox = Outbox::default();
        for (i, text) in ["a", "b", "c"].iter().enumerate() {
            outbox.sent(pending(text, i as u64));
        }
        outbox.push(pending("d", 3));
        let back = outbox.returned(&[
            pending("b", 0).line,
            pending("c", 0).line,
            pending("x", 0).line,
        ]);
        assert_eq!(back.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2]);
        let order: Vec<u64> = outbox.drain().iter().map(|p| p.seq).collect();
        assert_eq!(order, [1, 2, 3]);
        assert!(
            outbox.returned(&[pending("b", 0).line]).is_empty(),
            "given back once"
        );
    }
}
