//! `funnel pipeline` and `funnel audit …`: the reports of `funnel_app::query::reports`, asked as
//! the local operator (who reads every office), now or as of a date or a position, printed as
//! text, JSON (the answers as the HTTP API gives them) or CSV.

use chrono::NaiveDate;
use funnel_app::auth::Caller;
use funnel_app::query::reports::{self, ActorAuditQuery, LeadAuditQuery, ReportQuery};
use funnel_app::{Paging, ReadOptions, Reads, StoreUrl};
use funnel_projections::models::*;
use funnel_types::{LeadId, Position};
use std::fmt::Write as _;
use std::sync::Arc;
use tokio::sync::RwLock;

pub use funnel_projections::AsOfInput;

/// Parses `--as-of` (see `AsOfInput`'s `FromStr`); a date is resolved once the zone is known.
pub fn parse_as_of(text: &str) -> Result<AsOfInput, String> {
    text.parse()
}

/// The read side of the queries: the persisted read models, caught up with the log first (and,
/// with `at_least`, until that position), queried as the local operator through the same
/// application queries the HTTP API answers with.
pub async fn reads(
    url: &StoreUrl,
    projections: &std::path::Path,
    at_least: Option<Position>,
) -> anyhow::Result<Reads> {
    let store = funnel_app::open(url).await?;
    let mut runner = crate::projections::open_runner(projections)?;
    crate::projections::catch_up(&mut runner, store.as_ref(), at_least).await?;
    Ok(Reads::new(
        store,
        Arc::new(RwLock::new(runner)),
        ReadOptions::default(),
    ))
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
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV (UTF-8 with a byte-order mark, so spreadsheets read the Chinese names right).
    #[arg(long)]
    pub csv: bool,
}

pub async fn pipeline(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: PipelineArgs,
) -> anyhow::Result<()> {
    let reads = reads(url, projections, args.at_least.map(Position)).await?;
    let q = ReportQuery {
        office: args.office.clone(),
        as_of: args.as_of,
        at_least: None,
    };
    let report = reports::pipeline(&reads, &Caller::local_operator(), q).await?;
    let as_of = report.as_of.clone().unwrap_or_default();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&**report)?);
    } else if args.csv {
        print!("{}", pipeline_csv(&report.offices));
    } else {
        let zone = funnel_domain::time::zone(Some(&report.time_zone));
        let local = chrono::DateTime::parse_from_rfc3339(&as_of)
            .map(|t| funnel_domain::time::local_minute(t.to_utc(), zone))
            .unwrap_or_default();
        let when = match args.as_of {
            Some(AsOfInput::Date(_) | AsOfInput::Time(_)) => format!("as of {local} {zone}"),
            _ => format!("latest event {local} {zone}"),
        };
        print!("{}", pipeline_text(&report.offices, report.position, &when));
    }
    warn_parked(&reads).await?;
    Ok(())
}

/// Says on stderr when a read model parked events (did not apply them).
async fn warn_parked(reads: &Reads) -> anyhow::Result<()> {
    let status = funnel_app::query::log::projections(reads).await?;
    let parked: Vec<_> = status
        .projections
        .iter()
        .flat_map(|s| {
            s.parked
                .iter()
                .map(move |p| (p.position, s.name, &p.reason))
        })
        .collect();
    if let Some(first) = parked.first() {
        eprintln!(
            "warning: {} event(s) parked (not applied); first: {first:?}",
            parked.len()
        );
    }
    Ok(())
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
                "{} {:>6} {:>12}",
                crate::text::left(stage.label_zh(), 12),
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
                "{} {:>8} {:>6} {:>8} {:>8} {:>6} {:>5}",
                crate::text::left(name, 16),
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
            r.ageing_total
        );
        const SHOWN: usize = 5;
        for a in r.ageing.iter().take(SHOWN) {
            let _ = writeln!(
                s,
                "  {:>4}d  {}  {}  {}",
                a.days_without_visit,
                a.stage.label_zh(),
                a.customer,
                a.owner.clone().unwrap_or_default()
            );
        }
        let more = r
            .ageing_total
            .saturating_sub(r.ageing.len().min(SHOWN) as u64);
        if more > 0 {
            let _ = writeln!(
                s,
                "  … and {more} more (funnel leads find --office {} --ageing)",
                r.code
            );
        }
    }
    s
}

/// The byte-order mark a CSV starts with: without it Excel reads UTF-8 as the local code page and
/// garbles Chinese.
const BOM: char = '\u{feff}';

pub fn pipeline_csv(reports: &[OfficeReport]) -> String {
    let mut s = format!("{BOM}office,dimension,key,stage,leads,amount_cny\n");
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
    /// Print JSON.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum AuditWhat {
    /// Everyone who changed a lead or tried to, what they did, when and in which role.
    Lead {
        /// The lead's id.
        id: LeadId,
    },
    /// Every lead a member of staff touched, optionally within dates.
    Actor {
        /// The member of staff: id or name (brackets and spacing as you like; a near miss
        /// lists the closest names).
        staff: String,
        /// First day (YYYY-MM-DD, on the person's office clock).
        #[arg(long)]
        from: Option<NaiveDate>,
        /// Last day (YYYY-MM-DD, on the person's office clock).
        #[arg(long)]
        to: Option<NaiveDate>,
    },
    /// Duplicate registrations, refused touches, reassignments and assignment fairness.
    Conflicts {
        /// One office: id, code or name (default: every office).
        #[arg(long)]
        office: Option<String>,
    },
    /// Weekly and monthly visit plans on time, late or missing, per engineer.
    Plans {
        /// One office: id, code or name (default: every office).
        #[arg(long)]
        office: Option<String>,
    },
}

pub async fn audit(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: AuditArgs,
) -> anyhow::Result<()> {
    let reads = reads(url, projections, args.at_least.map(Position)).await?;
    let caller = Caller::local_operator();
    let report = |office: &Option<String>| ReportQuery {
        office: office.clone(),
        as_of: args.as_of,
        at_least: None,
    };
    let out = match &args.what {
        AuditWhat::Lead { id } => {
            let q = LeadAuditQuery {
                lead: *id,
                as_of: args.as_of,
                at_least: None,
                paging: Paging::everything(),
            };
            let audit = reports::lead_audit(&reads, &caller, q).await?;
            if args.json {
                serde_json::to_string_pretty(&audit)?
            } else {
                crate::audit_text::lead(&audit)
            }
        }
        AuditWhat::Actor { staff, from, to } => {
            let q = ActorAuditQuery {
                staff: staff.clone(),
                from: *from,
                to: *to,
                as_of: args.as_of,
                at_least: None,
                paging: Paging::everything(),
            };
            let audit = reports::actor_audit(&reads, &caller, q).await?;
            if args.json {
                serde_json::to_string_pretty(&audit)?
            } else {
                crate::audit_text::actor(&audit)
            }
        }
        AuditWhat::Conflicts { office } => {
            let c = reports::conflicts(&reads, &caller, report(office)).await?;
            if args.json {
                serde_json::to_string_pretty(&c)?
            } else {
                crate::audit_text::conflicts(&c)
            }
        }
        AuditWhat::Plans { office } => {
            let p = reports::plans(&reads, &caller, report(office)).await?;
            if args.json {
                serde_json::to_string_pretty(&p)?
            } else {
                crate::audit_text::plans(&p.engineers)
            }
        }
    };
    println!("{out}");
    warn_parked(&reads).await?;
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
