//! The workload every measurement shares: which aggregate each append goes to and in what order, the
//! payload and event values, the progress ticker, and the two Funnel paths (`append` and `read_all`)
//! that run unchanged over either backend.
//!
//! Appends are spread over `streams` aggregates and run by `in_flight` workers. Worker `w` owns the
//! aggregates `s` with `s % workers == w` and appends to them round-robin, one event per append, so
//! appends to one aggregate never race (every expectation holds) while `in_flight` appends are
//! outstanding at any time. Raw baselines use the same plan, so both sides do the same work with the
//! same concurrency.

use anyhow::{Context as _, bail};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use funnel_store::{AppendRequest, EventStore, Filter, ProposedEvent};
use funnel_types::{
    Actor, CommandId, CorrelationId, EventId, ExpectedVersion, OfficeId, Position, StreamId,
    Version,
};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Events asked for per page when reading the whole log back, on both sides.
pub const READ_PAGE: usize = 10_000;

/// Times each side reads the whole log back; the best round counts (reads are short and noisy, and
/// the rounds alternate raw and Funnel so neither is favoured by a warm cache).
pub const READ_ROUNDS: usize = 2;

/// Event type of every benchmark event.
pub const EVENT_TYPE: &str = "bench.recorded";

/// Category of the benchmark's aggregates (streams are `bench-<n>`).
pub const CATEGORY: &str = "bench";

/// The progress callback the caller gives: phase name, done, total.
pub type Progress<'a> = &'a dyn Fn(&str, u64, u64);

/// Which aggregates each worker appends to, and how many events each aggregate gets.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Events per aggregate, indexed by aggregate number; every entry is at least 1.
    pub counts: Vec<u32>,
    /// Number of concurrent workers (at most one per aggregate).
    pub workers: usize,
    /// Total number of appends.
    pub events: usize,
}

impl Plan {
    /// Spreads `events` over `streams` aggregates as evenly as possible, with `in_flight` workers.
    pub fn new(events: usize, streams: usize, in_flight: usize) -> Self {
        let streams = streams.min(events).max(1);
        let base = events / streams;
        let extra = events % streams;
        let counts = (0..streams)
            .map(|s| (base + usize::from(s < extra)) as u32)
            .collect();
        Self {
            counts,
            workers: in_flight.min(streams).max(1),
            events,
        }
    }

    /// The appends of worker `w` in order, as (aggregate number, version of the event appended).
    pub fn appends_of(&self, w: usize) -> Vec<(usize, u64)> {
        let owned: Vec<usize> = (w..self.counts.len()).step_by(self.workers).collect();
        let rounds = owned.iter().map(|&s| self.counts[s]).max().unwrap_or(0);
        let mut out = Vec::new();
        for round in 0..rounds {
            for &s in &owned {
                if round < self.counts[s] {
                    out.push((s, u64::from(round) + 1));
                }
            }
        }
        out
    }
}

/// A JSON payload of exactly `bytes` bytes: `{"d":"xx…"}` (never shorter than its 8-byte frame).
pub fn payload(bytes: usize) -> Bytes {
    let pad = bytes.saturating_sub(8);
    let mut s = String::with_capacity(bytes.max(8));
    s.push_str("{\"d\":\"");
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    Bytes::from(s)
}

/// The event type of the appends when personal fields are sealed: a registration.
pub const PERSONAL_EVENT_TYPE: &str = "lead.registered";

const PERSONAL_HEAD: &str =
    r#"{"contact":{"name":"李经理","phone":"13800000000"},"lead_id":"bench-lead","pad":""#;

/// The smallest payload [`personal_payload`] can make.
pub const PERSONAL_MIN_BYTES: usize = PERSONAL_HEAD.len() + 2;

/// A registration's payload of exactly `bytes` bytes (at least [`PERSONAL_MIN_BYTES`]): a
/// contact's name and phone (the personal fields), padded. Its keys are in order and it is
/// compact, so that opening it gives back the same bytes.
pub fn personal_payload(bytes: usize) -> Bytes {
    let mut s = String::with_capacity(bytes.max(PERSONAL_MIN_BYTES));
    s.push_str(PERSONAL_HEAD);
    s.extend(std::iter::repeat_n(
        'x',
        bytes.saturating_sub(PERSONAL_MIN_BYTES),
    ));
    s.push_str("\"}");
    Bytes::from(s)
}

/// The aggregate named by number `n`: `bench-<n>`.
pub fn stream_id(n: usize) -> anyhow::Result<StreamId> {
    StreamId::new(CATEGORY, n).context("benchmark stream id")
}

/// The actor every benchmark event is recorded for.
pub fn actor() -> Actor {
    Actor::system("bench")
}

/// The ids of one benchmark append, as the engine gives them to a command's single event: a fresh
/// command id (what a client sends), correlation and causation ids defaulting to the command id,
/// and an event id derived from it (the engine hashes the command id; this takes its random bits,
/// so that the caller's id generation stays out of the store's figures). Both sides of every
/// benchmark use these ids.
#[derive(Clone, Copy, Debug)]
pub struct Ids {
    pub command_id: CommandId,
    pub event_id: EventId,
}

impl Ids {
    /// Fresh ids for an event occurring at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        let command_id = CommandId::new();
        // The command id's random bits, changed so that the event id is not the command id.
        let mut random = [0u8; 10];
        for (r, c) in random.iter_mut().zip(&command_id.0.as_bytes()[6..16]) {
            *r = c ^ 0xa5;
        }
        let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
        Self {
            command_id,
            event_id: EventId::v7_from_parts(millis, random),
        }
    }
}

