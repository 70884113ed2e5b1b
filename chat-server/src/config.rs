//! [`Config`]: the server's limits and timeouts, with the defaults `--help` shows.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::history::Retention;
use crate::tls::TlsFiles;

/// Limits and timeouts for one server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Longest accepted line in bytes, without its line ending.
    pub max_line_bytes: usize,
    /// Most clients connected at once; one more is told `error:` and closed.
    pub max_clients: usize,
    /// Most bytes waiting to be sent to one client (IRC's SendQ); a client that falls
    /// further behind is told so and disconnected.
    pub sendq: usize,
    /// How long a new connection has to send its name.
    pub handshake_timeout: Duration,
    /// How long shutdown waits for clients to take their last lines.
    pub shutdown_timeout: Duration,
    /// Also refuse a name that looks like one already online (Unicode confusables).
    pub strict_names: bool,
    /// Flood control: most lines per second read from one client, on average over a
    /// second; a faster client is read from later, never cut off. `None`: no limit.
    pub rate_limit: Option<u32>,
    /// How much room history to keep; `None` keeps none (`--history off`).
    pub history: Option<Retention>,
    /// Keep history in this SQLite file, so it survives restarts (`--db`).
    pub db: Option<PathBuf>,
    /// Most bytes the database file may grow to; past it writes fail (and are logged)
    /// while chat goes on.
    pub db_max_bytes: Option<u64>,
    /// Accept passwords over plain TCP from other machines (they are always accepted from
    /// loopback).
    pub allow_plaintext_passwords: bool,
    /// Most connections from one address; `None`: no limit.
    pub max_per_ip: Option<usize>,
    /// Serve TLS with this certificate and key; `None`: plain TCP.
    pub tls: Option<TlsFiles>,
    /// Be one node of a cluster on Redis (`--cluster`); `None`: a single server.
    pub cluster: Option<ClusterConfig>,
    /// Who is told of logins and departures (`--presence`).
    pub presence: Presence,
    /// Server operators (`--oper`): these names, once registered accounts, count as op
    /// in every room and may `/kill` and `/suspend`.
    pub opers: Vec<chat_proto::UserName>,
    /// Most connections one registered account may be logged in on (`--max-sessions`).
    pub max_sessions: usize,
    /// A connection that has sent `/ping` and then nothing for this long is closed as
    /// dead (`--idle-timeout`).
    pub idle_timeout: Duration,
    /// The server's name on IRC: the source of its own IRC messages (`--server-name`).
    pub server_name: String,
}

/// Who is told that someone logged in or left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Presence {
    /// Everyone online gets `joined <name>` and `left <name>` (v1's rule). A login
    /// storm of n clients then costs n(n-1)/2 lines.
    #[default]
    All,
    /// Only rooms tell: their members get `joined <#room> <name>` and
    /// `left <#room> <name>`, and nobody gets `joined <name>` or `left <name>`. A login
    /// costs nobody else a line; `/who` still lists everyone.
    Rooms,
}

/// Where the cluster's Redis is, and this node's name in it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// `redis://HOST:PORT`, `redis://[USER]:PASSWORD@HOST:PORT`, or `rediss://...` for
    /// TLS. It may hold a password: show it only through [`crate::cluster::redacted`].
    pub url: String,
    /// This node's name: unique in the cluster, no `/` or whitespace.
    pub node: String,
    /// For a `rediss://` URL, trust only this CA (PEM) instead of the built-in public
    /// roots (`--cluster-ca-file`); `None`: the built-in roots.
    pub ca_file: Option<PathBuf>,
}

// By hand, so that printing a `Config` never prints the Redis password.
impl fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("url", &crate::cluster::redacted(&self.url))
            .field("node", &self.node)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_line_bytes: chat_proto::DEFAULT_MAX_LINE_BYTES,
            max_clients: 10_000,
            sendq: 1 << 20,
            handshake_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(5),
            strict_names: false,
            rate_limit: None,
            history: Some(Retention::default()),
            db: None,
            db_max_bytes: None,
            allow_plaintext_passwords: false,
            max_per_ip: None,
            tls: None,
            cluster: None,
            presence: Presence::All,
            opers: Vec::new(),
            max_sessions: 8,
            idle_timeout: Duration::from_secs(180),
            server_name: "chat.localhost".to_owned(),
        }
    }
}
