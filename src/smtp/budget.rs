//! The global budget for message content held in memory (issue 10 item 9).
//!
//! Every session buffers the content of its message until the handler has taken it, so
//! many concurrent large messages could exhaust RAM. Each session reserves bytes from one
//! shared [`MemoryBudget`] as its buffer grows (in whole buffer allocations, so the count
//! follows what is really allocated); when the budget is spent the message is refused with
//! `452 4.3.1` and its remaining content is read and discarded. A [`Reservation`] gives its
//! bytes back when it is dropped: when the handler is done with the message, or when the
//! session ends. Content spooled to disk ([`super::spool`]) holds only its in-memory part
//! while it arrives; reading it back for the handler waits for room
//! ([`MemoryBudget::wait_for`]) instead of refusing. No I/O.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The first allocation of a content buffer; buffers then double up to the size limit.
const FIRST_ALLOCATION: usize = 16 * 1024;

/// Bytes of message content all sessions together may hold.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    used: AtomicUsize,
    /// Woken whenever bytes are given back ([`MemoryBudget::wait_for`]).
    freed: tokio::sync::Notify,
}

impl MemoryBudget {
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        Arc::new(MemoryBudget {
            limit,
            used: AtomicUsize::new(0),
            freed: tokio::sync::Notify::new(),
        })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Whether a new message of at most `max_size` bytes could start buffering: room for
    /// its first allocation.
    pub fn can_start(&self, max_size: usize) -> bool {
        self.used() + FIRST_ALLOCATION.min(max_size) <= self.limit
    }

    /// Takes `bytes` if they fit, all or nothing.
    fn take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
        if bytes > 0 {
            self.freed.notify_waiters();
        }
    }

    /// Takes what handling a message of `size` octets read back into memory costs (a
    /// spooled message for its handler, a queued one for the queue worker), waiting until
    /// other messages give enough back; `None` when that did not happen before `deadline`.
    pub async fn wait_to_handle(
        self: &Arc<MemoryBudget>,
        size: usize,
        deadline: tokio::time::Instant,
    ) -> Option<Reservation> {
        self.wait_for(self.handling_cost(size), deadline).await
    }

    /// What handling a message of `size` octets is counted as: the message and, at the
    /// peak, its decoded attachments or its encoded payload beside it (about twice its size:
    /// `bench/big_message.sh`), never more than the whole budget, so that any message the
    /// size limit lets in can be handled (alone).
    fn handling_cost(&self, size: usize) -> usize {
        size.saturating_mul(2).min(self.limit)
    }

    /// Takes `bytes`, waiting until other messages give enough back; `None` when that did
    /// not happen before `deadline`, or never can (more than the whole budget).
    async fn wait_for(
        self: &Arc<MemoryBudget>,
        bytes: usize,
        deadline: tokio::time::Instant,
    ) -> Option<Reservation> {
        if bytes > self.limit {
            return None;
        }
        loop {
            // Registered before the check, so a give-back between the two is not missed.
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.take(bytes) {
                return Some(Reservation {
                    budget: Some(self.clone()),
                    held: bytes,
                });
            }
            tokio::time::timeout_at(deadline, freed).await.ok()?;
        }
    }
}

/// One session's share of the budget; unlimited without a budget (unit tests, fuzzing).
#[derive(Debug, Default)]
pub struct Reservation {
    budget: Option<Arc<MemoryBudget>>,
    held: usize,
}

impl Reservation {
    pub fn new(budget: Option<Arc<MemoryBudget>>) -> Reservation {
        Reservation { budget, held: 0 }
    }

    /// Bytes held by this reservation.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Makes room in `buffer` for `additional` more bytes (never beyond `max` in all),
    /// reserving what a larger allocation costs first. False when the budget has no room:
    /// the buffer is then left as it is.
    pub fn grow(&mut self, buffer: &mut Vec<u8>, additional: usize, max: usize) -> bool {
        let needed = buffer.len() + additional;
        if needed <= buffer.capacity() {
            return true;
        }
        let capacity = needed
            .max(buffer.capacity() * 2)
            .max(FIRST_ALLOCATION)
            .min(max.max(needed));
        let extra = capacity.saturating_sub(self.held);
        if let Some(budget) = &self.budget
            && !budget.take(extra)
        {
            return false;
        }
        self.held += extra;
        buffer.reserve_exact(capacity - buffer.len());
        true
    }

