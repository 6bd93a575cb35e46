//! Data-subject requests on the web, admins only: `api` (`POST /api/exports`,
//! `POST /api/purges`) and `page` (`/data-requests`, the form that counts, downloads and
//! purges). Both call `data_requests::DataRequests` as `postern export` and `postern purge`
//! do, so the archive, the counts and the purge's audit row (the actor: the user or API key)
//! are the same whoever asks.
//!
//! The archive is streamed: the export writes it in chunks that the response body sends
//! as they come, never to a file, so no plaintext copy of anyone's mail touches the disk.
//! The status is sent first; a failure half-way aborts the body (the client sees a broken
//! download, never a short archive that looks whole) and is logged. The chunks wait in
//! memory when the client reads slower than the export writes (the export's writer cannot
//! wait), so a slow client costs at most the archive once, never twice.

mod api;
mod page;

use std::io::{self, Write};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

use crate::data_requests::{DataRequests, RequestError, Selector, TableCount};
use crate::store::PurgeScope;
use crate::web::AppState;
use crate::web::auth::Principal;

/// Behind the gate's `Access::Dashboard` (which refuses viewers' writes).
pub(super) fn routes() -> Router<AppState> {
    Router::new().merge(api::routes()).merge(page::routes())
}

/// The bytes the export writes before the body gets them.
const CHUNK: usize = 64 * 1024;

/// `{"dry_run": …, "counts": {"table": rows, …}}`: the JSON answer of both endpoints.
fn counts_json(dry_run: bool, counts: &[TableCount]) -> Value {
    let counts: Map<String, Value> = counts
        .iter()
        .map(|count| (count.table.to_string(), count.rows.into()))
        .collect();
    json!({ "dry_run": dry_run, "counts": counts })
}

/// The counts a purge would delete (`dry_run`), or the purge, audited as `principal`.
async fn purge_or_count(
    requests: &DataRequests,
    selector: &Selector,
    scope: PurgeScope,
    dry_run: bool,
    principal: &Principal,
) -> Result<Vec<TableCount>, RequestError> {
    if dry_run {
        return requests.count(selector, scope).await;
    }
    requests
        .purge(selector, scope, principal.actor().label())
        .await
}

/// The subject's archive as a download, written by the export while the body sends it.
fn archive_download(requests: DataRequests, selector: Selector) -> Response {
    let (chunks, mut received) = mpsc::unbounded_channel();
    let failed = chunks.clone();
    let filename = format!(
        "postern-export-{}-{}.tar",
        kind_name(&selector),
        &selector.digest()[..12]
    );
    tokio::spawn(async move {
        let writer = ChunkWriter {
            chunks,
            buffer: Vec::with_capacity(CHUNK),
        };
        match requests.export(&selector, writer).await {
            Ok(counts) => tracing::info!(
                rows = counts.iter().map(|c| c.rows).sum::<u64>(),
                "exported a data subject over the web"
            ),
            Err(error) => {
                tracing::error!(%error, "the export stopped half-way; the download is aborted");
                let _ = failed.send(Err(io::Error::other("the export failed")));
            }
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| received.poll_recv(cx));
    let mut response = Body::from_stream(stream).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `email`, `domain` or `address`: the file name says what kind of subject, not who.
fn kind_name(selector: &Selector) -> &'static str {
    match selector.kind {
        crate::store::SubjectKind::Email => "email",
        crate::store::SubjectKind::Domain => "domain",
        crate::store::SubjectKind::Address => "address",
    }
}

/// The export's `Write`: hands the archive to the response body a chunk at a time; an
/// error once the client has gone, which stops the export.
struct ChunkWriter {
    chunks: mpsc::UnboundedSender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl Write for ChunkWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.flush()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.chunks
            .send(Ok(Bytes::from(chunk)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
}

impl Drop for ChunkWriter {
    /// The export hands its writer back only to drop it: the last chunk goes out here.
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer() -> (ChunkWriter, mpsc::UnboundedReceiver<io::Result<Bytes>>) {
        let (chunks, received) = mpsc::unbounded_channel();
        let buffer = Vec::new();
        (ChunkWriter { chunks, buffer }, received)
    }

    #[test]
    fn the_archive_goes_out_in_chunks_and_the_rest_when_dropped() {
        let (mut out, mut received) = writer();
        let piece = [7u8; 1000];
        for _ in 0..150 {
            out.write_all(&piece).unwrap();
        }
        let first = received.try_recv().unwrap().unwrap();
        assert!(first.len() >= CHUNK, "{}", first.len());
        let mut total = first.len();
        while let Ok(chunk) = received.try_recv() {
            total += chunk.unwrap().len();
        }
        assert!(
            total < 150_000,
            "the tail waits for the next chunk or the drop"
        );
        drop(out);
        while let Ok(chunk) = received.try_recv() {
            total += chunk.unwrap().len();
        }
        assert_eq!(total, 150_000);
    }

    #[test]
    fn the_export_stops_when_the_client_has_gone() {
        let (mut out, received) = writer();
        drop(received);
        let error = out.write_all(&vec![0u8; CHUNK]).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);
    }
}
