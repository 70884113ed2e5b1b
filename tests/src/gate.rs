//! [`Gate`]: a TCP proxy between a client and the server that a test can close, cutting
//! every connection and refusing new ones, and open again: a network outage on demand
//! while the server stays up (or is restarted behind it).

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy to one upstream address, open until [`Gate::close`].
pub struct Gate {
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Owned by the test; the accept loop and each relay watch it. Dropping the gate
    /// ends nothing at once: relays end with their connections.
    open: watch::Sender<bool>,
}

impl Gate {
    /// Starts a gate in front of `upstream`, open.
    pub async fn start(upstream: SocketAddr) -> Self {
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

    /// Cuts every connection through the gate and refuses new ones.
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.open.send_replace(true);
    }
}
