//! What a chat robot shows: each event as a few lines of Simplified Chinese (who, which lead,
//! which office, what changed, when), and several events as one digest.
//!
//! Names come from the log itself ([`Names`], fed with every office, staff and lead event the
//! worker reads, and with the history before its cursor when it starts), so a message says
//! 张伟, not a staff id. A name the log has not told yet is shown as a short id.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use funnel_domain::Event;
use funnel_domain::events::{
    ApprovalParty, AssignmentBasis, ConflictGround, StagnationOutcome, TimerPurpose, WorkflowKind,
};
use funnel_types::{Actor, Envelope, LeadId, OfficeId, StaffId};
use std::collections::HashMap;

/// The names of offices, staff and leads (customer · project), as the log told them.
#[derive(Clone, Debug, Default)]
pub struct Names {
    staff: HashMap<StaffId, String>,
    offices: HashMap<OfficeId, String>,
    zones: HashMap<OfficeId, Tz>,
    leads: HashMap<LeadId, String>,
    /// Mobile numbers staff records hold, for @-mentions.
    phones: HashMap<StaffId, String>,
}

/// The first characters of an id, for things the log has not named (yet).
fn short(id: impl std::fmt::Display) -> String {
    id.to_string().chars().take(8).collect()
}

impl Names {
    /// Learns the names an event gives.
    pub fn note(&mut self, event: &Event) {
        match event {
            Event::OfficeOpened(e) => {
                self.offices.insert(e.office_id, e.name.clone());
                self.zones
                    .insert(e.office_id, funnel_domain::time::zone(Some(&e.timezone)));
            }
            Event::StaffJoined(e) => {
                self.staff.insert(e.staff_id, e.name.clone());
            }
            Event::StaffPhoneChanged(e) => match &e.phone {
                Some(p) => {
                    self.phones.insert(e.staff_id, p.clone());
                }
                None => {
                    self.phones.remove(&e.staff_id);
                }
            },
            Event::StaffLeft(e) => {
                self.phones.remove(&e.staff_id);
            }
            Event::LeadRegistered(e) => {
                self.leads.insert(
                    e.lead_id,
                    format!("{} · {}", e.customer_name, e.project_name),
                );
            }
            _ => {}
        }
    }

    /// Whether events of this type teach [`Names::note`] something (a name, a time zone, a mobile
    /// number given or taken away): the worker reads them whether or not a subscription shows them.
    pub fn learns_from(event_type: &str) -> bool {
        matches!(
            event_type,
            "office.opened"
                | "staff.joined"
                | "staff.phone_changed"
                | "staff.left"
                | "lead.registered"
        )
    }

    pub fn staff(&self, id: StaffId) -> String {
        self.staff
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("员工 #{}", short(id)))
    }

    /// The mobile number a robot @-mentions this person by, when their record holds one.
    pub fn phone(&self, id: StaffId) -> Option<&str> {
        self.phones.get(&id).map(String::as_str)
    }

    pub fn office(&self, id: OfficeId) -> String {
        self.offices
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("办事处 #{}", short(id)))
    }

    /// The time zone of an office (headquarters' for none, or one the log has not opened yet).
    pub fn zone(&self, office: Option<OfficeId>) -> Tz {
        office
            .and_then(|o| self.zones.get(&o).copied())
            .unwrap_or(funnel_domain::time::DEFAULT_TIME_ZONE)
    }

    pub fn lead(&self, id: LeadId) -> String {
        self.leads
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("线索 #{}", short(id)))
    }
}

/// One event as a robot shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// What happened, e.g. `阶段变更`.
    pub title: String,
    /// Customer · project.
    pub lead: Option<String>,
    /// The lead's id, for a link to its record in the console.
    pub lead_id: Option<LeadId>,
    pub office: Option<String>,
    /// Who did it.
    pub who: String,
    /// What changed, in a sentence.
    pub change: String,
    pub at: DateTime<Utc>,
    /// The zone `at` is shown in: the office's the event belongs to.
    pub zone: Tz,
    /// The mobile number of the person a task opened for, to @-mention (robots that mention by
    /// number: DingTalk, WeCom).
    pub mention: Option<String>,
}

fn money(amount_cny: u64) -> String {
    let digits = amount_cny.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out} 元")
}

fn yes_no(b: bool, yes: &str, no: &str) -> String {
    if b { yes.into() } else { no.into() }
}

