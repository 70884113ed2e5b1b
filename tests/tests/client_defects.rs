//! The defects of issue 21 (a day of the v2 client as a new user would use it) as a user
//! meets them, in a pseudo-terminal against the real server. Each test fails on the
//! client as it was (main at f22c480).

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use chat_tests::pty::row;
use chat_tests::{DEADLINE, Gate, PtyClient, ServerProcess};
use tokio::io::AsyncWriteExt;

const COLUMNS: u16 = 100;

/// A server keeping accounts in `dir`.
async fn server_with_db(dir: &Path) -> ServerProcess {
    let db = dir.join("chat.db");
    ServerProcess::start(&["--db", db.to_str().expect("a UTF-8 path")]).await
}

/// Runs `chat-client --plain` with `args`, feeding it `input`, to its exit.
async fn plain_client(args: &[&str], input: &str) -> Output {
    let mut client = tokio::process::Command::new(chat_tests::bin_path("chat-client"))
        .arg("--plain")
        .args(args)
        .env_remove("CHAT_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting chat-client");
    let mut stdin = client.stdin.take().expect("piped stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("writing stdin");
    drop(stdin);
    tokio::time::timeout(DEADLINE, client.wait_with_output())
        .await
        .expect("chat-client exits after stdin EOF")
        .expect("waiting for chat-client")
}

/// A self-signed certificate for `names`, `CA:TRUE` as `openssl req -x509` makes it,
/// written to `dir/<stem>.pem` with its key: (cert, key) paths.
fn self_signed_ca(dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let names = names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
    let mut params = rcgen::CertificateParams::new(names).expect("certificate parameters");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("a certificate");
    let cert_path = dir.join(format!("{stem}.pem"));
    let key_path = dir.join(format!("{stem}.key"));
    std::fs::write(&cert_path, cert.pem()).expect("writing the certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("writing the key");
    (cert_path, key_path)
}

/// Alice's client at `addr` in a `columns`×24 terminal, once she is in #rust.
/// The client as alice at `addr`, once it says it is connected.
fn alice_connected(addr: &str, columns: u16) -> PtyClient {
    let alice = PtyClient::spawn(&["--name", "alice", "--addr", addr], columns, 24);
    alice.wait_for("● connected");
    alice
}

fn alice_in_rust(addr: &str, columns: u16) -> PtyClient {
    let mut alice = alice_connected(addr, columns);
    alice.type_keys("/j rust\r");
    alice.wait_for("you joined #rust");
    alice
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// Defect 3: the usual self-signed certificate (`CA:TRUE`) given with `--ca-file` was
/// refused (`CaUsedAsEndEntity`) with advice to pass `--ca-file`. It is pinned now; and a
/// certificate that is still refused is refused in words.
#[tokio::test]
async fn the_servers_own_self_signed_certificate_in_ca_file_is_trusted() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = self_signed_ca(dir.path(), "cert", &["localhost"]);
    let server = ServerProcess::start(&["--tls-cert", utf8(&cert), "--tls-key", utf8(&key)]).await;
    let addr = format!("localhost:{}", server.addr.port());
    let trusting = ["--name", "alice", "--addr", &addr, "--ca-file", utf8(&cert)];
    let out = plain_client(&trusting, "/who\n").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("users alice"),
        "{stderr}"
    );

    // In the terminal UI too.
    let alice = PtyClient::spawn(&trusting, COLUMNS, 24);
    alice.wait_for("● connected");

    // Another certificate in --ca-file: refused, saying why in words.
    let (other, _) = self_signed_ca(dir.path(), "other", &["localhost"]);
    let out = plain_client(
        &["--name", "bob", "--addr", &addr, "--ca-file", utf8(&other)],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "the server's certificate is not trusted: it is a CA certificate, which a server may only present if it is the very one given with --ca-file, and it is not signed by a certificate in {}",
            other.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("CaUsedAsEndEntity"), "{stderr}");

    // A certificate from a trusted CA, but for another name: the name is the problem.
    let ca_key = rcgen::KeyPair::generate().expect("a CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("a CA");
    let leaf_key = rcgen::KeyPair::generate().expect("a key");
    let leaf = rcgen::CertificateParams::new(vec!["example.org".to_owned()])
        .expect("certificate parameters")
        .signed_by(&leaf_key, &ca)
        .expect("a certificate signed by the CA");
    let (ca_path, leaf_path, leaf_key_path) = (
        dir.path().join("ca.pem"),
        dir.path().join("leaf.pem"),
        dir.path().join("leaf.key"),
    );
    std::fs::write(&ca_path, ca.pem()).expect("writing the CA");
    std::fs::write(&leaf_path, leaf.pem()).expect("writing the certificate");
    std::fs::write(&leaf_key_path, leaf_key.serialize_pem()).expect("writing the key");
    let misnamed = ServerProcess::start(&[
        "--tls-cert",
        utf8(&leaf_path),
        "--tls-key",
        utf8(&leaf_key_path),
    ])
    .await;
    let misnamed_addr = format!("localhost:{}", misnamed.addr.port());
    let out = plain_client(
        &[
            "--name",
            "bob",
            "--addr",
            &misnamed_addr,
            "--ca-file",
            utf8(&ca_path),
        ],
        "",
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "the server's certificate is not trusted: it is for example.org, not localhost"
        ),
        "{stderr}"
    );

    // Without --ca-file, the advice is to give one.
    let out = plain_client(&["--name", "bob", "--addr", &addr, "--tls"], "").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("it is not signed by a known authority; for a private CA or a self-signed certificate, pass --ca-file"),
        "{stderr}"
    );
}

