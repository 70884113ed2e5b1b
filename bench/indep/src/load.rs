//! The run: clients, their reader threads, the senders, and the counts they share.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use crate::check::{self, Line, Sequence, Verdict};
use crate::cpu;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub clients: usize,
    pub rooms: usize,
    pub senders: usize,
    pub messages: u64,
    pub window: u64,
    /// Bytes of text per message.
    pub payload: usize,
    pub server_pid: Option<u32>,
    pub timeout: Duration,
}

impl Plan {
    pub fn check(&self) -> Result<(), String> {
        if self.rooms == 0 || self.clients < 2 * self.rooms {
            return Err("every room needs two members: --clients >= 2 * --rooms >= 2".into());
        }
        if self.senders == 0 || self.senders > self.clients {
            return Err("need 1 <= --senders <= --clients".into());
        }
        if self.window == 0 || self.messages == 0 {
            return Err("--window and --messages must be at least 1".into());
        }
        if !(24..=4000).contains(&self.payload) {
            // 24 holds any sequence number, a space and one byte of padding; the server's
            // line limit is 4096.
            return Err("--payload must be between 24 and 4000".into());
        }
        Ok(())
    }

    fn room(&self, client: usize) -> usize {
        client % self.rooms
    }

    fn members(&self, room: usize) -> usize {
        (self.clients - room).div_ceil(self.rooms)
    }

    /// Deliveries of each of `sender`'s messages: everyone in its room but itself.
    fn recipients(&self, sender: usize) -> u64 {
        self.members(self.room(sender)) as u64 - 1
    }

    /// Deliveries `client` is owed: every message of every other sender in its room.
    /// Senders are clients `0..senders`, so they are spread round robin over the rooms.
    fn owed(&self, client: usize) -> u64 {
        let room = self.room(client);
        let senders_here = (0..self.senders)
            .filter(|&s| s != client && self.room(s) == room)
            .count();
        senders_here as u64 * self.messages
    }

    pub fn expected(&self) -> u64 {
        (0..self.senders)
            .map(|s| self.recipients(s) * self.messages)
            .sum()
    }
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Outcome {
    pub expected: u64,
    pub delivered: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// `from` lines that are not one of this run's messages to the receiver's room, or
    /// `error:` lines: the server said or sent something it should not have.
    pub unexpected: u64,
    /// Deliveries whose id was not larger than the previous one in the same room.
    pub ids_not_increasing: u64,
    /// Connections the server closed, or that failed, during the run.
    pub disconnected: u64,
    pub timed_out: bool,
    /// From the first send to the last owed delivery (or the timeout).
    pub seconds: f64,
    pub server_cpu: Option<Duration>,
    pub own_cpu: Option<Duration>,
    /// Busy time of every CPU over the same window that was neither the server's nor
    /// this tool's: others sharing the machine.
    pub others_cpu: Option<Duration>,
    /// The first thing that went wrong, for the human reading stderr.
    pub first_problem: Option<String>,
}

/// State the threads share; every count only grows.
struct Shared {
    start: Instant,
    main: Thread,
    /// Per sender: `window` counters; message `seq`'s deliveries are counted in slot
    /// `seq % window`. The sender reuses a slot only once its previous message is
    /// delivered everywhere, so no reader can still be counting into it.
    slots: Vec<Vec<AtomicU32>>,
    /// Per sender: its thread, woken when one of its messages is delivered everywhere.
    sender_threads: Vec<OnceLock<Thread>>,
    logged_in: AtomicUsize,
    joined: AtomicUsize,
    /// Receivers that have every delivery they are owed.
    done: AtomicUsize,
    /// Nanoseconds after `start` when the latest receiver got its last owed delivery.
    finished_ns: AtomicU64,
    delivered: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
    unexpected: AtomicU64,
    ids_not_increasing: AtomicU64,
    disconnected: AtomicU64,
    /// Set once the run is over, so late disconnects are not counted.
    over: AtomicBool,
    first_problem: Mutex<Option<String>>,
}

impl Shared {
    fn problem(&self, what: String) {
        if let Ok(mut first) = self.first_problem.lock() {
            first.get_or_insert(what);
        }
        self.main.unpark();
    }

