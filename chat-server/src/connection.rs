//! One client, served by one task: login, then a loop that hands the broker every line
//! the client sends and writes every line queued for the client. Only the queue writes to
//! the socket after login: every line the client gets, errors included, comes through
//! it, in order. One task rather than a reader and a writer halves what an idle client
//! costs (a task, its future and the tokens between the two).

use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use chat_proto::{ClientLine, CodecError, LoginLine, Password, ServerLine, UserName, encode_line};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep, timeout};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};
use zeroize::Zeroize;

use crate::Config;
use crate::accounts::Hasher;
use crate::backend::Auth;
use crate::broker::{BrokerEvent, Request};
use crate::io::{Batch, LineReader};
use crate::irc::outgoing::Outgoing;
use crate::metrics::{METRICS, Refusal};
use crate::pacer::Pacer;
use crate::roster::ConnId;
use crate::sendq::{self, Inbox, Outbox, Ready};
use crate::tls::{self, ReadHalf, WriteHalf};

/// After the last line is written, how long to keep discarding input while waiting for the
/// client to close. Closing a socket with unread input makes the kernel send a reset, and
/// a reset can destroy the final `error:` or `bye:` line before the client reads it.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Most lines handed to the broker in one event.
const MAX_LINES_PER_EVENT: usize = 64;

/// A write to a client that makes no progress for this long ends the connection, so a
/// client that stopped reading cannot hold its socket open forever.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client cut off for not reading gets to take the rest of the line it was
/// in the middle of and the `error:` saying why, before the socket is closed anyway.
const KICK_GRACE: Duration = Duration::from_secs(10);

/// A batch is written out once it holds this much, so one write never grows unbounded.
const WRITE_CHUNK_BYTES: usize = 64 * 1024;

/// What a connection task needs from the server.
pub(crate) struct Connection {
    pub(crate) id: ConnId,
    /// The client's address: loopback or not decides whether passwords may come in clear,
    /// and failed logins are throttled per address.
    pub(crate) addr: SocketAddr,
    pub(crate) hasher: Hasher,
    /// This reader's way to the broker. Dropping it, not a message, is how the reader
    /// tells the broker at shutdown that it will send nothing more.
    pub(crate) broker_tx: mpsc::Sender<BrokerEvent>,
    /// Cancelled by [`crate::run`] at shutdown: stop reading, send nothing more.
    pub(crate) token: CancellationToken,
    pub(crate) config: Arc<Config>,
    /// With `--tls-cert`: the handshake every connection makes first.
    pub(crate) tls: Option<TlsAcceptor>,
}

impl Connection {
    /// Serves one client until it leaves, is dropped, or the server shuts down; then
    /// drops `admission` (what the listener counts connections by).
    ///
    /// One flat function on purpose: every nested `async fn` taking values stores them
    /// twice in the task, and the task's size is what every idle client costs. The
    /// states that live once (handshake, login, the close) are boxed for the same reason,
    /// and so are the arguments: unboxed, the 184 bytes of the connection, its socket and
    /// its admission would stay in the future next to the locals they move into; boxed,
    /// the box is freed once they are out of it (docs/performance.md).
    pub(crate) async fn run<A: Send>(start: Box<(Self, TcpStream, A)>) {
        // Values handed to a function leave nothing behind in the future; a partly moved
        // `Box`, `Result` or `Option` would keep its room until the client leaves.
        let (this, stream, admission) = {
            let start = start;
            *start
        };
        let (id, addr) = (this.id, this.addr);
        let opened = Box::pin(async {
            tokio::select! {
                opened = open(stream, this.tls.as_ref(), this.config.handshake_timeout) => opened,
                () = this.token.cancelled() => Ok(None),
            }
        })
        .await;
        let Some((read_half, write_half)) = opened_or_closed(opened, addr, id) else {
            return;
        };
        let mut lines = LineReader::new(read_half, this.config.max_line_bytes);
        let (outbox, inbox) = sendq::channel(this.config.sendq);
        let mut writer = Writer::new(write_half, inbox);
        let login = Box::pin(this.login(&mut lines, outbox)).await;
        let result = match login {
            Some(name) => {
                info!(id, %name, "logged in");
                let ended = this.read_and_write(&mut lines, &mut writer).await;
                Box::pin(this.leave(name, ended)).await
            }
            // Refused: the queue holds why, if the client is still there to read it.
            None => Ok(()),
        };
        // The broker's shutdown waits for every `broker_tx` to go, and this connection's
        // queue closes only after that: drop it before the close.
        drop(this);
        Box::pin(finish(id, &mut lines, &mut writer)).await;
        closed(addr, id, result);
        drop(admission);
    }

