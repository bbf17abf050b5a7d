//! `funnel bench store` (and `funnel bench engine`, `engine.rs`): measures Funnel's event store paths against raw baselines on the same
//! server or disk, in one run, so the overhead of the store itself can be read off as a ratio.
//!
//! [`bench_store`] runs four timed phases for one [`Target`] and returns a [`StoreBenchReport`]
//! (`serde::Serialize` for `--json`, `Display` for a table):
//!
//! | phase | raw baseline | Funnel's path |
//! |---|---|---|
//! | append | the same events written directly: one row per transaction (SQLite) or one message with `Nats-Expected-Last-Subject-Sequence` (JetStream) | `EventStore::append`, one event per append, `ExpectedVersion::NoStream` then `Exact` |
//! | read-all | one `SELECT` of the same columns (SQLite) or a pull consumer replaying in batches of 10,000 (JetStream) | `EventStore::read_all` in pages of 10,000, decoded into `RecordedEvent`s |
//!
//! Both sides append `events` events of `payload_bytes` to `streams` aggregates with `in_flight`
//! appends outstanding (see `workload` for the exact plan), so they do the same work with the same
//! concurrency. The project's targets are append ≥ 0.8 and read-all ≥ 0.7 of raw; the report shows
//! them but never fails on them.
//!
//! Where the benchmark writes:
//! - SQLite: a temporary directory next to the target path (same file system), holding a raw file
//!   and a Funnel store file, both with WAL and `synchronous=FULL` (the store's default). The target
//!   file itself is never opened; the directory is removed afterwards. The raw side is also measured
//!   with group commit (the store's `max_batch` rows per transaction), the stricter baseline, and
//!   reported next to the stated one.
//! - JetStream: the server the caller names (a URL is required: the benchmark is meant to measure
//!   the server Funnel will really use, so it never starts one of its own). Two fresh streams with a
//!   random suffix (`BENCH_RAW_<id>` and, for the store, `BENCH_<id>` with subject prefix
//!   `bench_<id>`) that are deleted at the end; a failed delete is reported in the notes.
//!
//! Build with `--release`: debug builds measure the compiler, not the store.

mod engine;
mod export;
mod http;
mod nats;
mod projections;
mod sqlite;
mod workload;

pub use engine::{
    ENGINE_RATIO_TARGET, EngineBenchDetails, EngineBenchOptions, EngineBenchReport,
    FLATNESS_TARGET, LocalNats, bench_engine, bench_engine_on,
};
pub use export::{ExportBenchReport, bench_export_on};
pub use http::{
    AS_OF_P99_MS_TARGET, AUDIT_LEAD_P99_MS_TARGET, HttpBenchOptions, HttpBenchReport,
    PIPELINE_P99_MS_TARGET, REGISTER_P99_MS_TARGET, REGISTER_PER_S_TARGET, bench_http,
};
pub use projections::{
    ProjectionBenchOptions, ProjectionBenchReport, REBUILD_TARGET, bench_projections,
    bench_projections_on,
};

use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

pub use workload::READ_PAGE;

/// The project's target for Funnel's append rate as a share of the raw rate.
pub const APPEND_TARGET: f64 = 0.8;
/// The project's target for Funnel's read-all rate as a share of the raw rate.
pub const READ_ALL_TARGET: f64 = 0.7;

/// Sizes of one benchmark run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StoreBenchOptions {
    /// Events appended (one event per append) and then read back.
    pub events: usize,
    /// Payload bytes of each event (a JSON object padded to this size, at least 8).
    pub payload_bytes: usize,
    /// Appends outstanding at any time.
    pub in_flight: usize,
    /// Aggregates (event streams) the events are spread over.
    pub streams: usize,
    /// Funnel's side seals personal fields (the embedded store only): every event is a
    /// registration with a contact's name and phone, sealed on append and opened on read.
    pub sealed: bool,
}

impl Default for StoreBenchOptions {
    fn default() -> Self {
        Self {
            events: 200_000,
            payload_bytes: 300,
            in_flight: 256,
            streams: 10_000,
            sealed: false,
        }
    }
}

impl StoreBenchOptions {
    /// Refuses sizes the benchmark cannot run with.
    pub fn validate(&self) -> anyhow::Result<()> {
        let max_payload = funnel_store::Limits::default().max_event_bytes;
        anyhow::ensure!(self.events > 0, "events must be at least 1");
        anyhow::ensure!(self.in_flight > 0, "in_flight must be at least 1");
        anyhow::ensure!(self.streams > 0, "streams must be at least 1");
        anyhow::ensure!(
            (8..=max_payload).contains(&self.payload_bytes),
            "payload_bytes must be 8 to {max_payload}, not {}",
            self.payload_bytes
        );
        anyhow::ensure!(
            !self.sealed || self.payload_bytes >= workload::PERSONAL_MIN_BYTES,
            "sealed payloads must be at least {} bytes, not {}",
            workload::PERSONAL_MIN_BYTES,
            self.payload_bytes
        );
        Ok(())
    }
}

