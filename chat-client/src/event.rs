//! [`Msg`]: everything that can happen to the client, as one enum for `App::update`.

use std::time::Instant;

use chat_proto::{ClientLine, ServerLine};
use chrono::NaiveDateTime;
use crossterm::event::KeyEvent;

/// One thing that happened: a key, a paste, a resize, a tick, news from the network, or a
/// request to quit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// A key was pressed.
    Key(KeyEvent),
    /// Text was pasted (bracketed paste), possibly many lines.
    Paste(String),
    /// The terminal now has this many columns and rows.
    Resize(u16, u16),
    /// The mouse wheel turned (only while mouse scrolling is on); `true` is up.
    Wheel(bool),
    /// A second passed; drives the reconnect countdown.
    Tick,
    /// News from the current connection.
    Net(NetEvent),
    /// A line could not be handed to the connection (it had just ended).
    SendFailed(ClientLine),
    /// SIGTERM or SIGHUP: leave cleanly.
    Quit,
}

/// What the connection task reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetEvent {
    /// The server accepted the login (`welcome`).
    Connected,
    /// A line from the server.
    Line(ServerLine),
    /// A line from the server that is not protocol; shown escaped, never trusted.
    Unrecognised(String),
    /// The server refused the login (`error:` instead of `welcome`).
    LoginRefused(String),
    /// The connection could not be made, for a reason that trying again cannot fix: the
    /// server's certificate is refused, the host does not exist, the port speaks another
    /// protocol.
    Unreachable {
        /// Why, in words.
        reason: String,
        /// Lines handed to the connection that it never wrote, oldest first.
        unsent: Vec<ClientLine>,
    },
    /// The connection ended or could not be made.
    Disconnected {
        /// Why.
        reason: String,
        /// Lines handed to the connection that it never wrote, oldest first.
        unsent: Vec<ClientLine>,
    },
}

/// The time at which a [`Msg`] is handled, so `update` itself never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// Monotonic time, for timers.
    pub now: Instant,
    /// Local wall-clock time, for timestamps and logs.
    pub local: NaiveDateTime,
}

impl Clock {
    /// The current time.
    pub fn read() -> Self {
        Self {
            now: Instant::now(),
            local: chrono::Local::now().naive_local(),
        }
    }
}
