//! `funnel pipeline` and `funnel audit …`: reports over the read models, now or as of a date or a
//! position, as text, JSON or CSV.

use anyhow::{Context, bail};
use chrono::NaiveDate;
use funnel_app::StoreUrl;
use funnel_projections::ReadModel;
use funnel_projections::models::*;
use funnel_store::{EventStore, Filter};
use funnel_types::{Envelope, LeadId, Position};
use std::fmt::Write as _;

pub use funnel_projections::{AsOf, AsOfInput};

/// Parses `--as-of` (see `AsOfInput`'s `FromStr`); a date is resolved once the zone is known.
pub fn parse_as_of(text: &str) -> Result<AsOfInput, String> {
    text.parse()
}

/// All four read models, folded from the log up to a moment.
#[derive(Debug, Default)]
pub struct Models {
    pub pipeline: Pipeline,
    pub touches: Touches,
    pub conflicts: Conflicts,
    pub plans: PlanCompliance,
    /// The last position applied.
    pub position: Position,
    /// Events parked because a model could not apply them: (position, model, reason).
    pub parked: Vec<(Position, &'static str, String)>,
    /// The zone the report reads dates in and shows times in.
    pub zone: chrono_tz::Tz,
}

impl Models {
    fn apply(&mut self, env: &Envelope<funnel_domain::Event>) {
        let p = env.meta.position;
        for (name, result) in [
            (Pipeline::NAME, self.pipeline.apply(env)),
            (Touches::NAME, self.touches.apply(env)),
            (Conflicts::NAME, self.conflicts.apply(env)),
            (PlanCompliance::NAME, self.plans.apply(env)),
        ] {
            if let Err(reason) = result {
                self.parked.push((p, name, reason));
            }
        }
        self.position = p;
    }
}

/// The read models now (from the persisted runner, caught up first and, with `at_least`, until that
/// position) or as of a moment (folded from the log).
pub async fn load(
    store: &dyn EventStore,
    projections: &std::path::Path,
    as_of: Option<AsOf>,
    at_least: Option<Position>,
) -> anyhow::Result<Models> {
    if as_of.is_some() {
        return fold(store, as_of).await;
    }
    let mut runner = crate::projections::open_runner(projections)?;
    crate::projections::catch_up(&mut runner, store, at_least).await?;
    let parked = runner
        .status()
        .into_iter()
        .flat_map(|s| {
            s.parked
                .into_iter()
                .map(move |p| (p.position, s.name, p.reason))
        })
        .collect();
    Ok(Models {
        pipeline: runner.get::<Pipeline>().cloned().unwrap_or_default(),
        touches: runner.get::<Touches>().cloned().unwrap_or_default(),
        conflicts: runner.get::<Conflicts>().cloned().unwrap_or_default(),
        plans: runner.get::<PlanCompliance>().cloned().unwrap_or_default(),
        position: runner.live_checkpoint(),
        parked,
        zone: funnel_domain::DEFAULT_TIME_ZONE,
    })
}

/// Folds the log into the read models, up to `as_of` (everything when `None`), in one pass. As of a
/// time, the models count time until that moment (days without a visit), not until the last event.
pub async fn fold(store: &dyn EventStore, as_of: Option<AsOf>) -> anyhow::Result<Models> {
    let mut models = Models::default();
    let mut after = Position::START;
    loop {
        let batch = store.read_all(after, &Filter::All, 8192).await?;
        let Some(last) = batch.last() else { break };
        after = last.meta.position;
        for rec in &batch {
            if let Some(AsOf::Position(p)) = as_of
                && rec.meta.position > p
            {
                return Ok(models);
            }
            if as_of.is_some_and(|a| !a.admits(rec)) {
                continue;
            }
            match funnel_codec::decode_recorded(rec) {
                Ok(env) => models.apply(&env),
                Err(e) => {
                    models
                        .parked
                        .push((rec.meta.position, "all", e.to_string()));
                    models.position = rec.meta.position;
                }
            }
        }
    }
    if let Some(t) = as_of.and_then(|a| a.moment()) {
        models.pipeline.complete_until(t);
        models.touches.complete_until(t);
        models.conflicts.complete_until(t);
        models.plans.complete_until(t);
    }
    Ok(models)
}

#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct PipelineArgs {
    /// One office, by code (`SH`), name or id; every office when absent.
    #[arg(long)]
    pub office: Option<String>,
    /// Compute as of a date (YYYY-MM-DD, the end of that day in the office's time zone, or
    /// headquarters' for every office), an RFC 3339 date-time, or a log position.
    #[arg(long, value_parser = parse_as_of)]
    pub as_of: Option<AsOfInput>,
    /// Wait until the read models include this position (read-your-writes after a command).
    #[arg(long, conflicts_with = "as_of")]
    pub at_least: Option<u64>,
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    #[arg(long)]
    pub csv: bool,
}

