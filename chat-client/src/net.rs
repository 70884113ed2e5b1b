//! One connection to the server: connect, log in, then relay lines between the socket and
//! the event loop's channels through `chat_proto::LineCodec`. A new connection is a new
//! session; the event loop owns the reconnect timing.

use std::time::Duration;

use anyhow::Context;
use chat_proto::{ClientLine, LineCodec, ServerLine, UserName};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::event::{Msg, NetEvent};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const LOGIN_TIMEOUT: Duration = Duration::from_secs(10);
/// After we shut down our write half on quit, how long to wait for the server to close.
pub const QUIT_DRAIN: Duration = Duration::from_secs(2);
/// Longest line accepted from the server. Its own lines are bounded by the client line
/// limit plus a name; anything far longer is a broken or hostile server.
pub const MAX_SERVER_LINE_BYTES: usize = 64 * 1024;
/// Lines the user sent that the socket has not taken yet.
const OUTGOING_QUEUE_LEN: usize = 256;

/// A running connection.
#[derive(Debug)]
pub struct Session {
    /// Lines to send. Owned by the event loop; dropping it is how the user leaves: the
    /// session flushes, shuts down its write half and waits for the server to close.
    pub cmd_tx: mpsc::Sender<ClientLine>,
    /// Ends after the session has sent its last [`NetEvent`].
    pub task: JoinHandle<()>,
}

/// Starts a session that reports to `msg_tx`; its last event is always
/// [`NetEvent::Disconnected`] or [`NetEvent::LoginRefused`].
pub fn spawn(addr: String, name: UserName, msg_tx: mpsc::Sender<Msg>) -> Session {
    let (cmd_tx, cmd_rx) = mpsc::channel(OUTGOING_QUEUE_LEN);
    let task = tokio::spawn(async move {
        let last = match session(&addr, &name, &msg_tx, cmd_rx).await {
            Ok(last) => last,
            Err(e) => NetEvent::Disconnected(without_os_error(&format!("{e:#}"))),
        };
        let _ = msg_tx.send(Msg::Net(last)).await;
    });
    Session { cmd_tx, task }
}

/// A connection whose login line has been sent: the server's lines, and a sink for ours.
pub struct Login {
    /// Lines from the server, at most [`MAX_SERVER_LINE_BYTES`] each.
    pub lines: FramedRead<OwnedReadHalf, LineCodec>,
    /// Lines to the server.
    pub sink: FramedWrite<OwnedWriteHalf, LineCodec>,
}

/// Connects to `addr` (within [`CONNECT_TIMEOUT`]) and sends the login line. Both the
/// terminal UI and line mode log in through here.
pub async fn connect(addr: &str, name: &UserName) -> anyhow::Result<Login> {
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .context("connection timed out")?
        .context("cannot connect")?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let (read_half, write_half) = stream.into_split();
    let lines = FramedRead::new(read_half, LineCodec::new(MAX_SERVER_LINE_BYTES));
    // Encoding does not check lengths: the server enforces its own limit.
    let mut sink = FramedWrite::new(write_half, LineCodec::default());
    sink.send(name.as_str()).await.context("sending the name")?;
    Ok(Login { lines, sink })
}

async fn session(
    addr: &str,
    name: &UserName,
    msg_tx: &mpsc::Sender<Msg>,
    mut cmd_rx: mpsc::Receiver<ClientLine>,
) -> anyhow::Result<NetEvent> {
    let Login {
        mut lines,
        mut sink,
    } = connect(addr, name).await?;

    let reply = match timeout(LOGIN_TIMEOUT, lines.next()).await {
        Err(_) => return Ok(NetEvent::Disconnected("login timed out".to_owned())),
        Ok(None) => {
            return Ok(NetEvent::Disconnected(
                "server closed the connection".to_owned(),
            ));
        }
        Ok(Some(line)) => line.context("reading the login reply")?,
    };
    match reply.parse::<ServerLine>() {
        Ok(ServerLine::Welcome(_)) => {}
        Ok(ServerLine::Error(reason)) => return Ok(NetEvent::LoginRefused(reason)),
        Ok(ServerLine::Bye(reason)) => return Ok(NetEvent::Disconnected(reason)),
        _ => {
            return Ok(NetEvent::Disconnected(format!(
                "unexpected login reply {reply:?}"
            )));
        }
    }
    if msg_tx.send(Msg::Net(NetEvent::Connected)).await.is_err() {
        return Ok(NetEvent::Disconnected("client closed".to_owned()));
    }

    let mut bye = None;
    loop {
        tokio::select! {
            command = cmd_rx.recv() => match command {
                Some(line) => sink.send(line.to_string()).await.context("sending")?,
                None => {
                    // The user left: flush, send FIN, then read until the server closes so
                    // nothing it already sent is cut off by a reset.
                    SinkExt::<&str>::close(&mut sink).await.context("closing")?;
                    let _ = timeout(QUIT_DRAIN, drain(&mut lines)).await;
                    return Ok(NetEvent::Disconnected("you left".to_owned()));
                }
            },
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    let event = match line.parse::<ServerLine>() {
                        Ok(ServerLine::Bye(reason)) => {
                            bye = Some(reason.clone());
                            NetEvent::Line(ServerLine::Bye(reason))
                        }
                        Ok(line) => NetEvent::Line(line),
                        Err(_) => NetEvent::Unrecognised(line),
                    };
                    if msg_tx.send(Msg::Net(event)).await.is_err() {
                        return Ok(NetEvent::Disconnected("client closed".to_owned()));
                    }
                }
                Some(Err(e)) => return Ok(NetEvent::Disconnected(e.to_string())),
                None => {
                    let reason = bye.unwrap_or_else(|| "server closed the connection".to_owned());
                    return Ok(NetEvent::Disconnected(reason));
                }
            },
        }
    }
}

/// `Connection refused (os error 111)` reads better in a status bar without the number.
fn without_os_error(reason: &str) -> String {
    match reason.find(" (os error ") {
        Some(start) => {
            let end = reason[start..]
                .find(')')
                .map_or(reason.len(), |i| start + i + 1);
            format!("{}{}", &reason[..start], without_os_error(&reason[end..]))
        }
        None => reason.to_owned(),
    }
}

async fn drain(lines: &mut FramedRead<OwnedReadHalf, LineCodec>) {
    while let Some(Ok(_)) = lines.next().await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_error_numbers_are_dropped() {
        assert_eq!(
            without_os_error("cannot connect: Connection refused (os error 111)"),
            "cannot connect: Connection refused"
        );
        assert_eq!(without_os_error("a (os error 1): b (os error 2)"), "a: b");
        assert_eq!(
            without_os_error("server shutting down"),
            "server shutting down"
        );
    }
}