/// Defect 15: at start, a certificate the client does not trust made the TUI retry
/// 1, 2, 4 s ... for ever. A first connection that fails for a reason retrying cannot
/// fix ends the TUI with status 1 and the reason, the terminal restored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_connection_that_cannot_work_ends_the_tui_with_the_reason() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = self_signed_ca(dir.path(), "cert", &["localhost"]);
    let server = ServerProcess::start(&["--tls-cert", utf8(&cert), "--tls-key", utf8(&key)]).await;
    let addr = format!("localhost:{}", server.addr.port());
    let mut alice = PtyClient::spawn(&["--name", "alice", "--addr", &addr, "--tls"], COLUMNS, 24);
    assert_eq!(alice.wait_exit(), 1);
    alice.assert_restored();
    alice.wait_for("chat-client: cannot connect to localhost:");
    alice.wait_for("the server's certificate is not trusted");

    // A host that does not exist (`.invalid` is reserved never to resolve).
    let mut alice = PtyClient::spawn(
        &["--name", "alice", "--addr", "no-such-host.invalid:8080"],
        COLUMNS,
        24,
    );
    assert_eq!(alice.wait_exit(), 1);
    alice.assert_restored();
    alice.wait_for("cannot find no-such-host.invalid:8080");
}

/// Defect 11: a plain client pointed at a TLS port looped on "server closed the
/// connection" with no hint, and plain mode exited 0 without a word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_tls_at_a_tls_port_is_told_to_use_tls() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = self_signed_ca(dir.path(), "cert", &["localhost"]);
    let server = ServerProcess::start(&["--tls-cert", utf8(&cert), "--tls-key", utf8(&key)]).await;
    let addr = server.addr.to_string();
    let hint = "the server answered in TLS: this port wants --tls (or --ca-file FILE)";

    let out = plain_client(&["--name", "alice", "--addr", &addr], "/who\n").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(hint), "{stderr}");

    let mut alice = PtyClient::spawn(&["--name", "alice", "--addr", &addr], COLUMNS, 24);
    assert_eq!(alice.wait_exit(), 1);
    alice.assert_restored();
    alice.wait_for(hint);
}

