//! `funnel export events`: the raw log, decoded, as NDJSON, CloudEvents JSON lines or an Apache
//! Parquet file; `funnel export leads`: one row per lead of the pipeline, now or as of a moment,
//! as Parquet or NDJSON.

use anyhow::{Context, bail};
use funnel_app::StoreUrl;
use funnel_app::auth::Caller;
use funnel_projections::AsOfInput;
use funnel_store::Filter;
use funnel_types::Position;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum ExportWhat {
    /// Every event after a position: one JSON object per line, or one Parquet row per event.
    Events {
        /// Export events after this position (0: from the start).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// `ndjson`: the envelope's fields with the payload under `payload`; `cloudevents`:
        /// CloudEvents 1.0 structured JSON; `parquet`: typed columns for the envelope and the
        /// payload as JSON text (needs `--out`).
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
        /// Only streams of these categories (`lead`, `staff`, `office`, `plan`, `summary`).
        #[arg(long = "category")]
        categories: Vec<String>,
        /// Write to this file instead of standard output (required for Parquet). The file is
        /// written beside under a temporary name and renamed when complete; it is readable by its
        /// owner only, as it holds customers' and key persons' personal data.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// One row per lead of the pipeline read model: office, customer, owner, channel, purchase
    /// mode, stage and since when, amount and tier, last visit, days idle and ageing.
    Leads {
        /// As of a date (YYYY-MM-DD, the end of that day in the office's time zone, or
        /// headquarters' for every office), an RFC 3339 date-time, or a log position; now when
        /// absent.
        #[arg(long, value_parser = crate::query::parse_as_of)]
        as_of: Option<AsOfInput>,
        /// One office, by code (`SH`), name or id; every office when absent.
        #[arg(long)]
        office: Option<String>,
        /// `parquet` (needs `--out`) or `ndjson` (one JSON object per lead).
        #[arg(long, value_enum, default_value_t = LeadsFormat::Parquet)]
        format: LeadsFormat,
        /// Write to this file instead of standard output (required for Parquet).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    Cloudevents,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LeadsFormat {
    Parquet,
    Ndjson,
}

pub async fn run(url: &StoreUrl, projections: &Path, args: ExportArgs) -> anyhow::Result<()> {
    match args.what {
        ExportWhat::Events {
            from,
            format,
            categories,
            out,
        } => events(url, Position(from), format, categories, out).await,
        ExportWhat::Leads {
            as_of,
            office,
            format,
            out,
        } => leads(url, projections, as_of, office, format, out).await,
    }
}

/// A file written under a temporary name beside its destination, private to its owner, and
/// renamed into place only when complete (an interrupted export leaves no file that looks whole).
struct OutFile {
    tmp: PathBuf,
    dest: PathBuf,
}

impl OutFile {
    fn create(dest: &Path) -> anyhow::Result<(OutFile, std::fs::File)> {
        let name = dest
            .file_name()
            .with_context(|| format!("`{}` is not a file name", dest.display()))?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(".partial");
        let tmp = dest.with_file_name(tmp_name);
        let file = funnel_store::files::create_private(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        Ok((
            OutFile {
                tmp,
                dest: dest.to_path_buf(),
            },
            file,
        ))
    }

    fn commit(self, file: std::fs::File) -> anyhow::Result<()> {
        file.sync_all()
            .with_context(|| format!("cannot write {}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.dest)
            .with_context(|| format!("cannot rename to {}", self.dest.display()))
    }
}

impl Drop for OutFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.tmp);
    }
}

fn spinner(what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {what} {{pos}} rows ({{per_sec}}) {{msg}}"
        ))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    bar
}

