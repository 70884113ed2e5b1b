//! [`Keepalive`]: telling a live connection from a dead one (protocol v3 `/ping`). A
//! connection that breaks without a FIN (a laptop lid closed, a NAT that forgot us) looks
//! open to TCP for many minutes. So when the client has sent nothing for [`PING_IDLE`], it
//! sends `/ping`; if nothing at all comes back within [`PONG_TIMEOUT`], the connection is
//! taken for dead and replaced like any lost one. Pinging also keeps us within the
//! server's `--idle-timeout` (180 s by default), which applies once a client has pinged.

use std::time::{Duration, Instant};

/// Silence on our side after which the client pings.
pub const PING_IDLE: Duration = Duration::from_secs(60);
/// How long a ping may go unanswered, with nothing else heard either, before the
/// connection is taken for dead. Generous: a busy server answers late, not never.
pub const PONG_TIMEOUT: Duration = Duration::from_secs(30);

/// What the keepalive wants done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Send `/ping`.
    Ping,
    /// The connection is dead: replace it.
    Dead,
}

/// The timers of one connection; idle (never pings) while there is none.
#[derive(Debug, Default)]
pub struct Keepalive {
    /// While connected: when we last sent a line, and when we last heard one.
    watch: Option<Watch>,
}

#[derive(Debug)]
struct Watch {
    sent: Instant,
    heard: Instant,
    /// A ping waiting for its answer, since then.
    ping: Option<Instant>,
    /// Dead was reported once already.
    dead: bool,
}

impl Keepalive {
    /// A connection was made (logged in) at `now`.
    pub fn start(&mut self, now: Instant) {
        self.watch = Some(Watch {
            sent: now,
            heard: now,
            ping: None,
            dead: false,
        });
    }

    /// The connection is gone: nothing to watch.
    pub fn stop(&mut self) {
        self.watch = None;
    }

    /// We sent a line.
    pub fn sent(&mut self, now: Instant) {
        if let Some(watch) = &mut self.watch {
            watch.sent = now;
        }
    }

    /// The server sent a line: it is alive, whatever it was.
    pub fn heard(&mut self, now: Instant) {
        if let Some(watch) = &mut self.watch {
            watch.heard = now;
        }
    }

    /// A `pong`: the ping is answered.
    pub fn pong(&mut self) {
        if let Some(watch) = &mut self.watch {
            watch.ping = None;
        }
    }

    /// A second passed: what to do now, if anything. [`Beat::Dead`] comes once.
    pub fn tick(&mut self, now: Instant) -> Option<Beat> {
        let watch = self.watch.as_mut().filter(|w| !w.dead)?;
        match watch.ping {
            Some(ping) if now.saturating_duration_since(ping.max(watch.heard)) >= PONG_TIMEOUT => {
                watch.dead = true;
                Some(Beat::Dead)
            }
            Some(_) => None,
            None if now.saturating_duration_since(watch.sent) >= PING_IDLE => {
                watch.ping = Some(now);
                Some(Beat::Ping)
            }
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn pings_after_a_minute_of_our_silence_and_never_while_disconnected() {
        let t0 = Instant::now();
        let mut keepalive = Keepalive::default();
        assert_eq!(keepalive.tick(t0 + PING_IDLE * 10), None, "not connected");
        keepalive.start(t0);
        assert_eq!(keepalive.tick(t0 + PING_IDLE - SECOND), None);
        keepalive.sent(t0 + 30 * SECOND);
        assert_eq!(keepalive.tick(t0 + PING_IDLE), None, "we spoke meanwhile");
        // Hearing the server does not count: the server's idle timeout is about us.
        keepalive.heard(t0 + 80 * SECOND);
        assert_eq!(keepalive.tick(t0 + 90 * SECOND), Some(Beat::Ping));
        assert_eq!(keepalive.tick(t0 + 91 * SECOND), None, "one ping at a time");
        keepalive.pong();
        keepalive.sent(t0 + 90 * SECOND);
        assert_eq!(keepalive.tick(t0 + 150 * SECOND), Some(Beat::Ping));
        keepalive.stop();
        assert_eq!(keepalive.tick(t0 + 1000 * SECOND), None);
    }

    #[test]
    fn an_unanswered_ping_is_a_dead_connection_unless_something_else_came() {
        let t0 = Instant::now();
        let mut keepalive = Keepalive::default();
        keepalive.start(t0);
        let ping = t0 + PING_IDLE;
        assert_eq!(keepalive.tick(ping), Some(Beat::Ping));
        // A line that was on its way proves the server is there; the pong may follow.
        keepalive.heard(ping + 20 * SECOND);
        assert_eq!(keepalive.tick(ping + PONG_TIMEOUT), None);
        let late = ping + 20 * SECOND + PONG_TIMEOUT;
        assert_eq!(keepalive.tick(late - SECOND), None);
        assert_eq!(keepalive.tick(late), Some(Beat::Dead));
        assert_eq!(keepalive.tick(late + SECOND), None, "said once");
        keepalive.start(late + 2 * SECOND);
        assert_eq!(keepalive.tick(late + 3 * SECOND), None, "a new connection");
    }
}
