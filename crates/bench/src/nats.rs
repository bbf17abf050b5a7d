//! The JetStream measurements: raw async-nats publishes with `Nats-Expected-Last-Subject-Sequence`
//! and a raw pull-consumer replay against `NatsStore::append` and `read_all`, on the same server.
//!
//! Each run makes two fresh JetStream streams with a random suffix, so runs never meet each other or
//! a production log: `BENCH_RAW_<id>` on `bench_raw_<id>.>` for the raw side and `BENCH_<id>` on
//! `bench_<id>.log.>` for Funnel's store (created by `NatsStore::connect` with Funnel's settings).
//! Both are deleted at the end. `deny_delete` only forbids deleting single messages, so deleting the
//! whole Funnel stream is allowed; a failed delete is reported in the notes, not as an error.

use crate::workload::{self, Plan, Progress, READ_PAGE, join_all, rate, with_progress};
use anyhow::{Context as _, anyhow, bail};
use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::pull, stream};
use funnel_store::EventStore;
use funnel_store_nats::{NatsOptions, NatsStore};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What the JetStream run measured.
#[derive(Debug)]
pub struct NatsFigures {
    pub server_version: String,
    pub raw_append_per_s: f64,
    pub funnel_append_per_s: f64,
    pub raw_read_all_per_s: f64,
    pub funnel_read_all_per_s: f64,
    pub notes: Vec<String>,
}

/// Runs every JetStream measurement against the server at `url`.
pub async fn run(
    url: &str,
    plan: &Plan,
    payload_bytes: usize,
    progress: Progress<'_>,
) -> anyhow::Result<NatsFigures> {
    let id = run_id();
    let raw_stream = format!("BENCH_RAW_{id}");
    let raw_prefix = format!("bench_raw_{id}");
    let funnel_opts = NatsOptions {
        stream_name: format!("BENCH_{id}"),
        subject_prefix: format!("bench_{id}"),
        ..NatsOptions::new(url)
    };
    let client = async_nats::ConnectOptions::new()
        .name("funnel-bench")
        .connection_timeout(funnel_opts.connect_timeout)
        .request_timeout(Some(funnel_opts.request_timeout))
        .connect(url)
        .await
        .with_context(|| format!("connect to {url}"))?;
    let server_version = client.server_info().version;
    let js = jetstream::new(client.clone());
    js.create_stream(stream::Config {
        name: raw_stream.clone(),
        subjects: vec![format!("{raw_prefix}.>")],
        storage: stream::StorageType::File,
        num_replicas: 1,
        duplicate_window: funnel_opts.duplicate_window,
        ..Default::default()
    })
    .await
    .with_context(|| format!("create the raw benchmark stream {raw_stream}"))?;
    let store = match NatsStore::connect(funnel_opts.clone()).await {
        Ok(s) => Arc::new(s),
        Err(e) => {
            let _ = js.delete_stream(&raw_stream).await;
            return Err(e).context("connect Funnel's store");
        }
    };

    let measured = async {
        let raw_append_per_s = raw_append(&js, &raw_prefix, plan, payload_bytes, progress).await?;
        let funnel: Arc<dyn EventStore> = store.clone();
        let funnel_append_per_s = workload::funnel_append(
            funnel,
            plan,
            payload_bytes,
            false,
            "nats funnel append",
            progress,
        )
        .await?;
        let (mut raw_read_all_per_s, mut funnel_read_all_per_s) = (0.0f64, 0.0f64);
        for _ in 0..workload::READ_ROUNDS {
            let raw = raw_replay(&js, &raw_stream, plan.events, payload_bytes, progress).await?;
            raw_read_all_per_s = raw_read_all_per_s.max(raw);
            let funnel = workload::funnel_read_all(
                store.as_ref(),
                plan.events,
                payload_bytes,
                "nats funnel read-all",
                progress,
            )
            .await?;
            funnel_read_all_per_s = funnel_read_all_per_s.max(funnel);
        }
        anyhow::Ok((
            raw_append_per_s,
            funnel_append_per_s,
            raw_read_all_per_s,
            funnel_read_all_per_s,
        ))
    }
    .await;

    let mut notes = Vec::new();
    if measured.is_ok() {
        let raw_size = average_message_bytes(&js, &raw_stream).await;
        let funnel_size = average_message_bytes(&js, &funnel_opts.stream_name).await;
        if let (Some(raw), Some(funnel)) = (raw_size, funnel_size) {
            notes.push(format!(
                "stored message size: raw {raw} B (payload and one header), Funnel {funnel} B \
                 (binary commit body with the event's metadata and command id, the same header and the \
                 commit's link in the hash chain, `Funnel-Chain`)"
            ));
        }
    }
    drop(store);
    for name in [&raw_stream, &funnel_opts.stream_name] {
        if let Err(e) = js.delete_stream(name).await {
            notes.push(format!("could not delete benchmark stream {name}: {e}"));
        }
    }
    let (raw_append_per_s, funnel_append_per_s, raw_read_all_per_s, funnel_read_all_per_s) =
        measured?;
    Ok(NatsFigures {
        server_version,
        raw_append_per_s,
        funnel_append_per_s,
        raw_read_all_per_s,
        funnel_read_all_per_s,
        notes,
    })
}

