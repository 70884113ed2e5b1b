//! Harness for the end-to-end tests: find (and build) the real binaries, run the server,
//! and talk to it as a line client would.
//!
//! - [`bin_path`]: the path of a workspace binary, built fresh on first use.
//! - [`ServerProcess`]: a `chat-server` on `127.0.0.1:0`, killed and reaped on drop.
//! - [`LineClient`]: a raw line client over a real `TcpStream`, every read with a deadline.
//! - [`irc::IrcClient`]: the same for IRC (`\r\n`, lines split into command and parameters).
//! - [`PtyClient`]: the real `chat-client` in a pseudo-terminal, read through `vt100`.
//! - [`Gate`]: a TCP proxy the test closes and opens, a network outage on demand.
//! - [`RedisServer`]: a real `redis-server` on a free port for the cluster tests: plain,
//!   with a password, or TLS only with certificates from a [`TestCa`].
//! - [`weechat::WeeChat`]: the real IRC client WeeChat, headless, read through its logs.

pub mod gate;
pub mod irc;
pub mod pty;
pub mod redis;
pub mod weechat;

pub use chat_bench::procstat::Sample;
pub use gate::Gate;
pub use pty::{PtyClient, keys};
pub use redis::{RedisServer, TestCa};

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpSocket, TcpStream};
use tokio::process::{Child, ChildStdout, Command};

/// How long any single expected event may take before a test fails. Generous, because CI
/// machines are slow; a passing test never waits for it.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The path of the workspace binary `name`, built on first use.
///
/// Cargo sets `CARGO_BIN_EXE_<name>` only for tests of the package that owns the binary,
/// so this package builds the binaries itself (`cargo build --bins`, a no-op when they
/// are fresh) and finds them in the target directory beside this test executable. That
/// keeps `cargo test --workspace` one command that never runs a stale binary.
pub fn bin_path(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(build_binaries);
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} does not exist; run `cargo build --workspace --bins`",
        path.display()
    );
    path
}

fn build_binaries() -> PathBuf {
    // The test executable lives in target/<profile>/deps/.
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable is in target/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .and_then(|p| p.to_str())
        .unwrap_or("debug");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = std::process::Command::new(cargo);
    build.args(["build", "--workspace", "--bins", "--quiet"]);
    if profile != "debug" {
        build.args([
            "--profile",
            if profile == "release" {
                "release"
            } else {
                profile
            },
        ]);
    }
    let status = build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo build for the binaries under test");
    assert!(status.success(), "cargo build --workspace --bins failed");
    profile_dir.to_path_buf()
}

/// Runs `chat-server --addr 127.0.0.1:0` with `args` to its exit, for servers that are
/// expected to refuse to start; returns how it exited and what it said on stderr.
pub async fn run_server_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let output = Command::new(bin_path("chat-server"))
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE, output)
        .await
        .expect("chat-server did not exit in time")
        .expect("running chat-server");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A running `chat-server`. Killed and reaped when dropped.
pub struct ServerProcess {
    child: Child,
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its other listeners, as it printed them before `listening on`: `irc`,
    /// `irc-tls`, `metrics`.
    others: Vec<(String, SocketAddr)>,
    log: PathBuf,
    /// Kept open so the server never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl ServerProcess {
    /// Starts `chat-server --addr 127.0.0.1:0` with `args` and waits for `listening on ADDR`.
    pub async fn start(args: &[&str]) -> Self {
        Self::start_at("127.0.0.1:0", args).await
    }

    /// Starts `chat-server --addr <addr>` with `args` and waits for `listening on ADDR`.
    pub async fn start_at(addr: &str, args: &[&str]) -> Self {
        Self::start_wrapped(&[], addr, args).await
    }

