//! The defects of issue 21 (a day of the v2 client as a new user would use it) as a user
//! meets them, in a pseudo-terminal against the real server. Each test fails on the
//! client as it was (main at f22c480).

use std::path::Path;

use chat_tests::pty::row;
use chat_tests::{Gate, PtyClient, ServerProcess};

const COLUMNS: u16 = 100;

/// A server keeping accounts in `dir`.
async fn server_with_db(dir: &Path) -> ServerProcess {
    let db = dir.join("chat.db");
    ServerProcess::start(&["--db", db.to_str().expect("a UTF-8 path")]).await
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
    let mut alice = PtyClient::spawn(&["--name", "alice", "--addr", &addr], COLUMNS, 24);
    alice.wait_for("● connected");
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
