//! The one key table: every key the client knows, what it does, and its line of help.
//! [`action`] looks keys up in it, the F1 help and `--help` are generated from it, and
//! `docs/client.md` is checked against it, so the three cannot drift apart.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::commands::COMMANDS;
use crate::input::Edit;

/// Something a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send the line, or run the command.
    Submit,
    /// Clear a prompt; with a typed line, ask before quitting; otherwise quit.
    Interrupt,
    /// Quit on an empty line; otherwise delete the character under the cursor.
    QuitIfEmpty,
    /// Show or hide the help.
    Help,
    /// Capture the mouse wheel for scrolling, or give the mouse back to the terminal.
    ToggleMouse,
    /// Jump to the next older search match.
    SearchOlder,
    /// Jump to the next newer search match.
    SearchNewer,
    /// Close the search, the help or a prompt.
    Cancel,
    /// Scroll the messages up a page.
    PageUp,
    /// Scroll the messages down a page.
    PageDown,
    /// Back to the newest message.
    Bottom,
    /// End of the line, or, on an empty line, back to the newest message.
    EndOrBottom,
    /// Switch to buffer n (1-based).
    Buffer(usize),
    /// Switch to the previous buffer.
    PrevBuffer,
    /// Switch to the next buffer.
    NextBuffer,
    /// Switch to the next buffer with activity, mentions first (WeeChat's Alt-A).
    NextActive,
    /// Search the lines sent before, newest first (readline's Ctrl-R).
    ReverseSearch,
    /// Scroll the user list up.
    NicksUp,
    /// Scroll the user list down.
    NicksDown,
    /// The previous line from the input history.
    HistoryPrev,
    /// The next line from the input history.
    HistoryNext,
    /// Complete a name, room or command; again for the next candidate.
    Complete,
    /// Back to the previous completion candidate.
    CompleteBack,
    /// Draw the whole screen again.
    Redraw,
    /// An editing key for the input line.
    Edit(Edit),
}

/// One key: a code and the modifiers held with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    code: KeyCode,
    mods: KeyModifiers,
}

const fn plain(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
    }
}

const fn ctrl(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::CONTROL,
    }
}

const fn alt(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::ALT,
    }
}

const fn shift(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::SHIFT,
    }
}

/// A row of the table: the keys, what they do, and how the help names and explains them.
#[derive(Debug)]
pub struct Binding {
    /// The keys, any of which does it.
    pub keys: &'static [Key],
    /// What they do.
    pub action: Action,
    /// The keys as the help shows them.
    pub label: &'static str,
    /// One line of help.
    pub help: &'static str,
}

use Action as A;
use KeyCode as K;

