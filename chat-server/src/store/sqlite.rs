//! [`SqliteStore`]: history in one SQLite file (`--db PATH`), through `rusqlite` with
//! SQLite compiled in, so no system library is needed.
//!
//! - WAL journal with `synchronous = NORMAL`: a commit is in the WAL before the writer
//!   goes on, so `kill -9` loses only messages not yet committed (the batch in flight,
//!   a few milliseconds' worth); a power cut may lose the last commits, never the file.
//! - `locking_mode = EXCLUSIVE`: the server holds the file from open to exit, so a second
//!   server on the same file is refused at startup instead of interleaving ids.
//! - `application_id` marks the file as ours; `user_version` is the schema version,
//!   created and migrated here.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chat_proto::{MessageId, Timestamp, UserName};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::{Connection, ErrorCode, OpenFlags, OptionalExtension, params};

use super::{Loaded, Store, StoreError, Write, last_id, rooms};
use crate::accounts::Account;
use crate::history::{ConvKey, Message, Retention};

/// `PRAGMA application_id` of our files: "chat" in ASCII.
const APPLICATION_ID: i32 = 0x6368_6174;
/// The schema this code writes.
const SCHEMA_VERSION: i32 = 4;

const SCHEMA_V1: &str = "
    CREATE TABLE messages (
        id     INTEGER PRIMARY KEY,
        conv   TEXT    NOT NULL,
        time   INTEGER NOT NULL,
        sender TEXT    NOT NULL,
        text   TEXT    NOT NULL
    );
    CREATE INDEX messages_by_conv ON messages (conv, id);
    CREATE TABLE dropped (
        conv    TEXT PRIMARY KEY,
        through INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// Version 2: accounts, and direct messages waiting for offline users.
const SCHEMA_V2: &str = "
    CREATE TABLE accounts (
        folded TEXT PRIMARY KEY,
        name   TEXT NOT NULL,
        phc    TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE offline (
        id        INTEGER PRIMARY KEY,
        recipient TEXT    NOT NULL,
        time      INTEGER NOT NULL,
        sender    TEXT    NOT NULL,
        text      TEXT    NOT NULL
    );
";

/// Version 3: registered rooms (founder, topic, modes, bans, roles by account) and
/// suspended accounts.
const SCHEMA_V3: &str = "
    ALTER TABLE accounts ADD COLUMN suspended INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE rooms (
        name         TEXT PRIMARY KEY,
        founder      TEXT NOT NULL,
        modes        TEXT NOT NULL,
        topic        TEXT,
        topic_setter TEXT,
        topic_time   INTEGER
    ) WITHOUT ROWID;
    CREATE TABLE room_bans (
        room   TEXT NOT NULL,
        folded TEXT NOT NULL,
        name   TEXT NOT NULL,
        PRIMARY KEY (room, folded)
    ) WITHOUT ROWID;
    CREATE TABLE room_grants (
        room   TEXT NOT NULL,
        folded TEXT NOT NULL,
        name   TEXT NOT NULL,
        role   TEXT NOT NULL CHECK (role IN ('op', 'voice')),
        PRIMARY KEY (room, folded)
    ) WITHOUT ROWID;
";

/// Version 4: read markers, by account and conversation.
const SCHEMA_V4: &str = "
    CREATE TABLE read_markers (
        account TEXT    NOT NULL,
        conv    TEXT    NOT NULL,
        id      INTEGER NOT NULL,
        PRIMARY KEY (account, conv)
    ) WITHOUT ROWID;
";

/// History in a SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Held until exit: what refuses a second server on the same file, while readers
    /// (`chat-server backup`, `sqlite3`) may still open it.
    _lock: Flock<File>,
}

impl SqliteStore {
    /// Opens (creating or migrating) the database at `path`, capped at `max_bytes` if
    /// given. Refuses a file another server holds, one that is not a database, and a
    /// database that is not ours.
    pub fn open(path: &Path, max_bytes: Option<u64>) -> anyhow::Result<Self> {
        let shown = path.display();
        let in_use =
            || anyhow::anyhow!("{shown} is in use by another process (another chat-server?)");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening {shown}"))?;
        let lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((_, Errno::EWOULDBLOCK)) => return Err(in_use()),
            Err((_, e)) => return Err(anyhow::Error::new(e).context(format!("locking {shown}"))),
        };
        let conn = Connection::open(path).with_context(|| format!("opening {shown}"))?;
        let (app_id, version, tables) =
            read_header(&conn).map_err(|e| match e.sqlite_error_code() {
                Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => in_use(),
                Some(ErrorCode::NotADatabase) => {
                    anyhow::anyhow!("{shown} is not a SQLite database")
                }
                _ => anyhow::Error::new(e).context(format!("reading {shown}")),
            })?;
        if app_id != APPLICATION_ID && (app_id != 0 || tables > 0) {
            bail!(
                "{shown} is not a chat-server database (application_id {app_id:#x}, {tables} tables)"
            );
        }
        if version > SCHEMA_VERSION {
            bail!(
                "{shown} has schema version {version}, newer than this chat-server's {SCHEMA_VERSION}"
            );
        }
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            bail!("{shown}: could not switch to WAL mode (got {mode})");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        if let Some(max_bytes) = max_bytes {
            let page_size: u64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
            conn.pragma_update(None, "max_page_count", (max_bytes / page_size).max(1))?;
        }
        if version < SCHEMA_VERSION {
            migrate(&conn, version).with_context(|| format!("creating the schema in {shown}"))?;
        }
        Ok(Self {
            conn,
            path: path.to_owned(),
            _lock: lock,
        })
    }
}

