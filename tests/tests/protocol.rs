//! Protocol v1 against the real `chat-server` binary over real sockets.

use chat_tests::ServerProcess;

#[tokio::test]
async fn login_welcomes_the_user_and_tells_the_others() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect("joined bob").await;
    let (before, names) = bob.sync().await;
    assert_eq!(
        before,
        Vec::<String>::new(),
        "bob is not told about himself"
    );
    assert_eq!(names, ["alice", "bob"]);
}

#[tokio::test]
async fn a_name_already_online_is_refused_and_closed() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut second = server.connect().await;
    second.send("alice").await;
    second.expect("error: name already in use: alice").await;
    second.expect_eof().await;
    let (before, names) = alice.sync().await;
    assert_eq!(
        before,
        Vec::<String>::new(),
        "no joined or left for a refused login"
    );
    assert_eq!(names, ["alice"]);
}

#[tokio::test]
async fn invalid_names_are_refused_with_a_reason_and_closed() {
    let server = ServerProcess::start(&[]).await;
    let mut watcher = server.login("watcher").await;
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
        let mut client = server.connect().await;
        client.send(name).await;
        let reply = client.recv().await;
        assert!(reply.starts_with("error: "), "{name:?} got {reply:?}");
        client.expect_eof().await;
    }
    let (before, names) = watcher.sync().await;
    assert_eq!(before, Vec::<String>::new());
    assert_eq!(names, ["watcher"]);
}

#[tokio::test]
async fn cjk_names_and_text_arrive_byte_exact() {
    let server = ServerProcess::start(&[]).await;
    let mut zhang = server.login("张三").await;
    let mut li = server.login("李四").await;
    zhang.expect("joined 李四").await;
    zhang.send("李四: 你好，世界 😀 ünïcödé").await;
    let line = li.recv_bytes().await.expect("a line");
    assert_eq!(line, "from 张三: 你好，世界 😀 ünïcödé".as_bytes());
    let (_, names) = li.sync().await;
    assert_eq!(names, ["张三", "李四"]);
}

#[tokio::test]
async fn each_distinct_destination_gets_the_message_once() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.send(" bob , carol,bob ,, bob:   hi there  ").await;
    alice.send("bob,carol: second").await;
    // Alice's /who reply means both her messages are routed, so each recipient's own
    // /who afterwards returns everything they will ever get from her.
    let (before, _) = alice.sync().await;
    assert_eq!(before, ["joined bob", "joined carol"], "no error, no echo");
    let (before, _) = bob.sync().await;
    assert_eq!(
        before,
        ["joined carol", "from alice: hi there", "from alice: second"]
    );
    let (before, _) = carol.sync().await;
    assert_eq!(before, ["from alice: hi there", "from alice: second"]);
}

#[tokio::test]
async fn unknown_destinations_are_reported_and_known_ones_still_get_the_message() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect("joined bob").await;
    alice.send("nobody,bob,ghost,nobody: hello").await;
    alice.expect("error: no such user: nobody,ghost").await;
    bob.expect("from alice: hello").await;
}

#[tokio::test]
async fn star_reaches_everyone_but_the_sender() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.send("*: hello all").await;
    let (before, names) = alice.sync().await;
    assert_eq!(
        before,
        ["joined bob", "joined carol"],
        "the sender does not get its own broadcast"
    );
    assert_eq!(names, ["alice", "bob", "carol"]);
    bob.expect("joined carol").await;
    bob.expect("from alice *: hello all").await;
    carol.expect("from alice *: hello all").await;
}

#[tokio::test]
async fn crlf_line_endings_are_accepted() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.connect().await;
    alice.send_raw(b"alice\r\n").await;
    alice.expect("welcome alice").await;
    let mut bob = server.login("bob").await;
    alice.send_raw(b"bob: hi\r\n/who\r\n").await;
    alice.expect("joined bob").await;
    alice.expect("users alice,bob").await;
    assert_eq!(bob.recv_bytes().await.expect("a line"), b"from alice: hi");
}

#[tokio::test]
async fn bad_lines_get_an_error_and_relay_nothing() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
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
    bob.expect("from alice: tab\tis fine").await;
}

#[tokio::test]
async fn a_line_at_the_limit_is_accepted_and_one_byte_more_closes_the_connection() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
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
}

