//! Moving a lead along the funnel: declarations with review and filing (§8), the prospect gate,
//! negotiation, contract review bound to the exact content, signing, orders, after-sales care, and
//! the side exits (suspend, lost, reactivate).

use super::decide::{criteria_unmet, manager_of, open, owner_only};
use super::*;
use crate::acting::{Acting, Ctx, may_write, require_office, require_role};
use crate::refusal::{Decision, RefusalCode, Rejected, check, refuse};
use funnel_types::Role;

/// The largest amount a contract or prospect may name: 10 billion yuan.
const MAX_AMOUNT: u64 = 10_000_000_000;

fn stage_is(lead: &Lead, stage: Stage, action: &str) -> Result<(), Rejected> {
    if lead.stage == stage {
        return Ok(());
    }
    refuse(
        RefusalCode::WrongStage,
        format!(
            "to {action} the lead must be at stage `{stage}`; it is at `{}`",
            lead.stage
        ),
        format!(
            "执行此操作（{action}）需处于“{}”阶段，当前为“{}”",
            stage.label_zh(),
            lead.stage.label_zh()
        ),
    )
}

fn no_pending_declaration(lead: &Lead) -> Result<(), Rejected> {
    match &lead.declaration {
        Some(d) if matches!(d.state, DeclarationState::AwaitingReview) => refuse(
            RefusalCode::DeclarationPending,
            format!(
                "declaration {} is still waiting for the office manager's review",
                d.id
            ),
            format!("申报 {} 仍在等待办事处经理审核", d.id),
        ),
        _ => Ok(()),
    }
}

fn stage_checklist(lead: &Lead, stage: Stage) -> Result<Vec<Criterion>, Rejected> {
    let met = lead.met_criteria();
    let unmet = missing(lead.purchase_mode, stage, &met);
    if !unmet.is_empty() {
        return Err(criteria_unmet(stage, unmet));
    }
    Ok(checklist(lead.purchase_mode, stage).to_vec())
}

pub(super) fn declare_valid(lead: &Lead, id: DeclarationId, note: &str, ctx: &Ctx<'_>) -> Decision {
    let me = owner_only(lead, ctx, "declare valid info")?;
    check::optional("note", note, check::LONG)?;
    stage_is(lead, Stage::Ordinary, "declare valid info")?;
    no_pending_declaration(lead)?;
    let criteria = stage_checklist(lead, Stage::Valid)?;
    Ok(vec![Event::ValidInfoDeclared(ValidInfoDeclared {
        lead_id: lead.id,
        declaration_id: id,
        declared_by: me,
        criteria,
        note: note.trim().to_string(),
    })])
}

pub(super) fn declare_prospect(
    lead: &Lead,
    id: DeclarationId,
    amount: u64,
    flags: &QualitativeFlags,
    strategy: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    let me = owner_only(lead, ctx, "declare a prospect")?;
    check::optional("quoting_strategy", strategy, check::LONG)?;
    stage_is(lead, Stage::Valid, "declare a prospect")?;
    no_pending_declaration(lead)?;
    amount_in_range(amount)?;
    let criteria = stage_checklist(lead, Stage::Prospect)?;
    // Prospect screening (§8): company and personal relationship both at least B.
    if !(lead.company_level.at_least(Level::B) && lead.personal_level.at_least(Level::B)) {
        return refuse(
            RefusalCode::RelationshipBelowB,
            format!(
                "a prospect needs company and personal relationship both at least B; they are {} and {} (§8)",
                lead.company_level.as_str().to_uppercase(),
                lead.personal_level.as_str().to_uppercase()
            ),
            format!(
                "准客户要求公司关系和个人关系均达到 B 级，当前为 {} 和 {}（§8）",
                lead.company_level.label_zh(),
                lead.personal_level.label_zh()
            ),
        );
    }
    Ok(vec![Event::ProspectDeclared(ProspectDeclared {
        lead_id: lead.id,
        declaration_id: id,
        declared_by: me,
        amount_cny: amount,
        tier: Tier::for_amount(amount),
        flags: flags.clone(),
        company_level: lead.company_level,
        personal_level: lead.personal_level,
        quoting_strategy: strategy.trim().to_string(),
        criteria,
    })])
}

