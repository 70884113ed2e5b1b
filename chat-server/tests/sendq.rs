//! The byte-bounded send queue, in process and in both modes (one server; two cluster
//! nodes sharing a Redis): a reader that keeps up survives a burst, a client that does
//! not read is cut off with the limit named, and nobody else waits. The sender sits on
//! node 0 and the reader on node 1.

mod common;

use std::time::{Duration, Instant};

use chat_server::Config;
use chat_tests::LineClient;
use common::{Chat, Mode, both_modes};

both_modes!(a_reading_client_sent_ten_thousand_short_lines_at_once_stays_connected);
async fn a_reading_client_sent_ten_thousand_short_lines_at_once_stays_connected(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut reader = chat.login_on(1, "reader").await;
    let mut sender = chat.login_on(0, "sender").await;
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
    // Closed first, so that no node lingers for them.
    drop((reader, sender));
    chat.shutdown().await;
}

both_modes!(a_client_that_does_not_read_is_cut_off_naming_the_limit_and_others_go_on);
async fn a_client_that_does_not_read_is_cut_off_naming_the_limit_and_others_go_on(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut slow = LineClient::connect_with_recv_buffer(chat.addr(1), 4096).await;
    slow.send("slow").await;
    // Its name is held (on every node) before anyone writes to it; it reads no more.
    slow.expect("welcome slow").await;
    let mut flooder = chat.login_on(0, "flooder").await;
    // On the slow client's node: that node goes on serving others.
    let mut bystander = chat.login_on(1, "bystander").await;
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
        let gone = !names.contains(&"slow".to_owned());
        // Slow's `left` and the bystander's own line come from two senders, so in either
        // order (a cluster node hears even its own departures back from Redis); the
        // `left` comes once, before the first reply without slow.
        let (left, own): (Vec<_>, Vec<_>) = before.iter().partition(|l| *l == "left slow");
        assert_eq!(own, ["from bystander: still here"]);
        assert_eq!(left.len(), usize::from(gone), "{before:?}");
        if gone {
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
            got == &whole || ["joined flooder", "joined bystander"].contains(&got.as_str()),
            "every line before the error is whole: {got:?}"
        );
    }
    drop((slow, flooder, bystander));
    chat.shutdown().await;
}