/// A note shown after a sentence, when there is one (cut to keep messages short).
fn note(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let cut: String = t.chars().take(60).collect();
    let more = if t.chars().count() > 60 { "…" } else { "" };
    format!("；说明：{}{more}", cut.replace(['\n', '\r'], " "))
}

fn party(p: &ApprovalParty) -> &'static str {
    match p {
        ApprovalParty::SalesDepartment => "销售部",
        ApprovalParty::OriginalOwner => "原负责人",
    }
}

fn workflow_kind(k: &WorkflowKind) -> String {
    let s = serde_json::to_value(k)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    match s.as_str() {
        "ownership_conflict" => "归属冲突".into(),
        "reassignment" => "负责人变更".into(),
        "valid_info_declaration" => "有效信息申报".into(),
        "prospect_declaration" => "准客户申报".into(),
        "contract_review" => "合同评审".into(),
        "visit_plans" => "拜访计划".into(),
        "office_summaries" => "办事处汇总".into(),
        "insider_escalation" => "内线求助".into(),
        other => other.to_string(),
    }
}

fn timer(p: &TimerPurpose) -> String {
    let s = serde_json::to_value(p)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str().map(str::to_string)))
        .unwrap_or_default();
    match s.as_str() {
        "reminder" => "任务提醒".into(),
        "escalation" => "任务升级".into(),
        "reassignment_expiry" => "变更申请到期".into(),
        "plan_reminder" => "计划提醒".into(),
        other => other.replace('_', " "),
    }
}

fn grounds(g: &[ConflictGround]) -> String {
    g.iter()
        .map(|g| match g {
            ConflictGround::DeeperContact => "接触更深入",
            ConflictGround::ReachedDecisionMaker => "已接触关键决策人",
            ConflictGround::RegisteredFirst => "报备在先",
        })
        .collect::<Vec<_>>()
        .join("、")
}

impl Rendered {
    /// `env` as a robot shows it.
    pub fn of(env: &Envelope<Event>, names: &Names) -> Rendered {
        let who = match &env.meta.actor {
            Actor::Staff { id, .. } => names.staff(*id),
            Actor::System { name } => format!("系统（{name}）"),
        };
        let office = env.meta.office.map(|o| names.office(o));
        let lead_id = env.payload.lead_id();
        let lead = lead_id.map(|l| names.lead(l));
        let (title, change) = describe(&env.payload, names);
        let mention = match &env.payload {
            Event::TaskOpened(t) => t
                .assignee
                .staff
                .and_then(|s| names.phone(s))
                .map(str::to_string),
            _ => None,
        };
        Rendered {
            mention,
            title: title.into(),
            lead,
            lead_id,
            office,
            who,
            change,
            at: env.meta.occurred_at,
            zone: names.zone(env.meta.office),
        }
    }

    /// The time on the office's clock, to the minute, with its zone: `（北京时间）` for
    /// headquarters' zone, the IANA name for another.
    fn when(&self) -> String {
        let local = funnel_domain::time::local_minute(self.at, self.zone);
        if self.zone == funnel_domain::time::DEFAULT_TIME_ZONE {
            format!("{local}（北京时间）")
        } else {
            format!("{local}（{}）", self.zone)
        }
    }

    /// The lines of a message about this event alone.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(l) = &self.lead {
            out.push(format!("**线索**：{l}"));
        }
        if let Some(o) = &self.office {
            out.push(format!("**办事处**：{o}"));
        }
        out.push(format!("**经办**：{}", self.who));
        out.push(format!("**内容**：{}", self.change));
        out.push(format!("**时间**：{}", self.when()));
        out
    }

    /// This event as one line of a digest.
    pub fn line(&self) -> String {
        let mut s = format!("**{}**", self.title);
        if let Some(l) = &self.lead {
            s.push_str(&format!(" · {l}"));
        }
        if let Some(o) = &self.office {
            s.push_str(&format!(" · {o}"));
        }
        s.push_str(&format!(" · {}：{}", self.who, self.change));
        s
    }
}

