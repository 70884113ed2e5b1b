use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chat_proto::UserName;
use chat_server::history::Retention;
use chat_server::{ClusterConfig, Config, Listeners, Presence, shutdown};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use tokio::net::{TcpListener, TcpSocket};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tracing_subscriber::EnvFilter;

// Per message the server allocates a few small, short-lived buffers; glibc's malloc spent
// a fifth of the CPU on them under load (docs/performance.md), mimalloc a fraction. The
// `heap-stats` build counts around it instead (chat_server::heap).
#[cfg(not(feature = "heap-stats"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A line-based TCP chat server.
///
/// Clients log in by sending their name as the first line, then send `bob,carol: text`,
/// `*: text` (everyone), `#room: text`, `/join #room`, `/history #room` or `/who`. See
/// docs/protocol.md. SIGINT or SIGTERM shuts the server down cleanly: every message
/// already accepted is delivered (and stored), then each client gets
/// `bye: server shutting down`.
mod config_file;

/// `0.3.0 (commit 1a2b3c4d5e6f)`: the version and the commit it was built from.
fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (commit {})",
            env!("CARGO_PKG_VERSION"),
            chat_server::COMMIT
        )
    })
}

#[derive(Debug, Parser)]
#[command(version = version(), args_override_self = true)]
struct Args {
    /// Read settings from this TOML file: its keys are the long flags (`max-per-ip = 20`,
    /// `oper = ["root"]`, `strict-names = true`); flags given on the command line
    /// override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Sub>,

    /// Address to listen on; port 0 picks a free port (printed as `listening on ADDR`).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,

    /// Longest line a client may send, in bytes without the line ending; a longer line
    /// gets `error: line too long` and the connection is closed.
    #[arg(long, default_value_t = Config::default().max_line_bytes, value_parser = positive)]
    max_line_bytes: usize,

    /// Most clients connected at once; one more gets `error: server is full` and is closed.
    #[arg(long, default_value_t = Config::default().max_clients, value_parser = positive)]
    max_clients: usize,

    /// Most bytes waiting to be sent to one client (e.g. `1MiB`, `512KiB`, `65536`); a
    /// client that falls further behind (it is not reading) is told so and disconnected,
    /// so it cannot slow down anyone else.
    #[arg(long, default_value = "1MiB", value_parser = parse_size)]
    sendq: u64,

    /// Time a new connection has to send its name (e.g. `10s`, `500ms`, or seconds: `10`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,

    /// Most connections one registered account may be logged in on at once (each with
    /// its password); unregistered names are always unique.
    #[arg(long, default_value = "8", value_parser = positive)]
    max_sessions: usize,

    /// A connection that has sent `/ping` once and then nothing for this long is closed
    /// as dead and its name freed (seconds, `180`, or `3m`). Connections that never
    /// ping are kept as long as TCP keeps them.
    #[arg(long, default_value = "180", value_parser = parse_duration)]
    idle_timeout: Duration,

    /// On SIGINT/SIGTERM, time given to clients to receive their last lines before they
    /// are cut off and the server exits.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    shutdown_timeout: Duration,

    /// Also refuse a name that looks like one already online (Unicode confusables, such as
    /// `аlice` with a Cyrillic `а` while `alice` is online).
    #[arg(long)]
    strict_names: bool,

    /// Flood control: read at most N lines per second from each client (bursts of N). A
    /// faster client is slowed by reading from it later; nothing it sent is dropped.
    #[arg(long, value_name = "N/s", value_parser = per_second)]
    rate_limit: Option<u32>,

    /// Keep room history (`on`) or none at all (`off`).
    #[arg(long, default_value = "on", value_parser = ["on", "off"])]
    history: String,

    /// Most messages of history kept per room.
    #[arg(long, default_value_t = Retention::default().per_conv, value_parser = positive)]
    history_len: usize,

    /// Messages older than this are dropped from history (e.g. `7d`, `12h`).
    #[arg(long, default_value = "7d", value_parser = parse_duration)]
    history_age: Duration,

    /// Keep history in this SQLite file (created if missing), so it survives restarts.
    /// Without it, history is kept in memory only.
    #[arg(long, value_name = "PATH")]
    db: Option<PathBuf>,

    /// Most bytes the database file may grow to (e.g. `1GiB`); past it, history writes
    /// fail and are logged while chat goes on.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, requires = "db")]
    db_max_size: Option<u64>,

