//! The v2 client in a pseudo-terminal against the real server: buffers, mentions, the
//! unread marker, history after a restart, the outbox, paste confirmation, the mouse
//! toggle, readline keys, wide emoji, the config file and logs, and `--help`.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use chat_tests::{PtyClient, ServerProcess, keys};
use nix::sys::signal::Signal;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

fn client(server: &ServerProcess, name: &str, extra: &[&str]) -> PtyClient {
    let addr = server.addr.to_string();
    let mut args = vec!["--name", name, "--addr", &addr];
    args.extend_from_slice(extra);
    let client = PtyClient::spawn(&args, 100, 24);
    client.wait_for("● connected");
    client
}

/// A TCP proxy between a client and the server that the test can close, cutting every
/// connection and refusing new ones, and open again: a network outage on demand while
/// the server stays up (or is restarted behind it).
struct Gate {
    addr: SocketAddr,
    open: watch::Sender<bool>,
}

impl Gate {
    async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the gate");
        let addr = listener.local_addr().expect("the gate's address");
        let (open, rx) = watch::channel(true);
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut rx = rx.clone();
                if !*rx.borrow() {
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|open| !open) => {}
                    }
                });
            }
        });
        Self { addr, open }
    }

    fn close(&self) {
        self.open.send_replace(false);
    }

    fn open(&self) {
        self.open.send_replace(true);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_talk_in_a_room_and_switch_buffers() {
    let server = ServerProcess::start(&[]).await;
    let mut probe = server.login("probe").await;
    let mut alice = client(&server, "alice", &[]);
    let mut bob = client(&server, "bob", &[]);
    alice.type_keys("/join #rust\r");
    alice.wait_for("[#rust] ");
    bob.type_keys("/JOIN #rust\r");
    bob.wait_for("[#rust] ");
    // Alice hears of it, so the server has made bob a member. (His join line itself is
    // not shown: he has not spoken lately, and the smart filter is on.)
    alice.wait_for("│ #rust (2)");

    bob.type_keys("hello room: 10:30 works\r");
    alice.wait_for("bob: hello room: 10:30 works");
    alice.wait_for("│ #rust (2)");
    alice.type_keys("hi bob\r");
    bob.wait_for("alice: hi bob");

    // A direct message opens its own buffer, counted as unread in the bar.
    probe.send("alice: psst").await;
    alice.wait_for("4:probe 1");
    alice.type_keys(&keys::alt(4));
    alice.wait_for("probe: psst");
    alice.wait_for("[probe] ");
    alice.type_keys(keys::CTRL_N);
    alice.wait_for("[server] ");
    alice.type_keys("/buffer #rust\r");
    alice.wait_for("[#rust] ");
    alice.type_keys("/part\r");
    alice.wait_for("you left #rust");
    bob.wait_for("alice left #rust");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mention_lights_the_buffer_bar_and_rings_the_bell() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice", &[]);
    alice.type_keys("/join #rust\r");
    alice.wait_for("[#rust] ");
    bob.send("/join #rust").await;
    bob.skip_until("joined #rust bob").await;
    alice.type_keys(&keys::alt(1));
    alice.wait_for("[server] ");
    assert_eq!(alice.requests().bells, 0);
    bob.send("#rust: nothing for anyone").await;
    alice.wait_for("3:#rust 1");
    assert_eq!(alice.requests().bells, 0, "no bell without a mention");
    bob.send("#rust: hey ALICE, look at this").await;
    alice.wait_for("3:#rust 2!");
    // The bell is written before the frame that shows the mark.
    let requests = alice.requests();
    assert_eq!(requests.bells, 1, "{requests:?}");
    assert!(
        requests
            .titles
            .iter()
            .any(|t| t == b"chat-client: bob mentioned you in #rust"),
        "{requests:?}"
    );
    alice.type_keys(&keys::alt(3));
    alice.wait_for("bob: hey ALICE, look at this");
    alice.wait_until("the mark to clear", |s| !s.contents().contains("#rust 2!"));

    let mut quiet = client(&server, "carol", &["--no-bell"]);
    quiet.type_keys("/join #rust\r");
    quiet.wait_for("[#rust] ");
    bob.send("#rust: carol?").await;
    quiet.wait_for("bob: carol?");
    assert_eq!(quiet.requests().bells, 0, "--no-bell");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unread_marker_shows_where_a_buffer_was_left() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice", &[]);
    alice.type_keys("/join #rust\r");
    alice.wait_for("[#rust] ");
    bob.send("/join #rust").await;
    bob.skip_until("joined #rust bob").await;
    bob.send("#rust: already read").await;
    alice.wait_for("bob: already read");
    alice.type_keys(&keys::alt(2));
    alice.wait_for("[*] ");
    bob.send("#rust: arrived while away").await;
    alice.wait_for("3:#rust 1");
    alice.type_keys(&keys::alt(3));
    alice.wait_for("bob: arrived while away");
    let screen = alice.screen();
    let rows: Vec<&str> = screen.lines().collect();
    let marker = rows
        .iter()
        .position(|r| r.contains("── new ──"))
        .unwrap_or_else(|| panic!("no marker:\n{screen}"));
    assert!(rows[marker - 1].contains("already read"), "{screen}");
    assert!(rows[marker + 1].contains("arrived while away"), "{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_after_a_restart_with_db_fills_the_gap_without_duplicates() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let db = db.to_str().expect("UTF-8");
    let mut server = ServerProcess::start(&["--db", db]).await;
    let at = server.addr;
    let gate = Gate::start(at).await;
    let mut bob = server.login("bob").await;
    bob.send("/join #rust").await;
    bob.skip_until("joined #rust bob").await;
    bob.send("#rust: before alice came").await;
    bob.sync().await;
    let addr = gate.addr.to_string();
    let mut alice = PtyClient::spawn(
        &["--name", "alice", "--addr", &addr, "--join", "#rust"],
        100,
        24,
    );
    alice.wait_for("3:#rust");
    alice.type_keys(&keys::alt(3));
    // The first join shows the recent history, marked.
    alice.wait_for("bob: before alice came");
    alice.wait_for("history of #rust: 1");
    bob.skip_until("joined #rust alice").await;
    bob.send("#rust: live one").await;
    alice.wait_for("bob: live one");
    alice.type_keys("mine, sent live\r");
    while !bob.recv().await.starts_with("from alice #rust ") {}

    // Alice's network goes down; meanwhile the server restarts and bob talks on.
    gate.close();
    alice.wait_for("disconnected");
    server.signal(Signal::SIGTERM);
    server.wait_exit(Duration::from_secs(10)).await;
    let server = ServerProcess::start_at(&at.to_string(), &["--db", db]).await;
    let mut bob = server.login("bob").await;
    bob.send("/join #rust").await;
    bob.skip_until("joined #rust bob").await;
    bob.send("#rust: missed one").await;
    bob.send("#rust: missed two").await;
    bob.sync().await;
    gate.open();
    alice.wait_for("bob: missed two");
    alice.wait_for("history of #rust: 2");
    let screen = alice.screen();
    for text in [
        "before alice came",
        "live one",
        "mine, sent live",
        "missed one",
    ] {
        assert_eq!(screen.matches(text).count(), 1, "{text:?} once:\n{screen}");
    }
    let order: Vec<usize> = ["live one", "mine, sent live", "missed one", "missed two"]
        .iter()
        .map(|t| screen.find(t).expect("shown"))
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in order:\n{screen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_typed_while_disconnected_are_sent_once_after_reconnect() {
    let server = ServerProcess::start(&[]).await;
    let gate = Gate::start(server.addr).await;
    let mut bob = server.login("bob").await;
    let addr = gate.addr.to_string();
    let mut alice = PtyClient::spawn(&["--name", "alice", "--addr", &addr], 100, 24);
    alice.wait_for("● connected");
    bob.skip_until("joined alice").await;

    gate.close();
    alice.wait_for("disconnected");
    bob.expect("left alice").await;
    alice.type_keys("first while away\r");
    // Typed, not pasted: keys read together with a line break inside are a paste.
    alice.wait_for("first while away (pending)");
    alice.type_keys("second while away\r");
    alice.wait_for("second while away (pending)");
    alice.wait_for("2 pending");

    gate.open();
    bob.expect("joined alice").await;
    bob.expect("from alice *: first while away").await;
    bob.expect("from alice *: second while away").await;
    alice.wait_until("the pending marks to go", |s| {
        !s.contents().contains("(pending)")
    });
    let (before, _) = bob.sync().await;
    assert!(
        before.iter().all(|l| !l.starts_with("from alice")),
        "sent twice: {before:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_line_paste_is_confirmed_then_sent_line_by_line() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice", &[]);
    alice.type_keys("/query bob\r");
    alice.wait_for("[bob] ");
    bob.skip_until("joined alice").await;
    // Terminals send CR between pasted lines.
    alice.paste("bob: alpha\rbeta\tgamma\r/quit");
    alice.wait_for("paste 3 lines to bob?");
    alice.type_keys("y");
    bob.expect("from alice: bob: alpha").await;
    bob.expect("from alice: beta\tgamma").await;
    bob.expect("from alice: /quit").await;
    alice.wait_for("alice: beta    gamma");

    alice.paste("one\rtwo");
    alice.wait_for("paste 2 lines to bob?");
    alice.type_keys(keys::ESC);
    alice.wait_for("paste cancelled");
    bob.send("/who").await;
    bob.expect("users alice,bob").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mouse_is_captured_only_while_toggled_on() {
    let server = ServerProcess::start(&[]).await;
    let mut alice = client(&server, "alice", &[]);
    assert!(!alice.mouse_captured(), "off by default");
    alice.type_keys(keys::F2);
    alice.wait_until("mouse capture", |s| {
        s.mouse_protocol_mode() != vt100::MouseProtocolMode::None
    });
    alice.wait_for("mouse wheel scrolling on");
    alice.type_keys(keys::F2);
    alice.wait_until("the mouse given back", |s| {
        s.mouse_protocol_mode() == vt100::MouseProtocolMode::None
    });
    alice.type_keys(keys::CTRL_D);
    assert_eq!(alice.wait_exit(), 0);
    alice.assert_restored();

    let mut with_flag = client(&server, "alice", &["--mouse"]);
    with_flag.wait_until("mouse capture from --mouse", |s| {
        s.mouse_protocol_mode() != vt100::MouseProtocolMode::None
    });
    with_flag.type_keys(keys::CTRL_D);
    assert_eq!(with_flag.wait_exit(), 0);
    with_flag.assert_restored();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readline_keys_move_and_cut_words() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice", &[]);
    alice.type_keys("one two three");
    alice.type_keys(keys::ALT_B);
    alice.type_keys(keys::ALT_BACKSPACE);
    alice.wait_for("[*] one three");
    alice.type_keys(keys::CTRL_Y);
    alice.wait_for("[*] one two three");
    alice.type_keys(keys::CTRL_RIGHT);
    alice.type_keys("!\r");
    bob.expect("joined alice").await;
    bob.expect("from alice *: one two three!").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zwj_emoji_and_flags_leave_no_stray_glyphs() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut alice = client(&server, "alice", &[]);
    bob.expect("joined alice").await;
    bob.send("*: family 👨\u{200d}👩\u{200d}👧 flag 🇨🇳 heart ❤\u{fe0f} end")
        .await;
    alice.wait_for("flag");
    alice.type_keys("👨\u{200d}👩\u{200d}👧 typed");
    alice.wait_for("typed");
    // The user list's separator stays in its column on every row.
    let separator_column = |s: &vt100::Screen| {
        (2..20u16)
            .map(|row| {
                (0..100u16).find(|&col| s.cell(row, col).is_some_and(|c| c.contents() == "│"))
            })
            .collect::<Vec<_>>()
    };
    alice.wait_until("the separator in column 80 everywhere", |s| {
        separator_column(s).iter().all(|c| *c == Some(80))
    });
    alice.type_keys(keys::CTRL_L);
    alice.wait_until("a redraw that changes nothing", |s| {
        separator_column(s).iter().all(|c| *c == Some(80)) && s.contents().contains("end")
    });
    // The cursor stands right after what was typed, as drawn.
    alice.wait_until("the cursor after the emoji and the word", |s| {
        s.cursor_position() == (23, 4 + 6 + 6)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_file_is_read_and_logs_are_kept_per_buffer() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    bob.send("/join #rust").await;
    bob.skip_until("joined #rust bob").await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "name = \"alice\"\naddr = \"{}\"\nrooms = [\"#rust\"]\ntimestamp_format = \"%H:%M:%S\"\nlog_dir = \"logs\"\n",
            server.addr
        ),
    )
    .expect("writing the config");
    let mut alice = PtyClient::spawn(&["--config", config.to_str().expect("UTF-8")], 100, 24);
    alice.wait_for("● connected · alice @");
    bob.skip_until("joined #rust alice").await;
    bob.send("#rust: logged line").await;
    // Rooms from the config are joined at login; the buffer shown is still `*`.
    alice.wait_for("3:#rust 1");
    alice.type_keys(&keys::alt(3));
    alice.wait_for("bob: logged line");
    // timestamp_format from the config: seconds shown.
    alice.wait_until("an HH:MM:SS timestamp", |s| {
        s.contents().lines().any(|l| {
            let b = l.as_bytes();
            l.len() > 9 && b[2] == b':' && b[5] == b':' && l[8..].starts_with(" bob: logged line")
        })
    });
    alice.type_keys("/QUIT\r");
    assert_eq!(alice.wait_exit(), 0);
    let log =
        std::fs::read_to_string(dir.path().join("logs").join("#rust.log")).expect("the room's log");
    assert!(
        log.lines().any(|l| l.ends_with(" bob: logged line")),
        "{log}"
    );

    std::fs::write(&config, "nmae = \"typo\"\n").expect("writing the config");
    let output = std::process::Command::new(chat_tests::bin_path("chat-client"))
        .args(["--config", config.to_str().expect("UTF-8")])
        .stdin(Stdio::null())
        .output()
        .expect("running chat-client");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown field `nmae`"), "{stderr}");
}

#[test]
fn help_and_the_missing_name_error_show_only_what_is_required() {
    let run = |args: &[&str]| {
        std::process::Command::new(chat_tests::bin_path("chat-client"))
            .args(args)
            .env_remove("CHAT_NAME")
            .env_remove("CHAT_ADDR")
            .env("XDG_CONFIG_HOME", "/nonexistent")
            .env("HOME", "/nonexistent")
            .stdin(Stdio::null())
            .output()
            .expect("running chat-client")
    };
    let help = run(&["--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let usage = help
        .lines()
        .find(|l| l.starts_with("Usage:"))
        .expect("a usage line");
    assert_eq!(usage, "Usage: chat-client [OPTIONS]");
    assert!(help.contains("Alt-1..9"), "the keys are listed:\n{help}");
    assert!(
        help.contains("/join #room"),
        "the commands are listed:\n{help}"
    );

    let missing = run(&[]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.starts_with("chat-client: no name given: pass --name NAME"),
        "{stderr}"
    );
    assert!(!stderr.contains("--addr"), "{stderr}");
}

#[tokio::test]
async fn plain_mode_quit_is_the_clients_own_in_any_case() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let mut plain = tokio::process::Command::new(chat_tests::bin_path("chat-client"))
        .args(["--name", "alice", "--addr", &server.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting chat-client");
    let mut stdin = plain.stdin.take().expect("piped stdin");
    stdin
        .write_all(b"*: before quitting\n/QUIT\n")
        .await
        .expect("writing stdin");
    bob.skip_until("from alice *: before quitting").await;
    // stdin stays open: the client leaves because of /QUIT, without sending it.
    let output = tokio::time::timeout(chat_tests::DEADLINE, plain.wait_with_output())
        .await
        .expect("chat-client exits after /QUIT")
        .expect("waiting for chat-client");
    drop(stdin);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("error:"), "{stdout}");
    bob.expect("left alice").await;
}