/// Defect 14: Shift-F3 ("next newer /search match") did nothing in xterm and tmux,
/// which send it as a cursor position report. F4 does it everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f4_moves_to_the_next_newer_search_match() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let mut alice = alice_connected(&addr, COLUMNS);
    alice.type_keys(&chat_tests::keys::alt(2));
    alice.type_keys("a needle here\r");
    alice.wait_for("alice: a needle here");
    alice.type_keys("/search needle\r");
    // The newest match is found first: there is nothing newer.
    alice.type_keys("\x1bOS");
    alice.wait_for("no newer match for \"needle\"");
}

/// Defect 13: without bracketed paste, a multi-line paste was sent line by line, and a
/// pasted `/who` ran. Keys that arrive at once with a line break inside are a paste,
/// which the paste guard asks about.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unbracketed_paste_of_several_lines_is_asked_about() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let addr = server.addr.to_string();
    let mut alice = alice_connected(&addr, COLUMNS);
    bob.expect("joined alice").await;
    alice.type_keys(&chat_tests::keys::alt(2));
    alice.wait_for("[*]");
    // One write, as a terminal without bracketed paste passes a paste on.
    alice.type_keys("first line\r/who\r");
    alice.wait_for("paste 2 lines to *? y or Enter sends them");
    alice.type_keys("y");
    bob.expect("from alice *: first line").await;
    bob.expect("from alice *: /who").await;
}

/// Defect 4: `--timestamp-format "%Y-%m-%d %H:%M"` was refused; any chrono format is
/// taken, and the date shows on every line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timestamp_format_with_a_date_is_used() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let alice = PtyClient::spawn(
        &[
            "--name",
            "alice",
            "--addr",
            &addr,
            "--timestamp-format",
            "%Y-%m-%d %H:%M",
        ],
        COLUMNS,
        24,
    );
    alice.wait_for("● connected");
    // `2026-12-07 10:50 — connected to ...`: digits where the format has them.
    let dated = |row: &str| {
        let shape: String = row
            .chars()
            .take(17)
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        shape == "9999-99-99 99:99 "
    };
    alice.wait_until("a dated line", |s| (0..24).any(|y| dated(&row(s, y))));
}

/// Defect 2: a password registered during the session is used for the next login, so a
/// reconnect is not refused ("name is registered"); and a login refused for a password
/// after a reconnect stops and offers `/login`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_set_in_the_session_logs_in_again_after_a_drop() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = server_with_db(dir.path()).await;
    let gate = Gate::start(server.addr).await;
    let addr = gate.addr.to_string();
    let mut alice = alice_connected(&addr, COLUMNS);
    alice.type_keys("/register erinpass1\r");
    alice.wait_for("alice is now registered");
    let mut bob = server.login("bob").await;

    gate.close();
    alice.wait_for("disconnected");
    bob.skip_until("left alice").await;
    gate.open();
    bob.skip_until("joined alice").await;
    alice.wait_for("● connected");

    // Another device changes the password: this one's is now wrong.
    let mut other = server.connect().await;
    other.send("alice erinpass1").await;
    other.expect("welcome alice").await;
    other.send("/password erinpass9").await;
    other.skip_until("password changed").await;
    drop(other);
    gate.close();
    alice.wait_until("the drop", |s| row(s, 0).contains("disconnected"));
    gate.open();
    alice.wait_until("the login refused, not retried", |s| {
        row(s, 0).contains("disconnected: wrong password · /reconnect")
    });
    alice.wait_for("type /login <password> to log in");
    alice.wait_for("--password-file");
    alice.type_keys("/login erinpass9");
    alice.wait_for("/login *********");
    assert!(!alice.screen().contains("erinpass9"), "{}", alice.screen());
    alice.type_keys("\r");
    bob.skip_until("joined alice").await;
    alice.wait_until("connected again", |s| row(s, 0).contains("● connected"));
}