    /// Accept passwords over plain TCP from other machines. Without it a password line
    /// is refused unless it comes from loopback (TLS is the safe way).
    #[arg(long)]
    allow_plaintext_passwords: bool,

    /// At most N connections from one address (loopback included); more are refused.
    #[arg(long, value_name = "N", value_parser = positive)]
    max_per_ip: Option<usize>,

    /// Be one node of a cluster sharing this Redis: one chat over every node, with the
    /// same rules as one server (names, messages, rooms, history, accounts, offline
    /// mail and the login throttle span the nodes; docs/cluster.md). The history
    /// options apply to the history in Redis; --db cannot go with it. URL:
    /// redis://HOST:PORT, with a password redis://:PASSWORD@HOST:PORT (or
    /// USER:PASSWORD@), over TLS rediss://HOST:PORT. Errors show the password as `***`.
    /// Redis unreachable or refusing the password at start: exit 1.
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// For a rediss:// --cluster URL: trust only this CA certificate (PEM), instead of
    /// the built-in public roots, for a Redis whose certificate a private CA signed.
    #[arg(long, value_name = "FILE", requires = "cluster")]
    cluster_ca_file: Option<PathBuf>,

    /// This node's name in the cluster [default: host name and process id]
    #[arg(long, value_name = "NAME", requires = "cluster", value_parser = node_name)]
    node_name: Option<String>,

    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Who is told of logins and departures: `all` (everyone online gets `joined <name>`
    /// and `left <name>`), or `rooms` (only rooms' members, through their `joined
    /// <#room> <name>` and `left <#room> <name>`), which makes a login cost nobody else a
    /// line: for a server where thousands log in at once.
    #[arg(long, default_value = "all", value_parser = ["all", "rooms"])]
    presence: String,

    /// Make this registered account a server operator (repeatable): op in every room,
    /// and `/kill`, `/suspend`, `/unsuspend`. It must log in with its password; an
    /// account registered after the start counts too.
    #[arg(long, value_name = "NAME", value_parser = user_name)]
    oper: Vec<UserName>,

    /// More logging on stderr: -v debug, -vv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Also serve IRC here (plain TCP): WeeChat, irssi, HexChat and IRC bots join the
    /// same chat as native clients (docs/irc.md). Printed as `irc listening on ADDR`.
    #[arg(long, value_name = "ADDR")]
    irc_addr: Option<SocketAddr>,

    /// Also serve IRC over TLS here, with --tls-cert and --tls-key. Printed as
    /// `irc-tls listening on ADDR`.
    #[arg(long, value_name = "ADDR", requires = "tls_cert")]
    irc_tls_addr: Option<SocketAddr>,

    /// Serve Prometheus metrics at `http://ADDR/metrics` and a health check at
    /// `/healthz`. Printed as `metrics listening on ADDR`.
    #[arg(long, value_name = "ADDR")]
    metrics_addr: Option<SocketAddr>,

    /// The server's name on IRC (the source of its own messages) [default: the host name]
    #[arg(long, value_name = "NAME", value_parser = server_name)]
    server_name: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Copy the `--db` database to a new file: a consistent snapshot, also while a server
    /// is running on it.
    Backup {
        /// The server's database file.
        db: PathBuf,
        /// The copy to write; it must not exist yet.
        to: PathBuf,
    },
}

fn server_name(s: &str) -> Result<String, String> {
    if s.is_empty()
        || s.len() > 63
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        return Err("1-63 letters, digits, `.`, `-` or `_`".to_owned());
    }
    Ok(s.to_owned())
}

fn user_name(s: &str) -> Result<UserName, String> {
    UserName::parse(s).map_err(|e| e.to_string())
}

