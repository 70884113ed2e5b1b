//! The key tables, one per mode: every key the client knows, what it does in that mode,
//! and its line of help. The app looks each key up in the table of the mode it is in
//! ([`NORMAL`] with [`SEARCH`], or [`HELP`], [`REVERSE`], [`PASTE_PROMPT`],
//! [`QUIT_PROMPT`]); the F1 help and `--help` are generated from all of them, and
//! `docs/client.md` is checked against them, so the three cannot drift apart.

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
    /// End the search.
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

/// One key: a code and the modifiers held with it, or a code with any modifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    code: KeyCode,
    mods: KeyModifiers,
    /// Matches the code whatever is held, as typed (`Y` is not `y`): the one-key answers
    /// of the modes take the key as it comes.
    any_mods: bool,
}

impl Key {
    /// Whether `key`, whose modifiers and case were normalized into `wanted`, is this key.
    fn matches(&self, key: KeyEvent, wanted: Key) -> bool {
        if self.any_mods {
            self.code == key.code
        } else {
            *self == wanted
        }
    }
}

const fn plain(code: KeyCode) -> Key {
    with(code, KeyModifiers::NONE)
}

const fn ctrl(code: KeyCode) -> Key {
    with(code, KeyModifiers::CONTROL)
}

const fn alt(code: KeyCode) -> Key {
    with(code, KeyModifiers::ALT)
}

const fn shift(code: KeyCode) -> Key {
    with(code, KeyModifiers::SHIFT)
}

const fn with(code: KeyCode, mods: KeyModifiers) -> Key {
    Key {
        code,
        mods,
        any_mods: false,
    }
}

const fn any(code: KeyCode) -> Key {
    Key {
        code,
        mods: KeyModifiers::NONE,
        any_mods: true,
    }
}

/// A row of a table: the keys, what they do, and how the help names and explains them.
#[derive(Debug)]
pub struct Binding<A: 'static> {
    /// The keys, any of which does it.
    pub keys: &'static [Key],
    /// What they do.
    pub action: A,
    /// The keys as the help shows them.
    pub label: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// The keys of one mode.
#[derive(Debug)]
pub struct Table<A: 'static> {
    /// The help's heading for the mode.
    pub title: &'static str,
    /// Its keys, in the order the help lists them; the first row that has a key wins.
    pub bindings: &'static [Binding<A>],
    /// What the keys not in the table do, for the help, when it is worth saying.
    pub other: Option<&'static str>,
}

impl<A: Copy> Table<A> {
    /// What `key` does in this mode, if it is in the table.
    pub fn action(&self, key: KeyEvent) -> Option<A> {
        let wanted = normalize(key);
        self.bindings
            .iter()
            .find(|b| b.keys.iter().any(|k| k.matches(key, wanted)))
            .map(|b| b.action)
    }

    /// The help's rows: each binding's label and help, then what other keys do.
    fn help_rows(&self) -> impl Iterator<Item = (&'static str, &'static str)> + '_ {
        self.bindings
            .iter()
            .map(|b| (b.label, b.help))
            .chain(self.other.map(|other| ("other keys", other)))
    }
}

/// The modifiers that matter, with Shift dropped where it only chose the character (or
/// is implied, as with BackTab), and letters in lower case.
fn normalize(key: KeyEvent) -> Key {
    let mut mods =
        key.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
    let mut code = key.code;
    match code {
        K::Char(c) => {
            mods.remove(KeyModifiers::SHIFT);
            code = K::Char(c.to_ascii_lowercase());
        }
        K::BackTab => mods.remove(KeyModifiers::SHIFT),
        _ => {}
    }
    with(code, mods)
}

use Action as A;
use KeyCode as K;

/// The keys when no mode below takes them: editing, sending, moving between buffers.
#[rustfmt::skip]
pub const NORMAL: Table<Action> = Table { title: "Keys", other: None, bindings: &[
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
    Binding { keys: &[plain(K::F(2))], action: A::ToggleMouse, label: "F2", help: "mouse wheel scrolling on/off (off keeps the terminal's selection)" },
    Binding { keys: &[ctrl(K::Char('l'))], action: A::Redraw, label: "Ctrl-L", help: "redraw the screen" },
    Binding { keys: &[plain(K::F(1))], action: A::Help, label: "F1", help: "this help (its own keys are below)" },
    Binding { keys: &[ctrl(K::Char('c'))], action: A::Interrupt, label: "Ctrl-C", help: "quit; with a typed line, press it twice" },
    Binding { keys: &[ctrl(K::Char('d'))], action: A::QuitIfEmpty, label: "Ctrl-D", help: "quit on an empty line" },
] };