/// Every key, in the order the help lists them.
#[rustfmt::skip]
pub const BINDINGS: &[Binding] = &[
    Binding { keys: &[plain(K::Enter)], action: A::Submit, label: "Enter", help: "send the line to the current buffer, or run the /command" },
    Binding { keys: &[alt(K::Char('1'))], action: A::Buffer(1), label: "Alt-1..9", help: "switch to buffer 1..9 (the numbers in the buffer bar)" },
    Binding { keys: &[alt(K::Left), ctrl(K::Char('p'))], action: A::PrevBuffer, label: "Alt-← Ctrl-P", help: "previous buffer" },
    Binding { keys: &[alt(K::Right), ctrl(K::Char('n'))], action: A::NextBuffer, label: "Alt-→ Ctrl-N", help: "next buffer" },
    Binding { keys: &[alt(K::Char('a'))], action: A::NextActive, label: "Alt-A", help: "next buffer with activity, mentions first" },
    Binding { keys: &[plain(K::PageUp)], action: A::PageUp, label: "PgUp", help: "scroll the messages up a page; at the top, older ones" },
    Binding { keys: &[plain(K::PageDown)], action: A::PageDown, label: "PgDn", help: "scroll the messages down a page" },
    Binding { keys: &[ctrl(K::End)], action: A::Bottom, label: "Ctrl-End", help: "back to the newest message (End too, on an empty line)" },
    Binding { keys: &[alt(K::Up), alt(K::Down)], action: A::NicksUp, label: "Alt-↑ Alt-↓", help: "scroll the user list" },
    Binding { keys: &[plain(K::Tab)], action: A::Complete, label: "Tab", help: "complete a name, #room or /command; again for the next one" },
    Binding { keys: &[plain(K::BackTab)], action: A::CompleteBack, label: "Shift-Tab", help: "the previous completion" },
    Binding { keys: &[plain(K::Up)], action: A::HistoryPrev, label: "↑", help: "the previous line you sent" },
    Binding { keys: &[plain(K::Down)], action: A::HistoryNext, label: "↓", help: "the next line you sent" },
    Binding { keys: &[plain(K::Left)], action: A::Edit(Edit::Left), label: "←", help: "cursor left" },
    Binding { keys: &[plain(K::Right)], action: A::Edit(Edit::Right), label: "→", help: "cursor right" },
    Binding { keys: &[ctrl(K::Left), alt(K::Char('b'))], action: A::Edit(Edit::WordLeft), label: "Ctrl-← Alt-b", help: "a word left" },
    Binding { keys: &[ctrl(K::Right), alt(K::Char('f'))], action: A::Edit(Edit::WordRight), label: "Ctrl-→ Alt-f", help: "a word right" },
    Binding { keys: &[plain(K::Home), ctrl(K::Char('a'))], action: A::Edit(Edit::Home), label: "Home Ctrl-A", help: "start of the line" },
    Binding { keys: &[plain(K::End)], action: A::EndOrBottom, label: "End", help: "end of the line; on an empty line, the newest message" },
    Binding { keys: &[ctrl(K::Char('e'))], action: A::Edit(Edit::End), label: "Ctrl-E", help: "end of the line" },
    Binding { keys: &[plain(K::Backspace)], action: A::Edit(Edit::Backspace), label: "Backspace", help: "delete before the cursor" },
    Binding { keys: &[plain(K::Delete)], action: A::Edit(Edit::Delete), label: "Delete", help: "delete under the cursor" },
    Binding { keys: &[ctrl(K::Char('w'))], action: A::Edit(Edit::CutWordBefore), label: "Ctrl-W", help: "cut the word before the cursor" },
    Binding { keys: &[alt(K::Backspace), ctrl(K::Backspace)], action: A::Edit(Edit::CutWordBack), label: "Alt-Backspace", help: "cut back to the start of the word" },
    Binding { keys: &[alt(K::Char('d'))], action: A::Edit(Edit::CutWordAfter), label: "Alt-d", help: "cut to the end of the word" },
    Binding { keys: &[ctrl(K::Char('u'))], action: A::Edit(Edit::CutToStart), label: "Ctrl-U", help: "cut to the start of the line" },
    Binding { keys: &[ctrl(K::Char('k'))], action: A::Edit(Edit::CutToEnd), label: "Ctrl-K", help: "cut to the end of the line" },
    Binding { keys: &[ctrl(K::Char('y'))], action: A::Edit(Edit::Yank), label: "Ctrl-Y", help: "paste what was cut last" },
    Binding { keys: &[ctrl(K::Char('r'))], action: A::ReverseSearch, label: "Ctrl-R", help: "search the lines you sent (again: older; Esc: give up)" },
    Binding { keys: &[plain(K::F(3))], action: A::SearchOlder, label: "F3", help: "next older /search match" },
    // xterm and tmux send Shift-F3 as `ESC [1;2R`, the bytes of a cursor position
    // report, which crossterm keeps from the event stream: F4 is the key that works there.
    Binding { keys: &[plain(K::F(4)), shift(K::F(3))], action: A::SearchNewer, label: "F4 Shift-F3", help: "next newer /search match" },
    Binding { keys: &[plain(K::Esc)], action: A::Cancel, label: "Esc", help: "close the search, the help or a question" },
    Binding { keys: &[plain(K::F(2))], action: A::ToggleMouse, label: "F2", help: "mouse wheel scrolling on/off (off keeps the terminal's selection)" },
    Binding { keys: &[ctrl(K::Char('l'))], action: A::Redraw, label: "Ctrl-L", help: "redraw the screen" },
    Binding { keys: &[plain(K::F(1))], action: A::Help, label: "F1", help: "this help (↑/↓/PgUp/PgDn scroll it, Esc closes)" },
    Binding { keys: &[ctrl(K::Char('c'))], action: A::Interrupt, label: "Ctrl-C", help: "quit; with a typed line, press it twice" },
    Binding { keys: &[ctrl(K::Char('d'))], action: A::QuitIfEmpty, label: "Ctrl-D", help: "quit on an empty line" },
];

/// The help: every key from the key table, then every command from the command table.
pub fn help_lines() -> Vec<String> {
    let key_width = BINDINGS
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let command_width = COMMANDS
        .iter()
        .map(|c| c.name.len() + c.args.len() + 2)
        .max()
        .unwrap_or(0);
    let mut lines = vec!["Keys".to_owned()];
    for binding in BINDINGS {
        let pad = key_width - binding.label.chars().count();
        lines.push(format!(
            "  {}{}  {}",
            binding.label,
            " ".repeat(pad),
            binding.help
        ));
    }
    lines.push(String::new());
    lines.push("Commands (typed text goes to the current buffer)".to_owned());
    for command in COMMANDS {
        let usage = format!("/{} {}", command.name, command.args);
        let aliases: String = command
            .aliases
            .iter()
            .map(|a| format!(" (or /{a})"))
            .collect();
        lines.push(format!(
            "  {usage:command_width$}  {}{aliases}",
            command.help
        ));
    }
    let slash = "//text";
    lines.push(format!(
        "  {slash:command_width$}  send a line that starts with /"
    ));
    lines
}

