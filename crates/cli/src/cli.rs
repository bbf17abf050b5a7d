//! Command-line arguments and dispatch.

use clap::{Parser, Subcommand};

/// Funnel: an event-sourced sales workflow engine. Every business fact is an immutable event; read
/// models and approval workflows are derived from the log.
#[derive(Debug, Parser)]
#[command(name = "funnel", version, propagate_version = true)]
pub struct Cli {
    /// Where the event log lives: `sqlite:PATH` (embedded, the default) or `nats://HOST:PORT`.
    #[arg(
        long,
        global = true,
        env = "FUNNEL_STORE",
        default_value = "sqlite:.funnel/funnel.db"
    )]
    pub store: String,

    /// Where the read models are kept (default: beside the store file, or under `.funnel/` for NATS).
    #[arg(long, global = true, env = "FUNNEL_PROJECTIONS")]
    pub projections: Option<std::path::PathBuf>,

    /// The master key that seals personal fields (`funnel privacy keygen`); without it they are
    /// written in the clear, and a log whose fields are sealed is refused.
    #[arg(long, global = true, env = "FUNNEL_PRIVACY_KEY_FILE")]
    pub privacy_key_file: Option<std::path::PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, projections and workflows in one process.
    Serve(crate::serve::ServeArgs),
    /// Write a realistic, deterministic demo history through the real command path.
    Demo(crate::demo::DemoArgs),
    /// One of the manual's six standard forms from the record, as a printable page or a spreadsheet.
    Form(crate::forms::FormArgs),
    /// An office's forms for a period as one spreadsheet workbook (.xlsx, a sheet per form).
    Forms(crate::forms::WorkbookArgs),
    /// Who touched which lead, ownership conflicts, refused touches, plan compliance.
    Audit(crate::query::AuditArgs),
    /// Find leads: by customer, project, contact name or phone, with filters, sort and pages.
    Leads(crate::leads::LeadsArgs),
    /// An office's pipeline and funnel, as of any date or position.
    Pipeline(crate::query::PipelineArgs),
    /// Read-model status (version, checkpoint, lag, parked events), and rebuilds.
    Projections(crate::projections::ProjectionsArgs),
    /// List the workflow (saga) instances without running anything; `run` runs them until idle;
    /// show one; retry parked reactions.
    Workflows(crate::workflows::WorkflowsArgs),
    /// A lead's whole record and timeline.
    Lead(crate::lead::LeadArgs),
    /// Open tasks per person, and since when.
    Tasks(crate::workflows::TasksArgs),
    /// Follow the log live, by office and event kind.
    Tail(crate::tail::TailArgs),
    /// Offices: open one, list them.
    Office(crate::org::OfficeArgs),
    /// The working calendar: public holidays and make-up working days of a year.
    Calendar(crate::org::CalendarArgs),
    /// Staff: add, reassign, leave, list, and API tokens.
    Staff(crate::org::StaffArgs),
    /// The JetStream streams: replicas, leaders and peers; change a stream's replicas.
    Store(crate::store::StoreArgs),
    /// Measure the store and projections against raw baselines.
    Bench(crate::bench::BenchArgs),
    /// Import what `funnel export events` wrote (NDJSON or CloudEvents) into this store: every
    /// event keeps its id, stream, version and ids; re-running writes only what is missing.
    Import(crate::import::ImportArgs),
    /// Export the log (NDJSON, CloudEvents or Parquet) or the lead list (Parquet or NDJSON).
    Export(crate::export::ExportArgs),
    /// Print or write the JSON Schemas of every event type and the envelope.
    Schemas(crate::contract::SchemasArgs),
    /// List every event type with its schema version; `--examples` prints an example payload of each.
    Events(crate::contract::EventsArgs),
    /// List every refusal code a command can answer with.
    Refusals,
    /// Walk the log, its hash chain and the signed checkpoints of its head: whether anything was
    /// changed, removed, reordered, inserted or cut off, and where first (exit status 1 when so).
    Verify(crate::verify::VerifyArgs),
    /// Signed checkpoints of the hash chain's head: make the signing key, sign the head now.
    Checkpoint(crate::verify::CheckpointArgs),
    /// Personal data of customers' contacts and key persons: the master key that seals it, a
    /// person's data on request (export), and erasing it.
    Privacy(crate::privacy::PrivacyArgs),
    /// Reserve the current customer keys of leads registered before look-alike names were folded
    /// into the key, so that a look-alike registered later collides with them (`funnel serve` does
    /// this at start; re-running writes only what is missing).
    ReserveKeys,
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let store: funnel_app::StoreUrl = cli.store.parse().map_err(|e: String| anyhow::anyhow!(e))?;
    let projections = cli
        .projections
        .clone()
        .unwrap_or_else(|| crate::projections::default_path(&store));
    let privacy = funnel_app::privacy::PrivacySettings {
        master_key_file: cli.privacy_key_file.clone(),
        keys_file: None,
    };
    funnel_app::privacy::set_default(privacy.clone());
    match cli.command {
        Command::Serve(a) => crate::serve::run(&cli.store, cli.projections.as_deref(), a),
        Command::Office(a) => runtime()?.block_on(crate::org::office(&store, a)),
        Command::Calendar(a) => runtime()?.block_on(crate::org::calendar(&store, a)),
        Command::Staff(a) => runtime()?.block_on(crate::org::staff(&store, a)),
        Command::Demo(a) => runtime()?.block_on(crate::demo::run(&store, a)),
        Command::Export(a) => runtime()?.block_on(crate::export::run(&store, &projections, a)),
        Command::Tail(a) => runtime()?.block_on(crate::tail::run(&store, a)),
        Command::Workflows(a) => {
            runtime()?.block_on(crate::workflows::run(&store, &projections, a))
        }
        Command::Lead(a) => runtime()?.block_on(crate::lead::run(&store, &projections, a)),
        Command::Tasks(a) => runtime()?.block_on(crate::workflows::tasks(&store, &projections, a)),
        Command::Pipeline(a) => {
            runtime()?.block_on(crate::query::pipeline(&store, &projections, a))
        }
        Command::Leads(a) => runtime()?.block_on(crate::leads::run(&store, &projections, a)),
        Command::Audit(a) => runtime()?.block_on(crate::query::audit(&store, &projections, a)),
        Command::Projections(a) => {
            runtime()?.block_on(crate::projections::run(&store, &projections, a))
        }
        Command::Store(a) => runtime()?.block_on(crate::store::run(&store, a)),
        Command::Bench(a) => runtime()?.block_on(crate::bench::run(&store, &projections, a)),
        Command::Schemas(a) => crate::contract::schemas(a),
        Command::Events(a) => crate::contract::events(a),
        Command::Refusals => crate::contract::refusals(),
        Command::Form(a) => runtime()?.block_on(crate::forms::run(&store, a)),
        Command::Forms(a) => runtime()?.block_on(crate::forms::workbook(&store, a)),
        Command::Import(a) => runtime()?.block_on(crate::import::run(&store, a)),
        Command::ReserveKeys => runtime()?.block_on(crate::keys::run(&store)),
        Command::Verify(a) => runtime()?.block_on(crate::verify::run(&store, a)),
        Command::Checkpoint(a) => runtime()?.block_on(crate::verify::checkpoint(&store, a)),
        Command::Privacy(a) => {
            runtime()?.block_on(crate::privacy::run(&store, &privacy, &projections, a))
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every command, subcommand, option and positional argument has help text: walks the whole
    /// command tree and lists whatever has none.
    #[test]
    fn every_command_and_argument_is_documented() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if matches!(id, "help" | "version") {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none() && sub.get_long_about().is_none() {
                    missing.push(path.clone());
                }
                walk(sub, &path, missing);
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        let mut missing = Vec::new();
        walk(&cmd, "funnel", &mut missing);
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }
}
