//! The soak run (ignored in the normal test run; `scripts/soak.sh` runs it, about 60 s):
//! 500 clients send to random destinations, leave and come back at random, and the server
//! gets SIGTERM at the end. Checked: every message sent to a client that was online
//! before it was sent (and stayed) arrived exactly once, in per-sender order; nobody ever
//! got a duplicate or out-of-order line; every client still online got `bye:` then EOF;
//! server memory at the end of the churn is within 10% of what it was after warm-up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_tests::ServerProcess;
use nix::sys::signal::Signal;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const CLIENTS: usize = 500;
const WARM_UP: Duration = Duration::from_secs(10);
const CHURN: Duration = Duration::from_secs(40);
const SETTLE: Duration = Duration::from_secs(5);

/// What a receiving session saw: per (sender, sender's session), the last sequence number.
type Seen = HashMap<(usize, u32), u64>;

/// A message still on its way when its recipient left may be lost; one sent this long
/// before the recipient started to leave may not. Generous: routing takes milliseconds.
const LEAVE_MARGIN: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Log {
    /// (sender, sender session, seq, recipient, time sent)
    sent: Vec<(usize, u32, u64, usize, Instant)>,
    /// Per (client, session): welcomed at, started leaving at (None: stayed to the end),
    /// and what it received as (sender, sender session, seq).
    sessions: HashMap<(usize, u32), Session>,
}

struct Session {
    since: Instant,
    until: Option<Instant>,
    received: Vec<(usize, u32, u64)>,
}

/// A small deterministic generator, so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % below as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "about 60 s; run with scripts/soak.sh"]
async fn soak() {
    let mut server = ServerProcess::start(&["--shutdown-timeout", "10"]).await;
    let log = Arc::new(Mutex::new(Log::default()));
    let started = Instant::now();
    let stop_churn = started + WARM_UP + CHURN;
    let stop_sending = stop_churn + SETTLE;
    let (synced_tx, mut synced_rx) = tokio::sync::mpsc::channel(CLIENTS);
    let mut clients = Vec::new();
    for me in 0..CLIENTS {
        let synced = synced_tx.clone();
        clients.push(tokio::spawn(client(
            server.addr,
            me,
            log.clone(),
            stop_churn,
            stop_sending,
            synced,
        )));
    }
    tokio::time::sleep(WARM_UP).await;
    let warm_kib = server.sample().rss_kib;
    // Measured when the churn ends: 40 s of clients leaving and coming back after the
    // warm-up sample. A leak per connection or per message shows as growth here; the last
    // seconds (everyone online at once, then the /who barrier's 500 lists of 500 names)
    // are test machinery, not the server's steady state.
    tokio::time::sleep_until(stop_churn.into()).await;
    let end_kib = server.sample().rss_kib;
    // Each client's last session ends its sending with /who: once every reply is in,
    // everything sent has been routed.
    for _ in 0..CLIENTS {
        tokio::time::timeout(
            stop_sending + Duration::from_secs(30) - Instant::now(),
            synced_rx.recv(),
        )
        .await
        .expect("every client synced in time")
        .expect("no client task failed");
    }

    server.signal(Signal::SIGTERM);
    for client in clients {
        client.await.expect("a client task");
    }
    assert_eq!(
        server.wait_exit(Duration::from_secs(20)).await.code(),
        Some(0)
    );

    let log = log.lock().expect("the log");
    let mut to_check: HashMap<usize, Vec<(usize, u32, u64, Instant)>> = HashMap::new();
    for &(s, session, seq, to, at) in &log.sent {
        to_check.entry(to).or_default().push((s, session, seq, at));
    }
    let mut expected = 0;
    for (&(receiver, _), session) in &log.sessions {
        let mut got: HashMap<(usize, u32, u64), usize> = HashMap::new();
        for &(s, sender_session, seq) in &session.received {
            *got.entry((s, sender_session, seq)).or_default() += 1;
        }
        assert!(got.values().all(|&n| n == 1), "c{receiver} got a duplicate");
        for &(s, sender_session, seq, at) in to_check.get(&receiver).into_iter().flatten() {
            let routed_while_online =
                at > session.since && session.until.is_none_or(|until| at + LEAVE_MARGIN < until);
            if routed_while_online {
                expected += 1;
                assert_eq!(
                    got.get(&(s, sender_session, seq)),
                    Some(&1),
                    "c{s}/{sender_session} #{seq} to c{receiver}"
                );
            }
        }
    }
    eprintln!(
        "{} messages sent, {expected} checked end to end; RSS {warm_kib} KiB after warm-up, {end_kib} KiB at the end",
        log.sent.len()
    );
    assert!(
        expected > 10_000,
        "too little traffic to mean anything: {expected}"
    );
    assert!(
        end_kib * 10 <= warm_kib * 11,
        "server memory grew from {warm_kib} KiB to {end_kib} KiB"
    );
}