    /// Gives everything back (the buffer was dropped or handed on and handled).
    pub fn release(&mut self) {
        if let Some(budget) = &self.budget {
            budget.give_back(self.held);
        }
        self.held = 0;
    }

    /// A reservation of the same budget holding nothing yet.
    pub fn fresh(&self) -> Reservation {
        Reservation::new(self.budget.clone())
    }

    /// Moves the bytes held to a new reservation, leaving this one empty (the content left
    /// the receiver and is held until its message is handled).
    pub fn take(&mut self) -> Reservation {
        let held = std::mem::take(&mut self.held);
        Reservation {
            budget: self.budget.clone(),
            held,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_back_waits_for_room_and_gives_up_at_its_deadline() {
        let budget = MemoryBudget::new(100);
        let soon = || tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        assert!(budget.wait_for(101, soon()).await.is_none(), "never fits");
        let first = budget.wait_for(60, soon()).await.expect("room");
        assert!(budget.wait_for(60, soon()).await.is_none(), "timed out");
        let waiter = tokio::spawn({
            let budget = budget.clone();
            let later = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            async move { budget.wait_for(60, later).await.map(|r| r.held()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        assert!(!waiter.is_finished(), "waits while the budget is spent");
        drop(first);
        assert_eq!(waiter.await.unwrap(), Some(60));
        assert_eq!(
            budget.used(),
            0,
            "the waiter's reservation was dropped with it"
        );
    }

    #[tokio::test]
    async fn handling_counts_twice_the_message_but_never_more_than_the_budget() {
        let budget = MemoryBudget::new(100);
        assert_eq!(budget.handling_cost(30), 60);
        // A message over half the budget is still handled, alone.
        assert_eq!(budget.handling_cost(70), 100);
        let soon = tokio::time::Instant::now() + std::time::Duration::from_millis(100);
        let held = budget.wait_to_handle(70, soon).await;
        assert_eq!(held.map(|r| r.held()), Some(100));
        assert_eq!(budget.handling_cost(usize::MAX), 100, "no overflow");
    }

    #[test]
    fn reservations_follow_allocations_and_come_back_on_drop() {
        let budget = MemoryBudget::new(100 * 1024);
        let mut first = Reservation::new(Some(budget.clone()));
        let mut buffer = Vec::new();
        assert!(first.grow(&mut buffer, 1, 1 << 20));
        assert_eq!(first.held(), FIRST_ALLOCATION);
        buffer.resize(FIRST_ALLOCATION, 0);
        assert!(first.grow(&mut buffer, 1, 1 << 20));
        assert_eq!(budget.used(), 2 * FIRST_ALLOCATION);
        assert!(buffer.capacity() >= 2 * FIRST_ALLOCATION);

        // A second session gets what is left, and no more.
        let mut second = Reservation::new(Some(budget.clone()));
        let mut other = Vec::new();
        assert!(second.grow(&mut other, 60 * 1024, 60 * 1024));
        other.resize(60 * 1024, 0);
        assert!(!second.grow(&mut other, 20 * 1024, 1 << 20));
        assert_eq!(budget.used(), 92 * 1024);
        assert!(!budget.can_start(1 << 20));
        assert!(budget.can_start(8 * 1024));

        drop(first);
        assert_eq!(budget.used(), 60 * 1024);
        let mut moved = second.take();
        drop(second);
        assert_eq!(budget.used(), 60 * 1024);
        moved.release();
        assert_eq!(budget.used(), 0);
        assert!(budget.can_start(1 << 20));
    }

    #[test]
    fn growth_stops_at_the_size_limit() {
        let mut unlimited = Reservation::default();
        let mut buffer = vec![0; 40 * 1024];
        assert!(unlimited.grow(&mut buffer, 1, 50 * 1024));
        assert_eq!(buffer.capacity(), 50 * 1024);
    }
}