async fn events(
    url: &StoreUrl,
    from: Position,
    format: Format,
    categories: Vec<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    if format == Format::Parquet && out.is_none() {
        bail!(
            "Parquet is a binary file: name it with `--out FILE` (e.g. `--out events.parquet`) / Parquet 是二进制文件，请用 `--out 文件名` 指定输出文件"
        );
    }
    let store = funnel_app::open(url).await?;
    let filter = if categories.is_empty() {
        Filter::All
    } else {
        Filter::Categories(categories)
    };
    let mut after = from;
    if format == Format::Parquet {
        let dest = out.unwrap_or_default();
        let (guard, file) = OutFile::create(&dest)?;
        let bar = spinner("export");
        let (out, rows) = funnel_parquet::write_log(
            store.as_ref(),
            after,
            &filter,
            std::io::BufWriter::new(file),
            |rows| bar.set_position(rows),
        )
        .await?;
        let file = out
            .into_inner()
            .map_err(|e| anyhow::anyhow!("cannot write {}: {}", dest.display(), e.error()))?;
        guard.commit(file)?;
        bar.finish_and_clear();
        eprintln!("{rows} events written to {}", dest.display());
        return Ok(());
    }
    let mut sink = Sink::open(out.as_deref())?;
    loop {
        let batch = store.read_all(after, &filter, 4096).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for rec in &batch {
            let env = funnel_codec::decode_recorded(rec)?;
            let line = match format {
                Format::Cloudevents => funnel_codec::to_cloudevent(&env),
                _ => funnel_codec::to_ndjson(&env),
            };
            if !sink.line(&line.to_string())? {
                return Ok(());
            }
        }
    }
    sink.close()
}

async fn leads(
    url: &StoreUrl,
    projections: &Path,
    as_of: Option<AsOfInput>,
    office: Option<String>,
    format: LeadsFormat,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    if format == LeadsFormat::Parquet && out.is_none() {
        bail!(
            "Parquet is a binary file: name it with `--out FILE` (e.g. `--out leads.parquet`) / Parquet 是二进制文件，请用 `--out 文件名` 指定输出文件"
        );
    }
    let reads = crate::query::reads(url, projections, None).await?;
    let q = funnel_app::query::reports::ReportQuery {
        office,
        as_of,
        at_least: None,
    };
    let list = funnel_app::query::reports::leads(&reads, &Caller::local_operator(), q).await?;
    match format {
        LeadsFormat::Parquet => {
            let dest = out.unwrap_or_default();
            let (guard, file) = OutFile::create(&dest)?;
            let (buffered, rows) =
                funnel_parquet::write_leads(&list.leads, std::io::BufWriter::new(file))?;
            let file = buffered
                .into_inner()
                .map_err(|e| anyhow::anyhow!("cannot write {}: {}", dest.display(), e.error()))?;
            guard.commit(file)?;
            eprintln!(
                "{rows} leads written to {} (position {}, as of {})",
                dest.display(),
                list.position,
                list.as_of.as_deref().unwrap_or("-")
            );
            Ok(())
        }
        LeadsFormat::Ndjson => {
            let mut sink = Sink::open(out.as_deref())?;
            for row in &list.leads {
                let line = serde_json::to_string(&row)?;
                if !sink.line(&line)? {
                    return Ok(());
                }
            }
            sink.close()
        }
    }
}

/// Where JSON lines go: standard output (a closed pipe, as with `| head`, ends quietly) or a
/// private file renamed into place when complete.
enum Sink {
    Stdout(std::io::BufWriter<std::io::StdoutLock<'static>>),
    File(std::io::BufWriter<std::fs::File>, OutFile),
}

impl Sink {
    fn open(out: Option<&Path>) -> anyhow::Result<Sink> {
        Ok(match out {
            None => Sink::Stdout(std::io::BufWriter::new(std::io::stdout().lock())),
            Some(path) => {
                let (guard, file) = OutFile::create(path)?;
                Sink::File(std::io::BufWriter::new(file), guard)
            }
        })
    }

    /// Writes one line; `false` when standard output was closed by its reader.
    fn line(&mut self, line: &str) -> anyhow::Result<bool> {
        match self {
            Sink::Stdout(out) => match writeln!(out, "{line}") {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
                Err(e) => Err(e.into()),
            },
            Sink::File(out, _) => {
                writeln!(out, "{line}")?;
                Ok(true)
            }
        }
    }

    fn close(self) -> anyhow::Result<()> {
        match self {
            Sink::Stdout(mut out) => match out.flush() {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            },
            Sink::File(out, guard) => {
                let file = out
                    .into_inner()
                    .map_err(|e| anyhow::anyhow!("cannot write: {}", e.error()))?;
                guard.commit(file)
            }
        }
    }
}
