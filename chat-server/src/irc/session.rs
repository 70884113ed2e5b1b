//! One IRC client, served by one task like a native one ([`crate::connection`], whose
//! handshake, writer and close it shares): registration, then a loop that hands the
//! broker the requests each command becomes and writes what the broker queues,
//! translated.

use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use base64::Engine as _;
use bytes::Bytes;
use chat_proto::{CodecError, Password, UserName};
use tokio::net::TcpStream;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep, sleep_until};
use tracing::info;
use zeroize::Zeroize;

use super::Server;
use super::caps::{Cap, Caps};
use super::incoming::{Flow, Incoming, cap_reply};
use super::message::{self, Invalid, Message, push_params};
use super::outgoing::Ident;
use super::outgoing::Outgoing;
use crate::broker::{BrokerEvent, Request};
use crate::connection::{
    Connection, Writer, Wrote, closed, count_login, finish, open, opened_or_closed,
};
use crate::io::{Batch, LineReader};
use crate::metrics::{METRICS, Refusal};
use crate::pacer::Pacer;
use crate::sendq::{self, Inbox};

/// The size of an `AUTHENTICATE` chunk: a shorter one (or `+`) is the last.
const SASL_CHUNK_BYTES: usize = 400;
/// The most base64 one SASL exchange may send.
const MAX_SASL_BYTES: usize = 8192;

/// Most lines handed to the broker in one event.
const MAX_LINES_PER_EVENT: usize = 64;

/// Serves one IRC client on `stream` until it leaves, is dropped, or the server shuts
/// down; then drops `admission`.
pub(crate) async fn serve<A: Send>(start: Box<(Connection, Arc<Server>, TcpStream, A)>) {
    // As for a native client (`Connection::run`): the arguments leave their box at once,
    // and the states that live once are boxed, so an idle IRC client's task stays small.
    let (conn, server, stream, admission) = {
        let start = start;
        *start
    };
    let (id, addr) = (conn.id, conn.addr);
    let opened = Box::pin(async {
        tokio::select! {
            opened = open(stream, conn.tls.as_ref(), conn.config.handshake_timeout) => opened,
            () = conn.token.cancelled() => Ok(None),
        }
    })
    .await;
    let Some((read_half, write_half)) = opened_or_closed(opened, addr, id) else {
        return;
    };
    let mut lines = LineReader::new(read_half, message::MAX_LINE_BYTES);
    let (outbox, inbox) = sendq::channel_with_notes(conn.config.sendq);
    let mut writer = Writer::new(write_half, inbox);
    let mut session = Session {
        conn,
        server,
        caps: Caps::default(),
        registered: false,
    };
    let registered = Box::pin(session.register(&mut lines, &mut writer, outbox)).await;
    let result = match registered {
        Ok(Some(name)) => {
            info!(id, %name, "logged in over IRC");
            let ended = session.read_and_write(&name, &mut lines, &mut writer).await;
            session.server.drop_ident(&name, id);
            match ended {
                Some((last, result)) => {
                    let _ = session.conn.broker_tx.send(last).await;
                    result
                }
                None => Ok(()),
            }
        }
        Ok(None) => Ok(()),
        Err(e) => Err(e),
    };
    // As for a native client: the broker's shutdown waits for every `broker_tx`.
    drop(session);
    Box::pin(finish(id, &mut lines, &mut writer)).await;
    closed(addr, id, result);
    drop(admission);
}

/// What registration has gathered so far.
#[derive(Default)]
struct Gathered {
    nick: Option<UserName>,
    /// `USER`'s username and real name.
    user: Option<(String, String)>,
    pass: Option<String>,
    /// Inside `CAP LS`/`REQ` ... `CAP END`: registration waits for the end.
    negotiating: bool,
    /// `AUTHENTICATE PLAIN` was sent; the next `AUTHENTICATE` holds the credentials.
    sasl_started: bool,
    /// The base64 credentials so far: they come in chunks of 400 bytes (IRCv3 sasl-3.1).
    sasl_chunks: String,
    /// The account SASL logged in to.
    account: Option<UserName>,
}

impl Drop for Gathered {
    fn drop(&mut self) {
        if let Some(pass) = self.pass.as_mut() {
            pass.zeroize();
        }
        self.sasl_chunks.zeroize();
    }
}

struct Session {
    conn: Connection,
    server: Arc<Server>,
    caps: Caps,
    /// Logged in to a registered account (its password checked).
    registered: bool,
}

