//! [`Account`]: what the client knows of its own name beyond this connection (protocol
//! v3): whether it is a registered account (only accounts keep read markers and may be
//! logged in on several devices), how many of its sessions are online, and whether it is
//! away. The last two are the account's, not this connection's, so the client asks the
//! server, `/whois <own name>`: after each login, when a line shows another session at
//! work (a `sent` copy, our own room line from elsewhere, a read marker we did not move),
//! and every [`SESSIONS_REFRESH`], since a session that comes or goes says nothing to the
//! others. Those answers are not shown; answers to the user's `/whois` are.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chat_proto::{MessageText, UserName};

/// How often an account asks again how many sessions it has.
pub const SESSIONS_REFRESH: Duration = Duration::from_secs(60);

/// Our own account, as far as the client knows it.
#[derive(Debug)]
pub struct Account {
    registered: bool,
    /// Sessions online, this one included, as the server last said.
    sessions: usize,
    away: Option<MessageText>,
    /// The away message this client set with `/away`, while the account still has it.
    own_away: Option<MessageText>,
    /// Our own away message from before a reconnect: put back if we turn out to be the
    /// only session (the server forgot it with the last one); otherwise the account's
    /// state, which another device may have changed, wins.
    restore_away: Option<MessageText>,
    /// Names (folded) the user asked `/whois` about, oldest first: their answers are shown.
    asked: VecDeque<String>,
    /// When we asked about ourselves, while that answer is due.
    self_asked: Option<Instant>,
    /// When we last had that answer.
    self_answered: Option<Instant>,
}

impl Account {
    /// `registered`: we log in with a password.
    pub fn new(registered: bool) -> Self {
        Self {
            registered,
            sessions: 1,
            away: None,
            own_away: None,
            restore_away: None,
            asked: VecDeque::new(),
            self_asked: None,
            self_answered: None,
        }
    }

    /// Whether the name is a registered account.
    pub fn registered(&self) -> bool {
        self.registered
    }

    /// The name was just registered (`registered <name>`).
    pub fn set_registered(&mut self) {
        self.registered = true;
    }

    /// Sessions of the account online, this one included.
    pub fn sessions(&self) -> usize {
        self.sessions
    }

    /// Our away message, if we are away.
    pub fn away(&self) -> Option<&MessageText> {
        self.away.as_ref()
    }

    /// We sent `/away [text]`.
    pub fn set_away(&mut self, text: Option<MessageText>) {
        self.away.clone_from(&text);
        self.own_away = text;
    }

    /// The server says the account is away (an `away` line after a `whois` of ourselves),
    /// perhaps set from another device.
    pub fn learned_away(&mut self, text: MessageText) {
        self.away = Some(text);
    }

    /// Logged in: whether to ask about ourselves now. Until the answer we are not away.
    pub fn logged_in(&mut self) -> bool {
        let away = self.away.take();
        self.restore_away = self
            .own_away
            .take()
            .filter(|own| away.as_ref() == Some(own));
        self.registered || self.restore_away.is_some()
    }

    /// The connection is gone: no answers are coming.
    pub fn lost(&mut self) {
        self.sessions = 1;
        self.asked.clear();
        self.self_asked = None;
    }

    /// Whether to ask about ourselves now: not while an answer is due.
    pub fn ask_self(&mut self, now: Instant) -> bool {
        if self.self_asked.is_some() {
            return false;
        }
        self.self_asked = Some(now);
        true
    }

    /// A line showed another session at work: whether to ask how many there are.
    pub fn another_session(&mut self, now: Instant) -> bool {
        self.registered && self.sessions < 2 && self.ask_self(now)
    }

    /// A second passed: whether to ask again how many sessions there are.
    pub fn refresh_due(&mut self, now: Instant) -> bool {
        let stale = self
            .self_answered
            .is_none_or(|at| now.saturating_duration_since(at) >= SESSIONS_REFRESH);
        self.registered && stale && self.ask_self(now)
    }

    /// The user asked `/whois name`.
    pub fn asked_about(&mut self, name: &UserName) {
        self.asked.push_back(name.folded());
    }

