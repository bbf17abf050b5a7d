//! `funnel lead show ID`: a lead's whole record and timeline, from `funnel_app::query::record`,
//! asked as the local operator; as text (times on the office's clock) or as JSON.

use funnel_app::auth::Caller;
use funnel_app::query::record::{self, DeclarationStateView, LeadRecord, PersonRef};
use funnel_app::{StoreUrl, query::record::SeatState};
use funnel_types::{LeadId, Position};

#[derive(Debug, clap::Args)]
pub struct LeadArgs {
    #[command(subcommand)]
    pub what: LeadWhat,
}

#[derive(Debug, clap::Subcommand)]
pub enum LeadWhat {
    /// A lead's whole record (Table 1, stage and checklist, key persons, visits, declarations,
    /// contracts, owners) and its timeline of every event and refused attempt.
    Show {
        /// The lead's id (a UUID, as `funnel audit conflicts` or the API shows it).
        id: LeadId,
        /// Print the record as JSON (the answer of `GET /leads/{id}`).
        #[arg(long)]
        json: bool,
        /// Wait until the read models include this log position (read-your-writes after a
        /// command), so that people named by it are known.
        #[arg(long)]
        at_least: Option<u64>,
        /// Show the lead as it stood then: a log position, a date (the end of that day in the
        /// lead's office's time zone) or an RFC 3339 time.
        #[arg(long, value_parser = crate::query::parse_as_of)]
        as_of: Option<crate::query::AsOfInput>,
    },
}

pub async fn run(
    url: &StoreUrl,
    projections: &std::path::Path,
    args: LeadArgs,
) -> anyhow::Result<()> {
    match args.what {
        LeadWhat::Show {
            id,
            json,
            at_least,
            as_of,
        } => {
            let reads = crate::query::reads(url, projections, at_least.map(Position)).await?;
            let rec =
                record::lead_record(&reads, &Caller::local_operator(), id, None, as_of).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rec)?);
            } else {
                print!("{}", text(&rec));
            }
            Ok(())
        }
    }
}

fn declaration_state(s: DeclarationStateView) -> &'static str {
    match s {
        DeclarationStateView::AwaitingReview => "待审核",
        DeclarationStateView::Approved => "审核通过",
        DeclarationStateView::Returned => "已退回",
        DeclarationStateView::Filed => "已备案",
        DeclarationStateView::Withdrawn => "已失效",
    }
}

fn who(p: &PersonRef) -> String {
    match &p.role_zh {
        Some(r) => format!("{}（{r}）", p.name),
        None => p.name.clone(),
    }
}

