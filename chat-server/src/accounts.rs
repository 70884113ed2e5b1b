//! Accounts: who owns which name ([`Accounts`], kept by the broker), the failed-login
//! throttle, and [`Hasher`], which runs Argon2id off the async runtime on a bounded
//! number of threads.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chat_proto::{Password, UserName};
use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Argon2id memory cost in KiB: OWASP's minimum (19 MiB with 2 passes).
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
const ARGON2_PASSES: u32 = 2;
/// Hashes computed at once, whatever the number of logins: a flood of wrong passwords
/// queues here instead of taking every core (and 19 MiB each).
pub const HASHING_THREADS: usize = 2;

/// Failed logins for one name within [`THROTTLE_WINDOW`] before more are refused.
const MAX_FAILURES_PER_NAME: usize = 3;
/// Failed logins from one address within [`THROTTLE_WINDOW`] before more are refused.
const MAX_FAILURES_PER_ADDR: usize = 10;
const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
/// Names and addresses tracked at most; past it the oldest failures are forgotten, so
/// an attacker cycling through addresses cannot grow this without bound.
const MAX_TRACKED: usize = 100_000;

/// A registered name.
#[derive(Debug, Clone)]
pub struct Account {
    /// The name as its owner registered it.
    pub name: UserName,
    /// The Argon2id hash in PHC string form (algorithm, parameters and salt included).
    pub phc: String,
}

/// Every registered name, by folded name, so registering `bob` protects `Bob` too.
#[derive(Debug, Default)]
pub struct Accounts {
    by_folded: HashMap<String, Account>,
}

impl Accounts {
    /// The account of the name that folds like `name`.
    pub fn get(&self, name: &UserName) -> Option<&Account> {
        self.by_folded.get(&name.folded())
    }

    /// Whether `name` (folded) is registered.
    pub fn is_registered(&self, name: &UserName) -> bool {
        self.by_folded.contains_key(&name.folded())
    }

    /// Whether nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.by_folded.is_empty()
    }

    /// Records `account`, new or with a new hash.
    pub fn put(&mut self, account: Account) {
        self.by_folded.insert(account.name.folded(), account);
    }
}

/// Recent failed logins per name and per address.
#[derive(Debug, Default)]
pub struct Throttle {
    by_name: HashMap<String, VecDeque<Instant>>,
    by_addr: HashMap<IpAddr, VecDeque<Instant>>,
}

impl Throttle {
    /// When `name` from `addr` may try again, if not now.
    pub fn retry_at(&mut self, name: &UserName, addr: IpAddr, now: Instant) -> Option<Instant> {
        let by_name = blocked(
            self.by_name.get_mut(&name.folded()),
            MAX_FAILURES_PER_NAME,
            now,
        );
        let by_addr = blocked(self.by_addr.get_mut(&addr), MAX_FAILURES_PER_ADDR, now);
        by_name.max(by_addr)
    }

    /// Counts a wrong password for `name` from `addr`.
    pub fn failed(&mut self, name: &UserName, addr: IpAddr, now: Instant) {
        if self.by_name.len() >= MAX_TRACKED || self.by_addr.len() >= MAX_TRACKED {
            self.forget_before(now - THROTTLE_WINDOW);
        }
        record(
            self.by_name.entry(name.folded()).or_default(),
            MAX_FAILURES_PER_NAME,
            now,
        );
        record(
            self.by_addr.entry(addr).or_default(),
            MAX_FAILURES_PER_ADDR,
            now,
        );
    }

    fn forget_before(&mut self, cutoff: Instant) {
        self.by_name
            .retain(|_, times| times.back().is_some_and(|&t| t > cutoff));
        self.by_addr
            .retain(|_, times| times.back().is_some_and(|&t| t > cutoff));
        if self.by_name.len() >= MAX_TRACKED || self.by_addr.len() >= MAX_TRACKED {
            self.by_name.clear();
            self.by_addr.clear();
        }
    }
}

