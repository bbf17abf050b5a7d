//! `Streams.Read`: what a request asks for ([`Request`]) and the task that answers it into a
//! bounded channel, so a slow reader holds a few messages in memory, never the log.
//!
//! - A stream, forwards from a revision (inclusive) or backwards from one, at most `count`.
//! - `$all`, forwards from a position (inclusive) or backwards from one, through the filter.
//! - A catch-up subscription to a stream or to `$all` from a revision or position (exclusive):
//!   the confirmation first, the history, `caught_up` with the revision or position reached, the
//!   live tail; a filtered `$all` subscription also sends a checkpoint every
//!   `window × multiplier` events scanned, as KurrentDB does.
//!
//! Every event passes the caller's read scope (`Caller::may_read_of`, as the HTTP `/events` and
//! `readable_events` apply it): office roles see their office's events only. A stream read that
//! finds events but none the caller may read is refused as access denied.

use crate::convert::{access_denied, read_event, store_status, stream_identifier};
use crate::filter::EventFilter;
use crate::proto::event_store::client::streams::ReadResp;
use crate::proto::event_store::client::streams::read_resp::{
    CaughtUp, Checkpoint, Content, Position as RespPosition, StreamNotFound,
    SubscriptionConfirmation,
};
use funnel_app::Reads;
use funnel_app::auth::Caller;
use funnel_store::{Filter, RecordedEvent, SubscriptionItem};
use funnel_types::{Position, StreamId, Version};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a reader may leave a message unread before the server gives up on it.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);
/// Events read from the store at a time.
const PAGE: usize = 512;
/// The widest window of positions a backwards `$all` read scans at once.
const MAX_BACK_WINDOW: u64 = 65_536;

pub type Item = Result<ReadResp, tonic::Status>;

/// Where a read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    Start,
    End,
    /// A stream revision or an `$all` commit position.
    At(u64),
}

#[derive(Debug)]
pub enum Target {
    /// The stream's name as sent (it may not be a Funnel stream name at all).
    Stream(String),
    All,
}

#[derive(Debug)]
pub struct Request {
    pub target: Target,
    pub from: From,
    pub backwards: bool,
    /// `None`: a subscription.
    pub count: Option<u64>,
    pub filter: Option<EventFilter>,
}

/// Answers `request` for `caller` into `tx` until done, the reader goes away, or it stops reading.
pub async fn run(reads: Reads, caller: Caller, request: Request, tx: mpsc::Sender<Item>) {
    let mut out = Out { tx };
    let result = match (&request.target, request.count) {
        (Target::Stream(name), Some(count)) => {
            read_stream(&reads, &caller, name, &request, count, &mut out).await
        }
        (Target::All, Some(count)) => read_all(&reads, &caller, &request, count, &mut out).await,
        (Target::Stream(name), None) => {
            subscribe_stream(&reads, &caller, name, request.from, &mut out).await
        }
        (Target::All, None) => subscribe_all(&reads, &caller, &request, &mut out).await,
    };
    if let Err(Stop::Failed(status)) = result {
        let _ = out.tx.send_timeout(Err(status), SEND_TIMEOUT).await;
    }
}

enum Stop {
    /// The reader is gone or stopped reading.
    Gone,
    Failed(tonic::Status),
}

impl std::convert::From<tonic::Status> for Stop {
    fn from(s: tonic::Status) -> Self {
        Stop::Failed(s)
    }
}

impl std::convert::From<funnel_store::StoreError> for Stop {
    fn from(e: funnel_store::StoreError) -> Self {
        Stop::Failed(store_status(e))
    }
}

struct Out {
    tx: mpsc::Sender<Item>,
}

impl Out {
    async fn send(&mut self, content: Content) -> Result<(), Stop> {
        let msg = ReadResp {
            content: Some(content),
        };
        self.tx
            .send_timeout(Ok(msg), SEND_TIMEOUT)
            .await
            .map_err(|_| Stop::Gone)
    }

    async fn event(&mut self, rec: &RecordedEvent) -> Result<(), Stop> {
        self.send(Content::Event(read_event(rec)?)).await
    }
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(std::time::SystemTime::now())
}

