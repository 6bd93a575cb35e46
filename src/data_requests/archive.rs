//! The export archive: a tar with `manifest.json` (selector, counts, generated at), one
//! `<table>.jsonl` per table (a JSON object per row) and the content still held as
//! `inbound/<id>.eml` and `outbound/<id>.eml`.

use std::io::Write;

use serde_json::json;
use time::OffsetDateTime;

use super::{Selector, TableCount};
use crate::store::TableDump;

pub struct Archive<W: Write> {
    builder: tar::Builder<W>,
    emails: u64,
    mtime: u64,
}

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Archive<W> {
        Archive {
            builder: tar::Builder::new(out),
            emails: 0,
            mtime: 0,
        }
    }

    /// One file, 0600.
    pub fn add(&mut self, path: &str, bytes: &[u8]) -> std::io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(self.mtime);
        header.set_cksum();
        if path.ends_with(".eml") {
            self.emails += 1;
        }
        self.builder.append_data(&mut header, path, bytes)
    }

    /// The metadata tables as JSON Lines; their row counts.
    pub fn tables(&mut self, tables: &[TableDump]) -> std::io::Result<Vec<TableCount>> {
        let mut counts = Vec::new();
        for dump in tables {
            let mut lines = Vec::new();
            for row in &dump.rows {
                serde_json::to_writer(&mut lines, row)?;
                lines.push(b'\n');
            }
            self.add(&format!("{}.jsonl", dump.table), &lines)?;
            counts.push(TableCount {
                table: dump.table,
                rows: dump.rows.len() as u64,
            });
        }
        Ok(counts)
    }

    /// Writes the manifest and ends the archive.
    pub fn finish(
        mut self,
        selector: &Selector,
        counts: &[TableCount],
        now: OffsetDateTime,
    ) -> std::io::Result<W> {
        self.mtime = now.unix_timestamp().max(0) as u64;
        let manifest = json!({
            "selector": selector,
            "generated_at": now.format(&time::format_description::well_known::Rfc3339)
                .expect("UTC times format as RFC 3339"),
            "counts": counts,
            "eml_files": self.emails,
        });
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        self.add("manifest.json", &bytes)?;
        self.builder.into_inner()
    }
}