fn amount_in_range(amount: u64) -> Result<(), Rejected> {
    if amount == 0 || amount > MAX_AMOUNT {
        return refuse(
            RefusalCode::InvalidValue,
            format!("the amount must be between 1 and {MAX_AMOUNT} yuan"),
            format!("金额须在 1 至 {MAX_AMOUNT} 元之间"),
        );
    }
    Ok(())
}

fn declaration(lead: &Lead, id: DeclarationId) -> Result<&Declaration, Rejected> {
    lead.declaration
        .as_ref()
        .filter(|d| d.id == id)
        .ok_or_else(|| {
            crate::refusal::Refusal::new(
                RefusalCode::DeclarationNotFound,
                format!("declaration {id} is not the lead's current declaration"),
                format!("申报 {id} 不是该客户当前的申报"),
            )
            .into()
        })
}

pub(super) fn review(
    lead: &Lead,
    id: DeclarationId,
    approve: bool,
    note: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    manager_of(lead, ctx, "review a declaration")?;
    check::optional("note", note, check::LONG)?;
    let d = declaration(lead, id)?;
    if d.state != DeclarationState::AwaitingReview {
        return refuse(
            RefusalCode::DeclarationWrongState,
            "this declaration is not waiting for review",
            "该申报不在待审核状态",
        );
    }
    if !approve && note.trim().is_empty() {
        return refuse(
            RefusalCode::FieldRequired,
            "say why the declaration is returned",
            "请说明退回理由",
        );
    }
    let me = ctx.acting.staff_id().unwrap_or(lead.registered_by);
    let mut events = vec![Event::DeclarationReviewed(DeclarationReviewed {
        lead_id: lead.id,
        declaration_id: id,
        reviewed_by: me,
        approved: approve,
        note: note.trim().to_string(),
    })];
    if approve {
        let (from, to) = match d.kind {
            DeclarationKind::ValidInfo => (Stage::Ordinary, Stage::Valid),
            DeclarationKind::Prospect => (Stage::Valid, Stage::Prospect),
        };
        if lead.stage == from {
            events.push(Event::StageChanged(StageChanged {
                lead_id: lead.id,
                office: lead.office,
                from,
                to,
                owner: lead.owner,
            }));
        }
    }
    Ok(events)
}

pub(super) fn file(lead: &Lead, id: DeclarationId, ctx: &Ctx<'_>) -> Decision {
    require_role(
        ctx.acting,
        &[
            Role::SalesDepartment,
            Role::OfficeAssistant,
            Role::OfficeManager,
        ],
        "file a declaration",
    )?;
    require_office(ctx.acting, lead.office)?;
    let d = declaration(lead, id)?;
    if d.state != DeclarationState::Approved {
        return refuse(
            RefusalCode::DeclarationWrongState,
            "only a declaration the office manager approved can be filed, and only once",
            "只有经办事处经理审核通过的申报才能备案，且只能备案一次",
        );
    }
    let me = ctx.acting.staff_id().unwrap_or(lead.registered_by);
    Ok(vec![Event::DeclarationFiled(DeclarationFiled {
        lead_id: lead.id,
        declaration_id: id,
        filed_by: me,
        key_account_involved: d.kind == DeclarationKind::Prospect
            && (d.tier == Some(Tier::Strategic) || lead.purchase_mode != PurchaseMode::Independent),
    })])
}

