//! Typed lines: text for the current buffer, and the `/commands`; sending now or through
//! the outbox.

use chat_proto::{
    ClientLine, Conv, DEFAULT_HISTORY_LINES, HistoryRange, MessageText, Password, Recipient,
    RoomName,
};

use super::{App, Command, HistoryAsk};
use crate::buffers::BufferId;
use crate::commands::{self, Typed, UserCommand};
use crate::entry::EntryKind;
use crate::event::Clock;
use crate::outbox::Pending;
use crate::sanitize::SafeText;

impl App {
    /// What the user typed, on Enter. The line always leaves the input, as in WeeChat:
    /// a refused line left there would have the next one typed onto its end (a refused
    /// `/password abc` became the password `abc/password ...`). A refused line goes to the
    /// input history for ↑ to bring back, unless it holds a password.
    pub(super) fn submit(&mut self, clock: Clock) {
        let typed = self.input_bar.line().as_str().trim_end().to_owned();
        if typed.trim().is_empty() {
            return;
        }
        let secret = commands::secret_start(&typed).is_some();
        let parsed = commands::parse(&typed);
        if !matches!(parsed, Ok(Typed::Command(UserCommand::Quit(_)))) {
            // A warning about pending lines holds for the `/quit` right after it only.
            self.quit_warned = false;
        }
        let done = match parsed {
            Err(reason) => {
                self.error_hint(reason);
                false
            }
            Ok(Typed::Text(text)) => {
                let index = self.view.buffers().current_index();
                match self.view.buffers().current().id.recipient() {
                    Some(to) => self.send_message(index, to, &text, clock),
                    None => {
                        self.error_hint(
                            "the server buffer takes /commands only: /join a room, /query someone, or Alt-2 for everyone".to_owned(),
                        );
                        false
                    }
                }
            }
            Ok(Typed::Command(command)) => self.run(command, clock),
        };
        self.input_bar.take();
        if secret {
            // Never into the input history: the line holds a password.
            return;
        }
        self.input_bar.remember(typed);
        if !done {
            if let Some((hint, _)) = &self.hint {
                let text = format!("{hint}; ↑ brings the line back");
                self.error_hint(text);
            }
        }
    }

    pub(super) fn error_hint(&mut self, reason: String) {
        self.hint = Some((SafeText::new(&reason), true));
    }

