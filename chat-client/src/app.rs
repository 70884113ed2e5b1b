//! [`App`]: everything the client shows, and [`App::update`], the only place it changes. No
//! I/O here: `update` takes a [`Msg`] and the time, and answers with [`Command`]s for the
//! runtime to carry out (The Elm Architecture). The state is made of small parts, each in
//! its own module: the connection ([`Connection`]), the scroll view ([`ScrollView`]: the
//! buffers, how they are scrolled and searched, the size they are laid out in), the input
//! bar ([`InputBar`]: the line, its history, completion and reverse search, which takes its
//! own keys and answers with an [`Outcome`](crate::input_bar::Outcome)), the modes
//! ([`Modes`]: the help overlay and the one-key questions), and the outbox; `update`
//! dispatches to them, and they never call back. The handlers live by what they handle:
//! `app/keyboard.rs` (keys by mode, pastes, the names and rooms Tab completes),
//! `app/typed.rs` (typed lines and `/commands`), `app/server.rs` (the connection and each
//! server line), `app/governance.rs` (room commands and the lines that govern rooms) and
//! `app/sessions.rs` (one account on several devices: read markers, copies of what we sent
//! elsewhere, away and whois; older history; the keepalive); this file keeps the state and
//! the entries.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use chat_proto::{ClientLine, Conv, MessageText, Password, RoomName, UserName};
use chrono::NaiveDateTime;
use crossterm::event::KeyEventKind;
use ratatui::layout::Size;

use crate::account::Account;
use crate::buffers::{BufferId, Buffers, Merged};
use crate::conn::{ConnState, Connection};
use crate::entry::{Entry, EntryKind};
use crate::event::{Clock, Msg};
use crate::input::InputLine;
use crate::input_bar::InputBar;
use crate::keepalive::Keepalive;
use crate::layout::{self, Look};
use crate::modes::{Modes, Prompt};
use crate::outbox::Outbox;
use crate::sanitize::SafeText;
use crate::scroll_view::{ScrollView, Search};

/// Default number of entries kept per buffer.
pub const DEFAULT_SCROLLBACK: usize = 10_000;
/// A paste of more lines than this is refused rather than flooding everyone.
pub const MAX_PASTE_LINES: usize = 100;
/// Rows the mouse wheel scrolls per notch.
const WHEEL_ROWS: usize = 3;

/// How lately someone must have spoken for the smart filter to show their join or part
/// (WeeChat's `irc.look.smart_filter_delay`, 5 minutes).
pub const SMART_FILTER_DELAY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

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
    /// Whether the connection is TLS, said in the status bar.
    pub tls: bool,
    /// The server's line limit; longer lines are refused before sending.
    pub max_line_bytes: usize,
    /// Entries kept per buffer.
    pub scrollback: usize,
    /// Rooms to join at the first login.
    pub rooms: Vec<RoomName>,
    /// Ring the bell and set the title on a mention.
    pub bell: bool,
    /// Words besides our name that make a message a mention (`highlight = [...]`).
    pub highlights: Vec<String>,
    /// A chrono format for timestamps, already checked.
    pub time_format: String,
    /// How join and part lines are shown.
    pub join_part: JoinPart,
    /// With `join_part` fold: show the joins and parts of people who spoke lately only
    /// (WeeChat's `irc.look.smart_filter`).
    pub smart_filter: bool,
    /// Make URLs OSC 8 hyperlinks.
    pub hyperlinks: bool,
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
    /// Give up on the current connection, taken for dead: it ends at once and reports
    /// [`NetEvent::Disconnected`](crate::event::NetEvent::Disconnected) with this reason and the lines it never wrote.
    Abandon(String),
    /// Log in with this password from now on (it was set with `/register` or
    /// `/password`, or given with `/login`); kept in memory only.
    UsePassword(Password),
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
    /// The first connection could not be made, for a reason that trying again cannot
    /// fix ([`NetEvent::Unreachable`](crate::event::NetEvent::Unreachable)); the reason goes to stderr.
    Unreachable(String),
}

