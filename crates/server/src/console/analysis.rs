//! `GET /analysis`: the pipeline and funnel per office, engineer, channel and tier (amounts in 万元),
//! time in stage, conversion against the manual's rules of thumb, as of any date, with the weekly
//! trend over the whole history. Every count links to the leads behind it.

use super::{Shell, Tr, Viewer, html, wan};
use crate::AppState;
use crate::problem::Problem;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use chrono::Datelike;
use funnel_app::answers::Shared;
use funnel_app::query::reports::{self, PipelineReport, ReportQuery, WeeklyTrend};
use funnel_domain::model::{Channel, Stage};
use funnel_projections::AsOfInput;
use funnel_projections::models::{Bucket, OfficeReport};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Default, Deserialize)]
pub struct AnalysisQuery {
    /// An office code (or id, or name); every office the viewer reads when empty.
    #[serde(default)]
    office: String,
    /// A date (in the office's time zone): the report as of the end of that day.
    #[serde(default)]
    as_of: String,
    #[serde(default)]
    #[allow(dead_code)]
    lang: Option<String>,
}

/// A count and amount that links to the leads behind it.
pub struct Cell {
    pub leads: u64,
    pub wan: String,
    pub href: String,
}

pub struct Row {
    /// The wire name of what the row counts (a stage's `ordinary` …), for scripts and tests.
    pub code: String,
    pub label: String,
    pub cells: Vec<Cell>,
}

pub struct RatioView {
    pub label: &'static str,
    pub counts: String,
    pub value: String,
    pub rule: String,
    pub verdict: &'static str,
}

pub struct StageTimeView {
    pub stage: String,
    pub stays: u64,
    pub median: String,
    pub p90: String,
}

pub struct AgeingView {
    pub href: String,
    pub customer: String,
    pub owner: String,
    pub stage: String,
    pub days: i64,
}

pub struct OfficeView {
    pub name: String,
    /// The office's code, for its forms workbook.
    pub code: String,
    pub stages: Vec<Row>,
    pub stage_heads: Vec<String>,
    pub engineers: Vec<Row>,
    pub channels: Vec<Row>,
    pub tiers: Vec<Row>,
    pub ratios: Vec<RatioView>,
    pub times: Vec<StageTimeView>,
    pub ageing: Vec<AgeingView>,
    pub ageing_total: u64,
    pub ageing_href: String,
}

pub struct OfficeOption {
    pub code: String,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "analysis.html")]
struct AnalysisPage {
    shell: Shell,
    as_of_date: String,
    as_of_shown: String,
    offices: Vec<OfficeOption>,
    views: Vec<OfficeView>,
    /// The weekly trend as JSON for the chart (read by the console script, never executed).
    trend_json: String,
    trend_rows: Vec<(String, u64, u64, u64, u64)>,
    error: Option<String>,
    /// The period an office's forms workbook is offered for: this month so far.
    forms_from: String,
    forms_to: String,
}

