//! `funnel bench export`: the whole log as Parquet (`funnel export events --format parquet`),
//! against the store's own read-all rate over the same log in the same run, with the peak memory
//! of the export: what an analyst's export of a log of millions of events costs.

use crate::projections::{
    ProjectionBenchOptions, Scratch, generate, peak_rss, peak_rss_reset, read_all_rate,
};
use funnel_store::{EventStore, Filter};
use funnel_types::Position;
use serde::Serialize;
use std::time::Instant;

/// What one run measured (the JSON `funnel bench export --json` prints).
#[derive(Clone, Debug, Serialize)]
pub struct ExportBenchReport {
    /// Events in the generated log, one row each.
    pub events: u64,
    /// Rows written per second: read, decoded, converted and compressed into row groups.
    pub rows_per_s: f64,
    /// `EventStore::read_all` over the same log, decoded into recorded events, nothing else.
    pub read_all_per_s: f64,
    /// `rows_per_s ÷ read_all_per_s`.
    pub export_ratio: f64,
    /// The process's peak resident memory during the export (high-water mark reset before it).
    pub peak_rss_mb: Option<f64>,
    /// Size of the Parquet file.
    pub file_mb: f64,
}

impl std::fmt::Display for ExportBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "Parquet export of {} events", self.events)?;
        writeln!(f, "rows/s        {:.0}", self.rows_per_s)?;
        writeln!(f, "read-all/s    {:.0}", self.read_all_per_s)?;
        writeln!(f, "export_ratio  {:.2}", self.export_ratio)?;
        match self.peak_rss_mb {
            Some(mb) => writeln!(f, "peak RSS      {mb:.0} MB")?,
            None => writeln!(f, "peak RSS      (not available on this system)")?,
        }
        writeln!(f, "file          {:.1} MB", self.file_mb)
    }
}

/// Generates a log of at least `events` (the projections benchmark's replicated demo history) in
/// a scratch store of `target`'s kind, then reads it all and exports it all as Parquet.
pub async fn bench_export_on(
    target: crate::Target,
    events: u64,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<ExportBenchReport> {
    let scratch = Scratch::new(target, "BENCHX").await?;
    let result = run(&scratch, events, progress).await;
    scratch.remove().await;
    result
}

async fn run(
    scratch: &Scratch,
    events: u64,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<ExportBenchReport> {
    let opts = ProjectionBenchOptions {
        events,
        ..ProjectionBenchOptions::default()
    };
    let (total, _) = generate(&scratch.store, &opts, progress).await?;
    let (read, read_all_per_s) = read_all_rate(scratch.store.as_ref(), total, progress).await?;

    let dir = tempfile::tempdir()?;
    let path = dir.path().join("events.parquet");
    peak_rss_reset();
    let t = Instant::now();
    let rows = export(scratch.store.as_ref(), &path, total, progress).await?;
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_rss();
    anyhow::ensure!(
        rows == read,
        "exported {rows} rows of a log of {read} events"
    );
    let rows_per_s = rows as f64 / secs;
    Ok(ExportBenchReport {
        events: rows,
        rows_per_s,
        read_all_per_s,
        export_ratio: rows_per_s / read_all_per_s,
        peak_rss_mb: peak.map(|b| b as f64 / 1_048_576.0),
        file_mb: std::fs::metadata(&path)?.len() as f64 / 1_048_576.0,
    })
}

/// What `funnel export events --format parquet` does, through the same function.
async fn export(
    store: &dyn EventStore,
    path: &std::path::Path,
    total: u64,
    progress: &(dyn Fn(&str, u64, u64) + Sync),
) -> anyhow::Result<u64> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let (mut out, rows) =
        funnel_parquet::write_log(store, Position::START, &Filter::All, file, |rows| {
            progress("export", rows, total)
        })
        .await?;
    std::io::Write::flush(&mut out)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small run on the embedded store exports every event and reports consistent figures.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_small_export_writes_one_row_per_event() {
        let dir = tempfile::tempdir().unwrap();
        let target = crate::Target::Sqlite {
            path: dir.path().join("funnel.db"),
        };
        let r = bench_export_on(target, 1, &|_, _, _| {}).await.unwrap();
        assert!(r.events > 0);
        assert!(r.file_mb > 0.0);
        assert!((r.export_ratio - r.rows_per_s / r.read_all_per_s).abs() < 1e-9);
        let json = serde_json::to_value(&r).unwrap();
        let mut keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "events",
                "export_ratio",
                "file_mb",
                "peak_rss_mb",
                "read_all_per_s",
                "rows_per_s"
            ]
        );
    }
}
