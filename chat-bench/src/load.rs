//! `chat-bench run` (and `raw`): N clients log in; S of them send M messages each to K
//! others, to everyone, or to their room, with at most W unacknowledged per sender. Every delivery is
//! checked against what was sent: lost, duplicated and reordered counts, latency. A share
//! of the clients (or all of them, against any IRC server) can speak IRC instead.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::client::{self, Client, Endpoint, LineReader};
use crate::procstat::{self, Machine, Sample};

/// Ops per room in a governed room run, the room's creator included.
pub const GOVERNED_OPS: usize = 10;
/// Bans per room in a governed room run, of names nobody uses.
pub const GOVERNED_BANS: usize = 100;

/// Who each sender addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fanout {
    /// `K` distinct other clients: the next K after the sender, wrapping around.
    Others(usize),
    /// `*`: everyone else.
    Broadcast,
    /// `R` rooms: client `i` joins `#r<i % R>` and sends to it; the room's other members
    /// receive.
    Rooms(usize),
}

/// One load run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// More nodes of a cluster: clients are spread over `addr` and these, round robin.
    pub also: Vec<SocketAddr>,
    /// An IRC listener, for the [`irc_share`](Self::irc_share) of the clients.
    pub irc: Option<SocketAddr>,
    /// The fraction of the clients that connect to `irc`, spread evenly (0.5: every
    /// other one); with 1, `addr` is never used, so any IRC server can be measured.
    pub irc_share: f64,
    /// Clients logged in.
    pub clients: usize,
    /// How many of them send.
    pub senders: usize,
    /// Whom each sender addresses.
    pub fanout: Fanout,
    /// Messages per sender.
    pub messages: u64,
    /// Most messages a sender has in flight (sent, not yet delivered everywhere).
    pub window: u64,
    /// Fixed total send rate in messages per second, for latency runs.
    pub rate: Option<f64>,
    /// Bytes of text per message, at least what the sequence and timestamp need.
    pub payload: usize,
    /// The server's pid, for its CPU time and memory.
    pub server_pid: Option<u32>,
    /// Give up waiting for deliveries after this long.
    pub timeout: Duration,
    /// Most logins under way at once (a server with a short listen backlog needs few).
    pub logins_at_once: usize,
    /// Clients that keep trying wrong passwords for a registered name during the run,
    /// each once a second (the server needs `--db`).
    pub attackers: usize,
    /// Room runs: before sending, each room's op gives op to [`GOVERNED_OPS`]` - 1` other
    /// members and bans [`GOVERNED_BANS`] names, so each message is checked against a
    /// governed room (protocol v3).
    pub governed: bool,
}

impl Spec {
    /// Where client `i` connects: to the IRC listener for [`irc_share`](Self::irc_share)
    /// of the clients, else natively, round robin over the cluster's nodes.
    pub fn endpoint(&self, i: usize) -> Endpoint {
        let share = self.irc_share;
        match self.irc {
            Some(addr) if ((i + 1) as f64 * share).floor() > (i as f64 * share).floor() => {
                Endpoint::Irc(addr)
            }
            _ => match (i % (self.also.len() + 1)).checked_sub(1) {
                Some(node) => Endpoint::Native(self.also[node]),
                None => Endpoint::Native(self.addr),
            },
        }
    }

    /// What client `i` writes before a message's text, and after it.
    fn framing(&self, i: usize) -> (String, &'static str) {
        let target = match self.fanout {
            Fanout::Broadcast => "*".to_owned(),
            Fanout::Rooms(_) => self.room(i).unwrap_or_default(),
            Fanout::Others(_) => {
                let names: Vec<String> =
                    self.destinations(i).into_iter().map(client::name).collect();
                names.join(",")
            }
        };
        match self.endpoint(i) {
            Endpoint::Native(_) => (format!("{target}: "), "\n"),
            Endpoint::Irc(_) => (format!("PRIVMSG {target} :"), "\r\n"),
        }
    }

