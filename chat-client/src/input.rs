//! [`InputLine`]: the edit buffer under the messages. The cursor moves by grapheme
//! cluster (so `é` as `e` + U+0301, or an emoji with modifiers, is one step) and is drawn at
//! the width the text is drawn with ([`SafeText`]), so a CJK character is two cells and a
//! tab four. Readline's word moves and cuts, with Ctrl-Y to paste the last cut.

use unicode_segmentation::UnicodeSegmentation;

use crate::sanitize::SafeText;

/// Editing keys, applied by [`InputLine::edit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edit {
    /// One grapheme left.
    Left,
    /// One grapheme right.
    Right,
    /// One word left.
    WordLeft,
    /// One word right.
    WordRight,
    /// To the start of the line.
    Home,
    /// To the end of the line.
    End,
    /// Delete the grapheme before the cursor.
    Backspace,
    /// Delete the grapheme under the cursor.
    Delete,
    /// Cut the word before the cursor (up to whitespace).
    CutWordBefore,
    /// Cut the word before the cursor (up to punctuation too).
    CutWordBack,
    /// Cut the word after the cursor.
    CutWordAfter,
    /// Cut to the start of the line.
    CutToStart,
    /// Cut to the end of the line.
    CutToEnd,
    /// Paste the last cut text.
    Yank,
}

