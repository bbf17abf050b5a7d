//! `GET /console/leads`: the leads the viewer may read, searched by customer (written any way the
//! duplicate check folds: full or half width, spacing, punctuation, look-alikes) and filtered by
//! office, owner, stage, tier, channel, purchase mode and ageing, now or as of a date; the target of
//! every drill-down of the analysis. `GET /console/leads/{id}`: one lead's record, its timeline of
//! touches (refused attempts marked) and the forms an engineer fills on a phone.

use super::{Shell, Tr, Viewer, html, local_time, wan};
use crate::AppState;
use crate::problem::Problem;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::Datelike;
use funnel_app::query::leads::{self, LeadQuery};
use funnel_app::query::record;
use funnel_app::query::reports::{self, LeadExport, ReportQuery};
use funnel_domain::fold_name;
use funnel_domain::model::{
    Channel, ContactKind, KeyPersonRole, Level, PurchaseMode, Stage, Tier, VisitPurpose,
};
use funnel_projections::AsOfInput;
use funnel_types::LeadId;
use serde::Deserialize;

/// Rows per page of the list.
const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    office: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    stage: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    ageing: String,
    #[serde(default)]
    as_of: String,
    /// Which page this is (0 first): counts the rows shown; the list itself continues from `after`.
    #[serde(default)]
    page: usize,
    /// The lead index's cursor of this page (the previous page's `next_after`). Lists as of a
    /// moment page by `page` alone: the history up to a moment past does not change between pages.
    #[serde(default)]
    after: String,
    #[serde(default)]
    #[allow(dead_code)]
    lang: Option<String>,
}

impl ListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("q", self.q.clone()),
            ("office", self.office.clone()),
            ("owner", self.owner.clone()),
            ("stage", self.stage.clone()),
            ("tier", self.tier.clone()),
            ("channel", self.channel.clone()),
            ("mode", self.mode.clone()),
            ("ageing", self.ageing.clone()),
            ("as_of", self.as_of.clone()),
        ]
    }

    /// Whether a filter besides the search and the office is set.
    pub fn has_filters(&self) -> bool {
        [
            &self.owner,
            &self.stage,
            &self.tier,
            &self.channel,
            &self.mode,
            &self.ageing,
            &self.as_of,
        ]
        .iter()
        .any(|v| !v.is_empty())
    }

    fn keeps(&self, l: &LeadExport, folded_q: &str) -> bool {
        (folded_q.is_empty() || fold_name(&l.customer).contains(folded_q))
            && (self.office.is_empty()
                || l.office_code
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(&self.office)))
            && (self.owner.is_empty() || l.owner_name.as_deref() == Some(self.owner.as_str()))
            && (self.stage.is_empty() || l.stage.as_str() == self.stage)
            && (self.tier.is_empty() || l.tier.is_some_and(|t| t.as_str() == self.tier))
            && (self.channel.is_empty() || l.channel.as_str() == self.channel)
            && (self.mode.is_empty() || l.purchase_mode.as_str() == self.mode)
            && (self.ageing.is_empty() || l.ageing)
    }
}

