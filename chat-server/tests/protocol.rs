//! Protocol v1 (docs/protocol.md), in process and in both modes: every rule on one server
//! and on a cluster of two nodes sharing a Redis, from one test body. A rule between two
//! users puts them on different nodes (in local mode both indexes are the one server).
//!
//! Barriers: a `/who` reply comes after everything its asker sent earlier was routed, and
//! after every line a user of the same node was sent before it; `Chat::login_on` waits
//! for one, so a login has been announced before the test goes on. A line from another
//! node crosses Redis pub/sub and may come later, so these tests wait for it (`expect`,
//! with a deadline), or for a later line of the same sender (`lines_until`): one sender's
//! lines keep their order in both modes.

mod common;

use std::time::Duration;

use chat_server::Config;
use common::{Chat, Mode, both_modes};

both_modes!(login_welcomes_the_user_and_tells_the_others);
async fn login_welcomes_the_user_and_tells_the_others(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    // Anything alice's login made her server tell bob comes before her first line.
    alice.send("bob: hi").await;
    assert_eq!(
        bob.lines_until("from alice: hi").await,
        Vec::<String>::new(),
        "bob is told neither about himself nor about alice, online before him"
    );
    let (before, names) = bob.sync().await;
    assert_eq!(before, Vec::<String>::new());
    assert_eq!(names, ["alice", "bob"]);
    chat.shutdown().await;
}

both_modes!(a_login_is_announced_only_to_users_already_online);
async fn a_login_is_announced_only_to_users_already_online(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    // Logins as any client does them, without the fixture's /who barrier: bob comes right
    // after alice's welcome, maybe before her `joined` has gone out.
    let mut alice = chat.connect_on(0).await;
    alice.send("alice").await;
    alice.expect("welcome alice").await;
    let mut bob = chat.connect_on(1).await;
    bob.send("bob").await;
    bob.expect("welcome bob").await;
    alice.expect("joined bob").await;
    alice.send("bob: hi").await;
    assert_eq!(
        bob.lines_until("from alice: hi").await,
        Vec::<String>::new(),
        "bob is not told about alice, online before him"
    );
    chat.shutdown().await;
}

both_modes!(a_name_already_online_is_refused_and_closed);
async fn a_name_already_online_is_refused_and_closed(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut second = chat.connect_on(1).await;
    second.send("alice").await;
    second.expect("error: name already in use: alice").await;
    second.expect_eof().await;
    // Bob's login on the refusing server is announced after anything that refusal
    // could have announced.
    let _bob = chat.login_on(1, "bob").await;
    assert_eq!(
        alice.lines_until("joined bob").await,
        Vec::<String>::new(),
        "no joined or left for a refused login"
    );
    let (_, names) = alice.sync().await;
    assert_eq!(names, ["alice", "bob"]);
    chat.shutdown().await;
}

both_modes!(invalid_names_are_refused_with_a_reason_and_closed);
async fn invalid_names_are_refused_with_a_reason_and_closed(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut watcher = chat.login_on(0, "watcher").await;
    let long = "a".repeat(33);
    for name in [
        "",
        "al ice",
        "a,b",
        "bob:",
        "*",
        "/who",
        long.as_str(),
        "zero\u{200B}width",
        "\u{3164}",
        "bob\u{202E}",
        "tab\tname",
        "bell\x07",
    ] {
        let mut client = chat.connect_on(1).await;
        client.send(name).await;
        let reply = client.recv().await;
        assert!(reply.starts_with("error: "), "{name:?} got {reply:?}");
        client.expect_eof().await;
    }
    let _late = chat.login_on(1, "late").await;
    assert_eq!(
        watcher.lines_until("joined late").await,
        Vec::<String>::new()
    );
    let (before, names) = watcher.sync().await;
    assert_eq!(before, Vec::<String>::new());
    assert_eq!(names, ["late", "watcher"]);
    chat.shutdown().await;
}

both_modes!(cjk_names_and_text_arrive_byte_exact);
async fn cjk_names_and_text_arrive_byte_exact(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut li = chat.login_on(1, "李四").await;
    let mut zhang = chat.login_on(0, "张三").await;
    li.expect("joined 张三").await;
    zhang.send("李四: 你好，世界 😀 ünïcödé").await;
    let line = li.recv_bytes().await.expect("a line");
    assert_eq!(line, "from 张三: 你好，世界 😀 ünïcödé".as_bytes());
    let (_, names) = li.sync().await;
    assert_eq!(names, ["张三", "李四"]);
    chat.shutdown().await;
}