impl Session {
    /// `:<server> <code> <nick or *> <params...>`.
    fn numeric(&self, nick: Option<&UserName>, code: &str, params: &[&str]) -> String {
        let nick = nick.map_or("*", UserName::as_str);
        let mut line = format!(":{} {code} {nick}", self.server.name);
        push_params(&mut line, params, false);
        line.push_str("\r\n");
        line
    }

    /// Registration: until `NICK`, `USER` and the end of capability negotiation, then a
    /// login as the SASL account or the nick. `Ok(None)`: the client, the server or the
    /// handshake timeout ended it first (the client was told why when there was one).
    async fn register(
        &mut self,
        lines: &mut LineReader,
        writer: &mut Writer,
        outbox: sendq::Outbox,
    ) -> io::Result<Option<UserName>> {
        let deadline = Instant::now() + self.conn.config.handshake_timeout;
        let mut got = Gathered::default();
        let mut outbox = Some(outbox);
        loop {
            let line = tokio::select! {
                () = self.conn.token.cancelled() => return Ok(None),
                () = sleep_until(deadline) => {
                    METRICS.refused(Refusal::Timeout);
                    writer.push(b"ERROR :Closing link: registration timed out\r\n");
                    writer.flush_pushed().await?;
                    return Ok(None);
                }
                line = lines.next_line() => line,
            };
            let mut line = match line {
                None | Some(Err(CodecError::Io(_))) => return Ok(None),
                Some(Err(e)) => {
                    writer.push(format!("ERROR :{e}\r\n").as_bytes());
                    writer.flush_pushed().await?;
                    return Ok(None);
                }
                Some(Ok(line)) => line,
            };
            let parsed = Message::parse(&line);
            // The line may hold a password (PASS, AUTHENTICATE).
            line.zeroize();
            let message = match parsed {
                Ok(message) => message,
                Err(Invalid::Empty) => continue,
                Err(_) => {
                    let too_long =
                        self.numeric(got.nick.as_ref(), "417", &["Input line was too long"]);
                    writer.push(too_long.as_bytes());
                    writer.flush_pushed().await?;
                    continue;
                }
            };
            if let Some(reply) = self.registering(message, &mut got).await {
                writer.push(reply.as_bytes());
                let closing = reply.starts_with("ERROR");
                writer.flush_pushed().await?;
                if closing {
                    return Ok(None);
                }
            }
            if got.negotiating || got.user.is_none() {
                continue;
            }
            let Some(nick) = got.nick.clone() else {
                continue;
            };
            let Some(queue) = outbox.take() else {
                return Ok(None);
            };
            match self.log_in(&nick, &mut got, queue, writer).await? {
                LogIn::Done(name) => return Ok(Some(name)),
                LogIn::Again(next) => outbox = Some(next),
                LogIn::Closed => return Ok(None),
            }
        }
    }

    /// One registration command; what to answer, if anything (`ERROR ...` closes).
    async fn registering(&mut self, message: Message, got: &mut Gathered) -> Option<String> {
        let nick = got.nick.clone();
        let nick = nick.as_ref();
        match message.command.as_str() {
            "CAP" => {
                let sub = message.param(0).unwrap_or_default().to_ascii_uppercase();
                let arg = message.param(1);
                let lines = cap_reply(&self.server.name, "*", &sub, arg, &mut self.caps);
                got.negotiating = sub != "END";
                Some(lines.concat()).filter(|l| !l.is_empty())
            }
            "PASS" => {
                got.pass = message.params.into_iter().next();
                None
            }
            "NICK" => match message.param(0) {
                None | Some("") => Some(self.numeric(nick, "431", &["No nickname given"])),
                Some(wanted) => match UserName::parse(wanted) {
                    Ok(name) => {
                        got.nick = Some(name);
                        None
                    }
                    Err(e) => Some(self.numeric(
                        nick,
                        "432",
                        &[wanted, &format!("Erroneous nickname: {e}")],
                    )),
                },
            },
            // Modern IRC: an empty username or real name is a missing parameter.
            "USER" if message.params.len() < 4 || message.params.iter().any(String::is_empty) => {
                Some(self.numeric(nick, "461", &["USER", "Not enough parameters"]))
            }
            "USER" => {
                let mut params = message.params.into_iter();
                let user = params.next().unwrap_or_default();
                let real = params.nth(2).unwrap_or_default();
                got.user = Some((user, real));
                None
            }
            "AUTHENTICATE" => self.authenticate(message, got).await,
            "PING" => {
                let token = message.param(0).unwrap_or_default();
                let mut line = format!(":{0} PONG {0}", self.server.name);
                push_params(&mut line, &[token], true);
                line.push_str("\r\n");
                Some(line)
            }
            "PONG" => None,
            "QUIT" => Some("ERROR :Closing link: quit\r\n".to_owned()),
            _ => Some(self.numeric(nick, "451", &["You have not registered"])),
        }
    }

