use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use chat_client::app::{DEFAULT_SCROLLBACK, Exit, Settings};
use chat_client::net::{self, Target};
use chat_client::{plain, tui, ui};
use chat_proto::{DEFAULT_MAX_LINE_BYTES, Password, UserName};
use clap::Parser;
use zeroize::Zeroizing;

/// A terminal chat client.
///
/// In a terminal it opens a full-screen chat; when stdin is not a terminal (or with
/// --plain) it sends stdin lines to the server and prints the server's lines.
#[derive(Debug, Parser)]
#[command(version, after_help = format!("Keys and commands:\n{}", ui::HELP))]
struct Args {
    /// Your name: 1-32 letters, digits, `_`, `-` or `.`.
    #[arg(long, env = "CHAT_NAME")]
    name: String,

    /// Server address.
    #[arg(long, env = "CHAT_ADDR", default_value = "127.0.0.1:8080")]
    addr: String,

    /// Connect with TLS, checking the server's certificate against the Mozilla roots (or
    /// --ca-file).
    #[arg(long)]
    tls: bool,

    /// Trust the certificates in this PEM file instead (a private CA); implies --tls.
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,

    /// Log in to a registered name with the password in this file (its first line).
    /// Or set CHAT_PASSWORD; never on the command line, where `ps` would show it.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,

    /// Line mode even if stdin is a terminal.
    #[arg(long)]
    plain: bool,

    /// The server's line limit in bytes; longer lines are refused before sending.
    #[arg(long, default_value_t = DEFAULT_MAX_LINE_BYTES)]
    max_line_bytes: usize,

    /// Messages kept in the scrollback.
    #[arg(long, default_value_t = DEFAULT_SCROLLBACK)]
    scrollback: usize,

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
    let name =
        UserName::parse(&args.name).with_context(|| format!("invalid name {:?}", args.name))?;
    let target = Target {
        tls: (args.tls || args.ca_file.is_some())
            .then(|| net::tls_config(args.ca_file.as_deref()))
            .transpose()?,
        password: password(args.password_file.as_deref())?,
        addr: args.addr.clone(),
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    if args.plain || !std::io::stdin().is_terminal() {
        return runtime.block_on(plain::run(&target, &name));
    }
    let settings = Settings {
        name,
        addr: args.addr,
        max_line_bytes: args.max_line_bytes,
        scrollback: args.scrollback.max(1),
    };
    // The terminal is already restored when `tui::run` returns, so stderr is safe here.
    match runtime.block_on(tui::run(settings, target, args.test_panic))? {
        Exit::Clean => Ok(ExitCode::SUCCESS),
        Exit::Refused(reason) => {
            eprintln!("chat-client: login refused: {reason}");
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