    /// Starts the server under `wrapper` (such as `prlimit --nofile=32`), which must exec it.
    pub async fn start_wrapped(wrapper: &[&str], addr: &str, args: &[&str]) -> Self {
        let log = std::env::temp_dir().join(format!(
            "chat-server-{}-{}.log",
            std::process::id(),
            unique()
        ));
        let stderr = std::fs::File::create(&log).expect("creating the server log");
        let server = bin_path("chat-server");
        let mut command = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(server);
                command
            }
            None => Command::new(server),
        };
        let mut child = command
            .args(["--addr", addr])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .expect("starting chat-server");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut stdout = BufReader::new(stdout);
        let mut others = Vec::new();
        let addr = loop {
            let mut line = String::new();
            let read = stdout.read_line(&mut line);
            tokio::time::timeout(DEADLINE, read)
                .await
                .expect("chat-server did not print its address in time")
                .expect("reading chat-server's stdout");
            let (what, addr) = line
                .trim_end()
                .split_once("listening on ")
                .unwrap_or_else(|| panic!("unexpected line {line:?}; log: {}", log.display()));
            let addr = addr.parse().expect("a socket address");
            match what.strip_suffix(' ') {
                Some(what) => others.push((what.to_owned(), addr)),
                None => break addr,
            }
        };
        Self {
            child,
            addr,
            others,
            log,
            _stdout: stdout,
        }
    }

    /// Where its listener `what` (`irc`, `irc-tls`, `metrics`) listens.
    pub fn listening(&self, what: &str) -> SocketAddr {
        self.others
            .iter()
            .find(|(name, _)| name == what)
            .map(|(_, addr)| *addr)
            .unwrap_or_else(|| panic!("no {what} listener; start the server with it"))
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        let pid = self.child.id().expect("the server is still running");
        i32::try_from(pid).expect("pids fit in i32")
    }

    /// Sends `sig` to the server.
    pub fn signal(&self, sig: Signal) {
        signal::kill(Pid::from_raw(self.pid()), sig).expect("sending a signal to chat-server");
    }

    /// Waits for the server to exit, at most `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => status.expect("waiting for chat-server"),
            Err(_) => panic!(
                "chat-server did not exit within {within:?}; log:\n{}",
                self.log_text()
            ),
        }
    }

    /// The server's CPU time and memory now, from `/proc`.
    pub fn sample(&self) -> Sample {
        let pid = u32::try_from(self.pid()).expect("pids are positive");
        chat_bench::procstat::sample(pid).expect("reading the server's /proc")
    }

    /// Open file descriptors of the server.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .expect("reading /proc fd")
            .count()
    }

    /// What the server logged on stderr so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A client connected to this server, not yet logged in.
    pub async fn connect(&self) -> LineClient {
        LineClient::connect(self.addr).await
    }

    /// A client logged in as `name`, its `welcome` already read.
    pub async fn login(&self, name: &str) -> LineClient {
        let mut client = self.connect().await;
        client.send(name).await;
        client.expect(&format!("welcome {name}")).await;
        client
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A raw line client: writes whatever it is told, reads lines with a deadline.
pub struct LineClient {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl LineClient {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connecting to chat-server");
        Self::from_stream(stream)
    }

    /// Connects with a receive buffer of about `bytes`, for clients that should fill up fast.
    pub async fn connect_with_recv_buffer(addr: SocketAddr, bytes: u32) -> Self {
        let socket = TcpSocket::new_v4().expect("a socket");
        socket
            .set_recv_buffer_size(bytes)
            .expect("setting SO_RCVBUF");
        Self::from_stream(
            socket
                .connect(addr)
                .await
                .expect("connecting to chat-server"),
        )
    }

    fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("setting TCP_NODELAY");
        let (reader, writer) = stream.into_split();
        Self {
            reader: BufReader::new(reader),
            writer,
        }
    }

    /// Sends `line` and a `\n`.
    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\n").as_bytes()).await;
    }

    /// Sends exactly `bytes`.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .await
            .expect("writing to chat-server");
    }

    /// Sends exactly `bytes`, ignoring a server that has already closed.
    pub async fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await
    }

    /// Closes the write half: the server reads EOF.
    pub async fn shutdown_write(&mut self) {
        self.writer
            .shutdown()
            .await
            .expect("shutting down the write half");
    }

    /// The next line's raw bytes without its `\n`, or `None` at EOF.
    pub async fn recv_bytes(&mut self) -> Option<Vec<u8>> {
        self.recv_bytes_within(DEADLINE).await
    }

    /// The next line, waiting at most `within` (for what takes longer than [`DEADLINE`]
    /// by design, such as a lease running out).
    pub async fn recv_within(&mut self, within: Duration) -> String {
        let line = self
            .recv_bytes_within(within)
            .await
            .expect("the server closed the connection");
        String::from_utf8(line).expect("the server sent invalid UTF-8")
    }

    async fn recv_bytes_within(&mut self, within: Duration) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        let read = self.reader.read_until(b'\n', &mut line);
        let n = tokio::time::timeout(within, read)
            .await
            .expect("no line from the server within the deadline")
            .expect("reading from chat-server");
        if n == 0 {
            return None;
        }
        assert_eq!(
            line.pop(),
            Some(b'\n'),
            "the server ended with a fragment: {line:?}"
        );
        Some(line)
    }

    /// The next line, or `None` at EOF.
    pub async fn recv_opt(&mut self) -> Option<String> {
        self.recv_bytes()
            .await
            .map(|l| String::from_utf8(l).expect("the server sent invalid UTF-8"))
    }

    /// The next line; fails the test at EOF.
    pub async fn recv(&mut self) -> String {
        self.recv_opt()
            .await
            .expect("the server closed the connection")
    }

    /// Reads lines until `want` arrives, skipping others (presence, say, that may or may
    /// not come first); fails the test if it does not come within the deadline.
    pub async fn skip_until(&mut self, want: &str) {
        while self.recv().await != want {}
    }

    /// Reads lines until one starting with `prefix` arrives, skipping others; returns it.
    pub async fn skip_until_prefix(&mut self, prefix: &str) -> String {
        loop {
            let line = self.recv().await;
            if line.starts_with(prefix) {
                return line;
            }
        }
    }

    /// Reads lines until `last` arrives and returns those before it. With `last` a line
    /// known to come after everything of interest (one sender's lines keep their order),
    /// this is a barrier where `/who` is none, such as for lines crossing cluster nodes.
    pub async fn lines_until(&mut self, last: &str) -> Vec<String> {
        let mut before = Vec::new();
        loop {
            let line = self.recv().await;
            if line == last {
                return before;
            }
            before.push(line);
        }
    }

    /// Asserts the next line is `want`.
    pub async fn expect(&mut self, want: &str) {
        assert_eq!(self.recv().await, want);
    }

    /// Asserts the next line starts with `prefix`; returns it.
    pub async fn expect_prefix(&mut self, prefix: &str) -> String {
        let line = self.recv().await;
        assert!(
            line.starts_with(prefix),
            "expected {prefix:?}..., got {line:?}"
        );
        line
    }

    /// Asserts the server closes the connection next (no more lines).
    pub async fn expect_eof(&mut self) {
        let mut rest = Vec::new();
        let read = self.reader.read_to_end(&mut rest);
        tokio::time::timeout(DEADLINE, read)
            .await
            .expect("the server did not close the connection within the deadline")
            .expect("reading until EOF");
        assert_eq!(
            String::from_utf8_lossy(&rest),
            "",
            "expected EOF, got more lines"
        );
    }

    /// Every line until the server closes the connection.
    pub async fn recv_until_eof(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.recv_opt().await {
            lines.push(line);
        }
        lines
    }

    /// Sends `/who` and returns every line received before the `users` reply, and the
    /// reply's names. The server handles one client's lines in order, so when this
    /// returns, every line this client sent earlier has been routed: the test's barrier.
    pub async fn sync(&mut self) -> (Vec<String>, Vec<String>) {
        self.send("/who").await;
        let mut before = Vec::new();
        loop {
            let line = self.recv().await;
            if let Some(names) = line.strip_prefix("users ") {
                let names = names
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned)
                    .collect();
                return (before, names);
            }
            before.push(line);
        }
    }
}
