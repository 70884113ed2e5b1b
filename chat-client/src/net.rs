//! One connection to the server: connect, log in, then relay lines between the socket and
//! the event loop's channels through `chat_proto::LineCodec`. A new connection is a new
//! session; the event loop owns the reconnect timing.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chat_proto::{ClientLine, LineCodec, LoginLine, Password, ServerLine, UserName};
use futures::{SinkExt, StreamExt};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::event::NetEvent;

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
    /// Owned by the event loop, which sends on it once to give up on a connection taken
    /// for dead: the session drops its socket at once, even mid-write, and reports the
    /// reason as a lost connection. Dropped unsent (a quit, a replaced session), it
    /// changes nothing.
    pub abandon_tx: Option<oneshot::Sender<String>>,
}

/// Events from session `id`: the runtime drops those of sessions it has replaced.
pub type Report = (u64, NetEvent);

/// Starts session `id`, which reports to `report_tx`; its last event is always
/// [`NetEvent::Disconnected`] or [`NetEvent::Unreachable`] (with the lines it never
/// wrote), or [`NetEvent::LoginRefused`].
pub fn spawn(id: u64, target: Target, name: UserName, report_tx: mpsc::Sender<Report>) -> Session {
    let (cmd_tx, mut cmd_rx) = mpsc::channel(OUTGOING_QUEUE_LEN);
    let (abandon_tx, abandon_rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let tx = Reporter { id, tx: &report_tx };
        // Dropping the session future drops the socket: a write stuck on a dead peer ends
        // too. `abandon_rx` fails only when its sender is dropped unsent, which disables
        // that branch rather than ending the session.
        let last = tokio::select! {
            ended = session(&target, &name, &tx, &mut cmd_rx) => match ended {
                Ok(last) => last,
                Err(e) => match e.downcast_ref::<Unfixable>() {
                    Some(Unfixable(reason)) => Ended::Unreachable(reason.clone()),
                    None => Ended::Lost(without_os_error(&format!("{e:#}"))),
                },
            },
            Ok(reason) = abandon_rx => Ended::Lost(reason),
        };
        // Whatever the user sent that never reached the socket goes back, to be sent
        // again after the next login rather than lost.
        cmd_rx.close();
        let mut unsent = Vec::new();
        while let Ok(line) = cmd_rx.try_recv() {
            unsent.push(line);
        }
        let last = match last {
            Ended::Refused(reason) => NetEvent::LoginRefused(reason),
            Ended::Lost(reason) => NetEvent::Disconnected { reason, unsent },
            Ended::Unreachable(reason) => NetEvent::Unreachable { reason, unsent },
        };
        let _ = report_tx.send((id, last)).await;
    });
    Session {
        cmd_tx,
        task,
        abandon_tx: Some(abandon_tx),
    }
}

/// How a session ended.
enum Ended {
    Refused(String),
    Lost(String),
    Unreachable(String),
}

/// A connection that failed in a way trying again cannot fix (see
/// [`NetEvent::Unreachable`]); its text says what is wrong, in words.
#[derive(Debug)]
pub struct Unfixable(pub String);

impl std::fmt::Display for Unfixable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unfixable {}

struct Reporter<'a> {
    id: u64,
    tx: &'a mpsc::Sender<Report>,
}

impl Reporter<'_> {
    /// Reports `event`; `false` once the client has stopped listening.
    async fn report(&self, event: NetEvent) -> bool {
        self.tx.send((self.id, event)).await.is_ok()
    }
}

/// Where to connect and how to log in.
#[derive(Debug, Clone)]
pub struct Target {
    /// `host:port` as the user gave it.
    pub addr: String,
    /// `Some` with `--tls`: how the server's certificate is checked.
    pub tls: Option<Tls>,
    /// For a registered name.
    pub password: Option<Password>,
}

