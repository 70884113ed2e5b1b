//! [`Pacer`]: flood control by the generic cell rate algorithm (`--rate-limit N/s`).

use std::time::Duration;

use tokio::time::Instant;

/// Flood control by the generic cell rate algorithm: on average one line per `interval`,
/// with a burst of one second's worth allowed on top.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    burst: Duration,
    /// When the client's lines would be due if it had sent at exactly the allowed rate.
    due: Instant,
}

impl Pacer {
    /// Allows `per_second` lines a second on average, and a second's worth at once.
    pub fn new(per_second: u32) -> Self {
        Self {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst: Duration::from_secs(1),
            due: Instant::now(),
        }
    }

    /// Counts one line read at `now`; returns when the next may be read, if not at once.
    pub fn after_line(&mut self, now: Instant) -> Option<Instant> {
        self.due = self.due.max(now) + self.interval;
        let ready = self.due.checked_sub(self.burst)?;
        (ready > now).then_some(ready)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_allows_a_burst_then_the_rate() {
        let mut pacer = Pacer::new(10);
        let start = pacer.due;
        let waits: Vec<_> = (0..12).map(|_| pacer.after_line(start)).collect();
        assert!(
            waits[..10].iter().all(Option::is_none),
            "a second's worth passes at once"
        );
        assert_eq!(waits[10], Some(start + Duration::from_millis(100)));
        assert_eq!(waits[11], Some(start + Duration::from_millis(200)));
        let later = start + Duration::from_secs(10);
        assert_eq!(
            pacer.after_line(later),
            None,
            "an idle client earns its burst back"
        );
    }
}
