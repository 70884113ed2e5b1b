//! What the user typed: text for the current buffer, or a `/command`. One table lists the
//! commands for the parser, the F1 help and `docs/client.md`. Command names are
//! case-insensitive (`/QUIT` quits); `//text` sends `/text` as text.

use chat_proto::{MAX_HISTORY_LINES, Password, Recipient, RoomName, UserName};

/// A typed line, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Typed {
    /// Text for the current buffer.
    Text(String),
    /// A command.
    Command(UserCommand),
}

/// The commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserCommand {
    /// Show the help.
    Help,
    /// Leave.
    Quit,
    /// Join a room and switch to its buffer.
    Join(RoomName),
    /// Leave a room (the current one without an argument).
    Part(Option<RoomName>),
    /// Open a conversation with one person and switch to it.
    Query(UserName),
    /// Close the current buffer (leaving its room).
    Close,
    /// Send one message elsewhere without switching.
    Msg(Recipient, String),
    /// Send an action (`/me waves`) to the current buffer.
    Me(String),
    /// List the rooms.
    Rooms,
    /// List a room's members (the current room without an argument).
    Names(Option<RoomName>),
    /// Refresh who is online.
    Who,
    /// Fetch the current buffer's history: the latest n (50 without an argument).
    History(Option<u16>),
    /// Switch to a buffer by number or name.
    Buffer(String),
    /// Search the current buffer; without text, the next older match.
    Search(Option<String>),
    /// Clear the current buffer.
    Clear,
    /// Register our name.
    Register(Password),
    /// Change our password.
    SetPassword(Password),
    /// Drop the connection and connect again now.
    Reconnect,
    /// Toggle mouse wheel scrolling.
    Mouse,
}

/// A row of the command table.
#[derive(Debug)]
pub struct CommandInfo {
    /// The name, without the slash.
    pub name: &'static str,
    /// Other names for it.
    pub aliases: &'static [&'static str],
    /// Its arguments, as the help shows them.
    pub args: &'static str,
    /// One line of help.
    pub help: &'static str,
}

/// Every command, in the order the help lists them.
#[rustfmt::skip]
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo { name: "join", aliases: &[], args: "#room", help: "join a room and open its buffer (with its recent history)" },
    CommandInfo { name: "part", aliases: &[], args: "[#room]", help: "leave a room (the current one)" },
    CommandInfo { name: "query", aliases: &["to"], args: "name", help: "open a conversation with name" },
    CommandInfo { name: "close", aliases: &[], args: "", help: "close the current buffer (leaving its room)" },
    CommandInfo { name: "msg", aliases: &[], args: "name|#room|* text", help: "send one message elsewhere" },
    CommandInfo { name: "me", aliases: &[], args: "text", help: "an action: * alice waves" },
    CommandInfo { name: "buffer", aliases: &[], args: "n|name", help: "switch to a buffer" },
    CommandInfo { name: "names", aliases: &[], args: "[#room]", help: "who is in a room (the current one)" },
    CommandInfo { name: "rooms", aliases: &[], args: "", help: "every room and its member count" },
    CommandInfo { name: "who", aliases: &[], args: "", help: "who is online" },
    CommandInfo { name: "history", aliases: &[], args: "[n]", help: "the latest n messages of this buffer (50)" },
    CommandInfo { name: "search", aliases: &[], args: "text", help: "find text in this buffer; F3/Shift-F3 move, Esc ends" },
    CommandInfo { name: "clear", aliases: &[], args: "", help: "clear this buffer" },
    CommandInfo { name: "register", aliases: &[], args: "password", help: "register your name (shown masked)" },
    CommandInfo { name: "password", aliases: &[], args: "new-password", help: "change your password (shown masked)" },
    CommandInfo { name: "reconnect", aliases: &[], args: "", help: "connect again now" },
    CommandInfo { name: "mouse", aliases: &[], args: "", help: "mouse wheel scrolling on/off (F2)" },
    CommandInfo { name: "help", aliases: &[], args: "", help: "this help (F1)" },
    CommandInfo { name: "quit", aliases: &["exit"], args: "", help: "leave" },
];

/// Commands whose argument is a password: masked on screen, never in the input history.
pub const SECRET_COMMANDS: [&str; 2] = ["register", "password"];

