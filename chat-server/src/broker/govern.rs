//! Governing rooms: roles, topic, modes, kick, ban, invite, registered rooms, and the
//! server operators' `/kill` and `/suspend`. What is allowed is decided in
//! [`crate::governance`]; this part gathers what it needs (the room's state, its members,
//! who asks), hands the changes to the backend, and applies them when they come back
//! as [`Answer::Governed`](crate::backend::Answer::Governed), in the room's order.

use bytes::BytesMut;
use chat_proto::{ClientLine, MessageText, RoomMode, RoomName, ServerLine, UserName, encode_line};

use super::{Broker, offer};
use crate::accounts::Account;
use crate::backend::Pending;
use crate::governance::{self, Actor, Change, Members, RoomState};
use crate::roster::ConnId;
use crate::sendq::{Line, Note, noted};

impl Broker {
    /// A governance line from `id`. Whatever names a room is decided on what the chat
    /// knows of it, fetched first (at once on one server).
    pub(super) fn govern(&mut self, id: ConnId, line: ClientLine) {
        let Some(me) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        match line {
            ClientLine::Kill { name, reason } => self.kill(id, &me, &name, reason),
            ClientLine::Suspend { name, on } => self.suspend(id, &me, &name, on),
            line => match room_of(&line) {
                Some(room) => {
                    self.wait_for_fetch(id);
                    self.backend
                        .fetch_room(id, &room, Pending::Line(line), &mut self.answers);
                }
                None => self.error(id, format!("{line}: not a room command")),
            },
        }
    }

    /// What the chat knows of `room` came for `line` of `to`: decide it.
    pub(super) fn fetched(
        &mut self,
        to: ConnId,
        room: RoomName,
        line: Pending,
        found: Option<(Option<RoomState>, Members)>,
    ) {
        let shared = found.is_some();
        let members = match found {
            Some((state, members)) => {
                match state {
                    Some(state) => self.rooms.insert(room.clone(), state),
                    None => self.rooms.remove(&room),
                };
                members
            }
            None => self.members(&room),
        };
        match line {
            Pending::Line(line) => self.decide_line(to, &room, line, &members, shared),
            Pending::CatchUp => self.caught_up(to, &room, &members),
        }
        self.forget_if_gone(&room);
    }

