//! Waiting for what the app does in the background (a webhook POST, a delivery, a
//! callback): poll a check until it holds, with one deadline for every test. The deadline
//! only bounds how long a failing test waits; a check that never holds still fails.
//!
//! Not for asserting that something does *not* happen: waiting cannot tell "never" from
//! "not yet". Run one pass of the background task instead (`TestApp::run_events_once`,
//! `TestApp::run_worker_once`) and assert on what it did.

use std::time::{Duration, Instant};

/// How long a check may take to hold, generous for a loaded machine.
pub const WAIT: Duration = Duration::from_secs(8);
/// How often it is asked.
const POLL: Duration = Duration::from_millis(25);

/// Polls `check` until it holds; panics naming `what` after [`WAIT`].
pub async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    eventually_ok(what, async || match check().await {
        true => Ok(()),
        false => Err("not yet".to_string()),
    })
    .await
}

/// Polls `check` until it gives `Ok`, whose value is returned; panics after [`WAIT`] naming
/// `what` and the last `Err` (what was seen instead).
pub async fn eventually_ok<T, F>(what: &str, mut check: F) -> T
where
    F: AsyncFnMut() -> Result<T, String>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out waiting for {what}: {seen}")
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}
