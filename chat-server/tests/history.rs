//! History, in process: the reply forms of `/history`, retention (`history_len`,
//! `history_age`, off) and `truncated`, and replay after a reconnect, in both modes (one
//! server; two cluster nodes sharing a Redis); then, on one server, persistence in SQLite
//! across restarts and store failures.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use chat_proto::{HistoryEntry, MessageId, Scope, ServerLine};
use chat_server::Config;
use chat_server::history::Retention;
use chat_tests::LineClient;
use common::{Chat, Mode, both_modes, start, try_start, try_start_with_store};

/// Sends `/history <args>` and returns the entries and whether the end said `truncated`.
async fn history(client: &mut LineClient, args: &str) -> (Vec<HistoryEntry>, bool) {
    client.send(&format!("/history {args}")).await;
    let mut entries = Vec::new();
    loop {
        let line = client.recv().await;
        match line.parse::<ServerLine>() {
            Ok(ServerLine::History(entry)) => entries.push(entry),
            Ok(ServerLine::HistoryEnd { truncated, .. }) => return (entries, truncated),
            // Presence and live messages may arrive in between; they are not history.
            Ok(ServerLine::Joined(_) | ServerLine::JoinedRoom { .. } | ServerLine::From { .. }) => {
            }
            other => panic!("unexpected line in a history reply: {line:?} ({other:?})"),
        }
    }
}

fn texts(entries: &[HistoryEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.text.as_str()).collect()
}

/// Has `sender` say `texts` in `room`, then waits until the server routed them.
async fn say(sender: &mut LineClient, room: &str, texts: impl IntoIterator<Item = String>) {
    for text in texts {
        sender.send(&format!("{room}: {text}")).await;
    }
    sender.sync().await;
}

fn small_history(per_conv: usize) -> Config {
    Config {
        history: Some(Retention {
            per_conv,
            ..Retention::default()
        }),
        ..Config::default()
    }
}

both_modes!(the_reply_is_history_lines_oldest_first_then_history_end);
async fn the_reply_is_history_lines_oldest_first_then_history_end(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member("alice", "#rust").await;
    say(
        &mut alice,
        "#rust",
        (1..=3).map(|i| format!("m{i}: with a colon")),
    )
    .await;
    alice.send("/history #rust").await;
    let mut lines = Vec::new();
    for _ in 0..4 {
        lines.push(alice.recv().await);
    }
    for (i, line) in lines[..3].iter().enumerate() {
        // history #rust <id> <time> alice: m1: with a colon
        let fields: Vec<&str> = line.splitn(5, ' ').collect();
        assert_eq!(fields[0..2], ["history", "#rust"], "{line:?}");
        assert!(fields[2].bytes().all(|b| b.is_ascii_digit()) && fields[2].len() <= 19);
        assert_eq!(
            fields[3].len(),
            "2026-11-28T18:00:00.123Z".len(),
            "{line:?}"
        );
        assert!(fields[3].ends_with('Z') && fields[3].as_bytes()[19] == b'.');
        assert_eq!(fields[4], format!("alice: m{}: with a colon", i + 1));
    }
    assert_eq!(lines[3], "history-end #rust complete");
    let (entries, truncated) = history(&mut alice, "#rust 2").await;
    assert_eq!(texts(&entries), ["m2: with a colon", "m3: with a colon"]);
    assert!(!truncated);
    let (entries, _) = history(&mut alice, &format!("#rust after {}", entries[0].id)).await;
    assert_eq!(texts(&entries), ["m3: with a colon"]);
    let (entries, truncated) = history(&mut alice, "#nothing-here").await;
    assert!(entries.is_empty() && !truncated);
    chat.shutdown().await;
}

