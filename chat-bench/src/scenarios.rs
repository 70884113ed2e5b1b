//! The scenarios besides the message load: idle memory, a login storm, the drain of a
//! full queue at shutdown, and many history reads at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chat_proto::ServerLine;
use hdrhistogram::Histogram;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::sync::Notify;

use crate::client::{self, CONNECT_CONCURRENCY, Endpoint, LineReader};
use crate::procstat;

/// Keeps reading a client's lines (presence lines mostly) so the server never holds them.
fn drain_in_background(reader: LineReader) {
    tokio::spawn(reader.discard());
}

/// `idle`: server memory per connected, logged-in, idle client.
pub async fn idle(
    addr: SocketAddr,
    clients: usize,
    hold: Duration,
    server_pid: u32,
) -> anyhow::Result<Value> {
    let before = procstat::sample(server_pid).context("reading the server's /proc")?;
    let mut writers = Vec::with_capacity(clients);
    let started = Instant::now();
    client::login_all(
        clients,
        CONNECT_CONCURRENCY,
        |_| Endpoint::Native(addr),
        |_, client| {
            drain_in_background(client.reader);
            writers.push(client.writer);
        },
    )
    .await?;
    let logged_in = started.elapsed();
    eprintln!("{clients} clients logged in after {logged_in:?}; holding {hold:?}");
    tokio::time::sleep(hold).await;
    let after = procstat::sample(server_pid).context("reading the server's /proc")?;
    let delta_kib = after.rss_kib.saturating_sub(before.rss_kib);
    let per_connection = delta_kib as f64 * 1024.0 / clients as f64;
    eprintln!(
        "server RSS {} KiB -> {} KiB: {:.0} bytes ({:.2} KiB) per idle connection",
        before.rss_kib,
        after.rss_kib,
        per_connection,
        per_connection / 1024.0
    );
    Ok(json!({
        "scenario": "idle",
        "clients": clients,
        "hold_seconds": hold.as_secs_f64(),
        "server_rss_before_kib": before.rss_kib,
        "server_rss_after_kib": after.rss_kib,
        "bytes_per_connection": per_connection.round(),
        "login_seconds": logged_in.as_secs_f64(),
    }))
}

/// `logins`: time until `clients` clients are all welcomed; with `read_presence`, until
/// each has also read and parsed the `joined` line of every client that logged in after
/// it (n(n-1)/2 lines in all, none if the server does not `announce` logins).
pub async fn logins(
    addr: SocketAddr,
    clients: usize,
    read_presence: bool,
    announced: bool,
    server_pid: Option<u32>,
) -> anyhow::Result<Value> {
    let cpu_before = server_pid.and_then(procstat::sample);
    let bench_before = procstat::sample(std::process::id());
    let started = Instant::now();
    let mut writers = Vec::with_capacity(clients);
    let n = clients as u64;
    let presence = Arc::new(Presence {
        expected: if announced {
            n * n.saturating_sub(1) / 2
        } else {
            0
        },
        ..Presence::default()
    });
    let mut readers = tokio::task::JoinSet::new();
    client::login_all(
        clients,
        CONNECT_CONCURRENCY,
        |_| Endpoint::Native(addr),
        |_, client| {
            if read_presence {
                readers.spawn(presence.clone().read(client.reader));
            } else {
                drain_in_background(client.reader);
            }
            writers.push(client.writer);
        },
    )
    .await?;
    let welcomed = started.elapsed();
    if read_presence && presence.expected > 0 {
        tokio::select! {
            () = presence.all_read.notified() => {}
            Some(failed) = readers.join_next() => {
                failed??;
                bail!("a client's connection ended during the storm");
            }
            () = tokio::time::sleep(Duration::from_secs(120)) => {
                bail!("{} of {} joined lines read after 120 s",
                    presence.joined.load(Ordering::Relaxed), presence.expected);
            }
        }
    }
    let elapsed = started.elapsed();
    let joined = presence.joined.load(Ordering::Relaxed);
    if read_presence && joined != presence.expected {
        bail!("{joined} joined lines read, {} expected", presence.expected);
    }
    let cpu = server_pid
        .and_then(procstat::sample)
        .zip(cpu_before)
        .map(|(a, b)| (a.cpu - b.cpu).as_secs_f64());
    let bench_cpu = procstat::sample(std::process::id())
        .zip(bench_before)
        .map(|(a, b)| (a.cpu - b.cpu).as_secs_f64());
    eprintln!(
        "{clients} clients welcomed in {:.3} s{}",
        welcomed.as_secs_f64(),
        if read_presence {
            format!(
                ", every joined line ({}) read and parsed in {:.3} s",
                presence.expected,
                elapsed.as_secs_f64()
            )
        } else {
            String::new()
        }
    );
    Ok(json!({
        "scenario": "logins",
        "clients": clients,
        "read_presence": read_presence,
        "joined_lines": joined,
        "welcomed_seconds": welcomed.as_secs_f64(),
        "seconds": elapsed.as_secs_f64(),
        "logins_per_sec": clients as f64 / elapsed.as_secs_f64(),
        "server_cpu_seconds": cpu,
        "bench_cpu_seconds": bench_cpu,
    }))
}

