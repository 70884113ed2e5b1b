//! [`SafeText`]: text made safe to draw, and the only way to get some. Whatever a server or
//! another user sends (and whatever we type), nothing that reaches the terminal can be a
//! control character, an escape sequence, or a bidi control that reorders what is drawn
//! around it; such characters are shown escaped (`\u{1b}`), so a forgery is visible rather
//! than silently dropped.
//!
//! It also makes every grapheme cluster as wide on screen as ratatui thinks it is. Terminals
//! advance the cursor per code point; ratatui measures whole clusters. Where the two
//! disagree (a ZWJ family `👨‍👩‍👧` is 2 cells to ratatui and 6 to most terminals, `❤️`
//! is 2 and 1) the terminal's cursor drifts and leaves stray glyphs until a full redraw.
//! Such a cluster is drawn as its parts: the joiners, variation selectors and skin-tone
//! modifiers that glue it together are dropped, so both sides count the same cells.

use std::fmt::{self, Write};

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// A tab is drawn as this many spaces, for the sender and every receiver alike.
pub const TAB_WIDTH: usize = 4;

/// Text that is safe to draw: no controls, no bidi overrides, no tabs, and every grapheme
/// cluster exactly as wide as the sum of its characters. Only [`SafeText::new`] builds one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct SafeText(String);

impl SafeText {
    /// `text` made safe: see the module documentation.
    pub fn new(text: &str) -> Self {
        if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
            return Self(text.to_owned());
        }
        let mut escaped = String::with_capacity(text.len() + 8);
        for c in text.chars() {
            match c {
                '\t' => escaped.extend(std::iter::repeat_n(' ', TAB_WIDTH)),
                c if needs_escape(c) => {
                    let _ = write!(escaped, "\\u{{{:x}}}", u32::from(c));
                }
                c => escaped.push(c),
            }
        }
        let mut out = String::with_capacity(escaped.len());
        for grapheme in escaped.graphemes(true) {
            if consistent(grapheme) {
                out.push_str(grapheme);
            } else {
                let parts: String = grapheme.chars().filter(|&c| !is_glue(c)).collect();
                for part in parts.graphemes(true) {
                    out.push_str(if consistent(part) { part } else { "\u{fffd}" });
                }
            }
        }
        // Dropping glue can, rarely, let two neighbours form a new cluster; settle those too.
        if !out.graphemes(true).all(consistent) {
            out = out
                .graphemes(true)
                .map(|g| if consistent(g) { g } else { "\u{fffd}" })
                .collect();
        }
        Self(out)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its width in terminal cells: the sum of its clusters' widths, as ratatui lays it
    /// out and (by construction) as a terminal advances.
    pub fn width(&self) -> usize {
        self.0.graphemes(true).map(UnicodeWidthStr::width).sum()
    }
}

impl fmt::Display for SafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether ratatui's width for `grapheme` is the sum of its characters' widths, which is
/// what a terminal advances.
fn consistent(grapheme: &str) -> bool {
    grapheme.width()
        == grapheme
            .chars()
            .map(|c| c.width().unwrap_or(0))
            .sum::<usize>()
}

/// Characters that only join or restyle their neighbours: zero-width joiner, variation
/// selectors, emoji skin-tone modifiers and tag characters.
fn is_glue(c: char) -> bool {
    matches!(c, '\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}' | '\u{E0020}'..='\u{E007F}')
}

/// C0, DEL and C1 controls (ESC, CSI, OSC, BEL, `\r`, backspace...), bidi embeddings,
/// overrides, isolates and marks, and the line and paragraph separators.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in ["hello", "你好, 世界", "Ørjan", "e\u{301}", "🇨🇳", "😀"] {
            assert_eq!(SafeText::new(text).as_str(), text);
        }
    }

    #[test]
    fn escapes_everything_that_could_drive_the_terminal() {
        let cases = [
            ("\x1b]0;PWNED\x07\x1b[2J", "\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J"),
            ("\x1b]52;c;aGk=\x07", "\\u{1b}]52;c;aGk=\\u{7}"),
            ("hi\rfrom bob: forged", "hi\\u{d}from bob: forged"),
            ("abc\x08\x08\x08xyz", "abc\\u{8}\\u{8}\\u{8}xyz"),
            ("\u{9b}31m", "\\u{9b}31m"),
            ("\u{202E}evil", "\\u{202e}evil"),
            ("a\u{2066}b\u{2069}", "a\\u{2066}b\\u{2069}"),
            ("line\u{2028}break", "line\\u{2028}break"),
            ("nul\0", "nul\\u{0}"),
        ];
        for (raw, want) in cases {
            assert_eq!(SafeText::new(raw).as_str(), want, "{raw:?}");
        }
    }

    #[test]
    fn a_tab_is_the_same_spaces_for_everyone() {
        assert_eq!(SafeText::new("a\tb").as_str(), "a    b");
        assert_eq!(SafeText::new("\t").width(), TAB_WIDTH);
    }

    #[test]
    fn clusters_terminals_draw_wider_or_narrower_are_drawn_as_their_parts() {
        // Each of these is 2 cells to ratatui but a different count to a terminal.
        assert_eq!(SafeText::new("👨\u{200d}👩\u{200d}👧").as_str(), "👨👩👧");
        assert_eq!(SafeText::new("❤\u{fe0f}").as_str(), "❤");
        assert_eq!(SafeText::new("👍\u{1f3fd}").as_str(), "👍");
        assert_eq!(SafeText::new("ok 👨\u{200d}👩\u{200d}👧!").width(), 10);
    }

    fn tricky() -> impl Strategy<Value = String> {
        let pieces = prop::sample::select(vec![
            "a",
            " ",
            "\t",
            "\x1b",
            "\u{200d}",
            "\u{fe0f}",
            "\u{fe0e}",
            "\u{1f3fd}",
            "👨",
            "👩",
            "❤",
            "🇨",
            "🇳",
            "\u{301}",
            "字",
            "\u{20e3}",
            "1",
            "\u{e0067}",
            "🏴",
            "\u{202e}",
            "\u{9b}",
            "ᄀ",
            "ᅡ",
            "ᆨ",
            "\u{ad}",
            "\u{200b}",
        ]);
        prop::collection::vec(pieces, 0..24).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn every_cluster_is_as_wide_as_a_terminal_draws_it(text in tricky()) {
            let safe = SafeText::new(&text);
            for grapheme in safe.as_str().graphemes(true) {
                prop_assert!(consistent(grapheme), "{grapheme:?} in {safe:?}");
            }
            let by_char: usize = safe.as_str().chars().map(|c| c.width().unwrap_or(0)).sum();
            prop_assert_eq!(safe.width(), by_char);
            prop_assert!(!safe.as_str().chars().any(|c| needs_escape(c) || c == '\t'));
        }

        #[test]
        fn output_never_contains_a_control_character(text in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}]*") {
            prop_assert!(!SafeText::new(&text).as_str().chars().any(needs_escape));
        }
    }
}