    /// Decides `line` of `id` on `room`'s state and `members`; `shared`: they are the
    /// whole chat's, not only this node's.
    fn decide_line(
        &mut self,
        id: ConnId,
        room: &RoomName,
        line: ClientLine,
        members: &Members,
        shared: bool,
    ) {
        let Some(me) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        let actor = self.actor(&me);
        let exists = |state: &RoomState| state.is_registered() || !members.is_empty();
        let state = self.rooms.get(room).filter(|state| exists(state));
        let decided = match line {
            ClientLine::Join(room) => return self.join_decided(id, room, members),
            ClientLine::Names(room) => {
                if members.is_empty() {
                    return self.error(id, format!("no such room: {room}"));
                }
                let mut names: Vec<UserName> = members.values().cloned().collect();
                names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                let roles = state.cloned().unwrap_or_default().roles_line(&room);
                // For IRC's `WHO #channel` (`G` or `H`): who of them is away.
                let away: Vec<String> = names
                    .iter()
                    .filter(|name| self.is_away(name))
                    .map(UserName::folded)
                    .collect();
                let away = away.join(",");
                let line = encode_line(ServerLine::Names { room, names });
                let note = (!away.is_empty()).then_some(Note::AwayAmong(&away));
                self.deliver(id, &noted(note, line));
                return self.reply(id, roles);
            }
            ClientLine::Topic { room, text: None } => {
                let topic = state.and_then(|s| s.topic.clone());
                return self.reply(id, ServerLine::Topic { room, topic });
            }
            ClientLine::Mode { room, changes } if changes.is_empty() => {
                let modes = state.map(|s| s.modes).unwrap_or_default();
                return self.reply(id, ServerLine::Modes { room, modes });
            }
            ClientLine::Bans(room) => {
                let line = state.cloned().unwrap_or_default().bans_line(&room);
                return self.reply(id, line);
            }
            ClientLine::Invite { name, .. } => self
                .decide(room, state, actor, |state| {
                    governance::invite(room, state, members, actor, &name)
                })
                .map(|changes| (changes, Some(name))),
            ClientLine::SetRole { name, role, on, .. } => self
                .decide(room, state, actor, |state| {
                    let is_account = |name: &UserName| self.is_registered(name);
                    governance::set_role(room, state, members, actor, &name, role, on, is_account)
                })
                .map(|changes| (changes, None)),
            ClientLine::Topic {
                text: Some(text), ..
            } => self
                .decide(room, state, actor, |state| {
                    governance::set_topic(room, state, members, actor, Some(text))
                })
                .map(|changes| (changes, None)),
            ClientLine::ClearTopic(_) => self
                .decide(room, state, actor, |state| {
                    governance::set_topic(room, state, members, actor, None)
                })
                .map(|changes| (changes, None)),
            ClientLine::Mode { changes, .. } => self
                .decide(room, state, actor, |state| {
                    governance::set_flags(room, state, actor, &changes)
                })
                .map(|changes| (changes, None)),
            ClientLine::Kick { name, reason, .. } => self
                .decide(room, state, actor, |state| {
                    governance::kick(room, state, members, actor, &name, reason)
                })
                .map(|changes| (changes, None)),
            ClientLine::Ban { name, on, .. } => self
                .decide(room, state, actor, |state| {
                    governance::ban(room, state, members, actor, &name, on)
                })
                .map(|changes| (changes, None)),
            ClientLine::RegisterRoom(_) => self
                .decide(room, state, actor, |state| {
                    let is_account = |name: &UserName| self.is_registered(name);
                    governance::register(room, state, actor, is_account)
                })
                .map(|changes| (changes, None)),
            ClientLine::UnregisterRoom(_) => self
                .decide(room, state, actor, |state| {
                    governance::unregister(room, state, actor)
                })
                .map(|changes| (changes, None)),
            other => Err(format!("{other}: not a room command")),
        };
        match decided {
            Ok((changes, Some(invited))) => self.invite(id, &me, room, changes, &invited, shared),
            Ok((changes, None)) if changes.is_empty() => {}
            Ok((changes, None)) => self.commit(room, changes),
            Err(reason) => self.error(id, reason),
        }
    }

