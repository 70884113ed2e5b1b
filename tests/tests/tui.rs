//! The real `chat-client` in a pseudo-terminal against the real `chat-server` (or, for
//! hostile input, a fake server in this test), its screen read through `vt100`.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use chat_tests::{PtyClient, ServerProcess, keys};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::AsyncWriteExt;

fn client(server: &ServerProcess, name: &str) -> PtyClient {
    let addr = server.addr.to_string();
    let client = PtyClient::spawn(&["--name", name, "--addr", &addr], 100, 24);
    client.wait_for("● connected");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_visible_and_messages_flow_both_ways() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice");
    alice.wait_for("connected to");
    alice.wait_for("online (2)");
    bob.expect("joined alice").await;

    // Typed text goes to the buffer shown: `*` first, whatever colons it has.
    alice.type_keys("http://example.com is cool\r");
    bob.expect("from alice *: http://example.com is cool").await;

    alice.type_keys("/query bob\r");
    alice.wait_for("[bob] ");
    alice.type_keys("10:30 works for me\r");
    bob.expect("from alice: 10:30 works for me").await;
    alice.wait_for("alice: 10:30 works for me");

    bob.send("alice: hi back").await;
    alice.wait_for("bob: hi back");
    alice.type_keys("/msg * to all of you\r");
    bob.expect("from alice *: to all of you").await;
    alice.wait_for("[bob] ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cjk_is_typed_edited_and_received_byte_exact() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice");
    bob.expect("joined alice").await;

    alice.type_keys("/query bob\r");
    // Typed, not pasted: keys read together with a line break inside are a paste.
    alice.wait_for("[bob]");
    alice.type_keys("张三你好");
    alice.type_keys(keys::LEFT);
    alice.type_keys(keys::LEFT);
    alice.type_keys("，");
    alice.type_keys(" 😀");
    alice.wait_for("[bob] 张三， 😀你好");
    alice.type_keys(keys::ENTER);
    assert_eq!(
        bob.recv_bytes().await.expect("a line"),
        "from alice: 张三， 😀你好".as_bytes()
    );

    bob.send("alice: 世界和平 ünïcödé").await;
    alice.wait_for("bob: 世界和平 ünïcödé");
}

/// A fake server that logs the client in and then sends `lines` raw.
fn hostile_server(lines: Vec<Vec<u8>>) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding the fake server");
    let addr = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accepting the client");
        let mut reader = BufReader::new(stream.try_clone().expect("a second handle"));
        let mut name = String::new();
        reader.read_line(&mut name).expect("reading the name");
        let mut writer = stream;
        writer
            .write_all(format!("welcome {}", name.trim_end()).as_bytes())
            .expect("writing");
        writer.write_all(b"\nusers alice,bob\n").expect("writing");
        for line in lines {
            writer.write_all(&line).expect("writing");
            writer.write_all(b"\n").expect("writing");
        }
        // Keep the connection open until the client goes.
        let mut rest = String::new();
        while reader.read_line(&mut rest).map(|n| n > 0).unwrap_or(false) {}
    });
    addr
}

