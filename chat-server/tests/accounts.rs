//! Accounts and offline messages, in process: register, log in with a password, wrong
//! and missing passwords, folded names, password changes, persistence across a restart,
//! offline mail delivered once, the login throttle, direct history between two accounts,
//! and `--max-per-ip`.
//!
//! Most run in both modes (one server with a SQLite file; two cluster nodes sharing a
//! Redis), with the two users of a rule on different nodes and a restart restarting
//! every node. Accounts reach the other nodes through Redis, as the lines do: a node
//! that has shown a line (a `/who` reply, a `welcome`, a `left`) sent after an account
//! change knows that change.

mod common;

use std::net::SocketAddr;
use std::path::Path;

use chat_server::Config;
use chat_tests::LineClient;
use common::{Chat, Mode, both_modes, start};

const PASSWORD: &str = "correct horse";

fn with_db(path: &Path) -> Config {
    Config {
        db: Some(path.to_owned()),
        ..Config::default()
    }
}

/// Connects to `addr` and sends `line` as the login line; returns the client and its
/// first reply.
async fn attempt_at(addr: SocketAddr, line: &str) -> (LineClient, String) {
    let mut client = LineClient::connect(addr).await;
    client.send(line).await;
    let reply = client.recv().await;
    (client, reply)
}

/// [`attempt_at`] node `node` of `chat`.
async fn attempt(chat: &Chat, node: usize, line: &str) -> (LineClient, String) {
    attempt_at(chat.addr(node), line).await
}

/// Logs in on `node` with `name password`, its `welcome` read.
async fn login(chat: &Chat, node: usize, name: &str, password: &str) -> LineClient {
    let (client, reply) = attempt(chat, node, &format!("{name} {password}")).await;
    assert_eq!(reply, format!("welcome {name}"));
    client
}

/// Logs in as `name` on `node` and registers it with [`PASSWORD`]. When this returns the
/// account has gone out (its `/who` reply came after it): what any node answers to a
/// later line (a `/who` reply, a `welcome`) comes after that node learned it.
async fn register(chat: &Chat, node: usize, name: &str) -> LineClient {
    let mut client = chat.login_on(node, name).await;
    client.send(&format!("/register {PASSWORD}")).await;
    client.expect(&format!("registered {name}")).await;
    let (before, _) = client.sync().await;
    assert_eq!(before, Vec::<String>::new(), "{name} registering");
    client
}

/// Leaves and waits until the chat has seen it go (its name is free on every node).
async fn leave(mut client: LineClient) {
    client.shutdown_write().await;
    client.recv_until_eof().await;
}

// Local only: a cluster always keeps accounts (in Redis), so there is no server without.
#[tokio::test]
async fn accounts_need_a_database() {
    let server = start(Config::default()).await;
    let mut alice = server.login("alice").await;
    alice.send(&format!("/register {PASSWORD}")).await;
    alice
        .expect("error: accounts need a server started with --db, so they survive a restart")
        .await;
    alice.send("/password another password").await;
    alice
        .expect("error: accounts need a server started with --db, so they survive a restart")
        .await;
    server.shutdown().await;
}

both_modes!(a_registered_name_needs_its_password);
async fn a_registered_name_needs_its_password(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    let mut witness = chat.login_on(1, "witness").await;
    let mut alice = chat.login_on(0, "alice").await;
    alice.send(&format!("/register {PASSWORD}")).await;
    alice.expect("registered alice").await;
    alice.send("/register another password").await;
    alice.expect("error: alice is already registered").await;
    alice.send("/register short").await;
    alice
        .expect("error: password too weak: use at least 8 bytes")
        .await;
    leave(alice).await;
    // Her account went out before her departure: node 1 knows it once it tells of that.
    witness.expect("joined alice").await;
    witness.expect("left alice").await;

    for (line, reply) in [
        (
            "alice".to_owned(),
            "error: name is registered; log in with \"alice <password>\"",
        ),
        (
            "Alice".to_owned(),
            "error: name is registered; log in with \"alice <password>\"",
        ),
        ("alice wrong password".to_owned(), "error: wrong password"),
        (
            format!("bob {PASSWORD}"),
            "error: bob is not registered; log in with the name alone",
        ),
    ] {
        let (mut client, got) = attempt(&chat, 1, &line).await;
        assert_eq!(got, reply, "{line:?}");
        client.expect_eof().await;
    }
    let alice = login(&chat, 1, "alice", PASSWORD).await;
    leave(alice).await;
    // The owner may log in under any spelling of the folded name.
    drop(login(&chat, 0, "ALICE", PASSWORD).await);
    drop(witness);
    chat.shutdown().await;
}

