//! [`Config`]: the server's limits and timeouts, with the defaults `--help` shows.

use std::time::Duration;

/// Limits and timeouts for one server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest accepted line in bytes, without its line ending.
    pub max_line_bytes: usize,
    /// Most clients connected at once; one more is told `error:` and closed.
    pub max_clients: usize,
    /// Most lines waiting for one client; a client that falls further behind is dropped.
    pub queue_len: usize,
    /// How long a new connection has to send its name.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for clients to take their last lines.
    pub shutdown_timeout: Duration,
    /// Also refuse a name that looks like one already online (Unicode confusables).
    pub strict_names: bool,
    /// Flood control: most lines per second read from one client, on average over a
    /// second; a faster client is read from later, never cut off. `None`: no limit.
    pub rate_limit: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_line_bytes: chat_proto::DEFAULT_MAX_LINE_BYTES,
            max_clients: 10_000,
            queue_len: 8192,
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            strict_names: false,
            rate_limit: None,
        }
    }
}