/// Understands a typed line. `Err` is the message to show.
pub fn parse(typed: &str) -> Result<Typed, String> {
    let Some(rest) = typed.strip_prefix('/') else {
        return Ok(Typed::Text(typed.to_owned()));
    };
    if rest.starts_with('/') {
        return Ok(Typed::Text(rest.to_owned()));
    }
    let (name, arg) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
    let lower = name.to_lowercase();
    let Some(info) = lookup(&lower) else {
        return Err(format!(
            "unknown command /{name}; F1 or /help lists them (// sends a line starting with /)"
        ));
    };
    let arg = if SECRET_COMMANDS.contains(&info.name) {
        arg
    } else {
        arg.trim()
    };
    let usage = || format!("usage: /{} {}", info.name, info.args);
    let room = |s: &str| RoomName::parse(s).map_err(|e| format!("/{}: {e}", info.name));
    let optional_room = |s: &str| (!s.is_empty()).then(|| room(s)).transpose();
    let command = match info.name {
        "help" => UserCommand::Help,
        "quit" => UserCommand::Quit,
        "join" if arg.is_empty() => return Err(usage()),
        "join" => UserCommand::Join(room(arg)?),
        "part" => UserCommand::Part(optional_room(arg)?),
        "query" if arg.is_empty() => return Err(usage()),
        "query" => {
            UserCommand::Query(UserName::parse(arg).map_err(|e| format!("/{}: {e}", info.name))?)
        }
        "close" => UserCommand::Close,
        "msg" => {
            let (to, text) = arg.split_once(char::is_whitespace).ok_or_else(usage)?;
            let to = to.parse::<Recipient>().map_err(|e| format!("/msg: {e}"))?;
            UserCommand::Msg(to, text.trim().to_owned())
        }
        "me" if arg.is_empty() => return Err(usage()),
        "me" => UserCommand::Me(arg.to_owned()),
        "buffer" if arg.is_empty() => return Err(usage()),
        "buffer" => UserCommand::Buffer(arg.to_owned()),
        "names" => UserCommand::Names(optional_room(arg)?),
        "rooms" => UserCommand::Rooms,
        "who" => UserCommand::Who,
        "history" if arg.is_empty() => UserCommand::History(None),
        "history" => match arg.parse::<u16>() {
            Ok(n) if (1..=MAX_HISTORY_LINES).contains(&n) => UserCommand::History(Some(n)),
            _ => {
                return Err(format!(
                    "/history: give a count from 1 to {MAX_HISTORY_LINES}"
                ));
            }
        },
        "search" => UserCommand::Search((!arg.is_empty()).then(|| arg.to_owned())),
        "clear" => UserCommand::Clear,
        "register" => {
            UserCommand::Register(Password::parse_new(arg).map_err(|e| format!("/register: {e}"))?)
        }
        "password" => UserCommand::SetPassword(
            Password::parse_new(arg).map_err(|e| format!("/password: {e}"))?,
        ),
        "reconnect" => UserCommand::Reconnect,
        "mouse" => UserCommand::Mouse,
        _ => unreachable!("every command in the table is handled"),
    };
    Ok(Typed::Command(command))
}

/// The table row for a lower-case command name or alias.
pub fn lookup(name: &str) -> Option<&'static CommandInfo> {
    COMMANDS
        .iter()
        .find(|c| c.name == name || c.aliases.contains(&name))
}

/// Whether `typed` is a command whose argument is a secret; if so, the byte offset where
/// the secret starts.
pub fn secret_start(typed: &str) -> Option<usize> {
    let rest = typed.strip_prefix('/')?;
    let (name, _) = rest.split_once(' ')?;
    SECRET_COMMANDS
        .contains(&name.to_lowercase().as_str())
        .then_some(name.len() + 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(typed: &str) -> UserCommand {
        match parse(typed) {
            Ok(Typed::Command(c)) => c,
            other => panic!("{typed:?} gave {other:?}"),
        }
    }

    #[test]
    fn commands_are_case_insensitive() {
        assert_eq!(command("/QUIT"), UserCommand::Quit);
        assert_eq!(command("/Exit"), UserCommand::Quit);
        assert_eq!(
            command("/JOIN #Rust"),
            UserCommand::Join(RoomName::parse("#Rust").unwrap())
        );
        assert_eq!(
            command("/to bob"),
            UserCommand::Query(UserName::parse("bob").unwrap())
        );
    }

    #[test]
    fn text_is_text_whatever_colons_it_has() {
        for text in [
            "http://example.com is cool",
            "10:30 works for me",
            "bob: hi",
        ] {
            assert_eq!(parse(text), Ok(Typed::Text(text.to_owned())));
        }
        assert_eq!(parse("//etc/passwd"), Ok(Typed::Text("/etc/passwd".into())));
    }

    #[test]
    fn bad_arguments_say_what_is_wrong() {
        assert_eq!(parse("/join"), Err("usage: /join #room".into()));
        assert_eq!(
            parse("/join rust"),
            Err("/join: invalid room \"rust\"".into())
        );
        assert!(
            parse("/frob")
                .unwrap_err()
                .starts_with("unknown command /frob")
        );
        assert!(parse("/history 0").is_err());
        assert!(parse("/password short").unwrap_err().contains("too weak"));
        assert_eq!(
            command("/msg #rust  hello there "),
            UserCommand::Msg(
                Recipient::Room(RoomName::parse("#rust").unwrap()),
                "hello there".into()
            )
        );
    }

    #[test]
    fn secrets_are_found_in_any_case() {
        assert_eq!(secret_start("/register hunter22"), Some(10));
        assert_eq!(secret_start("/PASSWORD x"), Some(10));
        assert_eq!(secret_start("/who x"), None);
        assert_eq!(secret_start("bob: /register x"), None);
    }
}