    /// Tells the broker how reading ended (`None`: at shutdown, when it must hear
    /// nothing).
    async fn leave(
        &self,
        name: UserName,
        ended: Option<(BrokerEvent, io::Result<()>)>,
    ) -> io::Result<()> {
        let Some((last, result)) = ended else {
            // No leave: the broker will tell everyone `bye` instead.
            debug!(id = self.id, %name, "stopped reading for shutdown");
            return Ok(());
        };
        info!(id = self.id, %name, "left");
        let _ = self.broker_tx.send(last).await;
        result
    }

    /// Reads the login line, checks the password if there is one, and asks the broker to
    /// log the client in. `None`: refused (the client was told why), or the client or the
    /// server went away first.
    async fn login(&self, lines: &mut LineReader, outbox: Outbox) -> Option<UserName> {
        let checked = match self.handshake(lines).await {
            Ok(Some(LoginLine { name, password })) => self
                .authenticate(&name, password)
                .await
                .map(|ok| (name, ok)),
            Ok(None) => return None,
            Err(reason) => Err(reason),
        };
        let (name, authenticated) = match checked {
            Ok(checked) => checked,
            Err(reason) => {
                METRICS.refused(Refusal::of(&reason));
                outbox.send_last(&encode_line(ServerLine::Error(reason)));
                return None;
            }
        };
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let join = BrokerEvent::Join {
            id: self.id,
            name: name.clone(),
            authenticated,
            outbox,
            accepted: accepted_tx,
        };
        // A refusal (name taken) was already queued for this client by the broker.
        let sent = self.broker_tx.send(join).await.is_ok();
        let accepted = sent && accepted_rx.await.unwrap_or(false);
        count_login(sent, accepted);
        accepted.then_some(name)
    }

    /// Reads the login line. `Ok(None)`: the client or the server went away first;
    /// `Err(reason)`: tell the client why and close.
    async fn handshake(&self, lines: &mut LineReader) -> Result<Option<LoginLine>, String> {
        let first = tokio::select! {
            () = self.token.cancelled() => return Ok(None),
            first = timeout(self.config.handshake_timeout, lines.next_line()) => first,
        };
        match first {
            Err(_elapsed) => Err("login timed out".to_owned()),
            Ok(None | Some(Err(CodecError::Io(_)))) => Ok(None),
            Ok(Some(Err(e))) => Err(e.to_string()),
            Ok(Some(Ok(mut line))) => {
                let login = line
                    .parse()
                    .map(Some)
                    .map_err(|e: chat_proto::ParseError| e.to_string());
                // The line may hold a password; the parsed copy wipes itself when dropped.
                line.zeroize();
                login
            }
        }
    }

    /// Whether the login may go on, and whether its password was checked: `Err` holds
    /// the reason to refuse it. A password is checked off the runtime, and dropped
    /// (wiped) as soon as it has been.
    pub(crate) async fn authenticate(
        &self,
        name: &UserName,
        password: Option<Password>,
    ) -> Result<bool, String> {
        if password.is_some() {
            self.may_send_passwords()?;
        }
        let (reply, answer) = oneshot::channel();
        let ask = BrokerEvent::Authenticate {
            name: name.clone(),
            addr: self.addr.ip(),
            with_password: password.is_some(),
            reply,
        };
        let gone = || "server shutting down".to_owned();
        self.broker_tx.send(ask).await.map_err(|_| gone())?;
        match (answer.await.map_err(|_| gone())?, password) {
            (Auth::Open, _) => Ok(false),
            (Auth::Refused(reason), _) => Err(reason),
            (Auth::Verify(phc), Some(password)) => {
                if !self.hasher.verify(password, phc).await {
                    // Already counted against the throttle by the broker.
                    return Err("wrong password".to_owned());
                }
                let passed = BrokerEvent::LoginPassed {
                    name: name.clone(),
                    addr: self.addr.ip(),
                };
                let _ = self.broker_tx.send(passed).await;
                Ok(true)
            }
            (Auth::Verify(_), None) => Err("a password is needed".to_owned()),
        }
    }

