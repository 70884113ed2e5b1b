//! The accept loop: take connections, configure their sockets, spawn their tasks.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::poll_fn;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use tokio_rustls::TlsAcceptor;

use crate::accounts::Hasher;
use crate::broker::BrokerEvent;
use crate::metrics::{self, METRICS, Refusal};
use crate::roster::ConnId;
use crate::{Config, connection, irc};

/// Keepalive probes start after this much silence, then go every `KEEPALIVE_INTERVAL_SECS`;
/// after `KEEPALIVE_RETRIES` unanswered ones the kernel resets the socket. 60 + 6 × 10 s
/// frees the name of a peer whose machine vanished within about two minutes.
const KEEPALIVE_IDLE_SECS: u64 = 60;
const KEEPALIVE_INTERVAL_SECS: u64 = 10;
const KEEPALIVE_RETRIES: u32 = 6;

/// Longest pause after an accept error such as running out of file descriptors.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// One listening socket and what it serves.
pub(crate) struct Listening {
    pub(crate) listener: TcpListener,
    /// With TLS: the handshake every connection makes first.
    pub(crate) tls: Option<TlsAcceptor>,
    /// IRC (with the server's IRC identity) rather than the native protocol.
    pub(crate) irc: Option<Arc<irc::Server>>,
}

/// The next connection on any of `listening`, and which one took it.
async fn accept_any(listening: &[Listening]) -> (usize, io::Result<(TcpStream, SocketAddr)>) {
    poll_fn(|cx| {
        for (i, l) in listening.iter().enumerate() {
            if let Poll::Ready(accepted) = l.listener.poll_accept(cx) {
                return Poll::Ready((i, accepted));
            }
        }
        Poll::Pending
    })
    .await
}

