//! Bursts are slowed down, never cut: one test body per burst, run against one server
//! and against two cluster nodes on a real `redis-server`, with the sender and the
//! recipients on different nodes.

mod common;

use chat_server::{ClusterConfig, Config};
use chat_tests::{LineClient, RedisServer};
use common::TestServer;

/// One server, or two nodes of a cluster (and the Redis they share).
struct Chat {
    a: TestServer,
    b: Option<TestServer>,
    _redis: Option<RedisServer>,
}

impl Chat {
    async fn start(cluster: bool) -> Self {
        if !cluster {
            let a = common::start(Config::default()).await;
            return Self {
                a,
                b: None,
                _redis: None,
            };
        }
        let redis = RedisServer::start();
        let node = |name: &str| Config {
            cluster: Some(ClusterConfig {
                url: redis.url(),
                node: name.to_owned(),
                ca_file: None,
            }),
            ..Config::default()
        };
        let a = common::start(node("a")).await;
        let b = common::start(node("b")).await;
        Self {
            a,
            b: Some(b),
            _redis: Some(redis),
        }
    }

    /// Logs `name` in on the second node (the only server, with one).
    async fn login_elsewhere(&self, name: &str) -> LineClient {
        self.b.as_ref().unwrap_or(&self.a).login(name).await
    }

    async fn shutdown(self) {
        self.a.shutdown().await;
        if let Some(b) = self.b {
            b.shutdown().await;
        }
    }
}

const BURST: usize = 5_000;

async fn direct_burst_arrives_whole_and_in_order(cluster: bool) {
    let chat = Chat::start(cluster).await;
    let mut a1 = chat.a.login("a1").await;
    let mut b1 = chat.login_elsewhere("b1").await;
    let mut b2 = chat.login_elsewhere("b2").await;
    // Everyone is online everywhere before the burst.
    for client in [&mut a1, &mut b1, &mut b2] {
        while client.sync().await.1.len() < 3 {}
    }
    let mut burst = String::new();
    for i in 0..BURST {
        burst.push_str(&format!("b1: message {i}\n"));
    }
    burst.push_str("b2: marker\n");
    a1.send_raw(burst.as_bytes()).await;
    let mut i = 0;
    while i < BURST {
        let line = b1.recv().await;
        // Presence may still be on its way from the other node.
        if line.starts_with("joined ") {
            continue;
        }
        assert_eq!(
            line,
            format!("from a1: message {i}"),
            "message {i} of {BURST}"
        );
        i += 1;
    }
    b2.skip_until("from a1: marker").await;
    let (before, _) = a1.sync().await;
    assert!(
        before.iter().all(|line| !line.starts_with("error:")),
        "the sender got {before:?}"
    );
    chat.shutdown().await;
}

const SENDERS: usize = 100;
const PER_SENDER: usize = 50;

async fn a_hundred_senders_into_one_room_lose_nothing(cluster: bool) {
    let chat = Chat::start(cluster).await;
    let mut reader = chat.login_elsewhere("reader").await;
    reader.send("/join #burst").await;
    reader.skip_until("names #burst reader").await;
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        senders.push(chat.a.member(&format!("s{s}"), "#burst").await);
    }
    let mut tasks = Vec::new();
    for (s, mut sender) in senders.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mut burst = String::new();
            for i in 0..PER_SENDER {
                burst.push_str(&format!("#burst: s{s} m{i}\n"));
            }
            sender.send_raw(burst.as_bytes()).await;
            let (before, _) = sender.sync().await;
            assert!(
                before.iter().all(|line| !line.starts_with("error:")),
                "s{s} got {before:?}"
            );
        }));
    }
    // Each sender's messages arrive whole and in its order, ids growing.
    let mut next = vec![0; SENDERS];
    let mut last_id = 0u64;
    let mut got = 0;
    while got < SENDERS * PER_SENDER {
        let line = reader.recv().await;
        let Some(rest) = line.strip_prefix("from s") else {
            continue;
        };
        let (sender, rest) = rest.split_once(" #burst ").expect("a room line");
        let (id, text) = rest.split_once(": ").expect("an id and a text");
        let s: usize = sender.parse().expect("a sender number");
        let id: u64 = id.parse().expect("an id");
        assert!(id > last_id, "ids grow: {id} after {last_id}");
        last_id = id;
        assert_eq!(text, format!("s{s} m{}", next[s]), "from s{s}");
        next[s] += 1;
        got += 1;
    }
    for task in tasks {
        task.await.expect("a sender");
    }
    chat.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_burst_arrives_whole_and_in_order_local() {
    direct_burst_arrives_whole_and_in_order(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_burst_arrives_whole_and_in_order_cluster() {
    direct_burst_arrives_whole_and_in_order(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_senders_into_one_room_lose_nothing_local() {
    a_hundred_senders_into_one_room_lose_nothing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_senders_into_one_room_lose_nothing_cluster() {
    a_hundred_senders_into_one_room_lose_nothing(true).await;
}