/// Where to run the benchmark.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// The embedded store: temporary files are made next to `path` (the store file or where it
    /// would be); `path` itself is not touched.
    Sqlite { path: PathBuf },
    /// A JetStream-enabled NATS server (or several URLs separated by commas).
    Nats { url: String },
}

/// What one run measured. Rates are events per second; a ratio is Funnel's rate over raw's.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoreBenchReport {
    /// `sqlite` or `nats`.
    pub backend: String,
    pub events: usize,
    pub payload_bytes: usize,
    pub in_flight: usize,
    pub streams: usize,
    /// Events asked for per page (Funnel) or per pull batch (raw JetStream) when reading back.
    pub read_page: usize,
    /// The NATS server's version (JetStream only).
    pub server_version: Option<String>,
    /// The bundled SQLite library's version (SQLite only).
    pub sqlite_version: Option<String>,
    /// The `synchronous` setting of both SQLite sides (SQLite only).
    pub sqlite_synchronous: Option<String>,
    pub raw_append_per_s: f64,
    pub funnel_append_per_s: f64,
    pub append_ratio: f64,
    /// SQLite only: raw inserts with group commit (up to the store's `max_batch` rows per
    /// transaction), the storage ceiling for Funnel's append path.
    pub raw_group_commit_append_per_s: Option<f64>,
    /// SQLite only: Funnel's append rate over the group-commit raw rate.
    pub append_ratio_group_commit: Option<f64>,
    pub raw_read_all_per_s: f64,
    pub funnel_read_all_per_s: f64,
    pub read_all_ratio: f64,
    /// How the figures were taken and what to keep in mind reading them.
    pub notes: Vec<String>,
}

/// Runs the benchmark on `target`. `progress(phase, done, total)` is called from the calling task
/// a few times a second while a phase runs, and once when it ends. Needs a Tokio runtime (timed work
/// runs on spawned tasks and, for SQLite, threads).
pub async fn bench_store(
    target: Target,
    opts: StoreBenchOptions,
    progress: &dyn Fn(&str, u64, u64),
) -> anyhow::Result<StoreBenchReport> {
    opts.validate()?;
    let plan = workload::Plan::new(opts.events, opts.streams, opts.in_flight);
    let mut notes = vec![format!(
        "{} events over {} aggregates, one event per append, {} appends in flight; versions checked on \
         every append and every event read back",
        opts.events,
        plan.counts.len(),
        plan.workers,
    )];
    notes.push(format!(
        "read-all rates are the best of {} alternating rounds per side",
        workload::READ_ROUNDS
    ));
    if cfg!(debug_assertions) {
        notes.push("debug build: figures are not meaningful, build with --release".into());
    }
    if opts.sealed {
        anyhow::ensure!(
            matches!(target, Target::Sqlite { .. }),
            "--sealed measures the embedded store only"
        );
        notes.push(
            "sealed: every Funnel event is a registration whose contact's name and phone are \
             sealed on append and opened on read-all (one person's key; the raw side appends the \
             same bytes in the clear)"
                .into(),
        );
    }
    let mut report = StoreBenchReport {
        backend: String::new(),
        events: opts.events,
        payload_bytes: opts.payload_bytes,
        in_flight: opts.in_flight,
        streams: opts.streams,
        read_page: READ_PAGE,
        server_version: None,
        sqlite_version: None,
        sqlite_synchronous: None,
        raw_append_per_s: 0.0,
        funnel_append_per_s: 0.0,
        append_ratio: 0.0,
        raw_group_commit_append_per_s: None,
        append_ratio_group_commit: None,
        raw_read_all_per_s: 0.0,
        funnel_read_all_per_s: 0.0,
        read_all_ratio: 0.0,
        notes: Vec::new(),
    };
    match target {
        Target::Sqlite { path } => {
            let f = sqlite::run(&path, &plan, opts.payload_bytes, opts.sealed, progress).await?;
            report.backend = "sqlite".into();
            report.sqlite_version = Some(rusqlite::version().to_string());
            report.sqlite_synchronous = Some("FULL".into());
            report.raw_append_per_s = f.raw_append_per_s;
            report.funnel_append_per_s = f.funnel_append_per_s;
            report.raw_group_commit_append_per_s = Some(f.raw_group_commit_append_per_s);
            report.append_ratio_group_commit = Some(ratio(
                f.funnel_append_per_s,
                f.raw_group_commit_append_per_s,
            ));
            report.raw_read_all_per_s = f.raw_read_all_per_s;
            report.funnel_read_all_per_s = f.funnel_read_all_per_s;
            notes.push(format!(
                "SQLite {}: WAL, synchronous=FULL on both sides; files in a temporary directory next \
                 to {} (removed)",
                rusqlite::version(),
                path.display()
            ));
            notes.push(format!(
                "raw append = one writer thread, one row per transaction into a plain table (no \
                 unique indexes); the store commits up to {} queued appends per transaction (group \
                 commit), so it can beat that baseline: compare with the group-commit raw figure too",
                f.max_batch
            ));
            notes.push(
                "raw read-all = one SELECT of the same 14 columns, values looked at but not decoded; \
                 both files checkpointed (TRUNCATE) before reading"
                    .into(),
            );
        }
        Target::Nats { url } => {
            let f = nats::run(&url, &plan, opts.payload_bytes, progress).await?;
            report.backend = "nats".into();
            report.server_version = Some(f.server_version.clone());
            report.raw_append_per_s = f.raw_append_per_s;
            report.funnel_append_per_s = f.funnel_append_per_s;
            report.raw_read_all_per_s = f.raw_read_all_per_s;
            report.funnel_read_all_per_s = f.funnel_read_all_per_s;
            notes.push(format!(
                "nats-server {} at {url}: fresh file-storage streams per run, deleted afterwards",
                f.server_version
            ));
            notes.push(
                "raw append = publish with Nats-Expected-Last-Subject-Sequence, awaiting each ack; \
                 raw read-all = ephemeral pull consumer without acks, fetch batches of 10,000"
                    .into(),
            );
            notes.extend(f.notes);
        }
    }
    report.append_ratio = ratio(report.funnel_append_per_s, report.raw_append_per_s);
    report.read_all_ratio = ratio(report.funnel_read_all_per_s, report.raw_read_all_per_s);
    report.notes = notes;
    Ok(report)
}

