//! A real IRC client on the IRC listener: WeeChat (`weechat-headless`, from Debian) logs
//! in with SASL PLAIN to an account made over the native protocol, joins a room where a
//! native user has talked, exchanges messages with that user both ways, and reads what
//! was said before it came with `CHATHISTORY`.

use chat_tests::weechat::{Login, WeeChat};
use chat_tests::{LineClient, ServerProcess};

const PASSWORD: &str = "weechat-e2e-password";

/// What carol says in #room before WeeChat comes: its history.
const EARLIER: [&str; 3] = [
    "before weechat: one",
    "before weechat: two",
    "before weechat: three",
];

/// A server with accounts (`--db`) and an IRC listener, and wendy registered on it over
/// the native protocol.
async fn server_with_wendy(dir: &std::path::Path) -> ServerProcess {
    let db = dir.join("chat.db");
    let server = ServerProcess::start(&[
        "--db",
        db.to_str().expect("a UTF-8 path"),
        "--irc-addr",
        "127.0.0.1:0",
        "--server-name",
        "irc.test",
    ])
    .await;
    let mut wendy = server.login("wendy").await;
    wendy.send(&format!("/register {PASSWORD}")).await;
    wendy.expect("registered wendy").await;
    wendy.shutdown_write().await;
    wendy.expect_eof().await;
    server
}

/// Carol in #room, having said [`EARLIER`] there; returns her and the ids of those
/// messages, as `/history` tells them.
async fn carol_with_history(server: &ServerProcess) -> (LineClient, Vec<u64>) {
    let mut carol = server.login("carol").await;
    carol.send("/join #room").await;
    carol.expect("joined #room carol").await;
    for text in EARLIER {
        carol.send(&format!("#room: {text}")).await;
    }
    carol.send("/history #room").await;
    let ids = carol
        .lines_until("history-end #room complete")
        .await
        .iter()
        .filter_map(|line| line.strip_prefix("history #room "))
        .map(|entry| {
            // `<id> <time> carol: <text>`
            let (id, rest) = entry.split_once(' ').expect("history <#room> <id> ...");
            let (_time, said) = rest.split_once(' ').expect("... <time> <name>: <text>");
            (id.parse::<u64>().expect("a numeric id"), said.to_owned())
        })
        .enumerate()
        .map(|(i, (id, said))| {
            assert_eq!(said, format!("carol: {}", EARLIER[i]));
            id
        })
        .collect::<Vec<_>>();
    assert_eq!(ids.len(), EARLIER.len(), "carol's messages are in history");
    (carol, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weechat_logs_in_with_sasl_talks_with_a_native_user_and_reads_history() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = server_with_wendy(dir.path()).await;
    let (mut carol, earlier_ids) = carol_with_history(&server).await;

    // WeeChat as wendy, a registered name: the server lets it in only with her password,
    // given here by SASL PLAIN alone.
    let mut weechat = WeeChat::start(
        server.listening("irc"),
        &Login {
            nick: "wendy",
            password: PASSWORD,
        },
        &["#room"],
    );
    weechat
        .wait_until("server", "the end of SASL (903)", |log| {
            assert!(
                !log.iter()
                    .any(|line| line.message == "irc: disconnected from server"),
                "WeeChat was disconnected: {log:#?}"
            );
            log.iter()
                .any(|line| line.message == "SASL authentication successful")
        })
        .await;
    carol.skip_until("joined #room wendy").await;
    weechat
        .wait_for("#room", "its own join", |line| {
            line.prefix == "-->" && line.message.starts_with("wendy ")
        })
        .await;

    // WeeChat to the native user: carol gets the message as from wendy, with a new id.
    weechat.input("#room", "hello from weechat");
    let line = carol.skip_until_prefix("from wendy ").await;
    let id = line
        .strip_prefix("from wendy #room ")
        .and_then(|rest| rest.strip_suffix(": hello from weechat"))
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or_else(|| {
            panic!("expected \"from wendy #room <id>: hello from weechat\", got {line:?}")
        });
    assert_eq!(line, format!("from wendy #room {id}: hello from weechat"));
    assert!(
        earlier_ids.iter().all(|&earlier| earlier < id),
        "id {id} comes after {earlier_ids:?}"
    );

    // The native user to WeeChat.
    carol.send("#room: hello from native").await;
    let log = weechat
        .wait_until("#room", "carol's message", |log| {
            log.iter()
                .any(|line| line.said("carol", "hello from native"))
        })
        .await;
    // Nothing of the history came by itself at the join: it would be in the log, before
    // carol's last line.
    assert!(
        !log.iter()
            .any(|line| EARLIER.contains(&line.message.as_str())),
        "history came without CHATHISTORY: {log:?}"
    );

    // History: WeeChat 3.8 has no CHATHISTORY of its own; it negotiated
    // draft/chathistory, and asks with /quote. The earlier messages come as carol's, in
    // order.
    weechat.input("#room", "/quote CHATHISTORY LATEST #room * 50");
    let log = weechat
        .wait_until("#room", "carol's earlier messages", |log| {
            EARLIER
                .iter()
                .all(|text| log.iter().any(|line| line.said("carol", text)))
        })
        .await;
    let shown: Vec<&str> = log
        .iter()
        .filter(|line| EARLIER.contains(&line.message.as_str()))
        .map(|line| line.message.as_str())
        .collect();
    assert_eq!(shown, EARLIER, "each earlier message once, in order");

    // /quit: WeeChat sends QUIT and exits; carol sees wendy leave.
    let status = weechat.quit().await;
    assert!(status.success(), "weechat-headless exited with {status}");
    carol.skip_until("left #room wendy").await;
}
