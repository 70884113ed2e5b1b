//! Hostile and unlucky peers against the real `chat-server` (docs/reliability.md): each
//! test tries one and checks that nothing is lost, nothing leaks, and nobody else notices.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chat_tests::{DEADLINE, LineClient, ServerProcess};
use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_line_arrives_the_same_whole_byte_by_byte_or_a_hundred_at_once() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let text = "张三 ünï 😀 tab\there";
    let want = format!("from alice: {text}").into_bytes();
    let line = format!("bob: {text}\n");

    alice.send_raw(line.as_bytes()).await;
    assert_eq!(bob.recv_bytes().await.expect("a line"), want);

    // One byte per write, so every multi-byte character is split across segments.
    for byte in line.as_bytes() {
        alice.send_raw(&[*byte]).await;
    }
    assert_eq!(bob.recv_bytes().await.expect("a line"), want);

    alice.send_raw(line.repeat(100).as_bytes()).await;
    for _ in 0..100 {
        assert_eq!(bob.recv_bytes().await.expect("a line"), want);
    }
    let (before, _) = bob.sync().await;
    assert!(before.is_empty(), "{before:?}");
}

#[tokio::test]
async fn a_client_reset_mid_line_delivers_nothing_and_frees_its_name_at_once() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = TcpStream::connect(server.addr).await.expect("connecting");
    alice.write_all(b"alice\n").await.expect("writing");
    bob.expect("joined alice").await;
    alice
        .write_all(b"bob: this fragment must never arrive")
        .await
        .expect("writing");
    // SO_LINGER 0: closing sends RST instead of FIN, like a killed process on some stacks.
    socket2::SockRef::from(&alice)
        .set_linger(Some(Duration::ZERO))
        .expect("setting SO_LINGER");
    drop(alice);
    bob.expect("left alice").await;
    let _again = server.login("alice").await;
    bob.expect("joined alice").await;
}

#[tokio::test]
async fn accept_backs_off_when_descriptors_run_out_and_serves_again_after() {
    let server =
        ServerProcess::start_wrapped(&["prlimit", "--nofile=40:40"], "127.0.0.1:0", &[]).await;
    let mut alice = server.login("alice").await;
    // Far more connections than descriptors: the kernel completes them, the server cannot
    // accept them all.
    let mut hogs = Vec::new();
    for _ in 0..60 {
        hogs.push(TcpStream::connect(server.addr).await.expect("connecting"));
    }
    let cpu_before = server.sample().cpu;
    let window = Instant::now();
    // No protocol event marks "the server is failing to accept"; watch a whole second.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let busy = server.sample().cpu.saturating_sub(cpu_before).as_secs_f64()
        / window.elapsed().as_secs_f64();
    assert!(
        busy < 0.5,
        "the accept loop spins: {:.0}% CPU while out of descriptors",
        busy * 100.0
    );
    let (_, names) = alice.sync().await;
    assert_eq!(names, ["alice"], "the logged-in client is still served");
    drop(hogs);
    let mut bob = server.login("bob").await;
    let (_, names) = bob.sync().await;
    assert_eq!(names, ["alice", "bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_connections_churning_do_not_disturb_a_conversation() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect("joined bob").await;
    let addr = server.addr;
    let churn = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..1000 {
            tasks.spawn(async move {
                let Ok(mut stream) = TcpStream::connect(addr).await else {
                    return;
                };
                // A third log in and leave at once, a third send half a name, a third nothing.
                let _ = match i % 3 {
                    0 => stream.write_all(format!("churn{i}\n").as_bytes()).await,
                    1 => stream.write_all(b"chu").await,
                    _ => Ok(()),
                };
            });
            if tasks.len() >= 50 {
                tasks.join_next().await;
            }
        }
        while tasks.join_next().await.is_some() {}
    });
    for i in 0..300 {
        alice.send(&format!("bob: ping {i}")).await;
        loop {
            let line = bob.recv().await;
            if line.starts_with("from ") {
                assert_eq!(line, format!("from alice: ping {i}"));
                break;
            }
            assert!(
                line.starts_with("joined churn") || line.starts_with("left churn"),
                "{line}"
            );
        }
        bob.send(&format!("alice: pong {i}")).await;
        loop {
            let line = alice.recv().await;
            if line.starts_with("from ") {
                assert_eq!(line, format!("from bob: pong {i}"));
                break;
            }
        }
    }
    churn.await.expect("the churn task");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, names) = alice.sync().await;
        if names == ["alice", "bob"] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "churned clients still online: {names:?}"
        );
    }
}

