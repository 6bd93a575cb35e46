//! The retention sweeper: every five minutes on the app clock, deletes what the
//! `[retention]` policy no longer keeps (`Store::sweep`) and the local stores' files whose
//! links have expired (`objects::local::sweep`), and logs what went.

use std::time::Duration;

use tracing::{info, warn};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::retention::Retention;
use crate::shutdown::Shutdown;
use crate::store::{Store, StoreError, Swept};

/// Between two sweeps.
const EVERY: Duration = Duration::from_secs(5 * 60);

/// What a sweep needs: cheap to clone.
#[derive(Clone)]
pub(super) struct Sweeper {
    pub store: Store,
    pub retention: Retention,
    pub clock: Clock,
    /// Counts the sweeps and the rows they deleted.
    pub metrics: Metrics,
    /// The local stores, whose files go when their links expire.
    pub objects: Option<crate::objects::Objects>,
}

impl Sweeper {
    /// One sweep as of the clock's now, logged: what it deleted.
    pub async fn run_once(&self) -> Result<Swept, StoreError> {
        let swept = self
            .store
            .sweep(self.retention.cutoffs(&self.clock))
            .await?;
        self.metrics.sweep(swept.total() as u64);
        if let Some(objects) = &self.objects {
            let files = objects.sweep_files().await;
            if files > 0 {
                info!(files, "retention: deleted stored files whose links expired");
            }
        }
        if swept.total() > 0 {
            info!(
                inbound_messages = swept.inbound_messages,
                inbound_content = swept.inbound_content,
                outbound_messages = swept.outbound_messages,
                outbound_content = swept.outbound_content,
                audit_entries = swept.audit_entries,
                tracking_events_anonymised = swept.tracking_events,
                "retention: deleted expired data"
            );
        }
        Ok(swept)
    }

    /// Sweeps at start and then every five minutes until shutdown. A manual clock (tests)
    /// moves only when a test says, so the test runs the sweeps (`Passes::retention`) and no
    /// loop races it.
    pub async fn run(self, shutdown: Shutdown) {
        if self.clock.is_manual() {
            return;
        }
        loop {
            if let Err(error) = self.run_once().await {
                warn!(%error, "retention: the sweep failed; trying again in five minutes");
            }
            tokio::select! {
                _ = shutdown.triggered() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    }
}