pub(super) fn negotiation(lead: &Lead, note: &str, executives: bool, ctx: &Ctx<'_>) -> Decision {
    let author = match ctx.acting {
        Acting::Staff(s) if matches!(s.role, Role::Executive | Role::KeyAccountDepartment) => {
            may_write(ctx.acting)?;
            s.id
        }
        Acting::Staff(s) if s.role == Role::OfficeManager && s.office == Some(lead.office) => {
            may_write(ctx.acting)?;
            s.id
        }
        _ => owner_only(lead, ctx, "note a negotiation")?,
    };
    check::required("note", note, check::LONG)?;
    stage_is(lead, Stage::Prospect, "negotiate")?;
    Ok(vec![Event::NegotiationNoted(NegotiationNoted {
        lead_id: lead.id,
        author,
        note: note.trim().to_string(),
        executives_invited: executives,
    })])
}

fn valid_hash(hash: &str) -> Result<(), Rejected> {
    if hash.len() == 64
        && hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Ok(());
    }
    refuse(
        RefusalCode::InvalidValue,
        "`content_hash` must be the SHA-256 of the contract text as 64 lower-case hex digits",
        "`content_hash` 必须是合同文本的 SHA-256 值（64 位小写十六进制）",
    )
}

fn contract(lead: &Lead, id: ContractId) -> Result<&Contract, Rejected> {
    lead.contract
        .as_ref()
        .filter(|c| c.id == id)
        .ok_or_else(|| {
            crate::refusal::Refusal::new(
                RefusalCode::ContractNotFound,
                format!("contract {id} is not under review on this lead"),
                format!("该客户没有正在评审的合同 {id}"),
            )
            .into()
        })
}

pub(super) fn submit_contract(
    lead: &Lead,
    id: ContractId,
    amount: u64,
    hash: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    let me = owner_only(lead, ctx, "submit a contract for review")?;
    stage_is(lead, Stage::Prospect, "submit a contract")?;
    amount_in_range(amount)?;
    valid_hash(hash)?;
    if let Some(c) = &lead.contract {
        return refuse(
            RefusalCode::ContractExists,
            format!(
                "contract {} is already under review; amend it instead",
                c.id
            ),
            format!("合同 {} 已在评审中，请修改该合同", c.id),
        );
    }
    Ok(vec![Event::ContractSubmitted(ContractSubmitted {
        lead_id: lead.id,
        contract_id: id,
        amount_cny: amount,
        content_hash: hash.to_string(),
        reviewers: ctx
            .policy
            .contract_reviewers
            .iter()
            .map(|s| s.seat.clone())
            .collect(),
        submitted_by: me,
    })])
}

pub(super) fn amend_contract(
    lead: &Lead,
    id: ContractId,
    amount: u64,
    hash: &str,
    reason: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    let me = owner_only(lead, ctx, "amend a contract")?;
    amount_in_range(amount)?;
    valid_hash(hash)?;
    check::required("reason", reason, check::LONG)?;
    let c = contract(lead, id)?;
    if c.signed {
        return refuse(
            RefusalCode::ContractClosed,
            "a signed contract cannot be amended",
            "已签订的合同不能修改",
        );
    }
    if c.content_hash == hash && c.amount_cny == amount {
        return refuse(
            RefusalCode::NothingToDo,
            "the amendment changes nothing",
            "修改内容与原合同相同",
        );
    }
    Ok(vec![Event::ContractAmended(ContractAmended {
        lead_id: lead.id,
        contract_id: id,
        amount_cny: amount,
        content_hash: hash.to_string(),
        amended_by: me,
        reason: reason.trim().to_string(),
    })])
}