/// Accepts `100` or `100/s`.
fn per_second(s: &str) -> Result<u32, String> {
    let n = s.strip_suffix("/s").unwrap_or(s);
    match n.parse::<u32>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn positive(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Accepts a byte count with an optional unit: `65536`, `64KiB`, `1MiB`, `1GiB` (or
/// `k`, `M`, `G`, also powers of 1024).
fn parse_size(s: &str) -> Result<u64, String> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kib" | "kb" => 10,
        "m" | "mib" | "mb" => 20,
        "g" | "gib" | "gb" => 30,
        other => return Err(format!("unknown unit {other:?} (use KiB, MiB or GiB)")),
    };
    match number.checked_mul(1 << shift) {
        Some(0) => Err("must be at least 1 byte".to_owned()),
        Some(bytes) => Ok(bytes),
        None => Err(format!("{s:?} is too large")),
    }
}

/// Accepts `humantime` durations (`1m30s`, `250ms`) and plain seconds (`10`, `0.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

/// Why the command line (with its `--config` file) cannot be used.
#[derive(Debug)]
enum BadArgs {
    /// A usage error, or `--help` or `--version`: clap says it.
    Usage(clap::Error),
    /// A value in the config file that its flag's parser refused.
    InFile(PathBuf, clap::Error),
    /// A config file that cannot be read, or an unknown key in it.
    File(anyhow::Error),
}

impl BadArgs {
    /// Says why and exits, as clap does (status 2; 0 for `--help` and `--version`).
    fn exit(self) -> ! {
        match self {
            BadArgs::Usage(e) => e.exit(),
            BadArgs::InFile(file, e) => {
                eprintln!("in the config file {}:", file.display());
                e.exit()
            }
            BadArgs::File(e) => {
                eprintln!("error: {e:#}");
                std::process::exit(2)
            }
        }
    }
}

impl std::fmt::Display for BadArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadArgs::Usage(e) => write!(f, "{}", e.to_string().trim_end()),
            BadArgs::InFile(file, e) => write!(
                f,
                "in the config file {}: {}",
                file.display(),
                e.to_string().trim_end()
            ),
            BadArgs::File(e) => write!(f, "{e:#}"),
        }
    }
}

/// `cli`, with the settings of its `--config` file before its own flags.
fn parse_args(cli: &[OsString]) -> Result<Args, BadArgs> {
    let command = Args::command();
    let matches = command
        .clone()
        .try_get_matches_from(cli)
        .map_err(BadArgs::Usage)?;
    let Some(file) = matches.get_one::<PathBuf>("config") else {
        return Args::from_arg_matches(&matches).map_err(BadArgs::Usage);
    };
    let merged = config_file::merged_args(&command, cli, &matches, file).map_err(BadArgs::File)?;
    let matches = command
        .try_get_matches_from(merged)
        .map_err(|e| BadArgs::InFile(file.clone(), e))?;
    Args::from_arg_matches(&matches).map_err(BadArgs::Usage)
}

/// The server's configuration as `args` say.
fn config_of(args: Args) -> anyhow::Result<Config> {
    if args.history == "off" && args.db.is_some() {
        anyhow::bail!("--db keeps history, so it cannot go with --history off");
    }
    let history = (args.history == "on").then(|| Retention {
        per_conv: args.history_len,
        max_age: args.history_age,
        ..Retention::default()
    });
    Ok(Config {
        max_line_bytes: args.max_line_bytes,
        max_clients: args.max_clients,
        sendq: usize::try_from(args.sendq).unwrap_or(usize::MAX),
        handshake_timeout: args.handshake_timeout,
        max_sessions: args.max_sessions,
        idle_timeout: args.idle_timeout,
        shutdown_timeout: args.shutdown_timeout,
        strict_names: args.strict_names,
        presence: if args.presence == "rooms" {
            Presence::Rooms
        } else {
            Presence::All
        },
        rate_limit: args.rate_limit,
        history,
        db: args.db,
        db_max_bytes: args.db_max_size,
        allow_plaintext_passwords: args.allow_plaintext_passwords,
        max_per_ip: args.max_per_ip,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| chat_server::tls::TlsFiles { cert, key }),
        opers: args.oper,
        server_name: args.server_name.unwrap_or_else(|| {
            let host = host_name();
            if server_name(&host).is_ok() {
                host
            } else {
                "chat.localhost".to_owned()
            }
        }),
        cluster: args.cluster.map(|url| ClusterConfig {
            url,
            node: args.node_name.unwrap_or_else(default_node_name),
            ca_file: args.cluster_ca_file,
        }),
    })
}