/// Feature: extra highlight words (`--highlight`, `highlight = [...]`) are mentions: the
/// buffer gets `!` and the bell rings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_highlight_word_marks_its_buffer() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let addr = server.addr.to_string();
    let mut alice = PtyClient::spawn(
        &["--name", "alice", "--addr", &addr, "--highlight", "deploy"],
        COLUMNS,
        24,
    );
    alice.wait_for("● connected");
    bob.skip_until("joined alice").await;
    alice.type_keys("/join #ops\r");
    alice.wait_for("you joined #ops");
    bob.send("/join #ops").await;
    alice.wait_for("│ #ops (2)");
    alice.type_keys(&chat_tests::keys::alt(1));
    alice.wait_for("[server]");
    bob.send("#ops: time to deploy").await;
    alice.wait_until("#ops marked", |s| row(s, 1).contains("3:#ops 1!"));
    assert!(alice.requests().bells >= 1, "the bell rang");
}

/// Feature: Alt-A jumps to the next buffer with activity, highlights first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alt_a_jumps_to_the_buffer_with_activity() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let addr = server.addr.to_string();
    let mut alice = alice_connected(&addr, COLUMNS);
    bob.skip_until("joined alice").await;
    alice.type_keys(&chat_tests::keys::alt(1));
    alice.wait_for("[server]");
    bob.send("*: news for everyone").await;
    bob.send("alice: a word for you").await;
    alice.wait_until("bob's buffer marked", |s| row(s, 1).contains("3:bob 1!"));
    alice.type_keys("\x1ba");
    alice.wait_for("[bob]");
    alice.type_keys("\x1ba");
    alice.wait_for("[*]");
}

/// Feature, WeeChat habits: `/j rust` joins `#rust`, `/q bob text` opens the conversation
/// and sends the text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weechat_habits_join_and_query() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let addr = server.addr.to_string();
    let mut alice = alice_connected(&addr, COLUMNS);
    bob.skip_until("joined alice").await;
    alice.type_keys("/j rust\r");
    alice.wait_for("you joined #rust");
    alice.type_keys("/q bob see you at 10:30\r");
    bob.expect("from alice: see you at 10:30").await;
    alice.wait_for("[bob]");
}

/// Feature, WeeChat habits: Ctrl-R finds a line sent before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_r_brings_back_a_line_sent_before() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    let addr = server.addr.to_string();
    let mut alice = alice_connected(&addr, COLUMNS);
    bob.skip_until("joined alice").await;
    alice.type_keys(&chat_tests::keys::alt(2));
    alice.wait_for("[*]");
    alice.type_keys("hello there\r");
    bob.expect("from alice *: hello there").await;
    alice.type_keys("\x12");
    alice.wait_for("(reverse search)");
    alice.type_keys("the");
    alice.wait_for("[*] hello there");
    alice.type_keys("\r");
    alice.wait_until("the search ended", |s| {
        !s.contents().contains("(reverse search)")
    });
    alice.type_keys("\r");
    bob.expect("from alice *: hello there").await;
}

/// Feature: the smart filter (on by default with `--join-part fold`) shows the joins
/// and parts of people who spoke lately only; `--no-smart-filter` shows them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_smart_filter_hides_the_comings_and_goings_of_the_silent() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let alice = alice_in_rust(&addr, COLUMNS);
    let mut silent = server.login("silent").await;
    silent.send("/join #rust").await;
    alice.wait_for("│ #rust (2)");
    let mut talker = server.login("talker").await;
    talker.send("/join #rust").await;
    alice.wait_for("│ #rust (3)");
    talker.send("#rust: hello").await;
    alice.wait_for("talker: hello");
    silent.send("/part #rust").await;
    alice.wait_for("│ #rust (2)");
    talker.send("/part #rust").await;
    alice.wait_for("talker left #rust");
    let screen = alice.screen();
    assert!(!screen.contains("silent joined"), "{screen}");
    assert!(!screen.contains("silent left"), "{screen}");

    let mut all = PtyClient::spawn(
        &["--name", "carol", "--addr", &addr, "--no-smart-filter"],
        COLUMNS,
        24,
    );
    all.wait_for("● connected");
    all.type_keys("/j rust\r");
    all.wait_for("you joined #rust");
    silent.send("/join #rust").await;
    all.wait_for("silent joined #rust");
}

