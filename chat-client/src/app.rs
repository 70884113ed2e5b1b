//! [`App`]: everything the client shows, and [`App::update`], the only place it changes.
//! No I/O here: `update` takes a [`Msg`] and the time, and answers with [`Command`]s for
//! the runtime to carry out (The Elm Architecture). The state is made of small parts, each
//! in its own module: the connection ([`Connection`]), the buffers ([`Buffers`]), the input
//! line, its history and completion, and the outbox; `update` dispatches to them.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use chat_proto::{
    ClientLine, Conv, DEFAULT_HISTORY_LINES, HistoryEntry, HistoryRange, MessageText, Recipient,
    RoomName, Scope, ServerLine, UserName,
};
use chrono::{NaiveDateTime, NaiveTime};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind};
use ratatui::layout::{Position, Rect, Size};

use crate::buffers::{Buffer, BufferId, Buffers, EntryKind, Measure};
use crate::commands::{self, COMMANDS, Typed, UserCommand};
use crate::complete::Completion;
use crate::conn::{ConnState, Connection};
use crate::event::{Clock, Msg, NetEvent};
use crate::history::InputHistory;
use crate::input::InputLine;
use crate::keys::{self, Action, Edit};
use crate::layout::{self, Look};
use crate::outbox::{Outbox, Pending};
use crate::sanitize::SafeText;

/// Default number of entries kept per buffer.
pub const DEFAULT_SCROLLBACK: usize = 10_000;
/// A paste of more lines than this is refused rather than flooding everyone.
pub const MAX_PASTE_LINES: usize = 100;
/// Rows the mouse wheel scrolls per notch.
const WHEEL_ROWS: usize = 3;

/// How join and part lines are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum JoinPart {
    /// One line per burst: "alice, bob and 33 others joined".
    #[default]
    Fold,
    /// One line each.
    All,
    /// Not at all.
    Hide,
}

/// What the client is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our name on the server.
    pub name: UserName,
    /// The server address as the user gave it.
    pub addr: String,
    /// The server's line limit; longer lines are refused before sending.
    pub max_line_bytes: usize,
    /// Entries kept per buffer.
    pub scrollback: usize,
    /// Rooms to join at the first login.
    pub rooms: Vec<RoomName>,
    /// Ring the bell and set the title on a mention.
    pub bell: bool,
    /// A chrono format for timestamps, already checked.
    pub time_format: String,
    /// How join and part lines are shown.
    pub join_part: JoinPart,
    /// Start with mouse wheel scrolling on.
    pub mouse: bool,
    /// Keep a plain-text log per buffer (the runtime writes it).
    pub log: bool,
}

/// What the runtime must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a new connection and log in, replacing any current one.
    Connect,
    /// Send a line on the current connection; if it cannot, answer [`Msg::SendFailed`].
    Send(ClientLine),
    /// Ring the terminal bell.
    Bell,
    /// Set the terminal's title, or with `None` put back the one it had before.
    Title(Option<String>),
    /// Capture the mouse (wheel scrolling) or give it back to the terminal.
    Mouse(bool),
    /// Redraw the whole screen.
    Redraw,
    /// Append a line to a buffer's log.
    Log {
        /// The buffer's log name.
        buffer: String,
        /// The line, without a newline.
        line: String,
    },
    /// Leave: disconnect cleanly and end the program.
    Quit,
}

/// How the program ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The user left.
    Clean,
    /// The server refused our name at the first login; the reason goes to stderr.
    Refused(String),
}

/// A question waiting for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Send these pasted lines to the current buffer?
    Paste(Vec<String>),
    /// Ctrl-C with a typed line: quit anyway?
    Quit,
}

/// A `/search` in the shown buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    /// What is searched for.
    pub query: String,
    /// The entry shown as the current match.
    pub at: Option<u64>,
}

/// All of the client's state.
#[derive(Debug)]
pub struct App {
    settings: Settings,
    look: Look,
    folded_name: String,
    conn: Connection,
    buffers: Buffers,
    /// Who is online.
    roster: BTreeSet<UserName>,
    /// Rooms seen in `/rooms` replies, for completion.
    known_rooms: BTreeSet<RoomName>,
    input: InputLine,
    history: InputHistory,
    completion: Option<Completion>,
    outbox: Outbox,
    /// History lines received, by conversation, until their `history-end`.
    incoming: HashMap<Conv, Vec<(NaiveTime, EntryKind)>>,
    /// A room we asked to join: its buffer is shown once the server confirms.
    joining: Option<RoomName>,
    /// `/who` replies the user asked for (the one at login is not shown).
    who_asked: usize,
    prompt: Option<Prompt>,
    /// A one-line note over the input, gone at the next key.
    hint: Option<(SafeText, bool)>,
    /// The help overlay and how far it is scrolled.
    help: Option<usize>,
    search: Option<Search>,
    mouse: bool,
    /// Whether a mention changed the terminal's title.
    titled: bool,
    nick_scroll: usize,
    size: Size,
    now: Instant,
    exit: Option<Exit>,
    /// Effects of the update under way.
    out: Vec<Command>,
}