    fn elapsed_ns(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

/// Most logins under way at once, so the server's listen backlog never overflows.
const LOGINS_AT_ONCE: usize = 128;
/// Read buffer per client: a reader that falls behind catches up in few reads.
const READ_BUFFER: usize = 64 * 1024;
/// Enough for the readers' locals and buffers' bookkeeping (the buffer is on the heap);
/// a thousand default 2 MiB stacks would only be address space, but small is honest.
const STACK: usize = 128 * 1024;

pub fn run(plan: &Plan) -> Result<Outcome, String> {
    let deadline = Instant::now() + plan.timeout;
    let shared = Arc::new(Shared {
        start: Instant::now(),
        main: thread::current(),
        slots: (0..plan.senders)
            .map(|_| (0..plan.window).map(|_| AtomicU32::new(0)).collect())
            .collect(),
        sender_threads: (0..plan.senders).map(|_| OnceLock::new()).collect(),
        logged_in: AtomicUsize::new(0),
        joined: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        finished_ns: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        duplicated: AtomicU64::new(0),
        reordered: AtomicU64::new(0),
        unexpected: AtomicU64::new(0),
        ids_not_increasing: AtomicU64::new(0),
        disconnected: AtomicU64::new(0),
        over: AtomicBool::new(false),
        first_problem: Mutex::new(None),
    });

    eprintln!("indep-load: logging in {} clients...", plan.clients);
    let mut sender_streams = Vec::with_capacity(plan.senders);
    for i in 0..plan.clients {
        wait_until(&shared, deadline, "logins", || {
            shared.logged_in.load(Ordering::Acquire) + LOGINS_AT_ONCE > i
        })?;
        let stream = TcpStream::connect(plan.addr).map_err(|e| {
            let hint = if e.raw_os_error() == Some(24) {
                " (too many open files: run `ulimit -n 65536` first)"
            } else {
                ""
            };
            format!("connecting client i{i} to {}: {e}{hint}", plan.addr)
        })?;
        // Senders write small batches whose delivery they wait for: Nagle would hold them.
        stream
            .set_nodelay(true)
            .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        if i < plan.senders {
            sender_streams.push(
                stream
                    .try_clone()
                    .map_err(|e| format!("cloning a socket: {e}"))?,
            );
        }
        let (plan, shared) = (plan.clone(), shared.clone());
        thread::Builder::new()
            .name(format!("i{i}"))
            .stack_size(STACK)
            .spawn(move || {
                if let Err(e) = receive(i, stream, &plan, &shared) {
                    if !shared.over.load(Ordering::Acquire) {
                        shared.disconnected.fetch_add(1, Ordering::AcqRel);
                        shared.problem(e);
                    }
                }
            })
            .map_err(|e| format!("starting the thread of client i{i}: {e}"))?;
    }
    eprintln!("indep-load: joining rooms...");
    wait_until(&shared, deadline, "room joins", || {
        shared.joined.load(Ordering::Acquire) >= plan.clients
    })?;

    let server_before = plan.server_pid.and_then(cpu::used);
    let own_before = cpu::used(std::process::id());
    let machine_before = cpu::machine_busy();
    let first_send_ns = shared.elapsed_ns();
    eprintln!("indep-load: sending...");
    for (k, stream) in sender_streams.into_iter().enumerate() {
        let (plan, shared) = (plan.clone(), shared.clone());
        thread::Builder::new()
            .name(format!("send{k}"))
            .stack_size(STACK)
            .spawn(move || {
                // Before the first send: a reader completing one of its messages must
                // find the thread to wake, or the wake is lost and the sender waits
                // for ever.
                let _ = shared.sender_threads[k].set(thread::current());
                if let Err(e) = send(k, stream, &plan, &shared) {
                    shared.disconnected.fetch_add(1, Ordering::AcqRel);
                    shared.problem(e);
                }
            })
            .map_err(|e| format!("starting sender {k}: {e}"))?;
    }

    let expected = plan.expected();
    let mut last_report = Instant::now();
    let mut timed_out = false;
    loop {
        if shared.done.load(Ordering::Acquire) >= plan.clients
            || shared.disconnected.load(Ordering::Acquire) > 0
        {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprint!(
                "\r{}/{expected} delivered     ",
                shared.delivered.load(Ordering::Acquire)
            );
            last_report = Instant::now();
        }
        thread::park_timeout(Duration::from_millis(100));
    }
    let end_ns = if timed_out || shared.done.load(Ordering::Acquire) < plan.clients {
        shared.elapsed_ns()
    } else {
        shared.finished_ns.load(Ordering::Acquire)
    };
    let server_after = plan.server_pid.and_then(cpu::used);
    let own_after = cpu::used(std::process::id());
    let machine_after = cpu::machine_busy();
    shared.over.store(true, Ordering::Release);
    eprintln!();

    let server_cpu = server_before
        .zip(server_after)
        .map(|(b, a)| a.saturating_sub(b));
    let own_cpu = own_before.zip(own_after).map(|(b, a)| a.saturating_sub(b));
    let others_cpu = machine_before.zip(machine_after).map(|(b, a)| {
        a.saturating_sub(b)
            .saturating_sub(server_cpu.unwrap_or_default())
            .saturating_sub(own_cpu.unwrap_or_default())
    });
    let load = |c: &AtomicU64| c.load(Ordering::Acquire);
    let first_problem = shared.first_problem.lock().ok().and_then(|p| p.clone());
    Ok(Outcome {
        expected,
        delivered: load(&shared.delivered),
        duplicated: load(&shared.duplicated),
        reordered: load(&shared.reordered),
        unexpected: load(&shared.unexpected),
        ids_not_increasing: load(&shared.ids_not_increasing),
        disconnected: load(&shared.disconnected),
        timed_out,
        seconds: end_ns.saturating_sub(first_send_ns) as f64 / 1e9,
        server_cpu,
        own_cpu,
        others_cpu,
        first_problem,
    })
}

/// Waits for `ready`, woken by the readers, until the deadline or a failed connection.
fn wait_until(
    shared: &Shared,
    deadline: Instant,
    what: &str,
    ready: impl Fn() -> bool,
) -> Result<(), String> {
    while !ready() {
        if shared.disconnected.load(Ordering::Acquire) > 0 {
            let problem = shared.first_problem.lock().ok().and_then(|p| p.clone());
            return Err(format!(
                "during {what}: {}",
                problem.unwrap_or_else(|| "a connection failed".into())
            ));
        }
        if Instant::now() >= deadline {
            return Err(format!("timed out during {what}"));
        }
        thread::park_timeout(Duration::from_millis(20));
    }
    Ok(())
}

/// Sender `k` (client `i<k>`): sends its messages to its room, at most `window` of them
/// not yet delivered to every other member.
fn send(k: usize, mut stream: TcpStream, plan: &Plan, shared: &Shared) -> Result<(), String> {
    let slots = &shared.slots[k];
    let slot = |seq: u64| &slots[(seq % plan.window) as usize];
    let everyone = u32::try_from(plan.recipients(k)).map_err(|_| "too many clients")?;
    let prefix = format!("#r{}: ", plan.room(k));
    let mut buf = Vec::with_capacity(plan.window as usize * (prefix.len() + plan.payload + 1));
    let (mut sent, mut acked) = (0u64, 0u64);
    while sent < plan.messages {
        while acked < sent && slot(acked).load(Ordering::Acquire) == everyone {
            acked += 1;
        }
        let until = (acked + plan.window).min(plan.messages);
        if sent == until {
            // Woken by the reader that completes one of this sender's messages; a wake
            // that came before this park makes it return at once.
            thread::park();
            continue;
        }
        buf.clear();
        for seq in sent..until {
            // Its slot last counted `seq - window`, which is below `acked`: complete.
            slot(seq).store(0, Ordering::Release);
            let start = buf.len();
            buf.extend_from_slice(prefix.as_bytes());
            // Writing to a Vec cannot fail.
            let _ = write!(buf, "{seq} ");
            let text = buf.len() - start - prefix.len();
            buf.resize(buf.len() + plan.payload.saturating_sub(text), b'x');
            buf.push(b'\n');
        }
        sent = until;
        stream
            .write_all(&buf)
            .map_err(|e| format!("sender i{k} writing: {e}"))?;
    }
    Ok(())
}

/// Client `i`'s reader: logs in, joins its room, then checks every line it is sent.
fn receive(i: usize, mut stream: TcpStream, plan: &Plan, shared: &Shared) -> Result<(), String> {
    let room = format!("#r{}", plan.room(i));
    stream
        .write_all(format!("i{i}\n").as_bytes())
        .map_err(|e| format!("client i{i} logging in: {e}"))?;
    let welcome = format!("welcome i{i}");
    let names = format!("names {room} ");
    let owed = plan.owed(i);
    let mut seqs: Vec<Sequence> = (0..plan.senders)
        .map(|_| Sequence::new(plan.messages))
        .collect();
    let mut completed = vec![false; plan.senders];
    let mut logged_in = false;
    let mut joined = false;
    let mut done = false;
    let mut last_id = 0u64;
    let mut counts = Counts::default();
    let mut published = Counts::default();

    let mut buf = vec![0u8; READ_BUFFER];
    let mut filled = 0;
    loop {
        let n = stream
            .read(&mut buf[filled..])
            .map_err(|e| format!("client i{i} reading: {e}"))?;
        if n == 0 {
            return Err(format!("the server closed client i{i}'s connection"));
        }
        filled += n;
        let mut start = 0;
        while let Some(end) = check::find_newline(&buf[start..filled]) {
            let line = &buf[start..start + end];
            start += end + 1;
            if !logged_in {
                if line != welcome.as_bytes() {
                    return Err(format!(
                        "login of i{i} answered {:?}",
                        String::from_utf8_lossy(line)
                    ));
                }
                logged_in = true;
                shared.logged_in.fetch_add(1, Ordering::AcqRel);
                shared.main.unpark();
                stream
                    .write_all(format!("/join {room}\n").as_bytes())
                    .map_err(|e| format!("client i{i} joining: {e}"))?;
                continue;
            }
            match check::classify(line) {
                Line::Other => {
                    if !joined && line.starts_with(names.as_bytes()) {
                        joined = true;
                        shared.joined.fetch_add(1, Ordering::AcqRel);
                        shared.main.unpark();
                    } else if line.starts_with(b"error") || line.starts_with(b"bye") {
                        counts.unexpected += 1;
                        shared
                            .problem(format!("i{i} was sent {:?}", String::from_utf8_lossy(line)));
                    }
                }
                Line::Foreign => {
                    counts.unexpected += 1;
                    shared.problem(format!("i{i} was sent {:?}", String::from_utf8_lossy(line)));
                }
                Line::Delivery(d) => {
                    if d.sender >= plan.senders
                        || d.sender == i
                        || d.room != room.as_bytes()
                        || d.text.len() != plan.payload
                    {
                        counts.unexpected += 1;
                        shared.problem(format!(
                            "i{i} in {room} was sent {:?}",
                            String::from_utf8_lossy(line)
                        ));
                        continue;
                    }
                    // One room per client, and the protocol promises a room's ids
                    // strictly increase in the order members receive them.
                    if d.id <= last_id {
                        counts.ids_not_increasing += 1;
                    }
                    last_id = last_id.max(d.id);
                    match seqs[d.sender].accept(d.seq) {
                        Verdict::Duplicate => {
                            counts.duplicated += 1;
                            continue;
                        }
                        Verdict::OutOfRange => {
                            counts.unexpected += 1;
                            continue;
                        }
                        Verdict::Late => counts.reordered += 1,
                        Verdict::InOrder | Verdict::Gap => {}
                    }
                    counts.delivered += 1;
                    let slot = &shared.slots[d.sender][(d.seq % plan.window) as usize];
                    let before = slot.fetch_add(1, Ordering::AcqRel);
                    if u64::from(before) + 1 == plan.recipients(d.sender) {
                        completed[d.sender] = true;
                    }
                }
            }
        }
        if start == 0 && filled == buf.len() {
            return Err(format!(
                "client i{i} was sent a line over {READ_BUFFER} bytes"
            ));
        }
        buf.copy_within(start..filled, 0);
        filled -= start;

        // Once per read, not per line: the shared counters are touched by a thousand
        // threads, and a sender needs waking only for a message that is now complete.
        counts.publish(&mut published, shared);
        for (k, c) in completed.iter_mut().enumerate() {
            if std::mem::take(c) {
                if let Some(t) = shared.sender_threads[k].get() {
                    t.unpark();
                }
            }
        }
        if !done && joined && counts.delivered >= owed {
            done = true;
            shared
                .finished_ns
                .fetch_max(shared.elapsed_ns(), Ordering::AcqRel);
            shared.done.fetch_add(1, Ordering::AcqRel);
            shared.main.unpark();
        }
    }
}

/// One reader's counts; published to [`Shared`] as differences.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    delivered: u64,
    duplicated: u64,
    reordered: u64,
    unexpected: u64,
    ids_not_increasing: u64,
}

impl Counts {
    fn publish(&self, published: &mut Counts, shared: &Shared) {
        let add = |total: &AtomicU64, now: u64, then: u64| {
            if now > then {
                total.fetch_add(now - then, Ordering::AcqRel);
            }
        };
        add(&shared.delivered, self.delivered, published.delivered);
        add(&shared.duplicated, self.duplicated, published.duplicated);
        add(&shared.reordered, self.reordered, published.reordered);
        add(&shared.unexpected, self.unexpected, published.unexpected);
        add(
            &shared.ids_not_increasing,
            self.ids_not_increasing,
            published.ids_not_increasing,
        );
        *published = *self;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(clients: usize, rooms: usize, senders: usize) -> Plan {
        Plan {
            addr: SocketAddr::from(([127, 0, 0, 1], 1)),
            clients,
            rooms,
            senders,
            messages: 7,
            window: 4,
            payload: 32,
            server_pid: None,
            timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn expected_deliveries_add_up_from_both_ends() {
        for (clients, rooms, senders) in [(1000, 10, 50), (25, 10, 3), (7, 3, 7), (2, 1, 1)] {
            let p = plan(clients, rooms, senders);
            let owed: u64 = (0..clients).map(|c| p.owed(c)).sum();
            assert_eq!(owed, p.expected(), "{clients} clients, {rooms} rooms");
        }
        // The scenario: 50 senders, 99 others in each room, 3,000 messages each.
        let p = Plan {
            messages: 3000,
            ..plan(1000, 10, 50)
        };
        assert_eq!(p.expected(), 50 * 99 * 3000);
    }
}
