//! `funnel leads find`: the lead search of `funnel_app::query::leads`, asked as the local operator,
//! as a table aligned by display width (Chinese characters take two columns) or as JSON.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use funnel_app::StoreUrl;
use funnel_app::auth::Caller;
use funnel_app::query::leads::{self, LeadList, LeadQuery, LeadSortKey, SortOrder};
use funnel_domain::model::{Channel, PurchaseMode, Stage, Tier};
use std::str::FromStr;
use unicode_width::UnicodeWidthStr;

#[derive(Debug, clap::Args)]
pub struct LeadsArgs {
    #[command(subcommand)]
    pub command: LeadsCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LeadsCommand {
    /// Find leads by customer, project, contact name or phone number. Names match however they
    /// are written (full or half width, spaces, punctuation such as `·`, look-alike letters);
    /// a phone matches by its digits (dashes, spaces and a +86 prefix do not count).
    Find(FindArgs),
}

/// The values of a domain enum as a checked option (its wire names, listed in `--help`).
fn choice<T>(all: &'static [T], name: fn(T) -> &'static str) -> impl TypedValueParser<Value = T>
where
    T: FromStr<Err = String> + Copy + Clone + Send + Sync + 'static,
{
    PossibleValuesParser::new(all.iter().map(|v| name(*v))).try_map(|s| {
        s.parse::<T>()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    })
}

#[derive(Debug, clap::Args)]
pub struct FindArgs {
    /// Text to find in the customer, the project or a contact's name, or digits of a phone
    /// number; every lead (the filters only) when absent.
    pub text: Option<String>,
    /// One office, by code (`SH`), name or id.
    #[arg(long)]
    pub office: Option<String>,
    /// The owning engineer, by id or exact name.
    #[arg(long)]
    pub owner: Option<String>,
    /// Only leads in this stage.
    #[arg(long, value_parser = choice(Stage::ALL, Stage::as_str))]
    pub stage: Option<Stage>,
    /// Only prospects of this tier.
    #[arg(long, value_parser = choice(Tier::ALL, Tier::as_str))]
    pub tier: Option<Tier>,
    /// Only leads from this channel.
    #[arg(long, value_parser = choice(Channel::ALL, Channel::as_str))]
    pub channel: Option<Channel>,
    /// Only leads of this purchase mode.
    #[arg(long, value_parser = choice(PurchaseMode::ALL, PurchaseMode::as_str))]
    pub purchase_mode: Option<PurchaseMode>,
    /// Only ageing leads: open and more than 30 days without a visit.
    #[arg(long, conflicts_with = "not_ageing")]
    pub ageing: bool,
    /// Only leads that are not ageing.
    #[arg(long)]
    pub not_ageing: bool,
    /// Sort by registration, time in the current stage, customer name, amount or last visit.
    #[arg(long, value_enum, default_value = "registered")]
    pub sort: SortArg,
    /// Ascending instead of descending (newest, largest, last first).
    #[arg(long)]
    pub asc: bool,
    /// Leads per page (1 to 500).
    #[arg(long, default_value_t = leads::DEFAULT_LIMIT)]
    pub limit: usize,
    /// Leads to skip before the page (to jump to a page by number).
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Go on after the page that printed this cursor (its last line says `--after …`): no lead is
    /// shown twice or skipped when leads are registered or change between pages.
    #[arg(long, conflicts_with = "offset")]
    pub after: Option<String>,
    /// Print the answer as JSON (the same document `GET /leads` answers).
    #[arg(long)]
    pub json: bool,
}

/// Sort keys on the command line.
#[derive(Debug, Clone, Copy, clap::ValueEnum, PartialEq, Eq)]
pub enum SortArg {
    /// Registration time.
    Registered,
    /// Time the lead entered its current stage.
    StageSince,
    /// Customer and project name.
    Customer,
    /// Expected or contract amount (leads without one last).
    Amount,
    /// Last visit (leads never visited last).
    LastVisit,
}

pub async fn run(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: LeadsArgs,
) -> anyhow::Result<()> {
    let LeadsCommand::Find(a) = args.command;
    let by_cursor = a.after.is_some();
    let reads = crate::query::reads(url, projections, None).await?;
    let q = LeadQuery {
        text: a.text,
        office: a.office,
        owner: a.owner,
        stage: a.stage,
        tier: a.tier,
        channel: a.channel,
        purchase_mode: a.purchase_mode,
        ageing: if a.ageing {
            Some(true)
        } else if a.not_ageing {
            Some(false)
        } else {
            None
        },
        sort: match a.sort {
            SortArg::Registered => LeadSortKey::Registered,
            SortArg::StageSince => LeadSortKey::StageSince,
            SortArg::Customer => LeadSortKey::Customer,
            SortArg::Amount => LeadSortKey::Amount,
            SortArg::LastVisit => LeadSortKey::LastVisit,
        },
        order: if a.asc {
            SortOrder::Asc
        } else {
            SortOrder::Desc
        },
        limit: Some(a.limit),
        offset: a.after.is_none().then_some(a.offset),
        after: a.after,
        at_least: None,
    };
    let list = leads::search(&reads, &Caller::local_operator(), q).await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        print!("{}", render(&list, by_cursor));
    }
    Ok(())
}