/// TLS settings for a [`Target`].
#[derive(Debug, Clone)]
pub struct Tls {
    /// The configuration every connection uses.
    pub config: Arc<rustls::ClientConfig>,
    /// The `--ca-file` it trusts, named when a certificate is refused.
    pub ca_file: Option<PathBuf>,
}

/// A TLS client configuration trusting `ca_file` (PEM), or without one the Mozilla root
/// store (webpki-roots): the same roots on every machine, however its system is set up.
/// A certificate in `ca_file` is also pinned: a server presenting exactly that
/// certificate is trusted, as the usual self-signed one (`openssl req -x509`, which is
/// `CA:TRUE`) must be, though the WebPKI rules refuse a CA as a server's own certificate.
pub fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<Tls> {
    let mut roots = RootCertStore::empty();
    let mut pinned = Vec::new();
    match ca_file {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path)
                .with_context(|| format!("reading {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("reading {}", path.display()))?;
                pinned.push(cert.clone());
                roots
                    .add(cert)
                    .with_context(|| format!("using a certificate from {}", path.display()))?;
            }
            anyhow::ensure!(!roots.is_empty(), "no certificate in {}", path.display());
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .context("setting up certificate checks")?;
    let verifier = Arc::new(PinningVerifier {
        pinned,
        webpki,
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("choosing TLS versions")?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Tls {
        config: Arc::new(config),
        ca_file: ca_file.map(Path::to_path_buf),
    })
}

/// The WebPKI checks, except that a server certificate that is byte for byte one the
/// user gave with `--ca-file` is trusted as it is. Its name and dates are not checked
/// then: the user named this very certificate, which is what pinning means, and its
/// key must still sign the handshake (the signature checks below are the usual ones).
#[derive(Debug)]
struct PinningVerifier {
    pinned: Vec<CertificateDer<'static>>,
    webpki: Arc<WebPkiServerVerifier>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|pin| pin.as_ref() == end_entity.as_ref())
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

type Reader = Pin<Box<dyn AsyncRead + Send>>;
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// A connection whose login line has been sent: the server's lines, and a sink for ours.
pub struct Login {
    /// Lines from the server, at most [`MAX_SERVER_LINE_BYTES`] each.
    pub lines: FramedRead<Reader, LineCodec>,
    /// Lines to the server.
    pub sink: FramedWrite<Writer, LineCodec>,
}

/// Connects to the target (within [`CONNECT_TIMEOUT`], TLS included) and sends the login
/// line. Both the terminal UI and line mode log in through here.
pub async fn connect(target: &Target, name: &UserName) -> anyhow::Result<Login> {
    let addr = target.addr.as_str();
    let addrs = lookup(addr).await?;
    let stream = timeout(CONNECT_TIMEOUT, TcpStream::connect(addrs.as_slice()))
        .await
        .context("connection timed out")?
        .context("cannot connect")?;
    stream.set_nodelay(true).context("setting TCP_NODELAY")?;
    let login = LoginLine {
        name: name.clone(),
        password: target.password.clone(),
    }
    .to_string();
    match &target.tls {
        None => {
            let (mut read, write) = stream.into_split();
            let sink = send_login(Box::pin(write), login).await?;
            refuse_tls(&mut read).await?;
            Ok(Login {
                lines: server_lines(Box::pin(read)),
                sink,
            })
        }
        Some(tls) => {
            let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let server = ServerName::try_from(host.to_owned())
                .map_err(|_| Unfixable(format!("{host:?} is not a name a certificate can have")))?;
            let handshake = TlsConnector::from(tls.config.clone()).connect(server, stream);
            let stream = timeout(CONNECT_TIMEOUT, handshake)
                .await
                .context("TLS handshake timed out")?
                .map_err(|e| tls_failure(&e, tls.ca_file.as_deref()))?;
            let (read, write) = tokio::io::split(stream);
            let sink = send_login(Box::pin(write), login).await?;
            Ok(Login {
                lines: server_lines(Box::pin(read)),
                sink,
            })
        }
    }
}

fn server_lines(read: Reader) -> FramedRead<Reader, LineCodec> {
    FramedRead::new(read, LineCodec::new(MAX_SERVER_LINE_BYTES))
}

async fn send_login(
    write: Writer,
    login: String,
) -> anyhow::Result<FramedWrite<Writer, LineCodec>> {
    // Encoding does not check lengths: the server enforces its own limit.
    let mut sink = FramedWrite::new(write, LineCodec::default());
    sink.send(login).await.context("sending the login")?;
    Ok(sink)
}

/// A TLS server that gets our plain login answers with a TLS record (an alert) and
/// closes, which read as lines is nothing at all: the client would go on about "server
/// closed the connection" for ever. No line of the protocol starts with a TLS record's
/// type byte (0x15 alert, 0x16 handshake), so the first byte of the answer, peeked and
/// left for the login reply, tells them apart. A slow answer is left to that read.
async fn refuse_tls(read: &mut tokio::net::tcp::OwnedReadHalf) -> anyhow::Result<()> {
    let mut first = [0u8; 1];
    match timeout(LOGIN_TIMEOUT, read.peek(&mut first)).await {
        Ok(Ok(1)) if matches!(first[0], 0x15 | 0x16) => Err(Unfixable(
            "the server answered in TLS: this port wants --tls (or --ca-file FILE)".to_owned(),
        )
        .into()),
        _ => Ok(()),
    }
}

/// The addresses of `addr` (`host:port`). A host that does not exist is [`Unfixable`];
/// a lookup that failed for now (no network yet) is not.
async fn lookup(addr: &str) -> anyhow::Result<Vec<std::net::SocketAddr>> {
    match tokio::net::lookup_host(addr).await {
        Ok(addrs) => Ok(addrs.collect()),
        // getaddrinfo's EAI_AGAIN: the resolver could not be asked, which may pass.
        Err(e) if e.to_string().contains("Temporary failure") => {
            Err(e).with_context(|| format!("looking up {addr}"))
        }
        Err(e) => Err(Unfixable(format!("cannot find {addr}: {e}")).into()),
    }
}

/// Says in words what is wrong with the server's certificate, and what to do about it:
/// rustls's own text (`CaUsedAsEndEntity`, `UnknownIssuer`) means little to a user. A
/// refusal by TLS itself is [`Unfixable`]; a connection cut during the handshake is not.
fn tls_failure(e: &std::io::Error, ca_file: Option<&Path>) -> anyhow::Error {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(cert)) => Unfixable(format!(
            "the server's certificate is not trusted: {}",
            certificate_problem(cert, ca_file)
        ))
        .into(),
        Some(other) => Unfixable(format!("TLS handshake failed: {other}")).into(),
        None => anyhow::anyhow!("TLS handshake failed: {e}"),
    }
}

