//! One client: login, then a reader loop feeding the broker and a writer loop draining the
//! client's queue. After login the reader never writes to the socket; every line the
//! client gets, errors included, comes through its one queue, in order.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use chat_proto::{CodecError, ServerLine, UserName, encode_line};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use crate::Config;
use crate::broker::{BrokerEvent, ConnId, Line};
use crate::io::{LineReader, write_batch};

/// After the last line is written, how long to keep discarding input while waiting for the
/// client to close. Closing a socket with unread input makes the kernel send a reset, and
/// a reset can destroy the final `error:` or `bye:` line before the client reads it.
const CLOSE_LINGER: Duration = Duration::from_secs(2);

/// Most lines handed to the broker in one event.
const MAX_LINES_PER_EVENT: usize = 64;

/// A write to a client that makes no progress for this long ends the connection, so a
/// client that stopped reading cannot hold its socket open forever.
const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a connection task needs from the server.
pub(crate) struct Connection {
    pub(crate) id: ConnId,
    /// This reader's way to the broker. Dropping it, not a message, is how the reader
    /// tells the broker at shutdown that it will send nothing more.
    pub(crate) broker_tx: mpsc::Sender<BrokerEvent>,
    /// Cancelled by [`crate::run`] at shutdown: stop reading, send nothing more.
    pub(crate) token: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) config: Arc<Config>,
}

impl Connection {
    /// Serves one client until it leaves, is dropped, or the server shuts down.
    pub(crate) async fn run(self, stream: TcpStream) -> io::Result<()> {
        let (read_half, write_half) = stream.into_split();
        let mut lines = LineReader::new(read_half, self.config.max_line_bytes);
        // One slot more than `queue_len`: the broker keeps the last one for a final
        // `error:` or `bye:`, so a full queue can still say why it is closing.
        let (queue_tx, queue_rx) = mpsc::channel(self.config.queue_len + 1);
        // Cancelled by the broker when this client falls too far behind: the writer
        // abandons what is queued instead of waiting on a client that does not read.
        let kick = CancellationToken::new();
        // Cancelled when the writer ends, for whatever reason.
        let writer_done = CancellationToken::new();
        self.tracker.spawn(writer_loop(
            self.id,
            write_half,
            queue_rx,
            kick.clone(),
            writer_done.clone().drop_guard(),
        ));

        let result = self.serve(&mut lines, queue_tx, kick, &writer_done).await;
        linger(lines.into_inner(), writer_done).await;
        result
    }

    /// Login and the reader loop. Consumes `self` so that `broker_tx` is dropped as soon as
    /// reading ends, not after the linger: the broker's shutdown waits for exactly that.
    async fn serve(
        self,
        lines: &mut LineReader,
        queue_tx: mpsc::Sender<Line>,
        kick: CancellationToken,
        writer_done: &CancellationToken,
    ) -> io::Result<()> {
        let name = match self.handshake(lines).await {
            Ok(Some(name)) => name,
            Ok(None) => return Ok(()),
            Err(reason) => {
                // The queue is empty, so this cannot be full; the writer sends it and closes.
                let _ = queue_tx.try_send(encode_line(ServerLine::Error(reason)));
                return Ok(());
            }
        };
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let join = BrokerEvent::Join {
            id: self.id,
            name: name.clone(),
            queue: queue_tx,
            kick,
            accepted: accepted_tx,
        };
        // A refusal (name taken) was already queued for this client by the broker.
        if self.broker_tx.send(join).await.is_err() || !accepted_rx.await.unwrap_or(false) {
            return Ok(());
        }
        info!(id = self.id, %name, "logged in");

        let id = self.id;
        let mut pacer = self.config.rate_limit.map(Pacer::new);
        // Made once, not per line: registering a fresh waiter on each token per line
        // showed up in profiles.
        let shutdown = self.token.cancelled();
        let writer_gone = writer_done.cancelled();
        tokio::pin!(shutdown, writer_gone);
        let (last, result) = loop {
            tokio::select! {
                // Stopping wins over reading. Every branch is cancel safe: LineReader keeps
                // a partial line buffered, and the token futures are reused.
                biased;
                () = &mut shutdown => {
                    // No leave: the broker will tell everyone `bye` instead.
                    debug!(id, %name, "stopped reading for shutdown");
                    return Ok(());
                }
                () = &mut writer_gone => break (BrokerEvent::Leave { id }, Ok(())),
                next = lines.next_line() => match next {
                    Some(Ok(line)) => {
                        // Hand over every line this read brought in one event: one channel
                        // operation and one poll of the tokens per read, not per line.
                        // Paced clients go one line at a time.
                        let most = if pacer.is_some() { 1 } else { MAX_LINES_PER_EVENT };
                        let mut batch = vec![line.parse()];
                        let mut stopped = None;
                        while batch.len() < most {
                            match lines.next_buffered() {
                                Some(Ok(line)) => batch.push(line.parse()),
                                Some(Err(e)) => {
                                    stopped = Some(e);
                                    break;
                                }
                                None => break,
                            }
                        }
                        if self.broker_tx.send(BrokerEvent::Lines { id, lines: batch }).await.is_err() {
                            return Ok(());
                        }
                        if let Some(e) = stopped {
                            break closing(id, Some(e));
                        }
                        // Flood control: not reading is the whole penalty. The client's
                        // lines wait in its socket (then in its own send buffer); none is lost.
                        if let Some(ready) = pacer.as_mut().and_then(|p| p.after_line(Instant::now())) {
                            tokio::select! {
                                biased;
                                () = &mut shutdown => return Ok(()),
                                () = tokio::time::sleep_until(ready) => {}
                            }
                        }
                    }
                    Some(Err(e)) => break closing(id, Some(e)),
                    None => break closing(id, None),
                },
            }
        };
        info!(id, %name, "left");
        let _ = self.broker_tx.send(last).await;
        result
    }

