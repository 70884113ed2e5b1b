//! One account on several devices, away, older history and liveness (protocol v3, "One
//! account, several devices" and "Away, older history, liveness"), in process and in
//! both modes. An account's sessions sit on different nodes of a cluster.
//!
//! Barriers: a `/who` reply orders the asker's own lines; a line from another node is
//! awaited with `expect`, or found before a later line of the same sender.

mod common;

use std::time::Duration;

use chat_server::Config;
use chat_tests::LineClient;
use common::{Chat, Mode, both_modes};

const PASSWORD: &str = "secret-password";

#[track_caller]
fn assert_error(line: &str) {
    assert!(
        line.starts_with("error: "),
        "expected an error, got {line:?}"
    );
}

/// Registers `name` on node `node` with [`PASSWORD`] and leaves it offline.
async fn register(chat: &Chat, node: usize, name: &str) {
    let mut client = chat.login_on(node, name).await;
    client.send(&format!("/register {PASSWORD}")).await;
    client.expect(&format!("registered {name}")).await;
}

/// A session of the account `name` on node `node`, its `welcome` read.
async fn session(chat: &Chat, node: usize, name: &str) -> LineClient {
    let mut client = chat.connect_on(node).await;
    client.send(&format!("{name} {PASSWORD}")).await;
    client.expect(&format!("welcome {name}")).await;
    client
}

both_modes!(two_sessions_share_messages_rooms_and_presence);
async fn two_sessions_share_messages_rooms_and_presence(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    let mut bob = chat.login_on(1, "bob").await;
    register(&chat, 0, "alice").await;
    bob.skip_until("left alice").await;
    let mut laptop = session(&chat, 0, "alice").await;
    laptop.sync().await;
    bob.skip_until("joined alice").await;
    let mut desktop = session(&chat, 1, "alice").await;
    desktop.sync().await;
    // Presence once: bob hears of the second session nothing at all.
    bob.send("alice: to both").await;
    laptop.skip_until("from bob: to both").await;
    desktop.skip_until("from bob: to both").await;
    bob.send("/who").await;
    assert_eq!(
        bob.recv().await,
        "users alice,bob",
        "no joined line for the second session"
    );

    laptop.send("bob: from the laptop").await;
    bob.expect("from alice: from the laptop").await;
    desktop.expect("sent bob: from the laptop").await;
    laptop.send("*: hello all").await;
    bob.expect("from alice *: hello all").await;
    desktop.expect("sent *: hello all").await;

    desktop.send("/join #rust").await;
    for client in [&mut laptop, &mut desktop] {
        client.expect("joined #rust alice").await;
        client.expect("names #rust alice").await;
        client.expect("roles #rust @alice").await;
    }
    bob.send("/join #rust").await;
    bob.skip_until("roles #rust @alice").await;
    laptop.send("#rust: said on the laptop").await;
    let line = desktop.skip_until_prefix("from alice #rust ").await;
    assert!(line.ends_with(": said on the laptop"), "{line}");
    bob.expect(&line).await;

    drop(laptop);
    desktop.send("bob: still here").await;
    bob.expect("from alice: still here").await;
    drop(desktop);
    bob.expect("left #rust alice").await;
    bob.expect("left alice").await;
    chat.shutdown().await;
}

both_modes!(sessions_are_limited_and_unregistered_names_stay_unique);
async fn sessions_are_limited_and_unregistered_names_stay_unique(mode: Mode) {
    let config = Config {
        max_sessions: 2,
        ..Config::default()
    };
    let chat = Chat::start_with_accounts(mode, config).await;
    register(&chat, 0, "alice").await;
    let _one = session(&chat, 0, "alice").await;
    let _two = session(&chat, 0, "alice").await;
    let mut three = chat.connect_on(0).await;
    three.send(&format!("alice {PASSWORD}")).await;
    let refused = three.recv().await;
    assert_error(&refused);
    assert!(refused.contains('2'), "names the limit: {refused}");
    let _carol = chat.login_on(0, "carol").await;
    let mut again = chat.connect_on(0).await;
    again.send("carol").await;
    again.expect("error: name already in use: carol").await;
    chat.shutdown().await;
}

both_modes!(read_markers_move_forward_and_reach_every_session);
async fn read_markers_move_forward_and_reach_every_session(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    register(&chat, 0, "alice").await;
    let mut one = session(&chat, 0, "alice").await;
    let mut two = session(&chat, 1, "alice").await;
    one.send("/read #rust").await;
    one.expect("read #rust").await;
    one.send("/read #rust 42").await;
    one.expect("read #rust 42").await;
    two.expect("read #rust 42").await;
    one.send("/read #rust 7").await;
    let (before, _) = one.sync().await;
    assert_eq!(before, Vec::<String>::new(), "a marker never moves back");
    one.send("/read @Bob 9223372036854775807").await;
    one.expect("read @Bob 9223372036854775807").await;
    two.expect("read @Bob 9223372036854775807").await;
    two.send("/read @bob").await;
    two.expect("read @bob 9223372036854775807").await;
    let mut guest = chat.login_on(1, "guest").await;
    guest.send("/read #rust 1").await;
    assert_error(&guest.recv().await);
    drop((one, two, guest));
    let chat = chat.restart().await;
    let mut back = session(&chat, 1, "alice").await;
    back.send("/read #rust").await;
    back.expect("read #rust 42").await;
    chat.shutdown().await;
}

