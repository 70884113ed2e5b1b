//! [`InputBar`]: the line under the messages and what works on it alone: editing, the
//! lines sent before (↑/↓ and the Ctrl-R reverse search) and Tab completion. It knows no
//! buffer and no connection: the app hands it keys and, when Tab starts a completion, the
//! names and rooms there are; it answers with an [`Outcome`] and the app reads the line
//! back. Data flows one way, app → bar.

use crossterm::event::KeyEvent;

use crate::commands::COMMANDS;
use crate::complete::Completion;
use crate::history::InputHistory;
use crate::input::{Edit, InputLine};
use crate::keys::{self, Action, ReverseAction};

/// The input line with its history, completion and reverse search.
#[derive(Debug, Default)]
pub struct InputBar {
    line: InputLine,
    history: InputHistory,
    completion: Option<Completion>,
    reverse: Option<Reverse>,
}

/// A Ctrl-R search of the lines sent.
#[derive(Debug)]
struct Reverse {
    /// What was typed so far.
    query: String,
    /// Where in the input history the line found is, for Ctrl-R to look past it.
    at: Option<usize>,
    /// The input as it was before the search, put back by Esc.
    draft: String,
}

/// What the bar did with a key, for the app to carry on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not a key of the bar's: the app handles it.
    Pass,
    /// Taken; nothing to say over the input.
    Done,
    /// Taken; this quiet note goes over the input.
    Note(String),
    /// Tab with no completion under way: the app says what there is to complete with
    /// [`InputBar::complete`].
    Complete,
}

impl InputBar {
    /// The line as typed.
    pub fn line(&self) -> &InputLine {
        &self.line
    }

    /// Whether a reverse search (Ctrl-R) has the keyboard.
    pub fn searching(&self) -> bool {
        self.reverse.is_some()
    }

    /// A key of the normal mode, with its `action` from [`keys::action`]. The bar takes
    /// typed characters, editing, the history, completion, and, while the line is not
    /// empty, Ctrl-D and End; the rest it passes.
    pub fn update(&mut self, key: KeyEvent, action: Option<Action>) -> Outcome {
        if !matches!(action, Some(Action::Complete | Action::CompleteBack)) {
            self.completion = None;
        }
        let Some(action) = action else {
            return match keys::typed_char(key) {
                Some(c) => {
                    self.line.insert_char(c);
                    Outcome::Done
                }
                None => Outcome::Pass,
            };
        };
        match action {
            Action::QuitIfEmpty if !self.line.is_empty() => self.line.edit(Edit::Delete),
            Action::EndOrBottom if !self.line.is_empty() => self.line.edit(Edit::End),
            Action::Edit(edit) => self.line.edit(edit),
            Action::HistoryPrev => {
                if let Some(line) = self.history.older(self.line.as_str()) {
                    self.line.set(line);
                }
            }
            Action::HistoryNext => {
                if let Some(line) = self.history.newer() {
                    self.line.set(line);
                }
            }
            Action::Complete | Action::CompleteBack => {
                let Some(completion) = &mut self.completion else {
                    return Outcome::Complete;
                };
                completion.cycle(action == Action::Complete);
                self.line
                    .replace_before_cursor(completion.start, completion.current());
            }
            Action::ReverseSearch => {
                let draft = self.line.as_str().to_owned();
                return self.reverse_find(String::new(), None, draft);
            }
            _ => return Outcome::Pass,
        }
        Outcome::Done
    }