/// One proposed event for the append `ids` names, with the shared payload.
pub fn proposed(
    actor: &Actor,
    office: OfficeId,
    (event_type, payload): (&str, &Bytes),
    ids: Ids,
    at: DateTime<Utc>,
) -> ProposedEvent {
    ProposedEvent {
        event_id: ids.event_id,
        event_type: event_type.to_string(),
        schema_version: 1,
        occurred_at: at,
        actor: actor.clone(),
        office: Some(office),
        correlation_id: CorrelationId(ids.command_id.0),
        causation_id: ids.command_id.0,
        payload: payload.clone(),
    }
}

/// Runs `work`, reporting `done` of `total` for `phase` a few times a second and once at the end.
pub async fn with_progress<T>(
    phase: &str,
    total: u64,
    done: &AtomicU64,
    progress: Progress<'_>,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    progress(phase, 0, total);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tokio::pin!(work);
    loop {
        tokio::select! {
            result = &mut work => {
                progress(phase, done.load(Ordering::Relaxed), total);
                return result;
            }
            _ = tick.tick() => progress(phase, done.load(Ordering::Relaxed), total),
        }
    }
}

/// Waits for every worker; the first failure aborts the others and is returned.
pub async fn join_all(mut set: JoinSet<anyhow::Result<()>>) -> anyhow::Result<()> {
    while let Some(joined) = set.join_next().await {
        joined.context("benchmark worker panicked or was cancelled")??;
    }
    Ok(())
}

/// Events per second, guarding against a zero duration.
pub fn rate(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64().max(1e-9)
}

/// Funnel's append path: every planned append through [`EventStore::append`], with
/// `ExpectedVersion::NoStream` for an aggregate's first event and `Exact` after it. Returns the
/// appends per second.
pub async fn funnel_append(
    store: Arc<dyn EventStore>,
    plan: &Plan,
    payload_bytes: usize,
    personal: bool,
    phase: &str,
    progress: Progress<'_>,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let (event_type, payload) = if personal {
        (PERSONAL_EVENT_TYPE, personal_payload(payload_bytes))
    } else {
        (EVENT_TYPE, payload(payload_bytes))
    };
    let office = OfficeId::new();
    let started = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..plan.workers {
        let appends = plan.appends_of(w);
        let (store, done, payload) = (store.clone(), done.clone(), payload.clone());
        set.spawn(async move {
            let actor = actor();
            for (s, version) in appends {
                let expected = if version == 1 {
                    ExpectedVersion::NoStream
                } else {
                    ExpectedVersion::Exact(Version(version - 1))
                };
                let at = Utc::now();
                let ids = Ids::new(at);
                let req = AppendRequest {
                    stream: stream_id(s)?,
                    expected,
                    command_id: ids.command_id,
                    events: vec![proposed(&actor, office, (event_type, &payload), ids, at)],
                };
                let outcome = store.append(req).await?;
                if outcome.last_version != Version(version) || outcome.duplicate {
                    bail!("append to bench-{s} gave {outcome:?}, expected version {version}");
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
    }
    let total = plan.events as u64;
    with_progress(phase, total, &done, progress, join_all(set)).await?;
    Ok(rate(plan.events, started.elapsed()))
}

/// Funnel's read-all path: the whole log through [`EventStore::read_all`] in pages of
/// [`READ_PAGE`], decoded into `RecordedEvent`s. Checks that exactly `events` come back and returns
/// the events per second.
pub async fn funnel_read_all(
    store: &dyn EventStore,
    events: usize,
    payload_bytes: usize,
    phase: &str,
    progress: Progress<'_>,
) -> anyhow::Result<f64> {
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let work = async {
        let mut after = Position::START;
        let mut count = 0usize;
        let mut bytes = 0usize;
        loop {
            let page = store.read_all(after, &Filter::All, READ_PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.meta.position;
            count += page.len();
            bytes += page.iter().map(|e| e.payload.len()).sum::<usize>();
            done.store(count as u64, Ordering::Relaxed);
        }
        if count != events || bytes != events * payload_bytes {
            bail!(
                "read-all returned {count} events with {bytes} payload bytes; expected {events} events of {payload_bytes} bytes"
            );
        }
        Ok(())
    };
    with_progress(phase, events as u64, &done, progress, work).await?;
    Ok(rate(events, started.elapsed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_covers_every_event_once_and_versions_are_dense_per_worker() {
        for (events, streams, in_flight) in [(500, 10_000, 256), (1000, 7, 3), (10, 3, 8)] {
            let plan = Plan::new(events, streams, in_flight);
            let mut seen = vec![0u64; plan.counts.len()];
            let mut total = 0;
            for w in 0..plan.workers {
                for (s, version) in plan.appends_of(w) {
                    assert_eq!(s % plan.workers, w);
                    assert_eq!(version, seen[s] + 1);
                    seen[s] = version;
                    total += 1;
                }
            }
            assert_eq!(total, events);
        }
    }

    #[test]
    fn ids_are_fresh_per_append_and_the_event_id_is_not_the_command_id() {
        let at = Utc::now();
        let (a, b) = (Ids::new(at), Ids::new(at));
        assert_ne!(a.command_id, b.command_id);
        assert_ne!(a.event_id, b.event_id);
        assert_ne!(a.event_id.0, a.command_id.0);
        assert_eq!(a.event_id.0.get_version_num(), 7);
    }

    #[test]
    fn payloads_have_the_asked_size_and_are_json() {
        for n in [8, 10, 300] {
            let p = payload(n);
            assert_eq!(p.len(), n);
            assert!(p.starts_with(b"{\"d\":\"") && p.ends_with(b"\"}"));
        }
    }
}
