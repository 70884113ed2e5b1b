//! Accounts and TLS through the real binaries: `chat-client` logging in to a registered
//! name over TLS (password from a file or CHAT_PASSWORD), refusing a certificate it does
//! not trust, and keeping a typed password off the screen.

use std::process::{Output, Stdio};

use chat_tests::{DEADLINE, PtyClient, ServerProcess, keys};
use tokio::io::AsyncWriteExt;

/// A self-signed certificate for `localhost` and 127.0.0.1 in `dir`: (cert, key) paths.
fn make_cert(dir: &std::path::Path) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("a key");
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("certificate parameters");
    let cert = params.self_signed(&key).expect("a certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("writing the certificate");
    std::fs::write(&key_path, key.serialize_pem()).expect("writing the key");
    let path = |p: std::path::PathBuf| p.to_str().expect("a UTF-8 path").to_owned();
    (path(cert_path), path(key_path))
}

/// Runs `chat-client` in line mode with `args` and `env`, feeding it `input`, to its exit.
async fn plain_client(args: &[&str], env: &[(&str, &str)], input: &str) -> Output {
    let mut client = tokio::process::Command::new(chat_tests::bin_path("chat-client"))
        .arg("--plain")
        .args(args)
        .env_remove("CHAT_PASSWORD")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting chat-client");
    let mut stdin = client.stdin.take().expect("piped stdin");
    stdin
        .write_all(input.as_bytes())
        .await
        .expect("writing stdin");
    drop(stdin);
    tokio::time::timeout(DEADLINE, client.wait_with_output())
        .await
        .expect("chat-client exits after stdin EOF")
        .expect("waiting for chat-client")
}

#[tokio::test]
async fn register_then_log_in_over_tls_with_the_password_from_a_file_or_the_environment() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = make_cert(dir.path());
    let db = dir.path().join("chat.db");
    let server = ServerProcess::start(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--db",
        db.to_str().expect("UTF-8"),
    ])
    .await;
    let addr = server.addr.to_string();
    let tls = ["--addr", addr.as_str(), "--ca-file", cert.as_str()];

    let mut args = vec!["--name", "alice"];
    args.extend(tls);
    let out = plain_client(&args, &[], "/register correct horse\n/who\n").await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("registered alice"), "{stdout}");

    let out = plain_client(&args, &[], "/who\n").await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "no password for a registered name"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("name is registered"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = plain_client(&args, &[("CHAT_PASSWORD", "correct horse")], "/who\n").await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("welcome alice\n"));

    let file = dir.path().join("password");
    std::fs::write(&file, "correct horse\n").expect("writing the password file");
    let mut with_file = args.clone();
    with_file.extend(["--password-file", file.to_str().expect("UTF-8")]);
    let out = plain_client(&with_file, &[], "/who\n").await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("welcome alice\n"));
    assert!(
        !server.log_text().contains("correct horse"),
        "the password is never logged"
    );
}

#[tokio::test]
async fn a_certificate_the_client_does_not_trust_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (cert, key) = make_cert(dir.path());
    let server = ServerProcess::start(&["--tls-cert", &cert, "--tls-key", &key]).await;
    let addr = server.addr.to_string();
    // The system's (Mozilla's) roots do not know a self-signed certificate.
    let out = plain_client(&["--name", "alice", "--addr", &addr, "--tls"], &[], "").await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate is not trusted"), "{stderr}");
    // The server is unharmed: a client that trusts it logs in.
    let out = plain_client(
        &["--name", "bob", "--addr", &addr, "--ca-file", &cert],
        &[],
        "/who\n",
    )
    .await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("users bob"));
}

#[tokio::test]
async fn a_typed_password_is_masked_on_screen_and_kept_out_of_the_input_history() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let server = ServerProcess::start(&["--db", db.to_str().expect("UTF-8")]).await;
    let addr = server.addr.to_string();
    let mut alice = PtyClient::spawn(&["--name", "alice", "--addr", &addr], 80, 24);
    alice.wait_for("connected to");
    alice.type_keys("/register sekrit-words");
    alice.wait_for("/register ************");
    assert!(!alice.screen().contains("sekrit"), "{}", alice.screen());
    alice.type_keys(keys::ENTER);
    alice.wait_for("alice is now registered");
    alice.type_keys(keys::UP);
    alice.type_keys("x");
    alice.wait_for("[*] x");
    assert!(!alice.screen().contains("sekrit"), "{}", alice.screen());
}