/// `funnel / raw`, 0 when raw measured nothing.
fn ratio(funnel: f64, raw: f64) -> f64 {
    if raw > 0.0 { funnel / raw } else { 0.0 }
}

/// A rate with thousands separators, e.g. `81,234`.
fn grouped(rate: f64) -> String {
    let digits = format!("{:.0}", rate.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl fmt::Display for StoreBenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let version = match (&self.server_version, &self.sqlite_version) {
            (Some(v), _) => format!("nats-server {v}"),
            (_, Some(v)) => format!(
                "SQLite {v}, synchronous={}",
                self.sqlite_synchronous.as_deref().unwrap_or("?")
            ),
            _ => String::new(),
        };
        writeln!(
            f,
            "store benchmark: {} ({version}), {} events of {} B, {} in flight, {} streams",
            self.backend, self.events, self.payload_bytes, self.in_flight, self.streams
        )?;
        writeln!(
            f,
            "{:<28} {:>12} {:>12} {:>7} {:>8}",
            "", "raw/s", "funnel/s", "ratio", "target"
        )?;
        let mut line = |name: &str, raw: f64, funnel: f64, ratio: f64, target: f64| {
            let verdict = if ratio >= target { "ok" } else { "below" };
            writeln!(
                f,
                "{name:<28} {:>12} {:>12} {ratio:>7.2} {:>8}",
                grouped(raw),
                grouped(funnel),
                format!("≥{target:.1} {verdict}")
            )
        };
        line(
            "append",
            self.raw_append_per_s,
            self.funnel_append_per_s,
            self.append_ratio,
            APPEND_TARGET,
        )?;
        if let (Some(raw), Some(r)) = (
            self.raw_group_commit_append_per_s,
            self.append_ratio_group_commit,
        ) {
            line(
                "append (raw group commit)",
                raw,
                self.funnel_append_per_s,
                r,
                APPEND_TARGET,
            )?;
        }
        line(
            "read-all",
            self.raw_read_all_per_s,
            self.funnel_read_all_per_s,
            self.read_all_ratio,
            READ_ALL_TARGET,
        )?;
        for note in &self.notes {
            writeln!(f, "  - {note}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_grouped_by_thousands() {
        for (rate, want) in [
            (0.0, "0"),
            (999.4, "999"),
            (1000.0, "1,000"),
            (81234.6, "81,235"),
        ] {
            assert_eq!(grouped(rate), want);
        }
        assert_eq!(ratio(1.0, 0.0), 0.0);
    }

    #[test]
    fn options_are_validated() {
        assert!(StoreBenchOptions::default().validate().is_ok());
        let bad = StoreBenchOptions {
            payload_bytes: 4,
            ..StoreBenchOptions::default()
        };
        assert!(bad.validate().is_err());
    }
}