both_modes!(a_slow_session_is_cut_off_and_the_others_go_on);
async fn a_slow_session_is_cut_off_and_the_others_go_on(mode: Mode) {
    let chat = Chat::start_with_accounts(mode, Config::default()).await;
    register(&chat, 0, "alice").await;
    let addr = chat.addr(0);
    let mut slow = LineClient::connect_with_recv_buffer(addr, 4096).await;
    slow.send(&format!("alice {PASSWORD}")).await;
    slow.expect("welcome alice").await;
    let mut fast = session(&chat, 1, "alice").await;
    fast.sync().await;
    let mut bob = chat.login_on(1, "bob").await;
    fast.skip_until("joined bob").await;
    // 20 MB for alice: the fast session reads as bob writes; the slow one reads
    // nothing, and past its send queue and the kernel's buffers it is cut off.
    let text = "x".repeat(994);
    let chunk = format!("alice: {text}\n").repeat(100);
    for _ in 0..200 {
        bob.send_raw(chunk.as_bytes()).await;
        for _ in 0..100 {
            fast.expect(&format!("from bob: {text}")).await;
        }
    }
    bob.send("alice: the end").await;
    fast.expect("from bob: the end").await;
    let rest = slow.recv_until_eof().await;
    assert!(
        rest.last()
            .is_some_and(|l| l.starts_with("error: send queue exceeded")),
        "the slow session was cut off"
    );
    bob.send("alice: after").await;
    fast.expect("from bob: after").await;
    chat.shutdown().await;
}

both_modes!(away_and_whois);
async fn away_and_whois(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.send("/away out for lunch").await;
    alice.sync().await;
    bob.send("/whois alice").await;
    let whois = bob.recv().await;
    assert!(
        whois.starts_with("whois alice ") && whois.ends_with(" 1"),
        "{whois}"
    );
    bob.expect("away alice: out for lunch").await;
    bob.send("alice: are you there?").await;
    bob.expect("away alice: out for lunch").await;
    alice.skip_until("from bob: are you there?").await;
    bob.send("alice: again").await;
    let (before, _) = bob.sync().await;
    assert_eq!(before, Vec::<String>::new(), "told once a minute at most");
    alice.send("/away").await;
    alice.sync().await;
    bob.send("/whois alice").await;
    bob.expect_prefix("whois alice ").await;
    let (before, _) = bob.sync().await;
    assert_eq!(before, Vec::<String>::new(), "no longer away");
    bob.send("/whois nobody").await;
    assert_error(&bob.recv().await);
    chat.shutdown().await;
}

both_modes!(history_before_scrolls_back);
async fn history_before_scrolls_back(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    for i in 0..5 {
        alice.send(&format!("#rust: m{i}")).await;
    }
    alice.send("/history #rust 5").await;
    let mut ids = Vec::new();
    loop {
        let line = alice.recv().await;
        if line.starts_with("history-end") {
            break;
        }
        ids.push(line.split(' ').nth(2).unwrap_or_default().to_owned());
    }
    assert_eq!(ids.len(), 5);
    alice
        .send(&format!("/history #rust before {} 2", ids[3]))
        .await;
    let first = alice.expect_prefix("history #rust ").await;
    assert!(first.ends_with(": m1"), "{first}");
    let second = alice.expect_prefix("history #rust ").await;
    assert!(second.ends_with(": m2"), "{second}");
    alice.expect("history-end #rust complete").await;
    alice
        .send(&format!("/history #rust before {} 5000", ids[1]))
        .await;
    let only = alice.expect_prefix("history #rust ").await;
    assert!(only.ends_with(": m0"), "{only}");
    alice.expect("history-end #rust complete").await;
    chat.shutdown().await;
}

both_modes!(a_pinging_client_that_goes_silent_is_closed);
async fn a_pinging_client_that_goes_silent_is_closed(mode: Mode) {
    let config = Config {
        idle_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let chat = Chat::start(mode, config).await;
    let mut quiet = chat.login_on(0, "quiet").await;
    let mut pinger = chat.login_on(0, "pinger").await;
    pinger.send("/ping t1").await;
    pinger.expect("pong t1").await;
    pinger.send("/ping").await;
    pinger.expect("pong").await;
    let rest = pinger.recv_until_eof().await;
    assert!(
        rest.last().is_some_and(|l| l.starts_with("error: ")),
        "{rest:?}"
    );
    quiet.skip_until("left pinger").await;
    let _again = chat.login_on(1, "pinger").await;
    // The one that never pinged is still there.
    quiet.send("/who").await;
    quiet.skip_until("users pinger,quiet").await;
    chat.shutdown().await;
}