#[tokio::test]
async fn strict_names_refuse_a_look_alike_of_someone_online() {
    let strict = ServerProcess::start(&["--strict-names"]).await;
    let _alice = strict.login("alice").await;
    let mut fake = strict.connect().await;
    fake.send("\u{430}lice").await;
    fake.expect("error: name too similar to alice, who is online")
        .await;
    fake.expect_eof().await;

    let lenient = ServerProcess::start(&[]).await;
    let _alice = lenient.login("alice").await;
    let _fake = lenient.login("\u{430}lice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_eight_clients_flood_and_one_does_not_read() {
    const FLOODERS: usize = 8;
    let mut server = ServerProcess::start(&["--shutdown-timeout", "2"]).await;
    let mut stuck = LineClient::connect_with_recv_buffer(server.addr, 4096).await;
    stuck.send("stuck").await;
    let bye_seen = Arc::new(AtomicBool::new(false));
    let mut readers = Vec::new();
    let (progress_tx, mut progress_rx) = tokio::sync::mpsc::channel::<()>(FLOODERS);
    for f in 0..FLOODERS {
        let stream = TcpStream::connect(server.addr).await.expect("connecting");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        let (read_half, mut write_half) = stream.into_split();
        write_half
            .write_all(format!("f{f}\n").as_bytes())
            .await
            .expect("writing");
        let stop = bye_seen.clone();
        tokio::spawn(async move {
            let mut seq = 0u64;
            // About 2,000 lines a second each: a flood the readers (in this debug-build
            // test) can keep up with, so only the client that never reads falls behind.
            let mut pace = tokio::time::interval(Duration::from_millis(5));
            while !stop.load(Ordering::Relaxed) {
                pace.tick().await;
                let batch: String = (0..10).map(|i| format!("*: {} {}\n", f, seq + i)).collect();
                seq += 10;
                if write_half.write_all(batch.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
        let progress = progress_tx.clone();
        let bye = bye_seen.clone();
        readers.push(tokio::spawn(async move {
            let mut lines = tokio::io::BufReader::new(read_half);
            let mut next: HashMap<String, u64> = HashMap::new();
            let mut received = 0u64;
            let mut last = String::new();
            let mut buf = String::new();
            loop {
                buf.clear();
                let n = tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut buf)
                    .await
                    .expect("reading");
                if n == 0 {
                    return (received, last);
                }
                let line = buf.trim_end_matches('\n').to_owned();
                if let Some(rest) = line.strip_prefix("from ") {
                    let (sender, text) = rest.split_once(": ").expect("from <name>: <text>");
                    let seq: u64 = text
                        .split(' ')
                        .nth(1)
                        .and_then(|s| s.parse().ok())
                        .expect("a sequence number");
                    // A flooder that logged in late missed what came before: the first
                    // line from each sender sets where its sequence starts for this reader.
                    let want = next.entry(sender.to_owned()).or_insert(seq);
                    assert_eq!(seq, *want, "a gap or duplicate from {sender}");
                    *want += 1;
                    received += 1;
                    if received == 200 {
                        let _ = progress.try_send(());
                    }
                }
                if line.starts_with("bye:") {
                    bye.store(true, Ordering::Relaxed);
                }
                last = line;
            }
        }));
    }
    drop(progress_tx);
    for _ in 0..FLOODERS {
        tokio::time::timeout(DEADLINE, progress_rx.recv())
            .await
            .expect("every flooder receives traffic in time")
            .expect("no reader failed");
    }
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    for reader in readers {
        let (received, last) = tokio::time::timeout(DEADLINE, reader)
            .await
            .expect("EOF in time")
            .expect("a reader");
        assert!(received >= 200);
        assert_eq!(last, "bye: server shutting down", "bye, then EOF");
    }
    let status = server.wait_exit(DEADLINE).await;
    assert_eq!(status.code(), Some(0));
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        signalled.elapsed()
    );
    drop(stuck);
}

#[tokio::test]
async fn rate_limit_slows_a_flooder_and_drops_nothing() {
    let server = ServerProcess::start(&["--rate-limit", "100/s"]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    let burst: String = (0..250).map(|i| format!("bob: {i}\n")).collect();
    let started = Instant::now();
    alice.send_raw(burst.as_bytes()).await;
    // While alice is being paced, others are not.
    let asked = Instant::now();
    carol.sync().await;
    assert!(asked.elapsed() < Duration::from_secs(1));
    bob.expect("joined carol").await;
    for i in 0..250 {
        bob.expect(&format!("from alice: {i}")).await;
    }
    // 100 at once (the burst), then 150 at 100/s.
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1200),
        "250 lines at 100/s took only {took:?}"
    );
    let (before, _) = alice.sync().await;
    assert_eq!(before, ["joined bob", "joined carol"], "nothing refused");
}

#[tokio::test]
async fn lines_before_an_over_long_one_in_the_same_write_are_still_delivered() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect("joined bob").await;
    let burst = format!(
        "bob: one\nnonsense\nbob: two\n{}\nbob: never\n",
        "x".repeat(5000)
    );
    alice.send_raw(burst.as_bytes()).await;
    bob.expect("from alice: one").await;
    bob.expect("from alice: two").await;
    bob.expect("left alice").await;
    alice
        .expect("error: expected \"<name>[,<name>...]: <text>\" or /who")
        .await;
    alice.expect("error: line too long").await;
    alice.expect_eof().await;
}