pub struct Opt {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

fn options<T: Copy>(
    all: &[T],
    selected: &str,
    code: impl Fn(T) -> &'static str,
    label: impl Fn(T) -> String,
) -> Vec<Opt> {
    all.iter()
        .map(|v| Opt {
            value: code(*v).to_string(),
            label: label(*v),
            selected: code(*v) == selected,
        })
        .collect()
}

pub struct LeadRowView {
    pub href: String,
    pub customer: String,
    pub office: String,
    pub owner: String,
    pub stage: String,
    pub tier: String,
    pub amount: String,
    pub last_visit: String,
    pub idle: String,
    pub ageing: bool,
}

#[derive(Template)]
#[template(path = "leads.html")]
struct LeadsPage {
    shell: Shell,
    q: ListQuery,
    offices: Vec<super::analysis::OfficeOption>,
    stages: Vec<Opt>,
    tiers: Vec<Opt>,
    channels: Vec<Opt>,
    modes: Vec<Opt>,
    rows: Vec<LeadRowView>,
    total: usize,
    shown_from: usize,
    shown_to: usize,
    first_href: Option<String>,
    prev_href: Option<String>,
    next_href: Option<String>,
    error: Option<String>,
}

fn stage_label(tr: Tr, s: Stage) -> String {
    tr.code(s.label_zh(), s.as_str())
}

fn row_view(tr: Tr, zone: chrono_tz::Tz, l: &LeadExport) -> LeadRowView {
    LeadRowView {
        href: format!("/console/leads/{}", l.lead_id),
        customer: l.customer.clone(),
        office: l.office_name.clone().unwrap_or_default(),
        owner: l
            .owner_name
            .clone()
            .unwrap_or_else(|| tr.t("（未分配）", "(unassigned)").into()),
        stage: stage_label(tr, l.stage),
        tier: l
            .tier
            .map(|t| tr.code(t.label_zh(), t.as_str()))
            .unwrap_or_else(|| "—".into()),
        amount: l.amount_cny.map(wan).unwrap_or_else(|| "—".into()),
        last_visit: l
            .last_visit_at
            .map(|t| local_time(t, zone))
            .unwrap_or_else(|| "—".into()),
        idle: l.idle_days.map(|d| d.to_string()).unwrap_or_default(),
        ageing: l.ageing,
    }
}

/// A page of rows, how many match over every page, and the cursor of the next page (lists now).
type Found = (Vec<LeadRowView>, usize, Option<String>);

/// The page of leads the query asks for now, from the lead index: keyset paging, so a lead
/// registered or changed while someone pages is neither shown twice nor skipped.
async fn search_now(state: &AppState, viewer: &Viewer, q: &ListQuery) -> Result<Found, Problem> {
    let tr = viewer.tr;
    let some = |text: &str| (!text.is_empty()).then(|| text.to_string());
    let found = leads::search(
        state.reads(),
        &viewer.caller,
        LeadQuery {
            text: some(&q.q),
            office: some(&q.office),
            owner: some(&q.owner),
            stage: q.stage.parse().ok(),
            tier: q.tier.parse().ok(),
            channel: q.channel.parse().ok(),
            purchase_mode: q.mode.parse().ok(),
            ageing: (!q.ageing.is_empty()).then_some(true),
            limit: Some(PAGE),
            offset: q.after.is_empty().then_some((q.page * PAGE) as u64),
            after: some(&q.after),
            ..LeadQuery::default()
        },
    )
    .await?;
    let time = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
            .unwrap_or_else(|_| t.to_string())
    };
    let rows = found
        .leads
        .iter()
        .map(|l| LeadRowView {
            href: format!("/console/leads/{}", l.id),
            customer: if l.project.is_empty() {
                l.customer.clone()
            } else {
                format!("{} {}", l.customer, l.project)
            },
            office: l.office.name.clone().unwrap_or_default(),
            owner: l
                .owner
                .as_ref()
                .and_then(|o| o.name.clone())
                .unwrap_or_else(|| tr.t("（未分配）", "(unassigned)").into()),
            stage: stage_label(tr, l.stage),
            tier: l
                .tier
                .map(|t| tr.code(t.label_zh(), t.as_str()))
                .unwrap_or_else(|| "—".into()),
            amount: l.amount_cny.map(wan).unwrap_or_else(|| "—".into()),
            last_visit: l
                .last_visit_at
                .as_deref()
                .map(time)
                .unwrap_or_else(|| "—".into()),
            idle: l.idle_days.map(|d| d.to_string()).unwrap_or_default(),
            ageing: l.ageing,
        })
        .collect();
    Ok((rows, found.total as usize, found.next_after))
}