    /// SASL PLAIN (RFC 4616): `AUTHENTICATE PLAIN`, `AUTHENTICATE +` back, then the
    /// base64 of `authzid NUL authcid NUL password`, checked like a native login.
    async fn authenticate(&mut self, message: Message, got: &mut Gathered) -> Option<String> {
        let nick = got.nick.clone();
        let nick = nick.as_ref();
        let fail = |session: &Self| session.numeric(nick, "904", &["SASL authentication failed"]);
        if !self.caps.has(Cap::Sasl) || got.account.is_some() {
            let code = if got.account.is_some() { "907" } else { "904" };
            return Some(self.numeric(nick, code, &["SASL authentication is not available"]));
        }
        let arg = message.param(0).unwrap_or_default();
        if arg == "*" {
            got.sasl_started = false;
            got.sasl_chunks.zeroize();
            return Some(self.numeric(nick, "906", &["SASL authentication aborted"]));
        }
        if !got.sasl_started {
            if arg.eq_ignore_ascii_case("PLAIN") {
                got.sasl_started = true;
                return Some("AUTHENTICATE +\r\n".to_owned());
            }
            let mechs = self.numeric(nick, "908", &["PLAIN", "are available SASL mechanisms"]);
            return Some(mechs + &fail(self));
        }
        if arg.len() > SASL_CHUNK_BYTES {
            got.sasl_started = false;
            got.sasl_chunks.zeroize();
            return Some(self.numeric(nick, "905", &["SASL message too long"]));
        }
        if arg != "+" {
            got.sasl_chunks.push_str(arg);
        }
        if got.sasl_chunks.len() > MAX_SASL_BYTES {
            got.sasl_started = false;
            got.sasl_chunks.zeroize();
            return Some(fail(self));
        }
        // A chunk of exactly 400 bytes says more follow (`AUTHENTICATE +` if none do).
        if arg.len() == SASL_CHUNK_BYTES {
            return None;
        }
        got.sasl_started = false;
        let mut payload = std::mem::take(&mut got.sasl_chunks);
        let decoded = base64::engine::general_purpose::STANDARD.decode(&payload);
        payload.zeroize();
        let Ok(mut decoded) = decoded else {
            return Some(fail(self));
        };
        let credentials = plain_credentials(&decoded);
        decoded.zeroize();
        let Some((account, password)) = credentials else {
            return Some(fail(self));
        };
        match self.conn.authenticate(&account, Some(password)).await {
            Ok(true) => {
                let who = format!("{0}!{0}@{1}", nick.unwrap_or(&account), self.server.name);
                let text = format!("You are now logged in as {account}");
                let logged = self.numeric(nick, "900", &[&who, account.as_str(), &text]);
                let ok = self.numeric(nick, "903", &["SASL authentication successful"]);
                got.account = Some(account);
                Some(logged + &ok)
            }
            Ok(false) | Err(_) => Some(fail(self)),
        }
    }

