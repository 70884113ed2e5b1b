//! [`MessageText`]: the text of a message, safe to relay to other people's terminals.

use std::fmt;
use std::str::FromStr;

use crate::ParseError;

/// Trimmed, non-empty message text with no control characters but tab.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MessageText(String);

impl MessageText {
    /// Trims `text` and checks it is non-empty and free of control characters.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ParseError::EmptyText);
        }
        if text.chars().any(is_forbidden_control) {
            return Err(ParseError::ControlCharacter);
        }
        Ok(Self(text.to_owned()))
    }

    /// The text as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
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