/// The page of leads the query asks for as of a moment, from the pipeline replayed to then.
async fn as_of_then(
    state: &AppState,
    viewer: &Viewer,
    q: &ListQuery,
    as_of: Option<AsOfInput>,
) -> Result<Found, Problem> {
    let list = reports::leads(
        state.reads(),
        &viewer.caller,
        ReportQuery {
            office: (!q.office.is_empty()).then(|| q.office.clone()),
            as_of,
            at_least: None,
        },
    )
    .await?;
    let folded = fold_name(&q.q);
    let mut found: Vec<&LeadExport> = list.leads.iter().filter(|l| q.keeps(l, &folded)).collect();
    // Most recently registered first, as the index sorts.
    found.sort_by_key(|l| std::cmp::Reverse(l.registered_at));
    let total = found.len();
    let then = serde_urlencoded::to_string([("as_of", q.as_of.as_str())]).unwrap_or_default();
    let rows = found
        .iter()
        .skip(q.page * PAGE)
        .take(PAGE)
        .map(|l| {
            let mut row = row_view(viewer.tr, viewer.zone, l);
            // The record as it stood at the same moment as the list.
            row.href = format!("{}?{then}", row.href);
            row
        })
        .collect();
    Ok((rows, total, None))
}

/// `GET /console/leads?q=&office=&owner=&stage=&tier=&channel=&mode=&ageing=&as_of=&page=`.
pub async fn list(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Response {
    let tr = viewer.tr;
    let shell = Shell::new(tr, tr.t("线索", "Leads"), "/console/leads", Some(&viewer))
        .with_query(&q.pairs());
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
    let now = as_of.is_none() && error.is_none();
    let found = if now {
        // Now: the persisted lead index, searched and paged by the application layer.
        search_now(&state, &viewer, &q).await
    } else {
        // As of a date: the pipeline replayed to then, filtered here.
        as_of_then(&state, &viewer, &q, as_of).await
    };
    let (rows, total, next_after) = match found {
        Ok(f) => f,
        Err(p) => return super::problem_page(shell, &p),
    };
    let start = (q.page * PAGE).min(total);
    let end = (start + rows.len()).min(total);
    let href = |page: usize, after: Option<&str>| {
        let mut pairs: Vec<(&str, String)> = q
            .pairs()
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .collect();
        if page > 0 {
            pairs.push(("page", page.to_string()));
        }
        if let Some(after) = after {
            pairs.push(("after", after.to_string()));
        }
        format!(
            "/console/leads?{}",
            serde_urlencoded::to_string(&pairs).unwrap_or_default()
        )
    };
    // Now, pages go on from the index's cursor and back to the first page (a cursor leads
    // forwards only; the browser's back button returns page by page). As of a moment, by number.
    let (first_href, prev_href, next_href) = if now {
        (
            (q.page > 0).then(|| href(0, None)),
            None,
            next_after
                .filter(|_| end < total)
                .map(|a| href(q.page + 1, Some(&a))),
        )
    } else {
        (
            None,
            (q.page > 0).then(|| href(q.page - 1, None)),
            (end < total).then(|| href(q.page + 1, None)),
        )
    };
    let offices = super::analysis::office_options(&state, &viewer, &q.office).await;
    html(
        LeadsPage {
            shell,
            offices,
            stages: options(Stage::ALL, &q.stage, Stage::as_str, |s| stage_label(tr, s)),
            tiers: options(Tier::ALL, &q.tier, Tier::as_str, |t| {
                tr.code(t.label_zh(), t.as_str())
            }),
            channels: options(Channel::ALL, &q.channel, Channel::as_str, |c| {
                tr.code(c.label_zh(), c.as_str())
            }),
            modes: options(PurchaseMode::ALL, &q.mode, PurchaseMode::as_str, |m| {
                tr.code(m.label_zh(), m.as_str())
            }),
            rows,
            total,
            shown_from: if total == 0 { 0 } else { start + 1 },
            shown_to: end,
            first_href,
            prev_href,
            next_href,
            error,
            q,
        }
        .render(),
    )
}

pub struct Field {
    pub label: &'static str,
    pub value: String,
}

pub struct CheckItem {
    pub label: String,
    pub met: bool,
    /// When and with what it was met.
    pub how: String,
}

pub struct CheckStage {
    /// The stage's code (`valid` …).
    pub code: &'static str,
    pub stage: String,
    pub reached: bool,
    pub missing: usize,
    pub items: Vec<CheckItem>,
}

pub struct KeyPersonRow {
    pub name: String,
    pub title: String,
    pub role: String,
    pub insider: bool,
}

pub struct TimelineRow {
    pub at: String,
    pub who: String,
    pub action: String,
    pub summary: String,
    pub changes: Vec<String>,
    pub refused: bool,
}

#[derive(Template)]
#[template(path = "lead.html")]
struct LeadPage {
    shell: Shell,
    lead_id: String,
    /// The moment the record stands at, as people read it (empty: now), and the date picked.
    as_of_label: String,
    as_of_date: String,
    customer: String,
    fields: Vec<Field>,
    checklist: Vec<CheckStage>,
    key_persons: Vec<KeyPersonRow>,
    timeline: Vec<TimelineRow>,
    /// The viewer owns this lead: the forms of an engineer are shown (the domain decides).
    is_owner: bool,
    kinds: Vec<Opt>,
    purposes: Vec<Opt>,
    now_local: String,
    /// Key person roles and relationship levels (Table 5).
    roles: Vec<Opt>,
    levels: Vec<Opt>,
    /// The criteria of the lead's purchase mode recorded with evidence (met ones marked).
    criteria: Vec<Opt>,
    /// The declaration the lead's stage leads to: `valid`, `prospect` or none.
    declare: &'static str,
    flags: Vec<(&'static str, &'static str)>,
    forms: Vec<(u8, &'static str)>,
    /// The lead office's forms of this month so far, as one workbook.
    office_workbook: String,
    /// The lead's contracts, each version with its amount and the fingerprint of its file.
    contracts: Vec<ContractRow>,
    /// The contract form the owner may use now: `submit` (a prospect without a contract),
    /// `amend` (a contract not signed yet) or none.
    contract_form: &'static str,
    /// The contract an amendment names, and its current amount in 万元.
    contract_id: String,
    contract_amount: String,
    /// The largest contract file, in MiB.
    file_limit_mib: usize,
}

pub struct ContractRow {
    pub version: u32,
    pub amount: String,
    pub fingerprint: String,
    pub by: String,
    pub reason: String,
    pub signed: bool,
}

/// The query of a lead's record page: the moment to show it as of (empty: now).
#[derive(Debug, Default, Deserialize)]
pub struct RecordQuery {
    #[serde(default)]
    as_of: String,
}

/// `GET /console/leads/{id}?as_of=`: the lead's whole record and timeline, for those who may read
/// it; with `as_of` (a date, a time or a position) as it stood then, without the forms that act.
pub async fn record(
    State(state): State<AppState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<RecordQuery>,
) -> Response {
    let tr = viewer.tr;
    let path = format!("/console/leads/{id}");
    let shell = Shell::new(tr, tr.t("线索记录", "Lead record"), &path, Some(&viewer));
    let lead: LeadId = match crate::extract::path_id("lead id", &id) {
        Ok(l) => l,
        Err(p) => return super::problem_page(shell, &p),
    };
    let as_of = match q.as_of.trim() {
        "" => None,
        text => match text.parse::<AsOfInput>() {
            Ok(a) => Some(a),
            Err(e) => return super::problem_page(shell, &Problem::bad_request("as_of", e)),
        },
    };
    let r = match record::lead_record(state.reads(), &viewer.caller, lead, None, as_of).await {
        Ok(r) => r,
        Err(e) => return super::problem_page(shell, &Problem::from(e)),
    };
    let zone: chrono_tz::Tz = r.time_zone.parse().unwrap_or(viewer.zone);
    let f = &r.fields;
    let dash = || "—".to_string();
    let fields = vec![
        Field {
            label: tr.t("办事处", "Office"),
            value: r.office.name.clone(),
        },
        Field {
            label: tr.t("负责人", "Owner"),
            value: r
                .owner
                .as_ref()
                .map(|o| o.name.clone())
                .unwrap_or_else(|| tr.t("（未分配）", "(unassigned)").into()),
        },
        Field {
            label: tr.t("阶段", "Stage"),
            value: format!(
                "{}（{} {}）",
                tr.code(&r.stage_zh, r.stage.as_str()),
                tr.t("自", "since"),
                local_time(r.stage_since, zone)
            ),
        },
        Field {
            label: tr.t("行业", "Industry"),
            value: tr.code(&f.industry_zh, f.industry.as_str()),
        },
        Field {
            label: tr.t("采购方式", "Purchase mode"),
            value: tr.code(&f.purchase_mode_zh, f.purchase_mode.as_str()),
        },
        Field {
            label: tr.t("渠道", "Channel"),
            value: tr.code(&f.channel_zh, f.channel.as_str()),
        },
        Field {
            label: tr.t("地点", "Location"),
            value: f.location.clone(),
        },
        Field {
            label: tr.t("联系人", "Contact"),
            value: format!("{} {}", f.contact.name, f.contact.phone),
        },
        Field {
            label: tr.t("需求", "Need"),
            value: f.need.clone(),
        },
        Field {
            label: tr.t("报备", "Registered"),
            value: format!(
                "{} · {}",
                f.registered_by.name,
                local_time(f.registered_at, zone)
            ),
        },
        Field {
            label: tr.t("金额（万元）", "Amount (万元)"),
            value: r.amount_cny.map(wan).unwrap_or_else(dash),
        },
        Field {
            label: tr.t("客户等级", "Tier"),
            value: r
                .tier
                .map(|t| tr.code(t.label_zh(), t.as_str()))
                .unwrap_or_else(dash),
        },
        Field {
            label: tr.t("无内线拜访次数", "Visits without an insider"),
            value: r.visits_without_insider.to_string(),
        },
    ];
    let checklist = r
        .checklist
        .iter()
        .map(|c| CheckStage {
            code: c.stage.as_str(),
            stage: tr.code(&c.stage_zh, c.stage.as_str()),
            reached: c.reached,
            missing: c.missing,
            items: c
                .items
                .iter()
                .map(|i| CheckItem {
                    label: i.label_zh.clone(),
                    met: i.met,
                    how: match (&i.met_by, &i.evidence) {
                        (Some(e), Some(ev)) => format!("{} · {ev}", e.local),
                        (Some(e), None) => e.local.clone(),
                        (None, Some(ev)) => ev.clone(),
                        (None, None) => String::new(),
                    },
                })
                .collect(),
        })
        .collect();
    let key_persons = r
        .key_persons
        .iter()
        .map(|k| KeyPersonRow {
            name: k.name.clone(),
            title: k.title.clone(),
            role: tr.code(&k.role_zh, k.role.as_str()),
            insider: k.insider,
        })
        .collect();
    let timeline = r
        .timeline
        .iter()
        .rev()
        .map(|t| TimelineRow {
            at: t.local.clone(),
            who: match &t.actor.role_zh {
                Some(role) if !tr.en() => format!("{}（{role}）", t.actor.name),
                _ => t.actor.name.clone(),
            },
            action: super::labels::action(tr, t.refused_action.as_deref().unwrap_or(&t.event_type)),
            summary: tr.t(&t.summary_zh, &t.summary_en).to_string(),
            changes: t
                .changes
                .iter()
                .map(|c| {
                    let old = c
                        .old_zh
                        .clone()
                        .or_else(|| c.old.clone())
                        .unwrap_or_else(dash);
                    let new = c
                        .new_zh
                        .clone()
                        .or_else(|| c.new.clone())
                        .unwrap_or_else(dash);
                    format!("{}：{old} → {new}", tr.t(&c.label_zh, &c.field))
                })
                .collect(),
            refused: t.refused,
        })
        .collect();
    // The forms that act are for the lead as it is now, never for a past record.
    let is_owner = r.as_of.is_none()
        && r.owner
            .as_ref()
            .is_some_and(|o| o.staff_id == viewer.caller.staff_id);
    // The contract an amendment would name: the lead's latest, while not signed.
    let open_contract = r.contracts.last().filter(|c| !c.signed);
    let as_of_label = match &r.as_of {
        None => String::new(),
        Some(a) => match (a.time, a.position) {
            (Some(t), _) => t.format("%Y-%m-%d %H:%M").to_string(),
            (None, Some(p)) => match tr.lang {
                super::Lang::Zh => format!("日志位置 {}", p.0),
                super::Lang::En => format!("log position {}", p.0),
            },
            (None, None) => String::new(),
        },
    };
    let as_of_date = r
        .as_of
        .as_ref()
        .and_then(|a| a.time)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default();
    // Each criterion that is recorded with evidence, once, in checklist order; the first one
    // still missing is chosen.
    let mut criteria: Vec<Opt> = Vec::new();
    for item in r.checklist.iter().flat_map(|c| &c.items) {
        let c = item.criterion;
        if c.is_derived() || criteria.iter().any(|o| o.value == c.as_str()) {
            continue;
        }
        let label = tr.code(c.label_zh(), c.as_str());
        criteria.push(Opt {
            value: c.as_str().to_string(),
            label: if item.met {
                format!("{label}{}", tr.t("（已满足）", " (met)"))
            } else {
                label
            },
            selected: false,
        });
    }
    if let Some(first) = r
        .checklist
        .iter()
        .flat_map(|c| &c.items)
        .find(|i| !i.met && !i.criterion.is_derived())
        .and_then(|i| {
            criteria
                .iter_mut()
                .find(|o| o.value == i.criterion.as_str())
        })
    {
        first.selected = true;
    }
    let today = state
        .engine()
        .clock()
        .now()
        .with_timezone(&zone)
        .date_naive();
    let office_workbook = format!(
        "/forms/office/{}?{}",
        r.office.code,
        serde_urlencoded::to_string([
            ("from", today.with_day(1).unwrap_or(today).to_string()),
            ("to", today.to_string()),
        ])
        .unwrap_or_default()
    );
    let fields = {
        let mut fields = fields;
        fields.push(Field {
            label: tr.t(
                "关系等级（公司 / 个人）",
                "Relationship (company / personal)",
            ),
            value: format!(
                "{} / {}",
                r.relationship.company.label_zh(),
                r.relationship.personal.label_zh()
            ),
        });
        fields
    };
    let forms = vec![
        (1, tr.t("表1 客户信息记录", "Form 1 customer record")),
        (2, tr.t("表2 跟进记录", "Form 2 follow-up record")),
        (5, tr.t("表5 关键人物", "Form 5 key persons")),
        (6, tr.t("表6 准客户申报", "Form 6 prospect declaration")),
    ];
    html(
        LeadPage {
            shell,
            lead_id: lead.to_string(),
            as_of_label,
            as_of_date,
            customer: if f.project_name.is_empty() {
                f.customer_name.clone()
            } else {
                format!("{} {}", f.customer_name, f.project_name)
            },
            fields,
            checklist,
            key_persons,
            timeline,
            is_owner,
            roles: options(KeyPersonRole::ALL, "", KeyPersonRole::as_str, |k| {
                tr.code(k.label_zh(), k.as_str())
            }),
            levels: options(&[Level::A, Level::B, Level::C], "", Level::as_str, |l| {
                l.label_zh().to_string()
            }),
            criteria,
            contracts: r
                .contracts
                .iter()
                .flat_map(|c| {
                    c.versions.iter().map(|v| ContractRow {
                        version: v.version,
                        amount: wan(v.amount_cny),
                        fingerprint: v.content_hash.get(..12).unwrap_or(&v.content_hash).into(),
                        by: v.by.name.clone(),
                        reason: v.reason.clone(),
                        signed: c.signed,
                    })
                })
                .collect(),
            contract_form: match open_contract {
                Some(_) => "amend",
                None if r.stage == Stage::Prospect && r.contracts.is_empty() => "submit",
                None => "",
            },
            contract_id: open_contract
                .map(|c| c.contract_id.to_string())
                .unwrap_or_default(),
            contract_amount: open_contract
                .and_then(|c| c.current())
                .map(|v| wan(v.amount_cny))
                .unwrap_or_default(),
            file_limit_mib: super::entry::CONTRACT_FILE_LIMIT / (1024 * 1024),
            declare: match r.stage {
                Stage::Ordinary => "valid",
                Stage::Valid => "prospect",
                _ => "",
            },
            flags: vec![
                ("group_purchasing", tr.t("集团采购", "Group purchasing")),
                ("industry_benchmark", tr.t("行业标杆", "Industry benchmark")),
                (
                    "continuing_purchases",
                    tr.t("持续采购", "Continuing purchases"),
                ),
                ("reference_site", tr.t("可作样板工程", "Reference site")),
                ("refers_others", tr.t("忠诚并会推荐", "Refers others")),
            ],
            office_workbook,
            kinds: options(ContactKind::ALL, "visit", ContactKind::as_str, |k| {
                tr.code(k.label_zh(), k.as_str())
            }),
            purposes: options(VisitPurpose::ALL, "", VisitPurpose::as_str, |p| {
                tr.code(p.label_zh(), p.as_str())
            }),
            now_local: state
                .engine()
                .clock()
                .now()
                .with_timezone(&zone)
                .format("%Y-%m-%dT%H:%M")
                .to_string(),
            forms,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterPage {
    shell: Shell,
    industries: Vec<Opt>,
    modes: Vec<Opt>,
    channels: Vec<Opt>,
}

/// `GET /console/leads/new`: the registration form (报备), for a phone; the customer's name is
/// checked against the leads on record while it is typed.
pub async fn new_lead(viewer: Viewer) -> Response {
    use funnel_domain::model::Industry;
    let tr = viewer.tr;
    let shell = Shell::new(
        tr,
        tr.t("报备线索", "Register a lead"),
        "/console/leads/new",
        Some(&viewer),
    );
    html(
        RegisterPage {
            shell,
            industries: options(Industry::ALL, "", Industry::as_str, |i| {
                tr.code(i.label_zh(), i.as_str())
            }),
            modes: options(PurchaseMode::ALL, "", PurchaseMode::as_str, |m| {
                tr.code(m.label_zh(), m.as_str())
            }),
            channels: options(Channel::ALL, "", Channel::as_str, |c| {
                tr.code(c.label_zh(), c.as_str())
            }),
        }
        .render(),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct SimilarQuery {
    #[serde(default)]
    customer_name: String,
    #[serde(default)]
    #[allow(dead_code)]
    lang: Option<String>,
}

#[derive(Template)]
#[template(path = "similar.html")]
struct SimilarFragment {
    tr: Tr,
    rows: Vec<LeadRowView>,
    total: usize,
}

/// `GET /console/leads/similar?customer_name=`: the leads on record whose customer reads the same
/// (as the duplicate check folds names), shown before the registration is sent.
pub async fn similar(
    State(state): State<AppState>,
    viewer: Viewer,
    Query(q): Query<SimilarQuery>,
) -> Response {
    let tr = viewer.tr;
    let (rows, total, _) = if fold_name(&q.customer_name).is_empty() {
        (Vec::new(), 0, None)
    } else {
        let query = ListQuery {
            q: q.customer_name.clone(),
            ..ListQuery::default()
        };
        search_now(&state, &viewer, &query)
            .await
            .unwrap_or_default()
    };
    html(SimilarFragment { tr, rows, total }.render())
}