/// An amount in yuan as 万元 with one decimal.
fn wan(yuan: u64) -> String {
    format!("{:.1}", yuan as f64 / 10_000.0)
}

/// The date of an RFC 3339 time as written (on the office's clock).
fn day(t: &str) -> &str {
    t.get(..10).unwrap_or(t)
}

/// The page as a table, columns aligned by display width; the last line says how to go on (by the
/// cursor). A page asked for `by_cursor` has no number, so the line counts it only.
pub fn render(list: &LeadList, by_cursor: bool) -> String {
    let header = [
        "客户 / 项目",
        "办事处",
        "负责人",
        "阶段",
        "金额(万元)",
        "登记",
        "最近拜访",
        "未拜访(天)",
        "匹配",
        "编号",
    ];
    let rows: Vec<[String; 10]> = list
        .leads
        .iter()
        .map(|l| {
            let matched: Vec<&str> = l
                .matched
                .iter()
                .map(|m| match m {
                    leads::LeadMatch::Customer => "客户",
                    leads::LeadMatch::Project => "项目",
                    leads::LeadMatch::Contact => "联系人",
                    leads::LeadMatch::Phone => "电话",
                })
                .collect();
            [
                format!("{} {}", l.customer, l.project).trim().to_string(),
                l.office
                    .code
                    .clone()
                    .unwrap_or_else(|| l.office.id.to_string()),
                l.owner
                    .as_ref()
                    .map(|o| o.name.clone().unwrap_or_else(|| o.id.to_string()))
                    .unwrap_or_else(|| "-".into()),
                format!("{}{}", l.stage_label, if l.ageing { " (老化)" } else { "" }),
                l.amount_cny.map(wan).unwrap_or_else(|| "-".into()),
                day(&l.registered_at).to_string(),
                l.last_visit_at
                    .as_deref()
                    .map(day)
                    .unwrap_or("-")
                    .to_string(),
                l.idle_days
                    .map(|d| d.to_string())
                    .unwrap_or_else(|| "-".into()),
                matched.join(","),
                l.id.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(UnicodeWidthStr::width);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.width());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(w - cell.width() + 2));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&header);
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        out.push_str(&line(&cells));
    }
    let shown = list.leads.len() as u64;
    let (range_zh, range_en) = if by_cursor {
        (format!("本页 {shown} 条"), format!("{shown} shown"))
    } else {
        let first = list.offset + u64::from(shown > 0);
        let last = list.offset + shown;
        (
            format!("第 {first}–{last} 条"),
            format!("{first}–{last} shown"),
        )
    };
    // More leads follow when the page is full (by cursor) or the offset has not reached the end.
    let more = if by_cursor {
        list.next_after.is_some()
    } else {
        list.next_offset.is_some()
    };
    let next = list
        .next_after
        .as_ref()
        .filter(|_| more)
        .map(|c| format!("；下一页 --after {c}"))
        .unwrap_or_default();
    out.push_str(&format!(
        "共 {} 条线索，{range_zh}（日志位置 {}）{next} / {} lead(s), {range_en}\n",
        list.total, list.position, list.total,
    ));
    out
}