    fn destinations(&self, sender: usize) -> Vec<usize> {
        match self.fanout {
            Fanout::Others(k) => (1..=k).map(|d| (sender + d) % self.clients).collect(),
            Fanout::Broadcast => (0..self.clients).filter(|&c| c != sender).collect(),
            Fanout::Rooms(r) => (sender % r..self.clients)
                .step_by(r)
                .filter(|&c| c != sender)
                .collect(),
        }
    }

    /// The room client `i` is a member of, in a room run.
    fn room(&self, i: usize) -> Option<String> {
        match self.fanout {
            Fanout::Rooms(r) => Some(format!("#r{}", i % r)),
            _ => None,
        }
    }

    /// In a governed room run: the members the op of client `i`'s room makes ops (its
    /// creator, the lowest index, is op already).
    fn made_ops(&self, i: usize) -> Vec<usize> {
        match self.fanout {
            Fanout::Rooms(r) if self.governed => (i % r..self.clients)
                .step_by(r)
                .skip(1)
                .take(GOVERNED_OPS - 1)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The `mode` lines client `i` gets while its room is governed: every member gets
    /// each one.
    fn mode_lines(&self, i: usize) -> usize {
        if self.governed && self.room(i).is_some() {
            self.made_ops(i).len() + GOVERNED_BANS
        } else {
            0
        }
    }
}

/// What one run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Deliveries expected.
    pub expected: u64,
    /// Deliveries received (duplicates not counted).
    pub delivered: u64,
    /// Deliveries that never arrived.
    pub lost: u64,
    /// Deliveries that arrived twice.
    pub duplicated: u64,
    /// Deliveries that arrived out of per-sender order.
    pub reordered: u64,
    /// From the first send to the last delivery.
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// Server CPU and memory over the run.
    pub server: Option<(Sample, Sample)>,
    /// This tool's CPU over the run.
    pub bench: (Sample, Sample),
    /// Every CPU's busy and stolen time over the run.
    pub machine: Option<(Machine, Machine)>,
    /// With attackers: wrong-password replies, and refusals for too many.
    pub attack: Option<(u64, u64)>,
}

struct Shared {
    start: Instant,
    /// Per sender: a ring of `window + 1` counters, deliveries of message `seq` counted in
    /// slot `seq % (window + 1)`. A message is acknowledged once every recipient has it,
    /// so one slow recipient holds its senders back, as the window means.
    acks: Vec<Vec<AtomicU64>>,
    /// Per sender: woken when its deliveries move, to open its window.
    progress: Vec<Notify>,
    delivered: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    receivers_left: AtomicUsize,
    all_delivered: Notify,
    /// Room runs: how many clients have had their `/join` answered.
    joined: AtomicUsize,
    all_joined: Notify,
    /// Governed room runs: how many clients have every `mode` line of their room.
    governed: AtomicUsize,
    all_governed: Notify,
    latency: Mutex<Histogram<u64>>,
}

/// One receiver's counts, published to [`Shared`] whenever it has read all it has.
#[derive(Default, Clone, Copy)]
struct Counts {
    delivered: u64,
    duplicated: u64,
    reordered: u64,
}

/// Runs the load described by `spec`.
pub async fn run(spec: &Spec) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        spec.clients >= 2 && spec.senders >= 1 && spec.senders <= spec.clients,
        "need 1 <= senders <= clients and clients >= 2"
    );
    match spec.fanout {
        Fanout::Others(k) => anyhow::ensure!(
            k >= 1 && k < spec.clients,
            "fanout must be between 1 and clients - 1"
        ),
        Fanout::Rooms(r) => anyhow::ensure!(
            r >= 1 && r * 2 <= spec.clients,
            "rooms must be between 1 and clients / 2, so every room has two members"
        ),
        Fanout::Broadcast => {}
    }
    anyhow::ensure!(
        (0.0..=1.0).contains(&spec.irc_share) && (spec.irc_share == 0.0 || spec.irc.is_some()),
        "the IRC share is a fraction from 0 to 1, and needs the IRC listener's address"
    );
    if spec.irc_share > 0.0 {
        anyhow::ensure!(
            spec.fanout != Fanout::Broadcast && !spec.governed,
            "IRC clients send to their room or to others: no broadcast, no governed rooms"
        );
    }
    let mut expected_by_receiver = vec![0u64; spec.clients];
    for sender in 0..spec.senders {
        for d in spec.destinations(sender) {
            expected_by_receiver[d] += spec.messages;
        }
    }
    let receivers = expected_by_receiver.iter().filter(|&&e| e > 0).count();
    let shared = Arc::new(Shared {
        start: Instant::now(),
        acks: (0..spec.senders)
            .map(|_| (0..=spec.window).map(|_| AtomicU64::new(0)).collect())
            .collect(),
        progress: (0..spec.senders).map(|_| Notify::new()).collect(),
        delivered: AtomicU64::new(0),
        duplicated: AtomicU64::new(0),
        reordered: AtomicU64::new(0),
        receivers_left: AtomicUsize::new(receivers),
        all_delivered: Notify::new(),
        joined: AtomicUsize::new(0),
        all_joined: Notify::new(),
        governed: AtomicUsize::new(0),
        all_governed: Notify::new(),
        latency: Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).context("a histogram")?),
    });

    let mut receiver_tasks = Vec::new();
    let mut writers: Vec<Option<OwnedWriteHalf>> = (0..spec.clients).map(|_| None).collect();
    eprintln!("logging in {} clients...", spec.clients);
    let endpoint = |i| spec.endpoint(i);
    client::login_all(
        spec.clients,
        spec.logins_at_once,
        endpoint,
        |i, Client { reader, writer }| {
            writers[i] = Some(writer);
            let shared = shared.clone();
            let owed = Owed {
                deliveries: expected_by_receiver[i],
                mode_lines: spec.mode_lines(i),
            };
            let senders = spec.senders;
            receiver_tasks.push(tokio::spawn(receive(reader, owed, senders, shared)));
        },
    )
    .await?;
    if let Fanout::Rooms(r) = spec.fanout {
        if spec.governed {
            // Client k < R joins first and creates #r<k>, so it is that room's op.
            join_rooms(spec, &mut writers, 0..r, &shared).await?;
            join_rooms(spec, &mut writers, r..spec.clients, &shared).await?;
            govern_rooms(spec, &mut writers[..r], &shared).await?;
        } else {
            join_rooms(spec, &mut writers, 0..spec.clients, &shared).await?;
        }
    }

    let attack = if spec.attackers > 0 {
        // The victim is a name no load client uses.
        let victim = spec.clients;
        match client::register(spec.addr, victim).await {
            Err(e) if e.to_string().contains("name is registered") => {}
            registered => registered?,
        }
        Some(Attack::start(spec.addr, victim, spec.attackers))
    } else {
        None
    };

    let server_before = spec.server_pid.and_then(procstat::sample);
    let bench_before = procstat::sample(std::process::id()).unwrap_or_default();
    let machine_before = procstat::machine();
    let first_send = Instant::now();
    let mut sender_tasks = Vec::new();
    for (i, writer) in writers.iter_mut().enumerate().take(spec.senders) {
        let writer = writer.take().context("every client logged in")?;
        sender_tasks.push(tokio::spawn(send(
            i,
            writer,
            spec.framing(i),
            spec.clone(),
            shared.clone(),
        )));
    }

    let progress = tokio::spawn(report_progress(
        shared.clone(),
        expected_by_receiver.iter().sum(),
    ));
    let finished = async {
        while shared.receivers_left.load(Ordering::Acquire) > 0 {
            shared.all_delivered.notified().await;
        }
    };
    let timed_out = tokio::time::timeout(spec.timeout, finished).await.is_err();
    let elapsed = first_send.elapsed();
    progress.abort();
    eprintln!();
    if timed_out {
        eprintln!("timed out after {:?} waiting for deliveries", spec.timeout);
    }
    let server_after = spec.server_pid.and_then(procstat::sample);
    let bench_after = procstat::sample(std::process::id()).unwrap_or_default();
    let machine_after = procstat::machine();
    let attack = attack.map(Attack::stop);
    for task in &sender_tasks {
        task.abort();
    }
    for task in receiver_tasks {
        task.abort();
    }
    let delivered = shared.delivered.load(Ordering::Acquire);
    let expected: u64 = expected_by_receiver.iter().sum();
    let latency = shared
        .latency
        .lock()
        .map_err(|_| anyhow::anyhow!("a receiver panicked"))?
        .clone();
    Ok(Outcome {
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        duplicated: shared.duplicated.load(Ordering::Acquire),
        reordered: shared.reordered.load(Ordering::Acquire),
        elapsed,
        latency,
        server: server_before.zip(server_after),
        bench: (bench_before, bench_after),
        machine: machine_before.zip(machine_after),
        attack,
    })
}

