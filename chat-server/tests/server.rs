//! In-process tests of the server (`common::start`): on `127.0.0.1:0` in this runtime, a
//! oneshot as its shutdown signal, raw line clients over `TcpStream`. Timeouts run on
//! tokio's paused clock, so they take no real time.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chat_server::Config;
use common::start;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Client {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let (reader, writer) = TcpStream::connect(addr)
            .await
            .expect("connecting")
            .into_split();
        Self {
            lines: BufReader::new(reader).lines(),
            writer,
        }
    }

    async fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("writing");
    }

    async fn recv(&mut self) -> Option<String> {
        self.lines.next_line().await.expect("reading")
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_that_never_logs_in_is_closed_at_the_handshake_timeout() {
    let server = start(Config {
        handshake_timeout: Duration::from_secs(10),
        ..Config::default()
    })
    .await;
    let mut silent = Client::connect(server.addr).await;
    let started = tokio::time::Instant::now();
    assert_eq!(
        silent.recv().await.as_deref(),
        Some("error: login timed out")
    );
    assert_eq!(silent.recv().await, None);
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "closed after {:?}",
        started.elapsed()
    );
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_after_the_timeout_even_if_a_client_never_reads() {
    let server = start(Config {
        shutdown_timeout: Duration::from_secs(5),
        sendq: 1 << 30,
        ..Config::default()
    })
    .await;
    let mut stuck = Client::connect(server.addr).await;
    stuck.send("stuck").await;
    let mut sender = Client::connect(server.addr).await;
    sender.send("sender").await;
    assert_eq!(sender.recv().await.as_deref(), Some("welcome sender"));
    let text = "z".repeat(4000);
    for _ in 0..2000 {
        sender.send(&format!("stuck: {text}")).await;
    }
    sender.send("/who").await;
    assert_eq!(sender.recv().await.as_deref(), Some("users sender,stuck"));
    let started = tokio::time::Instant::now();
    server.shutdown().await;
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "returned after {:?}",
        started.elapsed()
    );
    assert_eq!(
        sender.recv().await.as_deref(),
        Some("bye: server shutting down")
    );
    drop(stuck);
}

#[tokio::test]
async fn run_serves_until_its_shutdown_future_resolves() {
    let server = start(Config::default()).await;
    let mut alice = Client::connect(server.addr).await;
    alice.send("alice").await;
    assert_eq!(alice.recv().await.as_deref(), Some("welcome alice"));
    alice.send("alice: note to self").await;
    alice.send("/who").await;
    assert_eq!(
        alice.recv().await.as_deref(),
        Some("from alice: note to self")
    );
    assert_eq!(alice.recv().await.as_deref(), Some("users alice"));
    server.shutdown().await;
    assert_eq!(
        alice.recv().await.as_deref(),
        Some("bye: server shutting down")
    );
    assert_eq!(alice.recv().await, None);
}
