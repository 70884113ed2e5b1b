//! TLS, in process, with certificates made by `rcgen`: login and chat over TLS, a
//! plain-text client on the TLS port refused without harming anyone, a handshake that
//! never comes costing only its own socket, and IRC over TLS (`--irc-tls-addr`).

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use chat_server::Config;
use chat_server::tls::TlsFiles;
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
struct Cert {
    _dir: tempfile::TempDir,
    files: TlsFiles,
    der: CertificateDer<'static>,
}

fn make_cert() -> Cert {
    let key = rcgen::KeyPair::generate().expect("a key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate parameters");
    let cert = params.self_signed(&key).expect("a certificate");
    let dir = tempfile::tempdir().expect("a temp dir");
    let files = TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    };
    std::fs::write(&files.cert, cert.pem()).expect("writing the certificate");
    std::fs::write(&files.key, key.serialize_pem()).expect("writing the key");
    Cert {
        _dir: dir,
        files,
        der: cert.der().clone(),
    }
}

type Lines =
    tokio::io::Lines<BufReader<tokio::io::ReadHalf<tokio_rustls::client::TlsStream<TcpStream>>>>;
type Writer = tokio::io::WriteHalf<tokio_rustls::client::TlsStream<TcpStream>>;

async fn tls_client(addr: SocketAddr, trusted: &CertificateDer<'static>) -> (Lines, Writer) {
    let mut roots = RootCertStore::empty();
    roots.add(trusted.clone()).expect("a root");
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connecting");
    let name = ServerName::try_from("localhost").expect("a server name");
    let stream = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("the TLS handshake");
    let (read, write) = tokio::io::split(stream);
    (BufReader::new(read).lines(), write)
}

async fn send(writer: &mut Writer, line: &str) {
    writer
        .write_all(format!("{line}\n").as_bytes())
        .await
        .expect("writing");
}

async fn recv(lines: &mut Lines) -> String {
    tokio::time::timeout(chat_tests::DEADLINE, lines.next_line())
        .await
        .expect("a line within the deadline")
        .expect("reading")
        .expect("a line, not EOF")
}

#[tokio::test]
async fn login_and_chat_over_tls_while_plain_text_on_the_port_is_refused() {
    let cert = make_cert();
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = common::start(Config {
        tls: Some(cert.files.clone()),
        db: Some(dir.path().join("chat.db")),
        ..Config::default()
    })
    .await;
    // Opens TCP and never starts the handshake: it waits in its own task, not in the
    // accept loop, so everyone after it gets in.
    let _silent = TcpStream::connect(server.addr).await.expect("connecting");
    let (mut alice_rx, mut alice) = tls_client(server.addr, &cert.der).await;
    send(&mut alice, "alice").await;
    assert_eq!(recv(&mut alice_rx).await, "welcome alice");
    // Over TLS a password is fine.
    send(&mut alice, "/register correct horse").await;
    assert_eq!(recv(&mut alice_rx).await, "registered alice");

    // A plain-text client speaks to the TLS port: the handshake fails, the socket closes.
    let mut plain = TcpStream::connect(server.addr).await.expect("connecting");
    plain.write_all(b"mallory\n").await.expect("writing");
    let mut rest = Vec::new();
    let read = tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut rest);
    let _ = tokio::time::timeout(chat_tests::DEADLINE, read)
        .await
        .expect("closed in time");
    assert!(
        !String::from_utf8_lossy(&rest).contains("welcome"),
        "no login over plain text"
    );

    let (mut bob_rx, mut bob) = tls_client(server.addr, &cert.der).await;
    send(&mut bob, "bob").await;
    assert_eq!(recv(&mut bob_rx).await, "welcome bob");
    send(&mut bob, "alice: over TLS").await;
    assert_eq!(recv(&mut alice_rx).await, "joined bob");
    assert_eq!(recv(&mut alice_rx).await, "from bob: over TLS");
    send(&mut alice, "/who").await;
    assert_eq!(
        recv(&mut alice_rx).await,
        "users alice,bob",
        "mallory never got in"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn irc_over_tls_registers_and_talks_with_a_native_user() {
    let cert = make_cert();
    let dir = tempfile::tempdir().expect("a temp dir");
    let server = common::start(Config {
        tls: Some(cert.files.clone()),
        db: Some(dir.path().join("chat.db")),
        ..Config::default()
    })
    .await;
    let (mut alice_rx, mut alice) = tls_client(server.addr, &cert.der).await;
    send(&mut alice, "alice").await;
    assert_eq!(recv(&mut alice_rx).await, "welcome alice");
    let irc_addr = server.irc_tls_addr.expect("an IRC TLS listener");
    let (mut bob_rx, mut bob) = tls_client(irc_addr, &cert.der).await;
    send(&mut bob, "NICK bob\r\nUSER bob 0 * :Bob\r").await;
    let welcome = recv(&mut bob_rx).await;
    assert!(
        welcome.ends_with(" 001 bob :Welcome to the chat, bob"),
        "{welcome}"
    );
    loop {
        if recv(&mut bob_rx).await.contains(" 422 ") {
            break;
        }
    }
    send(&mut bob, "PRIVMSG alice :over IRC and TLS\r").await;
    assert_eq!(recv(&mut alice_rx).await, "joined bob");
    assert_eq!(recv(&mut alice_rx).await, "from bob: over IRC and TLS");
    send(&mut alice, "bob: back").await;
    assert!(recv(&mut bob_rx).await.ends_with(" PRIVMSG bob :back"));
    server.shutdown().await;
}
