//! Accounts and offline mail in Redis, so any node can log anyone in and deliver what was
//! kept for them. Accounts are a hash (`chat:accounts`: folded name → `name\nPHC`) that
//! every node loads at start and keeps in step through `chat:accounts` messages. Mail is a
//! list per recipient (`chat:mail:<folded>`), at most [`crate::backend::MAX_OFFLINE_PER_RECIPIENT`] messages, taken (read
//! and deleted in one step) by the node the recipient logs in on.

use chat_proto::{MessageId, MessageText, Timestamp, UserName};
use redis::aio::ConnectionLike;
use redis::{RedisResult, Script};

use crate::accounts::Account;
use crate::history::{ConvKey, Message};

/// The hash of every account.
pub const ACCOUNTS: &str = "chat:accounts";
/// The channel account changes are announced on.
pub const ACCOUNTS_CHANNEL: &str = "chat:accounts";
/// The list of mail waiting for `folded`.
pub fn mail_key(folded: &str) -> String {
    format!("chat:mail:{folded}")
}

/// An account as stored and announced: `name\nPHC`, and `\nsuspended` if it is.
pub fn encode_account(account: &Account) -> String {
    let suspended = if account.suspended { "\nsuspended" } else { "" };
    format!("{}\n{}{suspended}", account.name, account.phc)
}

/// Reads an account back.
pub fn decode_account(value: &str) -> Option<Account> {
    let (name, rest) = value.split_once('\n')?;
    let (phc, suspended) = match rest.split_once('\n') {
        Some((phc, "suspended")) => (phc, true),
        Some(_) => return None,
        None => (rest, false),
    };
    Some(Account {
        name: UserName::parse(name).ok()?,
        phc: phc.to_owned(),
        suspended,
    })
}

/// Every account.
pub async fn load_accounts(redis: &mut impl ConnectionLike) -> RedisResult<Vec<Account>> {
    let values: Vec<String> = redis::cmd("HVALS").arg(ACCOUNTS).query_async(redis).await?;
    Ok(values.iter().filter_map(|v| decode_account(v)).collect())
}

/// Stores `account` and tells every node.
pub async fn put_account(redis: &mut impl ConnectionLike, account: &Account) -> RedisResult<()> {
    let value = encode_account(account);
    redis::pipe()
        .cmd("HSET")
        .arg(ACCOUNTS)
        .arg(account.name.folded())
        .arg(&value)
        .ignore()
        .cmd("PUBLISH")
        .arg(ACCOUNTS_CHANNEL)
        .arg(&value)
        .ignore()
        .query_async(redis)
        .await
}

/// A kept message as stored: `id time-ms sender text`.
pub fn encode_mail(message: &Message) -> String {
    format!(
        "{} {} {} {}",
        message.id.get(),
        message.time.unix_millis(),
        message.sender,
        message.text
    )
}

/// Reads a kept message for `recipient` back.
pub fn decode_mail(recipient: &UserName, value: &str) -> Option<Message> {
    let mut parts = value.splitn(4, ' ');
    let id = MessageId::new(parts.next()?.parse().ok()?)?;
    let time = Timestamp::from_unix_millis(parts.next()?.parse().ok()?)?;
    let sender = UserName::parse(parts.next()?).ok()?;
    let text = MessageText::parse(parts.next()?).ok()?;
    Some(Message {
        conv: ConvKey::pair(&sender, recipient),
        id,
        time,
        sender,
        text,
    })
}

/// Takes (reads and deletes, in one step) the mail kept for `name`, oldest first: each
/// message is delivered once, by whichever node `name` logs in on.
pub async fn take(redis: &mut impl ConnectionLike, name: &UserName) -> RedisResult<Vec<Message>> {
    let script = Script::new(
        r"
        local mail = redis.call('LRANGE', KEYS[1], 0, -1)
        redis.call('DEL', KEYS[1])
        return mail
        ",
    );
    let values: Vec<String> = script
        .key(mail_key(&name.folded()))
        .invoke_async(redis)
        .await?;
    Ok(values.iter().filter_map(|v| decode_mail(name, v)).collect())
}