both_modes!(anyone_may_read_a_room_and_rooms_keep_history_when_empty);
async fn anyone_may_read_a_room_and_rooms_keep_history_when_empty(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member_on(0, "alice", "#rust").await;
    say(&mut alice, "#rust", ["kept".to_owned()]).await;
    alice.send("/part #rust").await;
    alice.expect("left #rust alice").await;
    let mut bob = chat.login_on(1, "bob").await;
    bob.send("/names #rust").await;
    bob.expect("error: no such room: #rust").await;
    let (entries, _) = history(&mut bob, "#rust").await;
    assert_eq!(texts(&entries), ["kept"]);
    assert_eq!(entries[0].sender.as_str(), "alice");
    chat.shutdown().await;
}

both_modes!(asking_for_messages_retention_dropped_says_truncated);
async fn asking_for_messages_retention_dropped_says_truncated(mode: Mode) {
    let chat = Chat::start(mode, small_history(5)).await;
    let mut alice = chat.member("alice", "#r").await;
    say(&mut alice, "#r", (1..=3).map(|i| format!("m{i}"))).await;
    let (first, truncated) = history(&mut alice, "#r 10").await;
    assert!(!truncated, "nothing dropped yet, there are just 3");
    say(&mut alice, "#r", (4..=8).map(|i| format!("m{i}"))).await;
    let (entries, truncated) = history(&mut alice, "#r 10").await;
    assert_eq!(texts(&entries), ["m4", "m5", "m6", "m7", "m8"]);
    assert!(truncated);
    let (_, truncated) = history(&mut alice, "#r 5").await;
    assert!(!truncated, "all 5 asked for are there");
    let (entries, truncated) = history(&mut alice, &format!("#r after {}", first[0].id)).await;
    assert_eq!(texts(&entries), ["m4", "m5", "m6", "m7", "m8"]);
    assert!(truncated, "m2 and m3 are gone");
    let (_, truncated) = history(&mut alice, &format!("#r after {}", entries[0].id)).await;
    assert!(!truncated);
    chat.shutdown().await;
}

both_modes!(after_returns_at_most_1000_oldest_first_and_says_truncated);
async fn after_returns_at_most_1000_oldest_first_and_says_truncated(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut alice = chat.member("alice", "#r").await;
    say(&mut alice, "#r", (0..1100).map(|i| format!("n{i}"))).await;
    let (entries, truncated) = history(&mut alice, "#r after 0").await;
    assert_eq!(entries.len(), 1000);
    assert_eq!(entries[0].text.as_str(), "n0");
    assert!(truncated);
    let last = entries[999].id;
    let (rest, truncated) = history(&mut alice, &format!("#r after {last}")).await;
    assert_eq!(rest.len(), 100);
    assert_eq!(rest[99].text.as_str(), "n1099");
    assert!(!truncated);
    let (latest, truncated) = history(&mut alice, "#r 1000").await;
    assert_eq!((latest.len(), truncated), (1000, false));
    assert_eq!(latest[999].text.as_str(), "n1099");
    chat.shutdown().await;
}

