//! `funnel tail`: follows the log live (from the head, or from a position), filtered by office and
//! event kind, as text lines, JSON lines or CloudEvents.

use anyhow::{Context, bail};
use funnel_engine::StoreUrl;
use funnel_store::{EventStore, Filter, SubscriptionItem};
use funnel_types::{OfficeId, Position};
use futures::StreamExt;
use std::collections::BTreeMap;
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

/// Which event types a `--kind` list admits.
#[derive(Debug, Clone)]
pub struct Kinds(Vec<String>);

impl Kinds {
    pub fn parse(kinds: &[String]) -> anyhow::Result<Kinds> {
        let known: Vec<&str> = funnel_domain::EVENT_TYPES.iter().map(|(t, _)| *t).collect();
        for k in kinds {
            let matches = match k.strip_suffix('*') {
                Some(prefix) => known.iter().any(|t| t.starts_with(prefix)),
                None => known.contains(&k.as_str()),
            };
            if !matches {
                bail!("no event kind matches `{k}`; `funnel events` lists them");
            }
        }
        Ok(Kinds(kinds.to_vec()))
    }

    pub fn admits(&self, event_type: &str) -> bool {
        self.0.is_empty()
            || self.0.iter().any(|k| match k.strip_suffix('*') {
                Some(prefix) => event_type.starts_with(prefix),
                None => k == event_type,
            })
    }

    /// The stream categories that can hold these kinds (the part of the type before the dot).
    pub fn filter(&self) -> Filter {
        if self.0.is_empty() || self.0.iter().any(|k| k == "*") {
            return Filter::All;
        }
        let mut cats: Vec<String> = self
            .0
            .iter()
            .filter_map(|k| k.split('.').next())
            .map(|c| c.trim_end_matches('*').to_string())
            .collect();
        cats.sort();
        cats.dedup();
        if cats.iter().any(|c| c.is_empty()) {
            Filter::All
        } else {
            Filter::Categories(cats)
        }
    }
}

/// Office codes by id, and the id of the office a `--office` argument names.
async fn offices(store: &dyn EventStore) -> anyhow::Result<BTreeMap<OfficeId, (String, String)>> {
    let mut out = BTreeMap::new();
    let mut after = Position::START;
    loop {
        let batch = store
            .read_all(after, &Filter::category("office"), 1024)
            .await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for r in &batch {
            if let Ok(env) = funnel_codec::decode_recorded(r)
                && let funnel_domain::Event::OfficeOpened(o) = env.payload
            {
                out.insert(o.office_id, (o.code, o.name));
            }
        }
    }
    Ok(out)
}

pub async fn run(url: &StoreUrl, args: TailArgs) -> anyhow::Result<()> {
    let store = crate::cli::open(url).await?;
    let kinds = Kinds::parse(&args.kinds)?;
    let offices = offices(store.as_ref()).await?;
    let office = match &args.office {
        Some(text) => Some(
            offices
                .iter()
                .find(|(id, (code, name))| {
                    id.to_string() == *text || code.eq_ignore_ascii_case(text) || name == text
                })
                .map(|(id, _)| *id)
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
                        .map(|(c, _)| c.as_str())
                        .unwrap_or("HQ");
                    let at = (env.meta.occurred_at + chrono::Duration::hours(8))
                        .format("%Y-%m-%d %H:%M");
                    format!(
                        "{:>10}  {at}  {code:<3} {:<36} {}  {}",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_filter_by_exact_type_or_prefix_and_refuse_unknown_ones() {
        let k = Kinds::parse(&["lead.stage_changed".into(), "plan.*".into()]).unwrap();
        assert!(
            k.admits("lead.stage_changed")
                && k.admits("plan.overdue")
                && !k.admits("lead.registered")
        );
        assert_eq!(
            k.filter(),
            Filter::Categories(vec!["lead".into(), "plan".into()])
        );
        assert!(
            Kinds::parse(&["lead.teleported".into()])
                .unwrap_err()
                .to_string()
                .contains("funnel events")
        );
        assert_eq!(Kinds::parse(&[]).unwrap().filter(), Filter::All);
    }
}