    /// Runs a command; `false` leaves the line in the input to be fixed.
    pub(super) fn run(&mut self, command: UserCommand, clock: Clock) -> bool {
        match command {
            UserCommand::Help => self.modes.open_help(),
            UserCommand::Quit(message) => return self.user_quit(message.as_deref(), clock),
            UserCommand::Join(room) => {
                if let Some(index) = self.view.buffers().find(&BufferId::Room(room.clone())) {
                    if self.view.buffers().all()[index].member {
                        self.switch(index);
                        return true;
                    }
                }
                if !self.require_connection() {
                    return false;
                }
                self.joining = Some(room.clone());
                self.join(&room);
            }
            UserCommand::Part(room) => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    self.error_hint("/part: this is not a room; /part #room".to_owned());
                    return false;
                };
                if !self.require_connection() {
                    return false;
                }
                if let Some(index) = self.view.buffers().find(&BufferId::Room(room.clone())) {
                    self.view.buffers_mut().get_mut(index).wanted = false;
                }
                self.out.push(Command::Send(ClientLine::Part(room)));
            }
            UserCommand::Query(name, text) => {
                let index = self.view.buffers_mut().open(BufferId::Query(name.clone()));
                self.switch(index);
                // Between accounts the server keeps the conversation: show its latest
                // messages, as a room shows its own at a join.
                let fresh = self.view.buffers().all()[index].last_id().is_none();
                if fresh && self.account.registered() && self.ready() {
                    let conv = Conv::Direct(name.clone());
                    let range = HistoryRange::Latest(DEFAULT_HISTORY_LINES);
                    self.ask_history(conv, range, HistoryAsk::Follow);
                }
                let online = self.roster.iter().any(|n| n.folded() == name.folded());
                if self.conn.is_connected() && !online {
                    self.note_in(
                        index,
                        format!("{name} is not online; a message reaches them only if they have an account (it is stored for them)"),
                        true,
                        clock,
                    );
                }
                if let Some(text) = text {
                    return self.send_message(index, Recipient::User(name), &text, clock);
                }
            }
            UserCommand::Close => {
                let index = self.view.buffers().current_index();
                match self.view.buffers().current().id.clone() {
                    BufferId::Server | BufferId::Everyone => {
                        self.error_hint("the server and * buffers stay open".to_owned());
                        return false;
                    }
                    BufferId::Room(room) => {
                        if self.view.buffers().current().member && self.conn.is_connected() {
                            self.out.push(Command::Send(ClientLine::Part(room)));
                        }
                        self.view.buffers_mut().close(index);
                    }
                    BufferId::Query(_) => self.view.buffers_mut().close(index),
                }
                self.view.end_search();
            }
            UserCommand::Msg(to, text) => {
                if let Recipient::Room(room) = &to {
                    // The server would refuse it: no buffer opened, nothing shown as
                    // sent, nothing logged. A room we are rejoining counts as joined.
                    let joined = self
                        .view
                        .buffers()
                        .find(&BufferId::Room(room.clone()))
                        .is_some_and(|i| {
                            self.view.buffers().all()[i].member
                                || self.view.buffers().all()[i].wanted
                        });
                    if !joined {
                        self.error_hint(format!("/msg: you are not in {room}; /join {room} first"));
                        return false;
                    }
                }
                let index = self.view.buffers_mut().open(BufferId::of(&to));
                return self.send_message(index, to, &text, clock);
            }
            UserCommand::Me(text) => {
                let index = self.view.buffers().current_index();
                let Some(to) = self.view.buffers().current().id.recipient() else {
                    self.error_hint("/me needs a room or a conversation".to_owned());
                    return false;
                };
                return self.send_message(index, to, &format!("/me {text}"), clock);
            }
            UserCommand::Rooms => return self.send_now(ClientLine::Rooms),
            UserCommand::Names(room) => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    self.error_hint("/names: this is not a room; /names #room".to_owned());
                    return false;
                };
                return self.send_now(ClientLine::Names(room));
            }
            UserCommand::Who => {
                if self.send_now(ClientLine::Who) {
                    self.who_asked += 1;
                } else {
                    return false;
                }
            }
            UserCommand::History(n) => {
                let Some(conv) = self.view.buffers().current().id.conv() else {
                    self.error_hint("/history works in a room or a conversation".to_owned());
                    return false;
                };
                if !self.require_connection() {
                    return false;
                }
                let range = HistoryRange::Latest(n.unwrap_or(DEFAULT_HISTORY_LINES));
                self.ask_history(conv, range, HistoryAsk::Typed);
            }
            UserCommand::Buffer(name) => match self.view.buffers().by_name(&name) {
                Some(index) => self.switch(index),
                None => {
                    self.error_hint(format!("no buffer {name}"));
                    return false;
                }
            },
            UserCommand::Search(Some(query)) => {
                self.view.start_search(query);
                self.search_step(true);
            }
            UserCommand::Search(None) => self.search_step(true),
            UserCommand::Clear => self.view.buffers_mut().current_mut().clear(),
            UserCommand::Register(password) => {
                return self.send_password(ClientLine::Register(password.clone()), password);
            }
            UserCommand::SetPassword(password) => {
                return self.send_password(ClientLine::SetPassword(password.clone()), password);
            }
            UserCommand::Login(password) => {
                if self.conn.is_connected() {
                    self.error_hint(
                        "/login: already logged in; /password changes the password".to_owned(),
                    );
                    return false;
                }
                self.account.set_registered();
                self.out.push(Command::UsePassword(password));
                self.conn.reconnect();
                self.connection_lost_cleanup();
                self.out.push(Command::Connect);
            }
            UserCommand::Reconnect => {
                self.conn.reconnect();
                self.connection_lost_cleanup();
                self.out.push(Command::Connect);
            }
            UserCommand::Mouse => self.toggle_mouse(),
            UserCommand::Room(room, action) => return self.run_room(room, action),
            UserCommand::Kill(name, reason) => {
                return self.send_now(ClientLine::Kill { name, reason });
            }
            UserCommand::Suspend(name, on) => {
                return self.send_now(ClientLine::Suspend { name, on });
            }
            UserCommand::Away(text) => return self.set_away(text, clock),
            UserCommand::Whois(name) => return self.ask_whois(name),
        }
        true
    }

    /// Whether a message can go out now rather than wait in the outbox: logged in, and
    /// the login settled (rooms joined again first).
    pub(super) fn ready(&self) -> bool {
        self.conn.is_connected() && self.settling.is_none()
    }

    /// `/register` or `/password`: the new password is kept until the server confirms it,
    /// and used for every login after that.
    fn send_password(&mut self, line: ClientLine, password: Password) -> bool {
        if !self.send_now(line) {
            return false;
        }
        self.new_password = Some(password);
        true
    }

    pub(super) fn require_connection(&mut self) -> bool {
        if !self.conn.is_connected() {
            self.error_hint("not connected; try again once connected".to_owned());
        }
        self.conn.is_connected()
    }

    pub(super) fn send_now(&mut self, line: ClientLine) -> bool {
        if !self.require_connection() {
            return false;
        }
        // A reason or a topic can make a command longer than the server takes.
        let bytes = line.to_string().len();
        if bytes > self.settings.max_line_bytes {
            self.error_hint(format!(
                "line too long ({bytes} bytes; the limit is {})",
                self.settings.max_line_bytes
            ));
            return false;
        }
        self.out.push(Command::Send(line));
        true
    }

    pub(super) fn current_room(&self) -> Option<RoomName> {
        match &self.view.buffers().current().id {
            BufferId::Room(room) => Some(room.clone()),
            _ => None,
        }
    }

    /// Joins a room and asks, in the same write, for what it missed.
    pub(super) fn join(&mut self, room: &RoomName) {
        self.join_asked.push(room.clone());
        self.out.push(Command::Send(ClientLine::Join(room.clone())));
        self.follow_room(room);
    }

    /// Asks for what a room's buffer lacks: the messages after the last id seen (the
    /// latest ones the first time), the modes (the server sends the topic and roles at
    /// join, but the modes only when asked) and, for an account, its read marker, which
    /// another session may have moved meanwhile.
    pub(super) fn follow_room(&mut self, room: &RoomName) {
        let last = self
            .view
            .buffers()
            .find(&BufferId::Room(room.clone()))
            .and_then(|i| self.view.buffers().all()[i].last_id());
        let range = match last {
            Some(id) => HistoryRange::After(id),
            None => HistoryRange::Latest(DEFAULT_HISTORY_LINES),
        };
        self.ask_history(Conv::Room(room.clone()), range, HistoryAsk::Follow);
        self.out.push(Command::Send(ClientLine::Mode {
            room: room.clone(),
            changes: Vec::new(),
        }));
        if self.account.registered() {
            self.read_asks.push(BufferId::Room(room.clone()));
            self.out.push(Command::Send(ClientLine::Read {
                conv: Conv::Room(room.clone()),
                id: None,
            }));
        }
    }

    /// Sends `text` to `to`, shown in buffer `index`: now, or from the outbox after the
    /// next login. `false` (with a hint) if it cannot be a message at all.
    pub(super) fn send_message(
        &mut self,
        index: usize,
        to: Recipient,
        text: &str,
        clock: Clock,
    ) -> bool {
        let (line, text) = match self.message(to, text) {
            Ok(message) => message,
            Err(reason) => {
                self.error_hint(reason);
                return false;
            }
        };
        let connected = self.ready();
        let kind = EntryKind::Own {
            text,
            id: None,
            pending: !connected,
        };
        let seq = self.push(index, kind, clock);
        let buffer = self.view.buffers_mut().get_mut(index);
        buffer.scroll = 0;
        buffer.unseen = 0;
        let pending = Pending {
            line: line.clone(),
            buffer: buffer.id.clone(),
            seq,
            logged: connected,
        };
        if connected {
            self.outbox.sent(pending);
            self.out.push(Command::Send(line));
        } else {
            self.outbox.push(pending);
        }
        true
    }

    /// `text` for `to` as a line to send and as it is shown, if it can be a message within
    /// the line limit.
    pub(super) fn message(
        &self,
        to: Recipient,
        text: &str,
    ) -> Result<(ClientLine, SafeText), String> {
        let text = MessageText::parse(text).map_err(|e| e.to_string())?;
        let shown = SafeText::new(text.as_str());
        let line = ClientLine::Send {
            to: [to].into_iter().collect(),
            text,
        };
        let bytes = line.to_string().len();
        if bytes > self.settings.max_line_bytes {
            return Err(format!(
                "line too long ({bytes} bytes; the limit is {})",
                self.settings.max_line_bytes
            ));
        }
        Ok((line, shown))
    }
}