impl App {
    /// A client not yet connected, for a terminal of `size`.
    pub fn new(settings: Settings, size: Size, now: Instant) -> Self {
        let look = Look {
            me: settings.name.clone(),
            time_format: settings.time_format.clone(),
        };
        let mut buffers = Buffers::new(settings.scrollback);
        for room in &settings.rooms {
            let index = buffers.open(BufferId::Room(room.clone()));
            buffers.get_mut(index).wanted = true;
        }
        Self {
            folded_name: settings.name.folded(),
            mouse: settings.mouse,
            look,
            conn: Connection::default(),
            buffers,
            roster: BTreeSet::new(),
            known_rooms: BTreeSet::new(),
            input: InputLine::default(),
            history: InputHistory::default(),
            completion: None,
            outbox: Outbox::default(),
            incoming: HashMap::new(),
            joining: None,
            who_asked: 0,
            prompt: None,
            hint: None,
            help: None,
            search: None,
            titled: false,
            nick_scroll: 0,
            size,
            now,
            exit: None,
            out: Vec::new(),
            settings,
        }
    }

    /// The commands to run at start-up.
    pub fn start(&self) -> Vec<Command> {
        let mut start = vec![Command::Connect];
        if self.mouse {
            start.push(Command::Mouse(true));
        }
        start
    }

