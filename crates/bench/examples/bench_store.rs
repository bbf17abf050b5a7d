//! Runs the store benchmark from the command line until `funnel bench store` exists:
//! `cargo run --release -p funnel-bench --example bench_store -- sqlite <path> | nats <url>`
//! with optional `events=N payload=N in_flight=N streams=N`. Prints the table, then the JSON report.

use funnel_bench::{StoreBenchOptions, Target, bench_store};
use std::cell::Cell;
use std::path::PathBuf;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bench_store (sqlite <path> | nats <url>) [events=N] [payload=N] [in_flight=N] [streams=N]";
    let target = match (args.first().map(String::as_str), args.get(1)) {
        (Some("sqlite"), Some(path)) => Target::Sqlite {
            path: PathBuf::from(path),
        },
        (Some("nats"), Some(url)) => Target::Nats { url: url.clone() },
        _ => anyhow::bail!("{usage}"),
    };
    let mut opts = StoreBenchOptions::default();
    for arg in &args[2..] {
        let (key, value) = arg
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("{usage}"))?;
        let value: usize = value.parse()?;
        match key {
            "events" => opts.events = value,
            "payload" => opts.payload_bytes = value,
            "in_flight" => opts.in_flight = value,
            "streams" => opts.streams = value,
            _ => anyhow::bail!("{usage}"),
        }
    }
    let last = Cell::new((String::new(), 0u64));
    let progress = |phase: &str, done: u64, total: u64| {
        let (p, d) = last.take();
        // One line per phase start, per tenth done, and per phase end.
        let step = (total / 10).max(1);
        if p != phase || done / step != d / step {
            eprintln!("{phase}: {done}/{total}");
        }
        last.set((phase.to_string(), done));
    };
    let report = bench_store(target, opts, &progress).await?;
    println!("{report}");
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
