//! Connecting and logging in many clients, and reading lines fast enough that this tool is
//! never the bottleneck.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

/// Connections opened at once while logging in, so the listen backlog never overflows.
const CONNECT_CONCURRENCY: usize = 256;

/// A logged-in client: a line reader and the write half.
#[derive(Debug)]
pub struct Client {
    /// Reads lines.
    pub reader: LineReader,
    /// Writes to the server.
    pub writer: OwnedWriteHalf,
}

/// The name of client `i`.
pub fn name(i: usize) -> String {
    format!("b{i}")
}

/// Connects and logs in as [`name`]`(i)`, returning once `welcome` has arrived.
pub async fn login(addr: SocketAddr, i: usize) -> anyhow::Result<Client> {
    login_as(addr, i, None).await
}

/// Like [`login`], for a registered name: the login line carries `password`.
pub async fn login_as(
    addr: SocketAddr,
    i: usize,
    password: Option<&str>,
) -> anyhow::Result<Client> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (read_half, mut writer) = stream.into_split();
    let line = match password {
        Some(password) => format!("{} {password}\n", name(i)),
        None => format!("{}\n", name(i)),
    };
    writer.write_all(line.as_bytes()).await?;
    let mut reader = LineReader::new(read_half);
    let welcome = format!("welcome {}", name(i));
    match reader.next_line().await? {
        Some(line) if line == welcome.as_bytes() => Ok(Client { reader, writer }),
        Some(line) => bail!(
            "login of {} answered {:?}",
            name(i),
            String::from_utf8_lossy(line)
        ),
        None => bail!("login of {}: the server closed the connection", name(i)),
    }
}

/// The password every account of the `accounts` scenario has.
pub const BENCH_PASSWORD: &str = "bench password";

/// Registers client `i`'s name with [`BENCH_PASSWORD`] and leaves.
pub async fn register(addr: SocketAddr, i: usize) -> anyhow::Result<()> {
    let mut client = login(addr, i).await?;
    client
        .writer
        .write_all(format!("/register {BENCH_PASSWORD}\n").as_bytes())
        .await?;
    let registered = format!("registered {}", name(i));
    while let Some(line) = client.reader.next_line().await? {
        if line == registered.as_bytes() {
            return Ok(());
        }
        if line.starts_with(b"error:") {
            bail!("registering: {}", String::from_utf8_lossy(line));
        }
    }
    bail!("the server closed before confirming the registration")
}

/// Logs in clients `0..n`, several at a time, calling `started(i, client)` for each as
/// soon as it is in (so its reader can start draining presence lines at once).
pub async fn login_all<F>(nodes: &[SocketAddr], n: usize, mut started: F) -> anyhow::Result<()>
where
    F: FnMut(usize, Client),
{
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..n {
        // Clients spread over a cluster's nodes, round robin.
        let addr = nodes[i % nodes.len()];
        let permit = permits.clone().acquire_owned().await?;
        logins.spawn(async move {
            let client = login(addr, i).await;
            drop(permit);
            (i, client)
        });
        while let Some(done) = logins.try_join_next() {
            let (i, client) = done?;
            started(i, client?);
        }
    }
    while let Some(done) = logins.join_next().await {
        let (i, client) = done?;
        started(i, client?);
    }
    Ok(())
}

/// Splits a byte stream into lines with one growing buffer and no per-line allocation.
#[derive(Debug)]
pub struct LineReader {
    read_half: OwnedReadHalf,
    buf: BytesMut,
    /// Bytes at the front of `buf` already handed out as a line.
    consumed: usize,
}

impl LineReader {
    /// Reads lines from `read_half`.
    pub fn new(read_half: OwnedReadHalf) -> Self {
        Self {
            read_half,
            buf: BytesMut::with_capacity(64 * 1024),
            consumed: 0,
        }
    }

    /// The next line without its `\n`, or `None` at EOF.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<&[u8]>> {
        self.buf.advance(self.consumed);
        self.consumed = 0;
        loop {
            if let Some(end) = self.buf.iter().position(|&b| b == b'\n') {
                self.consumed = end + 1;
                return Ok(Some(&self.buf[..end]));
            }
            if self.buf.capacity() - self.buf.len() < 4096 {
                self.buf.reserve(64 * 1024);
            }
            if self.read_half.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    /// Reads and throws away everything until EOF, without looking for lines: the
    /// cheapest way to keep a server's queue for this client empty.
    pub async fn discard(mut self) {
        let mut scratch = vec![0; 64 * 1024];
        while matches!(self.read_half.read(&mut scratch).await, Ok(n) if n > 0) {}
    }

    /// Whether a whole line is already buffered, so `next_line` will not wait.
    pub fn has_line(&self) -> bool {
        self.buf[self.consumed..].contains(&b'\n')
    }
}