both_modes!(each_distinct_destination_gets_the_message_once);
async fn each_distinct_destination_gets_the_message_once(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    let mut carol = chat.login_on(0, "carol").await;
    alice.expect("joined carol").await;
    bob.expect("joined carol").await;
    alice.send(" bob , carol,bob ,, bob:   hi there  ").await;
    alice.send("bob,carol: second").await;
    let (before, _) = alice.sync().await;
    assert_eq!(before, Vec::<String>::new(), "no error, no echo");
    // Her last line comes after every copy of the earlier ones.
    alice.send("bob,carol: last").await;
    assert_eq!(
        bob.lines_until("from alice: last").await,
        ["from alice: hi there", "from alice: second"]
    );
    assert_eq!(
        carol.lines_until("from alice: last").await,
        ["from alice: hi there", "from alice: second"]
    );
    chat.shutdown().await;
}

both_modes!(unknown_destinations_are_reported_and_known_ones_still_get_the_message);
async fn unknown_destinations_are_reported_and_known_ones_still_get_the_message(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    alice.send("nobody,bob,ghost,nobody: hello").await;
    alice.expect("error: no such user: nobody,ghost").await;
    bob.expect("from alice: hello").await;
    chat.shutdown().await;
}

both_modes!(star_reaches_everyone_but_the_sender);
async fn star_reaches_everyone_but_the_sender(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    let mut carol = chat.login_on(0, "carol").await;
    bob.expect("joined carol").await;
    alice.send("*: hello all").await;
    let (before, names) = alice.sync().await;
    assert_eq!(
        before,
        ["joined carol"],
        "the sender does not get its own broadcast"
    );
    assert_eq!(names, ["alice", "bob", "carol"]);
    bob.expect("from alice *: hello all").await;
    carol.expect("from alice *: hello all").await;
    chat.shutdown().await;
}

