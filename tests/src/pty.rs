//! [`PtyClient`]: the real `chat-client` in a pseudo-terminal, its screen kept by a
//! terminal emulator (`vt100`), keys typed as bytes the way a terminal sends them.

use std::io::{Read, Write};
use std::num::NonZeroU16;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

use crate::{DEADLINE, bin_path};

/// Keys as a terminal encodes them.
pub mod keys {
    /// Enter.
    pub const ENTER: &str = "\r";
    /// Ctrl-C.
    pub const CTRL_C: &str = "\x03";
    /// Ctrl-D.
    pub const CTRL_D: &str = "\x04";
    /// ←.
    pub const LEFT: &str = "\x1b[D";
    /// →.
    pub const RIGHT: &str = "\x1b[C";
    /// Backspace.
    pub const BACKSPACE: &str = "\x7f";
    /// Up arrow: the previous line of the input history.
    pub const UP: &str = "\x1b[A";
    /// F1.
    pub const F1: &str = "\x1bOP";
    /// Page Up.
    pub const PAGE_UP: &str = "\x1b[5~";
    /// Escape.
    pub const ESC: &str = "\x1b";
    /// Tab.
    pub const TAB: &str = "\t";
    /// F2: mouse wheel scrolling on/off.
    pub const F2: &str = "\x1bOQ";
    /// Ctrl-L: redraw.
    pub const CTRL_L: &str = "\x0c";
    /// Ctrl-N: the next buffer.
    pub const CTRL_N: &str = "\x0e";
    /// Alt-b: a word left.
    pub const ALT_B: &str = "\x1bb";
    /// Alt-Backspace: cut the word before the cursor.
    pub const ALT_BACKSPACE: &str = "\x1b\x7f";
    /// Ctrl-→: a word right.
    pub const CTRL_RIGHT: &str = "\x1b[1;5C";
    /// Ctrl-Y: paste the last cut.
    pub const CTRL_Y: &str = "\x19";

    /// Alt-`n`: switch to buffer `n`.
    pub fn alt(n: u8) -> String {
        format!("\x1b{n}")
    }
}

/// What the client asked the terminal to do besides drawing, recorded for the tests.
#[derive(Debug, Default, Clone)]
pub struct Requests {
    /// Window title changes (OSC 0/2).
    pub titles: Vec<Vec<u8>>,
    /// Clipboard writes (OSC 52).
    pub clipboard: Vec<Vec<u8>>,
    /// Bells.
    pub bells: usize,
    /// OSC 8 hyperlinks, in order: the URI each opens, empty for the one that closes a
    /// link.
    pub hyperlinks: Vec<Vec<u8>>,
}

impl vt100::Callbacks for Requests {
    fn audible_bell(&mut self, _: &mut vt100::Screen) {
        self.bells += 1;
    }

    fn set_window_title(&mut self, _: &mut vt100::Screen, title: &[u8]) {
        self.titles.push(title.to_vec());
    }

    fn set_window_icon_name(&mut self, _: &mut vt100::Screen, name: &[u8]) {
        self.titles.push(name.to_vec());
    }

    fn copy_to_clipboard(&mut self, _: &mut vt100::Screen, _ty: &[u8], data: &[u8]) {
        self.clipboard.push(data.to_vec());
    }

    fn unhandled_osc(&mut self, _: &mut vt100::Screen, params: &[&[u8]]) {
        // `8 ; params ; URI`, the URI split further wherever it has a `;`.
        if let [b"8", _, uri @ ..] = params {
            self.hyperlinks.push(uri.join(&b';'));
        }
    }
}

struct Shared {
    parser: Mutex<vt100::Parser<Requests>>,
    /// Every byte the client wrote, for what a screen of cells cannot show: how a cluster
    /// was written, say.
    output: Mutex<Vec<u8>>,
    /// Set by the reader thread once the pty is closed and all output is parsed.
    closed: AtomicBool,
    /// Signalled whenever output arrives or the client's side of the pty closes.
    changed: Condvar,
}

/// A running `chat-client` in a pseudo-terminal. Killed when dropped.
pub struct PtyClient {
    shared: Arc<Shared>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    master: Box<dyn MasterPty + Send>,
}

