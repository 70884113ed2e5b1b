//! Messages: `*`, direct and room lines, each distinct destination served once, and the
//! sender told afterwards which destinations failed.

use chat_proto::{MessageText, Recipient, RoomName, Scope, ServerLine, UserName, encode_line};

use super::{Broker, offer};
use crate::backend::{self, Direct, from_line};
use crate::metrics::Kind;
use crate::roster::ConnId;
use crate::sendq::Line;

/// How often one sender is told that one recipient is away.
const AWAY_REPEAT: std::time::Duration = std::time::Duration::from_secs(60);
/// Pairs remembered for [`AWAY_REPEAT`]; past this, the expired ones are forgotten.
const MAX_AWAY_TOLD: usize = 4096;

/// One message's direct part while its destinations are served: who got it here, who
/// is elsewhere, and the line, formatted once on first use and shared by every user.
struct Fanout<'a> {
    sender: &'a UserName,
    text: &'a MessageText,
    /// The message also went to `*`: every other user has had it.
    everyone: bool,
    /// Several destinations, which may name one user twice.
    dedup: bool,
    sender_registered: bool,
    /// An IRC `NOTICE`: IRC clients are told so.
    notice: bool,
    line: Option<Line>,
    served: Vec<ConnId>,
    /// Recipients who are away, and their away messages.
    away_told: Vec<(UserName, MessageText)>,
    away: Vec<backend::Recipient>,
    kept: Vec<UserName>,
}

impl Fanout<'_> {
    /// Borrowed, not cloned: each queue takes its own reference, and one more clone per
    /// message (an atomic count, and a shared header on the first) shows in the profile.
    fn line(&mut self) -> &Line {
        let (sender, text, notice) = (self.sender, self.text, self.notice);
        self.line
            .get_or_insert_with(|| from_line(sender, &Scope::Direct, text, notice))
    }
}

impl Broker {
    /// Sends `text` from `from` once to each distinct destination: a direct line to each
    /// user named, a `*` line to everyone with `*`, and a room line, with a fresh id, to
    /// each room's other members. Then tells the sender which destinations failed. A
    /// `notice` (IRC's `NOTICE`) reaches IRC clients as one.
    pub(super) fn route(
        &mut self,
        from: ConnId,
        to: &[Recipient],
        text: &MessageText,
        notice: bool,
    ) {
        // One lookup for the sender, and whether its account has other sessions to copy
        // (or the sender wants its own copy).
        let Some((sender, shared)) = self.roster.peer_and_user(from).map(|(peer, user)| {
            let shared = user.sessions.len() > 1 || user.nodes > 1 || peer.echo;
            (user.name.clone(), shared)
        }) else {
            return;
        };
        let everyone = to.contains(&Recipient::Everyone);
        if everyone {
            self.tally.message(Kind::Everyone);
            self.send_everyone(from, &sender, text, notice);
        }
        let mut fanout = Fanout {
            sender: &sender,
            text,
            everyone,
            dedup: to.len() > 1,
            sender_registered: self.is_registered(&sender),
            notice,
            line: None,
            served: Vec::new(),
            away_told: Vec::new(),
            away: Vec::new(),
            kept: Vec::new(),
        };
        // Destination lists are short: linear scans dedup without allocating sets, and one
        // destination (the common case) cannot repeat, so it allocates nothing at all.
        let mut seen: Vec<&Recipient> = Vec::new();
        let mut outside: Vec<&str> = Vec::new();
        // Said after the direct part, which a backend may carry later than a room line.
        let mut rooms: Vec<&RoomName> = Vec::new();
        let mut muted: Vec<String> = Vec::new();
        for dest in to {
            if fanout.dedup {
                if seen.contains(&dest) {
                    continue;
                }
                seen.push(dest);
            }
            match dest {
                Recipient::Everyone => {}
                Recipient::User(name) => {
                    self.tally.message(Kind::Direct);
                    self.send_direct(from, name, &mut fanout);
                }
                Recipient::Room(room) if !self.roster.is_member(from, room) => {
                    outside.push(room.as_str());
                }
                Recipient::Room(room) => match self.may_speak(from, room) {
                    Ok(()) => rooms.push(room),
                    Err(reason) => muted.push(reason),
                },
            }
        }
        let away_told = std::mem::take(&mut fanout.away_told);
        if !(fanout.away.is_empty() && fanout.kept.is_empty()) {
            let direct = Direct {
                from,
                sender: sender.clone(),
                text: text.clone(),
                line: fanout.line().clone(),
                away: fanout.away,
                kept: fanout.kept,
                covered: everyone,
            };
            self.backend.direct(direct, &mut self.answers);
        }
        if shared {
            self.echo_sent(from, to, text);
        }
        for (name, away) in away_told {
            self.tell_away(from, &sender, name, away);
        }
        for room in rooms {
            self.tally.message(Kind::Room);
            self.backend
                .say(from, room, &sender, text, notice, &mut self.answers);
        }
        if !outside.is_empty() {
            muted.insert(0, format!("not a member of {}", outside.join(",")));
        }
        for reason in muted {
            // Behind the backend's answers about users, as one server reports them.
            self.backend.reply_after(
                from,
                encode_line(ServerLine::Error(reason)),
                &mut self.answers,
            );
        }
    }

