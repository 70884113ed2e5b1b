//! Keys and pastes: each key goes to the mode that has the keyboard (the help and the
//! questions in [`Modes`](crate::modes::Modes), Ctrl-R in the input bar) or else through
//! the normal key table; buffer switching, the names and rooms Tab completes, search
//! steps, and pastes of several lines, which ask first.

use std::collections::BTreeSet;

use chat_proto::{RoomName, UserName};
use crossterm::event::KeyEvent;

use super::{App, Command, Exit, MAX_PASTE_LINES};
use crate::buffers::BufferId;
use crate::commands;
use crate::event::Clock;
use crate::input_bar::Outcome;
use crate::keys::{self, Action};
use crate::modes::{Answer, Prompt};
use crate::sanitize::SafeText;

impl App {
    /// A key, looked up in the table of the mode the app is in: the help, a reverse
    /// search, a question, or else the normal keys (with those of a search).
    pub(super) fn on_key(&mut self, key: KeyEvent, clock: Clock) {
        if self.modes.help_key(key, self.view.size()) {
            return;
        }
        if self.input_bar.searching() {
            let outcome = self.input_bar.reverse_key(key);
            self.take_outcome(outcome);
            return;
        }
        match self.modes.prompt_key(key) {
            Answer::Pass => self.normal_key(key, clock),
            Answer::Kept => {}
            Answer::SendPaste(lines) => {
                self.hint = None;
                self.send_paste(lines, clock);
            }
            Answer::PasteCancelled => {
                self.hint = Some((SafeText::new("paste cancelled"), false));
            }
            Answer::Quit => {
                self.log_quit(None, clock);
                self.quit(Exit::Clean);
            }
        }
    }

    fn normal_key(&mut self, key: KeyEvent, clock: Clock) {
        let action = keys::action(key);
        self.hint = None;
        match self.input_bar.update(key, action) {
            Outcome::Pass => {}
            Outcome::Complete => {
                let outcome = self.complete();
                self.take_outcome(outcome);
                return;
            }
            outcome => {
                self.take_outcome(outcome);
                return;
            }
        }
        let Some(action) = action else {
            return;
        };
        match action {
            Action::Submit => self.submit(clock),
            Action::Interrupt if self.input_bar.line().is_empty() => {
                self.user_quit(None, clock);
            }
            Action::Interrupt => {
                self.modes.ask(Prompt::Quit);
                self.hint = Some((
                    SafeText::new(
                        "Ctrl-C again quits and loses the typed line; any other key goes on",
                    ),
                    true,
                ));
            }
            // The input bar passes Ctrl-D and End on an empty line only.
            Action::QuitIfEmpty => {
                self.user_quit(None, clock);
            }
            Action::EndOrBottom => self.scroll_by(isize::MIN),
            Action::Help => self.modes.open_help(),
            Action::ToggleMouse => self.toggle_mouse(),
            Action::SearchOlder => self.search_step(true),
            Action::SearchNewer => self.search_step(false),
            Action::Cancel => self.view.end_search(),
            Action::PageUp => {
                self.scroll_by(self.view.page() as isize);
                self.fetch_older();
            }
            Action::PageDown => self.scroll_by(-(self.view.page() as isize)),
            Action::Bottom => self.scroll_by(isize::MIN),
            Action::Buffer(n) => self.switch(n - 1),
            Action::PrevBuffer => {
                let n = self.view.buffers().all().len();
                self.switch((self.view.buffers().current_index() + n - 1) % n);
            }
            Action::NextBuffer => {
                let n = self.view.buffers().all().len();
                self.switch((self.view.buffers().current_index() + 1) % n);
            }
            Action::NextActive => self.next_active(),
            Action::NicksUp => self.view.scroll_nicks(true),
            Action::NicksDown => self.view.scroll_nicks(false),
            Action::Redraw => self.out.push(Command::Redraw),
            // Taken by the input bar above.
            Action::Edit(_)
            | Action::HistoryPrev
            | Action::HistoryNext
            | Action::Complete
            | Action::CompleteBack
            | Action::ReverseSearch => {}
        }
    }

    /// What the input bar asked for after a key: a quiet note over the input, or none.
    fn take_outcome(&mut self, outcome: Outcome) {
        self.hint = match outcome {
            Outcome::Note(text) => Some((SafeText::new(&text), false)),
            Outcome::Pass | Outcome::Done | Outcome::Complete => None,
        };
    }

