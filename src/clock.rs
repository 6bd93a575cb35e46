//! The app's notion of "now": the system clock, or a manual clock that tests move by hand,
//! so session expiry, throttling windows, TOTP drift, queue retries and event backoff are
//! tested without sleeping. Accounts, outbound and the CLI read time through it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use time::OffsetDateTime;

/// Cheap to clone; clones of a manual clock share its time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock standing at `start` (whole seconds) until moved with [`Clock::advance`].
    pub fn manual(start: OffsetDateTime) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(start.unix_timestamp()))),
        }
    }

    /// Whether tests move this clock ([`Clock::manual`]).
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Unix seconds.
    pub fn unix(&self) -> i64 {
        match &self.manual {
            Some(at) => at.load(Ordering::SeqCst),
            None => OffsetDateTime::now_utc().unix_timestamp(),
        }
    }

    pub fn now(&self) -> OffsetDateTime {
        from_unix(self.unix())
    }

    /// Moves a manual clock forward.
    ///
    /// # Panics
    ///
    /// On the system clock, which only time moves.
    pub fn advance(&self, by: Duration) {
        let at = self
            .manual
            .as_ref()
            .expect("only a manual clock can be advanced");
        at.fetch_add(by.as_secs() as i64, Ordering::SeqCst);
    }
}

/// Unix seconds as stored → a UTC time (the epoch for nonsense values).
pub fn from_unix(seconds: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Unix seconds → `2027-03-01 12:00 UTC`, for people reading a log line or a page.
pub fn utc_minutes(seconds: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    from_unix(seconds)
        .format(&format)
        .unwrap_or_else(|_| seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_move_only_when_told_and_share_their_time() {
        let start = time::macros::datetime!(2026-11-28 09:00 UTC);
        let clock = Clock::manual(start);
        let copy = clock.clone();
        assert_eq!(copy.now(), start);
        assert!(clock.is_manual() && !Clock::system().is_manual());
        clock.advance(Duration::from_secs(90));
        assert_eq!(copy.unix(), start.unix_timestamp() + 90);
        let system = Clock::system().unix();
        assert!((system - OffsetDateTime::now_utc().unix_timestamp()).abs() <= 1);
    }
}