    /// Reads the name line. `Ok(None)`: the client or the server went away first;
    /// `Err(reason)`: tell the client why and close.
    async fn handshake(&self, lines: &mut LineReader) -> Result<Option<UserName>, String> {
        let first = tokio::select! {
            () = self.token.cancelled() => return Ok(None),
            first = timeout(self.config.handshake_timeout, lines.next_line()) => first,
        };
        match first {
            Err(_elapsed) => Err("login timed out".to_owned()),
            Ok(None | Some(Err(CodecError::Io(_)))) => Ok(None),
            Ok(Some(Err(e))) => Err(e.to_string()),
            Ok(Some(Ok(line))) => UserName::parse(&line).map(Some).map_err(|e| e.to_string()),
        }
    }
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

/// Sends `error: <reason>` to a connection the server will not serve, then closes it.
pub(crate) async fn refuse(id: ConnId, stream: TcpStream, reason: String) {
    let (read_half, write_half) = stream.into_split();
    let (queue_tx, queue_rx) = mpsc::channel(1);
    let _ = queue_tx.try_send(encode_line(ServerLine::Error(reason)));
    drop(queue_tx);
    let writer_done = CancellationToken::new();
    let writer = writer_loop(
        id,
        write_half,
        queue_rx,
        CancellationToken::new(),
        writer_done.clone().drop_guard(),
    );
    tokio::join!(writer, linger(read_half, writer_done));
}

/// Writes queued lines until the queue is closed and empty, then shuts down the write
/// half so the client reads EOF. Everything queued at that moment is sent in one batch
/// and flushed once.
async fn writer_loop(
    id: ConnId,
    mut half: OwnedWriteHalf,
    mut queue_rx: mpsc::Receiver<Line>,
    kick: CancellationToken,
    _done: DropGuard,
) {
    let write_all = async {
        while let Some(line) = queue_rx.recv().await {
            // Let the broker route whatever else is ready first, so this wake-up writes a
            // batch in one syscall rather than one line (a scheduler turn, not a timer).
            for _ in 0..4 {
                let queued = queue_rx.len();
                tokio::task::yield_now().await;
                if queue_rx.len() == queued {
                    break;
                }
            }
            let rest = std::iter::from_fn(|| queue_rx.try_recv().ok());
            let batch = write_batch(&mut half, &line, rest);
            timeout(WRITE_STALL_TIMEOUT, batch)
                .await
                .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "client stopped reading"))??;
        }
        // The broker dropped the queue's only sender and everything in it is written.
        half.shutdown().await
    };
    let result = tokio::select! {
        biased;
        () = kick.cancelled() => Ok(()),
        result = write_all => result,
    };
    if let Err(e) = result {
        debug!(id, error = %e, "writer ended with an error");
    }
}

/// Discards input until the writer has finished and then the client closes, or until
/// [`CLOSE_LINGER`] after the writer finished, then waits for the writer. Dropping the
/// read half only now keeps the close a FIN rather than a reset.
async fn linger(mut read_half: OwnedReadHalf, writer_done: CancellationToken) {
    let deadline = async {
        writer_done.cancelled().await;
        tokio::time::sleep(CLOSE_LINGER).await;
    };
    tokio::pin!(deadline);
    let mut scratch = vec![0; 4096];
    loop {
        tokio::select! {
            () = &mut deadline => break,
            read = read_half.read(&mut scratch) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    writer_done.cancelled().await;
}

/// Flood control by the generic cell rate algorithm: on average one line per `interval`,
/// with a burst of one second's worth allowed on top.
#[derive(Debug)]
struct Pacer {
    interval: Duration,
    burst: Duration,
    /// When the client's lines would be due if it had sent at exactly the allowed rate.
    due: Instant,
}

impl Pacer {
    fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst: Duration::from_secs(1),
            due: Instant::now(),
        }
    }

    /// Counts one line read at `now`; returns when the next may be read, if not at once.
    fn after_line(&mut self, now: Instant) -> Option<Instant> {
        self.due = self.due.max(now) + self.interval;
        let ready = self.due.checked_sub(self.burst)?;
        (ready > now).then_some(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_allows_a_burst_then_the_rate() {
        let mut pacer = Pacer::new(10);
        let start = pacer.due;
        let waits: Vec<_> = (0..12).map(|_| pacer.after_line(start)).collect();
        assert!(
            waits[..10].iter().all(Option::is_none),
            "a second's worth passes at once"
        );
        assert_eq!(waits[10], Some(start + Duration::from_millis(100)));
        assert_eq!(waits[11], Some(start + Duration::from_millis(200)));
        let later = start + Duration::from_secs(10);
        assert_eq!(
            pacer.after_line(later),
            None,
            "an idle client earns its burst back"
        );
    }
}