#[test]
fn escape_sequences_from_the_network_never_reach_the_terminal() {
    let addr = hostile_server(vec![
        b"from bob: before".to_vec(),
        b"from bob: \x1b]0;PWNED\x07\x1b[2J".to_vec(),
        b"from bob: \x1b]52;c;SGVsbG8=\x07 clipboard".to_vec(),
        b"from bob: hi\rfrom carol: forged".to_vec(),
        b"from bob: abc\x08\x08\x08from eve: backspaced".to_vec(),
        b"from bob: \x1b[10;10Hmoved \x1b[1Aup \x1b7saved".to_vec(),
        b"error: \x1b[H\x1b[2Jgone \xc2\x9b31m red".to_vec(),
        "from bob: \u{202e}desrever".as_bytes().to_vec(),
        b"from bob: after".to_vec(),
    ]);
    let addr = addr.to_string();
    // Without the client's own bell and title (a direct message rings, as a mention
    // does): any bell or title then came from the network.
    let mut client = PtyClient::spawn(&["--name", "alice", "--addr", &addr, "--no-bell"], 120, 24);
    // Bob's well-formed lines open his buffer; the rest are server notices.
    client.wait_for("3:bob 3");
    client.type_keys(&keys::alt(3));
    client.wait_for("bob: after");
    let screen = client.screen();
    assert!(screen.contains("bob: before"), "{screen}");
    assert!(screen.contains("\\u{202e}desrever"), "{screen}");
    client.type_keys(&keys::alt(1));
    client.wait_for("[server]");
    let screen = client.screen();
    assert!(
        screen.contains("\\u{1b}]0;PWNED\\u{7}\\u{1b}[2J"),
        "not shown escaped:\n{screen}"
    );
    assert!(
        screen.contains("\\u{1b}]52;c;SGVsbG8=\\u{7} clipboard"),
        "{screen}"
    );
    assert!(screen.contains("hi\\u{d}from carol: forged"), "{screen}");
    assert!(
        !screen
            .lines()
            .any(|l| l.contains("carol: forged") && !l.contains("\\u{d}")),
        "{screen}"
    );
    assert!(
        screen.contains("abc\\u{8}\\u{8}\\u{8}from eve: backspaced"),
        "{screen}"
    );
    assert!(
        screen.contains("\\u{1b}[10;10Hmoved \\u{1b}[1Aup \\u{1b}7saved"),
        "{screen}"
    );
    let requests = client.requests();
    assert!(
        requests.titles.is_empty(),
        "the title changed: {:?}",
        requests.titles
    );
    assert!(
        requests.clipboard.is_empty(),
        "the clipboard was written: {:?}",
        requests.clipboard
    );
    assert_eq!(requests.bells, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resizing_lays_the_screen_out_again() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = client(&server, "alice");
    // The roster's title; the notice after /who reads "online (1): alice".
    let roster = "│ online (1)";
    alice.wait_for(roster);
    alice.resize(50, 12);
    alice.wait_until("the roster to give way on a narrow terminal", |s| {
        !s.contents().contains(roster) && rule_at(s, 10, 50)
    });
    alice.resize(20, 4);
    alice.wait_for("Terminal too small");
    alice.resize(120, 30);
    alice.wait_until("the full layout on a wide terminal", |s| {
        s.contents().contains(roster) && rule_at(s, 28, 120)
    });
    alice.type_keys("still typing");
    alice.wait_until("the cursor after the typed text", |s| {
        s.cursor_position() == (29, 16)
    });
}

/// Whether row `row` is the rule above the input line, `width` cells wide.
fn rule_at(screen: &vt100::Screen, row: u16, width: u16) -> bool {
    screen
        .rows(0, width)
        .nth(usize::from(row))
        .is_some_and(|r| r == "─".repeat(usize::from(width)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_exits_0_restores_the_terminal_and_leaves_cleanly() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice");
    bob.expect("joined alice").await;
    // Two writes, the second once the first line has left the input: keys read together
    // with a line break inside are a paste (issue 21, defect 13), not typing.
    alice.type_keys("/msg bob last words\r");
    alice.wait_until("the line sent, which opens bob's buffer", |s| {
        chat_tests::pty::row(s, 1).contains("3:bob")
    });
    alice.type_keys("/QUIT\r");
    assert_eq!(alice.wait_exit(), 0);
    alice.assert_restored();
    bob.expect("from alice: last words").await;
    bob.expect("left alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_asks_before_losing_a_typed_line_then_exits_0() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice");
    alice.type_keys("half a line");
    alice.type_keys(keys::CTRL_C);
    alice.wait_for("Ctrl-C again quits");
    alice.type_keys(" more");
    alice.wait_for("[*] half a line more");
    alice.type_keys(keys::CTRL_C);
    alice.wait_for("Ctrl-C again quits");
    alice.type_keys(keys::CTRL_C);
    assert_eq!(alice.wait_exit(), 0);
    alice.assert_restored();
    bob.expect("joined alice").await;
    bob.expect("left alice").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_d_on_an_empty_line_and_sigterm_exit_0_too() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = client(&server, "alice");
    alice.type_keys(keys::CTRL_D);
    assert_eq!(alice.wait_exit(), 0);
    alice.assert_restored();

    let mut alice = client(&server, "alice");
    kill(Pid::from_raw(alice.pid()), Signal::SIGTERM).expect("signalling the client");
    assert_eq!(alice.wait_exit(), 0);
    alice.assert_restored();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_exits_1_with_the_reason_after_restoring() {
    let server = ServerProcess::start(&[]).await;
    let _alice = server.login("alice").await;
    let addr = server.addr.to_string();
    let mut second = PtyClient::spawn(&["--name", "alice", "--addr", &addr], 100, 24);
    assert_eq!(second.wait_exit(), 1);
    second.assert_restored();
    second.wait_for("chat-client: login refused: name already in use: alice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_shutdown_is_shown_and_the_client_reconnects_when_it_is_back() {
    let mut server = ServerProcess::start(&[]).await;
    let port = server.addr.port().to_string();
    let mut alice = client(&server, "alice");
    server.signal(Signal::SIGTERM);
    alice.wait_for("server says bye: server shutting down");
    alice.wait_for("reconnecting in");
    alice.wait_for("disconnected: server shutting down");
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );

    let server = ServerProcess::start_at(&format!("127.0.0.1:{port}"), &[]).await;
    alice.wait_until("the client to reconnect", |s| {
        s.contents().matches("connected to").count() == 2 && s.contents().contains("● connected")
    });
    let mut bob = server.login("bob").await;
    bob.send("*: welcome back").await;
    alice.wait_for("bob: welcome back");
    alice.type_keys(keys::CTRL_C);
    assert_eq!(alice.wait_exit(), 0);
}

#[tokio::test]
async fn plain_mode_relays_stdin_and_prints_until_the_server_closes() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut plain = tokio::process::Command::new(chat_tests::bin_path("chat-client"))
        .args(["--name", "alice", "--addr", &server.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting chat-client");
    let mut stdin = plain.stdin.take().expect("piped stdin");
    stdin
        .write_all("bob: hi from a pipe 你好\n/who\n".as_bytes())
        .await
        .expect("writing stdin");
    bob.expect("joined alice").await;
    bob.expect("from alice: hi from a pipe 你好").await;
    bob.send("alice: reply before eof").await;
    bob.sync().await;
    drop(stdin);
    let output = tokio::time::timeout(chat_tests::DEADLINE, plain.wait_with_output())
        .await
        .expect("chat-client exits after stdin EOF")
        .expect("waiting for chat-client");
    assert_eq!(
        output.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 output");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "welcome alice");
    assert!(lines.contains(&"users alice,bob"), "{stdout}");
    assert!(lines.contains(&"from bob: reply before eof"), "{stdout}");
    bob.expect("left alice").await;
}

#[tokio::test]
async fn plain_mode_reports_a_refused_login_with_status_1() {
    let server = ServerProcess::start(&[]).await;
    let _alice = server.login("alice").await;
    let output = tokio::process::Command::new(chat_tests::bin_path("chat-client"))
        .args([
            "--plain",
            "--name",
            "alice",
            "--addr",
            &server.addr.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("running chat-client");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "chat-client: login refused: name already in use: alice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_ten_thousand_messages_does_not_freeze_typing() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice");
    bob.expect("joined alice").await;
    let flood = tokio::spawn(async move {
        for i in 0..10_000 {
            bob.send(&format!("*: message {i}")).await;
        }
        bob.sync().await;
        bob
    });
    alice.type_keys("typed during the flood");
    alice.wait_for("[*] typed during the flood");
    alice.wait_for("bob: message 9999");
    let mut bob = flood.await.expect("the flooding task");
    alice.type_keys(keys::ENTER);
    bob.expect("from alice *: typed during the flood").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_leaves_cleanly_too() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = client(&server, "alice");
    kill(Pid::from_raw(alice.pid()), Signal::SIGHUP).expect("signalling the client");
    assert_eq!(alice.wait_exit(), 0);
    alice.assert_restored();
}

#[test]
fn a_hostile_server_flooding_garbage_cannot_freeze_the_client() {
    let mut lines: Vec<Vec<u8>> = (0..5000)
        .map(|i| format!("from bob: \x1b]0;T{i}\x07\x1b[2J\x1b]52;c;eA==\x07 {i}").into_bytes())
        .collect();
    lines.push(b"from bob: last before the garbage".to_vec());
    lines.push(vec![b'x'; 1024 * 1024]);
    lines.push(b"from bob: \xff\xfe invalid".to_vec());
    let addr = hostile_server(lines).to_string();
    // --no-bell: the client's own title for a direct message is not what is looked for.
    let mut client = PtyClient::spawn(&["--name", "alice", "--addr", &addr, "--no-bell"], 100, 24);
    client.wait_for("disconnected: line too long");
    client.type_keys(&keys::alt(3));
    client.wait_for("bob: last before the garbage");
    client.type_keys("still responsive");
    client.wait_for("[bob] still responsive");
    let requests = client.requests();
    assert!(
        requests.titles.is_empty() && requests.clipboard.is_empty(),
        "{requests:?}"
    );
    assert!(
        !client.screen().contains("invalid"),
        "nothing after the over-long line was read"
    );
    client.type_keys(keys::CTRL_C);
    client.wait_for("Ctrl-C again quits");
    client.type_keys(keys::CTRL_C);
    assert_eq!(client.wait_exit(), 0);
    client.assert_restored();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_still_restores_the_terminal() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let mut client = PtyClient::spawn(
        &["--name", "alice", "--addr", &addr, "--test-panic"],
        100,
        24,
    );
    assert_eq!(client.wait_exit(), 101, "the exit status of a Rust panic");
    client.assert_restored();
    client.wait_for("panic injected by --test-panic");
}
