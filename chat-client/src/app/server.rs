//! The network: login, disconnects and refusals, and where each server line goes.

use chat_proto::{ClientLine, HistoryEntry, RoomName, Scope, ServerLine, UserName};
use chrono::NaiveDateTime;

use super::{App, Command, Exit, HistoryAsk, join_names};
use crate::buffers::{BufferId, Merged};
use crate::entry::EntryKind;
use crate::event::{Clock, NetEvent};
use crate::sanitize::SafeText;

impl App {
    pub(super) fn on_net(&mut self, event: NetEvent, clock: Clock) {
        match event {
            NetEvent::Connected => self.connected(clock),
            NetEvent::Line(line) => {
                self.keepalive.heard(clock.now);
                self.on_line(line, clock);
            }
            NetEvent::Unrecognised(raw) => self.note_in(
                0,
                format!("unrecognised line from the server: {raw}"),
                true,
                clock,
            ),
            NetEvent::LoginRefused(reason) if !self.conn.ever_connected() => {
                self.quit(Exit::Refused(reason));
            }
            NetEvent::LoginRefused(reason) if reason.contains("password") => {
                // The same login again would be refused again (and count against the
                // server's login throttle): only the user has the password.
                self.connection_lost_cleanup();
                self.conn.stop(reason.clone());
                let text = format!(
                    "login refused: {reason}; type /login <password> to log in (it is shown masked), or start the client with --password-file FILE or CHAT_PASSWORD set"
                );
                self.note_everywhere(text, true, clock);
            }
            NetEvent::LoginRefused(reason) => {
                self.connection_lost_cleanup();
                let text = if self.conn.refused(reason.clone(), clock.now) {
                    format!("login refused: {reason}; trying again")
                } else {
                    format!("login refused: {reason}; not retrying: /reconnect tries again")
                };
                self.note_everywhere(text, true, clock);
            }
            NetEvent::Unreachable { reason, .. } if !self.conn.ever_connected() => {
                self.quit(Exit::Unreachable(reason));
            }
            NetEvent::Unreachable { reason, unsent } => {
                // It worked before, so something changed (a new certificate, say); the
                // same attempt every 30 s would only fail the same way.
                self.unsent(&unsent);
                self.connection_lost_cleanup();
                self.conn.stop(reason.clone());
                let text =
                    format!("cannot connect: {reason}; not retrying: /reconnect tries again");
                self.note_everywhere(text, true, clock);
            }
            NetEvent::Disconnected { reason, unsent } => {
                self.unsent(&unsent);
                self.connection_lost_cleanup();
                let delay = self.conn.lost(reason.clone(), clock.now);
                self.note_everywhere(
                    format!(
                        "disconnected: {reason}; reconnecting in {} s",
                        delay.as_secs()
                    ),
                    true,
                    clock,
                );
            }
        }
    }

    /// Logged in: asks who is online. What the server says before that answer is about
    /// the login (the rooms the account is in already, through another session); the
    /// answer settles it.
    pub(super) fn connected(&mut self, clock: Clock) {
        self.conn.connected();
        self.roster.clear();
        let text = format!(
            "connected to {} as {}",
            self.settings.addr, self.settings.name
        );
        self.note_everywhere(text, false, clock);
        self.keepalive.start(clock.now);
        self.out.push(Command::Send(ClientLine::Who));
        self.settling = Some(Vec::new());
        self.logged_in(clock.now);
    }