/// What is wrong with a refused certificate, for a user who may not know TLS well.
fn certificate_problem(error: &CertificateError, ca_file: Option<&Path>) -> String {
    let trusted = match ca_file {
        Some(path) => format!(
            "is not signed by a certificate in {} and is not one of them",
            path.display()
        ),
        None => "is not signed by a known authority; for a private CA or a self-signed certificate, pass --ca-file with its PEM file".to_owned(),
    };
    match error {
        CertificateError::UnknownIssuer => format!("it {trusted}"),
        CertificateError::NotValidForName => "it is for another host name".to_owned(),
        CertificateError::NotValidForNameContext {
            expected,
            presented,
        } => {
            let expected = expected.to_str();
            let presented = presented
                .iter()
                .filter_map(|name| presented_name(name))
                .collect::<Vec<_>>();
            if presented.is_empty() {
                format!("it names no host, and {expected} was asked for")
            } else {
                format!("it is for {}, not {expected}", presented.join(", "))
            }
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".to_owned()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet (or this machine's clock is wrong)".to_owned()
        }
        CertificateError::Revoked => "it has been revoked".to_owned(),
        CertificateError::BadEncoding => "it cannot be read (bad encoding)".to_owned(),
        CertificateError::BadSignature => "its signature does not match".to_owned(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not meant for a server".to_owned()
        }
        // WebPKI's `CaUsedAsEndEntity` comes as `Other`, with no type to match on.
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            format!(
                "it is a CA certificate, which a server may only present if it is the very one given with --ca-file, and it {trusted}"
            )
        }
        other => format!("{other}"),
    }
}
/// A name from a certificate as WebPKI reports it (`DnsName("example.org")`,
/// `IpAddress(10.0.0.1)`), as a user would write it; `None` for kinds that name no host.
fn presented_name(reported: &str) -> Option<&str> {
    let dns = reported
        .strip_prefix("DnsName(\"")
        .and_then(|rest| rest.strip_suffix("\")"));
    let ip = reported
        .strip_prefix("IpAddress(")
        .and_then(|rest| rest.strip_suffix(')'));
    dns.or(ip)
}

