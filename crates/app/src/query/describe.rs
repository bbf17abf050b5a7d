//! Each event of a lead's stream as a short sentence in Chinese and in English, with people named
//! (the record page's timeline). Amounts read in 万元 in Chinese and in yuan in English.

use funnel_domain::Event;
use funnel_domain::events::{ApprovalParty, AssignmentBasis, ConflictGround, StagnationOutcome};
use funnel_types::StaffId;

/// An amount in whole yuan as Chinese readers count it: `120 万元`, `12.5 万元`, `8,000 元`.
pub fn wan_yuan(amount_cny: u64) -> String {
    if amount_cny < 10_000 {
        return format!("{} 元", grouped(amount_cny));
    }
    let whole = amount_cny / 10_000;
    let rest = amount_cny % 10_000;
    if rest == 0 {
        return format!("{} 万元", grouped(whole));
    }
    // Up to two decimals of 万 (hundreds of yuan), without trailing zeros.
    let decimals = format!("{:04}", rest);
    let decimals = decimals[..2].trim_end_matches('0');
    if decimals.is_empty() {
        format!("约 {} 万元", grouped(whole))
    } else {
        format!("{}.{decimals} 万元", grouped(whole))
    }
}

/// An amount in whole yuan in English: `CNY 1,200,000`.
pub fn yuan_en(amount_cny: u64) -> String {
    format!("CNY {}", grouped(amount_cny))
}

fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A free-text note after a sentence, cut to keep the line short.
fn note(text: &str, zh: bool) -> String {
    let t = text.trim();
    if t.is_empty() {
        return String::new();
    }
    let cut: String = t.chars().take(60).collect();
    let more = if t.chars().count() > 60 { "…" } else { "" };
    let cut = cut.replace(['\n', '\r'], " ");
    if zh {
        format!("；说明：{cut}{more}")
    } else {
        format!(" (note: {cut}{more})")
    }
}

fn party(p: ApprovalParty) -> (&'static str, &'static str) {
    match p {
        ApprovalParty::SalesDepartment => ("销售部", "the sales department"),
        ApprovalParty::OriginalOwner => ("原负责人", "the original owner"),
    }
}

/// The Chinese and English grounds of a conflict decision.
fn grounds(g: &[ConflictGround]) -> (String, String) {
    let zh = g
        .iter()
        .map(|g| match g {
            ConflictGround::DeeperContact => "接触更深入",
            ConflictGround::ReachedDecisionMaker => "已接触关键决策人",
            ConflictGround::RegisteredFirst => "报备在先",
        })
        .collect::<Vec<_>>()
        .join("、");
    let en = g
        .iter()
        .map(|g| match g {
            ConflictGround::DeeperContact => "deeper contact",
            ConflictGround::ReachedDecisionMaker => "reached the decision maker",
            ConflictGround::RegisteredFirst => "registered first",
        })
        .collect::<Vec<_>>()
        .join(", ");
    (zh, en)
}

/// Why a lead has its owner, in Chinese and English.
pub fn basis(b: &AssignmentBasis) -> (String, String) {
    match b {
        AssignmentBasis::FirstToRegister => ("先报备者负责".into(), "first to register".into()),
        AssignmentBasis::ManagerAssignment { reason } => (
            format!("经理指派{}", note(reason, true)),
            format!("assigned by the office manager{}", note(reason, false)),
        ),
        AssignmentBasis::ConflictDecision { .. } => {
            ("归属冲突裁决".into(), "ownership conflict decided".into())
        }
        AssignmentBasis::Reassignment { .. } => {
            ("变更申请获批".into(), "reassignment approved".into())
        }
    }
}

