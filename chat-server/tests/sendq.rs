//! The byte-bounded send queue, in process: a reader that keeps up survives a burst, a
//! client that does not read is cut off with the limit named, and nobody else waits.

mod common;

use std::time::{Duration, Instant};

use chat_server::Config;
use chat_tests::LineClient;
use common::start;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_client_sent_ten_thousand_short_lines_at_once_stays_connected() {
    let server = start(Config::default()).await;
    let mut reader = server.login("reader").await;
    let mut sender = server.login("sender").await;
    let burst: String = (0..10_000).map(|i| format!("reader: {i}\n")).collect();
    sender.send_raw(burst.as_bytes()).await;
    sender.sync().await;
    reader.expect("joined sender").await;
    for i in 0..10_000 {
        reader.expect(&format!("from sender: {i}")).await;
    }
    let (before, names) = reader.sync().await;
    assert!(before.is_empty(), "{before:?}");
    assert_eq!(names, ["reader", "sender"]);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_cut_off_naming_the_limit_and_others_go_on() {
    let server = start(Config::default()).await;
    let mut slow = LineClient::connect_with_recv_buffer(server.addr, 4096).await;
    slow.send("slow").await;
    let mut flooder = server.login("flooder").await;
    let mut bystander = server.login("bystander").await;
    // 50 MB aimed at `slow`, which reads nothing meanwhile.
    let line = format!("slow: {}\n", "f".repeat(994));
    let chunk = line.repeat(1000);
    let mut slowest = Duration::ZERO;
    let mut cut_off = false;
    for _ in 0..50 {
        if flooder.try_send_raw(chunk.as_bytes()).await.is_err() {
            break;
        }
        let asked = Instant::now();
        bystander.send("bystander: still here").await;
        let (before, names) = bystander.sync().await;
        slowest = slowest.max(asked.elapsed());
        assert_eq!(
            before.last().map(String::as_str),
            Some("from bystander: still here")
        );
        if !names.contains(&"slow".to_owned()) {
            cut_off = true;
            break;
        }
    }
    assert!(cut_off, "the client that does not read was never cut off");
    assert!(slowest < Duration::from_secs(2), "a /who took {slowest:?}");
    let lines = slow.recv_until_eof().await;
    assert_eq!(
        lines.last().map(String::as_str),
        Some("error: send queue exceeded (1048576 bytes); you are not reading fast enough"),
    );
    let whole = format!("from flooder: {}", "f".repeat(994));
    for got in &lines[..lines.len() - 1] {
        assert!(
            got == &whole
                || ["welcome slow", "joined flooder", "joined bystander"].contains(&got.as_str()),
            "every line before the error is whole: {got:?}"
        );
    }
    server.shutdown().await;
}
