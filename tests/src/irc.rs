//! A raw IRC client for tests: lines with `\r\n`, and the few words of IRC a test needs
//! to read a reply (its command, its parameters, a tag).

use std::net::SocketAddr;

use crate::LineClient;

/// An IRC connection: writes what it is told, reads lines with the harness's deadline.
pub struct IrcClient {
    line: LineClient,
    pings: u32,
}

/// One line from the server, split as IRC does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrcLine {
    /// The line as it came, without `\r\n`.
    pub raw: String,
    /// `key=value` tags, in order (a tag without a value has an empty one).
    pub tags: Vec<(String, String)>,
    /// The source without its `:`, if any.
    pub source: Option<String>,
    /// The command (or numeric).
    pub command: String,
    /// The parameters, the trailing one last.
    pub params: Vec<String>,
}

impl IrcLine {
    /// Splits `raw` (without its line ending).
    pub fn parse(raw: &str) -> Self {
        let mut rest = raw;
        let mut tags = Vec::new();
        if let Some(tagged) = rest.strip_prefix('@') {
            let (list, after) = tagged.split_once(' ').unwrap_or((tagged, ""));
            for tag in list.split(';') {
                let (key, value) = tag.split_once('=').unwrap_or((tag, ""));
                tags.push((key.to_owned(), value.to_owned()));
            }
            rest = after;
        }
        let mut source = None;
        if let Some(sourced) = rest.strip_prefix(':') {
            let (src, after) = sourced.split_once(' ').unwrap_or((sourced, ""));
            source = Some(src.to_owned());
            rest = after;
        }
        let (command, mut rest) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut params = Vec::new();
        while !rest.is_empty() {
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (param, after) = rest.split_once(' ').unwrap_or((rest, ""));
            params.push(param.to_owned());
            rest = after;
        }
        Self {
            raw: raw.to_owned(),
            tags,
            source,
            command: command.to_owned(),
            params,
        }
    }

    /// The value of tag `key`.
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The nick of the source (`nick!user@host`).
    pub fn nick(&self) -> Option<&str> {
        self.source
            .as_deref()
            .map(|s| s.split('!').next().unwrap_or(s))
    }

    /// Parameter `i`.
    pub fn param(&self, i: usize) -> &str {
        self.params.get(i).map_or("", String::as_str)
    }
}

impl IrcClient {
    /// Connects to `addr`, registering nothing yet.
    pub async fn connect(addr: SocketAddr) -> Self {
        Self {
            line: LineClient::connect(addr).await,
            pings: 0,
        }
    }

    /// Connects and registers as `nick` with `caps` requested (none: no negotiation),
    /// reading up to the end of the welcome (`422`); returns the welcome's lines.
    pub async fn register(addr: SocketAddr, nick: &str, caps: &[&str]) -> (Self, Vec<IrcLine>) {
        let mut client = Self::connect(addr).await;
        if !caps.is_empty() {
            client.send("CAP LS 302").await;
            client.send(&format!("CAP REQ :{}", caps.join(" "))).await;
        }
        client.send(&format!("NICK {nick}")).await;
        client.send(&format!("USER {nick} 0 * :{nick}")).await;
        if !caps.is_empty() {
            client.send("CAP END").await;
        }
        let welcome = client.until("422").await;
        (client, welcome)
    }

    /// Sends `line` and `\r\n`.
    pub async fn send(&mut self, line: &str) {
        self.line.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// The next line; fails the test at EOF or past the deadline.
    pub async fn recv(&mut self) -> IrcLine {
        let raw = self.line.recv().await;
        IrcLine::parse(raw.strip_suffix('\r').expect("IRC lines end with \\r\\n"))
    }

    /// The next line, which must be `command` with parameters that start with `params`
    /// (a reply's first is the client's nick, or `*` before it has one).
    pub async fn expect_reply(&mut self, command: &str, params: &[&str]) -> IrcLine {
        let reply = self.recv().await;
        assert_eq!(reply.command, command, "{}", reply.raw);
        let first: Vec<&str> = reply
            .params
            .iter()
            .take(params.len())
            .map(String::as_str)
            .collect();
        assert_eq!(first, params, "{}", reply.raw);
        reply
    }

    /// The next line, or `None` at EOF.
    pub async fn recv_opt(&mut self) -> Option<IrcLine> {
        let raw = self.line.recv_opt().await?;
        Some(IrcLine::parse(raw.strip_suffix('\r').unwrap_or(&raw)))
    }

    /// Every line up to and including the first whose command is `command`.
    pub async fn until(&mut self, command: &str) -> Vec<IrcLine> {
        let mut lines = Vec::new();
        loop {
            let line = self.recv().await;
            let done = line.command == command;
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// The next line whose command is `command`, skipping others.
    pub async fn next(&mut self, command: &str) -> IrcLine {
        self.until(command).await.pop().expect("one line at least")
    }

    /// Every line the server sends before it answers a `PING` sent now: the replies to
    /// everything sent before, since the server answers in order.
    pub async fn sync(&mut self) -> Vec<IrcLine> {
        self.pings += 1;
        let token = format!("sync{}", self.pings);
        self.send(&format!("PING :{token}")).await;
        let mut lines = Vec::new();
        loop {
            let line = self.recv().await;
            if line.command == "PONG" && line.params.last() == Some(&token) {
                return lines;
            }
            lines.push(line);
        }
    }

    /// Reads until EOF, returning what came.
    pub async fn until_eof(&mut self) -> Vec<IrcLine> {
        let mut lines = Vec::new();
        while let Some(line) = self.recv_opt().await {
            lines.push(line);
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_like_irc() {
        let line = IrcLine::parse("@time=t;msgid=5 :bob!bob@h PRIVMSG #rust :hi there");
        assert_eq!(line.tag("msgid"), Some("5"));
        assert_eq!(line.nick(), Some("bob"));
        assert_eq!(line.command, "PRIVMSG");
        assert_eq!(line.params, ["#rust", "hi there"]);
        assert_eq!(IrcLine::parse("PING x").params, ["x"]);
    }
}