    /// The sender's other sessions get `sent <dest>: <text>` for each direct or `*`
    /// destination (a room's line reaches them as any member's).
    fn echo_sent(&mut self, from: ConnId, to: &[Recipient], text: &MessageText) {
        let Some(user) = self.roster.user_of(from) else {
            return;
        };
        let mut seen: Vec<Recipient> = Vec::new();
        let mut lines = bytes::BytesMut::new();
        for dest in to {
            let dest = match dest {
                Recipient::Everyone => Recipient::Everyone,
                Recipient::User(name) => Recipient::User(self.spelled(name)),
                Recipient::Room(_) => continue,
            };
            if seen.contains(&dest) {
                continue;
            }
            lines.extend_from_slice(&encode_line(ServerLine::Sent {
                to: dest.clone(),
                text: text.clone(),
            }));
            seen.push(dest);
        }
        if lines.is_empty() {
            return;
        }
        let lines = lines.freeze();
        for (id, peer) in self.roster.sessions(user) {
            if id != from || peer.echo {
                offer(id, peer, &lines, &mut self.failed);
            }
        }
        if user.nodes > 1 {
            let name = user.name.clone();
            self.backend.echo(&name, lines);
        }
    }

    /// `name` as its owner spells it: online, or registered; else as written.
    fn spelled(&self, name: &UserName) -> UserName {
        if let Some(user) = self.roster.find(name) {
            return user.name.clone();
        }
        self.accounts
            .as_ref()
            .and_then(|a| a.get(name))
            .map_or_else(|| name.clone(), |a| a.name.clone())
    }

    /// `from` wrote to `name`, who is away: it is told so, at most once a minute per
    /// sender and recipient.
    fn tell_away(&mut self, from: ConnId, sender: &UserName, name: UserName, away: MessageText) {
        let key = (sender.folded(), name.folded());
        let now = tokio::time::Instant::now();
        if self
            .away_told
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < AWAY_REPEAT)
        {
            return;
        }
        if self.away_told.len() >= MAX_AWAY_TOLD {
            self.away_told
                .retain(|_, at| now.duration_since(*at) < AWAY_REPEAT);
        }
        self.away_told.insert(key, now);
        let line = encode_line(ServerLine::Away { name, text: away });
        self.backend.reply_after(from, line, &mut self.answers);
    }

    /// The direct line for the user `name`: queued if here, else left to the backend.
    fn send_direct(&mut self, from: ConnId, name: &UserName, fanout: &mut Fanout<'_>) {
        match self.roster.find_or_fold(name) {
            Ok(user) => {
                // A user is known by its first session while it is online.
                let key = user.sessions[0];
                if fanout.served.contains(&key) {
                    return;
                }
                if fanout.dedup {
                    fanout.served.push(key);
                }
                // With `*`, every other user has had the line; only the sender has not.
                if !fanout.everyone || user.sessions.contains(&from) {
                    let line = fanout.line();
                    let mut delivered = 0;
                    for (id, peer) in self.roster.sessions(user) {
                        offer(id, peer, line, &mut self.failed);
                        delivered += 1;
                    }
                    self.tally.delivered(Kind::Direct, delivered);
                    // The account's sessions on other nodes get it from here too.
                    if user.nodes > 1 {
                        self.backend.echo(&user.name, line.clone());
                    }
                    if fanout.sender_registered && self.is_registered(&user.name) {
                        fanout.kept.push(user.name.clone());
                    }
                }
                if let Some(text) = &user.away {
                    fanout
                        .away_told
                        .push((user.name.clone(), MessageText::clone(text)));
                }
            }
            Err(folded) => {
                if fanout.away.iter().any(|r| r.folded == folded) {
                    return;
                }
                // Nobody away, the common case: no hashing of the name.
                let away = (!self.remote_away.is_empty())
                    .then(|| self.remote_away.get(&folded))
                    .flatten();
                if let Some(text) = away {
                    fanout.away_told.push((self.spelled(name), text.clone()));
                }
                let account = self
                    .accounts
                    .as_ref()
                    .and_then(|a| a.get_folded(&folded))
                    .map(|a| a.name.clone());
                fanout.away.push(backend::Recipient {
                    registered: account.is_some(),
                    pair: fanout.sender_registered && account.is_some(),
                    name: account.unwrap_or_else(|| name.clone()),
                    folded,
                });
            }
        }
    }

    /// A `*` line for every user but the sender, here and elsewhere.
    fn send_everyone(&mut self, from: ConnId, sender: &UserName, text: &MessageText, notice: bool) {
        let line = from_line(sender, &Scope::Everyone, text, notice);
        // The sender's other sessions are told `sent *:` instead.
        let mine = self
            .roster
            .user_of(from)
            .map(|user| user.sessions.clone())
            .unwrap_or_default();
        let mut delivered = 0;
        for (id, peer) in self.roster.peers() {
            if !mine.contains(&id) {
                offer(id, peer, &line, &mut self.failed);
                delivered += 1;
            }
        }
        self.tally.delivered(Kind::Everyone, delivered);
        self.backend
            .send_elsewhere(from, sender, line, &mut self.answers);
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
        // Folding a name is the dearest step of a direct message: none while nobody has
        // registered.
        self.accounts
            .as_ref()
            .is_some_and(|a| !a.is_empty() && a.is_registered(name))
    }
}

fn join(names: &[UserName]) -> String {
    names
        .iter()
        .map(UserName::as_str)
        .collect::<Vec<_>>()
        .join(",")
}
