//! One account on two devices: two `chat-client`s in pseudo-terminals logged in to one
//! registered name on the real server (`--db`). Reading a room on one clears its unread
//! count on the other; what one sends shows on the other as its own line; a `/join` on
//! one opens the room on both.

use std::path::{Path, PathBuf};

use chat_tests::pty::row;
use chat_tests::{LineClient, PtyClient, ServerProcess, keys};

const COLUMNS: u16 = 100;
const PASSWORD: &str = "correct horse battery";

/// A server with accounts, and alice registered on it; the password file for her.
async fn server_with_alice(dir: &Path) -> (ServerProcess, PathBuf) {
    let db = dir.join("chat.db");
    let server = ServerProcess::start(&["--db", db.to_str().expect("a UTF-8 path")]).await;
    let mut alice = server.login("alice").await;
    alice.send(&format!("/register {PASSWORD}")).await;
    alice.expect("registered alice").await;
    alice.shutdown_write().await;
    alice.expect_eof().await;
    let password = dir.join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).expect("writing the password file");
    (server, password)
}

/// Alice on one more device.
fn device(server: &ServerProcess, password: &Path) -> PtyClient {
    let addr = server.addr.to_string();
    let password = password.to_str().expect("a UTF-8 path");
    let client = PtyClient::spawn(
        &[
            "--name",
            "alice",
            "--addr",
            &addr,
            "--password-file",
            password,
        ],
        COLUMNS,
        24,
    );
    client.wait_for("● connected");
    client
}

/// The buffer bar, as words: `["1:server", "2:*", "3:#team", "1"]`.
fn bar(screen: &vt100::Screen) -> Vec<String> {
    row(screen, 1)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// Alice on two devices, both in #team (the laptop joined; the phone was told at login),
/// and bob in it too as a line client. Both devices show `*`.
async fn two_devices_in_a_room(
    server: &ServerProcess,
    password: &Path,
) -> (PtyClient, PtyClient, LineClient) {
    let mut laptop = device(server, password);
    laptop.type_keys("/join #team\r");
    laptop.wait_for("you joined #team");
    laptop.type_keys(&keys::alt(2));
    let phone = device(server, password);
    phone.wait_until("#team on the phone, and two sessions", |s| {
        bar(s).contains(&"3:#team".to_owned()) && row(s, 0).contains("· 2 sessions")
    });
    let mut bob = server.login("bob").await;
    bob.send("/join #team").await;
    bob.expect("joined #team bob").await;
    (laptop, phone, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_a_room_on_one_device_clears_its_unread_count_on_the_other() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, password) = server_with_alice(dir.path()).await;
    let (laptop, mut phone, mut bob) = two_devices_in_a_room(&server, &password).await;

    bob.send("#team: are you there?").await;
    bob.send("#team: alice?").await;
    for device in [&laptop, &phone] {
        device.wait_until("two unread in #team", |s| {
            bar(s).windows(2).any(|w| w == ["3:#team", "2!"])
        });
    }
    // Read on the phone: the laptop's count goes, and it learns of the other session.
    phone.type_keys(&keys::alt(3));
    phone.wait_for("bob: alice?");
    laptop.wait_until("#team read on the laptop too", |s| {
        let bar = bar(s);
        bar.contains(&"3:#team".to_owned()) && !bar.iter().any(|w| w.ends_with('!'))
    });
    laptop.wait_until("the laptop counting two sessions", |s| {
        row(s, 0).contains("· 2 sessions")
    });
    // Where the laptop left off is where the phone read to: nothing new there.
    bob.send("#team: thanks").await;
    laptop.wait_until("one new on the laptop", |s| {
        bar(s).windows(2).any(|w| w == ["3:#team", "1"])
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_sent_on_one_device_shows_on_the_other_as_its_own() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (server, password) = server_with_alice(dir.path()).await;
    let (mut laptop, mut phone, mut bob) = two_devices_in_a_room(&server, &password).await;

    laptop.type_keys(&keys::alt(3));
    laptop.type_keys("hello from the laptop\r");
    bob.skip_until_prefix("from alice #team ").await;
    // Ours is not unread on the phone: bob's answer, routed after it, is the only one
    // (once the laptop looks away, or it would read the answer for both).
    laptop.type_keys(&keys::alt(2));
    laptop.wait_for("[*] ");
    bob.send("#team: hi").await;
    phone.wait_until("one unread in #team", |s| {
        bar(s).windows(2).any(|w| w == ["3:#team", "1"])
    });
    phone.type_keys(&keys::alt(3));
    phone.wait_for("alice: hello from the laptop");

    // A direct message opens the conversation on the phone, as the laptop's.
    laptop.type_keys("/msg bob see you at 10\r");
    bob.skip_until("from alice: see you at 10").await;
    phone.wait_until("bob's conversation on the phone", |s| {
        bar(s).contains(&"4:bob".to_owned())
    });
    phone.type_keys(&keys::alt(4));
    phone.wait_for("alice: see you at 10");

    // A room joined on the phone is the laptop's too, without taking it there.
    phone.type_keys("/join #second\r");
    phone.wait_for("you joined #second");
    laptop.wait_until("#second on the laptop", |s| {
        bar(s).contains(&"5:#second".to_owned())
    });
    laptop.type_keys(&keys::alt(5));
    laptop.wait_for("you joined #second (from another session)");
}
