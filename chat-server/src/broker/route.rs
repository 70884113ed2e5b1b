//! Messages: `*`, direct and room lines, each distinct destination served once, and the
//! sender told afterwards which destinations failed.

use chat_proto::{FromLine, MessageText, Recipient, Scope, ServerLine, UserName, encode_line};

use super::{Broker, offer};
use crate::backend::{self, Answer, Direct};
use crate::roster::ConnId;
use crate::sendq::Line;

impl Broker {
    /// Sends `text` from `from` once to each distinct destination: a direct line to each
    /// user named, a `*` line to everyone with `*`, and a room line, with a fresh id, to
    /// each room's other members. Then tells the sender which destinations failed.
    pub(super) fn route(&mut self, from: ConnId, to: &[Recipient], text: &MessageText) {
        let Some(sender) = self.roster.get(from).map(|p| p.name.clone()) else {
            return;
        };
        let everyone = to.contains(&Recipient::Everyone);
        if everyone {
            self.to_everyone(from, &sender, text);
        }
        let sender_registered = self.is_registered(&sender);
        // Formatted once, on first use, and shared by every user named.
        let mut line: Option<Line> = None;
        let mut direct_line = || {
            line.get_or_insert_with(|| {
                encode_line(FromLine {
                    sender: &sender,
                    scope: &Scope::Direct,
                    text,
                })
            })
            .clone()
        };
        // Destination lists are short: linear scans dedup without allocating sets, and one
        // destination (the common case) cannot repeat, so it allocates nothing at all.
        let dedup = to.len() > 1;
        let mut seen: Vec<&Recipient> = Vec::new();
        let mut served: Vec<ConnId> = Vec::new();
        let mut away: Vec<backend::Recipient> = Vec::new();
        let mut kept: Vec<UserName> = Vec::new();
        let mut outside: Vec<&str> = Vec::new();
        for dest in to {
            if dedup {
                if seen.contains(&dest) {
                    continue;
                }
                seen.push(dest);
            }
            match dest {
                Recipient::Everyone => {}
                Recipient::User(name) => match self.roster.find(name) {
                    Some((id, _)) if served.contains(&id) => {}
                    Some((id, peer)) => {
                        if dedup {
                            served.push(id);
                        }
                        // With `*`, every other user has had the line; only the sender has not.
                        if !everyone || id == from {
                            offer(id, peer, &direct_line(), &mut self.failed);
                            if sender_registered && self.is_registered(&peer.name) {
                                kept.push(peer.name.clone());
                            }
                        }
                    }
                    None => {
                        let account = self
                            .accounts
                            .as_ref()
                            .and_then(|a| a.get(name))
                            .map(|a| a.name.clone());
                        if away.iter().any(|r| Some(&r.name) == account.as_ref()) {
                            continue;
                        }
                        away.push(backend::Recipient {
                            registered: account.is_some(),
                            pair: sender_registered && account.is_some(),
                            name: account.unwrap_or_else(|| name.clone()),
                        });
                    }
                },
                Recipient::Room(room) if !self.roster.is_member(from, room) => {
                    outside.push(room.as_str());
                }
                Recipient::Room(room) => {
                    self.backend
                        .say(from, room, &sender, text, &mut self.answers);
                }
            }
        }
        if !(away.is_empty() && kept.is_empty()) {
            let direct = Direct {
                from,
                sender: sender.clone(),
                text: text.clone(),
                line: direct_line(),
                away,
                kept,
                covered: everyone,
            };
            self.backend.direct(direct, &mut self.answers);
        }
        if !outside.is_empty() {
            // Behind the backend's answers about users, as one server reports them.
            let reason = format!("not a member of {}", outside.join(","));
            let lines = encode_line(ServerLine::Error(reason));
            self.answers.push_back(Answer::Reply { to: from, lines });
        }
    }

    /// A `*` line for every user but the sender, here and elsewhere.
    fn to_everyone(&mut self, from: ConnId, sender: &UserName, text: &MessageText) {
        let line = encode_line(FromLine {
            sender,
            scope: &Scope::Everyone,
            text,
        });
        for (id, peer) in self.roster.peers() {
            if id != from {
                offer(id, peer, &line, &mut self.failed);
            }
        }
        self.backend.to_others(Some(from), line, &mut self.answers);
    }

    /// Tells `to` which recipients of its direct message were offline: `stored` lines,
    /// then one `error:` per kind of failure.
    pub(super) fn direct_failed(
        &mut self,
        to: ConnId,
        stored: Vec<UserName>,
        full: Vec<UserName>,
        unknown: Vec<UserName>,
    ) {
        for name in stored {
            self.deliver(to, &encode_line(ServerLine::Stored(name)));
        }
        if !full.is_empty() {
            let reason = format!(
                "offline mailbox full ({} messages): {}",
                backend::MAX_OFFLINE_PER_RECIPIENT,
                join(&full)
            );
            self.error(to, reason);
        }
        if !unknown.is_empty() {
            self.error(to, format!("no such user: {}", join(&unknown)));
        }
    }

    pub(super) fn is_registered(&self, name: &UserName) -> bool {
        self.accounts
            .as_ref()
            .is_some_and(|a| a.is_registered(name))
    }
}

fn join(names: &[UserName]) -> String {
    names
        .iter()
        .map(UserName::as_str)
        .collect::<Vec<_>>()
        .join(",")
}
