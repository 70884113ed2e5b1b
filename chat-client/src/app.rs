//! [`App`]: everything the client shows, and [`App::update`], the only place it changes.
//! No I/O here: `update` takes a [`Msg`] and the time, and answers with [`Command`]s for
//! the runtime to carry out (The Elm Architecture).

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use chat_proto::client::{parse_recipients, write_recipients};
use chat_proto::{ClientLine, MessageText, Recipient, Scope, ServerLine, UserName};
use chrono::NaiveTime;
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::layout::{Rect, Size};

use crate::event::{Clock, Msg, NetEvent};
use crate::input::InputLine;
use crate::sanitize::sanitize;
use crate::ui;

/// Default number of entries kept in the scrollback.
pub const DEFAULT_SCROLLBACK: usize = 10_000;
/// Sent lines kept for ↑/↓.
const HISTORY_LEN: usize = 500;
/// A paste of more lines than this is refused rather than flooding everyone.
const MAX_PASTE_LINES: usize = 20;
/// Waits between reconnect attempts; the last one repeats.
const RECONNECT_DELAYS: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(30),
];

/// What the client is configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Our name on the server.
    pub name: UserName,
    /// The server address as the user gave it.
    pub addr: String,
    /// The server's line limit; longer lines are refused before sending.
    pub max_line_bytes: usize,
    /// Entries kept in the scrollback.
    pub scrollback: usize,
}

/// What the runtime must do after an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Open a new connection and log in.
    Connect,
    /// Send a line on the current connection.
    Send(ClientLine),
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

/// The state of the connection, as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Connecting and logging in; `attempt` counts from 1 since the last success.
    Connecting {
        /// Which attempt this is.
        attempt: u32,
    },
    /// Logged in.
    Connected,
    /// Not connected; the next attempt starts at `retry_at`.
    Disconnected {
        /// Why the connection ended, for the status bar.
        reason: String,
        /// When to reconnect.
        retry_at: Instant,
    },
}

/// One entry of the message pane. All text in it is already sanitised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it arrived or was sent.
    pub time: NaiveTime,
    /// What it is.
    pub kind: EntryKind,
}

/// The kinds of entry, each drawn in its own style.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A message someone sent us.
    Message {
        /// The sender.
        from: UserName,
        /// The text.
        text: String,
    },
    /// A message we sent, with its destinations.
    Own {
        /// The destinations as written.
        to: String,
        /// The text.
        text: String,
    },
    /// Someone joined or left, a server reply, or a note from the client itself.
    Notice {
        /// The text.
        text: String,
        /// Whether it reports a problem.
        error: bool,
    },
}

/// All of the client's state.
#[derive(Debug)]
pub struct App {
    settings: Settings,
    state: ConnState,
    ever_connected: bool,
    /// Right after login, until a line other than `history`: the server is replaying the
    /// direct messages that arrived while we were away.
    catching_up: bool,
    /// Failed attempts since the last successful login; picks the next reconnect delay.
    reconnects: u32,
    entries: VecDeque<Entry>,
    roster: BTreeSet<UserName>,
    input: InputLine,
    /// Where plain text goes; `/to` changes it.
    target: Vec<Recipient>,
    history: VecDeque<String>,
    /// Position while browsing history with ↑/↓, and the line being typed before that.
    history_pos: Option<(usize, String)>,
    /// Rows scrolled up from the bottom of the message pane; 0 follows new entries.
    scroll: usize,
    /// Entries that arrived while scrolled up.
    unseen: usize,
    show_help: bool,
    size: Size,
    now: Instant,
    exit: Option<Exit>,
}

impl App {
    /// A client not yet connected, for a terminal of `size`.
    pub fn new(settings: Settings, size: Size, now: Instant) -> Self {
        Self {
            settings,
            state: ConnState::Connecting { attempt: 1 },
            ever_connected: false,
            catching_up: false,
            reconnects: 0,
            entries: VecDeque::new(),
            roster: BTreeSet::new(),
            input: InputLine::default(),
            target: vec![Recipient::Everyone],
            history: VecDeque::new(),
            history_pos: None,
            scroll: 0,
            unseen: 0,
            show_help: false,
            size,
            now,
            exit: None,
        }
    }

    /// The commands to run at start-up.
    pub fn start(&self) -> Vec<Command> {
        vec![Command::Connect]
    }

    /// Handles one message and returns what the runtime must do.
    pub fn update(&mut self, msg: Msg, clock: Clock) -> Vec<Command> {
        self.now = clock.now;
        match msg {
            Msg::Key(key) if key.kind == KeyEventKind::Press => self.on_key(key, clock),
            Msg::Key(_) => Vec::new(),
            Msg::Paste(text) => self.on_paste(&text, clock),
            Msg::Resize(width, height) => {
                self.size = Size::new(width, height);
                self.scroll = self.scroll.min(self.max_scroll());
                Vec::new()
            }
            Msg::Tick => match self.state {
                ConnState::Disconnected { retry_at, .. } if clock.now >= retry_at => {
                    let attempt = self.reconnects + 1;
                    self.state = ConnState::Connecting { attempt };
                    vec![Command::Connect]
                }
                _ => Vec::new(),
            },
            Msg::Net(event) => self.on_net(event, clock),
            Msg::Quit => self.quit(Exit::Clean),
        }
    }