    /// Hashes a `/register` or `/password` line's password here, on the blocking pool,
    /// so a password never reaches the broker and never waits in its queue.
    async fn hashed(&self, password: Password, wrap: fn(String) -> Request) -> Request {
        if let Err(reason) = self.may_send_passwords() {
            return Request::Invalid(reason);
        }
        match self.hasher.hash(password).await {
            Ok(phc) => wrap(phc),
            Err(e) => Request::Invalid(format!("could not hash the password: {e}")),
        }
    }

    /// Whether any password line (login, `/register`, `/password`) may come over this
    /// connection: over TLS always; over plain TCP see [`plaintext_password_allowed`].
    pub(crate) fn may_send_passwords(&self) -> Result<(), String> {
        if self.tls.is_some() || plaintext_password_allowed(self.addr.ip(), &self.config) {
            return Ok(());
        }
        Err(
            "a password over an unencrypted connection from another machine is refused; \
             connect with TLS"
                .to_owned(),
        )
    }

    /// Hands the broker every line the client sends, and writes what the broker queues,
    /// until reading ends. Returns what the broker must hear about the end, or `None` at
    /// shutdown, when it must hear nothing.
    async fn read_and_write(
        &self,
        lines: &mut LineReader,
        writer: &mut Writer,
    ) -> Option<(BrokerEvent, io::Result<()>)> {
        let id = self.id;
        // Boxed: most clients are not paced, and this future is part of every idle one.
        let mut pacer = self
            .config
            .rate_limit
            .map(|rate| Box::new(Pacer::new(rate)));
        // Paced clients go one line at a time.
        let most = if pacer.is_some() {
            1
        } else {
            MAX_LINES_PER_EVENT
        };
        // Made once, not per line: registering a fresh waiter per line showed up in
        // profiles.
        let shutdown = self.token.cancelled();
        tokio::pin!(shutdown);
        // With flood control: when the client may send its next line. Boxed, since only
        // paced clients ever wait on it.
        let mut paused: Option<Pin<Box<Sleep>>> = None;
        // Once the client has sent `/ping`, how long it may then stay silent before it is
        // taken for dead (`--idle-timeout`). Boxed: most clients never ping.
        let mut liveness: Option<Pin<Box<Sleep>>> = None;
        loop {
            // Stopping wins over writing, writing over reading. Every branch is cancel
            // safe: LineReader keeps a partial line buffered, the writer keeps the bytes
            // it took, and the futures made once are reused.
            let Batch { lines: read, end } = tokio::select! {
                biased;
                () = &mut shutdown => return None,
                wrote = poll_fn(|cx| writer.poll_step(cx)) => match wrote {
                    Ok(Wrote::More) => continue,
                    // The broker let the client go (cut off, or its name taken
                    // elsewhere): it no longer listens, but hears the leave harmlessly.
                    Ok(Wrote::Closed | Wrote::Kicked) => {
                        return Some((BrokerEvent::Leave { id }, Ok(())));
                    }
                    Err(e) => return Some((BrokerEvent::Leave { id }, Err(e))),
                },
                () = poll_fn(|cx| paused.as_mut().map_or(Poll::Pending, |p| p.as_mut().poll(cx))),
                    if paused.is_some() =>
                {
                    paused = None;
                    continue;
                }
                () = poll_fn(|cx| liveness.as_mut().map_or(Poll::Pending, |p| p.as_mut().poll(cx))),
                    if liveness.is_some() =>
                {
                    let reason = format!(
                        "nothing received for {} s since the last /ping: closing as dead",
                        self.config.idle_timeout.as_secs()
                    );
                    return Some((BrokerEvent::Fatal { id, reason }, Ok(())));
                }
                batch = poll_fn(|cx| lines.poll_batch(cx, most)), if paused.is_none() => batch,
            };
            if !read.is_empty() {
                // Every line one read brought goes in one event: one channel operation and
                // one poll of the token per read, not per line.
                let mut lines = Vec::with_capacity(read.len());
                for line in read {
                    let request = match request(line) {
                        Ok(request) => request,
                        // Rare, and boxed so the loop's future has no room for it.
                        Err((password, wrap)) => Box::pin(self.hashed(password, wrap)).await,
                    };
                    if liveness.is_none() && matches!(request, Request::Line(ClientLine::Ping(_))) {
                        liveness = Some(Box::pin(tokio::time::sleep(self.config.idle_timeout)));
                    }
                    lines.push(request);
                }
                if let Some(liveness) = liveness.as_mut() {
                    liveness
                        .as_mut()
                        .reset(Instant::now() + self.config.idle_timeout);
                }
                let event = BrokerEvent::Lines { id, lines };
                // Waiting for room is boxed too: it happens only when the broker is behind.
                let sent = match self.broker_tx.try_send(event) {
                    Ok(()) => true,
                    Err(TrySendError::Full(event)) => {
                        Box::pin(self.broker_tx.send(event)).await.is_ok()
                    }
                    Err(TrySendError::Closed(_)) => false,
                };
                if !sent {
                    return None;
                }
            }
            if let Some(end) = end {
                return Some(closing(id, end));
            }
            // Flood control: not reading is the whole penalty. The client's lines wait
            // in its socket (then in its own send buffer); none is lost.
            if let Some(ready) = pacer.as_mut().and_then(|p| p.after_line(Instant::now())) {
                paused = Some(Box::pin(tokio::time::sleep_until(ready)));
            }
        }
    }
}

