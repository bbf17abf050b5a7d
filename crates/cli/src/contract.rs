//! Commands that describe the event contract: schemas, event types, refusal codes.

use anyhow::Context;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct SchemasArgs {
    /// Write the schema files into this directory (as in the repository's `schemas/`) instead of
    /// printing them as one JSON object.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn schemas(args: SchemasArgs) -> anyhow::Result<()> {
    let files = funnel_codec::schema_files();
    match args.out {
        Some(dir) => {
            for f in &files {
                let path = dir.join(&f.path);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                let text = serde_json::to_string_pretty(&f.schema)? + "\n";
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            println!("wrote {} schemas to {}", files.len(), dir.display());
        }
        None => {
            let all: serde_json::Map<String, serde_json::Value> =
                files.into_iter().map(|f| (f.path, f.schema)).collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Print an example payload of each type as JSON lines.
    #[arg(long)]
    pub examples: bool,
}

pub fn events(args: EventsArgs) -> anyhow::Result<()> {
    if args.examples {
        for e in funnel_codec::examples() {
            let line = serde_json::json!({
                "type": e.event_type(),
                "schema_version": e.schema_version(),
                "data": funnel_codec::payload_value(&e),
            });
            println!("{line}");
        }
        return Ok(());
    }
    for (t, v) in funnel_domain::EVENT_TYPES {
        println!("{t}\tv{v}");
    }
    Ok(())
}

pub fn refusals() -> anyhow::Result<()> {
    for c in funnel_domain::RefusalCode::ALL {
        println!("{c}");
    }
    Ok(())
}