/// One client: sessions of random length until `stop_churn`, then one last session that
/// sends until `stop_sending` and reads until the server says bye and closes.
async fn client(
    addr: std::net::SocketAddr,
    me: usize,
    log: Arc<Mutex<Log>>,
    stop_churn: Instant,
    stop_sending: Instant,
    synced: tokio::sync::mpsc::Sender<()>,
) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (me as u64 + 1));
    let mut session = 0u32;
    loop {
        session += 1;
        let last = Instant::now() >= stop_churn;
        let leave_at = if last {
            stop_sending
        } else {
            Instant::now() + Duration::from_millis(500 + rng.next(8000) as u64)
        };
        let Some(stream) = login(addr, me).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let since = Instant::now();
        log.lock().expect("the log").sessions.insert(
            (me, session),
            Session {
                since,
                until: None,
                received: Vec::new(),
            },
        );
        let (read_half, mut write_half) = stream.into_split();
        let (who_tx, who_rx) = tokio::sync::oneshot::channel();
        let reader = tokio::spawn(read_session(read_half, (me, session), log.clone(), who_tx));
        let mut seq = 0u64;
        let mut pace = tokio::time::interval(Duration::from_millis(200));
        while Instant::now() < leave_at.min(stop_sending) {
            pace.tick().await;
            let to = rng.next(CLIENTS);
            let at = Instant::now();
            log.lock()
                .expect("the log")
                .sent
                .push((me, session, seq, to, at));
            if write_half
                .write_all(format!("c{to}: {me} {session} {seq}\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
            seq += 1;
        }
        if last {
            let _ = write_half.write_all(b"/who\n").await;
            who_rx.await.expect("the users reply");
            synced.send(()).await.expect("the test is waiting");
            // Stay until the server shuts down: bye, then EOF.
            let last_line = reader.await.expect("the reader");
            assert_eq!(
                last_line.as_deref(),
                Some("bye: server shutting down"),
                "c{me}"
            );
            return;
        }
        // A clean leave: the server routes everything sent, then closes.
        if let Some(s) = log
            .lock()
            .expect("the log")
            .sessions
            .get_mut(&(me, session))
        {
            s.until = Some(Instant::now());
        }
        let _ = write_half.shutdown().await;
        let _ = reader.await;
    }
}

async fn login(addr: std::net::SocketAddr, me: usize) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(format!("c{me}\n").as_bytes()).await.ok()?;
    let mut first = Vec::new();
    let mut byte = [0u8; 1];
    // Byte by byte, so nothing after the welcome line is consumed here.
    while tokio::io::AsyncReadExt::read(&mut stream, &mut byte)
        .await
        .ok()?
        == 1
        && byte[0] != b'\n'
    {
        first.push(byte[0]);
    }
    // The previous session's leave may not be processed yet: "name already in use".
    (first == format!("welcome c{me}").as_bytes()).then_some(stream)
}

/// Reads one session's lines, checking per-sender order; returns the last line.
async fn read_session(
    read_half: tokio::net::tcp::OwnedReadHalf,
    (me, my_session): (usize, u32),
    log: Arc<Mutex<Log>>,
    who: tokio::sync::oneshot::Sender<()>,
) -> Option<String> {
    let mut who = Some(who);
    let mut lines = BufReader::new(read_half).lines();
    let mut seen: Seen = HashMap::new();
    let mut last = None;
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(text) = line
            .strip_prefix("from ")
            .and_then(|l| l.split_once(": "))
            .map(|(_, t)| t.to_owned())
        {
            let mut parts = text.split(' ').map(|p| p.parse::<u64>().expect("numbers"));
            let (s, session, seq) = (
                parts.next().expect("sender") as usize,
                parts.next().expect("session") as u32,
                parts.next().expect("seq"),
            );
            if let Some(&previous) = seen.get(&(s, session)) {
                assert!(
                    seq > previous,
                    "c{me} got #{seq} from c{s}/{session} after #{previous}"
                );
            }
            seen.insert((s, session), seq);
            if let Some(mine) = log
                .lock()
                .expect("the log")
                .sessions
                .get_mut(&(me, my_session))
            {
                mine.received.push((s, session, seq));
            }
        }
        if line.starts_with("users ") {
            if let Some(who) = who.take() {
                let _ = who.send(());
            }
        }
        last = Some(line);
    }
    last
}