/// The `joined` lines all clients of a login storm have read.
#[derive(Debug, Default)]
struct Presence {
    expected: u64,
    joined: AtomicU64,
    /// Notified once `joined` reaches `expected`.
    all_read: Notify,
}

impl Presence {
    /// Reads and parses every line `reader` gets, as a client would, counting `joined`s.
    async fn read(self: Arc<Self>, mut reader: LineReader) -> anyhow::Result<()> {
        while let Some(line) = reader.next_line().await? {
            let line = std::str::from_utf8(line).context("a line that is not UTF-8")?;
            let parsed: ServerLine = line
                .parse()
                .with_context(|| format!("unparsable line {line:?}"))?;
            if matches!(parsed, ServerLine::Joined(_))
                && self.joined.fetch_add(1, Ordering::Relaxed) + 1 == self.expected
            {
                self.all_read.notify_one();
            }
        }
        Ok(())
    }
}

/// `drain`: `messages` lines queued for a receiver that does not read; then SIGTERM to
/// `server_pid` (none for the baseline forwarder), and the time until the receiver has
/// read every line in order, then (from the server) `bye:`, then EOF.
pub async fn drain(
    addr: SocketAddr,
    messages: u64,
    server_pid: Option<u32>,
) -> anyhow::Result<Value> {
    let mut receiver = client::login(addr, 0).await?;
    let mut sender = client::login(addr, 1).await?;
    let mut buf = Vec::with_capacity(1 << 20);
    let queued_at = Instant::now();
    for seq in 0..messages {
        buf.extend_from_slice(format!("b0: {seq}\n").as_bytes());
        if buf.len() > (1 << 20) - 64 {
            sender.writer.write_all(&buf).await?;
            buf.clear();
        }
    }
    // A message to itself: the sender's lines are routed in order, so when this comes
    // back every line before it is queued for the receiver.
    buf.extend_from_slice(b"b1: barrier\n");
    sender.writer.write_all(&buf).await?;
    loop {
        match sender.reader.next_line().await? {
            Some(line) if line.ends_with(b": barrier") => break,
            Some(_) => {}
            None => bail!(
                "the sender was disconnected before its barrier came back (does its --sendq hold {messages} lines?)"
            ),
        }
    }
    let queued = queued_at.elapsed();
    eprintln!("{messages} lines queued in {queued:?}");
    let started = Instant::now();
    if let Some(pid) = server_pid {
        kill(Pid::from_raw(i32::try_from(pid)?), Signal::SIGTERM).context("sending SIGTERM")?;
    }
    let mut next = 0u64;
    let mut bye = false;
    while let Some(line) = receiver.reader.next_line().await? {
        if let Some(seq) = line.strip_prefix(b"from b1: ") {
            let seq: u64 = std::str::from_utf8(seq)?.parse()?;
            anyhow::ensure!(seq == next, "expected line {next}, got {seq}");
            next += 1;
            if server_pid.is_none() && next == messages {
                break;
            }
        } else if line.starts_with(b"bye:") {
            bye = true;
        }
    }
    let elapsed = started.elapsed();
    let rate = next as f64 / elapsed.as_secs_f64();
    eprintln!(
        "received {next}/{messages} lines in {:.3} s ({rate:.0} lines/s), bye: {bye}",
        elapsed.as_secs_f64()
    );
    Ok(json!({
        "scenario": "drain",
        "target": if server_pid.is_some() { "server" } else { "raw" },
        "messages": messages,
        "received": next,
        "lost": messages - next,
        "bye": bye,
        "seconds": elapsed.as_secs_f64(),
        "lines_per_sec": rate,
    }))
}

