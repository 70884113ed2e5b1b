//! Cluster mode's foundations against a real `redis-server` (one per test, on a free port,
//! persistence off): the start-up check and the name leases.

use std::sync::Arc;
use std::time::Duration;

use chat_proto::{HistoryRange, MessageId, RoomName, Timestamp};
use chat_server::cluster::rooms::{self, RoomMessage};
use chat_server::cluster::{self, lease};
use chat_tests::RedisServer;
use futures::StreamExt;
use lease::Owner;
use nix::sys::signal::Signal;
use tokio::sync::Barrier;

fn owner(node: &str, conn: u64) -> Owner {
    Owner {
        node: node.to_owned(),
        conn,
    }
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error_at_start() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.kill();
    let error = cluster::connect(&url)
        .await
        .expect_err("nothing listens there");
    let text = format!("{error:#}");
    assert!(
        text.starts_with(&format!("cannot reach Redis at {url}")),
        "{text}"
    );

    let paused = RedisServer::start();
    paused.signal(Signal::SIGSTOP);
    let error = cluster::connect(&paused.url())
        .await
        .expect_err("a paused Redis");
    let text = format!("{error:#}");
    assert!(
        text.starts_with(&format!("cannot reach Redis at {}", paused.url())),
        "{text}"
    );
    paused.signal(Signal::SIGCONT);

    assert!(cluster::connect("http://nope").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_taking_one_name_at_the_same_instant_exactly_one_wins() {
    let redis = RedisServer::start();
    for round in 0..50 {
        let barrier = Arc::new(Barrier::new(2));
        let mut racers = Vec::new();
        for node in ["a", "b"] {
            let mut conn = cluster::connect(&redis.url()).await.expect("connecting");
            let barrier = barrier.clone();
            racers.push(tokio::spawn(async move {
                barrier.wait().await;
                lease::acquire(&mut conn, &format!("bob{round}"), &owner(node, 1))
                    .await
                    .expect("acquiring")
            }));
        }
        let mut won = 0;
        for racer in racers {
            won += usize::from(racer.await.expect("a racer"));
        }
        assert_eq!(won, 1, "round {round}");
    }
}

#[tokio::test]
async fn only_the_owner_renews_or_releases_and_a_dead_owners_lease_runs_out() {
    let redis = RedisServer::start();
    let mut conn = cluster::connect(&redis.url()).await.expect("connecting");
    let a = owner("a", 7);
    let b = owner("b", 9);
    assert!(
        lease::acquire(&mut conn, "bob", &a)
            .await
            .expect("acquiring")
    );
    assert!(
        !lease::acquire(&mut conn, "bob", &b)
            .await
            .expect("acquiring")
    );
    assert!(
        !lease::release(&mut conn, "bob", &b)
            .await
            .expect("releasing"),
        "not b's"
    );
    assert!(
        !lease::release(&mut conn, "bob", &owner("a", 8))
            .await
            .expect("releasing")
    );

    assert!(
        lease::acquire(&mut conn, "carol", &a)
            .await
            .expect("acquiring")
    );
    assert!(
        lease::acquire(&mut conn, "dave", &b)
            .await
            .expect("acquiring")
    );
    let lost = lease::renew(&mut conn, &["bob", "carol", "dave", "erin"], &a)
        .await
        .expect("renewing");
    assert_eq!(lost, ["dave", "erin"], "dave is b's; erin is nobody's");
    let ttl = redis.command("PTTL chat:lease:bob");
    let ttl: u64 = ttl.trim_start_matches(':').trim().parse().expect("a TTL");
    assert!(
        ttl > lease::LEASE_TTL.as_millis() as u64 - 1_000,
        "renewed: {ttl} ms left"
    );

    assert!(
        lease::release(&mut conn, "bob", &a)
            .await
            .expect("releasing")
    );
    assert!(
        lease::acquire(&mut conn, "bob", &b)
            .await
            .expect("free again")
    );

    // A node that stops renewing loses its names when the lease runs out. Shorten the
    // wait: the lease's expiry is Redis's own, whatever its length.
    redis.command("PEXPIRE chat:lease:carol 200");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        lease::acquire(&mut conn, "carol", &b)
            .await
            .expect("carol is free")
    );
    let lost = lease::renew(&mut conn, &["carol"], &a)
        .await
        .expect("renewing");
    assert_eq!(lost, ["carol"], "a learns it lost carol");
}

/// Publishes from `node`, stamping the time as a node would.
async fn say(
    conn: &mut redis::aio::ConnectionManager,
    room: &RoomName,
    from: &str,
    text: &str,
    now_micros: u64,
) -> MessageId {
    keep(conn, room, from, text, now_micros, 2048).await
}

/// Publishes, keeping at most `keep` messages.
async fn keep(
    conn: &mut redis::aio::ConnectionManager,
    room: &RoomName,
    from: &str,
    text: &str,
    now_micros: u64,
    keep: usize,
) -> MessageId {
    let time = Timestamp::from_unix_millis(1_800_000_000_000).expect("a time");
    rooms::publish(conn, room, from, text, time, now_micros, keep)
        .await
        .expect("publishing")
}

async fn subscriber(url: &str, room: &RoomName) -> redis::aio::PubSub {
    let client = redis::Client::open(url).expect("a Redis URL");
    let mut pubsub = client
        .get_async_pubsub()
        .await
        .expect("a pubsub connection");
    pubsub
        .subscribe(rooms::channel(room))
        .await
        .expect("subscribing");
    pubsub
}

async fn receive(pubsub: &mut redis::aio::PubSub, n: usize) -> Vec<RoomMessage> {
    let mut stream = pubsub.on_message();
    let mut got = Vec::new();
    while got.len() < n {
        let message = tokio::time::timeout(chat_tests::DEADLINE, stream.next())
            .await
            .expect("a message within the deadline")
            .expect("the subscription is open");
        let payload: String = message.get_payload().expect("a text payload");
        got.push(RoomMessage::parse_published(&payload).expect("a published message"));
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_sees_one_room_order_with_the_same_ids() {
    let redis = RedisServer::start();
    let room = RoomName::parse("#rust").expect("a room");
    let mut watch_a = subscriber(&redis.url(), &room).await;
    let mut watch_b = subscriber(&redis.url(), &room).await;
    // Two nodes publish at once, 200 messages each.
    let mut publishers = Vec::new();
    for node in ["a", "b"] {
        let mut conn = cluster::connect(&redis.url()).await.expect("connecting");
        let room = room.clone();
        publishers.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for i in 0..200 {
                ids.push(say(&mut conn, &room, node, &format!("{node} {i}"), 0).await);
            }
            ids
        }));
    }
    let mut published = Vec::new();
    for publisher in publishers {
        let ids = publisher.await.expect("a publisher");
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "one node's ids grow");
        published.extend(ids);
    }
    let seen_a = receive(&mut watch_a, 400).await;
    let seen_b = receive(&mut watch_b, 400).await;
    assert_eq!(
        seen_a, seen_b,
        "both subscribers see one order and the same ids"
    );
    assert!(seen_a.windows(2).all(|w| w[0].id < w[1].id), "in id order");
    for node in ["a", "b"] {
        let mine: Vec<&str> = seen_a
            .iter()
            .filter(|m| m.from == node)
            .map(|m| m.text.as_str())
            .collect();
        let sent: Vec<String> = (0..200).map(|i| format!("{node} {i}")).collect();
        assert_eq!(mine, sent, "one sender's lines in the order sent");
    }
    published.sort();
    let ids: Vec<MessageId> = seen_a.iter().map(|m| m.id).collect();
    assert_eq!(ids, published);
}