both_modes!(replay_after_a_reconnect_has_no_gap_and_no_duplicate_while_messages_flow);
async fn replay_after_a_reconnect_has_no_gap_and_no_duplicate_while_messages_flow(mode: Mode) {
    let chat = Chat::start(mode, Config::default()).await;
    let mut observer = chat.member_on(1, "observer", "#r").await;
    let mut reader = chat.member_on(1, "reader", "#r").await;
    let mut talker = chat.member_on(0, "talker", "#r").await;
    let talking = tokio::spawn(async move {
        for i in 0..600 {
            talker.send(&format!("#r: t{i}")).await;
            if i % 50 == 0 {
                talker.sync().await;
            }
        }
        talker.sync().await;
        talker
    });
    let id_of = |line: &str| match line.parse::<ServerLine>() {
        Ok(ServerLine::From {
            scope: Scope::Room { id, .. },
            ..
        }) => Some(id),
        _ => None,
    };
    // The reader sees some messages live, then goes away mid-stream, and comes back on
    // the talker's server.
    let mut seen: Vec<MessageId> = Vec::new();
    while seen.len() < 100 {
        if let Some(id) = id_of(&reader.recv().await) {
            seen.push(id);
        }
    }
    reader.shutdown_write().await;
    reader.recv_until_eof().await;
    let mut reader = chat.login_on(0, "reader").await;
    let last = *seen.last().expect("saw messages");
    // Joining and asking in one write puts both in one broker turn: live messages start
    // exactly where the snapshot ends (docs/protocol.md, "Catching up").
    reader
        .send_raw(format!("/join #r\n/history #r after {last}\n").as_bytes())
        .await;
    let talker = talking.await.expect("the talker");
    drop(talker);
    // Every message, as a member who stayed saw them.
    let mut all: Vec<MessageId> = Vec::new();
    while all.len() < 600 {
        all.extend(id_of(&observer.recv().await));
    }
    let newest = all[599];
    // The reader's history reply and the live messages after it, up to the newest.
    let mut ended = false;
    while !(ended && seen.contains(&newest)) {
        let line = reader.recv().await;
        match line.parse::<ServerLine>() {
            Ok(ServerLine::History(entry)) => {
                assert!(!ended, "one reply");
                seen.push(entry.id);
            }
            Ok(ServerLine::HistoryEnd { truncated, .. }) => {
                assert!(!truncated);
                ended = true;
            }
            _ => seen.extend(id_of(&line)),
        }
    }
    let (after, _) = reader.sync().await;
    assert!(
        after.iter().all(|l| id_of(l).is_none()),
        "nothing after the newest: {after:?}"
    );
    let unique: BTreeSet<MessageId> = seen.iter().copied().collect();
    assert_eq!(unique.len(), seen.len(), "no duplicate");
    assert_eq!(unique.into_iter().collect::<Vec<_>>(), all, "no gap");
    chat.shutdown().await;
}

both_modes!(history_refusals_say_why);
async fn history_refusals_say_why(mode: Mode) {
    let config = Config {
        history: None,
        ..Config::default()
    };
    let chat = Chat::start(mode, config).await;
    let mut alice = chat.member("alice", "#r").await;
    alice.send("/history #r").await;
    alice.expect("error: history is off on this server").await;
    alice.send("/history @bob").await;
    alice
        .expect("error: no history is kept for @bob: direct messages are kept only between two registered accounts")
        .await;
    alice.send("/history #r 0").await;
    alice
        .expect("error: history count must be 1 to 1000, not \"0\"")
        .await;
    alice.send("/history r").await;
    alice
        .expect("error: invalid conversation \"r\" (expected #room or @name)")
        .await;
    chat.shutdown().await;
}

both_modes!(a_reply_never_overflows_the_askers_send_queue);
async fn a_reply_never_overflows_the_askers_send_queue(mode: Mode) {
    let config = Config {
        sendq: 64 * 1024,
        ..Config::default()
    };
    let chat = Chat::start(mode, config).await;
    let mut alice = chat.member("alice", "#r").await;
    let long = "x".repeat(1000);
    say(&mut alice, "#r", (0..100).map(|i| format!("{i} {long}"))).await;
    let (entries, truncated) = history(&mut alice, "#r 100").await;
    assert!(
        truncated,
        "100 KB of history does not fit half of a 64 KiB queue"
    );
    assert!(!entries.is_empty() && entries.len() < 100);
    assert!(
        entries
            .last()
            .is_some_and(|e| e.text.as_str().starts_with("99 ")),
        "the newest kept"
    );
    alice.sync().await;
    chat.shutdown().await;
}