/// The record as text, Chinese first, times on the office's clock.
pub fn text(r: &LeadRecord) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let f = &r.fields;
    let title = if f.project_name.is_empty() {
        f.customer_name.clone()
    } else {
        format!("{} · {}", f.customer_name, f.project_name)
    };
    let _ = writeln!(o, "{title}  [{}]", r.lead_id);
    if let Some(a) = &r.as_of {
        match (a.time, a.position) {
            (Some(t), _) => {
                let _ = writeln!(o, "截至 {}（as of）", t.format("%Y-%m-%d %H:%M %:z"));
            }
            (None, Some(p)) => {
                let _ = writeln!(o, "截至日志位置 {}（as of position）", p.0);
            }
            (None, None) => {}
        }
    }
    let _ = writeln!(
        o,
        "办事处 {}（{}），时区 {}",
        r.office.name, r.office.code, r.time_zone
    );
    let _ = writeln!(
        o,
        "阶段 {}，负责人 {}",
        r.stage_zh,
        r.owner.as_ref().map(who).unwrap_or_else(|| "（无）".into())
    );
    if let Some(a) = &r.amount_zh {
        let tier = r.tier.map(|t| t.label_zh()).unwrap_or_default();
        let _ = writeln!(o, "金额 {a} {tier}");
    }
    let _ = writeln!(o, "\n表一");
    let _ = writeln!(
        o,
        "  行业 {}，{}，来源 {}",
        f.industry_zh, f.purchase_mode_zh, f.channel_zh
    );
    let _ = writeln!(o, "  地点 {}", f.location);
    let _ = writeln!(o, "  联系人 {} {}", f.contact.name, f.contact.phone);
    let _ = writeln!(o, "  需求 {}", f.need);
    if let Some(s) = &f.purchase_scale {
        let _ = writeln!(o, "  采购规模 {s}");
    }
    let _ = writeln!(
        o,
        "  报备 {} 于 {}",
        who(&f.registered_by),
        f.registered_local
    );
    let _ = writeln!(o, "\n阶段条件");
    for s in &r.checklist {
        let reached = if s.reached { "（已达到）" } else { "" };
        let _ = writeln!(o, "  {}{reached}：缺 {} 项", s.stage_zh, s.missing);
        for i in &s.items {
            let mark = if i.met { "✓" } else { "·" };
            let by = i
                .met_by
                .as_ref()
                .map(|e| format!("  {} {}", e.local, e.event_type))
                .unwrap_or_default();
            let _ = writeln!(o, "    {mark} {}{by}", i.label_zh);
        }
    }
    if let Some(c) = &r.open_conflict {
        let names: Vec<String> = c.claimants.iter().map(who).collect();
        let _ = writeln!(o, "\n归属冲突待裁决：{}", names.join("、"));
    }
    if let Some(x) = &r.pending_reassignment {
        let _ = writeln!(
            o,
            "\n负责人变更待批：{} → {}，{} 到期",
            x.from.name, x.to.name, x.expires_local
        );
    }
    let _ = writeln!(
        o,
        "\n关系 公司 {} 个人 {}；关键人物 {} 位，内线 {} 位",
        r.relationship.company.label_zh(),
        r.relationship.personal.label_zh(),
        r.key_persons.len(),
        r.insiders.len()
    );
    for k in &r.key_persons {
        let insider = if k.insider { " 内线" } else { "" };
        let _ = writeln!(
            o,
            "  {} {}（{}）{}{insider}",
            k.name, k.title, k.role_zh, k.phone
        );
    }
    if !r.visits.is_empty() {
        let _ = writeln!(o, "\n拜访 {} 次", r.visits.len());
        for v in &r.visits {
            let _ = writeln!(
                o,
                "  {} {} {} {}",
                v.visited_local, v.kind_zh, v.engineer.name, v.summary
            );
        }
    }
    for d in &r.declarations {
        let _ = writeln!(
            o,
            "\n{} {} {}，{} 提交于 {}",
            d.kind_zh,
            d.amount_zh.clone().unwrap_or_default(),
            declaration_state(d.state),
            d.declared_by.name,
            d.declared.local
        );
    }
    for c in &r.contracts {
        if let Some(v) = c.current() {
            let _ = writeln!(
                o,
                "\n合同 第 {} 版 {}{}",
                v.version,
                v.amount_zh,
                if c.signed { "，已签订" } else { "" }
            );
        }
        for s in &c.seats {
            let state = match s.state {
                SeatState::Pending => "待评审",
                SeatState::Approved => "通过",
                SeatState::Rejected => "驳回",
            };
            let by = s.by.as_ref().map(|p| p.name.clone()).unwrap_or_default();
            let _ = writeln!(o, "  {} {state} {by}", s.seat);
        }
    }
    let _ = writeln!(o, "\n时间线（{} 条）", r.timeline.len());
    for e in &r.timeline {
        let refused = if e.refused { " [已拒绝]" } else { "" };
        let role = e.actor.role_zh.clone().unwrap_or_default();
        let _ = writeln!(
            o,
            "  {} {}{}{refused}  {}",
            e.local,
            e.actor.name,
            if role.is_empty() {
                String::new()
            } else {
                format!("（{role}）")
            },
            e.summary_zh
        );
        for c in &e.changes {
            let _ = writeln!(
                o,
                "      {}：{} → {}",
                c.label_zh,
                c.old_zh.as_deref().unwrap_or("（无）"),
                c.new_zh.as_deref().unwrap_or("（无）")
            );
        }
    }
    o
}
