//! The log itself, a page at a time, and how far each read model has followed it.

use crate::auth::Caller;
use crate::error::AppError;
use crate::reads::{Paging, Reads};
use funnel_domain::Event;
use funnel_projections::ProjectionStatus;
use funnel_store::Filter;
use funnel_types::{Envelope, Metadata, Position};
use schemars::JsonSchema;
use serde::Serialize;

/// One event of the log: its envelope and its payload.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct LogEvent {
    #[serde(flatten)]
    pub meta: Metadata,
    /// The payload, as the event contract (`schemas/`) describes its type.
    pub payload: serde_json::Value,
}

/// A page of the log.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct EventPage {
    pub events: Vec<LogEvent>,
    /// The `after` of the next page; `null` at the head.
    pub next: Option<Position>,
}

/// The raw log after `paging.after` (0: from the start), scanning at most `paging.limit` events;
/// office roles see their office's events only.
pub async fn events(
    reads: &Reads,
    caller: &Caller,
    paging: Paging<Position>,
) -> Result<EventPage, AppError> {
    let after = paging.after.unwrap_or(Position::START);
    let limit = paging.limit;
    let page = reads.store().read_all(after, &Filter::All, limit).await?;
    let mut events = Vec::with_capacity(page.len());
    for rec in &page {
        if !caller.may_read_of(rec.meta.office) {
            continue;
        }
        let env = funnel_codec::decode_recorded(rec)?;
        events.push(LogEvent {
            payload: funnel_codec::payload_value(&env.payload),
            meta: env.meta,
        });
    }
    let next = (page.len() == limit)
        .then(|| page.last().map(|r| r.meta.position))
        .flatten();
    Ok(EventPage { events, next })
}

/// The decoded events after `after` that the caller may read (office roles: their office's),
/// scanning at most `limit` events of the log, and the position to continue after (`None` at the
/// head): a whole-log export (`GET /export/events.parquet`) reads page by page with it, so memory
/// stays bounded by the page and not by the log.
pub async fn readable_events(
    reads: &Reads,
    caller: &Caller,
    after: Position,
    limit: usize,
) -> Result<(Vec<Envelope<Event>>, Option<Position>), AppError> {
    let page = reads.store().read_all(after, &Filter::All, limit).await?;
    let next = (page.len() == limit)
        .then(|| page.last().map(|r| r.meta.position))
        .flatten();
    let mut events = Vec::with_capacity(page.len());
    for rec in page.iter().filter(|r| caller.may_read_of(r.meta.office)) {
        events.push(funnel_codec::decode_recorded(rec)?);
    }
    Ok((events, next))
}

/// Each read model's version, checkpoint, lag and parked events.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct ProjectionsReport {
    /// The log head when asked.
    pub head: Position,
    pub projections: Vec<ProjectionStatus>,
}

/// The status of every read model.
pub async fn projections(reads: &Reads) -> Result<ProjectionsReport, AppError> {
    let head = reads.store().head().await?;
    let projections = reads.runner().read().await.status();
    Ok(ProjectionsReport { head, projections })
}