/// The title and the sentence of what changed.
fn describe(event: &Event, n: &Names) -> (&'static str, String) {
    use Event::*;
    match event {
        OfficeOpened(e) => (
            "办事处开设",
            format!("开设{}（{}，{}）", e.name, e.code, e.region),
        ),
        StaffJoined(e) => (
            "员工入职",
            format!("{} 以{}身份加入", e.name, e.role.label_zh()),
        ),
        StaffRoleChanged(e) => (
            "岗位变更",
            format!(
                "{}：{} → {}",
                n.staff(e.staff_id),
                e.from.label_zh(),
                e.to.label_zh()
            ),
        ),
        StaffMovedOffice(e) => {
            let o = |o: Option<OfficeId>| o.map_or_else(|| "总部".to_string(), |o| n.office(o));
            (
                "调动办事处",
                format!("{}：{} → {}", n.staff(e.staff_id), o(e.from), o(e.to)),
            )
        }
        StaffLeft(e) => (
            "员工离职",
            format!("{} 离职{}", n.staff(e.staff_id), note(&e.reason)),
        ),
        StaffTokenIssued(e) => (
            "签发令牌",
            format!("为 {} 签发 API 令牌", n.staff(e.staff_id)),
        ),
        StaffTokenRevoked(e) => (
            "吊销令牌",
            format!("吊销 {} 的 API 令牌", n.staff(e.staff_id)),
        ),
        StaffSessionStarted(e) => (
            "登录",
            format!(
                "{} 登录（{}）",
                n.staff(e.staff_id),
                match e.method {
                    funnel_domain::events::SignInMethod::Token => "API 令牌",
                    funnel_domain::events::SignInMethod::Password => "密码",
                    funnel_domain::events::SignInMethod::Oidc => "公司账号",
                }
            ),
        ),
        StaffSessionRenewed(e) => ("会话续期", format!("{} 的会话续期", n.staff(e.staff_id))),
        StaffInvited(e) => (
            "邀请设置密码",
            format!("邀请 {} 设置登录密码", n.staff(e.staff_id)),
        ),
        StaffInvitationAccepted(e) => (
            "设置密码",
            format!("{} 接受邀请并设置了登录密码", n.staff(e.staff_id)),
        ),
        StaffOidcLinked(e) => (
            "关联公司账号",
            format!("{} 接受邀请，今后使用公司账号登录", n.staff(e.staff_id)),
        ),
        StaffSignInLocked(e) => (
            "登录锁定",
            format!(
                "{} 连续 {} 次登录失败，密码登录已锁定",
                n.staff(e.staff_id),
                e.failures
            ),
        ),
        // The number itself stays out of chat: it is personal information.
        StaffPhoneChanged(e) => (
            "电话更新",
            match e.phone {
                Some(_) => format!("{} 的手机号码已更新", n.staff(e.staff_id)),
                None => format!("{} 的手机号码已移除", n.staff(e.staff_id)),
            },
        ),
        StaffSignInUnlocked(e) => (
            "登录解锁",
            format!("{} 的密码登录已解锁", n.staff(e.staff_id)),
        ),
        StaffSessionsEnded(e) => (
            "退出登录",
            if e.everywhere {
                format!(
                    "{} 退出全部 {} 个会话",
                    n.staff(e.staff_id),
                    e.sessions.len()
                )
            } else {
                format!("{} 退出登录", n.staff(e.staff_id))
            },
        ),
        CalendarPublished(e) => (
            "工作日历发布",
            format!(
                "{} 年：节假日 {} 天，调休上班 {} 天",
                e.year,
                e.holidays.len(),
                e.workdays.len()
            ),
        ),
        LeadRegistered(e) => (
            "新线索报备",
            format!(
                "{} 报备 {} · {}（{}，{}，{}）",
                n.staff(e.registered_by),
                e.customer_name,
                e.project_name,
                e.industry.label_zh(),
                e.purchase_mode.label_zh(),
                e.channel.label_zh()
            ),
        ),
        LeadKeyReserved(_) => ("客户标识升级", "为旧版客户标识预留新版标识".into()),
        ErasureRequested(e) => (
            "个人信息删除申请",
            format!("申请删除 {}（{}），待另一人审批", e.subject, e.reason),
        ),
        ErasureApproved(_) => ("个人信息删除获批", "删除申请已获另一人批准".into()),
        ErasureRejected(e) => ("个人信息删除被驳回", format!("驳回{}", note(&e.reason))),
        SubjectErased(e) => (
            "个人信息已删除",
            format!("{} 的个人信息已删除（{}）", e.subject, e.reason),
        ),
        LeadOwnerAssigned(e) => {
            let basis = match &e.basis {
                AssignmentBasis::FirstToRegister => "先报备者负责".to_string(),
                AssignmentBasis::ManagerAssignment { reason } => {
                    format!("经理指派{}", note(reason))
                }
                AssignmentBasis::ConflictDecision { .. } => "冲突裁决".into(),
                AssignmentBasis::Reassignment { .. } => "变更审批通过".into(),
            };
            let from = e
                .previous
                .map(|p| format!("{} → ", n.staff(p)))
                .unwrap_or_default();
            (
                "负责人确定",
                format!("{from}{}（{basis}）", n.staff(e.owner)),
            )
        }
        DuplicateRegistrationReceived(e) => (
            "重复报备",
            format!(
                "{} 重复报备 {} · {}",
                n.staff(e.registered_by),
                e.customer_name,
                e.project_name
            ),
        ),
        OwnershipConflictOpened(e) => (
            "归属冲突待裁决",
            format!(
                "{} 同时争取该客户，请办事处经理裁决",
                e.claimants
                    .iter()
                    .map(|s| n.staff(*s))
                    .collect::<Vec<_>>()
                    .join("、")
            ),
        ),
        OwnershipConflictDecided(e) => (
            "归属冲突已裁决",
            format!(
                "{} 裁决由 {} 负责（{}）{}",
                n.staff(e.decided_by),
                n.staff(e.winner),
                grounds(&e.grounds),
                note(&e.note)
            ),
        ),
        TouchRefused(e) => (
            "越权操作被拒",
            format!(
                "{} 试图{}，已拒绝（非负责人）",
                n.staff(e.attempted_by),
                e.action
            ),
        ),
        ReassignmentRequested(e) => (
            "申请变更负责人",
            format!(
                "{} 申请将负责人由 {} 改为 {}，待销售部和原负责人批准",
                n.staff(e.requested_by),
                n.staff(e.from),
                n.staff(e.to)
            ),
        ),
        ReassignmentApproved(e) => (
            "变更负责人获批",
            format!(
                "{}（{}）批准{}",
                n.staff(e.approved_by),
                party(&e.party),
                note(&e.note)
            ),
        ),
        ReassignmentDenied(e) => (
            "变更负责人被拒",
            format!(
                "{}（{}）拒绝{}",
                n.staff(e.denied_by),
                party(&e.party),
                note(&e.reason)
            ),
        ),
        ReassignmentExpired(_) => ("变更申请过期", "变更负责人申请超时未批，已失效".into()),
        VisitLogged(e) => (
            "拜访记录",
            format!(
                "{} 第 {} 次{}{}",
                n.staff(e.engineer),
                e.visit_number,
                e.kind.label_zh(),
                note(&e.summary)
            ),
        ),
        KeyPersonRecorded(e) => (
            "关键人物",
            format!("记录 {}（{}，{}）", e.name, e.title, e.role.label_zh()),
        ),
        InsiderDeveloped(e) => ("发展内线", format!("关键人物成为内线{}", note(&e.note))),
        RelationshipAssessed(e) => (
            "关系评估",
            format!(
                "公司关系 {}，个人关系 {}",
                e.company.label_zh(),
                e.personal.label_zh()
            ),
        ),
        CriterionMet(e) => (
            "达成阶段条件",
            format!("{}{}", e.criterion.label_zh(), note(&e.evidence)),
        ),
        LeadDetailsUpdated(_) => ("线索资料更新", "表一资料已更正或补充".into()),
        InsiderEscalationRaised(e) => (
            "内线求助",
            format!(
                "{} 已拜访 {} 次仍无内线，请办事处经理协助",
                n.staff(e.owner),
                e.visits_without_insider
            ),
        ),
        StagnationReviewOpened(e) => (
            "停滞评审",
            format!(
                "{} 已拜访 {} 次，关系仍为 C，需评审",
                n.staff(e.owner),
                e.visits
            ),
        ),
        StagnationReviewDecided(e) => {
            let outcome = match &e.outcome {
                StagnationOutcome::ChangeKeyPerson { .. } => "更换关键人物".to_string(),
                StagnationOutcome::ChangeEngineer { to, .. } => {
                    format!("改由 {} 跟进", n.staff(*to))
                }
                StagnationOutcome::Suspend => "中止".into(),
            };
            (
                "停滞评审结论",
                format!("{} 决定：{outcome}{}", n.staff(e.decided_by), note(&e.note)),
            )
        }
        ValidInfoDeclared(e) => (
            "有效信息申报",
            format!("{} 提交申报，待办事处经理审核", n.staff(e.declared_by)),
        ),
        ProspectDeclared(e) => (
            "准客户申报",
            format!(
                "{} 提交申报：{}，{}，待办事处经理审核",
                n.staff(e.declared_by),
                money(e.amount_cny),
                e.tier.label_zh()
            ),
        ),
        DeclarationReviewed(e) => (
            "申报审核",
            format!(
                "{} {}{}",
                n.staff(e.reviewed_by),
                yes_no(e.approved, "审核通过", "退回"),
                note(&e.note)
            ),
        ),
        DeclarationFiled(e) => (
            "申报备案",
            format!(
                "{} 备案{}",
                n.staff(e.filed_by),
                yes_no(e.key_account_involved, "，大客户部介入", "")
            ),
        ),
        DeclarationWithdrawn(e) => (
            "申报撤回",
            format!("线索已{}，未完成的申报失效", e.lead_stage.label_zh()),
        ),
        StageChanged(e) => (
            "阶段变更",
            format!("{} → {}", e.from.label_zh(), e.to.label_zh()),
        ),
        NegotiationNoted(e) => (
            "商务谈判",
            format!(
                "{} 记录谈判{}{}",
                n.staff(e.author),
                yes_no(e.executives_invited, "（邀请高层参与）", ""),
                note(&e.note)
            ),
        ),
        ContractSubmitted(e) => (
            "合同提交评审",
            format!(
                "{} 提交合同，金额 {}，评审：{}",
                n.staff(e.submitted_by),
                money(e.amount_cny),
                e.reviewers.join("、")
            ),
        ),
        ContractAmended(e) => (
            "合同修改",
            format!(
                "{} 修改合同，金额 {}，此前的批准作废{}",
                n.staff(e.amended_by),
                money(e.amount_cny),
                note(&e.reason)
            ),
        ),
        ContractApproved(e) => (
            "合同评审通过",
            format!("{}（{}）批准", n.staff(e.approved_by), e.seat),
        ),
        ContractRejected(e) => (
            "合同评审驳回",
            format!(
                "{}（{}）驳回，回到谈判{}",
                n.staff(e.rejected_by),
                e.seat,
                note(&e.reasons)
            ),
        ),
        ContractSigned(e) => (
            "合同签订",
            format!(
                "{} 签订合同，金额 {}",
                n.staff(e.signed_by),
                money(e.amount_cny)
            ),
        ),
        OrderProcessed(e) => (
            "订单处理",
            format!("{} 处理订单 {}", n.staff(e.processed_by), e.order_ref),
        ),
        AfterSalesCareLogged(e) => (
            "售后客情维护",
            format!("{} 记录维护{}", n.staff(e.by), note(&e.note)),
        ),
        LeadSuspended(e) => (
            "线索中止",
            format!(
                "{} 中止（原阶段：{}）{}",
                n.staff(e.by),
                e.from.label_zh(),
                note(&e.reason)
            ),
        ),
        LeadLost(e) => {
            let comp = if e.competitor.trim().is_empty() {
                String::new()
            } else {
                format!("，竞争对手：{}", e.competitor.trim())
            };
            (
                "线索丢失",
                format!(
                    "{} 标记丢失（原阶段：{}）{comp}{}",
                    n.staff(e.by),
                    e.from.label_zh(),
                    note(&e.reason)
                ),
            )
        }
        LeadReactivated(e) => (
            "线索重启",
            format!(
                "{} 重新跟进，回到{}{}",
                n.staff(e.by),
                e.to.label_zh(),
                note(&e.reason)
            ),
        ),
        VisitPlanSubmitted(e) => (
            "拜访计划提交",
            format!(
                "{} 提交 {} 计划，共 {} 项拜访{}",
                n.staff(e.engineer),
                e.period.key(),
                e.visits.len(),
                yes_no(e.on_time, "", "（逾期提交）")
            ),
        ),
        VisitPlanOverdue(e) => (
            "拜访计划逾期",
            format!(
                "{} 的 {} 计划未按时提交",
                n.staff(e.engineer),
                e.period.key()
            ),
        ),
        VisitPlanFiled(e) => ("拜访计划备案", format!("{} 备案", n.staff(e.filed_by))),
        SummaryCompiled(e) => (
            "办事处汇总",
            format!(
                "{} 汇总 {}，共 {} 条",
                n.staff(e.compiled_by),
                e.period.key(),
                e.lines.len()
            ),
        ),
        SummaryVerified(e) => (
            "汇总核对",
            format!("{} 核对完毕{}", n.staff(e.verified_by), note(&e.note)),
        ),
        SummaryReviewed(e) => (
            "汇总审阅",
            format!(
                "{} {}{}",
                n.staff(e.reviewed_by),
                yes_no(e.approved, "审阅通过", "退回"),
                note(&e.note)
            ),
        ),
        SummaryFiled(e) => ("汇总备案", format!("{} 归档备案", n.staff(e.filed_by))),
        WorkflowStarted(e) => (
            "流程开始",
            format!("{}：{}", workflow_kind(&e.kind), e.subject),
        ),
        TaskOpened(e) => {
            let to = e.assignee.staff.map_or_else(
                || {
                    let office = e.assignee.office.map(|o| n.office(o)).unwrap_or_default();
                    format!("{office}{}", e.assignee.role.label_zh())
                },
                |s| n.staff(s),
            );
            let due = e
                .due_at
                .map(|d| {
                    let zone = n.zone(e.assignee.office);
                    let due = funnel_domain::time::local_minute(d, zone);
                    if zone == funnel_domain::time::DEFAULT_TIME_ZONE {
                        format!("，期限 {due}")
                    } else {
                        format!("，期限 {due}（{zone}）")
                    }
                })
                .unwrap_or_default();
            ("新待办", format!("请 {to} 处理：{}{due}", e.title_zh))
        }
        TaskClosed(e) => ("待办关闭", format!("结果：{}", e.outcome)),
        TimerScheduled(e) => ("定时设置", timer(&e.purpose)),
        TimerCancelled(_) => ("定时取消", "不再需要的定时已取消".into()),
        TimerFired(e) => (
            "定时触发",
            format!(
                "{}{}",
                timer(&e.purpose),
                yes_no(e.late, "（延迟触发）", "")
            ),
        ),
        ReminderRaised(e) => {
            let to =
                e.to.staff
                    .map_or_else(|| e.to.role.label_zh().to_string(), |s| n.staff(s));
            ("提醒", format!("{to}：{}", e.message_zh))
        }
        TaskEscalated(e) => {
            let to =
                e.to.staff
                    .map_or_else(|| e.to.role.label_zh().to_string(), |s| n.staff(s));
            ("待办升级", format!("转交 {to}"))
        }
        WorkflowCommandSent(e) => ("流程发出指令", format!("{}：{}", e.command, e.outcome)),
        WorkflowNoted(e) => ("流程记录", format!("{} = {}", e.key, e.value)),
        ReactionParked(e) => ("流程暂停重试", format!("原因：{}", e.reason)),
        ReactionRetried(_) => ("流程重试", "暂停的反应已重试".into()),
        WorkflowCompleted(e) => ("流程完成", format!("结果：{}", e.outcome)),
    }
}

