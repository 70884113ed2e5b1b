//! History on disk through the real binary: restarts after SIGTERM and after `kill -9`,
//! ids that never go back, and databases the server must refuse to start on.

use std::time::Duration;

use chat_tests::{LineClient, ServerProcess, run_server_to_exit};
use nix::sys::signal::Signal;

/// The `(id, text)` of every message `/history <room> 1000` returns.
async fn history(client: &mut LineClient, room: &str) -> Vec<(u64, String)> {
    client.send(&format!("/history {room} 1000")).await;
    let mut entries = Vec::new();
    loop {
        let line = client.recv().await;
        if line.starts_with("history-end ") {
            return entries;
        }
        let Some(rest) = line.strip_prefix(&format!("history {room} ")) else {
            continue;
        };
        let (id, rest) = rest.split_once(' ').expect("an id");
        let (_time, message) = rest.split_once(' ').expect("a time");
        let text = message.split_once(": ").expect("sender: text").1;
        entries.push((id.parse().expect("a numeric id"), text.to_owned()));
    }
}

async fn member(server: &ServerProcess, name: &str, room: &str) -> LineClient {
    let mut client = server.login(name).await;
    client.send(&format!("/join {room}")).await;
    client.expect(&format!("joined {room} {name}")).await;
    client.recv().await;
    client
}

/// The id of every room message in `lines`.
fn ids(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("from ")?;
            let head = rest.split_once(':')?.0;
            head.split(' ').nth(2)?.parse().ok()
        })
        .collect()
}

#[tokio::test]
async fn history_and_id_order_survive_sigterm() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let db = db.to_str().expect("a UTF-8 path");
    let mut server = ServerProcess::start(&["--db", db]).await;
    let mut alice = member(&server, "alice", "#r").await;
    for i in 0..100 {
        alice.send(&format!("#r: before {i}")).await;
    }
    alice.sync().await;
    let before = history(&mut alice, "#r").await;
    assert_eq!(before.len(), 100);
    server.signal(Signal::SIGTERM);
    assert_eq!(
        server.wait_exit(Duration::from_secs(10)).await.code(),
        Some(0)
    );

    let server = ServerProcess::start(&["--db", db]).await;
    let mut bob = member(&server, "bob", "#r").await;
    assert_eq!(history(&mut bob, "#r").await, before);
    let mut carol = member(&server, "carol", "#r").await;
    carol.send("#r: after").await;
    carol.sync().await;
    let after = history(&mut bob, "#r").await;
    assert_eq!(after.len(), 101);
    assert!(
        after.windows(2).all(|w| w[0].0 < w[1].0),
        "ids keep increasing"
    );
}

#[tokio::test]
async fn kill_9_loses_at_most_the_last_moments_and_never_the_database() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let db = db.to_str().expect("a UTF-8 path");
    let server = ServerProcess::start(&["--db", db]).await;
    let mut alice = member(&server, "alice", "#r").await;
    let mut observer = member(&server, "observer", "#r").await;
    for i in 0..200 {
        alice.send(&format!("#r: old {i}")).await;
    }
    alice.sync().await;
    // No protocol line says "written to disk"; the documented window is a few
    // milliseconds, so half a second is far outside it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..200 {
        alice.send(&format!("#r: new {i}")).await;
    }
    alice.sync().await;
    let (seen, _) = observer.sync().await;
    let seen = ids(&seen);
    assert_eq!(seen.len(), 400);
    server.signal(Signal::SIGKILL);
    drop(server);

    let server = ServerProcess::start(&["--db", db]).await;
    let mut bob = member(&server, "bob", "#r").await;
    let kept = history(&mut bob, "#r").await;
    let expected: Vec<String> = (0..200)
        .map(|i| format!("old {i}"))
        .chain((0..200).map(|i| format!("new {i}")))
        .collect();
    assert!(
        kept.len() >= 200,
        "everything from before the pause is there"
    );
    let texts: Vec<&String> = kept.iter().map(|(_, t)| t).collect();
    assert_eq!(
        texts,
        expected.iter().take(kept.len()).collect::<Vec<_>>(),
        "a prefix, in order: at most the newest are missing"
    );
    assert_eq!(
        kept.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        seen[..kept.len()],
        "with the ids they were delivered with"
    );
    bob.send("#r: after the crash").await;
    // Bob's /who reply comes after his line is routed (and so stored).
    bob.sync().await;
    let mut carol = member(&server, "carol", "#r").await;
    carol.sync().await;
    let after = history(&mut carol, "#r").await;
    let newest = after.last().expect("the new message").0;
    assert!(
        seen.iter().all(|&id| id < newest),
        "no id is reused, not even one whose message was lost"
    );
}

#[tokio::test]
async fn without_db_ids_after_a_restart_are_larger() {
    let mut server = ServerProcess::start(&[]).await;
    let mut alice = member(&server, "alice", "#r").await;
    alice.send("#r: one").await;
    alice.sync().await;
    let first = history(&mut alice, "#r").await;
    server.signal(Signal::SIGTERM);
    server.wait_exit(Duration::from_secs(10)).await;
    let server = ServerProcess::start(&[]).await;
    let mut alice = member(&server, "alice", "#r").await;
    alice.send("#r: two").await;
    alice.sync().await;
    let second = history(&mut alice, "#r").await;
    assert!(second[0].0 > first[0].0);
}

#[tokio::test]
async fn a_database_in_use_or_not_ours_stops_startup_with_status_1() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let db = db.to_str().expect("a UTF-8 path");
    let _first = ServerProcess::start(&["--db", db]).await;
    let (status, stderr) = run_server_to_exit(&["--db", db]).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("is in use by another process"), "{stderr}");

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a database\n".repeat(300)).expect("writing a file");
    let (status, stderr) = run_server_to_exit(&["--db", notes.to_str().expect("UTF-8")]).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("is not a SQLite database"), "{stderr}");

    let (status, stderr) = run_server_to_exit(&["--db", db, "--history", "off"]).await;
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("cannot go with --history off"), "{stderr}");
}

#[tokio::test]
async fn a_full_database_is_logged_once_with_its_path_and_chat_goes_on() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("full.db");
    let db = db.to_str().expect("a UTF-8 path");
    let server = ServerProcess::start(&["--db", db, "--db-max-size", "64KiB"]).await;
    let mut alice = member(&server, "alice", "#r").await;
    let mut bob = member(&server, "bob", "#r").await;
    let long = "z".repeat(2000);
    let mut failing = false;
    for round in 0..50 {
        let burst: String = (0..10)
            .map(|i| format!("#r: {round}.{i} {long}\n"))
            .collect();
        alice.send_raw(burst.as_bytes()).await;
        alice.send("/history #r 1").await;
        let reply = alice.recv().await;
        if reply.starts_with("error: history is unavailable: disk full") {
            failing = true;
            break;
        }
        alice.recv().await;
        // No line says "written"; the writer gets a moment per round, in a bounded loop.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(failing, "the capped database never filled up");
    // More failing writes, still one log line.
    let burst: String = (0..20).map(|i| format!("#r: more {i} {long}\n")).collect();
    alice.send_raw(burst.as_bytes()).await;
    alice.send("#r: still chatting").await;
    alice.sync().await;
    let (lines, _) = bob.sync().await;
    assert!(lines.iter().any(|l| l.ends_with(": still chatting")));
    let log = server.log_text();
    let failures: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("history store failed"))
        .collect();
    assert_eq!(failures.len(), 1, "{log}");
    assert!(
        failures[0].contains(db),
        "the path is named: {}",
        failures[0]
    );
}