/// Copies the database at `db` to a new file `to`, a consistent snapshot even while a
/// server writes to it (`VACUUM INTO`, from a read-only connection).
pub fn backup(db: &Path, to: &Path) -> anyhow::Result<()> {
    let conn = Connection::open_with_flags(db, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening {}", db.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let (app_id, _, _) = read_header(&conn).with_context(|| format!("reading {}", db.display()))?;
    if app_id != APPLICATION_ID {
        bail!("{} is not a chat-server database", db.display());
    }
    if to.exists() {
        bail!("{} exists already: give a new file", to.display());
    }
    let target = to.to_str().context("the backup path is not UTF-8")?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("writing {}", to.display()))?;
    Ok(())
}

/// `application_id`, `user_version` and how many tables the file has.
fn read_header(conn: &Connection) -> rusqlite::Result<(i32, i32, i64)> {
    let app_id = conn.pragma_query_value(None, "application_id", |r| r.get(0))?;
    let version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let tables = conn.query_row(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
        [],
        |r| r.get(0),
    )?;
    Ok((app_id, version, tables))
}

fn migrate(conn: &Connection, from: i32) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    if from < 1 {
        tx.execute_batch(SCHEMA_V1)?;
    }
    if from < 2 {
        tx.execute_batch(SCHEMA_V2)?;
    }
    if from < 3 {
        tx.execute_batch(SCHEMA_V3)?;
    }
    if from < 4 {
        tx.execute_batch(SCHEMA_V4)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()
}

/// The rows of `sql`, `(key, id, time, sender, text)`, as messages whose conversation
/// `conv` makes of the key and the sender; each comes with its key. A row this version
/// cannot read is skipped, not fatal: history is best kept.
fn read_messages(
    conn: &Connection,
    sql: &str,
    conv: impl Fn(&str, &UserName) -> Option<ConvKey>,
) -> Result<Vec<(String, Message)>, StoreError> {
    let mut statement = conn.prepare(sql).map_err(store_error)?;
    let rows = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })
        .map_err(store_error)?;
    let mut messages = Vec::new();
    for row in rows {
        let (key, id, time, sender, text) = row.map_err(store_error)?;
        let message = (|| {
            let sender: UserName = sender.parse().ok()?;
            Some(Message {
                conv: conv(&key, &sender)?,
                id: from_sql(id)?,
                time: Timestamp::from_unix_millis(time)?,
                sender,
                text: text.parse().ok()?,
            })
        })();
        messages.extend(message.map(|m| (key, m)));
    }
    Ok(messages)
}

fn store_error(e: rusqlite::Error) -> StoreError {
    let text = e.to_string();
    match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => StoreError::Full(text),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Locked(text),
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StoreError::Corrupt(text),
        _ => StoreError::Other(text),
    }
}

/// The oldest time retention keeps, in milliseconds since the epoch.
fn cutoff(retention: &Retention, now: Timestamp) -> i64 {
    let age = i64::try_from(retention.max_age.as_millis()).unwrap_or(i64::MAX);
    now.unix_millis().saturating_sub(age)
}

fn to_sql(id: MessageId) -> i64 {
    i64::try_from(id.get()).unwrap_or(i64::MAX)
}

fn from_sql(id: i64) -> Option<MessageId> {
    u64::try_from(id).ok().and_then(MessageId::new)
}

