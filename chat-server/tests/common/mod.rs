//! The in-process server every test file here starts: `chat_server::run` on
//! `127.0.0.1:0` in the test's runtime, with a oneshot as its shutdown signal.

#![allow(dead_code)] // Each test file uses its own part of this module.

use std::net::SocketAddr;

use chat_server::Config;
use chat_tests::LineClient;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server running in this process.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// Starts `chat_server::run` with `config` on a free port.
pub async fn start(config: Config) -> TestServer {
    try_start(config).await.expect("the server starts")
}

/// Like [`start`], but returns the error of a server that refuses to start.
pub async fn try_start(config: Config) -> anyhow::Result<TestServer> {
    let backend = chat_server::open_backend(&config).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let addr = listener.local_addr().expect("an address");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(chat_server::run(listener, config, backend, async {
        let _ = stopped.await;
    }));
    Ok(TestServer { addr, stop, task })
}

impl TestServer {
    /// Shuts the server down as SIGTERM would and waits until `run` returns.
    pub async fn shutdown(self) {
        self.stop.send(()).expect("the server is running");
        self.task
            .await
            .expect("the server task")
            .expect("a clean shutdown");
    }

    /// A client logged in as `name`, its `welcome` read.
    pub async fn login(&self, name: &str) -> LineClient {
        let mut client = LineClient::connect(self.addr).await;
        client.send(name).await;
        client.expect(&format!("welcome {name}")).await;
        client
    }

    /// A client logged in as `name` and a member of `room`, every line of its login read.
    pub async fn member(&self, name: &str, room: &str) -> LineClient {
        let mut client = self.login(name).await;
        client.send(&format!("/join {room}")).await;
        loop {
            let line = client.recv().await;
            if line.starts_with(&format!("names {room} ")) {
                return client;
            }
        }
    }
}