both_modes!(messages_older_than_the_history_age_are_dropped_and_say_truncated);
async fn messages_older_than_the_history_age_are_dropped_and_say_truncated(mode: Mode) {
    let age = Duration::from_secs(1);
    let config = Config {
        history: Some(Retention {
            max_age: age,
            ..Retention::default()
        }),
        ..Config::default()
    };
    let chat = Chat::start(mode, config).await;
    let mut alice = chat.member("alice", "#r").await;
    say(&mut alice, "#r", ["old".to_owned()]).await;
    let (entries, _) = history(&mut alice, "#r").await;
    assert_eq!(texts(&entries), ["old"]);
    // The age is the rule, so this waits for the clock, asking until `old` is gone.
    let deadline = tokio::time::Instant::now() + age + chat_tests::DEADLINE;
    loop {
        let (entries, truncated) = history(&mut alice, "#r").await;
        if entries.is_empty() {
            assert!(truncated, "asked for 50, and `old` is gone");
            break;
        }
        assert_eq!(texts(&entries), ["old"]);
        assert!(
            tokio::time::Instant::now() < deadline,
            "`old` outlived the history age by {:?}",
            chat_tests::DEADLINE
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    say(&mut alice, "#r", ["new".to_owned()]).await;
    let (entries, truncated) = history(&mut alice, "#r").await;
    assert_eq!(texts(&entries), ["new"]);
    assert!(truncated, "`old` is still gone");
    chat.shutdown().await;
}

fn with_db(path: &std::path::Path) -> Config {
    Config {
        db: Some(path.to_owned()),
        ..Config::default()
    }
}

#[tokio::test]
async fn sqlite_history_and_ids_survive_a_restart() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let server = start(with_db(&db)).await;
    let mut alice = server.member("alice", "#r").await;
    say(&mut alice, "#r", (1..=3).map(|i| format!("before {i}"))).await;
    let (before, _) = history(&mut alice, "#r").await;
    drop(alice);
    server.shutdown().await;

    let server = start(with_db(&db)).await;
    let mut bob = server.member("bob", "#r").await;
    let (entries, truncated) = history(&mut bob, "#r").await;
    assert_eq!(entries, before, "the same messages, ids and times");
    assert!(!truncated);
    let mut carol = server.member("carol", "#r").await;
    carol.send("#r: after").await;
    carol.sync().await;
    let (entries, _) = history(&mut bob, "#r").await;
    assert_eq!(
        texts(&entries),
        ["before 1", "before 2", "before 3", "after"]
    );
    assert!(entries[3].id > entries[2].id);
    server.shutdown().await;
}

#[tokio::test]
async fn without_a_db_ids_still_grow_across_a_restart() {
    let server = start(Config::default()).await;
    let mut alice = server.member("alice", "#r").await;
    say(&mut alice, "#r", ["one".to_owned()]).await;
    let (first, _) = history(&mut alice, "#r").await;
    server.shutdown().await;
    let server = start(Config::default()).await;
    let mut alice = server.member("alice", "#r").await;
    say(&mut alice, "#r", ["two".to_owned()]).await;
    let (second, _) = history(&mut alice, "#r").await;
    assert_eq!(texts(&second), ["two"], "memory history starts empty");
    assert!(second[0].id > first[0].id);
    server.shutdown().await;
}

#[tokio::test]
async fn retention_dropped_before_a_restart_still_says_truncated_after_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let config = Config {
        db: Some(db.clone()),
        ..small_history(2)
    };
    let server = start(config.clone()).await;
    let mut alice = server.member("alice", "#r").await;
    say(&mut alice, "#r", (1..=4).map(|i| format!("m{i}"))).await;
    server.shutdown().await;
    let server = start(config).await;
    let mut alice = server.member("alice", "#r").await;
    let (entries, truncated) = history(&mut alice, "#r 10").await;
    assert_eq!(texts(&entries), ["m3", "m4"]);
    assert!(truncated);
    server.shutdown().await;
}

#[tokio::test]
async fn a_failing_store_does_not_stop_chat_and_history_says_so() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let server = start(Config {
        db: Some(db),
        // Room for the schema and little else: writes soon fail with SQLITE_FULL.
        db_max_bytes: Some(64 * 1024),
        ..Config::default()
    })
    .await;
    let mut alice = server.member("alice", "#r").await;
    let mut bob = server.member("bob", "#r").await;
    let long = "z".repeat(2000);
    let mut failed = None;
    for round in 0..50 {
        say(
            &mut alice,
            "#r",
            (0..10).map(|i| format!("{round}.{i} {long}")),
        )
        .await;
        alice.send("/history #r 1").await;
        let reply = alice.recv().await;
        if let Some(reason) = reply.strip_prefix("error: ") {
            failed = Some(reason.to_owned());
            break;
        }
        alice.recv().await;
        // Give the store writer a moment to take the next batch; the loop is bounded.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reason = failed.expect("the capped database filled up");
    assert!(
        reason.starts_with("history is unavailable: disk full"),
        "{reason}"
    );
    // Delivery goes on: bob got every message, and new ones still flow.
    alice.send("#r: still chatting").await;
    alice.sync().await;
    let (lines, _) = bob.sync().await;
    assert!(lines.iter().any(|l| l.ends_with(": still chatting")));
    server.shutdown().await;
}

