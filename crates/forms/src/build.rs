//! From one aggregate's events to a form.

use crate::{Column, Field, Form, FormError, FormKind, NameBook, SignOff};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use funnel_domain::Event;
use funnel_domain::events::*;
use funnel_domain::model::{Period, Stage};
use funnel_types::{Envelope, KeyPersonId};
use std::collections::BTreeMap;

/// Builds `kind` from the events of one stream (a lead's for forms 1, 2, 5 and 6, a summary's for
/// form 3, a plan's for form 4), in stream order.
pub fn build(
    kind: FormKind,
    events: &[Envelope<Event>],
    names: &NameBook,
    tz: Tz,
) -> Result<Form, FormError> {
    let source = events
        .last()
        .map(|e| format!("{} v{}", e.meta.stream, e.meta.version))
        .unwrap_or_default();
    let b = Builder { names, tz };
    let mut form = match kind {
        FormKind::CustomerRecord => b.customer_record(&lead(events)?),
        FormKind::FollowUps => b.follow_ups(&lead(events)?),
        FormKind::KeyPersons => b.key_persons(&lead(events)?),
        FormKind::ProspectDeclaration => b.prospect(&lead(events)?)?,
        FormKind::OfficeSummary => b.summary(events)?,
        FormKind::VisitPlan => b.plan(events)?,
    };
    form.source = source;
    form.sign_off = sign_off(kind, events, names, tz);
    Ok(form)
}

/// The review and filing lines of `kind` from the record ([`SignOff`]): the approval and filing
/// that follow the latest declaration (a prospect declaration for form 6) or compilation, each as
/// "who, when".
fn sign_off(kind: FormKind, events: &[Envelope<Event>], names: &NameBook, tz: Tz) -> SignOff {
    let b = Builder { names, tz };
    let who = |staff, at| format!("{}，{}", names.staff(staff), b.time(at));
    let mut current = None;
    let mut s = SignOff::default();
    for e in events {
        let at = e.meta.occurred_at;
        match &e.payload {
            Event::ValidInfoDeclared(d) if kind != FormKind::ProspectDeclaration => {
                current = Some(d.declaration_id);
                s = SignOff::default();
            }
            Event::ProspectDeclared(d) => {
                current = Some(d.declaration_id);
                s = SignOff::default();
            }
            Event::DeclarationReviewed(d) if current == Some(d.declaration_id) && d.approved => {
                s.reviewed = Some(who(d.reviewed_by, at));
            }
            Event::DeclarationFiled(d) if current == Some(d.declaration_id) => {
                s.filed = Some(who(d.filed_by, at));
            }
            Event::SummaryCompiled(_) => s = SignOff::default(),
            Event::SummaryReviewed(r) if r.approved => s.reviewed = Some(who(r.reviewed_by, at)),
            Event::VisitPlanFiled(f) => s.filed = Some(who(f.filed_by, at)),
            Event::SummaryFiled(f) => s.filed = Some(who(f.filed_by, at)),
            _ => {}
        }
    }
    s
}

