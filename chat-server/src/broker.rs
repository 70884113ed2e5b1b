//! The broker: the one task that owns the roster of who is online and routes every line.
//!
//! It never awaits a client. Each peer's queue is fed with `try_send`; a full queue means
//! that client is too slow (IRC's "SendQ exceeded"), so it is dropped and the others
//! never notice. A closed queue means its writer died; that peer is dropped too.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chat_proto::{ClientLine, MessageText, ParseError, Recipient, ServerLine, UserName};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Identifies one connection for its whole life, unlike a name, which a later
/// connection may reuse while the earlier one's last events are still on their way.
pub type ConnId = u64;

/// One encoded server line. Formatted once and shared by every recipient's queue.
pub type Line = Arc<str>;

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
    /// A line after login, or why it could not be parsed (answered in order with `error:`).
    Line {
        /// The connection.
        id: ConnId,
        /// The parsed line.
        line: Result<ClientLine, ParseError>,
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
pub async fn broker_loop(mut events: mpsc::Receiver<BrokerEvent>) {
    let mut broker = Broker::default();
    while let Some(event) = events.recv().await {
        broker.handle(event);
    }
    // Every reader has stopped, so everything anyone sent is routed. Queue the farewell
    // behind it; dropping the broker then closes every queue and the writers finish.
    let bye = encode(ServerLine::Bye("server shutting down".to_owned()));
    for peer in broker.roster.values() {
        peer.send_last(&bye);
    }
}

#[derive(Default)]
struct Broker {
    /// Who is online, sorted by name so `/who` needs no sort.
    roster: BTreeMap<UserName, Peer>,
    names: HashMap<ConnId, UserName>,
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

fn encode(line: ServerLine) -> Line {
    line.to_string().into()
}

impl Broker {
    fn handle(&mut self, event: BrokerEvent) {
        match event {
            BrokerEvent::Join {
                id,
                name,
                queue,
                kick,
                accepted,
            } => self.join(id, name, queue, kick, accepted),
            BrokerEvent::Line { id, line } => {
                let Some(sender) = self.names.get(&id).cloned() else {
                    return;
                };
                match line {
                    Ok(ClientLine::Send { to, text }) => self.route(&sender, &to, text),
                    Ok(ClientLine::Who) => {
                        let names = self.roster.keys().cloned().collect();
                        self.deliver([sender], &encode(ServerLine::Users(names)));
                    }
                    Err(e) => self.deliver([sender], &encode(ServerLine::Error(e.to_string()))),
                }
            }
            BrokerEvent::Fatal { id, reason } => {
                if let Some(name) = self.names.get(&id).cloned() {
                    if let Some(peer) = self.roster.get(&name) {
                        peer.send_last(&encode(ServerLine::Error(reason)));
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
        if self.roster.contains_key(&name) {
            let _ = queue.try_send(encode(ServerLine::Error(format!(
                "name already in use: {name}"
            ))));
            let _ = accepted.send(false);
            return;
        }
        let peer = Peer { id, queue, kick };
        // A fresh queue has room: the welcome is always this client's first line.
        let _ = peer.send(&encode(ServerLine::Welcome(name.clone())));
        let others: Vec<UserName> = self.roster.keys().cloned().collect();
        self.roster.insert(name.clone(), peer);
        self.names.insert(id, name.clone());
        if accepted.send(true).is_err() {
            self.remove(vec![name]);
            return;
        }
        self.deliver(others, &encode(ServerLine::Joined(name)));
    }

    /// Sends `text` from `sender` once to each distinct online destination, and tells the
    /// sender which destinations are not online.
    fn route(&mut self, sender: &UserName, to: &[Recipient], text: MessageText) {
        let mut recipients = BTreeSet::new();
        let mut unknown: Vec<&str> = Vec::new();
        for dest in to {
            match dest {
                Recipient::Everyone => {
                    recipients.extend(self.roster.keys().filter(|n| *n != sender).cloned())
                }
                Recipient::User(name) if self.roster.contains_key(name) => {
                    recipients.insert(name.clone());
                }
                Recipient::User(name) => {
                    if !unknown.contains(&name.as_str()) {
                        unknown.push(name.as_str());
                    }
                }
            }
        }
        let error = (!unknown.is_empty()).then(|| format!("no such user: {}", unknown.join(",")));
        self.deliver(
            recipients,
            &encode(ServerLine::From {
                sender: sender.clone(),
                text,
            }),
        );
        if let Some(reason) = error {
            self.deliver([sender.clone()], &encode(ServerLine::Error(reason)));
        }
    }

    /// Queues `line` for each of `names` still online, dropping any that cannot take it.
    fn deliver(&mut self, names: impl IntoIterator<Item = UserName>, line: &Line) {
        let mut dropped = Vec::new();
        for name in names {
            let Some(peer) = self.roster.get(&name) else {
                continue;
            };
            match peer.send(line) {
                Ok(()) => {}
                Err(Undeliverable::Slow) => {
                    warn!(%name, "send queue full; disconnecting");
                    peer.kick.cancel();
                    dropped.push(name);
                }
                Err(Undeliverable::Gone) => dropped.push(name),
            }
        }
        if !dropped.is_empty() {
            self.remove(dropped);
        }
    }

    /// Takes `names` off the roster and tells everyone left. Dropping a peer closes its
    /// queue: its writer sends what is queued and closes the connection. Telling others
    /// may drop more slow peers; they join the worklist instead of recursing.
    fn remove(&mut self, mut names: Vec<UserName>) {
        while let Some(name) = names.pop() {
            let Some(peer) = self.roster.remove(&name) else {
                continue;
            };
            self.names.remove(&peer.id);
            info!(%name, online = self.roster.len(), "removed from roster");
            let left = encode(ServerLine::Left(name));
            for (other, peer) in &self.roster {
                match peer.send(&left) {
                    Ok(()) => {}
                    Err(reason) => {
                        if matches!(reason, Undeliverable::Slow) {
                            warn!(name = %other, "send queue full; disconnecting");
                            peer.kick.cancel();
                        }
                        if !names.contains(other) {
                            names.push(other.clone());
                        }
                    }
                }
            }
        }
    }
}