fn main() -> anyhow::Result<()> {
    let cli: Vec<OsString> = std::env::args_os().collect();
    let args = parse_args(&cli).unwrap_or_else(|e| e.exit());
    if let Some(Sub::Backup { db, to }) = &args.command {
        chat_server::store::sqlite::backup(db, to)?;
        println!("backed up {} to {}", db.display(), to.display());
        return Ok(());
    }
    let default_level = match args.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level)),
        )
        .init();
    if let Err(e) = chat_server::rlimit::raise_fd_limit() {
        tracing::warn!(error = %e, "could not raise the open file limit");
    }
    if let Err(e) = chat_server::rlimit::no_huge_pages() {
        tracing::debug!(error = %e, "could not turn transparent huge pages off");
    }
    let addrs = [args.irc_addr, args.irc_tls_addr, args.metrics_addr];
    let addr = args.addr;
    let config = config_of(args)?;
    tokio::runtime::Runtime::new()
        .context("starting the tokio runtime")?
        .block_on(serve(addr, addrs, config, cli))
}

/// On SIGHUP: the command line and its `--config` file read again, for what can change
/// while the server runs (see `chat_server::serve_reloading`); a file that does not
/// parse keeps the running configuration.
async fn reload_on_hangup(cli: Vec<OsString>, reloads: mpsc::Sender<Config>) {
    let Ok(mut hangups) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot watch for SIGHUP: no reloading");
        return;
    };
    while hangups.recv().await.is_some() {
        let config = parse_args(&cli)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .and_then(config_of);
        match config {
            Ok(config) => {
                tracing::info!("SIGHUP: reloading the configuration");
                if reloads.send(config).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "SIGHUP: keeping the running configuration");
            }
        }
    }
}

/// This machine's host name, or nothing.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

/// `host-pid`: unique among nodes on one machine and across machines.
fn default_node_name() -> String {
    let host: String = host_name()
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '/')
        .collect();
    format!(
        "{}-{}",
        if host.is_empty() { "node" } else { &host },
        std::process::id()
    )
}

fn node_name(s: &str) -> Result<String, String> {
    if s.is_empty() || s.len() > 64 || s.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err("1-64 characters, no spaces and no `/`".to_owned());
    }
    Ok(s.to_owned())
}

/// Connections the kernel may hold complete but not yet accepted; it caps this at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
const LISTEN_BACKLOG: u32 = 4096;

/// Binds like `TcpListener::bind`, but with a deep accept queue: the default (128 here)
/// overflowed in login storms while the server was busy writing, and a dropped SYN costs
/// the client a one-second retransmit before it can even send its name.
fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves on `addr` and the optional IRC, IRC over TLS and metrics addresses, reading
/// `cli` again on SIGHUP.
async fn serve(
    addr: SocketAddr,
    [irc_addr, irc_tls_addr, metrics_addr]: [Option<SocketAddr>; 3],
    config: Config,
    cli: Vec<OsString>,
) -> anyhow::Result<()> {
    // Before binding: a database that cannot be used, or a Redis that cannot be reached,
    // ends startup here with a clear error and exit status 1.
    let backend = chat_server::open_backend(&config).await?;
    let shutdown = shutdown::signals().context("installing signal handlers")?;
    let bound = |addr: SocketAddr| bind(addr).with_context(|| format!("binding {addr}"));
    let listeners = Listeners {
        native: bound(addr)?,
        irc: irc_addr.map(bound).transpose()?,
        irc_tls: irc_tls_addr.map(bound).transpose()?,
        metrics: metrics_addr.map(bound).transpose()?,
    };
    let mut stdout = std::io::stdout().lock();
    // The IRC lines first: whoever waits for `listening on` may then use them all.
    let others = [
        ("irc", &listeners.irc),
        ("irc-tls", &listeners.irc_tls),
        ("metrics", &listeners.metrics),
    ];
    for (what, listener) in others {
        if let Some(listener) = listener {
            let local = listener.local_addr().context("reading the bound address")?;
            writeln!(stdout, "{what} listening on {local}").context("writing to stdout")?;
        }
    }
    let local = listeners
        .native
        .local_addr()
        .context("reading the bound address")?;
    writeln!(stdout, "listening on {local}")
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    drop(stdout);
    // Type=notify under systemd: started means listening. Nothing without NOTIFY_SOCKET.
    if let Err(e) = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "could not tell systemd the server is ready");
    }
    let (reload_tx, reloads) = mpsc::channel(1);
    tokio::spawn(reload_on_hangup(cli, reload_tx));
    chat_server::serve_reloading(listeners, config, backend, shutdown, reloads).await
}
