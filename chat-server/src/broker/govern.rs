//! Governing rooms: roles, topic, modes, kick, ban, invite, registered rooms, and the
//! server operators' `/kill` and `/suspend`. What is allowed is decided in
//! [`crate::governance`]; this part gathers what it needs (the room's state, its members,
//! who asks), hands the changes to the backend, and applies them when they come back
//! as [`Answer::Governed`](crate::backend::Answer::Governed), in the room's order.

use bytes::BytesMut;
use chat_proto::{ClientLine, MessageText, RoomMode, RoomName, ServerLine, UserName, encode_line};

use super::{Broker, offer};
use crate::accounts::Account;
use crate::governance::{self, Actor, Change, Members, RoomState};
use crate::roster::ConnId;

impl Broker {
    /// A governance line from `id`.
    pub(super) fn govern(&mut self, id: ConnId, line: ClientLine) {
        let Some(me) = self.roster.get(id).map(|p| p.name.clone()) else {
            return;
        };
        let actor = self.actor(&me);
        let decided = match line {
            ClientLine::Topic { room, text: None } => {
                let topic = self.rooms.get(&room).and_then(|s| s.topic.clone());
                return self.reply(id, ServerLine::Topic { room, topic });
            }
            ClientLine::Mode { room, changes } if changes.is_empty() => {
                let modes = self.rooms.get(&room).map(|s| s.modes).unwrap_or_default();
                return self.reply(id, ServerLine::Modes { room, modes });
            }
            ClientLine::Bans(room) => {
                let line = match self.rooms.get(&room) {
                    Some(state) => state.bans_line(&room),
                    None => RoomState::default().bans_line(&room),
                };
                return self.reply(id, line);
            }
            ClientLine::Kill { name, reason } => return self.kill(id, actor, &name, reason),
            ClientLine::Suspend { name, on } => return self.suspend(id, actor, &name, on),
            ClientLine::Invite { name, room } => {
                let Some(target) = self
                    .roster
                    .find_or_fold(&name)
                    .ok()
                    .map(|(_, p)| p.name.clone())
                else {
                    return self.error(id, format!("{name} is not online"));
                };
                self.decide(&room, actor, |state, members| {
                    governance::invite(&room, state, members, actor, &target)
                })
                .map(|changes| (room, changes, Some(target)))
            }
            ClientLine::SetRole {
                room,
                name,
                role,
                on,
            } => self
                .decide(&room, actor, |state, members| {
                    governance::set_role(&room, state, members, actor, &name, role, on)
                })
                .map(|changes| (room, changes, None)),
            ClientLine::Topic {
                room,
                text: Some(text),
            } => self
                .decide(&room, actor, |state, members| {
                    governance::set_topic(&room, state, members, actor, text)
                })
                .map(|changes| (room, changes, None)),
            ClientLine::Mode { room, changes } => self
                .decide(&room, actor, |state, _| {
                    governance::set_flags(&room, state, actor, &changes)
                })
                .map(|changes| (room, changes, None)),
            ClientLine::Kick { room, name, reason } => self
                .decide(&room, actor, |state, members| {
                    governance::kick(&room, state, members, actor, &name, reason)
                })
                .map(|changes| (room, changes, None)),
            ClientLine::Ban { room, name, on } => self
                .decide(&room, actor, |state, members| {
                    governance::ban(&room, state, members, actor, &name, on)
                })
                .map(|changes| (room, changes, None)),
            ClientLine::RegisterRoom(room) => self
                .decide(&room, actor, |state, _| {
                    governance::register(&room, state, actor)
                })
                .map(|changes| (room, changes, None)),
            ClientLine::UnregisterRoom(room) => self
                .decide(&room, actor, |state, _| {
                    governance::unregister(&room, state, actor)
                })
                .map(|changes| (room, changes, None)),
            other => Err(format!("{other}: not a governance command")),
        };
        match decided {
            Ok((room, changes, invited)) => {
                if changes.is_empty() {
                    return;
                }
                self.commit(&room, changes);
                if let Some(invited) = invited {
                    self.invited(id, &me, &invited, &room);
                }
            }
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

    /// Runs `rule` on `room`'s state and members. A room that has neither members nor
    /// a registration does not exist.
    fn decide(
        &self,
        room: &RoomName,
        actor: Actor<'_>,
        rule: impl FnOnce(&RoomState, &Members) -> Result<Vec<Change>, String>,
    ) -> Result<Vec<Change>, String> {
        let members = self.members(room);
        match self.rooms.get(room) {
            Some(state) if state.is_registered() || !members.is_empty() => rule(state, &members),
            _ if actor.oper => Err(format!("no such room: {room}")),
            _ => Err(format!("you are not in {room}")),
        }
    }

    /// The members of `room`, by folded name.
    pub(super) fn members(&self, room: &RoomName) -> Members {
        self.roster
            .member_names(room)
            .unwrap_or_default()
            .into_iter()
            .map(|name| (name.folded(), name))
            .collect()
    }

    /// Hands `changes` to the backend, with the state they make to keep.
    pub(super) fn commit(&mut self, room: &RoomName, changes: Vec<Change>) {
        let accounts = self.accounts.as_ref();
        let is_account = |name: &UserName| accounts.is_some_and(|a| a.is_registered(name));
        let mut after = self
            .rooms
            .get(room)
            .cloned()
            .unwrap_or_else(RoomState::new_room);
        for change in &changes {
            after.apply(change, is_account);
        }
        self.backend
            .govern(room, changes, &after, &mut self.answers);
    }

    /// Changes to `room` came back in the room's order: apply them, tell the members
    /// here, and take out whom they removed.
    pub(super) fn governed(&mut self, room: &RoomName, changes: &[Change]) {
        let accounts = self.accounts.as_ref();
        let is_account = |name: &UserName| accounts.is_some_and(|a| a.is_registered(name));
        let state = self
            .rooms
            .entry(room.clone())
            .or_insert_with(RoomState::new_room);
        for change in changes {
            state.apply(change, is_account);
        }
        for change in changes {
            let Some(line) = change.line(room) else {
                continue;
            };
            let line = encode_line(line);
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
                && let Some((id, _)) = self.roster.find_folded(&gone.folded())
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

    /// `/invite` went through: the invited user is told, then the inviter.
    fn invited(&mut self, id: ConnId, me: &UserName, invited: &UserName, room: &RoomName) {
        let told = ServerLine::Invited {
            room: room.clone(),
            by: me.clone(),
        };
        if let Some((to, peer)) = self.roster.find_folded(&invited.folded()) {
            offer(to, peer, &encode_line(told), &mut self.failed);
        }
        self.reply(
            id,
            ServerLine::InviteSent {
                name: invited.clone(),
                room: room.clone(),
            },
        );
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
    fn kill(&mut self, id: ConnId, actor: Actor<'_>, name: &UserName, reason: Option<MessageText>) {
        if !actor.oper {
            return self.error(id, "/kill is for server operators".to_owned());
        }
        let Some((target, _)) = self.roster.find_or_fold(name).ok() else {
            return self.error(id, format!("{name} is not online"));
        };
        let reason = reason.map_or_else(|| "no reason given".to_owned(), |r| r.to_string());
        self.disconnect(target, format!("killed by {}: {reason}", actor.name));
    }

    /// `/suspend` and `/unsuspend <name>`.
    fn suspend(&mut self, id: ConnId, actor: Actor<'_>, name: &UserName, on: bool) {
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
        if let Some((target, _)) = self.roster.find_folded(&account.name.folded()) {
            self.disconnect(target, format!("account suspended by {by}"));
        }
    }

    /// Tells `id` `error: <reason>` as its last line and drops it.
    fn disconnect(&mut self, id: ConnId, reason: String) {
        if let Some(peer) = self.roster.get(id) {
            peer.outbox
                .send_last(&encode_line(ServerLine::Error(reason)));
            self.failed.push(id);
        }
    }

    fn reply(&mut self, id: ConnId, line: ServerLine) {
        self.deliver(id, &encode_line(line));
    }
}
