//! `funnel import`: reads back what `funnel export events` wrote (NDJSON or CloudEvents lines) and
//! appends it to the chosen store, commit by commit, in log order.
//!
//! Every fact of an event is kept: its id, stream and version, command, correlation and causation
//! ids, actor, office and occurrence time. The target store assigns new positions (in the same
//! order) and its own recorded time. Each command's events go in as one append that expects the
//! stream at the version before them, so an import can only continue a stream's own history; and
//! each append carries the original command id, so re-running an import (after an interruption, or
//! of an overlapping export) writes only what is missing.

use funnel_app::StoreUrl;
use funnel_store::{AppendRequest, EventStore, ProposedEvent, StoreError};
use funnel_types::{CommandId, Envelope, ExpectedVersion, Position, StreamId, Version};
use serde::Serialize;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file to read; `-` (the default) reads standard input. Either form `funnel export events`
    /// writes, one event per line, in log order; blank lines are skipped.
    #[arg(default_value = "-")]
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// What an import did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct ImportReport {
    /// Lines that held an event.
    pub events_read: u64,
    /// Events appended by this run.
    pub events_written: u64,
    /// Commits (one command's events on one stream) appended by this run.
    pub commits_written: u64,
    /// Commits the target already held (same command id): skipped.
    pub commits_present: u64,
    /// The target's positions of the first and last event written by this run.
    pub first_position: Option<u64>,
    pub last_position: Option<u64>,
}

/// The events of one command on one stream, as read from consecutive lines.
struct Commit {
    line: u64,
    stream: StreamId,
    command_id: CommandId,
    events: Vec<Envelope<funnel_domain::Event>>,
}

pub async fn run(url: &StoreUrl, args: ImportArgs) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    let (reader, size): (Box<dyn BufRead>, Option<u64>) = if args.file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), None)
    } else {
        let f = std::fs::File::open(&args.file)
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", args.file.display()))?;
        let size = f.metadata().ok().map(|m| m.len());
        (Box::new(std::io::BufReader::new(f)), size)
    };
    let bar = match size {
        Some(len) => {
            let bar = indicatif::ProgressBar::new(len);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} import [{bar:40}] {bytes}/{total_bytes} {msg} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        }
        None => {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} import {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar
        }
    };
    let started = Instant::now();
    let result = import(store.as_ref(), reader, |bytes, report| {
        bar.set_position(bytes);
        bar.set_message(format!(
            "{} events read, {} written",
            report.events_read, report.events_written
        ));
    })
    .await;
    bar.finish_and_clear();
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let span = match (report.first_position, report.last_position) {
        (Some(a), Some(b)) => format!(" at positions {a}–{b}"),
        _ => String::new(),
    };
    println!(
        "imported into {} in {:.1}s: {} events read; {} events in {} commits written{span}; {} commits already there",
        crate::demo::describe(url),
        started.elapsed().as_secs_f64(),
        report.events_read,
        report.events_written,
        report.commits_written,
        report.commits_present,
    );
    Ok(())
}

/// Imports every line of `reader` into `store`; `progress` hears the bytes read so far after each
/// commit. Stops at the first line that cannot be read or appended, naming it; what was appended
/// before stays, and running the import again continues from there.
pub async fn import(
    store: &dyn EventStore,
    reader: impl BufRead,
    mut progress: impl FnMut(u64, &ImportReport),
) -> anyhow::Result<ImportReport> {
    let mut report = ImportReport::default();
    let mut pending: Option<Commit> = None;
    let mut last_position: Option<(u64, Position)> = None;
    let mut bytes = 0u64;
    for (n, line) in reader.lines().enumerate() {
        let n = n as u64 + 1;
        let line = line.map_err(|e| anyhow::anyhow!("line {n}: cannot read: {e}"))?;
        bytes += line.len() as u64 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let env =
            funnel_codec::from_exported(&line).map_err(|e| anyhow::anyhow!("line {n}: {e}"))?;
        if let Some((at, p)) = last_position
            && env.meta.position <= p
        {
            anyhow::bail!(
                "line {n}: position {} does not come after position {p} of line {at}: the file is not in log order (write it with `funnel export events`)",
                env.meta.position
            );
        }
        last_position = Some((n, env.meta.position));
        report.events_read += 1;
        let continues = pending.as_ref().is_some_and(|c| {
            c.stream == env.meta.stream
                && c.command_id == env.meta.command_id
                && c.events
                    .last()
                    .is_some_and(|e| e.meta.version.0 + 1 == env.meta.version.0)
        });
        if !continues {
            if let Some(commit) = pending.take() {
                append(store, commit, &mut report).await?;
                progress(bytes, &report);
            }
            pending = Some(Commit {
                line: n,
                stream: env.meta.stream.clone(),
                command_id: env.meta.command_id,
                events: Vec::new(),
            });
        }
        if let Some(c) = pending.as_mut() {
            c.events.push(env);
        }
    }
    if let Some(commit) = pending.take() {
        append(store, commit, &mut report).await?;
        progress(bytes, &report);
    }
    Ok(report)
}