/// Why history was asked for, to say the right thing when it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HistoryAsk {
    /// What a buffer lacks: at a join, after a reconnect, at a `/query`.
    Follow,
    /// The user typed `/history`: an answer that adds nothing is still said.
    Typed,
    /// Older messages, for scrolling back past the top.
    Older,
}

/// All of the client's state.
#[derive(Debug)]
pub struct App {
    settings: Settings,
    folded_name: String,
    /// When each person (folded name) last said something, in any buffer: the smart
    /// filter shows the comings and goings of those who spoke lately.
    last_spoke: HashMap<String, Instant>,
    /// Our name and the highlight words, folded: what a mention names.
    folded_highlights: Vec<String>,
    conn: Connection,
    /// The buffers, how they are scrolled and searched, and the size they are laid out in.
    view: ScrollView,
    /// Who is online.
    roster: BTreeSet<UserName>,
    /// Rooms seen in `/rooms` replies, for completion.
    known_rooms: BTreeSet<RoomName>,
    /// The input line, its history, completion and reverse search.
    input_bar: InputBar,
    outbox: Outbox,
    /// History lines received, by conversation, until their `history-end`.
    incoming: HashMap<Conv, Vec<(NaiveDateTime, EntryKind)>>,
    /// A room we asked to join: its buffer is shown once the server confirms.
    joining: Option<RoomName>,
    /// Rooms we sent `/join` for, not yet confirmed: our `joined` for any other room was
    /// another session's doing.
    join_asked: Vec<RoomName>,
    /// From a login until the answer to its `/who`: the rooms the server said the account
    /// is in already (through another session), which are caught up on, not joined again.
    settling: Option<Vec<RoomName>>,
    /// History asked for and not yet answered, oldest first, and whether each asked for
    /// older messages (scrolling back) rather than recent ones.
    history_asks: VecDeque<(BufferId, HistoryAsk)>,
    /// Conversations whose read marker we asked for and the server has not told yet: that
    /// answer is not a sign of another session.
    read_asks: Vec<BufferId>,
    /// Our account across devices: sessions, away, `/whois` questions.
    account: Account,
    /// If the line before was a `whois`: whom it was about, and the buffer it was shown
    /// in, for the `away` line that may follow it.
    after_whois: Option<(UserName, Option<usize>)>,
    /// The password sent with `/register` or `/password`, until the server confirms it:
    /// then the runtime logs in with it (a reconnect with the old one would be refused).
    new_password: Option<Password>,
    /// `/quit` was refused once because lines wait in the outbox: the next one quits.
    quit_warned: bool,
    /// `/ping` while we are silent, and the dead connection it may reveal.
    keepalive: Keepalive,
    /// `/who` replies the user asked for (the one at login is not shown).
    who_asked: usize,
    /// Which `topic` lines answer a question rather than report a change.
    topic_replies: governance::TopicReplies,
    /// The help overlay and the questions waiting for one key.
    modes: Modes,
    /// A one-line note over the input, gone at the next key.
    hint: Option<(SafeText, bool)>,
    mouse: bool,
    /// Whether a mention changed the terminal's title.
    titled: bool,
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
            last_spoke: HashMap::new(),
            folded_highlights: std::iter::once(settings.name.folded())
                .chain(
                    settings
                        .highlights
                        .iter()
                        .map(|w| chat_proto::name::fold(w.trim()))
                        .filter(|w| !w.is_empty()),
                )
                .collect(),
            mouse: settings.mouse,
            conn: Connection::default(),
            view: ScrollView::new(buffers, look, size),
            roster: BTreeSet::new(),
            known_rooms: BTreeSet::new(),
            input_bar: InputBar::default(),
            outbox: Outbox::default(),
            incoming: HashMap::new(),
            joining: None,
            join_asked: Vec::new(),
            settling: None,
            history_asks: VecDeque::new(),
            read_asks: Vec::new(),
            account: Account::new(false),
            after_whois: None,
            new_password: None,
            quit_warned: false,
            keepalive: Keepalive::default(),
            who_asked: 0,
            topic_replies: governance::TopicReplies::default(),
            modes: Modes::default(),
            hint: None,
            titled: false,
            now,
            exit: None,
            out: Vec::new(),
            settings,
        }
    }

    /// Logged in with a password, or not: only a registered account keeps read markers
    /// and may be logged in on several devices.
    pub fn with_account(mut self, registered: bool) -> Self {
        self.account = Account::new(registered);
        self
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
            Msg::Resize(width, height) => self.view.resize(Size::new(width, height)),
            Msg::Wheel(up) => self.scroll_by(if up {
                WHEEL_ROWS as isize
            } else {
                -(WHEEL_ROWS as isize)
            }),
            Msg::Tick => {
                if self.conn.due(clock.now) {
                    self.out.push(Command::Connect);
                }
                self.beat(clock.now);
            }
            Msg::Net(event) => self.on_net(event, clock),
            Msg::SendFailed(line) => self.unsent(&[line]),
            Msg::Quit => self.quit(Exit::Clean),
        }
        self.send_read_markers(clock.now);
        if self.out.iter().any(|c| matches!(c, Command::Send(_))) {
            self.keepalive.sent(clock.now);
        }
        std::mem::take(&mut self.out)
    }

    fn quit(&mut self, exit: Exit) {
        self.exit.get_or_insert(exit);
        self.out.push(Command::Quit);
    }

    /// The user asks to leave (`/quit [message]`, Ctrl-C or Ctrl-D on an empty line): at
    /// once, unless lines typed while disconnected would be lost; those are said first,
    /// and `/quit` or Ctrl-C again quits. Returns whether it quit. The protocol has no
    /// quit reason, so `message` is only written to the server buffer's log.
    fn user_quit(&mut self, message: Option<&str>, clock: Clock) -> bool {
        let pending = self.outbox.len();
        if pending == 0 || self.quit_warned {
            self.log_quit(message, clock);
            self.quit(Exit::Clean);
            return true;
        }
        self.quit_warned = true;
        self.modes.ask(Prompt::Quit);
        let lines = if pending == 1 { "line" } else { "lines" };
        let text = format!(
            "{pending} {lines} not sent yet would be lost: /quit or Ctrl-C again quits; connected, they go out"
        );
        self.hint = Some((SafeText::new(&text), true));
        false
    }

    /// `you quit: message` in the server buffer's log: the one place a quit message goes.
    fn log_quit(&mut self, message: Option<&str>, clock: Clock) {
        if self.settings.log {
            let text = match message {
                Some(message) => format!("you quit: {}", SafeText::new(message)),
                None => "you quit".to_owned(),
            };
            self.log_line(0, clock.local, text);
        }
    }

    // ---- entries ----

    /// Adds an entry to buffer `index` (logging it), keeping the view steady if scrolled.
    fn push(&mut self, index: usize, kind: EntryKind, clock: Clock) -> u64 {
        let (buffers, measure) = self.view.measured();
        let seq = buffers.push(index, clock.local, kind, &measure);
        let entry = self.view.buffers().all()[index].entries().back().cloned();
        // A pending line is logged when it is sent, without the `(pending)`.
        let pending = matches!(
            entry,
            Some(Entry {
                kind: EntryKind::Own { pending: true, .. },
                ..
            })
        );
        if let (Some(entry), false) = (entry, pending) {
            self.log(index, &entry);
        }
        seq
    }

    /// Writes `entry` to buffer `index`'s log, as it is drawn, at its own time.
    fn log(&mut self, index: usize, entry: &Entry) {
        if !self.settings.log {
            return;
        }
        let text: String = layout::spans(entry, self.view.look(), None)
            .iter()
            .skip(1)
            .map(|s| s.content.as_ref())
            .collect();
        self.log_line(index, entry.time, text);
    }

    fn log_line(&mut self, index: usize, when: NaiveDateTime, text: String) {
        self.out.push(Command::Log {
            buffer: self.view.buffers().all()[index].id.log_name(),
            line: format!("{} {text}", when.format("%Y-%m-%d %H:%M:%S")),
        });
    }

    /// History merged as news (filled in after a reconnect, or mail at login) is logged
    /// like lines that arrived live: it is on screen, and mail is delivered only once.
    fn log_merged(&mut self, index: usize, merged: &Merged) {
        for entry in &merged.messages {
            self.log(index, entry);
        }
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
        let current = self.view.buffers().current_index();
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
        let fold = self.settings.join_part == JoinPart::Fold;
        if self.settings.log && fold {
            // Each one, though the screen folds a burst into one line or hides it.
            let verb = if joined { "joined" } else { "left" };
            let room_text = room.as_ref().map_or(String::new(), |r| format!(" {r}"));
            self.log_line(index, clock.local, format!("{name} {verb}{room_text}"));
        }
        if !joined {
            self.view.buffers_mut().forget_join(index, &name);
        }
        let spoke_lately = self
            .last_spoke
            .get(&name.folded())
            .is_some_and(|at| clock.now.saturating_duration_since(*at) < SMART_FILTER_DELAY);
        if fold && self.settings.smart_filter && !spoke_lately {
            if joined {
                self.view
                    .buffers_mut()
                    .hide_join(index, clock.now, clock.local, name, room);
            }
            return;
        }
        match self.settings.join_part {
            JoinPart::Hide => {}
            JoinPart::Fold => {
                let (buffers, measure) = self.view.measured();
                buffers.presence(index, clock.local, joined, name, room, &measure);
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
        if let Some(query) = self.view.buffers().find(&BufferId::Query(name.clone())) {
            self.presence(query, joined, name.clone(), None, clock);
        }
        self.presence(1, joined, name, None, clock);
    }

    // ---- scrolling ----

    fn scroll_by(&mut self, rows: isize) {
        if self.view.scroll_by(rows) {
            self.untitle_if_seen();
        }
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

    /// Whether the connection is TLS.
    pub fn tls(&self) -> bool {
        self.settings.tls
    }

    /// How entries are drawn.
    pub fn look(&self) -> &Look {
        self.view.look()
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
        self.view.buffers()
    }

    /// Who is online.
    pub fn roster(&self) -> &BTreeSet<UserName> {
        &self.roster
    }

    /// The input line.
    pub fn input(&self) -> &InputLine {
        self.input_bar.line()
    }

    /// The note over the input, and whether it asks for attention.
    pub fn hint(&self) -> Option<(&SafeText, bool)> {
        self.hint.as_ref().map(|(text, loud)| (text, *loud))
    }

    /// The help overlay's scroll position, when shown.
    pub fn help(&self) -> Option<usize> {
        self.modes.help()
    }

    /// The search, if one is on.
    pub fn search(&self) -> Option<&Search> {
        self.view.search()
    }

    /// Sessions of our account online, this one included, as far as we know.
    pub fn sessions(&self) -> usize {
        self.account.sessions()
    }

    /// Our away message, if we are away.
    pub fn away(&self) -> Option<&MessageText> {
        self.account.away()
    }

    /// Lines typed while disconnected, waiting.
    pub fn outbox_len(&self) -> usize {
        self.outbox.len()
    }

    /// How far the user list is scrolled.
    pub fn nick_scroll(&self) -> usize {
        self.view.nick_scroll()
    }

    /// Whether URLs are drawn as OSC 8 hyperlinks.
    pub fn hyperlinks(&self) -> bool {
        self.settings.hyperlinks
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

mod governance;
mod keyboard;
mod server;
mod sessions;
mod typed;

#[cfg(test)]
mod tests;
