//! [`InputLine`]: the edit buffer under the messages. The cursor moves by grapheme
//! cluster (so `é` as `e` + U+0301, or an emoji with modifiers, is one step) and is drawn at
//! the text's display width (so a CJK character is two cells).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// One line of text being edited, with a cursor.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InputLine {
    text: String,
    /// Byte offset of the cursor; always on a grapheme boundary.
    cursor: usize,
}

impl InputLine {
    /// The text being edited.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether there is no text.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// The cursor's byte offset into [`Self::as_str`].
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Display width of the text before the cursor: the cursor's column.
    pub fn cursor_width(&self) -> usize {
        self.text[..self.cursor].width()
    }

    /// Replaces the text and puts the cursor at its end.
    pub fn set(&mut self, text: String) {
        self.cursor = text.len();
        self.text = text;
    }

    /// Takes the text out, leaving the line empty.
    pub fn take(&mut self) -> String {
        self.cursor = 0;
        std::mem::take(&mut self.text)
    }

    /// Inserts `s` at the cursor and moves the cursor after it.
    pub fn insert_str(&mut self, s: &str) {
        self.text.insert_str(self.cursor, s);
        self.cursor += s.len();
        // A combining mark typed after a letter joins its cluster; stay on a boundary.
        self.cursor = self.boundary_at_or_after(self.cursor);
    }

    /// Replaces the text between byte offsets `start` and the cursor with `s`.
    pub fn replace_before_cursor(&mut self, start: usize, s: &str) {
        self.text.replace_range(start..self.cursor, s);
        self.cursor = start + s.len();
    }

    /// Applies an editing key; returns whether the key was one.
    pub fn handle_key(&mut self, key: KeyEvent) -> bool {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Char('a') if ctrl => self.cursor = 0,
            KeyCode::Char('e') if ctrl => self.cursor = self.text.len(),
            KeyCode::Char('w') if ctrl => self.delete_word_before(),
            KeyCode::Char('u') if ctrl => {
                self.text.replace_range(..self.cursor, "");
                self.cursor = 0;
            }
            KeyCode::Char('k') if ctrl => self.text.truncate(self.cursor),
            KeyCode::Char(c) if !ctrl && !c.is_control() => {
                let mut buf = [0; 4];
                self.insert_str(c.encode_utf8(&mut buf));
            }
            KeyCode::Left => self.cursor = self.prev_boundary(),
            KeyCode::Right => self.cursor = self.next_boundary(),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.text.len(),
            KeyCode::Backspace => {
                let start = self.prev_boundary();
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            KeyCode::Delete => {
                let end = self.next_boundary();
                self.text.replace_range(self.cursor..end, "");
            }
            _ => return false,
        }
        true
    }

    /// Deletes back to the start of the word before the cursor, like a shell's Ctrl-W.
    fn delete_word_before(&mut self) {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end();
        let start = trimmed.rfind(char::is_whitespace).map_or(0, |i| {
            i + trimmed[i..].chars().next().map_or(1, char::len_utf8)
        });
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    fn prev_boundary(&self) -> usize {
        self.text[..self.cursor]
            .grapheme_indices(true)
            .next_back()
            .map_or(0, |(i, _)| i)
    }

    fn next_boundary(&self) -> usize {
        self.text[self.cursor..]
            .graphemes(true)
            .next()
            .map_or(self.cursor, |g| self.cursor + g.len())
    }

    fn boundary_at_or_after(&self, offset: usize) -> usize {
        self.text
            .grapheme_indices(true)
            .map(|(i, g)| i + g.len())
            .chain(std::iter::once(0))
            .filter(|&end| end >= offset)
            .min()
            .unwrap_or(self.text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(s: &str) -> InputLine {
        let mut line = InputLine::default();
        for c in s.chars() {
            assert!(line.handle_key(key(KeyCode::Char(c))));
        }
        line
    }

    #[test]
    fn editing_in_the_middle_of_wide_characters_keeps_the_cursor_right() {
        let mut line = typed("张三你好");
        assert_eq!(line.cursor_width(), 8);
        line.handle_key(key(KeyCode::Left));
        line.handle_key(key(KeyCode::Left));
        assert_eq!(line.cursor_width(), 4);
        line.handle_key(key(KeyCode::Char('，')));
        assert_eq!(line.as_str(), "张三，你好");
        assert_eq!(line.cursor_width(), 6);
        line.handle_key(key(KeyCode::Backspace));
        line.handle_key(key(KeyCode::Backspace));
        assert_eq!(line.as_str(), "张你好");
        assert_eq!(line.cursor_width(), 2);
        line.handle_key(key(KeyCode::Delete));
        assert_eq!(line.as_str(), "张好");
        line.handle_key(key(KeyCode::End));
        assert_eq!(line.cursor_width(), 4);
    }

    #[test]
    fn a_grapheme_cluster_is_one_step() {
        let mut line = typed("ae\u{301}");
        assert_eq!(
            line.cursor(),
            line.as_str().len(),
            "the combining mark joined its letter"
        );
        line.handle_key(key(KeyCode::Left));
        assert_eq!(line.cursor(), 1);
        line.handle_key(key(KeyCode::End));
        line.insert_str("👍🏽");
        line.handle_key(key(KeyCode::Backspace));
        assert_eq!(line.as_str(), "ae\u{301}");
        line.handle_key(key(KeyCode::Backspace));
        assert_eq!(line.as_str(), "a");
    }

    #[test]
    fn shell_keys_move_and_delete() {
        let mut line = typed("hello big world");
        line.handle_key(ctrl('w'));
        assert_eq!(line.as_str(), "hello big ");
        line.handle_key(ctrl('w'));
        assert_eq!(line.as_str(), "hello ");
        line.handle_key(ctrl('a'));
        assert_eq!(line.cursor(), 0);
        line.handle_key(key(KeyCode::Char('>')));
        line.handle_key(ctrl('e'));
        assert_eq!(line.as_str(), ">hello ");
        line.handle_key(key(KeyCode::Left));
        line.handle_key(ctrl('u'));
        assert_eq!((line.as_str(), line.cursor()), (" ", 0));
        line.handle_key(key(KeyCode::Home));
        line.handle_key(ctrl('k'));
        assert!(line.is_empty());
    }

    #[test]
    fn keys_at_the_edges_do_nothing() {
        let mut line = InputLine::default();
        for code in [
            KeyCode::Left,
            KeyCode::Right,
            KeyCode::Backspace,
            KeyCode::Delete,
        ] {
            line.handle_key(key(code));
        }
        line.handle_key(ctrl('w'));
        assert_eq!((line.as_str(), line.cursor()), ("", 0));
        assert!(!line.handle_key(key(KeyCode::F(5))));
    }

    #[test]
    fn take_and_set_move_the_cursor() {
        let mut line = typed("abc");
        assert_eq!(line.take(), "abc");
        assert_eq!(line.cursor(), 0);
        line.set("张三".into());
        assert_eq!(line.cursor_width(), 4);
        line.handle_key(key(KeyCode::Left));
        line.replace_before_cursor(0, "李四李");
        assert_eq!(line.as_str(), "李四李三");
    }
}