async fn append(
    store: &dyn EventStore,
    commit: Commit,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    let first = commit.events[0].meta.version;
    let expected = match first.0 {
        0 => anyhow::bail!(
            "line {}: stream {} has version 0; versions start at 1",
            commit.line,
            commit.stream
        ),
        1 => ExpectedVersion::NoStream,
        v => ExpectedVersion::Exact(Version(v - 1)),
    };
    let request = AppendRequest {
        stream: commit.stream.clone(),
        expected,
        command_id: commit.command_id,
        events: commit
            .events
            .iter()
            .map(|e| ProposedEvent {
                event_id: e.meta.event_id,
                event_type: e.meta.event_type.clone(),
                schema_version: e.meta.schema_version,
                occurred_at: e.meta.occurred_at,
                actor: e.meta.actor.clone(),
                office: e.meta.office,
                correlation_id: e.meta.correlation_id,
                causation_id: e.meta.causation_id,
                payload: funnel_codec::encode(&e.payload).into(),
            })
            .collect(),
    };
    let count = request.events.len() as u64;
    let mut delay = Duration::from_millis(200);
    let mut attempts = 0;
    let outcome = loop {
        match store.append(request.clone()).await {
            Ok(o) => break o,
            // The same command id makes the retry safe whether or not the failed attempt landed.
            Err(e) if e.is_retryable() && attempts < 8 => {
                attempts += 1;
                eprintln!("line {}: {e}; retrying in {delay:?}", commit.line);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(StoreError::WrongExpectedVersion { actual, .. }) => anyhow::bail!(
                "line {}: stream {} holds {} in this store, but the file continues it from version {} with other commands: import into an empty store, or one that holds the same history",
                commit.line,
                commit.stream,
                actual
                    .map(|v| format!("{} events", v.0))
                    .unwrap_or_else(|| "no events".into()),
                first.0,
            ),
            Err(e) if e.is_retryable() => anyhow::bail!(
                "line {}: {e}; run the import again to continue (commits already imported are recognised)",
                commit.line
            ),
            Err(e) => anyhow::bail!("line {}: {e}", commit.line),
        }
    };
    if outcome.first_version != first {
        anyhow::bail!(
            "line {}: command {} is already in stream {} at version {}, but the file has it at version {}",
            commit.line,
            commit.command_id,
            commit.stream,
            outcome.first_version.0,
            first.0
        );
    }
    let last = commit.events[commit.events.len() - 1].meta.version;
    if outcome.duplicate && outcome.last_version != last {
        anyhow::bail!(
            "line {}: command {} is in stream {} only up to version {}, but the file has it up to version {}: an earlier import read a file that ended inside this command; its missing events cannot be added under the same command id",
            commit.line,
            commit.command_id,
            commit.stream,
            outcome.last_version.0,
            last.0
        );
    }
    if outcome.duplicate {
        report.commits_present += 1;
    } else {
        report.commits_written += 1;
        report.events_written += count;
        report
            .first_position
            .get_or_insert(outcome.first_position.0);
        report.last_position = Some(outcome.last_position.0);
    }
    Ok(())
}
