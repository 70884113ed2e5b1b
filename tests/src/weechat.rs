//! [`WeeChat`]: the real IRC client WeeChat (Debian package `weechat-headless`), run
//! without its terminal interface in a temporary home directory, configured entirely on
//! its command line, driven through its FIFO plugin, and read through its logger plugin:
//! every buffer is written to a file as soon as a line is shown, so a test polls those
//! files (with [`DEADLINE`]) for what WeeChat received. Killed and reaped on drop; a test
//! that fails prints WeeChat's logs, its raw IRC traffic included.
//!
//! Works with WeeChat 3.8 (Debian 12) and 4.x: where an option was renamed in 4.0
//! (`ssl` to `tls`, `anti_flood_prio_*` to `anti_flood`) both names are set, and WeeChat
//! only notes in its core buffer that the other one does not exist.

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::DEADLINE;

/// The name WeeChat knows the chat server by (`/server add chat ...`): its buffers are
/// `irc.server.chat` and `irc.chat.<#channel>`.
pub const SERVER: &str = "chat";

/// How often a wait looks at WeeChat's files again.
const POLL: Duration = Duration::from_millis(25);

/// How WeeChat logs in: its nick, which is also the SASL PLAIN account, and the password.
pub struct Login<'a> {
    /// The nick and account name.
    pub nick: &'a str,
    /// The account's password (no `;`, which would end a command on WeeChat's command line).
    pub password: &'a str,
}

/// A running `weechat-headless`, connected (or connecting) to one IRC server.
pub struct WeeChat {
    child: Child,
    /// Its home directory: configuration, `logs/`, the FIFO.
    dir: tempfile::TempDir,
    /// The FIFO's write end, open for the life of WeeChat (so its plugin never reads EOF
    /// and reopens the pipe between two commands).
    fifo: Option<File>,
}

/// One line of a WeeChat log file: `time TAB prefix TAB message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// `YYYY-MM-DD HH:MM:SS`, local time (the message's `server-time` when it had one).
    pub time: String,
    /// A nick with its mode (`@carol`, `wendy`), or WeeChat's `-->`, `<--`, `--`, `=!=`.
    pub prefix: String,
    /// The text.
    pub message: String,
}

impl LogLine {
    fn parse(line: &str) -> Self {
        let mut fields = line.splitn(3, '\t');
        let mut next = || fields.next().unwrap_or_default().to_owned();
        Self {
            time: next(),
            prefix: next(),
            message: next(),
        }
    }

    /// The nick of a chat line, without its mode (`@carol` is `carol`).
    pub fn nick(&self) -> &str {
        self.prefix.trim_start_matches(['@', '+', ' '])
    }

    /// Whether this is `nick` saying `text`.
    pub fn said(&self, nick: &str, text: &str) -> bool {
        self.nick() == nick && self.message == text
    }
}