    /// Who `name` is, for the rules: an account it logged in to, an operator.
    pub(super) fn actor<'a>(&self, name: &'a UserName) -> Actor<'a> {
        let account = self.is_registered(name);
        Actor {
            name,
            account,
            oper: account && self.opers.contains(&name.folded()),
        }
    }

    /// Runs `rule` on `room`'s state, if the room exists (it has members or is
    /// registered).
    fn decide(
        &self,
        room: &RoomName,
        state: Option<&RoomState>,
        actor: Actor<'_>,
        rule: impl FnOnce(&RoomState) -> Result<Vec<Change>, String>,
    ) -> Result<Vec<Change>, String> {
        match state {
            Some(state) => rule(state),
            None if actor.oper => Err(format!("no such room: {room}")),
            None => Err(format!("you are not in {room}")),
        }
    }

    /// The members of `room` here, by folded name.
    pub(super) fn members(&self, room: &RoomName) -> Members {
        self.roster
            .member_names(room)
            .unwrap_or_default()
            .into_iter()
            .map(|name| (name.folded(), name))
            .collect()
    }

    /// Applies `changes` and hands them to the backend, with the state they make to
    /// keep.
    pub(super) fn commit(&mut self, room: &RoomName, changes: Vec<Change>) {
        // Applied here at once, so this node's next decision sees it even where the
        // backend brings it back later; applying a change twice changes nothing more.
        let after = self.apply(room, &changes).clone();
        self.backend
            .govern(room, changes, &after, &mut self.answers);
    }

    /// Applies `changes` to `room`'s state here; the state they make.
    fn apply(&mut self, room: &RoomName, changes: &[Change]) -> &RoomState {
        let state = self
            .rooms
            .entry(room.clone())
            .or_insert_with(RoomState::new_room);
        for change in changes {
            state.apply(change);
        }
        state
    }

    /// Changes to `room` came back in the room's order: apply them, tell the members
    /// here, and take out whom they removed.
    pub(super) fn governed(&mut self, room: &RoomName, changes: &[Change]) {
        self.apply(room, changes);
        for change in changes {
            let Some(line) = change.line(room) else {
                continue;
            };
            let line = noted(change.note(), encode_line(line));
            let skip = match change {
                Change::Joined { name, .. } => Some(name.folded()),
                _ => None,
            };
            for (id, peer) in self.roster.members(room).into_iter().flatten() {
                if skip.as_deref() != Some(&peer.name.folded()) {
                    offer(id, peer, &line, &mut self.failed);
                }
            }
            if let Some(gone) = change.removes()
                && let Some(&id) = self
                    .roster
                    .find_folded(&gone.folded())
                    .and_then(|user| user.sessions.first())
                && self.roster.part_room(id, room)
            {
                self.backend.leave_quietly(room, gone, &self.roster);
            }
        }
        self.forget_if_gone(room);
    }

    /// Drops `room`'s state once it has no members here and is not registered.
    pub(super) fn forget_if_gone(&mut self, room: &RoomName) {
        let empty = self.roster.members(room).is_none();
        if empty && self.rooms.get(room).is_some_and(|s| !s.is_registered()) {
            self.rooms.remove(room);
        }
    }

    /// `/invite` of `invited` into `room` is allowed: the invited user (online) is told,
    /// then the inviter. One not here is looked for elsewhere in a cluster; on one
    /// server it is not online, and nothing is recorded.
    fn invite(
        &mut self,
        id: ConnId,
        me: &UserName,
        room: &RoomName,
        changes: Vec<Change>,
        invited: &UserName,
        shared: bool,
    ) {
        let here = self
            .roster
            .find(invited)
            .map(|user| (user.sessions.clone(), user.name.clone()));
        let name = here.as_ref().map_or(invited, |(_, name)| name).clone();
        let told = encode_line(ServerLine::Invited {
            room: room.clone(),
            by: me.clone(),
        });
        let sent = encode_line(ServerLine::InviteSent {
            name: name.clone(),
            room: room.clone(),
        });
        match here {
            Some((sessions, _)) => {
                self.commit(room, changes);
                for to in sessions {
                    self.deliver(to, &told);
                }
                self.deliver(id, &sent);
            }
            None => {
                if shared {
                    self.commit(room, changes);
                }
                self.backend.tell(id, &name, told, sent, &mut self.answers);
            }
        }
    }

    /// What a joiner of `room` is told after `names`: `roles`, then the topic if set.
    pub(super) fn join_lines(room: &RoomName, state: &RoomState) -> bytes::Bytes {
        let mut lines = BytesMut::from(&encode_line(state.roles_line(room))[..]);
        if let Some(topic) = &state.topic {
            lines.extend_from_slice(&encode_line(ServerLine::Topic {
                room: room.clone(),
                topic: Some(topic.clone()),
            }));
        }
        lines.freeze()
    }

    /// Whether `id` may send to `room` under its modes.
    pub(super) fn may_speak(&self, id: ConnId, room: &RoomName) -> Result<(), String> {
        let Some(state) = self.rooms.get(room) else {
            return Ok(());
        };
        if !state.modes.has(RoomMode::Moderated) {
            return Ok(());
        }
        let Some(peer) = self.roster.get(id) else {
            return Ok(());
        };
        state
            .may_speak(self.actor(&peer.name))
            .map_err(|reason| format!("{room}: {reason}"))
    }

    /// The rooms `/rooms` leaves out for `id`: secret ones it is not in.
    pub(super) fn secret_rooms(&self, id: ConnId) -> Vec<RoomName> {
        self.rooms
            .iter()
            .filter(|(room, state)| {
                state.modes.has(RoomMode::Secret) && !self.roster.is_member(id, room)
            })
            .map(|(room, _)| room.clone())
            .collect()
    }

    /// `/kill <name> [reason]`.
    fn kill(&mut self, id: ConnId, me: &UserName, name: &UserName, reason: Option<MessageText>) {
        if !self.actor(me).oper {
            return self.error(id, "/kill is for server operators".to_owned());
        }
        let reason = reason.map_or_else(|| "no reason given".to_owned(), |r| r.to_string());
        let reason = format!("killed by {me}: {reason}");
        match self
            .roster
            .find(name)
            .map(|u| (u.sessions.clone(), u.name.clone()))
        {
            Some((sessions, name)) => {
                for target in sessions {
                    self.disconnect(target, reason.clone());
                }
                let lines = encode_line(ServerLine::Error(reason));
                self.backend.kill_elsewhere(&name, lines);
            }
            None => {
                let lines = encode_line(ServerLine::Error(reason));
                self.backend.kill(id, name, lines, &mut self.answers);
            }
        }
    }

    /// `/suspend` and `/unsuspend <name>`.
    fn suspend(&mut self, id: ConnId, me: &UserName, name: &UserName, on: bool) {
        let actor = self.actor(me);
        if !actor.oper {
            let command = if on { "/suspend" } else { "/unsuspend" };
            return self.error(id, format!("{command} is for server operators"));
        }
        let Some(account) = self.accounts.as_ref().and_then(|a| a.get(name)).cloned() else {
            return self.error(id, format!("{name} is not a registered account"));
        };
        let account = Account {
            suspended: on,
            ..account
        };
        if let Some(accounts) = &mut self.accounts {
            accounts.put(account.clone());
        }
        self.backend.put_account(account.clone());
        if on {
            self.suspended(&account, actor.name.as_str());
        }
    }

    /// `account` was suspended (here, by `by`, or elsewhere): its sessions here end.
    pub(super) fn suspended(&mut self, account: &Account, by: &str) {
        for target in self.sessions_of(&account.name.folded()) {
            self.disconnect(target, format!("account suspended by {by}"));
        }
    }

    /// Tells `id` `error: <reason>` as its last line and drops it.
    pub(super) fn disconnect(&mut self, id: ConnId, reason: String) {
        self.disconnect_with(id, &encode_line(ServerLine::Error(reason)));
    }

    /// Sends `id` `lines` as its last and drops it.
    pub(super) fn disconnect_with(&mut self, id: ConnId, lines: &Line) {
        if let Some(peer) = self.roster.get(id) {
            peer.outbox.send_last(lines);
            self.failed.push(id);
        }
    }

    fn reply(&mut self, id: ConnId, line: ServerLine) {
        self.deliver(id, &encode_line(line));
    }
}

/// The room a governance line is about.
fn room_of(line: &ClientLine) -> Option<RoomName> {
    match line {
        ClientLine::Join(room)
        | ClientLine::Names(room)
        | ClientLine::SetRole { room, .. }
        | ClientLine::Topic { room, .. }
        | ClientLine::ClearTopic(room)
        | ClientLine::Mode { room, .. }
        | ClientLine::Kick { room, .. }
        | ClientLine::Ban { room, .. }
        | ClientLine::Bans(room)
        | ClientLine::Invite { room, .. }
        | ClientLine::RegisterRoom(room)
        | ClientLine::UnregisterRoom(room) => Some(room.clone()),
        _ => None,
    }
}