    /// A `whois` answer about someone else: whether the user asked for it.
    pub fn answered(&mut self, name: &UserName) -> bool {
        let folded = name.folded();
        match self.asked.iter().position(|n| *n == folded) {
            Some(at) => {
                self.asked.remove(at);
                true
            }
            None => false,
        }
    }

    /// A `whois` answer about ourselves: the count, and not away unless an `away` line
    /// follows it. Returns whether the user asked for it, and an away message to set again.
    pub fn answered_self(
        &mut self,
        name: &UserName,
        sessions: usize,
        now: Instant,
    ) -> (bool, Option<MessageText>) {
        self.self_asked = None;
        self.self_answered = Some(now);
        self.sessions = sessions.max(1);
        self.away = None;
        let restore = self.restore_away.take().filter(|_| sessions <= 1);
        if let Some(text) = &restore {
            self.away = Some(text.clone());
            self.own_away = Some(text.clone());
        }
        (self.answered(name), restore)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a name")
    }

    fn text(s: &str) -> MessageText {
        MessageText::parse(s).expect("a text")
    }

    #[test]
    fn one_question_about_ourselves_at_a_time_and_a_refresh_each_minute() {
        let t0 = Instant::now();
        let mut account = Account::new(true);
        assert!(account.logged_in(), "an account asks at login");
        assert!(account.ask_self(t0));
        assert!(!account.another_session(t0), "already asked");
        account.answered_self(&name("alice"), 1, t0);
        assert!(!account.refresh_due(t0 + SESSIONS_REFRESH / 2));
        assert!(account.another_session(t0));
        account.answered_self(&name("alice"), 2, t0);
        assert_eq!(account.sessions(), 2);
        assert!(!account.another_session(t0), "known already");
        assert!(account.refresh_due(t0 + SESSIONS_REFRESH));
        assert!(
            !account.refresh_due(t0 + SESSIONS_REFRESH * 2),
            "one at a time"
        );
        account.lost();
        assert_eq!(account.sessions(), 1);
        let mut guest = Account::new(false);
        assert!(!guest.another_session(t0), "no sessions without an account");
        assert!(!guest.refresh_due(t0 + SESSIONS_REFRESH));
    }

    #[test]
    fn away_is_put_back_after_a_reconnect_only_when_alone() {
        let t0 = Instant::now();
        let mut account = Account::new(true);
        account.set_away(Some(text("lunch")));
        assert!(account.logged_in());
        let (_, restore) = account.answered_self(&name("alice"), 2, t0);
        assert_eq!(restore, None, "another device holds the account's state");
        assert_eq!(account.away(), None);

        account.set_away(Some(text("lunch")));
        // Cleared on another device meanwhile (learnt before the drop): not ours to put back.
        account.answered_self(&name("alice"), 2, t0);
        assert!(account.logged_in());
        assert_eq!(account.answered_self(&name("alice"), 1, t0), (false, None));
        // Set on another device: the account's, not ours to put back either.
        account.learned_away(text("meeting"));
        account.logged_in();
        assert_eq!(account.answered_self(&name("alice"), 1, t0), (false, None));

        let mut guest = Account::new(false);
        guest.set_away(Some(text("lunch")));
        assert!(guest.logged_in(), "away: ask, to put it back");
        assert_eq!(
            guest.answered_self(&name("bob"), 1, t0),
            (false, Some(text("lunch")))
        );
        assert_eq!(guest.away(), Some(&text("lunch")));
        assert!(!Account::new(false).logged_in(), "nothing to ask");
    }

    #[test]
    fn the_users_questions_are_answered_in_any_case() {
        let t0 = Instant::now();
        let mut account = Account::new(true);
        account.asked_about(&name("Bob"));
        account.asked_about(&name("alice"));
        assert!(!account.answered(&name("carol")));
        assert!(account.answered(&name("bob")));
        assert!(!account.answered(&name("bob")), "asked once");
        assert_eq!(account.answered_self(&name("ALICE"), 1, t0), (true, None));
    }
}
