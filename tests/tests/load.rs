//! Many clients at once against the real `chat-server`: nothing lost, order kept, and a
//! client that does not read never slows anyone else down.

use std::time::{Duration, Instant};

use chat_tests::{LineClient, ServerProcess};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_senders_to_one_receiver_lose_nothing_and_keep_each_senders_order() {
    const SENDERS: usize = 8;
    const MESSAGES: usize = 1000;
    let server = ServerProcess::start(&[]).await;
    let mut receiver = server.login("receiver").await;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(server.login(&format!("sender{s}")).await);
    }
    let sending: Vec<_> = senders
        .into_iter()
        .map(|mut sender| {
            tokio::spawn(async move {
                for i in 0..MESSAGES {
                    sender.send(&format!("receiver: {i}")).await;
                }
                sender.sync().await;
                sender
            })
        })
        .collect();

    let mut next = [0usize; SENDERS];
    let mut received = 0;
    while received < SENDERS * MESSAGES {
        let line = receiver.recv().await;
        let Some(rest) = line.strip_prefix("from sender") else {
            assert!(
                line.starts_with("joined sender"),
                "unexpected line {line:?}"
            );
            continue;
        };
        let (sender, seq) = rest.split_once(": ").expect("from <name>: <text>");
        let sender: usize = sender.parse().expect("a sender number");
        assert_eq!(
            seq.parse::<usize>().expect("a sequence number"),
            next[sender],
            "from sender{sender}"
        );
        next[sender] += 1;
        received += 1;
    }
    let mut senders = Vec::new();
    for sending in sending {
        senders.push(sending.await.expect("a sender task"));
    }
    let (before, _) = receiver.sync().await;
    assert_eq!(
        before,
        Vec::<String>::new(),
        "no duplicates after the last message"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_and_the_others_keep_going() {
    let server = ServerProcess::start(&["--sendq", "256KiB"]).await;
    let fds_at_start = server.open_fds();
    let mut slow = LineClient::connect_with_recv_buffer(server.addr, 4096).await;
    slow.send("slow").await;
    // `slow` reads nothing from here on.
    let mut flooders = Vec::new();
    for name in ["flood1", "flood2"] {
        flooders.push(server.login(name).await);
    }
    let text = "x".repeat(1000);
    let tasks: Vec<_> = flooders
        .into_iter()
        .map(|mut flooder| {
            let line = format!("slow,flood1,flood2: {text}");
            tokio::spawn(async move {
                let mut slowest = Duration::ZERO;
                for _batch in 0..200 {
                    for _ in 0..50 {
                        flooder.send(&line).await;
                    }
                    let asked = Instant::now();
                    let (before, names) = flooder.sync().await;
                    slowest = slowest.max(asked.elapsed());
                    if before.iter().any(|l| l == "left slow")
                        || !names.contains(&"slow".to_owned())
                    {
                        return (flooder, true, slowest);
                    }
                }
                (flooder, false, slowest)
            })
        })
        .collect();
    let mut flooders = Vec::new();
    for task in tasks {
        let (flooder, saw_left, slowest) = task.await.expect("a flooder task");
        flooders.push(flooder);
        assert!(saw_left, "the client that does not read was never dropped");
        assert!(
            slowest < Duration::from_secs(1),
            "a /who took {slowest:?} while flooding"
        );
    }
    // Its connection is closed, not just forgotten: the server is back to its sockets
    // at the start plus the two flooders.
    let mut observer = server.login("observer").await;
    let (_, names) = observer.sync().await;
    assert_eq!(names, ["flood1", "flood2", "observer"]);
    drop(slow);
    let deadline = Instant::now() + chat_tests::DEADLINE;
    while server.open_fds() > fds_at_start + 3 {
        assert!(
            Instant::now() < deadline,
            "server still holds {} fds",
            server.open_fds()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