#[tokio::test]
async fn history_reads_the_stream_by_id_and_says_when_some_are_gone() {
    let redis = RedisServer::start();
    let mut conn = cluster::connect(&redis.url()).await.expect("connecting");
    let room = RoomName::parse("#中文").expect("a room");
    let (empty, truncated) = rooms::history(&mut conn, &room, HistoryRange::Latest(50))
        .await
        .expect("reading");
    assert!(empty.is_empty() && !truncated);
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(say(&mut conn, &room, "bob", &format!("m{i} 你好"), 0).await);
    }
    // Ids follow the node's clock when it is ahead of the counter, and never go back.
    let later = say(&mut conn, &room, "bob", "late", 5_000_000_000_000_000).await;
    assert_eq!(later.get(), 5_000_000_000_000_000);
    let next = say(&mut conn, &room, "bob", "next", 0).await;
    assert_eq!(next.get(), later.get() + 1);

    let (latest, truncated) = rooms::history(&mut conn, &room, HistoryRange::Latest(3))
        .await
        .expect("reading");
    let texts: Vec<&str> = latest.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m9 你好", "late", "next"], "oldest first");
    assert!(!truncated);
    let (after, _) = rooms::history(&mut conn, &room, HistoryRange::After(ids[7]))
        .await
        .expect("reading");
    let texts: Vec<&str> = after.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["m8 你好", "m9 你好", "late", "next"]);

    // Retention keeps the newest: what was asked for and is gone is reported.
    let small = RoomName::parse("#small").expect("a room");
    let ids: Vec<MessageId> = {
        let mut ids = Vec::new();
        for i in 0..5 {
            ids.push(keep(&mut conn, &small, "bob", &format!("s{i}"), 0, 3).await);
        }
        ids
    };
    let (after, truncated) = rooms::history(&mut conn, &small, HistoryRange::After(ids[0]))
        .await
        .expect("reading");
    let texts: Vec<&str> = after.iter().map(|m| m.text.as_str()).collect();
    assert_eq!(texts, ["s2", "s3", "s4"]);
    assert!(truncated, "s1 is gone");
    let (after, truncated) = rooms::history(&mut conn, &small, HistoryRange::After(ids[1]))
        .await
        .expect("reading");
    assert_eq!(after.len(), 3);
    assert!(!truncated, "nothing after s1 is gone");
    let (latest, truncated) = rooms::history(&mut conn, &small, HistoryRange::Latest(50))
        .await
        .expect("reading");
    assert_eq!(latest.len(), 3);
    assert!(truncated, "50 asked for, older ones gone");
}
