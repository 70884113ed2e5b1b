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
//! Such a cluster is drawn as its parts: the joiners and variation selectors that glue it
//! together are dropped, so both sides count the same cells.
//!
//! One kind of cluster is kept whole though the sum of its characters says otherwise: an
//! emoji with a skin tone (`👍🏽`, an emoji modifier sequence). Terminals that know it
//! (kitty, WezTerm, iTerm2, Windows Terminal among them) draw it as one glyph of two
//! cells, as ratatui counts it; dropping the tone, as this module once did, changed what people
//! wrote. A terminal that draws the tone as a character of its own (xterm, tmux 3.3) puts
//! it over the next two cells; ratatui moves the cursor explicitly after every wide cell,
//! so nothing after it drifts, and the view draws those two cells again after it (see
//! `ui`), so no stray swatch stays there: such a terminal shows the emoji without its tone.

use std::fmt::{self, Write};

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// A tab is drawn as this many spaces, for the sender and every receiver alike.
pub const TAB_WIDTH: usize = 4;

/// Text that is safe to draw: no controls, no bidi overrides, no tabs, and every grapheme
/// cluster exactly as wide as the sum of its characters, but for an emoji with a skin tone,
/// two cells wide. Only [`SafeText::new`] builds one.
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
            if drawable(grapheme) {
                out.push_str(grapheme);
            } else {
                let parts: String = grapheme.chars().filter(|&c| !is_glue(c)).collect();
                for part in parts.graphemes(true) {
                    out.push_str(if drawable(part) { part } else { "\u{fffd}" });
                }
            }
        }
        // Dropping glue can, rarely, let two neighbours form a new cluster; settle those too.
        if !out.graphemes(true).all(drawable) {
            out = out
                .graphemes(true)
                .map(|g| if drawable(g) { g } else { "\u{fffd}" })
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

/// Whether `grapheme` is drawn as it is: it is as wide as its characters, or it is an emoji
/// with a skin tone.
fn drawable(grapheme: &str) -> bool {
    consistent(grapheme) || is_skin_tone_emoji(grapheme)
}

/// An emoji modifier sequence: a base (`👍`) and one skin-tone modifier, which
/// unicode-width (and so ratatui) measures as the two cells such terminals draw. A tone
/// after anything else is not one, and stays as wide as its parts.
pub fn is_skin_tone_emoji(grapheme: &str) -> bool {
    let mut chars = grapheme.chars();
    matches!(
        (chars.next(), chars.next(), chars.next()),
        (Some(_), Some('\u{1F3FB}'..='\u{1F3FF}'), None)
    ) && grapheme.width() == 2
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
/// selectors and tag characters. Skin tones are not among them: a part that keeps its
/// tone is an emoji modifier sequence, drawn whole.
fn is_glue(c: char) -> bool {
    matches!(c, '\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{E0020}'..='\u{E007F}')
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
        assert_eq!(SafeText::new("ok 👨\u{200d}👩\u{200d}👧!").width(), 10);
        // A ZWJ sequence with a tone in it keeps the tone on its part.
        assert_eq!(
            SafeText::new("🧑\u{1f3fd}\u{200d}💻").as_str(),
            "🧑\u{1f3fd}💻"
        );
    }

    /// Issue 21, defect 16: `👍🏽` lost its skin tone, in the conversation and the input.
    #[test]
    fn an_emoji_keeps_its_skin_tone_and_is_two_cells_wide() {
        let thumbs = SafeText::new("nice 👍\u{1f3fd}!");
        assert_eq!(thumbs.as_str(), "nice 👍\u{1f3fd}!");
        assert_eq!(thumbs.width(), 5 + 2 + 1);
        // A tone after something that is no emoji base is a swatch of its own.
        assert_eq!(SafeText::new("a\u{1f3fd}").width(), 3);
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
            "👍",
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
            let mut by_char = 0;
            for grapheme in safe.as_str().graphemes(true) {
                prop_assert!(drawable(grapheme), "{grapheme:?} in {safe:?}");
                by_char += if is_skin_tone_emoji(grapheme) {
                    2
                } else {
                    grapheme.chars().map(|c| c.width().unwrap_or(0)).sum()
                };
            }
            prop_assert_eq!(safe.width(), by_char);
            prop_assert!(!safe.as_str().chars().any(|c| needs_escape(c) || c == '\t'));
        }

        #[test]
        fn output_never_contains_a_control_character(text in "\\PC*|[\\x00-\\x1f\\x7f-\\u{9f}]*") {
            prop_assert!(!SafeText::new(&text).as_str().chars().any(needs_escape));
        }
    }
}