/// One line of text being edited, with a cursor and the last text cut from it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InputLine {
    text: String,
    /// Byte offset of the cursor; always on a grapheme boundary.
    cursor: usize,
    /// What the last cut removed, for Ctrl-Y.
    cut: String,
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

    /// The cursor's column: the drawn width of the text before it.
    pub fn cursor_width(&self) -> usize {
        SafeText::new(&self.text[..self.cursor]).width()
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

    /// Inserts one typed character.
    pub fn insert_char(&mut self, c: char) {
        let mut buf = [0; 4];
        self.insert_str(c.encode_utf8(&mut buf));
    }

    /// Replaces the text between byte offsets `start` and the cursor with `s`.
    pub fn replace_before_cursor(&mut self, start: usize, s: &str) {
        self.text.replace_range(start..self.cursor, s);
        self.cursor = start + s.len();
    }

    /// Applies an editing key.
    pub fn edit(&mut self, edit: Edit) {
        match edit {
            Edit::Left => self.cursor = self.prev_boundary(),
            Edit::Right => self.cursor = self.next_boundary(),
            Edit::WordLeft => self.cursor = self.word_start_before(char::is_alphanumeric),
            Edit::WordRight => self.cursor = self.word_end_after(),
            Edit::Home => self.cursor = 0,
            Edit::End => self.cursor = self.text.len(),
            Edit::Backspace => {
                let start = self.prev_boundary();
                self.text.replace_range(start..self.cursor, "");
                self.cursor = start;
            }
            Edit::Delete => {
                let end = self.next_boundary();
                self.text.replace_range(self.cursor..end, "");
            }
            Edit::CutWordBefore => {
                self.cut(self.word_start_before(|c| !c.is_whitespace()), self.cursor)
            }
            Edit::CutWordBack => {
                self.cut(self.word_start_before(char::is_alphanumeric), self.cursor)
            }
            Edit::CutWordAfter => self.cut(self.cursor, self.word_end_after()),
            Edit::CutToStart => self.cut(0, self.cursor),
            Edit::CutToEnd => self.cut(self.cursor, self.text.len()),
            Edit::Yank => {
                let cut = self.cut.clone();
                self.insert_str(&cut);
            }
        }
    }

    /// Removes `start..end` into the cut buffer and leaves the cursor at `start`.
    fn cut(&mut self, start: usize, end: usize) {
        if start < end {
            self.cut = self.text[start..end].to_owned();
            self.text.replace_range(start..end, "");
        }
        self.cursor = start;
    }

    /// The start of the word before the cursor, skipping what is not `in_word` first.
    fn word_start_before(&self, in_word: impl Fn(char) -> bool) -> usize {
        let before = &self.text[..self.cursor];
        let trimmed = before.trim_end_matches(|c| !in_word(c));
        trimmed
            .char_indices()
            .rev()
            .take_while(|&(_, c)| in_word(c))
            .last()
            .map_or(trimmed.len(), |(i, _)| i)
    }

    /// The end of the word after the cursor, skipping what is not part of a word first.
    fn word_end_after(&self) -> usize {
        let after = &self.text[self.cursor..];
        let skipped = after.len()
            - after
                .trim_start_matches(|c: char| !c.is_alphanumeric())
                .len();
        let word = after[skipped..]
            .char_indices()
            .find(|&(_, c)| !c.is_alphanumeric())
            .map_or(after.len() - skipped, |(i, _)| i);
        self.boundary_at_or_after(self.cursor + skipped + word)
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

    fn typed(s: &str) -> InputLine {
        let mut line = InputLine::default();
        for c in s.chars() {
            line.insert_char(c);
        }
        line
    }

    #[test]
    fn editing_in_the_middle_of_wide_characters_keeps_the_cursor_right() {
        let mut line = typed("张三你好");
        assert_eq!(line.cursor_width(), 8);
        line.edit(Edit::Left);
        line.edit(Edit::Left);
        assert_eq!(line.cursor_width(), 4);
        line.insert_char('，');
        assert_eq!(line.as_str(), "张三，你好");
        assert_eq!(line.cursor_width(), 6);
        line.edit(Edit::Backspace);
        line.edit(Edit::Backspace);
        assert_eq!(line.as_str(), "张你好");
        assert_eq!(line.cursor_width(), 2);
        line.edit(Edit::Delete);
        assert_eq!(line.as_str(), "张好");
        line.edit(Edit::End);
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
        line.edit(Edit::Left);
        assert_eq!(line.cursor(), 1);
        line.edit(Edit::End);
        line.insert_str("👍🏽");
        assert_eq!(line.cursor_width(), 2 + 2, "the skin tone kept, two cells");
        line.edit(Edit::Left);
        assert_eq!(line.cursor_width(), 2, "one step over 👍🏽");
        line.edit(Edit::End);
        line.edit(Edit::Backspace);
        assert_eq!(line.as_str(), "ae\u{301}");
        line.edit(Edit::Backspace);
        assert_eq!(line.as_str(), "a");
    }

    #[test]
    fn the_cursor_column_matches_what_is_drawn() {
        let family = "👨\u{200d}👩\u{200d}👧";
        let line = typed(&format!("a{family}\t"));
        assert_eq!(line.cursor_width(), 1 + 6 + 4);
    }

    #[test]
    fn word_moves_and_cuts_work_like_readline() {
        let mut line = typed("say hello, big world");
        line.edit(Edit::WordLeft);
        assert_eq!(&line.as_str()[line.cursor()..], "world");
        line.edit(Edit::WordLeft);
        line.edit(Edit::WordLeft);
        assert_eq!(&line.as_str()[line.cursor()..], "hello, big world");
        line.edit(Edit::WordRight);
        assert_eq!(&line.as_str()[line.cursor()..], ", big world");
        line.edit(Edit::CutWordAfter);
        assert_eq!(line.as_str(), "say hello world");
        line.edit(Edit::Home);
        line.edit(Edit::CutWordAfter);
        assert_eq!(line.as_str(), " hello world");
        line.edit(Edit::Yank);
        assert_eq!(line.as_str(), "say hello world");
        line.edit(Edit::End);
        line.edit(Edit::CutWordBack);
        assert_eq!(line.as_str(), "say hello ");
        line.edit(Edit::Home);
        line.edit(Edit::Yank);
        assert_eq!(line.as_str(), "worldsay hello ");
    }

    #[test]
    fn shell_keys_cut_and_yank() {
        let mut line = typed("hello big world");
        line.edit(Edit::CutWordBefore);
        assert_eq!(line.as_str(), "hello big ");
        line.edit(Edit::CutWordBefore);
        assert_eq!(line.as_str(), "hello ");
        line.edit(Edit::Yank);
        assert_eq!(line.as_str(), "hello big ");
        line.edit(Edit::Home);
        line.edit(Edit::CutToEnd);
        assert!(line.is_empty());
        line.edit(Edit::Yank);
        line.edit(Edit::Left);
        line.edit(Edit::CutToStart);
        assert_eq!((line.as_str(), line.cursor()), (" ", 0));
    }

    #[test]
    fn keys_at_the_edges_do_nothing() {
        let mut line = InputLine::default();
        for edit in [
            Edit::Left,
            Edit::Right,
            Edit::Backspace,
            Edit::Delete,
            Edit::WordLeft,
            Edit::WordRight,
            Edit::CutWordBefore,
            Edit::CutWordAfter,
            Edit::Yank,
        ] {
            line.edit(edit);
        }
        assert_eq!((line.as_str(), line.cursor()), ("", 0));
    }

    #[test]
    fn take_and_set_move_the_cursor() {
        let mut line = typed("abc");
        assert_eq!(line.take(), "abc");
        assert_eq!(line.cursor(), 0);
        line.set("张三".into());
        assert_eq!(line.cursor_width(), 4);
        line.edit(Edit::Left);
        line.replace_before_cursor(0, "李四李");
        assert_eq!(line.as_str(), "李四李三");
    }
}
