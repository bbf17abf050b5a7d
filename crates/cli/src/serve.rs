//! `funnel serve`: the HTTP API, the projection runner and the sagas in one process. `serve --demo`
//! is in `serve_demo`.
//!
//! Settings are layered by `funnel_server::ServeOptions::load`: defaults, `--config FILE`,
//! `FUNNEL__SECTION__KEY` variables, then flags. The global `--store`/`--projections` count as flags
//! only when given explicitly (`--store` on the command line or `FUNNEL_STORE` set), so a
//! `[store] url` in the file is not silently replaced by the default.

use anyhow::Context;
use funnel_server::ServeOptions;
use serde_json::Value;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (e.g. `127.0.0.1:8080`; port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
    /// Also serve the KurrentDB/EventStoreDB client protocol (gRPC, plaintext) on this address
    /// (`grpc.listen`, e.g. `127.0.0.1:2113`; off by default). Clients connect with
    /// `kurrentdb://funnel:TOKEN@HOST:PORT?tls=false`: the password is a Funnel API token.
    #[arg(long, value_name = "ADDR")]
    pub grpc: Option<String>,
    /// A TOML file of settings (sections `http`, `grpc`, `store`, `log`, `ready`, `workflows`, `notify`;
    /// `deploy/funnel.toml` lists them).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `text` or `json` logs on standard error.
    #[arg(long)]
    pub log_format: Option<String>,
    /// JetStream replicas of the log stream when it is created (`store.replicas`; default 3 when
    /// `--store` names several cluster members, else 1). An existing stream keeps its own.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub replicas: Option<u64>,
    /// JetStream replicas of the notification stream (`store.notify_replicas`; default: as the log).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=5))]
    pub notify_replicas: Option<u64>,
    /// Do not run the sagas in this process.
    #[arg(long)]
    pub no_workflows: bool,
    /// Load the demo history into the store first (idempotent: a second start writes nothing),
    /// issue demo API tokens the first time (kept beside the store for restarts), and print where
    /// to look once listening.
    #[arg(long)]
    pub demo: bool,
    /// Number of leads in the demo history (with `--demo`).
    #[arg(long, default_value_t = 500, requires = "demo",
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub demo_leads: u64,
    /// Last day of the demo history (YYYY-MM-DD, with `--demo`; default: yesterday, or the day
    /// the demo already in the store ended).
    #[arg(long, value_name = "DATE", requires = "demo")]
    pub demo_end: Option<chrono::NaiveDate>,
}

fn explicit_store() -> bool {
    std::env::var_os("FUNNEL_STORE").is_some()
        || std::env::args().any(|a| a == "--store" || a.starts_with("--store="))
}

pub fn run(store: &str, projections: Option<&Path>, args: ServeArgs) -> anyhow::Result<()> {
    let mut flags: Vec<(&str, Value)> = Vec::new();
    if explicit_store() {
        flags.push(("store.url", Value::String(store.to_string())));
    }
    if let Some(p) = projections {
        flags.push(("store.projections", Value::String(p.display().to_string())));
    }
    if let Some(k) = funnel_app::privacy::default_settings().master_key_file {
        flags.push((
            "privacy.master_key_file",
            Value::String(k.display().to_string()),
        ));
    }
    if let Some(l) = args.listen {
        flags.push(("http.listen", Value::String(l)));
    }
    if let Some(g) = args.grpc {
        flags.push(("grpc.listen", Value::String(g)));
    }
    if let Some(f) = args.log_format {
        flags.push(("log.format", Value::String(f)));
    }
    if let Some(n) = args.replicas {
        flags.push(("store.replicas", Value::from(n)));
    }
    if let Some(n) = args.notify_replicas {
        flags.push(("store.notify_replicas", Value::from(n)));
    }
    if args.no_workflows {
        flags.push(("workflows.enabled", Value::Bool(false)));
    }
    let options = ServeOptions::load(args.config.as_deref(), std::env::vars(), &flags)
        .context("invalid settings for `funnel serve`")?;
    funnel_server::init_logging(&options.log);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let demo = args
        .demo
        .then_some((args.demo_leads as usize, args.demo_end));
    rt.block_on(async move {
        let demo = match demo {
            Some((leads, end)) => Some(crate::serve_demo::prepare(&options, leads, end).await?),
            None => None,
        };
        // The handlers are in place before the server says it listens: a SIGTERM sent as soon as
        // that line is read stops it cleanly rather than killing it.
        let shutdown = shutdown_signal()?;
        funnel_server::serve(options, shutdown, |addr| {
            // One line on standard output for scripts and tests to find the port.
            println!("funnel serve listening on http://{addr}");
            if let Some(demo) = &demo {
                demo.print(addr);
            }
        })
        .await?;
        Ok(())
    })
}

/// Installs the ctrl-c and SIGTERM handlers now and returns a future that completes on either.
/// (`tokio::signal::ctrl_c()` would install its handler only when first polled, which leaves a
/// moment in which the signal's default action ends the process without saving anything.)
fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