/// Feature: `/away [text]` (v3) shown in the status bar, the `away` reply shown in the
/// conversation, and `/whois`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn away_and_whois_in_the_real_client() {
    let server = ServerProcess::start(&[]).await;
    let mut bob = server.login("bob").await;
    bob.send("/away at lunch").await;
    bob.send("/whois bob").await;
    bob.skip_until("away bob: at lunch").await;
    let addr = server.addr.to_string();
    let mut alice = alice_connected(&addr, COLUMNS);
    bob.skip_until("joined alice").await;
    alice.type_keys("/q bob are you there?\r");
    bob.expect("from alice: are you there?").await;
    alice.wait_for("bob is away: at lunch");
    alice.type_keys("/whois bob\r");
    alice.wait_for("bob is online (1 session), idle");
    alice.type_keys("/away gone fishing\r");
    alice.wait_until("away in the status bar", |s| row(s, 0).contains("away"));
    // The bar shows what alice typed; her own /whois, answered after the /away on the
    // same connection, is what says the server has it.
    alice.type_keys("/whois alice\r");
    alice.wait_for("alice is away: gone fishing");
    bob.send("alice: hello?").await;
    bob.expect("away alice: gone fishing").await;
}

/// Feature (habits): `/quit message` quits, as WeeChat's does. The protocol has no quit
/// reason, so the message goes nowhere on the wire: the others see a plain `left`, and
/// only the `--log-dir` log keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_with_a_message_leaves_and_only_the_log_keeps_the_message() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let dir = tempfile::tempdir().expect("a temp dir");
    let logs = dir.path().join("logs");
    let mut bob = server.login("bob").await;
    let mut alice = PtyClient::spawn(
        &["--name", "alice", "--addr", &addr, "--log-dir", utf8(&logs)],
        COLUMNS,
        24,
    );
    alice.wait_for("● connected");
    bob.expect("joined alice").await;
    alice.type_keys("/quit gone fishing\r");
    assert_eq!(alice.wait_exit(), 0);
    alice.assert_restored();
    bob.expect("left alice").await;
    let log = std::fs::read_to_string(logs.join("server.log")).expect("the server buffer's log");
    assert!(log.trim_end().ends_with(" you quit: gone fishing"), "{log}");
    assert!(!server.log_text().contains("gone fishing"));
}

/// Feature: as WeeChat's `smart_filter_join_unmask`, a join the smart filter hid shows
/// after all, in its place, when that person speaks within 30 minutes of joining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_join_shows_in_its_place_when_its_author_speaks() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let mut alice = alice_in_rust(&addr, COLUMNS);
    let mut quiet = server.login("quiet").await;
    quiet.send("/join #rust").await;
    alice.wait_for("│ #rust (2)");
    alice.type_keys("meanwhile\r");
    alice.wait_for("alice: meanwhile");
    assert!(
        !alice.screen().contains("quiet joined"),
        "{}",
        alice.screen()
    );
    quiet.send("#rust: hello all").await;
    alice.wait_for("quiet: hello all");
    let screen = alice.screen();
    let at = |text: &str| screen.lines().position(|l| l.contains(text));
    let joined = at("quiet joined #rust").expect("the join shown");
    assert!(
        joined < at("alice: meanwhile").expect("alice's line"),
        "{screen}"
    );
}

/// The URL of the hyperlink tests: longer than two rows of 40 columns.
const LONG_URL: &str =
    "https://example.org/chat/issues/21?about=a-url-too-long-for-one-row-of-the-pane&page=2";

/// The URL as the screen shows it: from the row it starts on, the rows it fills, and the
/// start of the row it ends on; `None` if no row starts with it.
fn url_on_screen(screen: &vt100::Screen) -> Option<String> {
    let contents = screen.contents();
    let mut rows = contents.lines().skip_while(|r| !r.starts_with("https://"));
    let mut url = rows.next()?.to_owned();
    let (_, columns) = screen.size();
    while url.chars().count() % usize::from(columns.get()) == 0 {
        let Some(row) = rows.next() else { break };
        url.push_str(row.split(' ').next().unwrap_or_default());
    }
    Some(url.split(' ').next().unwrap_or_default().to_owned())
}

