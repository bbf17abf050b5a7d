//! The `funnel` command-line tool: one binary for serving, loading demo history, querying and
//! benchmarking. Errors are reported with `anyhow` here, at the edge; library crates have typed ones.

mod audit_text;
mod bench;
mod cli;
mod contract;
mod demo;
mod export;
mod projections;
mod query;
mod tail;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