    /// The answer to the login's `/who`: the rooms we want and the account is not in
    /// already are joined again, each asks for what it missed, and then the outbox goes
    /// out, after the joins its lines may need.
    fn settled(&mut self) {
        let caught_up = self.settling.take().unwrap_or_default();
        let rooms: Vec<RoomName> = self
            .view
            .buffers()
            .all()
            .iter()
            .filter(|b| b.wanted)
            .filter_map(|b| match &b.id {
                BufferId::Room(room) => Some(room.clone()),
                _ => None,
            })
            .collect();
        for room in &rooms {
            if caught_up.contains(room) {
                self.follow_room(room);
            } else {
                self.join(room);
            }
        }
        for buffer in self.view.buffers_mut().all_mut() {
            buffer.flushed_from = None;
        }
        for mut pending in self.outbox.drain() {
            if let Some(index) = self.view.buffers().find(&pending.buffer) {
                let (buffers, measure) = self.view.measured();
                let buffer = buffers.get_mut(index);
                buffer.mark_sent(pending.seq, &measure);
                buffer.flushed_from.get_or_insert(pending.seq);
                if !pending.logged {
                    pending.logged = true;
                    let entry = buffer
                        .entries()
                        .iter()
                        .rfind(|e| e.seq == pending.seq)
                        .cloned();
                    if let Some(entry) = entry {
                        self.log(index, &entry);
                    }
                }
            }
            self.out.push(Command::Send(pending.line.clone()));
            self.outbox.sent(pending);
        }
    }

    /// Lines the connection gave back: ours wait in the outbox again, shown as pending.
    pub(super) fn unsent(&mut self, lines: &[ClientLine]) {
        for pending in self.outbox.returned(lines) {
            if let Some(index) = self.view.buffers().find(&pending.buffer) {
                let (buffers, measure) = self.view.measured();
                buffers.get_mut(index).mark_pending(pending.seq, &measure);
            }
        }
    }

    pub(super) fn connection_lost_cleanup(&mut self) {
        self.roster.clear();
        self.incoming.clear();
        self.forget_questions();
        self.settling = None;
        self.join_asked.clear();
        self.history_asks.clear();
        self.read_asks.clear();
        self.after_whois = None;
        self.account.lost();
        self.keepalive.stop();
        for buffer in self.view.buffers_mut().all_mut() {
            buffer.member = false;
            buffer.room.clear();
        }
    }