async fn session(
    target: &Target,
    name: &UserName,
    tx: &Reporter<'_>,
    cmd_rx: &mut mpsc::Receiver<ClientLine>,
) -> anyhow::Result<Ended> {
    let Login {
        mut lines,
        mut sink,
    } = connect(target, name).await?;

    let reply = match timeout(LOGIN_TIMEOUT, lines.next()).await {
        Err(_) => return Ok(Ended::Lost("login timed out".to_owned())),
        Ok(None) => return Ok(Ended::Lost("server closed the connection".to_owned())),
        Ok(Some(line)) => line.context("reading the login reply")?,
    };
    match reply.parse::<ServerLine>() {
        Ok(ServerLine::Welcome(_)) => {}
        Ok(ServerLine::Error(reason)) => return Ok(Ended::Refused(reason)),
        Ok(ServerLine::Bye(reason)) => return Ok(Ended::Lost(reason)),
        _ => return Ok(Ended::Lost(format!("unexpected login reply {reply:?}"))),
    }
    if !tx.report(NetEvent::Connected).await {
        return Ok(Ended::Lost("client closed".to_owned()));
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
                    return Ok(Ended::Lost("you left".to_owned()));
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
                    if !tx.report(event).await {
                        return Ok(Ended::Lost("client closed".to_owned()));
                    }
                }
                Some(Err(e)) => return Ok(Ended::Lost(e.to_string())),
                None => {
                    let reason = bye.unwrap_or_else(|| "server closed the connection".to_owned());
                    return Ok(Ended::Lost(reason));
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

async fn drain(lines: &mut FramedRead<Reader, LineCodec>) {
    while let Some(Ok(_)) = lines.next().await {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 21, defect 3: a refused certificate is explained in words, not as rustls's
    /// `CaUsedAsEndEntity` or `UnknownIssuer`.
    #[test]
    fn certificate_problems_are_said_in_words() {
        let ca_file = Path::new("ca.pem");
        assert_eq!(
            certificate_problem(&CertificateError::UnknownIssuer, Some(ca_file)),
            "it is not signed by a certificate in ca.pem and is not one of them"
        );
        assert!(
            certificate_problem(&CertificateError::UnknownIssuer, None).contains("pass --ca-file")
        );
        let misnamed = CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("localhost")
                .expect("a name")
                .to_owned(),
            presented: vec![
                "DnsName(\"example.org\")".to_owned(),
                "IpAddress(10.0.0.1)".to_owned(),
                "DirectoryName".to_owned(),
            ],
        };
        assert_eq!(
            certificate_problem(&misnamed, None),
            "it is for example.org, 10.0.0.1, not localhost"
        );
        assert_eq!(
            certificate_problem(&CertificateError::Expired, None),
            "it has expired"
        );
    }

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