    /// Asks the broker to log the client in. A name in use lets the client pick another
    /// (`433`, with a fresh queue for the next try); any other refusal closes.
    async fn log_in(
        &mut self,
        nick: &UserName,
        got: &mut Gathered,
        outbox: sendq::Outbox,
        writer: &mut Writer,
    ) -> io::Result<LogIn> {
        let name = got.account.clone().unwrap_or_else(|| nick.clone());
        let mut authenticated = got.account.is_some();
        if !authenticated {
            let password = match got.pass.as_deref().map(Password::parse) {
                None => None,
                Some(Ok(password)) => Some(password),
                Some(Err(e)) => {
                    METRICS.refused(Refusal::Password);
                    let refusal =
                        self.numeric(Some(nick), "464", &[&format!("Password incorrect: {e}")]);
                    writer.push(refusal.as_bytes());
                    writer.push(b"ERROR :Closing link: bad password\r\n");
                    writer.flush_pushed().await?;
                    return Ok(LogIn::Closed);
                }
            };
            match self.conn.authenticate(&name, password).await {
                Ok(checked) => authenticated = checked,
                Err(reason) => {
                    METRICS.refused(Refusal::of(&reason));
                    let (code, text) = if reason.contains("password") {
                        ("464", format!("Password incorrect: {reason}"))
                    } else {
                        ("433", format!("Nickname is unavailable: {reason}"))
                    };
                    let refusal = if code == "433" {
                        self.numeric(Some(nick), code, &[nick.as_str(), &text])
                    } else {
                        self.numeric(Some(nick), code, &[&text])
                    };
                    writer.push(refusal.as_bytes());
                    if code == "464" || reason.contains("throttle") || reason.contains("too many") {
                        writer.push(format!("ERROR :Closing link: {reason}\r\n").as_bytes());
                        writer.flush_pushed().await?;
                        return Ok(LogIn::Closed);
                    }
                    writer.flush_pushed().await?;
                    got.nick = None;
                    return Ok(LogIn::Again(self.fresh_queue(writer)));
                }
            }
        }
        let (accepted_tx, accepted_rx) = oneshot::channel();
        let join = BrokerEvent::Join {
            id: self.conn.id,
            name: name.clone(),
            authenticated,
            outbox,
            accepted: accepted_tx,
        };
        let sent = self.conn.broker_tx.send(join).await.is_ok();
        let accepted = sent && accepted_rx.await.unwrap_or(false);
        count_login(sent, accepted);
        if accepted {
            self.registered = authenticated;
            let nick = name.as_str();
            let (user, real) = got.user.clone().unwrap_or_default();
            let ident = Ident {
                conn: self.conn.id,
                user: user.clone(),
                real: real.clone(),
            };
            self.server.set_ident(&name, ident);
            let outgoing = Outgoing::new(self.server.clone(), nick, self.caps)
                .identity(user, real)
                .registered(authenticated);
            writer.speak_irc(outgoing);
            return Ok(LogIn::Done(name));
        }
        if !sent {
            return Ok(LogIn::Closed);
        }
        // Refused: the broker queued why on the old queue and let it go.
        let mut old = writer.take_inbox(sendq::channel_with_notes(self.conn.config.sendq).1);
        let reason = refusal(&mut old).await;
        if reason.contains("in use") || reason.contains("taken") || reason.contains("looks like") {
            let text = format!("Nickname is already in use ({reason})");
            let busy = self.numeric(Some(nick), "433", &[nick.as_str(), &text]);
            writer.push(busy.as_bytes());
            writer.flush_pushed().await?;
            got.nick = None;
            return Ok(LogIn::Again(self.fresh_queue(writer)));
        }
        writer.push(format!("ERROR :Closing link: {reason}\r\n").as_bytes());
        writer.flush_pushed().await?;
        Ok(LogIn::Closed)
    }

    /// A new queue for the next login attempt, its receiving end in `writer`.
    fn fresh_queue(&self, writer: &mut Writer) -> sendq::Outbox {
        let (outbox, inbox) = sendq::channel_with_notes(self.conn.config.sendq);
        writer.take_inbox(inbox);
        outbox
    }