#[tokio::test]
async fn a_database_in_use_or_not_ours_is_refused_at_startup() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let server = start(with_db(&db)).await;
    let error = try_start(with_db(&db)).await.err().expect("refused");
    assert!(
        error.to_string().contains("is in use by another process"),
        "{error:#}"
    );
    server.shutdown().await;
    start(with_db(&db)).await.shutdown().await;

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "x".repeat(4096)).expect("writing a file");
    let error = try_start(with_db(&text)).await.err().expect("refused");
    assert!(
        error.to_string().contains("is not a SQLite database"),
        "{error:#}"
    );

    let other = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).expect("a database");
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .expect("a table");
    drop(conn);
    let error = try_start(with_db(&other)).await.err().expect("refused");
    assert!(
        error.to_string().contains("is not a chat-server database"),
        "{error:#}"
    );
}

/// The real SQLite store on a disk that takes 200 ms per write: history writes fall
/// behind while chat goes on at full speed.
struct SlowDisk(chat_server::store::sqlite::SqliteStore);

impl chat_server::store::Store for SlowDisk {
    fn location(&self) -> String {
        self.0.location()
    }
    fn load(
        &mut self,
        retention: &Retention,
        now: chat_proto::Timestamp,
    ) -> Result<chat_server::store::Loaded, chat_server::store::StoreError> {
        self.0.load(retention, now)
    }
    fn apply(
        &mut self,
        batch: &[chat_server::store::Write],
    ) -> Result<(), chat_server::store::StoreError> {
        std::thread::sleep(Duration::from_millis(200));
        self.0.apply(batch)
    }
    fn prune(
        &mut self,
        retention: &Retention,
        now: chat_proto::Timestamp,
    ) -> Result<(), chat_server::store::StoreError> {
        self.0.prune(retention, now)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_disk_slows_history_writes_not_delivery_and_shutdown_writes_everything() {
    use chat_server::store::Store;
    use chat_server::store::sqlite::SqliteStore;
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("chat.db");
    let slow = SlowDisk(SqliteStore::open(&db, None).expect("opening"));
    let server = try_start_with_store(Config::default(), Some(Box::new(slow)))
        .await
        .expect("a server");
    let mut alice = server.login("alice").await;
    alice.send("/join #r").await;
    let mut bob = server.login("bob").await;
    bob.send("/join #r").await;
    bob.expect("joined #r bob").await;
    bob.expect("names #r alice,bob").await;
    let started = std::time::Instant::now();
    // Many small turns of the broker: more batches than the writer's queue holds, so the
    // broker keeps a backlog of its own too.
    for burst in 0..200 {
        let lines: String = (0..5).map(|i| format!("#r: {burst}.{i}\n")).collect();
        alice.send_raw(lines.as_bytes()).await;
        alice.sync().await;
    }
    let (got, _) = bob.sync().await;
    assert_eq!(
        got.iter()
            .filter(|l| l.starts_with("from alice #r "))
            .count(),
        1000
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "delivery waited for the disk: {:?}",
        started.elapsed()
    );
    server.shutdown().await;
    let mut store = SqliteStore::open(&db, None).expect("reopening");
    let loaded = store
        .load(&Retention::default(), chat_server::history::wall_clock().0)
        .expect("loading");
    assert_eq!(
        loaded.messages.len(),
        1000,
        "every accepted message is on disk"
    );
}
