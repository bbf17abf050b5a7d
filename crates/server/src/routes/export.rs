//! `GET /export/events.parquet`: the log as a Parquet file (`funnel_parquet`'s events layout, the
//! one `funnel export events --format parquet` writes), with the caller's read scope: office roles
//! get their office's events, headquarters and auditors every event.
//!
//! The file is streamed as it is written: a blocking task reads the log a page at a time through
//! `funnel_app::query::log::readable_events` (which decides what the caller may read), writes the
//! rows in row groups, and hands the bytes to the response through a bounded channel. Memory stays
//! bounded by a page, a row group and the channel, however long the log. A failure after the first
//! bytes were sent can only end the response early; the file is then incomplete (no footer) and
//! every Parquet reader refuses it.

use crate::AppState;
use crate::auth::Caller;
use crate::problem::Problem;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use funnel_app::query::log;
use funnel_types::Position;
use std::io::Write;
use tokio::sync::mpsc;

/// Events read from the log per page.
const PAGE: usize = 2000;
/// Bytes handed to the response at a time.
const CHUNK: usize = 64 * 1024;

/// A `Write` that hands the bytes to the response body in chunks; a closed response (the client
/// went away) stops the writer with a broken pipe.
struct ToBody {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ToBody {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ToBody {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// Why the export task stopped (logged: the response has already started).
#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error(transparent)]
    App(#[from] funnel_app::AppError),
    #[error(transparent)]
    Parquet(#[from] funnel_parquet::ExportError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Writes every event the caller may read into `out`, page by page.
fn write_events(
    state: &AppState,
    caller: &Caller,
    out: ToBody,
    rt: &tokio::runtime::Handle,
) -> Result<u64, Failed> {
    let mut writer = funnel_parquet::EventsWriter::new(out)?;
    let mut after = Position::START;
    loop {
        let (events, next) =
            rt.block_on(log::readable_events(state.reads(), caller, after, PAGE))?;
        for env in &events {
            writer.push(env)?;
        }
        match next {
            Some(p) => after = p,
            None => break,
        }
    }
    let rows = writer.rows();
    writer.finish()?.flush()?;
    Ok(rows)
}

/// `GET /export/events.parquet`.
pub async fn events_parquet(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Response, Problem> {
    // The first page is read here, so that a store that cannot be read answers a problem rather
    // than a broken file.
    log::readable_events(state.reads(), &caller, Position::START, 1).await?;
    let (tx, mut rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let rt = tokio::runtime::Handle::current();
    let errors = tx.clone();
    tokio::task::spawn_blocking(move || {
        let out = ToBody {
            tx,
            buf: Vec::with_capacity(CHUNK),
        };
        match write_events(&state, &caller, out, &rt) {
            Ok(rows) => {
                tracing::info!(rows, staff = %caller.staff_id, "events exported as Parquet")
            }
            Err(e) => {
                tracing::warn!(error = %e, "Parquet export of the events ended early");
                let _ = errors.blocking_send(Err(std::io::Error::other(e.to_string())));
            }
        }
    });
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        [
            (header::CONTENT_TYPE, "application/vnd.apache.parquet"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"events.parquet\"",
            ),
        ],
        body,
    )
        .into_response())
}
