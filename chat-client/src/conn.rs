//! [`Connection`]: the connection's state as the client sees it, and the reconnect policy:
//! growing backoff after a drop, and a stop (until `/reconnect`) when the server keeps
//! refusing our login, say because the name is now someone else's.

use std::time::{Duration, Instant};

/// Waits between reconnect attempts; the last one repeats.
const RECONNECT_DELAYS: [Duration; 6] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
    Duration::from_secs(8),
    Duration::from_secs(16),
    Duration::from_secs(30),
];
/// Refused logins in a row after which the client stops retrying. A few are retried: the
/// name may still be held by our own previous connection until the server notices it died.
pub const MAX_REFUSALS: u32 = 3;

/// The state of the connection, as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Connecting and logging in; `attempt` counts from 1 since the last success.
    Connecting {
        /// Which attempt this is.
        attempt: u32,
    },
    /// Logged in.
    Connected,
    /// Not connected; the next attempt starts at `retry_at`.
    Disconnected {
        /// Why the connection ended, for the status bar.
        reason: String,
        /// When to reconnect.
        retry_at: Instant,
    },
    /// Not connected, and not retrying until `/reconnect`.
    Stopped {
        /// Why.
        reason: String,
    },
}

/// The connection state and what the reconnect policy needs to remember.
#[derive(Debug)]
pub struct Connection {
    state: ConnState,
    ever_connected: bool,
    /// Failed attempts since the last successful login; picks the next delay.
    failures: u32,
    /// Refused logins in a row.
    refusals: u32,
}

impl Default for Connection {
    fn default() -> Self {
        Self {
            state: ConnState::Connecting { attempt: 1 },
            ever_connected: false,
            failures: 0,
            refusals: 0,
        }
    }
}

impl Connection {
    /// The state.
    pub fn state(&self) -> &ConnState {
        &self.state
    }

    /// Whether lines can be sent now.
    pub fn is_connected(&self) -> bool {
        self.state == ConnState::Connected
    }

    /// Whether a login ever succeeded: a refusal before that ends the program.
    pub fn ever_connected(&self) -> bool {
        self.ever_connected
    }

    /// The login succeeded.
    pub fn connected(&mut self) {
        self.state = ConnState::Connected;
        self.ever_connected = true;
        self.failures = 0;
        self.refusals = 0;
    }

    /// The connection ended or could not be made; returns the wait before the next try.
    pub fn lost(&mut self, reason: String, now: Instant) -> Duration {
        let delay = RECONNECT_DELAYS[(self.failures as usize).min(RECONNECT_DELAYS.len() - 1)];
        self.failures += 1;
        self.state = ConnState::Disconnected {
            reason,
            retry_at: now + delay,
        };
        delay
    }

    /// The server refused the login; returns whether the client will try again.
    pub fn refused(&mut self, reason: String, now: Instant) -> bool {
        self.refusals += 1;
        if self.refusals >= MAX_REFUSALS {
            self.state = ConnState::Stopped { reason };
            return false;
        }
        self.lost(reason, now);
        true
    }

    /// Not retrying until `/reconnect` (or `/login`): trying again cannot help, as when
    /// the login was refused for want of the right password, which only the user has.
    pub fn stop(&mut self, reason: String) {
        self.state = ConnState::Stopped { reason };
    }

    /// A tick: whether it is time to connect again.
    pub fn due(&mut self, now: Instant) -> bool {
        match self.state {
            ConnState::Disconnected { retry_at, .. } if now >= retry_at => {
                self.state = ConnState::Connecting {
                    attempt: self.failures + 1,
                };
                true
            }
            _ => false,
        }
    }

    /// `/reconnect`: connect now, whatever the state, with a fresh refusal count.
    pub fn reconnect(&mut self) {
        self.refusals = 0;
        self.state = ConnState::Connecting {
            attempt: self.failures + 1,
        };
    }
}