fn resp_position(p: Position) -> RespPosition {
    RespPosition {
        commit_position: p.0,
        prepare_position: p.0,
    }
}

fn not_found(name: &str) -> Content {
    Content::StreamNotFound(StreamNotFound {
        stream_identifier: Some(stream_identifier(name)),
    })
}

fn other_office(name: &str, caller: &Caller) -> tonic::Status {
    access_denied(&format!(
        "stream `{name}` belongs to an office a {} does not read / {} 无权查看流 `{name}` 所属的办事处",
        caller.role,
        caller.role.label_zh()
    ))
}

async fn read_stream(
    reads: &Reads,
    caller: &Caller,
    name: &str,
    request: &Request,
    count: u64,
    out: &mut Out,
) -> Result<(), Stop> {
    let store = reads.store();
    let Ok(id) = StreamId::parse(name) else {
        return out.send(not_found(name)).await;
    };
    let Some(current) = store.stream_version(&id).await? else {
        return out.send(not_found(name)).await;
    };
    let (mut seen, mut shown) = (false, false);
    let mut left = count;
    if !request.backwards {
        let mut from = match request.from {
            From::Start => 1,
            From::End => current.0 + 1,
            From::At(r) => r.saturating_add(1),
        };
        while left > 0 && from <= current.0 {
            let max = usize::try_from(left).unwrap_or(PAGE).min(PAGE);
            let batch = store.read_stream(&id, Version(from), max).await?;
            if batch.is_empty() {
                break;
            }
            for rec in &batch {
                from = rec.meta.version.0 + 1;
                seen = true;
                if caller.may_read_of(rec.meta.office) {
                    shown = true;
                    out.event(rec).await?;
                    left -= 1;
                }
            }
        }
    } else {
        let mut hi = match request.from {
            From::Start => 1,
            From::End => current.0,
            From::At(r) => r.saturating_add(1).min(current.0),
        };
        while left > 0 && hi >= 1 {
            let lo = hi.saturating_sub(PAGE as u64 - 1).max(1);
            let batch = store
                .read_stream(&id, Version(lo), (hi - lo + 1) as usize)
                .await?;
            for rec in batch.iter().rev() {
                seen = true;
                if left > 0 && caller.may_read_of(rec.meta.office) {
                    shown = true;
                    out.event(rec).await?;
                    left -= 1;
                }
            }
            hi = lo - 1;
        }
    }
    if seen && !shown {
        return Err(Stop::Failed(other_office(name, caller)));
    }
    Ok(())
}

fn passes(caller: &Caller, filter: Option<&EventFilter>, rec: &RecordedEvent) -> bool {
    caller.may_read_of(rec.meta.office) && filter.is_none_or(|f| f.matches(rec))
}

async fn read_all(
    reads: &Reads,
    caller: &Caller,
    request: &Request,
    count: u64,
    out: &mut Out,
) -> Result<(), Stop> {
    let store = reads.store();
    let filter = request.filter.as_ref();
    let mut left = count;
    if !request.backwards {
        let mut after = match request.from {
            From::Start => Position::START,
            From::End => return Ok(()),
            // Inclusive: the event at the position itself comes first.
            From::At(p) => Position(p.saturating_sub(1)),
        };
        while left > 0 {
            let page = store.read_all(after, &Filter::All, PAGE).await?;
            for rec in &page {
                after = rec.meta.position;
                if left > 0 && passes(caller, filter, rec) {
                    out.event(rec).await?;
                    left -= 1;
                }
            }
            if page.len() < PAGE {
                break;
            }
        }
        return Ok(());
    }
    // Backwards: the store reads forwards only, so scan windows of positions from the top down,
    // widening the window while it finds few events (positions need not be consecutive).
    let mut hi = match request.from {
        From::Start => return Ok(()),
        From::End => store.head().await?.0,
        From::At(p) => p,
    };
    let mut window = PAGE as u64;
    while left > 0 && hi > 0 {
        let lo = hi.saturating_sub(window);
        let mut events = Vec::new();
        let mut after = Position(lo);
        'window: loop {
            let page = store.read_all(after, &Filter::All, PAGE).await?;
            for rec in &page {
                if rec.meta.position.0 > hi {
                    break 'window;
                }
                after = rec.meta.position;
                events.push(rec.clone());
            }
            if page.len() < PAGE {
                break;
            }
        }
        for rec in events.iter().rev() {
            if left > 0 && passes(caller, filter, rec) {
                out.event(rec).await?;
                left -= 1;
            }
        }
        if events.len() < PAGE / 2 {
            window = (window * 2).min(MAX_BACK_WINDOW);
        }
        hi = lo;
    }
    Ok(())
}