pub(super) fn review_contract(
    lead: &Lead,
    id: ContractId,
    seat: &str,
    approve: bool,
    hash: &str,
    reasons: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    may_write(ctx.acting)?;
    check::optional("reasons", reasons, check::LONG)?;
    let c = contract(lead, id)?;
    if !c.reviewers.iter().any(|s| s == seat) {
        return refuse(
            RefusalCode::NotAReviewer,
            format!(
                "`{seat}` is not a reviewer of this contract; reviewers: {}",
                c.reviewers.join(", ")
            ),
            format!(
                "“{seat}”不是该合同的评审方；评审方：{}",
                c.reviewers.join("、")
            ),
        );
    }
    let role = ctx
        .policy
        .contract_reviewers
        .iter()
        .find(|s| s.seat == seat)
        .map(|s| s.role);
    let Some(role) = role else {
        return refuse(
            RefusalCode::NotAReviewer,
            format!("seat `{seat}` is no longer configured"),
            format!("评审席位“{seat}”已不再配置"),
        );
    };
    let who = match ctx.acting {
        Acting::Staff(s) if s.role == role => s.id,
        _ => {
            return refuse(
                RefusalCode::RoleNotPermitted,
                format!("seat `{seat}` is filled by a {role}"),
                format!("评审席位“{seat}”须由{}担任", role.label_zh()),
            );
        }
    };
    if role == Role::OfficeManager {
        require_office(ctx.acting, lead.office)?;
    }
    if c.signed {
        return refuse(
            RefusalCode::ContractClosed,
            "the contract is already signed",
            "合同已签订",
        );
    }
    if c.content_hash != hash {
        return refuse(
            RefusalCode::ContractHashMismatch,
            "the contract was amended since this version: review the current text",
            "合同在此版本之后已被修改，请评审当前版本",
        );
    }
    if c.rejected {
        return refuse(
            RefusalCode::ContractNotApproved,
            "the contract was rejected and is back in negotiation: amend it before reviewing again",
            "合同已被驳回并退回谈判，请修改后再评审",
        );
    }
    if approve {
        if c.approvals.get(seat).is_some_and(|h| h == hash) {
            return refuse(
                RefusalCode::NothingToDo,
                "this seat has already approved this version",
                "该席位已批准此版本",
            );
        }
        return Ok(vec![Event::ContractApproved(ContractApproved {
            lead_id: lead.id,
            contract_id: id,
            seat: seat.to_string(),
            approved_by: who,
            content_hash: hash.to_string(),
        })]);
    }
    check::required("reasons", reasons, check::LONG)?;
    Ok(vec![Event::ContractRejected(ContractRejected {
        lead_id: lead.id,
        contract_id: id,
        seat: seat.to_string(),
        rejected_by: who,
        content_hash: hash.to_string(),
        reasons: reasons.trim().to_string(),
    })])
}

pub(super) fn sign(lead: &Lead, id: ContractId, hash: &str, ctx: &Ctx<'_>) -> Decision {
    let me = owner_only(lead, ctx, "sign a contract")?;
    stage_is(lead, Stage::Prospect, "sign a contract")?;
    let c = contract(lead, id)?;
    if c.content_hash != hash {
        return refuse(
            RefusalCode::ContractHashMismatch,
            "this is not the version under review",
            "该版本不是正在评审的合同版本",
        );
    }
    let pending = c.pending_seats();
    if c.rejected || !pending.is_empty() {
        return refuse(
            RefusalCode::ContractNotApproved,
            format!(
                "every reviewer must approve this exact version first; waiting for: {}",
                pending.join(", ")
            ),
            format!(
                "须所有评审方批准此版本后才能签订；待批准：{}",
                pending.join("、")
            ),
        );
    }
    Ok(vec![
        Event::ContractSigned(ContractSigned {
            lead_id: lead.id,
            contract_id: id,
            amount_cny: c.amount_cny,
            content_hash: hash.to_string(),
            signed_by: me,
        }),
        Event::StageChanged(StageChanged {
            lead_id: lead.id,
            office: lead.office,
            from: Stage::Prospect,
            to: Stage::Contract,
            owner: lead.owner,
        }),
    ])
}

pub(super) fn process_order(
    lead: &Lead,
    id: ContractId,
    order_ref: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    let me = match ctx.acting {
        Acting::Staff(s) if s.role == Role::SalesDepartment => {
            may_write(ctx.acting)?;
            s.id
        }
        _ => owner_only(lead, ctx, "process an order")?,
    };
    check::required("order_ref", order_ref, check::SHORT)?;
    stage_is(lead, Stage::Contract, "process an order")?;
    contract(lead, id)?;
    Ok(vec![Event::OrderProcessed(OrderProcessed {
        lead_id: lead.id,
        contract_id: id,
        order_ref: order_ref.trim().to_string(),
        processed_by: me,
    })])
}

