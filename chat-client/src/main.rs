use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chat_client::app::{DEFAULT_SCROLLBACK, Exit, JoinPart, Settings};
use chat_client::config::{self, DEFAULT_TIME_FORMAT};
use chat_client::keys::help_lines;
use chat_client::logger::Logger;
use chat_client::net::{self, Target};
use chat_client::{plain, tui};
use chat_proto::{DEFAULT_MAX_LINE_BYTES, Password, RoomName, UserName};
use clap::Parser;
use zeroize::Zeroizing;

/// The server used when neither a flag, CHAT_ADDR nor the config file names one.
const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// A terminal chat client.
///
/// In a terminal it opens a full-screen chat with a buffer per room and conversation; when
/// stdin is not a terminal (or with --plain) it sends stdin lines to the server and prints
/// the server's lines. Settings come from the flags, then the environment, then the config
/// file ($XDG_CONFIG_HOME/chat-client/config.toml, or --config).
/// `0.3.0 (commit 1a2b3c4d5e6f)`: the version and the commit it was built from.
fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let commit = git_version::git_version!(
            args = [
                "--always",
                "--dirty=-modified",
                "--abbrev=12",
                "--exclude=*"
            ],
            fallback = "unknown"
        );
        format!("{} (commit {commit})", env!("CARGO_PKG_VERSION"))
    })
}

#[derive(Debug, Parser)]
#[command(version = version(), after_help = format!("Keys and commands in the chat (F1 shows them too):\n{}", help_lines().join("\n")))]
struct Args {
    /// Your name: 1-32 letters, digits, `_`, `-` or `.` [env: CHAT_NAME] [config: name]
    #[arg(long)]
    name: Option<String>,

    /// Server address [env: CHAT_ADDR] [config: addr] [default: 127.0.0.1:8080]
    #[arg(long)]
    addr: Option<String>,

    /// Connect with TLS, checking the server's certificate against the Mozilla roots (or
    /// --ca-file).
    #[arg(long)]
    tls: bool,

    /// Trust the certificates in this PEM file instead: a private CA, or the server's own
    /// (self-signed) certificate, pinned; implies --tls.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// Log in to a registered name with the password in this file (its first line).
    /// Or set CHAT_PASSWORD; never on the command line, where `ps` would show it.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// Join this room at login (repeatable); adds to the config file's `rooms`.
    #[arg(long = "join", value_name = "#ROOM")]
    rooms: Vec<String>,

    /// No bell and no title change on a mention.
    #[arg(long)]
    no_bell: bool,

    /// With --join-part fold, show every join and part, not only those of people who
    /// spoke in the last 5 minutes.
    #[arg(long)]
    no_smart_filter: bool,

    /// Do not make URLs OSC 8 hyperlinks, for a terminal that prints them as garbage
    /// (terminals that do not know them should ignore them).
    #[arg(long)]
    no_hyperlinks: bool,

    /// A word that makes a message a mention, as your name does (repeatable); adds to
    /// the config file's `highlight`.
    #[arg(long = "highlight", value_name = "WORD")]
    highlights: Vec<String>,

    /// Start with mouse wheel scrolling on (F2 toggles it; while on, the terminal's own
    /// selection needs Shift).
    #[arg(long)]
    mouse: bool,

    /// How join and part lines are shown [default: fold]
    #[arg(long, value_enum)]
    join_part: Option<JoinPart>,

    /// Timestamp format, any chrono format (e.g. %H:%M:%S, or %Y-%m-%d %H:%M for dates)
    /// [default: %H:%M]
    #[arg(long, value_name = "FORMAT")]
    timestamp_format: Option<String>,

    /// Keep a plain-text log per buffer in this directory.
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// Read settings from this file instead of $XDG_CONFIG_HOME/chat-client/config.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Line mode even if stdin is a terminal.
    #[arg(long)]
    plain: bool,

    /// The server's line limit in bytes; longer lines are refused before sending.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,

    /// Entries kept per buffer [default: 10000]
    #[arg(long)]
    scrollback: Option<usize>,