impl Store for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn load(&mut self, retention: &Retention, now: Timestamp) -> Result<Loaded, StoreError> {
        self.prune(retention, now)?;
        let last_id: Option<i64> = self
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'last_id'", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(store_error)?;
        let mut loaded = Loaded {
            last_id: last_id.and_then(from_sql),
            ..Loaded::default()
        };
        let rooms_and_pairs = read_messages(
            &self.conn,
            "SELECT conv, id, time, sender, text FROM messages ORDER BY id",
            |conv, _| conv.parse().ok(),
        )?;
        loaded.messages = rooms_and_pairs.into_iter().map(|(_, m)| m).collect();
        let mut accounts = self
            .conn
            .prepare("SELECT name, phc, suspended FROM accounts")
            .map_err(store_error)?;
        let accounts = accounts
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, bool>(2)?,
                ))
            })
            .map_err(store_error)?;
        for row in accounts {
            let (name, phc, suspended) = row.map_err(store_error)?;
            if let Ok(name) = name.parse() {
                loaded.accounts.push(Account {
                    name,
                    phc,
                    suspended,
                });
            }
        }
        loaded.rooms = rooms::load(&self.conn).map_err(store_error)?;
        let mut markers = self
            .conn
            .prepare("SELECT account, conv, id FROM read_markers")
            .map_err(store_error)?;
        let markers = markers
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })
            .map_err(store_error)?;
        for row in markers {
            let (account, conv, id) = row.map_err(store_error)?;
            if let Some(id) = from_sql(id) {
                loaded.markers.push((account, conv, id));
            }
        }
        loaded.offline = read_messages(
            &self.conn,
            "SELECT recipient, id, time, sender, text FROM offline ORDER BY id",
            |recipient, sender| Some(ConvKey::pair_folded(sender.folded(), recipient.to_owned())),
        )?;
        let ids = loaded
            .messages
            .iter()
            .chain(loaded.offline.iter().map(|(_, m)| m));
        loaded.last_id = loaded.last_id.max(ids.map(|m| m.id).max());
        let mut dropped = self
            .conn
            .prepare("SELECT conv, through FROM dropped")
            .map_err(store_error)?;
        let dropped = dropped
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .map_err(store_error)?;
        for row in dropped {
            let (conv, through) = row.map_err(store_error)?;
            if let (Ok(conv), Some(through)) = (conv.parse::<ConvKey>(), from_sql(through)) {
                loaded.dropped.push((conv, through));
            }
        }
        Ok(loaded)
    }

    fn apply(&mut self, batch: &[Write]) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(store_error)?;
        for write in batch {
            match write {
                Write::Message(m) => tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO messages (id, conv, time, sender, text)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .and_then(|mut insert| {
                        insert.execute(params![
                            to_sql(m.id),
                            m.conv.to_string(),
                            m.time.unix_millis(),
                            m.sender.as_str(),
                            m.text.as_str(),
                        ])
                    }),
                Write::Account(account) => tx
                    .prepare_cached(
                        "INSERT INTO accounts (folded, name, phc, suspended) VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (folded) DO UPDATE
                         SET phc = excluded.phc, suspended = excluded.suspended",
                    )
                    .and_then(|mut upsert| {
                        upsert.execute(params![
                            account.name.folded(),
                            account.name.as_str(),
                            account.phc,
                            account.suspended,
                        ])
                    }),
                Write::Room(room, state) => rooms::save(&tx, room, state),
                Write::RoomGone(room) => rooms::forget(&tx, room),
                Write::Marker { account, conv, id } => tx
                    .prepare_cached(
                        "INSERT INTO read_markers (account, conv, id) VALUES (?1, ?2, ?3)
                         ON CONFLICT (account, conv) DO UPDATE SET id = max(id, excluded.id)",
                    )
                    .and_then(|mut upsert| upsert.execute(params![account, conv, to_sql(*id)])),
                Write::Offline {
                    recipient,
                    message: m,
                } => tx
                    .prepare_cached(
                        "INSERT OR IGNORE INTO offline (id, recipient, time, sender, text)
                         VALUES (?1, ?2, ?3, ?4, ?5)",
                    )
                    .and_then(|mut insert| {
                        insert.execute(params![
                            to_sql(m.id),
                            recipient,
                            m.time.unix_millis(),
                            m.sender.as_str(),
                            m.text.as_str(),
                        ])
                    }),
                Write::Delivered(ids) => tx
                    .prepare_cached("DELETE FROM offline WHERE id = ?1")
                    .and_then(|mut delete| {
                        ids.iter()
                            .try_fold(0, |n, id| Ok(n + delete.execute([to_sql(*id)])?))
                    }),
            }
            .map_err(store_error)?;
        }
        if let Some(last) = last_id(batch) {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('last_id', ?1)
                 ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                [to_sql(last)],
            )
            .map_err(store_error)?;
        }
        tx.commit().map_err(store_error)
    }

    fn prune(&mut self, retention: &Retention, now: Timestamp) -> Result<(), StoreError> {
        let tx = self.conn.transaction().map_err(store_error)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS doomed (id INTEGER PRIMARY KEY, conv TEXT NOT NULL);
             DELETE FROM doomed;",
        )
        .map_err(store_error)?;
        let per_conv = i64::try_from(retention.per_conv).unwrap_or(i64::MAX);
        tx.execute(
            "INSERT INTO doomed (id, conv)
             SELECT id, conv FROM (
                 SELECT id, conv, time,
                        row_number() OVER (PARTITION BY conv ORDER BY id DESC) AS newer
                 FROM messages)
             WHERE newer > ?1 OR time < ?2",
            params![per_conv, cutoff(retention, now)],
        )
        .map_err(store_error)?;
        tx.execute_batch(
            "INSERT INTO dropped (conv, through)
                 SELECT conv, max(id) FROM doomed WHERE true GROUP BY conv
                 ON CONFLICT (conv) DO UPDATE SET through = max(through, excluded.through);
             DELETE FROM messages WHERE id IN (SELECT id FROM doomed);
             DELETE FROM doomed;",
        )
        .map_err(store_error)?;
        tx.commit().map_err(store_error)
    }
}

