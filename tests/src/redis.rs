//! [`RedisServer`]: a real `redis-server` (Debian package `redis-server`) for the cluster
//! tests, on a free loopback port with persistence off, stopped by pid when dropped. Tests
//! can pause it (`SIGSTOP`), resume it, or kill and restart it on the same port, and start
//! one that asks for a password ([`RedisServer::start_with_password`]) or speaks only TLS
//! ([`RedisServer::start_tls`], with certificates from a [`TestCa`]).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
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
    /// Its certificates, if it speaks TLS only.
    tls: Option<TestCa>,
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
        let port = free_port().to_string();
        let mut server = Self::spawn(
            &["--port", &port, "--requirepass", password],
            port.parse().expect("a port"),
        );
        server.password = Some(password.to_owned());
        server.wait_ready();
        server
    }

    /// Starts one that speaks TLS only, with a certificate for `127.0.0.1` from a new
    /// [`TestCa`] ([`RedisServer::ca_file`]); clients need no certificate of their own.
    /// [`RedisServer::url`] is then `rediss://127.0.0.1:PORT`, and
    /// [`RedisServer::command`] cannot be used.
    pub fn start_tls() -> Self {
        let ca = TestCa::new();
        let port = free_port();
        let file = |path: &Path| path.to_str().expect("a UTF-8 temp path").to_owned();
        let args = [
            "--port".to_owned(),
            "0".to_owned(),
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            file(&ca.cert),
            "--tls-key-file".to_owned(),
            file(&ca.key),
            "--tls-ca-cert-file".to_owned(),
            file(&ca.ca),
            "--tls-auth-clients".to_owned(),
            "no".to_owned(),
        ];
        let mut server = Self::spawn(&args, port);
        server.tls = Some(ca);
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
        let port = addr.port().to_string();
        let args: Vec<&str> = ["--port", &port].iter().chain(extra).copied().collect();
        let server = Self::spawn(&args, addr.port());
        server.wait_ready();
        server
    }

    /// Starts it on loopback with `args` (which say where it listens), without waiting
    /// for it to answer on `port`.
    fn spawn(args: &[impl AsRef<std::ffi::OsStr>], port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "starting redis-server (Debian package redis-server; scripts/test installs it)",
            );
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            password: None,
            tls: None,
            child: Some(child),
        }
    }

    /// `redis://127.0.0.1:PORT`, `redis://:PASSWORD@127.0.0.1:PORT`, or
    /// `rediss://127.0.0.1:PORT` for TLS.
    pub fn url(&self) -> String {
        match (&self.password, &self.tls) {
            (_, Some(_)) => format!("rediss://{}", self.addr),
            (Some(password), None) => format!("redis://:{password}@{}", self.addr),
            (None, None) => format!("redis://{}", self.addr),
        }
    }

    /// The CA that signed a TLS server's certificate (PEM).
    pub fn ca_file(&self) -> &Path {
        self.tls
            .as_ref()
            .expect("a redis-server started with start_tls")
            .ca_file()
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
        assert!(self.tls.is_none(), "command() speaks plain TCP, not TLS");
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
            // A TLS port cannot be asked `PING` in plain text; it listens once it serves.
            if self.tls.is_some() && TcpStream::connect(self.addr).is_ok() {
                return;
            }
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
                "redis-server did not start on {}{}",
                self.addr,
                if self.tls.is_some() {
                    " (is it built with TLS? Debian's is)"
                } else {
                    ""
                }
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A CA made for one test, and a certificate for `127.0.0.1` and `localhost` that it
/// signed, as PEM files in a temporary directory removed on drop.
pub struct TestCa {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl TestCa {
    /// A new CA (`rcgen`), unknown to anyone else.
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::new()).expect("CA parameters");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "chat test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).expect("a CA");
        let key = rcgen::KeyPair::generate().expect("a key");
        let cert =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("certificate parameters")
                .signed_by(&key, &ca)
                .expect("a certificate signed by the CA");
        let dir = tempfile::tempdir().expect("a temp dir");
        let files = Self {
            ca: dir.path().join("ca.pem"),
            cert: dir.path().join("cert.pem"),
            key: dir.path().join("key.pem"),
            _dir: dir,
        };
        std::fs::write(&files.ca, ca.pem()).expect("writing the CA");
        std::fs::write(&files.cert, cert.pem()).expect("writing the certificate");
        std::fs::write(&files.key, key.serialize_pem()).expect("writing the key");
        files
    }

    /// The CA's certificate (PEM), what a client is to trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
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
