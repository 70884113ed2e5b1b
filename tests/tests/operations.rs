//! Running the server in production, through the real binary: `--version`, a `--config`
//! file under the command line's flags, and `chat-server backup` of a database in use.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chat_tests::{DEADLINE, ServerProcess, bin_path, run_server_to_exit};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a file");
    path.to_str().expect("a UTF-8 path").to_owned()
}

#[test]
fn version_names_the_release_and_the_commit() {
    let output = Command::new(bin_path("chat-server"))
        .arg("--version")
        .output()
        .expect("running chat-server --version");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    let rest = text
        .trim()
        .strip_prefix(&format!(
            "chat-server {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .unwrap_or_else(|| panic!("{text}"));
    let commit = rest.strip_suffix(')').expect("a closing parenthesis");
    let hash = commit.strip_suffix("-modified").unwrap_or(commit);
    assert!(
        hash.len() == 12 && hash.chars().all(|c| c.is_ascii_hexdigit()),
        "{text}"
    );
    let head = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running git");
    assert!(
        String::from_utf8_lossy(&head.stdout).starts_with(hash),
        "{text}"
    );
}

#[tokio::test]
async fn a_config_file_sets_the_flags_and_the_command_line_overrides_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write(
        dir.path(),
        "chat.toml",
        "# one client at a time\nmax-clients = 1\nstrict_names = true\n",
    );
    let server = ServerProcess::start(&["--config", &config]).await;
    let _alice = server.login("alice").await;
    let mut bob = server.connect().await;
    bob.send("bob").await;
    assert_eq!(bob.recv().await, "error: server is full (1 clients)");
    drop(server);

    let server = ServerProcess::start(&["--config", &config, "--max-clients", "2"]).await;
    let _alice = server.login("alice").await;
    let _bob = server.login("bob").await;
}

#[tokio::test]
async fn a_bad_config_file_stops_startup_naming_the_key_and_the_file() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = write(dir.path(), "chat.toml", "max-clents = 3\n");
    let (status, stderr) = run_server_to_exit(&["--config", &config]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("unknown key `max-clents`") && stderr.contains(&config),
        "{stderr}"
    );
    let config = write(dir.path(), "typed.toml", "max-clients = \"many\"\n");
    let (status, stderr) = run_server_to_exit(&["--config", &config]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&config) && stderr.contains("many"),
        "{stderr}"
    );
    let (status, stderr) = run_server_to_exit(&["--config", "/nonexistent/chat.toml"]).await;
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("/nonexistent/chat.toml"), "{stderr}");
}

#[tokio::test]
async fn backup_copies_a_database_the_server_is_using() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let db = db.to_str().expect("a UTF-8 path");
    let server = ServerProcess::start(&["--db", db]).await;
    let mut alice = server.login("alice").await;
    alice.send("/join #r").await;
    for i in 0..3 {
        alice.send(&format!("#r: {i}")).await;
    }
    alice.sync().await;
    // The store writes on a thread of its own; no line says when a message is on disk,
    // so take backups until one has all three.
    let started = Instant::now();
    for attempt in 0.. {
        let copy = dir.path().join(format!("copy-{attempt}.db"));
        let output = Command::new(bin_path("chat-server"))
            .args(["backup", db, copy.to_str().expect("UTF-8")])
            .output()
            .expect("running chat-server backup");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let conn = rusqlite::Connection::open(&copy).expect("the copy opens");
        let stored: i64 = conn
            .query_row("SELECT count(*) FROM messages", [], |r| r.get(0))
            .expect("the copy has the messages table");
        if stored == 3 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the backup never had the 3 messages"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The server is still running and writing.
    alice.send("#r: after").await;
    alice.sync().await;
    let again = Command::new(bin_path("chat-server"))
        .args([
            "backup",
            db,
            dir.path().join("copy-0.db").to_str().expect("UTF-8"),
        ])
        .output()
        .expect("running chat-server backup");
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
}

