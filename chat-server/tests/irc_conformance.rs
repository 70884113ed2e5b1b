//! Regression tests for what the public IRC conformance suite (irctest, run by
//! `tests/irctest/run.sh`) found wrong in the IRC listener: each test here is the
//! smallest case of one irctest failure, so it stays fixed without irctest.

mod common;

use chat_server::Config;
use chat_tests::irc::{IrcClient, IrcLine};

const SERVER: &str = "My.Little.Server";

fn config() -> Config {
    Config {
        server_name: SERVER.to_owned(),
        ..Config::default()
    }
}

/// Every line of `lines` as it came, for assertion messages.
fn raw(lines: &[IrcLine]) -> Vec<&str> {
    lines.iter().map(|l| l.raw.as_str()).collect()
}

/// Replies the reader builds itself (here `PONG`) end in exactly one `\r\n`: irctest
/// refuses a line with a stray `\r` in it.
#[tokio::test]
async fn replies_made_by_the_reader_end_in_one_crlf() {
    let server = common::start(config()).await;
    let (mut client, _) = IrcClient::register(server.irc_addr, "foo", &[]).await;
    client.send("PING abcdef").await;
    let pong = client.next("PONG").await;
    assert_eq!(pong.params, [SERVER, "abcdef"], "{}", pong.raw);
    assert!(!pong.raw.contains('\r'), "{:?}", pong.raw);
    client.send("FOOBAR").await;
    let lines = client.sync().await;
    assert!(
        lines.iter().all(|l| !l.raw.contains('\r')),
        "{:?}",
        raw(&lines)
    );
    server.shutdown().await;
}
