//! The broker: the one task that owns the roster of who is online and routes every line.
//!
//! It never awaits a client. Each peer's queue is fed with `try_send`; a full queue means
//! that client is too slow (IRC's "SendQ exceeded"), so it is dropped and the others
//! never notice. A closed queue means its writer died; that peer is dropped too.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chat_proto::{
    ClientLine, FromLine, MessageText, ParseError, Recipient, ServerLine, UserName, encode_line,
};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Identifies one connection for its whole life, unlike a name, which a later
/// connection may reuse while the earlier one's last events are still on their way.
pub type ConnId = u64;

/// Server lines in wire form, `\n` included: usually one line, or a run of `joined`
/// lines. Formatted once and shared (reference counted, never copied) by every
/// recipient's queue.
pub type Line = Bytes;

/// Events routed per turn of the broker before it lets other tasks run.
const BROKER_BATCH: usize = 1024;
/// Most logins whose `joined` lines are announced together.
const MAX_JOIN_BATCH: usize = 1024;
/// How long a `joined` announcement may wait for more logins to share its writes, per
/// peer online: an announcement costs one write per peer, so the wait grows with the
/// roster (0.5 ms for 10 people, 250 ms for 5,000, at most `MAX_JOIN_ANNOUNCE_DELAY`).
/// Any other event announces at once, so nobody sees a message from someone before
/// their `joined`; only the presence line itself waits.
const JOIN_ANNOUNCE_DELAY_PER_PEER: Duration = Duration::from_micros(50);
const MAX_JOIN_ANNOUNCE_DELAY: Duration = Duration::from_millis(250);

/// What readers tell the broker.
#[derive(Debug)]
pub enum BrokerEvent {
    /// A client sent a valid name. The broker answers on `accepted`; if the name is taken
    /// it has already queued the `error:` on `queue` and dropped it.
    Join {
        /// The connection.
        id: ConnId,
        /// The name it asks for.
        name: UserName,
        /// The client's outgoing queue; the broker becomes its only sender.
        queue: mpsc::Sender<Line>,
        /// Cancelled by the broker to cut the client off when it is too slow.
        kick: CancellationToken,
        /// Whether the login was accepted.
        accepted: oneshot::Sender<bool>,
    },
    /// Lines after login, in order, each parsed or with why it could not be (answered
    /// in order with `error:`). Several per event when a read brought several.
    Lines {
        /// The connection.
        id: ConnId,
        /// The parsed lines.
        lines: Vec<Result<ClientLine, ParseError>>,
    },
    /// The connection broke the framing rules: send `error: <reason>`, then drop it.
    Fatal {
        /// The connection.
        id: ConnId,
        /// What went wrong.
        reason: String,
    },
    /// The client went away (EOF or a read error).
    Leave {
        /// The connection.
        id: ConnId,
    },
}

/// Runs the broker until every `broker_tx` is dropped, then says `bye` to everyone.
pub async fn broker_loop(mut events: mpsc::Receiver<BrokerEvent>, strict_names: bool) {
    let mut broker = Broker {
        skeletons: strict_names.then(HashMap::new),
        ..Broker::default()
    };
    // When the pending `joined` announcements are due; see `Broker::flush_joins`.
    let mut announce_at: Option<Instant> = None;
    loop {
        let event = tokio::select! {
            event = events.recv() => event,
            () = sleep_until_or_never(announce_at) => {
                broker.flush_joins();
                announce_at = None;
                continue;
            }
        };
        let Some(event) = event else { break };
        broker.handle(event);
        // Route everything already waiting before yielding: the writers this wakes then
        // find whole batches in their queues and write each with one syscall.
        for _ in 0..BROKER_BATCH {
            let Ok(event) = events.try_recv() else { break };
            broker.handle(event);
        }
        if broker.pending_joins.is_empty() {
            announce_at = None;
        } else if announce_at.is_none() {
            let peers = u32::try_from(broker.roster.len()).unwrap_or(u32::MAX);
            announce_at = Some(
                Instant::now()
                    + (JOIN_ANNOUNCE_DELAY_PER_PEER * peers).min(MAX_JOIN_ANNOUNCE_DELAY),
            );
        }
    }
    // Every reader has stopped, so everything anyone sent is routed. Queue the farewell
    // behind it; dropping the broker then closes every queue and the writers finish.
    broker.flush_joins();
    let bye = encode_line(ServerLine::Bye("server shutting down".to_owned()));
    for peer in broker.roster.values() {
        peer.send_last(&bye);
    }
}

