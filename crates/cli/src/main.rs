//! The `funnel` command-line tool: one binary for serving, loading demo history, querying and
//! benchmarking. Errors are reported with `anyhow` here, at the edge; library crates have typed ones.

mod audit_text;
mod bench;
mod cli;
mod contract;
mod demo;
mod export;
mod forms;
mod import;
mod keys;
mod lead;
mod leads;
mod org;
mod privacy;
mod projections;
mod query;
mod serve;
mod serve_demo;
mod store;
mod tail;
mod text;
mod verify;
mod workflows;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Output piped into a reader that stops early (`| head`) ends the command quietly.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.to_string().contains("Broken pipe") {
            std::process::exit(0);
        }
        default_hook(info);
    }));
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // The application layer's answers carry a Chinese message too: shown beneath.
            if let Some(app) = e.downcast_ref::<funnel_app::AppError>() {
                eprintln!("错误：{}", app.message_zh);
            }
            std::process::ExitCode::from(1)
        }
    }
}