/// The socket's halves once open; otherwise the connection is over, and logged so.
pub(crate) fn opened_or_closed(
    opened: io::Result<Option<(ReadHalf, WriteHalf)>>,
    addr: SocketAddr,
    id: ConnId,
) -> Option<(ReadHalf, WriteHalf)> {
    match opened {
        Ok(Some(halves)) => Some(halves),
        Ok(None) => {
            closed(addr, id, Ok(()));
            None
        }
        Err(e) => {
            closed(addr, id, Err(e));
            None
        }
    }
}

/// Logs a connection's end, and why if it was an error.
pub(crate) fn closed(addr: SocketAddr, id: ConnId, result: io::Result<()>) {
    if let Err(e) = result {
        debug!(peer = %addr, id, error = %e, "connection ended with an error");
    }
    info!(peer = %addr, id, "closed");
}

/// A password line's password, and what the broker gets once it is hashed.
type ToHash = (Password, fn(String) -> Request);

/// What the broker gets for `line`, or for a password line, what to hash first. The
/// line's buffer becomes the message's text, or is wiped (it may hold a password).
fn request(line: String) -> Result<Request, ToHash> {
    match ClientLine::parse_owned(line) {
        Ok(ClientLine::Register(password)) => Err((password, Request::Register)),
        Ok(ClientLine::SetPassword(password)) => Err((password, Request::SetPassword)),
        Ok(line) => Ok(Request::Line(line)),
        Err(e) => Ok(Request::Invalid(e.to_string())),
    }
}

/// Whether a password may come over this (plain TCP) connection: from loopback it never
/// crossed a network; from anywhere else only if the operator said so.
fn plaintext_password_allowed(peer: std::net::IpAddr, config: &Config) -> bool {
    peer.is_loopback() || config.allow_plaintext_passwords
}

/// What the broker must hear when reading ends: EOF (`None`) or a broken socket is a
/// leave; a framing error is fatal, so the client is told why before it is closed.
fn closing(id: ConnId, end: Option<CodecError>) -> (BrokerEvent, io::Result<()>) {
    match end {
        None => (BrokerEvent::Leave { id }, Ok(())),
        Some(CodecError::Io(e)) => (BrokerEvent::Leave { id }, Err(e)),
        Some(e) => (
            BrokerEvent::Fatal {
                id,
                reason: e.to_string(),
            },
            Ok(()),
        ),
    }
}

/// The connection's halves, after the TLS handshake if there is one. `None`: the
/// handshake failed or took longer than `within` (a plain-text client on a TLS port,
/// or one that sends nothing); the socket is closed and nobody else noticed.
pub(crate) async fn open(
    stream: TcpStream,
    tls: Option<&TlsAcceptor>,
    within: Duration,
) -> io::Result<Option<(ReadHalf, WriteHalf)>> {
    let Some(acceptor) = tls else {
        return Ok(Some(tls::split_plain(stream)));
    };
    match timeout(within, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Ok(Some(tls::split_tls(stream))),
        Ok(Err(e)) => {
            debug!(error = %e, "TLS handshake failed");
            Ok(None)
        }
        Err(_elapsed) => {
            debug!("TLS handshake timed out");
            Ok(None)
        }
    }
}