pub async fn pipeline(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: PipelineArgs,
) -> anyhow::Result<()> {
    let store = crate::cli::open(url).await?;
    let zone = funnel_projections::zones(store.as_ref())
        .await?
        .zone_of_office_named(args.office.as_deref());
    let moment = args.as_of.map(|a| a.resolve(zone));
    let models = load(
        store.as_ref(),
        projections,
        moment,
        args.at_least.map(Position),
    )
    .await?;
    let office = match &args.office {
        Some(text) => Some(
            models
                .pipeline
                .find_office(text)
                .with_context(|| format!("no office `{text}`"))?,
        ),
        None => None,
    };
    let reports = models.pipeline.report(office);
    let as_of = models
        .pipeline
        .as_of
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    if args.json {
        let out = serde_json::json!({ "position": models.position, "as_of": as_of,
            "time_zone": zone.name(), "offices": reports });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else if args.csv {
        print!("{}", pipeline_csv(&reports));
    } else {
        let local = models
            .pipeline
            .as_of
            .map(|t| funnel_domain::time::local_minute(t, zone))
            .unwrap_or_default();
        let when = match moment {
            Some(AsOf::Time(_)) => format!("as of {local} {zone}"),
            _ => format!("latest event {local} {zone}"),
        };
        print!("{}", pipeline_text(&reports, models.position, &when));
    }
    warn_parked(&models);
    Ok(())
}

fn warn_parked(models: &Models) {
    if !models.parked.is_empty() {
        eprintln!(
            "warning: {} event(s) parked (not applied); first: {:?}",
            models.parked.len(),
            models.parked[0]
        );
    }
}

fn yuan(amount: u64) -> String {
    format!("{:.2}M", amount as f64 / 1_000_000.0)
}

fn days(d: Option<f64>) -> String {
    d.map(|d| format!("{d:.1}d")).unwrap_or_else(|| "-".into())
}

/// The report as text; `when` says what "now" is (`as of …` or `latest event …`).
pub fn pipeline_text(reports: &[OfficeReport], position: Position, when: &str) -> String {
    use funnel_domain::model::Stage;
    let mut s = String::new();
    let _ = writeln!(s, "pipeline at position {position} ({when})");
    for r in reports {
        let _ = writeln!(s, "\n== {} ({}) ==", r.name, r.code);
        let _ = writeln!(s, "{:<12} {:>6} {:>12}", "stage", "leads", "amount CNY");
        for stage in Stage::ALL {
            let b = r.by_stage.get(stage).cloned().unwrap_or_default();
            let _ = writeln!(
                s,
                "{:<12} {:>6} {:>12}",
                stage.label_zh(),
                b.leads,
                yuan(b.amount_cny)
            );
        }
        let c = &r.conversion;
        let ratio = |x: Option<f64>| {
            x.map(|x| format!("{x:.1} : 1"))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            s,
            "conversion: reached valid {}, prospect {}, contract {}; valid per prospect {} (rule of thumb 15 : 1), prospects per contract {} (rule of thumb 3 : 1)",
            c.reached_valid,
            c.reached_prospect,
            c.reached_contract,
            ratio(c.valid_per_prospect),
            ratio(c.prospects_per_contract)
        );
        let tiers: Vec<String> = r
            .by_tier
            .iter()
            .map(|(t, b)| format!("{t} {} ({})", b.leads, yuan(b.amount_cny)))
            .collect();
        let _ = writeln!(
            s,
            "prospect tiers: {}",
            if tiers.is_empty() {
                "-".into()
            } else {
                tiers.join(", ")
            }
        );
        let _ = writeln!(
            s,
            "{:<16} {:>8} {:>6} {:>8} {:>8} {:>6} {:>5}",
            "engineer", "ordinary", "valid", "prospect", "contract", "susp.", "lost"
        );
        for (name, stages) in &r.by_engineer {
            let n = |st: Stage| stages.get(&st).map(|b| b.leads).unwrap_or(0);
            let _ = writeln!(
                s,
                "{:<16} {:>8} {:>6} {:>8} {:>8} {:>6} {:>5}",
                name,
                n(Stage::Ordinary),
                n(Stage::Valid),
                n(Stage::Prospect),
                n(Stage::Contract),
                n(Stage::Suspended),
                n(Stage::Lost)
            );
        }
        let channels: Vec<String> = r
            .by_channel
            .iter()
            .map(|(ch, st)| {
                format!(
                    "{} {}",
                    ch.label_zh(),
                    st.values().map(|b| b.leads).sum::<u64>()
                )
            })
            .collect();
        let _ = writeln!(s, "channels: {}", channels.join(", "));
        let times: Vec<String> = r
            .time_in_stage
            .iter()
            .map(|t| {
                format!(
                    "{} median {} p90 {} ({} stays)",
                    t.stage.label_zh(),
                    days(t.median_days),
                    days(t.p90_days),
                    t.stays
                )
            })
            .collect();
        let _ = writeln!(s, "time in stage: {}", times.join("; "));
        let _ = writeln!(
            s,
            "ageing without a visit (> {AGEING_DAYS} days): {}",
            r.ageing.len()
        );
        for a in r.ageing.iter().take(5) {
            let _ = writeln!(
                s,
                "  {:>4}d  {}  {}  {}",
                a.days_without_visit,
                a.stage.label_zh(),
                a.customer,
                a.owner.clone().unwrap_or_default()
            );
        }
    }
    s
}

pub fn pipeline_csv(reports: &[OfficeReport]) -> String {
    let mut s = String::from("office,dimension,key,stage,leads,amount_cny\n");
    for r in reports {
        for (stage, b) in &r.by_stage {
            let _ = writeln!(
                s,
                "{},stage,,{},{},{}",
                csv_field(&r.code),
                stage,
                b.leads,
                b.amount_cny
            );
        }
        for (tier, b) in &r.by_tier {
            let _ = writeln!(
                s,
                "{},tier,{},,{},{}",
                csv_field(&r.code),
                tier,
                b.leads,
                b.amount_cny
            );
        }
        for (name, stages) in &r.by_engineer {
            for (stage, b) in stages {
                let _ = writeln!(
                    s,
                    "{},engineer,{},{},{},{}",
                    csv_field(&r.code),
                    csv_field(name),
                    stage,
                    b.leads,
                    b.amount_cny
                );
            }
        }
        for (channel, stages) in &r.by_channel {
            for (stage, b) in stages {
                let _ = writeln!(
                    s,
                    "{},channel,{},{},{},{}",
                    csv_field(&r.code),
                    channel,
                    stage,
                    b.leads,
                    b.amount_cny
                );
            }
        }
    }
    s
}

/// A CSV field: neutralised so a spreadsheet never reads it as a formula (a name like `=cmd|…`
/// gets a leading `'`, see `funnel_forms::csv_cell`), quoted when it holds a separator.
fn csv_field(text: &str) -> String {
    let text = funnel_forms::csv_cell(text);
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    pub what: AuditWhat,
    /// Compute as of a date (the end of that day in the zone of the office or person audited,
    /// headquarters' otherwise), a date-time or a position.
    #[arg(long, global = true, value_parser = parse_as_of)]
    pub as_of: Option<AsOfInput>,
    /// Wait until the read models include this position (read-your-writes after a command).
    #[arg(long, global = true, conflicts_with = "as_of")]
    pub at_least: Option<u64>,
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditWhat {
    /// Everyone who changed a lead or tried to, what they did, when and in which role.
    Lead { id: LeadId },
    /// Every lead a member of staff touched, optionally within dates.
    Actor {
        /// Staff id or exact name.
        staff: String,
        #[arg(long)]
        from: Option<NaiveDate>,
        #[arg(long)]
        to: Option<NaiveDate>,
    },
    /// Duplicate registrations, refused touches, reassignments and assignment fairness.
    Conflicts {
        #[arg(long)]
        office: Option<String>,
    },
    /// Weekly and monthly visit plans on time, late or missing, per engineer.
    Plans {
        #[arg(long)]
        office: Option<String>,
    },
}

/// The zone an audit reads dates in and shows times in: the lead's office, the person's office or
/// the office asked for; headquarters' for a report across offices or someone without an office.
async fn audit_zone(store: &dyn EventStore, what: &AuditWhat) -> anyhow::Result<chrono_tz::Tz> {
    let zones = funnel_projections::zones(store).await?;
    Ok(match what {
        AuditWhat::Lead { id } => {
            zones.office_zone(funnel_projections::lead_office(store, *id).await?)
        }
        AuditWhat::Actor { staff, .. } => zones.zone_of_staff_named(staff),
        AuditWhat::Conflicts { office } | AuditWhat::Plans { office } => {
            zones.zone_of_office_named(office.as_deref())
        }
    })
}

pub async fn audit(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: AuditArgs,
) -> anyhow::Result<()> {
    let store = crate::cli::open(url).await?;
    let zone = audit_zone(store.as_ref(), &args.what).await?;
    let mut m = load(
        store.as_ref(),
        projections,
        args.as_of.map(|a| a.resolve(zone)),
        args.at_least.map(Position),
    )
    .await?;
    m.zone = zone;
    let office = |text: &Option<String>| -> anyhow::Result<Option<funnel_types::OfficeId>> {
        match text {
            Some(t) => Ok(Some(
                m.pipeline
                    .find_office(t)
                    .with_context(|| format!("no office `{t}`"))?,
            )),
            None => Ok(None),
        }
    };
    let out = match &args.what {
        AuditWhat::Lead { id } => {
            let touches = m.touches.lead(*id);
            if touches.is_empty() && !m.pipeline.leads.contains_key(id) {
                bail!("no lead {id} in the log");
            }
            if args.json {
                serde_json::to_string_pretty(touches)?
            } else {
                crate::audit_text::lead(&m, *id, touches)
            }
        }
        AuditWhat::Actor { staff, from, to } => {
            let key = crate::org::staff_named(&m.touches.staff_names, staff)?.to_string();
            let (from, to) = funnel_domain::time::days_between(*from, *to, zone);
            let touches = m.touches.actor(&key, from, to);
            if args.json {
                serde_json::to_string_pretty(&touches)?
            } else {
                crate::audit_text::actor(&m, &touches)
            }
        }
        AuditWhat::Conflicts { office: o } => {
            let o = office(o)?;
            if args.json {
                crate::audit_text::conflicts_json(&m, o)?
            } else {
                crate::audit_text::conflicts(&m, o)
            }
        }
        AuditWhat::Plans { office: o } => {
            let report = m.plans.report(office(o)?);
            if args.json {
                serde_json::to_string_pretty(&report)?
            } else {
                crate::audit_text::plans(&report)
            }
        }
    };
    println!("{out}");
    warn_parked(&m);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_csv_names_never_start_a_formula() {
        let mut report = OfficeReport {
            code: "SH".into(),
            ..Default::default()
        };
        report.by_engineer.insert(
            "=HYPERLINK(\"http://x\",\"y\")".into(),
            [(funnel_domain::model::Stage::Valid, Default::default())].into(),
        );
        let text = pipeline_csv(&[report]);
        assert!(
            text.contains("SH,engineer,\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\",valid,0,0"),
            "{text}"
        );
    }

    #[test]
    fn as_of_accepts_positions_dates_and_times() {
        assert_eq!(parse_as_of("42"), Ok(AsOfInput::Position(Position(42))));
        assert_eq!(
            parse_as_of("2026-09-30"),
            Ok(AsOfInput::Date(
                NaiveDate::from_ymd_opt(2026, 9, 30).unwrap()
            ))
        );
        assert!(matches!(
            parse_as_of("2026-09-30T12:00:00+08:00"),
            Ok(AsOfInput::Time(_))
        ));
        assert!(parse_as_of("yesterday").unwrap_err().contains("neither"));
    }
}