impl PtyClient {
    /// Starts `chat-client` with `args` in a `cols`×`rows` terminal.
    pub fn spawn(args: &[&str], cols: u16, rows: u16) -> Self {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("opening a pty");
        let mut command = CommandBuilder::new(bin_path("chat-client"));
        command.args(args);
        command.env("TERM", "xterm-256color");
        // A backtrace would scroll what the tests look for off the screen.
        command.env("RUST_BACKTRACE", "0");
        command.env_remove("CHAT_NAME");
        command.env_remove("CHAT_ADDR");
        // Never the developer's own config file.
        command.env("XDG_CONFIG_HOME", "/nonexistent");
        let child = pair
            .slave
            .spawn_command(command)
            .expect("starting chat-client in a pty");
        drop(pair.slave);
        let shared = Arc::new(Shared {
            parser: Mutex::new(vt100::Parser::new_with_callbacks(
                nonzero(rows),
                nonzero(cols),
                0,
                Requests::default(),
            )),
            output: Mutex::new(Vec::new()),
            changed: Condvar::new(),
            closed: AtomicBool::new(false),
        });
        let mut reader = pair.master.try_clone_reader().expect("a pty reader");
        let feed = shared.clone();
        std::thread::spawn(move || {
            let mut buf = [0; 8192];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let mut parser = feed.parser.lock().expect("the parser lock");
                if n > 0 {
                    feed.output
                        .lock()
                        .expect("the output lock")
                        .extend_from_slice(&buf[..n]);
                    parser.process(&buf[..n]);
                } else {
                    feed.closed.store(true, Ordering::Release);
                }
                feed.changed.notify_all();
                if n == 0 {
                    break;
                }
            }
        });
        let writer = pair.master.take_writer().expect("a pty writer");
        Self {
            shared,
            writer,
            child,
            master: pair.master,
        }
    }

    /// Types `keys` (text, or sequences from [`keys`]).
    pub fn type_keys(&mut self, keys: &str) {
        self.writer
            .write_all(keys.as_bytes())
            .expect("writing to the pty");
        self.writer.flush().expect("flushing the pty");
    }

    /// Sends bytes as one burst, as a terminal does for a bracketed paste.
    pub fn paste(&mut self, text: &str) {
        self.type_keys(&format!("\x1b[200~{text}\x1b[201~"));
    }

    /// The screen as text, one line per row.
    pub fn screen(&self) -> String {
        self.lock().screen().contents()
    }

    /// What the client asked of the terminal besides drawing.
    pub fn requests(&self) -> Requests {
        self.lock().callbacks().clone()
    }

    /// Every byte the client has written to the terminal so far.
    pub fn output(&self) -> Vec<u8> {
        self.shared.output.lock().expect("the output lock").clone()
    }

    /// Runs `check` on the emulator until it holds, or fails the test with the screen.
    pub fn wait_until(&self, what: &str, check: impl Fn(&vt100::Screen) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        let mut parser = self.lock();
        while !check(parser.screen()) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; the screen:\n{}",
                parser.screen().contents()
            );
            parser = self
                .shared
                .changed
                .wait_timeout(parser, left)
                .expect("the parser lock")
                .0;
        }
    }

    /// Waits until `text` is on the screen.
    pub fn wait_for(&self, text: &str) {
        self.wait_until(&format!("{text:?}"), |screen| {
            screen.contents().contains(text)
        });
    }

    /// Resizes the terminal (the client gets SIGWINCH).
    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.lock()
            .screen_mut()
            .set_size(nonzero(rows), nonzero(cols));
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resizing the pty");
    }

    /// The client's process id.
    pub fn pid(&self) -> i32 {
        let pid = self.child.process_id().expect("the client is running");
        i32::try_from(pid).expect("pids fit in i32")
    }

    /// Waits for the client to exit and returns its exit code.
    pub fn wait_exit(&mut self) -> u32 {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("checking the client") {
                // The terminal restore may still be in the pty: wait until the reader
                // thread has parsed everything up to the close.
                let shared = self.shared.clone();
                self.wait_until("the pty to close", move |_| {
                    shared.closed.load(Ordering::Acquire)
                });
                return status.exit_code();
            }
            assert!(
                Instant::now() < deadline,
                "chat-client did not exit; the screen:\n{}",
                self.screen()
            );
            let parser = self.lock();
            let _ = self
                .shared
                .changed
                .wait_timeout(parser, Duration::from_millis(50));
        }
    }

    /// Whether the client has captured the mouse.
    pub fn mouse_captured(&self) -> bool {
        self.lock().screen().mouse_protocol_mode() != vt100::MouseProtocolMode::None
    }

    /// Whether the terminal is back as the client found it: main screen, cursor shown,
    /// bracketed paste and mouse capture off, and the line discipline cooked (canonical
    /// input and echo).
    pub fn assert_restored(&self) {
        let parser = self.lock();
        let screen = parser.screen();
        assert!(!screen.alternate_screen(), "still on the alternate screen");
        assert!(!screen.hide_cursor(), "the cursor is still hidden");
        assert!(!screen.bracketed_paste(), "bracketed paste is still on");
        assert_eq!(
            screen.mouse_protocol_mode(),
            vt100::MouseProtocolMode::None,
            "the mouse is still captured"
        );
        drop(parser);
        let termios = self.master.get_termios().expect("termios of the pty");
        let flags = format!("{:?}", termios.local_flags);
        assert!(
            flags.contains("ICANON") && flags.contains("ECHO"),
            "raw mode still on: {flags}"
        );
    }

    fn lock(&self) -> MutexGuard<'_, vt100::Parser<Requests>> {
        self.shared.parser.lock().expect("the parser lock")
    }
}

fn nonzero(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).expect("a terminal has at least one row and column")
}

impl Drop for PtyClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Row `row` of `screen`, trailing blanks trimmed.
pub fn row(screen: &vt100::Screen, row: u16) -> String {
    let (_, cols) = screen.size();
    screen
        .rows(0, cols.get())
        .nth(usize::from(row))
        .unwrap_or_default()
        .trim_end()
        .to_owned()
}