#[cfg(test)]
mod tests {
    use chat_proto::{RoomModes, RoomName, TopicText};

    use super::*;
    use crate::governance::RoomState;

    /// A database as version 2 of the server left it: history, an account, mail.
    fn v2_database(path: &Path) {
        let conn = Connection::open(path).expect("a database");
        conn.execute_batch(SCHEMA_V1).expect("schema v1");
        conn.execute_batch(SCHEMA_V2).expect("schema v2");
        conn.execute_batch(
            "INSERT INTO accounts (folded, name, phc) VALUES ('alice', 'Alice', '$argon2id$x');
             INSERT INTO messages (id, conv, time, sender, text)
                 VALUES (7, '#rust', 1000, 'Alice', 'from version 2');",
        )
        .expect("v2 rows");
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .expect("application id");
        conn.pragma_update(None, "user_version", 2)
            .expect("version");
    }

    #[test]
    fn a_v2_database_is_migrated_and_keeps_rooms_and_suspensions() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("chat.db");
        v2_database(&path);
        let retention = Retention::default();
        let now = Timestamp::from_unix_millis(2000).expect("a time");
        let mut store = SqliteStore::open(&path, None).expect("migrated");
        let loaded = store.load(&retention, now).expect("loaded");
        assert_eq!(loaded.messages.len(), 1, "history survives the migration");
        assert_eq!(loaded.accounts.len(), 1);
        assert!(!loaded.accounts[0].suspended);
        assert!(loaded.rooms.is_empty());

        let room = RoomName::parse("#rust").expect("a room");
        let alice = UserName::parse("Alice").expect("a name");
        let mut state = RoomState {
            founder: Some(alice.clone()),
            modes: "+mt".parse::<RoomModes>().expect("modes"),
            topic: Some(chat_proto::TopicInfo {
                setter: chat_proto::Setter::User(alice.clone()),
                time: now,
                text: TopicText::parse("kept").expect("a topic"),
            }),
            ..RoomState::default()
        };
        state
            .bans
            .insert("eve".into(), UserName::parse("Eve").expect("a name"));
        state.grants.insert(
            "bob".into(),
            (
                UserName::parse("bob").expect("a name"),
                chat_proto::Role::Voiced,
            ),
        );
        let suspended = Account {
            name: alice,
            phc: "$argon2id$x".into(),
            suspended: true,
        };
        store
            .apply(&[
                Write::Room(room.clone(), Box::new(state.clone())),
                Write::Account(suspended),
            ])
            .expect("written");
        drop(store);

        let mut store = SqliteStore::open(&path, None).expect("reopened");
        let loaded = store.load(&retention, now).expect("loaded");
        assert_eq!(loaded.rooms, vec![(room.clone(), state)]);
        assert!(loaded.accounts[0].suspended);
        store.apply(&[Write::RoomGone(room)]).expect("written");
        let loaded = store.load(&retention, now).expect("loaded");
        assert!(loaded.rooms.is_empty());
    }
}
