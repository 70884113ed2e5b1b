use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use chat_bench::load::{self, Fanout, Spec};
use chat_bench::{forwarder, render, report, scenarios};
use clap::{Args, Parser, Subcommand};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// Benchmarks for chat-server. Results: one JSON line on stdout, a summary on stderr.
/// Loopback addresses only. See docs/performance.md.
#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// N clients log in (natively, over IRC, or a share of each); S send M messages
    /// each to K others (or everyone, or their room), window W.
    Run {
        #[command(flatten)]
        load: LoadArgs,
        /// With --rooms: before sending, each room's op (its first member) makes 9 more
        /// ops and bans 100 names nobody uses, and every member sees that (protocol v3).
        #[arg(long, requires = "rooms")]
        governed: bool,
    },
    /// The same load against the minimal forwarder: this machine's loopback ceiling.
    Raw {
        #[command(flatten)]
        load: LoadArgs,
        /// Pin the forwarder to this CPU (`taskset -c`), as the server is pinned.
        #[arg(long)]
        server_cpu: Option<u32>,
    },
    /// Server memory per idle, logged-in connection (server RSS delta / N).
    Idle {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 10_000)]
        clients: usize,
        /// How long to hold the connections before measuring.
        #[arg(long, default_value = "5", value_parser = seconds)]
        hold: Duration,
        #[arg(long)]
        server_pid: u32,
    },
    /// Time until N clients are all welcomed.
    Logins {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 5_000)]
        clients: usize,
        /// Every client reads and parses every line it is sent, as a real client does,
        /// and the storm ends only once each has read a `joined` for every later login.
        #[arg(long)]
        read_presence: bool,
        /// What the server was started with: `rooms` means no `joined` line is owed,
        /// and one arriving fails the run.
        #[arg(long, default_value = "all", value_parser = ["all", "rooms"])]
        presence: String,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// K lines queued for a client that does not read; SIGTERM; time until it has all K
    /// and `bye:`. Start the server with a --sendq that holds K lines.
    Drain {
        #[arg(long)]
        addr: Option<SocketAddr>,
        #[arg(long, default_value_t = 1_000_000)]
        messages: u64,
        /// The server to stop; required unless --raw.
        #[arg(long)]
        server_pid: Option<u32>,
        /// Measure the forwarder instead (no SIGTERM, no bye).
        #[arg(long)]
        raw: bool,
        /// Pin the forwarder to this CPU, with --raw.
        #[arg(long)]
        server_cpu: Option<u32>,
    },
    /// One client stores M messages in a room, then N clients ask `/history <room> L` at
    /// once; time per reply.
    History {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 100)]
        clients: usize,
        #[arg(long, default_value_t = 2000)]
        messages: u64,
        #[arg(long, default_value_t = 1000)]
        lines: u64,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Registers N names (server with --db), then times N logins with passwords at once.
    Accounts {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 200)]
        clients: usize,
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// The client's time per frame (update and draw) with N lines of scrollback, new
    /// lines arriving and scrolling to the oldest and back.
    Render {
        #[arg(long, default_value_t = 10_000)]
        lines: usize,
        #[arg(long, default_value_t = 120)]
        width: u16,
        #[arg(long, default_value_t = 40)]
        height: u16,
    },
    /// Run the minimal forwarder alone (prints `listening on ADDR`).
    Forwarder {
        #[arg(long, default_value = "127.0.0.1:0")]
        addr: SocketAddr,
    },
}

#[derive(Debug, Clone, Args)]
struct LoadArgs {
    /// The server (ignored by `raw`, which starts its own forwarder).
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Another node of the same cluster (repeatable): clients are spread over --addr and
    /// these, round robin.
    #[arg(long = "also-addr", value_name = "ADDR")]
    also: Vec<SocketAddr>,
    /// An IRC listener (chat-server's --irc-addr, or another IRC server) for the
    /// --irc-share of the clients.
    #[arg(long, value_name = "ADDR")]
    irc_addr: Option<SocketAddr>,
    /// The fraction of the clients that speak IRC, spread evenly: 0.5 is every other
    /// one; 1 is all of them, and then --addr is not used (any IRC server can be measured).
    #[arg(long, value_name = "F", default_value_t = 0.0, requires = "irc_addr")]
    irc_share: f64,
    #[arg(long, default_value_t = 100)]
    clients: usize,
    #[arg(long, default_value_t = 100)]
    senders: usize,
    /// Distinct recipients per message.
    #[arg(long, conflicts_with_all = ["broadcast", "rooms"])]
    fanout: Option<usize>,
    /// Send to `*` instead.
    #[arg(long, conflicts_with = "rooms")]
    broadcast: bool,
    /// Spread the clients over R rooms (`#r0`..): each joins one and sends to it.
    #[arg(long)]
    rooms: Option<usize>,
    /// Messages per sender.
    #[arg(long, default_value_t = 10_000)]
    messages: u64,
    /// Most messages in flight per sender.
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Fixed total send rate (messages/s) for latency runs.
    #[arg(long)]
    rate: Option<f64>,
    /// Bytes of text per message.
    #[arg(long, default_value_t = 32)]
    payload: usize,
    /// The server's pid, for its CPU time and peak RSS.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Give up after this many seconds.
    #[arg(long, default_value = "120", value_parser = seconds)]
    timeout: Duration,
    /// Most logins under way at once: fewer for a server whose listen backlog is short
    /// (ngircd's is 10).
    #[arg(long, default_value_t = chat_bench::client::CONNECT_CONCURRENCY)]
    logins_at_once: usize,
    /// Meanwhile, N clients try wrong passwords for a registered name, each once a
    /// second (the server needs --db).
    #[arg(long, default_value_t = 0)]
    attackers: usize,
}