    /// Hands the broker the requests of every command the client sends, and writes what
    /// the broker queues, until reading ends. Returns what the broker must hear about the
    /// end, or `None` at shutdown.
    async fn read_and_write(
        &mut self,
        name: &UserName,
        lines: &mut LineReader,
        writer: &mut Writer,
    ) -> Option<(BrokerEvent, io::Result<()>)> {
        let id = self.conn.id;
        let mut incoming = Incoming::new(self.server.clone(), name.as_str(), self.caps)
            .registered(self.registered);
        if self.caps.has(Cap::EchoMessage) {
            let echo = BrokerEvent::Lines {
                id,
                lines: vec![Request::Echo(true)],
            };
            if self.conn.broker_tx.send(echo).await.is_err() {
                return None;
            }
        }
        let mut pacer = self.conn.config.rate_limit.map(Pacer::new);
        let most = if pacer.is_some() {
            1
        } else {
            MAX_LINES_PER_EVENT
        };
        let shutdown = self.conn.token.cancelled();
        tokio::pin!(shutdown);
        let mut paused: Option<Pin<Box<Sleep>>> = None;
        // IRC clients are pinged when quiet for half the idle timeout, and closed when
        // they answer nothing for the other half.
        let half = self.conn.config.idle_timeout / 2;
        let mut quiet = Box::pin(tokio::time::sleep(half));
        let mut pinged = false;
        loop {
            let Batch { lines: read, end } = tokio::select! {
                biased;
                () = &mut shutdown => return None,
                wrote = poll_fn(|cx| writer.poll_step(cx)) => match wrote {
                    Ok(Wrote::More) => continue,
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
                () = &mut quiet => {
                    if pinged {
                        let reason = format!(
                            "Ping timeout: {} seconds",
                            self.conn.config.idle_timeout.as_secs()
                        );
                        return Some((BrokerEvent::Fatal { id, reason }, Ok(())));
                    }
                    pinged = true;
                    writer.push(format!("PING :{}\r\n", self.server.name).as_bytes());
                    quiet.as_mut().reset(Instant::now() + half);
                    continue;
                }
                batch = poll_fn(|cx| lines.poll_batch(cx, most)), if paused.is_none() => batch,
            };
            if !read.is_empty() {
                pinged = false;
                quiet.as_mut().reset(Instant::now() + half);
            }
            let mut requests = Vec::with_capacity(read.len() * 3);
            let mut quit = None;
            for line in read {
                let message = match Message::parse(&line) {
                    Ok(message) => message,
                    Err(Invalid::Empty) => continue,
                    Err(_) => {
                        let line = format!(
                            ":{} 417 {name} :Input line was too long\r\n",
                            self.server.name
                        );
                        requests.push(Request::Mark(Bytes::from(line)));
                        continue;
                    }
                };
                match incoming.requests(message, &mut requests) {
                    Flow::Go => {}
                    Flow::Quit(reason) => {
                        quit = Some(reason);
                        break;
                    }
                    Flow::Oper(account, mut password) => {
                        let reply = self.oper(name, &account, &password).await;
                        password.zeroize();
                        requests.push(Request::Mark(Bytes::from(reply)));
                    }
                }
            }
            if let Some(reason) = &quit {
                let bye = format!("ERROR :Closing link: {reason}\r\n");
                requests.push(Request::Mark(Bytes::from(bye)));
            }
            if !requests.is_empty() {
                let event = BrokerEvent::Lines {
                    id,
                    lines: requests,
                };
                let sent = match self.conn.broker_tx.try_send(event) {
                    Ok(()) => true,
                    Err(TrySendError::Full(event)) => self.conn.broker_tx.send(event).await.is_ok(),
                    Err(TrySendError::Closed(_)) => false,
                };
                if !sent {
                    return None;
                }
            }
            if quit.is_some() {
                return Some((BrokerEvent::Leave { id }, Ok(())));
            }
            if let Some(end) = end {
                return Some(match end {
                    None => (BrokerEvent::Leave { id }, Ok(())),
                    Some(CodecError::Io(e)) => (BrokerEvent::Leave { id }, Err(e)),
                    Some(e) => (
                        BrokerEvent::Fatal {
                            id,
                            reason: e.to_string(),
                        },
                        Ok(()),
                    ),
                });
            }
            if let Some(ready) = pacer.as_mut().and_then(|p| p.after_line(Instant::now())) {
                paused = Some(Box::pin(tokio::time::sleep(ready - Instant::now())));
            }
        }
    }

    /// `OPER <account> <password>`: `381` for this client's own account when `--oper`
    /// names it and the password is its account password; the broker already treats such
    /// a login as an operator, so this only confirms it.
    async fn oper(&self, nick: &UserName, account: &str, password: &str) -> String {
        let no = |text: &str| self.numeric(Some(nick), "491", &[text]);
        let Ok(account) = UserName::parse(account) else {
            return no("No O-lines for your host");
        };
        let Ok(password) = Password::parse(password) else {
            return self.numeric(Some(nick), "464", &["Password incorrect"]);
        };
        match self.conn.authenticate(&account, Some(password)).await {
            Ok(true) => {}
            _ => return self.numeric(Some(nick), "464", &["Password incorrect"]),
        }
        let is_oper = self
            .conn
            .config
            .opers
            .iter()
            .any(|oper| oper.folded() == account.folded());
        if !is_oper {
            return no("No O-lines for your host");
        }
        if account.folded() != nick.folded() {
            return no(&format!("Log in as {account} to act as its operator"));
        }
        self.numeric(Some(nick), "381", &["You are now an IRC operator"])
    }
}

/// How a login attempt ended.
enum LogIn {
    Done(UserName),
    /// Refused for the name: try again with another, on this queue.
    Again(sendq::Outbox),
    Closed,
}

/// The reason the broker queued when it refused a login.
async fn refusal(inbox: &mut Inbox) -> String {
    let mut out = bytes::BytesMut::new();
    if let Some(line) = inbox.last_line().await {
        out.extend_from_slice(&line);
    }
    inbox.take_into(&mut out, usize::MAX);
    let text = String::from_utf8_lossy(&out);
    text.lines()
        .find_map(|line| line.strip_prefix("error: "))
        .unwrap_or("refused")
        .to_owned()
}

/// SASL PLAIN's message: the account (the authentication identity) and the password.
fn plain_credentials(decoded: &[u8]) -> Option<(UserName, Password)> {
    let text = std::str::from_utf8(decoded).ok()?;
    let mut parts = text.split('\0');
    let (_authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    Some((
        UserName::parse(authcid).ok()?,
        Password::parse(password).ok()?,
    ))
}
