//! `funnel export events`: streams the raw log, decoded, as NDJSON or CloudEvents JSON lines.

use funnel_app::StoreUrl;
use funnel_store::Filter;
use funnel_types::Position;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(subcommand)]
    pub what: ExportWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum ExportWhat {
    /// Every event after a position, one JSON object per line.
    Events {
        /// Export events after this position (0: from the start).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// `ndjson`: the envelope's fields with the payload under `payload`; `cloudevents`:
        /// CloudEvents 1.0 structured JSON.
        #[arg(long, value_enum, default_value_t = Format::Ndjson)]
        format: Format,
        /// Only streams of these categories (`lead`, `staff`, `office`, `plan`, `summary`).
        #[arg(long = "category")]
        categories: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Ndjson,
    Cloudevents,
}

pub async fn run(url: &StoreUrl, args: ExportArgs) -> anyhow::Result<()> {
    let ExportWhat::Events {
        from,
        format,
        categories,
    } = args.what;
    let store = funnel_app::open(url).await?;
    let filter = if categories.is_empty() {
        Filter::All
    } else {
        Filter::Categories(categories)
    };
    let mut after = Position(from);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    loop {
        let batch = store.read_all(after, &filter, 4096).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for rec in &batch {
            let env = funnel_codec::decode_recorded(rec)?;
            let line = match format {
                Format::Cloudevents => funnel_codec::to_cloudevent(&env),
                Format::Ndjson => funnel_codec::to_ndjson(&env),
            };
            if let Err(e) = writeln!(out, "{line}") {
                // A closed pipe (`| head`) ends the export quietly.
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    return Ok(());
                }
                return Err(e.into());
            }
        }
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
