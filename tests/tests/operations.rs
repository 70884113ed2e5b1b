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