async fn confirm(out: &mut Out) -> Result<(), Stop> {
    out.send(Content::Confirmation(SubscriptionConfirmation {
        subscription_id: uuid::Uuid::now_v7().to_string(),
    }))
    .await
}

async fn subscribe_all(
    reads: &Reads,
    caller: &Caller,
    request: &Request,
    out: &mut Out,
) -> Result<(), Stop> {
    let store = reads.store().clone();
    let after = match request.from {
        From::Start => Position::START,
        // Exclusive: what comes after the position.
        From::At(p) => Position(p),
        From::End => store.head().await?,
    };
    confirm(out).await?;
    let filter = request.filter.as_ref();
    let interval = filter.map(|f| f.checkpoint_interval);
    let mut scanned = 0u64;
    let mut items = store.subscribe(after, Filter::All);
    while let Some(item) = items.next().await {
        match item? {
            SubscriptionItem::Event(rec) => {
                scanned += 1;
                if passes(caller, filter, &rec) {
                    out.event(&rec).await?;
                }
                if interval.is_some_and(|i| scanned.is_multiple_of(i)) {
                    out.send(Content::Checkpoint(Checkpoint {
                        commit_position: rec.meta.position.0,
                        prepare_position: rec.meta.position.0,
                        timestamp: Some(now()),
                    }))
                    .await?;
                }
            }
            SubscriptionItem::CaughtUp(head) => {
                out.send(Content::CaughtUp(CaughtUp {
                    timestamp: Some(now()),
                    stream_revision: None,
                    position: (head > Position::START).then(|| resp_position(head)),
                }))
                .await?;
            }
        }
    }
    Ok(())
}

async fn subscribe_stream(
    reads: &Reads,
    caller: &Caller,
    name: &str,
    from: From,
    out: &mut Out,
) -> Result<(), Stop> {
    let store = reads.store().clone();
    let Ok(id) = StreamId::parse(name) else {
        // Not a name Funnel gives a stream: nothing will ever be written to it.
        confirm(out).await?;
        out.send(Content::CaughtUp(CaughtUp {
            timestamp: Some(now()),
            stream_revision: None,
            position: None,
        }))
        .await?;
        out.tx.closed().await;
        return Ok(());
    };
    // Exclusive: only versions above `last`. Start the scan of the log at the position of the
    // last event already seen, so a subscription from a revision does not rescan the history.
    let (mut last, after) = match from {
        From::Start => (0, Position::START),
        From::At(r) => {
            let version = r.saturating_add(1);
            let at = store.read_stream(&id, Version(version), 1).await?;
            (
                version,
                at.first().map_or(Position::START, |e| e.meta.position),
            )
        }
        From::End => {
            // The head first: an event written in between is then above both.
            let head = store.head().await?;
            let v = store.stream_version(&id).await?.map_or(0, |v| v.0);
            (v, head)
        }
    };
    confirm(out).await?;
    let mut items = store.subscribe(after, Filter::category(id.category()));
    let mut denied_any = false;
    while let Some(item) = items.next().await {
        match item? {
            SubscriptionItem::Event(rec) => {
                if rec.meta.stream != id || rec.meta.version.0 <= last {
                    continue;
                }
                last = rec.meta.version.0;
                if caller.may_read_of(rec.meta.office) {
                    out.event(&rec).await?;
                } else if !denied_any {
                    denied_any = true;
                    tracing::debug!(stream = %id, "gRPC subscriber may not read an event of the stream");
                }
            }
            SubscriptionItem::CaughtUp(_) => {
                out.send(Content::CaughtUp(CaughtUp {
                    timestamp: Some(now()),
                    stream_revision: (last > 0).then(|| (last - 1) as i64),
                    position: None,
                }))
                .await?;
            }
        }
    }
    Ok(())
}
