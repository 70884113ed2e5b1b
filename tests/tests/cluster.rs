//! Cluster mode with real processes: `chat-server --cluster` nodes sharing a real
//! `redis-server`, for what needs a process (exit status, SIGKILL) and the three-node
//! scenario.

use std::time::{Duration, Instant};

use chat_tests::{LineClient, RedisServer, ServerProcess, run_server_to_exit};
use nix::sys::signal::Signal;

async fn node(redis: &RedisServer, name: &str) -> ServerProcess {
    let url = redis.url();
    ServerProcess::start(&["--cluster", &url, "--node-name", name]).await
}

/// The next two room messages `client` receives.
async fn room_lines(client: &mut LineClient) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < 2 {
        let line = client.recv().await;
        if line.starts_with("from ") {
            got.push(line);
        }
    }
    got
}

#[tokio::test]
async fn a_node_without_its_redis_exits_1_and_says_why() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let (status, stderr) = run_server_to_exit(&["--cluster", &url]).await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot reach Redis at {url}")),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_one_chat() {
    let redis = RedisServer::start();
    let a = node(&redis, "a").await;
    let b = node(&redis, "b").await;
    let c = node(&redis, "c").await;
    let mut carol = c.login("carol").await;
    let mut bob = b.login("bob").await;
    let mut alice = a.login("alice").await;
    carol.skip_until("joined alice").await;

    alice.send("bob: a to b").await;
    bob.skip_until("from alice: a to b").await;
    bob.send("carol: b to c").await;
    carol.skip_until("from bob: b to c").await;
    carol.send("*: c to everyone").await;
    alice.skip_until("from carol *: c to everyone").await;
    bob.skip_until("from carol *: c to everyone").await;
    for client in [&mut alice, &mut bob, &mut carol] {
        client.send("/who").await;
        client.skip_until("users alice,bob,carol").await;
    }
    let mut twin = LineClient::connect(c.addr).await;
    twin.send("Alice").await;
    twin.expect("error: name already in use: Alice").await;

    // A room across the three nodes: every member sees the same lines, ids included.
    for (client, name) in [
        (&mut alice, "alice"),
        (&mut bob, "bob"),
        (&mut carol, "carol"),
    ] {
        client.send("/join #rust").await;
        client.skip_until(&format!("joined #rust {name}")).await;
    }
    alice.skip_until("joined #rust carol").await;
    bob.skip_until("joined #rust carol").await;
    alice.send("#rust: one from a").await;
    bob.send("#rust: one from b").await;
    carol.send("#rust: one from c").await;
    let (seen_a, seen_b, seen_c) = (
        room_lines(&mut alice).await,
        room_lines(&mut bob).await,
        room_lines(&mut carol).await,
    );
    // Each misses only its own line; the other lines are byte-identical across nodes.
    let all: std::collections::BTreeSet<&String> =
        seen_a.iter().chain(&seen_b).chain(&seen_c).collect();
    assert_eq!(
        all.len(),
        3,
        "three messages, each seen the same way: {all:?}"
    );
    for seen in [&seen_a, &seen_b, &seen_c] {
        let ids: Vec<&str> = seen
            .iter()
            .map(|l| l.split(' ').nth(3).unwrap_or(""))
            .collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "in id order: {seen:?}");
    }

    // History lives in Redis: a node restarted serves what was said before.
    let mut c = c;
    drop(carol);
    c.signal(Signal::SIGTERM);
    assert_eq!(c.wait_exit(Duration::from_secs(10)).await.code(), Some(0));
    let c2 = node(&redis, "c").await;
    let mut dave = c2.login("dave").await;
    dave.send("/history #rust").await;
    let mut history = Vec::new();
    loop {
        let line = dave.recv().await;
        if line.starts_with("history-end") {
            assert_eq!(line, "history-end #rust complete");
            break;
        }
        history.push(line);
    }
    let texts: Vec<&str> = history
        .iter()
        .map(|l| l.rsplit(": ").next().unwrap_or(""))
        .collect();
    assert_eq!(texts.len(), 3, "{history:?}");
    for text in ["one from a", "one from b", "one from c"] {
        assert!(texts.contains(&text), "{text} in {history:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_users_are_seen_leaving_within_15_s_and_their_names_freed() {
    let redis = RedisServer::start();
    let a = node(&redis, "a").await;
    let b = node(&redis, "b").await;
    let mut bob = b.login("bob").await;
    let mut alice = a.login("alice").await;
    bob.skip_until("joined alice").await;
    let killed = Instant::now();
    b.signal(Signal::SIGKILL);
    while alice.recv_within(Duration::from_secs(16)).await != "left bob" {}
    let took = killed.elapsed();
    assert!(took <= Duration::from_secs(15), "left after {took:?}");
    // The name is free on the survivor.
    let mut bob_again = a.login("bob").await;
    bob_again.send("/who").await;
    bob_again.skip_until("users alice,bob").await;
    drop(bob);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_reading_is_cut_off_by_redis_not_waited_for() {
    // A small pub/sub output limit, so the test needs little traffic to reach it.
    let redis =
        RedisServer::start_configured(&["--client-output-buffer-limit", "pubsub 256kb 0 0"]);
    let a = node(&redis, "a").await;
    // When b resumes, what the socket buffers held before Redis cut it off (a few MB)
    // reaches bob at once: a send queue that holds it keeps him from being cut off for
    // reading slower than that burst arrives on a loaded machine.
    let url = redis.url();
    let b =
        ServerProcess::start(&["--cluster", &url, "--node-name", "b", "--sendq", "64MiB"]).await;
    let mut bob = b.login("bob").await;
    let mut alice = a.login("alice").await;
    let mut carol = a.login("carol").await;
    bob.skip_until("joined carol").await;
    let subscribers = || redis.command("PUBSUB NUMSUB chat:all");
    assert!(subscribers().ends_with(":2\r\n"), "{}", subscribers());

    // Node b stops reading (paused); alice floods `*` through Redis: 24 MB, well past
    // what the socket buffers between Redis and b absorb before Redis's own limit.
    b.signal(Signal::SIGSTOP);
    // Node a's users are not held up by b: carol gets every line (in steps of 100, so her
    // own send queue never fills).
    let text = "x".repeat(3000);
    for step in 0..80 {
        for i in step * 100..(step + 1) * 100 {
            alice.send(&format!("*: {i} {text}")).await;
        }
        for i in step * 100..(step + 1) * 100 {
            carol.expect(&format!("from alice *: {i} {text}")).await;
        }
    }
    // Redis cut b's subscription off at its limit.
    assert!(subscribers().ends_with(":1\r\n"), "{}", subscribers());

    // b resumes: its users stayed connected, and it subscribes again. What the socket
    // buffers held before Redis cut b off now reaches bob, who reads it as a client
    // would (one that did not would be cut off for its send queue, rightly).
    b.signal(Signal::SIGCONT);
    let reader = tokio::spawn(async move {
        bob.skip_until("from alice: after the gap").await;
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    while !subscribers().ends_with(":2\r\n") {
        assert!(Instant::now() < deadline, "b did not subscribe again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    alice.send("bob: after the gap").await;
    reader.await.expect("bob got the line sent after the gap");
}
