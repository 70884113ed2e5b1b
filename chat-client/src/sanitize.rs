//! Making untrusted text safe to draw. Whatever a server or another user sends, nothing
//! that reaches the terminal can be a control character, an escape sequence, or a bidi
//! control that reorders what is drawn around it. Such characters are shown escaped
//! (`\u{1b}`), so a forgery is visible rather than silently dropped.

use std::borrow::Cow;
use std::fmt::Write;

/// `text` with every unsafe character replaced by a visible escape and tabs by a space.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(' '),
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// C0, DEL and C1 controls (ESC, CSI, OSC, BEL, `\r`, backspace...), bidi embeddings,
/// overrides, isolates and marks, and the line and paragraph separators. Zero-width
/// joiners and variation selectors stay: emoji need them and they cannot move text.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_ordinary_text_alone() {
        for text in ["hello", "你好, 世界", "👨‍👩‍👧 ❤️", "Ørjan"] {
            assert!(matches!(sanitize(text), Cow::Borrowed(t) if t == text));
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
            ("a\tb", "a b"),
            ("nul\0", "nul\\u{0}"),
        ];
        for (raw, want) in cases {
            assert_eq!(sanitize(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn output_never_contains_a_control_character() {
        let all: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        assert!(!sanitize(&all).chars().any(needs_escape));
    }
}