/// Counts the broker's answer to a login: accepted, or refused (the name is taken, or
/// too many sessions); nothing when the server is stopping and never answered.
pub(crate) fn count_login(sent: bool, accepted: bool) {
    match (sent, accepted) {
        (_, true) => {
            METRICS.logins.inc();
        }
        (true, false) => {
            METRICS.refused(Refusal::Taken);
        }
        (false, false) => {}
    }
}

/// Sends `line` (why) to a connection the server will not serve, then closes it.
pub(crate) async fn refuse(
    id: ConnId,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    within: Duration,
    line: crate::sendq::Line,
) {
    let Ok(Some((read_half, write_half))) = open(stream, tls.as_ref(), within).await else {
        return;
    };
    let (outbox, inbox) = sendq::channel(usize::MAX);
    outbox.send_last(&line);
    drop(outbox);
    let mut lines = LineReader::new(read_half, chat_proto::DEFAULT_MAX_LINE_BYTES);
    finish(id, &mut lines, &mut Writer::new(write_half, inbox)).await;
}

/// After reading ends: writes out what is still queued (a cut-off client only the rest
/// of the line in flight and why, within [`KICK_GRACE`]), shuts the write half so the
/// client reads EOF, and discards input until the client closes or [`CLOSE_LINGER`] has
/// passed. Dropping the read half only then keeps the close a FIN rather than a reset,
/// which could destroy the last line before the client reads it.
pub(crate) async fn finish(id: ConnId, lines: &mut LineReader, writer: &mut Writer) {
    let mut input_open = true;
    let written = loop {
        tokio::select! {
            biased;
            wrote = poll_fn(|cx| writer.poll_step(cx)) => match wrote {
                Ok(Wrote::More) => {}
                Ok(Wrote::Closed) => break writer.shut().await,
                Ok(Wrote::Kicked) => {
                    match timeout(KICK_GRACE, Box::pin(writer.farewell())).await {
                        Ok(written) => break written,
                        Err(_) => {
                            debug!(id, "cut-off client took nothing in its grace period");
                            break Ok(());
                        }
                    }
                }
                Err(e) => break Err(e),
            },
            open = lines.discard(), if input_open => input_open = open,
        }
    };
    if let Err(e) = written {
        debug!(id, error = %e, "writing ended with an error");
        return;
    }
    if input_open {
        let _ = timeout(CLOSE_LINGER, async { while lines.discard().await {} }).await;
    }
}

/// What [`Writer::step`] did.
pub(crate) enum Wrote {
    /// Wrote some bytes; there may be more.
    More,
    /// The broker dropped the queue and everything in it is written.
    Closed,
    /// The broker cut the client off: see [`Writer::farewell`].
    Kicked,
}

/// The writing side of a connection: its queue, the socket, and the bytes taken from the
/// one and not yet written to the other (no allocation while idle).
pub(crate) struct Writer {
    half: WriteHalf,
    inbox: Inbox,
    /// For an IRC client: what turns the broker's native lines into IRC.
    irc: Option<Box<Outgoing>>,
    out: BytesMut,
    /// Armed (boxed: most writes never wait) when a write waits: a write making no
    /// progress for [`WRITE_STALL_TIMEOUT`] ends the connection, so a client that
    /// stopped reading cannot hold its socket open forever.
    stall: Option<Pin<Box<Sleep>>>,
    /// Scheduler turns yielded so far before taking a batch, and the queue's length
    /// at the last one.
    yielded: u8,
    queued: usize,
}

impl Writer {
    pub(crate) fn new(half: WriteHalf, inbox: Inbox) -> Self {
        Self {
            half,
            inbox,
            irc: None,
            out: BytesMut::new(),
            stall: None,
            yielded: 0,
            queued: 0,
        }
    }