#[cfg(test)]
mod zone_tests {
    use super::*;
    use funnel_domain::events::OfficeOpened;
    use funnel_types::*;

    #[test]
    fn a_time_is_shown_on_the_clock_of_the_events_office() {
        let office = OfficeId::derived("ur");
        let mut names = Names::default();
        names.note(&Event::OfficeOpened(OfficeOpened {
            office_id: office,
            name: "乌鲁木齐办事处".into(),
            code: "UR".into(),
            timezone: "Asia/Urumqi".into(),
            region: "西北".into(),
        }));
        let at = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 9, 30, 17, 30, 0).unwrap();
        let mut env = Envelope {
            meta: Metadata {
                event_id: EventId::v7_from_parts(1, [0; 10]),
                event_type: "office.opened".into(),
                schema_version: 1,
                stream: StreamId::new("office", office).unwrap(),
                version: Version(1),
                position: Position(1),
                occurred_at: at,
                recorded_at: at,
                actor: Actor::system("test"),
                office: Some(office),
                command_id: CommandId::derived("c"),
                correlation_id: CorrelationId::derived("c"),
                causation_id: uuid::Uuid::nil(),
            },
            payload: funnel_codec::examples().remove(0),
        };
        let lines = Rendered::of(&env, &names).lines().join("\n");
        assert!(lines.contains("2026-09-30 23:30（Asia/Urumqi）"), "{lines}");
        env.meta.office = None;
        let lines = Rendered::of(&env, &names).lines().join("\n");
        assert!(lines.contains("2026-10-01 01:30（北京时间）"), "{lines}");
    }
}