/// Accepts connections forever on every listener, under one count of clients and of
/// connections per address; [`crate::run`] stops it by dropping it, which drops the
/// listeners and this loop's `broker_tx`.
pub(crate) async fn accept_loop(
    mut listening: Vec<Listening>,
    broker_tx: mpsc::Sender<BrokerEvent>,
    token: CancellationToken,
    tracker: TaskTracker,
    config: Config,
    mut reloads: mpsc::Receiver<Config>,
) -> Infallible {
    let mut config = Arc::new(config);
    // One permit per connected client; a connection task holds its permit until it ends.
    let permits = Arc::new(Semaphore::new(config.max_clients));
    let mut backoff = Duration::from_millis(10);
    let mut next_id: ConnId = 0;
    let hasher = Hasher::default();
    let per_ip = PerIp::default();
    let handshake = config.handshake_timeout;
    loop {
        let (which, accepted) = tokio::select! {
            accepted = accept_any(&listening) => accepted,
            Some(new) = reloads.recv() => {
                config = reload(&config, new, &mut listening, &broker_tx).await;
                continue;
            }
        };
        let Listening { tls, irc, .. } = &listening[which];
        let (stream, addr) = match accepted {
            Ok(accepted) => accepted,
            Err(e) if is_per_connection(&e) => continue,
            Err(e) => {
                // Out of file descriptors or memory: retrying at once would spin, exiting
                // would drop everyone. Wait for connections to close, then try again.
                warn!(error = %e, ?backoff, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        configure(&stream, addr);
        next_id += 1;
        let id = next_id;
        // Log fields rather than a span per connection: entering a span on every poll of
        // every connection task cost about 3% of the server's time under load.
        let admitted = match permits.clone().try_acquire_owned() {
            Err(_) => Err(format!("server is full ({} clients)", config.max_clients)),
            Ok(permit) => match per_ip.take(addr.ip(), config.max_per_ip) {
                Some(ip_slot) => Ok((permit, ip_slot)),
                None => Err(format!(
                    "too many connections from {} (at most {})",
                    addr.ip(),
                    config.max_per_ip.unwrap_or_default()
                )),
            },
        };
        let (permit, ip_slot) = match admitted {
            Ok(admitted) => admitted,
            Err(reason) => {
                info!(peer = %addr, id, %reason, "refused");
                METRICS.refused(Refusal::of(&reason));
                // Said in the listener's protocol.
                let line = match irc {
                    Some(_) => bytes::Bytes::from(format!("ERROR :Closing link: {reason}\r\n")),
                    None => chat_proto::encode_line(chat_proto::ServerLine::Error(reason)),
                };
                let refusal = connection::refuse(id, stream, tls.clone(), handshake, line);
                tracker.spawn(refusal);
                continue;
            }
        };
        info!(peer = %addr, id, "accepted");
        let conn = connection::Connection {
            id,
            addr,
            hasher: hasher.clone(),
            tls: tls.clone(),
            broker_tx: broker_tx.clone(),
            token: token.clone(),
            config: config.clone(),
        };
        let listener = match (irc, tls) {
            (None, None) => metrics::Listener::Native,
            (None, Some(_)) => metrics::Listener::Tls,
            (Some(_), None) => metrics::Listener::Irc,
            (Some(_), Some(_)) => metrics::Listener::IrcTls,
        };
        let admission = (permit, ip_slot, metrics::Open::new(listener));
        match irc {
            Some(server) => {
                tracker.spawn(irc::session::serve(Box::new((
                    conn,
                    server.clone(),
                    stream,
                    admission,
                ))));
            }
            None => {
                tracker.spawn(connection::Connection::run(Box::new((
                    conn, stream, admission,
                ))));
            }
        }
    }
}

/// Takes what a reloaded configuration may change while the server runs: the opers,
/// `--max-per-ip`, `--rate-limit` (for new connections) and the TLS certificate and key
/// (read again even from the same paths, for new connections). Logs each change; a
/// certificate that cannot be used keeps the old one.
async fn reload(
    old: &Arc<Config>,
    new: Config,
    listening: &mut [Listening],
    broker_tx: &mpsc::Sender<BrokerEvent>,
) -> Arc<Config> {
    let mut tls = old.tls.clone();
    if let Some(files) = &new.tls {
        match crate::tls::acceptor(files) {
            Ok(acceptor) => {
                for l in listening.iter_mut().filter(|l| l.tls.is_some()) {
                    l.tls = Some(acceptor.clone());
                }
                info!(cert = %files.cert.display(), "reload: TLS certificate read again");
                tls = new.tls.clone();
            }
            Err(e) => warn!(error = %format!("{e:#}"), "reload: keeping the old TLS certificate"),
        }
    }
    if new.opers != old.opers {
        info!(opers = ?new.opers, "reload: server operators changed");
        let _ = broker_tx.send(BrokerEvent::Opers(new.opers.clone())).await;
    }
    if new.max_per_ip != old.max_per_ip {
        info!(max_per_ip = ?new.max_per_ip, "reload: --max-per-ip changed");
    }
    if new.rate_limit != old.rate_limit {
        info!(rate_limit = ?new.rate_limit, "reload: --rate-limit changed for new connections");
    }
    Arc::new(Config {
        opers: new.opers,
        max_per_ip: new.max_per_ip,
        rate_limit: new.rate_limit,
        tls,
        ..(**old).clone()
    })
}

/// Errors that concern one incoming connection, not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Small lines must leave at once (no Nagle delay), and a vanished peer must be noticed.
fn configure(stream: &TcpStream, addr: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        debug!(peer = %addr, error = %e, "could not set TCP_NODELAY");
    }
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(KEEPALIVE_IDLE_SECS))
        .with_interval(Duration::from_secs(KEEPALIVE_INTERVAL_SECS))
        .with_retries(KEEPALIVE_RETRIES);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        debug!(peer = %addr, error = %e, "could not enable TCP keepalive");
    }
}

/// Connections per address, for `--max-per-ip`. Shared by the accept loop, which takes a
/// slot, and the connection tasks, whose [`IpSlot`] gives it back when they end.
#[derive(Debug, Clone, Default)]
struct PerIp(Arc<Mutex<HashMap<IpAddr, usize>>>);

/// One connection's place in its address's count.
struct IpSlot {
    counts: PerIp,
    ip: IpAddr,
}

impl PerIp {
    /// A slot for `ip`, or `None` if it already has `max` connections. Counted also
    /// without a limit, so that one set by a reload knows who is connected.
    fn take(&self, ip: IpAddr, max: Option<usize>) -> Option<IpSlot> {
        let mut counts = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(ip).or_default();
        if max.is_some_and(|max| *count >= max) {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            counts: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self
            .counts
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}
