//! In-process tests of the server's life: serving until its shutdown future resolves,
//! shutdown delivering every line already routed and then `bye:`, within the shutdown
//! timeout even if a client never reads, and telling nobody `left`, in both modes (one
//! server; two cluster nodes sharing a Redis, every node shut down at once, the users on
//! different nodes); and the handshake timeout on tokio's paused clock, so it takes no
//! real time.
//!
//! Only `nobody_is_sent_left_at_shutdown` has presence for everyone; the others have
//! presence by rooms (nobody is in one), so that the `left` lines it is about do not
//! make them fail where the cluster does not keep that rule yet.

mod common;

use std::time::{Duration, Instant};

use chat_server::{Config, Presence};
use chat_tests::LineClient;
use common::{Chat, Mode, both_modes, start};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpStream;

/// Default config, but presence by rooms: see the module docs.
fn quiet() -> Config {
    Config {
        presence: Presence::Rooms,
        ..Config::default()
    }
}

/// Every line `client` gets until the server closes the connection; then closes its own
/// end, so that the server need not linger for it.
async fn rest(mut client: LineClient) -> Vec<String> {
    client.recv_until_eof().await
}

// Local only: a cluster node cannot run on tokio's paused clock (it cannot even start:
// the clock jumps past its Redis timeouts while it waits on the real socket).
#[tokio::test(start_paused = true)]
async fn a_connection_that_never_logs_in_is_closed_at_the_handshake_timeout() {
    let server = start(Config {
        handshake_timeout: Duration::from_secs(10),
        ..Config::default()
    })
    .await;
    // Read without deadlines, which would fire on the paused clock while the server
    // waits on a real socket.
    let stream = TcpStream::connect(server.addr).await.expect("connecting");
    let mut silent = BufReader::new(stream).lines();
    let started = tokio::time::Instant::now();
    assert_eq!(
        silent.next_line().await.expect("reading").as_deref(),
        Some("error: login timed out")
    );
    assert_eq!(silent.next_line().await.expect("reading"), None);
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

/// Longer than a connection's close linger (2 s), so that only a client the server is
/// still writing to can keep it waiting this long.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(3);

/// `stuck` on node 1, which reads its `welcome` and nothing more, and `sender` on node
/// 0, which has sent it 8 MB, all of it routed.
async fn stuck_and_sender(chat: &Chat) -> (LineClient, LineClient) {
    let mut stuck = LineClient::connect_with_recv_buffer(chat.addr(1), 4096).await;
    stuck.send("stuck").await;
    // The last line it reads: its name is held on every node before anyone writes to it.
    stuck.expect("welcome stuck").await;
    let mut sender = chat.login_on(0, "sender").await;
    let text = "z".repeat(4000);
    for _ in 0..2000 {
        sender.send(&format!("stuck: {text}")).await;
    }
    let (before, names) = sender.sync().await;
    assert_eq!(before, Vec::<String>::new());
    assert_eq!(names, ["sender", "stuck"]);
    (stuck, sender)
}

both_modes!(shutdown_returns_after_the_timeout_even_if_a_client_never_reads);
async fn shutdown_returns_after_the_timeout_even_if_a_client_never_reads(mode: Mode) {
    let chat = Chat::start(
        mode,
        Config {
            shutdown_timeout: SHUTDOWN_TIMEOUT,
            sendq: 1 << 30,
            ..quiet()
        },
    )
    .await;
    let (stuck, sender) = stuck_and_sender(&chat).await;
    let started = Instant::now();
    let ((), after) = tokio::join!(chat.shutdown(), rest(sender));
    let took = started.elapsed();
    assert!(took >= SHUTDOWN_TIMEOUT, "returned after {took:?}");
    assert!(
        took < SHUTDOWN_TIMEOUT + Duration::from_secs(1),
        "returned after {took:?}"
    );
    assert_eq!(after, ["bye: server shutting down"]);
    drop(stuck);
}

both_modes!(nobody_is_sent_left_at_shutdown);
async fn nobody_is_sent_left_at_shutdown(mode: Mode) {
    let chat = Chat::start(
        mode,
        Config {
            shutdown_timeout: Duration::from_millis(500),
            sendq: 1 << 30,
            ..Config::default()
        },
    )
    .await;
    let (stuck, sender) = stuck_and_sender(&chat).await;
    let ((), after) = tokio::join!(chat.shutdown(), rest(sender));
    assert_eq!(after, ["bye: server shutting down"]);
    drop(stuck);
}

both_modes!(shutdown_delivers_every_line_already_routed_then_bye);
async fn shutdown_delivers_every_line_already_routed_then_bye(mode: Mode) {
    let chat = Chat::start(mode, quiet()).await;
    // Reads nothing until the shutdown, so most of what it is sent waits in its queue.
    let mut reader = LineClient::connect_with_recv_buffer(chat.addr(1), 4096).await;
    reader.send("reader").await;
    reader.expect("welcome reader").await;
    let mut sender = chat.login_on(0, "sender").await;
    // About 900 kB: within the reader's send queue (1 MiB).
    let text = "y".repeat(990);
    for i in 0..900 {
        sender.send(&format!("reader: {i:03} {text}")).await;
    }
    // Every line the sender sent has been routed (docs/protocol.md, "Order").
    let (before, _) = sender.sync().await;
    assert_eq!(before, Vec::<String>::new());

    let ((), got, sender) = tokio::join!(chat.shutdown(), rest(reader), rest(sender));
    let want: Vec<String> = (0..900)
        .map(|i| format!("from sender: {i:03} {text}"))
        .chain(["bye: server shutting down".to_owned()])
        .collect();
    assert_eq!(got.len(), want.len(), "ending {:?}", got.last());
    assert!(
        got == want,
        "the reader's lines differ from the routed ones"
    );
    assert_eq!(sender, ["bye: server shutting down"]);
}

both_modes!(run_serves_until_its_shutdown_future_resolves);
async fn run_serves_until_its_shutdown_future_resolves(mode: Mode) {
    let chat = Chat::start(mode, quiet()).await;
    let mut alice = chat.login_on(0, "alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    alice.send("alice,bob: note to us both").await;
    alice.send("/who").await;
    alice.expect("from alice: note to us both").await;
    alice.expect("users alice,bob").await;
    bob.expect("from alice: note to us both").await;
    let ((), alice, bob) = tokio::join!(chat.shutdown(), rest(alice), rest(bob));
    assert_eq!(alice, ["bye: server shutting down"]);
    assert_eq!(bob, ["bye: server shutting down"]);
}