/// `GET path` from the metrics listener: the status code and the body.
async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connecting to the metrics listener");
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("sending the request");
    let mut response = String::new();
    tokio::time::timeout(DEADLINE, stream.read_to_string(&mut response))
        .await
        .expect("a response in time")
        .expect("reading the response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{response}"));
    let body = response
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned();
    (status, body)
}

/// Every sample of a scrape: `name{labels}` → value.
fn samples(text: &str) -> std::collections::HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn metrics_name_what_the_server_does_and_move_with_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let server = ServerProcess::start(&[
        "--db",
        db.to_str().expect("UTF-8"),
        "--irc-addr",
        "127.0.0.1:0",
        "--metrics-addr",
        "127.0.0.1:0",
        "--sendq",
        "64KiB",
    ])
    .await;
    let metrics = server.listening("metrics");
    let (status, body) = http_get(metrics, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (status, _) = http_get(metrics, "/nothing").await;
    assert_eq!(status, 404);
    let (status, before) = http_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    let before = samples(&before);

    let mut alice = server.login("alice").await;
    let mut bob = server.login("bob").await;
    let mut irc = chat_tests::irc::IrcClient::register(server.listening("irc"), "carol", &[])
        .await
        .0;
    let mut taken = server.connect().await;
    taken.send("alice").await;
    assert!(taken.recv().await.starts_with("error: name already in use"));
    alice.send("/join #r").await;
    bob.send("/join #r").await;
    bob.sync().await;
    alice.send("#r: to the room").await;
    alice.send("bob: to bob").await;
    alice.send("*: to everyone").await;
    bob.skip_until("from alice *: to everyone").await;
    irc.next("PRIVMSG").await;
    // A client that never reads, cut off by the small send queue.
    let mut slow = chat_tests::LineClient::connect_with_recv_buffer(server.addr, 4096).await;
    slow.send("slow").await;
    slow.expect("welcome slow").await;
    let flood = format!("slow: {}\n", "x".repeat(900)).repeat(200);
    for _ in 0..10 {
        if alice.try_send_raw(flood.as_bytes()).await.is_err() {
            break;
        }
        let (_, names) = alice.sync().await;
        if !names.contains(&"slow".to_owned()) {
            break;
        }
    }

    // The store writes on a thread of its own: scrape until its batch is counted.
    let started = Instant::now();
    let after = loop {
        let (_, text) = http_get(metrics, "/metrics").await;
        let after = samples(&text);
        if after
            .get("chat_store_write_seconds_count")
            .copied()
            .unwrap_or(0.0)
            > 0.0
        {
            break after;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "no store write counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let grew = |series: &str| {
        let was = before.get(series).copied().unwrap_or(0.0);
        let is = after
            .get(series)
            .copied()
            .unwrap_or_else(|| panic!("{series} missing from {after:#?}"));
        assert!(is > was, "{series}: {was} then {is}");
    };
    for series in [
        "chat_connections{listener=\"native\"}",
        "chat_connections{listener=\"irc\"}",
        "chat_logins_total",
        "chat_logins_refused_total{reason=\"taken\"}",
        "chat_messages_routed_total{kind=\"direct\"}",
        "chat_messages_routed_total{kind=\"room\"}",
        "chat_messages_routed_total{kind=\"everyone\"}",
        "chat_deliveries_total{kind=\"direct\"}",
        "chat_deliveries_total{kind=\"room\"}",
        "chat_deliveries_total{kind=\"everyone\"}",
        "chat_written_bytes_total",
        "chat_sendq_cutoffs_total",
        "chat_store_write_seconds_count",
    ] {
        grew(series);
    }
    for series in [
        "chat_broker_queue_depth",
        "chat_redis_round_trips_total",
        "chat_redis_errors_total",
    ] {
        assert!(after.contains_key(series), "{series} missing");
    }
    let build = format!(
        "chat_build_info{{version=\"{}\",",
        env!("CARGO_PKG_VERSION")
    );
    assert!(
        after.keys().any(|k| k.starts_with(&build)),
        "{:?}",
        after.keys().collect::<Vec<_>>()
    );
    assert!(
        after
            .keys()
            .all(|k| !k.contains("alice") && !k.contains("#r")),
        "no label names a user or a room"
    );
}