/// What `key` does, if anything. Typed characters are not in the table: they insert
/// themselves (see [`typed_char`]).
pub fn action(key: KeyEvent) -> Option<Action> {
    let mut mods =
        key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
    let mut code = key.code;
    match code {
        // Shift only chose the character (or is implied, as with BackTab).
        K::Char(c) => {
            mods.remove(KeyModifiers::SHIFT);
            code = K::Char(c.to_ascii_lowercase());
        }
        K::BackTab => mods.remove(KeyModifiers::SHIFT),
        _ => {}
    }
    if mods == KeyModifiers::ALT {
        match code {
            K::Char(c @ '1'..='9') => return Some(A::Buffer(usize::from(c as u8 - b'0'))),
            K::Down => return Some(A::NicksDown),
            _ => {}
        }
    }
    let wanted = Key { code, mods };
    BINDINGS
        .iter()
        .find(|b| b.keys.contains(&wanted))
        .map(|b| b.action)
}

/// The character a key types, if it types one.
pub fn typed_char(key: KeyEvent) -> Option<char> {
    match key.code {
        K::Char(c)
            if !key
                .modifiers
                .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                && !c.is_control() =>
        {
            Some(c)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, mods: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, mods)
    }

    #[test]
    fn readline_keys_are_word_moves_not_letters() {
        let cases = [
            (
                key(K::Char('b'), KeyModifiers::ALT),
                A::Edit(Edit::WordLeft),
            ),
            (
                key(K::Char('f'), KeyModifiers::ALT),
                A::Edit(Edit::WordRight),
            ),
            (
                key(K::Char('d'), KeyModifiers::ALT),
                A::Edit(Edit::CutWordAfter),
            ),
            (
                key(K::Backspace, KeyModifiers::ALT),
                A::Edit(Edit::CutWordBack),
            ),
            (key(K::Left, KeyModifiers::CONTROL), A::Edit(Edit::WordLeft)),
            (
                key(K::Right, KeyModifiers::CONTROL),
                A::Edit(Edit::WordRight),
            ),
            (
                key(K::Char('y'), KeyModifiers::CONTROL),
                A::Edit(Edit::Yank),
            ),
            (key(K::Left, KeyModifiers::NONE), A::Edit(Edit::Left)),
        ];
        for (k, want) in cases {
            assert_eq!(action(k), Some(want), "{k:?}");
            assert_eq!(typed_char(k), None, "{k:?} types nothing");
        }
    }

    #[test]
    fn buffers_and_letters() {
        assert_eq!(
            action(key(K::Char('3'), KeyModifiers::ALT)),
            Some(A::Buffer(3))
        );
        assert_eq!(action(key(K::Left, KeyModifiers::ALT)), Some(A::PrevBuffer));
        assert_eq!(
            action(key(
                K::Char('N'),
                KeyModifiers::CONTROL | KeyModifiers::SHIFT
            )),
            Some(A::NextBuffer)
        );
        assert_eq!(
            action(key(K::BackTab, KeyModifiers::SHIFT)),
            Some(A::CompleteBack)
        );
        assert_eq!(
            action(key(K::F(3), KeyModifiers::SHIFT)),
            Some(A::SearchNewer)
        );
        // Issue 21, defect 14: Shift-F3 never arrives from xterm or tmux.
        assert_eq!(
            action(key(K::F(4), KeyModifiers::NONE)),
            Some(A::SearchNewer)
        );
        assert_eq!(action(key(K::Char('B'), KeyModifiers::SHIFT)), None);
        assert_eq!(
            typed_char(key(K::Char('B'), KeyModifiers::SHIFT)),
            Some('B')
        );
        assert_eq!(
            typed_char(key(K::Char('字'), KeyModifiers::NONE)),
            Some('字')
        );
    }

    #[test]
    fn docs_client_md_lists_every_key_and_command() {
        // Tables escape | as \|.
        let doc = include_str!("../../docs/client.md").replace("\\|", "|");
        for binding in BINDINGS {
            assert!(
                doc.contains(binding.label),
                "docs/client.md lacks the key {}",
                binding.label
            );
        }
        for command in COMMANDS {
            let usage = format!("/{} {}", command.name, command.args);
            assert!(
                doc.contains(usage.trim_end()),
                "docs/client.md lacks {usage}"
            );
        }
    }

    #[test]
    fn every_binding_is_reachable() {
        for binding in BINDINGS {
            for k in binding.keys {
                let found = action(KeyEvent::new(k.code, k.mods));
                assert!(found.is_some(), "{k:?}");
            }
        }
    }
}