async fn sleep_until_or_never(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[derive(Default)]
struct Broker {
    /// Who is online, sorted by name so `/who` needs no sort.
    roster: BTreeMap<UserName, Peer>,
    names: HashMap<ConnId, UserName>,
    /// Logins not yet announced, in order; see [`Broker::flush_joins`].
    pending_joins: Vec<(ConnId, UserName)>,
    /// With `--strict-names`: the confusable skeleton of each name online.
    skeletons: Option<HashMap<String, UserName>>,
}

struct Peer {
    id: ConnId,
    queue: mpsc::Sender<Line>,
    kick: CancellationToken,
}

/// Why a line could not be queued for a peer.
enum Undeliverable {
    /// Its queue is full: the client is not keeping up.
    Slow,
    /// Its writer is gone.
    Gone,
}

impl Peer {
    /// Queues `line`, leaving the last slot free for [`Peer::send_last`].
    fn send(&self, line: &Line) -> Result<(), Undeliverable> {
        if self.queue.capacity() <= 1 {
            return Err(Undeliverable::Slow);
        }
        self.queue.try_send(line.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Undeliverable::Slow,
            mpsc::error::TrySendError::Closed(_) => Undeliverable::Gone,
        })
    }

    /// Queues the last line this peer will get; it may take the reserved slot.
    fn send_last(&self, line: &Line) {
        let _ = self.queue.try_send(line.clone());
    }
}

impl Broker {
    fn handle(&mut self, event: BrokerEvent) {
        if !matches!(event, BrokerEvent::Join { .. }) {
            // Anything else may be seen by a peer, so announce earlier logins first.
            self.flush_joins();
        }
        match event {
            BrokerEvent::Join {
                id,
                name,
                queue,
                kick,
                accepted,
            } => self.join(id, name, queue, kick, accepted),
            BrokerEvent::Lines { id, lines } => {
                for line in lines {
                    // The sender may have been dropped by an earlier line's reply.
                    let Some(sender) = self.names.get(&id).cloned() else {
                        return;
                    };
                    match line {
                        Ok(ClientLine::Send { to, text }) => self.route(&sender, &to, &text),
                        Ok(ClientLine::Who) => {
                            let names = self.roster.keys().cloned().collect();
                            self.deliver(&sender, &encode_line(ServerLine::Users(names)));
                        }
                        Err(e) => {
                            self.deliver(&sender, &encode_line(ServerLine::Error(e.to_string())))
                        }
                    }
                }
            }
            BrokerEvent::Fatal { id, reason } => {
                if let Some(name) = self.names.get(&id).cloned() {
                    if let Some(peer) = self.roster.get(&name) {
                        peer.send_last(&encode_line(ServerLine::Error(reason)));
                    }
                    self.remove(vec![name]);
                }
            }
            BrokerEvent::Leave { id } => {
                if let Some(name) = self.names.get(&id).cloned() {
                    self.remove(vec![name]);
                }
            }
        }
    }

    fn join(
        &mut self,
        id: ConnId,
        name: UserName,
        queue: mpsc::Sender<Line>,
        kick: CancellationToken,
        accepted: oneshot::Sender<bool>,
    ) {
        let refusal = if self.roster.contains_key(&name) {
            Some(format!("name already in use: {name}"))
        } else {
            let skeletons = self.skeletons.as_ref();
            let similar = skeletons.and_then(|all| all.get(&name.skeleton()));
            similar.map(|other| format!("name too similar to {other}, who is online"))
        };
        if let Some(reason) = refusal {
            let _ = queue.try_send(encode_line(ServerLine::Error(reason)));
            let _ = accepted.send(false);
            return;
        }
        // The reader only goes on if it hears yes; if it is gone, nobody has seen this
        // login yet and there is nothing to announce or take back.
        if accepted.send(true).is_err() {
            return;
        }
        if let Some(skeletons) = &mut self.skeletons {
            skeletons.insert(name.skeleton(), name.clone());
        }
        let peer = Peer { id, queue, kick };
        // A fresh queue has room: the welcome is always this client's first line.
        let _ = peer.send(&encode_line(ServerLine::Welcome(name.clone())));
        self.roster.insert(name.clone(), peer);
        self.names.insert(id, name.clone());
        self.pending_joins.push((id, name));
        if self.pending_joins.len() >= MAX_JOIN_BATCH {
            self.flush_joins();
        }
    }

