//! The IRC listener (`--irc-addr`, `--irc-tls-addr`): a second kind of connection beside
//! the native one, on the same broker. It translates, and decides nothing: every rule
//! is the broker's, so IRC and native users live under the same ones (docs/irc.md).
//!
//! - [`message`]: IRC's framing, parsed and built.
//! - [`caps`]: the IRCv3 capabilities offered.
//! - [`session`]: the connection's task: registration (`CAP`, `NICK`, `USER`, `PASS`,
//!   SASL `PLAIN`), then the loop that reads commands and writes replies.
//! - [`incoming`]: a command → the native requests that do the same.
//! - [`outgoing`]: the broker's native lines → IRC, in the connection's writer.
//!
//! Data flows one way: socket → `session` → `incoming` → broker → queue → `outgoing`
//! → socket.

pub mod caps;
pub mod incoming;
pub mod message;
pub mod outgoing;
pub mod session;

use std::sync::Arc;

pub use outgoing::Server;

/// Tokens of `005` per line, as clients expect no more than this many.
const ISUPPORT_PER_LINE: usize = 13;

/// What every IRC connection of this server says the same way, for `server_name`.
pub fn server(server_name: &str) -> Arc<Server> {
    let tokens = [
        "AWAYLEN=390".to_owned(),
        "CASEMAPPING=rfc8265".to_owned(),
        "CHANLIMIT=#:".to_owned(),
        "CHANMODES=b,,,imst".to_owned(),
        format!("CHANNELLEN={}", chat_proto::MAX_NAME_CHARS + 1),
        "CHANTYPES=#".to_owned(),
        format!("CHATHISTORY={}", chat_proto::MAX_HISTORY_LINES),
        "MODES=4".to_owned(),
        "MSGREFTYPES=msgid,timestamp".to_owned(),
        "NETWORK=chat".to_owned(),
        format!("NICKLEN={}", chat_proto::MAX_NAME_CHARS),
        "PREFIX=(ov)@+".to_owned(),
        "TARGMAX=JOIN:,KICK:,NAMES:,NOTICE:,PART:,PRIVMSG:,WHOIS:1".to_owned(),
        format!("TOPICLEN={}", chat_proto::MAX_TOPIC_BYTES),
        "UTF8ONLY".to_owned(),
    ];
    let isupport = tokens
        .chunks(ISUPPORT_PER_LINE)
        .map(|chunk| chunk.join(" "))
        .collect();
    Arc::new(Server {
        name: server_name.to_owned(),
        isupport,
        version: env!("CARGO_PKG_VERSION"),
    })
}