    fn quit(&mut self, exit: Exit) -> Vec<Command> {
        self.exit.get_or_insert(exit);
        vec![Command::Quit]
    }

    fn on_key(&mut self, key: KeyEvent, clock: Clock) -> Vec<Command> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return self.quit(Exit::Clean);
        }
        if self.show_help {
            if matches!(
                key.code,
                KeyCode::Esc | KeyCode::F(1) | KeyCode::Enter | KeyCode::Char('q')
            ) {
                self.show_help = false;
            }
            return Vec::new();
        }
        match key.code {
            KeyCode::Char('d') if ctrl && self.input.is_empty() => return self.quit(Exit::Clean),
            KeyCode::Enter => return self.submit(clock),
            KeyCode::F(1) => self.show_help = true,
            KeyCode::PageUp => self.scroll_by(self.page() as isize),
            KeyCode::PageDown => self.scroll_by(-(self.page() as isize)),
            KeyCode::End if ctrl => self.scroll_by(isize::MIN),
            KeyCode::Up => self.history_prev(),
            KeyCode::Down => self.history_next(),
            KeyCode::Tab => self.complete(clock),
            _ => {
                self.input.handle_key(key);
            }
        }
        Vec::new()
    }

    /// What the user typed, on Enter.
    fn submit(&mut self, clock: Clock) -> Vec<Command> {
        let typed = self.input.as_str().trim().to_owned();
        if typed.is_empty() {
            return Vec::new();
        }
        if let Some(command) = typed.strip_prefix('/') {
            let (name, arg) = command
                .split_once(char::is_whitespace)
                .unwrap_or((command, ""));
            let arg = arg.trim();
            let commands = match name {
                "quit" | "exit" => return self.quit(Exit::Clean),
                "help" => {
                    self.show_help = true;
                    Vec::new()
                }
                "who" => return self.send_typed(ClientLine::Who, &typed, clock),
                // A password line goes straight out: never into the input history or the
                // log (the input line shows it masked, `ui::masked`).
                "register" | "password" => {
                    return match typed.parse::<ClientLine>() {
                        Ok(line) => match self.check_sendable(&line) {
                            Ok(()) => {
                                self.input.take();
                                vec![Command::Send(line)]
                            }
                            Err(reason) => {
                                self.note(reason, true, clock);
                                Vec::new()
                            }
                        },
                        Err(e) => {
                            self.note(format!("/{name}: {e}"), true, clock);
                            Vec::new()
                        }
                    };
                }
                // The server's room and history commands go out as typed, once valid.
                "join" | "part" | "names" | "rooms" | "history" => {
                    return match typed.parse::<ClientLine>() {
                        Ok(line) => self.send_typed(line, &typed, clock),
                        Err(e) => {
                            self.note(format!("/{name}: {e}"), true, clock);
                            Vec::new()
                        }
                    };
                }
                "to" if arg.is_empty() => {
                    self.note(
                        format!(
                            "talking to {}; /to NAME[,NAME...] or /to * changes it",
                            self.target_label()
                        ),
                        false,
                        clock,
                    );
                    Vec::new()
                }
                "to" => match parse_recipients(arg) {
                    Ok(target) => {
                        self.target = target;
                        self.note(
                            format!("now talking to {}", self.target_label()),
                            false,
                            clock,
                        );
                        Vec::new()
                    }
                    Err(e) => {
                        self.note(format!("/to: {e}"), true, clock);
                        return Vec::new();
                    }
                },
                "clear" => {
                    self.entries.clear();
                    self.scroll = 0;
                    self.unseen = 0;
                    Vec::new()
                }
                other => {
                    self.note(
                        format!(
                            "unknown command /{}; F1 or /help lists them",
                            sanitize(other)
                        ),
                        true,
                        clock,
                    );
                    return Vec::new();
                }
            };
            self.remember(typed);
            self.input.take();
            return commands;
        }
        let line = match self.compose(&typed) {
            Ok(line) => line,
            Err(reason) => {
                self.note(reason, true, clock);
                return Vec::new();
            }
        };
        self.send_typed(line, &typed, clock)
    }

    /// Turns typed text into a message: `bob,carol: text` is sent as written, anything
    /// else goes to the current target.
    fn compose(&self, typed: &str) -> Result<ClientLine, String> {
        let explicit = typed
            .split_once(':')
            .and_then(|(to, text)| Some((parse_recipients(to).ok()?, text)));
        let (to, text) = match explicit {
            Some((to, text)) => (to, text),
            None => (self.target.clone(), typed),
        };
        let text = MessageText::parse(text).map_err(|e| e.to_string())?;
        Ok(ClientLine::Send { to, text })
    }

    /// Sends `line` if connected and within the line limit; otherwise keeps the input
    /// and says why.
    fn send_typed(&mut self, line: ClientLine, typed: &str, clock: Clock) -> Vec<Command> {
        if let Err(reason) = self.check_sendable(&line) {
            self.note(reason, true, clock);
            return Vec::new();
        }
        self.record_own(&line, clock);
        self.remember(typed.to_owned());
        self.input.take();
        vec![Command::Send(line)]
    }

    fn check_sendable(&self, line: &ClientLine) -> Result<(), String> {
        if self.state != ConnState::Connected {
            return Err(
                "not connected; your line is kept, press Enter again once connected".to_owned(),
            );
        }
        let bytes = line.to_string().len();
        if bytes > self.settings.max_line_bytes {
            return Err(format!(
                "line too long ({bytes} bytes; the limit is {})",
                self.settings.max_line_bytes
            ));
        }
        Ok(())
    }

    fn record_own(&mut self, line: &ClientLine, clock: Clock) {
        if let ClientLine::Send { to, text } = line {
            let mut dests = String::new();
            let _ = write_recipients(&mut dests, to);
            self.push(Entry {
                time: clock.local,
                kind: EntryKind::Own {
                    to: dests,
                    text: text.to_string(),
                },
            });
        }
    }

    /// Pasted text: one line is inserted for editing; several are sent one message each
    /// to the current target (never run as commands), or refused if there are too many.
    fn on_paste(&mut self, text: &str, clock: Clock) -> Vec<Command> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim_end)
            .filter(|l| !l.trim().is_empty())
            .collect();
        if lines.len() <= 1 && !text.trim_end().contains('\n') {
            let clean: String = text.chars().filter(|c| !c.is_control()).collect();
            self.input.insert_str(&clean);
            return Vec::new();
        }
        if lines.len() > MAX_PASTE_LINES {
            self.note(
                format!(
                    "paste of {} lines refused (at most {MAX_PASTE_LINES})",
                    lines.len()
                ),
                true,
                clock,
            );
            return Vec::new();
        }
        let mut messages = Vec::new();
        for line in &lines {
            match MessageText::parse(line) {
                Ok(text) => messages.push(ClientLine::Send {
                    to: self.target.clone(),
                    text,
                }),
                Err(e) => {
                    self.note(format!("paste refused: {e}"), true, clock);
                    return Vec::new();
                }
            }
        }
        if let Some(reason) = messages.iter().find_map(|m| self.check_sendable(m).err()) {
            self.note(format!("paste refused: {reason}"), true, clock);
            return Vec::new();
        }
        for message in &messages {
            self.record_own(message, clock);
        }
        messages.into_iter().map(Command::Send).collect()
    }

    fn on_net(&mut self, event: NetEvent, clock: Clock) -> Vec<Command> {
        match event {
            NetEvent::Connected => {
                self.state = ConnState::Connected;
                self.ever_connected = true;
                self.catching_up = true;
                self.reconnects = 0;
                self.roster.clear();
                let addr = self.settings.addr.clone();
                self.note(
                    format!("connected to {addr} as {}", self.settings.name),
                    false,
                    clock,
                );
                return vec![Command::Send(ClientLine::Who)];
            }
            NetEvent::Line(line) => self.on_line(line, clock),
            NetEvent::Unrecognised(raw) => {
                self.note(
                    format!("unrecognised line from the server: {}", sanitize(&raw)),
                    true,
                    clock,
                );
            }
            NetEvent::LoginRefused(reason) if !self.ever_connected => {
                return self.quit(Exit::Refused(reason));
            }
            NetEvent::LoginRefused(reason) => {
                self.disconnected(format!("login refused: {reason}"), clock)
            }
            NetEvent::Disconnected(reason) => self.disconnected(reason, clock),
        }
        Vec::new()
    }

    fn on_line(&mut self, line: ServerLine, clock: Clock) {
        let catching_up = std::mem::take(&mut self.catching_up);
        match line {
            ServerLine::History(entry) if catching_up => {
                self.catching_up = true;
                let text = sanitize(entry.text.as_str());
                self.push(Entry {
                    time: clock.local,
                    kind: EntryKind::Message {
                        from: entry.sender,
                        text: format!("(while you were away, {}) {text}", entry.time),
                    },
                });
            }
            ServerLine::Welcome(_) => {}
            ServerLine::From {
                sender,
                scope,
                text,
            } => {
                let text = sanitize(text.as_str());
                let text = match scope {
                    Scope::Direct | Scope::Everyone => text.into_owned(),
                    // Until the client has a buffer per room, the room leads the text.
                    Scope::Room { room, .. } => format!("[{room}] {text}"),
                };
                self.push(Entry {
                    time: clock.local,
                    kind: EntryKind::Message { from: sender, text },
                });
            }
            ServerLine::JoinedRoom { room, name } => {
                self.note(format!("{name} joined {room}"), false, clock)
            }
            ServerLine::LeftRoom { room, name } => {
                self.note(format!("{name} left {room}"), false, clock)
            }
            ServerLine::Names { room, names } => {
                let list = names
                    .iter()
                    .map(UserName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                self.note(format!("{room} ({}): {list}", names.len()), false, clock);
            }
            ServerLine::Rooms(rooms) => {
                let list = rooms
                    .iter()
                    .map(|(room, n)| format!("{room} ({n})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.note(format!("rooms: {list}"), false, clock);
            }
            ServerLine::History(entry) => self.note(
                format!(
                    "{} {} {}: {}",
                    entry.conv,
                    entry.time,
                    entry.sender,
                    sanitize(entry.text.as_str())
                ),
                false,
                clock,
            ),
            ServerLine::HistoryEnd { conv, truncated } => self.note(
                format!(
                    "end of {conv} history{}",
                    if truncated {
                        " (older messages are gone)"
                    } else {
                        ""
                    }
                ),
                false,
                clock,
            ),
            ServerLine::Joined(name) => {
                self.note(format!("{name} joined"), false, clock);
                self.roster.insert(name);
            }
            ServerLine::Left(name) => {
                self.note(format!("{name} left"), false, clock);
                self.roster.remove(&name);
            }
            ServerLine::Users(names) => {
                let list = names
                    .iter()
                    .map(UserName::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                self.note(format!("online ({}): {list}", names.len()), false, clock);
                self.roster = names.into_iter().collect();
            }
            ServerLine::Missed(n) => self.note(
                format!("{n} message(s) arrived while you were away (above)"),
                false,
                clock,
            ),
            ServerLine::Stored(name) => self.note(
                format!("{name} is away; the message will be delivered at their next login"),
                false,
                clock,
            ),
            ServerLine::Registered(name) => {
                self.note(format!("{name} is now registered"), false, clock)
            }
            ServerLine::PasswordChanged => self.note("password changed".to_owned(), false, clock),
            ServerLine::Error(reason) => {
                self.note(format!("error: {}", sanitize(&reason)), true, clock)
            }
            ServerLine::Bye(reason) => self.note(
                format!("server says bye: {}", sanitize(&reason)),
                true,
                clock,
            ),
        }
    }

    fn disconnected(&mut self, reason: String, clock: Clock) {
        let delay = RECONNECT_DELAYS[(self.reconnects as usize).min(RECONNECT_DELAYS.len() - 1)];
        self.reconnects += 1;
        let reason = sanitize(&reason).into_owned();
        self.note(
            format!(
                "disconnected: {reason}; reconnecting in {} s",
                delay.as_secs()
            ),
            true,
            clock,
        );
        self.roster.clear();
        self.state = ConnState::Disconnected {
            reason,
            retry_at: clock.now + delay,
        };
    }

    /// Completes the name being typed in the destination part of the line (or after `/to`).
    fn complete(&mut self, clock: Clock) {
        let before = &self.input.as_str()[..self.input.cursor()];
        let (dest_start, in_to) = match before.strip_prefix("/to ") {
            Some(_) => (4, true),
            None if !before.contains(':') && !before.starts_with('/') => (0, false),
            None => return,
        };
        let word_start = before[dest_start..]
            .rfind(',')
            .map_or(dest_start, |i| dest_start + i + 1);
        let prefix = before[word_start..].trim_start();
        let word_start = before.len() - prefix.len();
        let lower = prefix.to_lowercase();
        let matches: Vec<&UserName> = self
            .roster
            .iter()
            .filter(|n| **n != self.settings.name && n.as_str().to_lowercase().starts_with(&lower))
            .collect();
        match matches.as_slice() {
            [] => {}
            [only] => {
                let suffix = if in_to || self.input.as_str()[self.input.cursor()..].starts_with(':')
                {
                    ""
                } else {
                    ": "
                };
                self.input
                    .replace_before_cursor(word_start, &format!("{only}{suffix}"));
            }
            several => {
                let common = several
                    .iter()
                    .skip(1)
                    .fold(several[0].as_str(), |acc, n| common_prefix(acc, n.as_str()));
                if common.chars().count() > prefix.chars().count() {
                    self.input.replace_before_cursor(word_start, common);
                } else {
                    let list = several
                        .iter()
                        .map(|n| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ");
                    self.note(format!("matches: {list}"), false, clock);
                }
            }
        }
    }

    fn history_prev(&mut self) {
        let pos = match &self.history_pos {
            None if self.history.is_empty() => return,
            None => {
                self.history_pos = Some((self.history.len(), self.input.as_str().to_owned()));
                self.history.len()
            }
            Some((pos, _)) => *pos,
        };
        if pos > 0 {
            if let Some((p, _)) = &mut self.history_pos {
                *p = pos - 1;
            }
            self.input.set(self.history[pos - 1].clone());
        }
    }

    fn history_next(&mut self) {
        let Some((pos, draft)) = self.history_pos.take() else {
            return;
        };
        if pos + 1 < self.history.len() {
            self.input.set(self.history[pos + 1].clone());
            self.history_pos = Some((pos + 1, draft));
        } else {
            self.input.set(draft);
        }
    }

    fn remember(&mut self, typed: String) {
        self.history_pos = None;
        if self.history.back() != Some(&typed) {
            self.history.push_back(typed);
            if self.history.len() > HISTORY_LEN {
                self.history.pop_front();
            }
        }
    }

    fn note(&mut self, text: String, error: bool, clock: Clock) {
        self.push(Entry {
            time: clock.local,
            kind: EntryKind::Notice { text, error },
        });
    }

    fn push(&mut self, entry: Entry) {
        if self.scroll > 0 {
            // Keep the rows the user is reading where they are.
            self.scroll += ui::entry_height(&entry, self.wrap_width());
            self.unseen += 1;
        }
        self.entries.push_back(entry);
        if self.entries.len() > self.settings.scrollback {
            self.entries.pop_front();
        }
    }

    fn scroll_by(&mut self, rows: isize) {
        self.scroll = self
            .scroll
            .saturating_add_signed(rows)
            .min(self.max_scroll());
        if self.scroll == 0 {
            self.unseen = 0;
        }
    }

    /// The furthest the pane can scroll up: rows above the first screenful. Only wraps as
    /// many entries as needed to know that the scroll position is within it.
    fn max_scroll(&self) -> usize {
        let width = self.wrap_width();
        let page = self.page();
        let wanted = self.scroll.saturating_add(2 * page);
        let mut rows = 0;
        for entry in self.entries.iter().rev() {
            rows += ui::entry_height(entry, width);
            if rows >= wanted {
                break;
            }
        }
        rows.saturating_sub(page)
    }

    fn messages_area(&self) -> Rect {
        ui::layout(Rect::from((ratatui::layout::Position::ORIGIN, self.size)))
            .map_or(Rect::default(), |panes| panes.messages)
    }

    fn page(&self) -> usize {
        usize::from(self.messages_area().height.saturating_sub(1)).max(1)
    }

    fn wrap_width(&self) -> usize {
        usize::from(self.messages_area().width)
    }

    // Read-only views for `ui`.

    /// Our name.
    pub fn name(&self) -> &UserName {
        &self.settings.name
    }

    /// The server address.
    pub fn addr(&self) -> &str {
        &self.settings.addr
    }

    /// The connection state.
    pub fn state(&self) -> &ConnState {
        &self.state
    }

    /// The time of the last update, for countdowns.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// The scrollback, oldest first.
    pub fn entries(&self) -> &VecDeque<Entry> {
        &self.entries
    }

    /// Who is online.
    pub fn roster(&self) -> &BTreeSet<UserName> {
        &self.roster
    }

    /// The input line.
    pub fn input(&self) -> &InputLine {
        &self.input
    }

    /// The current target, as the prompt shows it (`*`, `bob,carol`).
    pub fn target_label(&self) -> String {
        let mut label = String::new();
        let _ = write_recipients(&mut label, &self.target);
        label
    }

    /// Rows scrolled up from the bottom.
    pub fn scroll(&self) -> usize {
        self.scroll
    }

    /// Entries that arrived while scrolled up.
    pub fn unseen(&self) -> usize {
        self.unseen
    }

    /// Whether the help overlay is shown.
    pub fn show_help(&self) -> bool {
        self.show_help
    }

    /// How the program should end, once it does.
    pub fn exit(&self) -> Option<&Exit> {
        self.exit.as_ref()
    }
}

fn common_prefix<'a>(a: &'a str, b: &str) -> &'a str {
    let len = a
        .char_indices()
        .zip(b.chars())
        .take_while(|((_, x), y)| x.to_lowercase().eq(y.to_lowercase()))
        .last()
        .map_or(0, |((i, c), _)| i + c.len_utf8());
    &a[..len]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clock() -> Clock {
        Clock {
            now: start(),
            local: NaiveTime::from_hms_opt(12, 34, 0).expect("a valid time"),
        }
    }

    fn start() -> Instant {
        use std::sync::OnceLock;
        static START: OnceLock<Instant> = OnceLock::new();
        *START.get_or_init(Instant::now)
    }

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a valid name")
    }

    fn app() -> App {
        let settings = Settings {
            name: name("alice"),
            addr: "127.0.0.1:8080".into(),
            max_line_bytes: 64,
            scrollback: 100,
        };
        App::new(settings, Size::new(80, 24), start())
    }

    fn connected() -> App {
        let mut app = app();
        assert_eq!(
            app.update(Msg::Net(NetEvent::Connected), clock()),
            [Command::Send(ClientLine::Who)]
        );
        app
    }

    fn key(code: KeyCode) -> Msg {
        Msg::Key(KeyEvent::new(code, KeyModifiers::NONE))
    }

    fn ctrl(c: char) -> Msg {
        Msg::Key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL))
    }

    fn type_str(app: &mut App, s: &str) {
        for c in s.chars() {
            assert_eq!(app.update(key(KeyCode::Char(c)), clock()), []);
        }
    }

    fn enter(app: &mut App, s: &str) -> Vec<Command> {
        type_str(app, s);
        app.update(key(KeyCode::Enter), clock())
    }

    fn send(line: &str) -> Command {
        Command::Send(line.parse().expect("a valid client line"))
    }

    fn last_notice(app: &App) -> &str {
        match &app.entries().back().expect("an entry").kind {
            EntryKind::Notice { text, .. } => text,
            other => panic!("expected a notice, got {other:?}"),
        }
    }

    fn server(app: &mut App, line: &str) -> Vec<Command> {
        app.update(
            Msg::Net(NetEvent::Line(line.parse().expect("a server line"))),
            clock(),
        )
    }

    #[test]
    fn explicit_destinations_are_sent_as_written() {
        let mut app = connected();
        assert_eq!(
            enter(&mut app, "bob,carol: hi there"),
            [send("bob,carol: hi there")]
        );
        assert!(app.input().is_empty());
        let own = &app.entries().back().expect("an entry").kind;
        assert_eq!(
            own,
            &EntryKind::Own {
                to: "bob,carol".into(),
                text: "hi there".into()
            }
        );
    }

    #[test]
    fn plain_text_goes_to_the_sticky_target() {
        let mut app = connected();
        assert_eq!(
            enter(&mut app, "hello everyone"),
            [send("*: hello everyone")]
        );
        assert_eq!(enter(&mut app, "/to bob, carol"), []);
        assert_eq!(app.target_label(), "bob,carol");
        assert_eq!(enter(&mut app, "just us"), [send("bob,carol: just us")]);
        assert_eq!(
            enter(&mut app, "it's 10:30 now"),
            [send("bob,carol: it's 10:30 now")]
        );
        enter(&mut app, "/to *");
        assert_eq!(enter(&mut app, "all again"), [send("*: all again")]);
        assert_eq!(enter(&mut app, "/to bo b"), []);
        assert_eq!(app.target_label(), "*", "an invalid target changes nothing");
    }

    #[test]
    fn lines_are_kept_when_they_cannot_be_sent() {
        let mut app = app();
        assert_eq!(enter(&mut app, "hello"), []);
        assert_eq!(app.input().as_str(), "hello");
        assert!(last_notice(&app).starts_with("not connected"));

        let mut app = connected();
        assert_eq!(
            enter(&mut app, &"x".repeat(61)),
            [send(&format!("*: {}", "x".repeat(61)))]
        );
        let long = "x".repeat(62);
        assert_eq!(enter(&mut app, &long), []);
        assert_eq!(app.input().as_str(), long);
        assert_eq!(
            last_notice(&app),
            "line too long (65 bytes; the limit is 64)"
        );
        assert_eq!(enter(&mut app, ""), []);
        app.update(ctrl('u'), clock());
        assert_eq!(enter(&mut app, "bob:   "), []);
        assert_eq!(last_notice(&app), "empty message");
    }

    #[test]
    fn mail_replayed_after_login_is_shown_as_missed() {
        let mut app = connected();
        let line = |l: &str| Msg::Net(NetEvent::Line(l.parse().expect("a server line")));
        app.update(
            line("history @bob 7 2026-11-28T18:00:00.123Z bob: are you there?"),
            clock(),
        );
        app.update(line("history-end missed 1"), clock());
        let shown: Vec<String> = app
            .entries()
            .iter()
            .map(|e| format!("{:?}", e.kind))
            .collect();
        assert!(
            shown.iter().any(
                |e| e.contains("while you were away, 2026-11-28T18:00:00.123Z) are you there?")
            ),
            "{shown:?}"
        );
        assert_eq!(
            last_notice(&app),
            "1 message(s) arrived while you were away (above)"
        );
    }

    #[test]
    fn commands() {
        let mut app = connected();
        assert_eq!(enter(&mut app, "/who"), [Command::Send(ClientLine::Who)]);
        assert_eq!(enter(&mut app, "/join #rust"), [send("/join #rust")]);
        assert_eq!(
            enter(&mut app, "/history #rust 5"),
            [send("/history #rust 5")]
        );
        assert_eq!(enter(&mut app, "/join rust"), []);
        assert_eq!(last_notice(&app), "/join: invalid room \"rust\"");
        app.update(ctrl('u'), clock());
        assert_eq!(enter(&mut app, "#rust: hi"), [send("#rust: hi")]);
        assert_eq!(
            enter(&mut app, "/register my secret pw"),
            [send("/register my secret pw")]
        );
        app.update(key(KeyCode::Up), clock());
        assert_eq!(
            app.input().as_str(),
            "#rust: hi",
            "the password is not in the history"
        );
        app.update(ctrl('u'), clock());
        assert_eq!(enter(&mut app, "/password short"), []);
        assert_eq!(
            last_notice(&app),
            "/password: password too weak: use at least 8 bytes"
        );
        app.update(ctrl('u'), clock());
        assert_eq!(enter(&mut app, "/help"), []);
        assert!(app.show_help());
        app.update(key(KeyCode::Esc), clock());
        assert!(!app.show_help());
        assert_eq!(enter(&mut app, "/frobnicate"), []);
        assert_eq!(
            last_notice(&app),
            "unknown command /frobnicate; F1 or /help lists them"
        );
        assert_eq!(app.input().as_str(), "/frobnicate", "kept for fixing");
        app.update(ctrl('u'), clock());
        assert_eq!(enter(&mut app, "/quit"), [Command::Quit]);
        assert_eq!(app.exit(), Some(&Exit::Clean));
    }

    #[test]
    fn ctrl_c_quits_and_ctrl_d_quits_only_on_an_empty_line() {
        let mut app = connected();
        type_str(&mut app, "draft");
        assert_eq!(app.update(ctrl('d'), clock()), []);
        app.update(ctrl('u'), clock());
        assert_eq!(app.update(ctrl('d'), clock()), [Command::Quit]);
        let mut app = connected();
        type_str(&mut app, "draft");
        assert_eq!(app.update(ctrl('c'), clock()), [Command::Quit]);
        assert_eq!(app.update(Msg::Quit, clock()), [Command::Quit]);
    }

    #[test]
    fn key_releases_are_ignored() {
        let mut app = connected();
        let mut release = KeyEvent::new(KeyCode::Char('x'), KeyModifiers::NONE);
        release.kind = KeyEventKind::Release;
        app.update(Msg::Key(release), clock());
        assert!(app.input().is_empty());
    }

    #[test]
    fn presence_lines_keep_the_roster() {
        let mut app = connected();
        server(&mut app, "users alice,bob");
        server(&mut app, "joined carol");
        assert_eq!(last_notice(&app), "carol joined");
        server(&mut app, "left bob");
        assert_eq!(last_notice(&app), "bob left");
        let roster: Vec<&str> = app.roster().iter().map(UserName::as_str).collect();
        assert_eq!(roster, ["alice", "carol"]);
    }

    #[test]
    fn untrusted_text_is_stored_escaped() {
        let mut app = connected();
        app.update(
            Msg::Net(NetEvent::Unrecognised(
                "from bob: \x1b]0;PWNED\x07\x1b[2J".into(),
            )),
            clock(),
        );
        assert_eq!(
            last_notice(&app),
            "unrecognised line from the server: from bob: \\u{1b}]0;PWNED\\u{7}\\u{1b}[2J"
        );
        server(&mut app, "error: bad \u{202e}thing");
        assert_eq!(last_notice(&app), "error: bad \\u{202e}thing");
        server(&mut app, "from bob: tab\there");
        let EntryKind::Message { text, .. } = &app.entries().back().expect("an entry").kind else {
            panic!()
        };
        assert_eq!(text, "tab here");
    }

    #[test]
    fn a_refused_first_login_ends_the_program() {
        let mut app = app();
        let commands = app.update(
            Msg::Net(NetEvent::LoginRefused("name already in use: alice".into())),
            clock(),
        );
        assert_eq!(commands, [Command::Quit]);
        assert_eq!(
            app.exit(),
            Some(&Exit::Refused("name already in use: alice".into()))
        );
    }

    #[test]
    fn disconnects_reconnect_with_growing_backoff() {
        let mut app = connected();
        let mut now = clock();
        for delay in [1, 2, 4, 8, 16, 30, 30] {
            app.update(
                Msg::Net(NetEvent::Disconnected("server shutting down".into())),
                now,
            );
            assert!(
                matches!(app.state(), ConnState::Disconnected { reason, .. } if reason == "server shutting down")
            );
            assert!(app.roster().is_empty());
            now.now += Duration::from_secs(delay) - Duration::from_millis(1);
            assert_eq!(app.update(Msg::Tick, now), [], "too early after {delay} s");
            now.now += Duration::from_millis(1);
            assert_eq!(app.update(Msg::Tick, now), [Command::Connect]);
            assert!(matches!(app.state(), ConnState::Connecting { .. }));
        }
        assert_eq!(
            app.update(Msg::Net(NetEvent::Connected), now),
            [Command::Send(ClientLine::Who)]
        );
        app.update(
            Msg::Net(NetEvent::LoginRefused("name already in use: alice".into())),
            now,
        );
        assert_eq!(
            app.exit(),
            None,
            "a refusal after a first success is retried"
        );
        now.now += Duration::from_secs(1);
        assert_eq!(
            app.update(Msg::Tick, now),
            [Command::Connect],
            "backoff restarts after a success"
        );
    }

    #[test]
    fn scrolling_up_holds_the_view_and_counts_new_entries() {
        let mut app = connected();
        for i in 0..60 {
            server(&mut app, &format!("from bob: message {i}"));
        }
        app.update(key(KeyCode::PageUp), clock());
        let scrolled = app.scroll();
        assert!(scrolled > 0);
        server(&mut app, "from bob: while away");
        server(&mut app, "joined carol");
        assert_eq!(app.unseen(), 2);
        assert_eq!(app.scroll(), scrolled + 2, "the rows being read stay put");
        for _ in 0..10 {
            app.update(key(KeyCode::PageUp), clock());
        }
        let top = app.scroll();
        app.update(key(KeyCode::PageUp), clock());
        assert_eq!(app.scroll(), top, "scrolling stops at the oldest entry");
        for _ in 0..10 {
            app.update(key(KeyCode::PageDown), clock());
        }
        assert_eq!((app.scroll(), app.unseen()), (0, 0));
    }

    #[test]
    fn scrollback_is_bounded() {
        let mut app = connected();
        for i in 0..250 {
            server(&mut app, &format!("from bob: {i}"));
        }
        assert_eq!(app.entries().len(), 100);
        let EntryKind::Message { text, .. } = &app.entries().back().expect("an entry").kind else {
            panic!()
        };
        assert_eq!(text, "249");
    }

    #[test]
    fn history_walks_back_and_returns_to_the_draft() {
        let mut app = connected();
        enter(&mut app, "first");
        enter(&mut app, "second");
        type_str(&mut app, "draft");
        app.update(key(KeyCode::Up), clock());
        assert_eq!(app.input().as_str(), "second");
        app.update(key(KeyCode::Up), clock());
        app.update(key(KeyCode::Up), clock());
        assert_eq!(app.input().as_str(), "first");
        app.update(key(KeyCode::Down), clock());
        assert_eq!(app.input().as_str(), "second");
        app.update(key(KeyCode::Down), clock());
        assert_eq!(app.input().as_str(), "draft");
    }

    #[test]
    fn tab_completes_names_in_the_destination_part() {
        let mut app = connected();
        server(&mut app, "users alice,bob,carol,caroline,张三");
        type_str(&mut app, "b");
        app.update(key(KeyCode::Tab), clock());
        assert_eq!(app.input().as_str(), "bob: ");
        app.update(ctrl('u'), clock());
        type_str(&mut app, "bob,ca");
        app.update(key(KeyCode::Tab), clock());
        assert_eq!(
            app.input().as_str(),
            "bob,carol",
            "the common prefix of carol and caroline"
        );
        app.update(key(KeyCode::Tab), clock());
        assert_eq!(last_notice(&app), "matches: carol, caroline");
        app.update(ctrl('u'), clock());
        type_str(&mut app, "/to 张");
        app.update(key(KeyCode::Tab), clock());
        assert_eq!(app.input().as_str(), "/to 张三");
        app.update(ctrl('u'), clock());
        type_str(&mut app, "bob: b");
        app.update(key(KeyCode::Tab), clock());
        assert_eq!(
            app.input().as_str(),
            "bob: b",
            "no completion inside the text"
        );
    }

    #[test]
    fn pasted_lines_are_sent_one_by_one_or_refused() {
        let mut app = connected();
        assert_eq!(app.update(Msg::Paste("one line".into()), clock()), []);
        assert_eq!(app.input().as_str(), "one line");
        app.update(ctrl('u'), clock());
        let commands = app.update(
            Msg::Paste("first\r\n\nsecond: with colon\n/quit\n".into()),
            clock(),
        );
        assert_eq!(
            commands,
            [
                send("*: first"),
                send("*: second: with colon"),
                send("*: /quit")
            ]
        );
        let many = "line\n".repeat(MAX_PASTE_LINES + 1);
        assert_eq!(app.update(Msg::Paste(many), clock()), []);
        assert_eq!(last_notice(&app), "paste of 21 lines refused (at most 20)");
        let long = format!("ok\n{}\n", "x".repeat(100));
        assert_eq!(app.update(Msg::Paste(long), clock()), []);
        assert!(last_notice(&app).starts_with("paste refused: line too long"));
    }
}