    /// Announces the pending logins. Sending `joined` to everyone for each login makes a
    /// login storm quadratic; instead the `joined` lines of a run of logins are encoded
    /// into one shared buffer, and each peer's queue gets one reference to it, or for a
    /// peer that is itself in the run, to the part after its own line. Every peer still
    /// reads exactly the lines it would have, in the same order: any other event
    /// flushes the run first, and a quiet broker flushes it when the delay is up.
    fn flush_joins(&mut self) {
        if self.pending_joins.is_empty() {
            return;
        }
        let mut chunk = BytesMut::new();
        let mut ends = HashMap::with_capacity(self.pending_joins.len());
        for (id, name) in self.pending_joins.drain(..) {
            chunk.extend_from_slice(&encode_line(ServerLine::Joined(name)));
            ends.insert(id, chunk.len());
        }
        let chunk = chunk.freeze();
        let mut failed = Vec::new();
        for (name, peer) in &self.roster {
            let line = match ends.get(&peer.id) {
                None => chunk.clone(),
                Some(&end) if end < chunk.len() => chunk.slice(end..),
                Some(_) => continue,
            };
            offer(name, peer, &line, &mut failed);
        }
        self.remove(failed);
    }

    /// Sends `text` from `sender` once to each distinct online destination, and tells the
    /// sender which destinations are not online. The line is formatted once; each
    /// recipient's queue gets a reference to it.
    fn route(&mut self, sender: &UserName, to: &[Recipient], text: &MessageText) {
        let line = encode_line(FromLine { sender, text });
        let everyone = to.contains(&Recipient::Everyone);
        let mut failed = Vec::new();
        if everyone {
            for (name, peer) in &self.roster {
                if name != sender {
                    offer(name, peer, &line, &mut failed);
                }
            }
        }
        // Destination lists are short: a linear scan dedups without allocating a set.
        let mut named: Vec<&UserName> = Vec::with_capacity(to.len());
        let mut unknown: Vec<&str> = Vec::new();
        for dest in to {
            let Recipient::User(name) = dest else {
                continue;
            };
            if named.contains(&name) {
                continue;
            }
            named.push(name);
            match self.roster.get(name) {
                // With `*`, every other name has had the line; only the sender has not.
                Some(peer) if !everyone || name == sender => offer(name, peer, &line, &mut failed),
                Some(_) => {}
                None => unknown.push(name.as_str()),
            }
        }
        let error = (!unknown.is_empty()).then(|| format!("no such user: {}", unknown.join(",")));
        self.remove(failed);
        if let Some(reason) = error {
            self.deliver(sender, &encode_line(ServerLine::Error(reason)));
        }
    }

    /// Queues `line` for `name` if online, dropping it if it cannot take it.
    fn deliver(&mut self, name: &UserName, line: &Line) {
        let mut failed = Vec::new();
        if let Some(peer) = self.roster.get(name) {
            offer(name, peer, line, &mut failed);
        }
        self.remove(failed);
    }

