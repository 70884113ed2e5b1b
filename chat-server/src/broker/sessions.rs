//! One account on several devices, and what is said of a user rather than of one
//! connection: a new session catching up with the account's rooms, `/away`, `/whois`
//! and read markers (`/read`).

use bytes::{Bytes, BytesMut};
use chat_proto::{Conv, MessageId, MessageText, RoomName, ServerLine, UserName, encode_line};
use tokio::time::Instant;

use super::Broker;
use crate::backend::Pending;
use crate::governance::{Members, RoomState};
use crate::roster::{ConnId, User};
use crate::sendq::Note;

/// How long a `/whois` waits for the node that holds the user; past it the asker is told
/// and its next lines go on (that node may have died after it was named).
const WHOIS_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Broker {
    /// A session that logged in while its account is in rooms: for each, it is told
    /// `names`, `roles` and the topic, from what the chat knows of the room.
    pub(super) fn catch_up(&mut self, conn: ConnId) {
        for room in self.roster.rooms_of(conn) {
            self.wait_for_fetch(conn);
            self.backend
                .fetch_room(conn, &room, Pending::CatchUp, &mut self.answers);
        }
    }

    /// The account `folded` joined or left `room` from a session on another node: its
    /// sessions here follow, and are told as the joiner's own were.
    pub(super) fn account_room(&mut self, folded: &str, room: RoomName, joined: bool) {
        let Some((&first, name)) = self
            .roster
            .find_folded(folded)
            .and_then(|user| Some((user.sessions.first()?, user.name.clone())))
        else {
            return;
        };
        let sessions = self.sessions_of(folded);
        if joined {
            if !self.roster.join_room(first, &room) {
                return;
            }
            self.backend.join_quietly(&room, &name);
            let line = encode_line(ServerLine::JoinedRoom {
                room: room.clone(),
                name,
            });
            for session in sessions {
                self.deliver(session, &line);
                self.wait_for_fetch(session);
                self.backend
                    .fetch_room(session, &room, Pending::CatchUp, &mut self.answers);
            }
        } else {
            if !self.roster.part_room(first, &room) {
                return;
            }
            self.backend.leave_quietly(&room, &name, &self.roster);
            let line = encode_line(ServerLine::LeftRoom {
                room: room.clone(),
                name,
            });
            for session in sessions {
                self.deliver(session, &line);
            }
            self.forget_if_gone(&room);
        }
    }

    /// What a session catching up on `room` is told.
    pub(super) fn caught_up(&mut self, to: ConnId, room: &RoomName, members: &Members) {
        let state = self.rooms.get(room).cloned().unwrap_or_default();
        let lines = Self::room_summary(room, members, &state);
        self.deliver(to, &lines);
    }

    /// `names`, `roles` and (if set) `topic` of `room`, as a joiner is told them.
    pub(super) fn room_summary(room: &RoomName, members: &Members, state: &RoomState) -> Bytes {
        let mut names: Vec<UserName> = members.values().cloned().collect();
        names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let mut lines = BytesMut::from(
            &encode_line(ServerLine::Names {
                room: room.clone(),
                names,
            })[..],
        );
        lines.extend_from_slice(&Self::join_lines(room, state));
        lines.freeze()
    }

    /// `/away [text]`: away is the account's, for every session.
    pub(super) fn set_away(&mut self, id: ConnId, text: Option<MessageText>) {
        let Some(user) = self.roster.user_of_mut(id) else {
            return;
        };
        user.away = text.clone().map(Box::new);
        let name = user.name.clone();
        let rooms: Vec<RoomName> = user.rooms().cloned().collect();
        self.backend.set_away(&name, text.as_ref());
        // IRC's away-notify: the members of its rooms hear it (natives are not told).
        let note = Note::Away(name.as_str(), text.as_ref().map(MessageText::as_str));
        let note = Bytes::from(note.encode());
        for room in rooms {
            self.backend
                .tell_room(&room, note.clone(), None, &mut self.answers);
        }
    }

    /// Whether `name`, online here or elsewhere, is away.
    pub(super) fn is_away(&self, name: &UserName) -> bool {
        match self.roster.find(name) {
            Some(user) => user.away.is_some(),
            None => !self.remote_away.is_empty() && self.remote_away.contains_key(&name.folded()),
        }
    }

    /// For IRC's `WHO <mask>` (`G` or `H`): the folded names of who is away in the whole
    /// chat, here and elsewhere, comma-separated; `None` if nobody is.
    pub(super) fn away_names(&self) -> Option<String> {
        let mut away: Vec<String> = self
            .roster
            .users()
            .filter(|user| user.away.is_some())
            .map(|user| user.name.folded())
            .collect();
        away.extend(self.remote_away.keys().cloned());
        (!away.is_empty()).then(|| away.join(","))
    }

    /// `/whois <name>`: idle seconds (since any session last sent a line) and sessions,
    /// then the away message if any.
    pub(super) fn whois(&mut self, id: ConnId, name: &UserName) {
        let Some(user) = self.roster.find(name) else {
            // Answered elsewhere (another node, through Redis): what the client asks
            // next waits, so that its answers keep the order of its questions.
            self.wait_for_fetch(id);
            let until = Instant::now() + WHOIS_WAIT;
            self.whois_waiting.push((id, name.clone(), until));
            return self.backend.whois(id, name, &mut self.answers);
        };
        let lines = self.whois_lines(user);
        self.deliver(id, &lines);
    }

    /// `/whois` of `user`, who is here: its `whois` line, then `away` if away.
    pub(super) fn whois_lines(&self, user: &User) -> Bytes {
        let now = Instant::now();
        let idle = self
            .roster
            .sessions(user)
            .map(|(_, peer)| now.duration_since(peer.active).as_secs())
            .min()
            .unwrap_or_default();
        let mut lines = BytesMut::from(
            &encode_line(ServerLine::Whois {
                name: user.name.clone(),
                idle,
                sessions: user.sessions.len(),
            })[..],
        );
        if let Some(text) = &user.away {
            lines.extend_from_slice(&encode_line(ServerLine::Away {
                name: user.name.clone(),
                text: MessageText::clone(text),
            }));
        }
        lines.freeze()
    }

    /// `/read <conv> [id]`: read markers are the account's; one that moves forward is
    /// pushed to every session.
    pub(super) fn read_marker(&mut self, id: ConnId, conv: Conv, read: Option<MessageId>) {
        let Some(me) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        if !self.is_registered(&me) {
            return self.error(
                id,
                "read markers are kept for registered accounts: /register first".to_owned(),
            );
        }
        let key = match &conv {
            Conv::Room(room) => room.to_string(),
            Conv::Direct(name) => format!("@{}", name.folded()),
        };
        self.backend
            .read_marker(id, &me, conv, key, read, &mut self.answers);
    }
}