impl LoadArgs {
    fn spec(&self, addr: SocketAddr, server_pid: Option<u32>) -> Spec {
        Spec {
            addr,
            also: self.also.clone(),
            irc: self.irc_addr,
            irc_share: self.irc_share,
            clients: self.clients,
            senders: self.senders,
            fanout: match (self.broadcast, self.rooms) {
                (true, _) => Fanout::Broadcast,
                (false, Some(rooms)) => Fanout::Rooms(rooms),
                (false, None) => Fanout::Others(self.fanout.unwrap_or(1)),
            },
            messages: self.messages,
            window: self.window.max(1),
            rate: self.rate,
            payload: self.payload,
            server_pid,
            timeout: self.timeout,
            logins_at_once: self.logins_at_once,
            attackers: self.attackers,
            governed: false,
        }
    }
}

fn seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .map_err(|e| e.to_string())
        .and_then(|s| Duration::try_from_secs_f64(s).map_err(|e| e.to_string()))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Thousands of connections need thousands of descriptors on the load side too.
    let _ = chat_server::rlimit::raise_fd_limit();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chat-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("chat-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command; `Ok(false)` when it ran but a check failed (something was lost).
async fn run(command: Cmd) -> anyhow::Result<bool> {
    check_loopback_only(&command)?;
    let record = match command {
        Cmd::Run { load, governed } => {
            let spec = Spec {
                governed,
                ..load.spec(load.addr, load.server_pid)
            };
            return load_run("server", &spec).await;
        }
        Cmd::Raw { load, server_cpu } => {
            if load.irc_share > 0.0 {
                bail!("the forwarder speaks no IRC: --irc-share is for `run`");
            }
            let (_child, addr, pid) = start_forwarder(server_cpu).await?;
            return load_run("raw", &load.spec(addr, Some(pid))).await;
        }
        Cmd::Idle {
            addr,
            clients,
            hold,
            server_pid,
        } => scenarios::idle(addr, clients, hold, server_pid).await?,
        Cmd::Logins {
            addr,
            clients,
            read_presence,
            presence,
            server_pid,
        } => {
            let announced = presence == "all";
            scenarios::logins(addr, clients, read_presence, announced, server_pid).await?
        }
        Cmd::Drain {
            raw: true,
            messages,
            server_cpu,
            ..
        } => {
            let (_child, addr, _pid) = start_forwarder(server_cpu).await?;
            scenarios::drain(addr, messages, None).await?
        }
        Cmd::Drain {
            addr,
            messages,
            server_pid,
            ..
        } => {
            let (Some(addr), Some(pid)) = (addr, server_pid) else {
                bail!("drain needs --addr and --server-pid, or --raw")
            };
            scenarios::drain(addr, messages, Some(pid)).await?
        }
        Cmd::History {
            addr,
            clients,
            messages,
            lines,
            server_pid,
        } => scenarios::history(addr, clients, messages, lines, server_pid).await?,
        Cmd::Accounts {
            addr,
            clients,
            server_pid,
        } => scenarios::accounts(addr, clients, server_pid).await?,
        Cmd::Render {
            lines,
            width,
            height,
        } => {
            let record = render::render(lines, width, height)?;
            println!("{record}");
            return Ok(record.get("under_5ms").and_then(serde_json::Value::as_bool) == Some(true));
        }
        Cmd::Forwarder { addr } => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding {addr}"))?;
            println!("listening on {}", listener.local_addr()?);
            forwarder::serve(listener).await?;
            return Ok(true);
        }
    };
    println!("{record}");
    Ok(record
        .get("lost")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
        == 0)
}

async fn load_run(target: &str, spec: &Spec) -> anyhow::Result<bool> {
    let outcome = load::run(spec).await?;
    let record = report::load_json(target, spec, &outcome);
    eprint!("{}", report::load_summary(&record));
    println!("{record}");
    Ok(outcome.lost == 0 && outcome.duplicated == 0 && outcome.reordered == 0)
}

/// Load goes to this machine only.
fn check_loopback_only(command: &Cmd) -> anyhow::Result<()> {
    let addrs = match command {
        Cmd::Run { load, .. } => [Some(load.addr), load.irc_addr],
        Cmd::Idle { addr, .. }
        | Cmd::Logins { addr, .. }
        | Cmd::History { addr, .. }
        | Cmd::Accounts { addr, .. }
        | Cmd::Forwarder { addr } => [Some(*addr), None],
        Cmd::Drain { addr, .. } => [*addr, None],
        Cmd::Raw { .. } | Cmd::Render { .. } => [None, None],
    };
    match addrs
        .into_iter()
        .flatten()
        .find(|addr| !addr.ip().is_loopback())
    {
        Some(addr) => {
            bail!("{addr} is not a loopback address; chat-bench only loads this machine")
        }
        None => Ok(()),
    }
}

/// Starts `chat-bench forwarder` as a child (pinned with `taskset -c` if asked).
async fn start_forwarder(cpu: Option<u32>) -> anyhow::Result<(Child, SocketAddr, u32)> {
    let exe = std::env::current_exe()?;
    let mut command = match cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpu.to_string()).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = command
        .args(["forwarder", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the forwarder")?;
    let stdout = child.stdout.take().context("the forwarder's stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .context("the forwarder's address")?
        .parse()?;
    let pid = child.id().context("the forwarder's pid")?;
    Ok((child, addr, pid))
}