    /// Handles one message and returns what the runtime must do.
    pub fn update(&mut self, msg: Msg, clock: Clock) -> Vec<Command> {
        self.now = clock.now;
        match msg {
            Msg::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key, clock),
            Msg::Key(_) => {}
            Msg::Paste(text) => self.on_paste(&text),
            Msg::Resize(width, height) => {
                self.size = Size::new(width, height);
                let width = self.message_width();
                self.buffers.remeasure(&Measure {
                    look: &self.look,
                    width,
                });
                for index in 0..self.buffers.all().len() {
                    let max = self.max_scroll_of(&self.buffers.all()[index]);
                    let buffer = self.buffers.get_mut(index);
                    buffer.scroll = buffer.scroll.min(max);
                }
            }
            Msg::Wheel(up) => self.scroll_by(if up {
                WHEEL_ROWS as isize
            } else {
                -(WHEEL_ROWS as isize)
            }),
            Msg::Tick => {
                if self.conn.due(clock.now) {
                    self.out.push(Command::Connect);
                }
            }
            Msg::Net(event) => self.on_net(event, clock),
            Msg::SendFailed(line) => self.unsent(&[line]),
            Msg::Quit => self.quit(Exit::Clean),
        }
        std::mem::take(&mut self.out)
    }

    fn quit(&mut self, exit: Exit) {
        self.exit.get_or_insert(exit);
        self.out.push(Command::Quit);
    }

    // ---- keys ----

    fn on_key(&mut self, key: KeyEvent, clock: Clock) {
        let action = keys::action(key);
        if let Some(scroll) = self.help {
            self.help_key(key, action, scroll);
            return;
        }
        match self.prompt.take() {
            Some(Prompt::Paste(lines)) => {
                match key.code {
                    KeyCode::Char('y' | 'Y') | KeyCode::Enter => self.send_paste(lines, clock),
                    KeyCode::Char('n' | 'N') | KeyCode::Esc => {
                        self.hint = Some((SafeText::new("paste cancelled"), false));
                    }
                    _ if action == Some(Action::Interrupt) => {
                        self.hint = Some((SafeText::new("paste cancelled"), false));
                    }
                    _ => self.prompt = Some(Prompt::Paste(lines)),
                }
                return;
            }
            Some(Prompt::Quit) if action == Some(Action::Interrupt) => {
                self.quit(Exit::Clean);
                return;
            }
            Some(Prompt::Quit) | None => {}
        }
        self.hint = None;
        if !matches!(action, Some(Action::Complete | Action::CompleteBack)) {
            self.completion = None;
        }
        let Some(action) = action else {
            if let Some(c) = keys::typed_char(key) {
                self.input.insert_char(c);
            }
            return;
        };
        match action {
            Action::Submit => self.submit(clock),
            Action::Interrupt if self.input.is_empty() => self.quit(Exit::Clean),
            Action::Interrupt => {
                self.prompt = Some(Prompt::Quit);
                self.hint = Some((
                    SafeText::new(
                        "Ctrl-C again quits and loses the typed line; any other key goes on",
                    ),
                    true,
                ));
            }
            Action::QuitIfEmpty if self.input.is_empty() => self.quit(Exit::Clean),
            Action::QuitIfEmpty => self.input.edit(Edit::Delete),
            Action::Help => self.help = Some(0),
            Action::ToggleMouse => self.toggle_mouse(),
            Action::SearchOlder => self.search_step(true),
            Action::SearchNewer => self.search_step(false),
            Action::Cancel => self.search = None,
            Action::PageUp => self.scroll_by(self.page() as isize),
            Action::PageDown => self.scroll_by(-(self.page() as isize)),
            Action::Bottom => self.scroll_by(isize::MIN),
            Action::EndOrBottom if self.input.is_empty() => self.scroll_by(isize::MIN),
            Action::EndOrBottom => self.input.edit(Edit::End),
            Action::Buffer(n) => self.switch(n - 1),
            Action::PrevBuffer => {
                let n = self.buffers.all().len();
                self.switch((self.buffers.current_index() + n - 1) % n);
            }
            Action::NextBuffer => {
                let n = self.buffers.all().len();
                self.switch((self.buffers.current_index() + 1) % n);
            }
            Action::NicksUp => self.nick_scroll = self.nick_scroll.saturating_sub(1),
            Action::NicksDown => self.nick_scroll += 1,
            Action::HistoryPrev => {
                if let Some(line) = self.history.older(self.input.as_str()) {
                    self.input.set(line);
                }
            }
            Action::HistoryNext => {
                if let Some(line) = self.history.newer() {
                    self.input.set(line);
                }
            }
            Action::Complete => self.complete(true),
            Action::CompleteBack => self.complete(false),
            Action::Redraw => self.out.push(Command::Redraw),
            Action::Edit(edit) => self.input.edit(edit),
        }
    }

    fn help_key(&mut self, key: KeyEvent, action: Option<Action>, scroll: usize) {
        let page = usize::from(self.size.height.saturating_sub(4)).max(1);
        self.help = match key.code {
            KeyCode::Esc | KeyCode::F(1) | KeyCode::Enter | KeyCode::Char('q') => None,
            _ if action == Some(Action::Interrupt) => None,
            KeyCode::Up => Some(scroll.saturating_sub(1)),
            KeyCode::Down => Some(scroll + 1),
            KeyCode::PageUp => Some(scroll.saturating_sub(page)),
            KeyCode::PageDown | KeyCode::Char(' ') => Some(scroll + page),
            KeyCode::Home => Some(0),
            _ => Some(scroll),
        }
        .map(|s| s.min(layout::help_max_scroll(self.size)));
    }

    fn toggle_mouse(&mut self) {
        self.mouse = !self.mouse;
        self.out.push(Command::Mouse(self.mouse));
        let text = if self.mouse {
            "mouse wheel scrolling on; F2 gives the mouse back for selecting text"
        } else {
            "mouse wheel scrolling off; the terminal selects text again"
        };
        self.hint = Some((SafeText::new(text), false));
    }

    fn switch(&mut self, index: usize) {
        if index < self.buffers.all().len() && index != self.buffers.current_index() {
            self.buffers.switch(index);
            self.search = None;
            self.nick_scroll = 0;
            if self.titled && !self.buffers.all().iter().any(|b| b.mentioned) {
                self.titled = false;
                self.out.push(Command::Title(None));
            }
        }
    }

    // ---- typed lines ----

    /// What the user typed, on Enter.
    fn submit(&mut self, clock: Clock) {
        let typed = self.input.as_str().trim_end().to_owned();
        if typed.trim().is_empty() {
            return;
        }
        match commands::parse(&typed) {
            Err(reason) => self.error_hint(reason),
            Ok(Typed::Text(text)) => {
                let index = self.buffers.current_index();
                match self.buffers.current().id.recipient() {
                    Some(to) => {
                        if self.send_message(index, to, &text, clock) {
                            self.typed_done(typed);
                        }
                    }
                    None => self.error_hint(
                        "the server buffer takes /commands only: /join a room, /query someone, or Alt-2 for everyone".to_owned(),
                    ),
                }
            }
            Ok(Typed::Command(command)) => {
                let secret = matches!(
                    command,
                    UserCommand::Register(_) | UserCommand::SetPassword(_)
                );
                if self.run(command, clock) {
                    if secret {
                        // Never into the input history: the line holds a password.
                        self.input.take();
                    } else {
                        self.typed_done(typed);
                    }
                }
            }
        }
    }

    fn typed_done(&mut self, typed: String) {
        self.history.remember(typed);
        self.input.take();
    }

    fn error_hint(&mut self, reason: String) {
        self.hint = Some((SafeText::new(&reason), true));
    }

    /// Runs a command; `false` leaves the line in the input to be fixed.
    fn run(&mut self, command: UserCommand, clock: Clock) -> bool {
        match command {
            UserCommand::Help => self.help = Some(0),
            UserCommand::Quit => self.quit(Exit::Clean),
            UserCommand::Join(room) => {
                if let Some(index) = self.buffers.find(&BufferId::Room(room.clone())) {
                    if self.buffers.all()[index].member {
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
                if let Some(index) = self.buffers.find(&BufferId::Room(room.clone())) {
                    self.buffers.get_mut(index).wanted = false;
                }
                self.out.push(Command::Send(ClientLine::Part(room)));
            }
            UserCommand::Query(name) => {
                let index = self.buffers.open(BufferId::Query(name.clone()));
                self.switch(index);
                let online = self.roster.iter().any(|n| n.folded() == name.folded());
                if self.conn.is_connected() && !online {
                    self.note_in(
                        index,
                        format!("{name} is not online; a message reaches them only if they have an account (it is stored for them)"),
                        true,
                        clock,
                    );
                }
            }
            UserCommand::Close => {
                let index = self.buffers.current_index();
                match self.buffers.current().id.clone() {
                    BufferId::Server | BufferId::Everyone => {
                        self.error_hint("the server and * buffers stay open".to_owned());
                        return false;
                    }
                    BufferId::Room(room) => {
                        if self.buffers.current().member && self.conn.is_connected() {
                            self.out.push(Command::Send(ClientLine::Part(room)));
                        }
                        self.buffers.close(index);
                    }
                    BufferId::Query(_) => self.buffers.close(index),
                }
                self.search = None;
            }
            UserCommand::Msg(to, text) => {
                let index = self.buffers.open(BufferId::of(&to));
                return self.send_message(index, to, &text, clock);
            }
            UserCommand::Me(text) => {
                let index = self.buffers.current_index();
                let Some(to) = self.buffers.current().id.recipient() else {
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
                let Some(conv) = self.buffers.current().id.conv() else {
                    self.error_hint("/history works in a room or a conversation".to_owned());
                    return false;
                };
                let range = HistoryRange::Latest(n.unwrap_or(DEFAULT_HISTORY_LINES));
                return self.send_now(ClientLine::History { conv, range });
            }
            UserCommand::Buffer(name) => match self.buffers.by_name(&name) {
                Some(index) => self.switch(index),
                None => {
                    self.error_hint(format!("no buffer {name}"));
                    return false;
                }
            },
            UserCommand::Search(Some(query)) => {
                self.search = Some(Search { query, at: None });
                self.search_step(true);
            }
            UserCommand::Search(None) => self.search_step(true),
            UserCommand::Clear => self.buffers.current_mut().clear(),
            UserCommand::Register(password) => {
                return self.send_now(ClientLine::Register(password));
            }
            UserCommand::SetPassword(password) => {
                return self.send_now(ClientLine::SetPassword(password));
            }
            UserCommand::Reconnect => {
                self.conn.reconnect();
                self.connection_lost_cleanup();
                self.out.push(Command::Connect);
            }
            UserCommand::Mouse => self.toggle_mouse(),
        }
        true
    }

    fn require_connection(&mut self) -> bool {
        if !self.conn.is_connected() {
            self.error_hint("not connected; try again once connected".to_owned());
        }
        self.conn.is_connected()
    }

    fn send_now(&mut self, line: ClientLine) -> bool {
        if !self.require_connection() {
            return false;
        }
        self.out.push(Command::Send(line));
        true
    }

    fn current_room(&self) -> Option<RoomName> {
        match &self.buffers.current().id {
            BufferId::Room(room) => Some(room.clone()),
            _ => None,
        }
    }

    /// Joins a room and asks, in the same write, for what it missed: everything after the
    /// last id seen, or the latest messages on a first join.
    fn join(&mut self, room: &RoomName) {
        let last = self
            .buffers
            .find(&BufferId::Room(room.clone()))
            .and_then(|i| self.buffers.all()[i].last_id());
        let range = match last {
            Some(id) => HistoryRange::After(id),
            None => HistoryRange::Latest(DEFAULT_HISTORY_LINES),
        };
        self.out.push(Command::Send(ClientLine::Join(room.clone())));
        self.out.push(Command::Send(ClientLine::History {
            conv: Conv::Room(room.clone()),
            range,
        }));
    }

    /// Sends `text` to `to`, shown in buffer `index`: now, or from the outbox after the
    /// next login. `false` (with a hint) if it cannot be a message at all.
    fn send_message(&mut self, index: usize, to: Recipient, text: &str, clock: Clock) -> bool {
        let (line, text) = match self.message(to, text) {
            Ok(message) => message,
            Err(reason) => {
                self.error_hint(reason);
                return false;
            }
        };
        let connected = self.conn.is_connected();
        let kind = EntryKind::Own {
            text,
            id: None,
            pending: !connected,
        };
        let seq = self.push(index, kind, clock);
        let buffer = self.buffers.get_mut(index);
        buffer.scroll = 0;
        buffer.unseen = 0;
        let pending = Pending {
            line: line.clone(),
            buffer: buffer.id.clone(),
            seq,
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
    fn message(&self, to: Recipient, text: &str) -> Result<(ClientLine, SafeText), String> {
        let text = MessageText::parse(text).map_err(|e| e.to_string())?;
        let shown = SafeText::new(text.as_str());
        let line = ClientLine::Send { to: vec![to], text };
        let bytes = line.to_string().len();
        if bytes > self.settings.max_line_bytes {
            return Err(format!(
                "line too long ({bytes} bytes; the limit is {})",
                self.settings.max_line_bytes
            ));
        }
        Ok((line, shown))
    }

    /// Pasted text: one line is inserted for editing; several wait for a one-key
    /// confirmation, then go to the current buffer one message each (never as commands).
    fn on_paste(&mut self, text: &str) {
        self.completion = None;
        let lines: Vec<String> = text
            .split("\r\n")
            .flat_map(|l| l.split(['\r', '\n']))
            .map(|l| l.trim_end().to_owned())
            .collect();
        let lines: Vec<String> = {
            let mut lines = lines;
            while lines.last().is_some_and(String::is_empty) {
                lines.pop();
            }
            lines
        };
        let non_empty: Vec<String> = lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .cloned()
            .collect();
        if lines.len() <= 1 {
            let clean: String = lines
                .concat()
                .chars()
                .filter(|c| *c == '\t' || !c.is_control())
                .collect();
            self.input.insert_str(&clean);
            return;
        }
        let label = self.buffers.current().id.label();
        if self.buffers.current().id.recipient().is_none() {
            self.error_hint("paste refused: the server buffer takes /commands only".to_owned());
            return;
        }
        if non_empty.len() > MAX_PASTE_LINES {
            self.error_hint(format!(
                "paste of {} lines refused (at most {MAX_PASTE_LINES})",
                non_empty.len()
            ));
            return;
        }
        self.hint = Some((
            SafeText::new(&format!(
                "paste {} lines to {label}? y or Enter sends them, n or Esc cancels",
                non_empty.len()
            )),
            true,
        ));
        self.prompt = Some(Prompt::Paste(non_empty));
    }

    fn send_paste(&mut self, lines: Vec<String>, clock: Clock) {
        let index = self.buffers.current_index();
        let Some(to) = self.buffers.current().id.recipient() else {
            return;
        };
        // All or nothing: a paste is not sent with holes in it.
        if let Some(problem) = lines.iter().find_map(|l| self.message(to.clone(), l).err()) {
            self.error_hint(format!("paste refused: {problem}"));
            return;
        }
        for line in &lines {
            self.send_message(index, to.clone(), line, clock);
        }
    }

    fn complete(&mut self, forward: bool) {
        if let Some(completion) = &mut self.completion {
            completion.cycle(forward);
        } else {
            let current_members = self.buffers.current().members.iter();
            let names: BTreeSet<&str> = self
                .roster
                .iter()
                .chain(current_members)
                .filter(|n| n.folded() != self.folded_name)
                .map(UserName::as_str)
                .collect();
            let rooms: BTreeSet<String> = self
                .known_rooms
                .iter()
                .map(ToString::to_string)
                .chain(self.buffers.all().iter().filter_map(|b| match &b.id {
                    BufferId::Room(room) => Some(room.to_string()),
                    _ => None,
                }))
                .collect();
            let commands = COMMANDS.iter().map(|c| c.name);
            let Some(completion) = Completion::start(
                self.input.as_str(),
                self.input.cursor(),
                names,
                rooms.iter().map(String::as_str),
                commands,
            ) else {
                return;
            };
            self.completion = Some(completion);
            // The first Tab shows the first candidate, replacing the typed word.
            let c = self.completion.as_ref().expect("just set");
            self.input.replace_before_cursor(c.start, c.current());
            if c.candidates.len() > 1 {
                self.hint = Some((
                    SafeText::new(&format!("{} matches; Tab for the next", c.candidates.len())),
                    false,
                ));
            }
            return;
        }
        let c = self.completion.as_ref().expect("checked above");
        self.input.replace_before_cursor(c.start, c.current());
    }

    // ---- search ----

    /// Moves the search to the next match, older or newer than the current one.
    fn search_step(&mut self, older: bool) {
        let Some(search) = &self.search else {
            self.error_hint("no search; /search text starts one".to_owned());
            return;
        };
        let buffer = self.buffers.current();
        let matches = |text: Option<&str>| {
            text.is_some_and(|t| layout::find_ignoring_case(t, &search.query).is_some())
        };
        let entries = buffer.entries();
        let position = search
            .at
            .and_then(|seq| entries.iter().position(|e| e.seq == seq));
        let found = if older {
            let end = position.unwrap_or(entries.len());
            entries.range(..end).rev().find(|e| matches(e.kind.text()))
        } else {
            let start = position.map_or(entries.len(), |p| p + 1);
            entries.range(start..).find(|e| matches(e.kind.text()))
        };
        match found.map(|e| e.seq) {
            Some(seq) => {
                let rows_below = buffer.rows_below(seq).unwrap_or(0);
                let view = self.view_rows(true);
                let max = self.max_scroll_of(buffer);
                let scroll = rows_below.saturating_sub(view / 2).min(max);
                let buffer = self.buffers.current_mut();
                buffer.scroll = scroll;
                if scroll == 0 {
                    buffer.unseen = 0;
                }
                if let Some(search) = &mut self.search {
                    search.at = Some(seq);
                }
            }
            None => {
                let query = &search.query;
                let which = if older { "older" } else { "newer" };
                let reason = match search.at {
                    None => format!("no match for {query:?}"),
                    Some(_) => format!("no {which} match for {query:?}"),
                };
                self.hint = Some((SafeText::new(&reason), true));
            }
        }
    }

    // ---- the network ----

    fn on_net(&mut self, event: NetEvent, clock: Clock) {
        match event {
            NetEvent::Connected => self.connected(clock),
            NetEvent::Line(line) => self.on_line(line, clock),
            NetEvent::Unrecognised(raw) => self.note_in(
                0,
                format!("unrecognised line from the server: {raw}"),
                true,
                clock,
            ),
            NetEvent::LoginRefused(reason) if !self.conn.ever_connected() => {
                self.quit(Exit::Refused(reason));
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

    fn connected(&mut self, clock: Clock) {
        self.conn.connected();
        self.roster.clear();
        let text = format!(
            "connected to {} as {}",
            self.settings.addr, self.settings.name
        );
        self.note_everywhere(text, false, clock);
        self.out.push(Command::Send(ClientLine::Who));
        let rooms: Vec<RoomName> = self
            .buffers
            .all()
            .iter()
            .filter(|b| b.wanted)
            .filter_map(|b| match &b.id {
                BufferId::Room(room) => Some(room.clone()),
                _ => None,
            })
            .collect();
        for room in &rooms {
            self.join(room);
        }
        let measure_width = self.message_width();
        for pending in self.outbox.drain() {
            if let Some(index) = self.buffers.find(&pending.buffer) {
                let measure = Measure {
                    look: &self.look,
                    width: measure_width,
                };
                self.buffers.get_mut(index).mark_sent(pending.seq, &measure);
            }
            self.out.push(Command::Send(pending.line.clone()));
            self.outbox.sent(pending);
        }
    }

    /// Lines the connection gave back: ours wait in the outbox again, shown as pending.
    fn unsent(&mut self, lines: &[ClientLine]) {
        let width = self.message_width();
        for pending in self.outbox.returned(lines) {
            if let Some(index) = self.buffers.find(&pending.buffer) {
                let buffer = self.buffers.get_mut(index);
                let measure = Measure {
                    look: &self.look,
                    width,
                };
                buffer.mark_pending(pending.seq, &measure);
            }
        }
    }

    fn connection_lost_cleanup(&mut self) {
        self.roster.clear();
        self.incoming.clear();
        for buffer in self.buffers.all_mut() {
            buffer.member = false;
            buffer.members.clear();
        }
    }

    fn on_line(&mut self, line: ServerLine, clock: Clock) {
        match line {
            ServerLine::Welcome(_) => {}
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
                let index = self.buffers.open(buffer);
                if id.is_some_and(|id| self.buffers.all()[index].has_id(id)) {
                    return;
                }
                let mention = self.mentions_me(text.as_str());
                let kind = EntryKind::Message {
                    from: sender.clone(),
                    text: SafeText::new(text.as_str()),
                    id,
                    mention,
                };
                self.push(index, kind, clock);
                if mention && self.settings.bell {
                    let label = self.buffers.all()[index].id.label();
                    self.titled = true;
                    self.out.push(Command::Bell);
                    self.out.push(Command::Title(Some(format!(
                        "chat-client: {sender} mentioned you in {label}"
                    ))));
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
                let index = self.buffers.open(BufferId::Room(room.clone()));
                let buffer = self.buffers.get_mut(index);
                buffer.members.insert(name.clone());
                if name.folded() == self.folded_name {
                    buffer.member = true;
                    buffer.wanted = true;
                    if self.joining.as_ref() == Some(&room) {
                        self.joining = None;
                        self.switch(index);
                    }
                    self.note_in(index, format!("you joined {room}"), false, clock);
                } else {
                    self.presence(index, true, name, Some(room), clock);
                }
            }
            ServerLine::LeftRoom { room, name } => {
                let Some(index) = self.buffers.find(&BufferId::Room(room.clone())) else {
                    return;
                };
                let buffer = self.buffers.get_mut(index);
                buffer.members.remove(&name);
                if name.folded() == self.folded_name {
                    buffer.member = false;
                    buffer.wanted = false;
                    buffer.members.clear();
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
            ServerLine::Names { room, names } => {
                let list = join_names(&names);
                let text = format!("{room} ({}): {list}", names.len());
                let index = match self.buffers.find(&BufferId::Room(room)) {
                    Some(index) => {
                        self.buffers.get_mut(index).members = names.into_iter().collect();
                        index
                    }
                    None => self.buffers.current_index(),
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
                self.note_in(self.buffers.current_index(), text, false, clock);
            }
            ServerLine::History(entry) => {
                let conv = entry.conv.clone();
                let item = self.history_item(entry);
                self.incoming.entry(conv).or_default().push(item);
            }
            ServerLine::HistoryEnd { conv, truncated } => {
                let batch = self.incoming.remove(&conv).unwrap_or_default();
                let buffer = match &conv {
                    Conv::Room(room) => BufferId::Room(room.clone()),
                    Conv::Direct(name) => BufferId::Query(name.clone()),
                };
                let index = self.buffers.open(buffer);
                let label = format!(
                    "history of {conv}{}",
                    if truncated {
                        " (older messages are gone)"
                    } else {
                        ""
                    }
                );
                self.merge(index, &label, batch);
            }
            ServerLine::Missed(n) => {
                for (conv, batch) in std::mem::take(&mut self.incoming) {
                    let buffer = match conv {
                        Conv::Room(room) => BufferId::Room(room),
                        Conv::Direct(name) => BufferId::Query(name),
                    };
                    let index = self.buffers.open(buffer);
                    self.merge(index, "while you were away", batch);
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
                if self.who_asked > 0 {
                    self.who_asked -= 1;
                    let text = format!("online ({}): {}", names.len(), join_names(&names));
                    self.note_in(self.buffers.current_index(), text, false, clock);
                }
            }
            ServerLine::Stored(name) => {
                let index = self.buffers.open(BufferId::Query(name.clone()));
                self.note_in(
                    index,
                    format!("{name} is offline; the message is stored for their next login"),
                    false,
                    clock,
                );
            }
            ServerLine::Registered(name) => {
                self.note_in(
                    self.buffers.current_index(),
                    format!("{name} is now registered"),
                    false,
                    clock,
                );
            }
            ServerLine::PasswordChanged => {
                self.note_in(
                    self.buffers.current_index(),
                    "password changed".to_owned(),
                    false,
                    clock,
                );
            }
            ServerLine::Error(reason) => {
                self.note_in(
                    self.buffers.current_index(),
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

    fn history_item(&self, entry: HistoryEntry) -> (NaiveTime, EntryKind) {
        let time = chrono::DateTime::from_timestamp_millis(entry.time.unix_millis())
            .map_or(NaiveTime::MIN, |t| t.with_timezone(&chrono::Local).time());
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

    fn merge(&mut self, index: usize, label: &str, batch: Vec<(NaiveTime, EntryKind)>) {
        let width = self.message_width();
        let measure = Measure {
            look: &self.look,
            width,
        };
        self.buffers.merge_history(index, label, batch, &measure);
    }

    /// Whether `text` names us: a whole word, compared folded.
    fn mentions_me(&self, text: &str) -> bool {
        text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
            .filter(|w| !w.is_empty())
            .any(|word| {
                let folded = chat_proto::name::fold(word);
                folded == self.folded_name
                    || chat_proto::name::fold(word.trim_matches(['.', '-'])) == self.folded_name
            })
    }

    // ---- entries ----

    /// Adds an entry to buffer `index` (logging it), keeping the view steady if scrolled.
    fn push(&mut self, index: usize, kind: EntryKind, clock: Clock) -> u64 {
        let width = self.message_width();
        let measure = Measure {
            look: &self.look,
            width,
        };
        let seq = self.buffers.push(index, clock.local.time(), kind, &measure);
        if self.settings.log {
            self.log(index, clock.local);
        }
        seq
    }

    fn log(&mut self, index: usize, when: NaiveDateTime) {
        let buffer = &self.buffers.all()[index];
        let Some(entry) = buffer.entries().back() else {
            return;
        };
        let text: String = layout::spans(entry, &self.look, None)
            .iter()
            .skip(1)
            .map(|s| s.content.as_ref())
            .collect();
        self.out.push(Command::Log {
            buffer: buffer.id.log_name(),
            line: format!("{} {text}", when.format("%Y-%m-%d %H:%M:%S")),
        });
    }

    fn note_in(&mut self, index: usize, text: String, error: bool, clock: Clock) {
        let kind = EntryKind::Notice {
            text: SafeText::new(&text),
            error,
        };
        self.push(index, kind, clock);
    }

    /// A connection notice: in the server buffer, and in the shown one too.
    fn note_everywhere(&mut self, text: String, error: bool, clock: Clock) {
        self.note_in(0, text.clone(), error, clock);
        let current = self.buffers.current_index();
        if current != 0 {
            self.note_in(current, text, error, clock);
        }
    }

    fn presence(
        &mut self,
        index: usize,
        joined: bool,
        name: UserName,
        room: Option<RoomName>,
        clock: Clock,
    ) {
        let width = self.message_width();
        let measure = Measure {
            look: &self.look,
            width,
        };
        match self.settings.join_part {
            JoinPart::Hide => {}
            JoinPart::Fold => {
                self.buffers
                    .presence(index, clock.local.time(), joined, name, room, &measure)
            }
            JoinPart::All => {
                let kind = EntryKind::Presence {
                    joined,
                    names: vec![name],
                    room,
                };
                self.push(index, kind, clock);
            }
        }
    }

    /// Someone came online or left: shown in `*`, and in their conversation if open.
    fn presence_everywhere(&mut self, joined: bool, name: UserName, clock: Clock) {
        if let Some(query) = self.buffers.find(&BufferId::Query(name.clone())) {
            self.presence(query, joined, name.clone(), None, clock);
        }
        self.presence(1, joined, name, None, clock);
    }

    // ---- scrolling ----

    fn scroll_by(&mut self, rows: isize) {
        let max = self.max_scroll_of(self.buffers.current());
        let buffer = self.buffers.current_mut();
        buffer.scroll = buffer.scroll.saturating_add_signed(rows).min(max);
        if buffer.scroll == 0 {
            buffer.unseen = 0;
        }
    }

    /// The furthest `buffer` can scroll up: with the bottom row given to the scroll
    /// indicator, until its first row is at the top.
    fn max_scroll_of(&self, buffer: &Buffer) -> usize {
        let total = buffer.total_rows();
        let height = self.view_rows(false);
        if total <= height {
            0
        } else {
            total - self.view_rows(true)
        }
    }

    /// Message rows on screen: one fewer while scrolled, for the indicator.
    fn view_rows(&self, scrolled: bool) -> usize {
        let height = usize::from(self.messages_area().height);
        if scrolled {
            height.saturating_sub(1).max(1)
        } else {
            height.max(1)
        }
    }

    fn page(&self) -> usize {
        self.view_rows(true).saturating_sub(1).max(1)
    }

    fn messages_area(&self) -> Rect {
        layout::panes(Rect::from((Position::ORIGIN, self.size)))
            .map_or(Rect::default(), |p| p.messages)
    }

    fn message_width(&self) -> usize {
        usize::from(self.messages_area().width).max(1)
    }

    // ---- read-only views for `ui` ----

    /// Our name.
    pub fn name(&self) -> &UserName {
        &self.settings.name
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.settings.addr
    }

    /// How entries are drawn.
    pub fn look(&self) -> &Look {
        &self.look
    }

    /// The connection state.
    pub fn state(&self) -> &ConnState {
        self.conn.state()
    }

    /// The time of the last update, for countdowns.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The buffers.
    pub fn buffers(&self) -> &Buffers {
        &self.buffers
    }

    /// Who is online.
    pub fn roster(&self) -> &BTreeSet<UserName> {
        &self.roster
    }

    /// The input line.
    pub fn input(&self) -> &InputLine {
        &self.input
    }

    /// The note over the input, and whether it asks for attention.
    pub fn hint(&self) -> Option<(&SafeText, bool)> {
        self.hint.as_ref().map(|(text, loud)| (text, *loud))
    }

    /// The help overlay's scroll position, when shown.
    pub fn help(&self) -> Option<usize> {
        self.help
    }

    /// The search, if one is on.
    pub fn search(&self) -> Option<&Search> {
        self.search.as_ref()
    }

    /// Lines typed while disconnected, waiting.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// How far the user list is scrolled.
    pub fn nick_scroll(&self) -> usize {
        self.nick_scroll
    }

    /// Whether mouse wheel scrolling is on.
    pub fn mouse(&self) -> bool {
        self.mouse
    }

    /// How the program should end, once it does.
    pub fn exit(&self) -> Option<&Exit> {
        self.exit.as_ref()
    }
}

fn join_names(names: &[UserName]) -> String {
    names
        .iter()
        .map(UserName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