    /// Waits for queued lines if it holds none, then makes one write. A poll function,
    /// like [`LineReader::poll_batch`], so that an idle client's task holds no future
    /// for it; the state lives in `self`, which makes it cancel safe too.
    pub(crate) fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Wrote>> {
        // Checked before every write, not only between batches: a cut-off client gets
        // the rest of the line in flight, not the rest of a batch (see `farewell`).
        if self.inbox.is_kicked() {
            return Poll::Ready(Ok(Wrote::Kicked));
        }
        if self.out.is_empty() {
            match ready!(self.inbox.poll_ready(cx)) {
                Ready::Lines => {}
                Ready::Closed => return Poll::Ready(Ok(Wrote::Closed)),
                Ready::Kicked => return Poll::Ready(Ok(Wrote::Kicked)),
            }
            // Let the broker route whatever else is ready first, so this wake-up writes a
            // batch in one syscall rather than one line: a scheduler turn, not a timer,
            // repeated (up to 4 times) while the queue keeps growing.
            let queued = self.inbox.queued_lines();
            if self.yielded == 0 || (self.yielded < 4 && queued != self.queued) {
                self.yielded += 1;
                self.queued = queued;
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            self.yielded = 0;
            match self.irc.as_mut() {
                None => self.inbox.take_into(&mut self.out, WRITE_CHUNK_BYTES),
                Some(irc) => {
                    let mut native = Vec::new();
                    self.inbox.take_lines(&mut native, WRITE_CHUNK_BYTES);
                    irc.translate(&native, &mut self.out);
                    if self.out.is_empty() {
                        return Poll::Ready(Ok(Wrote::More));
                    }
                }
            }
        }
        let written = match Pin::new(&mut self.half).poll_write(cx, &self.out) {
            Poll::Ready(written) => written?,
            Poll::Pending => {
                let stall = self
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL_TIMEOUT)));
                ready!(stall.as_mut().poll(cx));
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "client stopped reading",
                )));
            }
        };
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        self.stall = None;
        METRICS
            .bytes_written
            .inc_by(u64::try_from(written).unwrap_or(u64::MAX));
        self.out.advance(written);
        if self.out.is_empty() {
            // Written out: give the memory back; an idle client holds no buffer.
            self.out = BytesMut::new();
        }
        Poll::Ready(Ok(Wrote::More))
    }

    /// From now on, the broker's lines are translated to IRC by `irc`.
    pub(crate) fn speak_irc(&mut self, irc: Outgoing) {
        self.irc = Some(Box::new(irc));
    }

    /// Queues `bytes` after what is waiting to be written, bypassing the broker: for
    /// what only the connection says (IRC registration replies, a server `PING`).
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Writes out everything [`Writer::push`] queued.
    pub(crate) async fn flush_pushed(&mut self) -> io::Result<()> {
        let out = std::mem::take(&mut self.out);
        timeout(WRITE_STALL_TIMEOUT, self.half.write_all(&out))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))?
    }

    /// Replaces the queue (after a refused login, for the next attempt).
    pub(crate) fn take_inbox(&mut self, inbox: Inbox) -> Inbox {
        std::mem::replace(&mut self.inbox, inbox)
    }

    /// Shuts the write half: the client reads EOF after the last line.
    async fn shut(&mut self) -> io::Result<()> {
        timeout(WRITE_STALL_TIMEOUT, self.half.shutdown())
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))?
    }

    /// A cut-off client's last words: the rest of the line in flight, so its framing
    /// stays whole, then the last line queued (the `error:` saying why). The backlog
    /// between is dropped.
    async fn farewell(&mut self) -> io::Result<()> {
        let line_end = self
            .out
            .iter()
            .position(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        self.out.truncate(line_end);
        if let Some(last) = self.inbox.last_line().await {
            match self.irc.as_mut() {
                None => self.out.extend_from_slice(&last),
                Some(irc) => self.out.extend_from_slice(&irc.last_words(&last)),
            }
        }
        self.half.write_all(&self.out).await?;
        self.half.shutdown().await
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_passwords_only_from_loopback_unless_allowed() {
        let strict = Config::default();
        let lax = Config {
            allow_plaintext_passwords: true,
            ..Config::default()
        };
        for loopback in ["127.0.0.1", "127.8.9.10", "::1"] {
            assert!(plaintext_password_allowed(
                loopback.parse().unwrap(),
                &strict
            ));
        }
        for remote in ["192.0.2.1", "2001:db8::1", "0.0.0.0"] {
            assert!(!plaintext_password_allowed(
                remote.parse().unwrap(),
                &strict
            ));
            assert!(plaintext_password_allowed(remote.parse().unwrap(), &lax));
        }
    }
}