#[tokio::test]
async fn max_line_bytes_is_configurable() {
    let server = ServerProcess::start(&["--max-line-bytes", "16"]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect("joined bob").await;
    alice.send("bob: 0123456789a").await;
    bob.expect("from alice: 0123456789a").await;
    alice.send("bob: 0123456789ab").await;
    alice.expect("error: line too long").await;
    alice.expect_eof().await;
}

#[tokio::test]
async fn a_megabyte_without_newline_is_refused_and_memory_stays_bounded() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut flood = server.login("flood").await;
    bob.expect("joined flood").await;
    let peak_before = server.sample().hwm_kib;

    // 8 MiB, so that buffering it would show clearly. The server reads and discards what
    // follows the first 4097 bytes, so these writes complete; it may also close first.
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..128 {
        if flood.try_send_raw(&chunk).await.is_err() {
            break;
        }
    }
    flood.expect("error: line too long").await;
    flood.expect_eof().await;
    bob.expect("left flood").await;

    let grown = server.sample().hwm_kib.saturating_sub(peak_before);
    assert!(grown < 1024, "server peak memory grew by {grown} KiB");
    let (_, names) = bob.sync().await;
    assert_eq!(names, ["bob"]);
}

#[tokio::test]
async fn invalid_utf8_gets_an_error_and_nobody_else_notices() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut carol = server.login("carol").await;
    alice.send_raw(b"bob: \xff\xfe broken\n").await;
    alice.expect("joined bob").await;
    alice.expect("joined carol").await;
    alice.expect("error: invalid UTF-8").await;
    alice.expect_eof().await;
    carol.send("bob: still here").await;
    bob.expect("joined carol").await;
    bob.expect("left alice").await;
    bob.expect("from carol: still here").await;
}

#[tokio::test]
async fn an_unterminated_fragment_at_eof_is_never_routed() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.expect("joined bob").await;
    alice
        .send_raw(b"bob: complete\nbob: partial without newline")
        .await;
    alice.shutdown_write().await;
    alice.expect_eof().await;
    bob.expect("from alice: complete").await;
    bob.expect("left alice").await;
}

#[tokio::test]
async fn eof_is_a_clean_leave_and_everything_queued_is_still_delivered() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    for i in 0..500 {
        bob.send(&format!("alice: message {i}")).await;
    }
    bob.sync().await;
    alice.shutdown_write().await;
    alice.expect("joined bob").await;
    for i in 0..500 {
        alice.expect(&format!("from bob: message {i}")).await;
    }
    alice.expect_eof().await;
    bob.expect("left alice").await;
}

#[tokio::test]
async fn the_name_of_a_client_that_left_is_free_again() {
    let server = ServerProcess::start(&[]).await;
    let mut watcher = server.login("watcher").await;
    let mut alice = server.login("alice").await;
    alice.shutdown_write().await;
    alice.expect_eof().await;
    watcher.expect("joined alice").await;
    watcher.expect("left alice").await;
    let _alice = server.login("alice").await;
    watcher.expect("joined alice").await;
}

#[tokio::test]
async fn a_silent_connection_is_closed_at_the_handshake_timeout() {
    let server = ServerProcess::start(&["--handshake-timeout", "1"]).await;
    let mut bob = server.login("bob").await;
    let mut loris = server.connect().await;
    loris.send_raw(b"ali").await;
    loris.expect("error: login timed out").await;
    loris.expect_eof().await;
    let (before, names) = bob.sync().await;
    assert_eq!(
        before,
        Vec::<String>::new(),
        "no joined for a connection that never logged in"
    );
    assert_eq!(names, ["bob"]);
}

#[tokio::test]
async fn clients_over_max_clients_are_refused() {
    let server = ServerProcess::start(&["--max-clients", "2"]).await;
    let mut alice = server.login("alice").await;
    let _bob = server.login("bob").await;
    let mut third = server.connect().await;
    third.expect("error: server is full (2 clients)").await;
    third.expect_eof().await;
    let (_, names) = alice.sync().await;
    assert_eq!(names, ["alice", "bob"]);
}

#[tokio::test]
async fn the_accept_queue_holds_a_login_storm() {
    let server = ServerProcess::start(&[]).await;
    let out = std::process::Command::new("ss")
        .args(["-ltnH", &format!("( sport = :{} )", server.addr.port())])
        .output()
        .expect("running ss (iproute2)");
    let out = String::from_utf8_lossy(&out.stdout);
    // For a listening socket, ss shows the backlog as Send-Q (the third column).
    let backlog: u32 = out
        .split_whitespace()
        .nth(2)
        .and_then(|q| q.parse().ok())
        .unwrap_or_else(|| panic!("no listening socket in:\n{out}"));
    let somaxconn: u32 = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .expect("reading somaxconn")
        .trim()
        .parse()
        .expect("a number");
    assert_eq!(backlog, somaxconn.min(4096), "not the default of 128");
}

#[tokio::test]
async fn accepted_sockets_have_tcp_keepalive() {
    let server = ServerProcess::start(&[]).await;
    let _alice = server.login("alice").await;
    let out = std::process::Command::new("ss")
        .args([
            "-tno",
            "state",
            "established",
            &format!("( sport = :{} )", server.addr.port()),
        ])
        .output()
        .expect("running ss (iproute2)");
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("timer:(keepalive"),
        "no keepalive timer on the server socket:\n{out}"
    );
}