pub(super) fn after_sales(lead: &Lead, note: &str, ctx: &Ctx<'_>) -> Decision {
    let me = owner_only(lead, ctx, "log after-sales care")?;
    check::required("note", note, check::LONG)?;
    stage_is(lead, Stage::Contract, "log after-sales care")?;
    Ok(vec![Event::AfterSalesCareLogged(AfterSalesCareLogged {
        lead_id: lead.id,
        by: me,
        note: note.trim().to_string(),
    })])
}

/// The owner or the office manager.
fn owner_or_manager(lead: &Lead, ctx: &Ctx<'_>, action: &str) -> Result<StaffId, Rejected> {
    match ctx.acting {
        Acting::Staff(s) if s.role == Role::OfficeManager => {
            manager_of(lead, ctx, action)?;
            Ok(s.id)
        }
        _ => owner_only(lead, ctx, action),
    }
}

pub(super) fn exit(
    lead: &Lead,
    to: Stage,
    reason: &str,
    competitor: &str,
    ctx: &Ctx<'_>,
) -> Decision {
    let me = owner_or_manager(
        lead,
        ctx,
        if to == Stage::Lost {
            "mark a lead lost"
        } else {
            "suspend a lead"
        },
    )?;
    check::required("reason", reason, check::LONG)?;
    check::optional("competitor", competitor, check::SHORT)?;
    open(lead)?;
    let first = if to == Stage::Lost {
        Event::LeadLost(LeadLost {
            lead_id: lead.id,
            by: me,
            from: lead.stage,
            reason: reason.trim().to_string(),
            competitor: competitor.trim().to_string(),
        })
    } else {
        Event::LeadSuspended(LeadSuspended {
            lead_id: lead.id,
            by: me,
            from: lead.stage,
            reason: reason.trim().to_string(),
        })
    };
    let mut events = vec![first];
    events.extend(withdraw_declaration(lead, to));
    events.push(Event::StageChanged(StageChanged {
        lead_id: lead.id,
        office: lead.office,
        from: lead.stage,
        to,
        owner: lead.owner,
    }));
    Ok(events)
}

/// The withdrawal of a declaration still under way when the lead leaves the funnel for `to`, so
/// its review and filing stop waiting.
pub(super) fn withdraw_declaration(lead: &Lead, to: Stage) -> Option<Event> {
    let d = lead.declaration.as_ref()?;
    matches!(
        d.state,
        DeclarationState::AwaitingReview | DeclarationState::Approved
    )
    .then(|| {
        Event::DeclarationWithdrawn(DeclarationWithdrawn {
            lead_id: lead.id,
            declaration_id: d.id,
            lead_stage: to,
        })
    })
}

pub(super) fn reactivate(lead: &Lead, reason: &str, ctx: &Ctx<'_>) -> Decision {
    let me = owner_or_manager(lead, ctx, "reactivate a lead")?;
    check::required("reason", reason, check::LONG)?;
    if !matches!(lead.stage, Stage::Suspended | Stage::Lost) {
        return refuse(
            RefusalCode::WrongStage,
            "only a suspended or lost lead can be reactivated",
            "只有中止或丢失的客户才能重新激活",
        );
    }
    let to = lead.stage_before_exit.unwrap_or(Stage::Ordinary);
    Ok(vec![
        Event::LeadReactivated(LeadReactivated {
            lead_id: lead.id,
            by: me,
            to,
            reason: reason.trim().to_string(),
        }),
        Event::StageChanged(StageChanged {
            lead_id: lead.id,
            office: lead.office,
            from: lead.stage,
            to,
            owner: lead.owner,
        }),
    ])
}