    /// Starts completing the word before the cursor from `names`, `rooms` and the
    /// commands, showing the first candidate in its place. Says how many there are when
    /// there are several.
    pub fn complete<'a>(
        &mut self,
        names: impl IntoIterator<Item = &'a str>,
        rooms: impl IntoIterator<Item = &'a str>,
    ) -> Outcome {
        let commands = COMMANDS.iter().map(|c| c.name);
        let Some(completion) = Completion::start(
            self.line.as_str(),
            self.line.cursor(),
            names,
            rooms,
            commands,
        ) else {
            return Outcome::Done;
        };
        // The first Tab shows the first candidate, replacing the typed word.
        self.line
            .replace_before_cursor(completion.start, completion.current());
        let count = completion.candidates.len();
        self.completion = Some(completion);
        if count > 1 {
            Outcome::Note(format!("{count} matches; Tab for the next"))
        } else {
            Outcome::Done
        }
    }

    /// A key while Ctrl-R searches the lines sent, looked up in [`keys::REVERSE`]: typing
    /// narrows, Ctrl-R goes older, Enter (or any other key) keeps the line found in the
    /// input, Esc puts back what was typed before.
    pub fn reverse_key(&mut self, key: KeyEvent) -> Outcome {
        let Some(Reverse {
            mut query,
            mut at,
            draft,
        }) = self.reverse.take()
        else {
            return Outcome::Pass;
        };
        match keys::REVERSE.action(key) {
            Some(ReverseAction::Older) => {}
            Some(ReverseAction::GiveUp) => {
                self.line.set(draft);
                return Outcome::Done;
            }
            Some(ReverseAction::DeleteBack) => {
                query.pop();
                at = None;
            }
            Some(ReverseAction::Accept) => return Outcome::Done,
            None => match keys::typed_char(key) {
                Some(c) => {
                    query.push(c);
                    at = None;
                }
                None => return Outcome::Done,
            },
        }
        self.reverse_find(query, at, draft)
    }

    /// Looks for `query` in the lines sent, older than the line at `at` if there is one,
    /// and keeps the reverse search going.
    fn reverse_find(&mut self, query: String, mut at: Option<usize>, draft: String) -> Outcome {
        // Ctrl-R again looks past the line found; a changed query starts from the newest.
        let found = self
            .history
            .search(&query, at)
            .map(|(pos, line)| (pos, line.to_owned()));
        let note = match found {
            Some((pos, line)) => {
                at = Some(pos);
                self.line.set(line);
                format!("(reverse search) \"{query}\": Ctrl-R older, Enter takes it, Esc gives up")
            }
            None => format!("(reverse search) no line with \"{query}\""),
        };
        self.reverse = Some(Reverse { query, at, draft });
        Outcome::Note(note)
    }

    /// Ends any completion under way: what comes next is not a Tab.
    pub fn stop_completing(&mut self) {
        self.completion = None;
    }

    /// Inserts pasted text at the cursor.
    pub fn insert(&mut self, text: &str) {
        self.line.insert_str(text);
    }

    /// Empties the line, returning what it held.
    pub fn take(&mut self) -> String {
        self.line.take()
    }

    /// Keeps a line sent (or refused) for ↑ and Ctrl-R to bring back.
    pub fn remember(&mut self, line: String) {
        self.history.remember(line);
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyModifiers};

    use super::*;

    fn press(bar: &mut InputBar, code: KeyCode, mods: KeyModifiers) -> Outcome {
        let key = KeyEvent::new(code, mods);
        if bar.searching() {
            bar.reverse_key(key)
        } else {
            bar.update(key, keys::action(key))
        }
    }

    fn type_text(bar: &mut InputBar, text: &str) {
        for c in text.chars() {
            press(bar, KeyCode::Char(c), KeyModifiers::NONE);
        }
    }

    #[test]
    fn reverse_search_finds_older_lines_and_esc_puts_back_the_draft() {
        let mut bar = InputBar::default();
        bar.remember("hello rust".to_owned());
        bar.remember("hello go".to_owned());
        type_text(&mut bar, "draft");
        let ctrl_r = |bar: &mut InputBar| press(bar, KeyCode::Char('r'), KeyModifiers::CONTROL);
        assert!(matches!(ctrl_r(&mut bar), Outcome::Note(_)));
        type_text(&mut bar, "hello");
        assert_eq!(bar.line().as_str(), "hello go");
        ctrl_r(&mut bar);
        assert_eq!(bar.line().as_str(), "hello rust");
        assert_eq!(
            press(&mut bar, KeyCode::Esc, KeyModifiers::NONE),
            Outcome::Done
        );
        assert!(!bar.searching());
        assert_eq!(bar.line().as_str(), "draft");
    }

    #[test]
    fn ctrl_d_and_end_are_the_apps_on_an_empty_line_only() {
        let mut bar = InputBar::default();
        let ctrl_d = |bar: &mut InputBar| press(bar, KeyCode::Char('d'), KeyModifiers::CONTROL);
        assert_eq!(ctrl_d(&mut bar), Outcome::Pass);
        assert_eq!(
            press(&mut bar, KeyCode::End, KeyModifiers::NONE),
            Outcome::Pass
        );
        type_text(&mut bar, "ab");
        press(&mut bar, KeyCode::Home, KeyModifiers::NONE);
        assert_eq!(ctrl_d(&mut bar), Outcome::Done);
        assert_eq!(bar.line().as_str(), "b");
        assert_eq!(
            press(&mut bar, KeyCode::PageUp, KeyModifiers::NONE),
            Outcome::Pass
        );
    }

    #[test]
    fn tab_asks_the_app_for_candidates_once_then_cycles() {
        let mut bar = InputBar::default();
        type_text(&mut bar, "al");
        let tab = |bar: &mut InputBar| press(bar, KeyCode::Tab, KeyModifiers::NONE);
        assert_eq!(tab(&mut bar), Outcome::Complete);
        assert_eq!(
            bar.complete(["alice", "alfred"], []),
            Outcome::Note("2 matches; Tab for the next".to_owned())
        );
        let first = bar.line().as_str().to_owned();
        assert_eq!(tab(&mut bar), Outcome::Done);
        assert_ne!(bar.line().as_str(), first);
        type_text(&mut bar, "x");
        assert_eq!(
            tab(&mut bar),
            Outcome::Complete,
            "a typed key ends the completion"
        );
    }
}