/// The keys of a `/search`. A search leaves the keyboard to the input line, so these are
/// looked up with [`NORMAL`]; without a search, F3 and F4 say how to start one.
#[rustfmt::skip]
pub const SEARCH: Table<Action> = Table { title: "Keys for /search", other: None, bindings: &[
    Binding { keys: &[plain(K::F(3))], action: A::SearchOlder, label: "F3", help: "the next older match" },
    // xterm and tmux send Shift-F3 as `ESC [1;2R`, the bytes of a cursor position
    // report, which crossterm keeps from the event stream: F4 is the key that works there.
    Binding { keys: &[plain(K::F(4)), shift(K::F(3))], action: A::SearchNewer, label: "F4 Shift-F3", help: "the next newer match" },
    Binding { keys: &[plain(K::Esc)], action: A::Cancel, label: "Esc", help: "end the search" },
] };

/// Something a key does while the help is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelpAction {
    /// One row up.
    Up,
    /// One row down.
    Down,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// Back to the top.
    Top,
    /// Close the help.
    Close,
}

/// The keys while the help is shown; the others do nothing.
#[rustfmt::skip]
pub const HELP: Table<HelpAction> = Table { title: "Keys in this help", other: Some("nothing"), bindings: &[
    Binding { keys: &[any(K::Up)], action: HelpAction::Up, label: "↑", help: "scroll up a row" },
    Binding { keys: &[any(K::Down)], action: HelpAction::Down, label: "↓", help: "scroll down a row" },
    Binding { keys: &[any(K::PageUp)], action: HelpAction::PageUp, label: "PgUp", help: "scroll up a page" },
    Binding { keys: &[any(K::PageDown), any(K::Char(' '))], action: HelpAction::PageDown, label: "PgDn Space", help: "scroll down a page" },
    Binding { keys: &[any(K::Home)], action: HelpAction::Top, label: "Home", help: "back to the top" },
    Binding { keys: &[any(K::Esc), any(K::F(1)), any(K::Enter), any(K::Char('q')), ctrl(K::Char('c'))], action: HelpAction::Close, label: "Esc F1 Enter", help: "close the help (q and Ctrl-C too)" },
] };

/// Something a key does during a reverse search (Ctrl-R).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReverseAction {
    /// Look for an older line with the same query.
    Older,
    /// Take the last character off the query.
    DeleteBack,
    /// Keep the line found in the input and end the search.
    Accept,
    /// End the search and put back what was typed before.
    GiveUp,
}

/// The keys during a reverse search; typed characters narrow it.
#[rustfmt::skip]
pub const REVERSE: Table<ReverseAction> = Table { title: "Keys in a reverse search (Ctrl-R)", other: Some("keep the line found, as Enter does; typing narrows the search"), bindings: &[
    Binding { keys: &[ctrl(K::Char('r'))], action: ReverseAction::Older, label: "Ctrl-R", help: "an older line that matches" },
    Binding { keys: &[any(K::Backspace)], action: ReverseAction::DeleteBack, label: "Backspace", help: "take the last character off the search" },
    Binding { keys: &[any(K::Enter)], action: ReverseAction::Accept, label: "Enter", help: "keep the line found in the input, to edit or send" },
    Binding { keys: &[plain(K::Esc)], action: ReverseAction::GiveUp, label: "Esc", help: "give up and put back what you had typed" },
] };

/// An answer to "paste these lines?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasteAction {
    /// Send the lines.
    Send,
    /// Drop them.
    Cancel,
}

/// The keys while a paste of several lines waits for an answer; the others are ignored.
#[rustfmt::skip]
pub const PASTE_PROMPT: Table<PasteAction> = Table { title: "Keys when asked to send a paste", other: Some("ignored; the question stays"), bindings: &[
    Binding { keys: &[any(K::Char('y')), any(K::Char('Y')), any(K::Enter)], action: PasteAction::Send, label: "y Enter", help: "send the lines, one message each" },
    Binding { keys: &[any(K::Char('n')), any(K::Char('N')), any(K::Esc), ctrl(K::Char('c'))], action: PasteAction::Cancel, label: "n Esc Ctrl-C", help: "do not send them" },
] };

/// An answer to "quit anyway?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitAction {
    /// Quit.
    Quit,
}

/// The keys after a Ctrl-C or `/quit` that would lose something; any other key drops the
/// question and does what it does in [`NORMAL`].
#[rustfmt::skip]
pub const QUIT_PROMPT: Table<QuitAction> = Table { title: "Keys when asked before quitting", other: Some("go on: the question goes, the key does what it always does"), bindings: &[
    Binding { keys: &[ctrl(K::Char('c'))], action: QuitAction::Quit, label: "Ctrl-C", help: "quit, losing the typed line or the lines not sent" },
] };

