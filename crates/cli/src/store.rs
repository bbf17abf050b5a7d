//! `funnel store`: the JetStream streams behind `--store nats://…` — their replicas, leaders and
//! peers (`status`), and changing a stream's replicas (`set-replicas`), which `funnel serve` never
//! does on its own because moving a stream copies all of it.

use anyhow::{Context, bail};
use funnel_app::StoreUrl;
use funnel_store_nats::ReplicaProgress;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    pub command: StoreCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Replicas, leader and peers of the log stream and the notification stream.
    Status {
        /// The notification stream's name (`notify.nats_stream`).
        #[arg(long, default_value = "FUNNEL_NOTIFY")]
        notify_stream: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a stream's replicas and wait until every replica is current, showing progress.
    SetReplicas {
        /// 1 to 5 (3 on a three-node cluster).
        #[arg(value_parser = clap::value_parser!(u64).range(1..=5))]
        replicas: u64,
        /// The stream: `FUNNEL` (the log) or `FUNNEL_NOTIFY` (notifications).
        #[arg(long, default_value = "FUNNEL")]
        stream: String,
        /// How long to wait for the replicas to be current, in seconds (the change goes on after).
        #[arg(long, default_value_t = 600)]
        wait: u64,
    },
}

fn nats_url(store: &StoreUrl) -> anyhow::Result<&str> {
    match store {
        StoreUrl::Nats(url) => Ok(url),
        StoreUrl::Sqlite(p) => bail!(
            "`funnel store` manages JetStream streams; --store is the SQLite file {} \
             (pass --store nats://HOST:PORT[,…])",
            p.display()
        ),
    }
}

fn json(p: &ReplicaProgress) -> serde_json::Value {
    serde_json::json!({
        "stream": p.stream,
        "replicas": p.wanted,
        "leader": p.leader,
        "messages": p.messages,
        "current": p.done(),
        "peers": p.peers.iter().map(|(name, current, lag)| serde_json::json!({
            "name": name, "current": current, "lag": lag,
        })).collect::<Vec<_>>(),
    })
}

pub async fn run(store: &StoreUrl, args: StoreArgs) -> anyhow::Result<()> {
    let url = nats_url(store)?;
    match args.command {
        StoreCommand::Status {
            notify_stream,
            json: as_json,
        } => {
            let mut all = Vec::new();
            for name in ["FUNNEL", notify_stream.as_str()] {
                match funnel_store_nats::stream_replicas(url, name).await {
                    Ok(p) => all.push(p),
                    Err(e) if e.to_string().contains("error code 10059") => {
                        eprintln!("{name}: not created yet (`funnel serve` creates it)")
                    }
                    Err(e) => eprintln!("{name}: {e}"),
                }
            }
            if as_json {
                let list: Vec<_> = all.iter().map(json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for p in &all {
                    println!("{p}");
                }
            }
            Ok(())
        }
        StoreCommand::SetReplicas {
            replicas,
            stream,
            wait,
        } => {
            let replicas = usize::try_from(replicas).context("replicas")?;
            eprintln!("changing the replicas of {stream} to {replicas} …");
            let mut last = String::new();
            let done = funnel_store_nats::set_replicas(
                url,
                &stream,
                replicas,
                Duration::from_secs(wait),
                &mut |p| {
                    let line = p.to_string();
                    if line != last {
                        eprintln!("{line}");
                        last = line;
                    }
                },
            )
            .await?;
            if done.done() {
                println!("{stream}: {replicas} replicas, all current");
                Ok(())
            } else {
                bail!(
                    "{stream} is not fully replicated after {wait} s ({done}); the broker goes on \
                     moving it: look again with `funnel store status`"
                )
            }
        }
    }
}
