//! [`MessageText`]: the text of a message, safe to relay to other people's terminals.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use crate::ParseError;

/// Trimmed, non-empty message text with no control characters but tab.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

impl MessageText {
    /// Trims `text` and checks it is non-empty and free of control characters.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        Ok(Self(checked(text)?.to_owned()))
    }

    /// Like [`MessageText::parse`] of `buf[range]`, keeping the text in `buf`'s own
    /// buffer (moved to its front) rather than a new one.
    pub fn parse_in(mut buf: String, range: Range<usize>) -> Result<Self, ParseError> {
        let within = &buf[range.clone()];
        let text = checked(within)?;
        let start = range.start + (within.len() - within.trim_start().len());
        buf.truncate(start + text.len());
        buf.drain(..start);
        Ok(Self(buf))
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `text` trimmed, if it is non-empty and free of control characters.
fn checked(text: &str) -> Result<&str, ParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ParseError::EmptyText);
    }
    if has_forbidden_control(text) {
        return Err(ParseError::ControlCharacter);
    }
    Ok(text)
}

/// Whether `text` holds a character [`is_forbidden_control`] refuses. Every message
/// passes here, so a first pass looks only at bytes: C0 and DEL are single bytes, and
/// every C1 control (U+0080 to U+009F) starts with `0xC2` in UTF-8. Text without any of
/// those (nearly all text) needs no second, character-wise look.
fn has_forbidden_control(text: &str) -> bool {
    text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2)
        && text.chars().any(is_forbidden_control)
}

/// C0 controls other than tab, DEL and C1 controls: the characters that let a line rewrite
/// or spoof what is already on a terminal (`\r`, ESC, BEL, backspace, CSI as U+009B).
pub fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

impl fmt::Display for MessageText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for MessageText {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl AsRef<str> for MessageText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_byte_check_agrees_with_the_char_check(s in "(?s).{0,40}") {
            prop_assert_eq!(has_forbidden_control(&s), s.chars().any(is_forbidden_control));
        }

        #[test]
        fn parse_in_agrees_with_parse(s in "(?s).{0,40}", a in 0usize..40, b in 0usize..40) {
            let (a, b) = (a.min(b), a.max(b));
            if s.is_char_boundary(a.min(s.len())) && s.is_char_boundary(b.min(s.len())) {
                let range = a.min(s.len())..b.min(s.len());
                prop_assert_eq!(
                    MessageText::parse_in(s.clone(), range.clone()),
                    MessageText::parse(&s[range])
                );
            }
        }
    }

    #[test]
    fn trims_and_keeps_tabs_and_any_script() {
        assert_eq!(
            MessageText::parse("  hi there \t").unwrap().as_str(),
            "hi there"
        );
        assert_eq!(MessageText::parse("a\tb").unwrap().as_str(), "a\tb");
        assert_eq!(
            MessageText::parse("你好, 世界 😀").unwrap().as_str(),
            "你好, 世界 😀"
        );
    }

    #[test]
    fn refuses_empty_and_control_characters() {
        assert_eq!(MessageText::parse(""), Err(ParseError::EmptyText));
        assert_eq!(MessageText::parse(" \t "), Err(ParseError::EmptyText));
        for bad in [
            "a\rb",
            "\x1b]0;PWNED\x07",
            "bell\x07",
            "bs\x08",
            "del\x7f",
            "c1\u{9b}2J",
            "nul\0",
        ] {
            assert_eq!(
                MessageText::parse(bad),
                Err(ParseError::ControlCharacter),
                "{bad:?}"
            );
        }
    }
}
