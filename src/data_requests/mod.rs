//! Data-subject requests (issue 11): everything Postern holds about a person, a domain or a
//! managed inbound address, exported as one archive or purged in one transaction. The CLI
//! (`postern export`, `postern purge`) and the admin API and page share this service.
//!
//! `selector` parses what was asked for; `archive` writes the tar. A purge leaves an audit
//! row with the SHA-256 of the selector and the counts, never the address itself.

pub mod archive;
pub mod selector;

use std::io::Write;

use serde::Serialize;

use crate::clock::Clock;
use crate::store::{AuditEntry, Counts, PurgeScope, Store, StoreError};
pub use selector::{Selector, SelectorError};

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the archive: {0}")]
    Write(#[from] std::io::Error),
}

/// Rows per table, as the API and the manifest show them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableCount {
    pub table: &'static str,
    pub rows: u64,
}

pub fn table_counts(counts: &Counts) -> Vec<TableCount> {
    counts
        .iter()
        .map(|(table, rows)| TableCount { table, rows: *rows })
        .collect()
}

/// The audit action of a purge.
pub const PURGE_ACTION: &str = "data_purged";

#[derive(Clone)]
pub struct DataRequests {
    store: Store,
    clock: Clock,
}

impl DataRequests {
    pub fn new(store: Store, clock: Clock) -> DataRequests {
        DataRequests { store, clock }
    }

    /// Writes the subject's archive to `out`; the counts of what it holds.
    pub async fn export(
        &self,
        selector: &Selector,
        out: impl Write,
    ) -> Result<Vec<TableCount>, RequestError> {
        let dump = self.store.dump_subject(selector.subject()).await?;
        let mut archive = archive::Archive::new(out);
        for id in &dump.inbound_ids {
            if let Some(raw) = self.store.get_inbound_raw(*id).await? {
                archive.add(&format!("inbound/{id}.eml"), &raw)?;
            }
        }
        for id in &dump.outbound_ids {
            if let Some(raw) = self.store.outbound_content(*id).await? {
                archive.add(&format!("outbound/{id}.eml"), &raw)?;
            }
        }
        let counts = archive.tables(&dump.tables)?;
        archive.finish(selector, &counts, self.clock.now())?;
        Ok(counts)
    }

    /// What a purge with `scope` would delete, deleting nothing.
    pub async fn count(
        &self,
        selector: &Selector,
        scope: PurgeScope,
    ) -> Result<Vec<TableCount>, RequestError> {
        let counts = self.store.count_subject(selector.subject(), scope).await?;
        Ok(table_counts(&counts))
    }

    /// Deletes the subject's rows and records the request (selector digest, counts, `actor`)
    /// in the audit log, in the same transaction.
    pub async fn purge(
        &self,
        selector: &Selector,
        scope: PurgeScope,
        actor: String,
    ) -> Result<Vec<TableCount>, RequestError> {
        let at = self.clock.unix();
        let digest = selector.digest();
        let counts = self
            .store
            .purge_subject(selector.subject(), scope, move |counts| AuditEntry {
                at,
                actor,
                action: PURGE_ACTION.into(),
                subject: Some(format!("selector sha256:{digest}")),
                ip: None,
                detail: Some(summary(counts)),
            })
            .await?;
        let counts = table_counts(&counts);
        tracing::info!(
            rows = counts.iter().map(|c| c.rows).sum::<u64>(),
            "purged a data subject"
        );
        Ok(counts)
    }
}

/// `table=rows` for the non-empty tables.
fn summary(counts: &Counts) -> String {
    let parts: Vec<String> = counts
        .iter()
        .filter(|(_, rows)| *rows > 0)
        .map(|(table, rows)| format!("{table}={rows}"))
        .collect();
    match parts.is_empty() {
        true => "nothing matched".into(),
        false => parts.join(" "),
    }
}
