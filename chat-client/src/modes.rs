//! [`Modes`]: the states that take the keyboard from the normal keys, besides the input
//! bar's reverse search: the help overlay, and a question waiting for one key (send a
//! paste? quit anyway?). Each looks keys up in its own table in [`crate::keys`]. It knows
//! no App: the app asks it first and acts on its [`Answer`]. Data flows one way, app →
//! modes.

use crossterm::event::KeyEvent;
use ratatui::layout::Size;

use crate::keys::{self, HelpAction, PasteAction, QuitAction};
use crate::layout;

/// A question waiting for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Send these pasted lines to the current buffer?
    Paste(Vec<String>),
    /// Ctrl-C with a typed line, or `/quit` with lines not sent: quit anyway?
    Quit,
}

/// What a question's answer asks of the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// No question took the key: the normal keys handle it.
    Pass,
    /// The question stays; the key is spent.
    Kept,
    /// Send these pasted lines.
    SendPaste(Vec<String>),
    /// Do not send the paste.
    PasteCancelled,
    /// Quit.
    Quit,
}

/// The help overlay and the question, each shown or not.
#[derive(Debug, Default)]
pub struct Modes {
    /// The help's scroll position, while it is shown.
    help: Option<usize>,
    prompt: Option<Prompt>,
}

impl Modes {
    /// The help overlay's scroll position, when shown.
    pub fn help(&self) -> Option<usize> {
        self.help
    }

    /// Shows the help from its top.
    pub fn open_help(&mut self) {
        self.help = Some(0);
    }

    /// Asks `prompt`, replacing any question before it.
    pub fn ask(&mut self, prompt: Prompt) {
        self.prompt = Some(prompt);
    }

    /// A key while the help is shown on a terminal of `size`, looked up in [`keys::HELP`].
    /// Returns whether the help took it (it takes every key while shown).
    pub fn help_key(&mut self, key: KeyEvent, size: Size) -> bool {
        let Some(scroll) = self.help else {
            return false;
        };
        let page = usize::from(size.height.saturating_sub(4)).max(1);
        self.help = match keys::HELP.action(key) {
            Some(HelpAction::Close) => None,
            Some(HelpAction::Up) => Some(scroll.saturating_sub(1)),
            Some(HelpAction::Down) => Some(scroll + 1),
            Some(HelpAction::PageUp) => Some(scroll.saturating_sub(page)),
            Some(HelpAction::PageDown) => Some(scroll + page),
            Some(HelpAction::Top) => Some(0),
            None => Some(scroll),
        }
        .map(|s| s.min(layout::help_max_scroll(size)));
        true
    }

    /// A key while a question may be waiting, looked up in [`keys::PASTE_PROMPT`] or
    /// [`keys::QUIT_PROMPT`]. The paste question keeps every key; any key but the one
    /// that quits drops the quit question and passes on, doing what it always does.
    pub fn prompt_key(&mut self, key: KeyEvent) -> Answer {
        match self.prompt.take() {
            Some(Prompt::Paste(lines)) => match keys::PASTE_PROMPT.action(key) {
                Some(PasteAction::Send) => Answer::SendPaste(lines),
                Some(PasteAction::Cancel) => Answer::PasteCancelled,
                None => {
                    self.prompt = Some(Prompt::Paste(lines));
                    Answer::Kept
                }
            },
            Some(Prompt::Quit) if keys::QUIT_PROMPT.action(key) == Some(QuitAction::Quit) => {
                Answer::Quit
            }
            Some(Prompt::Quit) | None => Answer::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::{KeyCode, KeyModifiers};

    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn the_paste_question_keeps_other_keys_and_the_quit_question_passes_them() {
        let mut modes = Modes::default();
        let x = key(KeyCode::Char('x'), KeyModifiers::NONE);
        assert_eq!(modes.prompt_key(x), Answer::Pass, "no question");
        modes.ask(Prompt::Paste(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(modes.prompt_key(x), Answer::Kept);
        assert_eq!(
            modes.prompt_key(key(KeyCode::Enter, KeyModifiers::NONE)),
            Answer::SendPaste(vec!["a".to_owned(), "b".to_owned()])
        );
        modes.ask(Prompt::Quit);
        assert_eq!(modes.prompt_key(x), Answer::Pass);
        assert_eq!(modes.prompt_key(x), Answer::Pass, "the question went");
        modes.ask(Prompt::Quit);
        let ctrl_c = key(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(modes.prompt_key(ctrl_c), Answer::Quit);
    }

    #[test]
    fn the_help_takes_every_key_while_shown() {
        let mut modes = Modes::default();
        let size = Size::new(40, 12);
        let down = key(KeyCode::Down, KeyModifiers::NONE);
        assert!(!modes.help_key(down, size));
        modes.open_help();
        assert!(modes.help_key(down, size));
        assert_eq!(modes.help(), Some(1));
        assert!(modes.help_key(key(KeyCode::Char('x'), KeyModifiers::NONE), size));
        assert_eq!(modes.help(), Some(1));
        assert!(modes.help_key(key(KeyCode::Char('q'), KeyModifiers::NONE), size));
        assert_eq!(modes.help(), None);
    }
}