    pub(super) fn toggle_mouse(&mut self) {
        self.mouse = !self.mouse;
        self.out.push(Command::Mouse(self.mouse));
        let text = if self.mouse {
            "mouse wheel scrolling on; F2 gives the mouse back for selecting text"
        } else {
            "mouse wheel scrolling off; the terminal selects text again"
        };
        self.hint = Some((SafeText::new(text), false));
    }

    pub(super) fn switch(&mut self, index: usize) {
        if self.view.switch(index) {
            self.untitle_if_seen();
        }
    }

    /// WeeChat's Alt-A: the next buffer after this one (going round) with a mention or,
    /// failing that, with unread messages.
    fn next_active(&mut self) {
        let all = self.view.buffers().all();
        let current = self.view.buffers().current_index();
        let after = (1..all.len()).map(|step| (current + step) % all.len());
        let mentioned = after.clone().find(|&i| all[i].mentioned);
        match mentioned.or_else(|| after.clone().find(|&i| all[i].unread > 0)) {
            Some(index) => self.switch(index),
            None => self.hint = Some((SafeText::new("no buffer with activity"), false)),
        }
    }

    /// Puts the terminal's title back once no buffer holds an unseen mention.
    pub(super) fn untitle_if_seen(&mut self) {
        if self.titled && !self.view.buffers().all().iter().any(|b| b.mentioned) {
            self.titled = false;
            self.out.push(Command::Title(None));
        }
    }

    /// Moves the search to the next match, older or newer than the current one.
    pub(super) fn search_step(&mut self, older: bool) {
        if let Err(reason) = self.view.search_step(older) {
            self.error_hint(reason);
        }
    }

    /// Pasted text: one line is inserted for editing; several wait for a one-key
    /// confirmation, then go to the current buffer one message each (never as commands).
    pub(super) fn on_paste(&mut self, text: &str) {
        self.input_bar.stop_completing();
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
            self.input_bar.insert(&clean);
            return;
        }
        let label = self.view.buffers().current().id.label();
        if self.view.buffers().current().id.recipient().is_none() {
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
        self.modes.ask(Prompt::Paste(non_empty));
    }

    pub(super) fn send_paste(&mut self, lines: Vec<String>, clock: Clock) {
        let index = self.view.buffers().current_index();
        let Some(to) = self.view.buffers().current().id.recipient() else {
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

    /// The names Tab offers: for a command on a member (`/op`, `/kick`, ...) the members
    /// of its room, the one named or the one shown; otherwise everyone online and the
    /// members of the room shown. Never our own name.
    fn completion_names(&self) -> BTreeSet<&str> {
        let members = |index: usize| self.view.buffers().all()[index].room.members().iter();
        let names: Vec<&UserName> = match self.member_command_room() {
            Some(index) => members(index).collect(),
            None => self
                .roster
                .iter()
                .chain(members(self.view.buffers().current_index()))
                .collect(),
        };
        names
            .into_iter()
            .filter(|n| n.folded() != self.folded_name)
            .map(UserName::as_str)
            .collect()
    }

    /// The buffer of the room a member command in the input acts on, if it is one.
    fn member_command_room(&self) -> Option<usize> {
        let mut words = self
            .input_bar
            .line()
            .as_str()
            .strip_prefix('/')?
            .split_whitespace();
        let command = words.next()?.to_lowercase();
        if !commands::MEMBER_COMMANDS.contains(&command.as_str()) {
            return None;
        }
        let named = words
            .next()
            .filter(|word| word.starts_with('#'))
            .and_then(|word| RoomName::parse(word).ok());
        named
            .or_else(|| self.current_room())
            .and_then(|room| self.view.buffers().find(&BufferId::Room(room)))
    }

    /// Tab with no completion under way: the names and rooms there are to complete.
    fn complete(&mut self) -> Outcome {
        let names = self.completion_names();
        let rooms: BTreeSet<String> = self
            .known_rooms
            .iter()
            .map(ToString::to_string)
            .chain(
                self.view
                    .buffers()
                    .all()
                    .iter()
                    .filter_map(|b| match &b.id {
                        BufferId::Room(room) => Some(room.to_string()),
                        _ => None,
                    }),
            )
            .collect();
        let names: Vec<String> = names.into_iter().map(str::to_owned).collect();
        self.input_bar.complete(
            names.iter().map(String::as_str),
            rooms.iter().map(String::as_str),
        )
    }
}
