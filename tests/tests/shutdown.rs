//! Clean shutdown of the real `chat-server` on SIGTERM and SIGINT: nothing routed is lost.

use std::time::{Duration, Instant};

use chat_tests::{LineClient, ServerProcess};
use nix::sys::signal::Signal;

#[tokio::test]
async fn sigterm_delivers_everything_routed_then_bye_then_eof_and_exits_0() {
    const MESSAGES: usize = 5000;
    let mut server = ServerProcess::start(&[]).await;
    let mut receiver = server.login("receiver").await;
    let mut sender = server.login("sender").await;
    // The receiver reads nothing until the server has been told to stop.
    for i in 0..MESSAGES {
        sender.send(&format!("receiver: message {i}")).await;
    }
    sender.sync().await;

    server.signal(Signal::SIGTERM);
    receiver.expect("joined sender").await;
    for i in 0..MESSAGES {
        receiver.expect(&format!("from sender: message {i}")).await;
    }
    receiver.expect("bye: server shutting down").await;
    receiver.expect_eof().await;
    sender.expect("bye: server shutting down").await;
    sender.expect_eof().await;
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn sigint_shuts_down_cleanly_too() {
    let mut server = ServerProcess::start(&[]).await;
    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    alice.send("bob: last words").await;
    alice.sync().await;
    server.signal(Signal::SIGINT);
    bob.expect("from alice: last words").await;
    bob.expect("bye: server shutting down").await;
    bob.expect_eof().await;
    alice.expect("bye: server shutting down").await;
    alice.expect_eof().await;
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
}

#[tokio::test]
async fn shutdown_tells_nobody_that_others_left() {
    let mut server = ServerProcess::start(&[]).await;
    let mut clients = Vec::new();
    for name in ["a", "b", "c"] {
        clients.push(server.login(name).await);
    }
    let (_, names) = clients[0].sync().await;
    assert_eq!(names, ["a", "b", "c"]);
    server.signal(Signal::SIGTERM);
    let mut a = clients.remove(0);
    a.expect("bye: server shutting down").await;
    a.expect_eof().await;
    for mut other in clients {
        let mut lines = Vec::new();
        while let Some(line) = other.recv_opt().await {
            lines.push(line);
        }
        assert!(lines.iter().all(|l| !l.starts_with("left")), "{lines:?}");
        assert_eq!(
            lines.last().map(String::as_str),
            Some("bye: server shutting down")
        );
    }
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );
}

#[tokio::test]
async fn an_idle_server_exits_0_on_sigterm() {
    let mut server = ServerProcess::start(&[]).await;
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(Duration::from_secs(5)).await.code(),
        Some(0)
    );
}

#[tokio::test]
async fn a_client_that_does_not_read_is_cut_off_at_the_shutdown_timeout() {
    let mut server = ServerProcess::start(&["--shutdown-timeout", "1", "--sendq", "1GiB"]).await;
    let mut stuck = LineClient::connect_with_recv_buffer(server.addr, 4096).await;
    stuck.send("stuck").await;
    let mut sender = server.login("sender").await;
    // Far more than the socket buffers hold, so the writer is still blocked at shutdown.
    let text = "y".repeat(2000);
    for _ in 0..5000 {
        sender.send(&format!("stuck: {text}")).await;
    }
    sender.sync().await;
    let signalled = Instant::now();
    server.signal(Signal::SIGTERM);
    sender.expect("bye: server shutting down").await;
    sender.expect_eof().await;
    let status = server.wait_exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(0), "{status}");
    // The shutdown timeout plus the time to exit, with room for a slow machine.
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "took {:?}",
        signalled.elapsed()
    );
    drop(stuck);
}