/// A short random suffix for this run's stream names (the random tail of a UUIDv7).
fn run_id() -> String {
    let hex = uuid::Uuid::now_v7().simple().to_string();
    hex[hex.len() - 10..].to_ascii_uppercase()
}

/// Stored bytes per message of a stream, as the server counts them.
async fn average_message_bytes(js: &jetstream::Context, name: &str) -> Option<u64> {
    let mut s = js.get_stream(name).await.ok()?;
    let state = &s.info().await.ok()?.state;
    state.bytes.checked_div(state.messages)
}

/// Raw optimistic appends: one message of `payload_bytes` per append with only
/// `Nats-Expected-Last-Subject-Sequence`, each worker awaiting its ack before its next publish.
async fn raw_append(
    js: &jetstream::Context,
    prefix: &str,
    plan: &Plan,
    payload_bytes: usize,
    progress: Progress<'_>,
) -> anyhow::Result<f64> {
    let done = Arc::new(AtomicU64::new(0));
    let payload = workload::payload(payload_bytes);
    let started = Instant::now();
    let mut set = JoinSet::new();
    for w in 0..plan.workers {
        let appends = plan.appends_of(w);
        let (js, done, payload) = (js.clone(), done.clone(), payload.clone());
        let prefix = prefix.to_string();
        set.spawn(async move {
            let mut last_seq: HashMap<usize, u64> = HashMap::new();
            for (s, _version) in appends {
                let expected = last_seq.get(&s).copied().unwrap_or(0);
                let mut headers = HeaderMap::new();
                headers.insert(
                    "Nats-Expected-Last-Subject-Sequence",
                    expected.to_string().as_str(),
                );
                let subject = format!("{prefix}.{}.{s}", workload::CATEGORY);
                let ack = js
                    .publish_with_headers(subject, headers, payload.clone())
                    .await
                    .context("raw publish")?
                    .await
                    .context("raw publish ack")?;
                last_seq.insert(s, ack.sequence);
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        });
    }
    let total = plan.events as u64;
    with_progress("nats raw append", total, &done, progress, join_all(set)).await?;
    Ok(rate(plan.events, started.elapsed()))
}

/// Raw replay: an ephemeral pull consumer without acks over the raw stream, fetching batches of
/// [`READ_PAGE`] messages until every message came back.
async fn raw_replay(
    js: &jetstream::Context,
    name: &str,
    events: usize,
    payload_bytes: usize,
    progress: Progress<'_>,
) -> anyhow::Result<f64> {
    let done = AtomicU64::new(0);
    let started = Instant::now();
    let work = async {
        let stream = js.get_stream_no_info(name).await?;
        let consumer = stream
            .create_consumer(pull::Config {
                ack_policy: jetstream::consumer::AckPolicy::None,
                memory_storage: true,
                num_replicas: 1,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .context("create the raw replay consumer")?;
        let (mut count, mut bytes, mut empty) = (0usize, 0usize, 0);
        while count < events {
            let mut batch = consumer
                .fetch()
                .max_messages(READ_PAGE)
                .max_bytes(16 * 1024 * 1024)
                .messages()
                .await
                .map_err(|e| anyhow!("raw fetch: {e}"))?;
            let before = count;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| anyhow!("raw fetch: {e}"))?;
                bytes += msg.payload.len();
                count += 1;
            }
            done.store(count as u64, Ordering::Relaxed);
            if count == before {
                empty += 1;
                if empty > 50 {
                    bail!("raw replay stalled after {count} of {events} messages");
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if count != events || bytes != events * payload_bytes {
            bail!(
                "raw replay returned {count} messages with {bytes} payload bytes; expected {events}"
            );
        }
        let took = started.elapsed();
        // Removing the consumer is cleanup, not reading: it is left out of the time.
        let consumer_name = consumer.cached_info().name.clone();
        let _ = stream.delete_consumer(&consumer_name).await;
        Ok(took)
    };
    let took = with_progress("nats raw read-all", events as u64, &done, progress, work).await?;
    Ok(rate(events, took))
}