/// The help: the keys of every mode, from the key tables, then every command from the
/// command table.
pub fn help_lines() -> Vec<String> {
    let sections: [(&str, Vec<(&str, &str)>); 6] = [
        (NORMAL.title, NORMAL.help_rows().collect()),
        (SEARCH.title, SEARCH.help_rows().collect()),
        (HELP.title, HELP.help_rows().collect()),
        (REVERSE.title, REVERSE.help_rows().collect()),
        (PASTE_PROMPT.title, PASTE_PROMPT.help_rows().collect()),
        (QUIT_PROMPT.title, QUIT_PROMPT.help_rows().collect()),
    ];
    let key_width = sections
        .iter()
        .flat_map(|(_, rows)| rows.iter().map(|(label, _)| label.chars().count()))
        .max()
        .unwrap_or(0);
    let command_width = COMMANDS
        .iter()
        .map(|c| c.name.len() + c.args.len() + 2)
        .max()
        .unwrap_or(0);
    let mut lines = Vec::new();
    for (title, rows) in sections {
        lines.push(title.to_owned());
        for (label, help) in rows {
            let pad = key_width - label.chars().count();
            lines.push(format!("  {label}{}  {help}", " ".repeat(pad)));
        }
        lines.push(String::new());
    }
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

/// What `key` does in the normal mode (with a search on or not), if anything. Typed
/// characters are not in the table: they insert themselves (see [`typed_char`]).
pub fn action(key: KeyEvent) -> Option<Action> {
    let Key { code, mods, .. } = normalize(key);
    if mods == KeyModifiers::ALT {
        match code {
            K::Char(c @ '1'..='9') => return Some(A::Buffer(usize::from(c as u8 - b'0'))),
            K::Down => return Some(A::NicksDown),
            _ => {}
        }
    }
    NORMAL.action(key).or_else(|| SEARCH.action(key))
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

    /// Every table's rows as (keys, label), for the checks that span the modes.
    fn every_row() -> Vec<(&'static [Key], &'static str)> {
        fn rows<A>(table: &Table<A>) -> impl Iterator<Item = (&'static [Key], &'static str)> + '_ {
            table.bindings.iter().map(|b| (b.keys, b.label))
        }
        rows(&NORMAL)
            .chain(rows(&SEARCH))
            .chain(rows(&HELP))
            .chain(rows(&REVERSE))
            .chain(rows(&PASTE_PROMPT))
            .chain(rows(&QUIT_PROMPT))
            .collect()
    }

    #[test]
    fn docs_client_md_lists_every_key_and_command() {
        // Tables escape | as \|.
        let doc = include_str!("../../docs/client.md").replace("\\|", "|");
        for table in [
            NORMAL.title,
            SEARCH.title,
            HELP.title,
            REVERSE.title,
            PASTE_PROMPT.title,
            QUIT_PROMPT.title,
        ] {
            assert!(
                doc.contains(table),
                "docs/client.md lacks the heading {table}"
            );
        }
        for (_, label) in every_row() {
            assert!(doc.contains(label), "docs/client.md lacks the key {label}");
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
        fn check<A: Copy + PartialEq + std::fmt::Debug>(table: &Table<A>) {
            for binding in table.bindings {
                for k in binding.keys {
                    let found = table.action(KeyEvent::new(k.code, k.mods));
                    assert_eq!(found, Some(binding.action), "{k:?} in {}", table.title);
                }
            }
        }
        for binding in NORMAL.bindings.iter().chain(SEARCH.bindings) {
            for k in binding.keys {
                let found = action(KeyEvent::new(k.code, k.mods));
                assert!(found.is_some(), "{k:?}");
            }
        }
        check(&SEARCH);
        check(&HELP);
        check(&REVERSE);
        check(&PASTE_PROMPT);
        check(&QUIT_PROMPT);
    }

    #[test]
    fn one_key_answers_take_the_key_as_it_comes() {
        let ctrl_y = key(K::Char('y'), KeyModifiers::CONTROL);
        assert_eq!(PASTE_PROMPT.action(ctrl_y), Some(PasteAction::Send));
        let shift_y = key(K::Char('Y'), KeyModifiers::SHIFT);
        assert_eq!(PASTE_PROMPT.action(shift_y), Some(PasteAction::Send));
        assert_eq!(
            PASTE_PROMPT.action(key(K::Char('x'), KeyModifiers::NONE)),
            None
        );
        // `q` closes the help, `Q` does not; Ctrl-C does, `c` does not.
        assert_eq!(HELP.action(key(K::Char('Q'), KeyModifiers::SHIFT)), None);
        assert_eq!(HELP.action(key(K::Char('c'), KeyModifiers::NONE)), None);
        assert_eq!(
            HELP.action(key(
                K::Char('C'),
                KeyModifiers::CONTROL | KeyModifiers::SHIFT
            )),
            Some(HelpAction::Close)
        );
        assert_eq!(
            REVERSE.action(key(K::Backspace, KeyModifiers::ALT)),
            Some(ReverseAction::DeleteBack)
        );
        assert_eq!(REVERSE.action(key(K::Esc, KeyModifiers::ALT)), None);
    }
}