/// Clients trying wrong passwords for one registered name, each once a second.
struct Attack {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Replies `wrong password` (a hash was computed) and refusals without one.
    wrong: Arc<AtomicU64>,
    throttled: Arc<AtomicU64>,
}

impl Attack {
    fn start(addr: SocketAddr, victim: usize, attackers: usize) -> Self {
        let wrong = Arc::new(AtomicU64::new(0));
        let throttled = Arc::new(AtomicU64::new(0));
        let tasks = (0..attackers)
            .map(|_| {
                let (wrong, throttled) = (wrong.clone(), throttled.clone());
                tokio::spawn(async move {
                    loop {
                        match client::login_as(addr, victim, Some("not the password")).await {
                            Err(e) if e.to_string().contains("too many login attempts") => {
                                throttled.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) if e.to_string().contains("wrong password") => {
                                wrong.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) | Ok(_) => {}
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                })
            })
            .collect();
        Self {
            tasks,
            wrong,
            throttled,
        }
    }

    fn stop(self) -> (u64, u64) {
        for task in &self.tasks {
            task.abort();
        }
        (
            self.wrong.load(Ordering::Relaxed),
            self.throttled.load(Ordering::Relaxed),
        )
    }
}

/// `clients` join their rooms (the earlier ones have joined already); returns once every
/// `/join` is answered, so every membership is in place before the first message.
async fn join_rooms(
    spec: &Spec,
    writers: &mut [Option<OwnedWriteHalf>],
    clients: Range<usize>,
    shared: &Shared,
) -> anyhow::Result<()> {
    for i in clients.clone() {
        let writer = writers[i].as_mut().context("every client logged in")?;
        let room = spec.room(i).unwrap_or_default();
        let join = match spec.endpoint(i) {
            Endpoint::Native(_) => format!("/join {room}\n"),
            Endpoint::Irc(_) => format!("JOIN {room}\r\n"),
        };
        writer.write_all(join.as_bytes()).await.context("joining")?;
    }
    let all_joined = async {
        while shared.joined.load(Ordering::Acquire) < clients.end {
            shared.all_joined.notified().await;
        }
    };
    tokio::time::timeout(spec.timeout, all_joined)
        .await
        .context("timed out waiting for every /join to be answered")
}

/// Each room's op (client k of `writers` for `#r<k>`) makes the next members ops and
/// bans names nobody uses; returns once every member has every `mode` line, so the
/// measured window holds only messages.
async fn govern_rooms(
    spec: &Spec,
    ops: &mut [Option<OwnedWriteHalf>],
    shared: &Shared,
) -> anyhow::Result<()> {
    eprintln!(
        "governing {} rooms: {GOVERNED_OPS} ops, {GOVERNED_BANS} bans each...",
        ops.len()
    );
    for (k, writer) in ops.iter_mut().enumerate() {
        let writer = writer.as_mut().context("every client logged in")?;
        let room = spec.room(k).unwrap_or_default();
        let mut lines = String::new();
        for member in spec.made_ops(k) {
            let _ = writeln!(lines, "/op {room} {}", client::name(member));
        }
        for j in 0..GOVERNED_BANS {
            let _ = writeln!(lines, "/ban {room} ban{j}");
        }
        writer
            .write_all(lines.as_bytes())
            .await
            .context("governing")?;
    }
    let all_governed = async {
        while shared.governed.load(Ordering::Acquire) < spec.clients {
            shared.all_governed.notified().await;
        }
    };
    tokio::time::timeout(spec.timeout, all_governed)
        .await
        .context("timed out waiting for every member to see its room's ops and bans")
}

async fn send(
    index: usize,
    mut writer: OwnedWriteHalf,
    (prefix, end): (String, &'static str),
    spec: Spec,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let per_message = spec.destinations(index).len() as u64;
    let mut ticker = spec.rate.map(|rate| {
        let every = Duration::from_secs_f64(spec.senders as f64 / rate);
        // Spread the senders over the period: if all fired on the same tick, the bench's
        // own core would queue the burst and the latency would be ours, not the server's.
        let offset = every.mul_f64(index as f64 / spec.senders as f64);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        ticker
    });
    let mut buf = Vec::with_capacity(64 * 1024);
    let ring = &shared.acks[index];
    let slot = |seq: u64| &ring[(seq % ring.len() as u64) as usize];
    let mut sent = 0u64;
    let mut acked = 0u64;
    while sent < spec.messages {
        while acked < sent && slot(acked).load(Ordering::Acquire) >= per_message {
            acked += 1;
        }
        let room = spec.window - (sent - acked);
        if room == 0 {
            shared.progress[index].notified().await;
            continue;
        }
        let batch = match &mut ticker {
            Some(ticker) => {
                ticker.tick().await;
                1
            }
            None => room.min(spec.messages - sent),
        };
        buf.clear();
        for _ in 0..batch {
            let ts = shared.start.elapsed().as_nanos() as u64;
            let start = buf.len();
            let _ = write!(Wrapper(&mut buf), "{prefix}{sent} {ts} ");
            let text_len = buf.len() - start - prefix.len();
            buf.resize(buf.len() + spec.payload.saturating_sub(text_len), b'x');
            buf.extend_from_slice(end.as_bytes());
            // The slot's previous message, `sent - window - 1`, is acknowledged already.
            slot(sent).store(0, Ordering::Release);
            sent += 1;
        }
        writer.write_all(&buf).await.context("sending")?;
    }
    // Keep the connection open until the run ends: closing would make this client leave.
    std::future::pending::<()>().await;
    Ok(())
}

/// `std::fmt::Write` for a byte vector, to format numbers without allocating.
struct Wrapper<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Wrapper<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// What one client is owed before the run can end.
struct Owed {
    /// Deliveries of messages.
    deliveries: u64,
    /// `mode` lines of a governed room, before the first message.
    mode_lines: usize,
}

async fn receive(
    mut reader: LineReader,
    owed: Owed,
    senders: usize,
    shared: Arc<Shared>,
) -> anyhow::Result<()> {
    let expected = owed.deliveries;
    let mut counts = Counts::default();
    let mut published = Counts::default();
    let mut next = vec![0u64; senders];
    let mut touched = vec![false; senders];
    let mut latencies: Vec<u64> = Vec::with_capacity(1024);
    let mut done = expected == 0;
    let mut mode_lines = 0;
    loop {
        let Some(line) = reader.next_line().await? else {
            break;
        };
        let delivery = parse_delivery(line);
        // Deliveries are nearly every line: only the others are looked at further.
        if delivery.is_none()
            && (line.starts_with(b"names #") || client::irc_command(line) == b"366")
        {
            // The answer to this client's `/join` (then come `roles` and maybe `topic`,
            // which nothing here waits for), or IRC's end of the names after a `JOIN`:
            // its membership is in place.
            shared.joined.fetch_add(1, Ordering::AcqRel);
            shared.all_joined.notify_one();
        }
        if delivery.is_none() && owed.mode_lines > 0 && line.starts_with(b"mode #") {
            mode_lines += 1;
            if mode_lines == owed.mode_lines {
                shared.governed.fetch_add(1, Ordering::AcqRel);
                shared.all_governed.notify_one();
            }
        }
        if let Some((sender, seq, ts)) = delivery {
            if sender < senders {
                let now = shared.start.elapsed().as_nanos() as u64;
                latencies.push(now.saturating_sub(ts) / 1000);
                if seq < next[sender] {
                    counts.duplicated += 1;
                } else {
                    if seq > next[sender] {
                        counts.reordered += 1;
                    }
                    next[sender] = seq + 1;
                    counts.delivered += 1;
                    let ring = &shared.acks[sender];
                    ring[(seq % ring.len() as u64) as usize].fetch_add(1, Ordering::AcqRel);
                    touched[sender] = true;
                }
            }
        }
        if !reader.has_line() {
            // Everything read so far is handled: publish it, then wait for more.
            shared
                .delivered
                .fetch_add(counts.delivered - published.delivered, Ordering::AcqRel);
            shared
                .duplicated
                .fetch_add(counts.duplicated - published.duplicated, Ordering::AcqRel);
            shared
                .reordered
                .fetch_add(counts.reordered - published.reordered, Ordering::AcqRel);
            published = counts;
            for (sender, t) in touched.iter_mut().enumerate() {
                if std::mem::take(t) {
                    shared.progress[sender].notify_one();
                }
            }
            if let Ok(mut histogram) = shared.latency.lock() {
                for &l in &latencies {
                    histogram.saturating_record(l.max(1));
                }
            }
            latencies.clear();
            if !done && counts.delivered >= expected {
                done = true;
                if shared.receivers_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    shared.all_delivered.notify_one();
                }
            }
        }
    }
    Ok(())
}

/// Parses a delivery of `<seq> <ts> ...` from client `b<sender>`: natively
/// `from b<sender>[ <scope>]: <text>`, where the scope is `*` or `<#room> <id>`; over IRC
/// `:b<sender>!<user>@<host> PRIVMSG <target> :<text>`.
fn parse_delivery(line: &[u8]) -> Option<(usize, u64, u64)> {
    let (sender, text) = if let Some(rest) = line.strip_prefix(b"from b") {
        let (sender, rest) = number(rest)?;
        let colon = rest.iter().position(|&b| b == b':')?;
        (sender, rest[colon..].strip_prefix(b": ")?)
    } else {
        let (sender, rest) = number(line.strip_prefix(b":b")?)?;
        let space = rest.strip_prefix(b"!")?.iter().position(|&b| b == b' ')?;
        let rest = rest[space + 1..].strip_prefix(b" PRIVMSG ")?;
        let target = rest.iter().position(|&b| b == b' ')?;
        (sender, rest[target..].strip_prefix(b" :")?)
    };
    let (seq, rest) = number(text)?;
    let (ts, _) = number(rest.strip_prefix(b" ")?)?;
    Some((usize::try_from(sender).ok()?, seq, ts))
}

fn number(s: &[u8]) -> Option<(u64, &[u8])> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return None;
    }
    let n = s[..digits].iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some((n, &s[digits..]))
}