/// What a lead event says, as (Chinese, English), naming people with `name`.
pub fn describe(event: &Event, name: &dyn Fn(StaffId) -> String) -> (String, String) {
    use Event::*;
    let n = name;
    match event {
        LeadRegistered(e) => (
            format!(
                "{} 报备 {} · {}（{}，{}，{}）",
                n(e.registered_by),
                e.customer_name,
                e.project_name,
                e.industry.label_zh(),
                e.purchase_mode.label_zh(),
                e.channel.label_zh()
            ),
            format!(
                "{} registered {} · {} ({}, {}, {})",
                n(e.registered_by),
                e.customer_name,
                e.project_name,
                e.industry,
                e.purchase_mode,
                e.channel
            ),
        ),
        LeadKeyReserved(_) => (
            "为旧版客户标识预留新版标识".into(),
            "a customer key of the current version was reserved for this lead".into(),
        ),
        LeadOwnerAssigned(e) => {
            let (bz, be) = basis(&e.basis);
            match e.previous {
                Some(p) => (
                    format!("负责人 {} → {}（{bz}）", n(p), n(e.owner)),
                    format!("owner {} → {} ({be})", n(p), n(e.owner)),
                ),
                None => (
                    format!("由 {} 负责（{bz}）", n(e.owner)),
                    format!("{} owns the lead ({be})", n(e.owner)),
                ),
            }
        }
        DuplicateRegistrationReceived(e) => (
            format!(
                "{} 重复报备 {} · {}",
                n(e.registered_by),
                e.customer_name,
                e.project_name
            ),
            format!(
                "{} registered the same customer again as {} · {}",
                n(e.registered_by),
                e.customer_name,
                e.project_name
            ),
        ),
        OwnershipConflictOpened(e) => {
            let who: Vec<String> = e.claimants.iter().map(|s| n(*s)).collect();
            (
                format!("{} 同时争取该客户，待办事处经理裁决", who.join("、")),
                format!(
                    "{} claim the customer; the office manager decides",
                    who.join(" and ")
                ),
            )
        }
        OwnershipConflictDecided(e) => {
            let (gz, ge) = grounds(&e.grounds);
            (
                format!(
                    "{} 裁决由 {} 负责（{gz}）{}",
                    n(e.decided_by),
                    n(e.winner),
                    note(&e.note, true)
                ),
                format!(
                    "{} decided that {} owns the lead ({ge}){}",
                    n(e.decided_by),
                    n(e.winner),
                    note(&e.note, false)
                ),
            )
        }
        TouchRefused(e) => (
            format!(
                "{} 试图执行 {}，已拒绝（{}）",
                n(e.attempted_by),
                e.action,
                e.code
            ),
            format!(
                "{} tried `{}` and was refused ({})",
                n(e.attempted_by),
                e.action,
                e.code
            ),
        ),
        ReassignmentRequested(e) => (
            format!(
                "{} 申请将负责人由 {} 改为 {}，待销售部和原负责人批准{}",
                n(e.requested_by),
                n(e.from),
                n(e.to),
                note(&e.evidence, true)
            ),
            format!(
                "{} asked to move the lead from {} to {}; the sales department and the owner approve{}",
                n(e.requested_by),
                n(e.from),
                n(e.to),
                note(&e.evidence, false)
            ),
        ),
        ReassignmentApproved(e) => {
            let (pz, pe) = party(e.party);
            (
                format!(
                    "{}（{pz}）批准变更负责人{}",
                    n(e.approved_by),
                    note(&e.note, true)
                ),
                format!(
                    "{} approved the reassignment as {pe}{}",
                    n(e.approved_by),
                    note(&e.note, false)
                ),
            )
        }
        ReassignmentDenied(e) => {
            let (pz, pe) = party(e.party);
            (
                format!(
                    "{}（{pz}）拒绝变更负责人{}",
                    n(e.denied_by),
                    note(&e.reason, true)
                ),
                format!(
                    "{} denied the reassignment as {pe}{}",
                    n(e.denied_by),
                    note(&e.reason, false)
                ),
            )
        }
        ReassignmentExpired(_) => (
            "变更负责人申请超时未批，已失效".into(),
            "the reassignment request expired unapproved".into(),
        ),
        VisitLogged(e) => (
            format!(
                "{} 第 {} 次{}{}",
                n(e.engineer),
                e.visit_number,
                e.kind.label_zh(),
                note(&e.summary, true)
            ),
            format!(
                "{} logged contact no. {} ({}){}",
                n(e.engineer),
                e.visit_number,
                e.kind,
                note(&e.summary, false)
            ),
        ),
        KeyPersonRecorded(e) => (
            format!(
                "记录关键人物 {}（{}，{}）",
                e.name,
                e.title,
                e.role.label_zh()
            ),
            format!("recorded key person {} ({}, {})", e.name, e.title, e.role),
        ),
        InsiderDeveloped(e) => (
            format!("关键人物成为内线{}", note(&e.note, true)),
            format!("a key person became an insider{}", note(&e.note, false)),
        ),
        RelationshipAssessed(e) => (
            format!(
                "关系评估：公司关系 {}，个人关系 {}",
                e.company.label_zh(),
                e.personal.label_zh()
            ),
            format!(
                "relationship assessed: company {}, personal {}",
                e.company.label_zh(),
                e.personal.label_zh()
            ),
        ),
        CriterionMet(e) => (
            format!(
                "达成阶段条件：{}{}",
                e.criterion.label_zh(),
                note(&e.evidence, true)
            ),
            format!("criterion met: {}{}", e.criterion, note(&e.evidence, false)),
        ),
        LeadDetailsUpdated(_) => (
            "更正或补充表一资料".into(),
            "Table 1 details corrected or completed".into(),
        ),
        InsiderEscalationRaised(e) => (
            format!(
                "{} 已拜访 {} 次仍无内线，提请办事处经理协助",
                n(e.owner),
                e.visits_without_insider
            ),
            format!(
                "{} visits by {} without an insider: the office manager is asked to help",
                e.visits_without_insider,
                n(e.owner)
            ),
        ),
        StagnationReviewOpened(e) => (
            format!(
                "{} 已拜访 {} 次，关系仍为 C 级，需停滞评审",
                n(e.owner),
                e.visits
            ),
            format!(
                "{} visits by {} with both relationships still C: a stagnation review is due",
                e.visits,
                n(e.owner)
            ),
        ),
        StagnationReviewDecided(e) => {
            let (oz, oe) = match &e.outcome {
                StagnationOutcome::ChangeKeyPerson { .. } => (
                    "更换关键人物".to_string(),
                    "change the key person".to_string(),
                ),
                StagnationOutcome::ChangeEngineer { to, .. } => (
                    format!("改由 {} 跟进", n(*to)),
                    format!("hand over to {}", n(*to)),
                ),
                StagnationOutcome::Suspend => ("中止".into(), "suspend the lead".into()),
            };
            (
                format!(
                    "{} 停滞评审结论：{oz}{}",
                    n(e.decided_by),
                    note(&e.note, true)
                ),
                format!(
                    "{} decided the stagnation review: {oe}{}",
                    n(e.decided_by),
                    note(&e.note, false)
                ),
            )
        }
        ValidInfoDeclared(e) => (
            format!("{} 提交有效信息申报，待办事处经理审核", n(e.declared_by)),
            format!(
                "{} declared valid information; the office manager reviews",
                n(e.declared_by)
            ),
        ),
        ProspectDeclared(e) => (
            format!(
                "{} 提交准客户申报：{}，{}，待办事处经理审核",
                n(e.declared_by),
                wan_yuan(e.amount_cny),
                e.tier.label_zh()
            ),
            format!(
                "{} declared a prospect: {}, {}; the office manager reviews",
                n(e.declared_by),
                yuan_en(e.amount_cny),
                e.tier
            ),
        ),
        DeclarationReviewed(e) => (
            format!(
                "{} {}申报{}",
                n(e.reviewed_by),
                if e.approved { "审核通过" } else { "退回" },
                note(&e.note, true)
            ),
            format!(
                "{} {} the declaration{}",
                n(e.reviewed_by),
                if e.approved { "approved" } else { "returned" },
                note(&e.note, false)
            ),
        ),
        DeclarationFiled(e) => (
            format!(
                "{} 备案申报{}",
                n(e.filed_by),
                if e.key_account_involved {
                    "，大客户部介入"
                } else {
                    ""
                }
            ),
            format!(
                "{} filed the declaration{}",
                n(e.filed_by),
                if e.key_account_involved {
                    "; the key-account department joins"
                } else {
                    ""
                }
            ),
        ),
        DeclarationWithdrawn(e) => (
            format!("线索已{}，未完成的申报失效", e.lead_stage.label_zh()),
            format!(
                "the lead is {}: the declaration under way lapsed",
                e.lead_stage
            ),
        ),
        StageChanged(e) => (
            format!("阶段 {} → {}", e.from.label_zh(), e.to.label_zh()),
            format!("stage {} → {}", e.from, e.to),
        ),
        NegotiationNoted(e) => (
            format!(
                "{} 记录商务谈判{}{}",
                n(e.author),
                if e.executives_invited {
                    "（邀请高层参与）"
                } else {
                    ""
                },
                note(&e.note, true)
            ),
            format!(
                "{} noted the negotiation{}{}",
                n(e.author),
                if e.executives_invited {
                    " (executives invited)"
                } else {
                    ""
                },
                note(&e.note, false)
            ),
        ),
        ContractSubmitted(e) => (
            format!(
                "{} 提交合同评审，金额 {}，评审席位：{}",
                n(e.submitted_by),
                wan_yuan(e.amount_cny),
                e.reviewers.join("、")
            ),
            format!(
                "{} submitted the contract for review: {}, seats {}",
                n(e.submitted_by),
                yuan_en(e.amount_cny),
                e.reviewers.join(", ")
            ),
        ),
        ContractAmended(e) => (
            format!(
                "{} 修改合同，金额 {}，此前的批准作废{}",
                n(e.amended_by),
                wan_yuan(e.amount_cny),
                note(&e.reason, true)
            ),
            format!(
                "{} amended the contract to {}; earlier approvals are void{}",
                n(e.amended_by),
                yuan_en(e.amount_cny),
                note(&e.reason, false)
            ),
        ),
        ContractApproved(e) => (
            format!("{}（{}）评审通过合同", n(e.approved_by), e.seat),
            format!("{} approved the contract as {}", n(e.approved_by), e.seat),
        ),
        ContractRejected(e) => (
            format!(
                "{}（{}）驳回合同{}",
                n(e.rejected_by),
                e.seat,
                note(&e.reasons, true)
            ),
            format!(
                "{} rejected the contract as {}{}",
                n(e.rejected_by),
                e.seat,
                note(&e.reasons, false)
            ),
        ),
        ContractSigned(e) => (
            format!(
                "{} 签订合同，金额 {}",
                n(e.signed_by),
                wan_yuan(e.amount_cny)
            ),
            format!(
                "{} signed the contract: {}",
                n(e.signed_by),
                yuan_en(e.amount_cny)
            ),
        ),
        OrderProcessed(e) => (
            format!("{} 处理订单 {}", n(e.processed_by), e.order_ref),
            format!("{} processed order {}", n(e.processed_by), e.order_ref),
        ),
        AfterSalesCareLogged(e) => (
            format!("{} 记录售后关怀{}", n(e.by), note(&e.note, true)),
            format!(
                "{} logged after-sales care{}",
                n(e.by),
                note(&e.note, false)
            ),
        ),
        LeadSuspended(e) => (
            format!(
                "{} 中止线索（原阶段 {}）{}",
                n(e.by),
                e.from.label_zh(),
                note(&e.reason, true)
            ),
            format!(
                "{} suspended the lead (was {}){}",
                n(e.by),
                e.from,
                note(&e.reason, false)
            ),
        ),
        LeadLost(e) => {
            let rival = e.competitor.trim();
            (
                format!(
                    "{} 标记丢单（原阶段 {}）{}{}",
                    n(e.by),
                    e.from.label_zh(),
                    if rival.is_empty() {
                        String::new()
                    } else {
                        format!("，竞争对手：{rival}")
                    },
                    note(&e.reason, true)
                ),
                format!(
                    "{} marked the lead lost (was {}){}{}",
                    n(e.by),
                    e.from,
                    if rival.is_empty() {
                        String::new()
                    } else {
                        format!(", to {rival}")
                    },
                    note(&e.reason, false)
                ),
            )
        }
        LeadReactivated(e) => (
            format!(
                "{} 重新激活线索，回到 {}{}",
                n(e.by),
                e.to.label_zh(),
                note(&e.reason, true)
            ),
            format!(
                "{} reactivated the lead at {}{}",
                n(e.by),
                e.to,
                note(&e.reason, false)
            ),
        ),
        other => (
            other.event_type().to_string(),
            other.event_type().to_string(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_read_in_wan_yuan() {
        assert_eq!(wan_yuan(1_200_000), "120 万元");
        assert_eq!(wan_yuan(125_000), "12.5 万元");
        assert_eq!(wan_yuan(3_456_789), "345.67 万元");
        assert_eq!(wan_yuan(100_050), "约 10 万元");
        assert_eq!(wan_yuan(8_000), "8,000 元");
        assert_eq!(wan_yuan(123_450_000), "12,345 万元");
        assert_eq!(yuan_en(1_200_000), "CNY 1,200,000");
    }
}