    /// Panics once the screen is up, so tests can check the terminal is still restored.
    #[arg(long, hide = true)]
    test_panic: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("chat-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (file, config_path) = config::load(args.config.as_deref())?;
    let env = |key: &str| std::env::var(key).ok().filter(|v| !v.is_empty());
    let Some(name) = args.name.or_else(|| env("CHAT_NAME")).or(file.name) else {
        let where_ = config_path
            .or_else(config::default_path)
            .map_or("the config file".to_owned(), |p| p.display().to_string());
        bail!("no name given: pass --name NAME, set CHAT_NAME, or put name = \"...\" in {where_}");
    };
    let name = UserName::parse(&name).with_context(|| format!("invalid name {name:?}"))?;
    let addr = args
        .addr
        .or_else(|| env("CHAT_ADDR"))
        .or(file.addr)
        .unwrap_or_else(|| DEFAULT_ADDR.to_owned());
    let ca_file = args.ca_file.or(file.ca_file);
    let tls = args.tls || file.tls.unwrap_or(false) || ca_file.is_some();
    let target = Target {
        tls: tls
            .then(|| net::tls_config(ca_file.as_deref()))
            .transpose()?,
        password: password(args.password_file.or(file.password_file).as_deref())?,
        addr: addr.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    if args.plain || !std::io::stdin().is_terminal() {
        return runtime.block_on(plain::run(&target, &name));
    }
    let time_format = args
        .timestamp_format
        .or(file.timestamp_format)
        .unwrap_or_else(|| DEFAULT_TIME_FORMAT.to_owned());
    config::check_time_format(&time_format)?;
    let mut rooms = Vec::new();
    for room in file.rooms.iter().chain(&args.rooms) {
        let room = RoomName::parse(room).with_context(|| format!("invalid room {room:?}"))?;
        if !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    let log_dir = args.log_dir.or(file.log_dir);
    let logger = log_dir.as_deref().map(Logger::start).transpose()?;
    let settings = Settings {
        name,
        addr,
        tls,
        max_line_bytes: args.max_line_bytes,
        scrollback: args
            .scrollback
            .or(file.scrollback)
            .unwrap_or(DEFAULT_SCROLLBACK)
            .max(1),
        rooms,
        bell: !args.no_bell && file.bell.unwrap_or(true),
        highlights: file
            .highlight
            .iter()
            .chain(&args.highlights)
            .cloned()
            .collect(),
        time_format,
        join_part: args.join_part.or(file.join_part).unwrap_or_default(),
        smart_filter: !args.no_smart_filter && file.smart_filter.unwrap_or(true),
        hyperlinks: !args.no_hyperlinks && file.hyperlinks.unwrap_or(true),
        mouse: args.mouse || file.mouse.unwrap_or(false),
        log: logger.is_some(),
    };
    let server = target.addr.clone();
    // The terminal is already restored when `tui::run` returns, so stderr is safe here.
    match runtime.block_on(tui::run(settings, target, logger, args.test_panic))? {
        Exit::Clean => Ok(ExitCode::SUCCESS),
        Exit::Unreachable(reason) => {
            eprintln!("chat-client: cannot connect to {server}: {reason}");
            Ok(ExitCode::FAILURE)
        }
        Exit::Refused(reason) => {
            eprintln!("chat-client: login refused: {reason}");
            if reason.contains("password") {
                eprintln!(
                    "chat-client: give your password with --password-file FILE (its first line) or in the CHAT_PASSWORD environment variable"
                );
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The password from `--password-file` (its first line) or `CHAT_PASSWORD`, if any.
fn password(file: Option<&std::path::Path>) -> anyhow::Result<Option<Password>> {
    let text = match file {
        Some(path) => Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("reading the password from {}", path.display()))?,
        ),
        None => match std::env::var("CHAT_PASSWORD") {
            Ok(password) => Zeroizing::new(password),
            Err(_) => return Ok(None),
        },
    };
    let first = text.lines().next().unwrap_or_default();
    Password::parse(first)
        .map(Some)
        .context("the password file or CHAT_PASSWORD holds no usable password")
}
