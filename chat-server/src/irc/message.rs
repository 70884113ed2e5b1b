//! IRC's message framing (RFC 1459 §2.3, IRCv3 message-tags): `[@tags] [:source]
//! COMMAND params... [:trailing]`, parsed from a client and built for one. IRC's framing
//! is small enough that a crate's typed commands would cost more than they give: they
//! fix each command's arity, and a wrong arity must become a numeric here, not a parse
//! error.

use std::fmt::Write as _;

/// The longest line without its tags that a client may send, `\r\n` included (RFC 1459).
pub const MAX_BODY_BYTES: usize = 512;
/// The most bytes of tags a client may send, the `@` and the space after them included
/// (IRCv3 message-tags).
pub const MAX_CLIENT_TAG_BYTES: usize = 4096;
/// The longest line the IRC listener reads, tags and body together.
pub const MAX_LINE_BYTES: usize = MAX_CLIENT_TAG_BYTES + MAX_BODY_BYTES;
/// IRC's limit on parameters (RFC 2812 §2.3).
const MAX_PARAMS: usize = 15;

/// One message from a client.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Message {
    /// The `label` tag (IRCv3 labeled-response), if any.
    pub label: Option<String>,
    /// Whether the client sent tags at all.
    pub tagged: bool,
    /// The command, upper-cased (`PRIVMSG`, `001` ...).
    pub command: String,
    /// The parameters, the trailing one last, without its `:`.
    pub params: Vec<String>,
}

/// Why a line is not a message.
#[derive(Debug, PartialEq, Eq)]
pub enum Invalid {
    /// Empty, or only tags and a source: IRC ignores such a line.
    Empty,
    /// The part after the tags is longer than [`MAX_BODY_BYTES`] (417).
    BodyTooLong,
    /// The tags are longer than [`MAX_CLIENT_TAG_BYTES`] (417).
    TagsTooLong,
}

impl Message {
    /// Parses one line, without its line ending.
    pub fn parse(line: &str) -> Result<Self, Invalid> {
        let mut message = Message::default();
        let mut rest = line;
        if let Some(tagged) = rest.strip_prefix('@') {
            let (tags, body) = tagged.split_once(' ').unwrap_or((tagged, ""));
            if tags.len() + 2 > MAX_CLIENT_TAG_BYTES {
                return Err(Invalid::TagsTooLong);
            }
            message.tagged = true;
            message.label = tags
                .split(';')
                .filter_map(|tag| tag.split_once('='))
                .find(|(key, _)| *key == "label")
                .map(|(_, value)| unescape_tag(value))
                .filter(|label| !label.is_empty());
            rest = body;
        }
        rest = rest.trim_start_matches(' ');
        if rest.len() + 2 > MAX_BODY_BYTES {
            return Err(Invalid::BodyTooLong);
        }
        if rest.starts_with(':') {
            rest = rest.split_once(' ').map_or("", |(_, after)| after);
        }
        let mut words = rest.trim_start_matches(' ');
        let (command, after) = words.split_once(' ').unwrap_or((words, ""));
        if command.is_empty() {
            return Err(Invalid::Empty);
        }
        message.command = command.to_ascii_uppercase();
        words = after;
        loop {
            words = words.trim_start_matches(' ');
            if words.is_empty() {
                break;
            }
            if let Some(trailing) = words.strip_prefix(':') {
                message.params.push(trailing.to_owned());
                break;
            }
            if message.params.len() == MAX_PARAMS - 1 {
                message.params.push(words.to_owned());
                break;
            }
            let (param, after) = words.split_once(' ').unwrap_or((words, ""));
            message.params.push(param.to_owned());
            words = after;
        }
        Ok(message)
    }

    /// Parameter `i`, or `None` if the client sent fewer.
    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }
}

/// A tag value with IRCv3's escapes undone (`\:` is `;`, `\s` a space ...).
fn unescape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

/// A tag value with IRCv3's escapes applied.
pub fn escape_tag(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends `params` to `line` as IRC parameters: the last one after ` :` when it is
/// empty, holds a space or starts with `:`, or always if `trailing` is set.
pub fn push_params(line: &mut String, params: &[&str], trailing: bool) {
    let Some((last, middle)) = params.split_last() else {
        return;
    };
    for param in middle {
        line.push(' ');
        line.push_str(param);
    }
    if trailing || last.is_empty() || last.contains(' ') || last.starts_with(':') {
        line.push_str(" :");
    } else {
        line.push(' ');
    }
    line.push_str(last);
}

/// `:<source> <command> <params...>\r\n`, the last parameter as [`push_params`] puts it.
pub fn line(source: &str, command: &str, params: &[&str]) -> String {
    let mut line = String::with_capacity(64);
    let _ = write!(line, ":{source} {command}");
    push_params(&mut line, params, false);
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Message {
        Message::parse(line).expect("valid")
    }

    #[test]
    fn commands_params_and_trailing() {
        let m = parse("privmsg #rust :hello there");
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, ["#rust", "hello there"]);
        let m = parse(":alice!a@h JOIN #a,#b key");
        assert_eq!(m.command, "JOIN");
        assert_eq!(m.params, ["#a,#b", "key"]);
        let m = parse("USER u 0 *  :Real Name");
        assert_eq!(m.params, ["u", "0", "*", "Real Name"]);
        assert_eq!(parse("PRIVMSG bob ::)").params, ["bob", ":)"]);
        assert_eq!(parse("TOPIC #a :").params, ["#a", ""]);
    }

    #[test]
    fn labels_and_escapes() {
        let m = parse("@label=a\\sb;+draft/x=1 PING :t");
        assert_eq!(m.label.as_deref(), Some("a b"));
        assert!(m.tagged);
        assert_eq!(m.command, "PING");
        let mut out = String::new();
        escape_tag("a b;c\\", &mut out);
        assert_eq!(out, "a\\sb\\:c\\\\");
    }

    #[test]
    fn limits_and_empty_lines() {
        assert_eq!(Message::parse(""), Err(Invalid::Empty));
        assert_eq!(Message::parse("@a=b"), Err(Invalid::Empty));
        assert_eq!(Message::parse(":src"), Err(Invalid::Empty));
        let long = format!("PRIVMSG #a :{}", "x".repeat(MAX_BODY_BYTES));
        assert_eq!(Message::parse(&long), Err(Invalid::BodyTooLong));
        let tags = format!("@a={} PING x", "y".repeat(MAX_CLIENT_TAG_BYTES));
        assert_eq!(Message::parse(&tags), Err(Invalid::TagsTooLong));
        let many = format!("CMD {}", "p ".repeat(20));
        assert_eq!(parse(&many).params.len(), MAX_PARAMS);
    }

    #[test]
    fn lines_put_the_trailing_colon_where_needed() {
        assert_eq!(line("s", "PONG", &["s", "tok"]), ":s PONG s tok\r\n");
        assert_eq!(
            line("s", "NOTICE", &["a", "hi there"]),
            ":s NOTICE a :hi there\r\n"
        );
        assert_eq!(line("s", "TOPIC", &["#a", ""]), ":s TOPIC #a :\r\n");
        assert_eq!(line("s", "X", &["a", ":)"]), ":s X a ::)\r\n");
    }
}
