use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use chat_server::{Config, run, shutdown};
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

// Per message the server allocates a few small, short-lived buffers; glibc's malloc spent
// a fifth of the CPU on them under load (docs/performance.md), mimalloc a fraction.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A line-based TCP chat server.
///
/// Clients log in by sending their name as the first line, then send `bob,carol: text`,
/// `*: text` (everyone) or `/who`. See docs/protocol.md. SIGINT or SIGTERM shuts the server
/// down cleanly: every message already accepted is delivered, then each client gets
/// `bye: server shutting down`.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
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

    /// Most lines waiting to be sent to one client; a client that falls further behind
    /// (it is not reading) is disconnected so it cannot slow down anyone else.
    #[arg(long, default_value_t = Config::default().queue_len, value_parser = positive)]
    queue_len: usize,

    /// Time a new connection has to send its name (e.g. `10s`, `500ms`, or seconds: `10`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,

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

    /// More logging on stderr: -v debug, -vv trace. RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
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

/// Accepts `humantime` durations (`1m30s`, `250ms`) and plain seconds (`10`, `0.5`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    if let Ok(secs) = s.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| e.to_string());
    }
    humantime::parse_duration(s).map_err(|e| e.to_string())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
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
    raise_fd_limit();
    let config = Config {
        max_line_bytes: args.max_line_bytes,
        max_clients: args.max_clients,
        queue_len: args.queue_len,
        handshake_timeout: args.handshake_timeout,
        shutdown_timeout: args.shutdown_timeout,
        strict_names: args.strict_names,
        rate_limit: args.rate_limit,
    };
    tokio::runtime::Runtime::new()
        .context("starting the tokio runtime")?
        .block_on(serve(args.addr, config))
}

/// Each client is a file descriptor; the usual soft limit of 1024 would cap the server
/// far below `--max-clients`. Raise it to the hard limit the administrator allows.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!(error = %e, soft, "could not raise the open file limit");
            }
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "could not read the open file limit"),
    }
}

async fn serve(addr: SocketAddr, config: Config) -> anyhow::Result<()> {
    let shutdown = shutdown::signals().context("installing signal handlers")?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on {local}")
        .and_then(|()| stdout.flush())
        .context("writing to stdout")?;
    drop(stdout);
    run(listener, config, shutdown).await
}