/// Feature: a URL is never broken by the wrap indent or the user list, so that the
/// terminal can select it, and it is an OSC 8 hyperlink unless `--no-hyperlinks`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_url_fills_whole_rows_and_is_a_hyperlink() {
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let mut alice = alice_in_rust(&addr, 80);
    let mut bob = server.login("bob").await;
    bob.send("/join #rust").await;
    alice.wait_for("│ #rust (2)");
    bob.send(&format!("#rust: see {LONG_URL} for more")).await;
    alice.wait_for("for more");
    let screen = alice.screen();
    let at = screen
        .lines()
        .position(|r| r.starts_with("https://"))
        .expect("the URL starts a row");
    let rows: Vec<&str> = screen.lines().collect();
    assert!(rows[at - 1].contains("bob: see "), "{screen}");
    assert_eq!(
        rows[at].chars().count(),
        80,
        "the user list makes way: {screen}"
    );
    assert!(!rows[at].contains('│'), "{screen}");
    alice.wait_until("the whole URL", |s| {
        url_on_screen(s).as_deref() == Some(LONG_URL)
    });
    let links = alice.requests().hyperlinks;
    assert!(links.iter().any(|l| l == LONG_URL.as_bytes()), "{links:?}");
    assert_eq!(
        links.last().map(Vec::as_slice),
        Some(&b""[..]),
        "every link is closed"
    );

    // At 40 columns, without the user list, on rows of 40.
    alice.resize(40, 12);
    alice.wait_until("the whole URL at 40 columns", |s| {
        url_on_screen(s).as_deref() == Some(LONG_URL)
    });

    let mut carol = PtyClient::spawn(
        &["--name", "carol", "--addr", &addr, "--no-hyperlinks"],
        80,
        24,
    );
    carol.wait_for("● connected");
    carol.type_keys("/j rust\r");
    carol.wait_for("│ #rust (3)");
    bob.send(&format!("#rust: again {LONG_URL}")).await;
    carol.wait_until("the URL", |s| url_on_screen(s).as_deref() == Some(LONG_URL));
    assert!(carol.requests().hyperlinks.is_empty());
}

/// Defect 16: `👍🏽` lost its skin tone, in the conversation and in the input. The client
/// writes it whole, one character two cells wide (vt100, as xterm, draws the tone apart,
/// so the bytes written are what says it was kept), and ← and Backspace take it in one
/// step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emoji_keeps_its_skin_tone_in_the_conversation_and_the_input() {
    use chat_tests::keys::{BACKSPACE, LEFT, RIGHT};
    let server = ServerProcess::start(&[]).await;
    let addr = server.addr.to_string();
    let mut bob = server.login("bob").await;
    let mut alice = alice_connected(&addr, 80);
    bob.expect("joined alice").await;
    bob.send("*: nice 👍🏽 work").await;
    alice.wait_for("work");
    let written = String::from_utf8_lossy(&alice.output()).into_owned();
    assert!(written.contains("nice 👍🏽"), "the tone was dropped");

    let cursor = |column: u16| move |s: &vt100::Screen| s.cursor_position() == (23, column);
    alice.type_keys("a👍🏽");
    alice.wait_until("the cursor after a and a two-cell 👍🏽", cursor(4 + 1 + 2));
    alice.type_keys(LEFT);
    alice.wait_until("one step left over 👍🏽", cursor(4 + 1));
    alice.type_keys(RIGHT);
    alice.wait_until("one step right over 👍🏽", cursor(4 + 1 + 2));
    alice.type_keys(BACKSPACE);
    alice.wait_until("one Backspace deletes 👍🏽", cursor(4 + 1));
    alice.type_keys("b\r");
    bob.expect("from alice *: ab").await;
}