/// What the lead forms need, folded from the lead's events.
struct LeadRecord<'a> {
    registered: &'a LeadRegistered,
    registered_at: DateTime<Utc>,
    location: String,
    contact: String,
    need: String,
    purchase_scale: String,
    industry: &'static str,
    purchase_mode: &'static str,
    owner: Option<funnel_types::StaffId>,
    stage: Stage,
    levels: Option<(&'static str, &'static str)>,
    visits: Vec<(DateTime<Utc>, &'a VisitLogged)>,
    key_persons: BTreeMap<KeyPersonId, (&'a KeyPersonRecorded, bool)>,
    prospect: Option<Prospect<'a>>,
}

struct Prospect<'a> {
    declared: &'a ProspectDeclared,
    at: DateTime<Utc>,
    review: Option<(DateTime<Utc>, &'a DeclarationReviewed)>,
    filed: Option<(DateTime<Utc>, &'a DeclarationFiled)>,
    withdrawn: Option<&'a DeclarationWithdrawn>,
}

fn lead(events: &[Envelope<Event>]) -> Result<LeadRecord<'_>, FormError> {
    let (registered, at) = events
        .iter()
        .find_map(|e| match &e.payload {
            Event::LeadRegistered(r) => Some((r, e.meta.occurred_at)),
            _ => None,
        })
        .ok_or_else(|| FormError::NotFound("no lead is registered on this record".into()))?;
    let contact = |c: &funnel_domain::model::Contact| {
        [c.name.as_str(), c.phone.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut r = LeadRecord {
        registered,
        registered_at: at,
        location: registered.location.clone(),
        contact: contact(&registered.contact),
        need: registered.need.clone(),
        purchase_scale: String::new(),
        industry: registered.industry.label_zh(),
        purchase_mode: registered.purchase_mode.label_zh(),
        owner: None,
        stage: Stage::Ordinary,
        levels: None,
        visits: Vec::new(),
        key_persons: BTreeMap::new(),
        prospect: None,
    };
    for e in events {
        let at = e.meta.occurred_at;
        match &e.payload {
            Event::LeadDetailsUpdated(d) => {
                if let Some(v) = &d.location {
                    r.location = v.clone();
                }
                if let Some(v) = &d.contact {
                    r.contact = contact(v);
                }
                if let Some(v) = &d.need {
                    r.need = v.clone();
                }
                if let Some(v) = &d.purchase_scale {
                    r.purchase_scale = v.clone();
                }
                if let Some(v) = d.industry {
                    r.industry = v.label_zh();
                }
                if let Some(v) = d.purchase_mode {
                    r.purchase_mode = v.label_zh();
                }
            }
            Event::LeadOwnerAssigned(o) => r.owner = Some(o.owner),
            Event::StageChanged(s) => r.stage = s.to,
            Event::RelationshipAssessed(a) => {
                r.levels = Some((a.company.label_zh(), a.personal.label_zh()));
            }
            Event::VisitLogged(v) => r.visits.push((v.visited_at, v)),
            Event::KeyPersonRecorded(k) => {
                let insider = r.key_persons.get(&k.key_person_id).is_some_and(|(_, i)| *i);
                r.key_persons.insert(k.key_person_id, (k, insider));
            }
            Event::InsiderDeveloped(i) => {
                if let Some(entry) = r.key_persons.get_mut(&i.key_person_id) {
                    entry.1 = true;
                }
            }
            Event::ProspectDeclared(p) => {
                r.prospect = Some(Prospect {
                    declared: p,
                    at,
                    review: None,
                    filed: None,
                    withdrawn: None,
                });
            }
            Event::DeclarationReviewed(d) => {
                if let Some(p) = r
                    .prospect
                    .as_mut()
                    .filter(|p| p.declared.declaration_id == d.declaration_id)
                {
                    p.review = Some((at, d));
                }
            }
            Event::DeclarationFiled(d) => {
                if let Some(p) = r
                    .prospect
                    .as_mut()
                    .filter(|p| p.declared.declaration_id == d.declaration_id)
                {
                    p.filed = Some((at, d));
                }
            }
            Event::DeclarationWithdrawn(d) => {
                if let Some(p) = r
                    .prospect
                    .as_mut()
                    .filter(|p| p.declared.declaration_id == d.declaration_id)
                {
                    p.withdrawn = Some(d);
                }
            }
            _ => {}
        }
    }
    r.visits.sort_by_key(|(at, v)| (*at, v.visit_number));
    Ok(r)
}

fn field(label_zh: &'static str, label_en: &'static str, value: impl Into<String>) -> Field {
    Field {
        label_zh,
        label_en,
        value: value.into(),
    }
}

fn col(label_zh: &'static str, label_en: &'static str) -> Column {
    Column { label_zh, label_en }
}

fn yes_no(b: bool) -> String {
    if b { "是" } else { "否" }.to_string()
}

fn period(p: &Period) -> String {
    match p {
        Period::Week { monday } => {
            let sunday = *monday + chrono::Duration::days(6);
            format!("{}（{} 至 {}）", p.key(), monday, sunday)
        }
        Period::Month { year, month } => format!("{year}年{month}月"),
    }
}

/// Whole yuan with thousands separators: `1,250,000 元`.
fn yuan(amount: u64) -> String {
    let digits = amount.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} 元")
}

struct Builder<'a> {
    names: &'a NameBook,
    tz: Tz,
}

impl Builder<'_> {
    fn time(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.tz)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    fn subject(&self, r: &LeadRecord<'_>) -> String {
        if r.registered.project_name.is_empty() {
            r.registered.customer_name.clone()
        } else {
            format!(
                "{} · {}",
                r.registered.customer_name, r.registered.project_name
            )
        }
    }

    /// The lines every lead form starts with.
    fn lead_head(&self, r: &LeadRecord<'_>) -> Vec<Field> {
        vec![
            field("客户名称", "Customer", &r.registered.customer_name),
            field("项目名称", "Project", &r.registered.project_name),
            field("办事处", "Office", self.names.office(r.registered.office)),
            field(
                "负责工程师",
                "Engineer in charge",
                r.owner.map(|o| self.names.staff(o)).unwrap_or_default(),
            ),
        ]
    }

    fn customer_record(&self, r: &LeadRecord<'_>) -> Form {
        let mut fields = self.lead_head(r);
        fields.extend([
            field(
                "客户行业（项目类型）",
                "Industry (project type)",
                r.industry,
            ),
            field("采购方式", "Purchase mode", r.purchase_mode),
            field("信息来源", "Channel", r.registered.channel.label_zh()),
            field("项目地点", "Location", &r.location),
            field("联系人及电话", "Contact", &r.contact),
            field(
                "客户对（数字）楼宇对讲的需求",
                "Why the customer needs (digital) intercom",
                &r.need,
            ),
            field(
                "采购规模及产品要求",
                "Purchase scale and product requirements",
                &r.purchase_scale,
            ),
            field("当前阶段", "Stage", r.stage.label_zh()),
            field("拜访次数", "Visits", r.visits.len().to_string()),
            field(
                "报备人",
                "Registered by",
                self.names.staff(r.registered.registered_by),
            ),
            field("报备时间", "Registered at", self.time(r.registered_at)),
        ]);
        Form {
            kind: FormKind::CustomerRecord,
            subject: self.subject(r),
            fields,
            columns: Vec::new(),
            rows: Vec::new(),
            source: String::new(),
            sign_off: SignOff::default(),
            printed: None,
        }
    }

    fn follow_ups(&self, r: &LeadRecord<'_>) -> Form {
        let person = |id: &KeyPersonId| {
            r.key_persons
                .get(id)
                .map(|(k, _)| k.name.clone())
                .unwrap_or_else(|| id.to_string())
        };
        let rows = r
            .visits
            .iter()
            .map(|(at, v)| {
                vec![
                    v.visit_number.to_string(),
                    self.time(*at),
                    v.kind.label_zh().to_string(),
                    self.names.staff(v.engineer),
                    v.purposes
                        .iter()
                        .map(|p| p.label_zh())
                        .collect::<Vec<_>>()
                        .join("、"),
                    v.met.iter().map(person).collect::<Vec<_>>().join("、"),
                    v.summary.clone(),
                    v.information_gained.clone(),
                    v.customer_feedback.clone(),
                    v.next_step.clone(),
                ]
            })
            .collect();
        let mut fields = self.lead_head(r);
        fields.push(field("当前阶段", "Stage", r.stage.label_zh()));
        Form {
            kind: FormKind::FollowUps,
            subject: self.subject(r),
            fields,
            columns: vec![
                col("次数", "No."),
                col("时间", "When"),
                col("方式", "How"),
                col("工程师", "Engineer"),
                col("目的", "Purposes"),
                col("会见关键人", "Key persons met"),
                col("拜访情况", "What happened"),
                col("获得信息", "Information gained"),
                col("客户反馈", "Customer feedback"),
                col("下一步（约定下次会面）", "Next step"),
            ],
            rows,
            source: String::new(),
            sign_off: SignOff::default(),
            printed: None,
        }
    }

    fn key_persons(&self, r: &LeadRecord<'_>) -> Form {
        let mut fields = self.lead_head(r);
        let (company, personal) = r.levels.unwrap_or(("", ""));
        fields.push(field("公司关系", "Company relationship", company));
        fields.push(field("个人关系", "Personal relationship", personal));
        let rows = r
            .key_persons
            .values()
            .map(|(k, insider)| {
                vec![
                    k.name.clone(),
                    k.title.clone(),
                    k.role.label_zh().to_string(),
                    k.phone.clone(),
                    yes_no(*insider),
                    k.personal_notes.clone(),
                ]
            })
            .collect();
        Form {
            kind: FormKind::KeyPersons,
            subject: self.subject(r),
            fields,
            columns: vec![
                col("姓名", "Name"),
                col("职务", "Title"),
                col("角色", "Role"),
                col("电话", "Phone"),
                col("内线", "Insider"),
                col("个人信息", "Personal information"),
            ],
            rows,
            source: String::new(),
            sign_off: SignOff::default(),
            printed: None,
        }
    }

    fn prospect(&self, r: &LeadRecord<'_>) -> Result<Form, FormError> {
        let p = r
            .prospect
            .as_ref()
            .ok_or_else(|| FormError::NotYet("this lead has no prospect declaration yet".into()))?;
        let d = p.declared;
        let flags = [
            (d.flags.group_purchasing, "集团统一采购/管控下属公司"),
            (d.flags.industry_benchmark, "行业标杆，影响广泛"),
            (d.flags.continuing_purchases, "持续采购"),
            (d.flags.reference_site, "愿作样板工程"),
            (d.flags.refers_others, "忠诚度高，介绍客户"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .map(|(_, label)| label)
        .collect::<Vec<_>>()
        .join("、");
        let review = match p.review {
            Some((at, rv)) => format!(
                "{}，{}，{}{}",
                self.names.staff(rv.reviewed_by),
                if rv.approved { "同意" } else { "不同意" },
                self.time(at),
                if rv.note.is_empty() {
                    String::new()
                } else {
                    format!("：{}", rv.note)
                }
            ),
            None => "待审核".into(),
        };
        let filed = match p.filed {
            Some((at, f)) => format!(
                "{}，{}{}",
                self.names.staff(f.filed_by),
                self.time(at),
                if f.key_account_involved {
                    "，大客户部介入"
                } else {
                    ""
                }
            ),
            None => String::new(),
        };
        let mut fields = self.lead_head(r);
        fields.extend([
            field("申报人", "Declared by", self.names.staff(d.declared_by)),
            field("申报时间", "Declared at", self.time(p.at)),
            field("预计采购金额", "Expected purchase", yuan(d.amount_cny)),
            field("准客户类型", "Tier", d.tier.label_zh()),
            field("客户性质及影响", "Scale, nature and influence", flags),
            field(
                "公司关系",
                "Company relationship",
                d.company_level.label_zh(),
            ),
            field(
                "个人关系",
                "Personal relationship",
                d.personal_level.label_zh(),
            ),
            field("报价策略", "Quoting strategy", &d.quoting_strategy),
            field(
                "已满足条件",
                "Criteria met",
                d.criteria
                    .iter()
                    .map(|c| c.label_zh())
                    .collect::<Vec<_>>()
                    .join("、"),
            ),
            field("办事处经理审核", "Office manager's review", review),
            field("销售部备案", "Filed with the sales department", filed),
        ]);
        if let Some(w) = p.withdrawn {
            fields.push(field(
                "撤回",
                "Withdrawn",
                format!("线索已{}", w.lead_stage.label_zh()),
            ));
        }
        Ok(Form {
            kind: FormKind::ProspectDeclaration,
            subject: self.subject(r),
            fields,
            columns: Vec::new(),
            rows: Vec::new(),
            source: String::new(),
            sign_off: SignOff::default(),
            printed: None,
        })
    }

    fn summary(&self, events: &[Envelope<Event>]) -> Result<Form, FormError> {
        let mut compiled: Option<(DateTime<Utc>, &SummaryCompiled)> = None;
        let mut verified = String::new();
        let mut reviewed = String::new();
        let mut filed = String::new();
        for e in events {
            let at = self.time(e.meta.occurred_at);
            match &e.payload {
                Event::SummaryCompiled(c) => {
                    compiled = Some((e.meta.occurred_at, c));
                    // A new compilation starts its steps over.
                    verified.clear();
                    reviewed.clear();
                    filed.clear();
                }
                Event::SummaryVerified(v) => {
                    verified = format!("{}，{at}", self.names.staff(v.verified_by));
                }
                Event::SummaryReviewed(v) => {
                    reviewed = format!(
                        "{}，{}，{at}",
                        self.names.staff(v.reviewed_by),
                        if v.approved { "同意" } else { "退回" }
                    );
                }
                Event::SummaryFiled(v) => {
                    filed = format!("{}，{at}", self.names.staff(v.filed_by));
                }
                _ => {}
            }
        }
        let (at, c) = compiled.ok_or_else(|| {
            FormError::NotFound("no office summary is compiled on this record".into())
        })?;
        let office = self.names.office(c.office);
        let rows = c
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                vec![
                    (i + 1).to_string(),
                    l.customer.clone(),
                    self.names.staff(l.engineer),
                    l.lead_id.to_string(),
                ]
            })
            .collect();
        Ok(Form {
            kind: FormKind::OfficeSummary,
            subject: format!("{office} {}", c.period.key()),
            fields: vec![
                field("办事处", "Office", office),
                field("期间", "Period", period(&c.period)),
                field("新增客户数", "New leads", c.lines.len().to_string()),
                field(
                    "汇总人",
                    "Compiled by",
                    format!("{}，{}", self.names.staff(c.compiled_by), self.time(at)),
                ),
                field("核实", "Verified", verified),
                field("办事处经理审核", "Office manager's review", reviewed),
                field(
                    "存档并报销售部备案",
                    "Filed with the sales department",
                    filed,
                ),
            ],
            columns: vec![
                col("序号", "No."),
                col("客户", "Customer"),
                col("报备工程师", "Engineer"),
                col("线索编号", "Lead"),
            ],
            rows,
            source: String::new(),
            sign_off: SignOff::default(),
            printed: None,
        })
    }

    fn plan(&self, events: &[Envelope<Event>]) -> Result<Form, FormError> {
        let mut submitted: Option<&VisitPlanSubmitted> = None;
        let mut overdue: Option<&VisitPlanOverdue> = None;
        let mut filed = String::new();
        for e in events {
            match &e.payload {
                Event::VisitPlanSubmitted(p) => submitted = Some(p),
                Event::VisitPlanOverdue(p) => overdue = Some(p),
                Event::VisitPlanFiled(f) => {
                    filed = format!(
                        "{}，{}",
                        self.names.staff(f.filed_by),
                        self.time(e.meta.occurred_at)
                    );
                }
                _ => {}
            }
        }
        let (engineer, office, period_of, due_at) = match (submitted, overdue) {
            (Some(p), _) => (p.engineer, p.office, p.period, p.due_at),
            (None, Some(o)) => (o.engineer, o.office, o.period, o.due_at),
            (None, None) => {
                return Err(FormError::NotFound(
                    "no visit plan is on this record".into(),
                ));
            }
        };
        let kind = match period_of {
            Period::Week { .. } => "周计划",
            Period::Month { .. } => "月计划",
        };
        let status = match submitted {
            Some(p) if p.on_time => format!("按时提交（第 {} 版）", p.revision),
            Some(p) => format!("逾期提交（第 {} 版）", p.revision),
            None => "逾期未交".into(),
        };
        let rows = submitted
            .map(|p| {
                p.visits
                    .iter()
                    .map(|v| {
                        vec![
                            v.date.to_string(),
                            v.customer.clone(),
                            v.purpose.clone(),
                            if v.lead_id.is_some() {
                                "已报备客户".into()
                            } else {
                                "空白区域/重点目标".into()
                            },
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        let engineer_name = self.names.staff(engineer);
        Ok(Form {
            kind: FormKind::VisitPlan,
            subject: format!("{engineer_name} {}", period_of.key()),
            fields: vec![
                field("工程师", "Engineer", engineer_name),
                field("办事处", "Office", self.names.office(office)),
                field("计划类型", "Plan", kind),
                field("期间", "Period", period(&period_of)),
                field("截止时间", "Due", self.time(due_at)),
                field(
                    "提交时间",
                    "Submitted",
                    submitted
                        .map(|p| self.time(p.submitted_at))
                        .unwrap_or_default(),
                ),
                field("状态", "Status", status),
                field("报销售部备案", "Filed with the sales department", filed),
            ],
            columns: vec![
                col("日期", "Date"),
                col("客户", "Customer"),
                col("拜访目的", "Purpose"),
                col("类别", "Kind"),
            ],
            rows,
            source: String::new(),
            sign_off: SignOff::default(),
            printed: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuan_groups_thousands() {
        assert_eq!(yuan(0), "0 元");
        assert_eq!(yuan(999), "999 元");
        assert_eq!(yuan(1_000), "1,000 元");
        assert_eq!(yuan(3_250_000), "3,250,000 元");
    }

    #[test]
    fn periods_read_as_people_write_them() {
        let monday = chrono::NaiveDate::from_ymd_opt(2026, 3, 9).expect("date");
        assert_eq!(
            period(&Period::Week { monday }),
            "2026-W11（2026-03-09 至 2026-03-15）"
        );
        assert_eq!(
            period(&Period::Month {
                year: 2026,
                month: 4
            }),
            "2026年4月"
        );
    }
}