/// `history`: one client stores `messages` messages in a room; then `clients` clients
/// send `/history <room> <lines>` at the same moment, and each reply is timed from that
/// moment to its `history-end`.
pub async fn history(
    addr: SocketAddr,
    clients: usize,
    messages: u64,
    lines: u64,
    server_pid: Option<u32>,
) -> anyhow::Result<Value> {
    const ROOM: &str = "#bench-history";
    let mut writer = client::login(addr, clients).await?;
    writer
        .writer
        .write_all(format!("/join {ROOM}\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    for seq in 0..messages {
        buf.extend_from_slice(format!("{ROOM}: history line {seq} of the bench\n").as_bytes());
    }
    buf.extend_from_slice(format!("{}: barrier\n", client::name(clients)).as_bytes());
    writer.writer.write_all(&buf).await?;
    while let Some(line) = writer.reader.next_line().await? {
        if line.ends_with(b": barrier") {
            break;
        }
    }
    let mut readers = Vec::with_capacity(clients);
    client::login_all(
        clients,
        CONNECT_CONCURRENCY,
        |_| Endpoint::Native(addr),
        |_, client| readers.push(client),
    )
    .await?;
    let cpu_before = server_pid.and_then(procstat::sample);
    let ask = format!("/history {ROOM} {lines}\n");
    let started = Instant::now();
    for reader in &mut readers {
        reader.writer.write_all(ask.as_bytes()).await?;
    }
    let tasks: Vec<_> = readers
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let mut got = 0u64;
                while let Some(line) = client.reader.next_line().await? {
                    if line.starts_with(b"history ") {
                        got += 1;
                    } else if line.starts_with(b"history-end ") {
                        return anyhow::Ok((started.elapsed(), got));
                    } else if line.starts_with(b"error:") {
                        bail!("{}", String::from_utf8_lossy(line));
                    }
                }
                bail!("the server closed before history-end")
            })
        })
        .collect();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut short = 0;
    for task in tasks {
        let (took, got) = task.await??;
        latency.saturating_record(u64::try_from(took.as_micros()).unwrap_or(u64::MAX));
        if got < lines.min(messages) {
            short += 1;
        }
    }
    let elapsed = started.elapsed();
    let cpu = server_pid
        .and_then(procstat::sample)
        .zip(cpu_before)
        .map(|(a, b)| (a.cpu - b.cpu).as_secs_f64());
    let ms = |q: f64| latency.value_at_quantile(q) as f64 / 1000.0;
    eprintln!(
        "{clients} replies of {lines} lines in {:.3} s; per reply ms: p50 {:.1}, p99 {:.1}, max {:.1}",
        elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.99),
        latency.max() as f64 / 1000.0
    );
    Ok(json!({
        "scenario": "history",
        "clients": clients,
        "stored": messages,
        "lines": lines,
        "seconds": elapsed.as_secs_f64(),
        "reply_ms": { "p50": ms(0.5), "p99": ms(0.99), "max": latency.max() as f64 / 1000.0 },
        "lost": short,
        "server_cpu_seconds": cpu,
    }))
}

/// `accounts`: registers `clients` names (server started with `--db`), then times their
/// logins with passwords, all at once: each costs one Argon2id verification.
pub async fn accounts(
    addr: SocketAddr,
    clients: usize,
    server_pid: Option<u32>,
) -> anyhow::Result<Value> {
    let mut registrations = tokio::task::JoinSet::new();
    for i in 0..clients {
        registrations.spawn(client::register(addr, i));
    }
    while let Some(done) = registrations.join_next().await {
        done??;
    }
    // Every registration's connection is closed, but the server may still be about to
    // notice; a login waits for that by retrying a refusal for "name in use" once.
    let cpu_before = server_pid.and_then(procstat::sample);
    let started = Instant::now();
    let mut logins = tokio::task::JoinSet::new();
    // The server checks at most ten passwords from one address at a time (its throttle),
    // and this tool is one address.
    let permits = Arc::new(tokio::sync::Semaphore::new(8));
    for i in 0..clients {
        let permits = permits.clone();
        logins.spawn(async move {
            let _permit = permits.acquire_owned().await?;
            match client::login_as(addr, i, Some(client::BENCH_PASSWORD)).await {
                Err(e) if e.to_string().contains("in use") => {
                    client::login_as(addr, i, Some(client::BENCH_PASSWORD)).await
                }
                other => other,
            }
        });
    }
    let mut clients_in = Vec::with_capacity(clients);
    while let Some(done) = logins.join_next().await {
        clients_in.push(done??);
    }
    let elapsed = started.elapsed();
    let cpu = server_pid
        .and_then(procstat::sample)
        .zip(cpu_before)
        .map(|(a, b)| (a.cpu - b.cpu).as_secs_f64());
    let rate = clients as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{clients} password logins in {:.3} s: {rate:.1} logins/s",
        elapsed.as_secs_f64()
    );
    Ok(json!({
        "scenario": "accounts",
        "clients": clients,
        "seconds": elapsed.as_secs_f64(),
        "logins_per_sec": rate,
        "server_cpu_seconds": cpu,
    }))
}
