//! `funnel tail`: follows the log live (from the head, or from a position), filtered by office and
//! event kind, as text lines, JSON lines or CloudEvents.

use anyhow::Context;
use funnel_app::StoreUrl;
use funnel_notify::Kinds;
use funnel_store::SubscriptionItem;
use funnel_types::Position;
use futures::StreamExt;
use std::io::Write;

#[derive(Debug, clap::Args)]
pub struct TailArgs {
    /// Only events of this office (code such as `SH`, name or id).
    #[arg(long)]
    pub office: Option<String>,
    /// Only these event kinds: exact types (`lead.stage_changed`) or a prefix with `*` (`lead.*`).
    #[arg(long = "kind", num_args = 1..)]
    pub kinds: Vec<String>,
    /// Start after this position (0: the whole log); the default is the head, so only new events.
    #[arg(long)]
    pub from: Option<u64>,
    /// Stop after this many events.
    #[arg(long)]
    pub count: Option<u64>,
    /// One JSON object per line (envelope fields and `payload`).
    #[arg(long, conflicts_with = "cloudevents")]
    pub json: bool,
    /// One CloudEvents 1.0 JSON object per line.
    #[arg(long)]
    pub cloudevents: bool,
}

pub async fn run(url: &StoreUrl, args: TailArgs) -> anyhow::Result<()> {
    let store = funnel_app::open(url).await?;
    let kinds = Kinds::parse(&args.kinds)?;
    let offices = funnel_notify::offices(store.as_ref()).await?;
    let mut zones = funnel_projections::zones(store.as_ref()).await?;
    let office = match &args.office {
        Some(text) => Some(
            funnel_notify::find_office(&offices, text)
                .with_context(|| format!("no office `{text}`"))?,
        ),
        None => None,
    };
    let from = match args.from {
        Some(p) => Position(p),
        None => store.head().await?,
    };
    let mut sub = store.clone().subscribe(from, kinds.filter());
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut seen = 0u64;
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let item = tokio::select! {
            item = sub.next() => item,
            _ = &mut shutdown => break,
        };
        let Some(item) = item else { break };
        match item? {
            SubscriptionItem::CaughtUp(p) => {
                if !args.json && !args.cloudevents {
                    eprintln!("-- live from position {p} --");
                }
            }
            SubscriptionItem::Event(rec) => {
                if !kinds.admits(&rec.meta.event_type)
                    || office.is_some_and(|o| rec.meta.office != Some(o))
                {
                    continue;
                }
                let env = funnel_codec::decode_recorded(&rec)?;
                zones.apply(&env.payload);
                let line = if args.cloudevents {
                    funnel_codec::to_cloudevent(&env).to_string()
                } else if args.json {
                    let mut v = serde_json::to_value(&env.meta)?;
                    v["payload"] = funnel_codec::payload_value(&env.payload);
                    v.to_string()
                } else {
                    let code = env
                        .meta
                        .office
                        .and_then(|o| offices.get(&o))
                        .map(|o| o.code.as_str())
                        .unwrap_or("HQ");
                    // On the clock of the event's office, its zone named (headquarters' for
                    // events of no office).
                    let tz = zones.office_zone(env.meta.office);
                    let at = funnel_domain::time::local_minute(env.meta.occurred_at, tz);
                    format!(
                        "{:>10}  {at} {tz}  {code:<3} {:<36} {}  {}",
                        env.meta.position, env.meta.event_type, env.meta.stream, env.meta.actor
                    )
                };
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    // A closed pipe ends the tail quietly.
                    return Ok(());
                }
                seen += 1;
                if args.count.is_some_and(|c| seen >= c) {
                    break;
                }
            }
        }
    }
    Ok(())
}