    /// Takes `names` off the roster and tells everyone left. Dropping a peer closes its
    /// queue: its writer sends what is queued and closes the connection. Telling others
    /// may drop more slow peers; they join the worklist instead of recursing.
    fn remove(&mut self, mut names: Vec<UserName>) {
        if names.is_empty() {
            return;
        }
        // Nobody may read `left` for a login it has not been told about yet.
        self.flush_joins();
        while let Some(name) = names.pop() {
            let Some(peer) = self.roster.remove(&name) else {
                continue;
            };
            self.names.remove(&peer.id);
            if let Some(skeletons) = &mut self.skeletons {
                skeletons.remove(&name.skeleton());
            }
            info!(%name, online = self.roster.len(), "removed from roster");
            let left = encode_line(ServerLine::Left(name));
            for (other, peer) in &self.roster {
                if !names.contains(other) {
                    offer(other, peer, &left, &mut names);
                }
            }
        }
    }
}

/// Queues `line` for `peer`; a peer that cannot take it is kicked (if slow) and added to
/// `failed`, for the caller to remove once it is done iterating the roster.
fn offer(name: &UserName, peer: &Peer, line: &Line, failed: &mut Vec<UserName>) {
    match peer.send(line) {
        Ok(()) => {}
        Err(Undeliverable::Slow) => {
            warn!(%name, "send queue full; disconnecting");
            peer.kick.cancel();
            failed.push(name.clone());
        }
        Err(Undeliverable::Gone) => failed.push(name.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join(broker: &mut Broker, id: ConnId, name: &str) -> mpsc::Receiver<Line> {
        let (queue, rx) = mpsc::channel(16);
        let (accepted, _answer) = oneshot::channel();
        let name = UserName::parse(name).expect("a valid name");
        broker.handle(BrokerEvent::Join {
            id,
            name,
            queue,
            kick: CancellationToken::new(),
            accepted,
        });
        rx
    }

    /// Everything queued for a peer, as text.
    fn read(rx: &mut mpsc::Receiver<Line>) -> String {
        let mut out = String::new();
        while let Ok(line) = rx.try_recv() {
            out.push_str(std::str::from_utf8(&line).expect("UTF-8"));
        }
        out
    }

    #[test]
    fn strict_names_refuse_look_alikes_of_names_online() {
        let mut broker = Broker {
            skeletons: Some(HashMap::new()),
            ..Broker::default()
        };
        let _alice = join(&mut broker, 1, "alice");
        let mut fake = join(&mut broker, 2, "\u{430}lice");
        assert_eq!(
            read(&mut fake),
            "error: name too similar to alice, who is online\n"
        );
        broker.handle(BrokerEvent::Leave { id: 1 });
        let mut later = join(&mut broker, 3, "\u{430}lice");
        assert_eq!(
            read(&mut later),
            "welcome \u{430}lice\n",
            "free once the original left"
        );
    }

    #[test]
    fn a_run_of_logins_is_announced_as_if_one_by_one() {
        let mut broker = Broker::default();
        let mut old = join(&mut broker, 1, "old");
        broker.flush_joins();
        assert_eq!(read(&mut old), "welcome old\n");
        let mut a = join(&mut broker, 2, "a");
        let mut b = join(&mut broker, 3, "b");
        let mut c = join(&mut broker, 4, "c");
        assert_eq!(read(&mut old), "", "announcements wait for the run to end");
        broker.flush_joins();
        assert_eq!(read(&mut old), "joined a\njoined b\njoined c\n");
        assert_eq!(read(&mut a), "welcome a\njoined b\njoined c\n");
        assert_eq!(read(&mut b), "welcome b\njoined c\n");
        assert_eq!(read(&mut c), "welcome c\n");
    }

    #[test]
    fn any_other_event_announces_pending_logins_first() {
        let mut broker = Broker::default();
        let mut old = join(&mut broker, 1, "old");
        broker.flush_joins();
        read(&mut old);
        let _new = join(&mut broker, 2, "new");
        let text = MessageText::parse("hi").expect("valid text");
        let to = vec![Recipient::User(
            UserName::parse("old").expect("a valid name"),
        )];
        broker.handle(BrokerEvent::Lines {
            id: 2,
            lines: vec![Ok(ClientLine::Send { to, text })],
        });
        assert_eq!(read(&mut old), "joined new\nfrom new: hi\n");
        let _gone = join(&mut broker, 3, "gone");
        broker.handle(BrokerEvent::Leave { id: 3 });
        assert_eq!(read(&mut old), "joined gone\nleft gone\n");
    }
}
