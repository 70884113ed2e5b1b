//! What a node says of its users for the others: away messages (the hash `chat:away`,
//! folded name → text, and the channel of the same name that announces each change, so
//! every node knows who is away without asking), and `/whois` of a user on another
//! node, asked of the node holding its name over that node's channel.

use chat_proto::MessageText;
use redis::RedisResult;
use redis::aio::ConnectionLike;

/// The rooms an account is in, for a session of it that logs in on another node.
pub fn account_rooms_key(folded: &str) -> String {
    format!("chat:account-rooms:{folded}")
}

/// The hash of away messages, and the channel of their changes.
pub const AWAY: &str = "chat:away";

/// A change as published: `folded\ntext`, the text empty when back.
pub fn encode_away(folded: &str, text: Option<&MessageText>) -> String {
    format!("{folded}\n{}", text.map_or("", MessageText::as_str))
}

/// Reads [`encode_away`] back.
pub fn decode_away(payload: &str) -> Option<(String, Option<MessageText>)> {
    let (folded, text) = payload.split_once('\n')?;
    let text = match text {
        "" => None,
        text => Some(MessageText::parse(text).ok()?),
    };
    Some((folded.to_owned(), text))
}

/// Every away message, at start.
pub async fn load_aways(
    redis: &mut impl ConnectionLike,
) -> RedisResult<Vec<(String, MessageText)>> {
    let all: Vec<(String, String)> = redis::cmd("HGETALL").arg(AWAY).query_async(redis).await?;
    Ok(all
        .into_iter()
        .filter_map(|(folded, text)| Some((folded, MessageText::parse(&text).ok()?)))
        .collect())
}

/// Where a `/whois` answer goes: `node/connection/folded name` of the asker and of whom
/// it asks, as a node record's target.
pub fn whois_target(node: &str, conn: u64, folded: &str) -> String {
    format!("{node}/{conn}/{folded}")
}

/// Reads [`whois_target`] back.
pub fn parse_whois_target(target: &str) -> Option<(String, u64, String)> {
    let mut parts = target.splitn(3, '/');
    Some((
        parts.next()?.to_owned(),
        parts.next()?.parse().ok()?,
        parts.next()?.to_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn away_changes_and_whois_targets_read_back() {
        let text = MessageText::parse("at lunch: back at 2").ok();
        assert_eq!(
            decode_away(&encode_away("bob", text.as_ref())),
            Some(("bob".to_owned(), text))
        );
        assert_eq!(
            decode_away(&encode_away("bob", None)),
            Some(("bob".to_owned(), None))
        );
        assert_eq!(
            parse_whois_target(&whois_target("a", 7, "b ob")),
            Some(("a".to_owned(), 7, "b ob".to_owned()))
        );
    }
}