async fn report_progress(shared: Arc<Shared>, expected: u64) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let mut last = 0;
    loop {
        tick.tick().await;
        let now = shared.delivered.load(Ordering::Acquire);
        eprint!("\r{now}/{expected} delivered, {}/s      ", now - last);
        last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(fanout: Fanout) -> Spec {
        Spec {
            addr: "127.0.0.1:1".parse().unwrap(),
            also: Vec::new(),
            irc: None,
            irc_share: 0.0,
            clients: 5,
            senders: 5,
            fanout,
            messages: 1,
            window: 1,
            rate: None,
            payload: 0,
            server_pid: None,
            timeout: Duration::from_secs(1),
            logins_at_once: 1,
            attackers: 0,
            governed: false,
        }
    }

    #[test]
    fn parses_deliveries() {
        assert_eq!(
            parse_delivery(b"from b12: 345 6789 xxxx"),
            Some((12, 345, 6789))
        );
        assert_eq!(parse_delivery(b"joined b1"), None);
        assert_eq!(parse_delivery(b"from b1: x"), None);
        assert_eq!(parse_delivery(b"from b3 *: 4 5 x"), Some((3, 4, 5)));
        assert_eq!(
            parse_delivery(b"from b3 #r1 1795888800123456: 4 5 x"),
            Some((3, 4, 5))
        );
        assert_eq!(
            parse_delivery(b":b3!b3@chat PRIVMSG #r1 :4 5 xx\r"),
            Some((3, 4, 5))
        );
        assert_eq!(
            parse_delivery(b":b3!~b3@localhost PRIVMSG b7 :4 5 x"),
            Some((3, 4, 5))
        );
        assert_eq!(parse_delivery(b":b3!b3@chat JOIN #r1"), None);
        assert_eq!(parse_delivery(b":b3!b3@chat NOTICE #r1 :4 5 x"), None);
        assert_eq!(parse_delivery(b":chat 366 b3 #r1 :End of NAMES list"), None);
    }

    #[test]
    fn irc_clients_are_spread_evenly() {
        let spec = Spec {
            irc: Some("127.0.0.1:2".parse().unwrap()),
            irc_share: 0.5,
            ..spec(Fanout::Rooms(1))
        };
        let irc = |spec: &Spec| {
            (0..6)
                .map(|i| matches!(spec.endpoint(i), Endpoint::Irc(_)))
                .collect::<Vec<_>>()
        };
        assert_eq!(irc(&spec), [false, true, false, true, false, true]);
        assert_eq!(
            irc(&Spec {
                irc_share: 1.0,
                ..spec.clone()
            }),
            [true; 6]
        );
        assert_eq!(
            irc(&Spec {
                irc_share: 0.0,
                ..spec.clone()
            }),
            [false; 6]
        );
        assert_eq!(spec.framing(1), ("PRIVMSG #r0 :".to_owned(), "\r\n"));
        assert_eq!(spec.framing(0), ("#r0: ".to_owned(), "\n"));
    }

    #[test]
    fn destinations_are_distinct_others() {
        let spec = spec(Fanout::Others(3));
        assert_eq!(spec.destinations(3), [4, 0, 1]);
        assert_eq!(
            Spec {
                fanout: Fanout::Broadcast,
                ..spec
            }
            .destinations(3),
            [0, 1, 2, 4]
        );
    }

    #[test]
    fn governed_rooms_get_their_ops_and_bans() {
        let spec = Spec {
            clients: 1000,
            senders: 50,
            governed: true,
            ..spec(Fanout::Rooms(10))
        };
        assert_eq!(spec.made_ops(3), [13, 23, 33, 43, 53, 63, 73, 83, 93]);
        assert_eq!(spec.mode_lines(503), 9 + GOVERNED_BANS);
        // A room of three members has three ops.
        let small = Spec {
            clients: 25,
            ..spec.clone()
        };
        assert_eq!(small.made_ops(3), [13, 23]);
        assert_eq!(small.mode_lines(23), 2 + GOVERNED_BANS);
        let plain = Spec {
            governed: false,
            ..spec
        };
        assert!(plain.made_ops(3).is_empty());
        assert_eq!(plain.mode_lines(3), 0);
    }
}