both_modes!(a_changed_password_replaces_the_old_one_and_survives_a_restart);
async fn a_changed_password_replaces_the_old_one_and_survives_a_restart(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    let mut alice = register(&chat, 0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.expect("joined bob").await;
    alice.send("/password a much better one").await;
    alice.expect("password changed").await;
    bob.send("/password whatever123").await;
    bob.expect("error: bob is not registered; /register first")
        .await;
    leave(alice).await;
    // The change went out before her departure: node 1 knows it once it tells of that.
    bob.expect("left alice").await;
    let (mut old, reply) = attempt(&chat, 1, &format!("alice {PASSWORD}")).await;
    assert_eq!(reply, "error: wrong password");
    old.expect_eof().await;
    drop(old);
    leave(login(&chat, 1, "alice", "a much better one").await).await;
    drop(bob);
    let chat = chat.restart().await;

    let (mut old, reply) = attempt(&chat, 1, &format!("alice {PASSWORD}")).await;
    assert_eq!(reply, "error: wrong password");
    old.expect_eof().await;
    drop(old);
    drop(login(&chat, 0, "alice", "a much better one").await);
    chat.shutdown().await;
}

both_modes!(offline_mail_is_stored_then_delivered_once_after_welcome);
async fn offline_mail_is_stored_then_delivered_once_after_welcome(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let bob = register(&chat, 1, "bob").await;
    alice.expect("joined bob").await;
    leave(bob).await;
    // Bob's account went out before his departure: node 0 knows it once it tells of that.
    alice.expect("left bob").await;
    alice.send("bob,ghost: first: with a colon").await;
    alice.expect("stored bob").await;
    alice.expect("error: no such user: ghost").await;
    alice.send("BOB: second").await;
    alice.expect("stored bob").await;
    drop(alice);

    // A restart between storing and delivering loses nothing.
    let chat = chat.restart().await;
    let mut bob = login(&chat, 1, "bob", PASSWORD).await;
    let first = bob.recv().await;
    let second = bob.recv().await;
    bob.expect("history-end missed 2").await;
    for (line, text) in [(&first, "first: with a colon"), (&second, "second")] {
        let fields: Vec<&str> = line.splitn(5, ' ').collect();
        assert_eq!(fields[..2], ["history", "@alice"], "{line:?}");
        assert!(fields[2].parse::<u64>().is_ok(), "{line:?}");
        assert_eq!(fields[4], format!("alice: {text}"));
    }
    leave(bob).await;
    let mut bob = login(&chat, 0, "bob", PASSWORD).await;
    let (before, _) = bob.sync().await;
    assert!(before.is_empty(), "delivered once: {before:?}");
    leave(bob).await;
    let chat = chat.restart().await;
    let mut bob = login(&chat, 1, "bob", PASSWORD).await;
    let (before, _) = bob.sync().await;
    assert!(before.is_empty(), "not again after a restart: {before:?}");
    drop(bob);
    chat.shutdown().await;
}

// Local only: the limit is per server, so per node in a cluster; there is nothing
// between nodes to check.
#[tokio::test]
async fn max_per_ip_refuses_the_next_connection_until_one_closes() {
    let server = start(Config {
        max_per_ip: Some(2),
        ..Config::default()
    })
    .await;
    let one = server.login("one").await;
    let _two = server.login("two").await;
    let (mut three, reply) = attempt_at(server.addr, "three").await;
    assert_eq!(
        reply,
        "error: too many connections from 127.0.0.1 (at most 2)"
    );
    three.expect_eof().await;
    leave(one).await;
    // The slot is freed when the connection task ends, just after the client saw EOF;
    // no line marks that moment, so try a few times.
    let mut attempts = 0;
    loop {
        let (_client, reply) = attempt_at(server.addr, "three").await;
        if reply == "welcome three" {
            break;
        }
        attempts += 1;
        assert!(attempts < 100, "the slot never came back: {reply}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    server.shutdown().await;
}

both_modes!(three_wrong_passwords_make_even_the_right_one_wait_on_every_node);
async fn three_wrong_passwords_make_even_the_right_one_wait_on_every_node(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    leave(register(&chat, 0, "bob").await).await;
    // Its login comes after bob's account went out: node 1 knows it.
    let mut witness = chat.login_on(1, "witness").await;
    for _ in 0..3 {
        let (mut guess, reply) = attempt(&chat, 0, "bob not the password").await;
        assert_eq!(reply, "error: wrong password");
        guess.expect_eof().await;
    }
    let (mut guess, refused) = attempt(&chat, 1, &format!("bob {PASSWORD}")).await;
    let wait = refused
        .strip_prefix("error: too many login attempts; retry in ")
        .and_then(|rest| rest.strip_suffix(" s"))
        .unwrap_or_else(|| panic!("even the right password waits, on the other node: {refused}"));
    let wait: f64 = wait.parse().expect("a number of seconds");
    assert!(0.0 < wait && wait <= 60.0, "{refused}");
    guess.expect_eof().await;
    drop(guess);
    let (mut other, reply) = attempt(&chat, 1, &format!("carol {PASSWORD}")).await;
    assert_eq!(
        reply,
        "error: carol is not registered; log in with the name alone"
    );
    other.expect_eof().await;
    drop(other);
    let (before, _) = witness.sync().await;
    assert_eq!(before, Vec::<String>::new(), "nobody was let in");
    drop(witness);
    chat.shutdown().await;
}

/// Without read deadlines: on the paused clock a deadline would fire while a password is
/// being hashed on a real thread.
async fn first_reply(addr: std::net::SocketAddr, line: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting");
    stream
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("writing");
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .await
        .expect("reading");
    reply.trim_end().to_owned()
}

// Local only: a cluster node cannot run on tokio's paused clock (it cannot even start:
// the clock jumps past its Redis timeouts while it waits on the real socket), and its
// throttle window runs on Redis's clock, which `advance` does not move. The rule across
// nodes, without the wait, is `three_wrong_passwords_make_even_the_right_one_wait_on_every_node`.
#[tokio::test(start_paused = true)]
async fn wrong_passwords_are_throttled_until_the_stated_time() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = start(with_db(&dir.path().join("chat.db"))).await;
    let mut bob = LineClient::connect(server.addr).await;
    bob.send("bob").await;
    bob.send(&format!("/register {PASSWORD}")).await;
    bob.send("/who").await;
    drop(bob);
    // Wait for the registration by trying the right password (not counted as a failure).
    while first_reply(server.addr, &format!("bob {PASSWORD}")).await != "welcome bob" {
        tokio::task::yield_now().await;
    }
    for _ in 0..3 {
        assert_eq!(
            first_reply(server.addr, "bob not the password").await,
            "error: wrong password"
        );
    }
    let refused = first_reply(server.addr, &format!("bob {PASSWORD}")).await;
    assert!(
        refused.starts_with("error: too many login attempts; retry in "),
        "even the right password waits: {refused}"
    );
    let other = first_reply(server.addr, &format!("carol {PASSWORD}")).await;
    assert_eq!(
        other,
        "error: carol is not registered; log in with the name alone"
    );
    tokio::time::advance(std::time::Duration::from_secs(61)).await;
    assert_eq!(
        first_reply(server.addr, &format!("bob {PASSWORD}")).await,
        "welcome bob"
    );
    server.shutdown().await;
}

both_modes!(direct_history_is_kept_between_two_accounts_and_only_they_read_it);
async fn direct_history_is_kept_between_two_accounts_and_only_they_read_it(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    let mut alice = register(&chat, 0, "alice").await;
    // Bob logs in after alice's account went out: node 1 knows it.
    let mut bob = register(&chat, 1, "bob").await;
    let mut carol = chat.login_on(0, "carol").await;
    // Her /who reply comes after bob's account went out: node 0 knows it.
    alice.sync().await;
    alice.send("bob: hi bob").await;
    // Bob answers once he has it, so the two are kept in that order.
    assert_eq!(
        bob.lines_until("from alice: hi bob").await,
        ["joined carol"]
    );
    bob.send("alice: hi: alice").await;
    carol.send("bob: from carol").await;
    carol.sync().await;
    leave(bob).await;
    alice.send("bob: while you were out").await;
    alice.sync().await;

    let read = |lines: Vec<String>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|l| l.starts_with("history"))
            .collect()
    };
    alice.send("/history @bob").await;
    let (mine, _) = alice.sync().await;
    let mine = read(mine);
    assert_eq!(mine.len(), 4, "{mine:?}");
    assert!(mine[0].starts_with("history @bob ") && mine[0].ends_with(" alice: hi bob"));
    assert!(mine[1].ends_with(" bob: hi: alice"));
    assert!(mine[2].ends_with(" alice: while you were out"));
    assert_eq!(mine[3], "history-end @bob complete");
    let ids: Vec<&str> = mine[..3]
        .iter()
        .map(|l| l.split(' ').nth(2).unwrap_or(""))
        .collect();
    assert!(
        ids.windows(2)
            .all(|w| w[0].parse::<u64>().ok() < w[1].parse::<u64>().ok())
    );

    carol.sync().await;
    carol.send("/history @bob").await;
    carol
        .expect("error: no history is kept for @bob: direct messages are kept only between two registered accounts")
        .await;
    drop((alice, carol));

    // Bob reads the same conversation, from his side, on the other node, after a restart.
    let chat = chat.restart().await;
    let mut bob = login(&chat, 1, "bob", PASSWORD).await;
    bob.expect_prefix("history @alice ").await;
    bob.expect("history-end missed 1").await;
    bob.send("/history @alice").await;
    let (theirs, _) = bob.sync().await;
    let theirs = read(theirs);
    assert_eq!(theirs.len(), 4, "{theirs:?}");
    for (a, b) in mine[..3].iter().zip(&theirs[..3]) {
        assert_eq!(
            a.replacen("history @bob ", "", 1),
            b.replacen("history @alice ", "", 1),
            "the same ids, times and texts"
        );
    }
    bob.send("/history @carol").await;
    bob.expect("error: no history is kept for @carol: direct messages are kept only between two registered accounts")
        .await;
    drop(bob);
    chat.shutdown().await;
}
