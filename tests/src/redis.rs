//! [`RedisServer`]: a real `redis-server` (Debian package `redis-server`) for the cluster
//! tests, on a free loopback port with persistence off, stopped by pid when dropped. Tests
//! can pause it (`SIGSTOP`), resume it, or kill and restart it on the same port, and start
//! one that asks for a password ([`RedisServer::start_with_password`]).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::DEADLINE;

/// A running `redis-server`. Killed and reaped on drop.
pub struct RedisServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `--requirepass`, if it was started with one.
    password: Option<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers `PING`.
    pub fn start() -> Self {
        Self::start_configured(&[])
    }

    /// Starts one that refuses every command until `AUTH password` (`--requirepass`).
    /// [`RedisServer::url`] then holds the password.
    pub fn start_with_password(password: &str) -> Self {
        let port = free_port();
        let mut server = Self::spawn(
            SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            &["--requirepass", password],
        );
        server.password = Some(password.to_owned());
        server.wait_ready();
        server
    }

    /// Starts one on `addr` (after [`RedisServer::kill`], to bring it back).
    pub fn start_at(addr: SocketAddr) -> Self {
        Self::start_with(addr, &[])
    }

    /// Starts one on a free port with extra configuration (`--name value` pairs).
    pub fn start_configured(extra: &[&str]) -> Self {
        Self::start_with(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())), extra)
    }

    fn start_with(addr: SocketAddr, extra: &[&str]) -> Self {
        let server = Self::spawn(addr, extra);
        server.wait_ready();
        server
    }

    /// Starts it, without waiting for it to answer.
    fn spawn(addr: SocketAddr, extra: &[&str]) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &addr.port().to_string()])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (Debian package redis-server; .ci/run installs it)");
        Self {
            addr,
            password: None,
            child: Some(child),
        }
    }

    /// `redis://127.0.0.1:PORT`, or `redis://:PASSWORD@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@{}", self.addr),
            None => format!("redis://{}", self.addr),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> i32 {
        let child = self.child.as_ref().expect("a running redis-server");
        i32::try_from(child.id()).expect("pids fit in i32")
    }

    /// Sends it `signal` (`SIGSTOP` pauses it, `SIGCONT` resumes it).
    pub fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.pid()), signal).expect("signalling redis-server");
    }

    /// Kills it (SIGKILL) and reaps it; its port becomes free for [`RedisServer::start_at`].
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends one command in inline form and returns the raw reply (after `AUTH`, if it
    /// has a password).
    pub fn command(&self, command: &str) -> String {
        let mut stream = TcpStream::connect(self.addr).expect("connecting to redis-server");
        stream
            .set_read_timeout(Some(DEADLINE))
            .expect("a read timeout");
        if let Some(password) = &self.password {
            stream
                .write_all(format!("AUTH {password}\r\n").as_bytes())
                .expect("writing to redis-server");
            let mut ok = [0; 5];
            stream
                .read_exact(&mut ok)
                .expect("reading from redis-server");
            assert_eq!(&ok, b"+OK\r\n", "AUTH refused");
        }
        stream
            .write_all(format!("{command}\r\n").as_bytes())
            .expect("writing to redis-server");
        let mut reply = vec![0; 64 * 1024];
        let n = stream.read(&mut reply).expect("reading from redis-server");
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let pong = TcpStream::connect(self.addr).ok().and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_millis(200))).ok()?;
                s.write_all(b"PING\r\n").ok()?;
                let mut buf = [0; 7];
                s.read_exact(&mut buf).ok()?;
                Some(buf)
            });
            // With a password it answers `-NOAUTH Authentication required.`, as ready.
            if pong.is_some_and(|reply| &reply == b"+PONG\r\n" || reply.starts_with(b"-NOAUTH")) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = &self.child {
            // A paused server would ignore SIGKILL's reaping until resumed.
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGCONT);
        }
        self.kill();
    }
}