/// Keeps the last `max` failure times.
fn record(times: &mut VecDeque<Instant>, max: usize, now: Instant) {
    times.push_back(now);
    while times.len() > max {
        times.pop_front();
    }
}

/// With `max` failures inside the window, the moment the oldest leaves it.
fn blocked(times: Option<&mut VecDeque<Instant>>, max: usize, now: Instant) -> Option<Instant> {
    let times = times?;
    while times.front().is_some_and(|&t| t + THROTTLE_WINDOW <= now) {
        times.pop_front();
    }
    (times.len() >= max).then(|| times[0] + THROTTLE_WINDOW)
}

/// Runs Argon2id on the blocking pool, at most [`HASHING_THREADS`] at a time.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        Self {
            permits: Arc::new(Semaphore::new(HASHING_THREADS)),
        }
    }
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, 1, None)
        .expect("constant Argon2 parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

impl Hasher {
    /// A new salted hash of `password`, as a PHC string. The password is wiped when the
    /// hash is done.
    pub async fn hash(&self, password: Password) -> anyhow::Result<String> {
        self.run(move || {
            let salt = SaltString::generate(&mut OsRng);
            let hash = argon2()
                .hash_password(password.expose(), &salt)
                .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
            Ok(hash.to_string())
        })
        .await
    }

    /// Whether `password` matches `phc`; the parameters come from `phc`, so hashes made
    /// with other parameters still verify. The password is wiped when the check is done.
    pub async fn verify(&self, password: Password, phc: String) -> bool {
        self.run(move || {
            let Ok(hash) = PasswordHash::new(&phc) else {
                return Ok(false);
            };
            Ok(argon2().verify_password(password.expose(), &hash).is_ok())
        })
        .await
        .unwrap_or(false)
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let _permit = self.permits.acquire().await?;
        tokio::task::spawn_blocking(work).await?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> UserName {
        UserName::parse(s).expect("a valid name")
    }

    #[test]
    fn three_failures_for_a_name_block_it_for_a_minute() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        let addr: IpAddr = "192.0.2.1".parse().expect("an address");
        for i in 0..3 {
            assert_eq!(throttle.retry_at(&name("bob"), addr, start), None);
            throttle.failed(&name("Bob"), addr, start + Duration::from_secs(i));
        }
        let now = start + Duration::from_secs(10);
        assert_eq!(
            throttle.retry_at(&name("BOB"), addr, now),
            Some(start + THROTTLE_WINDOW),
            "folded, and until the oldest failure is a minute old"
        );
        assert_eq!(throttle.retry_at(&name("alice"), addr, now), None);
        assert_eq!(
            throttle.retry_at(&name("bob"), addr, start + THROTTLE_WINDOW),
            None
        );
    }

    #[test]
    fn ten_failures_from_an_address_block_every_name_from_it() {
        let mut throttle = Throttle::default();
        let now = Instant::now();
        let addr: IpAddr = "192.0.2.1".parse().expect("an address");
        for i in 0..10 {
            throttle.failed(&name(&format!("user{i}")), addr, now);
        }
        assert!(throttle.retry_at(&name("fresh"), addr, now).is_some());
        let other: IpAddr = "192.0.2.2".parse().expect("an address");
        assert_eq!(throttle.retry_at(&name("fresh"), other, now), None);
    }

    #[tokio::test]
    async fn hashes_are_salted_argon2id_phc_strings_that_verify() {
        let hasher = Hasher::default();
        let password = || Password::parse("correct horse").expect("a password");
        let one = hasher.hash(password()).await.expect("a hash");
        let two = hasher.hash(password()).await.expect("a hash");
        assert!(one.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{one}");
        assert_ne!(one, two, "a random salt per hash");
        assert!(hasher.verify(password(), one.clone()).await);
        let wrong = Password::parse("wrong horse").expect("a password");
        assert!(!hasher.verify(wrong, one).await);
    }
}