impl WeeChat {
    /// Starts `weechat-headless` in a new home directory, adds the IRC server at `irc`
    /// (plain TCP), logging in as `login` with SASL PLAIN and joining `channels`, then
    /// connects. Returns once its FIFO is open; the connection goes on in the background
    /// (wait for a sign of it, such as a native member seeing the join).
    pub fn start(irc: SocketAddr, login: &Login<'_>, channels: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir for WeeChat");
        let home = dir.path().to_str().expect("a UTF-8 temp path");
        assert!(
            !home.contains(';') && !login.password.contains(';'),
            "';' separates WeeChat's startup commands"
        );
        let fifo = dir.path().join("fifo");
        let server = format!("irc.server.{SERVER}");
        let nick = login.nick;
        let commands = [
            // Write every line to its log file at once, not every 120 s.
            "/set logger.file.flush_delay 0".to_owned(),
            "/set fifo.file.enabled on".to_owned(),
            format!("/set fifo.file.path {}", fifo.display()),
            // The raw IRC buffer is kept out of the logs (local variable no_log); log it
            // too, for a failing test to show the exchange.
            "/server raw".to_owned(),
            "/command -buffer irc.irc_raw * /buffer delvar no_log".to_owned(),
            format!("/server add {SERVER} {irc}", irc = irc_address(irc)),
            format!("/set {server}.ssl off"),
            format!("/set {server}.tls off"),
            // No anti-flood delay between lines this client sends (2 s by default).
            format!("/set {server}.anti_flood_prio_high 0"),
            format!("/set {server}.anti_flood_prio_low 0"),
            format!("/set {server}.anti_flood 0"),
            format!("/set {server}.autoreconnect off"),
            format!("/set {server}.nicks {nick}"),
            format!("/set {server}.username {nick}"),
            format!("/set {server}.realname {nick}"),
            format!("/set {server}.sasl_mechanism plain"),
            format!("/set {server}.sasl_username {nick}"),
            format!("/set {server}.sasl_password {}", login.password),
            format!("/set {server}.sasl_fail disconnect"),
            // Every capability this WeeChat supports, and draft/chathistory, which 3.8
            // does not know but requests when named, so that CHATHISTORY is negotiated.
            format!("/set {server}.capabilities \"*,draft/chathistory\""),
            format!("/set {server}.autojoin {}", channels.join(",")),
            format!("/connect {SERVER}"),
        ];
        let child = Command::new("weechat-headless")
            .arg("--dir")
            .arg(dir.path())
            // Only the plugins the test uses: faster, and nothing else to go wrong.
            .args(["--plugins", "irc,logger,fifo"])
            .arg("--run-command")
            .arg(commands.join(";"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting weechat-headless: {e} (Debian package weechat-headless; \
                     scripts/test installs it)"
                )
            });
        // Made before waiting for the FIFO, so that WeeChat is killed if that fails.
        let mut weechat = Self {
            child,
            dir,
            fifo: None,
        };
        weechat.fifo = Some(weechat.open_fifo(&fifo));
        weechat
    }

    /// Opens the FIFO for writing once WeeChat has made it and reads it.
    fn open_fifo(&mut self, path: &Path) -> File {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let is_fifo = std::fs::metadata(path).is_ok_and(|m| m.file_type().is_fifo());
            if is_fifo {
                // Without a reader, a non-blocking open fails (ENXIO) instead of waiting.
                match std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(nix::fcntl::OFlag::O_NONBLOCK.bits())
                    .open(path)
                {
                    Ok(file) => return file,
                    Err(e) if e.raw_os_error() == Some(nix::errno::Errno::ENXIO as i32) => {}
                    Err(e) => panic!("opening WeeChat's FIFO {}: {e}", path.display()),
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weechat-headless exited at startup: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "WeeChat made no FIFO at {} within {DEADLINE:?}",
                path.display()
            );
            std::thread::sleep(POLL);
        }
    }

    /// Has WeeChat run `input` in `buffer` (`#room`, or `server` for the server's buffer)
    /// as if typed there: a command (`/quote ...`) or a message to the channel.
    pub fn input(&mut self, buffer: &str, input: &str) {
        assert!(!input.contains('\n'), "one line at a time");
        let line = format!("{} *{input}\n", full_name(buffer));
        // One write of less than PIPE_BUF bytes: never interleaved, never partial.
        self.fifo
            .as_mut()
            .expect("the FIFO is open")
            .write_all(line.as_bytes())
            .unwrap_or_else(|e| panic!("writing {line:?} to WeeChat's FIFO: {e}"));
    }

    /// The log file of `buffer` (`#room`, `server`, or `raw` for the raw IRC messages).
    pub fn log_path(&self, buffer: &str) -> PathBuf {
        let name = match buffer {
            "raw" => "irc.irc_raw".to_owned(),
            _ => full_name(buffer),
        };
        // The logger's default mask, `$plugin.$name.weechatlog`, in lower case.
        self.dir
            .path()
            .join("logs")
            .join(format!("{}.weechatlog", name.to_lowercase()))
    }

    /// Every line of `buffer`'s log so far (none before its first line).
    pub fn log(&self, buffer: &str) -> Vec<LogLine> {
        std::fs::read_to_string(self.log_path(buffer))
            .unwrap_or_default()
            .lines()
            .map(LogLine::parse)
            .collect()
    }

    /// Waits until `buffer`'s log satisfies `done`, and returns the log then; fails the
    /// test after [`DEADLINE`], naming `what`.
    pub async fn wait_until(
        &mut self,
        buffer: &str,
        what: &str,
        mut done: impl FnMut(&[LogLine]) -> bool,
    ) -> Vec<LogLine> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = self.log(buffer);
            if done(&log) {
                return log;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weechat-headless exited ({status}) while waiting for {what}");
            }
            assert!(
                Instant::now() < deadline,
                "WeeChat did not show {what} in {buffer} within {DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits for a line in `buffer` that `matches`, and returns it.
    pub async fn wait_for(
        &mut self,
        buffer: &str,
        what: &str,
        matches: impl Fn(&LogLine) -> bool,
    ) -> LogLine {
        let log = self
            .wait_until(buffer, what, |log| log.iter().any(&matches))
            .await;
        log.into_iter().find(matches).expect("the line just seen")
    }

    /// Sends `/quit` and waits for WeeChat to exit (it sends `QUIT` first).
    pub async fn quit(&mut self) -> ExitStatus {
        self.input("server", "/quit");
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for weechat-headless") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "weechat-headless did not exit within {DEADLINE:?} of /quit"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Prints every log file WeeChat wrote, for a failing test.
    fn dump_logs(&self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("logs")) else {
            eprintln!("WeeChat wrote no logs");
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            eprintln!("----- WeeChat log {} -----\n{text}", path.display());
        }
    }
}

/// WeeChat's `host/port` form of an address.
fn irc_address(addr: SocketAddr) -> String {
    format!("{}/{}", addr.ip(), addr.port())
}

/// The full name of `buffer`: `server` is the server's buffer, anything else a channel.
fn full_name(buffer: &str) -> String {
    match buffer {
        "server" => format!("irc.server.{SERVER}"),
        channel => format!("irc.{SERVER}.{channel}"),
    }
}

impl Drop for WeeChat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            self.dump_logs();
        }
    }
}