both_modes!(crlf_line_endings_are_accepted);
async fn crlf_line_endings_are_accepted(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.connect_on(0).await;
    alice.send_raw(b"alice\r\n").await;
    alice.expect("welcome alice").await;
    alice.send_raw(b"/who\r\n").await;
    alice.expect("users alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    alice.send_raw(b"bob: hi\r\n/who\r\n").await;
    alice.expect("users alice,bob").await;
    assert_eq!(bob.recv_bytes().await.expect("a line"), b"from alice: hi");
    chat.shutdown().await;
}

both_modes!(bad_lines_get_an_error_and_relay_nothing);
async fn bad_lines_get_an_error_and_relay_nothing(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    let cases = [
        (
            "no colon here",
            "error: expected \"<name>[,<name>...]: <text>\" or /who",
        ),
        ("/nope", "error: unknown command \"/nope\""),
        (": text", "error: no destination"),
        ("bob:", "error: empty message"),
        ("bob:    ", "error: empty message"),
        (
            "bob: evil\x1b]0;PWNED\x07",
            "error: control characters are not allowed in messages",
        ),
        (
            "bob: line\rfrom carol: forged",
            "error: control characters are not allowed in messages",
        ),
        (
            "bob: c1 \u{9b}2J",
            "error: control characters are not allowed in messages",
        ),
        (
            "bob: bell\x07",
            "error: control characters are not allowed in messages",
        ),
        ("bo b: x", "error: invalid destination \"bo b\""),
    ];
    for (line, _) in &cases {
        alice.send(line).await;
    }
    for (line, want) in &cases {
        assert_eq!(alice.recv().await, *want, "reply to {line:?}");
    }
    alice.send("bob: tab\tis fine").await;
    let (before, names) = alice.sync().await;
    assert_eq!(before, Vec::<String>::new());
    assert_eq!(names, ["alice", "bob"], "the connection stays open");
    // Anything relayed from the bad lines would come before this one.
    bob.expect("from alice: tab\tis fine").await;
    chat.shutdown().await;
}

both_modes!(a_line_at_the_limit_is_accepted_and_one_byte_more_closes_the_connection);
async fn a_line_at_the_limit_is_accepted_and_one_byte_more_closes_the_connection(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    let text = "x".repeat(4096 - "bob: ".len());
    alice.send_raw(format!("bob: {text}\r\n").as_bytes()).await;
    bob.expect(&format!("from alice: {text}")).await;
    alice.send_raw(format!("bob: {text}\n").as_bytes()).await;
    bob.expect(&format!("from alice: {text}")).await;

    alice.send_raw(format!("bob: {text}y\n").as_bytes()).await;
    alice.expect("error: line too long").await;
    alice.expect_eof().await;
    bob.expect("left alice").await;
    chat.shutdown().await;
}

both_modes!(max_line_bytes_is_configurable);
async fn max_line_bytes_is_configurable(mode: Mode) {
    let config = Config {
        max_line_bytes: 16,
        ..Config::default()
    };
    let chat = Chat::start(mode, config).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    alice.send("bob: 0123456789a").await;
    bob.expect("from alice: 0123456789a").await;
    alice.send("bob: 0123456789ab").await;
    alice.expect("error: line too long").await;
    alice.expect_eof().await;
    bob.expect("left alice").await;
    chat.shutdown().await;
}

both_modes!(invalid_utf8_gets_an_error_and_nobody_else_notices);
async fn invalid_utf8_gets_an_error_and_nobody_else_notices(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    let mut carol = chat.login_on(0, "carol").await;
    alice.send_raw(b"bob: \xff\xfe broken\n").await;
    alice.expect("joined carol").await;
    alice.expect("error: invalid UTF-8").await;
    alice.expect_eof().await;
    // Carol is on alice's server: her line to bob comes after alice's `left`.
    carol.send("bob: still here").await;
    bob.expect("joined carol").await;
    bob.expect("left alice").await;
    bob.expect("from carol: still here").await;
    chat.shutdown().await;
}

both_modes!(an_unterminated_fragment_at_eof_is_never_routed);
async fn an_unterminated_fragment_at_eof_is_never_routed(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    alice
        .send_raw(b"bob: complete\nbob: partial without newline")
        .await;
    alice.shutdown_write().await;
    alice.expect_eof().await;
    bob.expect("from alice: complete").await;
    bob.expect("left alice").await;
    chat.shutdown().await;
}

both_modes!(eof_is_a_clean_leave_and_everything_queued_is_still_delivered);
async fn eof_is_a_clean_leave_and_everything_queued_is_still_delivered(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    let mut carol = chat.login_on(0, "carol").await;
    bob.expect("joined carol").await;
    for i in 0..500 {
        bob.send(&format!("alice: message {i}")).await;
    }
    // Carol shares alice's server: once bob's next line reached her, his 500 earlier
    // ones are in alice's queue, unread.
    bob.send("carol: all sent").await;
    carol.expect("from bob: all sent").await;
    alice.shutdown_write().await;
    alice.expect("joined carol").await;
    for i in 0..500 {
        alice.expect(&format!("from bob: message {i}")).await;
    }
    alice.expect_eof().await;
    bob.expect("left alice").await;
    chat.shutdown().await;
}

both_modes!(the_name_of_a_client_that_left_is_free_again);
async fn the_name_of_a_client_that_left_is_free_again(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut watcher = chat.login_on(0, "watcher").await;
    let mut alice = chat.login_on(0, "alice").await;
    alice.shutdown_write().await;
    alice.expect_eof().await;
    watcher.expect("joined alice").await;
    watcher.expect("left alice").await;
    // Free on every server, not only where she was.
    let _alice = chat.login_on(1, "alice").await;
    watcher.expect("joined alice").await;
    chat.shutdown().await;
}

both_modes!(a_silent_connection_is_closed_at_the_handshake_timeout);
async fn a_silent_connection_is_closed_at_the_handshake_timeout(mode: Mode) {
    let config = Config {
        handshake_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let chat = Chat::start(mode, config).await;
    let mut bob = chat.login_on(0, "bob").await;
    let mut loris = chat.connect_on(1).await;
    loris.send_raw(b"ali").await;
    loris.expect("error: login timed out").await;
    loris.expect_eof().await;
    let _late = chat.login_on(1, "late").await;
    assert_eq!(
        bob.lines_until("joined late").await,
        Vec::<String>::new(),
        "no joined for a connection that never logged in"
    );
    let (_, names) = bob.sync().await;
    assert_eq!(names, ["bob", "late"]);
    chat.shutdown().await;
}

both_modes!(clients_over_max_clients_are_refused);
async fn clients_over_max_clients_are_refused(mode: Mode) {
    let config = Config {
        max_clients: 2,
        ..Config::default()
    };
    // The limit is per server process: in a cluster, per node.
    let chat = Chat::start(mode, config).await;
    let mut alice = chat.login_on(0, "alice").await;
    let _bob = chat.login_on(0, "bob").await;
    let mut third = chat.connect_on(0).await;
    third.expect("error: server is full (2 clients)").await;
    third.expect_eof().await;
    let (_, names) = alice.sync().await;
    assert_eq!(names, ["alice", "bob"]);
    chat.shutdown().await;
}