/// A drill-down link: the lead list with these filters (and the same moment).
fn leads_href(filters: &[(&str, &str)], as_of: &str) -> String {
    let mut q: Vec<(&str, &str)> = filters
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .copied()
        .collect();
    if !as_of.is_empty() {
        q.push(("as_of", as_of));
    }
    format!(
        "/console/leads?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

fn stage_label(tr: Tr, s: Stage) -> String {
    tr.code(s.label_zh(), s.as_str())
}

fn cell(b: Option<&Bucket>, href: String) -> Cell {
    let b = b.cloned().unwrap_or_default();
    Cell {
        leads: b.leads,
        wan: wan(b.amount_cny),
        href,
    }
}

fn office_view(tr: Tr, r: &OfficeReport, as_of: &str) -> OfficeView {
    let code = r.code.as_str();
    let stages_shown: Vec<Stage> = Stage::FUNNEL.to_vec();
    let stages = r
        .by_stage
        .iter()
        .map(|(s, b)| Row {
            code: s.as_str().to_string(),
            label: stage_label(tr, *s),
            cells: vec![cell(
                Some(b),
                leads_href(&[("office", code), ("stage", s.as_str())], as_of),
            )],
        })
        .collect();
    let per_stage = |by: &BTreeMap<Stage, Bucket>, key: &str, value: &str| -> Vec<Cell> {
        stages_shown
            .iter()
            .map(|s| {
                cell(
                    by.get(s),
                    leads_href(
                        &[("office", code), (key, value), ("stage", s.as_str())],
                        as_of,
                    ),
                )
            })
            .collect()
    };
    let engineers = r
        .by_engineer
        .iter()
        .map(|(name, by)| {
            let unassigned = name == "(unassigned)";
            Row {
                code: name.clone(),
                label: if unassigned {
                    tr.t("（未分配）", "(unassigned)").to_string()
                } else {
                    name.clone()
                },
                cells: per_stage(by, "owner", if unassigned { "" } else { name }),
            }
        })
        .collect();
    let channels = r
        .by_channel
        .iter()
        .map(|(c, by): (&Channel, _)| Row {
            code: c.as_str().to_string(),
            label: tr.code(c.label_zh(), c.as_str()),
            cells: per_stage(by, "channel", c.as_str()),
        })
        .collect();
    let tiers = r
        .by_tier
        .iter()
        .map(|(t, b)| Row {
            code: t.clone(),
            label: t
                .parse::<funnel_domain::model::Tier>()
                .map(|tier| tr.code(tier.label_zh(), tier.as_str()))
                .unwrap_or_else(|_| t.clone()),
            cells: vec![cell(
                Some(b),
                leads_href(&[("office", code), ("tier", t)], as_of),
            )],
        })
        .collect();
    let c = &r.conversion;
    let ratio = |v: Option<f64>| v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "—".into());
    let verdict = |v: Option<f64>, rule: f64| match v {
        None => tr.t("尚无数据", "no data yet"),
        Some(v) if v <= rule => tr.t("优于经验值", "better than the rule of thumb"),
        Some(_) => tr.t("差于经验值", "worse than the rule of thumb"),
    };
    let ratios = vec![
        RatioView {
            label: tr.t("有效信息 / 准客户", "valid infos per prospect"),
            counts: match tr.lang {
                super::Lang::Zh => format!(
                    "曾达到有效信息 {} 条，曾达到准客户 {} 个",
                    c.reached_valid, c.reached_prospect
                ),
                super::Lang::En => format!(
                    "{} leads ever valid, {} ever prospects",
                    c.reached_valid, c.reached_prospect
                ),
            },
            value: ratio(c.valid_per_prospect),
            rule: format!("{:.0}", c.rule_of_thumb_valid_per_prospect),
            verdict: verdict(c.valid_per_prospect, c.rule_of_thumb_valid_per_prospect),
        },
        RatioView {
            label: tr.t("准客户 / 签约", "prospects per contract"),
            counts: match tr.lang {
                super::Lang::Zh => format!(
                    "曾达到准客户 {} 个，签约 {} 个",
                    c.reached_prospect, c.reached_contract
                ),
                super::Lang::En => format!(
                    "{} leads ever prospects, {} contracts",
                    c.reached_prospect, c.reached_contract
                ),
            },
            value: ratio(c.prospects_per_contract),
            rule: format!("{:.0}", c.rule_of_thumb_prospects_per_contract),
            verdict: verdict(
                c.prospects_per_contract,
                c.rule_of_thumb_prospects_per_contract,
            ),
        },
    ];
    let days = |d: Option<f64>| d.map(|d| format!("{d:.0}")).unwrap_or_else(|| "—".into());
    let times = r
        .time_in_stage
        .iter()
        .map(|t| StageTimeView {
            stage: stage_label(tr, t.stage),
            stays: t.stays,
            median: days(t.median_days),
            p90: days(t.p90_days),
        })
        .collect();
    let ageing = r
        .ageing
        .iter()
        .take(10)
        .map(|a| AgeingView {
            href: format!("/console/leads/{}", a.lead_id),
            customer: a.customer.clone(),
            owner: a
                .owner
                .clone()
                .unwrap_or_else(|| tr.t("（未分配）", "(unassigned)").into()),
            stage: stage_label(tr, a.stage),
            days: a.days_without_visit,
        })
        .collect();
    OfficeView {
        name: r.name.clone(),
        code: r.code.clone(),
        stages,
        stage_heads: stages_shown.iter().map(|s| stage_label(tr, *s)).collect(),
        engineers,
        channels,
        tiers,
        ratios,
        times,
        ageing,
        ageing_total: r.ageing_total,
        ageing_href: leads_href(&[("office", code), ("ageing", "true")], as_of),
    }
}

/// `GET /analysis?office=&as_of=YYYY-MM-DD`.
pub async fn page(
    State(state): State<AppState>,
    viewer: Viewer,
    axum::extract::Query(q): axum::extract::Query<AnalysisQuery>,
) -> Response {
    let tr = viewer.tr;
    let shell = Shell::new(
        tr,
        tr.t("分析", "Analysis"),
        "/console/analysis",
        Some(&viewer),
    )
    .with_query(&[("office", q.office.clone()), ("as_of", q.as_of.clone())])
    .with_script("echarts.common.min.js");
    let mut error = None;
    let as_of = if q.as_of.is_empty() {
        None
    } else {
        match q.as_of.parse::<AsOfInput>() {
            Ok(a) => Some(a),
            Err(e) => {
                error = Some(e);
                None
            }
        }
    };
    let office = (!q.office.is_empty()).then(|| q.office.clone());
    let report: Result<std::sync::Arc<Shared<PipelineReport>>, Problem> = reports::pipeline(
        state.reads(),
        &viewer.caller,
        ReportQuery {
            office: office.clone(),
            as_of,
            at_least: None,
        },
    )
    .await
    .map_err(Problem::from);
    let trend: Result<WeeklyTrend, Problem> =
        reports::weekly_trend(state.reads(), &viewer.caller, office.clone())
            .await
            .map_err(Problem::from);
    let (report, trend) = match (report, trend) {
        (Ok(r), Ok(t)) => (r, t),
        (Err(p), _) | (_, Err(p)) => {
            return super::problem_page(shell, &p);
        }
    };
    let offices = office_options(&state, &viewer, &q.office).await;
    let as_of_shown = report
        .as_of
        .as_deref()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| super::local_time(t.to_utc(), viewer.zone))
        .unwrap_or_default();
    let today = state
        .engine()
        .clock()
        .now()
        .with_timezone(&viewer.zone)
        .date_naive();
    let views = report
        .offices
        .iter()
        .map(|r| office_view(tr, r, &q.as_of))
        .collect();
    let trend_rows = trend
        .weeks
        .iter()
        .map(|w| {
            (
                w.week_start.to_string(),
                w.registered,
                w.open,
                w.prospects,
                w.contracts,
            )
        })
        .collect();
    let trend_json = serde_json::json!({
        "labels": trend.weeks.iter().map(|w| w.week_start.to_string()).collect::<Vec<_>>(),
        "series": [
            { "name": tr.t("新报备", "registered"), "data": trend.weeks.iter().map(|w| w.registered).collect::<Vec<_>>() },
            { "name": tr.t("在跟进", "open"), "data": trend.weeks.iter().map(|w| w.open).collect::<Vec<_>>() },
            { "name": tr.t("准客户", "prospects"), "data": trend.weeks.iter().map(|w| w.prospects).collect::<Vec<_>>() },
            { "name": tr.t("累计签约", "contracts"), "data": trend.weeks.iter().map(|w| w.contracts).collect::<Vec<_>>() },
        ],
    })
    .to_string()
    .replace('<', "\\u003c");
    html(
        AnalysisPage {
            forms_from: today.with_day(1).unwrap_or(today).to_string(),
            forms_to: today.to_string(),
            shell,
            as_of_date: q.as_of.clone(),
            as_of_shown,
            offices,
            views,
            trend_json,
            trend_rows,
            error,
        }
        .render(),
    )
}

/// The offices the viewer may pick: every office for those who read them all, else their own.
pub(super) async fn office_options(
    state: &AppState,
    viewer: &Viewer,
    selected: &str,
) -> Vec<OfficeOption> {
    state
        .reads()
        .with_model(|a: &funnel_app::auth::Access, _| {
            a.offices
                .iter()
                .filter(|(id, _)| viewer.caller.may_read(**id))
                .map(|(_, o)| OfficeOption {
                    selected: o.code.eq_ignore_ascii_case(selected),
                    code: o.code.clone(),
                    name: o.name.clone(),
                })
                .collect()
        })
        .await
        .unwrap_or_default()
}
