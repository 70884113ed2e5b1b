//! Connecting and logging in many clients, natively or over IRC, and reading lines fast
//! enough that this tool is never the bottleneck.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Semaphore;

/// Connections opened at once while logging in, by default: chat-server's listen backlog
/// never overflows with this many. Servers with a shorter one need fewer (ngircd listens
/// with a backlog of 10; an overflow there ends in resets).
pub const CONNECT_CONCURRENCY: usize = 256;

/// A logged-in client: a line reader and the write half.
#[derive(Debug)]
pub struct Client {
    /// Reads lines.
    pub reader: LineReader,
    /// Writes to the server.
    pub writer: OwnedWriteHalf,
}

/// The name of client `i` (its nick over IRC).
pub fn name(i: usize) -> String {
    format!("b{i}")
}

/// Where a client connects, and the protocol it speaks there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// The native protocol: the name, then `welcome`.
    Native(SocketAddr),
    /// IRC (chat-server's `--irc-addr`, or any IRC server): `NICK` and `USER`, then the
    /// welcome numerics up to the end of the MOTD.
    Irc(SocketAddr),
}

impl Endpoint {
    /// Connects and logs in as [`name`]`(i)`.
    pub async fn login(self, i: usize) -> anyhow::Result<Client> {
        match self {
            Endpoint::Native(addr) => login(addr, i).await,
            Endpoint::Irc(addr) => irc_login(addr, i).await,
        }
    }
}

async fn connect(addr: SocketAddr) -> anyhow::Result<(LineReader, OwnedWriteHalf)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (read_half, writer) = stream.into_split();
    Ok((LineReader::new(read_half), writer))
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
    let (mut reader, mut writer) = connect(addr).await?;
    let line = match password {
        Some(password) => format!("{} {password}\n", name(i)),
        None => format!("{}\n", name(i)),
    };
    writer.write_all(line.as_bytes()).await?;
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

/// Registers over IRC as [`name`]`(i)` (`NICK`, `USER`, lines ending in `\r\n`),
/// answering `PING`, and returns at `376` (end of MOTD) or `422` (no MOTD), which end
/// every server's welcome.
pub async fn irc_login(addr: SocketAddr, i: usize) -> anyhow::Result<Client> {
    let (mut reader, mut writer) = connect(addr).await?;
    let nick = name(i);
    writer
        .write_all(format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes())
        .await?;
    loop {
        let Some(line) = reader.next_line().await? else {
            bail!("IRC registration of {nick}: the server closed the connection")
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match irc_command(line) {
            b"376" | b"422" => break,
            b"PING" => {
                let pong = [b"PONG", &line[4..], b"\r\n"].concat();
                writer.write_all(&pong).await?;
            }
            b"ERROR" | b"432" | b"433" | b"436" | b"464" | b"465" => bail!(
                "IRC registration of {nick} answered {:?}",
                String::from_utf8_lossy(line)
            ),
            _ => {}
        }
    }
    Ok(Client { reader, writer })
}

/// An IRC line's command or numeric: the word after its tags and source, if any.
pub fn irc_command(line: &[u8]) -> &[u8] {
    let mut rest = line;
    for lead in [b'@', b':'] {
        if rest.first() == Some(&lead) {
            let space = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
            rest = rest[space..].trim_ascii_start();
        }
    }
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    &rest[..end]
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

/// Logs in clients `0..n`, each at `endpoint(i)`, at most `at_once` at a time, calling
/// `started(i, client)` for each as soon as it is in (so its reader can start draining
/// presence lines at once).
pub async fn login_all<E, F>(
    n: usize,
    at_once: usize,
    endpoint: E,
    mut started: F,
) -> anyhow::Result<()>
where
    E: Fn(usize) -> Endpoint,
    F: FnMut(usize, Client),
{
    let permits = Arc::new(Semaphore::new(at_once.max(1)));
    let mut logins = tokio::task::JoinSet::new();
    for i in 0..n {
        let endpoint = endpoint(i);
        let permit = permits.clone().acquire_owned().await?;
        logins.spawn(async move {
            let client = endpoint.login(i).await;
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
    /// Bytes of `buf` known to hold no `\n` (a partial line waiting for more).
    scanned: usize,
}

impl LineReader {
    /// Reads lines from `read_half`.
    pub fn new(read_half: OwnedReadHalf) -> Self {
        Self {
            read_half,
            buf: BytesMut::with_capacity(64 * 1024),
            consumed: 0,
            scanned: 0,
        }
    }

    /// The next line without its `\n`, or `None` at EOF.
    ///
    /// Looks for the end of line with `memchr` and never twice over the same bytes: with
    /// a thousand readers in one process, this loop is the load generator's own limit.
    pub async fn next_line(&mut self) -> anyhow::Result<Option<&[u8]>> {
        self.buf.advance(self.consumed);
        self.consumed = 0;
        loop {
            if let Some(end) = memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                let end = self.scanned + end;
                self.consumed = end + 1;
                self.scanned = 0;
                return Ok(Some(&self.buf[..end]));
            }
            self.scanned = self.buf.len();
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
        memchr::memchr(b'\n', &self.buf[self.consumed..]).is_some()
    }
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    /// Lines come whole, once each, however the bytes are split into reads.
    #[tokio::test]
    async fn lines_split_across_reads_come_whole() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            for part in [&b"ab"[..], b"c\nd", b"", b"e\n\nf\n", b"tail"] {
                socket.write_all(part).await.unwrap();
                socket.flush().await.unwrap();
            }
        });
        let (read_half, _write_half) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut reader = LineReader::new(read_half);
        let mut lines = Vec::new();
        while let Some(line) = reader.next_line().await.unwrap() {
            lines.push(String::from_utf8(line.to_vec()).unwrap());
            if lines.len() == 4 {
                assert!(!reader.has_line(), "only `tail` may be left");
            }
        }
        writer.await.unwrap();
        assert_eq!(
            lines,
            ["abc", "de", "", "f"],
            "a last line without its end is not one"
        );
    }
}
