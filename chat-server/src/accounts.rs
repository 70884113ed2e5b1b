//! Accounts: who owns which name ([`Accounts`], kept by the broker), the failed-login
//! throttle, and [`Hasher`], which runs Argon2id off the async runtime on a small pool
//! of low-priority threads of its own.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use chat_proto::{Password, UserName};
use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;
use tracing::warn;

/// Argon2id memory cost in KiB: OWASP's minimum (19 MiB with 2 passes).
const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// Argon2id passes.
const ARGON2_PASSES: u32 = 2;
/// Hashes computed at once, whatever the number of logins: a flood of wrong passwords
/// queues here instead of taking every core (and 19 MiB each).
pub const HASHING_THREADS: usize = 2;
/// Hashes waiting for a thread before a login waits to queue one.
const HASHING_QUEUE_LEN: usize = 64;

/// Failed logins for one name within [`THROTTLE_WINDOW`] before more are refused.
pub const MAX_FAILURES_PER_NAME: usize = 3;
/// Failed logins from one address within [`THROTTLE_WINDOW`] before more are refused.
pub const MAX_FAILURES_PER_ADDR: usize = 10;
/// How long a failed login counts.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(60);
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
    /// Suspended by a server operator: it may not log in.
    pub suspended: bool,
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

    /// The account whose folded name is `folded`.
    pub fn get_folded(&self, folded: &str) -> Option<&Account> {
        self.by_folded.get(folded)
    }

    /// Whether `name` is registered.
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

/// The refusal of a login that must wait `wait`.
pub fn too_many_attempts(wait: Duration) -> String {
    format!(
        "too many login attempts; retry in {} s",
        wait.as_secs_f64().ceil()
    )
}

impl Throttle {
    /// Counts an attempt of `name` from `addr` if it may be made now (a password check
    /// counts as failed until it passes: otherwise a burst of attempts would all start
    /// before the first one failed); otherwise how long it must wait.
    pub fn attempt(&mut self, name: &UserName, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        match self.retry_at(name, addr, now) {
            Some(at) => Err(at - now),
            None => {
                self.failed(name, addr, now);
                Ok(())
            }
        }
    }

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

    /// Takes back one failure of `name` from `addr`: the attempt counted when its check
    /// began turned out to be the right password.
    pub fn forgive(&mut self, name: &UserName, addr: IpAddr) {
        if let Some(times) = self.by_name.get_mut(&name.folded()) {
            times.pop_back();
        }
        if let Some(times) = self.by_addr.get_mut(&addr) {
            times.pop_back();
        }
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

type Job = Box<dyn FnOnce() + Send>;

/// Runs Argon2id on [`HASHING_THREADS`] threads of its own, at the lowest scheduling
/// priority (nice 19): a burst of logins, or of wrong passwords, takes CPU time chat does
/// not need, never the time it does. (The runtime's blocking pool would do the first but
/// not the second, and its threads are shared with the store writer.) The threads end
/// when the last `Hasher` is dropped.
#[derive(Debug, Clone)]
pub struct Hasher {
    jobs: mpsc::SyncSender<Job>,
    /// One per job queued or running, so the queue is never full when a job is sent:
    /// a login waits for a permit here, on the runtime, without holding a thread.
    permits: Arc<Semaphore>,
}

impl Default for Hasher {
    fn default() -> Self {
        // As many slots as permits: a job whose permit is free may still sit in the
        // queue for a moment after its thread finished the previous one.
        let in_flight = HASHING_THREADS + HASHING_QUEUE_LEN;
        let (jobs, queue) = mpsc::sync_channel::<Job>(in_flight);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..HASHING_THREADS {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || {
                    let lowered = thread_priority::set_current_thread_priority(
                        thread_priority::ThreadPriority::Min,
                    );
                    if let Err(e) = lowered {
                        warn!(error = ?e, "could not lower the hashing thread's priority");
                    }
                    loop {
                        let job = match queue.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                warn!(error = %e, "could not start a hashing thread");
            }
        }
        let permits = Arc::new(Semaphore::new(in_flight));
        Self { jobs, permits }
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
        let permit = self.permits.clone().acquire_owned().await?;
        let (done, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = done.send(work());
            drop(permit);
        });
        self.jobs
            .try_send(job)
            .map_err(|_| anyhow::anyhow!("the hashing threads are gone"))?;
        result.await?
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn more_jobs_than_threads_and_queue_all_complete() {
        let hasher = Hasher::default();
        let jobs: Vec<_> = (0..300)
            .map(|i| {
                let hasher = hasher.clone();
                tokio::spawn(async move { hasher.run(move || Ok(i)).await })
            })
            .collect();
        for (i, job) in jobs.into_iter().enumerate() {
            assert_eq!(job.await.expect("a job").expect("it ran"), i);
        }
    }
}
