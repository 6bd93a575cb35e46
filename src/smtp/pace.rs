//! Time limits of one session beyond the RFC 5321 idle timeouts (issue 10 item 4): an
//! overall deadline, and a minimum rate for message content, so that a client dripping a
//! byte every few seconds cannot hold a slot for hours. No I/O: the shell asks
//! [`Pace::read_until`] how long its next read may wait and why, and reports what it read
//! ([`Pace::received`]) or that the wait ran out ([`Pace::woke`]).
//!
//! The rate is checked per window: while content is read, each window of
//! `PaceLimits::window` must bring at least `min_data_rate × window` bytes.

use std::time::{Duration, Instant};

use super::Reply;

/// The limits, from the listener's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PaceLimits {
    /// How long a whole session may last; `None` for no limit.
    pub session_deadline: Option<Duration>,
    /// Bytes per second message content must average over each window; 0 turns it off.
    pub min_data_rate: u64,
    /// The rate window, which is also the grace period before the first check.
    pub window: Duration,
}

/// Why a read stopped waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The RFC 5321 command or data timeout passed.
    Idle,
    /// The session deadline passed.
    Deadline,
    /// A rate window ended: check it.
    RateCheck,
}

/// Why a session is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Expiry {
    #[error("no input within the timeout")]
    Idle,
    #[error("the session deadline passed")]
    Deadline,
    #[error("message content arrived below the minimum rate")]
    TooSlow,
}

impl Expiry {
    /// The 421 written before closing.
    pub fn reply(self) -> Reply {
        match self {
            Expiry::Idle => Reply::TIMEOUT,
            Expiry::Deadline => Reply::SESSION_DEADLINE,
            Expiry::TooSlow => Reply::DATA_TOO_SLOW,
        }
    }
}

/// The clock of one session.
#[derive(Debug)]
pub struct Pace {
    limits: PaceLimits,
    deadline: Option<Instant>,
    /// The current rate window while content is read.
    window: Option<Window>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    bytes: u64,
}

impl Pace {
    pub fn new(limits: PaceLimits, now: Instant) -> Pace {
        Pace {
            deadline: limits.session_deadline.map(|limit| now + limit),
            limits,
            window: None,
        }
    }

    /// How long the next read may wait, and what it means when it runs out. `idle` is the
    /// command or data timeout; `reading_data` whether message content is being read
    /// (which opens a rate window, and closing one when it is not).
    pub fn read_until(
        &mut self,
        now: Instant,
        reading_data: bool,
        idle: Duration,
    ) -> (Instant, Wake) {
        let rated = reading_data && self.limits.min_data_rate > 0;
        match (rated, self.window) {
            (true, None) => {
                self.window = Some(Window {
                    start: now,
                    bytes: 0,
                })
            }
            (false, Some(_)) => self.window = None,
            _ => {}
        }
        let mut wake = (now + idle, Wake::Idle);
        if let Some(deadline) = self.deadline.filter(|&deadline| deadline <= wake.0) {
            wake = (deadline, Wake::Deadline);
        }
        if let Some(window) = self.window {
            let end = window.start + self.limits.window;
            if end < wake.0 {
                wake = (end, Wake::RateCheck);
            }
        }
        wake
    }

    /// Accounts `bytes` just read; `Err` when a rate window ended below the minimum.
    pub fn received(&mut self, now: Instant, bytes: usize) -> Result<(), Expiry> {
        if let Some(window) = &mut self.window {
            window.bytes += bytes as u64;
        }
        self.check_window(now)
    }

    /// The wait of [`Pace::read_until`] ran out: `Err` cuts the session, `Ok` reads on.
    pub fn woke(&mut self, now: Instant, wake: Wake) -> Result<(), Expiry> {
        match wake {
            Wake::Idle => Err(Expiry::Idle),
            Wake::Deadline => Err(Expiry::Deadline),
            Wake::RateCheck => self.check_window(now),
        }
    }

    /// At the end of a window: too few bytes cut the session, enough start the next one.
    fn check_window(&mut self, now: Instant) -> Result<(), Expiry> {
        if self.deadline.is_some_and(|deadline| now >= deadline) {
            return Err(Expiry::Deadline);
        }
        let Some(window) = &mut self.window else {
            return Ok(());
        };
        let elapsed = now.saturating_duration_since(window.start);
        if elapsed < self.limits.window {
            return Ok(());
        }
        let floor = self.limits.min_data_rate as f64 * elapsed.as_secs_f64();
        if (window.bytes as f64) < floor {
            return Err(Expiry::TooSlow);
        }
        *window = Window {
            start: now,
            bytes: 0,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn limits() -> PaceLimits {
        PaceLimits {
            session_deadline: Some(600 * SECOND),
            min_data_rate: 100,
            window: 10 * SECOND,
        }
    }

    #[test]
    fn a_drip_is_cut_at_the_end_of_the_first_window() {
        let start = Instant::now();
        let mut pace = Pace::new(limits(), start);
        let (until, wake) = pace.read_until(start, true, 300 * SECOND);
        assert_eq!((until, wake), (start + 10 * SECOND, Wake::RateCheck));
        for second in (5..10).step_by(5) {
            assert_eq!(pace.received(start + second * SECOND, 1), Ok(()));
        }
        assert_eq!(
            pace.woke(start + 10 * SECOND, Wake::RateCheck),
            Err(Expiry::TooSlow)
        );
    }

    #[test]
    fn a_steady_sender_rolls_from_window_to_window() {
        let start = Instant::now();
        let mut pace = Pace::new(limits(), start);
        pace.read_until(start, true, 300 * SECOND);
        for second in 1..=35 {
            assert_eq!(
                pace.received(start + second * SECOND, 150),
                Ok(()),
                "{second}"
            );
        }
        // Commands between messages are not rated; the next message gets a fresh window.
        let (_, wake) = pace.read_until(start + 36 * SECOND, false, 300 * SECOND);
        assert_eq!(wake, Wake::Idle);
        let (until, _) = pace.read_until(start + 40 * SECOND, true, 300 * SECOND);
        assert_eq!(until, start + 50 * SECOND);
    }

    #[test]
    fn the_deadline_ends_any_session() {
        let start = Instant::now();
        let mut pace = Pace::new(limits(), start);
        let (until, wake) = pace.read_until(start + 500 * SECOND, false, 300 * SECOND);
        assert_eq!((until, wake), (start + 600 * SECOND, Wake::Deadline));
        assert_eq!(pace.woke(until, wake), Err(Expiry::Deadline));
        assert_eq!(pace.woke(until, Wake::Idle), Err(Expiry::Idle));
        assert_eq!(Expiry::TooSlow.reply().enhanced, "4.4.2");
    }

    #[test]
    fn without_limits_only_the_idle_timeout_applies() {
        let start = Instant::now();
        let mut pace = Pace::new(PaceLimits::default(), start);
        let (until, wake) = pace.read_until(start, true, 300 * SECOND);
        assert_eq!((until, wake), (start + 300 * SECOND, Wake::Idle));
        assert_eq!(pace.received(start + 1000 * SECOND, 1), Ok(()));
    }
}