    pub(super) fn on_line(&mut self, line: ServerLine, clock: Clock) {
        let after_roles = self.take_after_roles();
        let after_whois = self.after_whois.take();
        match line {
            ServerLine::Welcome(_) => {}
            ServerLine::Sent { to, text } => self.on_sent(to, text, clock),
            ServerLine::Read { conv, id } => self.on_read(&conv, id, clock.now),
            ServerLine::Away { name, text } => self.on_away(name, text, after_whois, clock),
            ServerLine::Whois {
                name,
                idle,
                sessions,
            } => self.on_whois(name, idle, sessions, clock),
            ServerLine::Pong(_) => self.keepalive.pong(),
            ServerLine::Roles { room, members } => self.on_roles(room, &members),
            ServerLine::Topic { room, topic } => {
                let after_roles = after_roles.as_ref() == Some(&room);
                self.on_topic(room, topic, after_roles, clock);
            }
            ServerLine::Modes { room, modes } => self.on_modes(room, modes, clock),
            ServerLine::Mode {
                room,
                setter,
                change,
            } => self.on_mode(room, setter, change, clock),
            ServerLine::Kicked {
                room,
                name,
                setter,
                reason,
            } => self.on_kicked(room, name, setter, reason, clock),
            ServerLine::Bans { room, names } => self.on_bans(room, &names, clock),
            ServerLine::Invited { room, by } => self.on_invited(room, by, clock),
            ServerLine::InviteSent { name, room } => self.on_invite_sent(name, room, clock),
            ServerLine::RoomRegistered { room, founder } => {
                self.on_room_registered(room, founder, clock)
            }
            ServerLine::From {
                sender,
                scope,
                text,
            } => {
                let (id, buffer) = match scope {
                    Scope::Direct => (None, BufferId::Query(sender.clone())),
                    Scope::Everyone => (None, BufferId::Everyone),
                    Scope::Room { room, id } => (Some(id), BufferId::Room(room)),
                };
                let me = sender.folded() == self.folded_name;
                if me && !matches!(buffer, BufferId::Query(_)) {
                    return self.own_line_from_elsewhere(buffer, id, &text, clock);
                }
                let index = self.view.buffers_mut().open(buffer);
                if id.is_some_and(|id| self.view.buffers().all()[index].has_id(id)) {
                    return;
                }
                self.last_spoke.insert(sender.folded(), clock.now);
                let (buffers, measure) = self.view.measured();
                buffers.unmask_join(index, &sender, clock.now, &measure);
                let mention = self.mentions_me(text.as_str());
                let kind = EntryKind::Message {
                    from: sender.clone(),
                    text: SafeText::new(text.as_str()),
                    id,
                    mention,
                };
                self.push(index, kind, clock);
                let direct = matches!(self.view.buffers().all()[index].id, BufferId::Query(_));
                if (mention || direct) && !me {
                    self.highlight(index, &sender, direct);
                }
            }
            ServerLine::Joined(name) => {
                self.roster.insert(name.clone());
                self.presence_everywhere(true, name, clock);
            }
            ServerLine::Left(name) => {
                self.roster.remove(&name);
                self.presence_everywhere(false, name, clock);
            }
            ServerLine::JoinedRoom { room, name } => {
                let index = self.view.buffers_mut().open(BufferId::Room(room.clone()));
                let buffer = self.view.buffers_mut().get_mut(index);
                buffer.room.joined(name.clone());
                if name.folded() == self.folded_name {
                    buffer.room.rejoined();
                    buffer.member = true;
                    buffer.wanted = true;
                    if self.joining.as_ref() == Some(&room) {
                        self.joining = None;
                        self.switch(index);
                    }
                    let asked = self.join_asked.iter().position(|r| *r == room);
                    if let Some(at) = asked {
                        self.join_asked.remove(at);
                        self.note_in(index, format!("you joined {room}"), false, clock);
                    } else {
                        // Another session's `/join`, which is the account's.
                        let text = format!("you joined {room} (from another session)");
                        self.note_in(index, text, false, clock);
                        self.follow_room(&room);
                        self.another_session(clock.now);
                    }
                } else {
                    self.presence(index, true, name, Some(room), clock);
                }
            }
            ServerLine::LeftRoom { room, name } => {
                let Some(index) = self.view.buffers().find(&BufferId::Room(room.clone())) else {
                    return;
                };
                let buffer = self.view.buffers_mut().get_mut(index);
                buffer.room.left(&name);
                if name.folded() == self.folded_name {
                    buffer.member = false;
                    buffer.wanted = false;
                    buffer.room.clear();
                    self.note_in(
                        index,
                        format!("you left {room}; /close closes this buffer"),
                        false,
                        clock,
                    );
                } else {
                    self.presence(index, false, name, Some(room), clock);
                }
            }
            ServerLine::Names { room, names } if self.settling.is_some() => {
                self.caught_up(room, names, clock);
            }
            ServerLine::Names { room, names } => {
                let list = join_names(&names);
                let text = format!("{room} ({}): {list}", names.len());
                let index = match self.view.buffers().find(&BufferId::Room(room)) {
                    Some(index) => {
                        self.view
                            .buffers_mut()
                            .get_mut(index)
                            .room
                            .set_members(names);
                        index
                    }
                    None => self.view.buffers().current_index(),
                };
                self.note_in(index, text, false, clock);
            }
            ServerLine::Rooms(rooms) => {
                let list = rooms
                    .iter()
                    .map(|(room, n)| format!("{room} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.known_rooms = rooms.into_iter().map(|(room, _)| room).collect();
                let text = if list.is_empty() {
                    "no rooms yet; /join #name makes one".to_owned()
                } else {
                    format!("rooms: {list}")
                };
                self.note_in(self.view.buffers().current_index(), text, false, clock);
            }
            ServerLine::History(entry) => {
                let conv = entry.conv.clone();
                let item = self.history_item(entry);
                self.incoming.entry(conv).or_default().push(item);
            }
            ServerLine::HistoryEnd { conv, truncated } => {
                let batch = self.incoming.remove(&conv).unwrap_or_default();
                let buffer = BufferId::of_conv(&conv);
                let why = self.take_history_ask(&buffer);
                let older = why == HistoryAsk::Older;
                let got = batch.len();
                let index = self.view.buffers_mut().open(buffer);
                // A batch after messages we had is news (a catch-up after a reconnect);
                // the latest messages shown at a join, and older ones fetched by
                // scrolling back, were written before we looked.
                let news = why == HistoryAsk::Follow
                    && self.view.buffers().all()[index].last_id().is_some();
                let label = match (older, truncated) {
                    (false, false) => format!("history of {conv}"),
                    (false, true) => format!("history of {conv} (older messages are gone)"),
                    (true, false) => format!("older messages of {conv}"),
                    (true, true) => format!("older messages of {conv} (the oldest are gone)"),
                };
                let merged = self.merge(index, &label, batch, news);
                if news {
                    self.highlight_merged(index, &merged);
                    self.log_merged(index, &merged);
                }
                if merged.new == 0 && older {
                    self.view.buffers_mut().get_mut(index).at_start = true;
                    let label = if truncated {
                        "beginning of the history kept"
                    } else {
                        "beginning of history"
                    };
                    let (buffers, measure) = self.view.measured();
                    buffers.mark_start(index, label, &measure);
                    let text = if truncated {
                        format!("older messages of {conv} are gone")
                    } else {
                        format!("no older messages in {conv}")
                    };
                    self.hint = Some((SafeText::new(&text), false));
                }
                if merged.new == 0 && why == HistoryAsk::Typed {
                    // Asked for, so answered, though it adds nothing to the buffer.
                    let text = if got == 0 {
                        format!("no messages in {conv} yet")
                    } else {
                        format!("the latest {got} messages of {conv} are all here already")
                    };
                    self.note_in(index, text, false, clock);
                }
            }
            ServerLine::Missed(n) => {
                for (conv, batch) in std::mem::take(&mut self.incoming) {
                    let index = self.view.buffers_mut().open(BufferId::of_conv(&conv));
                    let merged = self.merge(index, "while you were away", batch, true);
                    self.highlight_merged(index, &merged);
                    self.log_merged(index, &merged);
                }
                self.note_in(
                    0,
                    format!("{n} message(s) arrived while you were away"),
                    false,
                    clock,
                );
            }
            ServerLine::Users(names) => {
                self.roster = names.iter().cloned().collect();
                if self.settling.is_some() {
                    self.settled();
                } else if self.who_asked > 0 {
                    self.who_asked -= 1;
                    let text = format!("online ({}): {}", names.len(), join_names(&names));
                    self.note_in(self.view.buffers().current_index(), text, false, clock);
                }
            }
            ServerLine::Stored(name) => {
                let index = self.view.buffers_mut().open(BufferId::Query(name.clone()));
                self.note_in(
                    index,
                    format!("{name} is offline; the message is stored for their next login"),
                    false,
                    clock,
                );
            }
            ServerLine::Registered(name) => {
                if name.folded() == self.folded_name {
                    self.account.set_registered();
                    if let Some(password) = self.new_password.take() {
                        self.out.push(Command::UsePassword(password));
                    }
                }
                self.note_in(
                    self.view.buffers().current_index(),
                    format!("{name} is now registered"),
                    false,
                    clock,
                );
            }
            ServerLine::PasswordChanged => {
                if let Some(password) = self.new_password.take() {
                    self.out.push(Command::UsePassword(password));
                }
                self.note_in(
                    self.view.buffers().current_index(),
                    "password changed".to_owned(),
                    false,
                    clock,
                );
            }
            ServerLine::Error(reason) => {
                self.note_in(
                    self.view.buffers().current_index(),
                    format!("error: {reason}"),
                    true,
                    clock,
                );
            }
            ServerLine::Bye(reason) => {
                self.note_everywhere(format!("server says bye: {reason}"), true, clock)
            }
        }
    }

    pub(super) fn history_item(&self, entry: HistoryEntry) -> (NaiveDateTime, EntryKind) {
        let time = chrono::DateTime::from_timestamp_millis(entry.time.unix_millis())
            .map_or(NaiveDateTime::MIN, |t| {
                t.with_timezone(&chrono::Local).naive_local()
            });
        let text = SafeText::new(entry.text.as_str());
        let kind = if entry.sender.folded() == self.folded_name {
            EntryKind::Own {
                text,
                id: Some(entry.id),
                pending: false,
            }
        } else {
            EntryKind::Message {
                mention: self.mentions_me(entry.text.as_str()),
                from: entry.sender,
                text,
                id: Some(entry.id),
            }
        };
        (time, kind)
    }

    /// Merges history into buffer `index`; returns what was new.
    pub(super) fn merge(
        &mut self,
        index: usize,
        label: &str,
        batch: Vec<(NaiveDateTime, EntryKind)>,
        news: bool,
    ) -> Merged {
        let (buffers, measure) = self.view.measured();
        buffers.merge_history(index, label, batch, news, &measure)
    }

    /// A `names` line between a login and the answer to its `/who`: the account is in
    /// this room already, through another session. The buffer is a member's again, and
    /// is caught up on rather than joined.
    fn caught_up(&mut self, room: RoomName, names: Vec<UserName>, clock: Clock) {
        let index = self.view.buffers_mut().open(BufferId::Room(room.clone()));
        let buffer = self.view.buffers_mut().get_mut(index);
        let new = !buffer.wanted;
        buffer.member = true;
        buffer.wanted = true;
        buffer.room.rejoined();
        let text = format!("{room} ({}): {}", names.len(), join_names(&names));
        buffer.room.set_members(names);
        if new {
            let joined = format!("you are in {room} (joined from another session)");
            self.note_in(index, joined, false, clock);
        }
        self.note_in(index, text, false, clock);
        if let Some(rooms) = &mut self.settling {
            rooms.push(room);
        }
    }

    /// Someone wrote to us: a mention, or any direct message (WeeChat treats a private
    /// message as a highlight too). Its buffer gets `!`, the bell rings and the title says
    /// who, unless the user is reading that buffer (shown, at the bottom, no overlay):
    /// then it is seen as it arrives, and nothing would put the title back.
    pub(super) fn highlight(&mut self, index: usize, sender: &UserName, direct: bool) {
        let reading = index == self.view.buffers().current_index()
            && self.modes.help().is_none()
            && self.view.buffers().current().scroll == 0;
        if reading {
            return;
        }
        let buffer = self.view.buffers_mut().get_mut(index);
        buffer.mentioned = true;
        if !self.settings.bell {
            return;
        }
        let title = if direct {
            format!("chat-client: {sender} wrote to you")
        } else {
            let label = buffer.id.label();
            format!("chat-client: {sender} mentioned you in {label}")
        };
        self.titled = true;
        self.out.push(Command::Bell);
        self.out.push(Command::Title(Some(title)));
    }

    /// News merged into buffer `index` that is for us: a mention, or in a conversation
    /// any message, is a highlight as if it had arrived live.
    fn highlight_merged(&mut self, index: usize, merged: &Merged) {
        let direct = matches!(self.view.buffers().all()[index].id, BufferId::Query(_));
        let from = if direct {
            &merged.message_from
        } else {
            &merged.mention_from
        };
        if let Some(sender) = from.clone() {
            self.highlight(index, &sender, direct);
        }
    }

    /// Whether `text` names us, or one of the highlight words: a whole word, compared
    /// folded.
    pub(super) fn mentions_me(&self, text: &str) -> bool {
        text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .filter(|w| !w.is_empty())
            .any(|word| {
                let folded = chat_proto::name::fold(word);
                let trimmed = chat_proto::name::fold(word.trim_matches(['.', '-']));
                self.folded_highlights
                    .iter()
                    .any(|h| *h == folded || *h == trimmed)
            })
    }
}
