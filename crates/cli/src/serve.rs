//! `funnel serve` (the HTTP API, the projection runner and the sagas in one process) and
//! `funnel staff` (API tokens and the staff list). `serve --demo` is in `serve_demo`.
//!
//! Settings are layered by `funnel_server::ServeOptions::load`: defaults, `--config FILE`,
//! `FUNNEL__SECTION__KEY` variables, then flags. The global `--store`/`--projections` count as flags
//! only when given explicitly (`--store` on the command line or `FUNNEL_STORE` set), so a
//! `[store] url` in the file is not silently replaced by the default.

use anyhow::Context;
use funnel_domain::Policy;
use funnel_engine::{Engine, StoreUrl, Who};
use funnel_server::ServeOptions;
use funnel_types::SystemClock;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (e.g. `127.0.0.1:8080`; port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
    /// A TOML file of settings (sections `http`, `store`, `log`, `ready`, `workflows`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// `text` or `json` logs on standard error.
    #[arg(long)]
    pub log_format: Option<String>,
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
    if let Some(l) = args.listen {
        flags.push(("http.listen", Value::String(l)));
    }
    if let Some(f) = args.log_format {
        flags.push(("log.format", Value::String(f)));
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
    let demo = args.demo.then_some(args.demo_leads as usize);
    rt.block_on(async move {
        let demo = match demo {
            Some(leads) => Some(crate::serve_demo::prepare(&options, leads).await?),
            None => None,
        };
        funnel_server::serve(options, shutdown_signal(), |addr| {
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

/// Completes on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

#[derive(Debug, clap::Args)]
pub struct StaffArgs {
    #[command(subcommand)]
    pub what: StaffWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum StaffWhat {
    /// Issue an API token to a member of staff (shown once), or revoke one with `--revoke`.
    Token {
        /// The member of staff: id or exact name.
        staff: String,
        /// Revoke this token id instead of issuing a new token.
        #[arg(long)]
        revoke: Option<uuid::Uuid>,
        /// Act as this member of staff (sales department or executive); the system otherwise.
        #[arg(long = "as")]
        acting: Option<String>,
    },
    /// Every member of staff with role, office and tokens.
    List {
        #[arg(long)]
        json: bool,
    },
}

pub async fn staff(url: &StoreUrl, args: StaffArgs) -> anyhow::Result<()> {
    let store = crate::cli::open(url).await?;
    let directory = funnel_server::tokens::directory(store.as_ref()).await?;
    let engine = Engine::new(store, Policy::default(), Arc::new(SystemClock));
    match args.what {
        StaffWhat::Token {
            staff,
            revoke,
            acting,
        } => {
            let id = funnel_server::tokens::find(&directory, &staff).map_err(anyhow::Error::msg)?;
            let who = match acting {
                Some(a) => Who::Staff(
                    funnel_server::tokens::find(&directory, &a).map_err(anyhow::Error::msg)?,
                ),
                None => Who::System("funnel-cli".into()),
            };
            match revoke {
                Some(token_id) => {
                    let p = funnel_server::tokens::revoke(&engine, who, id, token_id).await?;
                    println!("revoked token {token_id} of {staff} (position {p})");
                }
                None => {
                    let t = funnel_server::tokens::issue(&engine, who, id).await?;
                    println!("token id: {}", t.token_id);
                    println!("token:    {}", t.token);
                    println!(
                        "(shown once; only its SHA-256 is recorded; position {})",
                        t.position
                    );
                }
            }
        }
        StaffWhat::List { json } => {
            let mut rows = Vec::new();
            for (id, s) in &directory.staff {
                let tokens: Vec<Value> = directory
                    .tokens
                    .values()
                    .filter(|t| t.staff_id == *id)
                    .map(|t| serde_json::json!({ "token_id": t.token_id, "revoked": t.revoked }))
                    .collect();
                rows.push(serde_json::json!({
                    "staff_id": id, "name": s.name, "role": s.role, "office": s.office,
                    "active": s.active, "tokens": tokens,
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
                return Ok(());
            }
            for r in &rows {
                println!(
                    "{}  {:<24} {:<24} active={} tokens={}",
                    r["staff_id"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or(""),
                    r["role"].as_str().unwrap_or(""),
                    r["active"],
                    r["tokens"].as_array().map_or(0, Vec::len)
                );
            }
        }
    }
    Ok(())
}
