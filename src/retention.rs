//! The retention policy (`[retention]`, issue 11): how long each kind of data is kept, and
//! the cutoffs that follow from the app clock's "now". No I/O: `store::retention` deletes
//! what is past them, and the sweeper (`app::sweeper`) runs that every five minutes.
//!
//! A row is kept while it is at most the configured number of days old and deleted after;
//! outbound mail the queue still needs is never deleted, whatever its age.

use crate::clock::Clock;

const DAY_SECS: i64 = 86_400;

/// How many messages of each direction dev mode keeps, content and all (a local capture
/// tool's memory), instead of `content_days`.
pub const DEV_NEWEST: u32 = 1_000;

/// The retention in force: `[retention]` as validated, or dev mode's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Rows of received mail and their webhook attempts.
    pub inbound_metadata_days: u32,
    /// Rows of sent mail, their recipients, attempts and events.
    pub outbound_metadata_days: u32,
    /// The raw messages themselves, both directions.
    pub content: ContentRule,
    pub audit_days: u32,
    /// The IP address and user agent recorded with opens and clicks.
    pub tracking_days: u32,
}

/// How long the raw content of messages is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentRule {
    /// Deleted this many days after the message (`content_days`).
    Days(u32),
    /// Dev mode: only the newest this many messages of each direction are kept at all.
    Newest(u32),
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            inbound_metadata_days: 60,
            outbound_metadata_days: 60,
            content: ContentRule::Days(7),
            audit_days: 365,
            tracking_days: 30,
        }
    }
}

/// The Unix second before which each kind of data is deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    pub inbound_metadata: i64,
    pub outbound_metadata: i64,
    pub content: ContentCutoff,
    pub audit: i64,
    pub tracking: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentCutoff {
    /// Content of messages older than this Unix second.
    Before(i64),
    /// Whole messages beyond the newest this many of each direction.
    KeepNewest(u32),
}

impl Retention {
    /// Dev mode's retention: these days for metadata, the newest [`DEV_NEWEST`] messages.
    pub fn for_dev(self) -> Retention {
        Retention {
            content: ContentRule::Newest(DEV_NEWEST),
            ..self
        }
    }

    /// The cutoffs as of the clock's now.
    pub fn cutoffs(&self, clock: &Clock) -> Cutoffs {
        self.cutoffs_at(clock.unix())
    }

    fn cutoffs_at(&self, now: i64) -> Cutoffs {
        let before = |days: u32| now - i64::from(days) * DAY_SECS;
        Cutoffs {
            inbound_metadata: before(self.inbound_metadata_days),
            outbound_metadata: before(self.outbound_metadata_days),
            content: match self.content {
                ContentRule::Days(days) => ContentCutoff::Before(before(days)),
                ContentRule::Newest(count) => ContentCutoff::KeepNewest(count),
            },
            audit: before(self.audit_days),
            tracking: before(self.tracking_days),
        }
    }

    /// The note above a message list: how long its rows and content are kept.
    pub fn list_note(&self, metadata_days: u32) -> String {
        match self.content {
            ContentRule::Days(days) => format!(
                "Kept {}; message content {}.",
                days_text(metadata_days),
                days_text(days)
            ),
            ContentRule::Newest(count) => format!(
                "Dev mode keeps the newest {} messages (and none past {}).",
                thousands(count),
                days_text(metadata_days)
            ),
        }
    }

    /// `content_days`, as the settings page shows it.
    pub fn content_text(&self) -> String {
        match self.content {
            ContentRule::Days(days) => days_text(days),
            ContentRule::Newest(count) => {
                format!("newest {} messages (dev mode)", thousands(count))
            }
        }
    }
}

impl Retention {
    /// One line for `postern check`: every setting, in the config file's order.
    pub fn summary(&self) -> String {
        format!(
            "received mail {}, sent mail {}, content {}, audit log {}, IP and user agent of opens and clicks {}",
            days_text(self.inbound_metadata_days),
            days_text(self.outbound_metadata_days),
            self.content_text(),
            days_text(self.audit_days),
            days_text(self.tracking_days),
        )
    }
}

/// "1 day", "60 days".
pub fn days_text(days: u32) -> String {
    match days {
        1 => "1 day".into(),
        days => format!("{days} days"),
    }
}

/// 1000 → "1,000".
fn thousands(count: u32) -> String {
    let digits = count.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_844_238;

    #[test]
    fn cutoffs_are_the_configured_days_before_now() {
        let cutoffs = Retention::default().cutoffs_at(NOW);
        assert_eq!(cutoffs.inbound_metadata, NOW - 60 * DAY_SECS);
        assert_eq!(cutoffs.outbound_metadata, NOW - 60 * DAY_SECS);
        assert_eq!(cutoffs.content, ContentCutoff::Before(NOW - 7 * DAY_SECS));
        assert_eq!(cutoffs.audit, NOW - 365 * DAY_SECS);
        assert_eq!(cutoffs.tracking, NOW - 30 * DAY_SECS);
        let custom = Retention {
            inbound_metadata_days: 1,
            outbound_metadata_days: 2,
            content: ContentRule::Days(3),
            audit_days: 4,
            tracking_days: 5,
        };
        let cutoffs = custom.cutoffs_at(NOW);
        let days = [
            cutoffs.inbound_metadata,
            cutoffs.outbound_metadata,
            cutoffs.audit,
            cutoffs.tracking,
        ]
        .map(|at| (NOW - at) / DAY_SECS);
        assert_eq!(days, [1, 2, 4, 5]);
        assert_eq!(cutoffs.content, ContentCutoff::Before(NOW - 3 * DAY_SECS));
    }

    #[test]
    fn cutoffs_follow_the_clock() {
        let clock = Clock::manual(time::macros::datetime!(2026-11-28 09:00 UTC));
        let before = Retention::default().cutoffs(&clock);
        clock.advance(std::time::Duration::from_secs(90));
        let after = Retention::default().cutoffs(&clock);
        assert_eq!(after.audit - before.audit, 90);
        assert_eq!(before.audit, clock.unix() - 90 - 365 * DAY_SECS);
    }

    #[test]
    fn dev_keeps_the_newest_thousand_instead_of_content_days() {
        let dev = Retention::default().for_dev();
        assert_eq!(dev.content, ContentRule::Newest(1_000));
        assert_eq!(
            dev.cutoffs_at(NOW).content,
            ContentCutoff::KeepNewest(1_000)
        );
        assert_eq!(dev.inbound_metadata_days, 60);
        assert_eq!(
            dev.list_note(60),
            "Dev mode keeps the newest 1,000 messages (and none past 60 days)."
        );
        assert_eq!(dev.content_text(), "newest 1,000 messages (dev mode)");
    }

    #[test]
    fn notes_say_the_days() {
        let retention = Retention::default();
        assert_eq!(
            retention.list_note(60),
            "Kept 60 days; message content 7 days."
        );
        assert_eq!(days_text(1), "1 day");
        assert_eq!(
            retention.summary(),
            "received mail 60 days, sent mail 60 days, content 7 days, audit log 365 days, \
             IP and user agent of opens and clicks 30 days"
        );
        assert_eq!(
            [1, 12, 999, 1_000, 36_500, 1_234_567].map(thousands),
            ["1", "12", "999", "1,000", "36,500", "1,234,567"]
        );
    }
}
