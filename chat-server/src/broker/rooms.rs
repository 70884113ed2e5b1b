//! Rooms and history: `/join`, `/part` and `/history`. Membership here is this node's;
//! the backend tells every member, here and elsewhere.

use bytes::BytesMut;
use chat_proto::{
    ClientLine, Conv, HistoryRange, MessageId, MessageText, RoomName, ServerLine, UserName,
};

use super::{Awaiting, Broker};
use crate::backend::{HistoryAsk, Pending, left_room_line};
use crate::governance::{self, Change, Members, RoomState};
use crate::history::ConvKey;
use crate::roster::ConnId;
use crate::sendq::{Line, Note};

impl Broker {
    /// `/join`: the rules decide (bans, invite-only) and which role the joiner holds;
    /// it is then told `roles` and the topic after `names`.
    pub(super) fn join_room(&mut self, id: ConnId, room: RoomName) {
        if self.roster.is_member(id, &room) {
            return self.error(id, format!("already a member of {room}"));
        }
        self.wait_for_fetch(id);
        self.backend.fetch_room(
            id,
            &room,
            Pending::Line(ClientLine::Join(room.clone())),
            &mut self.answers,
        );
    }

    /// Decides a `/join` on what the chat knows of the room: its state and `members`.
    pub(super) fn join_decided(&mut self, id: ConnId, room: RoomName, members: &Members) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        if self.roster.is_member(id, &room) {
            return self.error(id, format!("already a member of {room}"));
        }
        let change =
            match governance::join(&room, self.rooms.get(&room), members, self.actor(&name)) {
                Ok(change) => change,
                Err(reason) => return self.error(id, reason),
            };
        // A room that had neither members nor a registration starts afresh.
        if !self
            .rooms
            .get(&room)
            .is_some_and(|state| state.is_registered() || !members.is_empty())
        {
            self.rooms.insert(room.clone(), RoomState::new_room());
        }
        self.roster.join_room(id, &room);
        self.backend
            .join_room(id, &room, &name, &self.roster, &mut self.answers);
        self.commit(&room, vec![change]);
        // IRC's away-notify: members hear that someone away joined.
        if let Some(away) = self
            .roster
            .user_of(id)
            .and_then(|user| user.away.as_deref())
        {
            let note = Line::from(Note::Away(name.as_str(), Some(away.as_str())).encode());
            self.backend
                .tell_room(&room, note, Some(id), &mut self.answers);
        }
        if self.is_registered(&name) {
            self.backend.account_room(&name, &room, true);
        }
        let Some(state) = self.rooms.get(&room) else {
            return;
        };
        let lines = Self::join_lines(&room, state);
        // The account's other sessions joined too: they are told what the joiner is.
        let others = self.other_sessions(id);
        let summary = (!others.is_empty()).then(|| {
            let mut everyone = members.clone();
            everyone.insert(name.folded(), name.clone());
            Self::room_summary(&room, &everyone, state)
        });
        self.backend.reply_after(id, lines, &mut self.answers);
        if let Some(summary) = summary {
            for other in others {
                self.backend
                    .reply_after(other, summary.clone(), &mut self.answers);
            }
        }
    }

    /// The other sessions of the account of `id`.
    pub(super) fn other_sessions(&self, id: ConnId) -> Vec<ConnId> {
        self.roster
            .user_of(id)
            .filter(|user| user.sessions.len() > 1)
            .map(|user| user.sessions.iter().copied().filter(|&s| s != id).collect())
            .unwrap_or_default()
    }

    /// `/part`, or IRC's `PART` with a `reason` for the IRC clients among the members.
    pub(super) fn part_room(&mut self, id: ConnId, room: RoomName, reason: Option<&MessageText>) {
        let Some(name) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        if !self.roster.part_room(id, &room) {
            return self.error(id, format!("not a member of {room}"));
        }
        let left = left_room_line(&room, &name, reason);
        // No longer a member, so the backend names the one parting to hear it too.
        self.backend.part_room(
            Some(id),
            &room,
            &name,
            left.clone(),
            &self.roster,
            &mut self.answers,
        );
        for other in self.other_sessions(id) {
            self.backend
                .reply_after(other, left.clone(), &mut self.answers);
        }
        if self.is_registered(&name) {
            self.backend.account_room(&name, &room, false);
        }
        self.left_room(&room, &name);
    }

    /// `name` is no longer in `room`: a role it held ends.
    pub(super) fn left_room(&mut self, room: &RoomName, name: &UserName) {
        if self
            .rooms
            .get(room)
            .is_some_and(|state| state.role(name).is_some())
        {
            self.commit(room, vec![Change::Left(name.clone())]);
        }
        self.forget_if_gone(room);
    }

    pub(super) fn history(&mut self, id: ConnId, conv: Conv, range: HistoryRange) {
        let Some(limit) = self.roster.get(id).map(|p| p.outbox.limit()) else {
            return;
        };
        let key = match &conv {
            Conv::Room(room) => Ok(ConvKey::Room(room.clone())),
            Conv::Direct(other) => self.direct_key(id, other),
        };
        match key {
            Ok(key) => {
                let room = match &conv {
                    Conv::Room(room) if self.roster.is_member(id, room) => Some(room.clone()),
                    _ => None,
                };
                self.awaiting.push(Awaiting {
                    conn: id,
                    room,
                    first_live: None,
                });
                let ask = HistoryAsk {
                    from: id,
                    conv,
                    key,
                    range,
                    max_bytes: limit / 2,
                };
                self.backend.history(ask, &mut self.answers);
            }
            Err(reason) => self.error(id, reason),
        }
    }

    /// A live message `id` in `room` reached every member but `except`: for a member
    /// waiting for that room's history, the reply stops before it.
    pub(super) fn seen_live(&mut self, room: &RoomName, id: MessageId, except: Option<ConnId>) {
        for waiting in &mut self.awaiting {
            if waiting.first_live.is_none()
                && waiting.room.as_ref() == Some(room)
                && Some(waiting.conn) != except
            {
                waiting.first_live = Some(id);
            }
        }
    }

    /// Delivers a history reply, without what its asker already got live.
    pub(super) fn history_answered(&mut self, to: ConnId, lines: &Line) {
        let Some(at) = self.awaiting.iter().position(|a| a.conn == to) else {
            return self.deliver(to, lines);
        };
        match self.awaiting.remove(at).first_live {
            Some(first_live) => self.deliver(to, &before(lines, first_live)),
            None => self.deliver(to, lines),
        }
    }

    /// The conversation between `id` and `other`, if both are accounts: only its two
    /// members can name it, since the asker is always one of them.
    fn direct_key(&self, id: ConnId, other: &UserName) -> Result<ConvKey, String> {
        match self.roster.get(id).map(|p| &p.name) {
            Some(me) if self.is_registered(me) && self.is_registered(other) => {
                Ok(ConvKey::pair(me, other))
            }
            _ => Err(format!(
                "no history is kept for @{other}: direct messages are kept only between two registered accounts"
            )),
        }
    }
}

/// `lines` without the `history` entries from `first_live` on.
fn before(lines: &Line, first_live: MessageId) -> Line {
    let mut kept = BytesMut::with_capacity(lines.len());
    for line in lines.split_inclusive(|&b| b == b'\n') {
        let text = std::str::from_utf8(line).unwrap_or_default().trim_end();
        let live = matches!(
            text.parse::<ServerLine>(),
            Ok(ServerLine::History(entry)) if entry.id >= first_live
        );
        if !live {
            kept.extend_from_slice(line);
        }
    }
    kept.freeze()
}
